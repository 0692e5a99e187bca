//! Deadlocks across shards.
//!
//! Each PostgreSQL shard detects deadlocks among its own backends, but two
//! transactions that each hold a row lock on one shard and wait for the
//! other's on another shard wait forever: no shard sees the cycle. The
//! detector looks at every shard's lock waits (`pg_blocking_pids`), maps
//! the backends to the router's sessions (the connections each session
//! holds are known for cancel requests), and looks for a cycle of sessions
//! that spans more than one shard. A cycle seen on two passes in a row is
//! broken by cancelling the waiting statement of one of its sessions (the
//! one that came last in the cycle's order), which then gets SQLSTATE
//! `40P01` (deadlock detected) as from PostgreSQL's own detector; the
//! others go on.
//!
//! [`find_cycle`] is the pure part; [`detector_loop`] gathers the waits.

use crate::router::Router;
use shardgate_backend::{ShardConn, ShardTarget};
use shardgate_core::ShardId;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// A session, by its cancel key.
pub type SessionKey = (i32, i32);

/// "`waiter` waits on `shard` for a lock `holder` holds."
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wait {
    /// The waiting session.
    pub waiter: SessionKey,
    /// The session holding the lock.
    pub holder: SessionKey,
    /// Where.
    pub shard: ShardId,
}

/// A cycle of waits that spans at least two shards, as the list of its
/// waits in order, if there is one. Cycles on one shard are that shard's
/// own to break.
pub fn find_cycle(waits: &[Wait]) -> Option<Vec<Wait>> {
    let mut out: BTreeMap<SessionKey, Vec<&Wait>> = BTreeMap::new();
    for w in waits {
        out.entry(w.waiter).or_default().push(w);
    }
    // Depth-first search from every session, in a fixed order.
    for start in out.keys() {
        let mut path: Vec<&Wait> = Vec::new();
        let mut on_path: BTreeSet<SessionKey> = BTreeSet::from([*start]);
        if let Some(c) = dfs(*start, *start, &out, &mut path, &mut on_path) {
            return Some(c);
        }
    }
    None
}

fn dfs<'a>(
    start: SessionKey,
    at: SessionKey,
    out: &BTreeMap<SessionKey, Vec<&'a Wait>>,
    path: &mut Vec<&'a Wait>,
    on_path: &mut BTreeSet<SessionKey>,
) -> Option<Vec<Wait>> {
    for w in out.get(&at).map(Vec::as_slice).unwrap_or_default() {
        path.push(w);
        if w.holder == start {
            let shards: BTreeSet<ShardId> = path.iter().map(|w| w.shard).collect();
            if shards.len() > 1 {
                return Some(path.iter().map(|w| **w).collect());
            }
        } else if on_path.insert(w.holder) {
            if let Some(c) = dfs(start, w.holder, out, path, on_path) {
                return Some(c);
            }
            on_path.remove(&w.holder);
        }
        path.pop();
    }
    None
}

/// Look for deadlocks across shards every `every`; break each one seen
/// twice in a row.
pub async fn detector_loop(router: Arc<Router>, every: Duration) {
    let mut conns: HashMap<ShardId, ShardConn> = HashMap::new();
    let mut last: Option<Vec<Wait>> = None;
    loop {
        tokio::time::sleep(every).await;
        let waits = gather(&router, &mut conns).await;
        let cycle = find_cycle(&waits);
        tracing::debug!(?waits, ?cycle, "deadlock detector pass");
        match (&cycle, &last) {
            (Some(c), Some(l)) if c == l => {
                // The cycle's last waiter gives way.
                let victim = c[c.len() - 1];
                tracing::warn!(
                    ?c,
                    "deadlock across shards: cancelling the waiting statement of one transaction"
                );
                cancel_wait(&router, victim).await;
                last = None;
            }
            _ => last = cycle,
        }
    }
}

/// Every lock wait between two of the router's sessions, on every
/// PostgreSQL shard.
async fn gather(router: &Router, conns: &mut HashMap<ShardId, ShardConn>) -> Vec<Wait> {
    let sessions = router.session_backends();
    // Only sessions that hold more than one shard can close a cycle across
    // shards; without two of them there is nothing to look for.
    if sessions.iter().filter(|(_, b)| b.len() > 1).count() < 2 {
        return Vec::new();
    }
    let mut owner: HashMap<(ShardId, i32), SessionKey> = HashMap::new();
    for (key, backends) in &sessions {
        for (shard, pid, _) in backends {
            owner.insert((*shard, *pid), *key);
        }
    }
    let shards: BTreeSet<ShardId> = owner.keys().map(|(s, _)| *s).collect();
    let mut waits = Vec::new();
    for shard in shards {
        let Some(pool) = router.pools.get(shard.0 as usize) else {
            continue;
        };
        if !matches!(pool.target, ShardTarget::Pg(_)) {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = conns.entry(shard) {
            match pool.connect().await {
                Ok(c) => {
                    e.insert(c);
                }
                Err(_) => continue,
            }
        }
        let Some(c) = conns.get_mut(&shard) else {
            continue;
        };
        let rows = match c
            .simple_rows(
                "SELECT pid, unnest(pg_blocking_pids(pid)) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
            )
            .await
        {
            Ok(r) => r,
            Err(_) => {
                conns.remove(&shard);
                continue;
            }
        };
        for r in rows {
            let pid = |i: usize| {
                r.get(i)
                    .cloned()
                    .flatten()
                    .and_then(|s| s.parse::<i32>().ok())
            };
            if let (Some(w), Some(h)) = (pid(0), pid(1))
                && let (Some(waiter), Some(holder)) =
                    (owner.get(&(shard, w)), owner.get(&(shard, h)))
                && waiter != holder
            {
                waits.push(Wait {
                    waiter: *waiter,
                    holder: *holder,
                    shard,
                });
            }
        }
    }
    waits.sort();
    waits
}

/// Cancel what `w.waiter` runs on `w.shard`.
async fn cancel_wait(router: &Router, w: Wait) {
    for (key, backends) in router.session_backends() {
        if key != w.waiter {
            continue;
        }
        router.mark_deadlock_victim(key);
        for (shard, pid, secret) in backends {
            if shard == w.shard
                && let Some(p) = router.pools.get(shard.0 as usize)
            {
                p.cancel(pid, secret).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(waiter: i32, holder: i32, shard: u32) -> Wait {
        Wait {
            waiter: (waiter, 0),
            holder: (holder, 0),
            shard: ShardId(shard),
        }
    }

    #[test]
    fn only_cycles_across_shards_count() {
        // 1 waits for 2 on shard 0, 2 waits for 1 on shard 1.
        let c = find_cycle(&[w(1, 2, 0), w(2, 1, 1)]).unwrap();
        assert_eq!(c.len(), 2);
        // The same on one shard is PostgreSQL's to break.
        assert!(find_cycle(&[w(1, 2, 0), w(2, 1, 0)]).is_none());
        // A chain is no cycle.
        assert!(find_cycle(&[w(1, 2, 0), w(2, 3, 1)]).is_none());
        // A longer cycle, with a side branch.
        let c = find_cycle(&[w(1, 2, 0), w(2, 3, 1), w(3, 1, 2), w(2, 4, 0)]).unwrap();
        assert_eq!(c.len(), 3);
        assert!(find_cycle(&[]).is_none());
    }
}
