//! Execute with a row limit (JDBC's fetch size, any driver's portal
//! batches) on results that several shards make: every batch, every
//! PortalSuspended and every command tag is what one PostgreSQL holding all
//! the rows sends, message for message; rows compared in order where the
//! query orders them totally, as a multiset otherwise.

mod common;

use common::{PgCluster, Raw, sqlstate, untabled, with_baseline};

type Frames = Vec<(u8, Vec<u8>)>;

fn cstr(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(s.as_bytes());
    b.push(0);
}

fn simple(r: &mut Raw, sql: &str) -> Frames {
    let mut q = Vec::new();
    cstr(&mut q, sql);
    r.send(&[Raw::msg(b'Q', &q)]);
    r.until(b'Z')
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, name);
    cstr(&mut b, sql);
    b.extend_from_slice(&0i16.to_be_bytes());
    Raw::msg(b'P', &b)
}

fn bind(portal: &str, stmt: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, portal);
    cstr(&mut b, stmt);
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Raw::msg(b'B', &b)
}

fn describe_portal(portal: &str) -> Vec<u8> {
    let mut b = vec![b'P'];
    cstr(&mut b, portal);
    Raw::msg(b'D', &b)
}

fn execute(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, portal);
    b.extend_from_slice(&max_rows.to_be_bytes());
    Raw::msg(b'E', &b)
}

fn sync() -> Vec<u8> {
    Raw::msg(b'S', &[])
}

/// Fetch `sql` through a named portal `batch` rows at a time, one Sync
/// after each Execute (as JDBC does), inside a transaction block; the
/// frames of every round trip, and the transaction's end.
fn fetch(r: &mut Raw, sql: &str, batch: i32, describe: bool) -> Frames {
    let mut out = simple(r, "BEGIN");
    let mut first = vec![parse("s1", sql), bind("c1", "s1")];
    if describe {
        first.push(describe_portal("c1"));
    }
    first.push(execute("c1", batch));
    first.push(sync());
    r.send(&first);
    let mut got = r.until(b'Z');
    let mut rounds = 0;
    while got.iter().any(|(t, _)| *t == b's') {
        out.append(&mut got);
        rounds += 1;
        assert!(rounds < 1000, "no end to the batches of {sql}");
        r.send(&[execute("c1", batch), sync()]);
        got = r.until(b'Z');
    }
    out.append(&mut got);
    // One more Execute on the finished portal.
    r.send(&[execute("c1", batch), sync()]);
    out.append(&mut r.until(b'Z'));
    out.append(&mut simple(r, "COMMIT"));
    let mut close = vec![b'S'];
    cstr(&mut close, "s1");
    r.send(&[Raw::msg(b'C', &close), sync()]);
    out.append(&mut r.until(b'Z'));
    out
}

/// Errors by SQLSTATE, RowDescriptions without table OIDs.
fn comparable(f: Frames) -> Frames {
    let coded: Frames = f
        .into_iter()
        .map(|(t, b)| match t {
            b'E' => (t, sqlstate(&b).into_bytes()),
            _ => (t, b),
        })
        .collect();
    untabled(&coded)
}

fn lossy(f: &Frames) -> Vec<(char, String)> {
    f.iter()
        .map(|(t, b)| (*t as char, String::from_utf8_lossy(b).into_owned()))
        .collect()
}

/// The frames with each DataRow's body blanked, and the rows sorted.
fn shape(f: &Frames) -> (Frames, Vec<Vec<u8>>) {
    let mut rows: Vec<Vec<u8>> = f
        .iter()
        .filter(|(t, _)| *t == b'D')
        .map(|(_, b)| b.clone())
        .collect();
    rows.sort();
    let tags = f
        .iter()
        .map(|(t, b)| match t {
            b'D' => (*t, Vec::new()),
            _ => (*t, b.clone()),
        })
        .collect();
    (tags, rows)
}

const TABLE: &str = "[[tables]]\nname = \"t\"\nshard_key = \"id\"\nkey_type = \"bigint\"\n";

const SETUP: &[&str] = &[
    "CREATE TABLE t (id bigint PRIMARY KEY, g int, v text)",
    "INSERT INTO t SELECT i, i % 7, 'v' || (i * 37 % 101) FROM generate_series(1, 200) i",
];

/// (query, totally ordered?)
const QUERIES: &[(&str, bool)] = &[
    ("SELECT id, v FROM t ORDER BY id", true),
    (
        "SELECT id, v FROM t ORDER BY v DESC, id LIMIT 37 OFFSET 5",
        true,
    ),
    (
        "SELECT id FROM t WHERE id IN (3, 150, 77, 1000) ORDER BY id",
        true,
    ),
    ("SELECT id, g FROM t", false),
    ("SELECT id FROM t WHERE id > 190", false),
    (
        "SELECT g, count(*), min(v) FROM t GROUP BY g ORDER BY g",
        true,
    ),
    ("SELECT count(*) FROM t", true),
    ("SELECT DISTINCT g FROM t", false),
    ("SELECT id FROM t WHERE false", true),
    // No row: the write's own count, whatever the limit.
    ("UPDATE t SET g = g + 1 WHERE id > 100", true),
    ("UPDATE t SET g = g - 1 WHERE id > 100 RETURNING id", false),
    ("DELETE FROM t WHERE id < 0", true),
    ("SELECT id, v FROM t WHERE id = 42", true),
];

#[test]
fn portal_batches_match_one_postgres() {
    let (c, single) = with_baseline(4, TABLE, SETUP);
    let mut via = Raw::connect(c.sg.port());
    let mut direct = Raw::connect_as(single.port(), "postgres");
    let mut compared = 0;
    for (sql, ordered) in QUERIES {
        for batch in [1, 7, 50, 200, 1000] {
            for describe in [false, true] {
                let mut want = fetch(&mut direct, sql, batch, describe);
                let mut got = fetch(&mut via, sql, batch, describe);
                if sql.contains("GROUP BY") || sql.contains("DISTINCT") {
                    (want, got) = (untabled(&want), untabled(&got));
                }
                let what = format!("{sql} (batch {batch}, describe {describe})");
                // Errors compared by SQLSTATE (a finished write "cannot be
                // run" again).
                let codes = |f: &Frames| -> Frames {
                    f.iter()
                        .map(|(t, b)| match t {
                            b'E' => (*t, sqlstate(b).into_bytes()),
                            _ => (*t, b.clone()),
                        })
                        .collect()
                };
                let (want, got) = (codes(&want), codes(&got));
                if *ordered {
                    assert_eq!(
                        got,
                        want,
                        "{what}\n got: {:?}\nwant: {:?}",
                        lossy(&got),
                        lossy(&want)
                    );
                } else {
                    let (gt, gr) = shape(&got);
                    let (wt, wr) = shape(&want);
                    assert_eq!(
                        gt,
                        wt,
                        "{what}\n got: {:?}\nwant: {:?}",
                        lossy(&got),
                        lossy(&want)
                    );
                    assert_eq!(gr, wr, "{what}: rows");
                }
                compared += 1;
            }
        }
    }
    assert_eq!(compared, QUERIES.len() * 10);
    // The batches did happen: a 200-row read in batches of 7 is 29 of
    // them.
    let f = fetch(&mut via, "SELECT id FROM t ORDER BY id", 7, false);
    assert_eq!(f.iter().filter(|(t, _)| *t == b's').count(), 28);
}

/// A result the router would have to hold past max_merge_bytes: a clear
/// error, the transaction aborted, nothing half-sent; without a row limit
/// the same read streams.
#[test]
fn portal_batches_past_the_cap_are_refused() {
    let c = PgCluster::start_with(2, "max_merge_bytes = 4000\n", TABLE);
    for sql in SETUP {
        c.sg.psql(sql).unwrap();
    }
    let mut via = Raw::connect(c.sg.port());
    let f = fetch(&mut via, "SELECT id, v FROM t ORDER BY id", 10, false);
    let err = f.iter().find(|(t, _)| *t == b'E').expect("an error");
    assert_eq!(sqlstate(&err.1), "54000", "{:?}", lossy(&f));
    assert!(!f.iter().any(|(t, _)| *t == b'D'), "{:?}", lossy(&f));
    let f = fetch(&mut via, "SELECT id, v FROM t ORDER BY id", 0, false);
    assert_eq!(f.iter().filter(|(t, _)| *t == b'D').count(), 200);
    // Outside a transaction block a write commits before its reply is
    // complete: its rows go out whole (no cap, no limit), never an error
    // after the commit.
    via.send(&[
        parse("w", "UPDATE t SET v = v || 'x' RETURNING id, v"),
        bind("", "w"),
        execute("", 10),
        sync(),
    ]);
    let f = via.until(b'Z');
    assert!(!f.iter().any(|(t, _)| *t == b'E'), "{:?}", lossy(&f));
    assert_eq!(f.iter().filter(|(t, _)| *t == b'D').count(), 200);
    assert_eq!(
        c.sg.psql("SELECT count(*) FROM t WHERE v LIKE '%x' AND v NOT LIKE '%xx'")
            .unwrap(),
        "200"
    );
    // Small results still come in batches.
    let f = fetch(&mut via, "SELECT id FROM t ORDER BY id LIMIT 20", 10, false);
    assert_eq!(f.iter().filter(|(t, _)| *t == b'D').count(), 20);
    assert_eq!(f.iter().filter(|(t, _)| *t == b's').count(), 2);
}

/// Portals and prepared cursor statements around transaction ends:
/// a portal is gone after COMMIT; a FETCH prepared and described in the
/// extended protocol describes the cursor's rows (on the shard that has
/// it); each as one PostgreSQL answers.
#[test]
fn portals_and_cursor_statements_across_transactions() {
    let setup = [
        SETUP[0],
        SETUP[1],
        "CREATE TABLE plain (x int)",
        "INSERT INTO plain SELECT generate_series(1, 5)",
    ];
    let (c, single) = with_baseline(2, TABLE, &setup);
    let run = |r: &mut Raw| -> Frames {
        let mut out = simple(r, "BEGIN");
        r.send(&[
            parse("s1", "SELECT id FROM t ORDER BY id"),
            bind("c1", "s1"),
            execute("c1", 2),
            sync(),
        ]);
        out.append(&mut r.until(b'Z'));
        out.append(&mut simple(r, "COMMIT"));
        r.send(&[execute("c1", 2), sync()]);
        out.append(&mut r.until(b'Z'));
        out.append(&mut simple(r, "BEGIN"));
        out.append(&mut simple(
            r,
            "DECLARE p CURSOR FOR SELECT x FROM plain ORDER BY x",
        ));
        let mut describe = vec![b'S'];
        cstr(&mut describe, "f");
        r.send(&[
            parse("f", "FETCH 2 FROM p"),
            Raw::msg(b'D', &describe),
            bind("", "f"),
            execute("", 0),
            sync(),
        ]);
        out.append(&mut r.until(b'Z'));
        out.append(&mut simple(r, "COMMIT"));
        let mut close = vec![b'S'];
        cstr(&mut close, "s1");
        let mut close_f = vec![b'S'];
        cstr(&mut close_f, "f");
        r.send(&[Raw::msg(b'C', &close), Raw::msg(b'C', &close_f), sync()]);
        out.append(&mut r.until(b'Z'));
        comparable(out)
    };
    let run2 = |r: &mut Raw| -> Frames {
        // A DECLARE and its FETCH in one batch (the FETCH goes where the
        // DECLARE went); outside a block, a portal bound before a
        // key-moving UPDATE (which commits on its own) still runs after it.
        let mut out = simple(r, "BEGIN");
        r.send(&[
            parse("d", "DECLARE k CURSOR FOR SELECT id, v FROM t WHERE id = 7"),
            bind("pd", "d"),
            execute("pd", 0),
            parse("f", "FETCH ALL FROM k"),
            bind("pf", "f"),
            describe_portal("pf"),
            execute("pf", 0),
            sync(),
        ]);
        out.append(&mut r.until(b'Z'));
        out.append(&mut simple(r, "COMMIT"));
        r.send(&[
            parse("m", "UPDATE t SET id = id + 1000 WHERE id = 9"),
            bind("pm", "m"),
            parse("q", "SELECT id, v FROM t WHERE id = 20"),
            bind("pq", "q"),
            execute("pm", 0),
            execute("pq", 0),
            sync(),
        ]);
        out.append(&mut r.until(b'Z'));
        comparable(out)
    };
    let want = run2(&mut Raw::connect_as(single.port(), "postgres"));
    let got = run2(&mut Raw::connect(c.sg.port()));
    assert!(!want.iter().any(|(t, _)| *t == b'E'), "{:?}", lossy(&want));
    assert_eq!(
        got,
        want,
        "\n got: {:?}\nwant: {:?}",
        lossy(&got),
        lossy(&want)
    );
    let want = run(&mut Raw::connect_as(single.port(), "postgres"));
    let got = run(&mut Raw::connect(c.sg.port()));
    assert!(want.iter().any(|(t, b)| *t == b'E' && b == b"34000"));
    assert!(want.iter().any(|(t, _)| *t == b'T'));
    assert_eq!(
        got,
        want,
        "\n got: {:?}\nwant: {:?}",
        lossy(&got),
        lossy(&want)
    );
}
