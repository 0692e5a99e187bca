//! SQL analysis: from a statement's text to a [`Template`].
//!
//! It finds the tables a statement touches and classifies them (sharded,
//! reference, catalog, or unsharded: tables with no rule live whole on the
//! default shard), takes shard-key values from WHERE equalities, `IN` lists,
//! ORs of equalities, bind parameters and INSERT rows, follows key equalities
//! through joins of co-located tables, and decides where the statement may
//! run. Anything that would need a cross-shard merge this version does not
//! do is refused (SQLSTATE 0A000) rather than answered wrongly.
//!
//! `keys` reads shard keys (lists, arrays, ranges) out of a WHERE clause;
//! `select` plans SELECTs (merges, aggregation, subqueries, UNION ALL);
//! `setops` rewrites other set operations into forms `select` plans;
//! `nested` plans queries over a cross-shard aggregate.
//! UPDATEs of a shard key are planned in `crate::keymove`.

use crate::error::SqlError;
use crate::keysplit::{KeyAt, KeySplit};
use crate::plan::{AdminCall, KeyExpr, Local, StmtKind, Targets, Template};
use shardgate_core::{TableKind, TableRule, Topology};
use sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, JoinConstraint,
    JoinOperator, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, Statement, TableFactor,
    TableWithJoins, Value, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

pub(crate) mod select;
use select::analyze_query;

pub(crate) mod nested;
mod setops;
pub mod subquery;

mod crossjoin;
mod joins;
mod keys;
mod modifying;
mod outer;
use joins::*;
pub(crate) mod session_state;
use keys::*;
pub(crate) use keys::{candidate_exprs, candidates};

/// One analyzed statement of a query string.
#[derive(Debug, Clone)]
pub struct Analyzed {
    /// The statement's own text.
    pub sql: String,
    /// What to do with it.
    pub template: Template,
}

/// Analyze a query string that may hold several statements.
pub fn analyze_all(sql: &str, topo: &Topology) -> Vec<Analyzed> {
    crate::split::split_statements(sql)
        .into_iter()
        .map(|s| Analyzed {
            sql: s.to_string(),
            template: analyze(s, topo),
        })
        .collect()
}

/// Analyze one statement. Errors become [`Template::Refuse`].
pub fn analyze(sql: &str, topo: &Topology) -> Template {
    if let Some(t) = crate::cursor::cursor_statement(sql) {
        return t;
    }
    if let Some(t) = crate::fast::unsharded_only(sql, topo) {
        return t;
    }
    match crate::guard(|| analyze_inner(sql, topo)) {
        Ok(t) => t,
        Err(e) => Template::Refuse(e),
    }
}

fn route(targets: Targets, kind: StmtKind) -> Template {
    Template::Route {
        targets,
        kind,
        single_only: None,
        learns: None,
        merge: None,
        aggregate: None,
        split: None,
    }
}

/// Statements read from their first words, whatever sqlparser makes of
/// them: transaction control, RESET/DISCARD, DEALLOCATE, and the two-phase
/// commands clients may not send. `None` for anything else (most
/// statements: only their first word is looked at).
fn session_command(sql: &str) -> Option<Result<Template, SqlError>> {
    const LEADS: [&str; 12] = [
        "prepare",
        "commit",
        "rollback",
        "reset",
        "discard",
        "begin",
        "start",
        "end",
        "abort",
        "savepoint",
        "release",
        "deallocate",
    ];
    let first = sql.split_whitespace().next()?.trim_end_matches(';');
    if !LEADS.iter().any(|w| first.eq_ignore_ascii_case(w)) {
        return None;
    }
    let upper: String = sql
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    if upper.starts_with("PREPARE TRANSACTION")
        || upper.starts_with("COMMIT PREPARED")
        || upper.starts_with("ROLLBACK PREPARED")
    {
        return Some(Err(SqlError::Unsupported(
            "two-phase commit commands are managed by shardgate and cannot be sent by clients"
                .into(),
        )));
    }
    let words: Vec<String> = sql
        .split_whitespace()
        .take(3)
        .map(|w| w.trim_end_matches(';').to_ascii_lowercase())
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Some(match words.as_slice() {
        ["reset", "all"] | ["discard", "all"] => Ok(Template::Local(Local::Reset)),
        ["discard", what] => Ok(Template::Local(Local::Tag(format!(
            "DISCARD {}",
            what.to_ascii_uppercase()
        )))),
        // Transaction control is the session's, whatever sqlparser makes
        // of it: the text is replayed on the shards, which check it.
        ["begin", ..] | ["start", "transaction", ..] => Ok(Template::Local(Local::Begin)),
        ["commit" | "end" | "rollback" | "abort", .., "chain"] => Err(SqlError::Unsupported(
            "COMMIT/ROLLBACK AND CHAIN is not supported yet".into(),
        )),
        ["commit" | "end"] | ["commit" | "end", "work" | "transaction"] => {
            Ok(Template::Local(Local::Commit))
        }
        ["rollback" | "abort"] | ["rollback" | "abort", "work" | "transaction"] => {
            Ok(Template::Local(Local::Rollback))
        }
        ["rollback", "to", ..]
        | ["rollback", "work" | "transaction", "to"]
        | ["savepoint", ..]
        | ["release", ..] => Ok(Template::Local(Local::InTransaction)),
        ["reset", name] => Ok(Template::Local(Local::Set {
            name: name.to_string(),
            sql: sql.to_string(),
        })),
        ["deallocate", "all"] | ["deallocate", "prepare", "all"] => {
            Ok(Template::Local(Local::Deallocate(None)))
        }
        ["deallocate", name] | ["deallocate", "prepare", name] => {
            let n = sql
                .split_whitespace()
                .last()
                .unwrap_or(name)
                .trim_end_matches(';')
                .trim_matches('"')
                .to_string();
            Ok(Template::Local(Local::Deallocate(Some(n))))
        }
        _ => return None,
    })
}

fn analyze_inner(sql: &str, topo: &Topology) -> Result<Template, SqlError> {
    if let Some(t) = session_command(sql) {
        return t;
    }
    // COPY with PostgreSQL's pre-9.0 options (`WITH CSV HEADER`): read by
    // shardgate, surveyed and analyzed as any COPY.
    if let Some(copy) = crate::copy::read_legacy(sql) {
        let copy = copy?;
        if let Some(e) = survey(&copy.stmt, topo).err {
            return Err(e);
        }
        return crate::copy::analyze_with(&copy.stmt, &copy.options, topo);
    }
    let stmts = match crate::parse::parse_sql(sql) {
        Ok(s) => s,
        Err(e) if e.to_string().contains("recursion limit") => {
            return Err(SqlError::TooComplex(
                "statement is too deeply nested for shardgate's parser".into(),
            ));
        }
        Err(e) => {
            match crate::copy::with_true_false(sql).and_then(|s| crate::parse::parse_sql(&s).ok()) {
                Some(s) => s,
                None => return unparsed(sql, topo, e.to_string()),
            }
        }
    };
    let [stmt] = stmts.as_slice() else {
        return Err(SqlError::Syntax("expected exactly one statement".into()));
    };
    if let Some(l) = session_state::set_config_statement(stmt) {
        return Ok(Template::Local(l));
    }
    if let Some(e) = session_state::refusal(stmt, sql) {
        return Err(e);
    }
    analyze_statement(stmt, sql, topo)
}

/// The text of a SQL-level prepared statement `body` run with `args` (SQL
/// expressions) in place of its `$n` placeholders, each cast to its
/// declared type (`types`) if it has one.
///
/// # Errors
/// PostgreSQL's 42601 for a wrong number of arguments; an argument or
/// body that does not parse.
pub fn substitute(body: &str, types: &[String], args: &[String]) -> Result<String, SqlError> {
    let mut stmts = crate::parse::parse_sql(body).map_err(|e| SqlError::Syntax(e.to_string()))?;
    let [stmt] = stmts.as_mut_slice() else {
        return Err(SqlError::Syntax("expected exactly one statement".into()));
    };
    let mut highest = 0usize;
    let _ = sqlparser::ast::visit_expressions(stmt, |e| {
        if let Expr::Value(v) = e
            && let sqlparser::ast::Value::Placeholder(p) = &v.value
            && let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
        {
            highest = highest.max(n);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    let wanted = types.len().max(highest);
    if args.len() != wanted {
        return Err(SqlError::State(
            "42601",
            format!(
                "wrong number of parameters for prepared statement: expected {wanted} parameters but got {}",
                args.len()
            ),
        ));
    }
    let mut exprs = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        let text = match types.get(i) {
            Some(t) => format!("CAST(({a}) AS {t})"),
            None => format!("({a})"),
        };
        let e = crate::parse::parse_expr(&text).map_err(|e| SqlError::Syntax(e.to_string()))?;
        exprs.push(e);
    }
    let _ = sqlparser::ast::visit_expressions_mut(stmt, |e| {
        if let Expr::Value(v) = e
            && let sqlparser::ast::Value::Placeholder(p) = &v.value
            && let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
            && let Some(arg) = n.checked_sub(1).and_then(|i| exprs.get(i))
        {
            *e = arg.clone();
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    Ok(stmt.to_string())
}

/// A statement sqlparser cannot parse is sent to the default shard only when
/// it names no table that has a rule: it cannot touch sharded data then.
fn unparsed(sql: &str, topo: &Topology, why: String) -> Result<Template, SqlError> {
    // A COPY passed through unread would put the session in copy mode
    // without the router knowing.
    if crate::cursor::skip_leading_comments(sql)
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("copy"))
    {
        return Err(SqlError::Syntax(format!(
            "shardgate could not parse this COPY statement: {why}"
        )));
    }
    if let Some(t) = names_ruled_table(sql, topo) {
        // VACUUM and ANALYZE of placed tables: on every shard (not in a
        // transaction made for it: VACUUM refuses one).
        let first = crate::cursor::skip_leading_comments(sql)
            .split(|c: char| !c.is_ascii_alphabetic())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if matches!(first.as_str(), "vacuum" | "analyze" | "analyse") {
            return Ok(route(Targets::All, StmtKind::Other));
        }
        return Err(SqlError::Unparsed(format!(
            "shardgate could not parse this statement, which names table {t}: {why}"
        )));
    }
    Ok(route(Targets::Default, StmtKind::Other))
}

fn names_ruled_table(sql: &str, topo: &Topology) -> Option<String> {
    if topo.rules.is_empty() {
        return None;
    }
    let mut word = String::new();
    let mut in_str = false;
    for c in sql.chars().chain(std::iter::once(' ')) {
        if c == '\'' {
            in_str = !in_str;
            word.clear();
            continue;
        }
        if in_str {
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            word.push(c.to_ascii_lowercase());
        } else {
            if topo.rules.contains_key(&word) {
                return Some(word);
            }
            word.clear();
        }
    }
    None
}

/// Why a client encoding other than UTF8 is refused.
const CLIENT_ENCODING: &str = "a client_encoding other than UTF8 is not supported: shardgate reads and answers UTF-8 (convert on the client)";

/// Is this SET value a name of UTF-8 (or DEFAULT: the shards' databases
/// are UTF-8)?
fn is_utf8_name(e: &Expr) -> bool {
    let raw = match e {
        Expr::Identifier(i) => i.value.clone(),
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
            _ => return false,
        },
        _ => return false,
    };
    let n: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_uppercase();
    matches!(n.as_str(), "UTF8" | "UNICODE" | "DEFAULT")
}

/// Normalize an identifier as PostgreSQL does: unquoted folds to lower case.
pub fn ident_name(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

pub(crate) fn object_parts(n: &ObjectName) -> Vec<String> {
    n.0.iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => ident_name(i),
            ObjectNamePart::Function(f) => f.name.value.to_lowercase(),
        })
        .collect()
}

/// How a referenced table is placed.
#[derive(Debug, Clone, PartialEq)]
enum Class {
    Sharded(Arc<TableRule>),
    Reference,
    Catalog,
    Unruled(String),
}

/// The columns of a sharded table (whose columns shardgate knows) after
/// an `ALTER TABLE` that adds, drops or renames some of them, in order;
/// `None` when the statement changes no column name of such a table.
fn altered_columns(stmt: &Statement, topo: &Topology) -> Option<(String, Vec<String>)> {
    use ast::AlterTableOperation as Op;
    let Statement::AlterTable(at) = stmt else {
        return None;
    };
    let table = object_parts(&at.name).pop()?;
    let rule = topo.rule(&table)?;
    let TableKind::Sharded { all_columns, .. } = &rule.kind else {
        return None;
    };
    if all_columns.is_empty() {
        return None;
    }
    let mut cols = all_columns.clone();
    for op in &at.operations {
        match op {
            Op::AddColumn { column_def, .. } => {
                let name = ident_name(&column_def.name);
                if !cols.contains(&name) {
                    cols.push(name);
                }
            }
            Op::DropColumn { column_names, .. } => {
                let gone: Vec<String> = column_names.iter().map(ident_name).collect();
                cols.retain(|c| !gone.contains(c));
            }
            Op::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let old = ident_name(old_column_name);
                for c in cols.iter_mut().filter(|c| **c == old) {
                    *c = ident_name(new_column_name);
                }
            }
            _ => {}
        }
    }
    (cols != *all_columns).then_some((table, cols))
}

fn classify(name: &ObjectName, topo: &Topology) -> Class {
    fn part(p: &ObjectNamePart) -> Cow<'_, str> {
        match p {
            ObjectNamePart::Identifier(i) => ident_cow(i),
            ObjectNamePart::Function(f) => Cow::Owned(f.name.value.to_lowercase()),
        }
    }
    let table = name.0.last().map(part).unwrap_or_default();
    if name.0.len() >= 2
        && matches!(
            part(&name.0[name.0.len() - 2]).as_ref(),
            "pg_catalog" | "information_schema"
        )
    {
        return Class::Catalog;
    }
    match topo.rule(&table) {
        Some(r) => match r.kind {
            TableKind::Reference => Class::Reference,
            TableKind::Sharded { .. } => Class::Sharded(r.clone()),
        },
        None if table.starts_with("pg_") => Class::Catalog,
        None => Class::Unruled(table.into_owned()),
    }
}

/// [`ident_name`], borrowed when folding changes nothing (the common case).
fn ident_cow(i: &Ident) -> Cow<'_, str> {
    if i.quote_style.is_some()
        || (i.value.is_ascii() && !i.value.bytes().any(|b| b.is_ascii_uppercase()))
    {
        Cow::Borrowed(&i.value)
    } else {
        Cow::Owned(i.value.to_lowercase())
    }
}

/// Every table a statement references (CTE names excluded).
fn relations(v: &impl Visit) -> Vec<ObjectName> {
    let mut r = Rels::default();
    let _ = v.visit(&mut r);
    r.out
}

/// The visitor of [`relations`].
#[derive(Default)]
struct Rels {
    ctes: HashSet<String>,
    out: Vec<ObjectName>,
    /// A pure set-returning function in FROM (its name comes next).
    function: Option<ObjectName>,
}

impl Visitor for Rels {
    type Break = ();
    fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            args: Some(_),
            ..
        } = f
            && is_pure_table_function(name)
        {
            self.function = Some(name.clone());
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if let Some(w) = &q.with {
            for c in &w.cte_tables {
                self.ctes.insert(ident_name(&c.alias.name));
            }
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
        if self.function.as_ref() == Some(r) {
            // Not a table: the same rows on every shard.
            self.function = None;
            return ControlFlow::Continue(());
        }
        let bare_cte = !self.ctes.is_empty() && r.0.len() == 1 && {
            let parts = object_parts(r);
            self.ctes.contains(&parts[0])
        };
        if !bare_cte {
            self.out.push(r.clone());
        }
        ControlFlow::Continue(())
    }
}

/// What one walk over a whole statement finds, so that analysis walks it
/// once instead of once per question: the refusals of [`Names`] and
/// [`crate::ids::NestedWrites`], the tables it references
/// ([`relations`]) and whether it holds a write ([`contains_dml`]).
struct Survey {
    /// The first refusal, names before nested writes (as the checks run).
    err: Option<SqlError>,
    rels: Vec<ObjectName>,
    dml: bool,
}

fn survey(stmt: &Statement, topo: &Topology) -> Survey {
    struct V<'t> {
        names: Names<'t>,
        nested: crate::ids::NestedWrites<'t>,
        rels: Rels,
        dml: bool,
    }
    impl Visitor for V<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            let _ = self.rels.pre_visit_query(q);
            self.names.pre_visit_query(q)
        }
        fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
            let _ = self.rels.pre_visit_relation(r);
            self.names.pre_visit_relation(r)
        }
        fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
            let _ = self.rels.pre_visit_table_factor(t);
            self.names.pre_visit_table_factor(t)
        }
        fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
            self.dml |= is_dml(s);
            // A refused nested write does not stop the walk: a refusal of
            // names found later is reported first.
            let _ = self.nested.pre_visit_statement(s);
            ControlFlow::Continue(())
        }
        fn post_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
            self.nested.post_visit_statement(s)
        }
    }
    let mut v = V {
        names: Names { topo, err: None },
        nested: crate::ids::NestedWrites::new(topo),
        rels: Rels::default(),
        dml: false,
    };
    let _ = stmt.visit(&mut v);
    Survey {
        err: v.names.err.or(v.nested.err),
        rels: v.rels.out,
        dml: v.dml,
    }
}

/// Built-in set-returning functions that read no table and give the same
/// rows for the same arguments on every shard: in FROM they are no table
/// (like a reference table's copy, each shard has them).
fn is_pure_table_function(name: &ObjectName) -> bool {
    let parts = object_parts(name);
    let (schema_ok, f) = match parts.as_slice() {
        [f] => (true, f.as_str()),
        [s, f] => (s == "pg_catalog", f.as_str()),
        _ => (false, ""),
    };
    schema_ok
        && matches!(
            f,
            "generate_series"
                | "generate_subscripts"
                | "unnest"
                | "regexp_split_to_table"
                | "string_to_table"
                | "json_each"
                | "json_each_text"
                | "jsonb_each"
                | "jsonb_each_text"
                | "json_array_elements"
                | "json_array_elements_text"
                | "jsonb_array_elements"
                | "jsonb_array_elements_text"
                | "json_object_keys"
                | "jsonb_object_keys"
                | "json_to_recordset"
                | "jsonb_to_recordset"
        )
}

struct Classes {
    sharded: Vec<Arc<TableRule>>,
    unruled: Vec<String>,
    reference: usize,
}

fn classes(rels: &[ObjectName], topo: &Topology) -> Classes {
    let mut c = Classes {
        sharded: Vec::new(),
        unruled: Vec::new(),
        reference: 0,
    };
    for r in rels {
        match classify(r, topo) {
            Class::Sharded(rule) => c.sharded.push(rule),
            Class::Unruled(t) => c.unruled.push(t),
            Class::Reference => c.reference += 1,
            Class::Catalog => {}
        }
    }
    c
}

fn mixed_error(c: &Classes) -> SqlError {
    SqlError::Unsupported(format!(
        "a statement that uses sharded table {} together with unsharded table {} is not supported (unsharded tables live only on the default shard; declare {} as a reference or sharded table)",
        c.sharded[0].table, c.unruled[0], c.unruled[0]
    ))
}

/// Finds shapes sqlparser reads differently from PostgreSQL, or that hide
/// which table a name means: refused before analysis (see [`survey`]).
struct Names<'t> {
    topo: &'t Topology,
    err: Option<SqlError>,
}
impl Visitor for Names<'_> {
    type Break = ();
    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if let Some(w) = &q.with {
            for c in &w.cte_tables {
                let n = ident_name(&c.alias.name);
                if self.topo.rule(&n).is_some() {
                    self.err = Some(SqlError::Unsupported(format!(
                        "a WITH query named like table {n} is not supported; rename the WITH query"
                    )));
                    return ControlFlow::Break(());
                }
            }
        }
        if let SetExpr::Select(sel) = q.body.as_ref()
            && sel.into.is_some()
        {
            self.err = Some(SqlError::Unsupported(
                "SELECT INTO is not supported through shardgate; use CREATE TABLE and INSERT"
                    .into(),
            ));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
        if let [ObjectNamePart::Identifier(i)] = r.0.as_slice()
            && i.quote_style.is_none()
            && i.value.eq_ignore_ascii_case("only")
        {
            self.err = Some(SqlError::Unsupported(
                "ONLY is not supported through shardgate yet".into(),
            ));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            alias: Some(a),
            ..
        } = t
            && !a.columns.is_empty()
            && classify(name, self.topo) != Class::Catalog
            && !matches!(classify(name, self.topo), Class::Unruled(_))
        {
            self.err = Some(SqlError::Unsupported(
                "column aliases on a sharded or reference table are not supported yet".into(),
            ));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

pub(crate) fn analyze_statement(
    stmt: &Statement,
    sql: &str,
    topo: &Topology,
) -> Result<Template, SqlError> {
    let t = analyze_one(stmt, sql, topo);
    // Refused as it stands (or unless it reaches one shard): its
    // uncorrelated subqueries over sharded tables may run first.
    let refused = match &t {
        Err(_) => true,
        Ok(Template::Route { single_only, .. }) => single_only.is_some(),
        Ok(_) => false,
    };
    match refused
        .then(|| subquery::pre_evaluate(stmt, sql, topo))
        .flatten()
    {
        Some((subs, outer)) => Ok(Template::PreEvaluate {
            original: Box::new(t.unwrap_or_else(Template::Refuse)),
            subs,
            outer: Box::new(outer),
        }),
        None => t,
    }
}

fn analyze_one(stmt: &Statement, sql: &str, topo: &Topology) -> Result<Template, SqlError> {
    use Statement as S;
    let survey = survey(stmt, topo);
    if let Some(e) = survey.err {
        return Err(e);
    }
    if let S::Insert(ast::Insert {
        table: ast::TableObject::TableName(name),
        on:
            Some(ast::OnInsert::OnConflict(ast::OnConflict {
                action: ast::OnConflictAction::DoUpdate(du),
                ..
            })),
        ..
    }) = stmt
    {
        crate::ids::check_assignments(
            &object_parts(name).pop().unwrap_or_default(),
            &du.assignments,
            topo,
        )?;
    }
    if matches!(stmt, S::AlterTable(_) | S::Drop { .. })
        && let Some(ids) = crate::ids::ddl(stmt, topo)?
    {
        let mut t = route(Targets::All, StmtKind::Ddl);
        if let Template::Route { learns, .. } = &mut t {
            *learns = Some(Box::new(crate::plan::Learn {
                columns: None,
                names: altered_columns(stmt, topo),
                ids: Some(ids),
            }));
        }
        return Ok(t);
    }
    if let Some(names) = altered_columns(stmt, topo) {
        let mut t = route(Targets::All, StmtKind::Ddl);
        if let Template::Route { learns, .. } = &mut t {
            *learns = Some(Box::new(crate::plan::Learn {
                columns: None,
                names: Some(names),
                ids: None,
            }));
        }
        return Ok(t);
    }
    Ok(match stmt {
        S::Query(q) => select::analyze_query_surveyed(q, topo, survey.rels, survey.dml)?,
        S::Insert(ins) => match crate::ids::fill_insert(stmt, topo)? {
            Some(f) => {
                let S::Insert(filled) = &f.stmt else {
                    unreachable!("an INSERT stays an INSERT")
                };
                let inner = analyze_insert(filled, &f.stmt, topo)?;
                Template::WithIds {
                    stmt: Box::new(f.stmt),
                    first: f.first,
                    count: f.count,
                    inner: Box::new(inner),
                }
            }
            None => analyze_insert(ins, stmt, topo)?,
        },
        S::Update(u) => {
            let TableFactor::Table { name, alias, .. } = &u.table.relation else {
                return Err(SqlError::Unsupported(
                    "UPDATE of this form is not supported".into(),
                ));
            };
            crate::ids::check_assignments(
                &object_parts(name).pop().unwrap_or_default(),
                &u.assignments,
                topo,
            )?;
            if let Class::Sharded(rule) = classify(name, topo)
                && crate::keymove::assigns_key(u, &rule)
            {
                // The rows move to the shards of their new keys.
                return crate::keymove::plan_move(u, &rule, topo);
            }
            analyze_dml(
                stmt,
                name,
                alias.as_ref().map(|a| ident_name(&a.name)),
                u.selection.as_ref(),
                topo,
            )?
        }
        S::Delete(d) => {
            let from = match &d.from {
                ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
            };
            let Some(TableWithJoins {
                relation: TableFactor::Table { name, alias, .. },
                ..
            }) = from.first()
            else {
                return Err(SqlError::Unsupported(
                    "DELETE of this form is not supported".into(),
                ));
            };
            analyze_dml(
                stmt,
                name,
                alias.as_ref().map(|a| ident_name(&a.name)),
                d.selection.as_ref(),
                topo,
            )?
        }
        // Nothing listens (LISTEN is refused): nothing to stop.
        S::UNLISTEN { .. } => Template::Local(Local::Tag("UNLISTEN".into())),
        S::StartTransaction { .. } => Template::Local(Local::Begin),
        S::Commit { .. } => Template::Local(Local::Commit),
        S::Rollback {
            savepoint: None, ..
        } => Template::Local(Local::Rollback),
        S::Rollback {
            savepoint: Some(_), ..
        }
        | S::Savepoint { .. }
        | S::ReleaseSavepoint { .. } => Template::Local(Local::InTransaction),
        S::Set(set) => match set {
            // Client bytes are read as UTF-8 (routing, COPY keys) and the
            // shards answer in UTF-8: another client encoding would be
            // misread, so it is refused rather than forwarded.
            ast::Set::SingleAssignment {
                variable, values, ..
            } if object_parts(variable).join(".") == "client_encoding"
                && !values.iter().all(is_utf8_name) =>
            {
                return Err(SqlError::Unsupported(CLIENT_ENCODING.into()));
            }
            ast::Set::SetNames { charset_name, .. }
                if !is_utf8_name(&Expr::Identifier(charset_name.clone())) =>
            {
                return Err(SqlError::Unsupported(CLIENT_ENCODING.into()));
            }
            ast::Set::SingleAssignment {
                scope: Some(ast::ContextModifier::Local),
                ..
            } => Template::Local(Local::InTransaction),
            ast::Set::SingleAssignment { variable, .. } => Template::Local(Local::Set {
                name: object_parts(variable).join("."),
                sql: sql.to_string(),
            }),
            ast::Set::SetTimeZone { .. } => Template::Local(Local::Set {
                name: "timezone".into(),
                sql: sql.to_string(),
            }),
            // SET SESSION CHARACTERISTICS AS TRANSACTION: a session
            // setting (the defaults of later transactions), tracked as SET.
            ast::Set::SetTransaction { session: true, .. } => Template::Local(Local::Set {
                name: String::new(),
                sql: sql.to_string(),
            }),
            ast::Set::SetTransaction { .. } => Template::Local(Local::InTransaction),
            _ => Template::Local(Local::Set {
                name: String::new(),
                sql: sql.to_string(),
            }),
        },
        S::Discard { .. } => Template::Local(Local::Reset),
        S::Deallocate { name, .. } => Template::Local(Local::Deallocate(Some(ident_name(name)))),
        S::Explain { statement, .. } => Template::Explain(Box::new(
            analyze_statement(statement, &statement.to_string(), topo)
                .unwrap_or_else(Template::Refuse),
        )),
        S::Copy { .. } => crate::copy::analyze(stmt, topo)?,
        S::Prepare {
            name,
            data_types,
            statement,
        } => Template::Local(Local::Prepare {
            name: ident_name(name),
            types: data_types.iter().map(ToString::to_string).collect(),
            body: statement.to_string(),
        }),
        S::Execute {
            name: Some(name),
            parameters,
            immediate: false,
            into,
            using,
            ..
        } if into.is_empty() && using.is_empty() => Template::Local(Local::Execute {
            name: object_parts(name).pop().unwrap_or_default(),
            args: parameters.iter().map(ToString::to_string).collect(),
        }),
        S::Execute { .. } => {
            return Err(SqlError::Unsupported(
                "this form of EXECUTE is not supported".into(),
            ));
        }
        S::CreateTable(ct) => {
            if let Some(q) = &ct.query {
                let c = classes(&relations(q.as_ref()), topo);
                if !c.sharded.is_empty() || c.reference > 0 {
                    return Err(SqlError::Unsupported(
                        "CREATE TABLE AS over sharded or reference tables is not supported yet"
                            .into(),
                    ));
                }
            }
            // A temporary table (ON COMMIT DROP: see `session_state`) is
            // an unsharded table of this transaction, on the default shard
            // alone (on every shard it would make the transaction a
            // two-phase one, which PostgreSQL refuses with temporary
            // objects).
            if ct.temporary {
                return Ok(route(Targets::Default, StmtKind::Ddl));
            }
            let table = object_parts(&ct.name).pop().unwrap_or_default();
            let cols = ct
                .columns
                .iter()
                .map(|c| (ident_name(&c.name), c.data_type.to_string()))
                .collect();
            Template::Route {
                targets: Targets::All,
                kind: StmtKind::Ddl,
                single_only: None,
                learns: Some(Box::new(crate::plan::Learn {
                    columns: Some((table, cols)),
                    names: None,
                    ids: crate::ids::ddl(stmt, topo)?,
                })),
                merge: None,
                aggregate: None,
                split: None,
            }
        }
        S::CreateView(v) => {
            let c = classes(&relations(v.query.as_ref()), topo);
            if !c.sharded.is_empty() {
                return Err(SqlError::Unsupported(format!(
                    "a view over sharded table {} is not supported yet (each shard would see only its own rows)",
                    c.sharded[0].table
                )));
            }
            route(Targets::All, StmtKind::Ddl)
        }
        // An unsharded table's rows are all on the default shard (its
        // copies elsewhere stay empty): emptying it is a write there.
        S::Truncate(t)
            if t.table_names.iter().all(|n| {
                object_parts(&n.name)
                    .pop()
                    .is_some_and(|name| topo.rule(&name).is_none())
            }) =>
        {
            route(Targets::Default, StmtKind::Write)
        }
        S::CreateIndex(_)
        | S::AlterTable(_)
        | S::Drop { .. }
        | S::Truncate(_)
        | S::CreateSchema { .. }
        | S::CreateSequence { .. }
        | S::Comment { .. }
        | S::Grant { .. }
        | S::Revoke { .. }
        | S::CreateExtension(_)
        | S::CreateType { .. }
        | S::CreateFunction(_)
        | S::AlterIndex { .. }
        | S::DropFunction(_)
        | S::CreateRole(_)
        | S::AlterRole { .. }
        // Every shard's schema stays the same: types, domains, triggers,
        // policies, procedures, operators... (they went to the default
        // shard alone: `ALTER TYPE ... ADD VALUE` left the other shards
        // without the value).
        | S::AlterType(_)
        | S::AlterSchema(_)
        | S::AlterView { .. }
        | S::AlterFunction(_)
        | S::AlterCollation(_)
        | S::AlterOperator(_)
        | S::AlterOperatorFamily(_)
        | S::AlterOperatorClass(_)
        | S::AlterTextSearch(_)
        | S::AlterPolicy(_)
        | S::CreateDomain(_)
        | S::DropDomain(_)
        | S::CreateTrigger(_)
        | S::DropTrigger(_)
        | S::CreateProcedure { .. }
        | S::DropProcedure { .. }
        | S::CreatePolicy(_)
        | S::DropPolicy(_)
        | S::CreateCollation(_)
        | S::DropExtension(_)
        | S::CreateOperator(_)
        | S::CreateOperatorFamily(_)
        | S::CreateOperatorClass(_)
        | S::DropOperator(_)
        | S::DropOperatorFamily(_)
        | S::DropOperatorClass(_)
        | S::CreateTextSearch(_) => route(Targets::All, StmtKind::Ddl),
        // LOCK TABLE: on every shard that holds a copy or part of a
        // sharded or reference table, on the default shard otherwise.
        S::Lock(l) => {
            let names: Vec<ObjectName> = l.tables.iter().map(|t| t.name.clone()).collect();
            let c = classes(&names, topo);
            if !c.sharded.is_empty() || c.reference > 0 {
                route(Targets::All, StmtKind::Other)
            } else {
                route(Targets::Default, StmtKind::Other)
            }
        }
        S::ShowVariable { .. } | S::ShowVariables { .. } => {
            route(Targets::Default, StmtKind::Other)
        }
        other => {
            let c = classes(&relations(other), topo);
            if !c.sharded.is_empty() || c.reference > 0 {
                return Err(SqlError::Unsupported(
                    "this kind of statement is not supported on sharded or reference tables yet"
                        .into(),
                ));
            }
            route(Targets::Default, StmtKind::Other)
        }
    })
}

fn admin_call(q: &Query) -> Option<Result<AdminCall, SqlError>> {
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return None;
    };
    if !sel.from.is_empty() || sel.projection.len() != 1 {
        return None;
    }
    let expr = match &sel.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return None,
    };
    let Expr::Function(f) = expr else { return None };
    let parts = object_parts(&f.name);
    if parts.len() != 2 || parts[0] != "shardgate" {
        return None;
    }
    let mut args = Vec::new();
    let mut params = Vec::new();
    if let FunctionArguments::List(l) = &f.args {
        for a in &l.args {
            let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = a else {
                return Some(Err(SqlError::Unsupported(
                    "shardgate functions take positional arguments".into(),
                )));
            };
            match literal_of(e) {
                Some(KeyExpr::Literal(s)) => args.push(Some(s)),
                Some(KeyExpr::Param(n)) => {
                    params.push((args.len(), n));
                    args.push(None);
                }
                _ if matches!(e, Expr::Value(v) if v.value == Value::Null) => args.push(None),
                _ => {
                    return Some(Err(SqlError::Unsupported(
                        "arguments of shardgate functions must be literals or bind parameters"
                            .into(),
                    )));
                }
            }
        }
    }
    Some(Ok(AdminCall {
        function: parts[1].clone(),
        args,
        params,
    }))
}

/// Why a multi-shard SELECT would need a merge this version does not do.
fn merge_needed(q: &Query) -> Option<String> {
    merge_needed_with(q, &|_| false)
}

/// [`merge_needed`], where `window_ok` tells which window functions of the
/// top-level query run whole on each shard (their partitions each live on
/// one shard).
fn merge_needed_with(q: &Query, window_ok: &dyn Fn(&ast::Function) -> bool) -> Option<String> {
    struct Finder<'a> {
        why: Option<String>,
        depth: usize,
        window_ok: &'a dyn Fn(&ast::Function) -> bool,
    }
    impl Visitor for Finder<'_> {
        type Break = ();
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            self.depth += 1;
            let why = if q.order_by.is_some() {
                Some("ORDER BY")
            } else if q.limit_clause.is_some() || q.fetch.is_some() {
                Some("LIMIT/OFFSET")
            } else {
                match q.body.as_ref() {
                    SetExpr::SetOperation { .. } => Some("UNION/INTERSECT/EXCEPT"),
                    SetExpr::Select(s) if s.distinct.is_some() => Some("DISTINCT"),
                    SetExpr::Select(s) if s.having.is_some() => Some("HAVING"),
                    SetExpr::Select(s) if !matches!(&s.group_by, ast::GroupByExpr::Expressions(v, _) if v.is_empty()) => {
                        Some("GROUP BY")
                    }
                    _ => None,
                }
            };
            if let Some(w) = why {
                self.why = Some(w.to_string());
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e {
                let name = object_parts(&f.name).pop().unwrap_or_default();
                if f.over.is_some() {
                    if self.depth == 1 && (self.window_ok)(f) {
                        return ControlFlow::Continue(());
                    }
                    self.why = Some(format!("window function {name}()"));
                    return ControlFlow::Break(());
                }
                if is_aggregate(&name) || f.filter.is_some() || !f.within_group.is_empty() {
                    self.why = Some(format!("aggregate {name}()"));
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut f = Finder {
        why: None,
        depth: 0,
        window_ok,
    };
    let _ = q.visit(&mut f);
    f.why
}

/// Known aggregate functions of PostgreSQL (and anything named like one).
pub fn is_aggregate(name: &str) -> bool {
    name.contains("_agg")
        || name.ends_with("agg")
        || matches!(
            name,
            "count"
                | "sum"
                | "avg"
                | "min"
                | "max"
                | "array_agg"
                | "string_agg"
                | "bool_and"
                | "bool_or"
                | "every"
                | "bit_and"
                | "bit_or"
                | "bit_xor"
                | "json_agg"
                | "jsonb_agg"
                | "json_object_agg"
                | "jsonb_object_agg"
                | "xmlagg"
                | "stddev"
                | "stddev_pop"
                | "stddev_samp"
                | "variance"
                | "var_pop"
                | "var_samp"
                | "corr"
                | "covar_pop"
                | "covar_samp"
                | "regr_avgx"
                | "regr_avgy"
                | "regr_count"
                | "regr_intercept"
                | "regr_r2"
                | "regr_slope"
                | "regr_sxx"
                | "regr_sxy"
                | "regr_syy"
                | "mode"
                | "percentile_cont"
                | "percentile_disc"
                | "rank"
                | "dense_rank"
                | "percent_rank"
                | "cume_dist"
                | "range_agg"
                | "range_intersect_agg"
                | "any_value"
                | "json_agg_strict"
                | "json_objectagg"
                | "json_arrayagg"
        )
}

fn contains_dml(q: &Query) -> bool {
    struct D(bool);
    impl Visitor for D {
        type Break = ();
        fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
            if is_dml(s) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut d = D(false);
    let _ = q.visit(&mut d);
    d.0
}

fn is_dml(s: &Statement) -> bool {
    matches!(
        s,
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) | Statement::Merge(_)
    )
}

/// Where a write to a table that is not sharded goes: an unsharded table's
/// to the default shard (it may read reference tables, not sharded ones); a
/// reference table's to every shard (it may read only reference tables).
fn write_unsharded(target: &Class, c: &Classes) -> Result<Template, SqlError> {
    if matches!(target, Class::Reference) {
        if !c.sharded.is_empty() || !c.unruled.is_empty() {
            return Err(SqlError::Unsupported(
                "a write to a reference table may only read other reference tables".into(),
            ));
        }
        return Ok(route(Targets::All, StmtKind::WriteCopies));
    }
    if !c.sharded.is_empty() {
        return Err(mixed_error(c));
    }
    Ok(route(Targets::Default, StmtKind::Write))
}

fn analyze_dml(
    stmt: &Statement,
    target: &ObjectName,
    alias: Option<String>,
    selection: Option<&Expr>,
    topo: &Topology,
) -> Result<Template, SqlError> {
    let rels = relations(stmt);
    let c = classes(&rels, topo);
    match classify(target, topo) {
        Class::Unruled(_) | Class::Catalog | Class::Reference => {
            write_unsharded(&classify(target, topo), &c)
        }
        Class::Sharded(rule) => {
            if !c.unruled.is_empty() {
                return Err(mixed_error(&c));
            }
            let quals = vec![alias.unwrap_or_else(|| rule.table.clone())];
            let me = FromTable {
                rule: Some(rule.clone()),
                quals,
                nested: None,
            };
            let mut tables = vec![me];
            let mut ons = Vec::new();
            match stmt {
                Statement::Update(u) => {
                    if let Some(
                        ast::UpdateTableFromKind::BeforeSet(f)
                        | ast::UpdateTableFromKind::AfterSet(f),
                    ) = &u.from
                    {
                        tables.extend(from_tables(f, topo, &mut ons));
                    }
                }
                Statement::Delete(d) => {
                    if let Some(u) = &d.using {
                        tables.extend(from_tables(u, topo, &mut ons));
                    }
                }
                _ => {}
            }
            // Subqueries tied to the target's rows by the shard key
            // (`WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id =
            // t.customer_id)`, `SET n = (SELECT ... WHERE c.id =
            // t.customer_id)`) see on each shard every row they can match:
            // their tables join the co-location check, as in a SELECT.
            let _ = select::local_subqueries(&dml_exprs(stmt), &[], topo, &mut tables, &mut ons);
            let (targets, may_scatter, at) =
                sharded_targets(&tables, selection, &ons, c.sharded.len());
            let split = match at {
                Some(at) if may_scatter => Some(Box::new(KeySplit::new(stmt.clone(), at))),
                _ => None,
            };
            let single_only = (!may_scatter).then(|| {
                SqlError::Unsupported(
                    "this UPDATE/DELETE reads other sharded tables in a way that needs a cross-shard join, which is not supported yet".into(),
                )
            });
            Ok(Template::Route {
                targets,
                kind: StmtKind::Write,
                single_only,
                learns: None,
                merge: None,
                aggregate: None,
                split,
            })
        }
    }
}

/// An UPDATE's or DELETE's WHERE, SET values and RETURNING expressions.
fn dml_exprs(stmt: &Statement) -> Vec<&Expr> {
    let (selection, sets, returning) = match stmt {
        Statement::Update(u) => (
            u.selection.as_ref(),
            u.assignments.iter().map(|a| &a.value).collect(),
            u.returning.as_ref(),
        ),
        Statement::Delete(d) => (d.selection.as_ref(), Vec::new(), d.returning.as_ref()),
        _ => return Vec::new(),
    };
    let returned = returning.into_iter().flatten().filter_map(|i| match i {
        ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
        _ => None,
    });
    selection.into_iter().chain(sets).chain(returned).collect()
}

/// The columns an INSERT sets, in order: its column list, or all the
/// table's (`all_columns`; `None` when those are unknown).
fn insert_columns(ins: &ast::Insert, all_columns: &[String]) -> Option<Vec<String>> {
    if ins.columns.is_empty() {
        (!all_columns.is_empty()).then(|| all_columns.to_vec())
    } else {
        Some(
            ins.columns
                .iter()
                .map(|c| object_parts(c).pop().unwrap_or_default())
                .collect(),
        )
    }
}

fn analyze_insert(
    ins: &ast::Insert,
    stmt: &Statement,
    topo: &Topology,
) -> Result<Template, SqlError> {
    let ast::TableObject::TableName(name) = &ins.table else {
        return Err(SqlError::Unsupported(
            "INSERT INTO a table function is not supported".into(),
        ));
    };
    let rels = relations(stmt);
    let c = classes(&rels, topo);
    match classify(name, topo) {
        Class::Unruled(_) | Class::Catalog | Class::Reference => {
            write_unsharded(&classify(name, topo), &c)
        }
        Class::Sharded(rule) => {
            let TableKind::Sharded {
                columns: keycols,
                all_columns,
                ..
            } = &rule.kind
            else {
                unreachable!("sharded")
            };
            let Some(SetExpr::Values(values)) = ins.source.as_ref().map(|q| q.body.as_ref()) else {
                return Err(SqlError::Unsupported(format!(
                    "INSERT INTO sharded table {} needs a VALUES list (INSERT ... SELECT is not supported yet)",
                    rule.table
                )));
            };
            if c.sharded.len() > 1 || !c.unruled.is_empty() {
                return Err(SqlError::Unsupported(
                    "an INSERT into a sharded table may not read other tables".into(),
                ));
            }
            if let Some(q) = &ins.source
                && (q.with.is_some()
                    || q.order_by.is_some()
                    || q.limit_clause.is_some()
                    || q.fetch.is_some())
            {
                // Split per shard, each part would be limited on its own.
                return Err(SqlError::Unsupported(format!(
                    "INSERT INTO sharded table {} with VALUES ... ORDER BY/LIMIT/OFFSET or WITH is not supported",
                    rule.table
                )));
            }
            let Some(cols) = insert_columns(ins, all_columns) else {
                return Err(SqlError::Unsupported(format!(
                    "INSERT INTO sharded table {} needs a column list (its columns are unknown to shardgate)",
                    rule.table
                )));
            };
            let mut positions = Vec::new();
            for k in keycols {
                let p = cols.iter().position(|c| c == k).ok_or_else(|| {
                    SqlError::NotNull(format!(
                        "null value in column \"{k}\" of relation \"{}\": a row of a sharded table needs its shard key",
                        rule.table
                    ))
                })?;
                positions.push(p);
            }
            if let Some(ast::OnInsert::OnConflict(ast::OnConflict {
                action: ast::OnConflictAction::DoUpdate(du),
                conflict_target,
                ..
            })) = &ins.on
            {
                // The conflict target's columns: the row found holds the
                // same values in them.
                let target: Vec<String> = match conflict_target {
                    Some(ast::ConflictTarget::Columns(cs)) => cs.iter().map(ident_name).collect(),
                    _ => Vec::new(),
                };
                for a in &du.assignments {
                    let cols: Vec<&ObjectName> = match &a.target {
                        ast::AssignmentTarget::ColumnName(c) => vec![c],
                        ast::AssignmentTarget::Tuple(cs) => cs.iter().collect(),
                    };
                    // `SET k = EXCLUDED.k` with k in the conflict target
                    // (ORMs' upserts copy every column): k stays as it is.
                    let unchanged = match (cols.as_slice(), &a.value) {
                        ([c], Expr::CompoundIdentifier(parts)) => {
                            let col = object_parts(c).pop().unwrap_or_default();
                            matches!(parts.as_slice(), [t, v]
                                if ident_name(t) == "excluded" && ident_name(v) == col)
                                && target.contains(&col)
                        }
                        _ => false,
                    };
                    if !unchanged
                        && cols
                            .iter()
                            .any(|c| keycols.contains(&object_parts(c).pop().unwrap_or_default()))
                    {
                        return Err(SqlError::Unsupported(format!(
                            "ON CONFLICT DO UPDATE of shard key column of {} is not supported yet (the row would have to move)",
                            rule.table
                        )));
                    }
                }
            }
            let mut rows = Vec::with_capacity(values.rows.len());
            for r in &values.rows {
                let mut key = Vec::with_capacity(positions.len());
                for (i, p) in positions.iter().enumerate() {
                    let e = r.content.get(*p).ok_or_else(|| {
                        SqlError::Syntax("INSERT has more target columns than expressions".into())
                    })?;
                    if matches!(e, Expr::Value(v) if v.value == Value::Null) {
                        return Err(SqlError::NotNull(format!(
                            "null value in column \"{}\" of relation \"{}\": a row of a sharded table needs its shard key",
                            keycols[i], rule.table
                        )));
                    }
                    key.push(literal_of(e).ok_or_else(|| {
                        SqlError::Unsupported(format!(
                            "the shard key {}.{} in an INSERT must be a literal or a parameter, not {e}",
                            rule.table, keycols[i]
                        ))
                    })?);
                }
                rows.push(key);
            }
            Ok(Template::Insert {
                rule,
                rows,
                stmt: Box::new(stmt.clone()),
            })
        }
    }
}
