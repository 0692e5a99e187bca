//! Id newtypes: shards, keyspace ids and ranges of keyspace ids.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Index of a shard in the configured shard list.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The 64-bit position of a key in the keyspace; a sharding function maps a
/// key's value(s) to one, and the shard map says which shard owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyspaceId(pub u64);

impl fmt::Display for KeyspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A half-open range `[start, end)` of keyspace ids; `end == None` means
/// "up to and including `u64::MAX`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyRange {
    /// First keyspace id in the range.
    pub start: u64,
    /// One past the last keyspace id, or `None` for the end of the space.
    pub end: Option<u64>,
}

impl KeyRange {
    /// The whole keyspace.
    pub const FULL: KeyRange = KeyRange {
        start: 0,
        end: None,
    };

    /// Does the range contain `id`?
    pub fn contains(&self, id: KeyspaceId) -> bool {
        id.0 >= self.start && self.end.is_none_or(|e| id.0 < e)
    }

    /// Split the whole space into `n` equal contiguous ranges (`n >= 1`).
    pub fn split_even(n: u32) -> Vec<KeyRange> {
        let n = n.max(1) as u128;
        let space: u128 = 1u128 << 64;
        (0..n)
            .map(|i| {
                let start = (space * i / n) as u64;
                let end = if i + 1 == n {
                    None
                } else {
                    Some((space * (i + 1) / n) as u64)
                };
                KeyRange { start, end }
            })
            .collect()
    }
}

impl fmt::Display for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end {
            Some(e) => write!(f, "[{:016x}, {:016x})", self.start, e),
            None => write!(f, "[{:016x}, end]", self.start),
        }
    }
}
