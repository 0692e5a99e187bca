//! The topology a session plans against: the shards, the default shard for
//! tables with no rule, and the table rules, under one version number.

use crate::ids::ShardId;
use crate::rule::TableRule;
use std::collections::HashMap;
use std::sync::Arc;

/// A consistent snapshot of shards and rules. Sessions hold it in an `Arc`
/// and re-plan when the version changes.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Grows with every change of shards or rules.
    pub version: u64,
    /// Shard names, indexed by [`ShardId`].
    pub shard_names: Vec<String>,
    /// Where tables with no rule live, whole.
    pub default_shard: ShardId,
    /// Rules by table name.
    pub rules: HashMap<String, Arc<TableRule>>,
    /// Columns whose default shardgate fills in itself (`DEFAULT
    /// shardgate.next_id()`), by table name; any table, ruled or not.
    pub id_defaults: HashMap<String, Vec<String>>,
}

impl Topology {
    /// Every shard id.
    pub fn shards(&self) -> Vec<ShardId> {
        (0..self.shard_names.len() as u32).map(ShardId).collect()
    }

    /// The rule of a table, if it has one.
    pub fn rule(&self, table: &str) -> Option<&Arc<TableRule>> {
        self.rules.get(table)
    }

    /// The columns of `table` that default to `shardgate.next_id()`.
    pub fn id_columns(&self, table: &str) -> &[String] {
        self.id_defaults.get(table).map_or(&[], Vec::as_slice)
    }

    /// A shard's name (or its number if unknown).
    pub fn shard_name(&self, s: ShardId) -> String {
        self.shard_names
            .get(s.0 as usize)
            .cloned()
            .unwrap_or_else(|| s.to_string())
    }
}
