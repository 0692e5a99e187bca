//! UPDATE of a shard key: the rows move to the shards of their new keys.
//!
//! `UPDATE t SET k = k + 100, v = 'x' WHERE ...` becomes, in one
//! transaction (two-phase when more than one shard is written):
//!
//! 1. on the shards the WHERE reaches, `DELETE FROM t WHERE ... RETURNING
//!    <the new row>`, each column being its SET expression (evaluated on
//!    the old row, as UPDATE does) or itself;
//! 2. on the shard of each returned row's new key, `INSERT INTO t (...)
//!    OVERRIDING SYSTEM VALUE VALUES (...)` with those values (and the
//!    statement's RETURNING list), the row count reported as `UPDATE n`.
//!
//! The difference from an UPDATE in place is visible to triggers (DELETE
//! and INSERT triggers fire instead of UPDATE ones) and to foreign keys: a
//! table that other tables reference is refused at run time (an ON DELETE
//! action would see the delete). And to unique indexes: PostgreSQL checks
//! them row by row as it updates, so a row taking a value another updated
//! row still holds fails (a swap of two keys: 23505), where deleting all
//! first would let it pass; the DELETE also returns the old values of the
//! SET columns, and the router fails such a move as PostgreSQL would.

use crate::analyze::object_parts;
use crate::error::SqlError;
use crate::plan::Template;
use shardgate_core::{TableKind, TableRule, Topology};
use sqlparser::ast::{self, Expr, Statement, TableFactor};
use std::sync::Arc;

/// The SQL of a key move, parameters inlined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveSql {
    /// `DELETE ... RETURNING <new row>`.
    pub delete: String,
    /// `INSERT INTO t [AS a] (columns) OVERRIDING SYSTEM VALUE VALUES `.
    pub insert_head: String,
    /// ` RETURNING ...` of the statement, if it has one.
    pub returning: Option<String>,
    /// The statement with `WHERE false`: the reply (RETURNING columns,
    /// `UPDATE 0`) when no row matched.
    pub none: String,
    /// For each column, whether the DELETE returns a SET expression (its
    /// value is written back with the expression's type, which the
    /// column's assignment cast then converts, as UPDATE does).
    pub assigned: Vec<bool>,
    /// After the new row, the DELETE returns the old value of each SET
    /// column: their column positions, in that order.
    pub old_values: Vec<usize>,
}

/// An UPDATE that changes shard keys, planned as a DELETE and INSERTs.
#[derive(Debug, Clone)]
pub struct MoveTemplate {
    /// The table's rule.
    pub rule: Arc<TableRule>,
    /// The UPDATE (parameters still open).
    update: Box<ast::Update>,
    /// Its SQL when it has no parameters.
    sql: MoveSql,
    /// Where the DELETE goes (analysed like any DELETE, with the
    /// statement's parameters).
    pub delete: Box<Template>,
    /// The table's columns, in the order the DELETE returns them.
    pub columns: Vec<String>,
    /// The position in `columns` of each shard-key column, in key order.
    pub key_positions: Vec<usize>,
    /// The integer key columns (their new values are cast to bigint).
    int_keys: Vec<String>,
}

impl MoveTemplate {
    /// The SQL with `params` inlined.
    ///
    /// # Errors
    /// A parameter that cannot be written as a literal.
    pub fn sql(&self, params: &crate::params::Params<'_>) -> Result<MoveSql, SqlError> {
        if params.is_empty() {
            return Ok(self.sql.clone());
        }
        let mut st = Statement::Update((*self.update).clone());
        crate::rewrite::inline_statement(&mut st, params)?;
        let Statement::Update(u) = st else {
            return Err(SqlError::Invalid("not an UPDATE".into()));
        };
        Ok(render(&u, &self.columns, &self.int_keys))
    }
}

fn refuse(why: &str) -> SqlError {
    SqlError::Unsupported(format!(
        "an UPDATE of a shard key (the rows move to other shards) {why}"
    ))
}

fn quote(c: &str) -> String {
    format!("\"{}\"", c.replace('"', "\"\""))
}

/// The move's SQL for `u` over a table with `columns`, of which
/// `int_keys` are integer key columns.
fn render(u: &ast::Update, columns: &[String], int_keys: &[String]) -> MoveSql {
    let target = match &u.table.relation {
        TableFactor::Table {
            name,
            alias: Some(a),
            ..
        } => format!("{name} AS {}", a.name),
        TableFactor::Table { name, .. } => name.to_string(),
        other => other.to_string(),
    };
    let set = |c: &str| {
        u.assignments.iter().rev().find_map(|a| match &a.target {
            ast::AssignmentTarget::ColumnName(n) if object_parts(n).pop().as_deref() == Some(c) => {
                Some(&a.value)
            }
            _ => None,
        })
    };
    let new_row: Vec<String> = columns
        .iter()
        .map(|c| match set(c) {
            // An integer key's new value as the column will hold it (a
            // numeric rounds, as UPDATE assigns it): the shard it goes to
            // is the stored value's.
            Some(e) if int_keys.contains(c) => format!("CAST(({e}) AS bigint)"),
            Some(e) => format!("({e})"),
            None => quote(c),
        })
        .collect();
    let old_values: Vec<usize> = (0..columns.len())
        .filter(|i| set(&columns[*i]).is_some())
        .collect();
    let old_row = old_values
        .iter()
        .map(|i| format!(", {}", quote(&columns[*i])));
    let delete = format!(
        "DELETE FROM {target}{} RETURNING {}{}",
        u.selection
            .as_ref()
            .map(|w| format!(" WHERE {w}"))
            .unwrap_or_default(),
        new_row.join(", "),
        old_row.collect::<String>()
    );
    let insert_head = format!(
        "INSERT INTO {target} ({}) OVERRIDING SYSTEM VALUE VALUES ",
        columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let returning = u.returning.as_ref().map(|r| {
        format!(
            " RETURNING {}",
            r.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    let mut none = u.clone();
    none.selection = Some(Expr::Value(ast::Value::Boolean(false).into()));
    MoveSql {
        delete,
        insert_head,
        returning,
        none: Statement::Update(none).to_string(),
        assigned: columns.iter().map(|c| set(c).is_some()).collect(),
        old_values,
    }
}

/// Plan `u`, an UPDATE of `rule`'s table that assigns a key column.
///
/// # Errors
/// Shapes that cannot move rows safely are refused (FROM, subqueries or
/// DEFAULT in SET, tuple assignments, unknown column lists).
pub(crate) fn plan_move(
    u: &ast::Update,
    rule: &Arc<TableRule>,
    topo: &Topology,
) -> Result<Template, SqlError> {
    let TableKind::Sharded {
        columns: keys,
        all_columns,
        ..
    } = &rule.kind
    else {
        return Err(refuse("needs a sharded table"));
    };
    if u.from.is_some() {
        return Err(refuse("with FROM is not supported yet"));
    }
    if all_columns.is_empty() {
        return Err(refuse(
            "needs the table's columns, which shardgate learns when the table is created through it",
        ));
    }
    if !matches!(&u.table.relation, TableFactor::Table { .. }) || !u.table.joins.is_empty() {
        return Err(refuse("of this form is not supported"));
    }
    let mut assigned: Vec<String> = Vec::new();
    for a in &u.assignments {
        let ast::AssignmentTarget::ColumnName(c) = &a.target else {
            return Err(refuse("with a tuple assignment is not supported yet"));
        };
        let parts = object_parts(c);
        if parts.len() > 1 {
            // PostgreSQL reads `SET t.k = ...` as the field `k` of a
            // column `t`.
            return Err(SqlError::State(
                "42703",
                format!(
                    "column \"{}\" of relation \"{}\" does not exist",
                    parts[0], rule.table
                ),
            ));
        }
        let col = object_parts(c).pop().unwrap_or_default();
        if assigned.contains(&col) {
            return Err(SqlError::State(
                "42601",
                format!("multiple assignments to same column \"{col}\""),
            ));
        }
        assigned.push(col.clone());
        if !all_columns.contains(&col) {
            return Err(SqlError::Invalid(format!(
                "column \"{col}\" of relation \"{}\" does not exist",
                rule.table
            )));
        }
        if a.value.to_string().eq_ignore_ascii_case("default") || has_subquery(&a.value) {
            return Err(refuse(
                "with DEFAULT or a subquery in SET is not supported yet",
            ));
        }
    }
    let key_positions = keys
        .iter()
        .map(|k| all_columns.iter().position(|c| c == k))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| refuse("needs every key column in the table's column list"))?;
    let TableKind::Sharded { key_types, .. } = &rule.kind else {
        unreachable!("checked above");
    };
    let int_keys: Vec<String> = keys
        .iter()
        .zip(key_types)
        .filter(|(_, t)| matches!(t, Some(shardgate_core::KeyType::Int)))
        .map(|(k, _)| k.clone())
        .collect();
    let sql = render(u, all_columns, &int_keys);
    let delete = crate::analyze::analyze(&sql.delete, topo);
    match &delete {
        Template::Refuse(e) => return Err(e.clone()),
        Template::Route { .. } => {}
        // (Its rows would have to be read first, then moved.)
        _ => {
            return Err(refuse(
                "whose WHERE needs a subquery or another table read first is not supported yet",
            ));
        }
    }
    Ok(Template::Move(Box::new(MoveTemplate {
        rule: rule.clone(),
        update: Box::new(u.clone()),
        sql,
        delete: Box::new(delete),
        columns: all_columns.clone(),
        key_positions,
        int_keys,
    })))
}

fn has_subquery(e: &Expr) -> bool {
    crate::find::any_expr(e, |e| {
        matches!(
            e,
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
        )
    })
}

/// Is `name` (an UPDATE's column) one of `rule`'s key columns?
pub(crate) fn assigns_key(u: &ast::Update, rule: &TableRule) -> bool {
    u.assignments.iter().any(|a| {
        let cols: Vec<&ast::ObjectName> = match &a.target {
            ast::AssignmentTarget::ColumnName(c) => vec![c],
            ast::AssignmentTarget::Tuple(cs) => cs.iter().collect(),
        };
        cols.iter().any(|c| {
            let col = object_parts(c).pop().unwrap_or_default();
            rule.key_columns().contains(&col)
        })
    })
}
