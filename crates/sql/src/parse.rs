//! Parsing SQL text into syntax trees, the one way shardgate does it:
//! PostgreSQL's dialect, then long AND/OR chains rebalanced.
//!
//! The parser builds `a OR b OR c OR ...` as a left-deep tree, one level per
//! operand: an ORM's lookup of 2,000 keys written as ORs is a tree 2,000
//! levels deep, and everything that walks, prints, compares or drops it
//! recursively would overflow the stack (taking the whole router down, not
//! only the statement). AND and OR are associative (also in SQL's
//! three-valued logic), so such a chain is rebuilt as a balanced tree of the
//! same operands in the same order: it means the same and prints the same
//! (no parentheses are added), and it is only log2(n) levels deep. The
//! rebalancing itself moves operands out of the chain one by one, with no
//! recursion.

use sqlparser::ast::{BinaryOperator, Expr, Statement, Value, VisitMut, VisitorMut};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use std::ops::ControlFlow;

/// Chains shorter than this stay as parsed.
const LONG: usize = 16;

/// How deep the parser may recurse (parentheses, nested subqueries and
/// expressions; a parenthesised level is about two). Past it a statement
/// is refused (54001) rather than risking the stack: the router's worker
/// threads have room for this depth of every later walk over the tree.
pub const RECURSION_LIMIT: usize = 200;

/// Parse `sql` (one or more statements) with PostgreSQL's dialect and
/// rebalance long AND/OR chains in it.
pub fn parse_sql(sql: &str) -> Result<Vec<Statement>, ParserError> {
    let mut stmts = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)?
        .parse_statements()?;
    for s in &mut stmts {
        balance(s);
    }
    Ok(stmts)
}

/// Parse one expression with PostgreSQL's dialect, rebalanced.
pub fn parse_expr(sql: &str) -> Result<Expr, ParserError> {
    let mut e = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)?
        .parse_expr()?;
    balance(&mut e);
    Ok(e)
}

/// Rebalance every long AND/OR chain in `node`.
pub fn balance<N: VisitMut>(node: &mut N) {
    struct Balancer;
    impl VisitorMut for Balancer {
        type Break = ();
        // Before the walk goes down into it: the chain is rebuilt shallow
        // first, then walked.
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            balance_chain(e);
            ControlFlow::Continue(())
        }
    }
    let _ = node.visit(&mut Balancer);
}

/// The operator of a chain that may be rebalanced.
fn chain_op(e: &Expr) -> Option<&BinaryOperator> {
    match e {
        Expr::BinaryOp {
            op: op @ (BinaryOperator::And | BinaryOperator::Or),
            ..
        } => Some(op),
        _ => None,
    }
}

/// If `e` heads a long left-deep chain of one AND/OR operator, rebuild it
/// balanced.
fn balance_chain(e: &mut Expr) {
    let Some(op) = chain_op(e).cloned() else {
        return;
    };
    let mut n = 1;
    let mut cur = &*e;
    while let Expr::BinaryOp { left, op: o, .. } = cur
        && *o == op
    {
        n += 1;
        cur = left;
    }
    if n < LONG {
        return;
    }
    let mut operands = Vec::with_capacity(n);
    let mut cur = std::mem::replace(e, Expr::Value(Value::Null.into()));
    loop {
        match cur {
            Expr::BinaryOp { left, op: o, right } if o == op => {
                operands.push(*right);
                cur = *left;
            }
            other => {
                operands.push(other);
                break;
            }
        }
    }
    operands.reverse();
    *e = build(operands, &op);
}

/// A balanced tree of `operands` (at least one) joined by `op`, in order.
fn build(mut operands: Vec<Expr>, op: &BinaryOperator) -> Expr {
    if operands.len() == 1 {
        return operands.pop().expect("one operand");
    }
    let right = operands.split_off(operands.len() / 2);
    Expr::BinaryOp {
        left: Box::new(build(operands, op)),
        op: op.clone(),
        right: Box::new(build(right, op)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(e: &Expr) -> usize {
        match e {
            Expr::BinaryOp { left, right, .. } => 1 + depth(left).max(depth(right)),
            Expr::Nested(e) => 1 + depth(e),
            _ => 1,
        }
    }

    fn where_of(s: &Statement) -> &Expr {
        let Statement::Query(q) = s else { panic!() };
        let sqlparser::ast::SetExpr::Select(s) = q.body.as_ref() else {
            panic!()
        };
        s.selection.as_ref().unwrap()
    }

    #[test]
    fn long_chains_print_the_same_and_are_shallow() {
        for n in [1usize, 2, 15, 16, 17, 100, 20_000] {
            for (op, term) in [("OR", "id = {}"), ("AND", "(x <> {} OR y)")] {
                let terms: Vec<String> =
                    (0..n).map(|i| term.replace("{}", &i.to_string())).collect();
                let sql = format!("SELECT * FROM t WHERE {}", terms.join(&format!(" {op} ")));
                let stmts = parse_sql(&sql).unwrap();
                assert_eq!(stmts[0].to_string(), sql);
                let d = depth(where_of(&stmts[0]));
                // Short chains stay as parsed; long ones are about log2(n)
                // deep (each AND term adds a parenthesised OR).
                let bound = if n < LONG {
                    n + 4
                } else {
                    (usize::BITS - n.leading_zeros()) as usize + 4
                };
                assert!(d <= bound, "{n} terms: depth {d}");
            }
        }
    }

    #[test]
    fn precedence_and_mixed_chains_are_kept() {
        // AND binds tighter: the OR chain's operands are ANDs.
        let terms: Vec<String> = (0..40).map(|i| format!("a = {i} AND b = {i}")).collect();
        let sql = format!("SELECT 1 FROM t WHERE {}", terms.join(" OR "));
        let s = parse_sql(&sql).unwrap();
        assert_eq!(s[0].to_string(), sql);
        let Expr::BinaryOp { op, .. } = where_of(&s[0]) else {
            panic!()
        };
        assert_eq!(*op, BinaryOperator::Or);
        // A chain under another operator and in a subquery is found too.
        let ors: Vec<String> = (0..3000).map(|i| format!("k = {i}")).collect();
        let sql = format!(
            "SELECT (SELECT count(*) FROM u WHERE {}) FROM t WHERE NOT ({})",
            ors.join(" OR "),
            ors.join(" OR ")
        );
        let s = parse_sql(&sql).unwrap();
        assert_eq!(s[0].to_string(), sql);
        let e = parse_expr(&ors.join(" OR ")).unwrap();
        assert!(depth(&e) < 40);
    }
}
