//! Errors talking to shards.

use shardgate_wire::{WireError, backend::ErrorFields};
use thiserror::Error;

/// A failure to reach or talk to a shard.
#[derive(Debug, Error)]
pub enum BackendError {
    /// The socket failed.
    #[error("shard connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The shard sent something that is not valid protocol.
    #[error("shard protocol error: {0}")]
    Protocol(#[from] WireError),
    /// Authentication with the shard failed.
    #[error("shard authentication failed: {0}")]
    Auth(String),
    /// The shard answered with an error.
    #[error("{}: {}", .0.code, .0.message)]
    Server(Box<ErrorFields>),
    /// The embedded database failed.
    #[error("embedded shard error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A bad shard URL or setting.
    #[error("invalid shard configuration: {0}")]
    Config(String),
    /// The connection closed.
    #[error("shard closed the connection")]
    Closed,
    /// Waiting for a pooled connection took too long.
    #[error("timed out waiting for a connection to shard {0}")]
    PoolTimeout(String),
}
