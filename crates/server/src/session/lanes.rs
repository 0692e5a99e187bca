//! Autocommit statements on lanes: a single-shard read or write that is a
//! whole batch of its own (Bind, Execute, Sync) outside any transaction,
//! with no session settings, runs on one of the shard's shared pipelined
//! connections ([`shardgate_backend::lane`]) instead of taking a pooled
//! connection. (A write there cannot wait for a lock: past the lane's lock
//! timeout it was rolled back and runs again the usual way.)

use super::*;
use shardgate_backend::lane::{LaneError, LaneReply, LaneRequest};

/// Does `sql` (a read) lock rows (`FOR UPDATE`, `FOR SHARE`, ...)? Such a
/// read can wait for another transaction's locks, and a lane must not wait
/// for anything: it would hold up every read queued behind it. A text
/// search, so a false "yes" (the words in a string literal) only means the
/// usual path.
fn locks_rows(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).any(|w| {
        w[0] == "for"
            && (w[1].starts_with("update")
                || w[1].starts_with("share")
                || w[1] == "no"
                || w[1] == "key")
    })
}

/// Settings a session may have and still share a lane (whose connection
/// has the shard's defaults): they change no query's result, except one
/// that reads them ([`mentions_settings`]).
const INERT: &[&str] = &["application_name"];

/// Might `sql` read a setting or the server's view of sessions (where a
/// lane's defaults would show)?
fn mentions_settings(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    [
        "application_name",
        "current_setting",
        "pg_settings",
        "pg_stat",
        "show",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// A lane's answer, sorted for the client.
struct Answer {
    /// The frames the client gets.
    frames: BytesMut,
    /// The shard bound the statement (it may have run).
    bound: bool,
    /// The error, if it failed.
    error: Option<ErrorFields>,
}

/// Sort a lane's answer (whole backend frames): BindComplete is left out
/// (the session answered the client's Bind itself; in the simple protocol
/// there is none), and so is NoData in the simple protocol.
fn sort_answer(raw: &[u8], simple: bool) -> Answer {
    let mut a = Answer {
        frames: BytesMut::with_capacity(raw.len()),
        bound: false,
        error: None,
    };
    let mut at = 0;
    while at + 5 <= raw.len() {
        let tag = raw[at];
        let len = u32::from_be_bytes([raw[at + 1], raw[at + 2], raw[at + 3], raw[at + 4]]) as usize;
        let end = (at + 1 + len).min(raw.len());
        match tag {
            b'2' => a.bound = true,
            b'n' if simple => {}
            _ => {
                if tag == b'E' && a.error.is_none() {
                    a.error = Some(
                        be::parse_error(&raw[at + 5..end])
                            .unwrap_or_else(|_| err_fields("XX000", "malformed error from shard")),
                    );
                }
                a.frames.extend_from_slice(&raw[at..end]);
            }
        }
        at = end;
    }
    a
}

impl Session {
    /// Run the read or write `sql` (bound as `bind_tail`) on a lane of
    /// `shard` if it may go there (`None`: it may not; the caller runs it
    /// the usual way). The caller has checked that it is a single-shard
    /// read or write (no DDL, nothing shardgate must learn from) and, in
    /// the extended protocol, alone in its batch.
    async fn on_lane(
        &mut self,
        shard: ShardId,
        write: bool,
        sql: &str,
        types: &[u32],
        bind_tail: &[u8],
        describe: bool,
    ) -> Option<(LaneReply, String)> {
        // Outside transactions, with no connection held (an earlier
        // statement of the batch may have written: it must be seen), with
        // the shard's default settings, not waiting for locks.
        if self.txn != TxnState::Idle
            || self.implicit
            || !self.conns.is_empty()
            || !self.batch_used.is_empty()
            || !self.batch_writes.is_empty()
            || !self
                .settings
                .iter()
                .all(|(k, _)| INERT.contains(&k.as_str()))
        {
            return None;
        }
        let pool = self.router.pools.get(shard.0 as usize)?.clone();
        let lane = pool.lane()?.clone();
        if (write && !lane.takes_writes()) || (!write && locks_rows(sql)) || mentions_settings(sql)
        {
            return None;
        }
        let req = LaneRequest {
            sql: Arc::from(sql),
            types: Arc::from(types),
            bind_tail: bind_tail.to_vec(),
            describe,
            schema: pool.schema_generation(),
            write,
        };
        Some((lane.run(req).await, pool.name.clone()))
    }

    /// A portal's read or write on a lane (extended protocol): `None` when
    /// it may not go there, or the lane sent it back without effect.
    pub(super) async fn portal_on_lane(
        &mut self,
        shard: ShardId,
        write: bool,
        sql: &str,
        types: &[u32],
        bind_tail: &[u8],
        describe: bool,
    ) -> Option<Done> {
        if !self.next_is_sync() {
            return None;
        }
        match self
            .on_lane(shard, write, sql, types, bind_tail, describe)
            .await?
        {
            (Ok(raw), _) => {
                let a = sort_answer(&raw, false);
                self.out.buf.extend_from_slice(&a.frames);
                Some(if a.error.is_some() {
                    Done::Failed
                } else {
                    Done::Ok
                })
            }
            (Err(LaneError::Retry), _) => None,
            (Err(LaneError::Lost), name) => {
                self.send_error(&lost(&name));
                Some(Done::Failed)
            }
        }
    }

    /// A simple-protocol read or write (forwarded as a prepared statement:
    /// see `forward_prepared`) on a lane: `true` when it was answered there.
    /// An error that the statement's text itself might not meet (before
    /// the shard bound it) sends it back to the usual path, which knows
    /// what to do then.
    pub(super) async fn simple_on_lane(
        &mut self,
        shard: ShardId,
        write: bool,
        sql: &str,
        types: &[u32],
        bind_tail: &[u8],
    ) -> bool {
        match self
            .on_lane(shard, write, sql, types, bind_tail, true)
            .await
        {
            None | Some((Err(LaneError::Retry), _)) => false,
            Some((Ok(raw), _)) => {
                let a = sort_answer(&raw, true);
                if a.error.is_some() && !a.bound {
                    return false;
                }
                self.out.buf.extend_from_slice(&a.frames);
                true
            }
            Some((Err(LaneError::Lost), name)) => {
                self.send_error(&lost(&name));
                true
            }
        }
    }
}

/// The error for a statement whose lane connection broke.
fn lost(shard: &str) -> ErrorFields {
    err_fields(
        "08006",
        format!("lost the connection to shard {shard} while it ran the statement"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_locking_reads_are_seen() {
        assert!(locks_rows("SELECT * FROM t WHERE id = $1 FOR UPDATE"));
        assert!(locks_rows("select * from t for  share skip locked"));
        assert!(locks_rows("SELECT 1 FROM t FOR NO KEY UPDATE"));
        assert!(locks_rows("SELECT 1 FROM t FOR KEY SHARE"));
        assert!(locks_rows("SELECT 1 FROM t FOR UPDATE\nOF t"));
        assert!(locks_rows("SELECT * FROM (SELECT 1 FROM t)for update"));
        assert!(!locks_rows("SELECT for_update FROM t"));
        assert!(!locks_rows(
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
        ));
        assert!(!locks_rows("SELECT format FROM t WHERE x = 'for'"));
    }

    #[test]
    fn answers_are_sorted_for_the_client() {
        let mut raw = BytesMut::new();
        be::bind_complete(&mut raw);
        be::no_data(&mut raw);
        be::command_complete(&mut raw, "SELECT 0");
        let a = sort_answer(&raw, false);
        assert!(a.bound && a.error.is_none());
        let mut want = BytesMut::new();
        be::no_data(&mut want);
        be::command_complete(&mut want, "SELECT 0");
        assert_eq!(a.frames, want);
        // The simple protocol has no NoData.
        let a = sort_answer(&raw, true);
        let mut want = BytesMut::new();
        be::command_complete(&mut want, "SELECT 0");
        assert_eq!(a.frames, want);
        let mut bad = BytesMut::new();
        be::error_like(&mut bad, b'E', &err_fields("42P01", "no such table"));
        let a = sort_answer(&bad, true);
        assert!(!a.bound);
        assert_eq!(a.error.map(|e| e.code).as_deref(), Some("42P01"));
        assert_eq!(a.frames, bad);
    }
}
