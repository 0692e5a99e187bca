//! shardgate over four real PostgreSQL shards: psql, tokio-postgres (simple
//! and extended protocol, text and binary) and pgbench as clients. Each
//! shard carries a CHECK constraint that rejects rows whose key it does not
//! own, so a misrouted row fails loudly.

mod common;

use common::{PgCluster, Raw, client, order_inserts};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const SCHEMA: &str = "CREATE TABLE orders(customer_id bigint, id bigint, amount numeric, PRIMARY KEY (customer_id, id))";

#[test]
fn postgres_shards_psql_and_pgbench() {
    let c = PgCluster::start(4, "");
    let sg = &c.sg;
    sg.psql(SCHEMA).unwrap();
    sg.psql("SELECT shardgate.shard_table('orders', 'customer_id')")
        .unwrap();
    c.guard("orders", "customer_id");
    // DDL that every shard runs: the notice they all send reaches the
    // client once, in the simple and the extended protocol.
    let mut raw = Raw::connect(sg.port());
    // The TimeZone a client is told is the one its statements run under.
    let tz = raw
        .params
        .iter()
        .find(|(k, _)| k == "TimeZone")
        .map(|(_, v)| v.clone());
    assert_eq!(tz, Some(c.shards[0].psql("SHOW TimeZone").unwrap()));
    // Client encodings: UTF-8 (any spelling) and SQL_ASCII (bytes as they
    // are) are served and reported; another is refused at startup, not
    // answered in UTF-8 bytes the client would misread.
    let base = [("user", "app"), ("database", "app")];
    for (asked, told) in [
        ("utf-8", "UTF8"),
        ("UNICODE", "UTF8"),
        ("SQL_ASCII", "SQL_ASCII"),
    ] {
        let r = Raw::try_connect(
            sg.port(),
            &[&base[..], &[("client_encoding", asked)]].concat(),
        )
        .unwrap_or_else(|e| panic!("{asked}: {e:?}"));
        let enc = r.params.iter().find(|(k, _)| k == "client_encoding");
        assert_eq!(enc.map(|(_, v)| v.as_str()), Some(told), "{asked}");
    }
    for startup in [
        vec![("client_encoding", "LATIN1")],
        vec![("options", "-c client_encoding=WIN1252")],
    ] {
        let Err((code, msg)) = Raw::try_connect(sg.port(), &[&base[..], &startup].concat()) else {
            panic!("{startup:?} was accepted");
        };
        assert_eq!(code, "0A000", "{msg}");
        assert!(msg.contains("client_encoding"), "{msg}");
    }
    for sql in [
        "CREATE TABLE IF NOT EXISTS orders (customer_id bigint)",
        "DROP TABLE IF EXISTS no_such_table",
    ] {
        let mut q = sql.as_bytes().to_vec();
        q.push(0);
        raw.send(&[Raw::msg(b'Q', &q)]);
        let simple = raw.until(b'Z');
        raw.send(&[
            Raw::parse(sql),
            Raw::bind(),
            Raw::execute(0),
            Raw::msg(b'S', b""),
        ]);
        let extended = raw.until(b'Z');
        for frames in [simple, extended] {
            let notices = frames.iter().filter(|(t, _)| *t == b'N').count();
            assert_eq!(notices, 1, "{sql}: {frames:?}");
            assert!(frames.iter().all(|(t, _)| *t != b'E'), "{sql}: {frames:?}");
        }
    }
    // A prepared statement whose result type DDL changed fails as on
    // PostgreSQL, with its routine (asyncpg prepares again on it), and
    // with the statement named in the message's fields kept whole.
    let named = |tag: u8, parts: &[&[u8]]| Raw::msg(tag, &parts.concat());
    raw.send(&[
        named(
            b'P',
            &[
                b"q1\0SELECT * FROM orders WHERE customer_id = 1\0",
                &0i16.to_be_bytes(),
            ],
        ),
        named(b'D', &[b"Sq1\0"]),
        Raw::msg(b'S', b""),
    ]);
    raw.until(b'Z');
    sg.psql("ALTER TABLE orders ADD COLUMN extra int").unwrap();
    let run_q1 = |raw: &mut Raw| {
        raw.send(&[
            named(b'B', &[b"\0q1\0", &[0u8; 6]]),
            named(b'E', &[b"\0", &0i32.to_be_bytes()]),
            Raw::msg(b'S', b""),
        ]);
        raw.until(b'Z')
    };
    let frames = run_q1(&mut raw);
    let e = frames
        .iter()
        .find(|(t, _)| *t == b'E')
        .map(|(_, b)| b.clone());
    let e = e.unwrap_or_else(|| panic!("no error: {frames:?}"));
    assert_eq!(common::sqlstate(&e), "0A000");
    assert!(
        e.windows(23).any(|w| w == b"RRevalidateCachedQuery\0"),
        "{}",
        String::from_utf8_lossy(&e)
    );
    sg.psql("ALTER TABLE orders DROP COLUMN extra").unwrap();
    // A unique violation passes on the constraint's and table's names.
    sg.psql("INSERT INTO orders VALUES (1, 1, 1)").unwrap();
    raw.send(&[
        Raw::parse("INSERT INTO orders VALUES (1, 1, 1)"),
        Raw::bind(),
        Raw::execute(0),
        Raw::msg(b'S', b""),
    ]);
    let frames = raw.until(b'Z');
    let e = frames
        .iter()
        .find(|(t, _)| *t == b'E')
        .map(|(_, b)| b.clone())
        .unwrap();
    assert_eq!(common::sqlstate(&e), "23505");
    assert!(
        e.windows(13).any(|w| w == b"norders_pkey\0"),
        "{}",
        String::from_utf8_lossy(&e)
    );
    assert!(
        e.windows(8).any(|w| w == b"torders\0"),
        "{}",
        String::from_utf8_lossy(&e)
    );
    sg.psql("DELETE FROM orders WHERE customer_id = 1 AND id = 1")
        .unwrap();
    // The guard works: a row a shard does not own is refused.
    let foreign = (1..1000)
        .find(|k| {
            c.sg.psql(&format!("SELECT shardgate.shard_of('orders', '{k}')"))
                .unwrap()
                != "s0"
        })
        .unwrap();
    assert!(
        c.shards[0]
            .psql(&format!("INSERT INTO orders VALUES ({foreign}, 1, 1)"))
            .is_err()
    );
    for ins in order_inserts() {
        assert_eq!(sg.psql(&ins).unwrap(), "INSERT 0 50");
    }
    for cust in 1..=100i64 {
        let got = sg
            .psql(&format!("SELECT id FROM orders WHERE customer_id = {cust}"))
            .unwrap();
        let mut got: Vec<i64> = got.lines().map(|l| l.parse().unwrap()).collect();
        got.sort();
        let want: Vec<i64> = (0..1000).filter(|id| id % 100 + 1 == cust).collect();
        assert_eq!(got, want, "customer {cust}");
    }
    let mut seen = BTreeSet::new();
    for (i, s) in c.shards.iter().enumerate() {
        let ids = s.psql("SELECT id FROM orders").unwrap();
        let ids: Vec<i64> = ids.lines().map(|l| l.parse().unwrap()).collect();
        assert!(!ids.is_empty(), "shard s{i} holds no rows");
        for id in ids {
            assert!(seen.insert(id), "row {id} is on two shards");
        }
    }
    assert_eq!(seen.len(), 1000);
    // pgbench: point selects and inserts keyed by customer, 8 clients, 30 s.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("point.sql");
    std::fs::write(
        &script,
        "\\set cid random(1, 100)\n\\set id random(1000000, 2000000000)\n\
         SELECT id, amount FROM orders WHERE customer_id = :cid;\n\
         INSERT INTO orders (customer_id, id, amount) VALUES (:cid, :id, 1) ON CONFLICT DO NOTHING;\n\
         UPDATE orders SET amount = amount + 1 WHERE customer_id = :cid AND id = :id;\n",
    )
    .unwrap();
    for (mode, secs) in [("simple", "30"), ("extended", "5"), ("prepared", "5")] {
        let out = std::process::Command::new(shardgate_testkit::pg_bin("pgbench"))
            .args([
                "-n",
                "-h",
                "127.0.0.1",
                "-p",
                &sg.port().to_string(),
                "-U",
                "app",
                "-c",
                "8",
                "-j",
                "2",
                "-T",
                secs,
                "-M",
                mode,
                "-f",
            ])
            .arg(&script)
            .arg("app")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "pgbench -M {mode} failed:\n{text}\n{}",
            sg.log()
        );
        let processed: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
            .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no transaction count in:\n{text}"));
        assert!(processed > 0, "{text}");
        let failed = text
            .lines()
            .find_map(|l| l.strip_prefix("number of failed transactions: "))
            .unwrap_or("0 ");
        assert!(
            failed.starts_with("0 ") || failed == "0",
            "pgbench -M {mode}: failed transactions: {failed}\n{text}"
        );
        println!("pgbench -M {mode}: {processed} transactions");
    }
    // Still no misrouted row (the CHECK constraints held) and nothing lost.
    let total: i64 = c
        .shards
        .iter()
        .map(|s| {
            s.psql("SELECT count(*) FROM orders")
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .sum();
    assert!(total > 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_shards_tokio_postgres_and_bad_input() {
    let c = PgCluster::start(
        4,
        "[[tables]]\nname = \"orders\"\nshard_key = \"customer_id\"\n[[reference_tables]]\nname = \"products\"\n",
    );
    let port = c.sg.port();
    let cl = client(port).await;
    // A table declared in the configuration learns its key type from DDL.
    cl.simple_query(SCHEMA).await.unwrap();
    cl.simple_query("CREATE TABLE products (id bigint PRIMARY KEY, name text)")
        .await
        .unwrap();
    c.guard("orders", "customer_id");
    cl.simple_query("INSERT INTO products VALUES (1, 'tea'), (2, 'coffee')")
        .await
        .unwrap();
    for s in &c.shards {
        assert_eq!(
            s.psql("SELECT count(*) FROM products").unwrap(),
            "2",
            "reference rows on every shard"
        );
    }
    // Extended protocol, binary parameters and results.
    let ins = cl
        .prepare("INSERT INTO orders (customer_id, id, amount) VALUES ($1, $2, $3::text::numeric)")
        .await
        .unwrap();
    for i in 0..200i64 {
        cl.execute(&ins, &[&(i % 20), &i, &format!("{}.5", i)])
            .await
            .unwrap();
    }
    let sel = cl
        .prepare("SELECT id, amount::text FROM orders WHERE customer_id = $1 ORDER BY id")
        .await
        .unwrap();
    for cust in 0..20i64 {
        let rows = cl.query(&sel, &[&cust]).await.unwrap();
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(
            ids,
            (0..200).filter(|i| i % 20 == cust).collect::<Vec<i64>>()
        );
        assert_eq!(rows[0].get::<_, String>(1), format!("{}.5", ids[0]));
    }
    // The same query in text format through the simple protocol.
    let msgs = cl
        .simple_query("SELECT id FROM orders WHERE customer_id IN (1, 2, 3)")
        .await
        .unwrap();
    let n = msgs
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count();
    assert_eq!(n, 30);
    // Multi-shard UPDATE/DELETE add up their row counts.
    assert_eq!(
        cl.execute("UPDATE orders SET amount = amount + 1 WHERE id < 50", &[])
            .await
            .unwrap(),
        50
    );
    assert_eq!(
        cl.execute("DELETE FROM orders WHERE id >= 190", &[])
            .await
            .unwrap(),
        10
    );
    // Joins with a reference table on one shard.
    let rows = cl.query("SELECT o.id, p.name FROM orders o JOIN products p ON p.id = 1 WHERE o.customer_id = $1", &[&5i64]).await.unwrap();
    assert_eq!(rows.len(), 10);
    // Transactions: single shard commits.
    cl.simple_query("BEGIN").await.unwrap();
    cl.execute(
        "UPDATE orders SET amount = 0 WHERE customer_id = $1",
        &[&1i64],
    )
    .await
    .unwrap();
    let other = (2..20i64)
        .find(|k| {
            let a =
                c.sg.psql(&format!("SELECT shardgate.shard_of('orders', '{k}')"))
                    .unwrap();
            a != c
                .sg
                .psql("SELECT shardgate.shard_of('orders', '1')")
                .unwrap()
        })
        .unwrap();
    // A second shard's write joins the transaction (two-phase commit at
    // COMMIT); ROLLBACK undoes both.
    cl.execute(
        "UPDATE orders SET amount = 0 WHERE customer_id = $1",
        &[&other],
    )
    .await
    .unwrap();
    let e = cl.execute("SELECT 1/0", &[]).await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "22012");
    let e = cl.execute("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "25P02");
    cl.simple_query("ROLLBACK").await.unwrap();
    for k in [1i64, other] {
        let amt: String = cl
            .query_one(
                "SELECT min(amount)::text FROM orders WHERE customer_id = $1",
                &[&k],
            )
            .await
            .unwrap()
            .get(0);
        assert_ne!(amt, "0", "rolled back on customer {k}'s shard");
    }
    // Bad input: each a clear error; the session and server go on.
    for (sql, code) in [
        ("SELEC 1", "42601"),
        ("SELECT * FROM no_such_table", "42P01"),
        (
            "SELECT o.id FROM orders o JOIN orders o2 ON o2.id = o.id + 1 FOR UPDATE",
            "0A000",
        ),
        (
            "UPDATE orders SET (customer_id, amount) = (3, 1) WHERE customer_id = 2",
            "0A000",
        ),
        ("INSERT INTO orders (id, amount) VALUES (1, 1)", "23502"),
        // Valid SQL shardgate's parser does not read, on a sharded table:
        // refused as unsupported; invalid SQL there: PostgreSQL's error.
        (
            "SELECT * FROM orders WHERE customer_id = 1 FOR KEY SHARE",
            "0A000",
        ),
        (
            "SELECT * FROM orders WHERE amount BETWEEN SYMMETRIC 5 AND",
            "42601",
        ),
        (
            "SELECT * FROM orders WHERE amount BETWEEN SYMMETRIC 5 AND no_such_column",
            "42703",
        ),
        (
            "INSERT INTO orders (customer_id, id, amount) VALUES ('abc', 1, 1)",
            "22P02",
        ),
    ] {
        let e = cl.simple_query(sql).await.unwrap_err();
        assert_eq!(e.code().map(|c| c.code()), Some(code), "{sql}: {e}");
    }
    // A query string of several statements for one shard, sent whole:
    // each result comes with its own description.
    for q in [
        "SELECT 1 AS a; SELECT 2 AS b",
        "SELECT customer_id AS a FROM orders WHERE customer_id = 1 LIMIT 1; \
         SELECT id AS b FROM orders WHERE customer_id = 1 LIMIT 1",
    ] {
        let names: Vec<String> = cl
            .simple_query(q)
            .await
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some(r.columns()[0].name().to_string())
                }
                _ => None,
            })
            .collect();
        assert_eq!(names, ["a", "b"], "{q}");
    }
    // The same check at Parse in the extended protocol.
    let e = cl
        .prepare("SELECT * FROM orders WHERE customer_id = $1 FOR KEY SHARE")
        .await
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("0A000"), "{e}");
    // BETWEEN SYMMETRIC (expanded as PostgreSQL does), bound swapped: the
    // rows of the bounds in order, across shards.
    let count = |sql: &'static str| {
        let cl = &cl;
        async move {
            cl.query_one(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .get::<_, i64>(0)
        }
    };
    let sym = count(
        "SELECT count(*) FROM orders WHERE amount BETWEEN SYMMETRIC 1000000000 AND -1000000000",
    )
    .await;
    let asym =
        count("SELECT count(*) FROM orders WHERE amount BETWEEN -1000000000 AND 1000000000").await;
    let not_sym = count(
        "SELECT count(*) FROM orders WHERE amount NOT BETWEEN SYMMETRIC 1000000000 AND -1000000000",
    )
    .await;
    let all = count("SELECT count(*) FROM orders WHERE amount IS NOT NULL").await;
    assert!(sym > 0, "rows between the bounds");
    assert_eq!(sym, asym);
    assert_eq!(sym + not_sym, all);
    let e = cl
        .prepare("SELECT * FROM orders WHERE amount BETWEEN SYMMETRIC $1 AND")
        .await
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("42601"), "{e}");
    assert_eq!(
        cl.query_one("SELECT 41 + 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        42
    );
    // Garbage bytes on a socket: a clean close, nothing else harmed.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"\x00\x00\x00\x08garbage!garbage!").unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&[0xff; 64]).unwrap();
    drop(s);
    // A client that disconnects mid-query.
    {
        let gone = client(port).await;
        let h = tokio::spawn(async move { gone.simple_query("SELECT pg_sleep(3)").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        h.abort();
    }
    // A cancel request reaches the shard.
    let cancel = cl.cancel_token();
    let h = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel_query(tokio_postgres::NoTls).await
    });
    let e = cl.simple_query("SELECT pg_sleep(20)").await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "57014");
    h.await.unwrap().unwrap();
    // Other clients are still served.
    let again = client(port).await;
    let n: i64 = again
        .query_one(
            "SELECT count(*) FROM orders WHERE customer_id = $1",
            &[&4i64],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10);
    assert_eq!(c.sg.psql("SELECT 1").unwrap(), "1");
}

/// Data-modifying WITH runs whole on one shard when every part of it is
/// placed there by its key (parameters included, known at Bind): rows
/// moved into a co-located table stay on their shard (each shard's CHECK
/// rejects others), the final SELECT reads the statement's snapshot (as in
/// one PostgreSQL), and keys on two shards are refused with nothing done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_modifying_with_on_one_shard() {
    let c = PgCluster::start(
        4,
        "[[tables]]\nname = \"orders\"\nshard_key = \"customer_id\"\n[[tables]]\nname = \"orders_archive\"\nshard_key = \"customer_id\"\n",
    );
    let cl = client(c.sg.port()).await;
    cl.simple_query(SCHEMA).await.unwrap();
    cl.simple_query(&SCHEMA.replace("orders(", "orders_archive("))
        .await
        .unwrap();
    c.guard("orders", "customer_id");
    c.guard("orders_archive", "customer_id");
    let rows: Vec<String> = (0..200)
        .map(|i| format!("({}, {i}, {})", i % 20, i % 7 + 1))
        .collect();
    cl.simple_query(&format!("INSERT INTO orders VALUES {}", rows.join(", ")))
        .await
        .unwrap();
    let count = |sql: String| {
        let cl = &cl;
        async move {
            let n: i64 = cl.query_one(&sql, &[]).await.unwrap().get(0);
            n
        }
    };

    // Move rows of one customer into the archive (extended protocol).
    let mv = cl
        .prepare("WITH d AS (DELETE FROM orders WHERE customer_id = $1 AND id < $2 RETURNING *) INSERT INTO orders_archive SELECT * FROM d")
        .await
        .unwrap();
    let moved = cl.execute(&mv, &[&3i64, &100i64]).await.unwrap();
    assert_eq!(moved, 5);
    assert_eq!(count("SELECT count(*) FROM orders_archive".into()).await, 5);
    assert_eq!(
        count("SELECT count(*) FROM orders WHERE customer_id = 3".into()).await,
        5
    );

    // The final SELECT sees the rows as they were before the UPDATE.
    let snap = cl
        .prepare("WITH u AS (UPDATE orders SET amount = 0 WHERE customer_id = $1 RETURNING id) SELECT count(*) FROM orders o WHERE o.customer_id = $2 AND o.amount = 0")
        .await
        .unwrap();
    let n: i64 = cl.query_one(&snap, &[&4i64, &4i64]).await.unwrap().get(0);
    assert_eq!(n, 0);
    assert_eq!(
        count("SELECT count(*) FROM orders WHERE customer_id = 4 AND amount = 0".into()).await,
        10
    );

    // Keys on two shards: refused, nothing changed.
    let mut refused = 0;
    for other in 5..20i64 {
        match cl.query_one(&snap, &[&other, &5i64]).await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.code().unwrap().code(), "0A000", "{e}");
                refused += 1;
                assert_eq!(
                    count(format!(
                        "SELECT count(*) FROM orders WHERE customer_id = {other} AND amount = 0"
                    ))
                    .await,
                    0
                );
            }
        }
    }
    assert!(refused > 0, "some customer is on another shard than 5");
    assert!(c.sg.log().lines().all(|l| !l.contains("panicked")));
}
