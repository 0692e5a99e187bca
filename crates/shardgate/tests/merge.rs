//! Differential tests of multi-shard ORDER BY, LIMIT and OFFSET: each query
//! runs through shardgate over four PostgreSQL shards and on one plain
//! PostgreSQL holding the same rows, in the simple protocol (text) and the
//! extended protocol (binary); the answers must be equal, in order.

mod common;

use common::{PgCluster, RawValue, client};
use shardgate_testkit::PgServer;
use tokio_postgres::SimpleQueryMessage;

const SCHEMA: &str = "CREATE TABLE items (id bigint PRIMARY KEY, cust bigint, n int, f float8, d numeric, t text, ts timestamp, b bool)";

fn rows_sql() -> Vec<String> {
    let texts = [
        "apple", "Apple", "äpfel", "zebra", "", "émile", "Zulu", "a b", "ab", "日本",
    ];
    let floats = [
        "1.5",
        "-0.0",
        "0",
        "'NaN'",
        "'Infinity'",
        "'-Infinity'",
        "-2.25",
        "1e10",
        "3.14159",
        "NULL",
    ];
    (0..200i64)
        .map(|i| {
            let n = if i % 11 == 0 {
                "NULL".to_string()
            } else {
                ((i * 37) % 23 - 11).to_string()
            };
            let d = if i % 13 == 0 {
                "NULL".to_string()
            } else {
                format!("{}.{}", (i * 7) % 50 - 25, i % 10)
            };
            let t = if i % 17 == 0 {
                "NULL".to_string()
            } else {
                format!("'{}'", texts[(i % 10) as usize])
            };
            let ts = if i % 19 == 0 {
                "NULL".to_string()
            } else {
                format!(
                    "'20{:02}-0{}-1{} 0{}:00:00'",
                    i % 30,
                    i % 9 + 1,
                    i % 10,
                    i % 10
                )
            };
            let b = ["true", "false", "NULL"][(i % 3) as usize];
            format!(
                "({i}, {}, {n}, {}, {d}, {t}, {ts}, {b})",
                i % 40 + 1,
                floats[(i % 10) as usize]
            )
        })
        .collect()
}

const QUERIES: &[&str] = &[
    "SELECT * FROM items ORDER BY n, id",
    "SELECT * FROM items ORDER BY n DESC, id",
    "SELECT * FROM items ORDER BY n NULLS FIRST, id DESC",
    "SELECT * FROM items ORDER BY n DESC NULLS LAST, id",
    "SELECT * FROM items ORDER BY f, id",
    "SELECT * FROM items ORDER BY f DESC, id",
    "SELECT * FROM items ORDER BY d DESC, id",
    "SELECT * FROM items ORDER BY d NULLS FIRST, id",
    "SELECT * FROM items ORDER BY t, id",
    "SELECT * FROM items ORDER BY t DESC, id DESC",
    "SELECT * FROM items ORDER BY ts, id",
    "SELECT * FROM items ORDER BY b, n, id",
    "SELECT * FROM items ORDER BY id LIMIT 10",
    "SELECT * FROM items ORDER BY id LIMIT 10 OFFSET 5",
    "SELECT * FROM items ORDER BY id OFFSET 190",
    "SELECT * FROM items ORDER BY id DESC LIMIT 0",
    "SELECT id, t FROM items ORDER BY n + 1, id",
    "SELECT id, t FROM items ORDER BY d, ts, id",
    "SELECT id AS x, t FROM items ORDER BY x DESC LIMIT 25",
    "SELECT t, id FROM items ORDER BY 2 DESC LIMIT 30",
    "SELECT * FROM items WHERE cust IN (1, 2, 3) ORDER BY id DESC LIMIT 7",
    "SELECT * FROM items WHERE n > 0 ORDER BY n, f, id LIMIT 40 OFFSET 3",
    "SELECT concat_ws('|', id, t) FROM items ORDER BY t DESC, id",
    "SELECT * FROM items WHERE cust = 5 ORDER BY id LIMIT 3",
    // A window across shards: one shard computes it over the raw rows.
    "SELECT id, rank() OVER (ORDER BY n) AS r FROM items ORDER BY r, id",
];

fn text_rows(msgs: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_limit_offset_match_one_postgres() {
    let c = PgCluster::start(
        4,
        "[[tables]]\nname = \"items\"\nshard_key = \"cust\"\nkey_type = \"bigint\"\n\
         [[tables]]\nname = \"ranged\"\nshard_key = [\"id\"]\nstrategy = \"range\"\nkey_type = \"bigint\"\n\
         ranges = [{ shard = \"s0\", to = 1001 }, { shard = \"s1\", to = 2001 }, { shard = \"s2\", to = 3001 }, { shard = \"s3\" }]\n",
    );
    let single = PgServer::start().unwrap();
    let sg = client(c.sg.port()).await;
    let (one, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=app",
            single.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let rows = rows_sql();
    for db in [&sg, &one] {
        db.batch_execute(SCHEMA).await.unwrap();
        for chunk in rows.chunks(50) {
            db.batch_execute(&format!("INSERT INTO items VALUES {}", chunk.join(", ")))
                .await
                .unwrap();
        }
    }
    c.guard("items", "cust");
    let mut checked = 0;
    for q in QUERIES {
        // Simple protocol, text.
        let want = text_rows(&one.simple_query(q).await.unwrap());
        let got = text_rows(
            &sg.simple_query(q)
                .await
                .unwrap_or_else(|e| panic!("{q}: {e:?}")),
        );
        assert_eq!(got, want, "simple protocol: {q}");
        // Extended protocol, binary results, compared byte for byte.
        let want = one.query(*q, &[]).await.unwrap();
        let got = sg
            .query(*q, &[])
            .await
            .unwrap_or_else(|e| panic!("{q}: {e:?}"));
        assert_eq!(got.len(), want.len(), "extended protocol: {q}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.len(), w.len(), "{q}");
            for i in 0..g.len() {
                let gv: Option<Vec<u8>> = g.get::<_, Option<RawValue>>(i).map(|v| v.0);
                let wv: Option<Vec<u8>> = w.get::<_, Option<RawValue>>(i).map(|v| v.0);
                assert_eq!(gv, wv, "extended protocol, column {i}: {q}");
            }
        }
        checked += 1;
    }
    // Which variant ran, seen in the shards' last statements
    // (pg_stat_activity): keys the result returns in a form that orders
    // exactly are read from it (the lean SQL, no hidden column); a float
    // in text does not order exactly, so it is fetched hidden, in binary;
    // in binary it is read from the result.
    let (shard0, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=app",
            c.shards[0].port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let last_on_shard = |marker: &'static str| {
        let shard0 = &shard0;
        async move {
            let rows = shard0
                .query(
                    "SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'",
                    &[&marker],
                )
                .await
                .unwrap();
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    for (q, marker, binary, lean) in [
        (
            "SELECT * FROM items WHERE id <> -101 ORDER BY n, id LIMIT 3",
            "-101",
            false,
            true,
        ),
        (
            "SELECT * FROM items WHERE id <> -102 ORDER BY d DESC, t, id LIMIT 3",
            "-102",
            false,
            true,
        ),
        (
            "SELECT * FROM items WHERE id <> -103 ORDER BY f, id LIMIT 3",
            "-103",
            false,
            false,
        ),
        (
            "SELECT * FROM items WHERE id <> -104 ORDER BY f, id LIMIT 3",
            "-104",
            true,
            true,
        ),
        (
            "SELECT id AS x, n FROM items WHERE id <> -105 ORDER BY 2, x LIMIT 3",
            "-105",
            false,
            true,
        ),
    ] {
        if binary {
            sg.query(q, &[]).await.unwrap();
        } else {
            sg.simple_query(q).await.unwrap();
        }
        let ran = last_on_shard(marker).await;
        assert!(!ran.is_empty(), "{q}: not seen on shard 0");
        assert!(
            ran.iter().all(|s| s.contains("sg_sort") != lean),
            "{q}: expected the {} variant, shard 0 ran {ran:?}",
            if lean { "lean" } else { "canonical" }
        );
    }

    // A large LIMIT + OFFSET (>= 1000) is fetched from each shard in
    // batches, about its share first: when the first rows all live on one
    // shard (ids 1-1000 on s0, ...), that shard is asked again until the
    // merge has its rows; the others stop early. Every answer equals one
    // PostgreSQL's, in order, in text and binary (small limits too).
    for db in [&sg, &one] {
        db.batch_execute(
            "CREATE TABLE ranged (id bigint PRIMARY KEY, v int, t text); \
             INSERT INTO ranged SELECT g, (g * 7) % 13, 'r' || g FROM generate_series(1, 4000) g",
        )
        .await
        .unwrap();
    }
    for q in [
        "SELECT * FROM ranged ORDER BY id LIMIT 150",
        "SELECT * FROM ranged ORDER BY id LIMIT 1500",
        "SELECT * FROM ranged ORDER BY id LIMIT 100 OFFSET 950",
        "SELECT * FROM ranged ORDER BY id LIMIT 10 OFFSET 2500",
        "SELECT * FROM ranged ORDER BY id DESC LIMIT 900 OFFSET 37",
        "SELECT id, t FROM ranged ORDER BY v, id LIMIT 400 OFFSET 1200",
        "SELECT * FROM ranged ORDER BY id LIMIT 5000",
        "SELECT * FROM ranged WHERE id % 1000 < 3 ORDER BY id LIMIT 7",
        "SELECT * FROM ranged ORDER BY v DESC, id LIMIT 1 OFFSET 3999",
    ] {
        let want = text_rows(&one.simple_query(q).await.unwrap());
        let got = sg
            .simple_query(q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e:?}"));
        assert_eq!(text_rows(&got), want, "simple protocol: {q}");
        let want: Vec<(i64, Option<String>)> = one
            .query(q, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("id"), r.get("t")))
            .collect();
        let got: Vec<(i64, Option<String>)> = sg
            .query(q, &[])
            .await
            .unwrap_or_else(|e| panic!("{q}: {e:?}"))
            .iter()
            .map(|r| (r.get("id"), r.get("t")))
            .collect();
        assert_eq!(got, want, "extended protocol: {q}");
    }
    // A failure in the middle of a batched stream (division by zero at id
    // 1100, on s1, after s0's rows) reaches the client, and the session
    // goes on.
    let q = "SELECT id, 1 / (id - 1100) FROM ranged ORDER BY id LIMIT 1500";
    let Err(e) = sg.simple_query(q).await else {
        panic!("{q}: no division by zero")
    };
    assert_eq!(e.code().unwrap().code(), "22012", "{e:?}");
    let again = "SELECT * FROM ranged ORDER BY id LIMIT 3 OFFSET 2998";
    assert_eq!(
        text_rows(&sg.simple_query(again).await.unwrap()),
        text_rows(&one.simple_query(again).await.unwrap())
    );

    // A schema change under a cached description: the shards report the
    // changed result type of their prepared statements; shardgate
    // prepares them again and answers, as one PostgreSQL answers a query
    // text after DDL.
    sg.batch_execute("ALTER TABLE items ADD COLUMN extra int")
        .await
        .unwrap();
    one.batch_execute("ALTER TABLE items ADD COLUMN extra int")
        .await
        .unwrap();
    let q = "SELECT * FROM items ORDER BY id LIMIT 5";
    let want = text_rows(&one.simple_query(q).await.unwrap());
    let mut ok = 0;
    for _ in 0..6 {
        if let Ok(m) = sg.simple_query(q).await {
            assert_eq!(text_rows(&m), want);
            ok += 1;
        }
    }
    assert_eq!(ok, 6, "the merged query works after the schema change");
    // Also for a merge with a hidden key and an aggregate.
    for q in [
        "SELECT id, t FROM items ORDER BY n + 1, id LIMIT 4",
        "SELECT n, count(*) FROM items GROUP BY n ORDER BY n",
    ] {
        let want = text_rows(&one.simple_query(q).await.unwrap());
        assert_eq!(text_rows(&sg.simple_query(q).await.unwrap()), want, "{q}");
        for db in [&sg, &one] {
            db.batch_execute("ALTER TABLE items ALTER COLUMN n TYPE bigint")
                .await
                .unwrap();
        }
        let want = text_rows(&one.simple_query(q).await.unwrap());
        let got = sg
            .simple_query(q)
            .await
            .unwrap_or_else(|e| panic!("{q} after ALTER COLUMN TYPE: {e:?}"));
        assert_eq!(text_rows(&got), want, "{q}");
        for db in [&sg, &one] {
            db.batch_execute("ALTER TABLE items ALTER COLUMN n TYPE int")
                .await
                .unwrap();
        }
    }
    // Parameters in a merged query.
    let st = sg
        .prepare("SELECT id FROM items WHERE n > $1 ORDER BY n DESC, id LIMIT 5")
        .await
        .unwrap();
    let got: Vec<i64> = sg
        .query(&st, &[&3i32])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let want: Vec<i64> = one
        .query(
            "SELECT id FROM items WHERE n > $1 ORDER BY n DESC, id LIMIT 5",
            &[&3i32],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(got, want);
    // LIMIT, OFFSET and FETCH FIRST given by parameters (as ORMs and
    // drivers send them), in text and binary, of several integer types;
    // NULL means no limit / no offset; negative ones are PostgreSQL's
    // errors.
    let ids =
        |rows: Vec<tokio_postgres::Row>| -> Vec<i64> { rows.iter().map(|r| r.get(0)).collect() };
    for (q, params) in [
        (
            "SELECT id FROM items ORDER BY n DESC, id LIMIT $1",
            vec![Some(7i64), None],
        ),
        (
            "SELECT id FROM items ORDER BY n DESC, id LIMIT $1 OFFSET $2",
            vec![Some(4), Some(3)],
        ),
        (
            "SELECT id FROM items ORDER BY n DESC, id LIMIT $1 OFFSET $2",
            vec![None, Some(5)],
        ),
        (
            "SELECT id FROM items ORDER BY n DESC, id LIMIT $1 OFFSET $2",
            vec![Some(6), None],
        ),
        (
            "SELECT id FROM items WHERE id > $2 ORDER BY id OFFSET $2 ROWS FETCH FIRST $1 ROWS ONLY",
            vec![Some(3), Some(2)],
        ),
        (
            "SELECT id FROM items ORDER BY id OFFSET 2 FETCH FIRST ROW ONLY",
            vec![],
        ),
    ] {
        let n = (1..=2).filter(|i| q.contains(&format!("${i}"))).count();
        let p: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params[..n]
            .iter()
            .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let want = ids(one.query(q, &p).await.unwrap());
        let got = ids(sg
            .query(q, &p)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e:?}")));
        assert_eq!(got, want, "{q} {params:?}");
        // In text, through a simple query with the values written in.
        let mut text = q.to_string();
        for (i, v) in params[..n].iter().enumerate().rev() {
            let lit = v.map_or("NULL".to_string(), |v| v.to_string());
            text = text.replace(&format!("${}", i + 1), &lit);
        }
        let want = text_rows(&one.simple_query(&text).await.unwrap());
        assert_eq!(
            text_rows(&sg.simple_query(&text).await.unwrap()),
            want,
            "{text}"
        );
    }
    let q = "SELECT id FROM items ORDER BY id LIMIT $1::int OFFSET $2::smallint";
    assert_eq!(
        ids(sg.query(q, &[&2i32, &1i16]).await.unwrap()),
        ids(one.query(q, &[&2i32, &1i16]).await.unwrap())
    );
    for (q, code) in [
        ("SELECT id FROM items ORDER BY id LIMIT $1", "2201W"),
        ("SELECT id FROM items ORDER BY id OFFSET $1", "2201X"),
    ] {
        for db in [&sg, &one] {
            let e = db.query(q, &[&-1i64]).await.unwrap_err();
            assert_eq!(e.code().unwrap().code(), code, "{q}");
        }
    }
    // WITH TIES: the rows tied with the last (compared as multisets: the
    // order among ties is any).
    for q in [
        "SELECT * FROM items ORDER BY n FETCH FIRST 3 ROWS WITH TIES",
        "SELECT n, t FROM items ORDER BY n DESC NULLS LAST FETCH FIRST 7 ROWS WITH TIES",
    ] {
        let mut got = text_rows(&sg.simple_query(q).await.unwrap());
        let mut want = text_rows(&one.simple_query(q).await.unwrap());
        got.sort();
        want.sort();
        assert_eq!(got, want, "{q}");
    }
    // A correlated subquery over the same table off the key: both tables
    // run first (the subquery's aggregate may be the outer query's as far
    // as the router can tell), the statement then runs on one shard.
    for q in ["SELECT * FROM items i WHERE n > (SELECT avg(n) FROM items j WHERE j.t = i.t)"] {
        let mut got = text_rows(&sg.simple_query(q).await.unwrap());
        let mut want = text_rows(&one.simple_query(q).await.unwrap());
        got.sort();
        want.sort();
        assert!(!want.is_empty(), "{q}");
        assert_eq!(got, want, "{q}");
    }
    assert_eq!(checked, QUERIES.len());

    // A FROM subquery that needs a merge (an ORM's eager load of a page,
    // LIMIT and OFFSET as typed bind parameters: SQLAlchemy on psycopg 3
    // and asyncpg) runs first; its rows go to the shards their key places.
    let page = "SELECT a.cust, i.id, i.n FROM (SELECT cust FROM items WHERE cust IS NOT NULL \
                GROUP BY cust ORDER BY cust LIMIT $1::INTEGER OFFSET $2::INTEGER) AS a \
                LEFT OUTER JOIN items i ON a.cust = i.cust ORDER BY a.cust, i.id";
    for (limit, offset) in [(3i32, 0i32), (4, 2), (0, 0)] {
        let want = one.query(page, &[&limit, &offset]).await.unwrap();
        let got = sg
            .query(page, &[&limit, &offset])
            .await
            .unwrap_or_else(|e| panic!("{page}: {e:?}"));
        let show = |rows: &[tokio_postgres::Row]| {
            rows.iter()
                .map(|r| {
                    (
                        r.get::<_, i64>(0),
                        r.get::<_, i64>(1),
                        r.get::<_, Option<i32>>(2),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(show(&got), show(&want), "LIMIT {limit} OFFSET {offset}");
        assert!(limit == 0 || !want.is_empty());
    }
    // Floats printed inexactly cannot be written back as literals: the
    // refusal says why.
    let floats = "SELECT a.f, i.id FROM (SELECT cust, f FROM items WHERE cust IS NOT NULL \
                  ORDER BY cust, id LIMIT 3) a JOIN items i ON a.cust = i.cust";
    assert!(!sg.simple_query(floats).await.unwrap().is_empty());
    sg.batch_execute("SET extra_float_digits = 0")
        .await
        .unwrap();
    let e = sg.simple_query(floats).await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "0A000", "{e:?}");
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("extra_float_digits"),
        "{e:?}"
    );
    sg.batch_execute("RESET extra_float_digits").await.unwrap();

    // Uncorrelated subqueries run first, their results written in as
    // literals; a value that looks like the router's marker, or like SQL,
    // stays a value.
    for db in [&sg, &one] {
        db.batch_execute(
            "INSERT INTO items (id, cust, n, t) VALUES (1000, 3, 7, 'sg_subquery_result_1'), (1001, 4, 8, 'x'' || current_user || ''')",
        )
        .await
        .unwrap();
    }
    for q in [
        "SELECT id FROM items WHERE n > (SELECT avg(n) FROM items) ORDER BY id",
        "SELECT (SELECT t FROM items WHERE id = 1001) AS a, (SELECT t FROM items WHERE id = 1000) AS b",
        "SELECT (SELECT max(n) FROM items), EXISTS (SELECT 1 FROM items WHERE n > 3), (SELECT t FROM items WHERE id = 1000)",
        "SELECT count(*) FROM items WHERE cust IN (SELECT cust FROM items WHERE n = 7)",
        "SELECT count(*) FROM items WHERE cust NOT IN (SELECT cust FROM items WHERE n > 1000)",
        "SELECT count(*) FROM items WHERE n NOT IN (SELECT n FROM items WHERE id < 30)",
        "SELECT count(*) FROM items WHERE NOT EXISTS (SELECT 1 FROM items WHERE n > 1000)",
        // PostgreSQL ignores an EXISTS subquery's select list.
        "SELECT count(*) FROM items WHERE EXISTS (SELECT 1 / (n - n) FROM items WHERE n = 3)",
    ] {
        let want = one.simple_query(q).await.unwrap();
        let got = sg
            .simple_query(q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e:?}"));
        assert_eq!(text_rows(&got), text_rows(&want), "{q}");
        let names = |m: &[SimpleQueryMessage]| -> Vec<String> {
            m.iter()
                .find_map(|m| match m {
                    SimpleQueryMessage::Row(r) => {
                        Some(r.columns().iter().map(|c| c.name().to_string()).collect())
                    }
                    _ => None,
                })
                .unwrap_or_default()
        };
        assert_eq!(names(&got), names(&want), "{q}");
    }
    // The same in the extended protocol, with bind parameters (binary, as
    // tokio-postgres sends them) inside and outside the subqueries: they
    // are written in as literals before the subqueries run.
    type P<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
    let (n5, n1000, cust3, id30, tname): (i32, i32, i64, i64, &str) =
        (5, 1000, 3, 30, "sg_subquery_result_1");
    let none: Option<i32> = None;
    let cases: Vec<(&str, Vec<P>)> = vec![
        (
            "SELECT id, n FROM items WHERE n > (SELECT avg(n) FROM items WHERE n < $1) AND cust <> $2 ORDER BY id",
            vec![&n1000, &cust3],
        ),
        (
            "SELECT count(*), sum(n) FROM items WHERE cust IN (SELECT cust FROM items WHERE n = $1 OR t = $2)",
            vec![&n5, &tname],
        ),
        (
            "SELECT (SELECT max(n) FROM items WHERE n < $1) AS m, EXISTS (SELECT 1 FROM items WHERE n > $1) AS e, $2::bigint AS k",
            vec![&n1000, &cust3],
        ),
        (
            "SELECT count(*) FROM items WHERE n NOT IN (SELECT n FROM items WHERE id < $1 AND n IS NOT NULL)",
            vec![&id30],
        ),
        (
            "SELECT id FROM items WHERE n > (SELECT min(n) FROM items WHERE n > $1) ORDER BY id LIMIT 3",
            vec![&none],
        ),
    ];
    for (q, params) in &cases {
        let want = one.query(*q, params).await.unwrap();
        let got = sg
            .query(*q, params)
            .await
            .unwrap_or_else(|e| panic!("{q} (extended): {e:?}"));
        let raw = |rows: &[tokio_postgres::Row]| -> Vec<Vec<Option<Vec<u8>>>> {
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.get::<_, Option<RawValue>>(i).map(|v| v.0))
                        .collect()
                })
                .collect()
        };
        assert_eq!(raw(&got), raw(&want), "{q} (extended)");
        if let (Some(g), Some(w)) = (got.first(), want.first()) {
            let names = |r: &tokio_postgres::Row| -> Vec<String> {
                r.columns().iter().map(|c| c.name().to_string()).collect()
            };
            assert_eq!(names(g), names(w), "{q} (extended): column names");
        }
    }
    // A write whose subquery runs first, with parameters: the same rows
    // changed.
    let upd = "UPDATE items SET n = n + $1 WHERE n > (SELECT avg(n) FROM items WHERE cust <> $2)";
    let want = one.execute(upd, &[&n5, &cust3]).await.unwrap();
    let got = sg.execute(upd, &[&n5, &cust3]).await.unwrap();
    assert_eq!(got, want, "{upd}");
    let check = "SELECT id, n FROM items ORDER BY id";
    let (g, w) = (
        sg.simple_query(check).await.unwrap(),
        one.simple_query(check).await.unwrap(),
    );
    assert_eq!(text_rows(&g), text_rows(&w), "{upd}: rows");

    // A subquery inside one run first runs first itself (nested); a
    // correlated one off the key reads its table first; `= ANY
    // (subquery)` runs first as an IN list: as one PostgreSQL.
    for q in [
        "SELECT id FROM items WHERE cust = ANY (SELECT cust FROM items WHERE n > 5) ORDER BY id",
        "SELECT id FROM items WHERE cust IN (SELECT cust FROM items WHERE n > (SELECT avg(n) FROM items)) ORDER BY id",
        "SELECT id FROM items i WHERE EXISTS (SELECT 1 FROM items j WHERE j.n = i.n + 100) ORDER BY id",
        "SELECT id FROM items i WHERE NOT EXISTS (SELECT 1 FROM items j WHERE j.n = i.n + 1) ORDER BY id",
    ] {
        let (g, w) = (
            sg.simple_query(q).await.unwrap(),
            one.simple_query(q).await.unwrap(),
        );
        assert_eq!(text_rows(&g), text_rows(&w), "{q}");
    }

    // What a literal could get wrong is refused: more than one row for a
    // scalar (PostgreSQL might not have evaluated it).
    for q in ["SELECT id FROM items WHERE n > (SELECT n FROM items WHERE n > 5)"] {
        let e = sg
            .simple_query(q)
            .await
            .err()
            .unwrap_or_else(|| panic!("{q}: answered"));
        assert_eq!(e.code().unwrap().code(), "0A000", "{q}: {e}");
    }
}

/// Text ordered under linguistic collations: an ICU default collation
/// (`en-US`, whose libc setting says `C`), a column with another ICU
/// collation (Swedish: `ä` after `z`) and one with `C`. Four shards (two
/// databases on each of two servers) against one database with the same
/// collations; `max_merge_rows = 60` tells a merge done by a shard (which
/// holds the rows) from a streamed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_text_under_linguistic_collations_matches_one_postgres() {
    let servers = PgServer::start_many(2).unwrap();
    let create = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'";
    for s in &servers {
        for db in ["icu0", "icu1"] {
            s.psql(&format!("CREATE DATABASE {db} {create}")).unwrap();
        }
    }
    servers[0]
        .psql(&format!("CREATE DATABASE single {create}"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = "max_merge_rows = 60\n".to_string();
    for (i, (s, db)) in [(0, "icu0"), (0, "icu1"), (1, "icu0"), (1, "icu1")]
        .iter()
        .enumerate()
    {
        cfg.push_str(&format!(
            "[[shards]]\nname = \"s{i}\"\nurl = \"{}\"\n",
            servers[*s].url_db(db)
        ));
    }
    cfg.push_str("[[tables]]\nname = \"people\"\nshard_key = \"cust\"\nkey_type = \"bigint\"\n");
    let path = dir.path().join("shardgate.toml");
    std::fs::write(&path, cfg).unwrap();
    let data = dir.path().join("data");
    let sg_proc = shardgate_testkit::Shardgate::spawn(
        common::bin(),
        &[
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    )
    .unwrap();
    let sg = client(sg_proc.port()).await;
    let (one, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=single",
            servers[0].port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let texts = [
        "apple", "Apple", "äpfel", "Zebra", "zebra", "", "émile", "Emile", "a b", "ab", "a-b",
        "日本", "10", "9", "_x", "Öl", "ol",
    ];
    let rows: Vec<String> = (0..200i64)
        .map(|i| {
            let t = |k: i64| {
                if (i + k) % 19 == 0 {
                    "NULL".to_string()
                } else {
                    format!("'{}'", texts[((i * 7 + k) % texts.len() as i64) as usize])
                }
            };
            format!(
                "({i}, {}, {}, {}, {}, {}, {})",
                i % 40 + 1,
                t(0),
                t(3),
                t(5),
                t(11),
                (i * 37) % 23 - 11
            )
        })
        .collect();
    for db in [&sg, &one] {
        db.batch_execute(
            "CREATE TABLE people (id bigint PRIMARY KEY, cust bigint, name text, nick varchar(20), code text COLLATE \"C\", label text COLLATE \"sv-x-icu\", n int)",
        )
        .await
        .unwrap();
        for chunk in rows.chunks(50) {
            db.batch_execute(&format!("INSERT INTO people VALUES {}", chunk.join(", ")))
                .await
                .unwrap();
        }
    }
    let queries = [
        "SELECT * FROM people ORDER BY name, id LIMIT 12",
        "SELECT id, name FROM people ORDER BY name DESC NULLS LAST, id LIMIT 10 OFFSET 3",
        "SELECT id FROM people ORDER BY nick NULLS FIRST, id DESC LIMIT 10",
        "SELECT name, n FROM people ORDER BY n, name, id LIMIT 12",
        "SELECT * FROM people WHERE cust IN (1, 2, 3) ORDER BY name, id",
        // Swedish puts ä and ö after z.
        "SELECT id, label FROM people WHERE label <> '日本' ORDER BY label DESC NULLS LAST, id LIMIT 14",
        "SELECT id, label, name FROM people WHERE cust IN (1, 2, 3, 4, 5) ORDER BY label, name DESC, id",
        // The C column merges streamed: more rows than max_merge_rows.
        "SELECT id, code FROM people ORDER BY code, id",
        "SELECT id, code FROM people ORDER BY code DESC, n, id OFFSET 7",
        // Text expressions take their operands' collations.
        "SELECT id, lower(name) AS ln FROM people ORDER BY ln, id LIMIT 10",
        "SELECT id FROM people ORDER BY upper(label) DESC NULLS LAST, id LIMIT 10",
        "SELECT id, name FROM people ORDER BY name COLLATE \"C\", id",
        "SELECT id, code || 'x' FROM people ORDER BY code || 'x' DESC, id",
        "SELECT id, name FROM people WHERE n > 0 ORDER BY name COLLATE \"sv-x-icu\", id LIMIT 9",
    ];
    // A function that reads the shard's own rows.
    for db in [&sg, &one] {
        db.batch_execute(
            "CREATE FUNCTION nm(bigint) RETURNS text LANGUAGE sql STABLE AS $$ SELECT name FROM people WHERE id = $1 $$",
        )
        .await
        .unwrap();
    }
    for q in queries.iter().chain(&[
        // A cast to name keeps its operand's collation.
        "SELECT id, name::name FROM people ORDER BY 2, id LIMIT 8",
        "SELECT DISTINCT name::name FROM people WHERE cust <= 8 ORDER BY 1",
        // bit without a length keeps its length.
        "SELECT id, (B'101' | B'011') AS bits FROM people WHERE cust IN (1, 2) ORDER BY name, id",
        // A window's other expressions are computed by the shards.
        "SELECT id, nm(id), row_number() OVER (ORDER BY id) FROM people WHERE cust <= 8 ORDER BY id",
        "SELECT min(label), max(label), min(name) FROM people WHERE label <> '日本'",
        "SELECT label, count(*) FROM people WHERE cust <= 8 GROUP BY label ORDER BY label",
        "SELECT DISTINCT label FROM people WHERE cust <= 8 ORDER BY label",
        "SELECT string_agg(label, ',' ORDER BY label, id) FROM people WHERE n > 5",
    ]) {
        let q = *q;
        let want = text_rows(&one.simple_query(q).await.unwrap());
        let got = text_rows(
            &sg.simple_query(q)
                .await
                .unwrap_or_else(|e| panic!("{q}: {e:?}")),
        );
        assert!(!want.is_empty(), "{q}");
        assert_eq!(got, want, "simple protocol: {q}");
        let want = one.query(q, &[]).await.unwrap();
        let got = sg
            .query(q, &[])
            .await
            .unwrap_or_else(|e| panic!("{q}: {e:?}"));
        assert_eq!(got.len(), want.len(), "extended protocol: {q}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.columns().len(), w.columns().len(), "{q}");
            for (gc, wc) in g.columns().iter().zip(w.columns()) {
                assert_eq!((gc.name(), gc.type_()), (wc.name(), wc.type_()), "{q}");
            }
            for i in 0..g.len() {
                let gv: Option<Vec<u8>> = g.get::<_, Option<RawValue>>(i).map(|v| v.0);
                let wv: Option<Vec<u8>> = w.get::<_, Option<RawValue>>(i).map(|v| v.0);
                assert_eq!(gv, wv, "extended protocol, column {i}: {q}");
            }
        }
    }
    // With parameters.
    let q = "SELECT id, name FROM people WHERE n > $1 ORDER BY name DESC, id LIMIT 6";
    let got: Vec<(i64, Option<String>)> = sg
        .query(q, &[&2i32])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want: Vec<(i64, Option<String>)> = one
        .query(q, &[&2i32])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(got, want);
    // Rows that become literals travel as text under the session's output
    // settings.
    let settings =
        "SET datestyle = 'SQL, DMY'; SET timezone = 'Asia/Kolkata'; SET extra_float_digits = 0";
    for db in [&sg, &one] {
        db.batch_execute(
            "CREATE TABLE events (id bigint PRIMARY KEY, cust bigint, name text, ts timestamptz, f float8)",
        )
        .await
        .unwrap();
        db.batch_execute(settings).await.unwrap();
    }
    sg.batch_execute("SELECT shardgate.shard_table('events', 'cust')")
        .await
        .unwrap();
    one.batch_execute(
        "INSERT INTO events SELECT g, g % 7, (ARRAY['b', 'A', 'a', 'é'])[g % 4 + 1], timestamptz '2024-03-01 10:00:00+00' + g * interval '5 hours', 0.1 + 0.2 * g FROM generate_series(1, 20) g",
    )
    .await
    .unwrap();
    // (INSERT ... SELECT across shards is refused: rows one by one.)
    for g in 1..=20i64 {
        sg.batch_execute(&format!(
            "INSERT INTO events VALUES ({g}, {}, (ARRAY['b', 'A', 'a', 'é'])[{} + 1], timestamptz '2024-03-01 10:00:00+00' + {g} * interval '5 hours', 0.1 + 0.2 * {g})",
            g % 7,
            g % 4
        ))
        .await
        .unwrap();
    }
    // Values whose text the settings round or make ambiguous cannot travel
    // as literals: refused; others are answered as one PostgreSQL would
    // (the shards compute under the session's settings).
    for q in [
        "SELECT id, ts, f FROM events ORDER BY name, id LIMIT 12",
        "SELECT max(ts), min(f), sum(f) FROM events",
        "SELECT id, ts, row_number() OVER (ORDER BY ts DESC) FROM events ORDER BY id",
        "SELECT name, max(ts) FROM events GROUP BY name ORDER BY name",
    ] {
        let e = sg
            .simple_query(q)
            .await
            .err()
            .unwrap_or_else(|| panic!("{q}: answered under {settings}"));
        assert_eq!(e.code().unwrap().code(), "0A000", "{q}: {e}");
    }
    for q in [
        "SELECT id, name FROM events ORDER BY name, id LIMIT 9",
        "SELECT name, count(*), max(id) FROM events GROUP BY name ORDER BY name",
        "SELECT count(*) FROM events WHERE ts > '02/03/2024'",
        "SELECT ts::text AS t, count(*) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT id, ts::date, row_number() OVER (ORDER BY name, id) FROM events ORDER BY id",
    ] {
        let want = text_rows(&one.simple_query(q).await.unwrap());
        let got = text_rows(
            &sg.simple_query(q)
                .await
                .unwrap_or_else(|e| panic!("{q}: {e:?}")),
        );
        assert!(!want.is_empty(), "{q}");
        assert_eq!(got, want, "under {settings}: {q}");
    }
    // Settings the router does not track are seen too.
    sg.batch_execute("RESET datestyle; RESET extra_float_digits")
        .await
        .unwrap();
    let q = "SELECT sum(f) FROM events";
    assert!(sg.simple_query(q).await.is_ok());
    let e = sg
        .batch_execute(&format!("BEGIN; SET LOCAL extra_float_digits = 0; {q}"))
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "0A000", "{e}");
    sg.batch_execute("ROLLBACK; SET datestyle = 'SQL, DMY'")
        .await
        .unwrap();
    // The session keeps its own settings.
    let ds = text_rows(&sg.simple_query("SHOW datestyle").await.unwrap());
    assert_eq!(ds[0][0].as_deref(), Some("SQL, DMY"));
    let e = sg
        .simple_query("SELECT id FROM events WHERE f > (SELECT avg(f) FROM events)")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "0A000", "{e}");
    sg.batch_execute("RESET datestyle; RESET timezone; RESET extra_float_digits")
        .await
        .unwrap();
    // Sorted by a shard, the rows are held: past max_merge_rows the
    // statement fails cleanly (and the session goes on).
    let e = sg
        .simple_query("SELECT id, name FROM people ORDER BY name, id")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "54000", "{e}");
    let n = sg.simple_query("SELECT 1").await.unwrap();
    assert_eq!(text_rows(&n).len(), 1);
}

/// ORDER BY an enum across shards: by the labels' declared order (not
/// alphabetical), also after ALTER TYPE ... ADD VALUE BEFORE, as one
/// PostgreSQL orders them; in both protocols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_enum_matches_one_postgres() {
    let c = PgCluster::start(3, "");
    let sg = client(c.sg.port()).await;
    let single = shardgate_testkit::PgServer::start().unwrap();
    let (one, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=app",
            single.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for db in [&sg, &one] {
        db.batch_execute(
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); \
             ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok'; \
             CREATE TABLE feel (id bigint PRIMARY KEY, m mood, n int)",
        )
        .await
        .unwrap();
    }
    sg.batch_execute("SELECT shardgate.shard_table('feel', 'id')")
        .await
        .unwrap();
    for db in [&sg, &one] {
        for g in 1..=40i64 {
            let m = ["sad", "ok", "happy", "meh", "NULL"][(g % 5) as usize];
            let m = if m == "NULL" {
                m.to_string()
            } else {
                format!("'{m}'")
            };
            db.batch_execute(&format!("INSERT INTO feel VALUES ({g}, {m}, {})", g % 3))
                .await
                .unwrap();
        }
    }
    for q in [
        "SELECT id, m::text FROM feel ORDER BY m, id",
        "SELECT id, m::text FROM feel ORDER BY m DESC NULLS LAST, id LIMIT 12",
        "SELECT m::text, count(*) FROM feel GROUP BY m ORDER BY m",
        "SELECT id FROM feel ORDER BY n, m NULLS FIRST, id DESC",
    ] {
        let want = text_rows(&one.simple_query(q).await.unwrap());
        let got = text_rows(
            &sg.simple_query(q)
                .await
                .unwrap_or_else(|e| panic!("{q}: {e}")),
        );
        assert_eq!(got, want, "{q}");
        let rows = |r: Vec<tokio_postgres::Row>| -> Vec<String> {
            r.iter()
                .map(|r| format!("{:?}", r.get::<_, i64>(0)))
                .collect()
        };
        if q.starts_with("SELECT id") {
            let want = rows(one.query(q, &[]).await.unwrap());
            let got = rows(sg.query(q, &[]).await.unwrap());
            assert_eq!(got, want, "{q} (extended)");
        }
    }
}
