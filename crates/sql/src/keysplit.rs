//! Splitting a list of shard keys per shard: `WHERE id IN (1, 2, 3, 4)`
//! over shards that own {1, 3} and {2, 4} sends `id IN (1, 3)` to the first
//! and `id IN (2, 4)` to the second, so no shard looks up keys it cannot
//! hold. The same applies to `id = ANY(ARRAY[...])` and to an OR of
//! equalities on the key.
//!
//! On each shard the rewrite cannot change the result: every row there has
//! a key the shard owns, so the keys left out could match no row of it.
//! Only the WHERE conjunct the keys were taken from is replaced (the one
//! [`crate::analyze`] routed by); the rest of the statement is sent as
//! written, with bind parameters inlined as literals.

use crate::analyze::{candidate_exprs, candidates};
use crate::error::SqlError;
use crate::params::Params;
use shardgate_core::ShardId;
use sqlparser::ast::{self, Expr, SetExpr, Statement};
use std::collections::BTreeMap;

/// Where the shard keys of a statement were found: the one key column and
/// the names that qualify it.
pub(crate) struct KeyAt {
    pub(crate) column: String,
    pub(crate) quals: Vec<String>,
}

/// A statement whose key list can be split per shard.
#[derive(Debug, Clone)]
pub struct KeySplit {
    /// The statement as analyzed.
    stmt: Box<Statement>,
    /// The single key column.
    column: String,
    /// The names qualifying it (table name or alias).
    quals: Vec<String>,
}

impl KeySplit {
    pub(crate) fn new(stmt: Statement, at: KeyAt) -> KeySplit {
        KeySplit {
            stmt: Box::new(stmt),
            column: at.column,
            quals: at.quals,
        }
    }

    /// The statement for each shard, given the shard of each key in the
    /// order the analysis listed them.
    ///
    /// # Errors
    /// The keys cannot be found again, their count differs, or a parameter
    /// cannot be inlined: the caller then sends the statement as written.
    pub fn per_shard(
        &self,
        per_key: &[ShardId],
        params: &Params<'_>,
    ) -> Result<BTreeMap<ShardId, String>, SqlError> {
        self.split(&self.stmt, per_key, params)
    }

    /// The same split applied to another statement with the same WHERE
    /// clause: the SQL a merge or an aggregation sends to every shard.
    ///
    /// # Errors
    /// As [`KeySplit::per_shard`], or `sql` does not parse.
    pub fn split_sql(
        &self,
        sql: &str,
        per_key: &[ShardId],
        params: &Params<'_>,
    ) -> Result<BTreeMap<ShardId, String>, SqlError> {
        let stmt = crate::parse::parse_sql(sql)
            .map_err(|e| SqlError::Invalid(e.to_string()))?
            .pop()
            .ok_or_else(|| SqlError::Invalid("no statement".into()))?;
        self.split(&stmt, per_key, params)
    }

    fn split(
        &self,
        original: &Statement,
        per_key: &[ShardId],
        params: &Params<'_>,
    ) -> Result<BTreeMap<ShardId, String>, SqlError> {
        let mut shards = per_key.to_vec();
        shards.sort();
        shards.dedup();
        let mut out = BTreeMap::new();
        for s in shards {
            let mut stmt = original.clone();
            let selection = match &mut stmt {
                Statement::Query(q) => match q.body.as_mut() {
                    SetExpr::Select(sel) => sel.selection.as_mut(),
                    _ => None,
                },
                Statement::Update(u) => u.selection.as_mut(),
                Statement::Delete(d) => d.selection.as_mut(),
                _ => None,
            }
            .ok_or_else(|| SqlError::Invalid("no WHERE to split".into()))?;
            let mut failed = None;
            let found = replace_first(selection, &self.column, &self.quals, &mut |leaf| {
                let pairs = candidate_exprs(leaf, &self.column, &self.quals).unwrap_or_default();
                if pairs.len() != per_key.len() {
                    failed = Some(SqlError::Invalid("key count changed".into()));
                    return leaf.clone();
                }
                let col = pairs[0].0.clone();
                let mine: Vec<Expr> = pairs
                    .iter()
                    .zip(per_key)
                    .filter(|(_, owner)| **owner == s)
                    .map(|((_, v), _)| (*v).clone())
                    .collect();
                // `=` and IN bind tighter than AND, the only operator a
                // conjunct can sit under: no parentheses needed.
                if mine.len() == 1 {
                    Expr::BinaryOp {
                        left: Box::new(col),
                        op: ast::BinaryOperator::Eq,
                        right: Box::new(mine.into_iter().next().expect("one")),
                    }
                } else {
                    Expr::InList {
                        expr: Box::new(col),
                        list: mine,
                        negated: false,
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            if !found {
                return Err(SqlError::Invalid("the key list was not found".into()));
            }
            if !params.is_empty() {
                crate::rewrite::inline_statement(&mut stmt, params)?;
            }
            out.insert(s, stmt.to_string());
        }
        Ok(out)
    }
}

/// Replace the first conjunct of `e` (in the order the analysis reads
/// them) that pins `col` to literal values with `make(conjunct)`.
fn replace_first(
    e: &mut Expr,
    col: &str,
    quals: &[String],
    make: &mut dyn FnMut(&Expr) -> Expr,
) -> bool {
    match e {
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => replace_first(left, col, quals, make) || replace_first(right, col, quals, make),
        Expr::Nested(inner) => replace_first(inner, col, quals, make),
        leaf => {
            if candidates(leaf, col, quals).is_some() {
                *leaf = make(leaf);
                true
            } else {
                false
            }
        }
    }
}
