//! One client session: startup, the simple and extended query protocols,
//! and the transaction state that decides which shard connections the
//! session holds.
//!
//! Connections are pooled per transaction: a session takes a shard
//! connection when a statement first needs that shard and gives it back
//! when the transaction (or, outside one, the statement or extended-protocol
//! batch) ends. A transaction's BEGIN (and SET LOCAL / SAVEPOINT) is
//! replayed on each shard when it joins, so single-shard transactions cost
//! no extra round trip.

use crate::router::{CancelSlot, Router};
use bytes::{Bytes, BytesMut};
use shardgate_backend::BackendError;
use shardgate_core::{ShardId, Topology};
use shardgate_exec::{ClientOut, Conns, ExecError, Outcome, Request};
use shardgate_sql::{Local, Params, Plan, ShardSql, SqlError, StmtKind, Template};
use shardgate_wire::backend::{self as be, Column, ErrorFields};
use shardgate_wire::{Frame, frontend, startup};
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Entries in a session's plan cache before it is cleared.
const PLAN_CACHE_SIZE: usize = 512;

/// Startup parameters that are not session settings.
const NOT_SETTINGS: &[&str] = &[
    "user",
    "database",
    "client_encoding",
    "application_name",
    "fallback_application_name",
    "replication",
    "options",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnState {
    Idle,
    Active,
    Failed,
}

struct Prepared {
    sql: String,
    types: Vec<u32>,
    template: Template,
    version: u64,
}

struct Portal {
    stmt: String,
    plan: Plan,
    bind: Bytes,
    result_formats: Vec<i16>,
    describe_pending: bool,
    bound_on: Option<ShardId>,
}

/// A statement's result, as far as the session's state is concerned.
enum Done {
    Ok,
    Failed,
}

/// Run a session on an accepted socket until the client leaves.
///
/// # Errors
/// Socket errors; protocol violations end the session after an error
/// message.
pub async fn run(router: Arc<Router>, sock: TcpStream) -> std::io::Result<()> {
    let (rd, wr) = sock.into_split();
    let mut s = Session {
        topo: router.topology(),
        router,
        rd,
        rbuf: BytesMut::with_capacity(8192),
        out: ClientOut::new(wr),
        conns: Conns::new(),
        txn: TxnState::Idle,
        prelude: Vec::new(),
        written: BTreeSet::new(),
        batch_used: BTreeSet::new(),
        synced: BTreeSet::new(),
        batch_writes: BTreeSet::new(),
        batch_multi: false,
        settings: Vec::new(),
        settings_hash: 0,
        settings_at_begin: None,
        stmts: HashMap::new(),
        portals: HashMap::new(),
        plan_cache: HashMap::new(),
        plan_cache_version: 0,
        skip_to_sync: false,
        cancel_slot: Arc::new(Mutex::new(Vec::new())),
        key: (0, 0),
    };
    let r = s.main().await;
    s.router.unregister_cancel(s.key);
    r
}

struct Session {
    router: Arc<Router>,
    topo: Arc<Topology>,
    rd: OwnedReadHalf,
    rbuf: BytesMut,
    out: ClientOut<OwnedWriteHalf>,
    conns: Conns,
    txn: TxnState,
    /// BEGIN and in-transaction statements, replayed on joining shards.
    prelude: Vec<String>,
    written: BTreeSet<ShardId>,
    batch_used: BTreeSet<ShardId>,
    /// Shards whose connection already got this batch's Sync.
    synced: BTreeSet<ShardId>,
    /// Shards written by this extended-protocol batch (outside transactions).
    batch_writes: BTreeSet<ShardId>,
    /// This batch ran a multi-shard write.
    batch_multi: bool,
    settings: Vec<(String, String)>,
    settings_hash: u64,
    /// The settings when the transaction began (restored by ROLLBACK).
    settings_at_begin: Option<(Vec<(String, String)>, u64)>,
    stmts: HashMap<String, Prepared>,
    portals: HashMap<String, Portal>,
    /// Analyzed normalized statements of the simple protocol.
    plan_cache: HashMap<String, Arc<Template>>,
    plan_cache_version: u64,
    skip_to_sync: bool,
    cancel_slot: CancelSlot,
    key: (i32, i32),
}

fn err_fields(code: &str, message: impl Into<String>) -> ErrorFields {
    ErrorFields {
        severity: "ERROR".into(),
        code: code.into(),
        message: message.into(),
        ..Default::default()
    }
}

fn sql_err(e: &SqlError) -> ErrorFields {
    err_fields(e.sqlstate(), e.to_string())
}

impl Session {
    async fn read_more(&mut self) -> std::io::Result<bool> {
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(8192);
        }
        Ok(self.rd.read_buf(&mut self.rbuf).await? > 0)
    }

    async fn main(&mut self) -> std::io::Result<()> {
        let params = loop {
            match startup::take(&mut self.rbuf) {
                Ok(Some(startup::Startup::Start(p))) => break p,
                Ok(Some(startup::Startup::SslRequest | startup::Startup::GssEncRequest)) => {
                    self.out.w.write_all(b"N").await?;
                }
                Ok(Some(startup::Startup::Cancel { pid, secret })) => {
                    self.router.cancel((pid, secret)).await;
                    return Ok(());
                }
                Ok(None) => {
                    if !self.read_more().await? {
                        return Ok(());
                    }
                }
                Err(e) => {
                    be::error_like(
                        &mut self.out.buf,
                        b'E',
                        &ErrorFields {
                            severity: "FATAL".into(),
                            code: "08P01".into(),
                            message: format!("invalid startup packet: {e}"),
                            ..Default::default()
                        },
                    );
                    self.out.flush().await?;
                    return Ok(());
                }
            }
        };
        self.startup(&params);
        self.out.flush().await?;
        loop {
            let frame = match Frame::take(&mut self.rbuf) {
                Ok(Some(f)) => f,
                Ok(None) => {
                    if !self.read_more().await? {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => {
                    be::error_like(
                        &mut self.out.buf,
                        b'E',
                        &ErrorFields {
                            severity: "FATAL".into(),
                            code: "08P01".into(),
                            message: format!("invalid message: {e}"),
                            ..Default::default()
                        },
                    );
                    self.out.flush().await?;
                    return Ok(());
                }
            };
            let tag = frame.tag;
            match self.handle(frame).await {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(ExecError::Client(e)) => return Err(e),
                Err(ExecError::Shard { shard, source }) => {
                    // A broken shard connection: drop every connection of
                    // the session (they may be mid-reply) and tell the client.
                    self.conns.clear();
                    self.update_cancel();
                    if self.txn != TxnState::Idle {
                        self.txn = TxnState::Failed;
                    }
                    let name = shard
                        .parse::<u32>()
                        .map(|s| self.topo.shard_name(ShardId(s)))
                        .unwrap_or(shard);
                    self.send_error(&err_fields(
                        "08006",
                        format!("lost connection to shard {name}: {source}"),
                    ));
                    if matches!(tag, b'Q' | b'S') {
                        self.skip_to_sync = false;
                        self.ready();
                    } else {
                        self.skip_to_sync = true;
                    }
                    self.out.flush().await?;
                }
            }
        }
    }

    fn startup(&mut self, params: &[(String, String)]) {
        for (k, v) in params {
            if !NOT_SETTINGS.contains(&k.as_str()) {
                let lit = v.replace('\'', "''");
                self.settings
                    .push((k.to_ascii_lowercase(), format!("SET {k} = '{lit}'")));
            }
        }
        self.rehash_settings();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let user = get("user").unwrap_or("shardgate").to_string();
        let b = &mut self.out.buf;
        be::auth_ok(b);
        let app = get("application_name").unwrap_or("");
        for (k, v) in [
            ("server_version", self.router.server_version.as_str()),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", get("DateStyle").unwrap_or("ISO, MDY")),
            ("TimeZone", get("TimeZone").unwrap_or("UTC")),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("IntervalStyle", "postgres"),
            ("is_superuser", "off"),
            ("session_authorization", user.as_str()),
            ("application_name", app),
        ] {
            be::parameter_status(b, k, v);
        }
        self.key = (rand::random::<i32>().abs(), rand::random::<i32>());
        be::backend_key_data(b, self.key.0, self.key.1);
        self.router
            .register_cancel(self.key, self.cancel_slot.clone());
        self.ready();
    }

    fn rehash_settings(&mut self) {
        if self.settings.is_empty() {
            self.settings_hash = 0;
            return;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.settings.hash(&mut h);
        self.settings_hash = h.finish() | 1;
    }

    fn status(&self) -> u8 {
        match self.txn {
            TxnState::Idle => be::IDLE,
            TxnState::Active => be::IN_TXN,
            TxnState::Failed => be::FAILED_TXN,
        }
    }

    fn ready(&mut self) {
        let st = self.status();
        be::ready_for_query(&mut self.out.buf, st);
    }

    fn send_error(&mut self, e: &ErrorFields) {
        be::error_like(&mut self.out.buf, b'E', e);
    }

    fn notice(&mut self, code: &str, msg: &str) {
        be::error_like(
            &mut self.out.buf,
            b'N',
            &ErrorFields {
                severity: "WARNING".into(),
                code: code.into(),
                message: msg.into(),
                ..Default::default()
            },
        );
    }

    /// Refresh the topology snapshot if the router has a newer one.
    fn refresh_topology(&mut self) {
        let t = self.router.topology();
        if t.version != self.topo.version {
            self.topo = t;
        }
    }

    async fn handle(&mut self, f: Frame) -> Result<bool, ExecError> {
        if self.skip_to_sync && !matches!(f.tag, b'S' | b'X') {
            if f.tag == b'H' {
                self.out.flush().await?;
            }
            return Ok(true);
        }
        match f.tag {
            b'Q' => {
                self.simple_query(&f).await?;
                self.out.flush().await?;
            }
            b'P' => self.parse(&f),
            b'B' => self.bind(&f),
            b'D' => self.describe(&f).await?,
            b'E' => self.execute(&f).await?,
            b'C' => {
                match frontend::parse_target(&f.body) {
                    Ok((b'S', name)) => {
                        self.stmts.remove(name);
                    }
                    Ok((_, name)) => {
                        self.portals.remove(name);
                    }
                    Err(e) => return self.protocol_violation(&e.to_string()).await,
                }
                be::close_complete(&mut self.out.buf);
            }
            b'S' => {
                self.sync().await?;
                self.out.flush().await?;
            }
            b'H' => {
                self.answer_pending_describes().await?;
                self.out.flush().await?;
            }
            b'X' => return Ok(false),
            // COPY data outside COPY (COPY is refused): ignore, as PostgreSQL does.
            b'd' | b'c' | b'f' => {}
            other => {
                return self
                    .protocol_violation(&format!("unexpected message type {:?}", other as char))
                    .await;
            }
        }
        Ok(true)
    }

    async fn protocol_violation(&mut self, why: &str) -> Result<bool, ExecError> {
        be::error_like(
            &mut self.out.buf,
            b'E',
            &ErrorFields {
                severity: "FATAL".into(),
                code: "08P01".into(),
                message: format!("protocol violation: {why}"),
                ..Default::default()
            },
        );
        self.out.flush().await?;
        Ok(false)
    }

    // ----- shard connections and transactions -----

    fn update_cancel(&self) {
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
    async fn ensure(&mut self, shards: &[ShardId]) -> Result<Option<ErrorFields>, ExecError> {
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
                setup.push_str("RESET ALL;");
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
    fn release_all(&mut self) {
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

    fn end_txn(&mut self) {
        self.txn = TxnState::Idle;
        self.prelude.clear();
        self.written.clear();
        self.release_all();
    }

    /// Refuse a write that would make a transaction write to a second shard
    /// (atomic cross-shard commit is not available yet).
    fn check_write(&mut self, shards: &[ShardId], kind: StmtKind) -> Option<ErrorFields> {
        if self.txn == TxnState::Idle || !matches!(kind, StmtKind::Write | StmtKind::WriteCopies) {
            return None;
        }
        let mut all = self.written.clone();
        all.extend(shards.iter().copied());
        if all.len() > 1 {
            return Some(err_fields(
                "0A000",
                "a transaction that writes to more than one shard needs two-phase commit, which is not supported yet; write each shard's rows in its own transaction",
            ));
        }
        self.written = all;
        None
    }

    async fn finish_txn(&mut self, commit: bool) -> Result<Option<ErrorFields>, ExecError> {
        let shards: Vec<ShardId> = self.conns.keys().copied().collect();
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        let r = if shards.is_empty() {
            None
        } else {
            shardgate_exec::internal(&mut self.conns, &shards, sql).await?
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
        self.end_txn();
        Ok(r)
    }

    // ----- statements answered by the session -----

    async fn run_local(&mut self, l: &Local, sql: &str) -> Result<Done, ExecError> {
        match l {
            Local::Begin => {
                if self.txn != TxnState::Idle {
                    self.notice("25001", "there is already a transaction in progress");
                } else {
                    self.txn = TxnState::Active;
                    self.prelude = vec![sql.to_string()];
                    self.settings_at_begin = Some((self.settings.clone(), self.settings_hash));
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
                let tag = sql
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
                let recovering = tag == "ROLLBACK";
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
                self.prelude.push(sql.to_string());
                be::command_complete(&mut self.out.buf, &tag);
            }
            Local::Set { name, sql: set_sql } => {
                if self.txn == TxnState::Failed {
                    self.send_error(&err_fields(
                        "25P02",
                        "current transaction is aborted, commands ignored until end of transaction block",
                    ));
                    return Ok(Done::Failed);
                }
                // Check it on a shard first, so a bad setting is refused now.
                let default = self.topo.default_shard;
                if let Some(e) = self.ensure(&[default]).await? {
                    self.send_error(&e);
                    return Ok(Done::Failed);
                }
                let shards: Vec<ShardId> = self.conns.keys().copied().collect();
                let (e, statuses) =
                    shardgate_exec::internal_collect(&mut self.conns, &shards, set_sql).await?;
                for st in &statuses {
                    st.encode(&mut self.out.buf);
                }
                if let Some(e) = e {
                    if self.txn == TxnState::Active {
                        self.txn = TxnState::Failed;
                    }
                    self.send_error(&e);
                    return Ok(Done::Failed);
                }
                self.settings.retain(|(n, _)| n != name || name.is_empty());
                self.settings.push((name.clone(), set_sql.clone()));
                self.rehash_settings();
                let h = self.settings_hash;
                for c in self.conns.values_mut() {
                    *c.settings() = h;
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
                let shards: Vec<ShardId> = self.conns.keys().copied().collect();
                if !shards.is_empty()
                    && let Some(e) =
                        shardgate_exec::internal(&mut self.conns, &shards, "RESET ALL").await?
                {
                    self.fail_statement(&e);
                    return Ok(Done::Failed);
                }
                self.settings.clear();
                self.rehash_settings();
                for c in self.conns.values_mut() {
                    *c.settings() = 0;
                }
                let discard = sql.trim_start().to_ascii_lowercase().starts_with("discard");
                if discard {
                    self.stmts.clear();
                }
                be::command_complete(
                    &mut self.out.buf,
                    if discard { "DISCARD ALL" } else { "RESET" },
                );
            }
            Local::Deallocate(name) => {
                match name {
                    None => self.stmts.clear(),
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

    /// Send rows the session made itself: a one-text-column-per-name result.
    fn local_rows(
        &mut self,
        cols: &[String],
        rows: &[Vec<Option<String>>],
        describe: bool,
        explain: bool,
    ) {
        if describe {
            let c: Vec<Column> = cols.iter().map(|n| Column::new(n, 25, -1)).collect();
            be::row_description(&mut self.out.buf, &c);
        }
        for r in rows {
            be::data_row(
                &mut self.out.buf,
                r.iter().map(|v| v.as_deref().map(str::as_bytes)),
            );
        }
        let tag = if explain {
            "EXPLAIN".to_string()
        } else {
            format!("SELECT {}", rows.len())
        };
        be::command_complete(&mut self.out.buf, &tag);
    }

    // ----- the simple query protocol -----

    async fn simple_query(&mut self, f: &Frame) -> Result<(), ExecError> {
        let sql = match frontend::parse_query(&f.body) {
            Ok(s) => s.to_string(),
            Err(e) => {
                self.send_error(&err_fields("08P01", e.to_string()));
                self.ready();
                return Ok(());
            }
        };
        self.refresh_topology();
        if self.txn != TxnState::Failed
            && let Some((shard, kind)) = self.cached_single_shard(&sql)
        {
            self.forward_simple(f, shard, kind).await?;
            return Ok(());
        }
        let analyzed = shardgate_sql::analyze_all(&sql, &self.topo);
        if analyzed.is_empty() {
            be::empty_query(&mut self.out.buf);
            self.ready();
            return Ok(());
        }
        let all = self.topo.shards();
        let default = self.topo.default_shard;
        let plans: Vec<Result<Plan, SqlError>> = analyzed
            .iter()
            .map(|a| a.template.resolve(&Params::none(), &all, default))
            .collect();
        // Fast path: every statement goes, as written, to the same one
        // shard: forward the client's message unchanged.
        if self.txn != TxnState::Failed
            && let Some((shard, kind)) = single_target(&plans)
        {
            return self.forward_simple(f, shard, kind).await;
        }
        // Several statements in one query string form one implicit
        // transaction, as in PostgreSQL: all of them or none.
        let implicit = analyzed.len() > 1
            && self.txn == TxnState::Idle
            && !analyzed.iter().any(|a| {
                matches!(
                    a.template,
                    Template::Local(
                        Local::Begin | Local::Commit | Local::Rollback | Local::InTransaction
                    )
                )
            });
        if implicit {
            self.txn = TxnState::Active;
            self.prelude = vec!["BEGIN".to_string()];
            self.settings_at_begin = Some((self.settings.clone(), self.settings_hash));
        }
        for (a, plan) in analyzed.iter().zip(plans) {
            let done = match plan {
                Err(e) => {
                    self.fail_statement(&sql_err(&e));
                    Done::Failed
                }
                Ok(p) => self.run_plan_simple(&p, &a.template, &a.sql).await?,
            };
            if matches!(done, Done::Failed) {
                break;
            }
        }
        if implicit && self.txn != TxnState::Idle {
            let commit = self.txn == TxnState::Active;
            if let Some(e) = self.finish_txn(commit).await? {
                self.send_error(&e);
            }
        }
        self.end_simple();
        Ok(())
    }

    /// Forward a client's Query message as it is to one shard.
    async fn forward_simple(
        &mut self,
        f: &Frame,
        shard: ShardId,
        kind: StmtKind,
    ) -> Result<(), ExecError> {
        if let Some(e) = self.check_write(&[shard], kind) {
            self.fail_statement(&e);
        } else if let Some(e) = self.ensure(&[shard]).await? {
            self.fail_statement(&e);
        } else {
            let raw = f.to_bytes();
            let o = shardgate_exec::run(
                &mut self.conns,
                &[shard],
                &Request::Raw(&raw),
                &mut self.out,
            )
            .await?;
            self.after_statement(&o);
        }
        self.end_simple();
        Ok(())
    }

    /// The plan cache: a single statement whose normalized text (literals
    /// as parameters) was analyzed before, and that resolves, with this
    /// text's literals, to one shard as written.
    fn cached_single_shard(&mut self, sql: &str) -> Option<(ShardId, StmtKind)> {
        let (norm, vals) = shardgate_sql::normalize::normalize(sql)?;
        if self.plan_cache_version != self.topo.version {
            self.plan_cache.clear();
            self.plan_cache_version = self.topo.version;
        }
        let template = match self.plan_cache.get(&norm) {
            Some(t) => t.clone(),
            None => {
                let first = norm
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if !matches!(
                    first.as_str(),
                    "select" | "insert" | "update" | "delete" | "with"
                ) || norm.contains("shardgate")
                {
                    return None;
                }
                let t = Arc::new(shardgate_sql::analyze(&norm, &self.topo));
                if self.plan_cache.len() >= PLAN_CACHE_SIZE {
                    self.plan_cache.clear();
                }
                self.plan_cache.insert(norm, t.clone());
                t
            }
        };
        if !matches!(*template, Template::Route { .. } | Template::Insert { .. }) {
            return None;
        }
        let params = Params {
            values: vals.iter().map(|v| Some(v.as_bytes())).collect(),
            binary: Vec::new(),
            types: Vec::new(),
        };
        match template.resolve(&params, &self.topo.shards(), self.topo.default_shard) {
            Ok(Plan::Route {
                shards,
                sql: ShardSql::Original,
                kind,
            }) if shards.len() == 1 && kind != StmtKind::Ddl => Some((shards[0], kind)),
            _ => None,
        }
    }

    fn end_simple(&mut self) {
        if self.txn == TxnState::Idle {
            self.release_all();
        }
        self.ready();
    }

    fn fail_statement(&mut self, e: &ErrorFields) {
        self.send_error(e);
        if self.txn == TxnState::Active {
            self.txn = TxnState::Failed;
        }
    }

    fn after_statement(&mut self, o: &Outcome) -> Done {
        if o.error.is_some() {
            if self.txn == TxnState::Active {
                self.txn = TxnState::Failed;
            }
            Done::Failed
        } else {
            Done::Ok
        }
    }

    fn aborted(&mut self) -> Done {
        self.send_error(&err_fields(
            "25P02",
            "current transaction is aborted, commands ignored until end of transaction block",
        ));
        Done::Failed
    }

    async fn run_plan_simple(
        &mut self,
        plan: &Plan,
        template: &Template,
        sql: &str,
    ) -> Result<Done, ExecError> {
        if self.txn == TxnState::Failed
            && !matches!(
                plan,
                Plan::Local(Local::Commit | Local::Rollback | Local::InTransaction)
            )
        {
            return Ok(self.aborted());
        }
        match plan {
            Plan::Local(l) => self.run_local(l, sql).await,
            Plan::Admin(call) => {
                let r = crate::admin::run(&self.router, call).await;
                self.refresh_topology();
                match r {
                    Ok((cols, rows)) => {
                        self.local_rows(&cols, &rows, true, false);
                        Ok(Done::Ok)
                    }
                    Err(e) => {
                        self.fail_statement(&e);
                        Ok(Done::Failed)
                    }
                }
            }
            Plan::Explain(p) => {
                let rows: Vec<Vec<Option<String>>> =
                    p.describe().into_iter().map(|l| vec![Some(l)]).collect();
                self.local_rows(&["QUERY PLAN".to_string()], &rows, true, true);
                Ok(Done::Ok)
            }
            Plan::Route {
                shards,
                sql: ShardSql::Original,
                kind,
            } => {
                let d = self.route_simple(shards, sql, *kind).await?;
                if let (
                    Done::Ok,
                    Template::Route {
                        learns: Some((t, cols)),
                        ..
                    },
                ) = (&d, template)
                {
                    if let Err(e) = crate::admin::learn_columns(&self.router, t, cols).await {
                        tracing::warn!("could not record the columns of {t}: {}", e.message);
                    }
                    self.refresh_topology();
                }
                Ok(d)
            }
            Plan::Route {
                shards,
                sql: ShardSql::PerShard(per),
                kind,
            } => {
                self.route_with(shards, *kind, |_| Request::SimplePer(per), false)
                    .await
            }
        }
    }

    async fn route_simple(
        &mut self,
        shards: &[ShardId],
        sql: &str,
        kind: StmtKind,
    ) -> Result<Done, ExecError> {
        let concurrently =
            kind == StmtKind::Ddl && sql.to_ascii_lowercase().contains("concurrently");
        self.route_with(shards, kind, |_| Request::Simple(sql), concurrently)
            .await
    }

    /// Run a statement on `shards`. Outside a transaction a multi-shard
    /// write or DDL is wrapped in a transaction on each shard that commits
    /// only if all succeeded (best effort until two-phase commit).
    async fn route_with<'r>(
        &mut self,
        shards: &[ShardId],
        kind: StmtKind,
        req: impl Fn(()) -> Request<'r>,
        no_wrap: bool,
    ) -> Result<Done, ExecError> {
        if let Some(e) = self.check_write(shards, kind) {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        if let Some(e) = self.ensure(shards).await? {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        let wrap = self.txn == TxnState::Idle
            && shards.len() > 1
            && matches!(
                kind,
                StmtKind::Write | StmtKind::WriteCopies | StmtKind::Ddl
            )
            && !no_wrap;
        if wrap && let Some(e) = shardgate_exec::internal(&mut self.conns, shards, "BEGIN").await? {
            self.send_error(&e);
            let _ = shardgate_exec::internal(&mut self.conns, shards, "ROLLBACK").await?;
            return Ok(Done::Failed);
        }
        let r = req(());
        let extended = !matches!(
            r,
            Request::Raw(_) | Request::Simple(_) | Request::SimplePer(_)
        );
        let merger = if kind == StmtKind::WriteCopies {
            shardgate_exec::Merger::copies(shards.len())
        } else {
            shardgate_exec::Merger::new(shards.len())
        };
        let o =
            shardgate_exec::run_merged(&mut self.conns, shards, &r, &mut self.out, merger).await?;
        if wrap {
            if extended {
                let mut sub: Conns = Conns::new();
                for s in shards {
                    if let Some(c) = self.conns.remove(s) {
                        sub.insert(*s, c);
                    }
                }
                let st = shardgate_exec::sync_all(&mut sub, &mut self.out).await;
                self.conns.append(&mut sub);
                st?;
            }
            let end = if o.error.is_none() {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            if let Some(e) = shardgate_exec::internal(&mut self.conns, shards, end).await? {
                self.send_error(&e);
                return Ok(Done::Failed);
            }
        }
        Ok(self.after_statement(&o))
    }

    // ----- the extended query protocol -----

    fn batch_error(&mut self, e: &ErrorFields) {
        self.fail_statement(e);
        self.skip_to_sync = true;
    }

    fn parse(&mut self, f: &Frame) {
        let p = match frontend::parse_parse(&f.body) {
            Ok(p) => p,
            Err(e) => return self.batch_error(&err_fields("08P01", e.to_string())),
        };
        if !p.name.is_empty() && self.stmts.contains_key(p.name) {
            return self.batch_error(&err_fields(
                "42P05",
                format!("prepared statement \"{}\" already exists", p.name),
            ));
        }
        self.refresh_topology();
        let pieces = shardgate_sql::split::split_statements(p.sql);
        if pieces.len() > 1 {
            return self.batch_error(&err_fields(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let template = if pieces.is_empty() {
            Template::Local(Local::Reset)
        } else {
            shardgate_sql::analyze(p.sql, &self.topo)
        };
        if let Template::Refuse(e) = &template {
            return self.batch_error(&sql_err(e));
        }
        let prepared = Prepared {
            sql: p.sql.to_string(),
            types: p.param_types,
            template,
            version: self.topo.version,
        };
        self.stmts.insert(p.name.to_string(), prepared);
        be::parse_complete(&mut self.out.buf);
    }

    fn bind(&mut self, f: &Frame) {
        let b = match frontend::parse_bind(&f.body) {
            Ok(b) => b,
            Err(e) => return self.batch_error(&err_fields("08P01", e.to_string())),
        };
        self.refresh_topology();
        let topo = self.topo.clone();
        let Some(st) = self.stmts.get_mut(b.statement) else {
            let e = err_fields(
                "26000",
                format!("prepared statement \"{}\" does not exist", b.statement),
            );
            return self.batch_error(&e);
        };
        if st.version != topo.version && !st.sql.trim().is_empty() {
            st.template = shardgate_sql::analyze(&st.sql, &topo);
            st.version = topo.version;
        }
        let params = Params {
            values: b.params.clone(),
            binary: (0..b.params.len()).map(|i| b.is_binary(i)).collect(),
            types: st.types.clone(),
        };
        let plan = match st
            .template
            .resolve(&params, &topo.shards(), topo.default_shard)
        {
            Ok(p) => p,
            Err(e) => return self.batch_error(&sql_err(&e)),
        };
        let result_formats = frontend::bind_result_formats(&f.body).unwrap_or_default();
        let portal = Portal {
            stmt: b.statement.to_string(),
            plan,
            bind: f.body.clone(),
            result_formats,
            describe_pending: false,
            bound_on: None,
        };
        self.portals.insert(b.portal.to_string(), portal);
        be::bind_complete(&mut self.out.buf);
    }

    async fn describe(&mut self, f: &Frame) -> Result<(), ExecError> {
        let (kind, name) = match frontend::parse_target(&f.body) {
            Ok(x) => x,
            Err(e) => {
                self.batch_error(&err_fields("08P01", e.to_string()));
                return Ok(());
            }
        };
        if kind == b'P' {
            match self.portals.get_mut(name) {
                Some(p) => p.describe_pending = true,
                None => self.batch_error(&err_fields(
                    "34000",
                    format!("portal \"{name}\" does not exist"),
                )),
            }
            return Ok(());
        }
        let Some(st) = self.stmts.get(name) else {
            self.batch_error(&err_fields(
                "26000",
                format!("prepared statement \"{name}\" does not exist"),
            ));
            return Ok(());
        };
        match &st.template {
            Template::Route { .. } | Template::Insert { .. } => {
                let (sql, types) = (st.sql.clone(), st.types.clone());
                let shard = self
                    .conns
                    .keys()
                    .next()
                    .copied()
                    .unwrap_or(self.topo.default_shard);
                if let Some(e) = self.ensure(&[shard]).await? {
                    self.batch_error(&e);
                    return Ok(());
                }
                let req = Request::DescribeStatement {
                    sql: &sql,
                    param_types: &types,
                };
                let o = shardgate_exec::run(&mut self.conns, &[shard], &req, &mut self.out).await?;
                if o.error.is_some() {
                    self.skip_to_sync = true;
                    if self.txn == TxnState::Active {
                        self.txn = TxnState::Failed;
                    }
                }
            }
            t => {
                let n = st.types.len();
                let types = st.types.clone();
                be::parameter_description(&mut self.out.buf, &types[..n]);
                match t {
                    Template::Admin(_) => {
                        be::row_description(&mut self.out.buf, &[Column::new("result", 25, -1)]);
                    }
                    Template::Explain(_) => {
                        be::row_description(
                            &mut self.out.buf,
                            &[Column::new("QUERY PLAN", 25, -1)],
                        );
                    }
                    _ => be::no_data(&mut self.out.buf),
                }
            }
        }
        Ok(())
    }

    async fn execute(&mut self, f: &Frame) -> Result<(), ExecError> {
        let (name, max_rows) = match frontend::parse_execute(&f.body) {
            Ok((n, m)) => (n.to_string(), m),
            Err(e) => {
                self.batch_error(&err_fields("08P01", e.to_string()));
                return Ok(());
            }
        };
        let Some(portal) = self.portals.get(&name) else {
            self.batch_error(&err_fields(
                "34000",
                format!("portal \"{name}\" does not exist"),
            ));
            return Ok(());
        };
        let plan = portal.plan.clone();
        let describe = portal.describe_pending;
        let (sql, types) = match self.stmts.get(&portal.stmt) {
            Some(s) => (s.sql.clone(), s.types.clone()),
            None => {
                self.batch_error(&err_fields(
                    "26000",
                    format!("prepared statement \"{}\" does not exist", portal.stmt),
                ));
                return Ok(());
            }
        };
        let bind = portal.bind.clone();
        let result_formats = portal.result_formats.clone();
        let bound_on = portal.bound_on;
        if let Some(p) = self.portals.get_mut(&name) {
            p.describe_pending = false;
        }
        if self.txn == TxnState::Failed
            && !matches!(
                plan,
                Plan::Local(Local::Commit | Local::Rollback | Local::InTransaction)
            )
        {
            self.aborted();
            self.skip_to_sync = true;
            return Ok(());
        }
        let done = match &plan {
            Plan::Local(Local::Reset) if sql.trim().is_empty() => {
                be::empty_query(&mut self.out.buf);
                Done::Ok
            }
            Plan::Local(l) => self.run_local(l, &sql).await?,
            Plan::Admin(call) => {
                let r = crate::admin::run(&self.router, call).await;
                self.refresh_topology();
                match r {
                    Ok((cols, rows)) => {
                        self.local_rows(&cols, &rows, describe, false);
                        Done::Ok
                    }
                    Err(e) => {
                        self.send_error(&e);
                        Done::Failed
                    }
                }
            }
            Plan::Explain(p) => {
                let rows: Vec<Vec<Option<String>>> =
                    p.describe().into_iter().map(|l| vec![Some(l)]).collect();
                self.local_rows(&["QUERY PLAN".to_string()], &rows, describe, true);
                Done::Ok
            }
            Plan::Route {
                shards,
                sql: ShardSql::Original,
                kind,
            } => {
                let write = matches!(
                    kind,
                    StmtKind::Write | StmtKind::WriteCopies | StmtKind::Ddl
                );
                // Writes return rows only with RETURNING: a row limit on a
                // multi-shard write (as JDBC's executeUpdate sends) is moot.
                let max_rows = if write && shards.len() > 1 {
                    0
                } else {
                    max_rows
                };
                let batch_conflict = write
                    && self.txn == TxnState::Idle
                    && if shards.len() > 1 {
                        !self.batch_writes.is_empty() || !self.next_is_sync()
                    } else {
                        self.batch_multi || self.batch_writes.iter().any(|s| *s != shards[0])
                    };
                if shards.len() > 1 && max_rows > 0 {
                    self.send_error(&err_fields(
                        "0A000",
                        "fetching a multi-shard result in batches (Execute with a row limit) is not supported yet",
                    ));
                    Done::Failed
                } else if batch_conflict {
                    self.send_error(&err_fields(
                        "0A000",
                        "a batch of statements (up to Sync) that writes to more than one shard needs two-phase commit, which is not supported yet; send a multi-shard write in a batch of its own",
                    ));
                    Done::Failed
                } else {
                    if write && self.txn == TxnState::Idle {
                        self.batch_writes.extend(shards.iter().copied());
                        self.batch_multi |= shards.len() > 1;
                    }
                    let tail_owned: Vec<u8> = match frontend::parse_bind(&bind) {
                        Ok(b) => b.tail.to_vec(),
                        Err(e) => {
                            self.batch_error(&err_fields("08P01", e.to_string()));
                            return Ok(());
                        }
                    };
                    let bound =
                        bound_on.is_some() && shards.len() == 1 && bound_on == Some(shards[0]);
                    // A Sync right behind this Execute (the usual pipeline)
                    // goes to the shard with it.
                    let sync = shards.len() == 1 && max_rows == 0 && self.next_is_sync();
                    let d = self
                        .route_with(
                            shards,
                            *kind,
                            |_| Request::Extended {
                                sql: &sql,
                                param_types: &types,
                                bind_tail: &tail_owned,
                                portal: &name,
                                describe,
                                max_rows,
                                bound,
                                sync,
                            },
                            kind == &StmtKind::Ddl
                                && sql.to_ascii_lowercase().contains("concurrently"),
                        )
                        .await?;
                    if sync {
                        self.synced.insert(shards[0]);
                    } else if shards.len() == 1
                        && let Some(p) = self.portals.get_mut(&name)
                    {
                        p.bound_on = Some(shards[0]);
                    }
                    let stmt_name = self
                        .portals
                        .get(&name)
                        .map(|p| p.stmt.clone())
                        .unwrap_or_default();
                    if let (
                        Done::Ok,
                        Some(Prepared {
                            template:
                                Template::Route {
                                    learns: Some((t, cols)),
                                    ..
                                },
                            ..
                        }),
                    ) = (&d, self.stmts.get(&stmt_name))
                    {
                        let (t, cols) = (t.clone(), cols.clone());
                        if let Err(e) = crate::admin::learn_columns(&self.router, &t, &cols).await {
                            tracing::warn!("could not record the columns of {t}: {}", e.message);
                        }
                        self.refresh_topology();
                    }
                    d
                }
            }
            Plan::Route {
                shards,
                sql: ShardSql::PerShard(per),
                kind,
            } => {
                if self.txn == TxnState::Idle
                    && (!self.batch_writes.is_empty() || !self.next_is_sync())
                {
                    self.send_error(&err_fields(
                        "0A000",
                        "a batch of statements (up to Sync) that writes to more than one shard needs two-phase commit, which is not supported yet; send a multi-shard write in a batch of its own",
                    ));
                    Done::Failed
                } else {
                    if self.txn == TxnState::Idle {
                        self.batch_writes.extend(shards.iter().copied());
                        self.batch_multi = true;
                    }
                    self.route_with(
                        shards,
                        *kind,
                        |_| Request::ExtendedPer {
                            per,
                            result_formats: &result_formats,
                            describe,
                        },
                        false,
                    )
                    .await?
                }
            }
        };
        if matches!(done, Done::Failed) {
            self.skip_to_sync = true;
        }
        Ok(())
    }

    /// Is the client's next message (already received) a Sync?
    fn next_is_sync(&self) -> bool {
        self.rbuf.len() >= 5 && self.rbuf[..5] == [b'S', 0, 0, 0, 4]
    }

    async fn answer_pending_describes(&mut self) -> Result<(), ExecError> {
        let pending: Vec<String> = self
            .portals
            .iter()
            .filter(|(_, p)| p.describe_pending)
            .map(|(n, _)| n.clone())
            .collect();
        for name in pending {
            let Some(p) = self.portals.get_mut(&name) else {
                continue;
            };
            p.describe_pending = false;
            let plan = p.plan.clone();
            let bind = p.bind.clone();
            let stmt = p.stmt.clone();
            match &plan {
                Plan::Route {
                    shards,
                    sql: ShardSql::Original,
                    ..
                } => {
                    let Some(st) = self.stmts.get(&stmt) else {
                        continue;
                    };
                    let (sql, types) = (st.sql.clone(), st.types.clone());
                    let tail = frontend::parse_bind(&bind)
                        .map(|b| b.tail.to_vec())
                        .unwrap_or_default();
                    let shard = shards[0];
                    if let Some(e) = self.ensure(&[shard]).await? {
                        self.batch_error(&e);
                        return Ok(());
                    }
                    self.synced.remove(&shard);
                    let req = Request::DescribePortal {
                        sql: &sql,
                        param_types: &types,
                        bind_tail: &tail,
                    };
                    let o =
                        shardgate_exec::run(&mut self.conns, &[shard], &req, &mut self.out).await?;
                    if o.error.is_some() {
                        self.skip_to_sync = true;
                        return Ok(());
                    }
                }
                Plan::Route { .. } | Plan::Local(_) => be::no_data(&mut self.out.buf),
                Plan::Admin(_) => {
                    be::row_description(&mut self.out.buf, &[Column::new("result", 25, -1)])
                }
                Plan::Explain(_) => {
                    be::row_description(&mut self.out.buf, &[Column::new("QUERY PLAN", 25, -1)])
                }
            }
        }
        Ok(())
    }

    async fn sync(&mut self) -> Result<(), ExecError> {
        if !self.skip_to_sync {
            self.answer_pending_describes().await?;
        }
        // Outside a transaction, a batch is one implicit transaction: when
        // it failed, no shard may keep its part.
        let rollback = self.skip_to_sync && self.txn == TxnState::Idle;
        self.skip_to_sync = false;
        self.batch_writes.clear();
        self.batch_multi = false;
        let used: Vec<ShardId> = self
            .batch_used
            .iter()
            .copied()
            .filter(|s| self.conns.contains_key(s) && !self.synced.contains(s))
            .collect();
        self.synced.clear();
        if !used.is_empty() {
            let mut sub: Conns = Conns::new();
            for s in &used {
                if let Some(c) = self.conns.remove(s) {
                    sub.insert(*s, c);
                }
            }
            let st = if rollback {
                shardgate_exec::rollback_batch(&mut sub)
                    .await
                    .map(|_| Default::default())
            } else {
                shardgate_exec::sync_all(&mut sub, &mut self.out).await
            };
            self.conns.append(&mut sub);
            st?;
        }
        self.batch_used.clear();
        if self.txn == TxnState::Idle {
            self.portals.clear();
            self.release_all();
        } else {
            self.portals.remove("");
        }
        self.ready();
        Ok(())
    }
}

/// If every plan routes, as written, to one and the same shard and none
/// needs the session (transaction control, admin), that shard.
fn single_target(plans: &[Result<Plan, SqlError>]) -> Option<(ShardId, StmtKind)> {
    let mut target = None;
    let mut kind = StmtKind::Read;
    for p in plans {
        match p {
            Ok(Plan::Route {
                shards,
                sql: ShardSql::Original,
                kind: k,
            }) if shards.len() == 1 => {
                if *k == StmtKind::Ddl {
                    return None;
                }
                if target.is_some_and(|t| t != shards[0]) {
                    return None;
                }
                target = Some(shards[0]);
                if matches!(k, StmtKind::Write | StmtKind::WriteCopies) {
                    kind = StmtKind::Write;
                }
            }
            _ => return None,
        }
    }
    target.map(|t| (t, kind))
}
