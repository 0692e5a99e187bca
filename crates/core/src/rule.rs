//! Table rules: which tables are sharded (and how) and which are reference
//! tables copied to every shard.

use crate::error::CoreError;
use crate::ids::ShardId;
use crate::strategy::Strategy;
use crate::value::{KeyType, KeyValue};
use serde::{Deserialize, Serialize};

/// How one table's rows are placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRule {
    /// Table name, lower-cased unless it was quoted.
    pub table: String,
    /// Sharded or reference.
    pub kind: TableKind,
}

/// The two kinds of placed tables; a table with no rule is unsharded and
/// lives whole on the default shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TableKind {
    /// A copy on every shard: reads go to one, writes to all.
    Reference,
    /// Rows spread by a shard key.
    Sharded {
        /// Key columns, in order.
        columns: Vec<String>,
        /// Their types, when known (learned from DDL or the catalog).
        key_types: Vec<Option<KeyType>>,
        /// The strategy.
        strategy: Strategy,
        /// Tenant overrides: keys pinned to a shard, checked first.
        #[serde(default)]
        overrides: Vec<(Vec<KeyValue>, ShardId)>,
        /// All columns of the table in order, when known (for INSERTs
        /// without a column list).
        #[serde(default)]
        all_columns: Vec<String>,
    },
}

impl TableRule {
    /// A sharded table rule with unknown key types.
    pub fn sharded(table: &str, columns: Vec<String>, strategy: Strategy) -> TableRule {
        let key_types = vec![None; columns.len()];
        TableRule {
            table: table.to_string(),
            kind: TableKind::Sharded {
                columns,
                key_types,
                strategy,
                overrides: Vec::new(),
                all_columns: Vec::new(),
            },
        }
    }

    /// A reference table rule.
    pub fn reference(table: &str) -> TableRule {
        TableRule {
            table: table.to_string(),
            kind: TableKind::Reference,
        }
    }

    /// The shard that owns a full key (one value per key column).
    ///
    /// # Errors
    /// [`CoreError::Arity`] for a wrong number of values, or the strategy's
    /// own errors.
    pub fn place(&self, key: &[KeyValue]) -> Result<ShardId, CoreError> {
        match &self.kind {
            TableKind::Reference => Err(CoreError::BadStrategy(format!(
                "{} is a reference table; it has no shard key",
                self.table
            ))),
            TableKind::Sharded {
                columns,
                strategy,
                overrides,
                ..
            } => {
                if key.len() != columns.len() {
                    return Err(CoreError::Arity {
                        expected: columns.len(),
                        got: key.len(),
                    });
                }
                if let Some((_, s)) = overrides.iter().find(|(k, _)| k.as_slice() == key) {
                    return Ok(*s);
                }
                strategy.place(key)
            }
        }
    }

    /// The key columns (empty for reference tables).
    pub fn key_columns(&self) -> &[String] {
        match &self.kind {
            TableKind::Reference => &[],
            TableKind::Sharded { columns, .. } => columns,
        }
    }
}
