//! Errors of plan execution.

use shardgate_backend::BackendError;
use thiserror::Error;

/// Execution failed in a way that ends the statement (server errors from a
/// shard are not errors here: they are forwarded to the client).
#[derive(Debug, Error)]
pub enum ExecError {
    /// A shard connection broke; its connection must be discarded.
    #[error("lost connection to shard {shard}: {source}")]
    Shard {
        /// Shard name.
        shard: String,
        /// What happened.
        source: BackendError,
    },
    /// Writing to the client failed: the client is gone.
    #[error("client connection lost: {0}")]
    Client(#[from] std::io::Error),
}
