//! Cross-shard aggregation beyond the differential suite: bind parameters
//! in the partial and final queries, the partial-row limit, aggregates in
//! transactions, errors raised by the final query, and EXPLAIN.

mod common;

use common::{PgCluster, RawValue, client};
use shardgate_testkit::PgServer;

const TABLE: &str = "[[tables]]\nname = \"t\"\nshard_key = \"k\"\nkey_type = \"bigint\"\n";
const SCHEMA: &str =
    "CREATE TABLE t (k bigint, id int, g text, v numeric(10,2), PRIMARY KEY (k, id))";

fn rows() -> String {
    (0..600)
        .map(|i| {
            let v = if i % 9 == 0 {
                "NULL".to_string()
            } else {
                format!("{}.{:02}", i % 50 - 20, i % 100)
            };
            format!("({}, {i}, 'g{}', {v})", i % 41, i % 7)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn plain() -> (PgServer, tokio_postgres::Client) {
    let one = PgServer::start().unwrap();
    let (c, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=app",
            one.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    (one, c)
}

/// One PostgreSQL and shardgate (`c`), each with table t and its rows:
/// the PostgreSQL server, a client of it and a client of shardgate.
async fn loaded(c: &PgCluster) -> (PgServer, tokio_postgres::Client, tokio_postgres::Client) {
    let (one_server, one) = plain().await;
    let sg = client(c.sg.port()).await;
    for db in [&sg, &one] {
        db.batch_execute(SCHEMA).await.unwrap();
        db.batch_execute(&format!("INSERT INTO t VALUES {}", rows()))
            .await
            .unwrap();
    }
    (one_server, one, sg)
}

fn text(rows: &[tokio_postgres::Row]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| format!("{:?}", r.get::<_, Option<String>>(i)))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_with_parameters_limits_and_transactions() {
    let c = PgCluster::start_with(3, "max_merge_rows = 100\nmax_merge_bytes = 4000\n", TABLE);
    let (_one, one, sg) = loaded(&c).await;

    // Parameters in WHERE, HAVING and LIMIT, typed by the statement.
    let q = "SELECT g::text, count(*)::text, sum(v)::text, avg(v)::text FROM t WHERE id > $1 GROUP BY g HAVING count(*) > $2 ORDER BY g LIMIT $3";
    for (a, b, l) in [(10i32, 5i64, 3i64), (300, 60, 10), (0, 0, 1)] {
        let want = one.query(q, &[&a, &b, &l]).await.unwrap();
        let got = sg.query(q, &[&a, &b, &l]).await.unwrap();
        assert_eq!(text(&got), text(&want), "{q} with {a}, {b}, {l}");
    }
    // LIMIT and OFFSET parameters whose sum passes bigint (the shards'
    // LIMIT is capped, as PostgreSQL takes them); NULL is no limit.
    let q =
        "SELECT id::text FROM t WHERE id > $1 ORDER BY v DESC NULLS LAST, id LIMIT $2 OFFSET $3";
    for (l, o) in [
        (Some(i64::MAX), 5i64),
        (Some(i64::MAX - 1), i64::MAX),
        (None, 7),
        (Some(3), i64::MAX),
    ] {
        let want = one.query(q, &[&0i32, &l, &o]).await.unwrap();
        let got = sg.query(q, &[&0i32, &l, &o]).await.unwrap();
        assert_eq!(text(&got), text(&want), "{q} with {l:?}, {o}");
    }
    // A key list with bind parameters (binary) spanning shards: each shard
    // gets only its own keys, in plain scatters, merges and aggregations.
    for q in [
        "SELECT k::text, id::text, v::text FROM t WHERE k IN ($1, $2, $3, $4) AND id > $5",
        "SELECT k::text, id::text FROM t WHERE k IN ($1, $2, $3, $4) AND id > $5 ORDER BY v DESC NULLS LAST, id LIMIT 7",
        "SELECT g::text, count(*)::text, sum(v)::text FROM t WHERE k IN ($1, $2, $3, $4) AND id > $5 GROUP BY g",
        "SELECT count(DISTINCT g)::text FROM t WHERE (k = $1 OR k = $2 OR k = $3 OR k = $4) AND id > $5",
    ] {
        for keys in [[1i64, 2, 3, 40], [5, 5, 17, 33], [0, 8, 16, 24]] {
            let args: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&keys[0], &keys[1], &keys[2], &keys[3], &100i32];
            let mut want = text(&one.query(q, &args).await.unwrap());
            let mut got = text(&sg.query(q, &args).await.unwrap());
            if !q.contains("ORDER BY") {
                want.sort();
                got.sort();
            }
            assert_eq!(got, want, "{q} with {keys:?}");
        }
    }
    // An array parameter of keys (binary int8[] and text[] forms).
    for q in [
        "SELECT k::text, id::text FROM t WHERE k = ANY($1) AND id > $2",
        "SELECT count(*)::text, sum(v)::text FROM t WHERE k = ANY($1) AND id > $2",
        "SELECT k::text, id::text FROM t WHERE k = ANY($1) AND id > $2 ORDER BY id DESC LIMIT 4",
    ] {
        for keys in [vec![1i64, 2, 3, 40], vec![5], vec![], vec![7, 7, 8]] {
            let args: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&keys, &100i32];
            let mut want = text(&one.query(q, &args).await.unwrap());
            let mut got = text(&sg.query(q, &args).await.unwrap());
            if !q.contains("ORDER BY") {
                want.sort();
                got.sort();
            }
            assert_eq!(got, want, "{q} with {keys:?}");
        }
    }
    let plan: Vec<String> = sg
        .simple_query("EXPLAIN SELECT id FROM t WHERE k = ANY('{5}')")
        .await
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert!(
        plan[0].starts_with("Route"),
        "one shard for one key: {plan:?}"
    );
    let plan: Vec<String> = sg
        .simple_query("EXPLAIN SELECT id FROM t WHERE k IN (1, 2, 3, 40) ORDER BY id")
        .await
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("keys split per shard")),
        "{plan:?}"
    );
    // A write over a key list spanning shards, outside a transaction.
    let q = "UPDATE t SET v = v + 1 WHERE k IN ($1, $2, $3) AND id < $4";
    for db in [&sg, &one] {
        let n = db
            .execute(q, &[&3i64, &4i64, &39i64, &200i32])
            .await
            .unwrap();
        assert!(n > 0);
    }
    let q = "SELECT k::text, id::text, v::text FROM t ORDER BY k, id";
    assert_eq!(
        text(&sg.query(q, &[]).await.unwrap()),
        text(&one.query(q, &[]).await.unwrap())
    );

    // EXPLAIN shows the partial and the final query.
    let plan: Vec<String> = sg
        .simple_query("EXPLAIN SELECT g, count(*) FROM t GROUP BY g")
        .await
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert!(plan[0].starts_with("Aggregate"), "{plan:?}");
    assert!(plan.iter().any(|l| l.contains("GROUP BY g")), "{plan:?}");

    // More partial rows than max_merge_rows: a clear error, then the
    // session works on.
    let e = sg
        .simple_query("SELECT DISTINCT id FROM t")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "54000", "{e}");
    let n: i64 = sg
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 600);

    // Few rows but many bytes: the byte limit stops it.
    let e = sg
        .simple_query("SELECT string_agg(repeat(g, 300), ',') FROM t WHERE id < 40")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "54000", "{e}");
    let msg = e.as_db_error().unwrap().message().to_string();
    assert!(msg.contains("max_merge_bytes"), "{msg}");

    // Inside a transaction: the aggregate sees the transaction's own
    // uncommitted row.
    sg.batch_execute("BEGIN").await.unwrap();
    sg.batch_execute("INSERT INTO t VALUES (1, 10001, 'new', 1.00)")
        .await
        .unwrap();
    let n: i64 = sg
        .query_one("SELECT count(*) FROM t WHERE g = 'new'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the transaction's own row is counted");
    sg.batch_execute("ROLLBACK").await.unwrap();
    let n: i64 = sg
        .query_one("SELECT count(*) FROM t WHERE g = 'new'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "rolled back");

    // An error raised by the final query (division by zero in HAVING)
    // reaches the client with PostgreSQL's SQLSTATE; the session goes on.
    let e = sg
        .simple_query("SELECT g FROM t GROUP BY g HAVING sum(v) / 0 > 1")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "22012", "{e}");
    let e = one
        .simple_query("SELECT g FROM t GROUP BY g HAVING sum(v) / 0 > 1")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "22012");
    // In a transaction, the failure aborts it as PostgreSQL would.
    sg.batch_execute("BEGIN").await.unwrap();
    assert!(
        sg.simple_query("SELECT g FROM t GROUP BY g HAVING sum(v) / 0 > 1")
            .await
            .is_err()
    );
    let e = sg.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "25P02");
    sg.batch_execute("ROLLBACK").await.unwrap();
    let n: i64 = sg
        .query_one("SELECT count(DISTINCT g) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 7);
    assert!(c.sg.log().lines().all(|l| !l.contains("panicked")));
}

/// Binary bind parameters of the common types (as asyncpg and pgjdbc send
/// them) in statements shardgate rewrites across shards (their parameters
/// become literals): the values PostgreSQL itself sends in binary, compared
/// with one PostgreSQL given the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_parameters_of_common_types_in_rewritten_statements() {
    let c = PgCluster::start(3, "");
    let (_one, one) = plain().await;
    let sg = client(c.sg.port()).await;
    let schema = "CREATE TABLE b (k bigint PRIMARY KEY, n numeric(12,3), d date, ts timestamp, \
                  tz timestamptz, t time, tt timetz, iv interval, u uuid, by bytea, j jsonb, \
                  r real, f float8, c char(3))";
    let fill = "INSERT INTO b SELECT g, g * 1.125 - 40, DATE '2000-01-01' + g * 37 - 3000, \
                TIMESTAMP '1999-12-31 23:59:59.5' + g * INTERVAL '17 hours 3.25 seconds', \
                TIMESTAMPTZ '2024-03-10 12:00:00+05:30' - g * INTERVAL '9 days 1 microsecond', \
                TIME '00:00:00.000001' + g * INTERVAL '7 minutes', \
                TIMETZ '10:00:00-03:30' + g * INTERVAL '5 minutes', \
                g * INTERVAL '1 mon -2 days 3.5 seconds' - INTERVAL '30 mons', \
                md5(g::text)::uuid, decode(md5(g::text), 'hex'), jsonb_build_object('g', g), \
                g / 7.0, g / 3.0, 'c' || g % 10 FROM generate_series(1, 200) g";
    one.batch_execute(schema).await.unwrap();
    one.batch_execute(fill).await.unwrap();
    sg.batch_execute(schema).await.unwrap();
    sg.simple_query("SELECT shardgate.shard_table('b', 'k')")
        .await
        .unwrap();
    sg.batch_execute(fill).await.unwrap();
    for col in [
        "n", "d", "ts", "tz", "t", "tt", "iv", "u", "by", "j", "r", "f", "c",
    ] {
        // Values from the table and special ones, as PostgreSQL sends them.
        let mut values: Vec<Vec<u8>> = Vec::new();
        for q in [
            format!("SELECT {col} FROM b WHERE k IN (1, 77, 200) ORDER BY k"),
            match col {
                "n" => "SELECT v FROM (VALUES ('NaN'::numeric), (0.000012), (-12345678.9)) x(v)".into(),
                "d" => "SELECT v FROM (VALUES ('infinity'::date), ('0044-03-15 BC'), ('1970-01-01')) x(v)".into(),
                "tz" | "ts" => format!("SELECT v::{} FROM (VALUES ('-infinity'), ('1900-02-28 23:00:00.25+00')) x(v)", if col == "ts" { "timestamp" } else { "timestamptz" }),
                "f" => "SELECT v FROM (VALUES ('Infinity'::float8), (-0.1), (1e300)) x(v)".into(),
                _ => format!("SELECT {col} FROM b WHERE k = 5"),
            },
        ] {
            for r in one.query(&q, &[]).await.unwrap() {
                values.push(r.get::<_, RawValue>(0).0);
            }
        }
        for op in ["=", "<=", "IS DISTINCT FROM"] {
            if matches!(col, "j" | "tt") && op == "<=" {
                continue;
            }
            let q = format!("SELECT count(*), count(DISTINCT k % 5) FROM b WHERE {col} {op} $1");
            for v in &values {
                let p = RawValue(v.clone());
                let want = one.query_one(&q, &[&p]).await.unwrap();
                let got = sg
                    .query_one(&q, &[&p])
                    .await
                    .unwrap_or_else(|e| panic!("{q} with {v:?}: {e}"));
                assert_eq!(
                    (got.get::<_, i64>(0), got.get::<_, i64>(1)),
                    (want.get::<_, i64>(0), want.get::<_, i64>(1)),
                    "{q} with {v:?}"
                );
            }
        }
        // The same values as one binary array parameter.
        if !matches!(col, "j" | "tt" | "c" | "by" | "t" | "iv" | "r" | "f") {
            let q = format!("SELECT count(*), min(k) FROM b WHERE {col} = ANY($1)");
            let arr: Vec<u8> = one
                .query_one(
                    &format!("SELECT array_agg({col} ORDER BY k) FROM b WHERE k < 20"),
                    &[],
                )
                .await
                .unwrap()
                .get::<_, RawValue>(0)
                .0;
            let p = RawValue(arr);
            let want = one.query_one(&q, &[&p]).await.unwrap();
            let got = sg
                .query_one(&q, &[&p])
                .await
                .unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(
                (got.get::<_, i64>(0), got.get::<_, Option<i64>>(1)),
                (want.get::<_, i64>(0), want.get::<_, Option<i64>>(1)),
                "{q}"
            );
        }
    }
}

/// GROUP BY a name that is both an output column and a column of the
/// table: PostgreSQL groups by the table's column. shardgate knows the
/// columns of tables created through it, and follows ALTER TABLE's added,
/// renamed and dropped columns (a renamed or dropped one is an output name
/// again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_a_name_that_is_also_a_column() {
    let c = PgCluster::start_with(3, "", TABLE);
    let (_one, one, sg) = loaded(&c).await;
    async fn both(sg: &tokio_postgres::Client, one: &tokio_postgres::Client, q: &str) {
        let a = sg.query(q, &[]).await;
        let b = one.query(q, &[]).await;
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(text(&a), text(&b), "{q}"),
            (Err(a), Err(b)) => assert_eq!(a.code(), b.code(), "{q}: {a} / {b}"),
            (a, b) => panic!("{q}: shardgate {a:?}, PostgreSQL {b:?}"),
        }
    }
    let queries = |col: &str| {
        vec![
            format!("SELECT 1::text AS {col}, count(*)::text FROM t GROUP BY {col}"),
            format!("SELECT count(*)::text AS {col} FROM t GROUP BY {col}"),
            format!(
                "SELECT 'x' AS {col}, count(*)::text, sum(v)::text FROM t GROUP BY ROLLUP ({col}) ORDER BY 2"
            ),
        ]
    };
    for q in queries("g") {
        both(&sg, &one, &q).await;
    }
    for db in [&sg, &one] {
        db.batch_execute("ALTER TABLE t ADD COLUMN h text; UPDATE t SET h = 'h' || (id % 3)")
            .await
            .unwrap();
    }
    for q in queries("h") {
        both(&sg, &one, &q).await;
    }
    for db in [&sg, &one] {
        db.batch_execute("ALTER TABLE t RENAME COLUMN h TO hh")
            .await
            .unwrap();
    }
    for q in queries("h").into_iter().chain(queries("hh")) {
        both(&sg, &one, &q).await;
    }
    for db in [&sg, &one] {
        db.batch_execute("ALTER TABLE t DROP COLUMN hh")
            .await
            .unwrap();
    }
    for q in queries("hh") {
        both(&sg, &one, &q).await;
    }
    assert!(c.sg.log().lines().all(|l| !l.contains("panicked")));
}
