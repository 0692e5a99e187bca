//! Differential tests (issue 4): shardgate must answer every query exactly as
//! one PostgreSQL holding the same rows would, or refuse it (SQLSTATE 0A000).
//!
//! - Reads: each query of `differential/queries.sql` runs through shardgate
//!   over four PostgreSQL shards and on one plain PostgreSQL, in the simple
//!   protocol (text), the extended protocol with binary results
//!   (tokio-postgres, raw bytes per column) and the extended protocol with
//!   text results (Parse/Bind/Describe/Execute/Sync by hand). Column names,
//!   types, typmods and formats, command tags and rows must be equal: in
//!   order for queries tagged `@ordered`, else as multisets. float4/float8
//!   values may differ by a relative 1e-9 (a sum's order differs); all else
//!   exactly.
//! - Outcomes: pass; refused (shardgate 0A000 where PostgreSQL answered,
//!   or failed otherwise),
//!   allowed unless the query is tagged `@must`; both failed with the same
//!   SQLSTATE: pass. Anything else (other rows, columns or errors, no answer
//!   within 30 s) is a failure; all are collected and reported at the end.
//! - Writes: each statement of `differential/writes.sql` runs on a fresh copy
//!   of `w_orders` on both sides; tags, RETURNING rows and the whole table
//!   after it must match (after a refusal, the table must be unchanged).
//! - Embedded: the same reads through shardgate on four SQLite shards against
//!   shardgate on one SQLite shard; an error on either side is "unsupported",
//!   only different answers fail. SQLite keeps numeric as REAL and types
//!   computed columns as text, so there numeric values and decimal-looking
//!   text values get the float tolerance too (column types stay exact).
//!
//! `cargo test -p shardgate --test differential -- --nocapture` prints the
//! counts and the refused queries.

mod common;
#[path = "differential/generated.rs"]
mod generated;
#[path = "differential/generated_writes.rs"]
mod generated_writes;
#[path = "differential/parameterize.rs"]
mod parameterize;

use common::{PgCluster, RawValue, bin, client};
use shardgate_testkit::{PgServer, Shardgate};
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const QUERIES: &str = include_str!("differential/queries.sql");
const WRITES: &str = include_str!("differential/writes.sql");
/// The generated reads CI runs (see `differential/generated.rs`).
const GEN_SEED: u64 = 1;
const GEN_COUNT: usize = 300;
const GEN_WRITES: usize = 60;
/// The longest either side may take to answer one statement.
const TIMEOUT: Duration = Duration::from_secs(30);

const TABLES: &str = r#"
[[tables]]
name = "customers"
shard_key = "id"
key_type = "bigint"
[[tables]]
name = "orders"
shard_key = "customer_id"
key_type = "bigint"
[[tables]]
name = "order_items"
shard_key = "customer_id"
key_type = "bigint"
[[tables]]
name = "w_orders"
shard_key = "customer_id"
key_type = "bigint"
[[reference_tables]]
name = "products"
"#;

const SCHEMA: &[&str] = &[
    "CREATE TABLE customers (id bigint PRIMARY KEY, name text, email varchar(100), region text, \
     tier smallint, credit numeric(12,2), score float8, active bool, signup date, last_seen timestamp)",
    "CREATE TABLE orders (customer_id bigint NOT NULL, id bigint NOT NULL, status text, qty int, \
     amount numeric(12,2), discount numeric, weight float8, priority smallint, paid bool, \
     note varchar(40), ordered_on date, created_at timestamp, PRIMARY KEY (customer_id, id))",
    "CREATE TABLE order_items (customer_id bigint NOT NULL, order_id bigint NOT NULL, line int NOT NULL, \
     product_id int, qty int, price numeric(10,2), PRIMARY KEY (customer_id, order_id, line))",
    "CREATE TABLE products (id int PRIMARY KEY, name text, category text, price numeric(10,2), \
     weight real, discontinued bool)",
    "CREATE TABLE w_orders (customer_id bigint NOT NULL, id bigint NOT NULL, status text, qty int, \
     amount numeric(12,2), weight float8, note text, PRIMARY KEY (customer_id, id))",
];

// ------------------------------------------------------------------ data

/// splitmix64: the same rows on every run and platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const NAMES: &[&str] = &[
    "Alice",
    "alice",
    "ALICE",
    "Bob",
    "bob",
    "Émile",
    "émile",
    "Zoë",
    "Ørsted",
    "日本太郎",
    "李小龙",
    "O'Brien",
    "",
    "  spaced  ",
    "Ünal",
    "mIxEd CaSe",
    "Straße",
    "naïve",
    "Z",
    "a",
];
const REGIONS: &[&str] = &["EU", "eu", "us", "US", "Asia", "", "LatAm"];
const STATUSES: &[&str] = &["new", "paid", "shipped", "cancelled", "Returned", ""];
const NOTES: &[&str] = &[
    "gift",
    "Gift",
    "rush ⚡",
    "",
    "ß",
    "fragile",
    "日本",
    "call first",
];
/// Each value has one spelling, so equal numerics always print alike.
const DISCOUNTS: &[&str] = &[
    "0",
    "0.5",
    "0.125",
    "1.3333333333",
    "-2",
    "10.10",
    "3.14159265358979",
    "100",
];
const CATEGORIES: &[&str] = &["Tools", "toys", "Food", "éclair", "Garden"];

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn or_null(null: bool, v: String) -> String {
    if null { "NULL".to_string() } else { v }
}

fn cents(c: i64) -> String {
    let sign = if c < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", c.abs() / 100, c.abs() % 100)
}

fn date(d: u64) -> String {
    format!(
        "{}-{:02}-{:02}",
        2019 + d / 336 % 6,
        d / 28 % 12 + 1,
        d % 28 + 1
    )
}

fn timestamp(r: &mut Rng) -> String {
    if r.one_in(20) {
        return "2021-05-05 05:05:05".to_string();
    }
    format!(
        "{} {:02}:{:02}:{:02}",
        date(r.below(2016)),
        r.below(24),
        r.below(60),
        r.below(60)
    )
}

/// INSERT statements of `rows` (each a parenthesised tuple), 250 per statement.
fn inserts(table: &str, cols: &str, rows: &[String]) -> Vec<String> {
    rows.chunks(250)
        .map(|c| format!("INSERT INTO {table} ({cols}) VALUES {}", c.join(", ")))
        .collect()
}

/// The rows of the read tables: 200 customers (181..200 without orders),
/// ~2,500 orders (customers 1, 2 and 3 with 400, 250 and 120), ~5,000 order
/// items, 50 products.
fn data() -> Vec<String> {
    let mut r = Rng(4);
    let mut customers = Vec::new();
    for id in 1..=200u64 {
        let email = if id % 5 == 0 {
            format!("User{id}@Example.COM")
        } else {
            format!("user{id}@example.com")
        };
        let score = if r.one_in(10) {
            "42".to_string()
        } else {
            format!("{}", r.below(2_000_000) as f64 / 3.0 - 1000.0)
        };
        customers.push(format!(
            "({id}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            or_null(r.one_in(17), lit(r.pick(NAMES))),
            or_null(id % 13 == 0, lit(&email)),
            or_null(r.one_in(12), lit(r.pick(REGIONS))),
            or_null(r.one_in(11), (r.below(5) as i64 - 1).to_string()),
            or_null(r.one_in(9), cents(r.below(2_000_000) as i64 - 500_000)),
            or_null(r.one_in(10), score),
            r.pick(&["true", "false", "NULL"]),
            or_null(r.one_in(15), lit(&date(r.below(2016)))),
            or_null(r.one_in(8), lit(&timestamp(&mut r))),
        ));
    }
    let (mut orders, mut items) = (Vec::new(), Vec::new());
    let mut order_id = 0u64;
    for cust in 1..=200u64 {
        let n = match cust {
            1 => 400,
            2 => 250,
            3 => 120,
            181.. => 0,
            _ => r.below(21),
        };
        for _ in 0..n {
            order_id += 1;
            let amount = if r.one_in(7) {
                "100.00".to_string()
            } else {
                cents(r.below(1_050_000) as i64 - 50_000)
            };
            orders.push(format!(
                "({cust}, {order_id}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                or_null(r.one_in(20), lit(r.pick(STATUSES))),
                or_null(r.one_in(23), (r.below(54) as i64 - 3).to_string()),
                or_null(r.one_in(19), amount),
                or_null(r.one_in(6), r.pick(DISCOUNTS).to_string()),
                or_null(
                    r.one_in(29),
                    format!("{}", r.below(1001) as f64 / 10.0 - 50.0)
                ),
                or_null(r.one_in(9), (r.below(5) + 1).to_string()),
                r.pick(&["true", "false", "NULL"]),
                or_null(r.one_in(2), lit(r.pick(NOTES))),
                or_null(r.one_in(25), lit(&date(r.below(2016)))),
                or_null(r.one_in(30), lit(&timestamp(&mut r))),
            ));
            for line in 1..=r.below(5) {
                items.push(format!(
                    "({cust}, {order_id}, {line}, {}, {}, {})",
                    or_null(r.one_in(40), (r.below(52) + 1).to_string()),
                    r.below(10) + 1,
                    cents(r.below(20_000) as i64),
                ));
            }
        }
    }
    let products: Vec<String> = (1..=50u64)
        .map(|id| {
            format!(
                "({id}, {}, {}, {}, {}, {})",
                lit(&format!(
                    "{} {id}",
                    r.pick(&["Hammer", "hammer", "Kite", "Çay", "Ball"])
                )),
                or_null(id % 11 == 0, lit(CATEGORIES[id as usize % 5])),
                cents(r.below(100_000) as i64),
                r.below(40) as f64 * 0.25,
                id % 4 == 0,
            )
        })
        .collect();
    let mut out = inserts(
        "customers",
        "id, name, email, region, tier, credit, score, active, signup, last_seen",
        &customers,
    );
    out.extend(inserts(
        "orders",
        "customer_id, id, status, qty, amount, discount, weight, priority, paid, note, ordered_on, created_at",
        &orders,
    ));
    out.extend(inserts(
        "order_items",
        "customer_id, order_id, line, product_id, qty, price",
        &items,
    ));
    out.extend(inserts(
        "products",
        "id, name, category, price, weight, discontinued",
        &products,
    ));
    out
}

/// The rows `w_orders` is reset to before each write: ids 1..300, customer
/// `(id - 1) % 60 + 1` (so (1, 1) .. (60, 60) exist).
fn w_orders_rows() -> Vec<String> {
    let rows: Vec<String> = (1..=300i64)
        .map(|id| {
            format!(
                "({}, {id}, {}, {}, {}, {}, {})",
                (id - 1) % 60 + 1,
                ["'new'", "'paid'", "'cancelled'", "NULL"][id as usize % 4],
                id * 7 % 50 - 3,
                cents(id * 7919 % 200_000 - 20_000),
                id as f64 / 8.0,
                if id % 3 == 0 {
                    "NULL".to_string()
                } else {
                    format!("'n{id}'")
                },
            )
        })
        .collect();
    inserts(
        "w_orders",
        "customer_id, id, status, qty, amount, weight, note",
        &rows,
    )
}

// --------------------------------------------------------------- queries

/// One statement of a query file and its tags.
struct Query {
    sql: String,
    /// The rows come in a total order: compare in order.
    ordered: bool,
    /// A refusal is a failure.
    must: bool,
    /// Not compared on embedded shards: one SQLite shard (the reference
    /// there) answers it differently from PostgreSQL (NULLs sort first in
    /// SQLite; bare columns of a grouped query are allowed), while
    /// shardgate's merge follows PostgreSQL.
    pg_only: bool,
}

/// Statements end with `;` at the end of a line; `@tags` in the comment
/// lines right before one apply to it.
fn parse_queries(text: &str) -> Vec<Query> {
    let (mut out, mut tags, mut cur) = (Vec::new(), Vec::<String>::new(), String::new());
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() {
            if t.is_empty() {
                tags.clear();
                continue;
            }
            if let Some(c) = t.strip_prefix("--") {
                tags.extend(
                    c.split_whitespace()
                        .filter_map(|w| w.strip_prefix('@'))
                        .map(str::to_string),
                );
                continue;
            }
        }
        cur.push_str(line);
        cur.push('\n');
        if t.ends_with(';') {
            for tag in &tags {
                assert!(
                    tag == "ordered" || tag == "must" || tag == "pg-only",
                    "unknown tag @{tag} before {cur}"
                );
            }
            out.push(Query {
                sql: cur.trim().trim_end_matches(';').trim().to_string(),
                ordered: tags.iter().any(|t| t == "ordered"),
                must: tags.iter().any(|t| t == "must"),
                pg_only: tags.iter().any(|t| t == "pg-only"),
            });
            tags.clear();
            cur.clear();
        }
    }
    assert!(cur.trim().is_empty(), "statement without `;`: {cur}");
    out
}

// ---------------------------------------------------------------- clients

/// A result column as RowDescription (or a prepared statement) describes it.
#[derive(Debug, Clone, PartialEq)]
struct Col {
    name: String,
    oid: u32,
    typmod: i32,
    format: i16,
}

type Row = Vec<Option<Vec<u8>>>;

/// What a statement answered.
#[derive(Debug, Default)]
struct Answer {
    cols: Vec<Col>,
    rows: Vec<Row>,
    /// The CommandComplete tag (not seen through tokio-postgres).
    tag: Option<String>,
    binary: bool,
}

/// An error: its SQLSTATE (or `timeout`, `connection`, `client`) and message.
#[derive(Debug)]
struct Fail {
    code: String,
    msg: String,
}

type Outcome = Result<Answer, Fail>;

fn io_err(m: impl Into<String>) -> std::io::Error {
    std::io::Error::other(m.into())
}

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// Reads the fields of one backend message.
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> std::io::Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(io_err("short message"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn i16(&mut self) -> std::io::Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn i32(&mut self) -> std::io::Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn cstr(&mut self) -> std::io::Result<String> {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| io_err("unterminated string"))?;
        let s = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        Ok(s)
    }
}

fn row_description(b: &[u8]) -> std::io::Result<Vec<Col>> {
    let mut c = Cur(b);
    let n = c.i16()?;
    (0..n)
        .map(|_| {
            let name = c.cstr()?;
            c.take(6)?; // table oid, column number
            let oid = c.i32()? as u32;
            c.take(2)?; // type size
            let typmod = c.i32()?;
            let format = c.i16()?;
            Ok(Col {
                name,
                oid,
                typmod,
                format,
            })
        })
        .collect()
}

fn data_row(b: &[u8]) -> std::io::Result<Row> {
    let mut c = Cur(b);
    let n = c.i16()?;
    (0..n)
        .map(|_| {
            let len = c.i32()?;
            Ok(if len < 0 {
                None
            } else {
                Some(c.take(len as usize)?.to_vec())
            })
        })
        .collect()
}

fn error_fields(b: &[u8]) -> Fail {
    let (mut code, mut m) = (String::new(), String::new());
    let mut c = Cur(b);
    while let Ok(f) = c.take(1) {
        if f[0] == 0 {
            break;
        }
        let Ok(v) = c.cstr() else { break };
        match f[0] {
            b'C' => code = v,
            b'M' => m = v,
            _ => {}
        }
    }
    Fail { code, msg: m }
}

/// A protocol-level client: the simple protocol and hand-written extended
/// protocol batches, keeping RowDescription and CommandComplete.
struct Wire {
    s: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Wire {
    async fn connect(port: u16, user: &str) -> std::io::Result<Wire> {
        let s = TcpStream::connect(("127.0.0.1", port)).await?;
        let params = format!("user\0{user}\0database\0app\0\0");
        let mut m = ((params.len() + 8) as u32).to_be_bytes().to_vec();
        m.extend_from_slice(&196_608u32.to_be_bytes());
        m.extend_from_slice(params.as_bytes());
        let mut w = Wire {
            s,
            buf: Vec::new(),
            pos: 0,
        };
        w.s.write_all(&m).await?;
        loop {
            match w.read().await? {
                (b'Z', _) => return Ok(w),
                (b'E', b) => return Err(io_err(format!("startup: {:?}", error_fields(&b)))),
                (b'R', b) if b.get(..4) != Some(&[0, 0, 0, 0]) => {
                    return Err(io_err("a password was asked for"));
                }
                _ => {}
            }
        }
    }

    async fn read(&mut self) -> std::io::Result<(u8, Vec<u8>)> {
        loop {
            let avail = &self.buf[self.pos..];
            if avail.len() >= 5 {
                let len = u32::from_be_bytes(avail[1..5].try_into().unwrap()) as usize;
                if avail.len() > len {
                    let out = (avail[0], avail[5..len + 1].to_vec());
                    self.pos += len + 1;
                    return Ok(out);
                }
            }
            self.buf.drain(..self.pos);
            self.pos = 0;
            self.buf.reserve(65_536);
            if self.s.read_buf(&mut self.buf).await? == 0 {
                return Err(io_err("connection closed"));
            }
        }
    }

    async fn simple(&mut self, sql: &str) -> std::io::Result<Outcome> {
        let mut b = sql.as_bytes().to_vec();
        b.push(0);
        self.s.write_all(&msg(b'Q', &b)).await?;
        self.collect(false).await
    }

    /// Parse, Bind (all results text or all binary), Describe, Execute, Sync.
    async fn extended(&mut self, sql: &str, binary: bool) -> std::io::Result<Outcome> {
        self.extended_with(sql, &[], binary).await
    }

    /// [`Wire::extended`] with text-format parameters (types left to the
    /// server).
    async fn extended_with(
        &mut self,
        sql: &str,
        params: &[String],
        binary: bool,
    ) -> std::io::Result<Outcome> {
        let mut parse = vec![0u8];
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(&[0, 0, 0]);
        let mut bind = vec![0u8, 0, 0, 0];
        bind.extend_from_slice(&(params.len() as i16).to_be_bytes());
        for p in params {
            bind.extend_from_slice(&(p.len() as i32).to_be_bytes());
            bind.extend_from_slice(p.as_bytes());
        }
        bind.extend_from_slice(if binary { &[0, 1, 0, 1] } else { &[0, 0] });
        let batch = [
            msg(b'P', &parse),
            msg(b'B', &bind),
            msg(b'D', b"P\0"),
            msg(b'E', &[0, 0, 0, 0, 0]),
            msg(b'S', &[]),
        ]
        .concat();
        self.s.write_all(&batch).await?;
        self.collect(binary).await
    }

    async fn collect(&mut self, binary: bool) -> std::io::Result<Outcome> {
        let mut ans = Answer {
            binary,
            ..Answer::default()
        };
        let mut err = None;
        loop {
            let (t, b) = self.read().await?;
            match t {
                b'T' => ans.cols = row_description(&b)?,
                b'D' => ans.rows.push(data_row(&b)?),
                b'C' => ans.tag = Some(Cur(&b).cstr()?),
                b'E' if err.is_none() => err = Some(error_fields(&b)),
                b'Z' => return Ok(err.map_or(Ok(ans), Err)),
                _ => {}
            }
        }
    }
}

async fn tp_connect(
    port: u16,
    user: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user={user} dbname=app"),
        tokio_postgres::NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(c)
}

fn tp_fail(e: tokio_postgres::Error) -> Fail {
    match e.as_db_error() {
        Some(d) => Fail {
            code: d.code().code().to_string(),
            msg: d.message().to_string(),
        },
        None => Fail {
            code: "client".into(),
            msg: e.to_string(),
        },
    }
}

/// Extended protocol through tokio-postgres: binary results.
async fn tp_query(c: &tokio_postgres::Client, sql: &str) -> Outcome {
    let st = c.prepare(sql).await.map_err(tp_fail)?;
    let rows = c.query(&st, &[]).await.map_err(tp_fail)?;
    Ok(Answer {
        cols: st
            .columns()
            .iter()
            .map(|c| Col {
                name: c.name().to_string(),
                oid: c.type_().oid(),
                typmod: c.type_modifier(),
                format: 1,
            })
            .collect(),
        rows: rows
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.get::<_, Option<RawValue>>(i).map(|v| v.0))
                    .collect()
            })
            .collect(),
        tag: None,
        binary: true,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Simple protocol, text.
    Simple,
    /// Extended protocol, binary results, through tokio-postgres.
    Binary,
    /// Extended protocol, text results, by hand.
    ExtText,
    /// Extended protocol, binary results, by hand (keeps the tag).
    ExtBinary,
    /// Extended protocol, text results, the WHERE literals as text
    /// parameters (see `differential/parameterize.rs`).
    ExtParams,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Simple => "simple/text",
            Mode::Binary => "extended/binary",
            Mode::ExtText => "extended/text",
            Mode::ExtBinary => "extended/binary (raw)",
            Mode::ExtParams => "extended/text with parameters",
        }
    }
}

const READ_MODES: [Mode; 4] = [Mode::Simple, Mode::Binary, Mode::ExtText, Mode::ExtParams];

/// One server (shardgate or the reference), reconnected after a hang or a
/// lost connection.
struct Conn {
    port: u16,
    user: &'static str,
    wire: Option<Wire>,
    tp: Option<tokio_postgres::Client>,
}

impl Conn {
    fn new(port: u16, user: &'static str) -> Conn {
        Conn {
            port,
            user,
            wire: None,
            tp: None,
        }
    }

    async fn run(&mut self, mode: Mode, sql: &str) -> Outcome {
        let (port, user) = (self.port, self.user);
        let work = async {
            if mode == Mode::Binary {
                if self.tp.is_none() {
                    let c = tp_connect(port, user)
                        .await
                        .map_err(|e| io_err(e.to_string()))?;
                    self.tp = Some(c);
                }
                return Ok(tp_query(self.tp.as_ref().unwrap(), sql).await);
            }
            if self.wire.is_none() {
                self.wire = Some(Wire::connect(port, user).await?);
            }
            let w = self.wire.as_mut().unwrap();
            match mode {
                Mode::Simple => w.simple(sql).await,
                Mode::ExtText => w.extended(sql, false).await,
                Mode::ExtParams => match parameterize::parameterize(sql) {
                    Some((sql, params)) => w.extended_with(&sql, &params, false).await,
                    None => w.extended(sql, false).await,
                },
                _ => w.extended(sql, true).await,
            }
        };
        let (code, m) = match tokio::time::timeout(TIMEOUT, work).await {
            Ok(Ok(o)) => {
                if self.tp.as_ref().is_some_and(|c| c.is_closed()) {
                    self.tp = None;
                }
                return o;
            }
            Ok(Err(e)) => ("connection", e.to_string()),
            Err(_) => (
                "timeout",
                format!("no answer within {} s", TIMEOUT.as_secs()),
            ),
        };
        self.wire = None;
        self.tp = None;
        Err(Fail {
            code: code.into(),
            msg: m,
        })
    }

    /// Run setup SQL that must work.
    async fn must(&mut self, sql: &str) {
        if let Err(e) = self.run(Mode::Simple, sql).await {
            panic!("setup on port {}: {sql:.200}: {e:?}", self.port);
        }
    }
}

// -------------------------------------------------------------- comparing

/// Compared with a tolerance: float4/float8, and numeric where it is
/// `loose` (embedded shards store numeric as SQLite REAL, so there every
/// numeric aggregate is a float aggregate; see also `decimal_text`).
fn is_float(oid: u32, loose: bool) -> bool {
    oid == 700 || oid == 701 || (loose && oid == 1700)
}

fn float_of(v: &[u8], oid: u32, binary: bool) -> Option<f64> {
    if !binary {
        return std::str::from_utf8(v).ok()?.parse().ok();
    }
    match (oid, v.len()) {
        (701, 8) => Some(f64::from_be_bytes(v.try_into().unwrap())),
        (700, 4) => Some(f32::from_be_bytes(v.try_into().unwrap()) as f64),
        (1700, _) => numeric_text(v)?.parse().ok(),
        _ => None,
    }
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() || a.is_infinite() || b.is_infinite() {
        return a == b || (a.is_nan() && b.is_nan());
    }
    // Relative, and absolute near zero (a variance of equal values is 0
    // summed one way and a few ulps of the values summed another).
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Where `loose`, a text value that is a decimal fraction (SQLite types
/// computed columns such as `sum(amount)` as text) is a float too.
fn decimal_text(v: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(v).ok()?;
    let f: f64 = s.parse().ok()?;
    (f.is_finite() && s.contains(['.', 'e', 'E'])).then_some(f)
}

fn same_value(
    g: &Option<Vec<u8>>,
    w: &Option<Vec<u8>>,
    oid: u32,
    binary: bool,
    loose: bool,
) -> bool {
    match (g, w) {
        (Some(x), Some(y)) if is_float(oid, loose) && x != y => {
            match (float_of(x, oid, binary), float_of(y, oid, binary)) {
                (Some(a), Some(b)) => close(a, b),
                _ => false,
            }
        }
        (Some(x), Some(y)) if loose && oid == 25 && x != y => {
            matches!((decimal_text(x), decimal_text(y)), (Some(a), Some(b)) if close(a, b))
        }
        _ => g == w,
    }
}

/// The multiset order: NULLs first, then non-float columns bytewise, then
/// float columns by value (so values a few bits apart still pair up).
fn row_cmp(a: &Row, b: &Row, cols: &[Col], binary: bool, loose: bool) -> Ordering {
    let fl = |i: &usize| is_float(cols[*i].oid, loose);
    let float_last = (0..cols.len())
        .filter(|i| !fl(i))
        .chain((0..cols.len()).filter(fl));
    for i in float_last {
        let o = match (a.get(i).cloned().flatten(), b.get(i).cloned().flatten()) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => match (
                float_of(&x, cols[i].oid, binary).filter(|_| fl(&i)),
                float_of(&y, cols[i].oid, binary).filter(|_| fl(&i)),
            ) {
                (Some(p), Some(q)) => p.total_cmp(&q),
                _ => x.cmp(&y),
            },
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// PostgreSQL's binary numeric as text.
fn numeric_text(b: &[u8]) -> Option<String> {
    let h = |i: usize| {
        Some(i16::from_be_bytes(
            b.get(2 * i..2 * i + 2)?.try_into().ok()?,
        ))
    };
    let (n, weight, sign, dscale) = (h(0)? as usize, h(1)? as i64, h(2)? as u16, h(3)? as usize);
    if sign == 0xC000 {
        return Some("NaN".into());
    }
    let digits: Vec<i16> = (0..n).map(|k| h(4 + k)).collect::<Option<_>>()?;
    let d = |p: i64| {
        if p >= 0 && (p as usize) < n {
            digits[p as usize]
        } else {
            0
        }
    };
    let mut s = if sign == 0x4000 { "-" } else { "" }.to_string();
    if weight < 0 {
        s.push('0');
    }
    for p in 0..=weight {
        let _ = if p == 0 {
            write!(s, "{}", d(p))
        } else {
            write!(s, "{:04}", d(p))
        };
    }
    let mut frac = String::new();
    let mut p = weight + 1;
    while frac.len() < dscale {
        let _ = write!(frac, "{:04}", d(p));
        p += 1;
    }
    frac.truncate(dscale);
    if dscale > 0 {
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
}

fn show(v: &Option<Vec<u8>>, oid: u32, binary: bool) -> String {
    let Some(v) = v else {
        return "NULL".into();
    };
    if !binary {
        return format!("{:?}", String::from_utf8_lossy(v));
    }
    let int = |v: &[u8]| v.iter().fold(0i64, |a, b| (a << 8) | *b as i64);
    let decoded = match (oid, v.len()) {
        (16, 1) => Some((v[0] != 0).to_string()),
        (21, 2) => Some(i16::from_be_bytes([v[0], v[1]]).to_string()),
        (23, 4) => Some(i32::from_be_bytes(v[..].try_into().unwrap()).to_string()),
        (20, 8) => Some(int(v).to_string()),
        (700 | 701, _) => float_of(v, oid, true).map(|f| format!("{f:?}")),
        (1700, _) => numeric_text(v),
        (25 | 1043 | 19, _) => Some(format!("{:?}", String::from_utf8_lossy(v))),
        _ => None,
    };
    match decoded {
        Some(d) => d,
        None => v.iter().map(|b| format!("{b:02x}")).collect::<String>() + " (hex)",
    }
}

fn show_row(r: &Row, cols: &[Col], binary: bool) -> String {
    let s: Vec<String> = r
        .iter()
        .enumerate()
        .map(|(i, v)| show(v, cols.get(i).map_or(0, |c| c.oid), binary))
        .collect();
    let s = format!("({})", s.join(", "));
    if s.len() > 400 {
        format!("{}…", &s[..s.floor_char_boundary(400)])
    } else {
        s
    }
}

fn show_cols(cols: &[Col]) -> String {
    cols.iter()
        .map(|c| format!("{}:{}({}) f{}", c.name, c.oid, c.typmod, c.format))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first difference between two answers, if any.
fn compare(got: &Answer, want: &Answer, ordered: bool, loose: bool) -> Result<(), String> {
    if got.cols != want.cols {
        return Err(format!(
            "columns differ:\n      got  [{}]\n      want [{}]",
            show_cols(&got.cols),
            show_cols(&want.cols)
        ));
    }
    if got.tag != want.tag {
        return Err(format!(
            "command tag: got {:?}, want {:?}",
            got.tag, want.tag
        ));
    }
    let (cols, binary) = (&want.cols, want.binary);
    if let Some((i, r)) = got
        .rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.len() != cols.len())
    {
        return Err(format!(
            "row {i} has {} values for {} columns",
            r.len(),
            cols.len()
        ));
    }
    let mut g: Vec<&Row> = got.rows.iter().collect();
    let mut w: Vec<&Row> = want.rows.iter().collect();
    if !ordered {
        g.sort_by(|a, b| row_cmp(a, b, cols, binary, loose));
        w.sort_by(|a, b| row_cmp(a, b, cols, binary, loose));
    }
    let counts = if g.len() == w.len() {
        String::new()
    } else {
        format!("got {} rows, want {}; ", g.len(), w.len())
    };
    let how = if ordered { "" } else { " (sorted)" };
    for (i, (gr, wr)) in g.iter().zip(&w).enumerate() {
        if let Some(c) =
            (0..cols.len()).find(|c| !same_value(&gr[*c], &wr[*c], cols[*c].oid, binary, loose))
        {
            return Err(format!(
                "{counts}row {i}{how}, column {:?}: got {}, want {}\n      got  row {}\n      want row {}",
                cols[c].name,
                show(&gr[c], cols[c].oid, binary),
                show(&wr[c], cols[c].oid, binary),
                show_row(gr, cols, binary),
                show_row(wr, cols, binary),
            ));
        }
    }
    match g.len().cmp(&w.len()) {
        Ordering::Equal => Ok(()),
        Ordering::Greater => Err(format!(
            "{counts}first extra row {}",
            show_row(g[w.len()], cols, binary)
        )),
        Ordering::Less => Err(format!(
            "{counts}first missing row {}",
            show_row(w[g.len()], cols, binary)
        )),
    }
}

enum Verdict {
    Pass,
    /// Both failed with this SQLSTATE (a pass).
    SameError(String),
    /// Refused (or, for embedded shards, unsupported): the reason.
    Refused(String),
    Fail(String),
}

/// shardgate's outcome against the reference's.
fn judge(got: &Outcome, want: &Outcome, ordered: bool) -> Verdict {
    match (got, want) {
        (Ok(g), Ok(w)) => match compare(g, w, ordered, false) {
            Ok(()) => Verdict::Pass,
            Err(d) => Verdict::Fail(d),
        },
        (Err(g), Err(w)) if g.code == w.code => Verdict::SameError(g.code.clone()),
        // A refusal is allowed where PostgreSQL answers, or fails.
        (Err(g), _) if g.code == "0A000" => Verdict::Refused(g.msg.clone()),
        (Err(g), Ok(w)) => Verdict::Fail(format!(
            "shardgate failed ({} {}), PostgreSQL answered {} rows",
            g.code,
            g.msg,
            w.rows.len()
        )),
        (Ok(g), Err(w)) => Verdict::Fail(format!(
            "shardgate answered {} rows, PostgreSQL failed ({} {})",
            g.rows.len(),
            w.code,
            w.msg
        )),
        (Err(g), Err(w)) => Verdict::Fail(format!(
            "errors differ: shardgate {} {}, PostgreSQL {} {}",
            g.code, g.msg, w.code, w.msg
        )),
    }
}

/// Embedded shards: only two answers that differ are a failure.
fn judge_embedded(got: &Outcome, want: &Outcome, ordered: bool) -> Verdict {
    match (got, want) {
        (Ok(g), Ok(w)) => match compare(g, w, ordered, true) {
            Ok(()) => Verdict::Pass,
            Err(d) => Verdict::Fail(d),
        },
        (Err(e), _) => Verdict::Refused(format!("four shards: {} {}", e.code, e.msg)),
        (_, Err(e)) => Verdict::Refused(format!("one shard: {} {}", e.code, e.msg)),
    }
}

#[derive(Default)]
struct Report {
    passed: usize,
    /// Of the passed, those where both sides failed alike: SQLSTATE, count.
    same_errors: std::collections::BTreeMap<String, usize>,
    refused: Vec<String>,
    failed: Vec<String>,
}

impl Report {
    /// Record a statement's verdicts (one per mode); `must` honours `@must`.
    fn add(&mut self, q: &Query, must: bool, verdicts: Vec<(Mode, Verdict)>) {
        let sql = q.sql.replace('\n', " ");
        let mut fails = String::new();
        let mut refused = None;
        let mut same = None;
        for (mode, v) in &verdicts {
            match v {
                Verdict::Pass => {}
                Verdict::SameError(code) => same = Some(code.clone()),
                Verdict::Refused(why) => {
                    if must && q.must {
                        let _ = write!(
                            fails,
                            "\n    [{}] refused but tagged @must: {why}",
                            mode.name()
                        );
                    }
                    refused.get_or_insert_with(|| format!("[{}] {why}", mode.name()));
                }
                Verdict::Fail(d) => {
                    let _ = write!(fails, "\n    [{}] {d}", mode.name());
                }
            }
        }
        if !fails.is_empty() {
            self.failed.push(format!("{sql}{fails}"));
        } else if let Some(why) = refused {
            self.refused.push(format!("{sql}\n      {why:.200}"));
        } else {
            self.passed += 1;
            if let Some(code) = same {
                *self.same_errors.entry(code).or_default() += 1;
            }
        }
    }

    fn summary(&self, what: &str, refused_word: &str) -> String {
        let mut s = format!(
            "{what}: {} statements: {} passed, {} {refused_word}, {} failed",
            self.passed + self.refused.len() + self.failed.len(),
            self.passed,
            self.refused.len(),
            self.failed.len()
        );
        if !self.same_errors.is_empty() {
            let alike: Vec<String> = self
                .same_errors
                .iter()
                .map(|(c, n)| format!("{n} × {c}"))
                .collect();
            let _ = write!(s, " (passed by failing alike: {})", alike.join(", "));
        }
        s
    }

    fn print(&self, what: &str, refused_word: &str) {
        eprintln!("{}", self.summary(what, refused_word));
        for r in &self.refused {
            eprintln!("  {refused_word}: {r}");
        }
        for f in &self.failed {
            eprintln!("  FAILED: {f}");
        }
    }
}

// ------------------------------------------------------------------ runs

async fn run_reads(
    sg: &mut Conn,
    reference: &mut Conn,
    queries: &[Query],
    judge: fn(&Outcome, &Outcome, bool) -> Verdict,
    must: bool,
) -> Report {
    let mut report = Report::default();
    for q in queries {
        if !must && q.pg_only {
            continue;
        }
        let mut verdicts = Vec::new();
        for mode in READ_MODES {
            let want = reference.run(mode, &q.sql).await;
            let got = sg.run(mode, &q.sql).await;
            verdicts.push((mode, judge(&got, &want, q.ordered)));
        }
        report.add(q, must, verdicts);
    }
    report
}

async fn reset_w_orders(c: &mut Conn) {
    c.must("DELETE FROM w_orders").await;
    for ins in w_orders_rows() {
        c.must(&ins).await;
    }
}

const W_ALL: &str = "SELECT * FROM w_orders";

async fn run_writes(sg: &mut Conn, pg: &mut Conn, writes: &[Query]) -> Report {
    let mut report = Report::default();
    for q in writes {
        let mut verdicts = Vec::new();
        for mode in [Mode::Simple, Mode::ExtBinary] {
            reset_w_orders(sg).await;
            reset_w_orders(pg).await;
            let before = pg.run(Mode::Simple, W_ALL).await;
            if let Err(d) = compare(
                sg.run(Mode::Simple, W_ALL).await.as_ref().unwrap(),
                before.as_ref().unwrap(),
                false,
                false,
            ) {
                panic!("w_orders differs after the reset: {d}");
            }
            let want = pg.run(mode, &q.sql).await;
            let got = sg.run(mode, &q.sql).await;
            let v = judge(&got, &want, false);
            let after = sg.run(Mode::Simple, W_ALL).await;
            let (expected, label) = match v {
                Verdict::Refused(_) => (before, "after the refusal"),
                _ => (pg.run(Mode::Simple, W_ALL).await, "afterwards"),
            };
            let table = match (&after, &expected) {
                (Ok(a), Ok(e)) => compare(a, e, false, false),
                _ => Err(format!("cannot read w_orders: {after:?}")),
            };
            let v = match (v, table) {
                (Verdict::Fail(d), _) => Verdict::Fail(d),
                (_, Err(d)) => Verdict::Fail(format!("table w_orders {label}: {d}")),
                (v, Ok(())) => v,
            };
            verdicts.push((mode, v));
        }
        report.add(q, true, verdicts);
    }
    report
}

/// Panics listing every failure of the reports.
fn finish(reports: &[(&str, &Report)]) {
    let failed: usize = reports.iter().map(|(_, r)| r.failed.len()).sum();
    if failed == 0 {
        return;
    }
    let mut m = format!("{failed} differential failure(s):\n");
    for (what, r) in reports {
        for (i, f) in r.failed.iter().enumerate() {
            let _ = write!(m, "\n[{what} {}] {f}\n", i + 1);
        }
    }
    for (what, r) in reports {
        let _ = write!(m, "\n{}", r.summary(what, "refused"));
    }
    panic!("{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_shards_match_one_postgres() {
    let started = Instant::now();
    let mut c = PgCluster::start(4, TABLES);
    let single = PgServer::start().unwrap();
    let mut sg = Conn::new(c.sg.port(), "app");
    let mut pg = Conn::new(single.port(), "postgres");
    for ddl in SCHEMA {
        sg.must(ddl).await;
        pg.must(ddl).await;
    }
    for (t, k) in [
        ("customers", "id"),
        ("orders", "customer_id"),
        ("order_items", "customer_id"),
        ("w_orders", "customer_id"),
    ] {
        c.guard(t, k);
    }
    let load = Instant::now();
    for ins in data() {
        sg.must(&ins).await;
        pg.must(&ins).await;
    }
    for conn in [&mut sg, &mut pg] {
        conn.must("ANALYZE").await;
    }
    eprintln!(
        "differential: cluster up in {:.1?}, rows loaded in {:.1?}",
        load - started,
        load.elapsed()
    );
    let reads = run_reads(&mut sg, &mut pg, &parse_queries(QUERIES), judge, true).await;
    let mut generated_reads = generated::queries(GEN_SEED, GEN_COUNT);
    generated_reads.extend(generated::long_statements());
    let generated = run_reads(&mut sg, &mut pg, &generated_reads, judge, true).await;
    let mut all_writes = parse_queries(WRITES);
    all_writes.extend(generated_writes::writes(GEN_SEED, GEN_WRITES));
    let writes = run_writes(&mut sg, &mut pg, &all_writes).await;
    reads.print("reads (4 PostgreSQL shards vs one PostgreSQL)", "refused");
    generated.print(
        "generated reads (4 PostgreSQL shards vs one PostgreSQL)",
        "refused",
    );
    writes.print("writes (4 PostgreSQL shards vs one PostgreSQL)", "refused");
    eprintln!("differential: done in {:.1?}", started.elapsed());
    assert!(c.sg.is_running(), "shardgate exited; log:\n{}", c.sg.log());
    // The session helper of the other tests still works (a smoke check that
    // the server accepts new clients after the whole run).
    client(c.sg.port())
        .await
        .simple_query("SELECT 1")
        .await
        .unwrap();
    finish(&[
        ("read", &reads),
        ("generated read", &generated),
        ("write", &writes),
    ]);
}

/// shardgate over `n` embedded SQLite shards under `dir`.
fn embedded(dir: &std::path::Path, n: usize) -> Shardgate {
    std::fs::create_dir_all(dir).unwrap();
    let mut cfg = String::new();
    for i in 0..n {
        let path = dir.join(format!("s{i}.db"));
        let _ = write!(
            cfg,
            "[[shards]]\nname = \"s{i}\"\nsqlite = \"{}\"\n",
            path.display()
        );
    }
    cfg.push_str(TABLES);
    let file = dir.join("shardgate.toml");
    std::fs::write(&file, cfg).unwrap();
    let data = dir.join("data");
    Shardgate::spawn(
        bin(),
        &[
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    )
    .expect("start shardgate on embedded shards")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_shards_match_one_embedded_shard() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut four_sg = embedded(&dir.path().join("four"), 4);
    let mut one_sg = embedded(&dir.path().join("one"), 1);
    let mut four = Conn::new(four_sg.port(), "app");
    let mut one = Conn::new(one_sg.port(), "app");
    for sql in SCHEMA.iter().map(|s| s.to_string()).chain(data()) {
        four.must(&sql).await;
        one.must(&sql).await;
    }
    let mut queries = parse_queries(QUERIES);
    queries.extend(generated::long_statements());
    // The generated reads too: four SQLite shards must answer as one
    // (where both answer). Not those that group or count distinct values
    // of an aggregate computed in a subquery: SQLite keeps numeric as
    // REAL, so sums over different shards differ in their last bits, and
    // values equal on one shard are distinct over four.
    let unstable = |sql: &str| {
        (sql.contains("FROM (") || sql.contains("WITH "))
            && (sql.contains("DISTINCT") || sql.contains("GROUP BY"))
    };
    queries.extend(
        generated::queries(GEN_SEED, GEN_COUNT)
            .into_iter()
            .filter(|q| !unstable(&q.sql))
            .map(|q| Query {
                pg_only: false,
                ..q
            }),
    );
    let reads = run_reads(&mut four, &mut one, &queries, judge_embedded, false).await;
    reads.print(
        "embedded (4 SQLite shards vs 1 SQLite shard)",
        "unsupported",
    );
    eprintln!("differential (embedded): done in {:.1?}", started.elapsed());
    assert!(four_sg.is_running(), "shardgate exited:\n{}", four_sg.log());
    assert!(one_sg.is_running(), "shardgate exited:\n{}", one_sg.log());
    finish(&[("embedded", &reads)]);
}

/// The comparison itself: tolerances, multisets, tags, decoding.
#[test]
fn harness_self_check() {
    let col = |name: &str, oid| Col {
        name: name.into(),
        oid,
        typmod: -1,
        format: 0,
    };
    let text = |cols: Vec<Col>, rows: &[&[Option<&str>]]| Answer {
        cols,
        rows: rows
            .iter()
            .map(|r| r.iter().map(|v| v.map(|s| s.as_bytes().to_vec())).collect())
            .collect(),
        tag: Some(format!("SELECT {}", rows.len())),
        binary: false,
    };
    let cols = || vec![col("id", 20), col("f", 701), col("n", 1700)];
    let a = text(
        cols(),
        &[
            &[Some("1"), Some("0.30000000000000004"), Some("1.10")],
            &[Some("2"), None, None],
        ],
    );
    let b = text(
        cols(),
        &[
            &[Some("2"), None, None],
            &[Some("1"), Some("0.3"), Some("1.10")],
        ],
    );
    assert!(
        compare(&a, &b, false, false).is_ok(),
        "multiset, float bits"
    );
    assert!(compare(&a, &b, true, false).is_err(), "order matters");
    let c = text(
        cols(),
        &[
            &[Some("1"), Some("0.3001"), Some("1.10")],
            &[Some("2"), None, None],
        ],
    );
    assert!(
        compare(&a, &c, false, false).is_err(),
        "beyond the tolerance"
    );
    let d = text(
        cols(),
        &[
            &[Some("1"), Some("0.3"), Some("1.1")],
            &[Some("2"), None, None],
        ],
    );
    assert!(
        compare(&a, &d, false, false).is_err(),
        "numeric scale is exact"
    );
    assert!(compare(&a, &d, false, true).is_ok(), "unless loose");
    let e = text(vec![col("id", 23), col("f", 701), col("n", 1700)], &[]);
    assert!(
        compare(&e, &text(cols(), &[]), false, false).is_err(),
        "types"
    );
    let t = |v: &str| text(vec![col("sum", 25)], &[&[Some(v)]]);
    assert!(compare(&t("9953803.719999999"), &t("9953803.72"), false, false).is_err());
    assert!(compare(&t("9953803.719999999"), &t("9953803.72"), false, true).is_ok());
    assert!(compare(&t("2511"), &t("2512"), false, true).is_err());
    assert!(compare(&t("1e400"), &t("2e400"), false, true).is_err());
    assert!(close(f64::INFINITY, f64::INFINITY) && !close(f64::INFINITY, 1e308));
    assert!(close(f64::NAN, f64::NAN) && !close(0.0, 1e-6) && close(0.0, 1e-12));
    // 1234.5670 and -0.05 in PostgreSQL's binary numeric format.
    let num = |h: &[i16]| h.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
    assert_eq!(
        numeric_text(&num(&[2, 0, 0, 4, 1234, 5670])).unwrap(),
        "1234.5670"
    );
    assert_eq!(
        numeric_text(&num(&[1, -1, 0x4000, 2, 500])).unwrap(),
        "-0.05"
    );
    let q = parse_queries("-- x\n-- @must\n-- @ordered\nSELECT 1\n  FROM t;\n\nSELECT 2;\n");
    assert_eq!(q.len(), 2);
    assert!(q[0].must && q[0].ordered && q[0].sql == "SELECT 1\n  FROM t");
    assert!(!q[1].must && !q[1].ordered);
    assert!(parse_queries(QUERIES).len() >= 300);
}
