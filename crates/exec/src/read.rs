//! Interpreting a read plan: the tree of primitives of
//! [`shardgate_sql::Node`] (scatter, merge-sort, limit, project,
//! aggregate), run against the statement's shard connections.
//!
//! Primitives are fused where they run together: a merge-sort's limit and
//! projection are applied as its rows stream out ([`crate::merge_sort`]),
//! an aggregate reads its scatter's rows into its final query
//! ([`crate::aggregate`]). A shape the executor does not know is an
//! internal error, never a guess.

use crate::aggregate::{AggRequest, run_aggregate};
use crate::error::ExecError;
use crate::merge::Outcome;
use crate::merge_sort::{Merge, abort, run_merge};
use crate::out::ClientOut;
use crate::run::Conns;
use shardgate_sql::Node;
use shardgate_wire::backend::ErrorFields;
use tokio::io::AsyncWrite;

/// What the client sent for this statement, and the router's limits.
pub struct ReadRequest<'a> {
    /// Extended protocol (Parse/Bind/Execute) rather than a simple Query.
    pub extended: bool,
    /// The statement's parameter types.
    pub param_types: &'a [u32],
    /// The client's Bind from its parameter formats up to (not including)
    /// its result formats; `[0, 0, 0, 0]` for none.
    pub params: &'a [u8],
    /// The client's result formats (none, one for all, or one per column).
    pub result_formats: &'a [i16],
    /// Send the RowDescription (simple protocol, or a Describe Portal).
    pub describe: bool,
    /// The shards' databases order text bytewise by default (C
    /// collation).
    pub bytewise_text: bool,
    /// The most rows held (aggregates' partial rows, a merge done by a
    /// shard).
    pub max_rows: usize,
    /// The most bytes (as SQL literals) of rows held.
    pub max_bytes: usize,
}

/// Run a read plan and stream its rows to `out`. Every shard ends at
/// ReadyForQuery.
///
/// # Errors
/// A shard connection failed or the client is gone.
///
/// # Cancel safety
/// Not cancel safe (see [`crate::run`]).
pub async fn run_read<W: AsyncWrite + Unpin>(
    conns: &mut Conns,
    node: &Node,
    req: &ReadRequest<'_>,
    out: &mut ClientOut<W>,
) -> Result<Outcome, ExecError> {
    if let Node::Aggregate { spec, input } = node
        && let Node::Scatter {
            shards, per_shard, ..
        } = input.as_ref()
    {
        let a = AggRequest {
            extended: req.extended,
            result_formats: req.result_formats,
            describe: req.describe,
            max_rows: req.max_rows,
            max_bytes: req.max_bytes,
            per_shard: per_shard.as_ref(),
        };
        return run_aggregate(conns, shards, spec, &a, out).await;
    }
    match merge_of(node) {
        Some(m) => run_merge(conns, &m, req, out).await,
        None => Ok(abort(
            out,
            ErrorFields::new(
                "XX000",
                "shardgate's executor cannot run this read plan (a planner bug); please report the statement",
            ),
        )),
    }
}

/// The merge a `Project(Limit?(MergeSort(Scatter)))` or
/// `Limit(Concat(Scatter))` tree describes (a concatenation is a merge by
/// no key).
fn merge_of(node: &Node) -> Option<Merge<'_>> {
    let (hidden, limited) = match node {
        Node::Project { hidden, input } => (*hidden, input.as_ref()),
        n => (0, n),
    };
    let (limit, offset, with_ties, sorted) = match limited {
        Node::Limit {
            limit,
            offset,
            with_ties,
            input,
        } => (*limit, *offset, *with_ties, input.as_ref()),
        n => (None, 0, false, n),
    };
    let (keys, lean, input): (&[shardgate_sql::SortKey], _, _) = match sorted {
        Node::MergeSort { keys, lean, input } => (keys, lean.as_deref(), input),
        Node::Concat { input } => (&[], None, input),
        _ => return None,
    };
    let Node::Scatter {
        shards,
        sql,
        per_shard,
    } = input.as_ref()
    else {
        return None;
    };
    (hidden == keys.len()).then_some(Merge {
        shards,
        sql,
        per_shard: per_shard.as_ref(),
        keys,
        lean: lean.filter(|_| per_shard.is_none()),
        limit,
        offset,
        with_ties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardgate_core::ShardId;
    use shardgate_sql::{MergeSpec, SortKey};

    #[test]
    fn a_merge_tree_is_read_back_whole() {
        let spec = MergeSpec {
            sql: "SELECT a, a AS sg_k1 FROM t ORDER BY a LIMIT 7".into(),
            keys: vec![SortKey {
                desc: false,
                nulls_first: false,
            }],
            limit: Some(5),
            offset: 2,
            with_ties: false,
            limit_param: None,
            offset_param: None,
            lean: None,
        };
        let tree = spec.tree(vec![ShardId(0), ShardId(1)], None);
        let m = merge_of(&tree).expect("a merge");
        assert_eq!(m.shards, &[ShardId(0), ShardId(1)]);
        assert_eq!(m.sql, spec.sql);
        assert_eq!((m.limit, m.offset, m.keys.len()), (Some(5), 2, 1));
        // Without LIMIT/OFFSET there is no Limit node, without keys no
        // MergeSort.
        let spec = MergeSpec {
            limit: None,
            offset: 0,
            ..spec
        };
        let tree = spec.tree(vec![ShardId(0), ShardId(1)], None);
        let m = merge_of(&tree).expect("a merge");
        assert_eq!((m.limit, m.offset), (None, 0));
        let concat = MergeSpec {
            keys: Vec::new(),
            limit: Some(3),
            ..spec.clone()
        };
        let tree = concat.tree(vec![ShardId(0), ShardId(1)], None);
        assert!(matches!(tree, Node::Limit { .. }), "{tree:?}");
        let m = merge_of(&tree).expect("a merge by no key");
        assert_eq!((m.limit, m.keys.len()), (Some(3), 0));
        // A shape the executor does not know is not taken for a merge.
        let bare = Node::MergeSort {
            keys: spec.keys.clone(),
            lean: None,
            input: Box::new(Node::Scatter {
                shards: vec![ShardId(0)],
                sql: String::new(),
                per_shard: None,
            }),
        };
        assert!(merge_of(&bare).is_none());
    }
}
