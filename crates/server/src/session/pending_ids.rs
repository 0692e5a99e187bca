//! DDL that adds, changes or drops a `shardgate.next_id()` default inside a
//! transaction block (an ORM's migration: Django runs each in one, TypeORM
//! its `synchronize`). The shards run it in the transaction; shardgate
//! records it in its metadata only when the transaction commits, and drops
//! it when the transaction (or a savepoint made before it) rolls back.
//! Until then the session plans under its own topology: the router's with
//! the pending changes applied, so its INSERTs draw ids for the new
//! columns as they will once it commits.

use super::*;
use shardgate_sql::ids::IdChange;
use std::collections::BTreeMap;

/// The id changes of the current transaction not recorded yet.
#[derive(Default)]
pub(super) struct PendingIds {
    /// Each change, with its mark among the session's savepoints (see
    /// `cursors::Savepoints`: a ROLLBACK TO drops those made after it).
    changes: Vec<(u64, IdChange)>,
    /// The version of the router's topology the session's was built on.
    base: u64,
}

impl Session {
    /// The shards ran `change` inside the transaction: plan with it from
    /// now on, record it at COMMIT.
    pub(super) fn defer_ids(&mut self, change: &IdChange) {
        self.savepoints.seq += 1;
        self.pending_ids
            .changes
            .push((self.savepoints.seq, change.clone()));
        self.overlay_ids(self.router.topology());
    }

    /// Whether the session plans under pending id changes.
    pub(super) fn ids_pending(&self) -> bool {
        !self.pending_ids.changes.is_empty()
    }

    /// The router's topology changed while changes are pending: apply
    /// them to the new one.
    pub(super) fn refresh_pending_ids(&mut self) {
        let t = self.router.topology();
        if t.version != self.pending_ids.base {
            self.overlay_ids(t);
        }
    }

    /// `base` with the pending changes applied, as the session's topology
    /// (under a version of its own, so plans made under it are not taken
    /// for plans under `base`).
    fn overlay_ids(&mut self, base: Arc<Topology>) {
        self.pending_ids.base = base.version;
        if self.pending_ids.changes.is_empty() {
            self.topo = base;
            return;
        }
        let mut t = (*base).clone();
        let mut map: BTreeMap<String, Vec<String>> = t.id_defaults.drain().collect();
        for (_, c) in &self.pending_ids.changes {
            c.apply(&mut map);
        }
        t.id_defaults = map.into_iter().collect();
        t.version =
            (1 << 63) | (base.version << 16) | (self.pending_ids.changes.len() as u64 & 0xffff);
        self.topo = Arc::new(t);
    }

    /// ROLLBACK TO a savepoint made at mark `before`: the changes made
    /// after it are undone on the shards.
    pub(super) fn ids_rolled_back_to(&mut self, before: u64) {
        let n = self.pending_ids.changes.len();
        self.pending_ids.changes.retain(|(at, _)| *at <= before);
        if self.pending_ids.changes.len() != n {
            self.overlay_ids(self.router.topology());
        }
    }

    /// The transaction rolled back (or failed to commit): its changes are
    /// gone from the shards.
    pub(super) fn discard_ids(&mut self) {
        if self.ids_pending() {
            self.pending_ids.changes.clear();
            self.overlay_ids(self.router.topology());
        }
    }

    /// The transaction committed: record its changes.
    pub(super) async fn record_ids(&mut self) {
        let changes = std::mem::take(&mut self.pending_ids.changes);
        if changes.is_empty() {
            return;
        }
        for (_, change) in &changes {
            if let Err(e) = crate::admin::learn_ids(&self.router, change).await {
                self.ids_not_recorded("the transaction committed", &e);
                break;
            }
        }
        self.overlay_ids(self.router.topology());
    }

    /// The shards ran (`what`) DDL whose `shardgate.next_id()` defaults
    /// shardgate could not record (`e`): the client must know.
    pub(super) fn ids_not_recorded(&mut self, what: &str, e: &ErrorFields) {
        tracing::warn!(
            "could not record columns that default to shardgate.next_id(): {}",
            e.message
        );
        self.send_error(&err_fields(
            "58030",
            format!(
                "{what} on the shards, but shardgate could not record its shardgate.next_id() defaults: {}",
                e.message
            ),
        ));
    }
}
