//! A session's shard connections and its transaction: taking a connection
//! when a statement first needs a shard (settings and BEGIN replayed on it),
//! giving them back, and ending transactions.

use super::*;

impl Session {
    pub(super) fn update_cancel(&self) {
        if let Ok(mut v) = self.cancel_slot.lock() {
            v.clear();
            for (s, c) in &self.conns {
                if let Some((pid, secret)) = c.cancel_key() {
                    v.push((*s, pid, secret));
                }
            }
        }
    }

    /// Make sure the session holds a connection to each shard, with its
    /// settings applied and, in a transaction, the transaction begun.
    pub(super) async fn ensure(
        &mut self,
        shards: &[ShardId],
    ) -> Result<Option<ErrorFields>, ExecError> {
        let mut added = false;
        for s in shards {
            self.batch_used.insert(*s);
            if self.conns.contains_key(s) {
                continue;
            }
            let Some(pool) = self.router.pools.get(s.0 as usize).cloned() else {
                return Ok(Some(err_fields("XX000", format!("unknown shard {s}"))));
            };
            let mut c = match pool.checkout().await {
                Ok(c) => c,
                Err(e) => {
                    let code = if matches!(e, BackendError::PoolTimeout(_)) {
                        "53300"
                    } else {
                        "08006"
                    };
                    return Ok(Some(err_fields(
                        code,
                        format!("cannot reach shard {}: {e}", pool.name),
                    )));
                }
            };
            // Settings first, on their own: a RESET ALL sent in one string
            // with BEGIN would be part of the transaction and undone by
            // its ROLLBACK.
            let mut setup = String::new();
            if *c.settings() != self.settings_hash {
                // RESET ALL leaves the role and session authorization.
                setup.push_str("RESET ALL;RESET ROLE;RESET SESSION AUTHORIZATION;");
                for (_, sql) in &self.settings {
                    setup.push_str(sql);
                    setup.push(';');
                }
            }
            let hash = self.settings_hash;
            self.conns.insert(*s, c);
            if !setup.is_empty() {
                if let Some(e) = shardgate_exec::internal(&mut self.conns, &[*s], &setup).await? {
                    self.conns.remove(s);
                    return Ok(Some(e));
                }
                if let Some(c) = self.conns.get_mut(s) {
                    *c.settings() = hash;
                }
            }
            if self.txn != TxnState::Idle {
                let prelude = self.prelude.join(";");
                if let Some(e) = shardgate_exec::internal(&mut self.conns, &[*s], &prelude).await? {
                    // Not returned to the pool: dropping it closes it.
                    self.conns.remove(s);
                    return Ok(Some(e));
                }
            }
            added = true;
        }
        if added {
            self.update_cancel();
        }
        Ok(None)
    }

    /// Give every connection back to its pool (outside transactions).
    pub(super) fn release_all(&mut self) {
        if self.conns.is_empty() {
            return;
        }
        for (s, c) in std::mem::take(&mut self.conns) {
            if let Some(p) = self.router.pools.get(s.0 as usize) {
                p.checkin(c);
            }
        }
        self.batch_used.clear();
        self.update_cancel();
    }

    /// The transaction (block or implicit) ended, `committed` or not.
    pub(super) fn end_txn(&mut self, committed: bool) {
        self.cursors_at_end(committed);
        if !committed {
            self.discard_ids();
        }
        // Portals last until the end of their transaction block (those of
        // an implicit one, until Sync).
        if !self.implicit {
            self.portals.clear();
        }
        self.txn = TxnState::Idle;
        self.doomed = false;
        self.implicit = false;
        self.prelude.clear();
        self.written.clear();
        self.release_all();
    }

    /// Note the shards a write in a transaction touches: a transaction that
    /// wrote to several commits with two-phase commit (embedded shards,
    /// which cannot prepare, one after another: see `twopc::commit`). A
    /// transaction cannot write to both kinds.
    pub(super) fn check_write(
        &mut self,
        shards: &[ShardId],
        kind: StmtKind,
    ) -> Option<ErrorFields> {
        if self.txn == TxnState::Idle
            || !matches!(
                kind,
                StmtKind::Write | StmtKind::WriteCopies | StmtKind::Ddl
            )
        {
            return None;
        }
        let mut all = self.written.clone();
        all.extend(shards.iter().copied());
        let embedded = |s: &ShardId| {
            self.router
                .pools
                .get(s.0 as usize)
                .is_some_and(|p| !matches!(p.target, shardgate_backend::ShardTarget::Pg(_)))
        };
        if all.iter().any(embedded) && !all.iter().all(embedded) {
            return Some(err_fields(
                "0A000",
                "a transaction cannot write to both PostgreSQL and embedded (SQLite) shards; write each kind's rows in its own transaction",
            ));
        }
        self.written = all;
        None
    }

    /// Commit with two-phase commit the transaction each of `shards` is in
    /// (all or none, even if the router dies mid-commit); the error, if it
    /// did not commit.
    pub(super) async fn commit_two_phase(
        &mut self,
        shards: &[ShardId],
    ) -> Result<Option<ErrorFields>, ExecError> {
        let mut sub: Conns = Conns::new();
        for s in shards {
            if let Some(c) = self.conns.remove(s) {
                sub.insert(*s, c);
            }
        }
        let r = crate::twopc::commit(&self.router, &mut sub, shards).await;
        self.conns.append(&mut sub);
        r
    }

    /// Send Sync to every held connection whose extended-protocol batch is
    /// still open (the client's Sync has not come), and read each to
    /// ReadyForQuery: a statement sent next in the simple protocol, or a
    /// COMMIT, then runs after what the batch sent. (A shard that failed
    /// skips all but a Sync.)
    pub(super) async fn sync_open(&mut self) -> Result<(), ExecError> {
        let open: Vec<ShardId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.is_ready())
            .map(|(s, _)| *s)
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let mut sub: Conns = Conns::new();
        for s in &open {
            if let Some(c) = self.conns.remove(s) {
                sub.insert(*s, c);
            }
        }
        let st = shardgate_exec::sync_all(&mut sub, &mut self.out).await;
        self.conns.append(&mut sub);
        st.map(|_| ())
    }

    /// Start an implicit transaction (a multi-statement query, a key move,
    /// a statement whose subqueries run first): BEGIN goes with each
    /// shard's first statement, [`Session::finish_txn`] ends it.
    pub(super) fn begin_implicit(&mut self) {
        self.implicit = true;
        self.txn = TxnState::Active;
        self.prelude = vec!["BEGIN".to_string()];
        self.settings_at_begin = Some((self.settings.clone(), self.settings_hash));
    }

    pub(super) async fn finish_txn(
        &mut self,
        commit: bool,
    ) -> Result<Option<ErrorFields>, ExecError> {
        let shards: Vec<ShardId> = self.conns.keys().copied().collect();
        let writers: Vec<ShardId> = self
            .written
            .iter()
            .copied()
            .filter(|s| self.conns.contains_key(s))
            .collect();
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        let (r, rolled_back) = if shards.is_empty() {
            (None, false)
        } else if commit && writers.len() > 1 {
            // Written on several shards: all commit or none.
            (
                crate::twopc::commit(&self.router, &mut self.conns, &writers).await?,
                false,
            )
        } else {
            let i = shardgate_exec::internal_collect(&mut self.conns, &shards, sql).await?;
            (i.error, i.rolled_back)
        };
        // A shard that answers COMMIT with ROLLBACK had a failed
        // transaction: the client must not be told it committed.
        let r = match r {
            None if commit && rolled_back => Some(err_fields(
                "40001",
                "the transaction was rolled back on a shard (it had failed there); nothing was committed there",
            )),
            other => other,
        };
        let snapshot = self.settings_at_begin.take();
        if !commit || r.is_some() {
            // SETs inside the transaction are undone with it.
            if let Some((settings, hash)) = snapshot
                && hash != self.settings_hash
            {
                self.settings = settings;
                self.settings_hash = hash;
                // Which settings each connection holds now is unknown
                // (some were set up after BEGIN): make the next user reset.
                for c in self.conns.values_mut() {
                    *c.settings() = u64::MAX;
                }
            }
        }
        self.end_txn(commit && r.is_none());
        if commit && r.is_none() {
            self.record_ids().await;
        }
        Ok(r)
    }
}
