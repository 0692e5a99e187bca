//! The embedded default, end to end: shardgate with no configuration, psql
//! and tokio-postgres as clients, rows checked in each SQLite shard file.

mod common;

use common::{bin, client, order_inserts};
use shardgate_core::{KeyValue, ShardId, Strategy};
use shardgate_testkit::Shardgate;
use std::collections::BTreeSet;

#[test]
fn embedded_default_spreads_and_returns_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sg =
        Shardgate::spawn(bin(), &["--data-dir", data.to_str().unwrap()]).expect("start shardgate");
    sg.psql("CREATE TABLE orders(customer_id bigint, id bigint, amount numeric, PRIMARY KEY (customer_id, id))").unwrap();
    let out = sg
        .psql("SELECT shardgate.shard_table('orders', 'customer_id')")
        .unwrap();
    assert!(out.contains("orders sharded by customer_id"), "{out}");
    for ins in order_inserts() {
        // One INSERT split over the shards reports the rows of all.
        assert_eq!(sg.psql(&ins).unwrap(), "INSERT 0 50");
    }
    // Every row comes back by its key.
    for c in 1..=100i64 {
        let got = sg
            .psql(&format!("SELECT id FROM orders WHERE customer_id = {c}"))
            .unwrap();
        let mut got: Vec<i64> = got.lines().map(|l| l.parse().unwrap()).collect();
        got.sort();
        let want: Vec<i64> = (0..1000).filter(|id| id % 100 + 1 == c).collect();
        assert_eq!(got, want, "customer {c}");
    }
    // A scan without the key returns every row once.
    let all = sg.psql("SELECT customer_id, id FROM orders").unwrap();
    assert_eq!(all.lines().count(), 1000);
    // Each shard file holds only rows it owns, every shard holds some, no
    // row is on two shards.
    let strategy = Strategy::hash(&(0..4).map(ShardId).collect::<Vec<_>>()).unwrap();
    let mut seen = BTreeSet::new();
    for i in 0..4u32 {
        let db = rusqlite::Connection::open(data.join(format!("s{i}.db"))).unwrap();
        let mut st = db.prepare("SELECT customer_id, id FROM orders").unwrap();
        let rows: Vec<(i64, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(!rows.is_empty(), "shard s{i} holds no rows");
        for (c, id) in rows {
            assert_eq!(
                strategy.place(&[KeyValue::Int(c)]).unwrap(),
                ShardId(i),
                "row ({c}, {id}) misrouted to s{i}"
            );
            assert!(seen.insert(id), "row {id} is on two shards");
        }
    }
    assert_eq!(seen.len(), 1000);
    // Writes with and without the key; counts add up across shards.
    assert_eq!(sg.psql("UPDATE orders SET amount = amount + 1 WHERE customer_id = 7; SELECT count(*) FROM orders WHERE customer_id = 7").unwrap(), "UPDATE 10\n10");
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &sg.port().to_string(),
            "-U",
            "app",
            "-d",
            "app",
            "-c",
            "UPDATE orders SET amount = 0 WHERE amount < 5",
        ])
        .output()
        .unwrap();
    let tag = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let direct: usize = (0..4u32)
        .map(|i| {
            let db = rusqlite::Connection::open(data.join(format!("s{i}.db"))).unwrap();
            db.query_row("SELECT count(*) FROM orders WHERE amount = 0", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap() as usize
        })
        .sum();
    assert_eq!(tag, format!("UPDATE {direct}"));
    // A multi-shard aggregate adds up every shard's rows.
    let n = sg.psql("SELECT count(*) FROM orders").unwrap();
    assert_eq!(n.trim(), "1000");
    let n = sg
        .psql("SELECT count(DISTINCT customer_id) FROM orders")
        .unwrap();
    assert_eq!(n.trim(), "100");
    drop(sg);
    // Restarting keeps the rule (durable metadata).
    let sg = Shardgate::spawn(bin(), &["--data-dir", data.to_str().unwrap()])
        .expect("restart shardgate");
    assert_eq!(
        sg.psql("SELECT count(*) FROM orders WHERE customer_id = 9")
            .unwrap(),
        "10"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_extended_protocol_with_tokio_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sg =
        Shardgate::spawn(bin(), &["--data-dir", data.to_str().unwrap()]).expect("start shardgate");
    let c = client(sg.port()).await;
    c.simple_query("CREATE TABLE accounts (id bigint PRIMARY KEY, owner text, balance bigint)")
        .await
        .unwrap();
    c.simple_query("SELECT shardgate.shard_table('accounts', 'id')")
        .await
        .unwrap();
    let ins = c
        .prepare("INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, $3)")
        .await
        .unwrap();
    for id in 1..=40i64 {
        assert_eq!(
            c.execute(&ins, &[&id, &format!("owner {id}"), &(id * 10)])
                .await
                .unwrap(),
            1
        );
    }
    let sel = c
        .prepare("SELECT owner, balance FROM accounts WHERE id = $1")
        .await
        .unwrap();
    for id in 1..=40i64 {
        let row = c.query_one(&sel, &[&id]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), format!("owner {id}"));
        assert_eq!(row.get::<_, i64>(1), id * 10);
    }
    // IN lists spanning shards reach exactly those shards and return every row.
    let rows = c
        .query(
            "SELECT id FROM accounts WHERE id IN (1, 2, 3, 4, 5, 6)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 6);
    // ORDER BY and LIMIT across shards are merged.
    let ids: Vec<i64> = c
        .query(
            "SELECT id FROM accounts ORDER BY balance DESC LIMIT 3 OFFSET 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![39, 38, 37]);
    let msgs = c
        .simple_query("SELECT owner FROM accounts ORDER BY id LIMIT 2")
        .await
        .unwrap();
    let n = msgs
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count();
    assert_eq!(n, 2);
    // An expression sort key: its type is read from the statement and the
    // schema (bigint + integer is bigint), so the shards' streams merge.
    let ids = |sql: &'static str| {
        let c = &c;
        async move {
            c.query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .collect::<Vec<i64>>()
        }
    };
    let by_expr = ids("SELECT id FROM accounts ORDER BY balance + 1, id").await;
    assert_eq!(by_expr.len(), 40);
    assert_eq!(
        by_expr,
        ids("SELECT id FROM accounts ORDER BY balance, id").await
    );
    // A transaction on one shard.
    c.simple_query("BEGIN").await.unwrap();
    c.execute(
        "UPDATE accounts SET balance = balance - 5 WHERE id = $1",
        &[&1i64],
    )
    .await
    .unwrap();
    c.simple_query("COMMIT").await.unwrap();
    assert_eq!(
        c.query_one(&sel, &[&1i64]).await.unwrap().get::<_, i64>(1),
        5
    );
    // A rollback undoes.
    c.simple_query("BEGIN").await.unwrap();
    c.execute("UPDATE accounts SET balance = 0 WHERE id = $1", &[&2i64])
        .await
        .unwrap();
    c.simple_query("ROLLBACK").await.unwrap();
    assert_eq!(
        c.query_one(&sel, &[&2i64]).await.unwrap().get::<_, i64>(1),
        20
    );
    // Errors carry SQLSTATEs and the session goes on.
    let e = c.simple_query("SELEC 1").await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "42601");
    let e = c.execute(&ins, &[&3i64, &"dup", &0i64]).await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "23505");
    assert_eq!(
        c.query_one(&sel, &[&3i64])
            .await
            .unwrap()
            .get::<_, String>(0),
        "owner 3"
    );
}

/// What clients send on their own to the embedded default: `pgbench -i`
/// (multi-table DROP and TRUNCATE, COPY, VACUUM, ADD PRIMARY KEY), pgbench's
/// TPC-B transactions from several clients at once (they wait for each
/// other's write locks instead of failing or stalling), PostgreSQL casts,
/// functions, `SHOW`, NULL ordering, `= ANY`, COPY out, and the catalog
/// queries drivers make at connect.
#[test]
fn embedded_default_speaks_what_clients_send() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sg =
        Shardgate::spawn(bin(), &["--data-dir", data.to_str().unwrap()]).expect("start shardgate");
    let pgbench = |args: &[&str]| -> String {
        let out = std::process::Command::new(shardgate_testkit::pg_bin("pgbench"))
            .args(args)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &sg.port().to_string(),
                "-U",
                "app",
                "app",
            ])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "pgbench {args:?}: {text}");
        text
    };
    pgbench(&["-i", "-s", "1", "-q"]);
    assert_eq!(
        sg.psql("SELECT count(*), sum(abalance) FROM pgbench_accounts")
            .unwrap(),
        "100000|0"
    );
    // Four clients' read-write transactions: all commit, none fails, and
    // the balances agree (every delta is applied once to each table).
    let out = pgbench(&["-n", "-c", "4", "-t", "40"]);
    assert!(out.contains("number of failed transactions: 0"), "{out}");
    let sums = sg
        .psql(
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(bbalance) FROM pgbench_branches), \
             (SELECT sum(delta) FROM pgbench_history) = (SELECT sum(tbalance) FROM pgbench_tellers), \
             (SELECT count(*) FROM pgbench_history)",
        )
        .unwrap();
    assert_eq!(sums, "t|t|160");
    // PostgreSQL spellings SQLite does not have, typed and named as
    // PostgreSQL types and names them.
    assert_eq!(
        sg.psql("SELECT 7::text || 'x', '2024-03-04 10:00'::date, 1 = 1, current_schema, version() LIKE 'PostgreSQL%'")
            .unwrap(),
        "7x|2024-03-04|t|public|t"
    );
    assert_eq!(sg.psql("SHOW TimeZone").unwrap(), "UTC");
    assert_eq!(
        sg.psql("SET application_name = 'emb'; SHOW application_name")
            .unwrap(),
        "SET\nemb"
    );
    sg.psql("CREATE TABLE t (k bigint PRIMARY KEY, v text)")
        .unwrap();
    sg.psql("SELECT shardgate.shard_table('t', 'k')").unwrap();
    sg.psql("INSERT INTO t VALUES (1, 'b'), (2, NULL), (3, 'a'), (4, 'B'), (5, NULL)")
        .unwrap();
    // NULL sorts last ascending, first descending (text in byte order,
    // the C collation); LIKE is case-sensitive, ILIKE not.
    assert_eq!(
        sg.psql("SELECT k FROM t ORDER BY v, k").unwrap(),
        "4\n3\n1\n2\n5"
    );
    assert_eq!(
        sg.psql("SELECT k FROM t ORDER BY v DESC, k").unwrap(),
        "2\n5\n1\n3\n4"
    );
    assert_eq!(sg.psql("SELECT k FROM t WHERE v LIKE 'b'").unwrap(), "1");
    assert_eq!(
        sg.psql("SELECT k FROM t WHERE v ILIKE 'b' ORDER BY k")
            .unwrap(),
        "1\n4"
    );
    assert_eq!(
        sg.psql("SELECT k FROM t WHERE k = ANY('{2,4,9}') ORDER BY k")
            .unwrap(),
        "2\n4"
    );
    assert_eq!(
        sg.psql("SELECT count(*), sum(k), max(v) FROM t").unwrap(),
        "5|15|b"
    );
    // COPY in (CSV, with a NULL and a quoted delimiter) and out, on an
    // unsharded table.
    sg.psql("CREATE TABLE u (k bigint, v text, b boolean)")
        .unwrap();
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, "10,\"x,y\",t\n11,,false\n").unwrap();
    sg.psql(&format!(
        "\\copy u FROM '{}' WITH (FORMAT csv)",
        csv.display()
    ))
    .unwrap();
    assert_eq!(
        sg.psql("COPY (SELECT k, v, b FROM u ORDER BY k) TO STDOUT WITH (FORMAT csv)")
            .unwrap(),
        "10,\"x,y\",t\n11,,f"
    );
    assert_eq!(sg.psql("SELECT k FROM u WHERE b").unwrap(), "10");
    let many = dir.path().join("many.csv");
    let rows: String = (100..120).map(|k| format!("{k},r{k}\n")).collect();
    std::fs::write(&many, rows).unwrap();
    // A COPY over several embedded shards commits them one after another.
    let before: i64 = sg
        .psql("SELECT count(*) FROM t")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        sg.psql(&format!(
            "\\copy t FROM '{}' WITH (FORMAT csv)",
            many.display()
        ))
        .unwrap(),
        "COPY 20"
    );
    assert_eq!(
        sg.psql("SELECT count(*), min(k), max(k) FROM t WHERE k >= 100")
            .unwrap(),
        "20|100|119"
    );
    assert_eq!(
        sg.psql("SELECT count(*) FROM t").unwrap().trim(),
        (before + 20).to_string()
    );
    // The catalog lookups of drivers and ORMs.
    assert_eq!(
        sg.psql(
            "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = 't' AND c.relkind = ANY(ARRAY['r', 'p']) AND pg_catalog.pg_table_is_visible(c.oid)"
        )
        .unwrap(),
        "t"
    );
    assert_eq!(
        sg.psql("SELECT typname, typarray FROM pg_type WHERE oid = to_regtype('int8')")
            .unwrap(),
        "int8|1016"
    );
    // A serial primary key numbers rows as a sequence does (no reuse); a
    // serial column SQLite cannot fill is refused, not left NULL.
    sg.psql("CREATE TABLE s (id serial PRIMARY KEY, name text)")
        .unwrap();
    assert_eq!(
        sg.psql("INSERT INTO s (name) VALUES ('a'), ('b') RETURNING id")
            .unwrap(),
        "1\n2\nINSERT 0 2"
    );
    sg.psql("DELETE FROM s WHERE id = 2").unwrap();
    assert_eq!(
        sg.psql("INSERT INTO s (name) VALUES ('c') RETURNING id")
            .unwrap(),
        "3\nINSERT 0 1"
    );
    let e = sg
        .psql("CREATE TABLE s2 (k bigint PRIMARY KEY, n bigserial)")
        .unwrap_err();
    assert!(format!("{e:#}").contains("serial"), "{e:#}");
    // psql's describe commands.
    assert!(
        sg.psql("\\dt")
            .unwrap()
            .contains("public|t|table|shardgate"),
        "{}",
        sg.psql("\\dt").unwrap()
    );
    assert_eq!(sg.psql("\\d t").unwrap(), "k|bigint||not null|\nv|text|||");
    assert_eq!(
        sg.psql(
            "SELECT pg_get_indexdef(i.indexrelid, 0, true) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname = 't'"
        )
        .unwrap(),
        "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (k)"
    );
    // What SQLite cannot do is refused with PostgreSQL's error fields.
    let e = sg
        .psql("ALTER TABLE t ADD FOREIGN KEY (k) REFERENCES t (k)")
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("not supported on embedded"),
        "{e:#}"
    );
}

/// Sum of `bal` in each embedded shard file.
fn shard_sums(data: &std::path::Path) -> Vec<i64> {
    (0..4u32)
        .map(|i| {
            let db = rusqlite::Connection::open(data.join(format!("s{i}.db"))).unwrap();
            db.query_row("SELECT coalesce(sum(bal), 0) FROM accts", [], |r| r.get(0))
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_transactions_write_several_shards() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sg =
        Shardgate::spawn(bin(), &["--data-dir", data.to_str().unwrap()]).expect("start shardgate");
    let c = client(sg.port()).await;
    // DDL in a transaction (an ORM's create_all) reaches every shard.
    c.batch_execute("BEGIN; CREATE TABLE accts (id bigint PRIMARY KEY, bal bigint NOT NULL); CREATE TABLE audit (id bigint PRIMARY KEY); COMMIT")
        .await
        .unwrap();
    c.batch_execute("SELECT shardgate.shard_table('accts', 'id')")
        .await
        .unwrap();
    let values: Vec<String> = (1..=40).map(|i| format!("({i}, 100)")).collect();
    c.batch_execute(&format!(
        "BEGIN; INSERT INTO accts VALUES {}; COMMIT",
        values.join(", ")
    ))
    .await
    .unwrap();
    let sums = shard_sums(&data);
    assert_eq!(sums.iter().sum::<i64>(), 4000);
    assert!(
        sums.iter().all(|s| *s > 0),
        "every shard has rows: {sums:?}"
    );
    // Two keys on different shards.
    let shard = |k: i64| {
        Strategy::hash(&(0..4).map(ShardId).collect::<Vec<_>>())
            .unwrap()
            .place(&[KeyValue::Int(k)])
            .unwrap()
    };
    let b = (2..=40).find(|k| shard(*k) != shard(1)).unwrap();
    // Rolled back: nothing anywhere.
    c.batch_execute(&format!(
        "BEGIN; UPDATE accts SET bal = bal - 7 WHERE id = 1; UPDATE accts SET bal = bal + 7 WHERE id = {b}; ROLLBACK"
    ))
    .await
    .unwrap();
    assert_eq!(shard_sums(&data), sums);
    // A statement failing on the second shard: COMMIT rolls back both.
    let r = c
        .batch_execute(&format!(
            "BEGIN; UPDATE accts SET bal = bal - 7 WHERE id = 1; INSERT INTO accts VALUES ({b}, 0); COMMIT"
        ))
        .await;
    assert!(r.is_err());
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(shard_sums(&data), sums);
    // Committed: both shards, together.
    c.batch_execute(&format!(
        "BEGIN; UPDATE accts SET bal = bal - 7 WHERE id = 1; UPDATE accts SET bal = bal + 7 WHERE id = {b}; COMMIT"
    ))
    .await
    .unwrap();
    let after = shard_sums(&data);
    assert_eq!(after.iter().sum::<i64>(), 4000);
    assert_eq!(after[shard(1).0 as usize], sums[shard(1).0 as usize] - 7);
    assert_eq!(after[shard(b).0 as usize], sums[shard(b).0 as usize] + 7);
    // Concurrent transfers between shards: each all or nothing (a lock
    // wait that runs out fails the transaction, which is retried).
    let mut tasks = Vec::new();
    for t in 0..4i64 {
        let port = sg.port();
        tasks.push(tokio::spawn(async move {
            let c = client(port).await;
            let mut done = 0;
            let mut i = 0i64;
            while done < 15 {
                i += 1;
                let (from, to) = ((t * 7 + i) % 40 + 1, (t * 13 + i * 3) % 40 + 1);
                if from == to {
                    continue;
                }
                let r = c
                    .batch_execute(&format!(
                        "BEGIN; UPDATE accts SET bal = bal - 1 WHERE id = {from}; UPDATE accts SET bal = bal + 1 WHERE id = {to}; COMMIT"
                    ))
                    .await;
                match r {
                    Ok(()) => done += 1,
                    Err(_) => c.batch_execute("ROLLBACK").await.unwrap(),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(shard_sums(&data).iter().sum::<i64>(), 4000);
    let total = c
        .query_one("SELECT sum(bal)::bigint, count(*) FROM accts", &[])
        .await
        .unwrap();
    assert_eq!((total.get::<_, i64>(0), total.get::<_, i64>(1)), (4000, 40));
}

/// A parameter sent in text format whatever its type (as psycopg's `%t`).
#[derive(Debug)]
struct TextParam(&'static str);

impl tokio_postgres::types::ToSql for TextParam {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(tokio_postgres::types::IsNull::No)
    }
    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }
    fn encode_format(&self, _: &tokio_postgres::types::Type) -> tokio_postgres::types::Format {
        tokio_postgres::types::Format::Text
    }
    tokio_postgres::types::to_sql_checked!();
}

/// Parameters as drivers send them, stored and compared as PostgreSQL
/// would: a uuid as bare hex digits in text (psycopg), an interval and a
/// time in binary (asyncpg, psycopg); a LIMIT parameter across shards;
/// division by zero fails (SQLite would answer NULL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_parameters_as_drivers_send_them() {
    use common::RawValue;
    use tokio_postgres::types::Type;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sg =
        Shardgate::spawn(bin(), &["--data-dir", data.to_str().unwrap()]).expect("start shardgate");
    let c = client(sg.port()).await;
    for q in [
        "CREATE TABLE p (id bigint PRIMARY KEY, u uuid, iv interval, t time)",
        "SELECT shardgate.shard_table('p', 'id')",
        "INSERT INTO p VALUES (1, '12345678-1234-5678-1234-567812345678', '3 days', '01:02:03')",
    ] {
        c.batch_execute(q).await.unwrap();
    }
    let ins = c
        .prepare_typed(
            "INSERT INTO p VALUES ($1, $2, $3, $4)",
            &[Type::INT8, Type::UUID, Type::INTERVAL, Type::TIME],
        )
        .await
        .unwrap();
    // 3 days 7 seconds; 01:02:03.
    let mut iv = 7_000_000i64.to_be_bytes().to_vec();
    iv.extend_from_slice(&3i32.to_be_bytes());
    iv.extend_from_slice(&0i32.to_be_bytes());
    let t = 3_723_000_000i64.to_be_bytes().to_vec();
    for id in 2..=9i64 {
        c.execute(
            &ins,
            &[
                &id,
                &TextParam("12345678123456781234567812345678"),
                &RawValue(iv.clone()),
                &RawValue(t.clone()),
            ],
        )
        .await
        .unwrap();
    }
    let rows = c
        .query(
            "SELECT id, u::text, iv::text, t::text FROM p ORDER BY id LIMIT $1",
            &[&3i64],
        )
        .await
        .unwrap();
    let got: Vec<(i64, String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let u = "12345678-1234-5678-1234-567812345678".to_string();
    assert_eq!(
        got,
        vec![
            (1, u.clone(), "3 days".into(), "01:02:03".into()),
            (2, u.clone(), "3 days 00:00:07".into(), "01:02:03".into()),
            (3, u.clone(), "3 days 00:00:07".into(), "01:02:03".into()),
        ]
    );
    // The uuid matches however it is written.
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM p WHERE u = $1",
            &[&TextParam("{12345678-1234-5678-1234-567812345678}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 9);
    // node-postgres: an array of quoted numbers, cast; a Buffer sent as a
    // binary parameter the shard describes as text, into a bytea column.
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM p WHERE id = ANY($1::bigint[])",
            &[&TextParam("{\"1\",\"3\"}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    c.batch_execute("CREATE TABLE blobs (id bigint PRIMARY KEY, b bytea)")
        .await
        .unwrap();
    let put = c
        .prepare_typed(
            "INSERT INTO blobs VALUES ($1, $2)",
            &[Type::INT8, Type::TEXT],
        )
        .await
        .unwrap();
    c.execute(&put, &[&1i64, &RawValue(vec![0, 0xff, 0xfe, 7])])
        .await
        .unwrap();
    let b: Vec<u8> = c
        .query_one("SELECT b FROM blobs WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(b, vec![0, 0xff, 0xfe, 7]);
    // Settings PostgreSQL has and SQLite needs not.
    c.batch_execute("SET work_mem = '8MB'").await.unwrap();
    // Read-only transactions write nothing (25006), as on PostgreSQL.
    let e = c
        .batch_execute("BEGIN READ ONLY; INSERT INTO blobs VALUES (2, NULL); COMMIT")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "25006", "{e}");
    c.batch_execute("ROLLBACK").await.unwrap();
    c.batch_execute("SET default_transaction_read_only = on")
        .await
        .unwrap();
    let e = c
        .batch_execute("UPDATE blobs SET b = NULL")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "25006", "{e}");
    c.batch_execute("SET default_transaction_read_only = off; SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    let n: i64 = c
        .query_one("SELECT count(*) FROM blobs WHERE b IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    for q in ["SELECT 1 / 0", "SELECT id % 0 FROM p WHERE id = 3"] {
        let e = c.simple_query(q).await.unwrap_err();
        assert_eq!(e.code().unwrap().code(), "22012", "{q}: {e}");
    }
}
