//! Globally unique, time-ordered 64-bit ids (`shardgate.next_id()`).
//!
//! The Snowflake layout: the sign bit 0, then 41 bits of milliseconds since
//! 2024-01-01 00:00:00 UTC (enough for 69 years), 10 bits of node number
//! (0-1023, held by one router at a time through a lease in the metadata
//! store), 12 bits of sequence within the millisecond (4096 ids per
//! millisecond per node). Ids of one node strictly increase; ids of
//! different nodes never collide; ids sort by time across nodes to the
//! millisecond.
//!
//! [`Snowflake`] holds the last millisecond and sequence handed out; it is
//! given the clock reading by its caller, so it stays pure. A clock that
//! goes backwards does not produce repeats: the generator keeps counting
//! from the last millisecond it used.

use crate::error::CoreError;

/// 2024-01-01 00:00:00 UTC in Unix milliseconds.
pub const EPOCH_MS: u64 = 1_704_067_200_000;
/// Bits of the node number.
pub const NODE_BITS: u32 = 10;
/// Bits of the per-millisecond sequence.
pub const SEQ_BITS: u32 = 12;
/// The largest node number.
pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;
const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;
const MAX_MS: u64 = (1 << 41) - 1;

/// An id generator for one node.
#[derive(Debug, Clone)]
pub struct Snowflake {
    node: u16,
    last_ms: u64,
    seq: u64,
}

impl Snowflake {
    /// A generator for `node` (at most [`MAX_NODE`]).
    ///
    /// # Errors
    /// [`CoreError::BadValue`] for a node number out of range.
    pub fn new(node: u16) -> Result<Snowflake, CoreError> {
        if node > MAX_NODE {
            return Err(CoreError::BadValue {
                value: node.to_string(),
                ty: format!("node number (0-{MAX_NODE})"),
            });
        }
        Ok(Snowflake {
            node,
            last_ms: 0,
            seq: 0,
        })
    }

    /// The node number.
    pub fn node(&self) -> u16 {
        self.node
    }

    /// The next id, with the clock at `now_unix_ms`.
    ///
    /// # Errors
    /// [`CoreError::BadValue`] if the clock is before 2024 or past the
    /// layout's 69 years.
    pub fn next(&mut self, now_unix_ms: u64) -> Result<i64, CoreError> {
        let bad = || CoreError::BadValue {
            value: now_unix_ms.to_string(),
            ty: "clock reading for an id (2024-01-01 to 2093)".into(),
        };
        let now = now_unix_ms.checked_sub(EPOCH_MS).ok_or_else(bad)?;
        if now > self.last_ms {
            self.last_ms = now;
            self.seq = 0;
        } else if self.seq < MAX_SEQ {
            // The same millisecond (or a clock that went back): count on.
            self.seq += 1;
        } else {
            // 4096 ids in this millisecond: borrow the next one.
            self.last_ms += 1;
            self.seq = 0;
        }
        if self.last_ms > MAX_MS {
            return Err(bad());
        }
        Ok(compose(self.last_ms, self.node, self.seq))
    }
}

/// The id of `ms` (since [`EPOCH_MS`]), `node` and `seq`.
pub fn compose(ms: u64, node: u16, seq: u64) -> i64 {
    ((ms << (NODE_BITS + SEQ_BITS)) | ((node as u64) << SEQ_BITS) | seq) as i64
}

/// The (milliseconds since [`EPOCH_MS`], node, sequence) of an id.
pub fn parts(id: i64) -> (u64, u16, u64) {
    let id = id as u64;
    (
        id >> (NODE_BITS + SEQ_BITS),
        ((id >> SEQ_BITS) & MAX_NODE as u64) as u16,
        id & MAX_SEQ,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_round_trips() {
        let id = compose(123_456, 7, 89);
        assert!(id > 0);
        assert_eq!(parts(id), (123_456, 7, 89));
        assert!(Snowflake::new(MAX_NODE + 1).is_err());
        assert!(Snowflake::new(1).unwrap().next(EPOCH_MS - 1).is_err());
    }

    proptest! {
        /// Whatever the clock does (repeats, jumps back), one node's ids
        /// strictly increase, and two nodes never give the same id.
        #[test]
        fn ids_increase_and_nodes_never_collide(
            steps in proptest::collection::vec(-3i64..5, 1..3000),
            a in 0u16..=MAX_NODE,
            b in 0u16..=MAX_NODE,
        ) {
            prop_assume!(a != b);
            let mut ga = Snowflake::new(a).unwrap();
            let mut gb = Snowflake::new(b).unwrap();
            let mut clock = EPOCH_MS + 1_000_000;
            let mut last = i64::MIN;
            let mut seen = std::collections::HashSet::new();
            for s in steps {
                clock = (clock as i64 + s) as u64;
                let x = ga.next(clock).unwrap();
                let y = gb.next(clock).unwrap();
                prop_assert!(x > last);
                last = x;
                prop_assert_eq!(parts(x).1, a);
                prop_assert!(seen.insert(x));
                prop_assert!(seen.insert(y));
            }
        }
    }

    #[test]
    fn more_than_4096_in_one_millisecond_borrow_the_next() {
        let mut g = Snowflake::new(3).unwrap();
        let t = EPOCH_MS + 10;
        let ids: Vec<i64> = (0..5000).map(|_| g.next(t).unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(parts(ids[4096]), (11, 3, 0));
    }
}
