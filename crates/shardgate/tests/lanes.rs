//! Lanes (`lanes = 1`): single-statement autocommit reads and writes of
//! many sessions share one pipelined connection per shard. Every answer must be what the
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

/// End every lane connection on the shards (the server terminates them).
fn end_lanes(c: &PgCluster) {
    for s in &c.shards {
        s.psql_db(
            "app",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'shardgate lane'",
        )
        .unwrap();
    }
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
    end_lanes(&c);
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

/// `via` of each row of `counters`, by shard.
fn via_by_shard(c: &PgCluster) -> Vec<Vec<(i64, String)>> {
    c.shards
        .iter()
        .map(|s| {
            s.psql_db("app", "SELECT id || '=' || via FROM counters ORDER BY id")
                .expect("counters")
                .lines()
                .filter_map(|l| {
                    let (id, via) = l.trim().split_once('=')?;
                    Some((id.parse().ok()?, via.to_string()))
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autocommit_writes_share_lanes_and_never_wait_there() {
    let table = "[[tables]]\nname = \"counters\"\nshard_key = \"id\"\nkey_type = \"bigint\"\n";
    let c = PgCluster::start_with(4, TOP, table);
    let port = c.sg.port();
    let admin = client(port).await;
    admin
        .batch_execute("CREATE TABLE counters (id bigint PRIMARY KEY, n int NOT NULL, via text)")
        .await
        .unwrap();
    // Each row records which connection wrote it last.
    for s in &c.shards {
        s.psql_db(
            "app",
            "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN NEW.via := current_setting('application_name'); RETURN NEW; END $$; \
             CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON counters \
             FOR EACH ROW EXECUTE FUNCTION stamp()",
        )
        .expect("trigger");
    }

    // 8 clients insert 25 rows each, then add 1 to every row 3 times, in
    // the extended protocol; a ninth adds 1 to rows 1..=50 in the simple.
    let mut tasks = Vec::new();
    for k in 0..8i64 {
        tasks.push(tokio::spawn(async move {
            let cl = client(port).await;
            let ins = cl
                .prepare("INSERT INTO counters (id, n) VALUES ($1, 0)")
                .await
                .unwrap();
            for i in 0..25i64 {
                assert_eq!(cl.execute(&ins, &[&(k * 25 + i + 1)]).await.unwrap(), 1);
            }
            // A duplicate key is this client's error, once.
            let e = cl
                .execute(&ins, &[&(k * 25 + 1)])
                .await
                .expect_err("duplicate key");
            assert_eq!(e.code().map(|c| c.code()), Some("23505"), "client {k}: {e}");
        }));
    }
    for t in tasks.drain(..) {
        t.await.expect("insert task");
    }
    for k in 0..8i64 {
        tasks.push(tokio::spawn(async move {
            let cl = client(port).await;
            let up = cl
                .prepare("UPDATE counters SET n = n + 1 WHERE id = $1 RETURNING n")
                .await
                .unwrap();
            for round in 0..3i64 {
                for i in 0..200i64 {
                    let id = (k * 29 + i * 7 + round) % 200 + 1;
                    let rows = cl.query(&up, &[&id]).await.unwrap();
                    assert_eq!(rows.len(), 1, "client {k}: id {id}");
                    assert!(rows[0].get::<_, i32>(0) >= 1);
                }
            }
        }));
    }
    tasks.push(tokio::spawn(async move {
        let cl = client(port).await;
        for id in 1..=50 {
            let m = cl
                .simple_query(&format!("UPDATE counters SET n = n + 1 WHERE id = {id}"))
                .await
                .unwrap();
            assert!(
                matches!(
                    m.last(),
                    Some(tokio_postgres::SimpleQueryMessage::CommandComplete(1))
                ),
                "id {id}: {m:?}"
            );
        }
    }));
    for t in tasks {
        t.await.expect("update task");
    }
    // No update lost or applied twice; all of them ran on the lanes.
    let rows = admin
        .query("SELECT id, n FROM counters ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 200);
    for r in &rows {
        let id: i64 = r.get(0);
        let want = if id <= 50 { 25 } else { 24 };
        assert_eq!(r.get::<_, i32>(1), want, "row {id}");
    }
    let vias = via_by_shard(&c);
    assert_eq!(vias.iter().map(Vec::len).sum::<usize>(), 200);
    for (i, rows) in vias.iter().enumerate() {
        for (id, via) in rows {
            assert_eq!(via, "shardgate lane", "shard {i}, row {id}");
        }
    }

    // A write that meets a row lock held by a transaction does not wait on
    // the lane (its lock timeout rolls it back there): it runs again on a
    // connection of its own and waits there, while the lane serves others.
    let (home, first) = vias
        .iter()
        .enumerate()
        .find_map(|(i, rows)| rows.first().map(|(id, _)| (i, *id)))
        .unwrap();
    let neighbour = vias[home][1].0;
    let locker = client(port).await;
    locker.batch_execute("BEGIN").await.unwrap();
    locker
        .execute("UPDATE counters SET n = n + 100 WHERE id = $1", &[&first])
        .await
        .unwrap();
    let waiter = client(port).await;
    let up = waiter
        .prepare("UPDATE counters SET n = n + 1 WHERE id = $1")
        .await
        .unwrap();
    let waiting = tokio::spawn(async move {
        let n = waiter.execute(&up, &[&first]).await;
        (waiter, up, n)
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the write did not wait for the lock"
    );
    let other = client(port).await;
    let read = other
        .prepare("SELECT n FROM counters WHERE id = $1")
        .await
        .unwrap();
    let rows = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        other.query(&read, &[&neighbour]),
    )
    .await
    .expect("a read on the lane behind the waiting write")
    .unwrap();
    assert_eq!(
        rows[0].get::<_, i32>(0),
        if neighbour <= 50 { 25 } else { 24 }
    );
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        other.execute("UPDATE counters SET n = n + 2 WHERE id = $1", &[&neighbour]),
    )
    .await
    .expect("a write on the lane behind the waiting write")
    .unwrap();
    assert_eq!(n, 1);
    locker.batch_execute("COMMIT").await.unwrap();
    let (waiter, up, n) = waiting.await.unwrap();
    assert_eq!(n.unwrap(), 1);
    let row = admin
        .query_one("SELECT n FROM counters WHERE id = $1", &[&first])
        .await
        .unwrap();
    let before = if first <= 50 { 25 } else { 24 };
    assert_eq!(
        row.get::<_, i32>(0),
        before + 101,
        "row {first}: each update once"
    );
    let via = |id: i64| {
        via_by_shard(&c)[home]
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_ne!(
        via(first),
        "shardgate lane",
        "the waiting write ran on the lane"
    );
    assert_eq!(via(neighbour), "shardgate lane");
    // That statement now skips the lane for a while (the lock may be hot).
    assert_eq!(waiter.execute(&up, &[&neighbour]).await.unwrap(), 1);
    assert_ne!(via(neighbour), "shardgate lane");

    // Where a commit waits for a disk flush, writes keep off the lanes
    // (each would hold up the lane for its flush); reads still share them.
    for s in &c.shards {
        s.psql_db("app", "ALTER DATABASE app SET synchronous_commit = on")
            .expect("settings");
    }
    end_lanes(&c);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let cl = client(port).await;
    let read = cl
        .prepare("SELECT n FROM counters WHERE id = $1")
        .await
        .unwrap();
    let write = cl
        .prepare("UPDATE counters SET n = n - 1 WHERE id = $1")
        .await
        .unwrap();
    for id in 101..=140i64 {
        cl.query(&read, &[&id]).await.unwrap();
        assert_eq!(cl.execute(&write, &[&id]).await.unwrap(), 1);
    }
    let vias = via_by_shard(&c);
    for (i, rows) in vias.iter().enumerate() {
        for (id, via) in rows {
            if (101..=140).contains(id) {
                // A session's own connection: the client's (empty)
                // application_name, not a lane's.
                assert_eq!(via, "", "shard {i}, row {id}");
            }
        }
    }
    assert!(
        lane_queries(&c)
            .iter()
            .any(|q| q == "SELECT n FROM counters WHERE id = $1"),
        "{:?}",
        lane_queries(&c)
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
