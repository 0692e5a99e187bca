//! Execute with a row limit on results the router assembles itself
//! (merged multi-shard reads, RETURNING gathered from several shards, rows
//! shardgate answers alone): as PostgreSQL does for a portal it must
//! materialize (a DML's RETURNING, a WITH HOLD cursor), the whole reply is
//! produced first, held in the router (at most `max_merge_bytes`), and
//! handed out `max_rows` rows per Execute, each batch but the last ending
//! in PortalSuspended. A portal that one shard runs alone keeps its rows
//! on that shard instead (the row limit travels with the Execute).
//!
//! A portal the router ran to completion is never run again: a further
//! Execute answers with no rows and a count of 0, as PostgreSQL answers
//! for a finished SELECT or RETURNING portal (a write would otherwise be
//! applied twice).

use super::*;
use std::collections::VecDeque;

/// The rest of a portal's reply, held for the next Execute.
pub(super) struct Held {
    /// DataRow frames not yet sent, whole (tag, length, body).
    rows: VecDeque<Bytes>,
    /// The reply's CommandComplete tag (its row count is replaced by each
    /// Execute's own, as PostgreSQL reports it).
    tag: String,
    /// Can it be executed again once done? A portal of rows (a SELECT,
    /// a write with RETURNING) answers with no more rows; one without (a
    /// write without RETURNING, a utility statement) "cannot be run".
    rows_portal: bool,
}

/// Does the portal's plan give its Execute row limit to the one shard
/// that runs it?
pub(super) fn shard_keeps_rows(plan: &Plan) -> bool {
    matches!(
        plan,
        Plan::Route {
            shards,
            sql: ShardSql::Original | ShardSql::Params { .. },
            ..
        } if shards.len() == 1
    )
}

/// `tag` with its row count replaced by `n` (`SELECT 7` → `SELECT n`,
/// `INSERT 0 7` → `INSERT 0 n`).
fn retag(tag: &str, n: usize) -> String {
    match tag.rsplit_once(' ') {
        Some((head, count)) if count.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{head} {n}")
        }
        _ => tag.to_string(),
    }
}

/// Split a reply into whole frames.
pub(super) fn frames(mut bytes: Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        if len < 4 || bytes.len() < 1 + len {
            break;
        }
        out.push(bytes.split_to(1 + len));
    }
    out
}

impl Session {
    /// Execute portal `name` with row limit `max_rows` when the router
    /// holds its rows: run it whole with its reply held back, then send
    /// the first batch. `Ok(false)` when the portal is not such a one.
    pub(super) async fn execute_held(
        &mut self,
        name: &str,
        max_rows: i32,
    ) -> Result<bool, ExecError> {
        let Some(p) = self.portals.get(name) else {
            return Ok(false);
        };
        if let Some(h) = &p.held {
            if self.txn == TxnState::Failed {
                self.aborted();
                self.skip_to_sync = true;
            } else if !h.rows_portal {
                self.batch_error(&err_fields(
                    "55000",
                    format!("portal \"{name}\" cannot be run"),
                ));
            } else {
                self.next_batch(name, max_rows);
            }
            return Ok(true);
        }
        if max_rows <= 0 || shard_keeps_rows(&p.plan) {
            return Ok(false);
        }
        // Outside a transaction block a write commits before its reply is
        // complete: a reply past the cap could no longer fail it. Its rows
        // go out whole, as they stream (the limit is not applied).
        let write = matches!(
            p.plan,
            Plan::Move { .. }
                | Plan::PreEvaluate { .. }
                | Plan::Route {
                    kind: StmtKind::Write | StmtKind::WriteCopies | StmtKind::Ddl,
                    ..
                }
        );
        if write && self.txn == TxnState::Idle {
            let (mark, flushed) = (self.out.buf.len(), self.out.flushed);
            self.execute_portal(name, 0).await?;
            let from = if self.out.flushed == flushed { mark } else { 0 };
            self.portal_done(name, from);
            return Ok(true);
        }
        self.out.push_hold(self.router.max_merge_bytes);
        let r = self.execute_portal(name, 0).await;
        let (reply, over) = self.out.pop_hold();
        // (A reply that never reached a flush is measured here.)
        let over = over || reply.len() > self.router.max_merge_bytes;
        let reply = reply.freeze();
        r?;
        if over {
            self.batch_error(&ErrorFields {
                hint: Some(
                    "fetch it without a row limit (it then streams), or raise max_merge_bytes in the configuration".into(),
                ),
                ..err_fields(
                    "54000",
                    "a result fetched in batches (Execute with a row limit) that the router assembles from several shards is held in the router, and this one is larger than max_merge_bytes",
                )
            });
            return Ok(true);
        }
        let mut rows = VecDeque::new();
        let mut tag = None;
        let mut rest = Vec::new();
        for f in frames(reply.clone()) {
            match f[0] {
                b'D' if tag.is_none() => rows.push_back(f),
                b'C' if tag.is_none() => {
                    tag = be::parse_command_complete(&f[5..]).ok().map(str::to_string);
                }
                _ => rest.push(f),
            }
        }
        // An error, or a reply without rows (a write without RETURNING
        // keeps its count whatever the limit), goes out as it came.
        let Some(tag) = tag.filter(|_| !rows.is_empty() && !rest.iter().any(|f| f[0] == b'E'))
        else {
            // With an error, the rows before it are not sent (PostgreSQL
            // would have sent at most a batch of them).
            let failed = rest.iter().any(|f| f[0] == b'E');
            let from = self.out.buf.len();
            for f in frames(reply) {
                if !(failed && f[0] == b'D') {
                    self.out.buf.extend_from_slice(&f);
                }
            }
            self.portal_done(name, from);
            return Ok(true);
        };
        for f in &rest {
            self.out.buf.extend_from_slice(f);
        }
        if let Some(p) = self.portals.get_mut(name) {
            p.held = Some(Held {
                rows,
                tag,
                rows_portal: true,
            });
        }
        self.next_batch(name, max_rows);
        Ok(true)
    }

    /// After portal `name` ran to completion with its reply in the
    /// output from `from` on (a frame boundary): hold it as finished, with
    /// its tag, unless it failed.
    pub(super) fn portal_done(&mut self, name: &str, from: usize) {
        let mut tag = None;
        let mut rows = false;
        let mut b = &self.out.buf[from..];
        while b.len() >= 5 {
            let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
            if len < 4 || b.len() < 1 + len {
                break;
            }
            match b[0] {
                b'C' => {
                    tag = be::parse_command_complete(&b[5..1 + len])
                        .ok()
                        .map(str::to_string)
                }
                b'D' | b'T' => rows = true,
                b'E' => return,
                _ => {}
            }
            b = &b[1 + len..];
        }
        let Some(tag) = tag else { return };
        let Some(p) = self.portals.get(name) else {
            return;
        };
        // Rows were streamed out already, or none came: what the
        // statement is tells.
        let rows_portal = rows
            || tag.starts_with("SELECT ")
            || self.stmts.get(&p.stmt).is_some_and(|st| {
                st.sql
                    .to_ascii_lowercase()
                    .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .any(|w| w == "returning")
            });
        if let Some(p) = self.portals.get_mut(name) {
            p.held = Some(Held {
                rows: VecDeque::new(),
                tag,
                rows_portal,
            });
        }
    }

    /// Skip up to `n` of the rows the router holds for portal `name`
    /// (`None` when it holds none for it); how many were skipped.
    pub(super) fn skip_held(&mut self, name: &str, n: u64) -> Option<u64> {
        let held = self.portals.get_mut(name)?.held.as_mut()?;
        let k = (n.min(held.rows.len() as u64)) as usize;
        held.rows.drain(..k);
        Some(k as u64)
    }

    /// Send up to `max_rows` (0: all) of a held portal's rows, then
    /// PortalSuspended if rows remain, else the completion tag with this
    /// batch's count (and an exhausted portal answers with a count of 0).
    fn next_batch(&mut self, name: &str, max_rows: i32) {
        let Some(held) = self.portals.get_mut(name).and_then(|p| p.held.as_mut()) else {
            return;
        };
        let n = if max_rows <= 0 {
            held.rows.len()
        } else {
            (max_rows as usize).min(held.rows.len())
        };
        for f in held.rows.drain(..n) {
            self.out.buf.extend_from_slice(&f);
        }
        // A batch that reached its limit suspends the portal, even with no
        // row left (PostgreSQL cannot tell yet); the next Execute then
        // completes it with a count of 0.
        if max_rows > 0 && n == max_rows as usize {
            be::portal_suspended(&mut self.out.buf);
        } else {
            let tag = retag(&held.tag, n);
            be::command_complete(&mut self.out.buf, &tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retags_counts() {
        assert_eq!(retag("SELECT 10", 3), "SELECT 3");
        assert_eq!(retag("INSERT 0 10", 0), "INSERT 0 0");
        assert_eq!(retag("UPDATE 4", 4), "UPDATE 4");
        assert_eq!(retag("SHOW", 2), "SHOW");
    }

    #[test]
    fn splits_frames() {
        let mut b = BytesMut::new();
        be::command_complete(&mut b, "SELECT 1");
        be::portal_suspended(&mut b);
        let fs = frames(b.freeze());
        assert_eq!(fs.len(), 2);
        assert_eq!((fs[0][0], fs[1][0]), (b'C', b's'));
    }
}
