//! Two-phase commit of transactions that wrote to several shards, and the
//! recovery of what a crash leaves prepared.
//!
//! Commit (see [`commit`]): every written shard gets `PREPARE TRANSACTION
//! '<gid>'`; if one fails, those that prepared are rolled back and the
//! client gets the error. When all prepared, the decision is appended to
//! the router's [`DecisionLog`] and synced, and only then is `COMMIT
//! PREPARED` sent. A crash before the decision is durable leaves prepared
//! transactions that no log names: recovery rolls them back. A crash after
//! it leaves ones the log names: recovery commits them. Either way every
//! shard ends the same way.
//!
//! Gids name the router (`sg_<router id>_<start ms>_<n>`); a router
//! resolves only its own, so several routers can share shards. Recovery
//! ([`recover`]) runs at start-up and periodically ([`recovery_loop`]);
//! transactions of this router still being committed are left alone.

use crate::router::Router;
use shardgate_backend::{BackendError, ShardConn, ShardTarget};
use shardgate_core::ShardId;
use shardgate_exec::{Conns, ExecError};
use shardgate_meta::DecisionLog;
use shardgate_wire::backend::ErrorFields;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Where a test may make the router die (`SHARDGATE_FAULT`), to prove
/// recovery: right after every shard prepared, or right after the decision
/// was logged (before any COMMIT PREPARED).
fn fault(point: &str) {
    if std::env::var("SHARDGATE_FAULT").is_ok_and(|v| v == point) {
        tracing::error!("SHARDGATE_FAULT={point}: exiting on purpose");
        std::process::abort();
    }
}

/// `SHARDGATE_FAULT=pause_<point>`: wait 3 s there (a test stops a shard
/// meanwhile).
async fn pause(point: &str) {
    if std::env::var("SHARDGATE_FAULT").is_ok_and(|v| v.strip_prefix("pause_") == Some(point)) {
        tracing::warn!("SHARDGATE_FAULT=pause_{point}: waiting 3 s");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

fn err(code: &str, msg: impl Into<String>) -> ErrorFields {
    ErrorFields {
        severity: "ERROR".into(),
        code: code.into(),
        message: msg.into(),
        ..Default::default()
    }
}

/// Commit a transaction that wrote to `writers` (two or more) and only
/// read on the other connections in `conns`. Returns the error the client
/// gets, if it did not commit.
///
/// # Errors
/// A shard connection failed before the decision (the transaction is then
/// rolled back, by the shards or by recovery).
pub async fn commit(
    router: &Router,
    conns: &mut Conns,
    writers: &[ShardId],
) -> Result<Option<ErrorFields>, ExecError> {
    let embedded = writers
        .iter()
        .filter(|s| {
            router
                .pools
                .get(s.0 as usize)
                .is_some_and(|p| !matches!(p.target, ShardTarget::Pg(_)))
        })
        .count();
    if embedded == 0 && router.txlog.is_none() {
        shardgate_exec::internal(conns, writers, "ROLLBACK").await?;
        return Ok(Some(err(
            "0A000",
            "this router has no decision log, so it cannot commit a transaction that wrote to several shards",
        )));
    }
    if embedded > 0 && embedded < writers.len() {
        // (The session refuses the second write already.)
        shardgate_exec::internal(conns, writers, "ROLLBACK").await?;
        return Ok(Some(err(
            "0A000",
            "a transaction cannot write to both PostgreSQL and embedded shards",
        )));
    }
    // Shards that were only read: a plain COMMIT ends their part.
    let readers: Vec<ShardId> = conns
        .keys()
        .copied()
        .filter(|s| !writers.contains(s))
        .collect();
    if !readers.is_empty() {
        let r = shardgate_exec::internal_collect(conns, &readers, "COMMIT").await?;
        if r.error.is_some() || r.rolled_back {
            // A part that only read failed: the transaction fails whole.
            shardgate_exec::internal(conns, writers, "ROLLBACK").await?;
            return Ok(Some(r.error.unwrap_or_else(|| {
                err(
                    "40001",
                    "the transaction was rolled back on a shard (it had failed there); nothing was committed",
                )
            })));
        }
    }
    if embedded > 0 {
        return commit_in_turn(router, conns, writers).await;
    }
    let Some(log) = router.txlog.clone() else {
        unreachable!("checked above");
    };
    let gid = router.next_gid();
    router.inflight_begin(&gid);
    let r = commit_prepared(router, &log, conns, writers, &gid).await;
    router.inflight_end(&gid);
    if r.is_err() {
        // A shard connection broke mid-protocol: what it left prepared is
        // recovery's to resolve.
        router.recovery_wanted.store(true, Ordering::Relaxed);
    }
    r
}

/// Commit the parts of a transaction on embedded (SQLite) shards, which
/// cannot prepare: one shard after another, stopping at the first that
/// fails. If the first fails, the others roll back and nothing was
/// committed. A later failure (SQLite's COMMIT fails only on I/O errors
/// and a full disk once its statements ran) or a crash of the router
/// between two commits leaves the shards before it committed: the error
/// says which. This is the guarantee of the embedded default, documented
/// as such; PostgreSQL shards commit with two-phase commit.
async fn commit_in_turn(
    router: &Router,
    conns: &mut Conns,
    writers: &[ShardId],
) -> Result<Option<ErrorFields>, ExecError> {
    let name = |s: &ShardId| {
        router
            .pools
            .get(s.0 as usize)
            .map_or_else(|| s.0.to_string(), |p| p.name.clone())
    };
    for (i, s) in writers.iter().enumerate() {
        let r = shardgate_exec::internal_collect(conns, std::slice::from_ref(s), "COMMIT").await;
        let failed = match r {
            Ok(r) if r.error.is_none() && !r.rolled_back => continue,
            Ok(r) => r.error.map_or_else(
                || "the transaction had failed there".to_string(),
                |e| e.message,
            ),
            Err(e) => e.to_string(),
        };
        let rest = &writers[i + 1..];
        let _ = shardgate_exec::internal(conns, rest, "ROLLBACK").await;
        if i == 0 {
            return Ok(Some(err(
                "40001",
                format!(
                    "COMMIT failed on shard {}: {failed}; nothing was committed",
                    name(s)
                ),
            )));
        }
        let done: Vec<String> = writers[..i].iter().map(name).collect();
        return Ok(Some(err(
            "XX000",
            format!(
                "COMMIT failed on embedded shard {} ({failed}) after shards {} had committed: the transaction is committed there only",
                name(s),
                done.join(", ")
            ),
        )));
    }
    Ok(None)
}

async fn commit_prepared(
    router: &Router,
    log: &Arc<DecisionLog>,
    conns: &mut Conns,
    writers: &[ShardId],
    gid: &str,
) -> Result<Option<ErrorFields>, ExecError> {
    let prepared = shardgate_exec::internal_collect_per(conns, writers, |s| {
        format!("PREPARE TRANSACTION '{}'", shard_gid(gid, s))
    })
    .await;
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            // A shard is gone mid-PREPARE: roll back where we still can;
            // recovery rolls back the rest (no decision was logged).
            let _ = rollback_prepared(conns, writers, gid).await;
            return Err(e);
        }
    };
    if prepared.error.is_some() || prepared.rolled_back {
        rollback_prepared(conns, writers, gid).await?;
        let e = prepared.error.unwrap_or_else(|| {
            err(
                "40001",
                "the transaction was rolled back on a shard (it had failed there); nothing was committed",
            )
        });
        let e = if e.message.contains("prepared transactions are disabled") {
            err(
                "55000",
                format!(
                    "a shard cannot prepare transactions, so a transaction that writes to several shards cannot commit: set max_prepared_transactions > 0 on every shard ({})",
                    e.message
                ),
            )
        } else {
            e
        };
        return Ok(Some(e));
    }
    fault("after_prepare");
    let decided = {
        let log = log.clone();
        let gid = gid.to_string();
        let decisions = router.decisions.clone();
        tokio::task::spawn_blocking(move || {
            // Logged first, then known in memory: recovery of this router
            // reads the memory after it saw the transaction is not in flight.
            let mut d = decisions
                .lock()
                .map_err(|_| shardgate_meta::MetaError::Poisoned)?;
            log.commit(&gid)?;
            d.insert(gid);
            Ok::<(), shardgate_meta::MetaError>(())
        })
        .await
    };
    match decided {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            rollback_prepared(conns, writers, gid).await?;
            return Ok(Some(err(
                "58030",
                format!(
                    "could not record the commit decision, so the transaction was rolled back: {e}"
                ),
            )));
        }
        Err(e) => {
            rollback_prepared(conns, writers, gid).await?;
            return Ok(Some(err("XX000", format!("decision log task failed: {e}"))));
        }
    }
    fault("after_decision");
    pause("after_decision").await;
    // Decided: the client is told COMMIT whatever happens next; a shard
    // that does not take COMMIT PREPARED now is finished by recovery.
    let mut all = true;
    for s in writers {
        let sql = format!("COMMIT PREPARED '{}'", shard_gid(gid, *s));
        match shardgate_exec::internal(conns, &[*s], &sql).await {
            Ok(None) => {}
            Ok(Some(e)) => {
                tracing::warn!(gid, shard = %s, "COMMIT PREPARED failed, left to recovery: {}", e.message);
                all = false;
            }
            Err(e) => {
                tracing::warn!(gid, shard = %s, "COMMIT PREPARED failed, left to recovery: {e}");
                // The connection is broken: drop it, it must not be reused.
                conns.remove(s);
                all = false;
            }
        }
    }
    if all {
        router.forget_decision(gid);
    } else {
        router.recovery_wanted.store(true, Ordering::Relaxed);
    }
    Ok(None)
}

/// The name a transaction is prepared under on shard `s`: prepared
/// transactions are named per PostgreSQL server, and two shards may be two
/// databases of one server.
fn shard_gid(gid: &str, s: ShardId) -> String {
    format!("{gid}-s{}", s.0)
}

/// The transaction of a prepared name (see [`shard_gid`]; names without a
/// shard are whole transactions).
fn base_gid(name: &str) -> &str {
    match name.rsplit_once("-s") {
        Some((base, shard)) if !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => name,
    }
}

/// `ROLLBACK PREPARED` on each of `shards` (an error where it was not
/// prepared is expected and ignored).
async fn rollback_prepared(
    conns: &mut Conns,
    shards: &[ShardId],
    gid: &str,
) -> Result<(), ExecError> {
    for s in shards {
        if conns.contains_key(s) {
            let sql = format!("ROLLBACK PREPARED '{}'", shard_gid(gid, *s));
            shardgate_exec::internal(conns, &[*s], &sql).await?;
        }
    }
    Ok(())
}

/// What one recovery pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Prepared transactions committed (their decision was logged).
    pub committed: usize,
    /// Prepared transactions rolled back (never decided).
    pub rolled_back: usize,
    /// Shards that could not be checked (down): their transactions wait.
    pub unreachable: usize,
}

/// Resolve every transaction this router left prepared on any shard:
/// commit it if its commit was decided, roll it back otherwise; a
/// transaction this router is committing right now is left alone.
/// Decisions that no shard holds any more are then forgotten.
///
/// # Errors
/// The decision log cannot be rewritten.
pub async fn recover(router: &Router) -> Result<Recovered, shardgate_meta::MetaError> {
    let mut out = Recovered::default();
    let Some(log) = router.txlog.clone() else {
        return Ok(out);
    };
    // Decisions known before the pass: those not in flight and not found
    // prepared anywhere are finished.
    let before = router.decisions_snapshot();
    // Never forget what was in flight at any point of the pass: its
    // session may yet fail a COMMIT PREPARED and leave it to recovery.
    let inflight_at_start = router.inflight_snapshot();
    let prefix = format!("sg_{}_", router.router_id);
    let mut still_open: BTreeSet<String> = BTreeSet::new();
    for pool in &router.pools {
        let ShardTarget::Pg(_) = &pool.target else {
            continue;
        };
        let result = match pool.connect().await {
            Ok(mut c) => resolve_on(router, &mut c, &prefix, &mut out).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(open) => still_open.extend(open),
            Err(e) => {
                tracing::warn!(shard = %pool.name, "transaction recovery cannot check the shard: {e}");
                out.unreachable += 1;
            }
        }
    }
    if out.unreachable == 0 {
        let finished: Vec<&String> = before
            .iter()
            .filter(|g| {
                !still_open.contains(*g)
                    && !inflight_at_start.contains(*g)
                    && !router.is_inflight(g)
            })
            .collect();
        if !finished.is_empty() {
            for g in &finished {
                router.forget_decision(g);
            }
            let d = router.decisions.clone();
            let log = log.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let d = d.lock().map_err(|_| shardgate_meta::MetaError::Poisoned)?;
                log.compact(&d)
            })
            .await
            .map_err(|_| shardgate_meta::MetaError::Poisoned)?;
        }
    }
    if out.committed + out.rolled_back > 0 {
        tracing::info!(
            committed = out.committed,
            rolled_back = out.rolled_back,
            "recovered prepared transactions"
        );
    }
    Ok(out)
}

/// Resolve this router's prepared transactions on one shard; returns the
/// decided gids still prepared there (a COMMIT PREPARED that failed).
async fn resolve_on(
    router: &Router,
    c: &mut ShardConn,
    prefix: &str,
    out: &mut Recovered,
) -> Result<Vec<String>, BackendError> {
    let like = prefix
        .replace('\\', "\\\\")
        .replace('_', "\\_")
        .replace('%', "\\%")
        .replace('\'', "''");
    let rows = c
        .simple_rows(&format!(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE '{like}%'"
        ))
        .await?;
    let mut open = Vec::new();
    for row in rows {
        let Some(Some(gid)) = row.into_iter().next() else {
            continue;
        };
        // In flight: its session decides. Otherwise the session is done,
        // and a decision it made is already known (it is recorded before
        // the session leaves the in-flight set).
        // Another router's gid that matched the LIKE by accident.
        if !gid.starts_with(prefix) {
            continue;
        }
        let base = base_gid(&gid).to_string();
        if router.is_inflight(&base) {
            open.push(base);
            continue;
        }
        let commit = router.is_decided(&base);
        let sql = format!(
            "{} PREPARED '{}'",
            if commit { "COMMIT" } else { "ROLLBACK" },
            gid.replace('\'', "''")
        );
        match c.simple_rows(&sql).await {
            Ok(_) if commit => out.committed += 1,
            Ok(_) => out.rolled_back += 1,
            // Resolved meanwhile by its own session.
            Err(BackendError::Server(e)) if e.code == "42704" => {}
            Err(e) => {
                tracing::warn!(gid, "could not resolve a prepared transaction: {e}");
                if commit {
                    open.push(base);
                }
            }
        }
    }
    Ok(open)
}

/// Run [`recover`] every `every`, and soon after a commit left work for it.
pub async fn recovery_loop(router: std::sync::Arc<Router>, every: Duration) {
    let mut since = Duration::ZERO;
    let tick = Duration::from_millis(500);
    loop {
        tokio::time::sleep(tick).await;
        since += tick;
        let wanted = router.recovery_wanted.swap(false, Ordering::Relaxed);
        if wanted || since >= every {
            since = Duration::ZERO;
            match recover(&router).await {
                // A shard was down: try again in 2 s, not at the next period.
                Ok(r) if r.unreachable > 0 => since = every.saturating_sub(Duration::from_secs(2)),
                Ok(_) => {}
                Err(e) => tracing::warn!("transaction recovery failed: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_names_are_per_shard_and_lead_back_to_their_transaction() {
        let gid = "sg_d81af4d4_1795415252408_12";
        let a = shard_gid(gid, ShardId(0));
        let b = shard_gid(gid, ShardId(13));
        assert_ne!(a, b);
        assert_eq!(base_gid(&a), gid);
        assert_eq!(base_gid(&b), gid);
        // Names from before the shard suffix are whole transactions.
        assert_eq!(base_gid(gid), gid);
        assert_eq!(base_gid("sg_x_1_2-s"), "sg_x_1_2-s");
        assert_eq!(base_gid("sg_x_1_2-sx"), "sg_x_1_2-sx");
    }
}
