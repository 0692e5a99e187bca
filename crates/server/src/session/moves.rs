//! UPDATEs of a shard key: the rows move to the shards of their new keys
//! (see `shardgate_sql::keymove`). The DELETE ... RETURNING runs on the
//! shards that hold the rows, the INSERTs on the shards of the new keys,
//! all in one transaction: the session's own, or one made for the
//! statement, which then commits with two-phase commit.

use super::*;
use shardgate_core::{KeyValue, TableKind, TableRule};
use shardgate_sql::keymove::MoveSql;
use std::collections::BTreeMap;

/// How the client asked: the simple protocol, or the extended one with
/// its result formats and whether it wants the row description.
#[derive(Clone, Copy)]
pub(super) enum Reply<'a> {
    /// Simple protocol: text rows, always described.
    Simple,
    /// Extended protocol.
    Extended {
        /// The client's result formats.
        result_formats: &'a [i16],
        /// Send the RowDescription (a Describe Portal came first).
        describe: bool,
    },
}

impl Session {
    /// Run a key move and answer as `reply` asks.
    pub(super) async fn run_move(
        &mut self,
        shards: &[ShardId],
        delete: &BTreeMap<ShardId, String>,
        sql: &MoveSql,
        rule: &TableRule,
        key_positions: &[usize],
        reply: Reply<'_>,
    ) -> Result<Done, ExecError> {
        let own = self.txn == TxnState::Idle;
        if own {
            self.begin_implicit();
        }
        let done = self
            .move_rows(shards, delete, sql, rule, key_positions, reply)
            .await?;
        if own {
            let commit = matches!(done, Done::Ok) && self.txn == TxnState::Active;
            if let Some(e) = self.finish_txn(commit).await? {
                self.send_error(&e);
                return Ok(Done::Failed);
            }
        }
        Ok(done)
    }

    async fn move_rows(
        &mut self,
        shards: &[ShardId],
        delete: &BTreeMap<ShardId, String>,
        sql: &MoveSql,
        rule: &TableRule,
        key_positions: &[usize],
        reply: Reply<'_>,
    ) -> Result<Done, ExecError> {
        if let Some(e) = self.check_write(shards, StmtKind::Write) {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        if let Some(e) = self.ensure(shards).await? {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        // A table other tables reference: an ON DELETE action (or the
        // check itself) would see the rows deleted, not moved.
        let table = rule.table.replace('"', "\"\"").replace('\'', "''");
        let check = format!(
            "SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = to_regclass('\"{table}\"') LIMIT 1"
        );
        let first = shards[0];
        let referenced = match self.conns.get_mut(&first) {
            Some(c) if !c.is_embedded() => c.simple_rows(&check).await,
            _ => Ok(Vec::new()),
        };
        match referenced {
            Ok(rows) if rows.is_empty() => {}
            Ok(_) => {
                self.fail_statement(&err_fields(
                    "0A000",
                    format!(
                        "an UPDATE of the shard key of {} is not supported: other tables reference it with foreign keys, and the rows would move as a DELETE and an INSERT",
                        rule.table
                    ),
                ));
                return Ok(Done::Failed);
            }
            Err(shardgate_backend::BackendError::Server(e)) => {
                self.fail_statement(&e);
                return Ok(Done::Failed);
            }
            Err(e) => {
                return Err(ExecError::Shard {
                    shard: first.to_string(),
                    source: e,
                });
            }
        }
        // 1. The old rows leave; their new values come back.
        let got =
            shardgate_exec::collect(&mut self.conns, delete, self.router.max_merge_rows).await?;
        if let Some(e) = got.error {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        if got.over_limit {
            self.fail_statement(&err_fields(
                "54000",
                format!(
                    "an UPDATE of the shard key moves more than {} rows (max_merge_rows)",
                    self.router.max_merge_rows
                ),
            ));
            return Ok(Done::Failed);
        }
        // PostgreSQL's unique checks, row by row: a new value that another
        // moved row held fails the UPDATE there.
        if let Some(d) = self
            .transient_duplicate(first, rule, sql, &got.rows)
            .await?
        {
            return Ok(d);
        }
        // 2. Each new row goes to its new key's shard.
        let TableKind::Sharded { key_types, .. } = &rule.kind else {
            self.fail_statement(&err_fields("XX000", "not a sharded table"));
            return Ok(Done::Failed);
        };
        let mut per: BTreeMap<ShardId, String> = BTreeMap::new();
        for row in &got.rows {
            let mut key = Vec::with_capacity(key_positions.len());
            for (i, p) in key_positions.iter().enumerate() {
                let Some(Some(text)) = row.get(*p) else {
                    self.fail_statement(&err_fields(
                        "23502",
                        format!(
                            "null value in shard key column of relation \"{}\": a row of a sharded table needs its shard key",
                            rule.table
                        ),
                    ));
                    return Ok(Done::Failed);
                };
                let Some(ty) = key_types.get(i).copied().flatten() else {
                    self.fail_statement(&err_fields("0A000", "the shard key's type is unknown"));
                    return Ok(Done::Failed);
                };
                match KeyValue::parse(ty, text) {
                    Ok(v) => key.push(v),
                    Err(e) => {
                        let code = match e {
                            shardgate_core::CoreError::OutOfRange { .. } => "22003",
                            _ => "22P02",
                        };
                        self.fail_statement(&err_fields(code, e.to_string()));
                        return Ok(Done::Failed);
                    }
                }
            }
            let shard = match rule.place(&key) {
                Ok(s) => s,
                Err(e) => {
                    self.fail_statement(&err_fields("22023", e.to_string()));
                    return Ok(Done::Failed);
                }
            };
            let embedded = self
                .router
                .pools
                .get(shard.0 as usize)
                .is_some_and(|p| !matches!(p.target, shardgate_backend::ShardTarget::Pg(_)));
            let values = per.entry(shard).or_insert_with(|| {
                if embedded {
                    // SQLite has no identity columns to override.
                    sql.insert_head.replace(" OVERRIDING SYSTEM VALUE", "")
                } else {
                    sql.insert_head.clone()
                }
            });
            if !values.ends_with("VALUES ") {
                values.push_str(", ");
            }
            values.push('(');
            for (i, v) in row.iter().take(sql.assigned.len()).enumerate() {
                if i > 0 {
                    values.push_str(", ");
                }
                // A SET expression's value keeps the expression's type
                // (`qty + 0.6` is numeric): the column's assignment cast
                // converts it as UPDATE would (an integer rounds). Text
                // (an unknown literal in SET) stays untyped, so it is read
                // as the column's type, as UPDATE reads it.
                let cast = match got.types.get(i) {
                    Some(&oid)
                        if !embedded && sql.assigned.get(i) == Some(&true) && v.is_some() =>
                    {
                        shardgate_sql::rewrite::type_name(oid).filter(|n| *n != "text")
                    }
                    _ => None,
                };
                if cast.is_some() {
                    values.push_str("CAST(");
                }
                match v {
                    // Untyped literals: each takes its column's type.
                    // (E'' on PostgreSQL reads the same whatever
                    // standard_conforming_strings is; SQLite has no E'').
                    Some(t) if embedded => {
                        values.push('\'');
                        values.push_str(&t.replace('\'', "''"));
                        values.push('\'');
                    }
                    Some(t) => {
                        values.push_str("E'");
                        for ch in t.chars() {
                            match ch {
                                '\'' => values.push_str("''"),
                                '\\' => values.push_str("\\\\"),
                                c => values.push(c),
                            }
                        }
                        values.push('\'');
                    }
                    None => values.push_str("NULL"),
                }
                if let Some(n) = cast {
                    values.push_str(" AS ");
                    values.push_str(n);
                    values.push(')');
                }
            }
            values.push(')');
        }
        if per.is_empty() {
            // Nothing matched: the statement's own reply to no rows.
            let none: BTreeMap<ShardId, String> = BTreeMap::from([(first, sql.none.clone())]);
            let o = self
                .answer(&[first], &none, reply, shardgate_exec::Merger::new(1))
                .await?;
            return Ok(self.after_statement(&o));
        }
        for q in per.values_mut() {
            if let Some(r) = &sql.returning {
                q.push_str(r);
            }
        }
        let targets: Vec<ShardId> = per.keys().copied().collect();
        if let Some(e) = self.check_write(&targets, StmtKind::Write) {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        if let Some(e) = self.ensure(&targets).await? {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        let merger = shardgate_exec::Merger::new(targets.len()).retag("UPDATE");
        let o = self.answer(&targets, &per, reply, merger).await?;
        Ok(self.after_statement(&o))
    }

    /// A unique index of the table that the moved rows would violate on
    /// PostgreSQL, which checks each row as it updates it: one row's new
    /// value equal to the old value of another moved row (two keys
    /// swapped, a chain of shifted keys). `Some` (the 23505 sent) then.
    /// Values compare as the shard wrote them (text).
    async fn transient_duplicate(
        &mut self,
        shard: ShardId,
        rule: &TableRule,
        sql: &MoveSql,
        rows: &[Vec<Option<String>>],
    ) -> Result<Option<Done>, ExecError> {
        let ncols = sql.assigned.len();
        if rows.len() < 2 || sql.old_values.is_empty() {
            return Ok(None);
        }
        let TableKind::Sharded { all_columns, .. } = &rule.kind else {
            return Ok(None);
        };
        let embedded = self.conns.get(&shard).is_none_or(|c| c.is_embedded());
        if embedded {
            return Ok(None);
        }
        let table = rule.table.replace('"', "\"\"").replace('\'', "''");
        let q = format!(
            "SELECT c.relname, array_to_string(array_agg(a.attname ORDER BY k.n), ',') \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = to_regclass('\"{table}\"') AND i.indisunique \
             AND i.indpred IS NULL AND i.indexprs IS NULL GROUP BY c.relname ORDER BY c.relname"
        );
        let indexes = match self.conns.get_mut(&shard) {
            Some(c) => c.simple_rows(&q).await,
            None => return Ok(None),
        };
        let Ok(indexes) = indexes else {
            return Ok(None);
        };
        for ix in indexes {
            let (Some(Some(name)), Some(Some(cols))) = (ix.first(), ix.get(1)) else {
                continue;
            };
            let Some(pos): Option<Vec<usize>> = cols
                .split(',')
                .map(|c| all_columns.iter().position(|a| a == c))
                .collect()
            else {
                continue;
            };
            if !pos.iter().any(|p| sql.assigned.get(*p) == Some(&true)) {
                continue;
            }
            // A column's old value: after the new row when it was SET.
            let old = |row: &[Option<String>], p: usize| -> Option<String> {
                match sql.old_values.iter().position(|o| *o == p) {
                    Some(k) => row.get(ncols + k).cloned().flatten(),
                    None => row.get(p).cloned().flatten(),
                }
            };
            let value = |row: &[Option<String>], of_old: bool| -> Option<Vec<String>> {
                pos.iter()
                    .map(|p| {
                        if of_old {
                            old(row, *p)
                        } else {
                            row.get(*p).cloned().flatten()
                        }
                    })
                    .collect()
            };
            let olds: std::collections::HashMap<Vec<String>, usize> = rows
                .iter()
                .enumerate()
                .filter_map(|(i, r)| value(r, true).map(|v| (v, i)))
                .collect();
            for (j, r) in rows.iter().enumerate() {
                let Some(new) = value(r, false) else { continue };
                if olds.get(&new).is_some_and(|i| *i != j) {
                    let cols: Vec<&str> = cols.split(',').collect();
                    self.fail_statement(&ErrorFields {
                        detail: Some(format!(
                            "Key ({})=({}) already exists.",
                            cols.join(", "),
                            new.join(", ")
                        )),
                        ..err_fields(
                            "23505",
                            format!("duplicate key value violates unique constraint \"{name}\""),
                        )
                    });
                    return Ok(Some(Done::Failed));
                }
            }
        }
        Ok(None)
    }

    /// Run one statement per shard (in the session's transaction) and
    /// send the merged reply the way the client asked for it.
    async fn answer(
        &mut self,
        shards: &[ShardId],
        per: &BTreeMap<ShardId, String>,
        reply: Reply<'_>,
        merger: shardgate_exec::Merger,
    ) -> Result<shardgate_exec::Outcome, ExecError> {
        match reply {
            Reply::Simple => {
                shardgate_exec::run_merged(
                    &mut self.conns,
                    shards,
                    &Request::SimplePer(per),
                    &mut self.out,
                    merger,
                )
                .await
            }
            Reply::Extended {
                result_formats,
                describe,
            } => {
                let o = shardgate_exec::run_merged(
                    &mut self.conns,
                    shards,
                    &Request::ExtendedPer {
                        per,
                        result_formats,
                        describe,
                    },
                    &mut self.out,
                    merger,
                )
                .await?;
                // End the shards' extended batches (inside the transaction,
                // Sync commits nothing).
                let mut sub: Conns = Conns::new();
                for s in shards {
                    if let Some(c) = self.conns.remove(s) {
                        sub.insert(*s, c);
                    }
                }
                let st = shardgate_exec::sync_all(&mut sub, &mut self.out).await;
                self.conns.append(&mut sub);
                st?;
                Ok(o)
            }
        }
    }
}
