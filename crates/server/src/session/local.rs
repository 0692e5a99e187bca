//! Statements the session answers itself: transaction control, SET and
//! RESET, DEALLOCATE, and rows it makes (admin functions, EXPLAIN).

use super::*;

impl Session {
    pub(super) async fn run_local(&mut self, l: &Local, sql: &str) -> Result<Done, ExecError> {
        match l {
            // Cursors the router holds are served by `run_held_cursor`
            // (simple protocol) and `held_cursor_extended`; the others
            // are routed to their shard.
            Local::Cursor(shardgate_sql::cursor::CursorOp::Declare { hold: false, .. })
                if self.txn == TxnState::Idle =>
            {
                self.fail_statement(&err_fields(
                    "25P01",
                    "DECLARE CURSOR can only be used in transaction blocks",
                ));
                return Ok(Done::Failed);
            }
            Local::Cursor(_) => {
                self.fail_statement(&err_fields(
                    "0A000",
                    "this cursor statement cannot run here",
                ));
                return Ok(Done::Failed);
            }
            Local::Begin => {
                if self.txn != TxnState::Idle && self.implicit {
                    // A batch that became the router's transaction (see
                    // `batch_transaction`): as a BEGIN inside a batch does
                    // in PostgreSQL, this makes it a transaction block,
                    // open past Sync. Options could no longer apply on the
                    // shards that began already.
                    let words: Vec<String> = shardgate_sql::cursor::skip_leading_comments(sql)
                        .split(|c: char| c.is_whitespace() || c == ';')
                        .filter(|w| !w.is_empty())
                        .map(str::to_ascii_uppercase)
                        .collect();
                    let plain = match words.as_slice() {
                        [b] => b == "BEGIN",
                        [b, w] => {
                            (b == "BEGIN" && (w == "WORK" || w == "TRANSACTION"))
                                || (b == "START" && w == "TRANSACTION")
                        }
                        _ => false,
                    };
                    if !plain {
                        self.fail_statement(&err_fields(
                            "0A000",
                            "BEGIN with options after writes to several shards in the same batch is not supported; send BEGIN first",
                        ));
                        return Ok(Done::Failed);
                    }
                    self.implicit = false;
                    self.prelude = vec![sql.to_string()];
                } else if self.txn != TxnState::Idle {
                    self.notice("25001", "there is already a transaction in progress");
                    // PostgreSQL still applies the BEGIN's modes (`BEGIN
                    // ISOLATION LEVEL ...` inside a transaction: psycopg's
                    // explicit BEGIN), as SET TRANSACTION would, failing
                    // as it does after the first query.
                    if self.txn == TxnState::Active
                        && let Some(modes) = begin_modes(sql)
                    {
                        let set = format!("SET TRANSACTION {modes}");
                        let shards: Vec<ShardId> = self.conns.keys().copied().collect();
                        if !shards.is_empty()
                            && let Some(e) =
                                shardgate_exec::internal(&mut self.conns, &shards, &set).await?
                        {
                            self.txn = TxnState::Failed;
                            self.send_error(&e);
                            return Ok(Done::Failed);
                        }
                        self.prelude.push(set);
                    }
                } else {
                    // Connections already held (earlier in this query
                    // string or batch) join now; others when first used.
                    let held: Vec<ShardId> = self.conns.keys().copied().collect();
                    if !held.is_empty()
                        && let Some(e) =
                            shardgate_exec::internal(&mut self.conns, &held, sql).await?
                    {
                        self.fail_statement(&e);
                        return Ok(Done::Failed);
                    }
                    self.txn = TxnState::Active;
                    self.prelude = vec![sql.to_string()];
                    self.settings_at_begin = Some((self.settings.clone(), self.settings_hash));
                    self.written = self.batch_writes.clone();
                }
                be::command_complete(&mut self.out.buf, "BEGIN");
            }
            Local::Commit | Local::Rollback => {
                if self.txn == TxnState::Idle {
                    self.notice("25P01", "there is no transaction in progress");
                    be::command_complete(
                        &mut self.out.buf,
                        if *l == Local::Commit {
                            "COMMIT"
                        } else {
                            "ROLLBACK"
                        },
                    );
                    return Ok(Done::Ok);
                }
                if self.implicit {
                    // The batch's own transaction (see `batch_transaction`):
                    // PostgreSQL ends a batch's implicit one with a warning.
                    self.notice("25P01", "there is no transaction in progress");
                }
                let commit = *l == Local::Commit && self.txn == TxnState::Active;
                if let Some(e) = self.finish_txn(commit).await? {
                    self.send_error(&e);
                    return Ok(Done::Failed);
                }
                be::command_complete(
                    &mut self.out.buf,
                    if commit { "COMMIT" } else { "ROLLBACK" },
                );
            }
            Local::InTransaction => {
                let tag = shardgate_sql::cursor::skip_leading_comments(sql)
                    .split_whitespace()
                    .next()
                    .unwrap_or("SET")
                    .to_ascii_uppercase();
                if self.txn == TxnState::Idle {
                    // PostgreSQL's own warning or error for these outside a
                    // transaction block.
                    return self
                        .route_simple(&[self.topo.default_shard], sql, StmtKind::Other)
                        .await;
                }
                if self.implicit && matches!(tag.as_str(), "SAVEPOINT" | "RELEASE" | "ROLLBACK") {
                    // An implicit transaction (a batch, a query string) has
                    // no savepoints in PostgreSQL.
                    let what = match tag.as_str() {
                        "SAVEPOINT" => "SAVEPOINT",
                        "RELEASE" => "RELEASE SAVEPOINT",
                        _ => "ROLLBACK TO SAVEPOINT",
                    };
                    self.fail_statement(&err_fields(
                        "25P01",
                        format!("{what} can only be used in transaction blocks"),
                    ));
                    return Ok(Done::Failed);
                }
                let recovering = tag == "ROLLBACK";
                if self.doomed {
                    self.send_error(&err_fields(
                        "25P02",
                        "the transaction lost a shard connection; only ROLLBACK is possible",
                    ));
                    return Ok(Done::Failed);
                }
                if self.txn == TxnState::Failed && !recovering {
                    self.send_error(&err_fields(
                        "25P02",
                        "current transaction is aborted, commands ignored until end of transaction block",
                    ));
                    return Ok(Done::Failed);
                }
                let shards: Vec<ShardId> = self.conns.keys().copied().collect();
                if !shards.is_empty()
                    && let Some(e) = shardgate_exec::internal(&mut self.conns, &shards, sql).await?
                {
                    self.txn = TxnState::Failed;
                    self.send_error(&e);
                    return Ok(Done::Failed);
                }
                if recovering {
                    self.txn = TxnState::Active;
                }
                self.cursors_at_savepoint(sql);
                self.prelude.push(sql.to_string());
                be::command_complete(&mut self.out.buf, &tag);
            }
            Local::SetConfig { .. } => return self.run_set_config(l, None).await,
            Local::Set { name, sql: set_sql } => {
                // RESET (or SET ... TO DEFAULT) of a setting the client gave
                // at startup returns to the client's value.
                let lower = set_sql.trim().trim_end_matches(';').to_ascii_lowercase();
                let to_default = lower.starts_with("reset") || lower.ends_with(" default");
                let startup = self
                    .startup_settings
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, sql)| sql.clone());
                let applied = match startup {
                    Some(sql) if to_default => sql,
                    _ => set_sql.clone(),
                };
                if let Some(d) = self.apply_setting(name, &applied).await? {
                    return Ok(d);
                }
                let tag = if set_sql
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("reset")
                {
                    "RESET"
                } else {
                    "SET"
                };
                be::command_complete(&mut self.out.buf, tag);
            }
            Local::Reset => {
                let discard = sql.trim_start().to_ascii_lowercase().starts_with("discard");
                if discard && self.txn != TxnState::Idle {
                    self.fail_statement(&err_fields(
                        "25001",
                        "DISCARD ALL cannot run inside a transaction block",
                    ));
                    return Ok(Done::Failed);
                }
                // Back to the startup packet's settings, as on PostgreSQL.
                let mut reset = String::from("RESET ALL");
                for (_, sql) in &self.startup_settings {
                    reset.push(';');
                    reset.push_str(sql);
                }
                let shards: Vec<ShardId> = self.conns.keys().copied().collect();
                if !shards.is_empty()
                    && let Some(e) =
                        shardgate_exec::internal(&mut self.conns, &shards, &reset).await?
                {
                    self.fail_statement(&e);
                    return Ok(Done::Failed);
                }
                self.settings = self.startup_settings.clone();
                self.rehash_settings();
                let h = self.settings_hash;
                for c in self.conns.values_mut() {
                    *c.settings() = h;
                }
                if discard {
                    self.stmts.clear();
                    self.sql_prepared.clear();
                    self.cursors.clear();
                }
                be::command_complete(
                    &mut self.out.buf,
                    if discard { "DISCARD ALL" } else { "RESET" },
                );
            }
            Local::Empty => be::empty_query(&mut self.out.buf),
            Local::Tag(tag) => be::command_complete(&mut self.out.buf, tag),
            Local::Prepare { name, types, body } => {
                if self.txn == TxnState::Failed {
                    self.fail_statement(&err_fields(
                        "25P02",
                        "current transaction is aborted, commands ignored until end of transaction block",
                    ));
                    return Ok(Done::Failed);
                }
                if self.sql_prepared.contains_key(name) || self.stmts.contains_key(name) {
                    self.fail_statement(&err_fields(
                        "42P05",
                        format!("prepared statement \"{name}\" already exists"),
                    ));
                    return Ok(Done::Failed);
                }
                self.sql_prepared
                    .insert(name.clone(), (types.clone(), body.clone()));
                be::command_complete(&mut self.out.buf, "PREPARE");
            }
            Local::Execute { name, args } => {
                let Some((types, body)) = self.sql_prepared.get(name) else {
                    self.fail_statement(&err_fields(
                        "26000",
                        format!("prepared statement \"{name}\" does not exist"),
                    ));
                    return Ok(Done::Failed);
                };
                let text = match shardgate_sql::substitute(body, types, args) {
                    Ok(t) => t,
                    Err(e) => {
                        let fields = super::refusal(&self.router, &e, sql).await;
                        self.fail_statement(&fields);
                        return Ok(Done::Failed);
                    }
                };
                let template = shardgate_sql::analyze(&text, &self.topo);
                if matches!(
                    template,
                    Template::Local(Local::Prepare { .. } | Local::Execute { .. })
                ) {
                    self.fail_statement(&err_fields(
                        "0A000",
                        "a prepared statement cannot PREPARE or EXECUTE",
                    ));
                    return Ok(Done::Failed);
                }
                return match self.resolve_plan(&template, &Params::none()) {
                    Err(e) => {
                        let fields = super::refusal(&self.router, &e, &text).await;
                        self.fail_statement(&fields);
                        Ok(Done::Failed)
                    }
                    Ok(p) => Box::pin(self.run_plan_simple(&p, &template, &text)).await,
                };
            }
            Local::Deallocate(name) => {
                match name {
                    None => {
                        self.stmts.clear();
                        self.sql_prepared.clear();
                    }
                    Some(n) if self.sql_prepared.remove(n).is_some() => {}
                    Some(n) => {
                        if self.stmts.remove(n).is_none() {
                            self.fail_statement(&err_fields(
                                "26000",
                                format!("prepared statement \"{n}\" does not exist"),
                            ));
                            return Ok(Done::Failed);
                        }
                    }
                }
                be::command_complete(
                    &mut self.out.buf,
                    if name.is_none() {
                        "DEALLOCATE ALL"
                    } else {
                        "DEALLOCATE"
                    },
                );
            }
        }
        Ok(Done::Ok)
    }

    /// Run `set_sql` (a SET, RESET or set_config call) on every shard
    /// connection the session holds (the default shard's at least, so a
    /// bad setting is refused now) and record it for the connections it
    /// takes later. `Some` (the error sent) when a shard refused it.
    async fn apply_setting(
        &mut self,
        name: &str,
        set_sql: &str,
    ) -> Result<Option<Done>, ExecError> {
        if self.txn == TxnState::Failed {
            self.send_error(&err_fields(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
            return Ok(Some(Done::Failed));
        }
        let default = self.topo.default_shard;
        if let Some(e) = self.ensure(&[default]).await? {
            self.send_error(&e);
            return Ok(Some(Done::Failed));
        }
        let shards: Vec<ShardId> = self.conns.keys().copied().collect();
        let shardgate_exec::Internal {
            error: e, statuses, ..
        } = shardgate_exec::internal_collect(&mut self.conns, &shards, set_sql).await?;
        for st in &statuses {
            st.encode(&mut self.out.buf);
        }
        if let Some(e) = e {
            if self.txn == TxnState::Active {
                self.txn = TxnState::Failed;
            }
            self.send_error(&e);
            return Ok(Some(Done::Failed));
        }
        self.settings.retain(|(n, _)| n != name || name.is_empty());
        self.settings.push((name.to_string(), set_sql.to_string()));
        self.rehash_settings();
        let h = self.settings_hash;
        for c in self.conns.values_mut() {
            *c.settings() = h;
        }
        Ok(None)
    }

    /// A `set_config(name, value, false)` query: its answer comes from the
    /// default shard (which evaluates the `current_setting` calls next to
    /// it before the change, and shows the new value as it reads it); the
    /// setting is then applied and tracked as a SET. `extended`: the
    /// Execute's (describe?, result formats); `None` in the simple
    /// protocol.
    pub(super) async fn run_set_config(
        &mut self,
        l: &Local,
        extended: Option<(bool, &[i16])>,
    ) -> Result<Done, ExecError> {
        let Local::SetConfig {
            name,
            value,
            sql: set_sql,
            columns,
            ..
        } = l
        else {
            return Ok(Done::Ok);
        };
        let Some(value) = value else {
            // The form over pg_settings: its rows, from the default shard
            // (the setting is on every connection by then).
            if let Some(d) = self.apply_setting(name, set_sql).await? {
                return Ok(d);
            }
            return self
                .route_simple(&[self.topo.default_shard], set_sql, StmtKind::Other)
                .await;
        };
        if self.txn == TxnState::Failed {
            self.aborted();
            return Ok(Done::Failed);
        }
        let default = self.topo.default_shard;
        if let Some(e) = self.ensure(&[default]).await? {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        let lit = value.replace('\'', "''");
        let items: Vec<String> = columns
            .iter()
            .map(|(col, call)| {
                let e = call
                    .clone()
                    .unwrap_or_else(|| format!("pg_catalog.set_config('{name}', '{lit}', false)"));
                format!("{e} AS \"{}\"", col.replace('"', "\"\""))
            })
            .collect();
        let query = format!("SELECT {}", items.join(", "));
        let per = std::collections::BTreeMap::from([(default, query)]);
        let got = shardgate_exec::collect(&mut self.conns, &per, 1).await?;
        if let Some(e) = got.error {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        if let Some(d) = self.apply_setting(name, set_sql).await? {
            return Ok(d);
        }
        let names: Vec<String> = columns.iter().map(|(c, _)| c.clone()).collect();
        let (describe, formats) = extended.unwrap_or((true, &[]));
        self.local_rows(&names, &[], &got.rows, describe, false, formats);
        Ok(Done::Ok)
    }

    /// Send rows the session made: text columns, or bigint (type 20) ones,
    /// in the result formats the client asked for.
    pub(super) fn local_rows(
        &mut self,
        cols: &[String],
        types: &[u32],
        rows: &[Vec<Option<String>>],
        describe: bool,
        explain: bool,
        formats: &[i16],
    ) {
        let ty = |i: usize| types.get(i).copied().unwrap_or(25);
        let binary = |i: usize| match formats {
            [] => false,
            [f] => *f == 1,
            fs => fs.get(i) == Some(&1),
        };
        if describe {
            let c: Vec<Column> = cols
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let mut c = Column::new(n, ty(i), if ty(i) == 20 { 8 } else { -1 });
                    c.format = binary(i) as i16;
                    c
                })
                .collect();
            be::row_description(&mut self.out.buf, &c);
        }
        for r in rows {
            let vals: Vec<Option<Vec<u8>>> = r
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_deref().map(|s| match (ty(i), binary(i)) {
                        (20, true) => s.parse::<i64>().unwrap_or(0).to_be_bytes().to_vec(),
                        _ => s.as_bytes().to_vec(),
                    })
                })
                .collect();
            be::data_row(&mut self.out.buf, vals.iter().map(|v| v.as_deref()));
        }
        let tag = if explain {
            "EXPLAIN".to_string()
        } else {
            format!("SELECT {}", rows.len())
        };
        be::command_complete(&mut self.out.buf, &tag);
    }
}

/// The transaction modes of a `BEGIN [WORK | TRANSACTION] modes` or `START
/// TRANSACTION modes` (`None` when it has none).
fn begin_modes(sql: &str) -> Option<String> {
    let t = shardgate_sql::cursor::skip_leading_comments(sql)
        .trim()
        .trim_end_matches(';')
        .trim();
    let mut rest = t;
    for w in ["BEGIN", "START"] {
        if rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w) {
            rest = rest[w.len()..].trim_start();
            break;
        }
    }
    for w in ["WORK", "TRANSACTION"] {
        if rest.len() >= w.len()
            && rest[..w.len()].eq_ignore_ascii_case(w)
            && rest[w.len()..].starts_with(|c: char| c.is_whitespace())
            || rest.eq_ignore_ascii_case(w)
        {
            rest = rest[w.len()..].trim_start();
            break;
        }
    }
    (!rest.is_empty() && rest.len() < t.len()).then(|| rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::begin_modes;

    #[test]
    fn modes_of_a_begin() {
        assert_eq!(begin_modes("BEGIN"), None);
        assert_eq!(begin_modes("begin work;"), None);
        assert_eq!(
            begin_modes("BEGIN ISOLATION LEVEL REPEATABLE READ"),
            Some("ISOLATION LEVEL REPEATABLE READ".into())
        );
        assert_eq!(
            begin_modes("/* x */ start transaction read only, deferrable;"),
            Some("read only, deferrable".into())
        );
        assert_eq!(
            begin_modes("BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            Some("ISOLATION LEVEL SERIALIZABLE".into())
        );
    }
}
