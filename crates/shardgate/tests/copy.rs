//! COPY through shardgate with psql's `\copy` and pgbench's initialization,
//! over four PostgreSQL shards (each rejecting rows whose key it does not
//! own) and against one plain PostgreSQL given the same data: rows split
//! by key in text and CSV, a reference table copied everywhere, errors that
//! leave nothing behind, and COPY TO STDOUT gathering every shard.

mod common;

use common::with_baseline;
use std::process::Command;

const TABLES: &str = "[[tables]]\nname = \"items\"\nshard_key = \"id\"\nkey_type = \"bigint\"\n\
[[reference_tables]]\nname = \"kinds\"\n\
[[tables]]\nname = \"pgbench_accounts\"\nshard_key = \"aid\"\nkey_type = \"int\"\n";

const SETUP: &[&str] = &[
    "CREATE TABLE items (note text, id bigint PRIMARY KEY, qty int, tag text)",
    "CREATE TABLE kinds (k int PRIMARY KEY, name text)",
];

const ITEMS: &str = "SELECT id, note, qty, tag FROM items ORDER BY id";

/// Text-format rows: escapes, NULLs, unicode, a tab and a newline inside
/// values, keys spread over the shards.
fn text_rows() -> String {
    let mut s = String::new();
    for i in 1..=300i64 {
        let note = match i % 5 {
            0 => "\\N".to_string(),
            1 => format!("tab\\there {i}"),
            2 => format!("line\\nbreak {i}"),
            3 => format!("ünïcødé {i} \\\\ back"),
            _ => format!("plain {i}"),
        };
        let qty = if i % 7 == 0 {
            "\\N".to_string()
        } else {
            (i * 3 - 100).to_string()
        };
        s.push_str(&format!("{note}\t{i}\t{qty}\tt{}\n", i % 4));
    }
    s
}

/// CSV rows with a header, quoted fields holding commas, quotes and
/// newlines, CRLF line ends, NULLs (unquoted empty) and empty strings.
fn csv_rows() -> String {
    let mut s = "note,id,qty,tag\r\n".to_string();
    for i in 301..=450i64 {
        let note = match i % 4 {
            0 => String::new(),
            1 => format!("\"a, \"\"quoted\"\"\nvalue {i}\""),
            2 => "\"\"".to_string(),
            _ => format!("n{i}"),
        };
        s.push_str(&format!("{note},{i},{},x\r\n", i % 11));
    }
    s
}

#[test]
fn copy_matches_one_postgres() {
    let (c, single) = with_baseline(4, TABLES, SETUP);
    c.guard("items", "id");
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let both = |sql: &str| {
        let want = single.psql(sql).unwrap();
        let got = c.sg.psql(sql).unwrap_or_else(|e| panic!("{sql}: {e:#}"));
        assert_eq!(got, want, "{sql}");
    };
    let agree = |what: &str| {
        assert_eq!(
            c.sg.psql(ITEMS).unwrap(),
            single.psql(ITEMS).unwrap(),
            "{what}: rows"
        );
        for s in &c.shards {
            assert_eq!(
                s.psql("SELECT count(*) FROM pg_prepared_xacts").unwrap(),
                "0",
                "{what}: a prepared transaction was left"
            );
        }
    };

    // Text format: rows split by key (the guards would reject a misplaced
    // one), the count is every row.
    let text = file("items.txt", &text_rows());
    both(&format!("\\copy items FROM '{text}'"));
    agree("text");
    let per_shard: Vec<i64> = c
        .shards
        .iter()
        .map(|s| {
            s.psql("SELECT count(*) FROM items")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(per_shard.iter().sum::<i64>(), 300);
    assert!(per_shard.iter().all(|n| *n > 0), "{per_shard:?}");

    // CSV with a header; a column list with the key not first.
    let csv = file("items.csv", &csv_rows());
    both(&format!(
        "\\copy items (note, id, qty, tag) FROM '{csv}' WITH (FORMAT csv, HEADER true)"
    ));
    agree("csv");
    let cols = file("cols.txt", "1001\tfirst\n1002\tsecond\n1003\t\\N\n");
    both(&format!("\\copy items (id, tag) FROM '{cols}'"));
    agree("column list");

    // A duplicate key on one shard: the error, and nothing of this COPY
    // on any shard.
    let dup = file(
        "dup.txt",
        "x\t2001\t1\ta\nx\t2002\t1\ta\nx\t2003\t1\ta\nx\t5\t1\ta\n",
    );
    let e =
        c.sg.psql(&format!("\\copy items FROM '{dup}'"))
            .unwrap_err()
            .to_string();
    assert!(e.contains("duplicate key"), "{e}");
    single
        .psql(&format!("\\copy items FROM '{dup}'"))
        .unwrap_err();
    agree("duplicate key");

    // A key that is no bigint, a row without its key field: refused
    // before any shard keeps anything.
    let bad = file("bad.txt", "x\t3001\t1\ta\nx\tnot-a-number\t1\ta\n");
    let e =
        c.sg.psql(&format!("\\copy items FROM '{bad}'"))
            .unwrap_err()
            .to_string();
    assert!(e.contains("not-a-number"), "{e}");
    let short = file("short.txt", "x\t3002\t1\ta\nonly-a-note\n");
    c.sg.psql(&format!("\\copy items FROM '{short}'"))
        .unwrap_err();
    let nokey =
        c.sg.psql(&format!("\\copy items (note) FROM '{short}'"))
            .unwrap_err()
            .to_string();
    assert!(nokey.contains("shard key"), "{nokey}");
    agree("bad keys");

    // In a transaction block: rolled back with it.
    let more = file("more.txt", "r\t4001\t1\ta\nr\t4002\t2\tb\nr\t4003\t3\tc\n");
    for db in [&c.sg.port(), &single.port()] {
        let user = if *db == c.sg.port() {
            "app"
        } else {
            "postgres"
        };
        let out = Command::new(shardgate_testkit::pg_bin("psql"))
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args(["-p", &db.to_string(), "-U", user, "-d", "app"])
            .args(["-c", "BEGIN"])
            .args(["-c", &format!("\\copy items FROM '{more}'")])
            .args(["-c", "SELECT count(*) FROM items WHERE id > 4000"])
            .args(["-c", "ROLLBACK"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("\n3\n"),
            "{out:?}"
        );
    }
    agree("rolled back");

    // A reference table: every copy gets every row.
    let kinds = file("kinds.csv", "1,one\n2,two\n3,\n");
    both(&format!("\\copy kinds FROM '{kinds}' WITH (FORMAT csv)"));
    for s in &c.shards {
        assert_eq!(
            s.psql("SELECT count(*) FROM kinds").unwrap(),
            "3",
            "every copy"
        );
    }

    // COPY TO STDOUT: every shard's rows (compared as sorted lines), the
    // CSV header once; a query one shard answers, or that needs no merge.
    let sorted = |s: String| {
        let mut l: Vec<String> = s.lines().map(str::to_string).collect();
        l.sort();
        l
    };
    for sql in [
        "COPY items TO STDOUT",
        "COPY items (id, note) TO STDOUT WITH (FORMAT csv, HEADER true)",
        "COPY (SELECT id, qty FROM items WHERE qty > 10) TO STDOUT",
        "COPY kinds TO STDOUT",
    ] {
        let want = single.psql(sql).unwrap();
        let got = c.sg.psql(sql).unwrap_or_else(|e| panic!("{sql}: {e:#}"));
        if sql.contains("HEADER") {
            assert_eq!(got.lines().next(), want.lines().next(), "{sql}: header");
            assert_eq!(got.matches("id,note").count(), 1, "{sql}: one header");
        }
        assert_eq!(sorted(got), sorted(want), "{sql}");
    }
    both("COPY (SELECT id, note FROM items WHERE id = 7) TO STDOUT");
    let e =
        c.sg.psql("COPY (SELECT id FROM items ORDER BY id LIMIT 3) TO STDOUT")
            .unwrap_err()
            .to_string();
    assert!(e.contains("not supported"), "{e}");
    let e =
        c.sg.psql("COPY items FROM '/etc/hostname'")
            .unwrap_err()
            .to_string();
    assert!(e.contains("STDIN"), "{e}");
}

/// `pgbench -i` (DROP/CREATE, BEGIN, TRUNCATE, COPY ... WITH (freeze on),
/// COMMIT, VACUUM, ALTER TABLE ADD PRIMARY KEY) through shardgate with
/// pgbench_accounts sharded by aid, then a pgbench run on it.
#[test]
fn pgbench_initializes_through_shardgate() {
    let (c, _single) = with_baseline(4, TABLES, &[]);
    let pgbench = |args: &[&str]| {
        let out = Command::new(shardgate_testkit::pg_bin("pgbench"))
            .args(args)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &c.sg.port().to_string(),
                "-U",
                "app",
                "app",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pgbench {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    pgbench(&["-i", "-s", "2", "-q"]);
    let counts: Vec<i64> = c
        .shards
        .iter()
        .map(|s| {
            s.psql("SELECT count(*) FROM pgbench_accounts")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(counts.iter().sum::<i64>(), 200_000, "{counts:?}");
    assert!(counts.iter().all(|n| *n > 40_000), "{counts:?}");
    assert_eq!(
        c.sg.psql("SELECT count(*), sum(abalance) FROM pgbench_accounts")
            .unwrap(),
        "200000|0"
    );
    pgbench(&["-n", "-S", "-t", "50", "-c", "2"]);
}
