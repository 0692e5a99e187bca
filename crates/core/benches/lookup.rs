//! Nanoseconds per key lookup for each strategy, through `TableRule::place`
//! (what the router calls for every routed statement).
//!
//! Each iteration places one key; keys cycle through a pre-built set of 1024
//! so the branch predictor and caches see realistic variety. Small sample
//! sizes keep `cargo bench -p shardgate-core` well under a minute.

use criterion::{Criterion, criterion_group, criterion_main};
use shardgate_core::{KeyValue, ShardId, Strategy, TableRule};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

const KEYS: usize = 1024;

/// A fixed-seed LCG so every run benchmarks the same keys.
struct Lcg(u64);

impl Lcg {
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 ^ (self.0 >> 29)
    }
}

fn shards(n: u32) -> Vec<ShardId> {
    (0..n).map(ShardId).collect()
}

fn rule(strategy: Strategy) -> TableRule {
    TableRule::sharded("t", vec!["k".into()], strategy)
}

/// Benchmarks `rule.place` over `keys`, one key per iteration.
fn bench_place(c: &mut Criterion, name: &str, rule: &TableRule, keys: &[[KeyValue; 1]]) {
    // Every key must place (no NoPlacement errors in the timed loop).
    for k in keys {
        rule.place(k).expect("benchmark keys place");
    }
    let mut i = 0usize;
    c.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) & (KEYS - 1);
            black_box(rule.place(black_box(&keys[i]))).unwrap()
        })
    });
}

fn lookups(c: &mut Criterion) {
    let mut rng = Lcg(0xbe4c_0001);
    let int_keys: Vec<[KeyValue; 1]> = (0..KEYS)
        .map(|_| [KeyValue::Int(rng.next_u64() as i64)])
        .collect();
    let text_keys: Vec<[KeyValue; 1]> = (0..KEYS)
        .map(|_| {
            [KeyValue::Text(format!(
                "customer-{:08x}",
                rng.next_u64() as u32
            ))]
        })
        .collect();

    // hash: bigint key over 4 and 64 shards, text key over 4 shards.
    let hash4 = rule(Strategy::hash(&shards(4)).unwrap());
    let hash64 = rule(Strategy::hash(&shards(64)).unwrap());
    bench_place(c, "hash/bigint/4_shards", &hash4, &int_keys);
    bench_place(c, "hash/bigint/64_shards", &hash64, &int_keys);
    bench_place(c, "hash/text/4_shards", &hash4, &text_keys);

    // consistent: 4 shards x 128 vnodes (512 ranges in the map).
    let names = ["pg-a", "pg-b", "pg-c", "pg-d"];
    let named: Vec<(ShardId, &str)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (ShardId(i as u32), *n))
        .collect();
    let ring = rule(Strategy::consistent(&named, 128).unwrap());
    bench_place(
        c,
        "consistent/bigint/4_shards_x_128_vnodes",
        &ring,
        &int_keys,
    );

    // range: 16 bounds (17 ranges) evenly over the i64 space.
    let step = u64::MAX / 17;
    let parts: Vec<(Option<KeyValue>, ShardId)> = (1..=17u64)
        .map(|i| {
            let bound = (i < 17).then(|| KeyValue::Int((i * step) as i64 ^ i64::MIN));
            (bound, ShardId((i - 1) as u32 % 4))
        })
        .collect();
    let range = rule(Strategy::range(parts).unwrap());
    bench_place(c, "range/bigint/16_bounds", &range, &int_keys);

    // list: 50 region values over 4 shards, with a default; keys hit the list.
    let regions: Vec<String> = (0..50).map(|i| format!("region-{i:02}")).collect();
    let values: HashMap<KeyValue, ShardId> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| (KeyValue::Text(r.clone()), ShardId(i as u32 % 4)))
        .collect();
    let list = rule(Strategy::List {
        values,
        default: Some(ShardId(0)),
    });
    let list_keys: Vec<[KeyValue; 1]> = (0..KEYS)
        .map(|_| {
            [KeyValue::Text(
                regions[(rng.next_u64() % 50) as usize].clone(),
            )]
        })
        .collect();
    bench_place(c, "list/text/50_values", &list, &list_keys);

    // directory: 100k bigint entries, with a default; 90% of keys are hits.
    let entries: HashMap<KeyValue, ShardId> = (0..100_000i64)
        .map(|k| (KeyValue::Int(k * 7), ShardId((k % 16) as u32)))
        .collect();
    let directory = rule(Strategy::Directory {
        entries,
        default: Some(ShardId(0)),
    });
    let dir_keys: Vec<[KeyValue; 1]> = (0..KEYS)
        .map(|_| {
            let r = rng.next_u64();
            let k = (r % 100_000) as i64 * 7;
            [KeyValue::Int(if r.is_multiple_of(10) { k + 1 } else { k })]
        })
        .collect();
    bench_place(c, "directory/bigint/100k_entries", &directory, &dir_keys);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .without_plots();
    targets = lookups
}
criterion_main!(benches);
