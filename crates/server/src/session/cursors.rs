//! SQL cursors (`DECLARE`, `FETCH`, `MOVE`, `CLOSE`; see
//! `shardgate_sql::cursor`). A cursor whose query one shard answers alone
//! lives on that shard (its statements are routed there, inside the
//! transaction that pins the connection); cursors shardgate does not know
//! are the default shard's, as any statement without a sharded table. A
//! cursor over several shards (or WITH HOLD, which outlives the shard
//! connection) is held by the router: its query runs whole at DECLARE (as
//! PostgreSQL materializes a WITH HOLD cursor at commit), at most
//! `max_merge_bytes` of rows, and FETCH/MOVE move over the held rows as
//! PostgreSQL moves over its own. Held cursors are served in the simple
//! query protocol only, for now.

use super::batches::frames;
use super::*;
use shardgate_sql::cursor::{CursorOp, fetch_rows};

/// A cursor the session knows of.
pub(super) enum Cursor {
    /// Declared on this shard (inside the current transaction), as the
    /// `seq`th cursor of the session.
    OnShard(ShardId, u64),
    /// Held by the router.
    Held(HeldCursor),
}

impl Cursor {
    fn seq(&self) -> u64 {
        match self {
            Cursor::OnShard(_, seq) => *seq,
            Cursor::Held(h) => h.seq,
        }
    }
}

/// The savepoints of the current transaction, with the number of cursors
/// declared before each (ROLLBACK TO closes those declared after).
#[derive(Default)]
pub(super) struct Savepoints {
    stack: Vec<(String, u64)>,
    /// Cursors declared so far in the session.
    pub(super) seq: u64,
}

/// A cursor's rows, held by the router.
pub(super) struct HeldCursor {
    /// The RowDescription frame, whole.
    desc: Bytes,
    /// DataRow frames, whole.
    rows: Vec<Bytes>,
    /// 0: before the first row; `rows.len() + 1`: after the last.
    pos: usize,
    /// `NO SCROLL`: no moving backwards.
    no_scroll: bool,
    /// `WITH HOLD`: kept when its transaction commits.
    hold: bool,
    /// Declared inside the current transaction block.
    in_txn: bool,
    /// Its place among the session's cursors (see [`Savepoints`]).
    seq: u64,
}

/// The plan of a cursor statement sent as it is to `shard`.
pub(super) fn single_route(shard: ShardId) -> Plan {
    Plan::Route {
        shards: vec![shard],
        sql: ShardSql::Original,
        kind: StmtKind::Other,
    }
}

impl Session {
    /// `MOVE [FORWARD] n name` where `name` is a portal of the extended
    /// protocol, not a SQL cursor (asyncpg's `Cursor.forward`, which moves
    /// a portal it bound before reading it): the portal moves forward as
    /// its Executes would read it. A portal not yet run reads its first
    /// row (dropped here): a portal one shard runs is then bound there and
    /// the rest of the move goes to that shard as SQL; the router's own
    /// (merged) portals skip the rows it holds. FETCH of such a portal
    /// and moving backward are refused (shardgate's portals are
    /// forward-only).
    pub(super) async fn move_portal(
        &mut self,
        name: &str,
        dir: shardgate_sql::cursor::FetchDir,
        moves: bool,
    ) -> Result<Done, ExecError> {
        use shardgate_sql::cursor::FetchDir;
        let want = match dir {
            FetchDir::Forward(n) if moves && n >= 0 => n as u64,
            FetchDir::ForwardAll if moves => u64::MAX,
            _ => {
                self.fail_statement(&err_fields(
                    "0A000",
                    format!(
                        "\"{name}\" is a portal of the extended query protocol: through shardgate it can only be read by Execute and moved forward by MOVE"
                    ),
                ));
                return Ok(Done::Failed);
            }
        };
        if self.txn == TxnState::Failed {
            return Ok(self.aborted());
        }
        let mut moved = 0;
        let started = self
            .portals
            .get(name)
            .is_some_and(|p| p.held.is_some() || p.bound_on.is_some());
        if want > 0 && !started {
            match self.execute_dropping_rows(name).await? {
                Some(n) => moved = n,
                None => return Ok(Done::Failed),
            }
        }
        if want > moved {
            let rest = want - moved;
            if let Some(k) = self.skip_held(name, rest) {
                moved += k;
            } else if let Some(shard) = self.portals.get(name).and_then(|p| p.bound_on) {
                let count = if want == u64::MAX {
                    "ALL".to_string()
                } else {
                    rest.to_string()
                };
                let sql = format!("MOVE FORWARD {count} \"{}\"", name.replace('"', "\"\""));
                let (mark, flushed) = (self.out.buf.len(), self.out.flushed);
                let o = shardgate_exec::run(
                    &mut self.conns,
                    &[shard],
                    &Request::Simple(&sql),
                    &mut self.out,
                )
                .await?;
                let reply = self.take_reply(mark, flushed);
                if let Some(e) = o.error {
                    self.fail_statement(&e);
                    return Ok(Done::Failed);
                }
                moved += reply
                    .iter()
                    .filter(|f| f[0] == b'C')
                    .filter_map(|f| be::parse_command_complete(&f[5..]).ok())
                    .filter_map(|t| t.rsplit(' ').next()?.parse::<u64>().ok())
                    .sum::<u64>();
            }
        }
        be::command_complete(&mut self.out.buf, &format!("MOVE {moved}"));
        Ok(Done::Ok)
    }

    /// Run portal `name` as an Execute of one row would, its reply taken
    /// back from the output: the number of rows it read (0 or 1), `None`
    /// (the error sent) when it failed.
    async fn execute_dropping_rows(&mut self, name: &str) -> Result<Option<u64>, ExecError> {
        let mut body = BytesMut::new();
        frontend::execute(&mut body, name, 1);
        let frame = Frame {
            tag: b'E',
            body: body.freeze().slice(5..),
        };
        let (mark, flushed) = (self.out.buf.len(), self.out.flushed);
        let skip = self.skip_to_sync;
        self.execute(&frame).await?;
        let failed = self.skip_to_sync && !skip;
        self.skip_to_sync = skip;
        let reply = self.take_reply(mark, flushed);
        if let Some(e) = reply.iter().find(|f| f[0] == b'E') {
            self.out.buf.extend_from_slice(e);
            if self.txn == TxnState::Active {
                self.txn = TxnState::Failed;
            }
            return Ok(None);
        }
        if failed {
            return Ok(None);
        }
        Ok(Some(reply.iter().filter(|f| f[0] == b'D').count() as u64))
    }

    /// The frames written to the output since `mark` (when `flushed`
    /// bytes had gone out), removed from it; notices and parameter
    /// statuses stay.
    fn take_reply(&mut self, mark: usize, flushed: u64) -> Vec<Bytes> {
        let gone = (self.out.flushed - flushed) as usize;
        let mark = mark.saturating_sub(gone);
        let reply = self.out.buf.split_off(mark).freeze();
        let mut out = Vec::new();
        for f in frames(reply) {
            if matches!(f[0], b'N' | b'S') {
                self.out.buf.extend_from_slice(&f);
            } else {
                out.push(f);
            }
        }
        out
    }

    /// The shard a cursor statement simply goes to, as its text: a cursor
    /// shardgate does not hold (the default shard's), one declared on a
    /// shard, or a non-holdable DECLARE in a transaction block whose query
    /// one shard answers alone (placed by the statement's bound parameters
    /// in the extended protocol). `None` when the router holds (or is to
    /// hold) the cursor. Changes nothing: see [`Session::cursor_done`].
    pub(super) fn cursor_target(&self, op: &CursorOp, params: &Params<'_>) -> Option<ShardId> {
        let default = self.topo.default_shard;
        match op {
            CursorOp::Fetch { name, .. } | CursorOp::Close(Some(name)) => {
                match self.cursors.get(name) {
                    None => Some(default),
                    Some(Cursor::OnShard(s, _)) => Some(*s),
                    Some(Cursor::Held(_)) => None,
                }
            }
            CursorOp::Close(None) => Some(default),
            CursorOp::Declare {
                name, query, hold, ..
            } => {
                if self.cursors.contains_key(name) || *hold || self.txn != TxnState::Active {
                    return None;
                }
                let t = shardgate_sql::analyze(query, &self.topo);
                match self.resolve_plan(&t, params) {
                    Ok(Plan::Route {
                        shards,
                        sql: ShardSql::Original,
                        ..
                    }) if shards.len() == 1 => Some(shards[0]),
                    _ => None,
                }
            }
        }
    }

    /// The RowDescription of a cursor the router holds.
    pub(super) fn held_cursor_desc(&self, name: &str) -> Option<Bytes> {
        match self.cursors.get(name) {
            Some(Cursor::Held(h)) => Some(h.desc.clone()),
            _ => None,
        }
    }

    /// After a cursor statement ran on shard `on`: what the session now
    /// knows (a DECLARE that succeeded, a CLOSE).
    pub(super) fn cursor_done(&mut self, op: &CursorOp, on: ShardId, ok: bool) {
        match op {
            CursorOp::Declare { name, .. } if ok => {
                self.savepoints.seq += 1;
                let seq = self.savepoints.seq;
                self.cursors.insert(name.clone(), Cursor::OnShard(on, seq));
            }
            CursorOp::Close(Some(name)) if ok => {
                self.cursors.remove(name);
            }
            CursorOp::Close(None) if ok => self.cursors.clear(),
            _ => {}
        }
    }

    /// Before CLOSE ALL goes to the default shard: close the cursors
    /// declared on other shards too, so that their names are free again.
    pub(super) async fn close_all_elsewhere(&mut self) -> Result<(), ExecError> {
        let default = self.topo.default_shard;
        let others: Vec<ShardId> = self
            .cursors
            .values()
            .filter_map(|c| match c {
                Cursor::OnShard(s, _) if *s != default => Some(*s),
                _ => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|s| self.conns.contains_key(s))
            .collect();
        if !others.is_empty()
            && let Some(e) = shardgate_exec::internal(&mut self.conns, &others, "CLOSE ALL").await?
        {
            tracing::debug!("CLOSE ALL on a shard: {}", e.message);
        }
        Ok(())
    }

    /// Run a cursor statement the router holds (simple protocol).
    pub(super) async fn run_held_cursor(&mut self, op: &CursorOp) -> Result<Done, ExecError> {
        match op {
            CursorOp::Declare {
                name,
                query,
                no_scroll,
                hold,
                binary,
            } => {
                self.declare_held(name, query, *no_scroll, *hold, *binary)
                    .await
            }
            CursorOp::Fetch { name, dir, moves } => {
                let Some(Cursor::Held(c)) = self.cursors.get_mut(name) else {
                    self.fail_statement(&err_fields(
                        "34000",
                        format!("cursor \"{name}\" does not exist"),
                    ));
                    return Ok(Done::Failed);
                };
                let (which, pos) = match fetch_rows(*dir, c.pos, c.rows.len(), !c.no_scroll, *moves)
                {
                    Ok(r) => r,
                    Err(e) => {
                        self.fail_statement(&ErrorFields {
                            hint: Some(
                                "Declare it with SCROLL option to enable backward scan.".into(),
                            ),
                            ..sql_err(&e)
                        });
                        return Ok(Done::Failed);
                    }
                };
                c.pos = pos;
                if *moves {
                    be::command_complete(&mut self.out.buf, &format!("MOVE {}", which.len()));
                } else {
                    self.out.buf.extend_from_slice(&c.desc);
                    for r in &which {
                        self.out.buf.extend_from_slice(&c.rows[r - 1]);
                    }
                    be::command_complete(&mut self.out.buf, &format!("FETCH {}", which.len()));
                }
                Ok(Done::Ok)
            }
            CursorOp::Close(name) => {
                if let Some(name) = name {
                    self.cursors.remove(name);
                }
                be::command_complete(&mut self.out.buf, "CLOSE CURSOR");
                Ok(Done::Ok)
            }
        }
    }

    /// A cursor statement on a cursor the router holds, in the extended
    /// protocol (psycopg 3's named cursors over several shards, Django's
    /// `.iterator()` with WITH HOLD): DECLARE runs its query with the bound
    /// parameters written in; FETCH sends the held rows, which are text
    /// (a binary result format is refused), with their description when
    /// the portal was described.
    pub(super) async fn held_cursor_extended(
        &mut self,
        op: &CursorOp,
        params: &Params<'_>,
        describe: bool,
        formats: &[i16],
    ) -> Result<Done, ExecError> {
        match op {
            CursorOp::Fetch { moves: false, .. } if formats.contains(&1) => {
                self.fail_statement(&err_fields(
                    "0A000",
                    "a cursor the router holds (over several shards, or WITH HOLD) has its rows in text format: fetch them in text",
                ));
                Ok(Done::Failed)
            }
            CursorOp::Declare {
                name,
                query,
                no_scroll,
                hold,
                binary,
            } => {
                if describe {
                    be::no_data(&mut self.out.buf);
                }
                let query = if params.is_empty() {
                    query.clone()
                } else {
                    let inlined = shardgate_sql::rewrite::inline_query_text(query, params);
                    match inlined {
                        Ok(q) => q,
                        Err(e) => {
                            self.fail_statement(&sql_err(&e));
                            return Ok(Done::Failed);
                        }
                    }
                };
                self.declare_held(name, &query, *no_scroll, *hold, *binary)
                    .await
            }
            CursorOp::Fetch { moves: false, .. } => {
                let mark = self.out.buf.len();
                let done = self.run_held_cursor(op).await?;
                if !describe && self.out.buf.get(mark) == Some(&b'T') {
                    // Its description was not asked for.
                    let len = u32::from_be_bytes(
                        self.out.buf[mark + 1..mark + 5]
                            .try_into()
                            .expect("4 bytes"),
                    ) as usize;
                    let rest = self.out.buf.split_off(mark + 1 + len);
                    self.out.buf.truncate(mark);
                    self.out.buf.unsplit(rest);
                }
                Ok(done)
            }
            _ => {
                if describe {
                    be::no_data(&mut self.out.buf);
                }
                self.run_held_cursor(op).await
            }
        }
    }

    async fn declare_held(
        &mut self,
        name: &str,
        query: &str,
        no_scroll: bool,
        hold: bool,
        binary: bool,
    ) -> Result<Done, ExecError> {
        if self.cursors.contains_key(name) {
            self.fail_statement(&err_fields(
                "42P03",
                format!("cursor \"{name}\" already exists"),
            ));
            return Ok(Done::Failed);
        }
        if !hold && self.txn == TxnState::Idle {
            self.fail_statement(&err_fields(
                "25P01",
                "DECLARE CURSOR can only be used in transaction blocks",
            ));
            return Ok(Done::Failed);
        }
        if binary {
            self.fail_statement(&err_fields(
                "0A000",
                "BINARY cursors over several shards are not supported yet",
            ));
            return Ok(Done::Failed);
        }
        let t = shardgate_sql::analyze(query, &self.topo);
        let plan = match self.resolve_plan(&t, &Params::none()) {
            Ok(
                p @ (Plan::Route {
                    kind: StmtKind::Read,
                    ..
                }
                | Plan::Read(_)),
            ) => p,
            Ok(_) => {
                self.fail_statement(&err_fields(
                    "0A000",
                    "a cursor the router holds (over several shards, or WITH HOLD) must be a plain read: FOR UPDATE/SHARE and data-modifying WITH are not supported there",
                ));
                return Ok(Done::Failed);
            }
            Err(e) => {
                self.fail_statement(&sql_err(&e));
                return Ok(Done::Failed);
            }
        };
        self.out.push_hold(self.router.max_merge_bytes);
        let done = Box::pin(self.run_plan_simple(&plan, &t, query)).await;
        let (reply, over) = self.out.pop_hold();
        // (A reply that never reached a flush is measured here.)
        let over = over || reply.len() > self.router.max_merge_bytes;
        let reply = reply.freeze();
        let done = done?;
        if over {
            self.fail_statement(&ErrorFields {
                hint: Some(
                    "a cursor over several shards (or WITH HOLD) holds its rows in the router: narrow its query, or raise max_merge_bytes in the configuration".into(),
                ),
                ..err_fields(
                    "54000",
                    "the cursor's rows are more than max_merge_bytes",
                )
            });
            return Ok(Done::Failed);
        }
        if matches!(done, Done::Failed) || reply.is_empty() {
            // The query's own error (the transaction state is set).
            self.out.buf.extend_from_slice(&reply);
            return Ok(Done::Failed);
        }
        let mut desc = None;
        let mut rows = Vec::new();
        for f in frames(reply) {
            match f[0] {
                b'T' if desc.is_none() => desc = Some(f),
                b'D' => rows.push(f),
                b'E' => {
                    self.out.buf.extend_from_slice(&f);
                    return Ok(Done::Failed);
                }
                _ => {}
            }
        }
        let Some(desc) = desc else {
            self.fail_statement(&err_fields(
                "42P11",
                "cursor can only be declared for a query that returns rows",
            ));
            return Ok(Done::Failed);
        };
        self.savepoints.seq += 1;
        self.cursors.insert(
            name.to_string(),
            Cursor::Held(HeldCursor {
                desc,
                rows,
                pos: 0,
                no_scroll,
                hold,
                in_txn: self.txn != TxnState::Idle,
                seq: self.savepoints.seq,
            }),
        );
        be::command_complete(&mut self.out.buf, "DECLARE CURSOR");
        Ok(Done::Ok)
    }

    /// After SAVEPOINT, RELEASE or ROLLBACK TO (`sql`) succeeded: note
    /// the savepoint, or close the cursors declared after the one rolled
    /// back to.
    pub(super) fn cursors_at_savepoint(&mut self, sql: &str) {
        use shardgate_sql::sqlparser::ast::Statement;
        let Ok(stmts) = shardgate_sql::parse::parse_sql(sql) else {
            // Not readable: forget the savepoints (cursors are kept).
            self.savepoints.stack.clear();
            return;
        };
        let fold = shardgate_sql::cursor::name_of;
        let sp = &mut self.savepoints;
        match stmts.as_slice() {
            [Statement::Savepoint { name }] => sp.stack.push((fold(name), sp.seq)),
            [Statement::ReleaseSavepoint { name }] => {
                let name = fold(name);
                if let Some(i) = sp.stack.iter().rposition(|(n, _)| *n == name) {
                    sp.stack.truncate(i);
                }
            }
            [
                Statement::Rollback {
                    savepoint: Some(name),
                    ..
                },
            ] => {
                let name = fold(name);
                if let Some(i) = sp.stack.iter().rposition(|(n, _)| *n == name) {
                    let before = sp.stack[i].1;
                    sp.stack.truncate(i + 1);
                    self.cursors.retain(|_, c| c.seq() <= before);
                    self.ids_rolled_back_to(before);
                }
            }
            _ => {}
        }
    }

    /// At the end of a transaction: only WITH HOLD cursors the router
    /// holds stay, and of those declared in it only if it committed.
    pub(super) fn cursors_at_end(&mut self, committed: bool) {
        self.savepoints.stack.clear();
        self.cursors.retain(|_, c| match c {
            Cursor::Held(h) if h.hold && (committed || !h.in_txn) => {
                h.in_txn = false;
                true
            }
            _ => false,
        });
    }
}
