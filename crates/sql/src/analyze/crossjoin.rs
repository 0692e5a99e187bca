//! Joins across shards: one sharded table of the join runs first.
//!
//! A SELECT whose sharded tables are not all joined on their shard keys
//! (`orders o JOIN order_items i ON i.order_id = o.id`, `customers c JOIN
//! orders o ON o.priority = c.tier`), or whose outer join preserves a
//! reference table next to a sharded one (`products p LEFT JOIN order_items
//! i ON ...`), cannot run on each shard as it stands. When taking one of
//! its sharded tables out of the join makes the rest plannable, that table
//! is read first through the router (`SELECT * FROM t [WHERE what only
//! concerns t]`) and its rows stand in for it as a table of the router's,
//! exactly as a FROM subquery run first does (see [`super::subquery`]):
//! placed by the column the statement equates with another sharded table's
//! key (co-located with that table, so each row goes to one shard), or else
//! whole on every shard as a reference table's. This is the broadcast /
//! repartition join of distributed databases with the router as the
//! exchange, bounded by the same caps (max_merge_rows, max_merge_bytes/8).
//!
//! Which table: each candidate (each placement of each sharded table of the
//! top-level FROM) is tried by planning the statement with the candidate's
//! stand-in in place; the first that plans is taken, co-located placements
//! before reference ones, filtered tables before unfiltered ones, later
//! tables before earlier ones. WHERE conjuncts that name only the taken
//! table's columns (qualified) go into its query too when every join is
//! inner (a copy: the statement keeps them); conjuncts with function calls,
//! subqueries or time literals stay out (they could mean something else in
//! another statement).

use super::subquery::{Sub, SubKind, marker_table};
use super::*;

/// A sharded table in the top-level FROM that could run first.
struct Candidate {
    /// Index of its FROM item and of the factor within it (0: the item's
    /// first relation, i: its (i-1)th join).
    at: (usize, usize),
    /// The name that qualifies its columns.
    qual: String,
    /// The conjuncts of the WHERE that go into its query.
    pushed: Vec<Expr>,
    /// Placements to try: the other sharded table (its name) and this
    /// table's column equated with that table's key; `None`: a reference
    /// table's.
    placements: Vec<Option<(Arc<TableRule>, String)>>,
}

/// System columns a stand-in does not have.
const SYSTEM_COLUMNS: &[&str] = &["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid"];

/// What of a statement a table run first concerns.
struct Shape<'a> {
    /// The FROM items (an UPDATE's FROM, a DELETE's USING) whose tables
    /// may run first.
    from: &'a [TableWithJoins],
    /// The WHERE.
    selection: Option<&'a Expr>,
    /// An UPDATE's or DELETE's target, if sharded: its qualifier and rule
    /// (a placement for the others, never run first itself).
    target: Option<(String, Arc<TableRule>)>,
}

/// The shape of a SELECT (no WITH, no FOR UPDATE, no writes, a join) or of
/// an UPDATE ... FROM / DELETE ... USING (no RETURNING), else `None`.
fn shape<'a>(stmt: &'a Statement, topo: &Topology) -> Option<Shape<'a>> {
    let target = |t: &TableWithJoins| match &t.relation {
        f @ TableFactor::Table { name, .. } if t.joins.is_empty() => match classify(name, topo) {
            Class::Sharded(rule) => Some(Some((factor_qual(f)?, rule))),
            _ => Some(None),
        },
        _ => None,
    };
    match stmt {
        Statement::Query(q) => {
            if q.with.is_some() || !q.locks.is_empty() || contains_dml(q) {
                return None;
            }
            let SetExpr::Select(s) = q.body.as_ref() else {
                return None;
            };
            // A join: a statement over one table is refused for its
            // merge, which reading the whole table first would only make
            // slower.
            if s.from.iter().map(|t| 1 + t.joins.len()).sum::<usize>() < 2 {
                return None;
            }
            Some(Shape {
                from: &s.from,
                selection: s.selection.as_ref(),
                target: None,
            })
        }
        Statement::Update(u) if u.returning.is_none() => {
            let Some(ast::UpdateTableFromKind::AfterSet(from)) = &u.from else {
                return None;
            };
            Some(Shape {
                from,
                selection: u.selection.as_ref(),
                target: target(&u.table)?,
            })
        }
        Statement::Delete(d) if d.returning.is_none() && d.tables.is_empty() => {
            let (ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t)) = &d.from;
            let ([t], Some(using)) = (t.as_slice(), &d.using) else {
                return None;
            };
            Some(Shape {
                from: using,
                selection: d.selection.as_ref(),
                target: target(t)?,
            })
        }
        _ => None,
    }
}

/// The FROM items of `stmt` that [`shape`] takes tables from.
fn from_mut(stmt: &mut Statement) -> Option<&mut Vec<TableWithJoins>> {
    match stmt {
        Statement::Query(q) => match q.body.as_mut() {
            SetExpr::Select(s) => Some(&mut s.from),
            _ => None,
        },
        Statement::Update(u) => match &mut u.from {
            Some(ast::UpdateTableFromKind::AfterSet(from)) => Some(from),
            _ => None,
        },
        Statement::Delete(d) => d.using.as_mut(),
        _ => None,
    }
}

/// The table of a refused statement's join to run first and the
/// statement with the marker table in its place (see the module header);
/// `None` when no one table makes the statement plannable.
pub(super) fn table_run_first(stmt: &Statement, topo: &Topology) -> Option<(Sub, Statement)> {
    let shape = shape(stmt, topo)?;
    let all_inner = shape.from.iter().all(|t| {
        t.joins.iter().all(|j| {
            is_inner(&j.join_operator) || matches!(j.join_operator, JoinOperator::CrossJoin(_))
        })
    });
    // Column equalities anywhere in the join: placement hints (the
    // planner decides whether they make tables co-located).
    let mut equalities = Vec::new();
    if let Some(w) = shape.selection {
        equalities.extend(column_equalities(w));
    }
    for t in shape.from {
        for j in &t.joins {
            if let Some(on) = join_constraint(&j.join_operator) {
                equalities.extend(column_equalities(on));
            }
        }
    }
    let mut tables: Vec<((usize, usize), String, Arc<TableRule>)> = Vec::new();
    for (ti, twj) in shape.from.iter().enumerate() {
        for (fi, f) in std::iter::once(&twj.relation)
            .chain(twj.joins.iter().map(|j| &j.relation))
            .enumerate()
        {
            if let TableFactor::Table {
                name,
                alias,
                args: None,
                with_hints,
                version: None,
                with_ordinality: false,
                partitions,
                json_path: None,
                sample: None,
                index_hints,
            } = f
                && with_hints.is_empty()
                && partitions.is_empty()
                && index_hints.is_empty()
                && alias.as_ref().is_none_or(|a| a.columns.is_empty())
                && let Class::Sharded(rule) = classify(name, topo)
                && let Some(qual) = factor_qual(f)
            {
                tables.push(((ti, fi), qual, rule));
            }
        }
    }
    let mut placements_by: Vec<(String, Arc<TableRule>)> =
        tables.iter().map(|t| (t.1.clone(), t.2.clone())).collect();
    placements_by.extend(shape.target.clone());
    // A name qualifying two tables would be ambiguous in the equalities.
    if placements_by
        .iter()
        .enumerate()
        .any(|(i, t)| placements_by[..i].iter().any(|u| u.0 == t.0))
    {
        return None;
    }
    if tables
        .iter()
        .enumerate()
        .any(|(i, t)| tables[..i].iter().any(|u| u.1 == t.1))
    {
        return None;
    }
    let mut candidates = Vec::new();
    for (at, qual, _) in &tables {
        if names_beyond_columns(stmt, qual) {
            continue;
        }
        let mut placements = Vec::new();
        for ((qa, ca), (qb, cb)) in &equalities {
            for (mine, theirs) in [((qa, ca), (qb, cb)), ((qb, cb), (qa, ca))] {
                if mine.0 != qual {
                    continue;
                }
                let Some((_, rule)) = placements_by
                    .iter()
                    .find(|t| &t.0 == theirs.0 && &t.0 != qual)
                else {
                    continue;
                };
                if rule.key_columns() == std::slice::from_ref(theirs.1)
                    && !placements
                        .iter()
                        .any(|p: &Option<(Arc<TableRule>, String)>| {
                            p.as_ref()
                                .is_some_and(|(r, c)| r.table == rule.table && c == mine.1)
                        })
                {
                    placements.push(Some((rule.clone(), mine.1.clone())));
                }
            }
        }
        placements.push(None);
        let mut pushed = Vec::new();
        if all_inner && let Some(w) = shape.selection {
            let mut cs = Vec::new();
            conjuncts(w, &mut cs);
            pushed = cs
                .into_iter()
                .filter(|c| only_columns_of(c, qual))
                .cloned()
                .collect();
        }
        candidates.push(Candidate {
            at: *at,
            qual: qual.clone(),
            pushed,
            placements,
        });
    }
    // Co-located placements first, then filtered tables, then later ones.
    let mut order: Vec<(usize, usize)> = Vec::new();
    for keyed in [true, false] {
        let mut round: Vec<(usize, usize)> = candidates
            .iter()
            .enumerate()
            .flat_map(|(ci, c)| {
                c.placements
                    .iter()
                    .enumerate()
                    .filter(move |(_, p)| p.is_some() == keyed)
                    .map(move |(pi, _)| (ci, pi))
            })
            .collect();
        round.sort_by_key(|&(ci, _)| (candidates[ci].pushed.is_empty(), std::cmp::Reverse(ci)));
        order.extend(round);
    }
    for (ci, pi) in order {
        let c = &candidates[ci];
        let placed = &c.placements[pi];
        let outer = with_stand_in(stmt, c)?;
        let mut overlay = topo.clone();
        let marker = marker_table(1);
        let rule = match placed {
            Some((rule, column)) => match stand_in_rule(&marker, rule, column) {
                Some(r) => r,
                None => continue,
            },
            None => TableRule::reference(&marker),
        };
        overlay.rules.insert(marker, Arc::new(rule));
        let planned = matches!(
            analyze_one(&outer, &outer.to_string(), &overlay),
            Ok(Template::Route {
                single_only: None,
                kind: StmtKind::Read | StmtKind::Write,
                ..
            })
        );
        if !planned {
            continue;
        }
        let twj = &shape.from[c.at.0];
        let factor = match c.at.1 {
            0 => &twj.relation,
            i => &twj.joins[i - 1].relation,
        };
        let TableFactor::Table { name, alias, .. } = factor else {
            return None;
        };
        let mut sql = format!("SELECT * FROM {name}");
        if let Some(a) = alias {
            sql.push_str(&format!(" AS {}", a.name));
        }
        if !c.pushed.is_empty() {
            let w: Vec<String> = c.pushed.iter().map(|e| format!("({e})")).collect();
            sql.push_str(&format!(" WHERE {}", w.join(" AND ")));
        }
        return Some((
            Sub {
                sql,
                kind: SubKind::Derived {
                    name: marker_table(1),
                    columns: Vec::new(),
                    placed: placed
                        .as_ref()
                        .map(|(r, col)| (r.table.clone(), col.clone())),
                },
            },
            outer,
        ));
    }
    None
}

/// The rule of a stand-in placed by `column` under `rule` (a sharded
/// table's rule with one key column).
fn stand_in_rule(name: &str, rule: &TableRule, column: &str) -> Option<TableRule> {
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
    Some(TableRule {
        table: name.to_string(),
        kind: TableKind::Sharded {
            columns: vec![column.to_string()],
            key_types: vec![Some(key_type)],
            strategy: strategy.clone(),
            overrides: overrides.clone(),
            all_columns: Vec::new(),
        },
    })
}

/// `stmt` with the candidate's table replaced by the marker table under
/// the same qualifying name.
fn with_stand_in(stmt: &Statement, c: &Candidate) -> Option<Statement> {
    let mut out = stmt.clone();
    let twj = from_mut(&mut out)?.get_mut(c.at.0)?;
    let factor = match c.at.1 {
        0 => &mut twj.relation,
        i => &mut twj.joins.get_mut(i - 1)?.relation,
    };
    let TableFactor::Table { name, alias, .. } = factor else {
        return None;
    };
    let qual = match alias {
        Some(a) => a.name.clone(),
        None => match name.0.last()? {
            ObjectNamePart::Identifier(i) => i.clone(),
            _ => return None,
        },
    };
    *name = ObjectName::from(vec![Ident::new(marker_table(1))]);
    *alias = Some(ast::TableAlias {
        explicit: true,
        name: qual,
        columns: Vec::new(),
        at: None,
    });
    debug_assert_eq!(ident_name(&alias.as_ref()?.name), c.qual);
    Some(out)
}

/// Does the statement name the table qualified `qual` other than by its
/// ordinary columns as `qual.column` (a system column, `schema.t.column`)?
/// Its stand-in would not have them.
fn names_beyond_columns(stmt: &Statement, qual: &str) -> bool {
    crate::find::any_expr(stmt, |e| match e {
        Expr::Identifier(i) => SYSTEM_COLUMNS.contains(&ident_name(i).as_str()),
        Expr::CompoundIdentifier(p) => {
            p.len() >= 2
                && ident_name(&p[p.len() - 2]) == qual
                && (p.len() > 2 || SYSTEM_COLUMNS.contains(&ident_name(&p[p.len() - 1]).as_str()))
        }
        _ => false,
    })
}

/// Is `e` an expression of the columns qualified `qual` and constants
/// (and parameters) only, with no function call, subquery or time literal (a
/// copy of it in another statement means the same)?
fn only_columns_of(e: &Expr, qual: &str) -> bool {
    struct Check<'a> {
        qual: &'a str,
        columns: usize,
    }
    impl Visitor for Check<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::CompoundIdentifier(p) if p.len() == 2 && ident_name(&p[0]) == self.qual => {
                    self.columns += 1;
                    ControlFlow::Continue(())
                }
                Expr::Identifier(_)
                | Expr::CompoundIdentifier(_)
                | Expr::Function(_)
                | Expr::Subquery(_)
                | Expr::Exists { .. }
                | Expr::InSubquery { .. }
                | Expr::AnyOp { .. }
                | Expr::AllOp { .. } => ControlFlow::Break(()),
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(t) | Value::EscapedStringLiteral(t)
                        if ["now", "today", "tomorrow", "yesterday"]
                            .contains(&t.trim().to_ascii_lowercase().as_str()) =>
                    {
                        ControlFlow::Break(())
                    }
                    _ => ControlFlow::Continue(()),
                },
                _ => ControlFlow::Continue(()),
            }
        }
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            ControlFlow::Break(())
        }
    }
    let mut c = Check { qual, columns: 0 };
    e.visit(&mut c).is_continue() && c.columns > 0
}
