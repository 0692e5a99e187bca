//! shardgate-sql: SQL analysis and planning. Pure: no connections, no
//! globals.
//!
//! [`analyze`] reads a statement against a [`shardgate_core::Topology`] and
//! yields a [`Template`]; [`Template::resolve`] binds parameters and yields a
//! [`Plan`] for the executor.

#![warn(missing_docs)]

pub mod aggregate;
pub mod analyze;
pub mod copy;
pub mod cursor;
pub mod error;
pub mod fast;
pub mod find;
pub mod ids;
pub mod keymove;
pub mod keysplit;
pub mod merge;
pub mod normalize;
pub mod params;
pub mod plan;
pub mod rewrite;
pub mod split;

pub use aggregate::AggSpec;
pub use analyze::{Analyzed, analyze, analyze_all};
pub use error::SqlError;
pub use merge::{KeyColumn, LeanMerge, MergeSpec, SortKey};
pub use params::Params;
pub use plan::{AdminCall, KeyExpr, Local, Node, Plan, ShardSql, StmtKind, Targets, Template};
/// The SQL parser whose syntax trees plans carry.
pub use sqlparser;
