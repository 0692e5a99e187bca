//! Statements with data-modifying WITH queries (`WITH d AS (DELETE ...
//! RETURNING ...) INSERT INTO archive SELECT ... FROM d`,
//! `WITH u AS (UPDATE ... RETURNING ...) SELECT ... FROM u`).
//!
//! PostgreSQL runs every part of such a statement in one snapshot, so the
//! statement runs whole or not at all: shardgate sends it as written to
//! one shard, when every part of it is placed on that shard by its keys:
//! - each write (in WITH or the statement itself) is an INSERT ... VALUES,
//!   UPDATE or DELETE of a sharded table that reaches one shard by its key
//!   on its own (analysed as a statement of its own), or an INSERT ...
//!   SELECT from a write in WITH whose shard-key columns are that write's
//!   returned shard-key columns, into a co-located table (the rows stay on
//!   the shard they came from);
//! - the reads (the final SELECT, the other WITH queries) are placed by
//!   their keys too, or read no sharded table at all.
//!
//! The keys of every part make one key list: at Bind, a statement whose
//! keys place on more than one shard is refused (PostgreSQL's snapshot
//! cannot span shards).

use super::*;

/// The refusal for what this module does not take.
fn refusal(why: &str) -> SqlError {
    SqlError::Unsupported(format!(
        "data-modifying WITH over sharded tables runs only when every part of the statement is placed on one shard by its shard keys ({why}); filter every write and read by the shard key"
    ))
}

/// The template of `q`, a query with data-modifying WITH queries (or a
/// WITH query over a write) that reads sharded tables: one route by the
/// keys of all its parts, run only when they place on one shard.
pub(super) fn modifying_with(q: &Query, topo: &Topology) -> Result<Template, SqlError> {
    let Some(with) = &q.with else {
        return Err(refusal("a write nested in a subquery"));
    };
    // The writes in WITH, by name.
    let mut writes: Vec<(String, &ast::Cte, &Statement)> = Vec::new();
    for cte in &with.cte_tables {
        if let Some(stmt) = write_of(&cte.query) {
            writes.push((ident_name(&cte.alias.name), cte, stmt));
        } else if contains_dml(&cte.query) {
            return Err(refusal("a write nested in a WITH query"));
        }
    }
    let main = write_of(q);
    if main.is_none()
        && contains_dml(&Query {
            with: None,
            ..q.clone()
        })
    {
        return Err(refusal("a write nested in a subquery"));
    }
    // A write analysed on its own must not read a WITH query (it would
    // pass for a table of that name).
    let cte_names: Vec<String> = with
        .cte_tables
        .iter()
        .map(|c| ident_name(&c.alias.name))
        .collect();
    let reads_cte = |stmt: &Statement| {
        relations(stmt).iter().any(|r| {
            let parts = object_parts(r);
            parts.len() == 1 && cte_names.contains(&parts[0])
        })
    };
    let mut parts = Placement::default();
    for (_, _, stmt) in &writes {
        if reads_cte(stmt) {
            return Err(refusal("a write in WITH that reads another WITH query"));
        }
        parts.add_write(stmt, topo)?;
    }
    match main {
        Some(Statement::Insert(ins))
            if ins
                .source
                .as_ref()
                .is_some_and(|s| !matches!(s.body.as_ref(), SetExpr::Values(_))) =>
        {
            if writes.len() < with.cte_tables.len() {
                return Err(refusal("a WITH query that reads next to a write"));
            }
            insert_from_write(ins, &writes, topo)?;
        }
        Some(stmt) => {
            // (WITH queries it does not read are not run.)
            if reads_cte(stmt) {
                return Err(refusal(
                    "a write that reads a WITH query other than by INSERT ... SELECT",
                ));
            }
            parts.add_write(stmt, topo)?;
        }
        None => {
            // The reads, with each write in WITH standing for rows of no
            // table (they come from the shard its keys place it on).
            let mut probe = q.clone();
            if let Some(w) = &mut probe.with {
                for cte in &mut w.cte_tables {
                    if write_of(&cte.query).is_some() {
                        *cte.query = parse_query("SELECT 1");
                    }
                }
            }
            parts.add_read(&probe, topo)?;
        }
    }
    parts.template()
}

/// The statement a query stands for when its body is a write.
fn write_of(q: &Query) -> Option<&Statement> {
    match q.body.as_ref() {
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) => Some(s),
        _ => None,
    }
}

fn parse_query(sql: &str) -> Query {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_query())
        .map(|q| *q)
        .expect("a constant query parses")
}

/// The keys of every part of the statement, placed by one rule.
#[derive(Default)]
struct Placement {
    rule: Option<Arc<TableRule>>,
    keys: Vec<Vec<crate::plan::KeyExpr>>,
}

impl Placement {
    /// Add keys placed by `rule` (co-located with the rule so far).
    fn add(
        &mut self,
        rule: &Arc<TableRule>,
        keys: &[Vec<crate::plan::KeyExpr>],
    ) -> Result<(), SqlError> {
        match &self.rule {
            Some(r) if !joins::co_located(r, rule) => {
                return Err(refusal(&format!(
                    "{} and {} are not placed alike",
                    r.table, rule.table
                )));
            }
            Some(_) => {}
            None => self.rule = Some(rule.clone()),
        }
        for k in keys {
            if !self.keys.contains(k) {
                self.keys.push(k.clone());
            }
        }
        Ok(())
    }

    /// Add a write (analysed as a statement of its own).
    fn add_write(&mut self, stmt: &Statement, topo: &Topology) -> Result<(), SqlError> {
        let t = match analyze_one(stmt, &stmt.to_string(), topo) {
            Ok(t) => t,
            Err(e) => {
                return Err(refusal(&format!("the write `{stmt}` alone: {e}")));
            }
        };
        match t {
            Template::Insert { rule, rows, .. } => self.add(&rule, &rows),
            Template::Route {
                targets: Targets::Keys { rule, keys },
                kind: StmtKind::Write,
                ..
            } => self.add(&rule, &keys),
            Template::WithIds { .. } => Err(refusal(
                "an INSERT whose ids shardgate draws (`shardgate.next_id()`)",
            )),
            Template::Move(_) => Err(refusal("an UPDATE of a shard key")),
            _ => Err(refusal(&format!(
                "the write `{stmt}` does not reach one shard by its key"
            ))),
        }
    }

    /// Add the reads of `probe` (the statement's final SELECT and WITH
    /// queries, the writes taken out).
    fn add_read(&mut self, probe: &Query, topo: &Topology) -> Result<(), SqlError> {
        let c = classes(&relations(probe), topo);
        if !c.unruled.is_empty() {
            return Err(refusal(&format!(
                "unsharded table {} lives on the default shard only",
                c.unruled[0]
            )));
        }
        if c.sharded.is_empty() {
            // Reference tables or none: the same on every shard.
            return Ok(());
        }
        match select::analyze_query(probe, topo) {
            Ok(Template::Route {
                targets: Targets::Keys { rule, keys },
                ..
            }) => self.add(&rule, &keys),
            _ => Err(refusal(
                "a read of a sharded table that is not placed by its key",
            )),
        }
    }

    /// One route by all the keys, on one shard only.
    fn template(self) -> Result<Template, SqlError> {
        let Some(rule) = self.rule else {
            return Err(refusal("no part is placed by a key"));
        };
        Ok(Template::Route {
            targets: Targets::Keys {
                rule,
                keys: self.keys,
            },
            kind: StmtKind::Write,
            single_only: Some(refusal("its keys place it on more than one shard")),
            learns: None,
            merge: None,
            aggregate: None,
            split: None,
        })
    }
}

/// Check an `INSERT INTO t ... SELECT ... FROM d`, `d` a write in WITH:
/// `t` is sharded, co-located with `d`'s table, and each of its shard-key
/// columns takes the column of `d` that returns the same shard-key column
/// of `d`'s table, so that every row stays on the shard `d` ran on. The
/// SELECT reads `d` alone (or reference tables), without aggregates.
fn insert_from_write(
    ins: &ast::Insert,
    writes: &[(String, &ast::Cte, &Statement)],
    topo: &Topology,
) -> Result<(), SqlError> {
    let no = |why: &str| Err(refusal(why));
    let ast::TableObject::TableName(name) = &ins.table else {
        return no("INSERT INTO a table function");
    };
    let Class::Sharded(rule) = classify(name, topo) else {
        return no("an INSERT ... SELECT into a table that is not sharded");
    };
    let TableKind::Sharded {
        columns: keycols,
        all_columns,
        ..
    } = &rule.kind
    else {
        return no("an INSERT into a table that is not sharded");
    };
    if let Some(ast::OnInsert::OnConflict(ast::OnConflict {
        action: ast::OnConflictAction::DoUpdate(_),
        ..
    })) = &ins.on
    {
        return no("INSERT ... SELECT ... ON CONFLICT DO UPDATE");
    }
    let Some(src) = &ins.source else {
        return no("an INSERT without rows");
    };
    let SetExpr::Select(s) = src.body.as_ref() else {
        return no("an INSERT ... SELECT of a set operation");
    };
    if src.with.is_some()
        || s.having.is_some()
        || !matches!(&s.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
        || crate::aggregate::needs_aggregation(src)
    {
        return no("an INSERT ... SELECT that groups or aggregates");
    }
    // FROM one write in WITH, nothing else.
    let [twj] = s.from.as_slice() else {
        return no("an INSERT ... SELECT from more than one relation");
    };
    let TableFactor::Table {
        name: from,
        alias,
        args: None,
        ..
    } = &twj.relation
    else {
        return no("an INSERT ... SELECT from something other than a write in WITH");
    };
    if !twj.joins.is_empty() || alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
        return no("an INSERT ... SELECT with a join");
    }
    let from_name = object_parts(from);
    let Some((_, cte, write)) = writes
        .iter()
        .find(|(n, _, _)| from_name.len() == 1 && *n == from_name[0])
    else {
        return no("an INSERT ... SELECT from something other than a write in WITH");
    };
    let qual = alias
        .as_ref()
        .map_or_else(|| from_name[0].clone(), |a| ident_name(&a.name));
    // Anything else the INSERT reads (its SELECT, RETURNING, ON
    // CONFLICT): reference tables only.
    let mut others = relations(ins);
    // (The target itself, once.)
    if let Some(i) = others.iter().position(|r| r == name) {
        others.remove(i);
    }
    others.retain(|r| object_parts(r) != from_name);
    let c = classes(&others, topo);
    if !c.sharded.is_empty() || !c.unruled.is_empty() {
        return no("an INSERT ... SELECT that reads other tables");
    }
    // What the write returns: per output column, the shard-key column of
    // its table it is (its position among the key columns), by name.
    let (wrule, returned) = returned_keys(write, topo)
        .ok_or_else(|| refusal("a write in WITH whose returned rows are not known"))?;
    if !joins::co_located(&rule, &wrule) {
        return no(&format!(
            "{} and {} are not placed alike",
            rule.table, wrule.table
        ));
    }
    let mut returned = returned;
    if !cte.alias.columns.is_empty() {
        if cte.alias.columns.len() > returned.len() {
            return no("more WITH column names than returned columns");
        }
        for (r, a) in returned.iter_mut().zip(&cte.alias.columns) {
            r.0 = ident_name(&a.name);
        }
    }
    // The SELECT's columns, by name of the write's output or by position.
    let selected: Vec<Option<usize>> = {
        let mut v = Vec::new();
        for item in &s.projection {
            match item {
                ast::SelectItem::Wildcard(_) => v.extend((0..returned.len()).map(Some)),
                ast::SelectItem::QualifiedWildcard(
                    ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) if object_parts(n) == [qual.clone()] => v.extend((0..returned.len()).map(Some)),
                ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                    let name = column_of(e, &qual);
                    let mut at = returned
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| name.as_ref() == Some(&r.0))
                        .map(|(i, _)| i);
                    v.push(match (at.next(), at.next()) {
                        (Some(i), None) => Some(i),
                        _ => None,
                    });
                }
                _ => return no("an INSERT ... SELECT of this select list"),
            }
        }
        v
    };
    let Some(cols) = insert_columns(ins, all_columns) else {
        return no(&format!("the columns of {} are unknown", rule.table));
    };
    for (i, k) in keycols.iter().enumerate() {
        let Some(p) = cols.iter().position(|c| c == k) else {
            return no(&format!("the INSERT does not set shard key {k}"));
        };
        let from_key = selected
            .get(p)
            .copied()
            .flatten()
            .and_then(|j| returned.get(j))
            .and_then(|r| r.1);
        if from_key != Some(i) {
            return no(&format!(
                "shard key {k} is not the returned shard key of the write it reads"
            ));
        }
    }
    Ok(())
}

/// The rule of a write's sharded table and its RETURNING columns: each
/// output name and, for the table's own shard-key columns returned as they
/// are, the key column's position. `None` when the write is not of a
/// sharded table with a RETURNING list shardgate can name.
#[allow(clippy::type_complexity)]
fn returned_keys(
    write: &Statement,
    topo: &Topology,
) -> Option<(Arc<TableRule>, Vec<(String, Option<usize>)>)> {
    let (name, alias, returning) = match write {
        Statement::Insert(i) => {
            let ast::TableObject::TableName(n) = &i.table else {
                return None;
            };
            (
                n,
                i.table_alias.as_ref().map(|a| &a.alias),
                i.returning.as_ref()?,
            )
        }
        Statement::Update(u) => {
            let TableFactor::Table { name, alias, .. } = &u.table.relation else {
                return None;
            };
            (name, alias.as_ref().map(|a| &a.name), u.returning.as_ref()?)
        }
        Statement::Delete(d) => {
            let tables = match &d.from {
                ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
            };
            let [twj] = tables.as_slice() else {
                return None;
            };
            let TableFactor::Table { name, alias, .. } = &twj.relation else {
                return None;
            };
            (name, alias.as_ref().map(|a| &a.name), d.returning.as_ref()?)
        }
        _ => return None,
    };
    let Class::Sharded(rule) = classify(name, topo) else {
        return None;
    };
    let TableKind::Sharded {
        columns: keycols,
        all_columns,
        ..
    } = &rule.kind
    else {
        return None;
    };
    let qual = alias.map_or_else(|| object_parts(name).pop().unwrap_or_default(), ident_name);
    let key_of = |c: &str| keycols.iter().position(|k| k == c);
    let mut out = Vec::new();
    for item in returning {
        match item {
            ast::SelectItem::Wildcard(_) => {
                if all_columns.is_empty() {
                    return None;
                }
                out.extend(all_columns.iter().map(|c| (c.clone(), key_of(c))));
            }
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                let column = column_of(e, &qual);
                let name = match item {
                    ast::SelectItem::ExprWithAlias { alias, .. } => ident_name(alias),
                    _ => crate::aggregate::output_name(e),
                };
                out.push((name, column.as_deref().and_then(key_of)));
            }
            _ => return None,
        }
    }
    Some((rule, out))
}

/// The column `e` is, if it is one of the table named `qual` (bare, or
/// qualified by that name).
fn column_of(e: &Expr, qual: &str) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(ident_name(i)),
        Expr::CompoundIdentifier(p) => match p.as_slice() {
            [q, c] if ident_name(q) == qual => Some(ident_name(c)),
            _ => None,
        },
        _ => None,
    }
}
