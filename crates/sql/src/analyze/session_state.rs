//! Statements that would leave state on a pooled shard connection that
//! shardgate cannot see, and so cannot replay for this session or clear
//! for the next one: refused with a clear error instead of leaking into
//! other clients' sessions (or silently not working).
//!
//! `SET` is tracked (replayed on each shard connection a session uses);
//! what is refused here changes the session from inside a query
//! (`set_config(..., false)`), holds session-level locks, listens for
//! notifications, or creates a temporary table that outlives its
//! transaction.

use crate::analyze::ident_name;
use crate::error::SqlError;
use sqlparser::ast::{self, Expr, Statement, Visit, Visitor};
use std::ops::ControlFlow;

/// Functions that change or hold session state; the fast path (which does
/// not parse) leaves a statement naming one to full analysis.
pub(crate) const SESSION_FUNCTIONS: &[&str] = &[
    "set_config",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
];

/// Why `stmt` (whose text is `sql`) cannot run through shardgate's pooled
/// shard connections, if it cannot. Expressions are searched only when the
/// text names such a function at all (most statements do not).
pub(crate) fn refusal(stmt: &Statement, sql: &str) -> Option<SqlError> {
    match stmt {
        Statement::LISTEN { .. } => {
            return Some(SqlError::Unsupported(
                "LISTEN is not supported through shardgate: it would listen on a pooled shard connection, and notifications would not reach this session".into(),
            ));
        }
        // (Sequelize's findOrCreate outside a transaction makes one.)
        Statement::CreateFunction(f)
            if f.temporary
                || crate::analyze::object_parts(&f.name)
                    .first()
                    .is_some_and(|s| s == "pg_temp" || s.starts_with("pg_temp_")) =>
        {
            return Some(SqlError::Unsupported(
                "a function in pg_temp would be created on every shard's pooled connection, and the statements in its body would run there without shardgate routing them: not supported; use a plain statement, or a function created in a schema".into(),
            ));
        }
        Statement::CreateTable(ct) if ct.temporary && ct.on_commit != Some(ast::OnCommit::Drop) => {
            return Some(SqlError::Unsupported(
                "a temporary table would stay on a pooled shard connection after its transaction (other sessions would see it, this one might not): create it with ON COMMIT DROP inside a transaction block".into(),
            ));
        }
        _ => {}
    }
    let names = |needle: &str| {
        sql.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    };
    if !names("set_config") && !names("advisory") {
        return None;
    }
    struct F(Option<SqlError>);
    impl Visitor for F {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let Expr::Function(f) = e else {
                return ControlFlow::Continue(());
            };
            let Some(name) = f.name.0.last().and_then(|p| p.as_ident()).map(ident_name) else {
                return ControlFlow::Continue(());
            };
            if name == "set_config" && !is_local(f) {
                self.0 = Some(SqlError::Unsupported(
                    "set_config(..., false) changes a setting for the rest of the session from inside a query, which shardgate cannot track across its pooled shard connections: use SET (tracked for the session), or set_config(..., true) inside a transaction".into(),
                ));
            } else if name != "set_config"
                && name != "pg_advisory_unlock_all"
                && SESSION_FUNCTIONS.contains(&name.as_str())
            {
                // (pg_advisory_unlock_all runs: no session lock can be
                // taken through shardgate, so it has nothing to release;
                // asyncpg's pool calls it on every release.)
                self.0 = Some(SqlError::Unsupported(format!(
                    "{name}: a session-level advisory lock would be held by a pooled shard connection, not by this session: use pg_advisory_xact_lock (or pg_try_advisory_xact_lock) inside a transaction"
                )));
            }
            if self.0.is_some() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }
    let mut f = F(None);
    let _ = stmt.visit(&mut f);
    f.0
}

/// `SELECT [pg_catalog.]set_config('name', value, false)`, with no FROM,
/// the value a constant string or a bind parameter, next to it only
/// `current_setting(...)` calls of constants (asyncpg's `SELECT
/// current_setting('jit') AS cur, set_config('jit', 'off', false) AS
/// new`): the same as SET, so tracked like it
/// ([`crate::plan::Local::SetConfig`]). Also pg_dump's `SELECT
/// set_config(name, 'value', false) FROM pg_settings WHERE name = 'x'` (a
/// SET of x where the server has it).
pub(crate) fn set_config_statement(stmt: &Statement) -> Option<crate::plan::Local> {
    let Statement::Query(q) = stmt else {
        return None;
    };
    let ast::SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    let grouped = !matches!(&s.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty());
    if q.with.is_some()
        || q.order_by.is_some()
        || q.limit_clause.is_some()
        || q.fetch.is_some()
        || s.distinct.is_some()
        || s.having.is_some()
        || grouped
        || s.projection.is_empty()
    {
        return None;
    }
    // The pg_settings form: FROM pg_settings WHERE name = 'x'.
    let settings_name = match (s.from.as_slice(), &s.selection) {
        ([], None) => None,
        (
            [t],
            Some(Expr::BinaryOp {
                left,
                op: ast::BinaryOperator::Eq,
                right,
            }),
        ) if t.joins.is_empty()
            && s.projection.len() == 1
            && matches!(&t.relation, ast::TableFactor::Table { name, .. }
                    if matches!(crate::analyze::object_parts(name).as_slice(),
                        [n] | [_, n] if n == "pg_settings"))
            && matches!(left.as_ref(), Expr::Identifier(i) if ident_name(i) == "name") =>
        {
            match right.as_ref() {
                Expr::Value(v) => match &v.value {
                    ast::Value::SingleQuotedString(s) => Some(s.clone()),
                    _ => return None,
                },
                _ => return None,
            }
        }
        _ => return None,
    };
    // Each output column: the set_config call (exactly one) or a
    // current_setting call of constants, written again as it was.
    let mut set_call = None;
    let mut columns = Vec::with_capacity(s.projection.len());
    for item in &s.projection {
        let (f, alias) = match item {
            ast::SelectItem::UnnamedExpr(Expr::Function(f)) => (f, None),
            ast::SelectItem::ExprWithAlias {
                expr: Expr::Function(f),
                alias,
            } => (f, Some(ident_name(alias))),
            _ => return None,
        };
        let parts: Vec<String> = f
            .name
            .0
            .iter()
            .filter_map(|p| p.as_ident().map(ident_name))
            .collect();
        let fname = match parts.as_slice() {
            [n] => n.clone(),
            [schema, n] if schema == "pg_catalog" => n.clone(),
            _ => return None,
        };
        let column = alias.unwrap_or_else(|| fname.clone());
        match fname.as_str() {
            "set_config" if set_call.is_none() => {
                set_call = Some(f);
                columns.push((column, None));
            }
            "current_setting" if settings_name.is_none() && constant_args(f) => {
                columns.push((column, Some(Expr::Function(f.clone()).to_string())));
            }
            _ => return None,
        }
    }
    let f = set_call?;
    let ast::FunctionArguments::List(l) = &f.args else {
        return None;
    };
    let text = |a: &ast::FunctionArg| match a {
        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    let [n, v, local] = l.args.as_slice() else {
        return None;
    };
    let off = match local {
        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::Value(v))) => {
            matches!(v.value, ast::Value::Boolean(false))
                || matches!(&v.value, ast::Value::SingleQuotedString(s) if matches!(s.to_ascii_lowercase().as_str(), "false" | "f" | "off" | "no" | "0"))
        }
        _ => false,
    };
    // The value: a constant, or `$n` (read when the statement is bound).
    let param = match v {
        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::Value(pv))) => match &pv.value {
            ast::Value::Placeholder(p) if settings_name.is_none() => {
                Some(p.strip_prefix('$')?.parse::<usize>().ok()?)
            }
            _ => None,
        },
        _ => None,
    };
    let value = match param {
        Some(_) => String::new(),
        None => text(v)?,
    };
    let name = match (&settings_name, n) {
        (
            Some(setting),
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::Identifier(i))),
        ) if ident_name(i) == "name" => setting.clone(),
        (Some(_), _) => return None,
        (None, n) => text(n)?,
    };
    if !off
        || name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return None;
    }
    let lit = value.replace('\'', "''");
    Some(match settings_name {
        Some(_) => crate::plan::Local::SetConfig {
            sql: format!(
                "SELECT pg_catalog.set_config(name, '{lit}', false) FROM pg_catalog.pg_settings WHERE name = '{name}'"
            ),
            name: name.to_ascii_lowercase(),
            value: None,
            param: None,
            columns: Vec::new(),
        },
        None => crate::plan::Local::SetConfig {
            sql: format!("SELECT pg_catalog.set_config('{name}', '{lit}', false)"),
            name: name.to_ascii_lowercase(),
            value: Some(value),
            param,
            columns,
        },
    })
}

/// Are all of `f`'s arguments constants?
fn constant_args(f: &ast::Function) -> bool {
    let ast::FunctionArguments::List(l) = &f.args else {
        return false;
    };
    l.args.iter().all(|a| {
        matches!(
            a,
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::Value(v)))
                if !matches!(v.value, ast::Value::Placeholder(_))
        )
    })
}

/// Is this `set_config` call's third argument the constant `true` (the
/// change ends with the transaction)?
fn is_local(f: &ast::Function) -> bool {
    let ast::FunctionArguments::List(l) = &f.args else {
        return false;
    };
    match l.args.get(2) {
        Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::Value(v)))) => {
            matches!(v.value, ast::Value::Boolean(true))
                || matches!(&v.value, ast::Value::SingleQuotedString(s) if matches!(s.to_ascii_lowercase().as_str(), "true" | "t" | "on" | "yes" | "1"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str) -> Option<SqlError> {
        let stmts =
            sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                .unwrap();
        refusal(&stmts[0], sql)
    }

    fn set_config(sql: &str) -> Option<crate::plan::Local> {
        let stmts =
            sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                .unwrap();
        set_config_statement(&stmts[0])
    }

    #[test]
    fn set_config_queries_are_tracked_as_set() {
        use crate::plan::Local;
        // asyncpg's type introspection, around its catalog query.
        let Some(Local::SetConfig {
            name,
            value,
            param,
            columns,
            ..
        }) = set_config(
            "SELECT current_setting('jit') AS cur, set_config('jit', 'off', false) AS new",
        )
        else {
            panic!("not tracked");
        };
        assert_eq!(
            (name.as_str(), value.as_deref(), param),
            ("jit", Some("off"), None)
        );
        assert_eq!(
            columns,
            vec![
                (
                    "cur".to_string(),
                    Some("current_setting('jit')".to_string())
                ),
                ("new".to_string(), None)
            ]
        );
        let Some(Local::SetConfig { param, columns, .. }) =
            set_config("SELECT pg_catalog.set_config('jit', $1, false)")
        else {
            panic!("not tracked");
        };
        assert_eq!(param, Some(1));
        assert_eq!(columns, vec![("set_config".to_string(), None)]);
        for sql in [
            "SELECT set_config('a', 'b', false), set_config('c', 'd', false)",
            "SELECT now(), set_config('a', 'b', false)",
            "SELECT current_setting(name), set_config('a', 'b', false) FROM t",
            "SELECT set_config('a', 'b', true)",
            "SELECT set_config('a', 'b' || 'c', false)",
            "SELECT set_config(name, $1, false) FROM pg_settings WHERE name = 'x'",
        ] {
            assert!(set_config(sql).is_none(), "{sql}");
        }
    }

    #[test]
    fn session_state_is_refused_transaction_state_is_not() {
        for sql in [
            "SELECT set_config('app.tenant', '42', false)",
            "SELECT set_config('app.tenant', $1, $2)",
            "SELECT pg_advisory_lock(42)",
            "SELECT pg_try_advisory_lock(1, 2)",
            "SELECT * FROM t WHERE pg_try_advisory_lock(id)",
            "LISTEN jobs",
            "CREATE TEMP TABLE x (a int)",
            "CREATE TEMPORARY TABLE x (a int) ON COMMIT DELETE ROWS",
            "CREATE OR REPLACE FUNCTION pg_temp.f(OUT r int) RETURNS RECORD AS $$ BEGIN r := 1; END $$ LANGUAGE plpgsql",
        ] {
            let e = check(sql).unwrap_or_else(|| panic!("{sql}: not refused"));
            assert_eq!(e.sqlstate(), "0A000", "{sql}");
        }
        for sql in [
            "SELECT set_config('app.tenant', '42', true)",
            "SELECT pg_advisory_xact_lock(42)",
            "SELECT pg_try_advisory_xact_lock(42)",
            "CREATE TEMP TABLE x (a int) ON COMMIT DROP",
            "CREATE TABLE x (a int)",
            "NOTIFY jobs",
            "UNLISTEN *",
            "SELECT pg_catalog.pg_advisory_unlock_all()",
            "SELECT 'set_config(1, 2, false)'",
        ] {
            assert!(check(sql).is_none(), "{sql}: refused");
        }
    }
}
