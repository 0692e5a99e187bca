//! Golden tests of the planner: each `tests/golden/*.txt` file holds cases
//!
//! ```text
//! -- sql: optional title
//! SELECT * FROM orders WHERE customer_id = 7
//! -- plan
//! Route Read shards=[3]
//!   sql: as written
//! ```
//!
//! The SQL (one or more lines) is analyzed against the topology of
//! `common::topology()` and resolved with no parameters; the expected output
//! is `Plan::describe()` or `ERROR <sqlstate>: <message>`. Lines before the
//! first case are a free-form header. Run with `UPDATE_GOLDEN=1` to rewrite
//! the files with the actual output (then review the diff).

mod common;

use common::{plan, render, topology};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

struct Case {
    title: String,
    sql: String,
    expected: Vec<String>,
}

struct GoldenFile {
    header: Vec<String>,
    cases: Vec<Case>,
}

fn parse(text: &str, path: &Path) -> GoldenFile {
    let mut header = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    // Some(false): reading SQL; Some(true): reading the expected plan.
    let mut in_plan: Option<bool> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("-- sql") {
            let title = rest.trim_start_matches(':').trim().to_string();
            cases.push(Case {
                title,
                sql: String::new(),
                expected: Vec::new(),
            });
            in_plan = Some(false);
            continue;
        }
        match (in_plan, cases.last_mut()) {
            (None, _) | (_, None) => header.push(line.to_string()),
            (Some(false), Some(c)) => {
                if line == "-- plan" {
                    in_plan = Some(true);
                } else {
                    if !c.sql.is_empty() {
                        c.sql.push('\n');
                    }
                    c.sql.push_str(line);
                }
            }
            (Some(true), Some(c)) => c.expected.push(line.to_string()),
        }
    }
    assert!(
        in_plan != Some(false),
        "{}: the last case has no `-- plan` line",
        path.display()
    );
    for c in &mut cases {
        c.sql = c.sql.trim().to_string();
        while c.expected.last().is_some_and(|l| l.trim().is_empty()) {
            c.expected.pop();
        }
        assert!(!c.sql.is_empty(), "{}: a case has no SQL", path.display());
    }
    GoldenFile { header, cases }
}

fn write(file: &GoldenFile, actual: &[Vec<String>]) -> String {
    let mut out = String::new();
    for l in &file.header {
        out.push_str(l);
        out.push('\n');
    }
    if !file.header.is_empty() && !file.header.last().is_some_and(|l| l.is_empty()) {
        out.push('\n');
    }
    for (i, (c, a)) in file.cases.iter().zip(actual).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if c.title.is_empty() {
            out.push_str("-- sql\n");
        } else {
            let _ = writeln!(out, "-- sql: {}", c.title);
        }
        let _ = writeln!(out, "{}", c.sql);
        out.push_str("-- plan\n");
        for l in a {
            let _ = writeln!(out, "{l}");
        }
    }
    out
}

fn golden_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn golden() {
    let topo = topology();
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let files = golden_files();
    assert!(!files.is_empty(), "no golden files");
    let mut failures = Vec::new();
    let mut total = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read golden file");
        let file = parse(&text, path);
        let actual: Vec<Vec<String>> = file
            .cases
            .iter()
            .map(|c| render(&plan(&c.sql, &topo)))
            .collect();
        total += file.cases.len();
        if update {
            let new = write(&file, &actual);
            if new != text {
                std::fs::write(path, new).expect("write golden file");
            }
            continue;
        }
        let name = path.file_name().expect("name").to_string_lossy();
        for (c, a) in file.cases.iter().zip(&actual) {
            if &c.expected != a {
                let mut m = format!("--- {name}: {}\n{}\n", c.title, c.sql);
                for l in &c.expected {
                    let _ = writeln!(m, "- {l}");
                }
                for l in a {
                    let _ = writeln!(m, "+ {l}");
                }
                failures.push(m);
            }
        }
    }
    assert!(total > 0, "no golden cases");
    assert!(
        failures.is_empty(),
        "{} of {total} golden case(s) differ (- expected, + actual); rerun with UPDATE_GOLDEN=1 to accept:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The placements the golden files' headers list (and their cases rely on)
/// are what the sharding core computes.
#[test]
fn documented_placements() {
    let topo = topology();
    for (k, s) in [
        (1, 3),
        (2, 0),
        (3, 2),
        (5, 2),
        (6, 3),
        (7, 3),
        (8, 1),
        (9, 0),
        (-3, 2),
        (14, 1),
    ] {
        assert_eq!(
            common::hash_shard(&topo, "orders", &[k]),
            shardgate_core::ShardId(s),
            "customer_id {k}"
        );
    }
    for ((a, b), s) in [
        ((1, 1), 0),
        ((1, 2), 2),
        ((1, 3), 0),
        ((1, 4), 3),
        ((1, 5), 1),
        ((2, 1), 1),
        ((2, 2), 2),
        ((3, 2), 3),
    ] {
        assert_eq!(
            common::hash_shard(&topo, "tenants_users", &[a, b]),
            shardgate_core::ShardId(s),
            "({a}, {b})"
        );
    }
}
