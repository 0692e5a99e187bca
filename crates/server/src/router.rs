//! The state every session shares, and the accept loop.

use crate::error::ServerError;
use arc_swap::ArcSwap;
use shardgate_backend::Pool;
use shardgate_core::{ShardId, Snowflake, Strategy, TableKind, TableRule, Topology};
use shardgate_meta::{DecisionLog, MetaError, MetaStore, Metadata};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Backend connections a session holds right now, for cancel requests.
pub type CancelSlot = Arc<Mutex<Vec<(ShardId, i32, i32)>>>;

/// A session's cancel key and the shard backends (shard, pid, secret) it
/// holds.
pub type SessionBackends = ((i32, i32), Vec<(ShardId, i32, i32)>);

/// Shared router state.
pub struct Router {
    /// One pool per shard, indexed by shard id.
    pub pools: Vec<Arc<Pool>>,
    topology: ArcSwap<Topology>,
    meta: Arc<dyn MetaStore>,
    meta_lock: tokio::sync::Mutex<()>,
    cancels: Mutex<HashMap<(i32, i32), CancelSlot>>,
    /// Each session's flag that its statement was cancelled to break a
    /// deadlock (by cancel key).
    victims: Mutex<HashMap<(i32, i32), Arc<AtomicBool>>>,
    /// The server_version reported to clients.
    pub server_version: String,
    /// The TimeZone reported to clients that set none: the shards' own
    /// default (the first PostgreSQL shard's), which their sessions use.
    pub time_zone: String,
    /// Every shard orders text bytewise (C collation), so text sort keys
    /// can be merged.
    pub bytewise_text: bool,
    /// The most partial rows a cross-shard aggregation may hold.
    pub max_merge_rows: usize,
    /// The most bytes of partial rows a cross-shard aggregation may hold.
    pub max_merge_bytes: usize,
    /// Run single-shard simple-protocol statements as prepared statements
    /// on PostgreSQL shards (literals as typed parameters), outside
    /// transaction blocks; see the session's `forward_prepared`.
    pub prepare_simple: bool,
    /// This router's name in the gids of its prepared transactions.
    pub router_id: String,
    /// The durable log of commit decisions (two-phase commit needs it).
    pub txlog: Option<Arc<DecisionLog>>,
    /// Gids decided (commit) and not yet committed everywhere.
    pub(crate) decisions: Arc<Mutex<BTreeSet<String>>>,
    /// Gids this router is committing now.
    inflight: Mutex<HashSet<String>>,
    gid_start: u64,
    gid_seq: AtomicU64,
    /// A commit left work for recovery: run it soon.
    pub(crate) recovery_wanted: AtomicBool,
    /// The generator of `shardgate.next_id()` and when its node lease ends.
    id_gen: Mutex<Option<(Snowflake, u64)>>,
    /// A node number set in the configuration (`id_node`), used instead
    /// of a lease.
    pub fixed_node: Option<u16>,
}

/// How long a node lease for ids lasts; it is renewed well before.
pub const NODE_LEASE_MS: u64 = 60_000;
/// Ids stop this long before the lease ends if it was not renewed.
const NODE_LEASE_MARGIN_MS: u64 = 10_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The default of [`Router::max_merge_rows`].
pub const DEFAULT_MAX_MERGE_ROWS: usize = 1_000_000;
/// The default of [`Router::max_merge_bytes`] (256 MiB).
pub const DEFAULT_MAX_MERGE_BYTES: usize = 256 << 20;

impl Router {
    /// Build the router from pools, a metadata store and the rules the
    /// configuration declares (which win over stored rules of the same
    /// table). The merged rules are saved back to the store.
    ///
    /// # Errors
    /// Metadata store errors.
    pub fn new(
        pools: Vec<Arc<Pool>>,
        meta: Arc<dyn MetaStore>,
        configured: Vec<TableRule>,
        server_version: String,
        bytewise_text: bool,
    ) -> Result<Router, ServerError> {
        let names: Vec<String> = pools.iter().map(|p| p.name.clone()).collect();
        let mut md = meta.load()?;
        if !md.shards.is_empty() && md.shards != names {
            tracing::warn!(
                stored = ?md.shards,
                configured = ?names,
                "the shard list differs from the one the stored rules were made for; stored hash rules are rebuilt over the configured shards"
            );
        }
        let mut rules: HashMap<String, TableRule> = md
            .rules
            .iter()
            .cloned()
            .map(|r| (r.table.clone(), r))
            .collect();
        for mut r in configured {
            // Directory entries added through SQL outlive a restart; the
            // configuration's own entries win.
            if let (
                Some(TableRule {
                    kind:
                        TableKind::Sharded {
                            strategy:
                                Strategy::Directory {
                                    entries: stored, ..
                                },
                            ..
                        },
                    ..
                }),
                TableKind::Sharded {
                    strategy: Strategy::Directory { entries, .. },
                    ..
                },
            ) = (rules.get(&r.table), &mut r.kind)
            {
                for (k, v) in stored {
                    entries.entry(k.clone()).or_insert(*v);
                }
            }
            rules.insert(r.table.clone(), r);
        }
        let mut list: Vec<TableRule> = rules.into_values().collect();
        list.sort_by(|a, b| a.table.cmp(&b.table));
        if list != md.rules || md.shards != names {
            let expected = md.version;
            md = meta.save(
                expected,
                Metadata {
                    version: expected,
                    shards: names.clone(),
                    rules: list,
                    id_defaults: md.id_defaults.clone(),
                },
            )?;
        }
        let topo = topology_of(&md, &names);
        Ok(Router {
            pools,
            topology: ArcSwap::from_pointee(topo),
            meta,
            meta_lock: tokio::sync::Mutex::new(()),
            cancels: Mutex::new(HashMap::new()),
            victims: Mutex::new(HashMap::new()),
            server_version,
            time_zone: "UTC".to_string(),
            bytewise_text,
            max_merge_rows: DEFAULT_MAX_MERGE_ROWS,
            max_merge_bytes: DEFAULT_MAX_MERGE_BYTES,
            prepare_simple: true,
            router_id: "r".to_string(),
            txlog: None,
            decisions: Arc::new(Mutex::new(BTreeSet::new())),
            inflight: Mutex::new(HashSet::new()),
            gid_start: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            gid_seq: AtomicU64::new(0),
            recovery_wanted: AtomicBool::new(false),
            id_gen: Mutex::new(None),
            fixed_node: None,
        })
    }

    /// Take or renew this router's node number for ids (a lease in the
    /// metadata store, so that no two routers share one). Blocking: call it
    /// off the async threads.
    ///
    /// # Errors
    /// Every node number is taken, or the store failed.
    pub fn renew_node_lease(&self) -> Result<u16, MetaError> {
        let now = now_ms();
        let nodes = shardgate_core::snowflake::MAX_NODE as usize + 1;
        // Each router starts looking at a number of its own (a hash of its
        // id), so that routers whose stores are not shared rarely meet.
        let preferred = (self
            .router_id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            })
            % nodes as u64) as u16;
        let node = match self.fixed_node {
            Some(n) => n,
            None => self
                .meta
                .lease_node(&self.router_id, nodes, preferred, now, NODE_LEASE_MS)?,
        };
        let mut g = self.id_gen.lock().map_err(|_| MetaError::Poisoned)?;
        match g.as_mut() {
            Some((ids, expires)) if ids.node() == node => *expires = now + NODE_LEASE_MS,
            _ => {
                let ids = Snowflake::new(node)
                    .map_err(|e| MetaError::Corrupt("node".into(), e.to_string()))?;
                *g = Some((ids, now + NODE_LEASE_MS));
            }
        }
        Ok(node)
    }

    /// A new globally unique, time-ordered id (see
    /// [`shardgate_core::snowflake`]).
    ///
    /// # Errors
    /// No node lease is held (or it was not renewed in time), or the clock
    /// is out of the id layout's range.
    pub fn next_id(&self) -> Result<i64, String> {
        let now = now_ms();
        let mut g = self
            .id_gen
            .lock()
            .map_err(|_| "id generator lock poisoned".to_string())?;
        let Some((ids, expires)) = g.as_mut() else {
            return Err("this router holds no node number for ids yet".into());
        };
        if now + NODE_LEASE_MARGIN_MS >= *expires {
            return Err(
                "this router's node lease for ids could not be renewed; ids are paused until it is"
                    .into(),
            );
        }
        ids.next(now).map_err(|e| e.to_string())
    }

    /// Use `log` for commit decisions, under the name `router_id` (letters,
    /// digits and `-` only: it is part of every gid). The decisions the log
    /// holds (from before a restart) are loaded.
    ///
    /// # Errors
    /// The log cannot be read, or the id is not valid.
    pub fn set_decision_log(
        &mut self,
        router_id: &str,
        log: Arc<DecisionLog>,
    ) -> Result<(), ServerError> {
        if router_id.is_empty()
            || router_id.len() > 64
            || !router_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ServerError::Config(format!(
                "router_id {router_id:?}: use 1 to 64 letters, digits or '-'"
            )));
        }
        let open = log.open_commits()?;
        self.router_id = router_id.to_string();
        self.decisions = Arc::new(Mutex::new(open));
        self.txlog = Some(log);
        Ok(())
    }

    /// A new, unique gid for a prepared transaction of this router.
    pub(crate) fn next_gid(&self) -> String {
        let n = self.gid_seq.fetch_add(1, Ordering::Relaxed);
        format!("sg_{}_{}_{n}", self.router_id, self.gid_start)
    }

    pub(crate) fn inflight_begin(&self, gid: &str) {
        if let Ok(mut s) = self.inflight.lock() {
            s.insert(gid.to_string());
        }
    }

    pub(crate) fn inflight_end(&self, gid: &str) {
        if let Ok(mut s) = self.inflight.lock() {
            s.remove(gid);
        }
    }

    pub(crate) fn inflight_snapshot(&self) -> HashSet<String> {
        self.inflight.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn is_inflight(&self, gid: &str) -> bool {
        self.inflight
            .lock()
            .map(|s| s.contains(gid))
            .unwrap_or(true)
    }

    pub(crate) fn is_decided(&self, gid: &str) -> bool {
        self.decisions
            .lock()
            .map(|d| d.contains(gid))
            .unwrap_or(false)
    }

    pub(crate) fn decisions_snapshot(&self) -> BTreeSet<String> {
        self.decisions.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// Every shard committed `gid`: forget its decision.
    pub(crate) fn forget_decision(&self, gid: &str) {
        if let Ok(mut d) = self.decisions.lock()
            && d.remove(gid)
            && let Some(log) = &self.txlog
        {
            let _ = log.done(gid);
        }
    }

    /// The current topology.
    pub fn topology(&self) -> Arc<Topology> {
        self.topology.load_full()
    }

    /// Change the rules atomically: `f` edits the stored rule list; the
    /// result is saved and published.
    ///
    /// # Errors
    /// `f`'s error, or a metadata store error.
    pub async fn update_rules<E: From<MetaError>>(
        &self,
        f: impl FnOnce(&mut Vec<TableRule>) -> Result<(), E>,
    ) -> Result<Arc<Topology>, E> {
        self.update_metadata(|md| f(&mut md.rules)).await
    }

    /// Change the metadata atomically: `f` edits what is stored; the result
    /// is saved and published.
    ///
    /// # Errors
    /// `f`'s error, or a metadata store error.
    pub async fn update_metadata<E: From<MetaError>>(
        &self,
        f: impl FnOnce(&mut Metadata) -> Result<(), E>,
    ) -> Result<Arc<Topology>, E> {
        let _g = self.meta_lock.lock().await;
        let mut md = self.meta.load()?;
        f(&mut md)?;
        md.rules.sort_by(|a, b| a.table.cmp(&b.table));
        let expected = md.version;
        let names = self.topology().shard_names.clone();
        md.shards = names.clone();
        let saved = self.meta.save(expected, md)?;
        let topo = Arc::new(topology_of(&saved, &names));
        self.topology.store(topo.clone());
        Ok(topo)
    }

    /// Register a session's cancel key, the shard backends it holds and
    /// its deadlock-victim flag.
    pub fn register_cancel(&self, key: (i32, i32), slot: CancelSlot, victim: Arc<AtomicBool>) {
        if let Ok(mut m) = self.cancels.lock() {
            m.insert(key, slot);
        }
        if let Ok(mut m) = self.victims.lock() {
            m.insert(key, victim);
        }
    }

    /// Mark the session with this key as cancelled to break a deadlock.
    pub fn mark_deadlock_victim(&self, key: (i32, i32)) {
        if let Some(f) = self.victims.lock().ok().and_then(|m| m.get(&key).cloned()) {
            f.store(true, Ordering::Relaxed);
        }
    }

    /// The shard backends (shard, pid, secret) each session holds now.
    pub fn session_backends(&self) -> Vec<SessionBackends> {
        let slots: Vec<((i32, i32), CancelSlot)> = match self.cancels.lock() {
            Ok(m) => m.iter().map(|(k, v)| (*k, v.clone())).collect(),
            Err(_) => return Vec::new(),
        };
        slots
            .into_iter()
            .map(|(k, slot)| (k, slot.lock().map(|v| v.clone()).unwrap_or_default()))
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    /// Forget a session's cancel key.
    pub fn unregister_cancel(&self, key: (i32, i32)) {
        if let Ok(mut m) = self.cancels.lock() {
            m.remove(&key);
        }
        if let Ok(mut m) = self.victims.lock() {
            m.remove(&key);
        }
    }

    /// Cancel whatever the session with this key runs on its shards.
    pub async fn cancel(&self, key: (i32, i32)) {
        let targets: Vec<(ShardId, i32, i32)> = {
            let slot = self.cancels.lock().ok().and_then(|m| m.get(&key).cloned());
            match slot {
                Some(s) => s.lock().map(|v| v.clone()).unwrap_or_default(),
                None => return,
            }
        };
        for (shard, pid, secret) in targets {
            if let Some(p) = self.pools.get(shard.0 as usize) {
                p.cancel(pid, secret).await;
            }
        }
    }
}

fn topology_of(md: &Metadata, names: &[String]) -> Topology {
    Topology {
        version: md.version,
        shard_names: names.to_vec(),
        default_shard: ShardId(0),
        rules: md
            .rules
            .iter()
            .cloned()
            .map(|r| (r.table.clone(), std::sync::Arc::new(r)))
            .collect(),
        id_defaults: md
            .id_defaults
            .iter()
            .map(|(t, c)| (t.clone(), c.clone()))
            .collect(),
    }
}

/// Accept clients until the listener fails; each gets its own task.
///
/// # Errors
/// The listener failed.
pub async fn serve(router: Arc<Router>, listener: TcpListener) -> Result<(), ServerError> {
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let r = router.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::session::run(r, sock).await {
                tracing::debug!(%peer, "session ended: {e}");
            }
        });
    }
}
