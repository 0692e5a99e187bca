//! SQL cursors over sharded tables (DECLARE, FETCH, MOVE, CLOSE; SCROLL,
//! NO SCROLL, WITH HOLD): every reply is what one PostgreSQL holding all
//! the rows sends, message for message (errors by SQLSTATE).

mod common;

use common::{PgCluster, Raw, sqlstate, untabled, with_baseline};

type Frames = Vec<(u8, Vec<u8>)>;

fn simple(r: &mut Raw, sql: &str) -> Frames {
    let mut q = sql.as_bytes().to_vec();
    q.push(0);
    r.send(&[Raw::msg(b'Q', &q)]);
    r.until(b'Z')
        .into_iter()
        .map(|(t, b)| match t {
            b'E' => (t, sqlstate(&b).into_bytes()),
            _ => (t, b),
        })
        .collect()
}

fn lossy(f: &Frames) -> Vec<(char, String)> {
    f.iter()
        .map(|(t, b)| (*t as char, String::from_utf8_lossy(b).into_owned()))
        .collect()
}

const TABLE: &str = "[[tables]]\nname = \"t\"\nshard_key = \"id\"\nkey_type = \"bigint\"\n";

const SETUP: &[&str] = &[
    "CREATE TABLE t (id bigint PRIMARY KEY, g int, v text)",
    "INSERT INTO t SELECT i, i % 5, 'v' || (i * 37 % 101) FROM generate_series(1, 40) i",
    "CREATE TABLE plain (x int)",
    "INSERT INTO plain SELECT generate_series(1, 6)",
];

/// Scripts of statements, each compared reply by reply.
const SCRIPTS: &[&[&str]] = &[
    &[
        "BEGIN",
        "DECLARE c SCROLL CURSOR FOR SELECT id, v FROM t ORDER BY v DESC, id",
        "FETCH 3 FROM c",
        "FETCH NEXT FROM c",
        "FETCH PRIOR FROM c",
        "FETCH ABSOLUTE 10 FROM c",
        "FETCH RELATIVE -2 FROM c",
        "FETCH RELATIVE 0 FROM c",
        "MOVE FORWARD 5 IN c",
        "FETCH FORWARD 2 FROM c",
        "FETCH LAST FROM c",
        "FETCH NEXT FROM c",
        "FETCH NEXT FROM c",
        "FETCH BACKWARD 3 FROM c",
        "FETCH FIRST FROM c",
        "FETCH ABSOLUTE -3 FROM c",
        "FETCH ALL FROM c",
        "FETCH BACKWARD ALL FROM c",
        "MOVE ABSOLUTE 100 IN c",
        "FETCH PRIOR FROM c",
        "MOVE BACKWARD ALL IN c",
        "FETCH FORWARD ALL FROM c",
        "CLOSE c",
        "FETCH 1 FROM c",
        "ROLLBACK",
    ],
    &[
        "BEGIN",
        "DECLARE n NO SCROLL CURSOR FOR SELECT id FROM t WHERE id IN (7, 3, 30, 12) ORDER BY id",
        "FETCH 2 FROM n",
        "FETCH PRIOR FROM n",
        "ROLLBACK",
    ],
    &["DECLARE outside CURSOR FOR SELECT id FROM t ORDER BY id"],
    &[
        "DECLARE h CURSOR WITH HOLD FOR SELECT id, g FROM t ORDER BY g, id",
        "FETCH 5 FROM h",
        "BEGIN",
        "FETCH 2 FROM h",
        "COMMIT",
        "FETCH 2 FROM h",
        "CLOSE h",
        "FETCH 2 FROM h",
    ],
    &[
        "BEGIN",
        "DECLARE h2 CURSOR WITH HOLD FOR SELECT id FROM t ORDER BY id",
        "ROLLBACK",
        "FETCH 1 FROM h2",
    ],
    &[
        "BEGIN",
        "DECLARE h3 CURSOR WITH HOLD FOR SELECT id FROM t ORDER BY id",
        "FETCH 2 FROM h3",
        "COMMIT",
        "FETCH 2 FROM h3",
        "CLOSE ALL",
        "FETCH 2 FROM h3",
    ],
    &[
        "BEGIN",
        "DECLARE one CURSOR FOR SELECT id, v FROM t WHERE id = 5",
        "FETCH ALL FROM one",
        "FETCH ALL FROM one",
        "CLOSE one",
        "DECLARE p CURSOR FOR SELECT x FROM plain ORDER BY x",
        "FETCH 2 FROM p",
        "DECLARE d CURSOR FOR SELECT id FROM t ORDER BY id",
        "DECLARE d CURSOR FOR SELECT id FROM t ORDER BY id",
        "ROLLBACK",
    ],
    &[
        "BEGIN",
        "DECLARE a CURSOR FOR SELECT g, count(*), max(v) FROM t GROUP BY g ORDER BY g",
        "FETCH 2 FROM a",
        "FETCH ALL FROM a",
        "CLOSE ALL",
        "DECLARE p CURSOR FOR SELECT x FROM plain ORDER BY x",
        "FETCH 2 FROM p",
        "CLOSE ALL",
        "FETCH 2 FROM p",
        "COMMIT",
    ],
    &[
        "BEGIN",
        "DECLARE r CURSOR FOR SELECT id FROM t ORDER BY id",
        "RESET ALL",
        "FETCH 2 FROM r",
        "SAVEPOINT a",
        "DECLARE r2 CURSOR FOR SELECT id FROM t ORDER BY id DESC",
        "DECLARE bad CURSOR FOR SELECT nosuch FROM t WHERE id = 1",
        "ROLLBACK TO a",
        "FETCH 1 FROM r2",
        "ROLLBACK TO SAVEPOINT a",
        "FETCH 1 FROM r",
        "DECLARE bad CURSOR FOR SELECT id FROM t WHERE id = 1",
        "FETCH ALL FROM bad",
        "SAVEPOINT \"B\"",
        "DECLARE r3 CURSOR FOR SELECT g FROM t ORDER BY g, id",
        "RELEASE \"B\"",
        "FETCH 2 FROM r3",
        "DISCARD ALL",
        "ROLLBACK",
    ],
    &[
        "BEGIN",
        "DECLARE ns NO SCROLL CURSOR FOR SELECT id FROM t ORDER BY id",
        "FETCH LAST FROM ns",
        "ROLLBACK",
        "BEGIN",
        "DECLARE ns NO SCROLL CURSOR FOR SELECT id FROM t ORDER BY id",
        "MOVE 0 IN ns",
        "FETCH ABSOLUTE 0 FROM ns",
        "FETCH 0 FROM ns",
        "/* app */ FETCH 2 FROM ns -- two",
        "MOVE 0 IN ns",
        "FETCH 0 FROM ns",
        "ROLLBACK",
        "DECLARE upd CURSOR WITH HOLD FOR SELECT id FROM t ORDER BY id FOR UPDATE",
    ],
    &[
        "BEGIN",
        "/* c */ SAVEPOINT a",
        "DECLARE sc CURSOR FOR SELECT id FROM t ORDER BY id",
        "ROLLBACK TO a -- undo",
        "FETCH 1 FROM sc",
        "ROLLBACK",
        "BEGIN",
        "DECLARE nb NO SCROLL CURSOR FOR SELECT id FROM t ORDER BY id",
        "MOVE BACKWARD ALL IN nb",
        "FETCH 1 FROM nb",
        "ROLLBACK",
    ],
    &[
        "BEGIN",
        "DECLARE e CURSOR FOR SELECT id FROM t ORDER BY id",
        "FETCH 1 FROM e",
        "SELECT 1/0",
        "FETCH 1 FROM e",
        "ROLLBACK",
        "FETCH 1 FROM e",
    ],
];

#[test]
fn cursors_over_shards_match_one_postgres() {
    let (c, single) = with_baseline(4, TABLE, SETUP);
    let mut via = Raw::connect(c.sg.port());
    let mut direct = Raw::connect_as(single.port(), "postgres");
    let mut compared = 0;
    for script in SCRIPTS {
        for sql in *script {
            let want = untabled(&simple(&mut direct, sql));
            let got = untabled(&simple(&mut via, sql));
            assert_eq!(
                got,
                want,
                "{sql}\n got: {:?}\nwant: {:?}",
                lossy(&got),
                lossy(&want)
            );
            compared += 1;
        }
    }
    assert!(compared > 60);
    // Rows without an order: the same multiset.
    let rows = |r: &mut Raw| {
        simple(r, "BEGIN");
        simple(r, "DECLARE u CURSOR FOR SELECT id, g FROM t WHERE g <> 2");
        let mut got: Vec<Vec<u8>> = simple(r, "FETCH ALL FROM u")
            .into_iter()
            .filter(|(t, _)| *t == b'D')
            .map(|(_, b)| b)
            .collect();
        simple(r, "COMMIT");
        got.sort();
        got
    };
    let want = rows(&mut direct);
    assert_eq!(want.len(), 32);
    assert_eq!(rows(&mut via), want);
    // psycopg 3's server-side cursor: DECLARE with a bound key (extended
    // protocol), Describe of the cursor's portal, FETCH in the extended
    // protocol.
    let psycopg = |r: &mut Raw| -> Frames {
        let mut out = simple(r, "BEGIN");
        let mut bind = b"\0\0".to_vec(); // portal "", statement ""
        bind.extend_from_slice(&0i16.to_be_bytes()); // parameters in text
        bind.extend_from_slice(&1i16.to_be_bytes());
        bind.extend_from_slice(&2i32.to_be_bytes());
        bind.extend_from_slice(b"17");
        bind.extend_from_slice(&0i16.to_be_bytes()); // results in text
        r.send(&[
            Raw::parse("DECLARE pc NO SCROLL CURSOR FOR SELECT id, v FROM t WHERE id = $1"),
            Raw::msg(b'B', &bind),
            Raw::execute(0),
            Raw::msg(b'D', b"Ppc\0"),
            Raw::msg(b'S', b""),
        ]);
        out.extend(r.until(b'Z'));
        r.send(&[
            Raw::parse("FETCH FORWARD 5 FROM pc"),
            Raw::bind(),
            Raw::execute(0),
            Raw::msg(b'S', b""),
        ]);
        out.extend(r.until(b'Z'));
        out.extend(simple(r, "COMMIT"));
        out.into_iter()
            .map(|(t, b)| match t {
                b'E' => (t, sqlstate(&b).into_bytes()),
                _ => (t, b),
            })
            .collect()
    };
    let want = untabled(&psycopg(&mut direct));
    assert!(want.iter().any(|(t, _)| *t == b'T'), "{:?}", lossy(&want));
    assert!(want.iter().any(|(t, _)| *t == b'D'), "{:?}", lossy(&want));
    let got = untabled(&psycopg(&mut via));
    assert_eq!(
        got,
        want,
        "\n got: {:?}\nwant: {:?}",
        lossy(&got),
        lossy(&want)
    );
}

/// A cursor the router holds is capped at max_merge_bytes: a clear error.
#[test]
fn held_cursors_past_the_cap_are_refused() {
    let c = PgCluster::start_with(2, "max_merge_bytes = 500\n", TABLE);
    for sql in SETUP {
        c.sg.psql(sql).unwrap();
    }
    let mut via = Raw::connect(c.sg.port());
    simple(&mut via, "BEGIN");
    let f = simple(
        &mut via,
        "DECLARE big CURSOR FOR SELECT id, v FROM t ORDER BY id",
    );
    assert!(
        f.iter().any(|(t, b)| *t == b'E' && b == b"54000"),
        "{:?}",
        lossy(&f)
    );
    simple(&mut via, "ROLLBACK");
    // The same cap in the extended protocol; a binary FETCH of a held
    // cursor is refused, not answered in text.
    let ext = |via: &mut Raw, sql: &str, binary: bool| {
        let mut bind = b"\0\0\0\0\0\0".to_vec();
        bind.extend_from_slice(&(binary as i16).to_be_bytes());
        if binary {
            bind.extend_from_slice(&1i16.to_be_bytes());
        }
        via.send(&[
            Raw::parse(sql),
            Raw::msg(b'B', &bind),
            Raw::execute(0),
            Raw::msg(b'S', &[]),
        ]);
        let f = via.until(b'Z');
        f.iter()
            .find(|(t, _)| *t == b'E')
            .map(|e| sqlstate(&e.1))
            .unwrap_or_default()
    };
    let plain = simple(
        &mut via,
        "DECLARE z CURSOR WITH HOLD FOR SELECT id, v FROM t",
    );
    assert!(
        plain.iter().any(|(t, b)| *t == b'E' && b == b"54000"),
        "{:?}",
        lossy(&plain)
    );
    for sql in [
        "DECLARE x CURSOR WITH HOLD FOR SELECT id, v FROM t ORDER BY id",
        "DECLARE x CURSOR WITH HOLD FOR SELECT id, v FROM t",
    ] {
        assert_eq!(ext(&mut via, sql, false), "54000", "{sql}");
    }
    assert_eq!(
        ext(
            &mut via,
            "DECLARE y CURSOR WITH HOLD FOR SELECT id FROM t WHERE id < 5",
            false
        ),
        ""
    );
    assert_eq!(ext(&mut via, "FETCH 2 FROM y", true), "0A000");
    assert_eq!(ext(&mut via, "FETCH 2 FROM y", false), "");
}

/// asyncpg's `Cursor.forward`: a portal bound in the extended protocol,
/// moved with SQL `MOVE` (before and after Executes that read it), as one
/// PostgreSQL moves it: merged, single-shard and unsharded portals.
#[test]
fn move_of_extended_protocol_portals_matches_one_postgres() {
    let (c, single) = with_baseline(4, TABLE, SETUP);
    let mut via = Raw::connect(c.sg.port());
    let mut direct = Raw::connect_as(single.port(), "postgres");
    // Bind portal "p" of `sql` (no Execute), then the steps: `m n` (MOVE
    // FORWARD n), `e n` (Execute n rows).
    let run = |r: &mut Raw, sql: &str, steps: &[(&str, i32)]| -> Frames {
        let mut out = simple(r, "BEGIN");
        let mut parse = b"\0".to_vec();
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(b"\0\0\0");
        r.send(&[
            Raw::msg(b'P', &parse),
            Raw::msg(b'B', b"p\0\0\0\0\0\0\0\0"),
            Raw::msg(b'S', b""),
        ]);
        out.extend(r.until(b'Z'));
        for (op, n) in steps {
            if *op == "m" {
                let all = if *n < 0 {
                    "ALL".to_string()
                } else {
                    n.to_string()
                };
                out.extend(simple(r, &format!("MOVE FORWARD {all} p")));
            } else {
                let mut e = b"p\0".to_vec();
                e.extend_from_slice(&n.to_be_bytes());
                r.send(&[Raw::msg(b'E', &e), Raw::msg(b'S', b"")]);
                out.extend(r.until(b'Z'));
            }
        }
        out.extend(simple(r, "COMMIT"));
        out
    };
    let mut compared = 0;
    for sql in [
        "SELECT id, v FROM t ORDER BY id",
        "SELECT g, count(*) FROM t GROUP BY g ORDER BY g",
        "SELECT id, v FROM t WHERE id = 7",
        "SELECT x FROM plain ORDER BY x",
    ] {
        for steps in [
            &[("m", 3), ("e", 2), ("m", 1), ("e", 100)][..],
            &[("e", 2), ("m", 2), ("e", 1), ("m", -1), ("e", 5)],
            &[("m", 0), ("e", 1), ("m", 100), ("e", 1)],
            &[("m", -1), ("e", 1)],
        ] {
            let want = untabled(&run(&mut direct, sql, steps));
            let got = untabled(&run(&mut via, sql, steps));
            assert_eq!(
                got,
                want,
                "{sql} {steps:?}\n got: {:?}\nwant: {:?}",
                lossy(&got),
                lossy(&want)
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 16);
    // Backward, and FETCH through SQL: refused, the transaction failed.
    for (step, code) in [("MOVE BACKWARD 1 p", "0A000"), ("FETCH 1 FROM p", "0A000")] {
        simple(&mut via, "BEGIN");
        via.send(&[
            Raw::parse("SELECT id FROM t ORDER BY id"),
            Raw::msg(b'B', b"p\0\0\0\0\0\0\0\0"),
            Raw::msg(b'S', b""),
        ]);
        via.until(b'Z');
        let r = simple(&mut via, step);
        assert!(
            r.iter().any(|(t, b)| *t == b'E' && b == code.as_bytes()),
            "{step}: {:?}",
            lossy(&r)
        );
        simple(&mut via, "ROLLBACK");
    }
}

/// Cursors the router holds (over several shards, WITH HOLD) in the
/// extended protocol, as psycopg 3's named cursors use them: DECLARE with
/// a bound parameter, FETCH with and without a Describe of its portal,
/// MOVE, CLOSE; the same replies as one PostgreSQL's.
#[test]
fn held_cursors_in_the_extended_protocol_match_one_postgres() {
    let (c, single) = with_baseline(4, TABLE, SETUP);
    let mut via = Raw::connect(c.sg.port());
    let mut direct = Raw::connect_as(single.port(), "postgres");
    // One statement in the extended protocol: Parse, Bind (text
    // parameters), [Describe portal], Execute, Sync.
    let ext = |r: &mut Raw, sql: &str, params: &[&str], describe: bool| -> Frames {
        let mut bind = b"\0\0\0\0".to_vec();
        bind.extend_from_slice(&(params.len() as i16).to_be_bytes());
        for p in params {
            bind.extend_from_slice(&(p.len() as i32).to_be_bytes());
            bind.extend_from_slice(p.as_bytes());
        }
        bind.extend_from_slice(&0i16.to_be_bytes());
        let mut parts = vec![Raw::parse(sql), Raw::msg(b'B', &bind)];
        if describe {
            parts.push(Raw::msg(b'D', b"P\0"));
        }
        parts.push(Raw::execute(0));
        parts.push(Raw::msg(b'S', b""));
        r.send(&parts);
        r.until(b'Z')
            .into_iter()
            .map(|(t, b)| match t {
                b'E' => (t, sqlstate(&b).into_bytes()),
                _ => (t, b),
            })
            .collect()
    };
    let script: &[(&str, &[&str], bool)] = &[
        (
            "DECLARE h CURSOR WITH HOLD FOR SELECT id, v FROM t WHERE id > $1 ORDER BY id",
            &["30"],
            true,
        ),
        ("FETCH 3 FROM h", &[], true),
        ("FETCH FORWARD 2 FROM h", &[], false),
        ("MOVE 2 IN h", &[], true),
        ("FETCH ALL FROM h", &[], true),
        ("CLOSE h", &[], false),
        ("BEGIN", &[], false),
        (
            "DECLARE s SCROLL CURSOR FOR SELECT g, count(*) FROM t WHERE v <> $1 GROUP BY g ORDER BY g",
            &["v1"],
            false,
        ),
        ("FETCH LAST FROM s", &[], true),
        ("FETCH BACKWARD 2 FROM s", &[], true),
        ("FETCH ABSOLUTE 1 FROM s", &[], false),
        ("COMMIT", &[], false),
        ("FETCH 1 FROM s", &[], true),
    ];
    for (sql, params, describe) in script {
        let want = untabled(&ext(&mut direct, sql, params, *describe));
        let got = untabled(&ext(&mut via, sql, params, *describe));
        assert_eq!(
            got,
            want,
            "{sql}\n got: {:?}\nwant: {:?}",
            lossy(&got),
            lossy(&want)
        );
    }
}
