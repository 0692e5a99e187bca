//! Every strategy end to end on embedded shards: range (time-based), list
//! (geographic) with a tenant override, directory entries set through SQL,
//! consistent hashing, and composite keys. Rows are checked in each shard's
//! file against where the rules say they belong.

mod common;

use common::bin;
use shardgate_testkit::Shardgate;

fn rows(data: &std::path::Path, shard: u32, sql: &str) -> Vec<String> {
    let db = rusqlite::Connection::open(data.join(format!("s{shard}.db"))).unwrap();
    let mut st = db.prepare(sql).unwrap();
    st.query_map([], |r| r.get::<_, rusqlite::types::Value>(0))
        .unwrap()
        .map(|v| match v.unwrap() {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn strategies_place_rows_where_their_rules_say() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cfg = String::new();
    for i in 0..4 {
        cfg.push_str(&format!(
            "[[shards]]\nname = \"s{i}\"\nsqlite = \"{}\"\n",
            data.join(format!("s{i}.db")).display()
        ));
    }
    cfg.push_str(
        r#"
[[tables]]
name = "events"
shard_key = "created_at"
strategy = "range"
key_type = "timestamp"
ranges = [{ shard = "s0", to = "2026-01-01" }, { shard = "s1", to = "2026-07-01" }, { shard = "s2" }]

[[tables]]
name = "users"
shard_key = "region"
strategy = "list"
key_type = "text"
values = { s0 = ["eu"], s1 = ["us"] }
default_shard = "s2"
overrides = [{ key = ["vip"], shard = "s3" }]

[[tables]]
name = "accounts"
shard_key = "id"
strategy = "directory"
key_type = "bigint"
values = { s1 = [1, 2] }

[[tables]]
name = "ring"
shard_key = "k"
strategy = "consistent"
vnodes = 32

[[tables]]
name = "members"
shard_key = ["tenant_id", "user_id"]
"#,
    );
    let path = dir.path().join("sg.toml");
    std::fs::write(&path, cfg).unwrap();
    let sg = Shardgate::spawn(
        bin(),
        &[
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    )
    .unwrap();
    for ddl in [
        "CREATE TABLE events (created_at timestamp, name text)",
        "CREATE TABLE users (region text, name text)",
        "CREATE TABLE accounts (id bigint, name text)",
        "CREATE TABLE ring (k bigint, v text)",
        "CREATE TABLE members (tenant_id bigint, user_id bigint, v text)",
    ] {
        sg.psql(ddl).unwrap();
    }
    // Range: time-based.
    sg.psql("INSERT INTO events VALUES ('2025-12-31 23:59:59', 'a'), ('2026-01-01', 'b'), ('2026-06-30 12:00', 'c'), ('2030-01-01', 'd')").unwrap();
    assert_eq!(rows(&data, 0, "SELECT name FROM events"), ["a"]);
    assert_eq!(
        rows(&data, 1, "SELECT name FROM events ORDER BY name"),
        ["b", "c"]
    );
    assert_eq!(rows(&data, 2, "SELECT name FROM events"), ["d"]);
    assert_eq!(
        sg.psql("SELECT name FROM events WHERE created_at = '2026-01-01'")
            .unwrap(),
        "b"
    );
    // List with a default and a tenant override.
    sg.psql(
        "INSERT INTO users VALUES ('eu', 'anna'), ('us', 'bob'), ('apac', 'chen'), ('vip', 'dora')",
    )
    .unwrap();
    assert_eq!(rows(&data, 0, "SELECT name FROM users"), ["anna"]);
    assert_eq!(rows(&data, 1, "SELECT name FROM users"), ["bob"]);
    assert_eq!(rows(&data, 2, "SELECT name FROM users"), ["chen"]);
    assert_eq!(rows(&data, 3, "SELECT name FROM users"), ["dora"]);
    // Directory: configured entries, entries set through SQL, and a key with
    // no entry refused for writes.
    sg.psql("SELECT shardgate.directory_set('accounts', '3', 's3')")
        .unwrap();
    sg.psql("INSERT INTO accounts VALUES (1, 'one'), (3, 'three')")
        .unwrap();
    assert_eq!(rows(&data, 1, "SELECT name FROM accounts"), ["one"]);
    assert_eq!(rows(&data, 3, "SELECT name FROM accounts"), ["three"]);
    let e = sg
        .psql("INSERT INTO accounts VALUES (99, 'nowhere')")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no shard for key 99"), "{e}");
    let e = sg
        .psql("SELECT shardgate.directory_set('accounts', '3', 's0')")
        .unwrap_err()
        .to_string();
    assert!(e.contains("already has rows"), "{e}");
    // Consistent hashing and composite keys agree with shard_of.
    let vals: Vec<String> = (1..=40).map(|k| format!("({k}, 'v{k}')")).collect();
    sg.psql(&format!("INSERT INTO ring VALUES {}", vals.join(", ")))
        .unwrap();
    let vals: Vec<String> = (1..=40).map(|k| format!("({}, {k}, 'm')", k % 3)).collect();
    sg.psql(&format!("INSERT INTO members VALUES {}", vals.join(", ")))
        .unwrap();
    let mut used = std::collections::BTreeSet::new();
    for k in 1..=40 {
        let s = sg
            .psql(&format!("SELECT shardgate.shard_of('ring', '{k}')"))
            .unwrap();
        let n: u32 = s.trim_start_matches('s').parse().unwrap();
        used.insert(n);
        assert_eq!(
            rows(&data, n, &format!("SELECT v FROM ring WHERE k = {k}")),
            [format!("v{k}")]
        );
        let s = sg
            .psql(&format!(
                "SELECT shardgate.shard_of('members', '{}', '{k}')",
                k % 3
            ))
            .unwrap();
        let n: u32 = s.trim_start_matches('s').parse().unwrap();
        assert_eq!(
            rows(
                &data,
                n,
                &format!("SELECT user_id FROM members WHERE user_id = {k}")
            ),
            [k.to_string()]
        );
        assert_eq!(
            sg.psql(&format!("SELECT v FROM ring WHERE k = {k}"))
                .unwrap(),
            format!("v{k}")
        );
    }
    assert!(used.len() >= 3, "consistent hashing used shards {used:?}");
    // A restart keeps directory entries set through SQL.
    drop(sg);
    let sg = Shardgate::spawn(
        bin(),
        &[
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(
        sg.psql("SELECT name FROM accounts WHERE id = 3").unwrap(),
        "three"
    );
    assert_eq!(
        sg.psql("SELECT shardgate.shard_of('accounts', '3')")
            .unwrap(),
        "s3"
    );
}
