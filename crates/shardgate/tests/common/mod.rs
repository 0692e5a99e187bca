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
        let shards = PgServer::start_many(n).expect("start postgres shards");
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = String::new();
        for (i, s) in shards.iter().enumerate() {
            cfg.push_str(&format!(
                "[[shards]]\nname = \"s{i}\"\nurl = \"{}\"\n",
                s.url()
            ));
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
