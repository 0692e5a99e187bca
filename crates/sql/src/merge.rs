//! Planning a multi-shard SELECT with ORDER BY, LIMIT and OFFSET as a
//! streaming merge.
//!
//! Each shard runs the query with its ORDER BY, with one hidden column per
//! sort key appended to the select list (so keys need not be selected, and
//! are always compared in one canonical form), and with `LIMIT limit +
//! offset` and no OFFSET. The executor merges the sorted streams, applies
//! OFFSET and LIMIT, and strips the hidden columns.

use shardgate_core::ShardId;
use sqlparser::ast::{
    Expr, Ident, LimitClause, OrderByKind, OrderBySort, Query, SelectItem, SetExpr, Value,
};

/// One sort key: its direction and where NULLs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    /// DESC.
    pub desc: bool,
    /// NULLS FIRST (PostgreSQL's default: first for DESC, last for ASC).
    pub nulls_first: bool,
}

/// How to merge the shards' sorted streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSpec {
    /// The SQL each shard runs (hidden sort columns appended, LIMIT pushed).
    pub sql: String,
    /// Sort keys, in order; the last `keys.len()` columns are hidden.
    pub keys: Vec<SortKey>,
    /// Rows to return after OFFSET, if limited.
    pub limit: Option<u64>,
    /// Rows to skip after the merge.
    pub offset: u64,
}

impl MergeSpec {
    /// The read plan on `shards`: `Project(Limit?(MergeSort(Scatter)))`,
    /// or `Limit(Concat(Scatter))` without sort keys (see
    /// [`crate::plan::Node`]); `per_shard` is each shard's own SQL when the
    /// key list was split.
    pub fn tree(
        &self,
        shards: Vec<ShardId>,
        per_shard: Option<std::collections::BTreeMap<ShardId, String>>,
    ) -> crate::plan::Node {
        use crate::plan::Node;
        let scatter = Box::new(Node::Scatter {
            shards,
            sql: self.sql.clone(),
            per_shard,
        });
        let mut node = if self.keys.is_empty() {
            Node::Concat { input: scatter }
        } else {
            Node::MergeSort {
                keys: self.keys.clone(),
                input: scatter,
            }
        };
        if self.limit.is_some() || self.offset > 0 {
            node = Node::Limit {
                limit: self.limit,
                offset: self.offset,
                input: Box::new(node),
            };
        }
        if self.keys.is_empty() {
            return node;
        }
        Node::Project {
            hidden: self.keys.len(),
            input: Box::new(node),
        }
    }
}

impl MergeSpec {
    /// The same merge done by one shard instead of the router: a final
    /// query over the shards' rows (`sg_partial`, as in
    /// [`crate::AggSpec`]), for sort keys the router cannot compare (text
    /// under a linguistic collation, which the rows' columns carry).
    /// `names` are the visible columns' names as the shards describe them.
    pub fn final_sort(&self, names: &[String]) -> crate::AggSpec {
        final_sort(&self.keys, self.limit, self.offset, names)
    }
}

/// [`MergeSpec::final_sort`] of a merge by `keys` with `limit` and
/// `offset`.
pub fn final_sort(
    keys: &[SortKey],
    limit: Option<u64>,
    offset: u64,
    names: &[String],
) -> crate::AggSpec {
    let visible = names.len();
    let cols: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "{} AS \"{}\"",
                crate::aggregate::column_name(i),
                n.replace('"', "\"\"")
            )
        })
        .collect();
    let order: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut o = crate::aggregate::column_name(visible + i);
            o.push_str(if k.desc { " DESC" } else { " ASC" });
            o.push_str(if k.nulls_first {
                " NULLS FIRST"
            } else {
                " NULLS LAST"
            });
            o
        })
        .collect();
    let mut fin = format!(
        "SELECT {} FROM {}",
        cols.join(", "),
        crate::aggregate::PARTIAL
    );
    if !order.is_empty() {
        fin.push_str(" ORDER BY ");
        fin.push_str(&order.join(", "));
    }
    if let Some(l) = limit {
        fin.push_str(&format!(" LIMIT {l}"));
    }
    if offset > 0 {
        fin.push_str(&format!(" OFFSET {offset}"));
    }
    // Only the final query is used: the rows come from the merge's own
    // statements.
    crate::AggSpec {
        original: String::new(),
        partial_sql: String::new(),
        partial_lite: String::new(),
        final_lite: fin.clone(),
        final_pg: fin,
        columns: visible + keys.len(),
        no_float4: Vec::new(),
        raw: true,
    }
}

/// Does a select list have `*` or `t.*`?
pub fn has_wildcard(items: &[SelectItem]) -> bool {
    items.iter().any(|i| {
        matches!(
            i,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    })
}

fn number(e: &Expr) -> Option<u64> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The merge for a multi-shard SELECT, `Ok(None)` when plain concatenation
/// is right (no ORDER BY, LIMIT or OFFSET), or why it cannot be merged.
///
/// `nested` tells whether anything below the top-level ORDER BY/LIMIT
/// needs a merge (aggregates, DISTINCT, GROUP BY, windows, set operations).
pub fn plan_merge(
    q: &Query,
    nested: impl Fn(&Query) -> Option<String>,
) -> Result<Option<MergeSpec>, String> {
    // The query without its ORDER BY and LIMIT (a copy only if it has
    // them).
    let stripped;
    let bare = if q.order_by.is_none() && q.limit_clause.is_none() {
        q
    } else {
        let mut b = q.clone();
        b.order_by = None;
        b.limit_clause = None;
        stripped = b;
        &stripped
    };
    if let Some(why) = nested(bare) {
        return Err(why);
    }
    if q.fetch.is_some() {
        return Err("FETCH FIRST".into());
    }
    if q.order_by.is_none() && q.limit_clause.is_none() {
        return Ok(None);
    }
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return Err("ORDER BY over a set operation".into());
    };
    let mut hidden: Vec<Expr> = Vec::new();
    let mut keys = Vec::new();
    if let Some(ob) = &q.order_by {
        let OrderByKind::Expressions(list) = &ob.kind else {
            return Err("ORDER BY ALL".into());
        };
        for o in list {
            if o.with_fill.is_some() {
                return Err("ORDER BY ... WITH FILL".into());
            }
            let desc = match o.options.sort {
                None | Some(OrderBySort::Asc) => false,
                Some(OrderBySort::Desc) => true,
                Some(OrderBySort::Using(_)) => return Err("ORDER BY ... USING".into()),
            };
            keys.push(SortKey {
                desc,
                nulls_first: o.options.nulls_first.unwrap_or(desc),
            });
            let item_expr = |i: &SelectItem| match i {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    Some(e.clone())
                }
                _ => None,
            };
            let e = if let Some(n) = number(&o.expr) {
                let item = n
                    .checked_sub(1)
                    .and_then(|i| sel.projection.get(i as usize));
                match item.and_then(item_expr) {
                    Some(e) => e,
                    // Out of range with no * to expand: every shard
                    // rejects it with PostgreSQL's own error.
                    None if item.is_none() && !has_wildcard(&sel.projection) => return Ok(None),
                    None => return Err("ORDER BY a position of *".into()),
                }
            } else if let Expr::Identifier(id) = &o.expr {
                let name = crate::analyze::ident_name(id);
                sel.projection
                    .iter()
                    .find_map(|i| match i {
                        SelectItem::ExprWithAlias { expr, alias }
                            if crate::analyze::ident_name(alias) == name =>
                        {
                            Some(expr.clone())
                        }
                        _ => None,
                    })
                    .unwrap_or_else(|| o.expr.clone())
            } else {
                o.expr.clone()
            };
            hidden.push(e);
        }
    }
    let (limit, offset) = match &q.limit_clause {
        None => (None, 0),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err("LIMIT BY".into());
            }
            let l = match limit {
                None => None,
                Some(Expr::Value(v)) if v.value == Value::Null => None,
                Some(e) => Some(number(e).ok_or("LIMIT with a non-constant value")?),
            };
            let o = match offset {
                None => 0,
                Some(o) => number(&o.value).ok_or("OFFSET with a non-constant value")?,
            };
            (l, o)
        }
        Some(LimitClause::OffsetCommaLimit { .. }) => return Err("LIMIT offset, count".into()),
    };
    let mut shard_q = q.clone();
    if let SetExpr::Select(s) = shard_q.body.as_mut() {
        for (i, e) in hidden.into_iter().enumerate() {
            s.projection.push(SelectItem::ExprWithAlias {
                expr: e,
                alias: Ident::new(format!("sg_sort_{}", i + 1)),
            });
        }
    }
    // Spell out where NULLs go: every shard must sort them as PostgreSQL
    // does (an embedded SQLite shard would put them first).
    if let Some(ob) = shard_q.order_by.as_mut()
        && let OrderByKind::Expressions(list) = &mut ob.kind
    {
        for (o, k) in list.iter_mut().zip(&keys) {
            o.options.nulls_first = Some(k.nulls_first);
        }
    }
    shard_q.limit_clause = limit.map(|l| LimitClause::LimitOffset {
        limit: Some(Expr::Value(
            Value::Number(l.saturating_add(offset).to_string(), false).into(),
        )),
        offset: None,
        limit_by: Vec::new(),
    });
    Ok(Some(MergeSpec {
        sql: shard_q.to_string(),
        keys,
        limit,
        offset,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_sort_orders_by_the_hidden_keys() {
        let spec = MergeSpec {
            sql:
                "SELECT name, id, name AS sg_k1, id AS sg_k2 FROM t ORDER BY name DESC, id LIMIT 7"
                    .into(),
            keys: vec![
                SortKey {
                    desc: true,
                    nulls_first: false,
                },
                SortKey {
                    desc: false,
                    nulls_first: true,
                },
            ],
            limit: Some(5),
            offset: 2,
        };
        let agg = spec.final_sort(&["na\"me".to_string(), "id".to_string()]);
        assert_eq!(agg.columns, 4);
        assert!(agg.raw);
        assert_eq!(
            agg.final_pg,
            "SELECT sg_c1 AS \"na\"\"me\", sg_c2 AS \"id\" FROM sg_partial ORDER BY sg_c3 DESC NULLS LAST, sg_c4 ASC NULLS FIRST LIMIT 5 OFFSET 2"
        );
    }
}
