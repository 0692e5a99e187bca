//! Errors of the metadata store.

use thiserror::Error;

/// A metadata store failure.
#[derive(Debug, Error)]
pub enum MetaError {
    /// Reading or writing the store failed.
    #[error("metadata store {0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The stored document is not valid.
    #[error("metadata store {0} is corrupt: {1}")]
    Corrupt(String, String),
    /// Someone else saved a newer version first.
    #[error("metadata changed concurrently (expected version {expected}, found {found})")]
    Conflict {
        /// The version the writer read.
        expected: u64,
        /// The version now stored.
        found: u64,
    },
    /// Every node number is leased to another router.
    #[error("no free node number: all {0} are leased")]
    NoNode(usize),
    /// A lock was poisoned by a panic.
    #[error("metadata store lock poisoned")]
    Poisoned,
}
