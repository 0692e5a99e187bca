//! Lanes (`lanes = 1`): single-statement autocommit reads of many sessions
//! share one pipelined connection per shard. Every answer must be what the
//! session would get on a connection of its own: the right rows for each
//! concurrent client, its own errors and no one else's, the same messages
//! in the same order, fresh statements after DDL, and reads that must not
//! share (in transactions, locking rows, with settings) kept apart.

mod common;

use common::{PgCluster, Raw, client, sqlstate};

const TOP: &str = "lanes = 1\n";
const TABLE: &str = "[[tables]]\nname = \"items\"\nshard_key = \"id\"\nkey_type = \"bigint\"\n";

/// On each shard, the last statement of each lane connection.
fn lane_queries(c: &PgCluster) -> Vec<String> {
    c.shards
        .iter()
        .map(|s| {
            s.psql_db(
                "app",
                "SELECT string_agg(query, ' | ') FROM pg_stat_activity \
                 WHERE application_name = 'shardgate lane'",
            )
            .expect("lane backends")
            .trim()
            .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_share_lanes_and_get_their_own_answers() {
    let c = PgCluster::start_with(4, TOP, TABLE);
    let port = c.sg.port();
    let admin = client(port).await;
    admin
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, v int, name text); \
             INSERT INTO items SELECT i, i * 7, 'item ' || i FROM generate_series(1, 400) i",
        )
        .await
        .unwrap();
    assert_eq!(
        lane_queries(&c),
        vec![String::new(); 4],
        "no lane before a read"
    );

    // 16 clients, each with its own mix of ids, and one in four of its
    // statements failing (division by zero) on the shard.
    let mut tasks = Vec::new();
    for k in 0..16i64 {
        tasks.push(tokio::spawn(async move {
            let cl = client(port).await;
            let point = cl
                .prepare("SELECT id, v, name FROM items WHERE id = $1")
                .await
                .unwrap();
            let bad = cl
                .prepare("SELECT v / (id - $1) FROM items WHERE id = $1")
                .await
                .unwrap();
            for i in 0..150i64 {
                let id = (k * 37 + i * 13) % 400 + 1;
                if i % 4 == 3 {
                    let e = cl.query(&bad, &[&id]).await.expect_err("division by zero");
                    assert_eq!(e.code().map(|c| c.code()), Some("22012"), "client {k}: {e}");
                } else {
                    let rows = cl.query(&point, &[&id]).await.unwrap();
                    assert_eq!(rows.len(), 1, "client {k}, id {id}");
                    assert_eq!(rows[0].get::<_, i64>(0), id);
                    assert_eq!(rows[0].get::<_, i32>(1), (id * 7) as i32);
                    assert_eq!(rows[0].get::<_, String>(2), format!("item {id}"));
                }
            }
            // A miss is an empty answer, not someone else's row.
            let none = cl.query(&point, &[&10_000i64]).await.unwrap();
            assert!(none.is_empty());
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    // The reads went over the lanes: one per shard, which ran them.
    for (i, q) in lane_queries(&c).iter().enumerate() {
        assert!(
            q == "SELECT id, v, name FROM items WHERE id = $1"
                || q == "SELECT v / (id - $1) FROM items WHERE id = $1",
            "shard {i}: lane ran {q:?}"
        );
    }

    // The simple protocol's single-shard reads (forwarded as prepared
    // statements) share the lanes too; an error after the shard bound the
    // statement is the client's, once.
    let simple = client(port).await;
    let msgs = simple
        .simple_query("SELECT v FROM items WHERE id = 9")
        .await
        .unwrap();
    let rows: Vec<String> = msgs
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(rows, ["63"]);
    let lanes = lane_queries(&c).concat();
    assert!(
        lanes.contains("SELECT v FROM items WHERE id = $1"),
        "{lanes}"
    );
    let e = simple
        .simple_query("SELECT v / (id - 9) FROM items WHERE id = 9")
        .await
        .expect_err("division by zero");
    assert_eq!(e.code().map(|c| c.code()), Some("22012"));
    let e = simple
        .simple_query("SELECT no_such_column FROM items WHERE id = 9")
        .await
        .expect_err("no such column");
    assert_eq!(e.code().map(|c| c.code()), Some("42703"));

    // After DDL that changes a result type, a new statement gets the new
    // type (the lane prepares afresh).
    admin
        .batch_execute("ALTER TABLE items ALTER COLUMN v TYPE bigint")
        .await
        .unwrap();
    let cl = client(port).await;
    let st = cl
        .prepare("SELECT v FROM items WHERE id = $1")
        .await
        .unwrap();
    let rows = cl.query(&st, &[&5i64]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 35);

    // Reads in a transaction see its writes (not a lane's snapshot).
    cl.batch_execute("BEGIN").await.unwrap();
    cl.execute("UPDATE items SET v = -1 WHERE id = $1", &[&5i64])
        .await
        .unwrap();
    let rows = cl.query(&st, &[&5i64]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), -1);
    cl.batch_execute("ROLLBACK").await.unwrap();
    let rows = cl.query(&st, &[&5i64]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 35);

    // A read that locks rows waits for the lock on a connection of its
    // own: the lane's other reads go on meanwhile.
    let locker = client(port).await;
    locker.batch_execute("BEGIN").await.unwrap();
    locker
        .execute("UPDATE items SET v = v WHERE id = $1", &[&6i64])
        .await
        .unwrap();
    let waiter = client(port).await;
    let lock = waiter
        .prepare("SELECT v FROM items WHERE id = $1 FOR UPDATE")
        .await
        .unwrap();
    let waiting = tokio::spawn(async move { waiter.query(&lock, &[&6i64]).await.map(|r| r.len()) });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "FOR UPDATE did not wait for the lock"
    );
    let rows = tokio::time::timeout(std::time::Duration::from_secs(5), cl.query(&st, &[&6i64]))
        .await
        .expect("a read behind the waiting FOR UPDATE")
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 42);
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), 1);

    // A lane whose connection the server ends: reads go on (at worst one
    // in flight then fails with 08006), on a new lane connection.
    for s in &c.shards {
        s.psql_db(
            "app",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'shardgate lane'",
        )
        .unwrap();
    }
    let mut failed = 0;
    for id in 1..=40i64 {
        match cl.query(&st, &[&id]).await {
            Ok(rows) => assert_eq!(rows[0].get::<_, i64>(0), id * 7),
            Err(e) => {
                assert_eq!(e.code().map(|c| c.code()), Some("08006"), "{e}");
                failed += 1;
            }
        }
    }
    assert!(
        failed <= 4,
        "{failed} reads failed after the lanes were cut"
    );
    assert!(
        lane_queries(&c).iter().all(|q| !q.is_empty()),
        "lanes came back"
    );
}

#[test]
fn lane_replies_are_message_for_message() {
    let c = PgCluster::start_with(2, TOP, TABLE);
    c.sg
        .psql("CREATE TABLE items (id bigint PRIMARY KEY, v int); INSERT INTO items VALUES (1, 10), (2, 20)")
        .unwrap();
    let mut r = Raw::connect(c.sg.port());
    // A named statement, then Bind, Describe portal, Execute, Sync, twice
    // (the second finds it prepared on the lane).
    let mut p = b"s1\0".to_vec();
    p.extend_from_slice(b"SELECT v FROM items WHERE id = $1\0");
    p.extend_from_slice(&1i16.to_be_bytes());
    p.extend_from_slice(&20u32.to_be_bytes());
    r.send(&[Raw::msg(b'P', &p), Raw::msg(b'S', b"")]);
    let f = r.until(b'Z');
    assert_eq!(f.iter().map(|x| x.0).collect::<Vec<_>>(), b"1Z");
    for id in [b"1", b"2"] {
        let mut b = b"\0s1\0".to_vec();
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(id);
        b.extend_from_slice(&0i16.to_be_bytes());
        r.send(&[
            Raw::msg(b'B', &b),
            Raw::msg(b'D', b"P\0"),
            Raw::execute(0),
            Raw::msg(b'S', b""),
        ]);
        let f = r.until(b'Z');
        assert_eq!(f.iter().map(|x| x.0).collect::<Vec<_>>(), b"2TDCZ", "{f:?}");
        assert_eq!(f[4].1, b"I");
    }
    // An error: its own ErrorResponse, once, and the session goes on.
    let mut b = b"\0s1\0".to_vec();
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&3i32.to_be_bytes());
    b.extend_from_slice(b"abc");
    b.extend_from_slice(&0i16.to_be_bytes());
    r.send(&[Raw::msg(b'B', &b), Raw::execute(0), Raw::msg(b'S', b"")]);
    let f = r.until(b'Z');
    // (shardgate answers Bind itself, before the shard sees it.)
    let tags: Vec<u8> = f.iter().map(|x| x.0).collect();
    assert_eq!(tags, b"2EZ", "{f:?}");
    assert_eq!(sqlstate(&f[1].1), "22P02");
}
