//! Planner latency, in microseconds per statement:
//!
//! - `parse only (sqlparser), point select`: the baseline, sqlparser's own
//!   parse of the statement;
//! - `analyze+resolve point select`: the simple-protocol path, parsing and
//!   analyzing `SELECT * FROM orders WHERE customer_id = 42` and resolving it;
//! - `resolve prepared point select`: the extended-protocol path, where the
//!   template is cached at Parse and only resolved (with a binary int8
//!   parameter) at each Bind;
//! - `plan cache hit, simple point select`: the simple-protocol path once
//!   the session has seen the statement's shape: the literals are lifted
//!   out (`normalize`), the template is found by the normalized text and
//!   resolved with the literals as text parameters;
//! - `analyze 3-way join`: analysis of a join of three co-located tables.
//!
//! Small sample sizes keep `cargo bench -p shardgate-sql` well under 30 s.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use shardgate_sql::{Params, analyze};
use std::hint::black_box;
use std::time::Duration;

const POINT: &str = "SELECT * FROM orders WHERE customer_id = 42";
const PREPARED: &str = "SELECT * FROM orders WHERE customer_id = $1";
const JOIN3: &str = "SELECT o.id, i.qty, c.name FROM orders o \
     JOIN order_items i ON i.customer_id = o.customer_id AND i.order_id = o.id \
     JOIN customers c ON c.id = o.customer_id \
     WHERE o.customer_id = 42 AND o.amount > 10";

fn bench(c: &mut Criterion) {
    let topo = common::topology();
    let all = topo.shards();
    let default = topo.default_shard;

    // Every benchmarked statement plans to one shard (no errors timed).
    analyze(POINT, &topo)
        .resolve(&Params::none(), &all, default)
        .expect("point select plans");

    // The baseline: sqlparser's parse of the same text alone.
    c.bench_function("parse only (sqlparser), point select", |b| {
        b.iter(|| {
            shardgate_sql::sqlparser::parser::Parser::parse_sql(
                &shardgate_sql::sqlparser::dialect::PostgreSqlDialect {},
                black_box(POINT),
            )
            .expect("parses")
        })
    });

    c.bench_function("analyze+resolve point select", |b| {
        b.iter(|| {
            analyze(black_box(POINT), &topo)
                .resolve(&Params::none(), &all, default)
                .expect("plans")
        })
    });

    let template = analyze(PREPARED, &topo);
    let raw = 42i64.to_be_bytes();
    let params = Params {
        values: vec![Some(&raw[..])],
        binary: vec![true],
        types: vec![20],
    };
    template
        .resolve(&params, &all, default)
        .expect("prepared select plans");
    c.bench_function("resolve prepared point select", |b| {
        b.iter(|| {
            black_box(&template)
                .resolve(black_box(&params), &all, default)
                .expect("plans")
        })
    });

    // The session's plan cache, as `cached_single_shard` uses it.
    let mut cache = std::collections::HashMap::new();
    let n = shardgate_sql::normalize::normalize(POINT).expect("normalizes");
    cache.insert(n.text.clone(), analyze(&n.text, &topo));
    c.bench_function("plan cache hit, simple point select", |b| {
        b.iter(|| {
            let n = shardgate_sql::normalize::normalize(black_box(POINT)).expect("normalizes");
            let t = cache.get(n.text.as_str()).expect("cached");
            let params = Params {
                values: n.values.iter().map(|v| Some(v.as_bytes())).collect(),
                binary: Vec::new(),
                types: Vec::new(),
            };
            t.resolve(&params, &all, default).expect("plans")
        })
    });

    analyze(JOIN3, &topo)
        .resolve(&Params::none(), &all, default)
        .expect("join plans");
    c.bench_function("analyze 3-way join", |b| {
        b.iter(|| analyze(black_box(JOIN3), &topo))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
