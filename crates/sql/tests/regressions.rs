//! Plans that once answered differently from one PostgreSQL holding all the
//! rows (found in review); each test asserts the correct behaviour.
//!
//! "Correct" here means: the plan reaches every shard that may hold a row
//! the statement reads or writes, a multi-shard plan only concatenates
//! results where that equals PostgreSQL's answer, or the statement is
//! refused (SQLSTATE 0A000).

mod common;

use common::{plan, render, topology};
use shardgate_core::ShardId;
use shardgate_sql::{Params, Plan, ShardSql, analyze};

fn all() -> Vec<ShardId> {
    common::shards()
}

/// The plan reaches all shards (as a plain route) or is refused.
fn all_or_refused(sql: &str) {
    let r = plan(sql, &topology());
    match &r {
        Err(e) if e.sqlstate() == "0A000" => {}
        Ok(p) if common::route_shards(p) == all() => {}
        _ => panic!("{sql}\n  got {:?}", render(&r)),
    }
}

/// The statement is refused with 0A000.
fn refused(sql: &str) {
    let r = plan(sql, &topology());
    assert!(
        matches!(&r, Err(e) if e.sqlstate() == "0A000"),
        "{sql}\n  got {:?}",
        render(&r)
    );
}

/// The statement is refused with 0A000, or one or two of its sharded
/// tables run first (read whole through the router) and it then runs where
/// their rows stand in for them: never scattered as written.
fn refused_or_run_first(sql: &str) {
    let r = plan(sql, &topology());
    assert!(
        matches!(&r, Err(e) if e.sqlstate() == "0A000")
            || matches!(&r, Ok(Plan::PreEvaluate { subs, .. }) if (1..=2).contains(&subs.len())
                && subs.iter().all(|s| s.sql.starts_with("SELECT * FROM "))),
        "{sql}\n  got {:?}",
        render(&r)
    );
}

/// `FROM ONLY t` parses as table `ONLY` aliased `t`: the sharded table is
/// taken for an unsharded one and only the default shard is reached. A
/// DELETE/UPDATE then changes only the default shard's rows.
#[test]
fn only_keyword_hides_the_sharded_table() {
    all_or_refused("SELECT * FROM ONLY orders");
    all_or_refused("DELETE FROM ONLY orders");
    all_or_refused("UPDATE ONLY orders SET amount = 0");
    let p = plan(
        "SELECT * FROM ONLY orders WHERE customer_id = 7",
        &topology(),
    );
    assert!(
        matches!(&p, Ok(p) if common::route_shards(p) == vec![ShardId(3)])
            || matches!(&p, Err(e) if e.sqlstate() == "0A000"),
        "{:?}",
        render(&p)
    );
}

/// A reference table on the preserved side of an outer join with a sharded
/// table: every shard emits the reference rows that have no match in its
/// part of the sharded table, so the concatenation repeats them (and adds
/// NULL-extended rows for products matched on another shard).
#[test]

fn outer_join_preserving_a_reference_table() {
    refused_or_run_first("SELECT * FROM orders o RIGHT JOIN products p ON p.id = o.id");
    refused_or_run_first("SELECT * FROM products p LEFT JOIN orders o ON p.id = o.id");
    refused_or_run_first("SELECT * FROM orders o FULL JOIN products p ON p.id = o.id");
    // Folded by reference columns, but the extra NULL-extended rows count
    // or form groups of their own.
    for sql in [
        "SELECT p.id, count(*) FROM products p LEFT JOIN orders o ON o.id = p.id GROUP BY p.id",
        "SELECT p.id, count(p.id) FROM products p LEFT JOIN orders o ON o.id = p.id GROUP BY p.id",
        "SELECT p.id, o.amount, count(o.id) FROM products p LEFT JOIN orders o ON o.id = p.id GROUP BY p.id, o.amount",
        "SELECT p.id, array_agg(o.id) FROM products p LEFT JOIN orders o ON o.id = p.id GROUP BY p.id",
        "SELECT p.id, count(coalesce(o.id, 0)) FROM products p LEFT JOIN orders o ON o.id = p.id GROUP BY p.id",
        "SELECT p.id, count(o.id) FILTER (WHERE p.id > 1) FROM products p LEFT JOIN orders o ON o.id = p.id GROUP BY p.id",
        "SELECT DISTINCT p.id, o.amount FROM products p LEFT JOIN orders o ON o.id = p.id",
        "SELECT p.id FROM products p LEFT JOIN orders o ON o.id = p.id WHERE o.id IS NULL GROUP BY p.id",
        "SELECT p.id, count(o.id) FROM products p LEFT JOIN orders o ON o.id = p.id WHERE o.amount IS NULL OR p.id = 1 GROUP BY p.id",
        "SELECT p.id, count(o.id) FROM products p LEFT JOIN orders o ON o.id = p.id GROUP BY p.id ORDER BY max(o.amount) + count(*)",
        // Not tied to the first sharded table: each shard would pair its
        // own rows of both.
        "SELECT p.id, count(i.qty) FROM products p LEFT JOIN orders o ON o.id = p.id LEFT JOIN order_items i ON i.product_id = p.id GROUP BY p.id",
        // Tied, but not on the shard key: matches on other shards.
        "SELECT p.id, count(i.qty) FROM products p LEFT JOIN orders o ON o.id = p.id LEFT JOIN order_items i ON i.order_id = o.id GROUP BY p.id",
        // An unqualified column that a sharded table has.
        "SELECT p.id, count(amount) FROM products p LEFT JOIN orders o ON o.id = p.id GROUP BY p.id",
        "SELECT g, count(o.id) FROM generate_series(1, (SELECT max(id) FROM orders)) g LEFT JOIN orders o ON o.amount = g GROUP BY g",
    ] {
        refused_or_run_first(sql);
    }
    // The extra rows change nothing: aggregates that skip NULLs of the
    // sharded side, grouped by reference columns; or a WHERE that makes
    // the join an inner one.
    for sql in [
        "SELECT p.id, p.name, count(o.id) AS n FROM products p LEFT OUTER JOIN orders o ON (p.id = o.id) GROUP BY p.id, p.name ORDER BY n DESC, p.id LIMIT 5",
        "SELECT p.id, sum(o.amount * 2), max(o.id), count(DISTINCT o.customer_id) FROM products p LEFT JOIN orders o ON o.id = p.id GROUP BY p.id HAVING count(o.id) > 1",
        "SELECT count(o.id), avg(o.amount) FROM products p LEFT JOIN orders o ON o.id = p.id",
        "SELECT DISTINCT p.id FROM products p LEFT JOIN orders o ON o.id = p.id",
        "SELECT p.id, count(i.qty) FROM products p LEFT JOIN orders o ON o.id = p.id LEFT JOIN order_items i ON i.customer_id = o.customer_id AND i.order_id = o.id GROUP BY p.id",
        "SELECT p.id, o.amount FROM products p LEFT JOIN orders o ON o.id = p.id WHERE o.amount > 5",
        "SELECT g, count(o.id) FROM generate_series(1, 3) g LEFT JOIN orders o ON o.amount = g GROUP BY g",
        "SELECT p.id, count(o.id) FROM orders o RIGHT JOIN products p ON p.id = o.id GROUP BY p.id",
    ] {
        let r = plan(sql, &topology());
        let shards = match &r {
            Ok(Plan::Read(node)) => node.shards().to_vec(),
            Ok(p @ Plan::Route { .. }) => common::route_shards(p),
            _ => Vec::new(),
        };
        assert_eq!(shards, all(), "{sql}\n  got {:?}", render(&r));
    }
}

/// A key equality in the ON clause of a LEFT JOIN does not filter the
/// tables on its preserved side: `o CROSS JOIN i` still pairs every order
/// with every item, across shards.
#[test]

fn outer_join_on_clause_does_not_co_locate_preserved_tables() {
    refused_or_run_first(
        "SELECT * FROM orders o CROSS JOIN order_items i LEFT JOIN products p ON o.customer_id = i.customer_id",
    );
    refused_or_run_first(
        "SELECT * FROM orders o CROSS JOIN order_items i LEFT JOIN customers c ON c.id = o.customer_id AND o.customer_id = i.customer_id",
    );
}

/// The tables before a LEFT JOIN preserve no reference table's rows when a
/// sharded table is in each of their rows: scattered (the joined table
/// co-located); when one is not, or a RIGHT or FULL JOIN preserves a
/// reference table, never scattered as written.
#[test]
fn left_join_after_a_reference_table_joined_to_a_sharded_one() {
    for sql in [
        "SELECT i.qty, c.id FROM order_items i JOIN products p ON p.id = i.product_id LEFT JOIN customers c ON c.id = i.customer_id",
        "SELECT i.qty, c.id FROM products p JOIN order_items i ON p.id = i.product_id LEFT JOIN customers c ON c.id = i.customer_id",
        "SELECT i.qty, c.id FROM products p, order_items i LEFT JOIN customers c ON c.id = i.customer_id WHERE p.id = i.product_id",
        "SELECT i.qty, c.id FROM order_items i LEFT JOIN products p ON p.id = i.product_id LEFT JOIN customers c ON c.id = i.customer_id",
        "SELECT i.qty, c.id FROM products p RIGHT JOIN order_items i ON p.id = i.product_id LEFT JOIN customers c ON c.id = i.customer_id",
    ] {
        let r = plan(sql, &topology());
        assert!(
            matches!(&r, Ok(p @ Plan::Route { .. }) if common::route_shards(p) == all()),
            "{sql}\n  got {:?}",
            render(&r)
        );
    }
    for sql in [
        "SELECT i.qty, c.id FROM products p LEFT JOIN order_items i ON p.id = i.product_id LEFT JOIN customers c ON c.id = i.customer_id",
        "SELECT i.qty, c.id FROM order_items i RIGHT JOIN products p ON p.id = i.product_id LEFT JOIN customers c ON c.id = i.customer_id",
        "SELECT i.qty, c.id FROM order_items i FULL JOIN products p ON p.id = i.product_id LEFT JOIN customers c ON c.id = i.customer_id",
        "SELECT i.qty, p.id FROM order_items i JOIN customers c ON c.id = i.customer_id FULL JOIN products p ON p.id = i.product_id",
    ] {
        refused_or_run_first(sql);
    }
}

/// A CTE named like a sharded table is excluded from the relations but its
/// FROM reference is still classified with the sharded table's rule; the
/// key filter on the CTE's column then pins a shard. Here the CTE reads
/// order_items rows with id = 7, which live on any shard.
#[test]

fn cte_shadowing_a_sharded_table_is_routed_by_its_key() {
    all_or_refused(
        "WITH orders AS (SELECT id AS customer_id FROM order_items) SELECT * FROM orders WHERE customer_id = 7",
    );
}

/// CTE names are collected for the whole statement, not per scope: a CTE
/// inside a subquery hides the real table of the same name elsewhere.
#[test]

fn cte_names_are_not_scoped() {
    all_or_refused("SELECT (WITH orders AS (SELECT 1 AS x) SELECT x FROM orders), * FROM orders");
    all_or_refused(
        "WITH a AS (WITH orders AS (SELECT 1 AS x) SELECT x FROM orders) SELECT * FROM a, orders",
    );
}

/// A column alias list renames the table's columns: in
/// `orders o(x, customer_id)` the name customer_id is the `id` column.
#[test]

fn alias_column_list_renames_the_key() {
    all_or_refused("SELECT * FROM orders o(x, customer_id) WHERE customer_id = 7");
}

/// Casts on key literals are ignored, but some change the value:
/// `timestamp(0)` rounds '2025-12-31 23:59:59.7' to 2026-01-01 00:00:00,
/// which lives on shard 2, not 1.
#[test]

fn value_changing_cast_on_a_key_literal() {
    let r = plan(
        "SELECT * FROM events WHERE ts = '2025-12-31 23:59:59.7'::timestamp(0)",
        &topology(),
    );
    assert!(
        matches!(&r, Ok(p) if common::route_shards(p).contains(&ShardId(2))),
        "{:?}",
        render(&r)
    );
    let r = plan(
        "INSERT INTO events (ts, kind) VALUES ('2025-12-31 23:59:59.7'::timestamp(0), 'a')",
        &topology(),
    );
    assert!(
        matches!(&r, Ok(p) if common::route_shards(p) == vec![ShardId(2)]) || r.is_err(),
        "{:?}",
        render(&r)
    );
}

/// ON CONFLICT DO UPDATE may change the key of the existing row, which
/// then stays on the shard of its old key.
#[test]

fn on_conflict_update_of_the_key() {
    refused(
        "INSERT INTO orders (customer_id, id) VALUES (7, 1) ON CONFLICT (id) DO UPDATE SET customer_id = 8",
    );
}

/// SELECT INTO creates a table from the result: scattered, each shard
/// creates its own table with its own part of the rows.
#[test]

fn select_into_is_scattered() {
    refused("SELECT * INTO archive FROM orders");
}

/// Aggregates missing from `is_aggregate` (PostgreSQL 16+): a scatter
/// returns one row per shard instead of one.
#[test]

fn unrecognized_aggregates() {
    for f in [
        "jsonb_agg_strict(amount)",
        "json_object_agg_strict(id, amount)",
        "jsonb_object_agg_strict(id, amount)",
        "json_object_agg_unique(id, amount)",
        "jsonb_object_agg_unique(id, amount)",
        "json_object_agg_unique_strict(id, amount)",
        "jsonb_object_agg_unique_strict(id, amount)",
    ] {
        // Aggregates that cannot be split run over the shards' raw rows.
        let sql = format!("SELECT {f} FROM orders");
        match plan(&sql, &topology()) {
            Ok(shardgate_sql::Plan::Read(shardgate_sql::Node::Aggregate { spec, .. })) => {
                assert!(spec.raw, "{sql}")
            }
            other => panic!("{sql}\n  got {:?}", render(&other)),
        }
    }
}

/// A binary parameter's type OID is ignored for integer keys: a float8 8.0
/// (which PostgreSQL compares equal to 8, and assigns as 8 on INSERT) is
/// read as the i64 with the same bits, 4620693217682128896, placed on
/// shard 2 instead of 8's shard 1.
#[test]

fn binary_float_param_for_an_int_key() {
    let topo = topology();
    let eight = 8.0f64.to_be_bytes();
    let p = Params {
        values: vec![Some(&eight[..])],
        binary: vec![true],
        types: vec![701],
    };
    let t = analyze("SELECT * FROM orders WHERE customer_id = $1", &topo);
    let r = t.resolve(&p, &topo.shards(), topo.default_shard);
    assert!(
        matches!(&r, Ok(p) if common::route_shards(p) == vec![ShardId(1)] || common::route_shards(p) == all()),
        "{:?}",
        render(&r)
    );
    let t = analyze("INSERT INTO orders (customer_id, id) VALUES ($1, 1)", &topo);
    let r = t.resolve(&p, &topo.shards(), topo.default_shard);
    assert!(
        matches!(&r, Ok(p) if common::route_shards(p) == vec![ShardId(1)]) || r.is_err(),
        "{:?}",
        render(&r)
    );
}

/// A binary float4 parameter inlined into a split INSERT is written as its
/// shortest decimal ('0.1'), which a float8 column reads as 0.1 rather than
/// the float4 value 0.100000001490116 PostgreSQL would store.
#[test]

fn float4_param_inlined_into_a_split_insert() {
    let topo = topology();
    let t = analyze(
        "INSERT INTO orders (customer_id, id, amount) VALUES (7, 1, $1), (8, 2, 0)",
        &topo,
    );
    let v = 0.1f32.to_be_bytes();
    let p = Params {
        values: vec![Some(&v[..])],
        binary: vec![true],
        types: vec![700],
    };
    let Ok(Plan::Route {
        sql: ShardSql::PerShard(m),
        ..
    }) = t.resolve(&p, &topo.shards(), topo.default_shard)
    else {
        return; // refusing is fine too
    };
    let q = &m[&ShardId(3)];
    assert!(
        q.contains("::REAL") || q.contains("::float4") || q.contains("0.10000000149"),
        "{q}"
    );
}

/// A text-format parameter with a declared type is inlined into a split
/// INSERT as an untyped string literal, so PostgreSQL re-infers its type
/// from the context: with `$1` declared numeric (OID 1700) and sent as '7',
/// `$1 / 2` is 3.5, but the inlined `'7' / 2` is integer division, 3.
#[test]

fn typed_text_param_inlined_into_a_split_insert() {
    let topo = topology();
    let t = analyze(
        "INSERT INTO orders (customer_id, id, amount) VALUES (7, 1, $1 / 2), (8, 2, 0)",
        &topo,
    );
    let p = Params {
        values: vec![Some(b"7")],
        binary: vec![false],
        types: vec![1700],
    };
    let Ok(Plan::Route {
        sql: ShardSql::PerShard(m),
        ..
    }) = t.resolve(&p, &topo.shards(), topo.default_shard)
    else {
        return; // refusing is fine too
    };
    let q = &m[&ShardId(3)];
    assert!(q.contains("'7'::"), "{q}");
}
