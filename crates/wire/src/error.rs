//! Errors from decoding protocol messages.

use thiserror::Error;

/// A malformed message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// A length word out of range.
    #[error("invalid message length {0}")]
    BadLength(usize),
    /// The body ended early.
    #[error("message truncated")]
    Truncated,
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in message")]
    BadUtf8,
    /// A message that is not valid here.
    #[error("unexpected message: {0}")]
    Unexpected(String),
}
