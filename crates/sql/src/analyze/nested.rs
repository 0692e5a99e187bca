//! Queries over a cross-shard aggregate: a SELECT whose one subquery (in
//! FROM, or a CTE) needs a two-step aggregation and whose own part reads no
//! table, such as `SELECT count(*) FROM (SELECT DISTINCT status FROM
//! orders) d` or `WITH t AS (SELECT status, sum(amount) s FROM orders
//! GROUP BY status) SELECT * FROM t WHERE s > 100`.
//!
//! The subquery is aggregated as usual (partial rows from every shard,
//! held by the router within `max_merge_rows`); the final query that one
//! shard runs over those rows is then the whole statement with the
//! subquery replaced by the subquery's own final query. Whatever the outer
//! part does (filters, aggregates, ORDER BY, LIMIT, window functions)
//! PostgreSQL itself evaluates over complete rows.

use super::*;
use crate::plan::AggTemplate;

/// What stands for the subquery in the outer query until the subquery's
/// final query replaces it (see [`crate::aggregate::AggSpec::nest`]).
pub(crate) const MARKER: &str = "SELECT sg_nested FROM sg_nested";

fn marker() -> Query {
    match Parser::parse_sql(&PostgreSqlDialect {}, MARKER)
        .ok()
        .and_then(|mut v| v.pop())
    {
        Some(Statement::Query(q)) => *q,
        _ => unreachable!("the marker parses"),
    }
}

/// The template of `q` when it is a query over one cross-shard aggregate.
pub(super) fn nested_aggregate(q: &Query, topo: &Topology) -> Option<Template> {
    // Cheap test first (this runs for every SELECT over sharded tables
    // that gets this far): a WITH, or a subquery in FROM.
    let derived = matches!(q.body.as_ref(), SetExpr::Select(s) if s.from.iter().any(|t| {
        std::iter::once(&t.relation)
            .chain(t.joins.iter().map(|j| &j.relation))
            .any(|f| matches!(f, TableFactor::Derived { .. }))
    }));
    if (q.with.is_none() && !derived) || contains_dml(q) {
        return None;
    }
    let mut shell = q.clone();
    let inner: Query = match shell.with.as_mut() {
        Some(w) => {
            if w.recursive {
                return None;
            }
            let names: Vec<String> = w
                .cte_tables
                .iter()
                .map(|c| ident_name(&c.alias.name))
                .collect();
            let mut found = None;
            for c in &mut w.cte_tables {
                let rels = relations(c.query.as_ref());
                if !rels.is_empty() {
                    // Alone, it would read a table a CTE's name shadows.
                    if found.is_some()
                        || rels
                            .iter()
                            .any(|r| matches!(object_parts(r).as_slice(), [n] if names.contains(n)))
                    {
                        return None;
                    }
                    found = Some(std::mem::replace(c.query.as_mut(), marker()));
                }
            }
            found?
        }
        None => {
            let SetExpr::Select(s) = shell.body.as_mut() else {
                return None;
            };
            let mut found = None;
            for twj in &mut s.from {
                for f in std::iter::once(&mut twj.relation)
                    .chain(twj.joins.iter_mut().map(|j| &mut j.relation))
                {
                    if let TableFactor::Derived {
                        lateral: false,
                        subquery,
                        ..
                    } = f
                        && !relations(subquery.as_ref()).is_empty()
                    {
                        if found.is_some() {
                            return None;
                        }
                        found = Some(std::mem::replace(subquery.as_mut(), marker()));
                    }
                }
            }
            found?
        }
    };
    // Outside the subquery nothing is read from any table: the final query
    // sees complete rows.
    if relations(&shell)
        .iter()
        .any(|r| object_parts(r) != ["sg_nested"])
    {
        return None;
    }
    let Ok(Template::Route {
        targets,
        kind: StmtKind::Read,
        single_only: None,
        aggregate: Some(a),
        ..
    }) = analyze_query(&inner, topo)
    else {
        return None;
    };
    if a.outer.is_some() {
        // The subquery is itself a query over an aggregate: one level only.
        return None;
    }
    Some(Template::Route {
        targets,
        kind: StmtKind::Read,
        single_only: None,
        learns: None,
        merge: None,
        aggregate: Some(Box::new(AggTemplate {
            query: a.query,
            planned: None,
            outer: Some(Box::new(shell)),
            consts: a.consts,
        })),
        split: None,
    })
}
