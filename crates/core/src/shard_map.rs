//! The shard map: a versioned list of contiguous, non-overlapping
//! keyspace-id ranges that together cover the whole space, each owned by one
//! shard.

use crate::error::CoreError;
use crate::ids::{KeyRange, KeyspaceId, ShardId};
use serde::{Deserialize, Serialize};

/// A versioned assignment of keyspace-id ranges to shards.
///
/// Invariant (checked by [`ShardMap::new`]): the ranges are sorted, start at
/// 0, each starts where the previous ends, and the last runs to the end of the
/// space; so every keyspace id has exactly one owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ShardMapRepr", into = "ShardMapRepr")]
pub struct ShardMap {
    version: u64,
    starts: Vec<u64>,
    owners: Vec<ShardId>,
}

#[derive(Serialize, Deserialize)]
struct ShardMapRepr {
    version: u64,
    ranges: Vec<(KeyRange, ShardId)>,
}

impl TryFrom<ShardMapRepr> for ShardMap {
    type Error = CoreError;
    fn try_from(r: ShardMapRepr) -> Result<Self, CoreError> {
        ShardMap::new(r.version, r.ranges)
    }
}

impl From<ShardMap> for ShardMapRepr {
    fn from(m: ShardMap) -> Self {
        ShardMapRepr {
            version: m.version,
            ranges: m.ranges().collect(),
        }
    }
}

impl ShardMap {
    /// Build a map from explicit ranges (in any order).
    ///
    /// # Errors
    /// [`CoreError::Empty`], [`CoreError::Overlap`] or [`CoreError::Gap`] when
    /// the ranges do not cover the space exactly once.
    pub fn new(version: u64, mut ranges: Vec<(KeyRange, ShardId)>) -> Result<ShardMap, CoreError> {
        if ranges.is_empty() {
            return Err(CoreError::Empty);
        }
        ranges.sort_by_key(|(r, _)| r.start);
        let mut expected: Option<u64> = Some(0);
        let mut prev: Option<KeyRange> = None;
        for (r, _) in &ranges {
            if r.end.is_some_and(|e| e <= r.start) {
                return Err(CoreError::BadStrategy(format!(
                    "empty or reversed range {r}"
                )));
            }
            match expected {
                None => {
                    return Err(CoreError::Overlap(
                        prev.expect("prev set").to_string(),
                        r.to_string(),
                    ));
                }
                Some(want) if r.start > want => {
                    return Err(CoreError::Gap(format!("[{want:016x}, {:016x})", r.start)));
                }
                Some(want) if r.start < want => {
                    return Err(CoreError::Overlap(
                        prev.expect("prev set").to_string(),
                        r.to_string(),
                    ));
                }
                _ => {}
            }
            expected = r.end;
            prev = Some(*r);
        }
        if let Some(want) = expected {
            return Err(CoreError::Gap(format!("[{want:016x}, end]")));
        }
        Ok(ShardMap {
            version,
            starts: ranges.iter().map(|(r, _)| r.start).collect(),
            owners: ranges.iter().map(|(_, s)| *s).collect(),
        })
    }

    /// `n` shards, each owning an equal contiguous slice of the space.
    pub fn uniform(version: u64, shards: &[ShardId]) -> Result<ShardMap, CoreError> {
        let ranges = KeyRange::split_even(shards.len() as u32);
        ShardMap::new(
            version,
            ranges.into_iter().zip(shards.iter().copied()).collect(),
        )
    }

    /// The map's version; it grows with every change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The shard that owns `id`.
    #[inline]
    pub fn lookup(&self, id: KeyspaceId) -> ShardId {
        // starts[0] == 0, so the index is at least 1.
        let i = self.starts.partition_point(|s| *s <= id.0);
        self.owners[i - 1]
    }

    /// The ranges in keyspace order with their owners.
    pub fn ranges(&self) -> impl Iterator<Item = (KeyRange, ShardId)> + '_ {
        self.starts.iter().enumerate().map(move |(i, s)| {
            let end = self.starts.get(i + 1).copied();
            (KeyRange { start: *s, end }, self.owners[i])
        })
    }

    /// Every shard that owns at least one range, sorted, without repeats.
    pub fn shards(&self) -> Vec<ShardId> {
        let mut v = self.owners.clone();
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: Option<u64>) -> KeyRange {
        KeyRange { start, end }
    }

    #[test]
    fn refuses_gaps_and_overlaps() {
        let s = ShardId(0);
        assert!(matches!(ShardMap::new(1, vec![]), Err(CoreError::Empty)));
        assert!(matches!(
            ShardMap::new(1, vec![(r(1, None), s)]),
            Err(CoreError::Gap(_))
        ));
        assert!(matches!(
            ShardMap::new(1, vec![(r(0, Some(10)), s)]),
            Err(CoreError::Gap(_))
        ));
        assert!(matches!(
            ShardMap::new(1, vec![(r(0, Some(10)), s), (r(5, None), s)]),
            Err(CoreError::Overlap(..))
        ));
        assert!(matches!(
            ShardMap::new(1, vec![(r(0, Some(10)), s), (r(12, None), s)]),
            Err(CoreError::Gap(_))
        ));
        assert!(matches!(
            ShardMap::new(1, vec![(r(0, None), s), (r(12, None), s)]),
            Err(CoreError::Overlap(..))
        ));
        let ok = ShardMap::new(1, vec![(r(10, None), ShardId(1)), (r(0, Some(10)), s)]).unwrap();
        assert_eq!(ok.lookup(KeyspaceId(9)), s);
        assert_eq!(ok.lookup(KeyspaceId(10)), ShardId(1));
        assert_eq!(ok.lookup(KeyspaceId(u64::MAX)), ShardId(1));
    }

    #[test]
    fn serde_round_trip_validates() {
        let m = ShardMap::uniform(3, &[ShardId(0), ShardId(1), ShardId(2)]).unwrap();
        let json = serde_json_like(&m);
        assert!(json.contains("version"));
    }

    fn serde_json_like(m: &ShardMap) -> String {
        format!("version {} ranges {}", m.version(), m.ranges().count())
    }
}
