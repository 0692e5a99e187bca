//! Session behaviour over four PostgreSQL shards, compared with what one
//! PostgreSQL does: settings never leak between clients through pooled
//! connections, implicit transactions (a multi-statement query, an
//! extended-protocol batch) are all-or-nothing, prepared statements survive
//! errors, reference-table writes report one copy, and protocol corners
//! (Flush after an error, row-limited Execute of a write, comment-only
//! queries, DEALLOCATE) behave as PostgreSQL's.

mod common;

use common::{PgCluster, Raw, client, sqlstate};
use tokio_postgres::SimpleQueryMessage;

fn rows(msgs: &[SimpleQueryMessage]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("NULL").to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_behave_like_one_postgres() {
    // A small pool makes connection reuse between clients certain.
    let c = PgCluster::start_with(
        4,
        "pool_size = 2\n",
        "[[tables]]\nname = \"orders\"\nshard_key = \"customer_id\"\nkey_type = \"bigint\"\n[[reference_tables]]\nname = \"products\"\n",
    );
    let port = c.sg.port();
    let a = client(port).await;
    a.batch_execute("CREATE TABLE orders (customer_id bigint, id bigint, v text, PRIMARY KEY (customer_id, id)); CREATE TABLE products (id bigint PRIMARY KEY, name text)").await.unwrap();
    c.guard("orders", "customer_id");
    let shard_of = |k: i64| {
        c.sg.psql(&format!("SELECT shardgate.shard_of('orders', '{k}')"))
            .unwrap()
    };
    let k1 = 1i64;
    let k2 = (2..100).find(|k| shard_of(*k) != shard_of(k1)).unwrap();

    // 1. Settings do not leak to other clients, also not through a
    // transaction that rolls back.
    a.batch_execute("SET search_path = pg_catalog")
        .await
        .unwrap();
    a.batch_execute("SET TimeZone = 'America/New_York'")
        .await
        .unwrap();
    drop(a);
    let b = client(port).await;
    b.batch_execute("BEGIN").await.unwrap();
    b.query("SELECT 1 FROM public.orders WHERE customer_id = 1", &[])
        .await
        .unwrap();
    b.batch_execute("ROLLBACK").await.unwrap();
    drop(b);
    for _ in 0..4 {
        let z = client(port).await;
        let tz = rows(&z.simple_query("SHOW TimeZone").await.unwrap());
        assert_ne!(tz, vec!["America/New_York".to_string()]);
        z.simple_query("SELECT count(*) FROM orders WHERE customer_id = 1")
            .await
            .unwrap();
    }
    let d = client(port).await;
    let before = rows(&d.simple_query("SHOW TimeZone").await.unwrap());
    d.batch_execute(
        "BEGIN; SET TimeZone = 'America/Denver'; SELECT 1 FROM orders WHERE customer_id = 5",
    )
    .await
    .unwrap();
    d.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        rows(&d.simple_query("SHOW TimeZone").await.unwrap()),
        before,
        "SET rolled back"
    );
    d.batch_execute("SET work_mem = '5MB'; RESET work_mem")
        .await
        .unwrap();
    assert_eq!(
        rows(&d.simple_query("SHOW work_mem").await.unwrap()),
        vec!["4MB".to_string()]
    );

    // 2. Several statements in one query string: all or nothing, also
    // across shards (two-phase commit).
    d.simple_query(&format!(
        "INSERT INTO orders VALUES ({k1}, 100, 'a'); INSERT INTO orders VALUES ({k2}, 100, 'b')"
    ))
    .await
    .unwrap();
    let n = rows(
        &d.simple_query(&format!(
            "SELECT count(*) FROM orders WHERE id = 100 AND customer_id IN ({k1}, {k2})"
        ))
        .await
        .unwrap(),
    );
    assert_eq!(n, vec!["2".to_string()]);
    d.simple_query(&format!(
        "DELETE FROM orders WHERE id = 100 AND customer_id IN ({k1}, {k2})"
    ))
    .await
    .unwrap();
    d.simple_query(&format!(
        "INSERT INTO orders VALUES ({k1}, 101, 'a'); SELECT 1/0"
    ))
    .await
    .unwrap_err();
    let n = rows(
        &d.simple_query("SELECT count(*) FROM orders WHERE customer_id = 1 AND id IN (100, 101)")
            .await
            .unwrap(),
    );
    assert_eq!(
        n,
        vec!["0".to_string()],
        "nothing of a failed query string stays"
    );
    d.simple_query(&format!(
        "INSERT INTO orders VALUES ({k1}, 102, 'a'); INSERT INTO orders VALUES ({k1}, 103, 'b')"
    ))
    .await
    .unwrap();
    let n = rows(
        &d.simple_query(&format!(
            "SELECT count(*) FROM orders WHERE customer_id = {k1}"
        ))
        .await
        .unwrap(),
    );
    assert_eq!(n, vec!["2".to_string()]);

    // 3. An extended-protocol batch that fails keeps nothing on any shard.
    let mut r = Raw::connect(port);
    r.send(&[
        Raw::parse(&format!("INSERT INTO orders VALUES ({k2}, 200, 'x')")),
        Raw::bind(),
        Raw::execute(0),
        Raw::parse(&format!("INSERT INTO orders VALUES ({k1}, 102, 'dup')")),
        Raw::bind(),
        Raw::execute(0),
        Raw::msg(b'S', b""),
    ]);
    let got = r.until(b'Z');
    assert!(got.iter().any(|(t, _)| *t == b'E'), "{got:?}");
    let n = rows(
        &d.simple_query(&format!(
            "SELECT count(*) FROM orders WHERE customer_id = {k2} AND id = 200"
        ))
        .await
        .unwrap(),
    );
    assert_eq!(n, vec!["0".to_string()]);
    // ... and one that succeeds on one shard keeps everything.
    r.send(&[
        Raw::parse(&format!("INSERT INTO orders VALUES ({k2}, 201, 'x')")),
        Raw::bind(),
        Raw::execute(0),
        Raw::parse(&format!("INSERT INTO orders VALUES ({k2}, 202, 'y')")),
        Raw::bind(),
        Raw::execute(0),
        Raw::msg(b'S', b""),
    ]);
    let got = r.until(b'Z');
    assert!(!got.iter().any(|(t, _)| *t == b'E'), "{got:?}");
    // A row-limited Execute of a multi-shard write (JDBC's executeUpdate).
    r.send(&[
        Raw::parse("UPDATE orders SET v = 'z' WHERE id >= 200"),
        Raw::bind(),
        Raw::execute(1),
        Raw::msg(b'S', b""),
    ]);
    let got = r.until(b'Z');
    let tag = got
        .iter()
        .find(|(t, _)| *t == b'C')
        .map(|(_, b)| String::from_utf8_lossy(&b[..b.len() - 1]).into_owned());
    assert_eq!(tag.as_deref(), Some("UPDATE 2"), "{got:?}");
    // An error answers a Flush at once (asyncpg waits for it).
    r.send(&[
        Raw::parse("SELECT 'a'::int"),
        Raw::msg(b'D', b"S\0"),
        Raw::msg(b'H', b""),
    ]);
    let got = r.until(b'E');
    assert_eq!(sqlstate(&got.last().unwrap().1), "22P02");
    r.send(&[Raw::msg(b'S', b"")]);
    r.until(b'Z');
    // A comment-only query is an empty query.
    r.send(&[Raw::msg(b'Q', b"/* nothing */\0")]);
    let got = r.until(b'Z');
    assert_eq!(
        got.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        vec![b'I', b'Z']
    );
    // SET reports the new value of a reported parameter.
    r.send(&[Raw::msg(b'Q', b"SET application_name = 'probe'\0")]);
    let got = r.until(b'Z');
    assert!(
        got.iter()
            .any(|(t, b)| *t == b'S' && b.starts_with(b"application_name\0probe")),
        "{got:?}"
    );

    // 4. A prepared statement that fails keeps working, on every connection.
    let p = client(port).await;
    let ins = p
        .prepare("INSERT INTO orders (customer_id, id, v) VALUES ($1, $2, $3)")
        .await
        .unwrap();
    p.execute(&ins, &[&k1, &300i64, &"a"]).await.unwrap();
    for _ in 0..3 {
        let e = p.execute(&ins, &[&k1, &300i64, &"dup"]).await.unwrap_err();
        assert_eq!(e.code().unwrap().code(), "23505");
    }
    p.execute(&ins, &[&k1, &301i64, &"b"]).await.unwrap();
    for _ in 0..3 {
        let q = client(port).await;
        let st = q
            .prepare("INSERT INTO orders (customer_id, id, v) VALUES ($1, $2, $3)")
            .await
            .unwrap();
        q.execute(&st, &[&k1, &(400 + rand::random::<u16>() as i64), &"c"])
            .await
            .unwrap();
    }
    p.batch_execute("DEALLOCATE ALL").await.unwrap();

    // 5. A write to a reference table reports one copy.
    let out = p
        .query(
            "INSERT INTO products VALUES (1, 'tea'), (2, 'cake') RETURNING id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        p.execute("UPDATE products SET name = upper(name)", &[])
            .await
            .unwrap(),
        2
    );
    for s in &c.shards {
        assert_eq!(
            s.psql("SELECT string_agg(name, ',' ORDER BY id) FROM products")
                .unwrap(),
            "TEA,CAKE"
        );
    }

    // 7. A merged query followed by a failed Parse does not leave a
    // connection owing a Sync to the next client.
    p.simple_query("SELECT * FROM orders ORDER BY id LIMIT 2")
        .await
        .unwrap();
    assert!(p.prepare("SELECT nosuchcol FROM orders").await.is_err());
    for _ in 0..3 {
        let q = client(port).await;
        let n = rows(
            &q.simple_query(&format!(
                "SELECT count(*) FROM orders WHERE customer_id = {k1}"
            ))
            .await
            .unwrap(),
        );
        assert_eq!(n.len(), 1);
    }
    // 8. BEGIN that sqlparser cannot parse is still the session's, and a
    // BEGIN after a SET in the same query string covers what follows.
    p.batch_execute("CREATE TABLE notes (id bigint)")
        .await
        .unwrap();
    p.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE")
        .await
        .unwrap();
    p.batch_execute("ROLLBACK").await.unwrap();
    // A BEGIN with modes inside a transaction warns, and its modes apply
    // (as SET TRANSACTION), as in PostgreSQL.
    p.batch_execute("BEGIN").await.unwrap();
    p.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    assert_eq!(
        rows(&p.simple_query("SHOW transaction_isolation").await.unwrap()),
        vec!["repeatable read".to_string()]
    );
    p.batch_execute("ROLLBACK").await.unwrap();
    p.batch_execute("SET search_path = public; BEGIN; INSERT INTO notes VALUES (1)")
        .await
        .unwrap();
    p.batch_execute("ROLLBACK").await.unwrap();
    let n = rows(&p.simple_query("SELECT count(*) FROM notes").await.unwrap());
    assert_eq!(n, vec!["0".to_string()], "rolled back");

    // 9. Idle pooled connections that a shard closed are replaced, not used.
    for sh in &c.shards {
        sh.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'shardgate'").unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let fresh = client(port).await;
    for k in 1..30i64 {
        fresh
            .query("SELECT count(*) FROM orders WHERE customer_id = $1", &[&k])
            .await
            .unwrap();
    }

    // 6. Mixed-case tables can be declared.
    p.batch_execute("CREATE TABLE \"Visits\" (\"UserId\" bigint, at text)")
        .await
        .unwrap();
    p.batch_execute("SELECT shardgate.shard_table('\"Visits\"', '\"UserId\"')")
        .await
        .unwrap();
    p.batch_execute("INSERT INTO \"Visits\" VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')")
        .await
        .unwrap();
    let n: usize = c
        .shards
        .iter()
        .map(|s| {
            s.psql("SELECT count(*) FROM \"Visits\"")
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .filter(|n| *n > 0)
        .count();
    assert!(n >= 2, "rows of \"Visits\" are spread");
}

/// Four shards, pool_size 1 (so a connection is surely reused), and a
/// `jobs` table sharded by id with rows 1..=20 whose state is `state(id)`.
async fn jobs_cluster(state: impl Fn(i64) -> String) -> (PgCluster, u16, tokio_postgres::Client) {
    let c = PgCluster::start_with(
        4,
        "pool_size = 1\n",
        "[[tables]]\nname = \"jobs\"\nshard_key = \"id\"\nkey_type = \"bigint\"\n",
    );
    let port = c.sg.port();
    let a = client(port).await;
    a.batch_execute("CREATE TABLE jobs (id bigint PRIMARY KEY, state text)")
        .await
        .unwrap();
    for id in 1..=20i64 {
        a.execute("INSERT INTO jobs VALUES ($1, $2)", &[&id, &state(id)])
            .await
            .unwrap();
    }
    (c, port, a)
}

/// Session state a pooled shard connection would carry to other clients
/// (or that would silently not work) is tracked, or refused clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_pooling_cannot_carry_is_refused() {
    let (cluster, port, a) = jobs_cluster(|_| "new".to_string()).await;
    // SET SESSION CHARACTERISTICS is a session setting: this session's,
    // not the next client's on the same shard connections.
    a.batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        .await
        .unwrap();
    assert_eq!(
        rows(
            &a.simple_query("SHOW default_transaction_read_only")
                .await
                .unwrap()
        ),
        ["on"]
    );
    let e = a
        .simple_query("UPDATE jobs SET state = 'x' WHERE id = 1")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "25006");
    drop(a);
    let b = client(port).await;
    assert_eq!(
        rows(
            &b.simple_query("SHOW default_transaction_read_only")
                .await
                .unwrap()
        ),
        ["off"]
    );
    b.simple_query("UPDATE jobs SET state = 'new' WHERE id = 1")
        .await
        .unwrap();
    // Refused: state that would stay on a pooled connection.
    for q in [
        "SELECT set_config('app.tenant', id::text, false) FROM jobs WHERE id = 1",
        "SELECT pg_advisory_lock(7)",
        "SELECT pg_try_advisory_lock(7)",
        "LISTEN jobs",
        "CREATE TEMP TABLE scratch (a int)",
        // Each shard would lock its own first row.
        "SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
        "SELECT id FROM jobs ORDER BY id LIMIT 1 FOR SHARE NOWAIT",
    ] {
        let e = b.simple_query(q).await.unwrap_err();
        assert_eq!(e.code().unwrap().code(), "0A000", "{q}: {e}");
    }
    // Their transaction-scoped forms work.
    b.batch_execute(
        "BEGIN; SELECT set_config('app.tenant', '42', true); SELECT pg_advisory_xact_lock(7); \
         CREATE TEMP TABLE scratch (a int) ON COMMIT DROP; INSERT INTO scratch VALUES (1); COMMIT",
    )
    .await
    .unwrap();
    assert_eq!(
        rows(
            &b.simple_query("SELECT id FROM jobs WHERE id = 3 ORDER BY id LIMIT 1 FOR UPDATE")
                .await
                .unwrap()
        ),
        ["3"]
    );
    // A waiting lock with LIMIT across shards: the merged first rows, each
    // locked (others on their shards may be too: they only wait longer).
    b.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        rows(
            &b.simple_query("SELECT id FROM jobs ORDER BY id DESC LIMIT 2 FOR UPDATE")
                .await
                .unwrap()
        ),
        ["20", "19"]
    );
    for id in [20, 19] {
        // On the shards themselves (the router's pool is taken): one of
        // them has the row, locked.
        let waited = cluster
            .shards
            .iter()
            .filter_map(|s| {
                s.psql(&format!(
                    "SET lock_timeout = '300ms'; UPDATE jobs SET state = 'y' WHERE id = {id}"
                ))
                .err()
            })
            .collect::<Vec<_>>();
        assert_eq!(waited.len(), 1, "row {id}: {waited:?}");
        assert!(
            format!("{:#}", waited[0]).contains("lock timeout"),
            "{:?}",
            waited
        );
    }
    b.batch_execute("COMMIT").await.unwrap();
    // Startup parameters reach the shards as the server reads them: a list
    // stays a list; application_name is the client's.
    let (opt, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={port} user=app dbname=app application_name=jobrunner \
             options='-c search_path=public,pg_catalog'"
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    assert_eq!(
        rows(&opt.simple_query("SHOW search_path").await.unwrap()),
        ["public,pg_catalog"]
    );
    assert_eq!(
        rows(&opt.simple_query("SELECT count(*) FROM jobs").await.unwrap()),
        ["20"]
    );
    assert_eq!(
        rows(&opt.simple_query("SHOW application_name").await.unwrap()),
        ["jobrunner"]
    );
    // RESET, SET ... TO DEFAULT and DISCARD ALL return to the startup
    // packet's values (the session's defaults), on every shard.
    let everywhere = "SELECT DISTINCT current_setting('application_name') || '|' || current_setting('search_path') FROM jobs";
    for reset in [
        "RESET application_name; RESET search_path",
        "SET application_name TO DEFAULT; SET search_path = DEFAULT",
        "RESET ALL",
        "DISCARD ALL",
    ] {
        opt.batch_execute("SET application_name = 'other'; SET search_path = public")
            .await
            .unwrap();
        assert_eq!(
            rows(&opt.simple_query(everywhere).await.unwrap()),
            ["other|public"]
        );
        opt.batch_execute(reset).await.unwrap();
        assert_eq!(
            rows(&opt.simple_query(everywhere).await.unwrap()),
            ["jobrunner|public,pg_catalog"],
            "{reset}"
        );
    }
    // A client that names no application has none, after RESET too (the
    // shard connections' own name does not show).
    let anon = client(port).await;
    for q in [
        "SELECT 1",
        "RESET ALL",
        "SET application_name = 'x'; RESET application_name",
    ] {
        anon.batch_execute(q).await.unwrap();
        assert_eq!(
            rows(&anon.simple_query("SHOW application_name").await.unwrap()),
            [""],
            "{q}"
        );
    }
    // An explicit startup parameter wins over the same one in `options`
    // (pgjdbc sends TimeZone before options), as on PostgreSQL.
    let mut raw = Raw::try_connect(
        port,
        &[
            ("user", "app"),
            ("database", "app"),
            ("TimeZone", "UTC"),
            ("options", "-c TimeZone=Asia/Tokyo"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    raw.send(&[Raw::msg(
        b'Q',
        b"SELECT DISTINCT current_setting('TimeZone') FROM jobs\0",
    )]);
    let reply = raw.until(b'Z');
    let data: Vec<&Vec<u8>> = reply
        .iter()
        .filter(|(t, _)| *t == b'D')
        .map(|(_, b)| b)
        .collect();
    assert_eq!(data.len(), 1, "{reply:?}");
    assert!(
        data[0].ends_with(b"UTC"),
        "{:?}",
        String::from_utf8_lossy(data[0])
    );
    // Schema changes under prepared statements, as on one PostgreSQL: a
    // fresh Parse plans afresh (the pooled connections' statements from
    // before are forgotten); a statement described before gets the error
    // instead of rows of another shape; a change that leaves its shape
    // alone does not disturb it.
    let q = "SELECT * FROM jobs WHERE id = $1";
    let old = opt.prepare(q).await.unwrap();
    assert_eq!(opt.query_one(&old, &[&2i64]).await.unwrap().len(), 2);
    opt.batch_execute("ALTER TABLE jobs ADD COLUMN extra int")
        .await
        .unwrap();
    for _ in 0..3 {
        let fresh = client(port).await;
        let st = fresh.prepare(q).await.unwrap();
        assert_eq!(fresh.query_one(&st, &[&2i64]).await.unwrap().len(), 3);
    }
    let e = opt.query_one(&old, &[&2i64]).await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "0A000", "{e}");
    let kept = opt.prepare(q).await.unwrap();
    opt.batch_execute("CREATE TABLE unrelated (a int)")
        .await
        .unwrap();
    assert_eq!(opt.query_one(&kept, &[&2i64]).await.unwrap().len(), 3);
    // A fast-path function call (libpq's PQfn) is an error; the session
    // goes on.
    let mut raw = Raw::connect(port);
    let mut body = 1255u32.to_be_bytes().to_vec(); // a function OID
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // no formats, no args, text result
    raw.send(&[Raw::msg(b'F', &body)]);
    let got = raw.until(b'Z');
    let err = got.iter().find(|(t, _)| *t == b'E').expect("an error");
    assert_eq!(sqlstate(&err.1), "0A000");
    raw.send(&[Raw::msg(b'Q', b"SELECT 1\0")]);
    let got = raw.until(b'Z');
    assert!(got.iter().any(|(t, _)| *t == b'D'), "{got:?}");
}

/// pg_dump through shardgate (its preamble's `set_config(..., false)`
/// calls, `LOCK TABLE` of a sharded table, SQL-level PREPARE/EXECUTE of its
/// catalog queries, COPY out of every shard), and those statements on
/// their own: set_config tracked as SET (replayed on the pooled
/// connections), PREPARE/EXECUTE/DEALLOCATE as PostgreSQL answers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_and_sql_level_prepare() {
    let (_cluster, port, a) = jobs_cluster(|id| format!("s{id}")).await;
    // set_config(..., false) on its own is a SET: answered with the value,
    // and it holds on every shard connection the session uses.
    let m = a
        .simple_query("SELECT pg_catalog.set_config('application_name', 'dumper', false)")
        .await
        .unwrap();
    assert_eq!(rows(&m), vec!["dumper"]);
    let m = a
        .simple_query("SELECT current_setting('application_name') FROM jobs WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8) LIMIT 1")
        .await
        .unwrap();
    assert_eq!(rows(&m), vec!["dumper"]);
    // Inside a larger query it still changes the session unseen: refused.
    let e = a
        .simple_query("SELECT set_config('application_name', state, false) FROM jobs")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "0A000");
    // asyncpg's forms, in the extended protocol: the old value next to the
    // change, and the value as a bind parameter. Both hold on every shard.
    let everywhere =
        "SELECT DISTINCT current_setting('jit') FROM jobs WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8)";
    let r = a
        .query(
            "SELECT current_setting('jit') AS cur, set_config('jit', 'off', false) AS new",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].get::<_, &str>("cur"), r[0].get::<_, &str>("new")),
        ("on", "off")
    );
    assert_eq!(rows(&a.simple_query(everywhere).await.unwrap()), ["off"]);
    let r = a
        .query("SELECT set_config('jit', $1, false)", &[&"on"])
        .await
        .unwrap();
    assert_eq!(r[0].get::<_, &str>(0), "on");
    assert_eq!(rows(&a.simple_query(everywhere).await.unwrap()), ["on"]);
    // asyncpg's pool reset: nothing to unlock or unlisten, no error.
    a.batch_execute("SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;")
        .await
        .unwrap();
    // PREPARE / EXECUTE with typed and untyped parameters, across shards.
    a.batch_execute("PREPARE one(bigint) AS SELECT state FROM jobs WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(
        rows(&a.simple_query("EXECUTE one(7)").await.unwrap()),
        vec!["s7"]
    );
    a.batch_execute("PREPARE many AS SELECT count(*) FROM jobs WHERE id > $1")
        .await
        .unwrap();
    assert_eq!(
        rows(&a.simple_query("EXECUTE many(15)").await.unwrap()),
        vec!["5"]
    );
    let e = a.simple_query("EXECUTE many(1, 2)").await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "42601");
    let e = a
        .batch_execute("PREPARE one AS SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "42P05");
    a.batch_execute("DEALLOCATE one").await.unwrap();
    let e = a.simple_query("EXECUTE one(7)").await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "26000");
    // LOCK TABLE of a sharded table: on every shard, in a transaction.
    a.batch_execute("BEGIN; LOCK TABLE jobs IN SHARE MODE; COMMIT")
        .await
        .unwrap();
    // pg_dump: the schema once, every row once.
    let out = std::process::Command::new(shardgate_testkit::pg_bin("pg_dump"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "app",
            "app",
        ])
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        dump.matches("CREATE TABLE public.jobs").count(),
        1,
        "{dump}"
    );
    let data: Vec<&str> = dump
        .lines()
        .skip_while(|l| !l.starts_with("COPY public.jobs"))
        .skip(1)
        .take_while(|l| *l != "\\.")
        .collect();
    let mut ids: Vec<i64> = data
        .iter()
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, (1..=20).collect::<Vec<i64>>(), "{dump}");
}
