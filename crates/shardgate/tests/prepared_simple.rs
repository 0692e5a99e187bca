//! Simple-protocol statements that shardgate runs as prepared statements
//! on their shard (`prepare_simple`, on by default): every reply must be
//! the one PostgreSQL gives the client's own text, message for message
//! (row descriptions with types and typmods, rows, command tags, errors
//! with SQLSTATE, message and position), including the shapes a parameter
//! would change (column positions, typed literals, typmods, untyped
//! strings in the select list), DDL that changes a prepared statement's
//! result, and the cap on statements kept per shard connection.

mod common;

use common::{PgCluster, Raw};
use shardgate_testkit::PgServer;

/// The fields of an ErrorResponse a client acts on.
fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    for field in body.split(|b| *b == 0) {
        if let Some((&code, rest)) = field.split_first()
            && matches!(code, b'S' | b'C' | b'M' | b'P' | b'D' | b'H')
        {
            out.push((code, String::from_utf8_lossy(rest).into_owned()));
        }
    }
    out
}

/// The reply to a simple Query, with errors reduced to what clients see.
fn reply(r: &mut Raw, sql: &str) -> Vec<(u8, Vec<u8>)> {
    let mut q = sql.as_bytes().to_vec();
    q.push(0);
    r.send(&[Raw::msg(b'Q', &q)]);
    r.until(b'Z')
        .into_iter()
        .map(|(t, b)| {
            if t == b'E' || t == b'N' {
                (t, format!("{:?}", error_fields(&b)).into_bytes())
            } else {
                (t, b)
            }
        })
        .collect()
}

const SETUP: &[&str] = &[
    "CREATE TABLE t (x int PRIMARY KEY, s text, n numeric(8,2), v varchar(5), d date)",
    "INSERT INTO t SELECT g, 'row ' || g, g * 1.25, left('abcdefg', g % 6), DATE '2024-01-01' + g FROM generate_series(1, 20) g",
    "CREATE TABLE small (a smallint, b bigint)",
    "INSERT INTO small VALUES (1, 10), (2, 20), (3, NULL)",
];

const QUERIES: &[&str] = &[
    "SELECT 1",
    "SELECT 'abc'",
    "SELECT 'a' || 'b', 1.50, -5, 2147483647, 2147483648, 9223372036854775807, 9223372036854775808",
    "SELECT -2147483648, -9223372036854775808",
    "SELECT 2147483647 + 1",
    "SELECT x, s FROM t WHERE x = 5",
    "SELECT x, s FROM t WHERE x = 5;",
    "SELECT * FROM t WHERE x = 'abc'",
    "SELECT * FROM t WHERE x IN (1, 2, 3) ORDER BY x DESC",
    "SELECT x FROM t ORDER BY 1 DESC LIMIT 3",
    "SELECT x % 3, count(*) FROM t GROUP BY 1 ORDER BY 2 DESC, 1",
    "SELECT x FROM t ORDER BY 'a'",
    "SELECT x FROM t GROUP BY 'a'",
    "SELECT DISTINCT ON (1) x % 4, x FROM t ORDER BY 1, 2 DESC",
    "SELECT d + 1, date '2024-01-01' + 1, '2024-01-01'::date + 2 FROM t WHERE x = 3",
    "SELECT 1::numeric(10,2), 'abcdef'::varchar(3), n::numeric(6,1) FROM t WHERE x = 4",
    "SELECT v, n, d FROM t WHERE x BETWEEN 2 AND 4 ORDER BY x",
    "SELECT ARRAY['a', 'b'], '{1,2}'::int[], 'abc' = 'abc', length('héllo')",
    "SELECT s FROM t WHERE s LIKE 'row 1%' ORDER BY s",
    "SELECT 'a' UNION SELECT 'b' ORDER BY 1",
    "SELECT a, b FROM small WHERE a = 2 OR b = 10 ORDER BY a",
    "SELECT a + 1, b * 2 FROM small WHERE a < 3 ORDER BY 1",
    "SELECT 1 / 0",
    "SELECT 10 / (x - 5) FROM t ORDER BY x",
    "SELECT x FROM t WHERE x = 99",
    "SELECT '1' + '2'",
    "SELECT $1",
    "INSERT INTO t (x, s) VALUES (100, 'it''s')",
    "INSERT INTO t (x, s) VALUES (100, 'again')",
    "INSERT INTO t (x, s, n) VALUES (101, 'r', 3.14159) RETURNING x, s, n",
    "UPDATE t SET s = 'updated', n = n + 0.5 WHERE x = 101 RETURNING *",
    "DELETE FROM t WHERE x >= 100",
    "SELECT count(*), sum(n) FROM t",
];

/// Every query answers through shardgate exactly as PostgreSQL answers it
/// directly, with statements prepared on the shard where possible.
#[test]
fn simple_queries_answer_as_postgres_does() {
    let c = PgCluster::start(1, "");
    // The baseline: a separate plain PostgreSQL with the same data.
    let single = PgServer::start_many(1).unwrap().remove(0);
    for sql in SETUP {
        c.sg.psql(sql).unwrap();
        single.psql(sql).unwrap();
    }
    let mut via = Raw::connect(c.sg.port());
    let mut direct = Raw::connect_as(single.port(), "postgres");
    for round in 0..2 {
        // The second round runs on statements already prepared.
        for sql in QUERIES {
            let want = reply(&mut direct, sql);
            let got = reply(&mut via, sql);
            assert_eq!(
                got,
                want,
                "round {round}: {sql}\n got: {:?}\nwant: {:?}",
                lossy(&got),
                lossy(&want)
            );
        }
    }
    // The statements did run prepared (one client, so the pool hands back
    // the same shard connection).
    let prepared = reply(&mut via, "SELECT count(*) FROM pg_prepared_statements");
    let n = datarow_text(&prepared);
    assert!(n.parse::<i64>().unwrap() >= 10, "prepared: {n}");

    // DDL that changes a prepared statement's result: the next run answers
    // with the new columns, not "cached plan must not change result type".
    reply(&mut via, "SELECT * FROM small WHERE a = 1");
    for r in [&mut via, &mut direct] {
        reply(r, "ALTER TABLE small ADD COLUMN c text DEFAULT 'new'");
    }
    let got = reply(&mut via, "SELECT * FROM small WHERE a = 1");
    let want = reply(&mut direct, "SELECT * FROM small WHERE a = 1");
    assert_eq!(got, want, "{:?}", lossy(&got));
    assert!(got.iter().any(|(t, b)| *t == b'D' && b.ends_with(b"new")));

    // Inside a transaction block, statements go as they are.
    for sql in ["BEGIN", "SELECT x FROM t WHERE x = 'zz'", "ROLLBACK"] {
        assert_eq!(reply(&mut via, sql), reply(&mut direct, sql), "{sql}");
    }
}

/// A connection keeps a bounded number of prepared statements: many
/// different statement shapes do not grow a shard backend without end.
#[test]
fn prepared_statements_per_connection_are_capped() {
    let c = PgCluster::start(1, "");
    let mut via = Raw::connect(c.sg.port());
    for i in 0..1200 {
        let got = reply(&mut via, &format!("SELECT {i} AS c{i}"));
        assert_eq!(datarow_text(&got), i.to_string());
    }
    let got = reply(&mut via, "SELECT count(*) FROM pg_prepared_statements");
    let n: usize = datarow_text(&got).parse().unwrap();
    assert!(
        (1..=510).contains(&n),
        "prepared statements on the shard: {n}"
    );
}

/// With `prepare_simple = false` statements are forwarded as text.
#[test]
fn prepare_simple_can_be_turned_off() {
    let c = PgCluster::start_with(1, "prepare_simple = false\n", "");
    let mut via = Raw::connect(c.sg.port());
    for i in 0..5 {
        reply(&mut via, &format!("SELECT {i}"));
    }
    let got = reply(&mut via, "SELECT count(*) FROM pg_prepared_statements");
    assert_eq!(datarow_text(&got), "0");
}

/// The first column of the first DataRow, as text.
fn datarow_text(reply: &[(u8, Vec<u8>)]) -> String {
    let (_, b) = reply
        .iter()
        .find(|(t, _)| *t == b'D')
        .unwrap_or_else(|| panic!("no row in {:?}", lossy(reply)));
    let len = i32::from_be_bytes([b[2], b[3], b[4], b[5]]) as usize;
    String::from_utf8_lossy(&b[6..6 + len]).into_owned()
}

fn lossy(reply: &[(u8, Vec<u8>)]) -> Vec<(char, String)> {
    reply
        .iter()
        .map(|(t, b)| (*t as char, String::from_utf8_lossy(b).into_owned()))
        .collect()
}
