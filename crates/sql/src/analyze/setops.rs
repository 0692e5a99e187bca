//! Set operations across shards, by rewriting them into a query over a
//! `UNION ALL` of their branches, which the merge and aggregation paths
//! already handle (see `partitioned_from` in `select`):
//!
//! - `... UNION ALL ... ORDER BY/LIMIT`: the merge-sort over the union;
//! - `A UNION B` (any tree of UNIONs under a UNION): `SELECT DISTINCT` over
//!   `A UNION ALL B`;
//! - `A INTERSECT B`, `A EXCEPT B`: each branch tags its rows with its side,
//!   and `GROUP BY` every column with `HAVING` on the sides (in both: min
//!   side 1 and max side 2; left only: max side 1); set operations and
//!   GROUP BY alike treat NULLs as equal.
//!
//! The rewritten query names the union's columns `sg_c1, sg_c2, ...` and
//! selects them under the names PostgreSQL gives the set operation's
//! columns (the first branch's), so row descriptions match; ORDER BY names
//! and positions then refer to them as before. A statement that reaches one
//! shard is still sent as the client wrote it; the rewrite is what every
//! shard runs when several are reached. Also: `FETCH FIRST n ROWS ONLY` is
//! `LIMIT n`.

use super::*;
use crate::merge::has_wildcard;

/// `FETCH FIRST n ROWS ONLY` as `LIMIT n` (`WITH TIES` and `PERCENT` stay).
pub(super) fn fetch_as_limit(q: &Query) -> Option<Query> {
    let f = q.fetch.as_ref()?;
    if f.with_ties || f.percent {
        return None;
    }
    let offset = match &q.limit_clause {
        None => None,
        Some(ast::LimitClause::LimitOffset {
            limit: None,
            offset,
            limit_by,
        }) if limit_by.is_empty() => offset.clone(),
        Some(_) => return None,
    };
    let mut out = q.clone();
    out.fetch = None;
    out.limit_clause = Some(ast::LimitClause::LimitOffset {
        limit: Some(
            f.quantity
                .clone()
                .unwrap_or_else(|| Expr::Value(Value::Number("1".into(), false).into())),
        ),
        offset,
        limit_by: Vec::new(),
    });
    Some(out)
}

/// The set operation `q` rewritten over a `UNION ALL` of its branches, if
/// it has a form this module handles.
pub(super) fn rewrite(q: &Query) -> Option<Query> {
    if q.with.is_some() || q.fetch.is_some() || !q.locks.is_empty() {
        return None;
    }
    let SetExpr::SetOperation {
        op,
        set_quantifier,
        left,
        right,
    } = q.body.as_ref()
    else {
        return None;
    };
    let all = matches!(set_quantifier, ast::SetQuantifier::All);
    let distinct = matches!(
        set_quantifier,
        ast::SetQuantifier::None | ast::SetQuantifier::Distinct
    );
    let mut leaves: Vec<ast::Select> = Vec::new();
    let (head, tail) = match op {
        ast::SetOperator::Union if all => {
            // Only worth it with a merge over the union.
            if q.order_by.is_none() && q.limit_clause.is_none() {
                return None;
            }
            if !union_leaves(&q.body, true, &mut leaves) {
                return None;
            }
            ("SELECT", String::new())
        }
        ast::SetOperator::Union if distinct => {
            if !union_leaves(&q.body, false, &mut leaves) {
                return None;
            }
            ("SELECT DISTINCT", String::new())
        }
        ast::SetOperator::Intersect | ast::SetOperator::Except if distinct => {
            for (side, b) in [left, right].into_iter().enumerate() {
                let mut s = leaf(b)?.clone();
                s.projection.push(SelectItem::ExprWithAlias {
                    expr: Expr::Value(Value::Number((side + 1).to_string(), false).into()),
                    alias: Ident::new("sg_side"),
                });
                leaves.push(s);
            }
            let having = if matches!(op, ast::SetOperator::Intersect) {
                "min(sg_side) = 1 AND max(sg_side) = 2"
            } else {
                "max(sg_side) = 1"
            };
            ("SELECT", format!(" HAVING {having}"))
        }
        _ => return None,
    };
    let extra = usize::from(!tail.is_empty());
    let mut names = output_names(&leaves[0])?;
    names.truncate(names.len() - extra);
    let n = names.len();
    // Every branch selects the same number of columns (or PostgreSQL's
    // own error is the answer: leave the statement alone).
    if leaves
        .iter()
        .any(|l| has_wildcard(&l.projection) || l.projection.len() != n + extra)
    {
        return None;
    }
    let cols: Vec<String> = (1..=n).map(|i| format!("sg_c{i}")).collect();
    let items: Vec<String> = cols
        .iter()
        .zip(&names)
        .map(|(c, name)| format!("{c} AS {}", Ident::with_quote('"', name)))
        .collect();
    let union: Vec<String> = leaves.iter().map(ToString::to_string).collect();
    let mut alias = cols.clone();
    let group = if tail.is_empty() {
        String::new()
    } else {
        alias.push("sg_side".into());
        format!(" GROUP BY {}", cols.join(", "))
    };
    let mut sql = format!(
        "{head} {} FROM ({}) AS sg_union ({}){group}{tail}",
        items.join(", "),
        union.join(" UNION ALL "),
        alias.join(", ")
    );
    if let Some(o) = &q.order_by {
        sql.push_str(&format!(" {o}"));
    }
    if let Some(l) = &q.limit_clause {
        sql.push_str(&format!("{l}"));
    }
    match crate::parse::parse_sql(&sql).ok()?.pop()? {
        Statement::Query(q) => Some(*q),
        _ => None,
    }
}

/// Does a parenthesized branch add nothing of its own around its body?
fn bare(q: &Query) -> bool {
    q.with.is_none()
        && q.order_by.is_none()
        && q.limit_clause.is_none()
        && q.fetch.is_none()
        && q.locks.is_empty()
}

/// A branch that is a plain SELECT (possibly parenthesized, with nothing
/// of its own around it).
fn leaf(e: &SetExpr) -> Option<&ast::Select> {
    match e {
        SetExpr::Select(s) => Some(s),
        SetExpr::Query(q) if bare(q) => leaf(&q.body),
        _ => None,
    }
}

/// The plain SELECTs under a tree of UNIONs (only `UNION ALL` when
/// `all_only`; any UNION under a distinct one, whose DISTINCT covers them).
fn union_leaves(e: &SetExpr, all_only: bool, out: &mut Vec<ast::Select>) -> bool {
    match e {
        SetExpr::SetOperation {
            op: ast::SetOperator::Union,
            set_quantifier,
            left,
            right,
        } if !all_only || matches!(set_quantifier, ast::SetQuantifier::All) => {
            matches!(
                set_quantifier,
                ast::SetQuantifier::All | ast::SetQuantifier::None | ast::SetQuantifier::Distinct
            ) && union_leaves(left, all_only, out)
                && union_leaves(right, all_only, out)
        }
        SetExpr::Query(q) if bare(q) => union_leaves(&q.body, all_only, out),
        SetExpr::Select(s) => {
            out.push((**s).clone());
            true
        }
        _ => false,
    }
}

/// The column names PostgreSQL gives a SELECT's output.
fn output_names(s: &ast::Select) -> Option<Vec<String>> {
    s.projection
        .iter()
        .map(|i| match i {
            SelectItem::ExprWithAlias { alias, .. } => Some(ident_name(alias)),
            SelectItem::UnnamedExpr(e) if certain(e) => Some(crate::aggregate::output_name(e)),
            _ => None,
        })
        .collect()
}

/// Forms whose PostgreSQL output name `output_name` gives for sure (not,
/// for example, `true` ("bool"), `a[1]` ("a") or a scalar subquery).
fn certain(e: &Expr) -> bool {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Case { .. } => true,
        Expr::BinaryOp { .. } | Expr::UnaryOp { .. } => true,
        Expr::Value(v) => !matches!(v.value, Value::Boolean(_)),
        Expr::Nested(inner) => certain(inner),
        Expr::Cast { expr, .. } => certain(expr),
        Expr::Function(f) => f.over.is_none(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(sql: &str) -> Query {
        match Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap()
        {
            Statement::Query(q) => *q,
            _ => unreachable!(),
        }
    }

    fn rw(sql: &str) -> Option<String> {
        rewrite(&q(sql)).map(|q| q.to_string())
    }

    #[test]
    fn unions_become_a_query_over_union_all() {
        assert_eq!(
            rw("SELECT a, b AS x FROM t UNION ALL SELECT c, d FROM u ORDER BY x DESC LIMIT 3")
                .as_deref(),
            Some(
                "SELECT sg_c1 AS \"a\", sg_c2 AS \"x\" FROM (SELECT a, b AS x FROM t UNION ALL SELECT c, d FROM u) AS sg_union (sg_c1, sg_c2) ORDER BY x DESC LIMIT 3"
            )
        );
        // Nothing to merge: left to the plain concatenation.
        assert_eq!(rw("SELECT a FROM t UNION ALL SELECT a FROM u"), None);
        assert_eq!(
            rw("SELECT a FROM t UNION SELECT a FROM u UNION ALL SELECT count(*) FROM v").as_deref(),
            None,
            "a distinct union under UNION ALL"
        );
        assert_eq!(
            rw("SELECT T.a, 1 FROM t UNION ALL SELECT a, 2 FROM u UNION SELECT lower(a), 3 FROM v")
                .as_deref(),
            Some(
                "SELECT DISTINCT sg_c1 AS \"a\", sg_c2 AS \"?column?\" FROM (SELECT T.a, 1 FROM t UNION ALL SELECT a, 2 FROM u UNION ALL SELECT lower(a), 3 FROM v) AS sg_union (sg_c1, sg_c2)"
            )
        );
        assert_eq!(rw("SELECT * FROM t UNION SELECT * FROM u"), None);
        assert_eq!(rw("SELECT a FROM t UNION SELECT a, b FROM u"), None);
    }

    #[test]
    fn intersect_and_except_group_by_side() {
        assert_eq!(
            rw("SELECT a FROM t INTERSECT SELECT b FROM u ORDER BY 1").as_deref(),
            Some(
                "SELECT sg_c1 AS \"a\" FROM (SELECT a, 1 AS sg_side FROM t UNION ALL SELECT b, 2 AS sg_side FROM u) AS sg_union (sg_c1, sg_side) GROUP BY sg_c1 HAVING min(sg_side) = 1 AND max(sg_side) = 2 ORDER BY 1"
            )
        );
        assert!(
            rw("SELECT a FROM t EXCEPT SELECT b FROM u")
                .unwrap()
                .contains("HAVING max(sg_side) = 1")
        );
        assert_eq!(rw("SELECT a FROM t EXCEPT ALL SELECT b FROM u"), None);
        assert_eq!(
            rw("SELECT a FROM t EXCEPT SELECT b FROM u EXCEPT SELECT c FROM v"),
            None
        );
    }

    #[test]
    fn fetch_first_is_a_limit() {
        let f = |s: &str| fetch_as_limit(&q(s)).map(|q| q.to_string());
        assert_eq!(
            f("SELECT a FROM t ORDER BY a OFFSET 2 ROWS FETCH FIRST 5 ROWS ONLY").as_deref(),
            Some("SELECT a FROM t ORDER BY a LIMIT 5 OFFSET 2 ROWS")
        );
        assert_eq!(
            f("SELECT a FROM t ORDER BY a FETCH NEXT ROW ONLY").as_deref(),
            Some("SELECT a FROM t ORDER BY a LIMIT 1")
        );
        assert_eq!(
            f("SELECT a FROM t ORDER BY a FETCH FIRST 5 ROWS WITH TIES"),
            None
        );
    }
}
