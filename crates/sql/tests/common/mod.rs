//! The topology the integration tests (and the benchmark) plan against, and
//! helpers to render plans.
//!
//! Four shards `s0..s3`, default shard 0:
//! - `orders`, `order_items`: hash on `customer_id` (co-located);
//! - `customers`: hash on `id`, the same strategy (co-located with `orders`);
//! - `tenants_users`: hash on the composite key `(tenant_id, user_id)`;
//! - `events`: range on `ts` (timestamp): `< 2025-01-01` on 0,
//!   `< 2026-01-01` on 1, the rest on 2;
//! - `regions`: list on `region` (text): `eu` on 1, `us` on 2, no default;
//! - `products`: a reference table;
//! - `notes` (and anything else): no rule, whole on the default shard.

#![allow(dead_code)]

use shardgate_core::{KeyType, KeyValue, ShardId, Strategy, TableKind, TableRule, Topology};
use shardgate_sql::{Params, Plan, SqlError, analyze};
use std::collections::HashMap;

pub fn shards() -> Vec<ShardId> {
    (0..4).map(ShardId).collect()
}

fn sharded(
    table: &str,
    columns: &[&str],
    types: &[KeyType],
    strategy: Strategy,
    all_columns: &[&str],
) -> TableRule {
    TableRule {
        table: table.into(),
        kind: TableKind::Sharded {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            key_types: types.iter().map(|t| Some(*t)).collect(),
            strategy,
            overrides: Vec::new(),
            all_columns: all_columns.iter().map(|c| c.to_string()).collect(),
        },
    }
}

pub fn ts(s: &str) -> KeyValue {
    KeyValue::parse(KeyType::Timestamp, s).expect("timestamp")
}

pub fn topology() -> Topology {
    let hash = || Strategy::hash(&shards()).expect("hash strategy");
    let rules = vec![
        sharded(
            "orders",
            &["customer_id"],
            &[KeyType::Int],
            hash(),
            &["customer_id", "id", "amount"],
        ),
        sharded(
            "order_items",
            &["customer_id"],
            &[KeyType::Int],
            hash(),
            &["customer_id", "order_id", "product_id", "qty"],
        ),
        sharded(
            "tickets",
            &["id"],
            &[KeyType::Int],
            hash(),
            &["id", "subject"],
        ),
        sharded(
            "customers",
            &["id"],
            &[KeyType::Int],
            hash(),
            &["id", "name"],
        ),
        sharded(
            "tenants_users",
            &["tenant_id", "user_id"],
            &[KeyType::Int, KeyType::Int],
            hash(),
            &["tenant_id", "user_id", "name"],
        ),
        sharded(
            "events",
            &["ts"],
            &[KeyType::Timestamp],
            Strategy::range(vec![
                (Some(ts("2025-01-01")), ShardId(0)),
                (Some(ts("2026-01-01")), ShardId(1)),
                (None, ShardId(2)),
            ])
            .expect("range strategy"),
            &["ts", "kind", "payload"],
        ),
        sharded(
            "regions",
            &["region"],
            &[KeyType::Text],
            Strategy::List {
                values: HashMap::from([
                    (KeyValue::Text("eu".into()), ShardId(1)),
                    (KeyValue::Text("us".into()), ShardId(2)),
                ]),
                default: None,
            },
            &["region", "name"],
        ),
        TableRule::reference("products"),
    ];
    Topology {
        version: 1,
        shard_names: (0..4).map(|i| format!("s{i}")).collect(),
        default_shard: ShardId(0),
        rules: rules
            .into_iter()
            .map(|r| (r.table.clone(), r.into()))
            .collect(),
        id_defaults: [
            ("tickets".to_string(), vec!["id".to_string()]),
            ("notes".to_string(), vec!["id".to_string()]),
        ]
        .into(),
    }
}

/// The shard core places an int key of a hash table on.
pub fn hash_shard(topo: &Topology, table: &str, key: &[i64]) -> ShardId {
    let key: Vec<KeyValue> = key.iter().map(|k| KeyValue::Int(*k)).collect();
    topo.rule(table).expect("rule").place(&key).expect("placed")
}

/// A plan as EXPLAIN shows it, or `ERROR <sqlstate>: <message>`.
pub fn render(r: &Result<Plan, SqlError>) -> Vec<String> {
    match r {
        Ok(p) => p.describe(),
        Err(e) => vec![format!("ERROR {}: {e}", e.sqlstate())],
    }
}

/// Analyze and resolve with no parameters.
/// Ids a statement needs are drawn as 1001, 1002, ...
pub fn plan(sql: &str, topo: &Topology) -> Result<Plan, SqlError> {
    let t = analyze(sql, topo);
    let ids: Vec<i64> = (1001..).take(t.ids_needed()).collect();
    t.resolve_with_ids(&Params::none(), &ids, &topo.shards(), topo.default_shard)
}

/// The shards of a plan (panics unless it is a route).
pub fn route_shards(p: &Plan) -> Vec<ShardId> {
    match p {
        Plan::Route { shards, .. } => shards.clone(),
        Plan::Explain(p) => route_shards(p),
        other => panic!("not a route: {other:?}"),
    }
}
