//! Shared helpers for the end-to-end tests: a cluster of real PostgreSQL
//! shards behind shardgate, misrouting checks, and clients.

#![allow(dead_code)]

use shardgate_core::{KeyRange, ShardId, ShardMap, Strategy};
use shardgate_testkit::{PgServer, Shardgate};
use std::path::Path;

/// The shardgate binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shardgate"))
}

/// The keyspace-id ranges of `n` shards under the default hash strategy.
pub fn ranges(n: u32) -> Vec<KeyRange> {
    let shards: Vec<ShardId> = (0..n).map(ShardId).collect();
    let Strategy::Hash { map } = Strategy::hash(&shards).unwrap() else {
        unreachable!()
    };
    let m: &ShardMap = &map;
    m.ranges().map(|(r, _)| r).collect()
}

/// SQL for a CHECK constraint that rejects rows whose bigint key `col`
/// hashes (as PostgreSQL's `hashint8extended(col, 0)`) outside `r`.
pub fn owns_check(table: &str, col: &str, r: KeyRange) -> String {
    let ksid = format!(
        "(hashint8extended({col}, 0)::numeric + CASE WHEN hashint8extended({col}, 0) < 0 THEN 18446744073709551616 ELSE 0 END)"
    );
    let upper = match r.end {
        Some(e) => format!(" AND {ksid} < {e}"),
        None => String::new(),
    };
    format!(
        "ALTER TABLE {table} ADD CONSTRAINT {table}_owned_keys CHECK ({ksid} >= {}{upper})",
        r.start
    )
}

/// Four PostgreSQL shards and shardgate configured over them.
pub struct PgCluster {
    pub shards: Vec<PgServer>,
    pub sg: Shardgate,
    pub dir: tempfile::TempDir,
}

impl PgCluster {
    pub fn start(n: usize, extra_config: &str) -> PgCluster {
        PgCluster::start_with(n, "", extra_config)
    }

    /// `top` holds top-level keys (before the shards), `extra_config` tables.
    /// Odd-numbered shards are reached over their Unix-domain socket, the
    /// others over TCP, so that every suite runs over both.
    pub fn start_with(n: usize, top: &str, extra_config: &str) -> PgCluster {
        let shards = PgServer::start_many(n).expect("start postgres shards");
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = top.to_string();
        for (i, s) in shards.iter().enumerate() {
            let url = if i % 2 == 1 {
                s.socket_url_db("app")
            } else {
                s.url()
            };
            cfg.push_str(&format!("[[shards]]\nname = \"s{i}\"\nurl = \"{url}\"\n"));
        }
        cfg.push_str(extra_config);
        let path = dir.path().join("shardgate.toml");
        std::fs::write(&path, cfg).unwrap();
        let data = dir.path().join("data");
        let sg = Shardgate::spawn(
            bin(),
            &[
                "--config",
                path.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ],
        )
        .expect("start shardgate");
        PgCluster { shards, sg, dir }
    }

    /// Stop shardgate (SIGKILL) and start it again on the same
    /// configuration and data directory, with `env` for the new process.
    pub fn restart_sg(&mut self, env: &[(&str, &str)]) {
        self.sg.kill();
        let path = self.dir.path().join("shardgate.toml");
        let data = self.dir.path().join("data");
        self.sg = Shardgate::spawn_with_env(
            bin(),
            &[
                "--config",
                path.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ],
            env,
        )
        .expect("restart shardgate");
    }

    /// Add the misrouting check for a hash-sharded bigint key on every shard.
    pub fn guard(&self, table: &str, col: &str) {
        let rs = ranges(self.shards.len() as u32);
        for (s, r) in self.shards.iter().zip(rs) {
            s.psql(&owns_check(table, col, r))
                .expect("add ownership check");
        }
    }
}

/// A tokio-postgres client connected to shardgate.
pub async fn client(port: u16) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=app dbname=app"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect to shardgate");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

/// 1,000 orders over 100 customers, as INSERT statements of 50 rows each.
pub fn order_inserts() -> Vec<String> {
    let mut out = Vec::new();
    let mut rows = Vec::new();
    for id in 0..1000i64 {
        let cust = id % 100 + 1;
        rows.push(format!("({cust}, {id}, {}.{:02})", id * 3 % 997, id % 100));
        if rows.len() == 50 {
            out.push(format!(
                "INSERT INTO orders (customer_id, id, amount) VALUES {}",
                rows.join(", ")
            ));
            rows.clear();
        }
    }
    out
}

/// A bare-bones protocol client for tests that need exact message control.
pub struct Raw {
    s: std::net::TcpStream,
    buf: Vec<u8>,
    /// The ParameterStatus messages of the startup, as (name, value).
    pub params: Vec<(String, String)>,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        Raw::connect_as(port, "app")
    }

    /// Connect as `user` to database `app` (trust authentication).
    pub fn connect_as(port: u16, user: &str) -> Raw {
        Raw::try_connect(port, &[("user", user), ("database", "app")]).unwrap()
    }

    /// Connect with these startup parameters; `Err` of the SQLSTATE and
    /// body of the error the server answers instead.
    pub fn try_connect(port: u16, startup: &[(&str, &str)]) -> Result<Raw, (String, String)> {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut params = String::new();
        for (k, v) in startup {
            params.push_str(&format!("{k}\0{v}\0"));
        }
        params.push('\0');
        let params = params.as_bytes();
        let mut m = Vec::new();
        m.extend_from_slice(&((params.len() + 8) as u32).to_be_bytes());
        m.extend_from_slice(&196608u32.to_be_bytes());
        m.extend_from_slice(params);
        s.write_all(&m).unwrap();
        let mut r = Raw {
            s,
            buf: Vec::new(),
            params: Vec::new(),
        };
        let frames = r.until_any(b"ZE");
        if let Some((b'E', body)) = frames.last() {
            return Err((sqlstate(body), String::from_utf8_lossy(body).into_owned()));
        }
        r.params = frames
            .into_iter()
            .filter(|(t, _)| *t == b'S')
            .filter_map(|(_, body)| {
                let mut parts = body.split(|b| *b == 0);
                let k = String::from_utf8(parts.next()?.to_vec()).ok()?;
                let v = String::from_utf8(parts.next()?.to_vec()).ok()?;
                Some((k, v))
            })
            .collect();
        Ok(r)
    }

    pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    pub fn parse(sql: &str) -> Vec<u8> {
        let mut b = b"\0".to_vec();
        b.extend_from_slice(sql.as_bytes());
        b.extend_from_slice(b"\0\0\0");
        Raw::msg(b'P', &b)
    }

    pub fn bind() -> Vec<u8> {
        Raw::msg(b'B', b"\0\0\0\0\0\0\0\0")
    }

    pub fn execute(max_rows: i32) -> Vec<u8> {
        let mut b = b"\0".to_vec();
        b.extend_from_slice(&max_rows.to_be_bytes());
        Raw::msg(b'E', &b)
    }

    pub fn send(&mut self, parts: &[Vec<u8>]) {
        use std::io::Write;
        self.s.write_all(&parts.concat()).unwrap();
    }

    /// Read messages until one with `tag`; returns (tag, body) of all read.
    pub fn until(&mut self, tag: u8) -> Vec<(u8, Vec<u8>)> {
        self.until_any(&[tag])
    }

    /// Read messages until one whose tag is one of `tags`; returns (tag,
    /// body) of all read.
    pub fn until_any(&mut self, tags: &[u8]) -> Vec<(u8, Vec<u8>)> {
        use std::io::Read;
        let mut out = Vec::new();
        loop {
            while self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() < len + 1 {
                    break;
                }
                let t = self.buf[0];
                let body = self.buf[5..len + 1].to_vec();
                self.buf.drain(..len + 1);
                out.push((t, body));
                if tags.contains(&t) {
                    return out;
                }
            }
            let mut chunk = [0u8; 8192];
            let n = self.s.read(&mut chunk).expect("read (timed out?)");
            assert!(n > 0, "connection closed; got {out:?}");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The SQLSTATE in an ErrorResponse body.
pub fn sqlstate(body: &[u8]) -> String {
    let mut i = 0;
    while i < body.len() && body[i] != 0 {
        let code = body[i];
        let end = i + 1 + body[i + 1..].iter().position(|b| *b == 0).unwrap();
        if code == b'C' {
            return String::from_utf8_lossy(&body[i + 1..end]).into_owned();
        }
        i = end + 1;
    }
    String::new()
}

/// Any value, as its raw binary bytes.
#[derive(Debug)]
pub struct RawValue(pub Vec<u8>);

impl<'a> tokio_postgres::types::FromSql<'a> for RawValue {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(raw.to_vec()))
    }
    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }
}

impl tokio_postgres::types::ToSql for RawValue {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(tokio_postgres::types::IsNull::No)
    }
    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }
    tokio_postgres::types::to_sql_checked!();
}

/// A reply's frames with each RowDescription's table OIDs and column
/// numbers blanked: table OIDs are each server's own, and a description
/// from the router's final query (aggregates, DISTINCT) names no table (a
/// known gap).
pub fn untabled(f: &[(u8, Vec<u8>)]) -> Vec<(u8, Vec<u8>)> {
    f.iter()
        .map(|(t, b)| {
            if *t != b'T' {
                return (*t, b.clone());
            }
            let mut b = b.clone();
            let mut at = 2;
            for _ in 0..i16::from_be_bytes([b[0], b[1]]) {
                at += b[at..].iter().position(|c| *c == 0).unwrap() + 1;
                b[at..at + 6].fill(0);
                at += 18;
            }
            (*t, b)
        })
        .collect()
}

/// `n` shards behind shardgate with `tables` (config), and one plain
/// PostgreSQL as the baseline, both given the statements of `setup`.
pub fn with_baseline(
    n: usize,
    tables: &str,
    setup: &[&str],
) -> (PgCluster, shardgate_testkit::PgServer) {
    let c = PgCluster::start(n, tables);
    let single = shardgate_testkit::PgServer::start().unwrap();
    for sql in setup {
        c.sg.psql(sql).unwrap();
        single.psql(sql).unwrap();
    }
    (c, single)
}
