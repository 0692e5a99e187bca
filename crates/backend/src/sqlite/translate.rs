//! PostgreSQL SQL in, SQLite SQL out: what the embedded shard does to a
//! statement before SQLite sees it.
//!
//! Clients write PostgreSQL; SQLite takes most of it as it is. What it does
//! not take is rewritten here, on the parsed statement: `x::type` casts,
//! `pg_catalog.`-qualified functions, `= ANY(array)`, `ILIKE`,
//! `FETCH FIRST`, row locks (SQLite serializes writers instead), `SHOW`,
//! `DROP`/`TRUNCATE` of several tables, `WITH (storage options)`,
//! `ALTER TABLE ... ADD PRIMARY KEY` (a unique index), and maintenance
//! commands that have nothing to do on SQLite (`VACUUM`, `ANALYZE`).
//! A statement that needs none of this goes through as it was written.
//!
//! It also works out the PostgreSQL type of each computed output column
//! (`count(*)` is bigint, `x = 1` boolean, `sum` of a bigint numeric), which
//! SQLite cannot say: the type depends only on the statement and the schema,
//! so a Describe and the Execute that follows agree. Pure: no connection.

use super::types::oid;
use sqlparser::ast::{
    AlterTableOperation, BinaryOperator, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, ObjectType, Query, SelectItem, SetExpr,
    Statement, TableConstraint, Value, visit_expressions_mut,
};
use std::collections::HashMap;
use std::ops::ControlFlow;

/// A statement as the embedded shard runs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Translation {
    /// The SQLite statements to run, in order; the last one's rows (if any)
    /// are the result. Empty: nothing to run (see `tag`).
    pub sql: Vec<String>,
    /// The command tag to answer instead of the one the last statement's
    /// verb would give (`TRUNCATE TABLE` for the DELETEs that stand in).
    pub tag: Option<String>,
    /// The PostgreSQL type of each output column SQLite cannot type (an
    /// expression), by position; `None` where unknown or a plain column.
    pub hints: Vec<Option<u32>>,
    /// The name PostgreSQL gives each output column, by position, where
    /// SQLite would name it otherwise (an expression's text).
    pub names: Vec<Option<String>>,
    /// It reads catalogs that follow the schema (refresh them first).
    pub catalog: bool,
}

impl Translation {
    fn same(sql: &str) -> Translation {
        Translation {
            sql: vec![sql.to_string()],
            ..Translation::default()
        }
    }
}

/// Translate one statement. `columns` maps column names (lower case) to
/// their declared types, for typing `max(col)` and the like.
///
/// # Errors
/// A (SQLSTATE, message) for PostgreSQL statements SQLite has no way to do.
pub fn translate(
    sql: &str,
    columns: &HashMap<String, String>,
) -> Result<Translation, (&'static str, String)> {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(2)
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .collect();
    let first = words.first().map(String::as_str).unwrap_or("");
    match first {
        // Maintenance with nothing to do on SQLite (and PostgreSQL syntax
        // it would not take); access control, which it does not have.
        "VACUUM" | "ANALYZE" | "ANALYSE" | "CHECKPOINT" | "CLUSTER" | "REINDEX" | "GRANT"
        | "REVOKE" | "COMMENT" => {
            let tag = match first {
                "ANALYSE" => "ANALYZE".to_string(),
                "COMMENT" => "COMMENT".to_string(),
                w => w.to_string(),
            };
            return Ok(Translation {
                sql: Vec::new(),
                tag: Some(tag),
                hints: Vec::new(),
                names: Vec::new(),
                catalog: false,
            });
        }
        "SHOW" => return show(sql),
        _ => {}
    }
    let Ok(mut stmts) = shardgate_sql::parse::parse_sql(sql) else {
        // Not PostgreSQL that sqlparser reads: SQLite gets the last word.
        return Ok(Translation::same(sql));
    };
    if stmts.len() != 1 {
        return Ok(Translation::same(sql));
    }
    let mut stmt = stmts.remove(0);
    // Relations by their catalog names (`pg_catalog.x` is `x`).
    let mut rels: Vec<String> = Vec::new();
    let _ = sqlparser::ast::visit_relations(&stmt, |name| {
        let parts = catalog_name(&name.0).unwrap_or_else(|| name.0.clone());
        if let [ObjectNamePart::Identifier(i)] = parts.as_slice() {
            rels.push(i.value.to_ascii_lowercase());
        }
        ControlFlow::<()>::Continue(())
    });
    if let Statement::Query(q) = &stmt
        && rels
            .iter()
            .any(|r| super::catalog::EMPTY.contains(&r.as_str()))
        && reads_empty(q.body.as_ref())
        && let Some(t) = empty_answer(q)
    {
        return Ok(t);
    }
    let catalog = rels
        .iter()
        .any(|r| super::catalog::LIVE.contains(&r.as_str()));
    let (hints, names) = match &stmt {
        Statement::Query(q) => output_hints(q, columns),
        _ => (Vec::new(), Vec::new()),
    };
    if let Some(t) = rewrite_statement(&stmt)? {
        return Ok(t);
    }
    // Every query, nested ones too (a subquery's ORDER BY ... LIMIT picks
    // its rows by PostgreSQL's NULL order as well).
    struct Queries(bool);
    impl sqlparser::ast::VisitorMut for Queries {
        type Break = ();
        fn post_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            rewrite_query(q, &mut self.0);
            ControlFlow::Continue(())
        }
    }
    let mut queries = Queries(false);
    let _ = sqlparser::ast::VisitMut::visit(&mut stmt, &mut queries);
    let mut changed = queries.0;
    let mut failed = None;
    let _ = visit_expressions_mut(&mut stmt, |e| {
        match rewrite_expr(e) {
            Ok(true) => changed = true,
            Ok(false) => {}
            Err(m) => {
                failed = Some(m);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    if let Some(m) = failed {
        return Err(("0A000", m));
    }
    changed |= parenthesize_balanced(&mut stmt);
    // The catalog: `pg_catalog.pg_class` is the view `pg_class`,
    // `information_schema.tables` the view `information_schema_tables`.
    let _ = sqlparser::ast::visit_relations_mut(&mut stmt, |name| {
        if let Some(n) = catalog_name(&name.0) {
            name.0 = n;
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(Translation {
        sql: vec![if changed {
            stmt.to_string()
        } else {
            sql.to_string()
        }],
        tag: None,
        hints,
        names,
        catalog,
    })
}

/// Does every row of `body` come from a catalog that is always empty here
/// (one in its FROM list or inner-joined; in every branch of a UNION)?
fn reads_empty(body: &SetExpr) -> bool {
    use sqlparser::ast::{JoinOperator as J, TableFactor};
    let empty = |f: &TableFactor| match f {
        TableFactor::Table { name, .. } => {
            let parts = catalog_name(&name.0).unwrap_or_else(|| name.0.clone());
            matches!(parts.as_slice(), [ObjectNamePart::Identifier(i)]
                if super::catalog::EMPTY.contains(&i.value.to_ascii_lowercase().as_str()))
        }
        _ => false,
    };
    match body {
        SetExpr::Select(s) => s.from.iter().any(|t| {
            empty(&t.relation)
                || t.joins.iter().any(|j| {
                    matches!(
                        j.join_operator,
                        J::Join(_) | J::Inner(_) | J::CrossJoin(_) | J::Semi(_) | J::LeftSemi(_)
                    ) && empty(&j.relation)
                })
        }),
        SetExpr::SetOperation { left, right, .. } => reads_empty(left) && reads_empty(right),
        SetExpr::Query(q) => reads_empty(q.body.as_ref()),
        _ => false,
    }
}

/// A query over a catalog that is always empty here: no rows, under the
/// names its (leftmost) select list gives.
fn empty_answer(q: &Query) -> Option<Translation> {
    let mut body = q.body.as_ref();
    while let SetExpr::SetOperation { left, .. } = body {
        body = left.as_ref();
    }
    let SetExpr::Select(s) = body else {
        return None;
    };
    let mut cols = Vec::new();
    for item in &s.projection {
        let name = match item {
            SelectItem::UnnamedExpr(e) => column_name(e).unwrap_or_else(|| "?column?".into()),
            SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
            _ => return None,
        };
        cols.push(format!("NULL AS \"{}\"", name.replace('"', "\"\"")));
    }
    Some(Translation {
        sql: vec![format!("SELECT {} WHERE 0", cols.join(", "))],
        tag: None,
        hints: vec![Some(oid::TEXT); cols.len()],
        names: Vec::new(),
        catalog: false,
    })
}

/// `SHOW name`: the setting through `current_setting`, under its name.
fn show(sql: &str) -> Result<Translation, (&'static str, String)> {
    let rest = sql.trim().trim_end_matches(';')[4..].trim();
    let lower = rest.to_ascii_lowercase();
    let name = match lower.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["transaction", "isolation", "level"] => "transaction_isolation".to_string(),
        ["time", "zone"] => "timezone".to_string(),
        ["session", "authorization"] => "session_authorization".to_string(),
        ["all"] => {
            return Err((
                "0A000",
                "SHOW ALL is not supported on embedded (SQLite) shards".into(),
            ));
        }
        [one] => one.trim_matches('"').to_string(),
        _ => return Err(("42601", format!("syntax error at or near \"{rest}\""))),
    };
    let shown = super::settings::display_name(&name);
    Ok(Translation {
        sql: vec![format!(
            "SELECT current_setting('{}') AS \"{}\"",
            name.replace('\'', "''"),
            shown.replace('"', "\"\"")
        )],
        tag: Some("SHOW".into()),
        hints: vec![Some(oid::TEXT)],
        names: Vec::new(),
        catalog: false,
    })
}

/// Statements that become others (or several): `None` for the rest.
fn rewrite_statement(stmt: &Statement) -> Result<Option<Translation>, (&'static str, String)> {
    Ok(match stmt {
        Statement::Drop {
            object_type: object_type @ (ObjectType::Table | ObjectType::View | ObjectType::Index),
            if_exists,
            names,
            cascade,
            ..
        } if names.len() > 1 || *cascade => {
            let kind = match object_type {
                ObjectType::Table => "TABLE",
                ObjectType::View => "VIEW",
                _ => "INDEX",
            };
            let ie = if *if_exists { "IF EXISTS " } else { "" };
            Some(Translation {
                sql: names
                    .iter()
                    .map(|n| format!("DROP {kind} {ie}{n}"))
                    .collect(),
                tag: Some(format!("DROP {kind}")),
                hints: Vec::new(),
                names: Vec::new(),
                catalog: false,
            })
        }
        Statement::Truncate(t) => Some(Translation {
            sql: t
                .table_names
                .iter()
                .map(|n| format!("DELETE FROM {}", n.name))
                .collect(),
            tag: Some("TRUNCATE TABLE".into()),
            hints: Vec::new(),
            names: Vec::new(),
            catalog: false,
        }),
        Statement::CreateTable(ct)
            if ct.unlogged
                || has_generated_ids(ct)
                || !matches!(ct.table_options, sqlparser::ast::CreateTableOptions::None) =>
        {
            let mut ct = ct.clone();
            ct.unlogged = false;
            ct.table_options = sqlparser::ast::CreateTableOptions::None;
            generated_ids(&mut ct)?;
            Some(Translation {
                sql: vec![Statement::CreateTable(ct).to_string()],
                tag: Some("CREATE TABLE".into()),
                hints: Vec::new(),
                names: Vec::new(),
                catalog: false,
            })
        }
        Statement::CreateIndex(ci)
            if ci.using.is_some() || ci.concurrently || !ci.include.is_empty() =>
        {
            let mut ci = ci.clone();
            ci.using = None;
            ci.concurrently = false;
            ci.include.clear();
            Some(Translation {
                sql: vec![Statement::CreateIndex(ci).to_string()],
                tag: Some("CREATE INDEX".into()),
                hints: Vec::new(),
                names: Vec::new(),
                catalog: false,
            })
        }
        Statement::AlterTable(at)
            if at
                .operations
                .iter()
                .any(|o| matches!(o, AlterTableOperation::AddConstraint { .. })) =>
        {
            let table = last_part(&at.name);
            let mut sql = Vec::new();
            for op in &at.operations {
                let AlterTableOperation::AddConstraint { constraint, .. } = op else {
                    return Err((
                        "0A000",
                        "ALTER TABLE adding a constraint together with other changes is not supported on embedded (SQLite) shards".into(),
                    ));
                };
                let (name, cols, suffix) = match constraint {
                    TableConstraint::PrimaryKey(pk) => (&pk.name, &pk.columns, "pkey"),
                    TableConstraint::Unique(u) => (&u.name, &u.columns, "key"),
                    _ => {
                        return Err((
                            "0A000",
                            "ALTER TABLE ... ADD of a foreign key or check constraint is not supported on embedded (SQLite) shards; declare it in CREATE TABLE".into(),
                        ));
                    }
                };
                let cols: Vec<String> = cols.iter().map(|c| c.column.expr.to_string()).collect();
                let index = match name {
                    Some(n) => n.value.clone(),
                    None => format!("{table}_{suffix}"),
                };
                sql.push(format!(
                    "CREATE UNIQUE INDEX \"{}\" ON {} ({})",
                    index.replace('"', "\"\""),
                    at.name,
                    cols.join(", ")
                ));
            }
            Some(Translation {
                sql,
                tag: Some("ALTER TABLE".into()),
                hints: Vec::new(),
                names: Vec::new(),
                catalog: false,
            })
        }
        _ => None,
    })
}

/// Is a column's type one of the serial types?
fn is_serial(t: &DataType) -> bool {
    matches!(
        t.to_string().to_ascii_lowercase().as_str(),
        "serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2"
    )
}

/// Is a column an identity column (`GENERATED ... AS IDENTITY`)?
fn is_identity(c: &sqlparser::ast::ColumnDef) -> bool {
    c.options.iter().any(|o| {
        matches!(
            &o.option,
            sqlparser::ast::ColumnOption::Generated {
                generation_expr: None,
                ..
            } | sqlparser::ast::ColumnOption::Identity(_)
        )
    })
}

/// Does a CREATE TABLE have serial or identity columns?
fn has_generated_ids(ct: &sqlparser::ast::CreateTable) -> bool {
    ct.columns
        .iter()
        .any(|c| is_serial(&c.data_type) || is_identity(c))
}

/// Serial and identity columns as SQLite numbers rows: the table's
/// single-column primary key becomes `INTEGER PRIMARY KEY` (SQLite's row
/// id, assigned on INSERT; AUTOINCREMENT when the key is declared on the
/// column, so ids are not reused, as a sequence's are not). Any other
/// serial or identity column SQLite cannot fill: refused.
fn generated_ids(ct: &mut sqlparser::ast::CreateTable) -> Result<(), (&'static str, String)> {
    use sqlparser::ast::ColumnOption as O;
    let table_pk: Option<Vec<String>> = ct.constraints.iter().find_map(|c| match c {
        TableConstraint::PrimaryKey(pk) => Some(
            pk.columns
                .iter()
                .map(|c| c.column.expr.to_string().to_ascii_lowercase())
                .collect(),
        ),
        _ => None,
    });
    for c in &mut ct.columns {
        if !is_serial(&c.data_type) && !is_identity(c) {
            continue;
        }
        let name = c.name.value.to_ascii_lowercase();
        let inline_pk = c
            .options
            .iter()
            .any(|o| matches!(o.option, O::PrimaryKey(_)));
        let sole_pk = inline_pk || table_pk.as_deref() == Some(std::slice::from_ref(&name));
        if !sole_pk {
            return Err((
                "0A000",
                format!(
                    "column \"{}\": serial and identity columns are supported on embedded (SQLite) shards only as the table's single-column primary key",
                    c.name.value
                ),
            ));
        }
        c.data_type = DataType::Integer(None);
        c.options
            .retain(|o| !matches!(o.option, O::Generated { .. } | O::Identity(_)));
        if inline_pk {
            let at = c
                .options
                .iter()
                .position(|o| matches!(o.option, O::PrimaryKey(_)))
                .unwrap_or(0);
            c.options.insert(
                at + 1,
                sqlparser::ast::ColumnOptionDef {
                    name: None,
                    option: O::DialectSpecific(vec![sqlparser::tokenizer::Token::make_keyword(
                        "AUTOINCREMENT",
                    )]),
                },
            );
        }
    }
    Ok(())
}

/// The embedded catalog's name for a `pg_catalog.` or
/// `information_schema.` relation (`None`: not one).
fn catalog_name(parts: &[ObjectNamePart]) -> Option<Vec<ObjectNamePart>> {
    let [
        ObjectNamePart::Identifier(schema),
        ObjectNamePart::Identifier(rel),
    ] = parts
    else {
        return None;
    };
    match schema.value.to_ascii_lowercase().as_str() {
        "pg_catalog" => Some(vec![ObjectNamePart::Identifier(rel.clone())]),
        "information_schema" => Some(vec![ObjectNamePart::Identifier(Ident::new(format!(
            "information_schema_{}",
            rel.value.to_ascii_lowercase()
        )))]),
        _ => None,
    }
}

fn last_part(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(i)) => i.value.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Query-level PostgreSQL: `FETCH FIRST n ROWS ONLY` is a LIMIT, and row
/// locks go (SQLite serializes writers; a reader sees a snapshot).
/// PostgreSQL sorts NULL as larger than any value (last ascending, first
/// descending); SQLite as smaller: say which on each item that does not.
/// `true` if any changed.
fn pg_nulls(items: &mut [sqlparser::ast::OrderByExpr]) -> bool {
    let mut changed = false;
    for item in items {
        if item.options.nulls_first.is_none() {
            let desc = matches!(item.options.sort, Some(sqlparser::ast::OrderBySort::Desc));
            item.options.nulls_first = Some(desc);
            changed = true;
        }
    }
    changed
}

fn rewrite_query(q: &mut Query, changed: &mut bool) {
    // PostgreSQL sorts NULL as larger than any value (last ascending, first
    // descending); SQLite as smaller: say which, where the query did not.
    if let Some(sqlparser::ast::OrderBy {
        kind: sqlparser::ast::OrderByKind::Expressions(items),
        ..
    }) = &mut q.order_by
    {
        // A bare name in ORDER BY is an output column's name first (as
        // PostgreSQL reads it), and `SELECT x::text ... ORDER BY x` names
        // the output column: SQLite would sort by the input column.
        let outputs: Vec<(Option<String>, bool)> = match q.body.as_ref() {
            SetExpr::Select(s) => s
                .projection
                .iter()
                .map(|p| match p {
                    SelectItem::UnnamedExpr(e) => {
                        (column_name(e), matches!(e, Expr::Identifier(_)))
                    }
                    _ => (None, true),
                })
                .collect(),
            _ => Vec::new(),
        };
        for item in items.iter_mut() {
            if let Expr::Identifier(i) = &item.expr {
                let name = if i.quote_style.is_some() {
                    i.value.clone()
                } else {
                    i.value.to_ascii_lowercase()
                };
                if let Some(pos) = outputs
                    .iter()
                    .position(|(n, _)| n.as_deref() == Some(&name))
                    && !outputs[pos].1
                {
                    item.expr = number(&(pos + 1).to_string());
                    *changed = true;
                }
            }
        }
        *changed |= pg_nulls(items);
    }
    if !q.locks.is_empty() {
        q.locks.clear();
        *changed = true;
    }
    // `GROUP BY ()`, PostgreSQL's empty grouping set: one group of all
    // rows (even of none). SQLite has no such syntax; where the select
    // list has an aggregate, the query without GROUP BY is one group too
    // (with none, SQLite would answer a row per row: left to fail).
    if let SetExpr::Select(s) = q.body.as_mut()
        && let sqlparser::ast::GroupByExpr::Expressions(list, mods) = &mut s.group_by
        && !list.is_empty()
        && mods.is_empty()
        && list
            .iter()
            .all(|g| matches!(g, Expr::Tuple(t) if t.is_empty()))
        && s.projection.iter().any(|i| {
            let mut agg = false;
            let _ = sqlparser::ast::visit_expressions(i, |e| {
                if let Expr::Function(f) = e
                    && AGGREGATES.contains(&func_name(&f.name).as_str())
                {
                    agg = true;
                }
                ControlFlow::<()>::Continue(())
            });
            agg
        })
    {
        list.clear();
        *changed = true;
    }
    // SQLite takes OFFSET only after a LIMIT, and no ROW(S) after it.
    if let Some(sqlparser::ast::LimitClause::LimitOffset {
        limit,
        offset: Some(offset),
        ..
    }) = &mut q.limit_clause
    {
        if limit.is_none() {
            *limit = Some(number("-1"));
            *changed = true;
        }
        if offset.rows != sqlparser::ast::OffsetRows::None {
            offset.rows = sqlparser::ast::OffsetRows::None;
            *changed = true;
        }
    }
    if let Some(fetch) = q.fetch.take() {
        *changed = true;
        if !fetch.with_ties && !fetch.percent {
            let n = fetch.quantity.unwrap_or_else(|| number("1"));
            match &mut q.limit_clause {
                Some(sqlparser::ast::LimitClause::LimitOffset { limit, .. }) => {
                    *limit = Some(n);
                }
                _ => {
                    q.limit_clause = Some(sqlparser::ast::LimitClause::LimitOffset {
                        limit: Some(n),
                        offset: None,
                        limit_by: Vec::new(),
                    });
                }
            }
        } else {
            q.fetch = Some(fetch);
        }
    }
}

/// SQLite's aggregate functions (those a PostgreSQL query may use).
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "total",
    "avg",
    "min",
    "max",
    "group_concat",
    "string_agg",
    "json_group_array",
    "json_group_object",
];

/// Long AND/OR chains come balanced from the parser
/// ([`shardgate_sql::parse`]) and print as written, which SQLite parses
/// one level per operand again (and refuses past 1,000 levels): the
/// balanced halves get parentheses, so SQLite's tree is shallow too. A
/// right operand of the same operator without parentheses is one only
/// the rebalancing makes. Whether anything changed.
fn parenthesize_balanced(stmt: &mut Statement) -> bool {
    let mut changed = false;
    let _ = visit_expressions_mut(stmt, |e| {
        if let Expr::BinaryOp {
            left,
            op: op @ (BinaryOperator::And | BinaryOperator::Or),
            right,
        } = e
            && matches!(right.as_ref(), Expr::BinaryOp { op: o, .. } if o == op)
        {
            for side in [left, right] {
                if matches!(side.as_ref(), Expr::BinaryOp { op: o, .. } if o == op) {
                    let inner = std::mem::replace(side.as_mut(), Expr::value(Value::Null));
                    **side = Expr::Nested(Box::new(inner));
                }
            }
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    changed
}

fn number(n: &str) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

fn parse_expr(text: &str) -> Result<Expr, String> {
    shardgate_sql::parse::parse_expr(text)
        .map_err(|e| format!("internal rewrite failed for embedded shard: {e}"))
}

fn func_name(name: &ObjectName) -> String {
    last_part(name).to_ascii_lowercase()
}

/// One expression, its children already done: `Ok(true)` if rewritten.
fn rewrite_expr(e: &mut Expr) -> Result<bool, String> {
    match e {
        Expr::Cast {
            kind,
            expr,
            data_type,
            ..
        } => {
            if matches!(kind, CastKind::TryCast | CastKind::SafeCast) {
                return Ok(false);
            }
            let ty = cast_type(data_type);
            *e = match ty {
                LiteCast::As(t) => parse_expr(&format!("CAST({expr} AS {t})"))?,
                LiteCast::Func(f) => parse_expr(&format!("{f}({expr})"))?,
            };
            Ok(true)
        }
        Expr::Function(f) => {
            // NULL order in window and aggregate ORDER BYs, as in queries.
            let mut changed = false;
            if let Some(sqlparser::ast::WindowType::WindowSpec(w)) = &mut f.over {
                changed |= pg_nulls(&mut w.order_by);
            }
            if let FunctionArguments::List(l) = &mut f.args {
                for c in &mut l.clauses {
                    if let sqlparser::ast::FunctionArgumentClause::OrderBy(items) = c {
                        changed |= pg_nulls(items);
                    }
                }
            }
            if f.name.0.len() > 1 {
                let schema = f.name.0[0].to_string().to_ascii_lowercase();
                if schema == "pg_catalog" || schema == "public" {
                    f.name = ObjectName(vec![f.name.0[f.name.0.len() - 1].clone()]);
                    changed = true;
                }
            }
            if matches!(
                func_name(&f.name).as_str(),
                "pg_get_indexdef" | "pg_get_constraintdef"
            ) && let Some(arg) = args_of(f).first()
            {
                *e = parse_expr(&format!("(SELECT def FROM sg_reldef WHERE oid = {arg})"))?;
                return Ok(true);
            }
            // LEAST/GREATEST skip NULLs; SQLite's many-argument min/max
            // do not: each argument, or another when it is NULL.
            let name = func_name(&f.name);
            let args: Vec<String> = args_of(f).iter().map(|a| a.to_string()).collect();
            if matches!(name.as_str(), "least" | "greatest") && args.len() >= 2 {
                let agg = if name == "least" { "min" } else { "max" };
                let items: Vec<String> = (0..args.len())
                    .map(|i| {
                        let mut order = vec![args[i].clone()];
                        order.extend(
                            args.iter()
                                .enumerate()
                                .filter(|(j, _)| *j != i)
                                .map(|(_, a)| a.clone()),
                        );
                        format!("coalesce({})", order.join(", "))
                    })
                    .collect();
                *e = parse_expr(&format!("{agg}({})", items.join(", ")))?;
                return Ok(true);
            }
            if func_name(&f.name) == "to_regclass"
                && let [arg] = args_of(f).as_slice()
            {
                *e = parse_expr(&format!(
                    "(SELECT oid FROM pg_class WHERE relname = pg_relname({arg}))"
                ))?;
                return Ok(true);
            }
            let renamed = match func_name(&f.name).as_str() {
                "string_agg" => Some("group_concat"),
                "bool_and" | "every" => Some("min"),
                "bool_or" => Some("max"),
                "char_length" | "character_length" => Some("length"),
                "strpos" => Some("instr"),
                "btrim" => Some("trim"),
                "random" => Some("pg_random"),
                "current_user" | "session_user" | "current_role" | "user" => Some("pg_user"),
                "current_catalog" => Some("current_database"),
                "current_schema" if matches!(f.args, FunctionArguments::None) => {
                    f.args = empty_args();
                    Some("current_schema")
                }
                _ => None,
            };
            if let Some(r) = renamed {
                f.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(r))]);
                if matches!(f.args, FunctionArguments::None) {
                    f.args = empty_args();
                }
                changed = true;
            }
            Ok(changed)
        }
        Expr::CompoundIdentifier(parts) if parts.len() >= 3 => {
            let as_name: Vec<ObjectNamePart> = parts[..2]
                .iter()
                .cloned()
                .map(ObjectNamePart::Identifier)
                .collect();
            let Some(mut n) = catalog_name(&as_name) else {
                return Ok(false);
            };
            let mut rest: Vec<Ident> = parts[2..].to_vec();
            let mut new: Vec<Ident> = n
                .drain(..)
                .filter_map(|p| match p {
                    ObjectNamePart::Identifier(i) => Some(i),
                    _ => None,
                })
                .collect();
            new.append(&mut rest);
            *parts = new;
            Ok(true)
        }
        // Division and modulo by zero fail as on PostgreSQL (SQLite gives
        // NULL): the divisor goes through pg_divisor, which raises.
        Expr::BinaryOp {
            op: BinaryOperator::Divide | BinaryOperator::Modulo,
            right,
            ..
        } => {
            if matches!(right.as_ref(), Expr::Function(f) if func_name(&f.name) == "pg_divisor")
                || matches!(right.as_ref(), Expr::Value(v)
                    if matches!(&v.value, sqlparser::ast::Value::Number(n, _)
                        if !n.trim_start_matches(['0', '.']).is_empty()))
            {
                return Ok(false);
            }
            **right = parse_expr(&format!("pg_divisor({right})"))?;
            Ok(true)
        }
        Expr::BinaryOp { left, op, right } => {
            let (negate, icase) = match op {
                BinaryOperator::PGRegexMatch => (false, false),
                BinaryOperator::PGRegexIMatch => (false, true),
                BinaryOperator::PGRegexNotMatch => (true, false),
                BinaryOperator::PGRegexNotIMatch => (true, true),
                BinaryOperator::PGCustomBinaryOperator(parts) => {
                    match parts.last().map(String::as_str) {
                        Some("~") => (false, false),
                        Some("~*") => (false, true),
                        Some("!~") => (true, false),
                        Some("!~*") => (true, true),
                        _ => return Ok(false),
                    }
                }
                _ => return Ok(false),
            };
            let not = if negate { "NOT " } else { "" };
            *e = parse_expr(&format!(
                "{not}pg_regex({left}, {right}, {})",
                i32::from(icase)
            ))?;
            Ok(true)
        }
        // The default and C collations are SQLite's BINARY (its default).
        Expr::Collate { expr, collation }
            if matches!(
                last_part(collation).to_ascii_lowercase().as_str(),
                "default" | "c" | "posix" | "ucs_basic"
            ) =>
        {
            *e = expr.as_ref().clone();
            Ok(true)
        }
        Expr::Identifier(i) if i.quote_style.is_none() => {
            let to = match i.value.to_ascii_lowercase().as_str() {
                "current_user" | "session_user" | "current_role" => "pg_user()",
                "current_catalog" => "current_database()",
                "current_schema" => "current_schema()",
                _ => return Ok(false),
            };
            *e = parse_expr(to)?;
            Ok(true)
        }
        Expr::AnyOp {
            left,
            compare_op: BinaryOperator::Eq,
            right,
            ..
        } => {
            *e = match right.as_ref() {
                Expr::Array(a) => parse_expr(&format!(
                    "{left} IN ({})",
                    a.elem
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))?,
                r => parse_expr(&format!(
                    "{left} IN (SELECT value FROM json_each(pg_array({r})))"
                ))?,
            };
            Ok(true)
        }
        Expr::AllOp {
            left,
            compare_op: BinaryOperator::NotEq,
            right,
        } => {
            *e = parse_expr(&format!(
                "{left} NOT IN (SELECT value FROM json_each(pg_array({right})))"
            ))?;
            Ok(true)
        }
        Expr::ILike {
            negated,
            expr,
            pattern,
            escape_char,
            any: false,
        } => {
            let not = if *negated { "NOT " } else { "" };
            let esc = match escape_char {
                Some(c) => format!(" ESCAPE {c}"),
                None => String::new(),
            };
            *e = parse_expr(&format!("lower({expr}) {not}LIKE lower({pattern}){esc}"))?;
            Ok(true)
        }
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            let from = substring_from
                .as_ref()
                .map_or("1".to_string(), ToString::to_string);
            *e = parse_expr(&match substring_for {
                Some(n) => format!("substr({expr}, {from}, {n})"),
                None => format!("substr({expr}, {from})"),
            })?;
            Ok(true)
        }
        Expr::Extract { field, expr, .. } => {
            let f = field
                .to_string()
                .to_ascii_lowercase()
                .replace(['\'', '"'], "");
            *e = parse_expr(&format!("pg_extract('{f}', {expr})"))?;
            Ok(true)
        }
        Expr::TypedString(ts) => {
            let ty = cast_type(&ts.data_type);
            let lit = Expr::Value(ts.value.clone());
            *e = match ty {
                LiteCast::As(t) => parse_expr(&format!("CAST({lit} AS {t})"))?,
                LiteCast::Func(f) => parse_expr(&format!("{f}({lit})"))?,
            };
            Ok(true)
        }
        Expr::Value(v) => match &v.value {
            Value::EscapedStringLiteral(s) => {
                v.value = Value::SingleQuotedString(s.clone());
                Ok(true)
            }
            _ => Ok(false),
        },
        _ => Ok(false),
    }
}

fn empty_args() -> FunctionArguments {
    FunctionArguments::List(sqlparser::ast::FunctionArgumentList {
        duplicate_treatment: None,
        args: Vec::new(),
        clauses: Vec::new(),
    })
}

/// What a PostgreSQL cast becomes on SQLite.
enum LiteCast {
    /// `CAST(x AS t)`.
    As(&'static str),
    /// `f(x)`.
    Func(&'static str),
}

fn cast_type(t: &DataType) -> LiteCast {
    let name = t.to_string().to_ascii_lowercase();
    let base = name.split(['(', '[']).next().unwrap_or("").trim();
    if name.contains('[') {
        // An array is its text (JSON once pg_array reads it).
        return match base {
            "smallint" | "int" | "integer" | "bigint" | "int2" | "int4" | "int8" | "real"
            | "float" | "float4" | "float8" | "double precision" | "numeric" | "decimal" => {
                LiteCast::Func("pg_num_array")
            }
            _ => LiteCast::As("TEXT"),
        };
    }
    match base {
        "smallint" | "int" | "integer" | "bigint" | "int2" | "int4" | "int8" => {
            LiteCast::As("INTEGER")
        }
        "real" | "float" | "float4" | "float8" | "double precision" | "double" => {
            LiteCast::As("REAL")
        }
        "numeric" | "decimal" => LiteCast::As("NUMERIC"),
        "bool" | "boolean" => LiteCast::Func("pg_bool"),
        "date" => LiteCast::Func("date"),
        "uuid" => LiteCast::Func("pg_uuid"),
        "bytea" => LiteCast::As("BLOB"),
        _ => LiteCast::As("TEXT"),
    }
}

/// The PostgreSQL type of a type name.
pub fn type_oid(t: &DataType) -> Option<u32> {
    let name = t.to_string().to_ascii_lowercase();
    let base = name.split(['(', '[']).next().unwrap_or("").trim();
    if name.contains('[') {
        return Some(oid::TEXT);
    }
    Some(match base {
        "timestamptz" | "timestamp with time zone" => oid::TIMESTAMPTZ,
        "json" => oid::JSON,
        "jsonb" => oid::JSONB,
        "text" | "regclass" | "name" => oid::TEXT,
        _ => match super::types::oid_for_decl(base) {
            (oid::TEXT, _) => return None,
            (o, _) => o,
        },
    })
}

/// The types and names of a query's output columns.
#[allow(clippy::type_complexity)]
fn output_hints(
    q: &Query,
    columns: &HashMap<String, String>,
) -> (Vec<Option<u32>>, Vec<Option<String>>) {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return (Vec::new(), Vec::new());
    };
    let (mut types, mut names) = (Vec::new(), Vec::new());
    for item in &s.projection {
        match item {
            SelectItem::UnnamedExpr(e) => {
                types.push(expr_type(e, columns));
                names.push(Some(column_name(e).unwrap_or_else(|| "?column?".into())));
            }
            SelectItem::ExprWithAlias { expr: e, .. } => {
                types.push(expr_type(e, columns));
                names.push(None);
            }
            // Positions after a `*` are not known here.
            _ => break,
        }
    }
    (types, names)
}

/// The name PostgreSQL gives an unaliased output expression (its
/// `FigureColname`): `None` for "?column?".
fn column_name(e: &Expr) -> Option<String> {
    let fold = |i: &Ident| {
        if i.quote_style.is_some() {
            i.value.clone()
        } else {
            i.value.to_ascii_lowercase()
        }
    };
    match e {
        Expr::Identifier(i) => Some(fold(i)),
        Expr::CompoundIdentifier(parts) => parts.last().map(fold),
        Expr::Function(f) => Some(func_name(&f.name)),
        Expr::Nested(inner) => column_name(inner),
        Expr::Cast {
            expr, data_type, ..
        } => column_name(expr).or_else(|| Some(internal_type_name(data_type))),
        Expr::TypedString(ts) => Some(internal_type_name(&ts.data_type)),
        Expr::Case { .. } => Some("case".into()),
        Expr::Array(_) => Some("array".into()),
        Expr::Exists { .. } => Some("exists".into()),
        Expr::Substring { .. } => Some("substring".into()),
        _ => None,
    }
}

/// PostgreSQL's own name of a type (`integer` is `int4`).
fn internal_type_name(t: &DataType) -> String {
    let name = t.to_string().to_ascii_lowercase();
    let base = name
        .split(['(', '['])
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    match base.as_str() {
        "integer" | "int" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "boolean" => "bool",
        "real" => "float4",
        "double precision" | "double" | "float" => "float8",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "decimal" => "numeric",
        "timestamp with time zone" => "timestamptz",
        "timestamp without time zone" => "timestamp",
        _ => return base,
    }
    .to_string()
}

fn args_of(f: &sqlparser::ast::Function) -> Vec<&Expr> {
    match &f.args {
        FunctionArguments::List(l) => l
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                FunctionArg::Named {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn is_int(t: u32) -> bool {
    matches!(t, oid::INT2 | oid::INT4 | oid::INT8)
}

/// The PostgreSQL type of an expression, where it can be told.
fn expr_type(e: &Expr, columns: &HashMap<String, String>) -> Option<u32> {
    use BinaryOperator as B;
    Some(match e {
        Expr::Cast { data_type, .. } => return type_oid(data_type),
        Expr::TypedString(ts) => return type_oid(&ts.data_type),
        Expr::Nested(inner) => return expr_type(inner, columns),
        Expr::Identifier(i) => {
            return columns
                .get(&i.value.to_ascii_lowercase())
                .map(|d| super::types::oid_for_decl(d).0);
        }
        Expr::CompoundIdentifier(parts) => {
            return parts.last().and_then(|i| {
                columns
                    .get(&i.value.to_ascii_lowercase())
                    .map(|d| super::types::oid_for_decl(d).0)
            });
        }
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => {
                if n.contains(['.', 'e', 'E']) {
                    oid::NUMERIC
                } else if n.parse::<i32>().is_ok() {
                    oid::INT4
                } else if n.parse::<i64>().is_ok() {
                    oid::INT8
                } else {
                    oid::NUMERIC
                }
            }
            Value::Boolean(_) => oid::BOOL,
            Value::SingleQuotedString(_) | Value::EscapedStringLiteral(_) => oid::TEXT,
            _ => return None,
        },
        Expr::BinaryOp { left, op, right } => match op {
            B::Eq
            | B::NotEq
            | B::Lt
            | B::LtEq
            | B::Gt
            | B::GtEq
            | B::And
            | B::Or
            | B::PGRegexMatch
            | B::PGRegexIMatch
            | B::PGRegexNotMatch
            | B::PGRegexNotIMatch => oid::BOOL,
            B::StringConcat => oid::TEXT,
            B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo => {
                let (l, r) = (expr_type(left, columns)?, expr_type(right, columns)?);
                if l == oid::NUMERIC || r == oid::NUMERIC {
                    oid::NUMERIC
                } else if matches!(l, oid::FLOAT4 | oid::FLOAT8)
                    || matches!(r, oid::FLOAT4 | oid::FLOAT8)
                {
                    oid::FLOAT8
                } else if is_int(l) && is_int(r) {
                    if l == oid::INT8 || r == oid::INT8 {
                        oid::INT8
                    } else {
                        oid::INT4
                    }
                } else {
                    return None;
                }
            }
            _ => return None,
        },
        Expr::UnaryOp { op, expr } => match op {
            sqlparser::ast::UnaryOperator::Not => oid::BOOL,
            _ => return expr_type(expr, columns),
        },
        Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNotFalse(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::InList { .. }
        | Expr::InSubquery { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::Exists { .. }
        | Expr::AnyOp { .. }
        | Expr::AllOp { .. } => oid::BOOL,
        Expr::Case {
            conditions,
            else_result,
            ..
        } => {
            return conditions
                .iter()
                .find_map(|w| expr_type(&w.result, columns))
                .or_else(|| else_result.as_ref().and_then(|e| expr_type(e, columns)));
        }
        Expr::Substring { .. } => oid::TEXT,
        Expr::Extract { .. } => oid::NUMERIC,
        Expr::Function(f) => {
            let args = args_of(f);
            let first = || args.first().and_then(|a| expr_type(a, columns));
            match func_name(&f.name).as_str() {
                "count" => oid::INT8,
                "sum" => match first()? {
                    oid::INT2 | oid::INT4 => oid::INT8,
                    oid::INT8 | oid::NUMERIC => oid::NUMERIC,
                    oid::FLOAT4 | oid::FLOAT8 => oid::FLOAT8,
                    _ => return None,
                },
                "avg" => match first()? {
                    oid::INT2 | oid::INT4 | oid::INT8 | oid::NUMERIC => oid::NUMERIC,
                    oid::FLOAT4 | oid::FLOAT8 => oid::FLOAT8,
                    _ => return None,
                },
                "min" | "max" | "abs" | "coalesce" | "nullif" | "greatest" | "least" => {
                    return args.iter().find_map(|a| expr_type(a, columns));
                }
                "round" | "trunc" | "ceil" | "ceiling" | "floor" => match first()? {
                    oid::FLOAT4 | oid::FLOAT8 => oid::FLOAT8,
                    t if is_int(t) && args.len() == 1 => t,
                    _ => oid::NUMERIC,
                },
                "length" | "char_length" | "character_length" | "octet_length" | "strpos"
                | "position" | "pg_backend_pid" | "ascii" => oid::INT4,
                "lower" | "upper" | "concat" | "concat_ws" | "substr" | "substring" | "trim"
                | "btrim" | "ltrim" | "rtrim" | "replace" | "string_agg" | "version"
                | "current_schema" | "current_database" | "current_setting" | "set_config"
                | "md5" | "repeat" | "lpad" | "rpad" | "left" | "right" | "to_char" | "initcap"
                | "reverse" | "chr" | "current_user" | "session_user" => oid::TEXT,
                "date_part" => oid::FLOAT8,
                "date_trunc" => match args.get(1).and_then(|a| expr_type(a, columns)) {
                    Some(oid::TIMESTAMP) => oid::TIMESTAMP,
                    _ => oid::TIMESTAMPTZ,
                },
                "now"
                | "current_timestamp"
                | "transaction_timestamp"
                | "statement_timestamp"
                | "clock_timestamp" => oid::TIMESTAMPTZ,
                "current_date" => oid::DATE,
                "random" => oid::FLOAT8,
                "txid_current" => oid::INT8,
                "gen_random_uuid" => oid::UUID,
                "bool_and" | "bool_or" | "every" => oid::BOOL,
                _ => return None,
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(sql: &str) -> Translation {
        translate(sql, &HashMap::new()).unwrap()
    }

    #[test]
    fn plain_sql_goes_through_untouched() {
        let sql = "SELECT a, b FROM t WHERE a = $1 ORDER BY b NULLS LAST";
        assert_eq!(tr(sql).sql, vec![sql.to_string()]);
    }

    #[test]
    fn casts_functions_and_operators_become_sqlite() {
        let t = tr("SELECT 1::text, '2024-01-02 10:00'::date, x::bigint FROM t WHERE y ILIKE 'a%'");
        let s = &t.sql[0];
        assert!(!s.contains("::"), "{s}");
        assert!(s.contains("date('2024-01-02 10:00')"), "{s}");
        assert!(s.contains("lower(y) LIKE lower('a%')"), "{s}");
        assert_eq!(
            t.hints,
            vec![Some(oid::TEXT), Some(oid::DATE), Some(oid::INT8)]
        );
        let s = &tr("SELECT pg_catalog.version(), current_user, now()").sql[0];
        assert!(s.starts_with("SELECT version(), pg_user(), now()"), "{s}");
        let s = &tr("SELECT k FROM t WHERE k = ANY($1) FOR UPDATE").sql[0];
        assert!(
            s.contains("k IN (SELECT value FROM json_each(pg_array($1)))") && !s.contains("FOR"),
            "{s}"
        );
        let s = &tr("SELECT * FROM (SELECT k FROM t ORDER BY k LIMIT 2) x").sql[0];
        assert!(s.contains("ORDER BY k NULLS LAST LIMIT 2"), "{s}");
        let s = &tr("SELECT row_number() OVER (ORDER BY k DESC) FROM t").sql[0];
        assert!(s.contains("ORDER BY k DESC NULLS FIRST"), "{s}");
        let s = &tr("SELECT k::text, j FROM t ORDER BY k, j DESC").sql[0];
        assert!(
            s.ends_with("ORDER BY 1 NULLS LAST, j DESC NULLS FIRST"),
            "{s}"
        );
        let s = &tr("SELECT k FROM t WHERE k = ANY(ARRAY[1, 2]) FETCH FIRST 3 ROWS ONLY").sql[0];
        assert!(s.contains("k IN (1, 2)") && s.ends_with("LIMIT 3"), "{s}");
        let s = &tr("SELECT k FROM t ORDER BY k OFFSET 5 ROWS").sql[0];
        assert!(s.ends_with("LIMIT -1 OFFSET 5"), "{s}");
    }

    #[test]
    fn several_tables_and_maintenance() {
        let t = tr("drop table if exists a, b cascade");
        assert_eq!(
            t.sql,
            vec!["DROP TABLE IF EXISTS a", "DROP TABLE IF EXISTS b"]
        );
        assert_eq!(t.tag.as_deref(), Some("DROP TABLE"));
        let t = tr("truncate table a, b");
        assert_eq!(t.sql, vec!["DELETE FROM a", "DELETE FROM b"]);
        let t = tr("vacuum analyze a");
        assert!(t.sql.is_empty());
        assert_eq!(t.tag.as_deref(), Some("VACUUM"));
        let t = tr("alter table pgbench_branches add primary key (bid)");
        assert_eq!(
            t.sql,
            vec!["CREATE UNIQUE INDEX \"pgbench_branches_pkey\" ON pgbench_branches (bid)"]
        );
        let t = tr("create table x (a int not null, b char(84)) with (fillfactor=100)");
        assert!(
            !t.sql[0].to_lowercase().contains("fillfactor"),
            "{:?}",
            t.sql
        );
        let t = tr("SHOW TRANSACTION ISOLATION LEVEL");
        assert_eq!(
            t.sql,
            vec!["SELECT current_setting('transaction_isolation') AS \"transaction_isolation\""]
        );
        assert!(
            translate(
                "alter table a add foreign key (x) references b (y)",
                &HashMap::new()
            )
            .is_err()
        );
        let t = tr("create table s (id bigserial primary key, name text)");
        assert_eq!(
            t.sql,
            vec!["CREATE TABLE s (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)"]
        );
        let t =
            tr("create table s (id int generated always as identity, name text, primary key (id))");
        assert_eq!(
            t.sql,
            vec!["CREATE TABLE s (id INTEGER, name TEXT, PRIMARY KEY (id))"]
        );
        assert!(
            translate(
                "create table s (k int primary key, n serial)",
                &HashMap::new()
            )
            .is_err()
        );
    }

    #[test]
    fn computed_columns_are_typed_as_postgresql_types_them() {
        let mut cols = HashMap::new();
        cols.insert("k".to_string(), "bigint".to_string());
        cols.insert("n".to_string(), "integer".to_string());
        let t = translate(
            "SELECT count(*), sum(k), sum(n), max(k), avg(n), k = 1, k + 1, 2.5, 'x' || k, *",
            &cols,
        )
        .unwrap();
        let t2 = translate(
            "SELECT 1::integer, K::text, now() IS NULL, CASE WHEN k THEN 1 END, k AS x",
            &cols,
        )
        .unwrap();
        assert_eq!(
            t2.names,
            vec![
                Some("int4".to_string()),
                Some("k".to_string()),
                Some("?column?".to_string()),
                Some("case".to_string()),
                None
            ]
        );
        assert_eq!(
            t.hints,
            vec![
                Some(oid::INT8),
                Some(oid::NUMERIC),
                Some(oid::INT8),
                Some(oid::INT8),
                Some(oid::NUMERIC),
                Some(oid::BOOL),
                Some(oid::INT8),
                Some(oid::NUMERIC),
                Some(oid::TEXT)
            ]
        );
    }
}
