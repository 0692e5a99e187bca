//! Bind parameters: the prepared-statement path (analyze once, resolve per
//! Bind) must place keys exactly as literals do.

mod common;

use common::{hash_shard, plan, render, route_shards, topology};
use shardgate_core::ShardId;
use shardgate_sql::{Params, Plan, ShardSql, StmtKind, Template, analyze};

fn resolve(t: &Template, p: &Params<'_>) -> Plan {
    let topo = topology();
    t.resolve(p, &topo.shards(), topo.default_shard)
        .unwrap_or_else(|e| panic!("resolve: {e}"))
}

fn text(values: &[&'static [u8]]) -> Params<'static> {
    Params {
        values: values.iter().map(|v| Some(*v)).collect(),
        binary: vec![false; values.len()],
        types: vec![0; values.len()],
    }
}

#[test]
fn point_select_param_text_and_binary_match_the_literal() {
    let topo = topology();
    let literal = route_shards(&plan("SELECT * FROM orders WHERE customer_id = 7", &topo).unwrap());
    assert_eq!(literal, vec![hash_shard(&topo, "orders", &[7])]);
    assert_eq!(literal.len(), 1);

    let t = analyze("SELECT * FROM orders WHERE customer_id = $1", &topo);

    let by_text = resolve(&t, &text(&[b"7"]));
    assert_eq!(route_shards(&by_text), literal);
    assert!(matches!(
        by_text,
        Plan::Route {
            sql: ShardSql::Original,
            kind: StmtKind::Read,
            ..
        }
    ));

    let seven = 7i64.to_be_bytes();
    let binary = Params {
        values: vec![Some(&seven[..])],
        binary: vec![true],
        types: vec![20],
    };
    let by_binary = resolve(&t, &binary);
    assert_eq!(route_shards(&by_binary), literal);
    assert_eq!(by_text, by_binary);

    // int4 and int2 binary encodings of the same value agree.
    let seven4 = 7i32.to_be_bytes();
    let int4 = Params {
        values: vec![Some(&seven4[..])],
        binary: vec![true],
        types: vec![23],
    };
    assert_eq!(route_shards(&resolve(&t, &int4)), literal);
    let seven2 = 7i16.to_be_bytes();
    let int2 = Params {
        values: vec![Some(&seven2[..])],
        binary: vec![true],
        types: vec![21],
    };
    assert_eq!(route_shards(&resolve(&t, &int2)), literal);
}

#[test]
fn param_resolution_agrees_with_core_placement_for_many_keys() {
    let topo = topology();
    let t = analyze("SELECT * FROM orders WHERE customer_id = $1", &topo);
    for k in -50i64..200 {
        let s = k.to_string();
        let p = Params {
            values: vec![Some(s.as_bytes())],
            binary: vec![false],
            types: vec![0],
        };
        let want = vec![hash_shard(&topo, "orders", &[k])];
        assert_eq!(route_shards(&resolve(&t, &p)), want, "key {k} (param)");
        let lit = plan(
            &format!("SELECT * FROM orders WHERE customer_id = {k}"),
            &topo,
        )
        .unwrap();
        assert_eq!(route_shards(&lit), want, "key {k} (literal)");
    }
}

#[test]
fn null_param_reaches_all_shards() {
    let topo = topology();
    let t = analyze("SELECT * FROM orders WHERE customer_id = $1", &topo);
    let p = Params {
        values: vec![None],
        binary: vec![false],
        types: vec![20],
    };
    assert_eq!(route_shards(&resolve(&t, &p)), topo.shards());
}

#[test]
fn unparsable_param_reaches_all_shards_but_a_missing_one_too() {
    let topo = topology();
    let t = analyze("SELECT * FROM orders WHERE customer_id = $1", &topo);
    // Not an integer: PostgreSQL will reject it; every shard may say so.
    assert_eq!(route_shards(&resolve(&t, &text(&[b"x"]))), topo.shards());
    // No $1 at all: the placement fails, so all shards (PostgreSQL reports
    // the missing parameter itself).
    assert_eq!(route_shards(&resolve(&t, &Params::none())), topo.shards());
}

#[test]
fn in_list_of_params() {
    let topo = topology();
    let t = analyze("SELECT * FROM orders WHERE customer_id IN ($1, $2)", &topo);
    // 1 and 7 share shard 3.
    assert_eq!(
        route_shards(&resolve(&t, &text(&[b"1", b"7"]))),
        vec![ShardId(3)]
    );
    assert_eq!(
        route_shards(&resolve(&t, &text(&[b"2", b"8"]))),
        vec![ShardId(0), ShardId(1)]
    );
    // An aggregate is planned across shards only once the parameters show
    // more than one shard.
    let t = analyze(
        "SELECT count(*) FROM orders WHERE customer_id IN ($1, $2)",
        &topo,
    );
    assert_eq!(
        route_shards(&resolve(&t, &text(&[b"1", b"7"]))),
        vec![ShardId(3)]
    );
    let p = t
        .resolve(&text(&[b"2", b"8"]), &topo.shards(), topo.default_shard)
        .unwrap();
    match p {
        shardgate_sql::Plan::Read(ref n @ shardgate_sql::Node::Aggregate { ref spec, .. }) => {
            assert_eq!(n.shards(), [ShardId(0), ShardId(1)]);
            // The parameters are inlined into the partial query.
            assert!(
                spec.partial_sql.contains("IN ('2', '8')"),
                "{}",
                spec.partial_sql
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn composite_key_params() {
    let topo = topology();
    let t = analyze(
        "SELECT * FROM tenants_users WHERE tenant_id = $1 AND user_id = $2",
        &topo,
    );
    for (a, b) in [(1i64, 2i64), (1, 4), (2, 1), (3, 2)] {
        let (sa, sb) = (a.to_string(), b.to_string());
        let p = Params {
            values: vec![Some(sa.as_bytes()), Some(sb.as_bytes())],
            binary: vec![false, false],
            types: vec![0, 0],
        };
        assert_eq!(
            route_shards(&resolve(&t, &p)),
            vec![hash_shard(&topo, "tenants_users", &[a, b])]
        );
    }
}

#[test]
fn single_row_insert_with_params_is_sent_as_written() {
    let topo = topology();
    let t = analyze(
        "INSERT INTO orders (customer_id, id, amount) VALUES ($1, $2, $3)",
        &topo,
    );
    let p = resolve(&t, &text(&[b"8", b"1", b"10"]));
    assert_eq!(
        p,
        Plan::Route {
            shards: vec![ShardId(1)],
            sql: ShardSql::Original,
            kind: StmtKind::Write,
        }
    );
}

#[test]
fn multi_row_insert_with_params_is_split_with_params_inlined() {
    let topo = topology();
    let t = analyze(
        "INSERT INTO orders (customer_id, id, amount) VALUES ($1, $2, $3), ($4, $5, $6), ($7, $8, $9)",
        &topo,
    );
    // Keys 7 -> 3, 8 -> 1, 1 -> 3. Text parameters become string literals;
    // binary ones of known types become typed literals.
    let seven = 7i64.to_be_bytes();
    let one4 = 1i32.to_be_bytes();
    let note = b"it's";
    let p = Params {
        values: vec![
            Some(&seven[..]),
            Some(&one4[..]),
            Some(b"10.5"),
            Some(b"8"),
            Some(b"2"),
            None,
            Some(b"1"),
            Some(b"3"),
            Some(&note[..]),
        ],
        binary: vec![true, true, false, false, false, false, false, false, true],
        types: vec![20, 23, 0, 0, 0, 0, 0, 0, 25],
    };
    let plan = resolve(&t, &p);
    assert_eq!(
        render(&Ok(plan.clone())),
        vec![
            "Scatter (concatenate) Write shards=[1,3]".to_string(),
            "  shard 1: INSERT INTO orders (customer_id, id, amount) VALUES ('8', '2', NULL)"
                .to_string(),
            "  shard 3: INSERT INTO orders (customer_id, id, amount) VALUES ('7'::BIGINT, '1'::INTEGER, '10.5'), ('1', '3', 'it''s')"
                .to_string(),
        ]
    );
    // The same rows as literals land on the same shards.
    let lit = common::plan(
        "INSERT INTO orders (customer_id, id, amount) VALUES (7, 1, 10.5), (8, 2, NULL), (1, 3, 'x')",
        &topo,
    )
    .unwrap();
    assert_eq!(route_shards(&lit), route_shards(&plan));
}

#[test]
fn insert_with_null_key_param_is_refused() {
    let topo = topology();
    let t = analyze("INSERT INTO orders (customer_id, id) VALUES ($1, 1)", &topo);
    let p = Params {
        values: vec![None],
        binary: vec![false],
        types: vec![0],
    };
    let e = t
        .resolve(&p, &topo.shards(), topo.default_shard)
        .unwrap_err();
    assert_eq!(e.sqlstate(), "23502", "{e}");
}

#[test]
fn split_insert_refuses_binary_params_of_unknown_types() {
    let topo = topology();
    let t = analyze(
        "INSERT INTO orders (customer_id, id, amount) VALUES ($1, 1, $2), (8, 2, 0)",
        &topo,
    );
    // numeric (1700) in binary is inlined as its text (5).
    let raw = [0u8, 1, 0, 0, 0, 0, 0, 0, 0, 5];
    let p = Params {
        values: vec![Some(b"7"), Some(&raw[..])],
        binary: vec![false, true],
        types: vec![0, 1700],
    };
    let plan = t.resolve(&p, &topo.shards(), topo.default_shard).unwrap();
    assert!(format!("{plan:?}").contains("'5'::NUMERIC"), "{plan:?}");
    // point (600) in binary cannot be inlined yet.
    let raw = [0u8; 16];
    let p = Params {
        values: vec![Some(b"7"), Some(&raw[..])],
        binary: vec![false, true],
        types: vec![0, 600],
    };
    let e = t
        .resolve(&p, &topo.shards(), topo.default_shard)
        .unwrap_err();
    assert_eq!(e.sqlstate(), "0A000", "{e}");
}

#[test]
fn timestamp_and_list_params() {
    let topo = topology();
    let t = analyze("SELECT * FROM events WHERE ts = $1", &topo);
    assert_eq!(
        route_shards(&resolve(&t, &text(&[b"2025-06-01 12:00:00"]))),
        vec![ShardId(1)]
    );
    // Binary timestamp: microseconds since 2000-01-01.
    let us = common::ts("2026-02-01");
    let shardgate_core::KeyValue::Timestamp(us) = us else {
        unreachable!()
    };
    let raw = us.to_be_bytes();
    let p = Params {
        values: vec![Some(&raw[..])],
        binary: vec![true],
        types: vec![1114],
    };
    assert_eq!(route_shards(&resolve(&t, &p)), vec![ShardId(2)]);

    let t = analyze("SELECT * FROM regions WHERE region = $1", &topo);
    assert_eq!(
        route_shards(&resolve(&t, &text(&[b"us"]))),
        vec![ShardId(2)]
    );
    assert_eq!(route_shards(&resolve(&t, &text(&[b"mars"]))), topo.shards());
    let t = analyze("INSERT INTO regions (region) VALUES ($1)", &topo);
    let e = t
        .resolve(&text(&[b"mars"]), &topo.shards(), topo.default_shard)
        .unwrap_err();
    assert_eq!(e.sqlstate(), "22P02", "{e}");
}
