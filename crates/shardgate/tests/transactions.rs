//! Transactions that write to several PostgreSQL shards commit with
//! two-phase commit: all shards or none, also when a shard refuses to
//! prepare and when shardgate dies between PREPARE and COMMIT PREPARED
//! (its restart finishes the transaction the way its decision log says).

mod common;

use common::{PgCluster, client};
use std::time::Duration;

const ACCOUNTS: &str = "CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL)";

/// Accounts 1..=20 with 100 each; two ids on different shards.
fn setup(c: &PgCluster) -> (i64, i64) {
    c.sg.psql(ACCOUNTS).unwrap();
    c.sg.psql("SELECT shardgate.shard_table('accounts', 'id')")
        .unwrap();
    let values: Vec<String> = (1..=20).map(|i| format!("({i}, 100)")).collect();
    c.sg.psql(&format!(
        "INSERT INTO accounts VALUES {}",
        values.join(", ")
    ))
    .unwrap();
    let shard = |k: i64| {
        c.sg.psql(&format!("SELECT shardgate.shard_of('accounts', '{k}')"))
            .unwrap()
    };
    let a = 1;
    let b = (2..=20).find(|k| shard(*k) != shard(a)).unwrap();
    (a, b)
}

fn balance(c: &PgCluster, id: i64) -> i64 {
    c.sg.psql(&format!("SELECT balance FROM accounts WHERE id = {id}"))
        .unwrap()
        .parse()
        .unwrap()
}

fn total(c: &PgCluster) -> i64 {
    c.sg.psql("SELECT sum(balance) FROM accounts")
        .unwrap()
        .parse()
        .unwrap()
}

/// Prepared transactions left on the shards.
fn prepared(c: &PgCluster) -> Vec<i64> {
    c.shards
        .iter()
        .map(|s| {
            s.psql("SELECT count(*) FROM pg_prepared_xacts")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn writes_to_several_shards_commit_on_all_or_none() {
    let c = PgCluster::start(2, "");
    let (a, b) = setup(&c);
    let mut cl = client(c.sg.port()).await;

    // A transfer between shards, extended protocol with parameters.
    let tx = cl.transaction().await.unwrap();
    tx.execute(
        "UPDATE accounts SET balance = balance - $1 WHERE id = $2",
        &[&10i64, &a],
    )
    .await
    .unwrap();
    tx.execute(
        "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
        &[&10i64, &b],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((balance(&c, a), balance(&c, b)), (90, 110));
    assert_eq!(total(&c), 2000);
    assert_eq!(prepared(&c), vec![0, 0]);

    // Rolled back: nothing changes on either shard.
    cl.batch_execute(&format!(
        "BEGIN; UPDATE accounts SET balance = 0 WHERE id = {a}; UPDATE accounts SET balance = 0 WHERE id = {b}; ROLLBACK"
    ))
    .await
    .unwrap();
    assert_eq!((balance(&c, a), balance(&c, b)), (90, 110));

    // A multi-shard statement inside a transaction, and one outside.
    cl.batch_execute(&format!(
        "BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id IN ({a}, {b}); COMMIT"
    ))
    .await
    .unwrap();
    assert_eq!((balance(&c, a), balance(&c, b)), (91, 111));
    cl.execute("UPDATE accounts SET balance = balance + 1", &[])
        .await
        .unwrap();
    assert_eq!(total(&c), 2000 + 2 + 20);
    assert_eq!(prepared(&c), vec![0, 0]);

    // A shard that fails at PREPARE (a deferred unique check): the other
    // shard's part is rolled back too, and the client gets the error.
    c.sg.psql(
        "CREATE TABLE uq (id bigint PRIMARY KEY, u int UNIQUE DEFERRABLE INITIALLY DEFERRED)",
    )
    .unwrap();
    c.sg.psql("SELECT shardgate.shard_table('uq', 'id')")
        .unwrap();
    let shard = |k: i64| {
        c.sg.psql(&format!("SELECT shardgate.shard_of('uq', '{k}')"))
            .unwrap()
    };
    let b2 = (1..100).find(|k| *k != b && shard(*k) == shard(b)).unwrap();
    let r = cl
        .batch_execute(&format!(
            "BEGIN; INSERT INTO uq VALUES ({a}, 1); INSERT INTO uq VALUES ({b}, 5); INSERT INTO uq VALUES ({b2}, 5); COMMIT"
        ))
        .await;
    let e = r.expect_err("the deferred unique violation must fail the commit");
    assert_eq!(e.code().map(|c| c.code()), Some("23505"), "{e}");
    assert_eq!(c.sg.psql("SELECT count(*) FROM uq").unwrap(), "0");
    assert_eq!(prepared(&c), vec![0, 0]);
    // An UPDATE of the shard key moves the row (extended protocol, binary
    // results, RETURNING), atomically with the rest of its transaction.
    let shard_of = |k: i64| {
        c.sg.psql(&format!("SELECT shardgate.shard_of('accounts', '{k}')"))
            .unwrap()
    };
    let to = (1000..1100i64)
        .find(|k| shard_of(*k) != shard_of(a))
        .unwrap();
    let before = balance(&c, a);
    let rows = cl
        .query(
            "UPDATE accounts SET id = $1, balance = balance + 0 WHERE id = $2 RETURNING id, balance",
            &[&to, &a],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].get::<_, i64>(0), rows[0].get::<_, i64>(1)),
        (to, before)
    );
    let on_shards: Vec<String> = c
        .shards
        .iter()
        .map(|s| {
            s.psql(&format!(
                "SELECT count(*) FROM accounts WHERE id IN ({a}, {to})"
            ))
            .unwrap()
        })
        .collect();
    assert_eq!(
        on_shards.iter().filter(|n| *n == "1").count(),
        1,
        "{on_shards:?}"
    );
    assert_eq!(balance(&c, to), before);
    // Moved back inside a transaction that rolls back: still at `to`.
    cl.batch_execute(&format!(
        "BEGIN; UPDATE accounts SET id = {a} WHERE id = {to}; ROLLBACK"
    ))
    .await
    .unwrap();
    assert_eq!(balance(&c, to), before);
    // And back for good (simple protocol, no RETURNING); no row matched
    // answers UPDATE 0.
    assert_eq!(
        cl.execute(
            &format!("UPDATE accounts SET id = {a} WHERE id = {to}"),
            &[]
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        cl.execute("UPDATE accounts SET id = id + 1 WHERE id = 999999", &[])
            .await
            .unwrap(),
        0
    );
    assert_eq!(balance(&c, a), before);
    assert_eq!(prepared(&c), vec![0, 0]);

    // Global ids: bigints, strictly increasing, from this router's node.
    let mut last = 0i64;
    let mut nodes = std::collections::HashSet::new();
    for i in 0..300 {
        let id: i64 = if i % 3 == 0 {
            c.sg.psql("SELECT shardgate.next_id()")
                .unwrap()
                .parse()
                .unwrap()
        } else {
            cl.query_one("SELECT shardgate.next_id()", &[])
                .await
                .unwrap()
                .get(0)
        };
        assert!(id > last, "{id} after {last}");
        last = id;
        nodes.insert(shardgate_core::snowflake::parts(id).1);
    }
    assert_eq!(nodes.len(), 1, "one router, one node: {nodes:?}");
    let (ms, _, _) = shardgate_core::snowflake::parts(last);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(now.abs_diff(ms + shardgate_core::snowflake::EPOCH_MS) < 60_000);
    // The session goes on.
    assert_eq!(
        cl.query_one("SELECT count(*) FROM accounts", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        20
    );
}

#[test]
fn a_router_killed_mid_commit_finishes_on_restart() {
    let mut c = PgCluster::start(2, "");
    let (a, b) = setup(&c);
    let transfer = format!(
        "BEGIN; UPDATE accounts SET balance = balance - 10 WHERE id = {a}; UPDATE accounts SET balance = balance + 10 WHERE id = {b}; COMMIT"
    );

    // Killed after the decision was logged, before COMMIT PREPARED: the
    // restart commits on both shards.
    c.restart_sg(&[("SHARDGATE_FAULT", "after_decision")]);
    assert!(c.sg.psql(&transfer).is_err(), "the router should have died");
    assert!(c.sg.wait_exit(Duration::from_secs(10)).is_some());
    assert_eq!(prepared(&c), vec![1, 1]);
    c.restart_sg(&[]);
    assert_eq!(prepared(&c), vec![0, 0]);
    assert_eq!((balance(&c, a), balance(&c, b)), (90, 110));

    // Killed after both shards prepared, before the decision: the restart
    // rolls back on both.
    c.restart_sg(&[("SHARDGATE_FAULT", "after_prepare")]);
    assert!(c.sg.psql(&transfer).is_err(), "the router should have died");
    assert!(c.sg.wait_exit(Duration::from_secs(10)).is_some());
    assert_eq!(prepared(&c), vec![1, 1]);
    c.restart_sg(&[]);
    assert_eq!(prepared(&c), vec![0, 0]);
    assert_eq!((balance(&c, a), balance(&c, b)), (90, 110));
    assert_eq!(total(&c), 2000);

    // A second router on the same data directory (same router id, same
    // decision log) is refused at start-up.
    let cfg = c.dir.path().join("shardgate.toml");
    let data = c.dir.path().join("data");
    let second = shardgate_testkit::Shardgate::spawn(
        common::bin(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    let e = second.expect_err("a second router on one data directory must not start");
    assert!(
        format!("{e:#}").contains("in use by another shardgate"),
        "{e:#}"
    );

    // The decision log forgets finished decisions.
    let log = std::fs::read_to_string(c.dir.path().join("data").join("decisions.log")).unwrap();
    assert!(!log.lines().any(|l| l.starts_with("C ")), "{log}");
}

#[test]
fn a_shard_down_at_commit_prepared_commits_when_it_returns() {
    let mut c = PgCluster::start(2, "");
    let (a, b) = setup(&c);
    let b_shard: usize =
        c.sg.psql(&format!("SELECT shardgate.shard_of('accounts', '{b}')"))
            .unwrap()
            .trim_start_matches('s')
            .parse()
            .unwrap();
    // shardgate waits 3 s between logging its decision and COMMIT PREPARED.
    c.restart_sg(&[("SHARDGATE_FAULT", "pause_after_decision")]);
    let port = c.sg.port();
    let transfer = format!(
        "BEGIN; UPDATE accounts SET balance = balance - 10 WHERE id = {a}; UPDATE accounts SET balance = balance + 10 WHERE id = {b}; COMMIT"
    );
    let client = std::thread::spawn(move || {
        shardgate_testkit::psql_at(port, "app", "app", &transfer).map_err(|e| e.to_string())
    });
    // Once b's shard has prepared, it goes down before COMMIT PREPARED.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while prepared(&c)[b_shard] == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the transfer never prepared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.shards[b_shard].kill();
    // The decision was made: the client is told COMMIT.
    let r = client.join().unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(balance(&c, a), 90);
    // The shard returns; recovery commits its part.
    c.shards[b_shard].restart().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while prepared(&c) != vec![0, 0] {
        assert!(
            std::time::Instant::now() < deadline,
            "the prepared transaction was not finished; log:\n{}",
            c.sg.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!((balance(&c, a), balance(&c, b)), (90, 110));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_across_shards_is_broken() {
    let c = PgCluster::start(2, "");
    let (a, b) = setup(&c);
    let c1 = client(c.sg.port()).await;
    let c2 = client(c.sg.port()).await;
    let bump = |k: i64| format!("UPDATE accounts SET balance = balance + 1 WHERE id = {k}");
    c1.batch_execute(&format!("BEGIN; {}", bump(a)))
        .await
        .unwrap();
    c2.batch_execute(&format!("BEGIN; {}", bump(b)))
        .await
        .unwrap();
    // Each now waits for the other, on the other shard: no shard sees it.
    let (q1, q2) = (bump(b), bump(a));
    let f1 = c1.batch_execute(&q1);
    let f2 = c2.batch_execute(&q2);
    tokio::pin!(f1, f2);
    // One of them gives way (40P01, deadlock detected); once it rolls back, the other goes on.
    let first = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            r = &mut f1 => (1, r),
            r = &mut f2 => (2, r),
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the deadlock across shards was not broken; log:\n{}",
            c.sg.log()
        )
    });
    let (loser, e) = match first {
        (n, Err(e)) => (n, e),
        (n, Ok(())) => panic!("client {n} went on while the other still waits"),
    };
    assert_eq!(e.code().map(|c| c.code()), Some("40P01"), "{e}");
    let (lc, wc) = if loser == 1 { (&c1, &c2) } else { (&c2, &c1) };
    lc.batch_execute("ROLLBACK").await.unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        if loser == 1 {
            (&mut f2).await
        } else {
            (&mut f1).await
        }
    })
    .await
    .expect("the other transaction goes on");
    rest.unwrap();
    wc.batch_execute("COMMIT").await.unwrap();
    assert_eq!((balance(&c, a), balance(&c, b)), (101, 101));
    assert_eq!(prepared(&c), vec![0, 0]);
}

/// The SQLSTATE of a failed statement.
fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| e.to_string())
}

#[tokio::test]
async fn next_id_is_a_column_default_filled_in_by_the_router() {
    let mut c = PgCluster::start(2, "");
    let cl = client(c.sg.port()).await;
    cl.batch_execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY DEFAULT shardgate.next_id(), customer text, amount int, blob bytea)",
    )
    .await
    .unwrap();
    cl.batch_execute("SELECT shardgate.shard_table('orders', 'id')")
        .await
        .unwrap();
    // The shards' column has no default: only the router can draw ids.
    for s in &c.shards {
        assert_eq!(
            s.psql("SELECT coalesce(column_default, 'none') FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'id'")
                .unwrap(),
            "none"
        );
    }

    // Simple protocol, many rows, RETURNING the ids.
    let values: Vec<String> = (0..40).map(|i| format!("('c{i}', {i})")).collect();
    let rows = cl
        .simple_query(&format!(
            "INSERT INTO orders (customer, amount) VALUES {} RETURNING id",
            values.join(", ")
        ))
        .await
        .unwrap();
    let mut ids: Vec<i64> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 40);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in VALUES order: {ids:?}"
    );
    let mut sorted = ids.clone();
    sorted.sort();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (ms, _, _) = shardgate_core::snowflake::parts(sorted[39]);
    assert!(now.abs_diff(ms + shardgate_core::snowflake::EPOCH_MS) < 60_000);

    // Extended protocol: a prepared INSERT draws new ids per execution;
    // its parameters (binary bytea too) reach the shard as parameters.
    let st = cl
        .prepare(
            "INSERT INTO orders (customer, amount, blob) VALUES ($1, $2, $3) RETURNING id, blob",
        )
        .await
        .unwrap();
    for i in 0..10 {
        let blob = vec![i as u8, 0, 255];
        let r = cl
            .query_one(&st, &[&format!("p{i}"), &i, &blob])
            .await
            .unwrap();
        assert_eq!(r.get::<_, Vec<u8>>(1), blob);
        ids.push(r.get(0));
    }
    // DEFAULT, an explicit call and a given id, in one statement.
    let r = cl
        .query(
            "INSERT INTO orders (id, customer, amount) VALUES (DEFAULT, 'x', 1), (shardgate.next_id(), 'y', 2), (42, 'z', $1) RETURNING id",
            &[&3i32],
        )
        .await
        .unwrap();
    let got: Vec<i64> = r.iter().map(|r| r.get(0)).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2], 42);
    ids.extend(got);
    let distinct: std::collections::HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "unique ids");

    // Every row is on the shard that owns its id.
    let mut seen = 0;
    for (i, s) in c.shards.iter().enumerate() {
        let here = s.psql("SELECT id FROM orders ORDER BY id").unwrap();
        for id in here.lines().filter(|l| !l.is_empty()) {
            seen += 1;
            let owner =
                c.sg.psql(&format!("SELECT shardgate.shard_of('orders', '{id}')"))
                    .unwrap();
            assert_eq!(owner, format!("s{i}"), "id {id}");
        }
    }
    assert_eq!(seen, ids.len());
    assert!(
        c.shards
            .iter()
            .all(|s| s.psql("SELECT count(*) FROM orders").unwrap() != "0"),
        "ids spread over both shards"
    );

    // INSERT ... SELECT in the simple protocol: the SELECT runs first and
    // its rows become a VALUES list, which gets ids like any.
    let rows = cl
        .simple_query("INSERT INTO orders (customer, amount) SELECT 'q' || g, g FROM generate_series(1, 3) g RETURNING id")
        .await
        .unwrap();
    let got: Vec<i64> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    // The extended protocol runs the SELECT first too: an id for the row.
    let n = cl
        .execute("INSERT INTO orders (customer) SELECT 'q-extended'", &[])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let row = cl
        .query_one(
            "SELECT count(*) FROM orders WHERE customer = 'q-extended' AND id IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    let e = cl
        .execute("UPDATE orders SET id = DEFAULT WHERE id = 42", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "0A000", "{e}");
    let e = cl
        .batch_execute("CREATE TABLE bad (id int DEFAULT shardgate.next_id())")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42804", "{e}");

    // A reference table gets the default later: every copy, one id.
    cl.batch_execute("CREATE TABLE products (id bigint PRIMARY KEY, name text)")
        .await
        .unwrap();
    cl.batch_execute("SELECT shardgate.reference_table('products')")
        .await
        .unwrap();
    // Inside a transaction block it is recorded at COMMIT: a ROLLBACK, or
    // a ROLLBACK TO a savepoint made before it, leaves no default.
    for sql in [
        "BEGIN; ALTER TABLE products ALTER COLUMN id SET DEFAULT shardgate.next_id(); ROLLBACK",
        "BEGIN; SAVEPOINT a; ALTER TABLE products ALTER COLUMN id SET DEFAULT shardgate.next_id(); \
         ROLLBACK TO SAVEPOINT a; COMMIT",
    ] {
        cl.batch_execute(sql).await.unwrap();
        let e = cl
            .batch_execute("INSERT INTO products (name) VALUES ('none')")
            .await
            .unwrap_err();
        assert_eq!(code(&e), "23502", "{sql}: no id drawn: {e}");
    }
    // Outside one, not in an extended-protocol batch with more before its
    // Sync (the batch is one implicit transaction): refused, nothing
    // recorded.
    let port = c.sg.port();
    let got = tokio::task::spawn_blocking(move || {
        let mut raw = common::Raw::connect(port);
        raw.send(&[
            common::Raw::parse(
                "ALTER TABLE products ALTER COLUMN id SET DEFAULT shardgate.next_id()",
            ),
            common::Raw::bind(),
            common::Raw::execute(0),
            common::Raw::parse("SELECT 1"),
            common::Raw::bind(),
            common::Raw::execute(0),
            common::Raw::msg(b'S', &[]),
        ]);
        raw.until(b'Z')
    })
    .await
    .unwrap();
    let e = got
        .iter()
        .find(|(t, _)| *t == b'E')
        .expect("an error in the batch");
    assert_eq!(common::sqlstate(&e.1), "25001");
    // A transaction that commits (a migration): its own INSERTs draw ids
    // already, in both protocols; a savepoint rolled back after it keeps it.
    cl.batch_execute(
        "BEGIN; ALTER TABLE products ALTER COLUMN id SET DEFAULT shardgate.next_id(); \
         INSERT INTO products (name) VALUES ('in-txn'); SAVEPOINT b",
    )
    .await
    .unwrap();
    cl.execute(
        "INSERT INTO products (name) VALUES ($1)",
        &[&"in-txn-extended"],
    )
    .await
    .unwrap();
    cl.batch_execute("ROLLBACK TO SAVEPOINT b; COMMIT")
        .await
        .unwrap();
    cl.batch_execute("INSERT INTO products (name) VALUES ('p1'), ('p2')")
        .await
        .unwrap();
    // CREATE TABLE in a transaction block (Django's migrations, TypeORM's
    // synchronize), used before COMMIT.
    let rows = cl
        .simple_query(
            "BEGIN; CREATE TABLE gadgets (id bigint PRIMARY KEY DEFAULT shardgate.next_id(), name text); \
             INSERT INTO gadgets (name) VALUES ('g1') RETURNING id; COMMIT",
        )
        .await
        .unwrap();
    assert!(
        rows.iter()
            .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0).is_some_and(|v| v.parse::<i64>().is_ok()))),
        "an id drawn in the transaction"
    );
    cl.batch_execute("INSERT INTO gadgets (name) VALUES ('g2')")
        .await
        .unwrap();
    let n = cl
        .query_one(
            "SELECT count(DISTINCT id) FROM gadgets WHERE id IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n.get::<_, i64>(0), 2);
    // Writes shardgate cannot fill ids for are refused.
    for sql in [
        "WITH x AS (INSERT INTO products (name) VALUES ('p3') RETURNING id) SELECT * FROM x",
        "INSERT INTO products (id, name) VALUES (1, 'p4') ON CONFLICT (id) DO UPDATE SET id = DEFAULT",
        "INSERT INTO products VALUES (DEFAULT, 'p5')",
    ] {
        let e = cl.batch_execute(sql).await.unwrap_err();
        assert_eq!(code(&e), "0A000", "{sql}: {e}");
    }
    let copies: Vec<String> = c
        .shards
        .iter()
        .map(|s| {
            s.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM products")
                .unwrap()
        })
        .collect();
    assert_eq!(copies[0], copies[1]);
    assert_eq!(copies[0].split(',').count(), 3, "in-txn, p1, p2");

    // An unsharded table; the record survives a restart and follows
    // renames; DROP DEFAULT ends it (then PostgreSQL's NULL).
    cl.batch_execute("CREATE TABLE notes (id bigint DEFAULT shardgate.next_id(), body text)")
        .await
        .unwrap();
    cl.batch_execute("ALTER TABLE notes RENAME COLUMN id TO note_id")
        .await
        .unwrap();
    drop(cl);
    c.restart_sg(&[]);
    let cl = client(c.sg.port()).await;
    cl.batch_execute("INSERT INTO notes (body) VALUES ('a'); INSERT INTO notes DEFAULT VALUES")
        .await
        .unwrap();
    let n: i64 = cl
        .query_one("SELECT count(note_id) FROM notes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    // A portal read in parts (row limit) inserts its rows once.
    let mut cl = cl;
    let tx = cl.transaction().await.unwrap();
    let st = tx
        .prepare("INSERT INTO notes (body) VALUES ($1), ($2), ($3) RETURNING note_id")
        .await
        .unwrap();
    let portal = tx.bind(&st, &[&"x", &"y", &"z"]).await.unwrap();
    let first = tx.query_portal(&portal, 2).await.unwrap();
    let rest = tx.query_portal(&portal, 2).await.unwrap();
    assert_eq!((first.len(), rest.len()), (2, 1));
    tx.commit().await.unwrap();
    let n: i64 = cl
        .query_one("SELECT count(DISTINCT note_id) FROM notes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 5);
    cl.batch_execute("ALTER TABLE notes ALTER COLUMN note_id DROP DEFAULT")
        .await
        .unwrap();
    cl.batch_execute("INSERT INTO notes (body) VALUES ('b')")
        .await
        .unwrap();
    let n: i64 = cl
        .query_one("SELECT count(*) FROM notes WHERE note_id IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let r = cl
        .query_one(
            "INSERT INTO orders (customer, amount) VALUES ('after', 1) RETURNING id",
            &[],
        )
        .await
        .unwrap();
    assert!(r.get::<_, i64>(0) > *ids.iter().filter(|i| **i != 42).max().unwrap());
    assert_eq!(prepared(&c), vec![0, 0]);
}

/// Identity and serial columns (Django's and SQLAlchemy's ids) of a table
/// declared sharded or reference through SQL: every shard would count
/// from 1; shardgate draws their ids instead (unique across shards, the
/// same on every copy of a reference table), and refuses an integer one.
#[tokio::test]
async fn identity_columns_take_ids_from_the_router() {
    let c = PgCluster::start(3, "");
    let cl = client(c.sg.port()).await;
    cl.batch_execute(
        "CREATE TABLE app_order (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, customer_id bigint NOT NULL, note text); \
         CREATE TABLE app_tag (id bigserial PRIMARY KEY, name text); \
         CREATE TABLE narrow (id serial PRIMARY KEY, customer_id bigint)",
    )
    .await
    .unwrap();
    let msg = cl
        .simple_query("SELECT shardgate.shard_table('app_order', 'customer_id')")
        .await
        .unwrap();
    let text = match &msg[1] {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).unwrap().to_string(),
        _ => panic!("no row"),
    };
    assert!(
        text.contains("id takes values from shardgate.next_id()"),
        "{text}"
    );
    // (Arguments may be bind parameters, as SQLAlchemy's text() sends them.)
    let r = cl
        .query_one("SELECT shardgate.reference_table($1)", &[&"app_tag"])
        .await
        .unwrap();
    assert!(
        r.get::<_, &str>(0)
            .starts_with("app_tag is a reference table")
    );
    let e = cl
        .simple_query("SELECT shardgate.shard_table('narrow', 'customer_id')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "0A000", "{e}");
    let ins = cl
        .prepare("INSERT INTO app_order (customer_id, note) VALUES ($1, 'n') RETURNING id")
        .await
        .unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for k in 1..=30i64 {
        ids.insert(cl.query_one(&ins, &[&k]).await.unwrap().get::<_, i64>(0));
    }
    assert_eq!(ids.len(), 30);
    // Every id finds exactly its row.
    for id in &ids {
        let n: i64 = cl
            .query_one("SELECT count(*) FROM app_order WHERE id = $1", &[id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
    }
    cl.batch_execute("INSERT INTO app_tag (name) VALUES ('a'), ('b'), ('c')")
        .await
        .unwrap();
    // Each copy of the reference table holds the same ids.
    let copies: Vec<String> = c
        .shards
        .iter()
        .map(|s| {
            s.psql_db(
                "app",
                "SELECT string_agg(id::text, ',' ORDER BY name) FROM app_tag",
            )
            .unwrap()
        })
        .collect();
    assert!(
        copies
            .iter()
            .all(|x| x == &copies[0] && !x.trim().is_empty()),
        "{copies:?}"
    );
}
