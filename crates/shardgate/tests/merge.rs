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
        "[[tables]]\nname = \"items\"\nshard_key = \"cust\"\nkey_type = \"bigint\"\n",
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
                .unwrap_or_else(|e| panic!("{q}: {e}")),
        );
        assert_eq!(got, want, "simple protocol: {q}");
        // Extended protocol, binary results, compared byte for byte.
        let want = one.query(*q, &[]).await.unwrap();
        let got = sg
            .query(*q, &[])
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
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
    // A schema change under a cached description: PostgreSQL reports the
    // changed result type once, then the query works again.
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
    assert!(
        ok >= 1,
        "the merged query works again after the schema change"
    );
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
    // What cannot be merged yet is still refused.
    for q in [
        "SELECT * FROM items ORDER BY n FETCH FIRST 3 ROWS WITH TIES",
        "SELECT id, rank() OVER (ORDER BY n) FROM items",
    ] {
        let e = sg.simple_query(q).await.unwrap_err();
        assert_eq!(e.code().unwrap().code(), "0A000", "{q}");
    }
    assert_eq!(checked, QUERIES.len());
}
