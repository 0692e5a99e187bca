//! Errors of the pure sharding core.

use thiserror::Error;

/// What can go wrong when building or using shard maps, strategies and rules.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoreError {
    /// Two ranges of a shard map cover the same keyspace ids.
    #[error("shard map ranges overlap: {0} and {1}")]
    Overlap(String, String),
    /// Some keyspace ids are owned by no range.
    #[error("shard map has a gap: keyspace ids {0} are owned by no shard")]
    Gap(String),
    /// A shard map must have at least one range.
    #[error("shard map is empty")]
    Empty,
    /// A number too large for an integer key (PostgreSQL's 22003).
    #[error("bigint out of range: {value}")]
    OutOfRange {
        /// The value as given.
        value: String,
    },
    /// A key value cannot be converted to the key's type.
    #[error("invalid value {value:?} for shard key of type {ty}")]
    BadValue {
        /// The value as given.
        value: String,
        /// The key's type.
        ty: String,
    },
    /// The key has a different number of columns than the rule.
    #[error("shard key has {expected} column(s), got {got} value(s)")]
    Arity {
        /// Columns in the rule.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A list or directory strategy has no entry for the value, and no default.
    #[error("no shard for key {0} (not in the list/directory and no default)")]
    NoPlacement(String),
    /// A strategy description is invalid.
    #[error("invalid strategy: {0}")]
    BadStrategy(String),
    /// A strategy name is unknown.
    #[error("unknown strategy {0:?} (expected hash, range, list, directory or consistent)")]
    UnknownStrategy(String),
}
