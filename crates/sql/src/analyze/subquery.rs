//! Uncorrelated subqueries over sharded tables, run first.
//!
//! A SELECT whose select list, WHERE or HAVING (an UPDATE's or DELETE's
//! WHERE) holds a subquery over
//! sharded tables that cannot run next to the outer query on each shard
//! (`WHERE amount > (SELECT avg(amount) FROM orders)`, `WHERE id IN (SELECT
//! customer_id FROM orders WHERE ...)`) is refused as it stands. When the
//! subquery does not refer to the outer query, its value does not depend on
//! the outer row: the router runs it on its own first (as any statement,
//! merged or aggregated across shards) and writes its result into the outer
//! query as literals (a scalar, an `IN (...)` list, `true`/`false` for
//! `EXISTS`), which is then planned like any statement; an `IN` list of
//! shard keys then reaches only the shards that own them. This is how Citus
//! plans such subqueries ("recursive planning").
//!
//! Correlation is found by running the subquery alone: a reference to the
//! outer query fails there (an unknown column or FROM entry), and the
//! statement is refused as before. Columns resolve to the innermost query
//! that has them, so a subquery that runs alone means the same inside.

use super::*;
use sqlparser::ast::{VisitMut, VisitorMut};

/// What the outer query needs of one subquery's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubKind {
    /// `(SELECT ...)`: one value (NULL for no row; more rows are an error).
    Scalar,
    /// `expr [NOT] IN (SELECT ...)`: the list of values.
    In {
        /// `NOT IN`.
        negated: bool,
    },
    /// `[NOT] EXISTS (SELECT ...)`: whether it has a row.
    Exists {
        /// `NOT EXISTS`.
        negated: bool,
    },
}

/// One subquery to run first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sub {
    /// The subquery's own statement.
    pub sql: String,
    /// How its result goes into the outer query.
    pub kind: SubKind,
}

/// The prefix of the markers standing for the subqueries' results in the
/// outer query's text (followed by the subquery's number, from 1).
pub const MARKER: &str = "sg_subquery_result_";

/// The outer statement's text with subquery `i`'s result (as SQL) in
/// place of its marker, for each `i`.
pub fn substitute(outer: &str, results: &[String]) -> String {
    let mut out = outer.to_string();
    // From the last: marker 1 is a prefix of marker 10.
    for (i, r) in results.iter().enumerate().rev() {
        out = out.replace(&format!("{MARKER}{}", i + 1), r);
    }
    out
}

/// The subqueries that read sharded tables in a SELECT's select list,
/// WHERE and HAVING, or an UPDATE's or DELETE's WHERE, with the statement's
/// text where markers replace them; `None` when there are none (or the
/// statement has a WITH, or already names a marker).
pub(crate) fn pre_evaluate(
    stmt: &Statement,
    sql: &str,
    topo: &Topology,
) -> Option<(Vec<Sub>, String)> {
    if sql.contains(MARKER) {
        return None;
    }
    let mut outer = stmt.clone();
    let mut r = Replacer {
        topo,
        subs: Vec::new(),
    };
    match &mut outer {
        Statement::Query(q) => {
            if q.with.is_some() {
                return None;
            }
            let SetExpr::Select(os) = q.body.as_mut() else {
                return None;
            };
            for item in &mut os.projection {
                if let ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } = item
                {
                    let _ = e.visit(&mut r);
                }
            }
            if let Some(w) = &mut os.selection {
                let _ = w.visit(&mut r);
            }
            if let Some(h) = &mut os.having {
                let _ = h.visit(&mut r);
            }
        }
        Statement::Update(u) if u.from.is_none() && u.returning.is_none() => {
            if let Some(w) = &mut u.selection {
                let _ = w.visit(&mut r);
            }
        }
        Statement::Delete(d) if d.using.is_none() && d.returning.is_none() => {
            if let Some(w) = &mut d.selection {
                let _ = w.visit(&mut r);
            }
        }
        _ => return None,
    }
    if r.subs.is_empty() {
        return None;
    }
    Some((r.subs, outer.to_string()))
}

struct Replacer<'a> {
    topo: &'a Topology,
    subs: Vec<Sub>,
}

impl Replacer<'_> {
    /// Does `q` read a sharded table?
    fn sharded(&self, q: &Query) -> bool {
        !classes(&relations(q), self.topo).sharded.is_empty()
    }

    fn marker(&mut self, q: &Query, kind: SubKind) -> Expr {
        let mut q = q.clone();
        if matches!(kind, SubKind::Exists { .. }) && q.limit_clause.is_none() && q.fetch.is_none() {
            // One row tells.
            q.limit_clause = Some(ast::LimitClause::LimitOffset {
                limit: Some(Expr::Value(Value::Number("1".into(), false).into())),
                offset: None,
                limit_by: Vec::new(),
            });
        }
        self.subs.push(Sub {
            sql: q.to_string(),
            kind,
        });
        Expr::Identifier(Ident::new(format!("{MARKER}{}", self.subs.len())))
    }
}

impl VisitorMut for Replacer<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        let new = match e {
            Expr::Subquery(q) if self.sharded(q) => self.marker(q, SubKind::Scalar),
            Expr::InSubquery {
                expr,
                subquery,
                negated,
            } if self.sharded(subquery) => {
                let m = self.marker(subquery, SubKind::In { negated: *negated });
                // `expr IN (list)`: the marker becomes the list with its
                // parentheses.
                Expr::InList {
                    expr: expr.clone(),
                    list: vec![m],
                    negated: *negated,
                }
            }
            Expr::Exists { subquery, negated } if self.sharded(subquery) => {
                self.marker(subquery, SubKind::Exists { negated: *negated })
            }
            _ => return ControlFlow::Continue(()),
        };
        *e = new;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_replaced_from_the_last() {
        let outer = format!("SELECT 1 WHERE a = {MARKER}1 AND b IN ({MARKER}10)");
        let mut results: Vec<String> = (1..=10).map(|i| format!("v{i}")).collect();
        results[0] = "x".into();
        assert_eq!(
            substitute(&outer, &results),
            "SELECT 1 WHERE a = x AND b IN (v10)"
        );
    }
}
