//! Column defaults shardgate fills in itself: `DEFAULT shardgate.next_id()`.
//!
//! Shards cannot make ids unique across shards and routers, so such a
//! default never reaches them: DDL is rewritten without it (the shards'
//! columns have no default) and the metadata store records the column
//! ([`IdChange`]). An INSERT that leaves such a column out, writes
//! `DEFAULT` for it, or calls `shardgate.next_id()` in its VALUES gets
//! placeholders in those places ([`fill_insert`]); the session draws one id
//! per placeholder and [`crate::plan::Template::resolve_with_ids`] writes
//! them in as literals (or, to one shard with the client's parameters,
//! binds them as more parameters), so an id may also be the shard key.
//! Where no id can be drawn per row (INSERT ... SELECT leaving the column
//! out, `UPDATE ... SET id = DEFAULT`, an INSERT inside a WITH, MERGE) the
//! statement is refused rather than given NULLs (`NestedWrites`,
//! [`check_assignments`]).

use crate::analyze::{ident_name, object_parts};
use crate::error::SqlError;
use shardgate_core::Topology;
use sqlparser::ast::{
    self, AlterColumnOperation, AlterTableOperation, ColumnOption, DataType, Expr,
    FunctionArguments, GeneratedAs, ObjectName, ObjectType, SetExpr, Statement, Value, VisitMut,
    Visitor, VisitorMut,
};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// Is `e` a call of `shardgate.next_id()`?
pub fn is_next_id(e: &Expr) -> bool {
    let Expr::Function(f) = e else { return false };
    let parts = object_parts(&f.name);
    parts.len() == 2
        && parts[0] == "shardgate"
        && parts[1] == "next_id"
        && match &f.args {
            FunctionArguments::None => true,
            FunctionArguments::List(l) => l.args.is_empty(),
            FunctionArguments::Subquery(_) => false,
        }
}

/// Is `e` the keyword `DEFAULT` (as a VALUES item or SET value)?
fn is_default(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

/// How a DDL statement changes the recorded id columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdChange {
    /// CREATE TABLE: the table's id columns are these (`only_add`: IF NOT
    /// EXISTS, which may not have created anything).
    Set {
        /// The table.
        table: String,
        /// Its id columns.
        columns: Vec<String>,
        /// Keep columns recorded before.
        only_add: bool,
    },
    /// ALTER TABLE: several changes in order.
    Alter {
        /// The table.
        table: String,
        /// The changes.
        steps: Vec<AlterStep>,
    },
    /// DROP TABLE.
    Drop(Vec<String>),
}

/// One ALTER TABLE step that matters to id columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterStep {
    /// `ALTER COLUMN c SET DEFAULT shardgate.next_id()`.
    Add(String),
    /// Another default, `DROP DEFAULT` or `DROP COLUMN`.
    Remove(String),
    /// `RENAME COLUMN a TO b`.
    RenameColumn(String, String),
    /// `RENAME TO t`.
    RenameTable(String),
}

impl IdChange {
    /// Apply the change to the recorded id columns (table -> columns).
    pub fn apply(&self, map: &mut BTreeMap<String, Vec<String>>) {
        match self {
            IdChange::Set {
                table,
                columns,
                only_add,
            } => {
                let mut cols = if *only_add {
                    map.get(table).cloned().unwrap_or_default()
                } else {
                    Vec::new()
                };
                for c in columns {
                    if !cols.contains(c) {
                        cols.push(c.clone());
                    }
                }
                set(map, table, cols);
            }
            IdChange::Alter { table, steps } => {
                let mut table = table.clone();
                let mut cols = map.remove(&table).unwrap_or_default();
                for s in steps {
                    match s {
                        AlterStep::Add(c) => {
                            if !cols.contains(c) {
                                cols.push(c.clone());
                            }
                        }
                        AlterStep::Remove(c) => cols.retain(|x| x != c),
                        AlterStep::RenameColumn(a, b) => {
                            for x in cols.iter_mut().filter(|x| *x == a) {
                                x.clone_from(b);
                            }
                        }
                        AlterStep::RenameTable(t) => table.clone_from(t),
                    }
                }
                set(map, &table, cols);
            }
            IdChange::Drop(tables) => {
                for t in tables {
                    map.remove(t);
                }
            }
        }
    }
}

fn set(map: &mut BTreeMap<String, Vec<String>>, table: &str, cols: Vec<String>) {
    if cols.is_empty() {
        map.remove(table);
    } else {
        map.insert(table.to_string(), cols);
    }
}

/// What a DDL statement means for id columns.
#[derive(Debug, Clone, PartialEq)]
pub struct DdlIds {
    /// The change to record once the shards ran the statement.
    pub change: IdChange,
    /// The statement to send instead, without `shardgate.next_id()`
    /// defaults (`None`: send it as written).
    pub rewritten: Option<String>,
}

impl DdlIds {
    /// Does running the statement change which columns take
    /// `shardgate.next_id()` (what shardgate must record when it
    /// succeeds)? Not so for `SET DEFAULT shardgate.next_id()` of a column
    /// that already has it (ORMs repeat their schema).
    pub fn changes_ids(&self) -> bool {
        !matches!(&self.change, IdChange::Alter { steps, .. } if steps.is_empty())
    }
}

fn table_name(n: &ObjectName) -> String {
    object_parts(n).pop().unwrap_or_default()
}

/// Whether `e` calls `nextval` (a sequence).
fn calls_nextval(e: &Expr) -> bool {
    crate::find::any_expr(
        e,
        |x| matches!(x, Expr::Function(f) if object_parts(&f.name).last().is_some_and(|n| n == "nextval")),
    )
}

/// The id-column meaning of CREATE TABLE, ALTER TABLE and DROP TABLE;
/// `None` for statements that neither mention `shardgate.next_id()` nor
/// touch a table with id columns.
///
/// # Errors
/// A `shardgate.next_id()` default shardgate cannot honour: on a column
/// whose type cannot hold a bigint, or added to a table that may hold rows;
/// a sequence default or identity column on a placed table.
pub fn ddl(stmt: &Statement, topo: &Topology) -> Result<Option<DdlIds>, SqlError> {
    match stmt {
        Statement::CreateTable(ct) => {
            let mut out = stmt.clone();
            let Statement::CreateTable(oct) = &mut out else {
                return Ok(None);
            };
            let mut columns = Vec::new();
            // A table the configuration already shards (or copies): its
            // identity and serial columns would number rows on each shard
            // by itself (the same ids on every shard); shardgate draws
            // their ids instead, as for `DEFAULT shardgate.next_id()`.
            let ruled = topo.rule(&table_name(&ct.name)).is_some();
            for c in &mut oct.columns {
                let before = c.options.len();
                c.options
                    .retain(|o| !matches!(&o.option, ColumnOption::Default(e) if is_next_id(e)));
                let mut takes_ids = c.options.len() != before;
                if ruled {
                    let with_identity = c.options.len();
                    c.options.retain(|o| {
                        !matches!(
                            &o.option,
                            ColumnOption::Generated {
                                generation_expr: None,
                                generated_as: GeneratedAs::Always | GeneratedAs::ByDefault,
                                ..
                            }
                        )
                    });
                    if c.options.len() != with_identity {
                        takes_ids = true;
                        // (An identity column is NOT NULL.)
                        c.options.push(ast::ColumnOptionDef {
                            name: None,
                            option: ColumnOption::NotNull,
                        });
                    }
                    let ty = c.data_type.to_string().to_ascii_lowercase();
                    match ty.as_str() {
                        "bigserial" | "serial8" => {
                            c.data_type = DataType::BigInt(None);
                            c.options.push(ast::ColumnOptionDef {
                                name: None,
                                option: ColumnOption::NotNull,
                            });
                            columns.push(ident_name(&c.name));
                            continue;
                        }
                        "serial" | "serial4" | "smallserial" | "serial2" => {
                            return Err(SqlError::Unsupported(format!(
                                "column \"{}\" is {ty}: every shard would number its rows from 1 (the same ids on each); make it bigserial (shardgate then draws its ids, unique across shards)",
                                ident_name(&c.name)
                            )));
                        }
                        _ => {}
                    }
                }
                if takes_ids {
                    let ty = c.data_type.to_string().to_ascii_lowercase();
                    if !matches!(
                        ty.as_str(),
                        "bigint" | "int8" | "numeric" | "decimal" | "text"
                    ) && !ty.starts_with("numeric(")
                        && !ty.starts_with("decimal(")
                    {
                        return Err(SqlError::DatatypeMismatch(format!(
                            "column \"{}\" is of type {ty} but shardgate.next_id() returns bigint",
                            ident_name(&c.name)
                        )));
                    }
                    columns.push(ident_name(&c.name));
                }
            }
            let table = table_name(&ct.name);
            if columns.is_empty() && topo.id_columns(&table).is_empty() {
                return Ok(None);
            }
            let rewritten = (!columns.is_empty()).then(|| out.to_string());
            Ok(Some(DdlIds {
                change: IdChange::Set {
                    table,
                    columns,
                    only_add: ct.if_not_exists,
                },
                rewritten,
            }))
        }
        Statement::AlterTable(at) => {
            let table = table_name(&at.name);
            let mut out = stmt.clone();
            let Statement::AlterTable(oat) = &mut out else {
                return Ok(None);
            };
            let mut steps = Vec::new();
            let mut changed = false;
            for op in &mut oat.operations {
                match op {
                    AlterTableOperation::AddColumn { column_def, .. }
                        if column_def.options.iter().any(
                            |o| matches!(&o.option, ColumnOption::Default(e) if is_next_id(e)),
                        ) =>
                    {
                        return Err(SqlError::Unsupported(format!(
                            "ADD COLUMN ... DEFAULT shardgate.next_id() is not supported (the table's rows would need ids); add the column, fill it, then ALTER COLUMN {} SET DEFAULT shardgate.next_id()",
                            ident_name(&column_def.name)
                        )));
                    }
                    // On a table shardgate places, an identity or serial
                    // column would count on each shard by itself (the same
                    // ids on every shard).
                    AlterTableOperation::AddColumn { column_def, .. }
                        if topo.rule(&table).is_some()
                            && (column_def.options.iter().any(|o| {
                                matches!(
                                    &o.option,
                                    ColumnOption::Generated {
                                        generation_expr: None,
                                        generated_as: GeneratedAs::Always | GeneratedAs::ByDefault,
                                        ..
                                    }
                                )
                            }) || matches!(
                                column_def
                                    .data_type
                                    .to_string()
                                    .to_ascii_lowercase()
                                    .as_str(),
                                "bigserial"
                                    | "serial8"
                                    | "serial"
                                    | "serial4"
                                    | "smallserial"
                                    | "serial2"
                            )) =>
                    {
                        return Err(SqlError::Unsupported(format!(
                            "an identity or serial column on {table} would number rows on each shard by itself (the same ids on every shard); add a bigint column, fill it, then ALTER COLUMN {} SET DEFAULT shardgate.next_id()",
                            ident_name(&column_def.name)
                        )));
                    }
                    AlterTableOperation::AlterColumn { column_name, op } => match op {
                        AlterColumnOperation::SetDefault { value } if is_next_id(value) => {
                            steps.push(AlterStep::Add(ident_name(column_name)));
                            *op = AlterColumnOperation::DropDefault;
                            changed = true;
                        }
                        // A sequence would count on each shard by itself
                        // (an ORM re-creating a serial column's default it
                        // cannot see: TypeORM's second synchronize).
                        AlterColumnOperation::SetDefault { value }
                            if topo.rule(&table).is_some() && calls_nextval(value) =>
                        {
                            let c = ident_name(column_name);
                            let now = if topo.id_columns(&table).contains(&c) {
                                "; shardgate fills it with shardgate.next_id() (its default, which the shards do not show)"
                            } else {
                                "; use ALTER COLUMN ... SET DEFAULT shardgate.next_id()"
                            };
                            return Err(SqlError::Unsupported(format!(
                                "a sequence default on column \"{c}\" of {table} would number rows on each shard by itself (the same ids on every shard){now}"
                            )));
                        }
                        AlterColumnOperation::SetDefault { .. }
                        | AlterColumnOperation::DropDefault => {
                            steps.push(AlterStep::Remove(ident_name(column_name)));
                        }
                        _ => {}
                    },
                    AlterTableOperation::DropColumn { column_names, .. } => {
                        for c in column_names.iter() {
                            steps.push(AlterStep::Remove(ident_name(c)));
                        }
                    }
                    AlterTableOperation::RenameColumn {
                        old_column_name,
                        new_column_name,
                    } => steps.push(AlterStep::RenameColumn(
                        ident_name(old_column_name),
                        ident_name(new_column_name),
                    )),
                    AlterTableOperation::RenameTable { table_name: t } => {
                        let (ast::RenameTableNameKind::As(n) | ast::RenameTableNameKind::To(n)) = t;
                        steps.push(AlterStep::RenameTable(table_name(n)));
                    }
                    _ => {}
                }
            }
            // Only steps that touch a next_id() column matter (DDL of other
            // columns runs as any DDL, in a transaction block too).
            let ids = topo.id_columns(&table);
            steps.retain(|s| match s {
                AlterStep::Add(c) => !ids.contains(c),
                AlterStep::RenameTable(_) => true,
                AlterStep::Remove(c) | AlterStep::RenameColumn(c, _) => ids.contains(c),
            });
            if !changed && steps.is_empty() {
                return Ok(None);
            }
            Ok(Some(DdlIds {
                change: IdChange::Alter { table, steps },
                rewritten: changed.then(|| out.to_string()),
            }))
        }
        Statement::Drop {
            object_type: ObjectType::Table,
            names,
            ..
        } => {
            let tables: Vec<String> = names
                .iter()
                .map(table_name)
                .filter(|t| !topo.id_columns(t).is_empty())
                .collect();
            Ok((!tables.is_empty()).then_some(DdlIds {
                change: IdChange::Drop(tables),
                rewritten: None,
            }))
        }
        _ => Ok(None),
    }
}

/// An INSERT with placeholders where ids go.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertIds {
    /// The statement: ids are parameters `$first` .. `$first + count - 1`.
    pub stmt: Statement,
    /// The first id placeholder's number.
    pub first: usize,
    /// How many ids one execution needs.
    pub count: usize,
}

/// The highest `$n` in a statement (0 if none).
fn max_placeholder(stmt: &Statement) -> usize {
    let mut max = 0;
    let _ = sqlparser::ast::visit_expressions(stmt, |e| {
        if let Expr::Value(v) = e
            && let Value::Placeholder(p) = &v.value
        {
            max = max.max(p.trim_start_matches('$').parse::<usize>().unwrap_or(0));
        }
        ControlFlow::<()>::Continue(())
    });
    max
}

/// Replaces `shardgate.next_id()` calls by numbered placeholders.
struct Calls {
    next: usize,
}

impl VisitorMut for Calls {
    type Break = ();
    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if is_next_id(e) {
            *e = placeholder(self.next);
            self.next += 1;
        }
        ControlFlow::Continue(())
    }
}

fn placeholder(n: usize) -> Expr {
    Expr::Value(Value::Placeholder(format!("${n}")).into())
}

/// The INSERT with ids to fill in, or `None` when it needs none.
///
/// # Errors
/// An INSERT that would leave an id column without its id: a source other
/// than VALUES, or no column list where the table's columns are unknown.
pub fn fill_insert(stmt: &Statement, topo: &Topology) -> Result<Option<InsertIds>, SqlError> {
    let Statement::Insert(ins) = stmt else {
        return Ok(None);
    };
    let ast::TableObject::TableName(name) = &ins.table else {
        return Ok(None);
    };
    let table = table_name(name);
    let ids = topo.id_columns(&table);
    let mut has_call = false;
    if let Some(q) = &ins.source {
        let _ = sqlparser::ast::visit_expressions(q.as_ref(), |e| {
            has_call |= is_next_id(e);
            ControlFlow::<()>::Continue(())
        });
    }
    if ids.is_empty() && !has_call {
        return Ok(None);
    }
    let first = max_placeholder(stmt) + 1;
    let mut out = stmt.clone();
    let Statement::Insert(oi) = &mut out else {
        return Ok(None);
    };
    let mut next = first;
    let cols: Vec<String> = oi
        .columns
        .iter()
        .map(|c| object_parts(c).pop().unwrap_or_default())
        .collect();
    let values = match oi.source.as_mut().map(|q| q.body.as_mut()) {
        Some(SetExpr::Values(v)) => Some(v),
        _ => None,
    };
    let Some(values) = values else {
        if oi.source.is_none() && !ids.is_empty() {
            // DEFAULT VALUES: the ids are the only values.
            oi.columns = ids
                .iter()
                .map(|c| ObjectName::from(vec![ast::Ident::with_quote('"', c)]))
                .collect();
            let row: Vec<String> = ids
                .iter()
                .map(|_| format!("${}", first_next(&mut next)))
                .collect();
            oi.source = Some(Box::new(values_query(&row.join(", "))));
            return Ok(Some(InsertIds {
                stmt: out,
                first,
                count: next - first,
            }));
        }
        if let Some(c) = ids.iter().find(|c| !cols.contains(c)) {
            return Err(SqlError::Unsupported(format!(
                "INSERT INTO {table} without VALUES must list column {c}: its default, shardgate.next_id(), is drawn per row by shardgate"
            )));
        }
        if has_call {
            return Err(SqlError::Unsupported(
                "shardgate.next_id() is only supported in an INSERT's VALUES list".into(),
            ));
        }
        return Ok(None);
    };
    if cols.is_empty() && !ids.is_empty() {
        // Without a column list the values' columns would come from the
        // columns shardgate recorded, which ALTER TABLE may have changed.
        return Err(SqlError::Unsupported(format!(
            "INSERT INTO {table} needs a column list ({} defaults to shardgate.next_id(), which shardgate fills in)",
            ids[0]
        )));
    }
    // Explicit calls and DEFAULT in an id column become placeholders.
    for row in &mut values.rows {
        for (i, e) in row.content.iter_mut().enumerate() {
            if is_default(e) && cols.get(i).is_some_and(|c| ids.contains(c)) {
                *e = placeholder(first_next(&mut next));
            } else {
                let mut calls = Calls { next };
                let _ = e.visit(&mut calls);
                next = calls.next;
            }
        }
    }
    // Id columns the statement leaves out are added.
    for c in ids {
        if !cols.contains(c) {
            oi.columns
                .push(ObjectName::from(vec![ast::Ident::with_quote('"', c)]));
            for row in &mut values.rows {
                row.content.push(placeholder(first_next(&mut next)));
            }
        }
    }
    if next == first {
        return Ok(None);
    }
    Ok(Some(InsertIds {
        stmt: out,
        first,
        count: next - first,
    }))
}

fn first_next(next: &mut usize) -> usize {
    *next += 1;
    *next - 1
}

/// `VALUES (items)` as a query.
fn values_query(items: &str) -> ast::Query {
    let sql = format!("VALUES ({items})");
    match sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, &sql)
        .ok()
        .and_then(|mut v| v.pop())
    {
        Some(Statement::Query(q)) => *q,
        _ => unreachable!("VALUES of placeholders parses"),
    }
}

/// Refuse `SET c = DEFAULT` (in UPDATE or ON CONFLICT DO UPDATE) of an id
/// column: the shards have no such default, the column would become NULL.
///
/// # Errors
/// Such an assignment.
pub fn check_assignments(
    table: &str,
    assignments: &[ast::Assignment],
    topo: &Topology,
) -> Result<(), SqlError> {
    let ids = topo.id_columns(table);
    for a in assignments {
        let names: Vec<String> = match &a.target {
            ast::AssignmentTarget::ColumnName(c) => {
                vec![object_parts(c).pop().unwrap_or_default()]
            }
            ast::AssignmentTarget::Tuple(cs) => cs
                .iter()
                .map(|c| object_parts(c).pop().unwrap_or_default())
                .collect(),
        };
        let defaults = match &a.value {
            Expr::Tuple(items) => items.iter().any(is_default),
            v => is_default(v),
        };
        if names.iter().any(|n| ids.contains(n)) && defaults {
            return Err(SqlError::Unsupported(format!(
                "SET {} = DEFAULT is not supported: its default, shardgate.next_id(), is drawn by shardgate for INSERTs only",
                names.join(", ")
            )));
        }
        if is_next_id(&a.value) {
            return Err(SqlError::Unsupported(
                "shardgate.next_id() is only supported in an INSERT's VALUES list".into(),
            ));
        }
    }
    Ok(())
}

/// Finds writes into tables with id columns that [`fill_insert`] does not
/// see: an INSERT inside a WITH (or any INSERT but the statement itself),
/// and MERGE. They would leave the columns NULL, so they are refused (the
/// analysis walks a statement once with this and its other checks:
/// `analyze::survey`).
pub(crate) struct NestedWrites<'a> {
    topo: &'a Topology,
    depth: usize,
    /// The refusal, once found.
    pub(crate) err: Option<SqlError>,
}

impl<'a> NestedWrites<'a> {
    pub(crate) fn new(topo: &'a Topology) -> Self {
        NestedWrites {
            topo,
            depth: 0,
            err: None,
        }
    }
}

impl Visitor for NestedWrites<'_> {
    type Break = ();
    fn pre_visit_statement(&mut self, st: &Statement) -> ControlFlow<()> {
        self.depth += 1;
        if self.err.is_some() || self.topo.id_defaults.is_empty() {
            return ControlFlow::Continue(());
        }
        let target = match st {
            Statement::Insert(i) if self.depth > 1 => match &i.table {
                ast::TableObject::TableName(n) => Some(table_name(n)),
                _ => None,
            },
            Statement::Merge(m) => match &m.table {
                ast::TableFactor::Table { name, .. } => Some(table_name(name)),
                _ => None,
            },
            _ => None,
        };
        if let Some(t) = target
            && !self.topo.id_columns(&t).is_empty()
        {
            self.err = Some(SqlError::Unsupported(format!(
                "this write into {t} is not supported: its column {} defaults to shardgate.next_id(), which shardgate fills in only for a plain INSERT ... VALUES",
                self.topo.id_columns(&t)[0]
            )));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
    fn post_visit_statement(&mut self, _: &Statement) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// Replace the id placeholders `$first..` of `stmt` by the ids, as
/// integer literals.
pub(crate) fn write_ids(stmt: &mut Statement, first: usize, ids: &[i64]) {
    struct W<'a> {
        first: usize,
        ids: &'a [i64],
    }
    impl VisitorMut for W<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Value(v) = e
                && let Value::Placeholder(p) = &v.value
                && let Ok(n) = p.trim_start_matches('$').parse::<usize>()
                && n >= self.first
                && let Some(id) = self.ids.get(n - self.first)
            {
                *e = Expr::Value(Value::Number(id.to_string(), false).into());
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut W { first, ids });
}

/// Replace the id placeholders by `0::bigint` (to describe the statement).
pub(crate) fn write_typed_zeros(stmt: &mut Statement, first: usize, count: usize) {
    struct W {
        first: usize,
        count: usize,
    }
    impl VisitorMut for W {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Value(v) = e
                && let Value::Placeholder(p) = &v.value
                && let Ok(n) = p.trim_start_matches('$').parse::<usize>()
                && (self.first..self.first + self.count).contains(&n)
            {
                *e = Expr::Cast {
                    kind: ast::CastKind::DoubleColon,
                    expr: Box::new(Expr::Value(Value::Number("0".into(), false).into())),
                    data_type: ast::DataType::BigInt(None),
                    format: None,
                };
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut W { first, count });
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardgate_core::{ShardId, Strategy, TableKind, TableRule};
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn check_nested(stmt: &Statement, topo: &Topology) -> Result<(), SqlError> {
        use sqlparser::ast::Visit;
        let mut v = NestedWrites::new(topo);
        let _ = stmt.visit(&mut v);
        v.err.map_or(Ok(()), Err)
    }

    fn parse(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap()
    }

    fn topo() -> Topology {
        let mut t = Topology {
            shard_names: vec!["s0".into(), "s1".into()],
            ..Topology::default()
        };
        t.id_defaults.insert("t".into(), vec!["id".into()]);
        let mut rule = TableRule::sharded(
            "o",
            vec!["id".into()],
            Strategy::hash(&[ShardId(0), ShardId(1)]).unwrap(),
        );
        if let TableKind::Sharded { all_columns, .. } = &mut rule.kind {
            *all_columns = vec!["id".into(), "a".into(), "b".into()];
        }
        t.rules.insert("o".into(), rule.into());
        t.id_defaults.insert("o".into(), vec!["id".into()]);
        t
    }

    fn filled(sql: &str) -> Option<(String, usize, usize)> {
        fill_insert(&parse(sql), &topo())
            .unwrap()
            .map(|f| (f.stmt.to_string(), f.first, f.count))
    }

    #[test]
    fn create_table_loses_the_default_and_records_it() {
        let d = ddl(
            &parse("CREATE TABLE x (id bigint PRIMARY KEY DEFAULT shardgate.next_id(), v text DEFAULT 'a')"),
            &topo(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            d.rewritten.as_deref(),
            Some("CREATE TABLE x (id BIGINT PRIMARY KEY, v TEXT DEFAULT 'a')")
        );
        let mut m = BTreeMap::new();
        d.change.apply(&mut m);
        assert_eq!(m.get("x"), Some(&vec!["id".to_string()]));
        // Recreating the table without it forgets it.
        let d = ddl(&parse("CREATE TABLE t (id bigint)"), &topo())
            .unwrap()
            .unwrap();
        let mut m = BTreeMap::from([("t".to_string(), vec!["id".to_string()])]);
        d.change.apply(&mut m);
        assert!(m.is_empty());
        assert!(
            ddl(&parse("CREATE TABLE y (id bigint)"), &topo())
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            ddl(
                &parse("CREATE TABLE z (id int DEFAULT shardgate.next_id())"),
                &topo()
            ),
            Err(SqlError::DatatypeMismatch(_))
        ));
    }

    #[test]
    fn identity_and_serial_columns_of_a_ruled_table_take_ids() {
        // "o" is sharded by the configuration.
        let d = ddl(
            &parse("CREATE TABLE o (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, a bigserial, b text)"),
            &topo(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            d.rewritten.as_deref(),
            Some("CREATE TABLE o (id BIGINT PRIMARY KEY NOT NULL, a BIGINT NOT NULL, b TEXT)")
        );
        let mut m = BTreeMap::new();
        d.change.apply(&mut m);
        assert_eq!(m.get("o"), Some(&vec!["id".to_string(), "a".to_string()]));
        for sql in [
            "CREATE TABLE o (id serial PRIMARY KEY)",
            "CREATE TABLE o (id integer GENERATED ALWAYS AS IDENTITY)",
        ] {
            assert!(ddl(&parse(sql), &topo()).is_err(), "{sql}");
        }
        // A table with no rule yet keeps them (shard_table converts them).
        assert!(
            ddl(
                &parse("CREATE TABLE x (id bigint GENERATED ALWAYS AS IDENTITY, a bigserial)"),
                &topo()
            )
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn sequence_defaults_on_placed_tables_are_refused() {
        for sql in [
            "ALTER TABLE o ALTER COLUMN id SET DEFAULT nextval('\"o_id_seq\"')",
            "ALTER TABLE o ALTER COLUMN a SET DEFAULT nextval('s'::regclass)",
        ] {
            let e = ddl(&parse(sql), &topo()).unwrap_err();
            assert_eq!(e.sqlstate(), "0A000", "{sql}");
            assert!(e.to_string().contains("sequence default"), "{e}");
        }
        // Not placed by shardgate: its own shard's sequence.
        assert!(
            ddl(
                &parse("ALTER TABLE u ALTER COLUMN a SET DEFAULT nextval('s')"),
                &topo()
            )
            .is_ok()
        );
        assert!(
            ddl(
                &parse("ALTER TABLE o ALTER COLUMN a SET DEFAULT 7"),
                &topo()
            )
            .is_ok()
        );
    }

    #[test]
    fn alter_table_steps() {
        let d = ddl(
            &parse("ALTER TABLE q ALTER COLUMN k SET DEFAULT shardgate.next_id()"),
            &topo(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            d.rewritten.as_deref(),
            Some("ALTER TABLE q ALTER COLUMN k DROP DEFAULT")
        );
        let mut m = BTreeMap::new();
        d.change.apply(&mut m);
        assert_eq!(m.get("q"), Some(&vec!["k".to_string()]));
        for (sql, after) in [
            ("ALTER TABLE q RENAME COLUMN k TO j", Some(("q", "j"))),
            ("ALTER TABLE q RENAME TO r", Some(("r", "k"))),
            ("ALTER TABLE q ALTER COLUMN k DROP DEFAULT", None),
            ("ALTER TABLE q ALTER COLUMN k SET DEFAULT 7", None),
            ("ALTER TABLE q DROP COLUMN k", None),
            ("DROP TABLE q", None),
        ] {
            let mut t = topo();
            t.id_defaults.insert("q".into(), vec!["k".into()]);
            let d = ddl(&parse(sql), &t).unwrap().unwrap();
            assert_eq!(d.rewritten, None, "{sql}");
            let mut m = BTreeMap::from([("q".to_string(), vec!["k".to_string()])]);
            d.change.apply(&mut m);
            let want: BTreeMap<String, Vec<String>> = after
                .map(|(t, c)| (t.to_string(), vec![c.to_string()]))
                .into_iter()
                .collect();
            assert_eq!(m, want, "{sql}");
        }
        assert!(
            ddl(
                &parse("ALTER TABLE q ADD COLUMN k bigint DEFAULT shardgate.next_id()"),
                &topo()
            )
            .is_err()
        );
        // An identity or serial column added to a table shardgate places
        // is refused ("o" is sharded).
        for sql in [
            "ALTER TABLE o ADD COLUMN n bigserial",
            "ALTER TABLE o ADD COLUMN n bigint GENERATED BY DEFAULT AS IDENTITY",
        ] {
            assert_eq!(
                ddl(&parse(sql), &topo()).unwrap_err().sqlstate(),
                "0A000",
                "{sql}"
            );
        }
        assert!(ddl(&parse("ALTER TABLE x ADD COLUMN n bigserial"), &topo()).is_ok());
        // DDL of other columns of a table with id columns records nothing
        // (it may run in a transaction block); nor does setting the
        // default a column already has.
        let mut t = topo();
        t.id_defaults.insert("q".into(), vec!["k".into()]);
        for sql in [
            "ALTER TABLE q ALTER COLUMN v DROP DEFAULT",
            "ALTER TABLE q ALTER COLUMN v SET NOT NULL",
            "ALTER TABLE q DROP COLUMN v",
            "ALTER TABLE q RENAME COLUMN v TO w",
        ] {
            assert!(ddl(&parse(sql), &t).unwrap().is_none(), "{sql}");
        }
        let again = ddl(
            &parse("ALTER TABLE q ALTER COLUMN k SET DEFAULT shardgate.next_id()"),
            &t,
        )
        .unwrap()
        .unwrap();
        assert!(!again.changes_ids());
        assert!(again.rewritten.is_some());
        // Tables without id columns are left alone.
        assert!(
            ddl(&parse("ALTER TABLE q ADD COLUMN k bigint"), &topo())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn inserts_get_placeholders() {
        assert_eq!(
            filled("INSERT INTO t (v) VALUES ($1), ($2)"),
            Some((
                "INSERT INTO t (v, \"id\") VALUES ($1, $3), ($2, $4)".into(),
                3,
                2
            ))
        );
        assert_eq!(
            filled("INSERT INTO t (id, v) VALUES (DEFAULT, 1), (5, 2) RETURNING id"),
            Some((
                "INSERT INTO t (id, v) VALUES ($1, 1), (5, 2) RETURNING id".into(),
                1,
                1
            ))
        );
        // Without a column list: refused (the recorded columns may be stale).
        assert!(fill_insert(&parse("INSERT INTO o VALUES (DEFAULT, 1)"), &topo()).is_err());
        assert_eq!(
            filled("INSERT INTO o (a) VALUES (1)"),
            Some(("INSERT INTO o (a, \"id\") VALUES (1, $1)".into(), 1, 1))
        );
        // Explicit calls, in any table.
        assert_eq!(
            filled("INSERT INTO z (a, b) VALUES (shardgate.next_id(), shardgate.next_id() + 1)"),
            Some(("INSERT INTO z (a, b) VALUES ($1, $2 + 1)".into(), 1, 2))
        );
        assert_eq!(
            filled("INSERT INTO t DEFAULT VALUES"),
            Some(("INSERT INTO t (\"id\") VALUES ($1)".into(), 1, 1))
        );
        assert_eq!(filled("INSERT INTO z (a) VALUES (1)"), None);
        assert_eq!(filled("INSERT INTO t (id, v) VALUES (1, 2)"), None);
        assert_eq!(filled("INSERT INTO t (id, v) SELECT 1, 2"), None);
        assert!(fill_insert(&parse("INSERT INTO t (v) SELECT 1"), &topo()).is_err());
        assert!(fill_insert(&parse("INSERT INTO t VALUES (1)"), &topo()).is_err());
    }

    #[test]
    fn ids_are_written_as_literals() {
        let f = fill_insert(&parse("INSERT INTO t (v) VALUES ($1), ($2)"), &topo())
            .unwrap()
            .unwrap();
        let mut s = f.stmt.clone();
        write_ids(&mut s, f.first, &[1 << 40, (1 << 40) + 1]);
        assert_eq!(
            s.to_string(),
            "INSERT INTO t (v, \"id\") VALUES ($1, 1099511627776), ($2, 1099511627777)"
        );
    }

    #[test]
    fn default_assignments_of_id_columns_are_refused() {
        let Statement::Update(u) = parse("UPDATE t SET id = DEFAULT") else {
            unreachable!()
        };
        assert!(check_assignments("t", &u.assignments, &topo()).is_err());
        let Statement::Update(u) = parse("UPDATE t SET (v, id) = (1, DEFAULT)") else {
            unreachable!()
        };
        assert!(check_assignments("t", &u.assignments, &topo()).is_err());
        for sql in [
            "WITH x AS (INSERT INTO t (v) VALUES (1) RETURNING id) SELECT * FROM x",
            "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (v) VALUES (s.v)",
        ] {
            assert!(check_nested(&parse(sql), &topo()).is_err(), "{sql}");
        }
        assert!(check_nested(&parse("INSERT INTO t (v) VALUES (1)"), &topo()).is_ok());
        assert!(
            check_nested(
                &parse("WITH x AS (INSERT INTO z (v) VALUES (1) RETURNING v) SELECT * FROM x"),
                &topo()
            )
            .is_ok()
        );
        let Statement::Update(u) = parse("UPDATE t SET v = DEFAULT") else {
            unreachable!()
        };
        assert!(check_assignments("t", &u.assignments, &topo()).is_ok());
    }
}
