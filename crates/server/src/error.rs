//! Errors of the server crate.

use thiserror::Error;

/// A failure starting or running the server.
#[derive(Debug, Error)]
pub enum ServerError {
    /// Socket errors.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Metadata store errors.
    #[error(transparent)]
    Meta(#[from] shardgate_meta::MetaError),
    /// Shard errors at start-up.
    #[error(transparent)]
    Backend(#[from] shardgate_backend::BackendError),
    /// Invalid rules or shards.
    #[error(transparent)]
    Core(#[from] shardgate_core::CoreError),
    /// An invalid setting.
    #[error("configuration: {0}")]
    Config(String),
}
