//! shardgate-exec: runs plans against shard connections and merges what
//! comes back into one reply for the client.
//!
//! The session decides which shard connections a statement uses (joining
//! them to its transaction); this crate sends each its request in parallel
//! (all requests go out before any reply is read) and streams the replies
//! to the client: one shard is forwarded frame by frame, several are
//! concatenated with one RowDescription and their row counts added up.
//! Memory stays bounded: rows are forwarded as they arrive and the client
//! buffer is flushed whenever it grows past a threshold.

#![warn(missing_docs)]

pub mod aggregate;
pub use shardgate_sql::copy_rows as copy;
pub mod error;
pub mod merge;
pub mod merge_sort;
pub mod order;
pub mod out;
pub mod read;
pub mod run;

pub use error::ExecError;
pub use merge::{Merger, Outcome};
pub use merge_sort::{bind_params, collation_probe};
pub use out::{ClientOut, CopyOut};
pub use read::{ReadRequest, run_read};
pub use run::{
    Collected, Conns, Internal, Request, collect, internal, internal_collect, internal_collect_per,
    rollback_batch, run, run_merged, statement_name, sync_all,
};
