//! Joins in the top-level FROM: which tables a statement reads, whether
//! its sharded tables are joined on their shard keys (co-located, so each
//! shard can join its own rows), and the shards that answers come from.

use super::*;

/// A table in the top-level FROM: its rule (if sharded) and the names that
/// qualify its columns.
pub(super) struct FromTable {
    pub(super) rule: Option<Arc<TableRule>>,
    pub(super) quals: Vec<String>,
    /// For a table of a subquery taken in with the outer query's (see
    /// `select::local_subqueries`), that subquery's WHERE: the outer
    /// WHERE cannot name its columns (a bare name there is an outer
    /// table's), its keys are in its own WHERE.
    pub(super) nested: Option<Option<Expr>>,
}

/// The constraint (ON, USING, NATURAL) of a join that has one.
pub(super) fn constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    use JoinOperator as J;
    match op {
        J::Join(c)
        | J::Inner(c)
        | J::Left(c)
        | J::LeftOuter(c)
        | J::Right(c)
        | J::RightOuter(c)
        | J::FullOuter(c)
        | J::Semi(c)
        | J::LeftSemi(c)
        | J::RightSemi(c)
        | J::Anti(c)
        | J::LeftAnti(c)
        | J::RightAnti(c)
        | J::StraightJoin(c) => Some(c),
        _ => None,
    }
}

/// The ON expression of a join that has one.
pub(super) fn join_constraint(op: &JoinOperator) -> Option<&Expr> {
    match constraint(op)? {
        JoinConstraint::On(e) => Some(e),
        _ => None,
    }
}

/// The equalities of two qualified columns among the conjuncts of `on`
/// (`a.x = b.y`), each as ((qualifier, column), (qualifier, column)).
pub(super) fn column_equalities(on: &Expr) -> Vec<((String, String), (String, String))> {
    let qual_col = |e: &Expr| match e {
        Expr::CompoundIdentifier(p) if p.len() >= 2 => {
            Some((ident_name(&p[p.len() - 2]), ident_name(&p[p.len() - 1])))
        }
        _ => None,
    };
    let mut cs = Vec::new();
    conjuncts(on, &mut cs);
    cs.into_iter()
        .filter_map(|c| match c {
            Expr::BinaryOp {
                left,
                op: ast::BinaryOperator::Eq,
                right,
            } => Some((qual_col(left)?, qual_col(right)?)),
            _ => None,
        })
        .collect()
}

pub(super) fn is_inner(op: &JoinOperator) -> bool {
    matches!(op, JoinOperator::Join(_) | JoinOperator::Inner(_))
}

/// The name that qualifies a table factor's columns.
pub(super) fn factor_qual(f: &TableFactor) -> Option<String> {
    match f {
        TableFactor::Table { name, alias, .. } => Some(
            alias
                .as_ref()
                .map(|a| ident_name(&a.name))
                .unwrap_or_else(|| object_parts(name).pop().unwrap_or_default()),
        ),
        TableFactor::Derived { alias: Some(a), .. } => Some(ident_name(&a.name)),
        _ => None,
    }
}

/// Does a FROM clause have an outer join that preserves a table that is not
/// sharded (a reference or catalog table)? Scattering it would repeat that
/// table's unmatched rows once per shard. The tables before a LEFT JOIN
/// preserve no such row when a sharded table is in every one of their
/// rows (`order_items i JOIN products p ON ... LEFT JOIN customers c ON
/// c.id = i.customer_id`: each row of `i JOIN p` lives where its item
/// does); whether the joined table is then co-located is checked apart.
pub(super) fn non_inner_join_with_unsharded(from: &[TableWithJoins], topo: &Topology) -> bool {
    let unsharded = |f: &TableFactor| match f {
        TableFactor::Table { name, .. } => !matches!(classify(name, topo), Class::Sharded(_)),
        TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(a),
            ..
        } if a.columns.is_empty() => filtered_table(subquery, topo).is_none(),
        _ => true,
    };
    from.iter().any(|twj| {
        // Is a sharded table in every row of the joins so far?
        let mut anchored = !unsharded(&twj.relation);
        twj.joins.iter().any(|j| {
            let right_unsharded = unsharded(&j.relation);
            use JoinOperator as J;
            let (preserves_unsharded, next) = match &j.join_operator {
                J::Join(_) | J::Inner(_) | J::CrossJoin(_) => (false, anchored || !right_unsharded),
                J::Left(_) | J::LeftOuter(_) => (!anchored, anchored),
                J::Right(_) | J::RightOuter(_) => (right_unsharded, !right_unsharded),
                _ => (!anchored || right_unsharded, false),
            };
            anchored = next;
            preserves_unsharded
        })
    })
}

pub(super) fn from_tables(
    from: &[TableWithJoins],
    topo: &Topology,
    ons: &mut Vec<Expr>,
) -> Vec<FromTable> {
    let mut out = Vec::new();
    let add = |f: &TableFactor, out: &mut Vec<FromTable>| {
        if let TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(alias),
            ..
        } = f
            && alias.columns.is_empty()
            && let Some(rule) = filtered_table(subquery, topo)
        {
            out.push(FromTable {
                rule: Some(rule),
                quals: vec![ident_name(&alias.name)],
                nested: None,
            });
        }
        if let TableFactor::Table { name, alias, .. } = f {
            let rule = match classify(name, topo) {
                Class::Sharded(r) => Some(r),
                _ => None,
            };
            let mut quals = vec![object_parts(name).pop().unwrap_or_default()];
            if let Some(a) = alias {
                quals = vec![ident_name(&a.name)];
            }
            out.push(FromTable {
                rule,
                quals,
                nested: None,
            });
        }
    };
    for twj in from {
        let first = out.len();
        add(&twj.relation, &mut out);
        for j in &twj.joins {
            let before = out.len();
            add(&j.relation, &mut out);
            if out.len() > before {
                // `JOIN t USING (k)` / `NATURAL JOIN t` on t's key column k:
                // a table before it in this FROM item whose key column is
                // also named k has that column, so it is the one joined
                // (PostgreSQL refuses a name two tables on the left have).
                ons.extend(using_key_equalities(
                    &j.join_operator,
                    &out[first..before],
                    &out[before],
                ));
            }
            if let Some(e) = join_constraint(&j.join_operator) {
                if is_inner(&j.join_operator) {
                    ons.push(e.clone());
                } else if let Some(q) = factor_qual(&j.relation) {
                    // An outer join's ON only relates the joined table to the
                    // tables before it: keep the equalities that name it.
                    let mut cs = Vec::new();
                    conjuncts(e, &mut cs);
                    for c in cs {
                        if let Expr::BinaryOp {
                            left,
                            op: ast::BinaryOperator::Eq,
                            right,
                        } = c
                        {
                            let names = |x: &Expr| matches!(x, Expr::CompoundIdentifier(p) if p.len() >= 2 && ident_name(&p[p.len() - 2]) == q);
                            if names(left) || names(right) {
                                ons.push(c.clone());
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// The key equalities a `USING (...)` or `NATURAL` join of `right` to the
/// tables `left` (those before it in its FROM item) implies: for each key
/// column of `right` the join names (NATURAL: every common column, so
/// each key column some left table's key also has), `l.k = right.k` for
/// each left table whose single-column key is named k.
fn using_key_equalities(op: &JoinOperator, left: &[FromTable], right: &FromTable) -> Vec<Expr> {
    let Some(constraint) = constraint(op) else {
        return Vec::new();
    };
    let Some(rule) = &right.rule else {
        return Vec::new();
    };
    let [key] = rule.key_columns() else {
        return Vec::new();
    };
    let named = match constraint {
        JoinConstraint::Using(cols) => cols
            .iter()
            .any(|c| matches!(object_parts(c).as_slice(), [n] if n == key)),
        JoinConstraint::Natural => true,
        _ => false,
    };
    if !named {
        return Vec::new();
    }
    let column = |t: &FromTable| {
        Expr::CompoundIdentifier(vec![
            Ident::with_quote('"', t.quals[0].clone()),
            Ident::with_quote('"', key.clone()),
        ])
    };
    left.iter()
        .filter(|l| {
            l.rule
                .as_ref()
                .is_some_and(|r| r.key_columns() == [key.clone()])
        })
        .map(|l| Expr::BinaryOp {
            left: Box::new(column(l)),
            op: ast::BinaryOperator::Eq,
            right: Box::new(column(right)),
        })
        .collect()
}

/// The rule of the sharded table a subquery in FROM only filters and
/// projects (`(SELECT * FROM customers WHERE tier = 2) c`): its rows are
/// that table's rows, each on the shard that holds it, under the same key
/// column names, so it joins and routes like the table itself. `None` for
/// anything else: several tables, grouping, aggregates, windows,
/// DISTINCT, ORDER BY/LIMIT, a WITH, other sharded tables in its
/// subqueries, or a key column not passed on under its own name.
pub(super) fn filtered_table(q: &Query, topo: &Topology) -> Option<Arc<TableRule>> {
    if q.with.is_some()
        || q.order_by.is_some()
        || q.limit_clause.is_some()
        || q.fetch.is_some()
        || !q.locks.is_empty()
    {
        return None;
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    if s.distinct.is_some()
        || s.having.is_some()
        || !s.named_window.is_empty()
        || s.qualify.is_some()
        || !matches!(&s.group_by, ast::GroupByExpr::Expressions(g, m) if g.is_empty() && m.is_empty())
    {
        return None;
    }
    let [twj] = s.from.as_slice() else {
        return None;
    };
    if !twj.joins.is_empty() {
        return None;
    }
    let TableFactor::Table { name, .. } = &twj.relation else {
        return None;
    };
    let Class::Sharded(rule) = classify(name, topo) else {
        return None;
    };
    if classes(&relations(q), topo).sharded.len() != 1 {
        return None;
    }
    // No aggregate or window function in the select list (without GROUP
    // BY, an aggregate makes one row of all).
    let mut grouped = false;
    for item in &s.projection {
        let _ = ast::visit_expressions(item, |e| {
            if let Expr::Function(f) = e
                && (f.over.is_some()
                    || is_aggregate(&object_parts(&f.name).pop().unwrap_or_default()))
            {
                grouped = true;
            }
            ControlFlow::<()>::Continue(())
        });
    }
    if grouped {
        return None;
    }
    let star = s.projection.iter().any(|i| {
        matches!(
            i,
            ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(..)
        )
    });
    let passes = |k: &String| {
        s.projection.iter().any(|i| {
            let (e, alias) = match i {
                ast::SelectItem::UnnamedExpr(e) => (e, None),
                ast::SelectItem::ExprWithAlias { expr, alias } => (expr, Some(ident_name(alias))),
                _ => return false,
            };
            let column = match e {
                Expr::Identifier(c) => ident_name(c),
                Expr::CompoundIdentifier(p) => p.last().map(ident_name).unwrap_or_default(),
                _ => return false,
            };
            column == *k && alias.is_none_or(|a| a == *k)
        })
    };
    (star || rule.key_columns().iter().all(passes)).then_some(rule)
}

/// `q` with the CTEs of its (non-recursive) WITH that only filter a
/// sharded table ([`filtered_table`], not `MATERIALIZED`) written in as
/// subqueries in FROM where they are read, as PostgreSQL itself inlines
/// such CTEs: `WITH c AS (SELECT * FROM customers WHERE ...) SELECT ...
/// FROM c JOIN orders o ON o.customer_id = c.id` then joins co-located.
/// `None` when there is no such CTE.
pub(super) fn inline_filtered_ctes(q: &Query, topo: &Topology) -> Option<Query> {
    let with = q.with.as_ref()?;
    if with.recursive {
        return None;
    }
    let inlined: Vec<(String, Query)> = with
        .cte_tables
        .iter()
        .filter(|c| {
            c.alias.columns.is_empty()
                && c.materialized != Some(ast::CteAsMaterialized::Materialized)
                && filtered_table(&c.query, topo).is_some()
        })
        .map(|c| (ident_name(&c.alias.name), (*c.query).clone()))
        .collect();
    if inlined.is_empty() {
        return None;
    }
    struct Inline<'a>(&'a [(String, Query)]);
    impl ast::VisitorMut for Inline<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } = f
                && let [ast::ObjectNamePart::Identifier(n)] = name.0.as_slice()
                && let Some((cte, body)) = self.0.iter().find(|(c, _)| *c == ident_name(n))
            {
                let alias = alias.clone().unwrap_or_else(|| ast::TableAlias {
                    explicit: true,
                    name: Ident::new(cte.clone()),
                    columns: Vec::new(),
                    at: None,
                });
                *f = TableFactor::Derived {
                    lateral: false,
                    subquery: Box::new(body.clone()),
                    alias: Some(alias),
                    sample: None,
                };
            }
            ControlFlow::Continue(())
        }
    }
    let mut out = q.clone();
    let mut w = out.with.take().expect("checked");
    w.cte_tables
        .retain(|c| !inlined.iter().any(|(n, _)| *n == ident_name(&c.alias.name)));
    let _ = ast::VisitMut::visit(&mut out, &mut Inline(&inlined));
    for c in &mut w.cte_tables {
        let _ = ast::VisitMut::visit(c.query.as_mut(), &mut Inline(&inlined));
    }
    if !w.cte_tables.is_empty() {
        out.with = Some(w);
    }
    Some(out)
}

/// Do two co-located tables' key columns appear equal in these conjuncts?
pub(super) fn keys_joined(a: &FromTable, b: &FromTable, cs: &[&Expr]) -> bool {
    let (Some(ra), Some(rb)) = (&a.rule, &b.rule) else {
        return false;
    };
    let (ka, kb) = (ra.key_columns(), rb.key_columns());
    ka.len() == kb.len()
        && ka.iter().zip(kb).all(|(ca, cb)| {
            cs.iter().any(|c| match c {
                Expr::BinaryOp {
                    left,
                    op: ast::BinaryOperator::Eq,
                    right,
                } => {
                    let qa = |e: &Expr| {
                        matches!(e, Expr::CompoundIdentifier(_)) && is_column(e, ca, &a.quals)
                    };
                    let qb = |e: &Expr| {
                        matches!(e, Expr::CompoundIdentifier(_)) && is_column(e, cb, &b.quals)
                    };
                    (qa(left) && qb(right)) || (qb(left) && qa(right))
                }
                _ => false,
            })
        })
}

pub(super) fn co_located(a: &TableRule, b: &TableRule) -> bool {
    match (&a.kind, &b.kind) {
        (
            TableKind::Sharded {
                strategy: sa,
                key_types: ta,
                overrides: oa,
                ..
            },
            TableKind::Sharded {
                strategy: sb,
                key_types: tb,
                overrides: ob,
                ..
            },
        ) => sa == sb && ta == tb && oa == ob,
        _ => false,
    }
}

/// Targets for the sharded tables of a SELECT/UPDATE/DELETE whose top-level
/// FROM is `tables` and WHERE is `selection`. Returns the targets and
/// whether the statement may scatter (all sharded tables joined on their
/// keys), and where a single-column key list was found (for splitting it
/// per shard).
pub(super) fn sharded_targets(
    tables: &[FromTable],
    selection: Option<&Expr>,
    ons: &[Expr],
    sharded_refs: usize,
) -> (Targets, bool, Option<KeyAt>) {
    let sharded: Vec<&FromTable> = tables.iter().filter(|t| t.rule.is_some()).collect();
    let mut cs = Vec::new();
    if let Some(s) = selection {
        conjuncts(s, &mut cs);
    }
    for on in ons {
        conjuncts(on, &mut cs);
    }
    // All sharded references must be top-level tables for key routing.
    if sharded.len() != sharded_refs || sharded.is_empty() {
        return (Targets::All, false, None);
    }
    // Group: every sharded table must be co-located with the first and
    // connected to it through key equalities.
    let mut connected = vec![false; sharded.len()];
    connected[0] = true;
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..sharded.len() {
            if connected[i] {
                continue;
            }
            let ok = (0..sharded.len()).any(|j| {
                connected[j]
                    && co_located(
                        sharded[i].rule.as_ref().expect("sharded"),
                        sharded[j].rule.as_ref().expect("sharded"),
                    )
                    && keys_joined(sharded[i], sharded[j], &cs)
            });
            if ok {
                connected[i] = true;
                changed = true;
            }
        }
    }
    let all_connected = connected.iter().all(|c| *c);
    let whole = Expr::Value(Value::Boolean(true).into());
    let sel = selection.unwrap_or(&whole);
    // The outer query's own tables: the WHERE names their columns.
    let outer: Vec<&FromTable> = sharded
        .iter()
        .copied()
        .filter(|t| t.nested.is_none())
        .collect();
    if all_connected {
        // One key determines every table's shard; take it from any table
        // the WHERE can name.
        for t in &outer {
            let rule = t.rule.as_ref().expect("sharded");
            if let Some(keys) = extract_keys(Some(sel), rule, &t.quals) {
                let at = match rule.key_columns() {
                    [column] if keys.len() > 1 => Some(KeyAt {
                        column: column.clone(),
                        quals: t.quals.clone(),
                    }),
                    _ => None,
                };
                return (
                    Targets::Keys {
                        rule: rule.clone(),
                        keys,
                    },
                    true,
                    at,
                );
            }
        }
        // An array of keys: `key = ANY($1)`, `key = ANY('{...}')`.
        for t in &outer {
            let rule = t.rule.as_ref().expect("sharded");
            if let Some(array) = extract_key_array(sel, rule, &t.quals) {
                return (
                    Targets::KeyArray {
                        rule: rule.clone(),
                        array,
                    },
                    true,
                    None,
                );
            }
        }
        // No list of keys: a range of them, on a range-sharded table.
        for t in &outer {
            let rule = t.rule.as_ref().expect("sharded");
            if let Some((low, high)) = extract_range(sel, rule, &t.quals) {
                return (
                    Targets::Range {
                        rule: rule.clone(),
                        low,
                        high,
                    },
                    true,
                    None,
                );
            }
        }
        return (Targets::All, true, None);
    }
    // Not co-located: only a single shard for all of them will do.
    let mut per_table = Vec::new();
    for t in &sharded {
        let rule = t.rule.as_ref().expect("sharded");
        // A subquery's table by its own WHERE.
        let own = match &t.nested {
            None => Some(sel),
            Some(w) => w.as_ref(),
        };
        match extract_keys(own, rule, &t.quals) {
            Some(k) => per_table.push((rule.clone(), k)),
            None => return (Targets::All, false, None),
        }
    }
    // Route by the first; the executor checks the others agree.
    let (rule, keys) = per_table.swap_remove(0);
    let mut keys = keys;
    for (r, k) in per_table {
        // Only identical single keys in identical placements are known to
        // land together without parameters.
        if !(co_located(&rule, &r) && k.len() == 1 && keys.len() == 1 && k == keys) {
            return (Targets::All, false, None);
        }
    }
    keys.truncate(1);
    (Targets::Keys { rule, keys }, false, None)
}
