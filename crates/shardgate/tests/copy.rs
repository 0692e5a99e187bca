//! COPY through shardgate with psql's `\copy` and pgbench's initialization,
//! over four PostgreSQL shards (each rejecting rows whose key it does not
//! own) and against one plain PostgreSQL given the same data: rows split
//! by key in text and CSV, a reference table copied everywhere, errors that
//! leave nothing behind, and COPY TO STDOUT gathering every shard; the
//! pre-9.0 option forms (`WITH CSV HEADER`, psycopg2's `WITH DELIMITER AS
//! ... NULL AS ...`) read as their `WITH (...)` list.

mod common;

use common::{Raw, sqlstate, with_baseline};
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

/// How many items rows each shard holds.
fn items_per_shard(c: &common::PgCluster) -> Vec<i64> {
    c.shards
        .iter()
        .map(|s| {
            s.psql("SELECT count(*) FROM items")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
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
    let per_shard = items_per_shard(&c);
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
    // A query that needs a merge: its merged rows, written by the router
    // exactly as COPY writes them (escapes, NULLs, quoting, header).
    for sql in [
        "COPY (SELECT id FROM items ORDER BY id LIMIT 3) TO STDOUT",
        "COPY (SELECT id, note, qty, tag FROM items ORDER BY qty DESC NULLS LAST, id) TO STDOUT",
        "COPY (SELECT note, id FROM items ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER true)",
        "COPY (SELECT tag, count(*), max(note) AS \"last, note\" FROM items GROUP BY tag ORDER BY tag) TO STDOUT (FORMAT csv, HEADER, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'nil')",
        "COPY (SELECT id, note FROM items WHERE id IN (1, 2, 3, 300) ORDER BY id) TO STDOUT (NULL '', DELIMITER ',')",
        "COPY (SELECT DISTINCT tag FROM items ORDER BY 1) TO STDOUT",
    ] {
        both(sql);
    }
    let e =
        c.sg.psql("COPY (SELECT id FROM items ORDER BY id LIMIT 3) TO STDOUT (FORMAT binary)")
            .unwrap_err()
            .to_string();
    assert!(e.contains("text and CSV"), "{e}");
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

/// A COPY through the simple protocol as psycopg2 sends it: `sql`, then
/// `data` in small CopyData messages (rows cross them), then CopyDone.
/// The command tag, or the error's SQLSTATE and message.
fn raw_copy_in(port: u16, user: &str, sql: &str, data: &[u8]) -> Result<String, String> {
    let mut r = Raw::connect_as(port, user);
    r.send(&[Raw::msg(b'Q', format!("{sql}\0").as_bytes())]);
    let start = r.until_any(b"GZ");
    if let Some(e) = error_of(&start) {
        return Err(e);
    }
    let mut msgs: Vec<Vec<u8>> = data.chunks(13).map(|c| Raw::msg(b'd', c)).collect();
    msgs.push(Raw::msg(b'c', b""));
    r.send(&msgs);
    let end = r.until(b'Z');
    if let Some(e) = error_of(&end) {
        return Err(e);
    }
    Ok(end
        .iter()
        .find(|(t, _)| *t == b'C')
        .map(|(_, b)| String::from_utf8_lossy(b.strip_suffix(&[0]).unwrap_or(b)).into_owned())
        .unwrap_or_default())
}

/// `COPY ... TO STDOUT` through the simple protocol: the data, or the
/// error's SQLSTATE and message.
fn raw_copy_out(port: u16, user: &str, sql: &str) -> Result<String, String> {
    raw_copy_out_bytes(port, user, sql).map(|d| String::from_utf8(d).expect("UTF-8 rows"))
}

/// `COPY ... TO STDOUT` through the simple protocol: the data's bytes.
fn raw_copy_out_bytes(port: u16, user: &str, sql: &str) -> Result<Vec<u8>, String> {
    let mut r = Raw::connect_as(port, user);
    r.send(&[Raw::msg(b'Q', format!("{sql}\0").as_bytes())]);
    let got = r.until(b'Z');
    if let Some(e) = error_of(&got) {
        return Err(e);
    }
    Ok(got
        .iter()
        .filter(|(t, _)| *t == b'd')
        .flat_map(|(_, b)| b.iter().copied())
        .collect())
}

/// The SQLSTATE and message of the first ErrorResponse among `msgs`.
fn error_of(msgs: &[(u8, Vec<u8>)]) -> Option<String> {
    let (_, body) = msgs.iter().find(|(t, _)| *t == b'E')?;
    let message = body
        .split(|b| *b == 0)
        .find(|f| f.first() == Some(&b'M'))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
        .unwrap_or_default();
    Some(format!("{}: {message}", sqlstate(body)))
}

/// COPY with PostgreSQL's pre-9.0 options, as psql scripts and psycopg2's
/// `copy_from` / `copy_to` write them (`WITH CSV HEADER`, `WITH DELIMITER
/// AS E'\t' NULL AS '\N'`), into and out of a table sharded over four
/// PostgreSQL shards (each rejecting rows whose key it does not own), and
/// against one plain PostgreSQL given the same statements: every row once,
/// on its shard, with the values PostgreSQL reads.
#[test]
fn legacy_copy_options_as_postgres() {
    let (c, single) = with_baseline(4, TABLES, SETUP);
    c.guard("items", "id");
    let (sg, pg) = (c.sg.port(), single.port());
    let copy_in = |sql: &str, data: &str| {
        let want = raw_copy_in(pg, "postgres", sql, data.as_bytes())
            .unwrap_or_else(|e| panic!("PostgreSQL: {sql}: {e}"));
        let got = raw_copy_in(sg, "app", sql, data.as_bytes())
            .unwrap_or_else(|e| panic!("shardgate: {sql}: {e}"));
        assert_eq!(got, want, "{sql}");
    };
    let sorted = |s: &str| {
        let mut l: Vec<&str> = s.lines().collect();
        l.sort_unstable();
        l.join("\n")
    };
    let copy_out = |sql: &str| {
        let want =
            raw_copy_out(pg, "postgres", sql).unwrap_or_else(|e| panic!("PostgreSQL: {sql}: {e}"));
        let got = raw_copy_out(sg, "app", sql).unwrap_or_else(|e| panic!("shardgate: {sql}: {e}"));
        assert!(!want.is_empty(), "{sql}");
        assert_eq!(sorted(&got), sorted(&want), "{sql}");
        got
    };
    // Every row once, on the shard its key names (the shards' checks
    // refuse any other), and the same rows as PostgreSQL's.
    let placed = |what: &str, ids: &[i64]| {
        let mut all = Vec::new();
        let mut used = 0;
        for s in &c.shards {
            let on: Vec<i64> = s
                .psql("SELECT id FROM items ORDER BY id")
                .unwrap()
                .lines()
                .map(|l| l.parse().unwrap())
                .collect();
            used += usize::from(!on.is_empty());
            all.extend(on);
        }
        all.sort_unstable();
        assert_eq!(all, ids, "{what}: every row once");
        assert!(used > 1, "{what}: rows on one shard only");
        let rows = "SELECT id, note, qty, tag, note IS NULL, tag IS NULL FROM items ORDER BY id";
        assert_eq!(
            c.sg.psql(rows).unwrap(),
            single.psql(rows).unwrap(),
            "{what}: values"
        );
    };

    // CSV with a header: a quoted field with a comma, quotes and a
    // newline; NULL (unquoted empty) apart from the empty string (quoted).
    let mut csv = "note,id,qty,tag\n\
        \"a, \"\"quoted\"\"\nvalue\",1,5,x\n\
        ,2,,y\n\
        \"\",3,7,\n\
        plain,4,8,\"z\"\n"
        .to_string();
    for i in 5..=40 {
        csv.push_str(&format!("n{i},{i},{},t{}\n", i * 2, i % 3));
    }
    copy_in(
        "COPY items (note, id, qty, tag) FROM STDIN WITH CSV HEADER",
        &csv,
    );
    let ids: Vec<i64> = (1..=40).collect();
    placed("WITH CSV HEADER", &ids);
    let row = |id: i64| {
        c.sg.psql(&format!(
            "SELECT coalesce(note, '<null>'), coalesce(qty::text, '<null>'), coalesce(tag, '<null>') FROM items WHERE id = {id}"
        ))
        .unwrap()
    };
    assert_eq!(row(1), "a, \"quoted\"\nvalue|5|x");
    assert_eq!(row(2), "<null>|<null>|y");
    assert_eq!(row(3), "|7|<null>");
    assert_eq!(row(4), "plain|8|z");

    // Out again, the header once; a query one shard answers.
    let out = copy_out("COPY items TO STDOUT WITH CSV HEADER");
    assert!(out.starts_with("note,id,qty,tag\n"), "{out}");
    assert_eq!(out.matches("note,id,qty,tag").count(), 1, "{out}");
    assert!(
        out.contains("\"a, \"\"quoted\"\"\nvalue\",1,5,x\n"),
        "{out}"
    );
    assert!(out.contains("\n,2,,y\n"), "{out}");
    assert!(out.contains("\n\"\",3,7,\n"), "{out}");
    let one = copy_out("COPY (SELECT id, note FROM items WHERE id = 2) TO STDOUT WITH CSV HEADER");
    assert_eq!(one, "id,note\n2,\n");
    copy_out("COPY items (id, note) TO STDOUT CSV HEADER FORCE QUOTE *");
    copy_out("COPY items TO STDOUT CSV QUOTE AS '\"' ESCAPE AS '\\' FORCE QUOTE note, tag");

    // psycopg2's copy_from: text rows, the key not first; a tab and a
    // backslash escaped in a value, NULLs as \N.
    let mut text = String::new();
    for i in 100..=140i64 {
        let note = match i % 4 {
            0 => "\\N".to_string(),
            1 => format!("tab\\there {i}"),
            2 => format!("back\\\\slash {i}"),
            _ => format!("plain {i}"),
        };
        let qty = if i % 5 == 0 {
            "\\N".to_string()
        } else {
            i.to_string()
        };
        text.push_str(&format!("{note}\t{i}\t{qty}\tp\n"));
    }
    copy_in(
        "COPY items (note,id,qty,tag) FROM stdin WITH DELIMITER AS E'\\t' NULL AS '\\N'",
        &text,
    );
    // As psycopg2 writes it with standard_conforming_strings on: the tab
    // itself between the quotes; and another separator and NULL string
    // (sep='|', null='').
    copy_in(
        "COPY items (note,id) FROM stdin WITH DELIMITER AS '\t' NULL AS '\\N'",
        "tabbed\t150\n\\N\t151\n",
    );
    copy_in(
        "COPY items (id,qty,note) FROM stdin WITH DELIMITER AS '|' NULL AS ''",
        "160|1|piped\n161||\n162|3|x\\|y\n",
    );
    let mut ids: Vec<i64> = (1..=40).chain(100..=140).collect();
    ids.extend([150, 151, 160, 161, 162]);
    placed("psycopg2 copy_from", &ids);
    assert_eq!(row(101), "tab\there 101|101|p");
    assert_eq!(row(102), "back\\slash 102|102|p");
    assert_eq!(row(104), "<null>|104|p");
    assert_eq!(row(105), "tab\there 105|<null>|p");
    assert_eq!(row(161), "<null>|<null>|<null>");
    assert_eq!(row(162), "x|y|3|<null>");

    // psycopg2's copy_to.
    copy_out("COPY items (note,id,qty,tag) TO stdout WITH DELIMITER AS E'\\t' NULL AS '\\N'");
    let piped = copy_out("COPY items (id,note) TO stdout WITH DELIMITER AS '|' NULL AS ''");
    assert!(piped.contains("\n162|x\\|y\n"), "{piped}");
    assert!(piped.contains("\n104|\n"), "{piped}");

    // psql's \copy passes the options as written.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("more.csv");
    std::fs::write(&file, "id,note\n170,psql\n171,\n").unwrap();
    let sql = format!(
        "\\copy items (id, note) FROM '{}' CSV HEADER",
        file.display()
    );
    c.sg.psql(&sql).unwrap();
    single.psql(&sql).unwrap();
    ids.extend([170, 171]);
    placed("psql \\copy", &ids);

    // What PostgreSQL refuses, refused alike; nothing of it kept.
    let refused = |sql: &str, data: &str| {
        let want = raw_copy_in(pg, "postgres", sql, data.as_bytes()).unwrap_err();
        let got = raw_copy_in(sg, "app", sql, data.as_bytes()).unwrap_err();
        assert_eq!(got[..5], want[..5], "{sql}: {got} / {want}");
        got
    };
    let e = refused("COPY items FROM STDIN WITH OIDS", "");
    assert!(e.contains("OIDS"), "{e}");
    let e = refused("COPY items FROM STDIN CSV CSV", "");
    assert!(e.contains("conflicting or redundant options"), "{e}");
    let e = refused("COPY items FROM STDIN DELIMITER AS '||'", "");
    assert!(e.contains("single one-byte character"), "{e}");
    refused("COPY items FROM STDIN QUOTE AS '\"'", "");
    let e = refused("COPY BINARY items FROM STDIN", "");
    assert!(e.contains("signature"), "{e}");
    placed("refused", &ids);
}

/// Binary COPY (asyncpg's `copy_records_to_table`, psycopg's `FORMAT
/// BINARY`) into tables sharded by a bigint and by an int key over four
/// PostgreSQL shards (each rejecting rows whose key it does not own),
/// from PostgreSQL's own binary output cut into small messages: every
/// tuple on its shard, the same rows as one PostgreSQL; `COPY ... TO
/// STDOUT (FORMAT binary)` of every shard joined into one stream that
/// PostgreSQL reads back; bad streams refused as PostgreSQL refuses them,
/// nothing kept.
#[test]
fn binary_copy_matches_one_postgres() {
    let (c, single) = with_baseline(
        4,
        TABLES,
        &[
            SETUP[0],
            "CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84))",
        ],
    );
    c.guard("items", "id");
    c.guard("pgbench_accounts", "aid");
    let (sg, pg) = (c.sg.port(), single.port());
    single
        .psql(
            "INSERT INTO items SELECT CASE WHEN i % 5 = 0 THEN NULL ELSE 'ünï ' || i END, i * 7919 - 500000, \
             CASE WHEN i % 3 = 0 THEN NULL ELSE -i END, 't' || (i % 4) FROM generate_series(1, 500) i",
        )
        .unwrap();
    single
        .psql(
            "INSERT INTO pgbench_accounts SELECT i, i % 10, i * -3, repeat('f', i % 84) FROM generate_series(1, 700) i",
        )
        .unwrap();
    let rows = |port: u16, user: &str, table: &str, key: &str| {
        let mut r = Raw::connect_as(port, user);
        r.send(&[Raw::msg(
            b'Q',
            format!("SELECT * FROM {table} ORDER BY {key}\0").as_bytes(),
        )]);
        r.until(b'Z')
            .into_iter()
            .filter(|(t, _)| *t == b'D')
            .map(|(_, b)| b)
            .collect::<Vec<_>>()
    };
    for (table, key, n) in [("items", "id", 500), ("pgbench_accounts", "aid", 700)] {
        let data = raw_copy_out_bytes(
            pg,
            "postgres",
            &format!("COPY {table} TO STDOUT (FORMAT binary)"),
        )
        .unwrap();
        let tag = raw_copy_in(
            sg,
            "app",
            &format!("COPY {table} FROM STDIN (FORMAT binary)"),
            &data,
        )
        .unwrap_or_else(|e| panic!("{table}: {e}"));
        assert_eq!(tag, format!("COPY {n}"), "{table}");
        let want = rows(pg, "postgres", table, key);
        assert_eq!(want.len(), n);
        assert_eq!(rows(sg, "app", table, key), want, "{table}");
        let used = c
            .shards
            .iter()
            .filter(|s| {
                s.psql(&format!("SELECT count(*) > 0 FROM {table}"))
                    .unwrap()
                    == "t"
            })
            .count();
        assert_eq!(used, 4, "{table}: rows on every shard");

        // Every shard's binary stream joined into one that PostgreSQL
        // reads back as the same rows.
        let out =
            raw_copy_out_bytes(sg, "app", &format!("COPY {table} TO STDOUT WITH BINARY")).unwrap();
        assert!(out.starts_with(b"PGCOPY\n\xff\r\n\0"), "{table}: header");
        // In messages as PostgreSQL sends them: a tuple each (the header
        // with the first), the trailer alone (psycopg reads a tuple per
        // message).
        let mut r = Raw::connect_as(sg, "app");
        r.send(&[Raw::msg(
            b'Q',
            format!("COPY {table} TO STDOUT WITH BINARY\0").as_bytes(),
        )]);
        let datas: Vec<Vec<u8>> = r
            .until(b'Z')
            .into_iter()
            .filter(|(t, _)| *t == b'd')
            .map(|(_, b)| b)
            .collect();
        assert_eq!(datas.len(), n + 1, "{table}: a message per tuple");
        assert!(datas[0].starts_with(b"PGCOPY"), "{table}");
        assert_eq!(datas[n], [0xff, 0xff], "{table}: the trailer alone");
        assert_eq!(
            out.windows(6).filter(|w| w == b"PGCOPY").count(),
            1,
            "{table}: one header"
        );
        single
            .psql(&format!("CREATE TABLE back_{table} (LIKE {table})"))
            .unwrap();
        let tag = raw_copy_in(
            pg,
            "postgres",
            &format!("COPY back_{table} FROM STDIN (FORMAT binary)"),
            &out,
        )
        .unwrap_or_else(|e| panic!("{table} read back: {e}"));
        assert_eq!(tag, format!("COPY {n}"));
        assert_eq!(
            rows(pg, "postgres", &format!("back_{table}"), key),
            want,
            "{table}: read back"
        );
        let q =
            format!("COPY (SELECT {key} FROM {table} WHERE {key} < 100) TO STDOUT (FORMAT binary)");
        let got = raw_copy_out_bytes(sg, "app", &q).unwrap();
        assert!(got.len() > 21, "{q}");
        assert!(got.ends_with(&[0xff, 0xff]), "{q}: trailer");
    }

    // Streams PostgreSQL refuses, refused alike; nothing kept. A NULL key
    // and a key of another column type are the router's.
    let before = rows(sg, "app", "items", "id");
    let good = raw_copy_out_bytes(
        pg,
        "postgres",
        "COPY (SELECT * FROM items ORDER BY id LIMIT 20) TO STDOUT (FORMAT binary)",
    )
    .unwrap();
    let mut cut = good.clone();
    cut.truncate(good.len() - 7);
    let mut after = good.clone();
    after.extend_from_slice(b"x");
    let mut signature = good.clone();
    signature[1] = b'X';
    let mut oids = good.clone();
    oids[12] = 1;
    for (what, data) in [
        ("cut", &cut),
        ("after the trailer", &after),
        ("signature", &signature),
        ("oids", &oids),
    ] {
        single
            .psql("CREATE TABLE IF NOT EXISTS scratch (LIKE items)")
            .unwrap();
        let want = raw_copy_in(
            pg,
            "postgres",
            "COPY scratch FROM STDIN (FORMAT binary)",
            data,
        )
        .unwrap_err();
        let got =
            raw_copy_in(sg, "app", "COPY items FROM STDIN (FORMAT binary)", data).unwrap_err();
        assert_eq!(got, want, "{what}");
    }
    let null_key = raw_copy_out_bytes(
        pg,
        "postgres",
        "COPY (SELECT note, NULL::bigint, qty, tag FROM items LIMIT 3) TO STDOUT (FORMAT binary)",
    )
    .unwrap();
    let e = raw_copy_in(
        sg,
        "app",
        "COPY items FROM STDIN (FORMAT binary)",
        &null_key,
    )
    .unwrap_err();
    assert!(e.starts_with("23502"), "{e}");
    let e = raw_copy_in(
        sg,
        "app",
        "COPY items (id, note) FROM STDIN (FORMAT binary)",
        &good,
    )
    .unwrap_err();
    assert!(e.starts_with("22P04") || e.starts_with("22P03"), "{e}");
    assert_eq!(rows(sg, "app", "items", "id"), before, "nothing kept");
}

/// A tokio-postgres client as `user` on `port`.
async fn tp(port: u16, user: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user={user} dbname=app"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    c
}

/// COPY in `copy_in`'s extended protocol (Bind, Execute, Sync, the data,
/// CopyDone, Sync: tokio-postgres and pg8000 do this), `None` on error
/// (its SQLSTATE in the error).
async fn ext_copy_in(c: &tokio_postgres::Client, sql: &str, data: &str) -> Result<u64, String> {
    use futures_util::SinkExt;
    let sink = c
        .copy_in::<_, bytes::Bytes>(sql)
        .await
        .map_err(|e| code(&e))?;
    futures_util::pin_mut!(sink);
    // Several CopyData messages, rows cut across them.
    for chunk in data.as_bytes().chunks(97) {
        sink.send(bytes::Bytes::copy_from_slice(chunk))
            .await
            .map_err(|e| code(&e))?;
    }
    sink.finish().await.map_err(|e| code(&e))
}

async fn ext_copy_out(c: &tokio_postgres::Client, sql: &str) -> Result<String, String> {
    use futures_util::TryStreamExt;
    let stream = c.copy_out(sql).await.map_err(|e| code(&e))?;
    let parts: Vec<bytes::Bytes> = stream.try_collect().await.map_err(|e| code(&e))?;
    Ok(String::from_utf8(parts.concat()).unwrap())
}

fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Sorted lines, to compare a COPY TO's rows (shards answer in their own
/// order) as multisets.
fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_copy_matches_one_postgres() {
    let (c, single) = with_baseline(4, TABLES, SETUP);
    c.guard("items", "id");
    let sg = tp(c.sg.port(), "app").await;
    let pg = tp(single.port(), "postgres").await;
    let items = "SELECT id, note, qty, tag FROM items ORDER BY id";
    let same_rows = |what: &str| {
        assert_eq!(
            c.sg.psql(items).unwrap(),
            single.psql(items).unwrap(),
            "{what}: rows"
        );
        assert_eq!(
            c.sg.psql("SELECT k, name FROM kinds ORDER BY k").unwrap(),
            single.psql("SELECT k, name FROM kinds ORDER BY k").unwrap(),
            "{what}: reference rows"
        );
    };

    // Text rows split by key over the shards; CSV with a header; a
    // reference table's copies; counts as one PostgreSQL gives them.
    for (sql, data) in [
        ("COPY items FROM STDIN", text_rows()),
        (
            "COPY items (note, id, qty, tag) FROM STDIN WITH (FORMAT csv, HEADER true)",
            csv_rows(),
        ),
        (
            "COPY kinds FROM STDIN",
            "1\tone\n2\ttwo\n3\t\\N\n".to_string(),
        ),
    ] {
        let want = ext_copy_in(&pg, sql, &data).await;
        let got = ext_copy_in(&sg, sql, &data).await;
        assert_eq!(got, want, "{sql}");
        assert!(want.is_ok(), "{sql}: {want:?}");
        same_rows(sql);
    }
    let per_shard = items_per_shard(&c);
    assert!(per_shard.iter().all(|n| *n > 0), "{per_shard:?}");

    // A bad row fails the whole COPY on every shard, with PostgreSQL's
    // SQLSTATE; the session goes on.
    let bad = "5001\tx\t1\tt\n5002\ty\tnot a number\tt\n";
    let want = ext_copy_in(&pg, "COPY items (id, note, qty, tag) FROM STDIN", bad).await;
    let got = ext_copy_in(&sg, "COPY items (id, note, qty, tag) FROM STDIN", bad).await;
    assert_eq!(got, want);
    assert_eq!(want, Err("22P02".to_string()));
    same_rows("bad row");
    let n = |rows: Vec<tokio_postgres::Row>| rows[0].get::<_, i64>(0);
    assert_eq!(
        n(sg.query("SELECT count(*) FROM items", &[]).await.unwrap()),
        n(pg.query("SELECT count(*) FROM items", &[]).await.unwrap())
    );
    // A COPY the shards refuse before any data (on connections of its
    // own: tokio-postgres itself loses track of a connection whose COPY
    // failed to start, with PostgreSQL too).
    let want = ext_copy_in(
        &tp(single.port(), "postgres").await,
        "COPY nosuch FROM STDIN",
        "1\n",
    )
    .await;
    let got = ext_copy_in(
        &tp(c.sg.port(), "app").await,
        "COPY nosuch FROM STDIN",
        "1\n",
    )
    .await;
    assert_eq!(got, want);
    assert_eq!(want, Err("42P01".to_string()));

    // In a transaction block: rolled back with it, or kept with COMMIT.
    for end in ["ROLLBACK", "COMMIT"] {
        let data = "7001\tin txn\t1\tt\n7002\tin txn\t2\tt\n7003\tin txn\t3\tt\n";
        for (who, cl) in [("shardgate", &sg), ("postgres", &pg)] {
            cl.batch_execute("BEGIN")
                .await
                .unwrap_or_else(|e| panic!("{who}: {e}"));
            cl.execute("INSERT INTO items (id, note) VALUES (6999, 'before')", &[])
                .await
                .unwrap();
            assert_eq!(
                ext_copy_in(cl, "COPY items (id, note, qty, tag) FROM STDIN", data).await,
                Ok(3)
            );
            cl.batch_execute(end).await.unwrap();
        }
        same_rows(end);
    }

    // COPY TO STDOUT of every shard's rows, and of a query.
    for sql in [
        "COPY items TO STDOUT",
        "COPY items (id, tag) TO STDOUT WITH (FORMAT csv)",
        "COPY (SELECT tag, count(*) FROM items GROUP BY tag) TO STDOUT",
        "COPY kinds TO STDOUT",
    ] {
        let want = ext_copy_out(&pg, sql).await.unwrap();
        let got = ext_copy_out(&sg, sql).await.unwrap();
        assert_eq!(sorted_lines(&got), sorted_lines(&want), "{sql}");
    }
    // A batch that describes the COPY's portal (NoData) before Execute,
    // raw: the same messages as PostgreSQL sends, data included.
    let tags = |port: u16, user: &str| {
        let mut r = Raw::connect_as(port, user);
        r.send(&[
            Raw::parse("COPY (SELECT k, name FROM kinds ORDER BY k) TO STDOUT"),
            Raw::bind(),
            Raw::msg(b'D', b"P\0"),
            Raw::execute(0),
            Raw::msg(b'S', b""),
        ]);
        r.until(b'Z')
            .into_iter()
            .map(|(t, body)| (t as char, if t == b'd' { body } else { Vec::new() }))
            .collect::<Vec<_>>()
    };
    let want = tags(single.port(), "postgres");
    assert_eq!(tags(c.sg.port(), "app"), want);
    assert!(want.iter().any(|(t, _)| *t == 'n'), "{want:?}");

    // A Query in the middle of COPY data: the client lost the protocol;
    // PostgreSQL answers an error, then ends the connection with a FATAL
    // 08P01, and no row stays.
    let lost = |port: u16, user: &str| {
        let mut r = Raw::connect_as(port, user);
        r.send(&[Raw::msg(b'Q', b"COPY items (id, note) FROM STDIN\0")]);
        let started = r.until_any(b"GE");
        assert_eq!(started.last().map(|(t, _)| *t), Some(b'G'));
        r.send(&[
            Raw::msg(b'd', b"9001\tlost\n9002\tlost\n"),
            Raw::msg(b'Q', b"SELECT 1\0"),
        ]);
        let mut seen = Vec::new();
        for _ in 0..2 {
            let end = r.until(b'E');
            let (_, body) = end.last().unwrap();
            let text = String::from_utf8_lossy(body).into_owned();
            seen.push((sqlstate(body), text.contains("SFATAL")));
        }
        seen
    };
    let want = lost(single.port(), "postgres");
    assert_eq!(
        want,
        [("08P01".to_string(), false), ("08P01".to_string(), true)]
    );
    assert_eq!(lost(c.sg.port(), "app"), want);
    same_rows("a query during COPY");
    for s in &c.shards {
        assert_eq!(
            s.psql("SELECT count(*) FROM pg_prepared_xacts").unwrap(),
            "0",
            "a prepared transaction was left"
        );
    }
}
