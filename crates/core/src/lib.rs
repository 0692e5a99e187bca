//! shardgate-core: the shard vocabulary, shared by every other crate.
//!
//! Pure: no I/O, no async, no globals. It owns the newtypes for ids
//! ([`ShardId`], [`KeyspaceId`]), key values ([`KeyValue`]), the sharding
//! functions (PostgreSQL-compatible hashing in [`hash`]), the versioned
//! [`ShardMap`] of keyspace-id ranges, and the [`TableRule`]s that say how a
//! table's rows are placed ([`Strategy`]).

#![warn(missing_docs)]

pub mod error;
pub mod hash;
pub mod ids;
pub mod rule;
pub mod shard_map;
pub mod snowflake;
pub mod strategy;
pub mod topology;
pub mod value;

pub use error::CoreError;
pub use ids::{KeyRange, KeyspaceId, ShardId};
pub use rule::{TableKind, TableRule};
pub use shard_map::ShardMap;
pub use snowflake::Snowflake;
pub use strategy::{Placement, Strategy, StrategyKind};
pub use topology::Topology;
pub use value::{KeyType, KeyValue};
