//! shardgate-sql: SQL analysis and planning. Pure: no connections, no
//! globals.
//!
//! [`analyze`] reads a statement against a [`shardgate_core::Topology`] and
//! yields a [`Template`]; [`Template::resolve`] binds parameters and yields a
//! [`Plan`] for the executor.

#![warn(missing_docs)]

pub mod aggregate;
pub mod analyze;
pub mod binary;
pub mod copy;
pub mod copy_binary;
pub mod copy_rows;
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
pub mod parse;
pub mod plan;
pub mod rewrite;
pub mod split;
pub mod standin;
pub(crate) mod symmetric;

pub use aggregate::AggSpec;
pub use analyze::{Analyzed, analyze, analyze_all, substitute};
pub use error::SqlError;
pub use merge::{KeyColumn, LeanMerge, MergeSpec, SortKey};
pub use params::Params;
pub use plan::{AdminCall, KeyExpr, Local, Node, Plan, ShardSql, StmtKind, Targets, Template};
/// The SQL parser whose syntax trees plans carry.
pub use sqlparser;

/// Runs `f` (analysis or planning: pure, no state to leave broken) and
/// turns a panic, a bug, into [`SqlError::Internal`]: the statement is
/// refused with SQLSTATE XX000 and the session goes on.
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T, SqlError>) -> Result<T, SqlError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        Err(SqlError::Internal(format!(
            "internal error in shardgate's planner ({what}); please report the statement"
        )))
    })
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    #[test]
    fn a_panic_in_planning_is_an_internal_error_not_a_crash() {
        let r: Result<(), SqlError> = guard(|| panic!("boom {}", 7));
        let e = r.expect_err("the panic is caught");
        assert_eq!(e.sqlstate(), "XX000");
        assert!(e.to_string().contains("boom 7"), "{e}");
        assert_eq!(guard(|| Ok::<_, SqlError>(3)), Ok(3));
    }
}
