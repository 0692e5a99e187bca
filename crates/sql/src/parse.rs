//! Parsing SQL text into syntax trees, the one way shardgate does it:
//! PostgreSQL's dialect, then long chains rebalanced or refused.
//!
//! The parser builds `a OR b OR c OR ...` (and `x UNION ALL y UNION ALL
//! ...`, and `1 + 2 + 3 ...`) as a left-deep tree, one level per operand
//! and without recursion of its own: an ORM's lookup of 2,000 keys written
//! as ORs is a tree 2,000 levels deep, and everything that walks, prints,
//! compares or drops it recursively would overflow the stack (taking the
//! whole router down, not only the statement). So, before anything else
//! walks the tree:
//! - a long chain of one associative operator (AND, OR, UNION [ALL],
//!   INTERSECT [ALL]) is rebuilt as a balanced tree of the same operands in
//!   the same order: it means the same and prints the same (no parentheses
//!   are added), and is only log2(n) levels deep;
//! - any other chain longer than [`MAX_CHAIN`] (`1 + 1 + ...`, `a || b ||
//!   ...`, mixed operators) makes the statement "too deeply nested" (54001,
//!   as PostgreSQL answers past its stack depth), and the tree is taken
//!   apart one level at a time, with no recursion.

use sqlparser::ast::{
    BinaryOperator, Expr, Query, SetExpr, SetOperator, SetQuantifier, Statement, Value, Values,
    VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use std::ops::ControlFlow;

/// Chains shorter than this stay as parsed.
const LONG: usize = 16;

/// The longest chain of operators that cannot be rebalanced.
pub const MAX_CHAIN: usize = 1000;

/// How deep the parser may recurse (parentheses, nested subqueries and
/// expressions; a parenthesised level is about two). Past it a statement
/// is refused (54001) rather than risking the stack: the router's worker
/// threads have room for this depth of every later walk over the tree.
pub const RECURSION_LIMIT: usize = 200;

/// Parse `sql` (one or more statements) with PostgreSQL's dialect; long
/// chains rebalanced, or the recursion-limit error for one too long.
pub fn parse_sql(sql: &str) -> Result<Vec<Statement>, ParserError> {
    let parse = |sql: &str| {
        Parser::new(&PostgreSqlDialect {})
            .with_recursion_limit(RECURSION_LIMIT)
            .try_with_sql(sql)?
            .parse_statements()
    };
    // `BETWEEN SYMMETRIC`, which sqlparser does not read (or reads as a
    // column named symmetric): expanded as PostgreSQL does (see
    // [`crate::symmetric`]).
    let blanked = contains_ignore_case(sql, "symmetric")
        .then(|| crate::symmetric::blank(sql))
        .flatten();
    let mut stmts = match blanked {
        Some((text, at)) => {
            let mut s = parse(&text)?;
            if !crate::symmetric::expand(&mut s, &at) {
                return Err(ParserError::ParserError(
                    "BETWEEN SYMMETRIC in a place shardgate cannot follow".into(),
                ));
            }
            s
        }
        None => parse(sql)?,
    };
    for s in &mut stmts {
        balance(s)?;
    }
    Ok(stmts)
}

/// Does `hay` contain the ASCII word `needle` in any case?
fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Parse one expression with PostgreSQL's dialect, rebalanced.
pub fn parse_expr(sql: &str) -> Result<Expr, ParserError> {
    let mut e = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)?
        .parse_expr()?;
    balance(&mut e)?;
    Ok(e)
}

/// Rebalance every long AND/OR and UNION/INTERSECT chain in `node`; a
/// chain too long that cannot be is taken out of the tree and reported as
/// the parser's recursion-limit error.
pub fn balance<N: VisitMut>(node: &mut N) -> Result<(), ParserError> {
    struct Balancer;
    // Before the walk goes down into a chain, it is rebuilt shallow (or
    // taken apart), then walked.
    impl VisitorMut for Balancer {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            balance_set_chain(&mut q.body);
            if set_spine(&q.body) > MAX_CHAIN {
                dismantle_sets(&mut q.body);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            balance_chain(e);
            if expr_spine(e) > MAX_CHAIN {
                dismantle_expr(e);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    match node.visit(&mut Balancer) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(ParserError::RecursionLimitExceeded),
    }
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

/// How many binary operators are on `e`'s left spine.
fn expr_spine(e: &Expr) -> usize {
    let mut n = 0;
    let mut cur = e;
    while let Expr::BinaryOp { left, .. } = cur {
        n += 1;
        cur = left;
    }
    n
}

/// Take `e`'s left spine apart one level at a time (what is left is NULL).
fn dismantle_expr(e: &mut Expr) {
    let mut cur = std::mem::replace(e, Expr::Value(Value::Null.into()));
    while let Expr::BinaryOp { left, .. } = cur {
        cur = *left;
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
    *e = balanced(operands, &mut |l, r| Expr::BinaryOp {
        left: Box::new(l),
        op: op.clone(),
        right: Box::new(r),
    });
}

/// A balanced tree of `operands` (at least one), in order, joined by
/// `join`.
fn balanced<T>(mut operands: Vec<T>, join: &mut impl FnMut(T, T) -> T) -> T {
    if operands.len() == 1 {
        return operands.pop().expect("one operand");
    }
    let right = operands.split_off(operands.len() / 2);
    let l = balanced(operands, join);
    let r = balanced(right, join);
    join(l, r)
}

/// A placeholder set expression (an empty VALUES) to move a body out.
fn empty_set() -> SetExpr {
    SetExpr::Values(Values {
        explicit_row: false,
        value_keyword: false,
        rows: Vec::new(),
    })
}

/// How many set operations are on `body`'s left spine.
fn set_spine(body: &SetExpr) -> usize {
    let mut n = 0;
    let mut cur = body;
    while let SetExpr::SetOperation { left, .. } = cur {
        n += 1;
        cur = left;
    }
    n
}

/// Take `body`'s left spine apart one level at a time.
fn dismantle_sets(body: &mut SetExpr) {
    let mut cur = std::mem::replace(body, empty_set());
    while let SetExpr::SetOperation { left, .. } = cur {
        cur = *left;
    }
}

/// If `body` heads a long left-deep chain of one associative set
/// operation (UNION or INTERSECT, with one quantifier), rebuild it
/// balanced.
fn balance_set_chain(body: &mut SetExpr) {
    let (op, quantifier) = match body {
        SetExpr::SetOperation {
            op: op @ (SetOperator::Union | SetOperator::Intersect),
            set_quantifier,
            ..
        } => (*op, *set_quantifier),
        _ => return,
    };
    let same = |o: &SetOperator, q: &SetQuantifier| *o == op && *q == quantifier;
    let mut n = 1;
    let mut cur = &*body;
    while let SetExpr::SetOperation {
        left,
        op: o,
        set_quantifier: q,
        ..
    } = cur
        && same(o, q)
    {
        n += 1;
        cur = left;
    }
    if n < LONG {
        return;
    }
    let mut operands = Vec::with_capacity(n);
    let mut cur = std::mem::replace(body, empty_set());
    loop {
        match cur {
            SetExpr::SetOperation {
                left,
                op: o,
                set_quantifier: q,
                right,
            } if same(&o, &q) => {
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
    *body = balanced(operands, &mut |l, r| SetExpr::SetOperation {
        left: Box::new(l),
        op,
        set_quantifier: quantifier,
        right: Box::new(r),
    });
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

    #[test]
    fn long_set_operations_are_balanced() {
        for (op, n) in [("UNION ALL", 5000), ("UNION", 40), ("INTERSECT", 100)] {
            let sql = (0..n)
                .map(|i| format!("SELECT {i}"))
                .collect::<Vec<_>>()
                .join(&format!(" {op} "));
            let s = parse_sql(&sql).unwrap();
            assert_eq!(s[0].to_string(), sql);
            let Statement::Query(q) = &s[0] else { panic!() };
            assert!(set_spine(&q.body) < 20, "{op}: {}", set_spine(&q.body));
        }
        // EXCEPT is not associative, and mixed operators are not one
        // chain: as parsed.
        let sql = (0..50)
            .map(|i| format!("SELECT {i}"))
            .collect::<Vec<_>>()
            .join(" EXCEPT ");
        let s = parse_sql(&sql).unwrap();
        let Statement::Query(q) = &s[0] else { panic!() };
        assert_eq!(set_spine(&q.body), 49);
        assert_eq!(s[0].to_string(), sql);
    }

    #[test]
    fn chains_that_cannot_be_balanced_are_refused_not_overflowed() {
        for (n, ok) in [(MAX_CHAIN, true), (MAX_CHAIN + 1, false), (20_000, false)] {
            let sql = format!("SELECT {} FROM t", vec!["x"; n + 1].join(" + "));
            let r = parse_sql(&sql);
            assert_eq!(r.is_ok(), ok, "{n}");
            if !ok {
                assert!(r.unwrap_err().to_string().contains("recursion limit"));
            }
        }
        let sql = (0..10_000)
            .map(|i| format!("SELECT {i}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL SELECT 1 EXCEPT ");
        assert!(parse_sql(&sql).is_err());
        // Deep parentheses stop at the parser's limit.
        let deep = format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500));
        assert!(parse_sql(&deep).is_err());
    }
}
