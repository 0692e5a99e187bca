//! shardgate-server: the listener, client sessions and admin functions.
//!
//! The flow of a statement: client bytes → [`session`] (startup, simple
//! and extended protocol, transaction state) → SQL analysis and plan
//! (`shardgate-sql`) → executor (`shardgate-exec`) → shards → merged reply
//! → client. [`router::Router`] is the state sessions share: shard pools,
//! the current topology, the metadata store.

#![warn(missing_docs)]

pub mod admin;
pub mod deadlock;
pub mod error;
pub mod router;
pub mod session;
pub mod twopc;

pub use error::ServerError;
pub use router::{Router, serve};
