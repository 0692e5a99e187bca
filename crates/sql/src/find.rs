//! Searching syntax trees: does any expression, or any query, inside a
//! node match a predicate? (One visitor for the many "does this statement
//! have a ..." questions of analysis and planning.)

use sqlparser::ast::{Expr, Query, Visit, Visitor};
use std::ops::ControlFlow;

/// Does any expression in `node` (its own, and those of its subqueries)
/// satisfy `pred`?
pub fn any_expr<T: Visit + ?Sized>(node: &T, pred: impl FnMut(&Expr) -> bool) -> bool {
    struct F<P>(P);
    impl<P: FnMut(&Expr) -> bool> Visitor for F<P> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if (self.0)(e) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }
    node.visit(&mut F(pred)).is_break()
}

/// Does any query in `node` (itself, if it is one, and its subqueries)
/// satisfy `pred`?
pub fn any_query<T: Visit + ?Sized>(node: &T, pred: impl FnMut(&Query) -> bool) -> bool {
    struct F<P>(P);
    impl<P: FnMut(&Query) -> bool> Visitor for F<P> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if (self.0)(q) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }
    node.visit(&mut F(pred)).is_break()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    #[test]
    fn finds_expressions_and_queries() {
        let s = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT a FROM t WHERE b IN (SELECT c FROM u)",
        )
        .unwrap();
        assert!(any_expr(&s[0], |e| matches!(e, Expr::InSubquery { .. })));
        assert!(!any_expr(&s[0], |e| matches!(e, Expr::Exists { .. })));
        let mut n = 0;
        assert!(!any_query(&s[0], |_| {
            n += 1;
            false
        }));
        assert_eq!(n, 2);
    }
}
