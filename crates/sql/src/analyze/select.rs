//! Planning a SELECT over sharded tables: where it runs (co-located joins
//! and subqueries), and how a multi-shard result is merged (streaming
//! merge-sort for ORDER BY/LIMIT, two-step aggregation for aggregates,
//! GROUP BY, HAVING and DISTINCT, or whole on each shard when groups live
//! on one shard).

use super::*;
use crate::merge::MergeSpec;
use crate::plan::AggTemplate;

pub(super) fn analyze_query(q: &Query, topo: &Topology) -> Result<Template, SqlError> {
    analyze_query_surveyed(q, topo, relations(q), contains_dml(q))
}

/// [`analyze_query`] of a query whose tables (`rels`, see [`relations`])
/// and writes (`writes`, see [`contains_dml`]) are known.
pub(super) fn analyze_query_surveyed(
    q: &Query,
    topo: &Topology,
    rels: Vec<ObjectName>,
    writes: bool,
) -> Result<Template, SqlError> {
    if let Some(call) = admin_call(q) {
        return Ok(Template::Admin(call?));
    }
    if let Some(r) = super::setops::fetch_as_limit(q) {
        return analyze_query(&r, topo);
    }
    let c = classes(&rels, topo);
    if c.sharded.is_empty() {
        if writes && c.reference > 0 {
            return Err(SqlError::Unsupported(
                "data-modifying WITH over reference tables is not supported yet".into(),
            ));
        }
        let kind = if writes {
            StmtKind::Write
        } else {
            StmtKind::Read
        };
        return Ok(route(Targets::Default, kind));
    }
    if !c.unruled.is_empty() {
        return Err(mixed_error(&c));
    }
    if writes {
        return super::modifying::modifying_with(q, topo);
    }
    // CTEs that only filter a sharded table read as that table.
    if let Some(r) = inline_filtered_ctes(q, topo) {
        return analyze_query(&r, topo);
    }
    // UNION ALL of branches that each read only sharded tables and would
    // each run whole on every shard: concatenating per-shard results is
    // the union.
    if let Some(targets) = partitioned_union_all(q, topo) {
        // No ORDER BY, LIMIT or aggregate over the union: a plain scatter.
        return Ok(plain_read(targets));
    }
    // Other set operations, as a query over the UNION ALL of their
    // branches (when that can be merged across shards).
    if matches!(q.body.as_ref(), SetExpr::SetOperation { .. })
        && let Some(r) = super::setops::rewrite(q)
        && let Ok(
            t @ Template::Route {
                single_only: None, ..
            },
        ) = analyze_query(&r, topo)
    {
        return Ok(t);
    }
    // FROM one subquery whose result is partitioned across shards: the
    // statement runs per shard like one over a sharded table (no key).
    if let Some((targets, inner)) = partitioned_from(q, topo) {
        // The subquery was checked on its own: the outer query's checks
        // skip it.
        return plan_select(q, targets, true, &[], &[inner], None, &c);
    }
    // A query over one cross-shard aggregate: one final query does both.
    if let Some(t) = super::nested::nested_aggregate(q, topo) {
        return Ok(t);
    }
    let mut local: Vec<Query> = Vec::new();
    let (tables, selection, ons) = match q.body.as_ref() {
        SetExpr::Select(s) => {
            let mut ons = Vec::new();
            let mut t = from_tables(&s.from, topo, &mut ons);
            let exprs = select_exprs(s);
            local = local_subqueries(&exprs, &lateral_subqueries(s), topo, &mut t, &mut ons);
            local.extend(reference_only_subqueries(q, topo));
            (t, s.selection.as_ref(), ons)
        }
        _ => (Vec::new(), None, Vec::new()),
    };
    let (targets, mut may_scatter, key_at) =
        sharded_targets(&tables, selection, &ons, c.sharded.len());
    if let SetExpr::Select(s) = q.body.as_ref()
        && non_inner_join_with_unsharded(&s.from, topo)
        && !super::outer::reference_left_join_scatters(q, topo)
    {
        may_scatter = false;
    }
    plan_select(q, targets, may_scatter, &tables, &local, key_at, &c)
}

/// A read sent as written to `targets`, its rows concatenated.
fn plain_read(targets: Targets) -> Template {
    Template::Route {
        targets,
        kind: StmtKind::Read,
        single_only: None,
        learns: None,
        merge: None,
        aggregate: None,
        split: None,
    }
}

/// Are `targets` keys written as literals that all place on one shard (with
/// the topology analysis runs against, which the plan is cached with)?
/// Such a statement never scatters: no merge need be planned.
fn literals_on_one_shard(targets: &Targets) -> bool {
    let Targets::Keys { rule, keys } = targets else {
        return false;
    };
    let mut shard = None;
    for k in keys {
        if !k.iter().all(|e| matches!(e, KeyExpr::Literal(_))) {
            return false;
        }
        match crate::plan::place(rule, k, &crate::Params::none()) {
            Ok(s) if shard.is_none_or(|first| first == s) => shard = Some(s),
            _ => return false,
        }
    }
    shard.is_some()
}

/// The merge or aggregation of a SELECT that reaches `targets`.
fn plan_select(
    q: &Query,
    targets: Targets,
    may_scatter: bool,
    tables: &[FromTable],
    local: &[Query],
    key_at: Option<KeyAt>,
    c: &Classes,
) -> Result<Template, SqlError> {
    // No sharded table, or literal keys all on one shard: one shard,
    // nothing to merge, split or refuse.
    if targets == Targets::Default || literals_on_one_shard(&targets) {
        return Ok(plain_read(targets));
    }
    let mut merge = None;
    let mut aggregate = None;
    let from_subquery = q.with.is_some()
        || matches!(q.body.as_ref(), SetExpr::Select(s) if s.from.iter().any(|t| {
            std::iter::once(&t.relation)
                .chain(t.joins.iter().map(|j| &j.relation))
                .any(|f| matches!(f, TableFactor::Derived { .. }))
        }));
    let single_only = if !may_scatter && matches!(q.body.as_ref(), SetExpr::SetOperation { .. }) {
        Some(SqlError::Unsupported(
            "a set operation over sharded tables is supported across shards when its branches are plain SELECTs with named columns (no *) that each read only sharded tables and need no cross-shard merge or aggregate, as UNION ALL, UNION, or INTERSECT/EXCEPT of two branches (not ALL); add a shard-key filter so it reaches one shard".into(),
        ))
    } else if !may_scatter
        && matches!(q.body.as_ref(), SetExpr::Select(s) if !lateral_subqueries(s).is_empty())
    {
        Some(SqlError::Unsupported(
            "a LATERAL subquery over sharded tables is supported across shards when its WHERE ties its sharded tables to the shard key of a sharded table before it (`WHERE o.customer_id = c.id`), so that each row's subquery reads that row's shard; this one is not, so it needs one shard: add a shard-key filter".into(),
        ))
    } else if !may_scatter && from_subquery {
        Some(SqlError::Unsupported(
            "a subquery in FROM or WITH over sharded tables is supported when it is the only FROM item and its rows are partitioned across shards (no ORDER BY/LIMIT, no cross-shard aggregate or DISTINCT, no reference or unsharded tables, no joins next to it); this one is not, so it needs one shard: add a shard-key filter".into(),
        ))
    } else if !may_scatter {
        Some(SqlError::Unsupported(format!(
            "this query joins or nests sharded tables ({}) in a way that needs a cross-shard join, which is not supported yet; filter every sharded table by the same shard key, or join co-located tables on their shard key",
            c.sharded
                .iter()
                .map(|r| r.table.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    } else if crate::aggregate::needs_aggregation(q) || cross_shard_window(q, tables) {
        // (Window functions over rows of several shards: computed by one
        // shard over the merged groups or the shards' raw rows.)
        match plan_aggregation(q, tables, local) {
            Ok((m, a)) => {
                merge = m.map(Box::new);
                aggregate = a.map(Box::new);
                None
            }
            Err(why) => Some(refusal(&why)),
        }
    } else {
        let window_ok = local_window(q, tables);
        match crate::merge::plan_merge(q, |b| merge_needed_with(&strip_local(b, local), &window_ok))
        {
            Ok(m) => {
                merge = m.map(Box::new);
                None
            }
            Err(why) => Some(refusal(&why)),
        }
    };
    // (One key tuple reaches one shard, or every shard when it cannot be
    // placed: never split.)
    let one_tuple = matches!(&targets, Targets::Keys { keys, .. } if keys.len() == 1);
    let split = match key_at {
        Some(at) if single_only.is_none() && !one_tuple => Some(Box::new(KeySplit::new(
            Statement::Query(Box::new(q.clone())),
            at,
        ))),
        _ => None,
    };
    Ok(Template::Route {
        targets,
        kind: StmtKind::Read,
        single_only,
        learns: None,
        merge,
        aggregate,
        split,
    })
}

/// The targets of a SELECT whose FROM is a single subquery (a derived
/// table, or the one CTE of a non-recursive WITH) whose result is
/// partitioned across shards: the subquery alone reads sharded tables, and
/// on its own it would run whole on each shard and be concatenated (no
/// merge, no aggregation across shards). Each shard then computes its own
/// part of the subquery's rows, so the outer query may treat them as a
/// sharded table's rows: merged or aggregated across shards as usual, but
/// with no key to route by or push GROUP BY down on.
fn partitioned_from(q: &Query, topo: &Topology) -> Option<(Targets, Query)> {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    let [twj] = s.from.as_slice() else {
        return None;
    };
    if !twj.joins.is_empty() {
        return None;
    }
    let inner: &Query = match &twj.relation {
        TableFactor::Derived {
            lateral: false,
            subquery,
            ..
        } if q.with.is_none() => subquery,
        TableFactor::Table {
            name, args: None, ..
        } => {
            let w = q.with.as_ref()?;
            let [cte] = w.cte_tables.as_slice() else {
                return None;
            };
            let parts = object_parts(name);
            if w.recursive || parts.len() != 1 || parts[0] != ident_name(&cte.alias.name) {
                return None;
            }
            &cte.query
        }
        _ => return None,
    };
    // Every sharded table of the statement is in the subquery, and nothing
    // else is read that lives on one shard or on all of them.
    let ci = classes(&relations(inner), topo);
    let co = classes(&relations(q), topo);
    if ci.sharded.is_empty()
        || co.sharded.len() != ci.sharded.len()
        || co.reference > 0
        || !co.unruled.is_empty()
        || contains_dml(q)
    {
        return None;
    }
    match analyze_query(inner, topo).ok()? {
        Template::Route {
            targets,
            kind: StmtKind::Read,
            single_only: None,
            merge: None,
            aggregate: None,
            ..
        } => Some((targets, inner.clone())),
        _ => None,
    }
}

/// The targets of a `UNION ALL` whose branches each read only sharded
/// tables and, on their own, would run whole on each shard (see
/// [`partitioned_from`]): each shard's result is its part of every
/// branch, so their concatenation is the union. The statement itself must
/// have no ORDER BY, LIMIT or WITH (a merge over a set operation is not
/// done yet).
fn partitioned_union_all(q: &Query, topo: &Topology) -> Option<Targets> {
    if q.with.is_some() || q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some() {
        return None;
    }
    fn branches<'a>(e: &'a SetExpr, out: &mut Vec<&'a SetExpr>) -> bool {
        match e {
            SetExpr::SetOperation {
                op: ast::SetOperator::Union,
                set_quantifier: ast::SetQuantifier::All,
                left,
                right,
            } => branches(left, out) && branches(right, out),
            SetExpr::SetOperation { .. } => false,
            SetExpr::Query(inner)
                if inner.order_by.is_none()
                    && inner.limit_clause.is_none()
                    && inner.with.is_none()
                    && inner.fetch.is_none() =>
            {
                branches(&inner.body, out)
            }
            SetExpr::Select(_) => {
                out.push(e);
                true
            }
            _ => false,
        }
    }
    let mut list = Vec::new();
    if !matches!(q.body.as_ref(), SetExpr::SetOperation { .. }) || !branches(&q.body, &mut list) {
        return None;
    }
    let mut targets: Option<Targets> = None;
    for b in list {
        let branch = Query {
            body: Box::new(b.clone()),
            with: None,
            order_by: None,
            limit_clause: None,
            fetch: None,
            locks: Vec::new(),
            for_clause: None,
            settings: None,
            format_clause: None,
            pipe_operators: Vec::new(),
        };
        let cb = classes(&relations(&branch), topo);
        if cb.sharded.is_empty() || cb.reference > 0 || !cb.unruled.is_empty() {
            return None;
        }
        let Template::Route {
            targets: t,
            kind: StmtKind::Read,
            single_only: None,
            merge: None,
            aggregate: None,
            ..
        } = analyze_query(&branch, topo).ok()?
        else {
            return None;
        };
        targets = Some(match targets {
            None => t,
            Some(prev) if prev == t => prev,
            // Branches reaching different shards: all of them (each branch
            // filters its own rows on every shard).
            Some(_) => Targets::All,
        });
    }
    targets
}

/// Subqueries in `exprs` (a SELECT's WHERE and select list, an UPDATE's or
/// DELETE's WHERE, SET and RETURNING: EXISTS, IN, scalar) whose sharded
/// tables are all in their own FROM: their tables join the
/// outer query's (for the co-location check), with their WHERE's
/// equalities, and `x IN (SELECT key ...)` as the equality `x = key`. A
/// subquery whose tables turn out joined on the shard key to the outer
/// query's sharded tables sees, on each shard, all the rows it can match
/// there; the caller's co-location check decides. Returns the subqueries
/// taken in.
pub(super) fn local_subqueries(
    exprs: &[&Expr],
    laterals: &[&Query],
    topo: &Topology,
    tables: &mut Vec<FromTable>,
    ons: &mut Vec<Expr>,
) -> Vec<Query> {
    // Only next to an outer sharded table: the subqueries must join it.
    if !tables.iter().any(|t| t.rule.is_some()) {
        return Vec::new();
    }
    struct Collect<'a> {
        topo: &'a Topology,
        tables: &'a mut Vec<FromTable>,
        ons: &'a mut Vec<Expr>,
        taken: Vec<Query>,
    }
    impl Collect<'_> {
        fn take(&mut self, q: &Query, outer: Option<&Expr>) {
            let SetExpr::Select(s) = q.body.as_ref() else {
                return;
            };
            if q.with.is_some() {
                return;
            }
            // `x IN (SELECT key ... LIMIT n)` is evaluated once, over every
            // shard's rows: its LIMIT, OFFSET, FETCH or DISTINCT ON are not
            // each shard's. (An EXISTS or scalar subquery is taken only
            // when its own WHERE ties it to the outer row's key: its rows
            // are then that key's, on one shard.)
            if outer.is_some()
                && (q.limit_clause.is_some()
                    || q.fetch.is_some()
                    || matches!(s.distinct, Some(ast::Distinct::On(_))))
            {
                return;
            }
            let mut ons = Vec::new();
            let mut ts = from_tables(&s.from, self.topo, &mut ons);
            for t in &mut ts {
                t.nested = Some(s.selection.clone());
            }
            let own = ts.iter().filter(|t| t.rule.is_some()).count();
            let all = classes(&relations(q), self.topo).sharded.len();
            if own == 0 || own != all {
                return;
            }
            // A name that shadows an outer one would make its equalities
            // look like a join they are not.
            if ts
                .iter()
                .any(|t| self.tables.iter().any(|o| o.quals == t.quals))
            {
                return;
            }
            if let Some(w) = &s.selection {
                ons.push(w.clone());
            }
            // x IN (SELECT key FROM t ...): the equality x = t.key.
            if let (
                Some(x),
                [
                    ast::SelectItem::UnnamedExpr(e)
                    | ast::SelectItem::ExprWithAlias { expr: e, .. },
                ],
            ) = (outer, s.projection.as_slice())
            {
                let qualified = match e {
                    Expr::Identifier(i) if ts.len() == 1 => Some(Expr::CompoundIdentifier(vec![
                        Ident::new(ts[0].quals[0].clone()),
                        i.clone(),
                    ])),
                    Expr::CompoundIdentifier(_) => Some(e.clone()),
                    _ => None,
                };
                if let Some(k) = qualified {
                    ons.push(Expr::BinaryOp {
                        left: Box::new(x.clone()),
                        op: ast::BinaryOperator::Eq,
                        right: Box::new(k),
                    });
                }
            }
            self.tables.extend(ts);
            self.ons.extend(ons);
            self.taken.push(q.clone());
        }
    }
    impl Visitor for Collect<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Exists { subquery, .. } | Expr::Subquery(subquery) => {
                    self.take(subquery, None)
                }
                Expr::InSubquery { expr, subquery, .. } => self.take(subquery, Some(expr)),
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut c = Collect {
        topo,
        tables,
        ons,
        taken: Vec::new(),
    };
    for e in exprs {
        let _ = e.visit(&mut c);
    }
    // A LATERAL subquery is evaluated once per row of the tables before
    // it, like a correlated scalar subquery: taken on the same terms (its
    // WHERE must tie its sharded tables to an outer one's key, so that
    // each outer row's subquery rows live on that row's shard; then its
    // ORDER BY, LIMIT and aggregates are each outer row's own).
    for q in laterals {
        c.take(q, None);
    }
    c.taken
}

/// The LATERAL subqueries of a SELECT's top-level FROM.
fn lateral_subqueries(s: &ast::Select) -> Vec<&Query> {
    s.from
        .iter()
        .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)))
        .filter_map(|f| match f {
            TableFactor::Derived {
                lateral: true,
                subquery,
                ..
            } => Some(subquery.as_ref()),
            _ => None,
        })
        .collect()
}

/// The subqueries of `q` (at any depth, in any clause) that read no table
/// but reference tables (or none at all): every shard holds all of their
/// rows, so each shard computes them whole, correlated or not, whatever
/// they aggregate, sort or limit (`(SELECT count(*) FROM products p WHERE
/// p.id = o.product_id)`). Catalog tables differ between shards and do not
/// count as reference tables here. Not taken: a subquery that may hold an
/// aggregate of the outer query (`(SELECT max(o.amount))` aggregates the
/// outer rows, as PostgreSQL reads an aggregate of outer columns only).
fn reference_only_subqueries(q: &Query, topo: &Topology) -> Vec<Query> {
    struct Collect<'a> {
        topo: &'a Topology,
        top: &'a Query,
        /// The statement's tables, read when a subquery needs them.
        all: Option<Vec<ObjectName>>,
        depth: usize,
        found: Vec<Query>,
    }
    impl Visitor for Collect<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            self.depth += 1;
            if self.depth > 1 {
                let rels = relations(q);
                let c = classes(&rels, self.topo);
                if c.sharded.is_empty()
                    && c.unruled.is_empty()
                    && c.reference == rels.len()
                    && !may_aggregate_outer_rows(
                        q,
                        &rels,
                        self.all.get_or_insert_with(|| relations(self.top)),
                        self.topo,
                    )
                {
                    self.found.push(q.clone());
                }
            }
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
    }
    let mut c = Collect {
        topo,
        top: q,
        all: None,
        depth: 0,
        found: Vec::new(),
    };
    let _ = q.visit(&mut c);
    c.found
}

/// May subquery `sub` (whose tables are `rels`; the whole statement's are
/// `all`) hold an aggregate call that belongs to an outer query? PostgreSQL
/// gives an aggregate to the innermost query whose columns its arguments
/// name, so one that names only outer columns aggregates the outer rows.
/// Sure not when every column an aggregate's call names is qualified by a
/// name `sub` defines, or is bare and no table outside `sub` has such a
/// column (every table outside it sharded with its columns known).
fn may_aggregate_outer_rows(
    sub: &Query,
    rels: &[ObjectName],
    all: &[ObjectName],
    topo: &Topology,
) -> bool {
    // The columns of the tables outside `sub`, when all are known.
    let outside: Option<HashSet<String>> = {
        let mut rest: Vec<&ObjectName> = all.iter().collect();
        for r in rels {
            if let Some(i) = rest.iter().position(|x| *x == r) {
                rest.remove(i);
            }
        }
        let mut cols = HashSet::new();
        let mut known = true;
        for r in rest {
            match classify(r, topo) {
                Class::Sharded(rule) => match &rule.kind {
                    TableKind::Sharded { all_columns, .. } if !all_columns.is_empty() => {
                        cols.extend(all_columns.iter().cloned());
                    }
                    _ => known = false,
                },
                _ => known = false,
            }
        }
        known.then_some(cols)
    };
    // The names `sub` defines for its FROM items (an aliased table's name
    // is not one of them: it names an outer table).
    struct Own(HashSet<String>);
    impl Visitor for Own {
        type Break = ();
        fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
            self.0.extend(factor_qual(f));
            ControlFlow::Continue(())
        }
    }
    let mut own = Own(HashSet::new());
    let _ = sub.visit(&mut own);
    let local = |e: &Expr| match e {
        Expr::CompoundIdentifier(p) if p.len() >= 2 => own.0.contains(&ident_name(&p[p.len() - 2])),
        Expr::Identifier(i) => outside
            .as_ref()
            .is_some_and(|cols| !cols.contains(&ident_name(i))),
        _ => true,
    };
    crate::find::any_expr(sub, |e| match e {
        Expr::Function(f) if f.over.is_none() => {
            let name = object_parts(&f.name).pop().unwrap_or_default();
            (is_aggregate(&name) || f.filter.is_some() || !f.within_group.is_empty())
                && crate::find::any_expr(e, |x| !local(x))
        }
        _ => false,
    })
}

/// A SELECT's WHERE and select-list expressions (where
/// [`local_subqueries`] looks).
fn select_exprs(s: &ast::Select) -> Vec<&Expr> {
    s.selection
        .iter()
        .chain(s.projection.iter().filter_map(|i| match i {
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                Some(e)
            }
            _ => None,
        }))
        .collect()
}

/// `q` with the given subqueries replaced by `SELECT 1` (for the checks
/// that look for merges a subquery would need: these run whole on each
/// shard).
fn strip_local<'q>(q: &'q Query, local: &[Query]) -> std::borrow::Cow<'q, Query> {
    use std::borrow::Cow;
    if local.is_empty() {
        return Cow::Borrowed(q);
    }
    struct Strip<'a>(&'a [Query], Query);
    impl ast::VisitorMut for Strip<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            if self.0.contains(q) {
                *q = self.1.clone();
            }
            ControlFlow::Continue(())
        }
    }
    let one = match Parser::parse_sql(&PostgreSqlDialect {}, "SELECT 1") {
        Ok(mut v) => match v.pop() {
            Some(Statement::Query(q)) => *q,
            _ => return Cow::Borrowed(q),
        },
        Err(_) => return Cow::Borrowed(q),
    };
    let mut out = q.clone();
    let _ = ast::VisitMut::visit(&mut out, &mut Strip(local, one));
    Cow::Owned(out)
}

/// The refusal of a multi-shard SELECT that needs `why`.
pub(crate) fn refusal(why: &str) -> SqlError {
    SqlError::Unsupported(format!(
        "a multi-shard SELECT with {why} is not supported yet; add a shard-key filter so it reaches one shard"
    ))
}

/// Why a query's FROM, WHERE or WITH (not its top-level aggregation) would
/// need a merge this version does not do.
fn nested_merge_needed(q: &Query) -> Option<String> {
    let mut bare = q.clone();
    bare.order_by = None;
    bare.limit_clause = None;
    bare.fetch = None;
    if let SetExpr::Select(s) = bare.body.as_mut() {
        s.projection = vec![ast::SelectItem::UnnamedExpr(Expr::Value(
            Value::Number("1".into(), false).into(),
        ))];
        s.group_by = ast::GroupByExpr::Expressions(Vec::new(), Vec::new());
        s.having = None;
        s.distinct = None;
    }
    merge_needed(&bare)
}

/// Do these expressions name every shard-key column of one sharded table
/// in FROM (so that equal values live on one shard)? (Not a subquery's
/// table: the outer query's names are not its columns.)
fn covers_key(exprs: &[Expr], tables: &[FromTable]) -> bool {
    tables
        .iter()
        .filter(|t| t.nested.is_none())
        .any(|t| match &t.rule {
            Some(rule) => match &rule.kind {
                shardgate_core::TableKind::Sharded { columns, .. } => columns
                    .iter()
                    .all(|c| exprs.iter().any(|e| is_column(e, c, &t.quals))),
                _ => false,
            },
            None => false,
        })
}

/// The bare GROUP BY names that are aliases of expressions not naming
/// them (see `aggregate::group_exprs`) and also shard-key columns of a FROM
/// table. PostgreSQL groups by the table's column there (input columns come
/// first in GROUP BY), and a column is known to exist: such a GROUP BY is
/// the key's, pushed down whole (the shards resolve the name as PostgreSQL
/// does). (Other columns with an alias's name are only known to the
/// shards: see `aggregate::guard_alias_groups`.)
fn alias_shadowing_key(s: &ast::Select, tables: &[FromTable]) -> Vec<String> {
    crate::aggregate::alias_groups(s)
        .into_iter()
        .filter(|name| {
            tables.iter().filter(|t| t.nested.is_none()).any(|t| {
                match t.rule.as_ref().map(|r| &r.kind) {
                    Some(shardgate_core::TableKind::Sharded { columns, .. }) => {
                        columns.iter().any(|c| c == name)
                    }
                    _ => false,
                }
            })
        })
        .collect()
}

/// The bare GROUP BY names that are aliases of expressions not naming
/// them (see `aggregate::alias_groups`) and that shardgate knows to be a
/// column of exactly one FROM table, with that table's qualifier:
/// PostgreSQL groups by the column there (input columns come first in
/// GROUP BY). Known only when every FROM item is a sharded table whose
/// columns shardgate knows (no subquery, function, reference or unsharded
/// table, whose columns only the shards know; no column aliases) and no
/// join merges columns (USING, NATURAL).
fn known_input_groups(s: &ast::Select, tables: &[FromTable]) -> Vec<(String, String)> {
    let names = crate::aggregate::alias_groups(s);
    if names.is_empty() {
        return Vec::new();
    }
    let Some(known) = from_columns(s, tables) else {
        return Vec::new();
    };
    names
        .into_iter()
        .filter_map(|n| {
            let mut with = known.iter().filter(|(_, cols)| cols.contains(&n));
            match (with.next(), with.next()) {
                (Some((qual, _)), None) => Some((n, qual.clone())),
                _ => None,
            }
        })
        .collect()
}

/// Each FROM item of `s` with its qualifier and its columns, when
/// shardgate knows them all: every item is a sharded table whose columns
/// it knows (no subquery, function, reference or unsharded table, whose
/// columns only the shards know; no column aliases) and no join merges
/// columns (USING, NATURAL).
fn from_columns<'t>(
    s: &ast::Select,
    tables: &'t [FromTable],
) -> Option<Vec<(String, &'t [String])>> {
    let mut known = Vec::new();
    for twj in &s.from {
        for (i, f) in std::iter::once(&twj.relation)
            .chain(twj.joins.iter().map(|j| &j.relation))
            .enumerate()
        {
            if i > 0
                && matches!(
                    joins::constraint(&twj.joins[i - 1].join_operator),
                    Some(ast::JoinConstraint::Using(_) | ast::JoinConstraint::Natural)
                )
            {
                return None;
            }
            let ast::TableFactor::Table { name, alias, .. } = f else {
                return None;
            };
            if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                return None;
            }
            let qual = match alias {
                Some(a) => ident_name(&a.name),
                None => object_parts(name).pop().unwrap_or_default(),
            };
            let columns = tables.iter().find_map(|t| match t.rule.as_deref() {
                Some(TableRule {
                    kind: TableKind::Sharded { all_columns, .. },
                    ..
                }) if t.nested.is_none()
                    && t.quals.first() == Some(&qual)
                    && !all_columns.is_empty() =>
                {
                    Some(all_columns.as_slice())
                }
                _ => None,
            })?;
            known.push((qual, columns));
        }
    }
    Some(known)
}

/// The prefix of the placeholders that stand for constant subqueries
/// while an aggregation is planned (see [`constant_subqueries`]).
const CONST_PLACEHOLDER: &str = "sg_refsub_";

/// `q` with its uncorrelated subqueries over reference tables only (of
/// `local`) in the select list, HAVING and ORDER BY replaced by quoted
/// placeholders, and each placeholder with the SQL it stands for: every
/// shard computes such a subquery alike, the final query's shard too, so
/// the two-step aggregation takes it as a constant (`HAVING count(*) >
/// (SELECT count(*) FROM products) / 10`). Uncorrelated: each column it
/// names is qualified by one of its own FROM items, or is bare and no
/// table of the outer FROM has such a column (`outside`); no parameter.
/// `None` when there is none.
fn constant_subqueries(
    q: &Query,
    local: &[Query],
    outside: &HashSet<String>,
) -> Option<(Query, Vec<(String, String)>)> {
    let uncorrelated = |sq: &Query| {
        struct Own(HashSet<String>);
        impl Visitor for Own {
            type Break = ();
            fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
                self.0.extend(joins::factor_qual(f));
                ControlFlow::Continue(())
            }
        }
        let mut own = Own(HashSet::new());
        let _ = sq.visit(&mut own);
        !crate::find::any_expr(sq, |e| match e {
            Expr::CompoundIdentifier(p) if p.len() >= 2 => {
                !own.0.contains(&ident_name(&p[p.len() - 2]))
            }
            Expr::Identifier(i) => outside.contains(&ident_name(i)),
            _ => false,
        })
    };
    // (Parameters are written into the statement when it is planned at
    // Bind: not into a placeholder's SQL.)
    let consts: Vec<&Query> = local
        .iter()
        .filter(|sq| uncorrelated(sq) && !has_placeholders(sq))
        .collect();
    // (A statement that spells a placeholder itself keeps its subqueries:
    // the substitution would rewrite its text too.)
    if consts.is_empty() || q.to_string().contains(CONST_PLACEHOLDER) {
        return None;
    }
    struct Replace<'a> {
        consts: &'a [&'a Query],
        out: Vec<(String, String)>,
    }
    impl Replace<'_> {
        fn placeholder(&mut self, sql: String) -> Expr {
            let p = format!("{CONST_PLACEHOLDER}{}", self.out.len() + 1);
            self.out.push((format!("'{p}'"), sql));
            Expr::Value(Value::SingleQuotedString(p).into())
        }
    }
    impl ast::VisitorMut for Replace<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            let sql = match e {
                Expr::Subquery(sq) if self.consts.contains(&sq.as_ref()) => format!("({sq})"),
                Expr::Exists { subquery, .. } if self.consts.contains(&subquery.as_ref()) => {
                    e.to_string()
                }
                _ => return ControlFlow::Continue(()),
            };
            *e = self.placeholder(sql);
            ControlFlow::Continue(())
        }
    }
    let mut out = q.clone();
    let SetExpr::Select(s) = out.body.as_mut() else {
        return None;
    };
    let mut r = Replace {
        consts: &consts,
        out: Vec::new(),
    };
    for item in &mut s.projection {
        // An unaliased subquery's column is named as the subquery's own
        // column (`(SELECT count(*) ...)` is "count"), EXISTS "exists".
        if let ast::SelectItem::UnnamedExpr(e) = item {
            let mut bare = &*e;
            while let Expr::Nested(inner) = bare {
                bare = inner;
            }
            let name = match bare {
                Expr::Subquery(sq) if consts.contains(&sq.as_ref()) => Some(subquery_name(sq)),
                Expr::Exists { subquery, .. } if consts.contains(&subquery.as_ref()) => {
                    Some("exists".to_string())
                }
                _ => None,
            };
            if let Some(name) = name {
                *item = ast::SelectItem::ExprWithAlias {
                    expr: e.clone(),
                    alias: ast::Ident::with_quote('"', name),
                };
            }
        }
        let _ = ast::VisitMut::visit(item, &mut r);
    }
    if let Some(h) = &mut s.having {
        let _ = ast::VisitMut::visit(h, &mut r);
    }
    if let Some(ob) = &mut out.order_by {
        let _ = ast::VisitMut::visit(ob, &mut r);
    }
    (!r.out.is_empty()).then_some((out, r.out))
}

/// The name PostgreSQL gives a scalar subquery's column: its one select
/// item's.
fn subquery_name(sq: &Query) -> String {
    match sq.body.as_ref() {
        SetExpr::Select(s) => match s.projection.as_slice() {
            [ast::SelectItem::ExprWithAlias { alias, .. }] => ident_name(alias),
            [ast::SelectItem::UnnamedExpr(e)] => crate::aggregate::output_name(e),
            _ => "?column?".into(),
        },
        _ => "?column?".into(),
    }
}

/// `q` with each bare GROUP BY name of `known` (see
/// [`known_input_groups`]) written as the qualified column PostgreSQL
/// reads it as, so that the two-step plan groups by the column and not by
/// the output column of that name.
fn qualify_groups(q: &Query, known: &[(String, String)]) -> Query {
    let mut q = q.clone();
    let SetExpr::Select(s) = q.body.as_mut() else {
        return q;
    };
    let qualify = |e: &mut Expr| {
        if let Expr::Identifier(id) = e
            && let Some((_, qual)) = known.iter().find(|(n, _)| *n == ident_name(id))
        {
            *e = Expr::CompoundIdentifier(vec![ast::Ident::new(qual.clone()), id.clone()]);
        }
    };
    if let ast::GroupByExpr::Expressions(list, _) = &mut s.group_by {
        for g in list.iter_mut() {
            match g {
                Expr::Rollup(sets) | Expr::Cube(sets) | Expr::GroupingSets(sets) => {
                    sets.iter_mut().flatten().for_each(qualify)
                }
                g => qualify(g),
            }
        }
    }
    q
}

/// `s` with the output columns named `names` renamed, so that GROUP BY
/// reads those names as the FROM columns they also are.
fn without_aliases(s: &ast::Select, names: &[String]) -> ast::Select {
    let mut s = s.clone();
    for item in &mut s.projection {
        if let ast::SelectItem::ExprWithAlias { alias, .. } = item
            && names.contains(&crate::analyze::ident_name(alias))
        {
            *alias = ast::Ident::new("sg_shadowed_output");
        }
    }
    s
}

/// Plan a multi-shard SELECT with aggregates, GROUP BY, HAVING or
/// DISTINCT: pushed down whole (and merged like any SELECT) when its groups
/// and distinct rows each live on one shard, else a two-step aggregation.
#[allow(clippy::type_complexity)]
fn plan_aggregation(
    q: &Query,
    tables: &[FromTable],
    local: &[Query],
) -> Result<(Option<MergeSpec>, Option<AggTemplate>), String> {
    if let Some(why) = nested_merge_needed(&strip_local(q, local)) {
        return Err(why);
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Err("a set operation".into());
    };
    // GROUP BY names that PostgreSQL reads as FROM columns, known here.
    let known = known_input_groups(s, tables);
    let key_names: Vec<String> = alias_shadowing_key(s, tables)
        .into_iter()
        .filter(|n| !known.iter().any(|(k, _)| k == n))
        .collect();
    let shadowed: Vec<String> = key_names
        .iter()
        .cloned()
        .chain(known.iter().map(|(n, _)| n.clone()))
        .collect();
    let resolved;
    let grouping: &ast::Select = if shadowed.is_empty() {
        s
    } else {
        resolved = without_aliases(s, &shadowed);
        &resolved
    };
    let group = match crate::aggregate::group_exprs(grouping) {
        // Every shard rejects it with PostgreSQL's own error.
        Err(why) if why == crate::aggregate::OUT_OF_RANGE => return Ok((None, None)),
        r => r?,
    };
    let grouped = !group.is_empty();
    let distinct: Option<Vec<Expr>> = match &s.distinct {
        Some(ast::Distinct::Distinct) => Some(
            s.projection
                .iter()
                .filter_map(|i| match i {
                    ast::SelectItem::UnnamedExpr(e)
                    | ast::SelectItem::ExprWithAlias { expr: e, .. } => Some(e.clone()),
                    _ => None,
                })
                .collect(),
        ),
        Some(ast::Distinct::On(v)) => Some(v.clone()),
        _ => None,
    };
    // Under an outer join the key of the nullable side is NULL on many
    // shards at once: such groups are not shard-local.
    let outer_join = s
        .from
        .iter()
        .any(|t| t.joins.iter().any(|j| !is_inner(&j.join_operator)));
    // Grouping sets regroup across the groups: never shard-local.
    // A GROUP BY name read as an output column's expression may be a FROM
    // column on the shards (see `aggregate::guard_alias_groups`): only the
    // two-step plan's partial query carries the guard.
    let pushdown = !outer_join
        && crate::aggregate::alias_groups(grouping).is_empty()
        && !crate::aggregate::has_grouping_sets(s)
        && (grouped || distinct.is_some())
        && (!grouped || covers_key(&group, tables))
        && distinct.as_ref().is_none_or(|d| covers_key(d, tables));
    if let Some(name) = key_names.first()
        && !pushdown
    {
        return Err(format!(
            "GROUP BY {name}, which names both an output column and a shard-key column, where the groups are not each on one shard (PostgreSQL groups by the table's column: write that, or rename the output column)"
        ));
    }
    if pushdown {
        // Subqueries or window functions over the groups would see one
        // shard's groups only (but not those that run whole on each shard).
        let mut exprs: Vec<&Expr> = s
            .projection
            .iter()
            .filter_map(|i| match i {
                ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
                _ => None,
            })
            .collect();
        exprs.extend(s.having.as_ref());
        if let Some(ob) = &q.order_by
            && let ast::OrderByKind::Expressions(l) = &ob.kind
        {
            exprs.extend(l.iter().map(|o| &o.expr));
        }
        let window_ok = local_window(q, tables);
        match exprs
            .iter()
            .find_map(|e| window_or_subquery(e, &window_ok, local))
        {
            // Windows across the groups: two steps after all, the
            // windows in the final query.
            Some(why) if why == WINDOW => {}
            Some(why) => return Err(why),
            None => {
                return crate::merge::plan_merge(q, |b| {
                    nested_merge_needed(&strip_local(b, local))
                })
                .map(|m| (m, None));
            }
        }
    }
    if let Some(name) = key_names.first() {
        // (The two-step plan would group by the output column's expression.)
        return Err(format!(
            "GROUP BY {name}, which names both an output column and a shard-key column, with window functions over the groups (PostgreSQL groups by the table's column: write that, or rename the output column)"
        ));
    }
    let qualified;
    let q = if known.is_empty() {
        q
    } else {
        qualified = qualify_groups(q, &known);
        &qualified
    };
    // Uncorrelated subqueries over reference tables: constants.
    let with_consts = from_columns(s, tables).and_then(|cols| {
        let outside: HashSet<String> = cols.iter().flat_map(|(_, c)| c.iter().cloned()).collect();
        constant_subqueries(q, local, &outside)
    });
    let (q, consts) = match &with_consts {
        Some((cq, consts)) => (cq, consts.clone()),
        None => (q, Vec::new()),
    };
    let spec = crate::aggregate::plan_aggregate(q)?;
    let planned = (!has_placeholders(q)).then(|| std::sync::Arc::new(spec.with_consts(&consts)));
    Ok((
        None,
        Some(AggTemplate {
            query: Box::new(q.clone()),
            planned,
            outer: None,
            consts,
        }),
    ))
}

const WINDOW: &str = "a window function";

/// A subquery (other than `local` ones, which run whole on each shard) or
/// a window function that is not shard-local in `e`.
fn window_or_subquery(
    e: &Expr,
    window_ok: &dyn Fn(&ast::Function) -> bool,
    local: &[Query],
) -> Option<String> {
    struct F<'a> {
        why: Option<String>,
        window_ok: &'a dyn Fn(&ast::Function) -> bool,
        local: &'a [Query],
        /// Depth inside local subqueries (nothing there counts).
        inside: usize,
    }
    impl Visitor for F<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if self.inside > 0 || self.local.contains(q) {
                self.inside += 1;
                return ControlFlow::Continue(());
            }
            self.why = Some("a subquery over grouped rows".into());
            ControlFlow::Break(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.inside = self.inside.saturating_sub(1);
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if self.inside == 0
                && let Expr::Function(f) = e
                && f.over.is_some()
                && !(self.window_ok)(f)
            {
                self.why = Some(WINDOW.into());
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut f = F {
        why: None,
        window_ok,
        local,
        inside: 0,
    };
    let _ = e.visit(&mut f);
    f.why
}

/// Does `q`'s own SELECT (select list or ORDER BY) call a window function
/// that does not run whole on each shard (see [`local_window`])?
fn cross_shard_window(q: &Query, tables: &[FromTable]) -> bool {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return false;
    };
    let window_ok = local_window(q, tables);
    let mut exprs: Vec<&Expr> =
        s.projection
            .iter()
            .filter_map(|i| match i {
                ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
                _ => None,
            })
            .collect();
    if let Some(ob) = &q.order_by
        && let ast::OrderByKind::Expressions(l) = &ob.kind
    {
        exprs.extend(l.iter().map(|o| &o.expr));
    }
    struct F<'a>(bool, &'a dyn Fn(&ast::Function) -> bool);
    impl Visitor for F<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            // A subquery's windows are its own.
            ControlFlow::Break(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e
                && f.over.is_some()
                && !(self.1)(f)
            {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    exprs.iter().any(|e| {
        let mut f = F(false, &window_ok);
        let _ = e.visit(&mut f);
        f.0
    })
}

/// Which window functions of `q`'s SELECT run whole on each shard: those
/// partitioned by (at least) the shard key of a sharded table in FROM,
/// with no outer join (whose NULL-extended rows share a NULL key across
/// shards). Each partition's rows then live on one shard.
fn local_window<'a>(q: &'a Query, tables: &'a [FromTable]) -> impl Fn(&ast::Function) -> bool + 'a {
    move |f| {
        let SetExpr::Select(s) = q.body.as_ref() else {
            return false;
        };
        if s.from
            .iter()
            .any(|t| t.joins.iter().any(|j| !is_inner(&j.join_operator)))
        {
            return false;
        }
        let named = |name: &Ident| {
            s.named_window.iter().find_map(|d| match &d.1 {
                ast::NamedWindowExpr::WindowSpec(spec)
                    if ident_name(&d.0) == ident_name(name) && spec.window_name.is_none() =>
                {
                    Some(spec)
                }
                _ => None,
            })
        };
        let partition = match &f.over {
            Some(ast::WindowType::WindowSpec(spec)) => match &spec.window_name {
                None => Some(&spec.partition_by),
                Some(base) => named(base).map(|b| &b.partition_by),
            },
            Some(ast::WindowType::NamedWindow(name)) => named(name).map(|b| &b.partition_by),
            None => None,
        };
        partition.is_some_and(|p| covers_key(p, tables))
    }
}

fn has_placeholders(q: &Query) -> bool {
    crate::find::any_expr(
        q,
        |e| matches!(e, Expr::Value(v) if matches!(v.value, Value::Placeholder(_))),
    )
}
