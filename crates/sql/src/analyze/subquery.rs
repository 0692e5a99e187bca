//! Uncorrelated subqueries over sharded tables, run first.
//!
//! A SELECT whose select list, WHERE or HAVING (an UPDATE's or DELETE's
//! WHERE) holds a subquery over sharded tables that cannot run next to the
//! outer query on each shard (`WHERE amount > (SELECT avg(amount) FROM
//! orders)`, `WHERE id IN (SELECT customer_id FROM orders WHERE ...)`) is
//! refused as it stands. When the subquery does not refer to the outer
//! query, its value does not depend on the outer row: the router runs it on
//! its own first (as any statement, merged or aggregated across shards) and
//! writes its result into the outer statement's syntax tree as literals (a
//! scalar, an `IN (...)` list, `true`/`false`), which is then planned like
//! any statement; an `IN` list of shard keys then reaches only the shards
//! that own them. This is how Citus plans such subqueries ("recursive
//! planning").
//!
//! Correlation is found by running the subquery alone: a reference to the
//! outer query fails there, and the statement is refused as before.
//! Columns resolve to the innermost query that has them, so a subquery that
//! runs alone means the same inside. Forms whose meaning a literal would
//! change are not taken: `ANY`/`ALL (subquery)` and row comparisons.
//!
//! A subquery in FROM that needs the router (`FROM (SELECT ... FROM
//! customers ORDER BY id LIMIT 10) AS c LEFT JOIN orders o ON o.customer_id
//! = c.id`: an ORM's eager load of a page) runs first too, as does the
//! first CTE over sharded tables of a statement refused with it, and each
//! branch over sharded tables of a set operation the merge does not do.
//! Its rows then stand in for it as a table of the router's: placed by the
//! column joined to a sharded table's key under that table's rule
//! (co-located with the joined table; the column of the key's type), or
//! else whole on every shard (a reference table). The statement is planned
//! with that table in its place, and each shard gets its rows as a CTE of
//! that name in front of what it runs ([`derived_cte`],
//! `Plan::with_shard_cte` in [`crate::standin`]).

use super::*;
use shardgate_core::ShardId;
use sqlparser::ast::{DataType, VisitMut, VisitorMut};
use std::collections::BTreeMap;

/// What the outer statement needs of one subquery's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubKind {
    /// `(SELECT ...)`: one value (NULL for no row; more rows are an error).
    Scalar,
    /// `expr [NOT] IN (SELECT ...)`: the list of values.
    In,
    /// `[NOT] EXISTS (SELECT ...)`: whether it has a row.
    Exists,
    /// `INSERT ... SELECT ...`: the rows, which become a VALUES list.
    Rows {
        /// Columns the SELECT writes as a bare string or NULL: PostgreSQL
        /// converts those to the target column's type, so they go into
        /// the VALUES list untyped.
        untyped: Vec<bool>,
    },
    /// A subquery in FROM: its rows, which stand in for it on each shard
    /// (see the module header).
    Derived {
        /// The name of the table standing for the rows (a marker, or the
        /// CTE's own name).
        name: String,
        /// The CTE's column names, renaming the first columns of its
        /// query's (none: the query's own).
        columns: Vec<String>,
        /// The sharded table whose rule places the rows and the subquery's
        /// column joined to that table's key; `None`: every shard gets
        /// all the rows (a reference table).
        placed: Option<(String, String)>,
    },
}

/// One subquery to run first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sub {
    /// The subquery's own statement.
    pub sql: String,
    /// How its result goes into the outer statement.
    pub kind: SubKind,
}

/// A subquery's result, to write into the outer statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filled {
    /// Values of one SQL type (a scalar's: none or one).
    Values {
        /// The type, as SQL.
        ty: String,
        /// The values as text (`None`: NULL).
        values: Vec<Option<String>>,
    },
    /// Whether an EXISTS subquery has a row.
    Exists(bool),
    /// A FROM subquery's rows (see [`SubKind::Derived`]).
    Derived {
        /// The column names.
        columns: Vec<String>,
        /// Each column's type, as SQL.
        types: Vec<String>,
        /// The rows, values as text (`None`: NULL).
        rows: Vec<Vec<Option<String>>>,
    },
    /// An INSERT's rows.
    Rows {
        /// Each column's type, as SQL.
        types: Vec<String>,
        /// Columns written untyped (see [`SubKind::Rows`]).
        untyped: Vec<bool>,
        /// The rows, values as text (`None`: NULL).
        rows: Vec<Vec<Option<String>>>,
    },
}

/// The prefix of the identifiers standing for the subqueries' results in
/// the outer statement (followed by the subquery's number, from 1).
pub const MARKER: &str = "sg_subquery_result_";

/// The subqueries that read sharded tables in a SELECT's select list,
/// WHERE and HAVING, or an UPDATE's or DELETE's WHERE, and the statement
/// with markers in their place; `None` when there are none, or when the
/// statement has a form whose meaning a literal would change.
pub(crate) fn pre_evaluate(
    stmt: &Statement,
    sql: &str,
    topo: &Topology,
) -> Option<(Vec<Sub>, Statement)> {
    if sql.contains(MARKER) || names_marker(stmt) {
        return None;
    }
    let mut outer = stmt.clone();
    let mut exprs: Vec<&mut Expr> = Vec::new();
    match &mut outer {
        Statement::Query(q) => {
            if q.with.is_some() {
                // Its first CTE over sharded tables, run first; with none,
                // a table joined off the key.
                return first_sharded_cte(stmt, topo)
                    .map(|(sub, outer)| (vec![sub], outer))
                    .or_else(|| super::crossjoin::table_run_first(stmt, topo));
            }
            if matches!(q.body.as_ref(), SetExpr::SetOperation { .. }) {
                // Its branches over sharded tables, run first.
                return set_operation_branches(stmt, topo);
            }
            let SetExpr::Select(os) = q.body.as_mut() else {
                return None;
            };
            for item in &mut os.projection {
                // PostgreSQL names a scalar subquery's column after the
                // subquery's own, an EXISTS "exists": a literal would not.
                if let ast::SelectItem::UnnamedExpr(e) = item
                    && let Some(name) = subquery_name(e)
                {
                    *item = ast::SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::with_quote('"', name),
                    };
                }
            }
            for item in &mut os.projection {
                if let ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } = item
                {
                    exprs.push(e);
                }
            }
            exprs.extend(os.selection.as_mut());
            exprs.extend(os.having.as_mut());
        }
        Statement::Update(u) if u.from.is_none() && u.returning.is_none() => {
            exprs.extend(u.selection.as_mut());
        }
        Statement::Delete(d) if d.using.is_none() && d.returning.is_none() => {
            exprs.extend(d.selection.as_mut());
        }
        // UPDATE ... FROM / DELETE ... USING a sharded table joined off
        // the key, or with RETURNING: a table first.
        Statement::Update(_) | Statement::Delete(_) => {
            return super::crossjoin::table_run_first(stmt, topo);
        }
        // INSERT ... SELECT: the rows are read first, then inserted as a
        // VALUES list (split by key like any).
        Statement::Insert(ins)
            if ins
                .source
                .as_ref()
                .is_some_and(|q| !matches!(q.body.as_ref(), SetExpr::Values(_))) =>
        {
            let src = ins.source.as_ref()?;
            // What the SELECT writes runs apart from the INSERT: only
            // reads.
            if contains_dml(src) {
                return None;
            }
            let untyped = match src.body.as_ref() {
                SetExpr::Select(sel) => sel
                    .projection
                    .iter()
                    .map(|i| match i {
                        ast::SelectItem::UnnamedExpr(e)
                        | ast::SelectItem::ExprWithAlias { expr: e, .. } => matches!(
                            e,
                            Expr::Value(v) if matches!(
                                v.value,
                                Value::SingleQuotedString(_)
                                    | Value::EscapedStringLiteral(_)
                                    | Value::Null
                            )
                        ),
                        _ => false,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let sql = src.to_string();
            ins.source = Some(values_marker(1)?);
            return Some((
                vec![Sub {
                    sql,
                    kind: SubKind::Rows { untyped },
                }],
                outer,
            ));
        }
        _ => return None,
    }
    if exprs.iter().any(|e| changed_by_literal(e)) {
        // A table of the subquery (or of the statement) may run first
        // instead: its rows change no expression.
        return super::crossjoin::table_run_first(stmt, topo);
    }
    if exprs.iter().any(|e| has_dml(e)) {
        return None;
    }
    let mut r = Replacer {
        topo,
        subs: Vec::new(),
    };
    for e in exprs {
        let _ = VisitMut::visit(e, &mut r);
    }
    if r.subs.is_empty() && matches!(stmt, Statement::Update(_) | Statement::Delete(_)) {
        // Only subqueries that refer to the target's rows: a table of
        // theirs first.
        return super::crossjoin::table_run_first(stmt, topo);
    }
    if r.subs.is_empty() {
        // No subquery in its expressions: a subquery in FROM, run first.
        // (After the others are written in, the statement may still need
        // it: it is analyzed again then.)
        let mut outer = stmt.clone();
        let Statement::Query(q) = &mut outer else {
            return None;
        };
        let SetExpr::Select(os) = q.body.as_mut() else {
            return None;
        };
        return match derived(os, topo) {
            Some(sub) => Some((vec![sub], outer)),
            // Sharded tables joined off their keys: one of them first.
            None => super::crossjoin::table_run_first(stmt, topo),
        };
    }
    Some((r.subs, outer))
}

/// Does the statement name an identifier like a marker (however written)?
fn names_marker(stmt: &Statement) -> bool {
    crate::find::any_expr(stmt, |e| match e {
        Expr::Identifier(i) => i.value.starts_with(MARKER),
        Expr::CompoundIdentifier(v) => v.iter().any(|i| i.value.starts_with(MARKER)),
        _ => false,
    })
}

/// The name of the table standing for the `n`th subquery's rows.
pub fn marker_table(n: usize) -> String {
    format!("{MARKER}{n}")
}

/// A FROM subquery over sharded tables in a SELECT whose FROM is one
/// item of joins (no LATERAL, the only such subquery; column aliases
/// rename the stand-in's first columns):
/// the subquery to run first, placed by the first join ON an equality of
/// one of its columns and the key of a table sharded by one column (else
/// a reference table), and the FROM item replaced by the marker table of
/// the subquery's number (1: the first to run) under the subquery's alias.
fn derived(s: &mut ast::Select, topo: &Topology) -> Option<Sub> {
    let [twj] = s.from.as_mut_slice() else {
        return None;
    };
    let over_sharded = |f: &TableFactor| match f {
        TableFactor::Derived { subquery, .. } => !classes(&relations(subquery.as_ref()), topo)
            .sharded
            .is_empty(),
        _ => false,
    };
    let factors: Vec<&TableFactor> = std::iter::once(&twj.relation)
        .chain(twj.joins.iter().map(|j| &j.relation))
        .collect();
    let [at] = factors
        .iter()
        .enumerate()
        .filter(|(_, f)| over_sharded(f))
        .map(|(i, _)| i)
        .collect::<Vec<_>>()[..]
    else {
        return None;
    };
    let TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(alias),
        ..
    } = factors[at]
    else {
        return None;
    };
    if alias.columns.iter().any(|c| c.data_type.is_some()) || contains_dml(subquery) {
        return None;
    }
    let found = keyed_join(twj, &ident_name(&alias.name), topo);
    let sql = subquery.to_string();
    // `AS u (x0, x1)`: the stand-in's first columns under those names.
    let columns: Vec<String> = alias.columns.iter().map(|c| ident_name(&c.name)).collect();
    let mut alias = alias.clone();
    alias.columns.clear();
    let stand_in = sqlparser::parser::Parser::parse_sql(
        &PostgreSqlDialect {},
        &format!("SELECT * FROM {} AS x", marker_table(1)),
    )
    .ok()?
    .pop()?;
    let Statement::Query(q) = stand_in else {
        return None;
    };
    let SetExpr::Select(sel) = *q.body else {
        return None;
    };
    let mut relation = sel.from.into_iter().next()?.relation;
    if let TableFactor::Table { alias: slot, .. } = &mut relation {
        *slot = Some(alias);
    }
    match at {
        0 => twj.relation = relation,
        i => twj.joins[i - 1].relation = relation,
    }
    Some(Sub {
        sql,
        kind: SubKind::Derived {
            name: marker_table(1),
            columns,
            placed: found,
        },
    })
}

/// The first join in `twj` ON an equality of a column of the FROM item
/// qualified `a` and the key of a table sharded by one column: that
/// table and the column.
fn keyed_join(twj: &TableWithJoins, a: &str, topo: &Topology) -> Option<(String, String)> {
    let factors: Vec<&TableFactor> = std::iter::once(&twj.relation)
        .chain(twj.joins.iter().map(|j| &j.relation))
        .collect();
    // The sharded tables next to it, by qualifier.
    let sharded: Vec<(String, Arc<TableRule>)> = factors
        .iter()
        .filter_map(|f| match f {
            TableFactor::Table {
                name, args: None, ..
            } => match classify(name, topo) {
                Class::Sharded(rule) => Some((factor_qual(f)?, rule)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let mut found = None;
    for j in &twj.joins {
        let Some(on) = join_constraint(&j.join_operator) else {
            continue;
        };
        for (l, r) in column_equalities(on) {
            for (x, y) in [(&l, &r), (&r, &l)] {
                let keyed = sharded
                    .iter()
                    .find(|(q, rule)| *q == y.0 && rule.key_columns() == [y.1.clone()]);
                if x.0 == *a
                    && found.is_none()
                    && let Some((_, rule)) = keyed
                {
                    found = Some((rule.table.clone(), x.1.clone()));
                }
            }
        }
    }
    found
}

/// A set operation whose branches read sharded tables (INTERSECT ALL,
/// EXCEPT ALL, chains, branches with `*` or their own ORDER BY/LIMIT):
/// each such branch runs first, its rows a reference table of the router's
/// (`SELECT * FROM` it in the branch's place), and the set operation runs
/// on one shard. Not taken: a branch whose select list has a bare string
/// or NULL (PostgreSQL types it from the other branches).
fn set_operation_branches(stmt: &Statement, topo: &Topology) -> Option<(Vec<Sub>, Statement)> {
    fn leaves<'a>(e: &'a mut SetExpr, out: &mut Vec<&'a mut SetExpr>) {
        let nested = matches!(e, SetExpr::Query(q) if q.with.is_none()
            && q.order_by.is_none()
            && q.limit_clause.is_none()
            && q.fetch.is_none()
            && matches!(q.body.as_ref(), SetExpr::SetOperation { .. }));
        if nested || matches!(e, SetExpr::SetOperation { .. }) {
            match e {
                SetExpr::SetOperation { left, right, .. } => {
                    leaves(left, out);
                    leaves(right, out);
                }
                SetExpr::Query(q) => leaves(&mut q.body, out),
                _ => {}
            }
            return;
        }
        out.push(e);
    }
    let untyped = |e: &SetExpr| {
        let SetExpr::Select(sel) = e else {
            return false;
        };
        sel.projection.iter().any(|i| match i {
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                matches!(
                    e,
                    Expr::Value(v) if matches!(
                        v.value,
                        Value::SingleQuotedString(_) | Value::EscapedStringLiteral(_) | Value::Null
                    )
                )
            }
            _ => false,
        })
    };
    let mut outer = stmt.clone();
    let Statement::Query(q) = &mut outer else {
        return None;
    };
    let mut list = Vec::new();
    leaves(q.body.as_mut(), &mut list);
    let mut subs = Vec::new();
    for leaf in list {
        let sharded = !classes(&relations(&*leaf), topo).sharded.is_empty();
        if !sharded {
            continue;
        }
        if untyped(leaf) || crate::find::any_query(&*leaf, contains_dml) {
            return None;
        }
        let sql = match &*leaf {
            SetExpr::Query(inner) => inner.to_string(),
            other => other.to_string(),
        };
        let name = marker_table(subs.len() + 1);
        let stand_in = sqlparser::parser::Parser::parse_sql(
            &PostgreSqlDialect {},
            &format!("SELECT * FROM {name}"),
        )
        .ok()?
        .pop()?;
        let Statement::Query(sq) = stand_in else {
            return None;
        };
        *leaf = *sq.body;
        subs.push(Sub {
            sql,
            kind: SubKind::Derived {
                name,
                columns: Vec::new(),
                placed: None,
            },
        });
    }
    (!subs.is_empty()).then_some((subs, outer))
}

/// The first CTE over sharded tables of a (non-recursive) WITH: the CTE to
/// run first (with the CTEs before it, which read no sharded table), and
/// the statement without it, where its name then stands for a reference
/// table of its rows.
fn first_sharded_cte(stmt: &Statement, topo: &Topology) -> Option<(Sub, Statement)> {
    let mut outer = stmt.clone();
    let Statement::Query(q) = &mut outer else {
        return None;
    };
    let with = q.with.as_mut()?;
    if with.recursive {
        return None;
    }
    let at = with.cte_tables.iter().position(|c| {
        !classes(&relations(c.query.as_ref()), topo)
            .sharded
            .is_empty()
    })?;
    let cte = &with.cte_tables[at];
    if contains_dml(&cte.query) || cte.from.is_some() {
        return None;
    }
    let sql = if at == 0 {
        cte.query.to_string()
    } else {
        let mut q = (*cte.query).clone();
        q.with = Some(ast::With {
            with_token: with.with_token.clone(),
            recursive: false,
            cte_tables: with.cte_tables[..at].to_vec(),
        });
        q.to_string()
    };
    let name = ident_name(&cte.alias.name);
    if topo.rule(&name).is_some() {
        // Named like a table of the rules: refused as it stands.
        return None;
    }
    let columns: Vec<String> = cte
        .alias
        .columns
        .iter()
        .map(|c| ident_name(&c.name))
        .collect();
    // Placed by a join of the statement's FROM on a sharded key, if any.
    let placed = match q.body.as_ref() {
        SetExpr::Select(sel) => match sel.from.as_slice() {
            [twj] => std::iter::once(&twj.relation)
                .chain(twj.joins.iter().map(|j| &j.relation))
                .find_map(|f| match f {
                    TableFactor::Table { name: n, .. }
                        if object_parts(n).as_slice() == [name.clone()] =>
                    {
                        factor_qual(f)
                    }
                    _ => None,
                })
                .and_then(|qual| keyed_join(twj, &qual, topo)),
            _ => None,
        },
        _ => None,
    };
    let with = q.with.as_mut()?;
    with.cte_tables.remove(at);
    if with.cte_tables.is_empty() {
        q.with = None;
    }
    Some((
        Sub {
            sql,
            kind: SubKind::Derived {
                name,
                columns,
                placed,
            },
        },
        outer,
    ))
}

/// The rule of a stand-in named `name` whose rows are placed by their
/// `column` under `rule` (a sharded table's rule with one key column), and
/// the key's type; `None` for a rule that is not sharded or whose key type
/// is not known.
pub(super) fn stand_in_rule(
    name: &str,
    rule: &TableRule,
    column: &str,
    all_columns: Vec<String>,
) -> Option<(TableRule, shardgate_core::KeyType)> {
    let TableKind::Sharded {
        strategy,
        key_types,
        overrides,
        ..
    } = &rule.kind
    else {
        return None;
    };
    let key_type = key_types.first().copied().flatten()?;
    Some((
        TableRule {
            table: name.to_string(),
            kind: TableKind::Sharded {
                columns: vec![column.to_string()],
                key_types: vec![Some(key_type)],
                strategy: strategy.clone(),
                overrides: overrides.clone(),
                all_columns,
            },
        },
        key_type,
    ))
}

/// For a FROM subquery or CTE run first (see [`SubKind::Derived`]): the
/// rule of the table `name` standing for its rows (`placed`: a rule and
/// the column it places them by; `None`: a reference table, every row on
/// every shard), and for each of `shards` the CTE giving that shard its
/// rows (`"name" (columns) AS (VALUES ...)`, for
/// [`crate::Plan::with_shard_cte`]). A row whose key is NULL (it joins
/// nothing) goes to the first shard.
///
/// # Errors
/// A key that does not read as the rule's key type, or that the rule
/// cannot place; a column name given twice; a type name that does not
/// parse.
pub fn derived_cte(
    name: &str,
    placed: Option<(&TableRule, &str)>,
    filled: &Filled,
    shards: &[ShardId],
) -> Result<(TableRule, BTreeMap<ShardId, String>), SqlError> {
    let Filled::Derived {
        columns,
        types,
        rows,
    } = filled
    else {
        return Err(SqlError::Invalid("not a FROM subquery's rows".into()));
    };
    let unsupported = |m: String| SqlError::Unsupported(m);
    if columns
        .iter()
        .enumerate()
        .any(|(i, c)| columns[..i].contains(c))
    {
        return Err(unsupported(
            "a subquery in FROM run before its statement must name its columns apart".into(),
        ));
    }
    let name = name.to_string();
    // Where the key is, its type, and the stand-in's rule.
    let mut key: Option<(usize, shardgate_core::KeyType, TableRule)> = None;
    if let Some((rule, column)) = placed {
        let Some(at) = columns.iter().position(|c| c == column) else {
            return Err(unsupported(format!(
                "the subquery in FROM has no column \"{column}\""
            )));
        };
        let Some((stand_in, key_type)) = stand_in_rule(&name, rule, column, columns.clone()) else {
            return Err(unsupported(format!(
                "the key type of {} is not known",
                rule.table
            )));
        };
        // Placed by its text only when the column is of the key's type (a
        // timestamptz or char(n) value would not hash as the key it
        // equals): else on every shard, as a reference table's.
        let same_type = types
            .get(at)
            .and_then(|t| shardgate_core::KeyType::from_sql_type(t))
            == Some(key_type);
        if same_type {
            key = Some((at, key_type, stand_in));
        }
    }
    let types: Vec<DataType> = types
        .iter()
        .map(|t| data_type(t))
        .collect::<Result<_, _>>()?;
    let mut per: BTreeMap<ShardId, Vec<String>> = shards.iter().map(|s| (*s, Vec::new())).collect();
    let first = *shards
        .first()
        .ok_or_else(|| SqlError::Invalid("no shards".into()))?;
    for r in rows {
        let values: Vec<String> = r
            .iter()
            .zip(&types)
            .map(|(v, ty)| literal(v.as_deref(), ty).to_string())
            .collect();
        let row = format!("({})", values.join(", "));
        let Some((at, key_type, stand_in)) = &key else {
            // A reference table's: every shard has every row.
            for rows in per.values_mut() {
                rows.push(row.clone());
            }
            continue;
        };
        let shard = match r.get(*at).cloned().flatten() {
            None => first,
            Some(k) => {
                let key_type = *key_type;
                let v = shardgate_core::KeyValue::parse(key_type, &k).map_err(|e| {
                    unsupported(format!(
                        "a key \"{k}\" of the subquery in FROM does not read as a {key_type} shard key: {e}"
                    ))
                })?;
                stand_in
                    .place(&[v])
                    .map_err(|e| unsupported(e.to_string()))?
            }
        };
        per.get_mut(&shard)
            .ok_or_else(|| unsupported(format!("shard {shard} is not one of the statement's")))?
            .push(row);
    }
    let quoted = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
    let head = format!(
        "{} ({})",
        quoted(&name),
        columns
            .iter()
            .map(|c| quoted(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let empty = format!(
        "SELECT {} WHERE false",
        types
            .iter()
            .map(|t| literal(None, t).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ctes = per
        .into_iter()
        .map(|(s, rows)| {
            let body = if rows.is_empty() {
                empty.clone()
            } else {
                format!("VALUES {}", rows.join(", "))
            };
            (s, format!("{head} AS ({body})"))
        })
        .collect();
    let rule = match key {
        Some((_, _, rule)) => rule,
        None => TableRule::reference(&name),
    };
    Ok((rule, ctes))
}

/// Does a subquery of `e` write (a data-modifying WITH)? It would run
/// apart from its statement.
fn has_dml(e: &Expr) -> bool {
    crate::find::any_query(e, contains_dml)
}

/// `VALUES (marker n)`, as an INSERT's source.
fn values_marker(n: usize) -> Option<Box<Query>> {
    let stmt = sqlparser::parser::Parser::parse_sql(
        &PostgreSqlDialect {},
        &format!("INSERT INTO t VALUES ({MARKER}{n})"),
    )
    .ok()?
    .pop()?;
    match stmt {
        Statement::Insert(i) => i.source,
        _ => None,
    }
}

/// The column name PostgreSQL gives a select item that is a scalar
/// subquery (its own column's) or an EXISTS.
fn subquery_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Exists { negated: false, .. } => Some("exists".into()),
        Expr::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(s) => match s.projection.as_slice() {
                [ast::SelectItem::ExprWithAlias { alias, .. }] => Some(ident_name(alias)),
                [ast::SelectItem::UnnamedExpr(e)] => Some(crate::aggregate::output_name(e)),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// Does `e` hold a subquery whose result as literals would mean something
/// else: `x op ANY/ALL (subquery)` but `= ANY` and `<> ALL` of a value (a
/// literal array would be compared element-wise), `x LIKE ANY (subquery)`,
/// a row compared with a subquery?
fn changed_by_literal(e: &Expr) -> bool {
    let row = |e: &Expr| matches!(e, Expr::Tuple(_));
    let sub = |e: &Expr| matches!(e, Expr::Subquery(_));
    crate::find::any_expr(e, |e| match e {
        // (`= ANY` and `<> ALL` of a subquery are IN and NOT IN.)
        Expr::AnyOp {
            left,
            right,
            compare_op,
            ..
        } => sub(right) && (*compare_op != ast::BinaryOperator::Eq || row(left)),
        Expr::AllOp {
            left,
            right,
            compare_op,
        } => sub(right) && (*compare_op != ast::BinaryOperator::NotEq || row(left)),
        Expr::InSubquery { expr, .. } => row(expr),
        // `x LIKE ANY (SELECT ...)` matches each row's pattern.
        Expr::Like {
            any: true, pattern, ..
        }
        | Expr::ILike {
            any: true, pattern, ..
        } => sub(pattern),
        Expr::BinaryOp { left, right, .. } => {
            (row(left) && sub(right)) || (sub(left) && row(right))
        }
        _ => false,
    })
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
        if kind == SubKind::Exists {
            // PostgreSQL ignores an EXISTS subquery's select list (and so
            // never fails on it) where that cannot change how many rows it
            // has: not where it aggregates (`EXISTS (SELECT max(x) ...)`
            // has one row even of none), or calls a function that might
            // (an aggregate, a window or set-returning function: kept
            // whenever there is a call, as PostgreSQL's
            // `simplify_EXISTS_query` keeps them). One row tells.
            if let SetExpr::Select(s) = q.body.as_mut()
                && s.distinct.is_none()
                && s.having.is_none()
                && matches!(&s.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
                && !s.projection.iter().any(|i| {
                    let mut call = false;
                    let _ = ast::visit_expressions(i, |e| {
                        if matches!(e, Expr::Function(_)) {
                            call = true;
                        }
                        ControlFlow::<()>::Continue(())
                    });
                    call
                })
            {
                s.projection = vec![ast::SelectItem::UnnamedExpr(Expr::Value(
                    Value::Number("1".into(), false).into(),
                ))];
            }
            if q.limit_clause.is_none() && q.fetch.is_none() {
                q.limit_clause = Some(ast::LimitClause::LimitOffset {
                    limit: Some(Expr::Value(Value::Number("1".into(), false).into())),
                    offset: None,
                    limit_by: Vec::new(),
                });
            }
        }
        self.subs.push(Sub {
            sql: q.to_string(),
            kind,
        });
        Expr::Identifier(Ident::new(format!("{MARKER}{}", self.subs.len())))
    }
}

/// Does `q` surely refer to an outer query: a column qualified by a name
/// that no FROM item or CTE inside `q` has? Such a subquery fails when it
/// runs alone; the subqueries inside it may still run first.
fn surely_correlated(q: &Query) -> bool {
    struct Names {
        own: HashSet<String>,
        qualifiers: HashSet<String>,
    }
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if let Some(w) = &q.with {
                self.own
                    .extend(w.cte_tables.iter().map(|c| ident_name(&c.alias.name)));
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
            match f {
                TableFactor::Table { name, alias, .. } => {
                    self.own
                        .extend(object_parts(name).pop().filter(|_| alias.is_none()));
                    self.own.extend(alias.iter().map(|a| ident_name(&a.name)));
                }
                TableFactor::Derived { alias, .. }
                | TableFactor::Function { alias, .. }
                | TableFactor::UNNEST { alias, .. }
                | TableFactor::TableFunction { alias, .. }
                | TableFactor::NestedJoin { alias, .. } => {
                    self.own.extend(alias.iter().map(|a| ident_name(&a.name)));
                }
                // Anything else might name columns in ways not followed
                // here: not sure.
                _ => {
                    self.own.insert(String::new());
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(p) = e
                && p.len() == 2
            {
                self.qualifiers.insert(ident_name(&p[0]));
            }
            ControlFlow::Continue(())
        }
    }
    let mut n = Names {
        own: HashSet::new(),
        qualifiers: HashSet::new(),
    };
    let _ = q.visit(&mut n);
    !n.own.contains("") && n.qualifiers.iter().any(|x| !n.own.contains(x))
}

impl VisitorMut for Replacer<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        // A subquery that refers to the outer query stays (the statement
        // may run it next to its outer rows on each shard); subqueries
        // inside it that do not may still run first.
        if let Expr::Subquery(q)
        | Expr::InSubquery { subquery: q, .. }
        | Expr::Exists { subquery: q, .. } = e
            && surely_correlated(q)
        {
            return ControlFlow::Continue(());
        }
        let any = matches!(e, Expr::AnyOp { .. });
        let new = match e {
            // `x = ANY (SELECT ...)` is `x IN (SELECT ...)`, `x <> ALL
            // (SELECT ...)` is `x NOT IN (SELECT ...)`, NULLs alike (one
            // that refers to the outer query stays). Other comparisons
            // with ANY/ALL of a subquery: see `changed_by_literal`.
            Expr::AnyOp {
                left,
                compare_op,
                right,
                ..
            }
            | Expr::AllOp {
                left,
                compare_op,
                right,
            } if matches!(right.as_ref(), Expr::Subquery(q) if self.sharded(q) && !surely_correlated(q)) =>
            {
                let Expr::Subquery(q) = right.as_ref() else {
                    return ControlFlow::Continue(());
                };
                let negated = match compare_op {
                    ast::BinaryOperator::Eq if any => false,
                    ast::BinaryOperator::NotEq if !any => true,
                    _ => return ControlFlow::Continue(()),
                };
                let left = left.clone();
                let m = self.marker(q, SubKind::In);
                Expr::InList {
                    expr: left,
                    list: vec![m],
                    negated,
                }
            }
            Expr::Subquery(q) if self.sharded(q) => self.marker(q, SubKind::Scalar),
            Expr::InSubquery {
                expr,
                subquery,
                negated,
            } if self.sharded(subquery) => {
                let m = self.marker(subquery, SubKind::In);
                Expr::InList {
                    expr: expr.clone(),
                    list: vec![m],
                    negated: *negated,
                }
            }
            Expr::Exists { subquery, negated } if self.sharded(subquery) => {
                let m = self.marker(subquery, SubKind::Exists);
                if *negated {
                    Expr::UnaryOp {
                        op: ast::UnaryOperator::Not,
                        expr: Box::new(m),
                    }
                } else {
                    m
                }
            }
            _ => return ControlFlow::Continue(()),
        };
        *e = new;
        ControlFlow::Continue(())
    }
}

/// `subs` and `outer` with the statement's bind parameters written in as
/// literals (an extended-protocol statement: the subqueries run on their
/// own, without the client's parameters).
///
/// # Errors
/// A parameter that cannot be written as a literal.
pub fn with_params(
    subs: &[Sub],
    outer: &Statement,
    params: &crate::params::Params<'_>,
) -> Result<(Vec<Sub>, Statement), SqlError> {
    let mut outer = outer.clone();
    crate::rewrite::inline_statement(&mut outer, params)?;
    let subs = subs
        .iter()
        .map(|s| {
            let mut stmt = crate::parse::parse_sql(&s.sql)
                .ok()
                .and_then(|mut v| (v.len() == 1).then(|| v.remove(0)))
                .ok_or_else(|| SqlError::Invalid("a subquery run first does not parse".into()))?;
            crate::rewrite::inline_statement(&mut stmt, params)?;
            Ok(Sub {
                sql: stmt.to_string(),
                kind: s.kind.clone(),
            })
        })
        .collect::<Result<Vec<Sub>, SqlError>>()?;
    Ok((subs, outer))
}

/// The marker's number in `e`, if `e` is one.
fn marker_of(e: &Expr) -> Option<usize> {
    match e {
        Expr::Identifier(i) => i.value.strip_prefix(MARKER)?.parse().ok(),
        _ => None,
    }
}

/// `outer` with each marker replaced by its subquery's result, as SQL.
///
/// # Errors
/// A type name that does not parse.
pub fn fill(outer: &Statement, results: &[Filled]) -> Result<String, SqlError> {
    let mut s = outer.clone();
    let mut f = Filler { results, err: None };
    let _ = VisitMut::visit(&mut s, &mut f);
    match f.err {
        Some(e) => Err(e),
        None => Ok(s.to_string()),
    }
}

struct Filler<'a> {
    results: &'a [Filled],
    err: Option<SqlError>,
}

impl Filler<'_> {
    fn result(&self, n: usize) -> Option<&Filled> {
        self.results.get(n.checked_sub(1)?)
    }
}

/// `v` as a literal of type `ty`.
fn literal(v: Option<&str>, ty: &DataType) -> Expr {
    let value = match v {
        Some(v) => Value::EscapedStringLiteral(v.to_string()),
        None => Value::Null,
    };
    Expr::Cast {
        kind: ast::CastKind::Cast,
        expr: Box::new(Expr::Value(value.into())),
        data_type: ty.clone(),
        format: None,
    }
}

fn data_type(ty: &str) -> Result<DataType, SqlError> {
    sqlparser::parser::Parser::new(&PostgreSqlDialect {})
        .try_with_sql(ty)
        .and_then(|mut p| p.parse_data_type())
        .map_err(|e| SqlError::Invalid(format!("type {ty}: {e}")))
}

impl VisitorMut for Filler<'_> {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        let SetExpr::Values(v) = q.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let marker = match v.rows.as_slice() {
            [row] => match row.content.as_slice() {
                [e] => marker_of(e),
                _ => None,
            },
            _ => None,
        };
        let Some(Filled::Rows {
            types,
            untyped,
            rows,
        }) = marker.and_then(|n| self.result(n))
        else {
            return ControlFlow::Continue(());
        };
        let bare = |i: usize| untyped.get(i).copied().unwrap_or(false);
        let types: Result<Vec<DataType>, SqlError> = types.iter().map(|t| data_type(t)).collect();
        let types = match types {
            Ok(t) => t,
            Err(e) => {
                self.err = Some(e);
                return ControlFlow::Break(());
            }
        };
        if rows.is_empty() {
            // No rows: `SELECT NULL, ... WHERE false` (a VALUES list cannot
            // be empty; untyped NULLs convert to the target columns), which
            // the session sends to one shard.
            let nulls = vec!["NULL"; types.len()];
            let parsed = sqlparser::parser::Parser::parse_sql(
                &PostgreSqlDialect {},
                &format!("SELECT {} WHERE false", nulls.join(", ")),
            );
            match parsed.ok().and_then(|mut v| v.pop()) {
                Some(Statement::Query(nq)) => q.body = nq.body,
                _ => {
                    self.err = Some(SqlError::Invalid("an empty row source".into()));
                    return ControlFlow::Break(());
                }
            }
            return ControlFlow::Continue(());
        }
        v.rows = rows
            .iter()
            .map(|r| {
                ast::Parens::with_empty_span(
                    r.iter()
                        .zip(&types)
                        .enumerate()
                        .map(|(i, (v, ty))| match v {
                            _ if !bare(i) => literal(v.as_deref(), ty),
                            Some(v) => Expr::Value(Value::EscapedStringLiteral(v.clone()).into()),
                            None => Expr::Value(Value::Null.into()),
                        })
                        .collect(),
                )
            })
            .collect();
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        let new = match &*e {
            Expr::InList {
                list,
                negated,
                expr,
            } if list.len() == 1 => {
                let Some(Filled::Values { ty, values }) =
                    marker_of(&list[0]).and_then(|n| self.result(n))
                else {
                    return ControlFlow::Continue(());
                };
                if values.is_empty() {
                    // IN of no rows is false, NOT IN true, whatever the
                    // left side (NULL too).
                    Expr::Value(Value::Boolean(*negated).into())
                } else {
                    let ty = match data_type(ty) {
                        Ok(t) => t,
                        Err(err) => {
                            self.err = Some(err);
                            return ControlFlow::Break(());
                        }
                    };
                    Expr::InList {
                        expr: expr.clone(),
                        list: values.iter().map(|v| literal(v.as_deref(), &ty)).collect(),
                        negated: *negated,
                    }
                }
            }
            other => match marker_of(other).and_then(|n| self.result(n)) {
                Some(Filled::Exists(b)) => Expr::Value(Value::Boolean(*b).into()),
                // Written by `pre_visit_query`; a FROM subquery's rows go
                // to the shards as CTEs.
                Some(Filled::Rows { .. } | Filled::Derived { .. }) => {
                    return ControlFlow::Continue(());
                }
                Some(Filled::Values { ty, values }) => {
                    let ty = match data_type(ty) {
                        Ok(t) => t,
                        Err(err) => {
                            self.err = Some(err);
                            return ControlFlow::Break(());
                        }
                    };
                    // Parenthesized: an operator may follow (`[1]`).
                    Expr::Nested(Box::new(literal(
                        values.first().and_then(|v| v.as_deref()),
                        &ty,
                    )))
                }
                None => return ControlFlow::Continue(()),
            },
        };
        *e = new;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> Statement {
        sqlparser::parser::Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0)
    }

    /// Orders and customers hashed over two shards; products a reference
    /// table.
    fn shop() -> Topology {
        let shards = [ShardId(0), ShardId(1)];
        let mut topo = Topology::default();
        for (t, k) in [("orders", "customer_id"), ("customers", "id")] {
            let mut rule = TableRule::sharded(
                t,
                vec![k.into()],
                shardgate_core::Strategy::hash(&shards).unwrap(),
            );
            if let TableKind::Sharded { key_types, .. } = &mut rule.kind {
                key_types[0] = Some(shardgate_core::KeyType::Int);
            }
            topo.rules.insert(t.into(), Arc::new(rule));
        }
        topo.rules.insert(
            "products".into(),
            Arc::new(TableRule::reference("products")),
        );
        topo.shard_names = vec!["s0".into(), "s1".into()];
        topo
    }

    /// The FROM subquery run first, and the statement left.
    fn derived_of(sql: &str) -> Option<(Sub, String)> {
        let (mut subs, outer) = pre_evaluate(&parse(sql), sql, &shop())?;
        assert_eq!(subs.len(), 1, "{sql}");
        Some((subs.remove(0), outer.to_string()))
    }

    #[test]
    fn a_from_subquery_is_run_first_and_placed_by_the_joined_key() {
        let (sub, outer) = derived_of(
            "SELECT c.id, o.id FROM (SELECT id, name FROM customers ORDER BY id LIMIT 10) AS c \
             LEFT JOIN orders o ON c.id = o.customer_id ORDER BY c.id",
        )
        .unwrap();
        assert_eq!(
            sub.sql,
            "SELECT id, name FROM customers ORDER BY id LIMIT 10"
        );
        assert_eq!(
            sub.kind,
            SubKind::Derived {
                name: marker_table(1),
                columns: Vec::new(),
                placed: Some(("orders".into(), "id".into()))
            }
        );
        assert_eq!(
            outer,
            format!(
                "SELECT c.id, o.id FROM {MARKER}1 AS c LEFT JOIN orders o ON c.id = o.customer_id ORDER BY c.id"
            )
        );
        // On the nullable side, under another name, keyed by customers.
        let (sub, outer) = derived_of(
            "SELECT * FROM customers c LEFT JOIN (SELECT customer_id AS cid, count(*) n FROM orders GROUP BY 1 ORDER BY 2 DESC LIMIT 3) t ON c.id = t.cid",
        )
        .unwrap();
        assert_eq!(
            sub.kind,
            SubKind::Derived {
                name: marker_table(1),
                columns: Vec::new(),
                placed: Some(("customers".into(), "cid".into()))
            }
        );
        assert!(
            outer.contains(&format!("LEFT JOIN {MARKER}1 t ON")),
            "{outer}"
        );
        // Joined by no key: a reference table.
        for sql in [
            "SELECT p.name, s.n FROM (SELECT qty, count(*) n FROM orders GROUP BY qty ORDER BY 2 DESC LIMIT 3) s JOIN products p ON p.id = s.qty",
            "SELECT * FROM (SELECT id FROM customers ORDER BY id LIMIT 3) c JOIN orders o ON o.id = c.id",
        ] {
            let (sub, _) = derived_of(sql).unwrap();
            assert!(
                matches!(sub.kind, SubKind::Derived { placed: None, .. }),
                "{sql}"
            );
        }
        // Renamed columns: the stand-in's, placed by the renamed key.
        let (sub, outer) = derived_of(
            "SELECT * FROM (SELECT id FROM customers ORDER BY id LIMIT 3) c(k) JOIN orders o ON o.customer_id = c.k",
        )
        .unwrap();
        assert_eq!(
            sub.kind,
            SubKind::Derived {
                name: marker_table(1),
                columns: vec!["k".into()],
                placed: Some(("orders".into(), "k".into())),
            }
        );
        assert!(outer.contains(&format!("FROM {MARKER}1 c JOIN")), "{outer}");
        // Not taken: a lateral one (it refers to the row before it).
        let sql = "SELECT * FROM customers c, LATERAL (SELECT * FROM orders o WHERE o.customer_id = c.id LIMIT 1) x";
        assert!(
            !derived_of(sql).is_some_and(|(s, _)| s.sql.contains("LIMIT 1")),
            "{sql}"
        );
    }

    #[test]
    fn each_shard_gets_the_rows_its_keys_place() {
        let topo = shop();
        let rule = topo.rule("orders").unwrap();
        let shards = [ShardId(0), ShardId(1)];
        let rows: Vec<Vec<Option<String>>> = (1..=6)
            .map(|i| vec![Some(i.to_string()), Some(format!("it's {i}"))])
            .chain([vec![None, Some("no key".into())]])
            .collect();
        let filled = Filled::Derived {
            columns: vec!["id".into(), "Name".into()],
            types: vec!["bigint".into(), "character varying(20)".into()],
            rows,
        };
        let (stand_in, ctes) =
            derived_cte(&marker_table(1), Some((rule, "id")), &filled, &shards).unwrap();
        assert_eq!(stand_in.table, marker_table(1));
        assert_eq!(stand_in.key_columns(), ["id".to_string()]);
        let mut seen = 0;
        for i in 1..=6i64 {
            let on = rule.place(&[shardgate_core::KeyValue::Int(i)]).unwrap();
            let cte = &ctes[&on];
            assert!(cte.contains(&format!("CAST(E'{i}' AS BIGINT)")), "{cte}");
            let other = &ctes[&if on == ShardId(0) {
                ShardId(1)
            } else {
                ShardId(0)
            }];
            assert!(
                !other.contains(&format!("CAST(E'{i}' AS BIGINT)")),
                "{other}"
            );
            seen += 1;
        }
        assert_eq!(seen, 6);
        assert!(
            ctes[&ShardId(0)]
                .starts_with(&format!("\"{MARKER}1\" (\"id\", \"Name\") AS (VALUES ("))
        );
        assert!(
            ctes[&ShardId(0)].contains("no key"),
            "NULL keys: the first shard"
        );
        assert!(ctes[&ShardId(0)].contains("E'it\\'s"));
        // No rows: an empty typed set; all on one shard without a rule.
        let none = Filled::Derived {
            columns: vec!["id".into()],
            types: vec!["bigint".into()],
            rows: Vec::new(),
        };
        let (_, ctes) = derived_cte(&marker_table(2), Some((rule, "id")), &none, &shards).unwrap();
        assert_eq!(
            ctes[&ShardId(1)],
            format!("\"{MARKER}2\" (\"id\") AS (SELECT CAST(NULL AS BIGINT) WHERE false)")
        );
        // A key column of another type than the key's: a reference table.
        let other = Filled::Derived {
            columns: vec!["id".into()],
            types: vec!["timestamp with time zone".into()],
            rows: vec![vec![Some("2024-01-01 00:00:00+00".into())]],
        };
        let (stand_in, ctes) = derived_cte("a", Some((rule, "id")), &other, &shards).unwrap();
        assert!(matches!(stand_in.kind, TableKind::Reference));
        assert!(ctes.values().all(|c| c.contains("2024-01-01")));
        // Placed by no key: a reference table, every row on every shard.
        let (reference, ctes) = derived_cte("a", None, &filled, &shards).unwrap();
        assert!(matches!(reference.kind, TableKind::Reference));
        assert_eq!(reference.table, "a");
        for s in shards {
            assert_eq!(ctes[&s].matches("), (").count(), 6);
        }
        // A key that does not read as the rule's type; a column twice.
        let bad = Filled::Derived {
            columns: vec!["id".into()],
            types: vec!["bigint".into()],
            rows: vec![vec![Some("x".into())]],
        };
        assert_eq!(
            derived_cte("a", Some((rule, "id")), &bad, &shards)
                .unwrap_err()
                .sqlstate(),
            "0A000"
        );
        let twice = Filled::Derived {
            columns: vec!["id".into(), "id".into()],
            types: vec!["bigint".into(), "bigint".into()],
            rows: Vec::new(),
        };
        assert!(derived_cte("a", Some((rule, "id")), &twice, &shards).is_err());
    }

    #[test]
    fn set_operation_branches_over_sharded_tables_run_first() {
        let sql = "SELECT id FROM customers INTERSECT ALL (SELECT customer_id FROM orders ORDER BY 1 LIMIT 5) \
                   EXCEPT SELECT id FROM products ORDER BY 1";
        let (subs, outer) = pre_evaluate(&parse(sql), sql, &shop()).unwrap();
        let got: Vec<&str> = subs.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            got,
            [
                "SELECT id FROM customers",
                "SELECT customer_id FROM orders ORDER BY 1 LIMIT 5"
            ]
        );
        assert!(subs.iter().enumerate().all(|(i, s)| s.kind
            == SubKind::Derived {
                name: marker_table(i + 1),
                columns: Vec::new(),
                placed: None
            }));
        assert_eq!(
            outer.to_string(),
            format!(
                "SELECT * FROM {MARKER}1 INTERSECT ALL SELECT * FROM {MARKER}2 EXCEPT SELECT id FROM products ORDER BY 1"
            )
        );
        // A branch typed by the others: not taken.
        let sql = "SELECT NULL FROM orders UNION SELECT now()";
        assert!(pre_evaluate(&parse(sql), sql, &shop()).is_none());
    }

    #[test]
    fn the_first_cte_over_sharded_tables_is_run_first() {
        let (sub, outer) = derived_of(
            "WITH v (x) AS (VALUES (1)), a (k, n) AS (SELECT customer_id, count(*) FROM orders GROUP BY 1), \
             b AS (SELECT k FROM a WHERE n > 3) SELECT c.id FROM customers c WHERE c.id IN (SELECT k FROM b)",
        )
        .unwrap();
        assert_eq!(
            sub.sql,
            "WITH v (x) AS (VALUES (1)) SELECT customer_id, count(*) FROM orders GROUP BY 1"
        );
        assert_eq!(
            sub.kind,
            SubKind::Derived {
                name: "a".into(),
                columns: vec!["k".into(), "n".into()],
                placed: None
            }
        );
        assert_eq!(
            outer,
            "WITH v (x) AS (VALUES (1)), b AS (SELECT k FROM a WHERE n > 3) SELECT c.id FROM customers c WHERE c.id IN (SELECT k FROM b)"
        );
        let (_, outer) =
            derived_of("WITH a AS (SELECT DISTINCT status FROM orders) SELECT count(*) FROM a")
                .unwrap();
        assert_eq!(outer, "SELECT count(*) FROM a");
        assert!(
            derived_of("WITH RECURSIVE a AS (SELECT id FROM customers) SELECT * FROM a").is_none()
        );
        assert!(derived_of("WITH v AS (VALUES (1)) SELECT * FROM v").is_none());
    }

    #[test]
    fn results_are_written_into_the_tree() {
        let outer = parse(&format!(
            "SELECT 'sg_subquery_result_1' AS s, {MARKER}1 AS v, ({MARKER}1)[1] FROM t WHERE a IN ({MARKER}2) AND b NOT IN ({MARKER}3) AND {MARKER}4"
        ));
        let results = vec![
            Filled::Values {
                ty: "text".into(),
                values: vec![Some(format!("it's {MARKER}2 \\ x"))],
            },
            Filled::Values {
                ty: "bigint".into(),
                values: vec![Some("1".into()), None],
            },
            Filled::Values {
                ty: "integer".into(),
                values: vec![],
            },
            Filled::Exists(false),
        ];
        let got = fill(&outer, &results).unwrap();
        assert_eq!(
            got,
            format!(
                "SELECT 'sg_subquery_result_1' AS s, (CAST(E'it\\'s {MARKER}2 \\\\ x' AS TEXT)) AS v, ((CAST(E'it\\'s {MARKER}2 \\\\ x' AS TEXT)))[1] FROM t WHERE a IN (CAST(E'1' AS BIGINT), CAST(NULL AS BIGINT)) AND true AND false"
            )
        );
    }
}
