//! Extended-protocol batches (pipelines: JDBC's executeBatch, psycopg's
//! executemany, Npgsql's batches) that write to several shards outside a
//! transaction block. In PostgreSQL a batch up to Sync is one implicit
//! transaction: everything in it commits at Sync, or nothing does. Through
//! shardgate the batch becomes a transaction of the router's, committed
//! with two-phase commit; every reply is compared, message for message,
//! with one plain PostgreSQL holding the same rows, and so are the rows
//! left behind. Also: portals of statements whose subqueries run first,
//! described before they run.

mod common;

use common::{PgCluster, Raw, sqlstate, untabled, with_baseline};
use std::collections::BTreeSet;

type Frames = Vec<(u8, Vec<u8>)>;

const TABLE: &str =
    "[[tables]]\nname = \"orders\"\nshard_key = \"customer_id\"\nkey_type = \"bigint\"\n";

const SETUP: &[&str] = &[
    "CREATE TABLE orders (customer_id bigint, id bigint, amount int NOT NULL CHECK (amount >= 0), \
     PRIMARY KEY (customer_id, id), \
     CONSTRAINT one_amount UNIQUE (customer_id, amount) DEFERRABLE INITIALLY DEFERRED)",
    "INSERT INTO orders SELECT i, i, i * 10 FROM generate_series(1, 40) i",
];

fn cstr(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(s.as_bytes());
    b.push(0);
}

/// Parse (unnamed), Bind, Describe portal and Execute of `sql`: what a
/// driver sends for each statement of a batch.
fn stmt(sql: &str) -> Vec<Vec<u8>> {
    let mut p = Vec::new();
    cstr(&mut p, "");
    cstr(&mut p, sql);
    p.extend_from_slice(&0i16.to_be_bytes());
    let mut d = vec![b'P'];
    cstr(&mut d, "");
    vec![
        Raw::msg(b'P', &p),
        Raw::bind(),
        Raw::msg(b'D', &d),
        Raw::execute(0),
    ]
}

/// One batch of `sqls` ended by a Sync; the frames up to ReadyForQuery.
fn batch(r: &mut Raw, sqls: &[&str]) -> Frames {
    let mut msgs: Vec<Vec<u8>> = sqls.iter().flat_map(|s| stmt(s)).collect();
    msgs.push(Raw::msg(b'S', &[]));
    r.send(&msgs);
    r.until(b'Z')
}

fn simple(r: &mut Raw, sql: &str) -> Frames {
    let mut q = Vec::new();
    cstr(&mut q, sql);
    r.send(&[Raw::msg(b'Q', &q)]);
    r.until(b'Z')
}

/// Frames with errors and notices reduced to their SQLSTATE and table
/// OIDs blanked (each server has its own).
fn comparable(f: &Frames) -> Frames {
    untabled(f)
        .into_iter()
        .map(|(t, b)| match t {
            b'E' | b'N' => (t, sqlstate(&b).into_bytes()),
            _ => (t, b),
        })
        .collect()
}

fn lossy(f: &Frames) -> Vec<(char, String)> {
    f.iter()
        .map(|(t, b)| (*t as char, String::from_utf8_lossy(b).into_owned()))
        .collect()
}

const ROWS: &str = "SELECT customer_id, id, amount FROM orders ORDER BY customer_id, id";

/// Runs each case on both, compares replies and the rows left behind.
struct Compare {
    c: PgCluster,
    single: shardgate_testkit::PgServer,
    via: Raw,
    direct: Raw,
}

impl Compare {
    fn start() -> Compare {
        let (c, single) = with_baseline(4, TABLE, SETUP);
        let via = Raw::connect(c.sg.port());
        let direct = Raw::connect_as(single.port(), "postgres");
        Compare {
            c,
            single,
            via,
            direct,
        }
    }

    /// The shards that own `keys`.
    fn owners(&self, keys: &[i64]) -> BTreeSet<String> {
        keys.iter()
            .map(|k| {
                self.c
                    .sg
                    .psql(&format!("SELECT shardgate.shard_of('orders', '{k}')"))
                    .unwrap()
            })
            .collect()
    }

    /// Run `step` on both and compare what each sent back.
    fn same(&mut self, what: &str, step: impl Fn(&mut Raw) -> Frames) -> Frames {
        let want = comparable(&step(&mut self.direct));
        let got = comparable(&step(&mut self.via));
        assert_eq!(
            got,
            want,
            "{what}\n got: {:?}\nwant: {:?}",
            lossy(&got),
            lossy(&want)
        );
        got
    }

    /// The rows are the same on both, and no shard holds a prepared
    /// transaction.
    fn rows_agree(&self, what: &str) {
        let got = self.c.sg.psql(ROWS).unwrap();
        let want = self.single.psql(ROWS).unwrap();
        assert_eq!(got, want, "{what}: rows");
        for s in &self.c.shards {
            assert_eq!(
                s.psql("SELECT count(*) FROM pg_prepared_xacts").unwrap(),
                "0",
                "{what}: a prepared transaction was left"
            );
        }
    }
}

fn has_error(f: &Frames, code: &str) -> bool {
    f.iter().any(|(t, b)| *t == b'E' && b == code.as_bytes())
}

#[test]
fn batches_writing_to_several_shards_are_one_transaction() {
    let mut t = Compare::start();
    let keys: Vec<i64> = (101..=108).collect();
    assert!(t.owners(&keys).len() > 1, "the keys must span shards");
    let ins = |k: i64| format!("INSERT INTO orders VALUES ({k}, {k}, 5)");

    // Committed whole.
    let sqls: Vec<String> = keys.iter().map(|k| ins(*k)).collect();
    let refs: Vec<&str> = sqls.iter().map(String::as_str).collect();
    let f = t.same("inserts on several shards", |r| batch(r, &refs));
    assert_eq!(f.last().unwrap(), &(b'Z', b"I".to_vec()));
    t.rows_agree("inserts on several shards");

    // A failure late in the batch: nothing of it stays.
    let mut sqls: Vec<String> = (111..=118).map(ins).collect();
    sqls.push(ins(111));
    let refs: Vec<&str> = sqls.iter().map(String::as_str).collect();
    let f = t.same("a duplicate at the end", |r| batch(r, &refs));
    assert!(has_error(&f, "23505"));
    t.rows_agree("a duplicate at the end");

    // Writes, then merged reads that see them, then more writes.
    let f = t.same("writes, merged reads, writes", |r| {
        batch(
            r,
            &[
                "INSERT INTO orders VALUES (121, 121, 7), (122, 122, 8)",
                "UPDATE orders SET amount = amount + 1 WHERE amount < 50",
                "SELECT customer_id, amount FROM orders ORDER BY amount DESC, customer_id LIMIT 5",
                "SELECT count(*), sum(amount) FROM orders",
                "DELETE FROM orders WHERE customer_id IN (2, 121, 33)",
                "UPDATE orders SET amount = amount * 2 WHERE customer_id IN (1, 3, 5, 7)",
                "UPDATE orders SET amount = amount * 3 WHERE customer_id = 9 RETURNING customer_id, amount",
            ],
        )
    });
    assert!(!f.iter().any(|(t, _)| *t == b'E'), "{:?}", lossy(&f));
    t.rows_agree("writes, merged reads, writes");

    // A failure after a merged read and a multi-shard UPDATE.
    let f = t.same("a failure after reads", |r| {
        batch(
            r,
            &[
                "UPDATE orders SET amount = amount + 100",
                "SELECT customer_id FROM orders ORDER BY customer_id DESC LIMIT 3",
                "INSERT INTO orders VALUES (131, 131, 1)",
                "UPDATE orders SET amount = amount - 1000 WHERE customer_id = 4",
                "INSERT INTO orders VALUES (132, 132, 1)",
            ],
        )
    });
    assert!(has_error(&f, "23514"));
    t.rows_agree("a failure after reads");

    // A deferred constraint that fails at commit (on one shard's PREPARE):
    // the error comes at Sync and no shard keeps its part.
    let f = t.same("a deferred constraint failing at commit", |r| {
        batch(
            r,
            &[
                "INSERT INTO orders VALUES (141, 1041, 1)",
                "INSERT INTO orders VALUES (142, 1042, 1)",
                "INSERT INTO orders VALUES (141, 1043, 1)",
            ],
        )
    });
    assert!(has_error(&f, "23505"));
    t.rows_agree("a deferred constraint failing at commit");

    // A shard key moved in a batch with other writes: part of the batch's
    // transaction, so a failure after it undoes it (first), else it
    // commits with the rest.
    let (from, to) = (6i64, 150i64);
    assert!(
        t.owners(&[from]) != t.owners(&[to]),
        "the move must cross shards"
    );
    for tail in [
        "INSERT INTO orders VALUES (8, 8, 1)",
        "INSERT INTO orders VALUES (151, 151, 1)",
    ] {
        let what = format!("a key move, then {tail}");
        let move_sql = format!("UPDATE orders SET customer_id = {to} WHERE customer_id = {from}");
        t.same(&what, |r| {
            batch(
                r,
                &[
                    "INSERT INTO orders VALUES (152, 152, 2)",
                    move_sql.as_str(),
                    tail,
                ],
            )
        });
        t.rows_agree(&what);
    }
}

#[test]
fn transaction_control_inside_such_batches() {
    let mut t = Compare::start();
    assert!(t.owners(&[201, 202, 203]).len() > 1);

    // COMMIT ends the implicit transaction (with PostgreSQL's warning);
    // what follows runs in a new one, whose failure does not undo it.
    let f = t.same("COMMIT in the batch", |r| {
        batch(
            r,
            &[
                "INSERT INTO orders VALUES (201, 201, 1)",
                "INSERT INTO orders VALUES (202, 202, 1)",
                "INSERT INTO orders VALUES (203, 203, 1)",
                "COMMIT",
                "INSERT INTO orders VALUES (204, 204, 1)",
                "INSERT INTO orders VALUES (201, 201, 1)",
            ],
        )
    });
    assert!(f.iter().any(|(t, b)| *t == b'N' && b == b"25P01"));
    assert!(has_error(&f, "23505"));
    t.rows_agree("COMMIT in the batch");

    // ROLLBACK undoes what came before it in the batch.
    t.same("ROLLBACK in the batch", |r| {
        batch(
            r,
            &[
                "INSERT INTO orders VALUES (211, 211, 1)",
                "INSERT INTO orders VALUES (212, 212, 1)",
                "INSERT INTO orders VALUES (213, 213, 1)",
                "ROLLBACK",
                "INSERT INTO orders VALUES (214, 214, 1)",
            ],
        )
    });
    t.rows_agree("ROLLBACK in the batch");

    // BEGIN makes the batch a transaction block that outlives Sync: the
    // writes before it are part of the block (rolled back here).
    let f = t.same("BEGIN in the batch", |r| {
        let mut f = batch(
            r,
            &[
                "INSERT INTO orders VALUES (221, 221, 1)",
                "INSERT INTO orders VALUES (222, 222, 1)",
                "INSERT INTO orders VALUES (223, 223, 1)",
                "BEGIN",
                "INSERT INTO orders VALUES (224, 224, 1)",
            ],
        );
        f.extend(simple(r, "SELECT count(*) FROM orders WHERE id > 220"));
        f.extend(simple(r, "ROLLBACK"));
        f
    });
    assert!(f.iter().any(|(t, b)| *t == b'Z' && b == b"T"));
    t.rows_agree("BEGIN in the batch");

    // ... and committed there.
    t.same("BEGIN in the batch, then COMMIT", |r| {
        let mut f = batch(
            r,
            &[
                "INSERT INTO orders VALUES (231, 231, 1)",
                "INSERT INTO orders VALUES (232, 232, 1)",
                "INSERT INTO orders VALUES (233, 233, 1)",
                "BEGIN",
            ],
        );
        f.extend(simple(r, "COMMIT"));
        f
    });
    t.rows_agree("BEGIN in the batch, then COMMIT");

    // No savepoints in an implicit transaction.
    let f = t.same("SAVEPOINT in the batch", |r| {
        batch(
            r,
            &[
                "INSERT INTO orders VALUES (241, 241, 1)",
                "INSERT INTO orders VALUES (242, 242, 1)",
                "INSERT INTO orders VALUES (243, 243, 1)",
                "SAVEPOINT a",
                "INSERT INTO orders VALUES (244, 244, 1)",
            ],
        )
    });
    assert!(has_error(&f, "25P01"));
    t.rows_agree("SAVEPOINT in the batch");

    // Nor in a query string of several statements.
    let f = t.same("SAVEPOINT in a query string", |r| {
        simple(
            r,
            "INSERT INTO orders VALUES (251, 251, 1); INSERT INTO orders VALUES (252, 252, 1); SAVEPOINT a; INSERT INTO orders VALUES (253, 253, 1)",
        )
    });
    assert!(has_error(&f, "25P01"));
    t.rows_agree("SAVEPOINT in a query string");

    // After all that, batches start clean.
    t.same("a batch after", |r| {
        batch(
            r,
            &[
                "INSERT INTO orders VALUES (261, 261, 1)",
                "INSERT INTO orders VALUES (262, 262, 1)",
                "SELECT count(*) FROM orders",
            ],
        )
    });
    t.rows_agree("a batch after");
}

/// A portal whose statement runs subqueries first, described without
/// being executed (Describe portal, then Sync), and then described and
/// executed in one batch, as drivers do.
#[test]
fn portals_that_run_subqueries_first_are_described() {
    let mut t = Compare::start();
    let sql = "SELECT customer_id, amount, amount > (SELECT avg(amount) FROM orders) AS big FROM orders WHERE amount > (SELECT avg(amount) FROM orders) ORDER BY customer_id";
    let describe_only = |r: &mut Raw| {
        let mut msgs = stmt(sql);
        msgs.pop(); // no Execute
        msgs.push(Raw::msg(b'S', &[]));
        r.send(&msgs);
        r.until(b'Z')
    };
    let f = t.same("Describe portal alone", describe_only);
    assert!(f.iter().any(|(t, _)| *t == b'T'), "{:?}", lossy(&f));
    let f = t.same("Describe portal and Execute", |r| batch(r, &[sql]));
    assert!(f.iter().filter(|(t, _)| *t == b'D').count() > 3);
}
