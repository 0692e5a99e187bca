//! Joins across shards: one (or two) sharded tables of the statement run
//! first.
//!
//! A statement whose sharded tables are not all joined on their shard keys
//! (`orders o JOIN order_items i ON i.order_id = o.id`, `customers c JOIN
//! orders o ON o.priority = c.tier`, `WHERE EXISTS (SELECT 1 FROM
//! order_items i WHERE i.order_id = o.id)`), that joins them with an
//! unsharded table, or whose outer join preserves a reference table next to
//! a sharded one (`products p LEFT JOIN order_items i ON ...`), cannot run
//! on each shard as it stands. When taking one of its sharded tables (in
//! its FROM or inside a subquery) out makes the rest plannable, that table
//! is read first through the router (`SELECT * FROM t [WHERE what only
//! concerns t]`) and its rows stand in for it as a table of the router's,
//! exactly as a FROM subquery run first does (see [`super::subquery`]):
//! placed by the column the statement equates with another sharded table's
//! key (co-located with that table, so each row goes to one shard), or else
//! whole on every shard as a reference table's. This is the broadcast /
//! repartition join of distributed databases with the router as the
//! exchange, bounded by the same caps (max_merge_rows, max_merge_bytes/8).
//! SELECTs, UPDATEs and DELETEs (their FROM or USING tables, or the tables
//! of their subqueries: `DELETE FROM orders o WHERE EXISTS (SELECT 1 FROM
//! order_items i WHERE i.order_id = o.id)`; the target never runs first)
//! are taken.
//!
//! Which table: each candidate (each placement of each sharded table whose
//! qualifier is unique in the statement) is tried by planning the
//! statement with the candidate's stand-in in place; the first that plans
//! is taken, co-located placements before reference ones, filtered tables
//! before unfiltered ones, later tables before earlier ones. When no one
//! table will do, pairs of candidates are tried in the same order (a
//! three-way join off the key, a FULL JOIN off the key, a LEFT JOIN of a
//! reference table after a join off the key): both tables run first, each
//! standing in under its own marker. The conjuncts
//! of the table's own query's WHERE that name only its columns (qualified,
//! or bare names of its known columns) go into its query too when every
//! join of that query is inner (a copy: the statement keeps them);
//! conjuncts with function calls, subqueries or time literals stay out
//! (they could mean something else in another statement).

use super::subquery::{Sub, SubKind, marker_table};
use super::*;

/// A sharded table of the statement that could run first.
struct Candidate {
    /// Its place among the statement's table factors, in the order a
    /// syntax tree walk meets them.
    at: usize,
    /// The table as written, with its alias.
    table: String,
    /// The conjuncts of its SELECT's WHERE that go into its query.
    pushed: Vec<Expr>,
    /// Its qualifier.
    qual: String,
    /// Placements to try: the other sharded table's rule, this table's
    /// column equated with that table's key, and the other table's
    /// qualifier; `None`: a reference table's.
    placements: Vec<Option<(Arc<TableRule>, String, String)>>,
}

/// How many candidate placements (in the order they are tried) pairs are
/// made of: at most 120 pairs planned.
const MAX_PAIRED: usize = 16;

/// System columns a stand-in does not have.
const SYSTEM_COLUMNS: &[&str] = &["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid"];

/// Whether a statement may have a table run first: a SELECT (no FOR
/// UPDATE, no writes, its CTEs reading no sharded table) of at least two
/// table factors, an UPDATE (... FROM) or a DELETE (... USING) whose
/// target, the first table factor, never runs first (the others are in
/// FROM, USING or subqueries).
fn eligible(stmt: &Statement, topo: &Topology) -> Option<bool> {
    match stmt {
        Statement::Query(q) => {
            if !q.locks.is_empty() || contains_dml(q) {
                return None;
            }
            if let Some(w) = &q.with
                && w.cte_tables.iter().any(|c| {
                    !classes(&relations(c.query.as_ref()), topo)
                        .sharded
                        .is_empty()
                })
            {
                return None;
            }
            Some(false)
        }
        Statement::Update(u)
            if u.table.joins.is_empty()
                && matches!(u.from, None | Some(ast::UpdateTableFromKind::AfterSet(_))) =>
        {
            Some(true)
        }
        Statement::Delete(d)
            if d.tables.is_empty()
                && matches!(&d.from, ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) if t.len() == 1 && t[0].joins.is_empty()) =>
        {
            Some(true)
        }
        _ => None,
    }
}

/// Are all joins of these FROM items (also inside parentheses) inner?
fn all_inner(from: &[TableWithJoins]) -> bool {
    fn factor(f: &TableFactor) -> bool {
        match f {
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => all_inner(std::slice::from_ref(table_with_joins)),
            _ => true,
        }
    }
    from.iter().all(|t| {
        factor(&t.relation)
            && t.joins.iter().all(|j| {
                (is_inner(&j.join_operator)
                    || matches!(j.join_operator, JoinOperator::CrossJoin(_)))
                    && factor(&j.relation)
            })
    })
}

/// A sharded table factor of the statement.
struct Met {
    /// Its place among the table factors (see [`Candidate::at`]).
    at: usize,
    /// The name that qualifies its columns.
    qual: String,
    /// Its rule.
    rule: Arc<TableRule>,
    /// The table as written, with its alias.
    table: String,
    /// The WHERE of its query, when that query's joins are all inner.
    frame: Option<Expr>,
}

/// The sharded tables of a statement, each with what its own SELECT says
/// about it, and every column equality of the statement.
#[derive(Default)]
struct Survey {
    /// Each query's WHERE (when its joins are all inner), innermost last.
    frames: Vec<Option<Expr>>,
    /// Table factors met so far.
    seen: usize,
    /// The qualifier of every table factor (duplicates make it ambiguous).
    quals: Vec<String>,
    /// The sharded tables met.
    sharded: Vec<Met>,
    /// `a.x = b.y` anywhere (WHERE, ON).
    equalities: Vec<((String, String), (String, String))>,
    /// CTE names (a FROM item of such a name is the CTE).
    ctes: Vec<String>,
    /// Something the walk cannot follow.
    unsure: bool,
}

struct Surveyor<'a> {
    topo: &'a Topology,
    s: Survey,
}

impl Visitor for Surveyor<'_> {
    type Break = ();
    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if let Some(w) = &q.with {
            self.s
                .ctes
                .extend(w.cte_tables.iter().map(|c| ident_name(&c.alias.name)));
        }
        let frame = match q.body.as_ref() {
            SetExpr::Select(sel) => {
                if let Some(w) = &sel.selection {
                    self.s.equalities.extend(column_equalities(w));
                }
                for t in &sel.from {
                    for j in &t.joins {
                        if let Some(on) = join_constraint(&j.join_operator) {
                            self.s.equalities.extend(column_equalities(on));
                        }
                    }
                }
                sel.selection.clone().filter(|_| all_inner(&sel.from))
            }
            _ => None,
        };
        self.s.frames.push(frame);
        ControlFlow::Continue(())
    }
    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.s.frames.pop();
        ControlFlow::Continue(())
    }
    fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
        let at = self.s.seen;
        self.s.seen += 1;
        if let Some(q) = factor_qual(f) {
            self.s.quals.push(q);
        }
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
            && !matches!(object_parts(name).as_slice(), [n] if self.s.ctes.contains(n))
            && let Class::Sharded(rule) = classify(name, self.topo)
            && let Some(qual) = factor_qual(f)
        {
            let table = match alias {
                Some(a) => format!("{name} AS {}", a.name),
                None => name.to_string(),
            };
            let frame = self.s.frames.last().cloned().flatten();
            self.s.sharded.push(Met {
                at,
                qual,
                rule,
                table,
                frame,
            });
        }
        if !matches!(
            f,
            TableFactor::Table { .. }
                | TableFactor::Derived { .. }
                | TableFactor::NestedJoin { .. }
                | TableFactor::Function { .. }
                | TableFactor::UNNEST { .. }
        ) {
            self.s.unsure = true;
        }
        ControlFlow::Continue(())
    }
}

/// The table (or two) of a refused statement to run first (in its
/// top-level join or inside a subquery) and the statement with marker
/// tables in their place (see the module header); `None` when no one table
/// and no pair makes the statement plannable.
pub(super) fn table_run_first(stmt: &Statement, topo: &Topology) -> Option<(Vec<Sub>, Statement)> {
    let write = eligible(stmt, topo)?;
    let mut v = Surveyor {
        topo,
        s: Survey::default(),
    };
    // An UPDATE's or DELETE's own WHERE filters its FROM/USING tables
    // (joined to the target as inner joins).
    let (dml_from, dml_where) = match stmt {
        Statement::Update(u) => match &u.from {
            Some(ast::UpdateTableFromKind::AfterSet(f)) => (Some(f), u.selection.as_ref()),
            _ => (None, None),
        },
        Statement::Delete(d) => (d.using.as_ref(), d.selection.as_ref()),
        _ => (None, None),
    };
    if let Some(from) = dml_from {
        if let Some(w) = dml_where {
            v.s.equalities.extend(column_equalities(w));
        }
        for t in from {
            for j in &t.joins {
                if let Some(on) = join_constraint(&j.join_operator) {
                    v.s.equalities.extend(column_equalities(on));
                }
            }
        }
        v.s.frames
            .push(dml_where.cloned().filter(|_| all_inner(from)));
    }
    let _ = stmt.visit(&mut v);
    let survey = v.s;
    // A join: a statement over one table is refused for its merge, which
    // reading the whole table first would only make slower.
    if survey.unsure || survey.seen < 2 {
        return None;
    }
    let unique = |q: &str| survey.quals.iter().filter(|x| *x == q).count() == 1;
    let mut candidates = Vec::new();
    for Met {
        at,
        qual,
        rule,
        table,
        frame,
    } in &survey.sharded
    {
        // An UPDATE's or DELETE's target stays.
        if (write && *at == 0) || !unique(qual) || names_beyond_columns(stmt, qual) {
            continue;
        }
        let mut placements = Vec::new();
        for ((qa, ca), (qb, cb)) in &survey.equalities {
            for (mine, theirs) in [((qa, ca), (qb, cb)), ((qb, cb), (qa, ca))] {
                if mine.0 != qual || !unique(theirs.0) {
                    continue;
                }
                let Some(Met { rule, .. }) = survey
                    .sharded
                    .iter()
                    .find(|t| &t.qual == theirs.0 && &t.qual != qual)
                else {
                    continue;
                };
                if rule.key_columns() == std::slice::from_ref(theirs.1)
                    && !placements
                        .iter()
                        .any(|p: &Option<(Arc<TableRule>, String, String)>| {
                            p.as_ref()
                                .is_some_and(|(r, c, _)| r.table == rule.table && c == mine.1)
                        })
                {
                    placements.push(Some((rule.clone(), mine.1.clone(), theirs.0.clone())));
                }
            }
        }
        placements.push(None);
        let mut pushed = Vec::new();
        if let Some(w) = frame {
            let mut cs = Vec::new();
            conjuncts(w, &mut cs);
            let own: &[String] = match &rule.kind {
                TableKind::Sharded { all_columns, .. } => all_columns,
                _ => &[],
            };
            pushed = cs
                .into_iter()
                .filter(|c| only_columns_of(c, qual, own))
                .cloned()
                .collect();
        }
        candidates.push(Candidate {
            at: *at,
            qual: qual.clone(),
            table: table.clone(),
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
    // One table first; else two (three-way joins off the key, a LEFT JOIN
    // of a reference table after a join off the key).
    for &one in &order {
        if let Some(found) = attempt(stmt, topo, &candidates, &[one]) {
            return Some(found);
        }
    }
    // (Pairs are tried among the first placements only: planning each is
    // the cost, paid for statements refused otherwise.)
    let order = &order[..order.len().min(MAX_PAIRED)];
    for (i, &first) in order.iter().enumerate() {
        for &second in &order[i + 1..] {
            // Another placement of the same table, or one by the key of
            // the table that now stands in as the first.
            let by = |(a, b): (usize, usize), (c, _): (usize, usize)| {
                candidates[a].placements[b]
                    .as_ref()
                    .is_some_and(|(_, _, q)| *q == candidates[c].qual)
            };
            if second.0 == first.0 || by(first, second) || by(second, first) {
                continue;
            }
            if let Some(found) = attempt(stmt, topo, &candidates, &[first, second]) {
                return Some(found);
            }
        }
    }
    None
}

/// The statement with the chosen candidates' tables (each with its chosen
/// placement: indices into `candidates` and their placements) replaced by
/// marker tables 1, 2, ..., and their queries, when the statement then
/// plans as a single route.
fn attempt(
    stmt: &Statement,
    topo: &Topology,
    candidates: &[Candidate],
    chosen: &[(usize, usize)],
) -> Option<(Vec<Sub>, Statement)> {
    let mut outer = stmt.clone();
    let mut overlay = topo.clone();
    let mut subs = Vec::new();
    for (n, &(ci, pi)) in chosen.iter().enumerate() {
        let c = &candidates[ci];
        let placed = &c.placements[pi];
        let marker = marker_table(n + 1);
        outer = with_stand_in(&outer, c.at, &marker)?;
        let rule = match placed {
            Some((rule, column, _)) => {
                super::subquery::stand_in_rule(&marker, rule, column, Vec::new())?.0
            }
            None => TableRule::reference(&marker),
        };
        overlay.rules.insert(marker.clone(), Arc::new(rule));
        let mut sql = format!("SELECT * FROM {}", c.table);
        if !c.pushed.is_empty() {
            let w: Vec<String> = c.pushed.iter().map(|e| format!("({e})")).collect();
            sql.push_str(&format!(" WHERE {}", w.join(" AND ")));
        }
        subs.push(Sub {
            sql,
            kind: SubKind::Derived {
                name: marker,
                columns: Vec::new(),
                placed: placed
                    .as_ref()
                    .map(|(r, col, _)| (r.table.clone(), col.clone())),
            },
        });
    }
    // (A reference table's copies are written only with stand-ins whose
    // every copy has the same rows.)
    let every_copy = chosen
        .iter()
        .all(|&(ci, pi)| candidates[ci].placements[pi].is_none());
    let planned = match analyze_one(&outer, &outer.to_string(), &overlay) {
        Ok(Template::Route {
            single_only: None,
            kind,
            ..
        }) => {
            matches!(kind, StmtKind::Read | StmtKind::Write)
                || (kind == StmtKind::WriteCopies && every_copy)
        }
        _ => false,
    };
    planned.then_some((subs, outer))
}

/// `stmt` with the table factor at `at` replaced by table `marker` under
/// the same qualifying name.
fn with_stand_in(stmt: &Statement, at: usize, marker: &str) -> Option<Statement> {
    struct Put<'a> {
        at: usize,
        marker: &'a str,
        seen: usize,
        done: bool,
    }
    impl ast::VisitorMut for Put<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<()> {
            let at = self.seen;
            self.seen += 1;
            if at != self.at {
                return ControlFlow::Continue(());
            }
            if let TableFactor::Table { name, alias, .. } = f {
                let qual = match alias {
                    Some(a) => Some(a.name.clone()),
                    None => match name.0.last() {
                        Some(ObjectNamePart::Identifier(i)) => Some(i.clone()),
                        _ => None,
                    },
                };
                if let Some(qual) = qual {
                    *name = ObjectName::from(vec![Ident::new(self.marker)]);
                    *alias = Some(ast::TableAlias {
                        explicit: true,
                        name: qual,
                        columns: Vec::new(),
                        at: None,
                    });
                    self.done = true;
                }
            }
            ControlFlow::Break(())
        }
    }
    let mut out = stmt.clone();
    let mut put = Put {
        at,
        marker,
        seen: 0,
        done: false,
    };
    let _ = ast::VisitMut::visit(&mut out, &mut put);
    put.done.then_some(out)
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

/// Is `e` an expression of the table's columns (qualified `qual`, or
/// bare names of its known columns `own`: the innermost table that has a
/// column is the one named) and constants (and parameters) only, with no
/// function call, subquery or time literal (a copy of it in another
/// statement means the same)?
fn only_columns_of(e: &Expr, qual: &str, own: &[String]) -> bool {
    struct Check<'a> {
        qual: &'a str,
        own: &'a [String],
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
                Expr::Identifier(i) if self.own.contains(&ident_name(i)) => {
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
    let mut c = Check {
        qual,
        own,
        columns: 0,
    };
    e.visit(&mut c).is_continue() && c.columns > 0
}
