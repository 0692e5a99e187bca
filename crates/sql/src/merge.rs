//! Planning a multi-shard SELECT with ORDER BY, LIMIT and OFFSET as a
//! streaming merge.
//!
//! Each shard runs the query with its ORDER BY, with one hidden column per
//! sort key appended to the select list (so keys need not be selected, and
//! are always compared in one canonical form, binary), and with `LIMIT
//! limit + offset` and no OFFSET. The executor merges the sorted streams,
//! applies OFFSET and LIMIT, and strips the hidden columns.
//!
//! Hidden columns have a price on the shards: a select list that is no
//! longer the table's own row makes PostgreSQL project every row it scans,
//! which more than doubles the cost of a top-N over an unindexed column.
//! So a merge also carries a *lean* variant ([`LeanMerge`]) that reads the
//! keys the select list already returns from the result itself (`ORDER BY
//! name` with `SELECT *`, `ORDER BY 2`, an expression that is a select
//! item) and appends only the others. The executor uses it when the keys
//! turn out comparable in the formats the client asked for, and falls back
//! to the canonical variant otherwise.

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

/// Where a lean merge reads one sort key in each row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyColumn {
    /// The result column at this 0-based position (`ORDER BY 2`, or an
    /// expression that is a select item with no `*` before it).
    Output(usize),
    /// The first result column with this name: PostgreSQL resolves a bare
    /// `ORDER BY name` to an output column of that name first (the select
    /// list has one: an alias, a column, or `*`).
    Named(String),
    /// This hidden column (0-based, among the appended ones).
    Hidden(usize),
}

/// A merge that reads its sort keys from the result's own columns where
/// the select list returns them, and appends hidden columns only for the
/// others (see the module header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeanMerge {
    /// The SQL each shard runs (hidden columns only for keys the result
    /// lacks, LIMIT pushed).
    pub sql: String,
    /// Where each sort key is, in the order of the keys.
    pub columns: Vec<KeyColumn>,
}

impl LeanMerge {
    /// How many hidden columns the lean SQL appends.
    pub fn hidden(&self) -> usize {
        self.columns
            .iter()
            .filter(|c| matches!(c, KeyColumn::Hidden(_)))
            .count()
    }
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
    /// FETCH FIRST ... WITH TIES: after `limit` rows, also those that sort
    /// equal to the last (each shard sends its own ties too).
    pub with_ties: bool,
    /// The bind parameter that gives the limit (`LIMIT $n`), if one does:
    /// read at Bind ([`MergeSpec::bind`]).
    pub limit_param: Option<usize>,
    /// The bind parameter that gives the offset, if one does.
    pub offset_param: Option<usize>,
    /// The same merge reading keys from the result where it can, when at
    /// least one key is there.
    pub lean: Option<LeanMerge>,
}

impl MergeSpec {
    /// The read plan on `shards`: `Project(Limit?(MergeSort(Scatter)))`,
    /// or `Limit(Concat(Scatter))` without sort keys (see
    /// [`crate::plan::Node`]); `per_shard` is each shard's own SQL when the
    /// key list was split (made from the canonical SQL: no lean variant
    /// then).
    pub fn tree(
        &self,
        shards: Vec<ShardId>,
        per_shard: Option<std::collections::BTreeMap<ShardId, String>>,
    ) -> crate::plan::Node {
        use crate::plan::Node;
        let per_shard_split = per_shard.is_some();
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
                lean: if per_shard_split {
                    None
                } else {
                    self.lean.clone().map(Box::new)
                },
                input: scatter,
            }
        };
        if self.limit.is_some() || self.offset > 0 {
            node = Node::Limit {
                limit: self.limit,
                offset: self.offset,
                with_ties: self.with_ties,
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
    /// The merge with a limit or offset given by bind parameters read from
    /// `params` (itself when neither is). A NULL limit is none, a NULL
    /// offset 0; negative ones are PostgreSQL's errors.
    ///
    /// # Errors
    /// A missing, negative or non-integer value.
    pub fn bind(
        &self,
        params: &crate::Params<'_>,
    ) -> Result<std::borrow::Cow<'_, MergeSpec>, crate::SqlError> {
        if self.limit_param.is_none() && self.offset_param.is_none() {
            return Ok(std::borrow::Cow::Borrowed(self));
        }
        let value =
            |n: usize, what: &str, code: &'static str| -> Result<Option<u64>, crate::SqlError> {
                let v = crate::plan::param_i64(params, n)?;
                match v {
                    Some(v) if v < 0 => Err(crate::SqlError::State(
                        code,
                        format!("{what} must not be negative"),
                    )),
                    v => Ok(v.map(|v| v as u64)),
                }
            };
        let mut spec = self.clone();
        if let Some(n) = self.limit_param {
            spec.limit = value(n, "LIMIT", "2201W")?;
        }
        if let Some(n) = self.offset_param {
            spec.offset = value(n, "OFFSET", "2201X")?.unwrap_or(0);
        }
        spec.limit_param = None;
        spec.offset_param = None;
        Ok(std::borrow::Cow::Owned(spec))
    }

    /// The same merge done by one shard instead of the router: a final
    /// query over the shards' rows (`sg_partial`, as in
    /// [`crate::AggSpec`]), for sort keys the router cannot compare (text
    /// under a linguistic collation, which the rows' columns carry).
    /// `names` are the visible columns' names as the shards describe them.
    pub fn final_sort(&self, names: &[String]) -> crate::AggSpec {
        final_sort(&self.keys, self.limit, self.offset, self.with_ties, names)
    }
}

/// [`MergeSpec::final_sort`] of a merge by `keys` with `limit` and
/// `offset` (and `with_ties`).
pub fn final_sort(
    keys: &[SortKey],
    limit: Option<u64>,
    offset: u64,
    with_ties: bool,
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
    match limit {
        Some(l) if with_ties => {
            fin.push_str(&format!(
                " OFFSET {offset} ROWS FETCH FIRST {l} ROWS WITH TIES"
            ));
        }
        _ => {
            if let Some(l) = limit {
                fin.push_str(&format!(" LIMIT {l}"));
            }
            if offset > 0 {
                fin.push_str(&format!(" OFFSET {offset}"));
            }
        }
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
        alias_groups: Vec::new(),
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
    let bare = if q.order_by.is_none() && q.limit_clause.is_none() && q.fetch.is_none() {
        q
    } else {
        let mut b = q.clone();
        b.order_by = None;
        b.limit_clause = None;
        b.fetch = None;
        stripped = b;
        &stripped
    };
    if let Some(why) = nested(bare) {
        return Err(why);
    }
    if q.order_by.is_none() && q.limit_clause.is_none() && q.fetch.is_none() {
        return Ok(None);
    }
    if q.locks.iter().any(|l| l.nonblock.is_some())
        && (q.limit_clause.is_some() || q.fetch.is_some())
    {
        // Each shard locks its own first rows, more than the merge
        // returns: a job queue's `LIMIT 1 FOR UPDATE SKIP LOCKED` would
        // lock one row per shard and hide the others from the next
        // worker, a NOWAIT would fail on rows PostgreSQL never locked.
        // Waiting locks only wait longer (Django's
        // `select_for_update().get()`: `LIMIT 21 FOR UPDATE`).
        return Err("FOR UPDATE/SHARE SKIP LOCKED or NOWAIT with LIMIT or OFFSET".into());
    }
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return Err("ORDER BY over a set operation".into());
    };
    // The first `*` or `t.*`: positions at or after it are not item
    // indexes.
    let wildcard_at = sel.projection.iter().position(|i| {
        matches!(
            i,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    });
    let mut hidden: Vec<Expr> = Vec::new();
    let mut keys = Vec::new();
    // Where the lean variant finds each key (`None`: a hidden column).
    let mut found: Vec<Option<KeyColumn>> = Vec::new();
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
            let e = if let Some(n) = number(&o.expr) {
                let at = n.checked_sub(1).and_then(|i| usize::try_from(i).ok());
                let item = at.and_then(|i| sel.projection.get(i));
                match (at, item.and_then(item_expr)) {
                    // An output column counted past a `*`: which one it
                    // is depends on the table's columns.
                    (Some(i), _) if wildcard_at.is_some_and(|w| w <= i) => {
                        return Err("ORDER BY a position of * or of a column after it".into());
                    }
                    (Some(i), Some(e)) => {
                        found.push(Some(KeyColumn::Output(i)));
                        e
                    }
                    // Out of range with no * to expand: every shard
                    // rejects it with PostgreSQL's own error.
                    _ => return Ok(None),
                }
            } else if let Expr::Identifier(id) = &o.expr {
                // PostgreSQL resolves a bare name to an output column of
                // that name first: an alias, or the name an unaliased item
                // gets (`qty::text` is "qty"), before a table's column.
                let name = crate::analyze::ident_name(id);
                let item = sel.projection.iter().enumerate().find_map(|(i, item)| {
                    let e = item_expr(item)?;
                    let named = match item {
                        SelectItem::ExprWithAlias { alias, .. } => {
                            crate::analyze::ident_name(alias) == name
                        }
                        _ => crate::aggregate::output_name(&e) == name,
                    };
                    named.then_some((i, e))
                });
                match item {
                    // (Should * return another column of that name, the
                    // shards reject the ORDER BY as ambiguous, as one
                    // PostgreSQL does: they run it as written.)
                    Some((i, e)) => {
                        found.push(Some(if wildcard_at.is_none_or(|w| w > i) {
                            KeyColumn::Output(i)
                        } else {
                            KeyColumn::Named(name.clone())
                        }));
                        e
                    }
                    // No item has the name: a table's column, which a
                    // plain * returns.
                    None => {
                        found.push(
                            sel.projection
                                .iter()
                                .any(plain_wildcard)
                                .then(|| KeyColumn::Named(name.clone())),
                        );
                        o.expr.clone()
                    }
                }
            } else {
                // PostgreSQL sorts by a select item equal to the
                // expression: the same value.
                found.push(
                    sel.projection[..wildcard_at.unwrap_or(sel.projection.len())]
                        .iter()
                        .position(|i| item_expr(i).as_ref() == Some(&o.expr))
                        .map(KeyColumn::Output),
                );
                o.expr.clone()
            };
            hidden.push(e);
        }
    }
    // LIMIT n or FETCH FIRST n ROWS ONLY (the same), and OFFSET.
    let (limit, offset) = match &q.limit_clause {
        None => (None, None),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err("LIMIT BY".into());
            }
            (limit.as_ref(), offset.as_ref().map(|o| &o.value))
        }
        Some(LimitClause::OffsetCommaLimit { .. }) => return Err("LIMIT offset, count".into()),
    };
    let non_constant = "LIMIT with a value other than a constant or a parameter";
    let limit = match (&q.fetch, limit) {
        (None, None) => Count::Const(None),
        (None, Some(e)) => count(e).ok_or(non_constant)?,
        (Some(_), Some(_)) => return Err("both LIMIT and FETCH FIRST".into()),
        // WITH TIES without ORDER BY: every shard answers PostgreSQL's error.
        (Some(f), None) if f.with_ties && keys.is_empty() => return Ok(None),
        (Some(f), None) if f.percent => return Err("FETCH FIRST ... PERCENT".into()),
        // (FETCH FIRST ROW ONLY: one row.)
        (Some(f), None) => match &f.quantity {
            None => Count::Const(Some(1)),
            Some(e) => count(e).ok_or(non_constant)?,
        },
    };
    let offset = match offset {
        None => Count::Const(Some(0)),
        Some(e) => count(e).ok_or("OFFSET with a value other than a constant or a parameter")?,
    };
    // Past bigint: every shard rejects it with PostgreSQL's own error.
    let too_big = |c: &Count| matches!(c, Count::Const(Some(n)) if *n > i64::MAX as u64);
    if too_big(&limit) || too_big(&offset) {
        return Ok(None);
    }
    // The shards' LIMIT: limit + offset, written with the parameters where
    // the values are parameters (bound by the client's Bind on every
    // shard); a NULL limit is none, a NULL offset is 0, as in PostgreSQL.
    let shard_limit: Option<Expr> = match (&limit, &offset) {
        (Count::Const(None), _) => None,
        (Count::Const(Some(l)), Count::Const(o)) => Some(Expr::Value(
            // (A bigint, as PostgreSQL's LIMIT: capped there.)
            Value::Number(
                l.saturating_add(o.unwrap_or(0))
                    .min(i64::MAX as u64)
                    .to_string(),
                false,
            )
            .into(),
        )),
        (l, o) => {
            let l = match l {
                Count::Param(_, e) => format!("{e}::bigint"),
                Count::Const(v) => v.unwrap_or(0).to_string(),
            };
            let o = match o {
                Count::Param(_, e) => format!("coalesce({e}::bigint, 0)"),
                Count::Const(v) => v.unwrap_or(0).to_string(),
            };
            Some(
                sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
                    // In numeric, capped at bigint's largest (PostgreSQL
                    // takes `LIMIT <max> OFFSET 5`; the bigint sum would
                    // overflow).
                    .try_with_sql(&format!(
                        "LEAST(({l})::numeric + {o}, {})::bigint",
                        i64::MAX
                    ))
                    .and_then(|mut p| p.parse_expr())
                    .map_err(|e| e.to_string())?,
            )
        }
    };
    let param = |c: &Count| match c {
        Count::Param(n, _) => Some(*n),
        Count::Const(_) => None,
    };
    let (limit_param, offset_param) = (param(&limit), param(&offset));
    let limit = match limit {
        Count::Const(v) => v,
        Count::Param(..) => None,
    };
    let offset = match offset {
        Count::Const(v) => v.unwrap_or(0),
        Count::Param(..) => 0,
    };
    let mut base = q.clone();
    // Spell out where NULLs go: every shard must sort them as PostgreSQL
    // does (an embedded SQLite shard would put them first).
    if let Some(ob) = base.order_by.as_mut()
        && let OrderByKind::Expressions(list) = &mut ob.kind
    {
        for (o, k) in list.iter_mut().zip(&keys) {
            o.options.nulls_first = Some(k.nulls_first);
        }
    }
    // WITH TIES on the shards too (a shard's ties may be the merge's):
    // each sends its first limit + offset rows and the rows tied with the
    // last of them, so every row tied with the merge's last one comes.
    let with_ties = q.fetch.as_ref().is_some_and(|f| f.with_ties) && shard_limit.is_some();
    base.fetch = None;
    base.limit_clause = None;
    match shard_limit {
        Some(l) if with_ties => {
            base.fetch = Some(sqlparser::ast::Fetch {
                with_ties: true,
                percent: false,
                // Parenthesised: FETCH takes a plain value or `( expr )`.
                quantity: Some(Expr::Nested(Box::new(l))),
            });
        }
        Some(l) => {
            base.limit_clause = Some(LimitClause::LimitOffset {
                limit: Some(l),
                offset: None,
                limit_by: Vec::new(),
            });
        }
        None => {}
    }
    // The lean variant, when at least one key is in the result: hidden
    // columns for the others only.
    let lean = found.iter().any(Option::is_some).then(|| {
        let mut lean_q = base.clone();
        let mut columns = Vec::with_capacity(found.len());
        let mut appended = Vec::new();
        for (f, e) in found.iter().zip(&hidden) {
            columns.push(match f {
                Some(c) => c.clone(),
                None => {
                    appended.push(e.clone());
                    KeyColumn::Hidden(appended.len() - 1)
                }
            });
        }
        append_hidden(&mut lean_q, appended);
        LeanMerge {
            sql: lean_q.to_string(),
            columns,
        }
    });
    append_hidden(&mut base, hidden);
    Ok(Some(MergeSpec {
        sql: base.to_string(),
        keys,
        limit,
        offset,
        with_ties,
        limit_param,
        offset_param,
        lean,
    }))
}

/// A LIMIT or OFFSET count as written.
enum Count {
    /// A constant (`None`: NULL, which means no limit, or offset 0).
    Const(Option<u64>),
    /// Bind parameter `$n` (bare, or cast to an integer type), and the
    /// expression as written (its cast decides the parameter's type).
    Param(usize, String),
}

fn count(e: &Expr) -> Option<Count> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Null => Some(Count::Const(None)),
            Value::Number(n, _) => n.parse().ok().map(|n| Count::Const(Some(n))),
            Value::Placeholder(p) => p
                .strip_prefix('$')?
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .map(|n| Count::Param(n, e.to_string())),
            _ => None,
        },
        Expr::Nested(e) => count(e),
        Expr::Cast {
            expr,
            data_type:
                sqlparser::ast::DataType::Int(_)
                | sqlparser::ast::DataType::Integer(_)
                | sqlparser::ast::DataType::BigInt(_)
                | sqlparser::ast::DataType::Int8(_)
                | sqlparser::ast::DataType::Int4(_)
                | sqlparser::ast::DataType::SmallInt(_)
                | sqlparser::ast::DataType::Int2(_),
            ..
        } => match expr.as_ref() {
            // A parameter written in as text (`'5'::integer`).
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(t) | Value::EscapedStringLiteral(t) => {
                    t.trim().parse().ok().map(|n| Count::Const(Some(n)))
                }
                _ => match count(expr)? {
                    Count::Param(n, _) => Some(Count::Param(n, e.to_string())),
                    c @ Count::Const(_) => Some(c),
                },
            },
            _ => match count(expr)? {
                Count::Param(n, _) => Some(Count::Param(n, e.to_string())),
                c @ Count::Const(_) => Some(c),
            },
        },
        _ => None,
    }
}

/// Appends `exprs` to the select list of `q` as `sg_sort_1`, `sg_sort_2`,
/// ...
fn append_hidden(q: &mut Query, exprs: Vec<Expr>) {
    if let SetExpr::Select(s) = q.body.as_mut() {
        for (i, e) in exprs.into_iter().enumerate() {
            s.projection.push(SelectItem::ExprWithAlias {
                expr: e,
                alias: Ident::new(format!("sg_sort_{}", i + 1)),
            });
        }
    }
}

/// A select item's expression (not a wildcard).
fn item_expr(i: &SelectItem) -> Option<Expr> {
    match i {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e.clone()),
        _ => None,
    }
}

/// Is select item `i` a plain `*`? It returns every column of the FROM
/// list, so a bare `ORDER BY name` of one of them finds it in the result.
fn plain_wildcard(i: &SelectItem) -> bool {
    matches!(i, SelectItem::Wildcard(w)
        if w.opt_ilike.is_none()
            && w.opt_exclude.is_none()
            && w.opt_except.is_none()
            && w.opt_replace.is_none()
            && w.opt_rename.is_none()
            && w.opt_alias.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge_of(sql: &str) -> MergeSpec {
        let stmts =
            sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                .unwrap();
        let sqlparser::ast::Statement::Query(q) = &stmts[0] else {
            panic!("not a query")
        };
        plan_merge(q, |_| None).unwrap().unwrap()
    }

    #[test]
    fn limit_and_offset_parameters_reach_the_shards_added_and_are_read_at_bind() {
        let m = merge_of("SELECT id FROM t WHERE a = $3 ORDER BY id LIMIT $1 OFFSET $2");
        assert!(
            m.sql
                .ends_with("LIMIT LEAST(($1::BIGINT)::NUMERIC + coalesce($2::BIGINT, 0), 9223372036854775807)::BIGINT"),
            "{}",
            m.sql
        );
        assert_eq!((m.limit_param, m.offset_param), (Some(1), Some(2)));
        let params = |v: Vec<Option<&'static [u8]>>| crate::Params {
            binary: vec![false; v.len()],
            types: vec![0; v.len()],
            values: v,
        };
        let b = m
            .bind(&params(vec![Some(b"5"), Some(b" 2"), Some(b"x")]))
            .unwrap();
        assert_eq!((b.limit, b.offset), (Some(5), 2));
        let b = m.bind(&params(vec![None, None, None])).unwrap();
        assert_eq!((b.limit, b.offset), (None, 0));
        let e = m.bind(&params(vec![Some(b"-1"), None, None])).unwrap_err();
        assert_eq!(e.sqlstate(), "2201W");
        let e = m
            .bind(&params(vec![Some(b"1"), Some(b"-3"), None]))
            .unwrap_err();
        assert_eq!(e.sqlstate(), "2201X");
        let e = m.bind(&params(vec![Some(b"1.5"), None, None])).unwrap_err();
        assert_eq!(e.sqlstate(), "22P02");
        // FETCH FIRST is a LIMIT; a constant offset is added.
        let m = merge_of("SELECT id FROM t ORDER BY id OFFSET 4 ROWS FETCH FIRST $1 ROWS ONLY");
        assert!(
            m.sql
                .ends_with("LIMIT LEAST(($1::BIGINT)::NUMERIC + 4, 9223372036854775807)::BIGINT"),
            "{}",
            m.sql
        );
        let m = merge_of("SELECT id FROM t ORDER BY id FETCH FIRST ROW ONLY");
        assert_eq!((m.limit, m.limit_param), (Some(1), None));
        assert!(m.sql.ends_with("LIMIT 1"), "{}", m.sql);
    }

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
            with_ties: false,
            limit_param: None,
            offset_param: None,
            lean: None,
        };
        let agg = spec.final_sort(&["na\"me".to_string(), "id".to_string()]);
        assert_eq!(agg.columns, 4);
        assert!(agg.raw);
        assert_eq!(
            agg.final_pg,
            "SELECT sg_c1 AS \"na\"\"me\", sg_c2 AS \"id\" FROM sg_partial ORDER BY sg_c3 DESC NULLS LAST, sg_c4 ASC NULLS FIRST LIMIT 5 OFFSET 2"
        );
        let ties = MergeSpec {
            with_ties: true,
            ..spec
        };
        assert!(
            ties.final_sort(&["a".to_string(), "b".to_string()])
                .final_pg
                .ends_with(" OFFSET 2 ROWS FETCH FIRST 5 ROWS WITH TIES"),
        );
    }
}
