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

mod batches;
mod conns;
mod copy;
mod cursors;
mod extended;
mod lanes;
mod local;
mod moves;
mod pending_ids;
mod simple;
mod subquery;

use crate::router::{CancelSlot, Router};
use bytes::{Bytes, BytesMut};
use shardgate_backend::BackendError;
use shardgate_core::{ShardId, Topology};
use shardgate_exec::{ClientOut, Conns, ExecError, Outcome, Request};
use shardgate_sql::{Local, Params, Plan, ShardSql, SqlError, StmtKind, Template};
use shardgate_wire::backend::{self as be, Column, ErrorFields};
use shardgate_wire::{Frame, frontend, startup};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Entries in a session's plan cache before it is cleared.
const PLAN_CACHE_SIZE: usize = 512;

/// Statements with more literals than this are forwarded as text, not
/// prepared (long IN lists would make a statement per list length).
const MAX_PREPARED_PARAMS: usize = 64;

/// Startup parameters that are not session settings.
const NOT_SETTINGS: &[&str] = &[
    "user",
    "database",
    "client_encoding",
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
    /// Every parameter's type as a shard described it (`types` may leave
    /// some unspecified, as 0).
    param_types_described: Option<Vec<u32>>,
    template: Template,
    version: u64,
    /// The result description (RowDescription or NoData) the client was
    /// given for this statement, with the schema generation it was read
    /// at: a later schema change must not hand it rows of another shape
    /// (see `Session::stale_description`).
    described: Option<(u64, Bytes)>,
}

struct Portal {
    stmt: String,
    plan: Plan,
    bind: Bytes,
    result_formats: Vec<i16>,
    describe_pending: bool,
    bound_on: Option<ShardId>,
    /// Rows the router holds for the next Execute (see `batches`).
    held: Option<batches::Held>,
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
        batch_writes: BTreeSet::new(),
        batch_multi: false,
        doomed: false,
        implicit: false,
        settings: Vec::new(),
        startup_settings: Vec::new(),
        settings_hash: 0,
        settings_at_begin: None,
        stmts: HashMap::new(),
        sql_prepared: HashMap::new(),
        portals: HashMap::new(),
        cursors: HashMap::new(),
        savepoints: Default::default(),
        pending_ids: Default::default(),
        plan_cache: HashMap::new(),
        plan_cache_version: 0,
        no_prepare: HashSet::new(),
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
    /// Shards written by this extended-protocol batch (outside transactions).
    batch_writes: BTreeSet<ShardId>,
    /// This batch ran a multi-shard write.
    batch_multi: bool,
    /// The transaction lost a shard connection: only ROLLBACK can end it.
    doomed: bool,
    /// The transaction is the implicit one of a multi-statement query.
    implicit: bool,
    /// Settings replayed on each shard connection the session uses (name,
    /// SQL), in order.
    settings: Vec<(String, String)>,
    /// The settings of the startup packet: what RESET returns to, as on
    /// PostgreSQL (the client's startup values are the session defaults).
    startup_settings: Vec<(String, String)>,
    settings_hash: u64,
    /// The settings when the transaction began (restored by ROLLBACK).
    settings_at_begin: Option<(Vec<(String, String)>, u64)>,
    stmts: HashMap<String, Prepared>,
    /// SQL-level prepared statements: declared types and body.
    sql_prepared: HashMap<String, (Vec<String>, String)>,
    portals: HashMap<String, Portal>,
    /// SQL cursors the session knows of (see `cursors`).
    cursors: HashMap<String, cursors::Cursor>,
    /// Savepoints, for the cursors declared after them.
    savepoints: cursors::Savepoints,
    /// `shardgate.next_id()` DDL of the transaction, recorded at COMMIT.
    pending_ids: pending_ids::PendingIds,
    /// Analyzed normalized statements of the simple protocol.
    plan_cache: HashMap<String, Arc<Template>>,
    plan_cache_version: u64,
    /// Normalized texts the shards cannot prepare (see `forward_prepared`).
    no_prepare: HashSet<String>,
    skip_to_sync: bool,
    cancel_slot: CancelSlot,
    key: (i32, i32),
}

fn err_fields(code: &str, message: impl Into<String>) -> ErrorFields {
    ErrorFields::new(code, message)
}

fn sql_err(e: &SqlError) -> ErrorFields {
    err_fields(e.sqlstate(), e.to_string())
}

/// The error a client gets for a statement that analysis refused. A
/// statement shardgate's parser cannot read ([`SqlError::Unparsed`]) is
/// parsed on a PostgreSQL shard, on a connection of its own (a failed
/// Parse must not abort the session's transaction there): invalid SQL gets
/// PostgreSQL's own error, valid SQL a refusal (0A000) saying shardgate
/// cannot route it. Without a PostgreSQL shard, or when none answers in
/// time, the parser's syntax error stands.
async fn refusal(router: &Router, e: &SqlError, sql: &str) -> ErrorFields {
    let SqlError::Unparsed(why) = e else {
        return sql_err(e);
    };
    let Some(pool) = router
        .pools
        .iter()
        .find(|p| matches!(p.target, shardgate_backend::ShardTarget::Pg(_)))
    else {
        return sql_err(e);
    };
    let check = async {
        let mut c = pool.checkout().await.ok()?;
        let mut msg = BytesMut::new();
        frontend::parse(&mut msg, "", sql, &[]);
        frontend::sync(&mut msg);
        let (frames, _) = c.round_trip(&msg).await.ok()?;
        pool.checkin(c);
        Some(
            frames
                .iter()
                .find(|f| f.tag == b'E')
                .and_then(|f| be::parse_error(&f.body).ok()),
        )
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), check).await {
        Ok(Some(Some(shard_error))) => shard_error,
        Ok(Some(None)) => err_fields(
            "0A000",
            format!(
                "{why}; PostgreSQL accepts this statement, but shardgate cannot route a statement its parser does not read (not supported yet)"
            ),
        ),
        _ => sql_err(e),
    }
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
                        &ErrorFields::fatal("08P01", format!("invalid startup packet: {e}")),
                    );
                    self.out.flush().await?;
                    return Ok(());
                }
            }
        };
        let encoding = match startup::client_encoding(&params) {
            Ok(e) => e,
            Err(name) => {
                be::error_like(
                    &mut self.out.buf,
                    b'E',
                    &ErrorFields::fatal(
                        "0A000",
                        format!(
                            "client_encoding \"{name}\" is not supported: shardgate reads and answers UTF-8 only (connect with client_encoding UTF8, e.g. PGCLIENTENCODING=UTF8)"
                        ),
                    ),
                );
                self.out.flush().await?;
                return Ok(());
            }
        };
        self.startup(&params, encoding);
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
                        &ErrorFields::fatal("08P01", format!("invalid message: {e}")),
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
                    if self.implicit {
                        self.end_txn(false);
                    } else if self.txn != TxnState::Idle {
                        self.txn = TxnState::Failed;
                        self.doomed = true;
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

    /// Accept the client: its startup parameters become session settings
    /// (sent to the shards), `encoding` is the client encoding it gets
    /// (see [`startup::client_encoding`]).
    fn startup(&mut self, params: &[(String, String)], encoding: &str) {
        // `options` first, then the other parameters (which win), as the
        // server applies them.
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (k, v) in params {
            if k == "options" {
                pairs.extend(startup::option_pairs(v));
            }
        }
        for (k, v) in params {
            if !NOT_SETTINGS.contains(&k.as_str()) {
                pairs.push((k, v));
            }
        }
        for (k, v) in &pairs {
            // Only plain parameter names: a name is spliced into SQL.
            if !k.is_empty()
                && !NOT_SETTINGS.contains(k)
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                // set_config, not SET: the value is read as the startup
                // packet's is, by the setting's own parser (a list such as
                // `search_path=a,b` stays a list; SET would quote it into
                // one name).
                let lit = v.replace('\'', "''");
                let name = k.to_ascii_lowercase();
                self.settings.retain(|(n, _)| *n != name);
                self.settings.push((
                    name,
                    format!("SELECT pg_catalog.set_config('{k}', '{lit}', false)"),
                ));
            }
        }
        // A client that names no application has none (shard
        // connections are opened as "shardgate").
        if !self.settings.iter().any(|(n, _)| n == "application_name") {
            self.settings.push((
                "application_name".into(),
                "SELECT pg_catalog.set_config('application_name', '', false)".into(),
            ));
        }
        self.startup_settings = self.settings.clone();
        self.rehash_settings();
        // A setting's value as the session starts (the last one given).
        let get = |k: &str| {
            pairs
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| *v)
        };
        let user = params
            .iter()
            .find(|(n, _)| n == "user")
            .map_or("shardgate", |(_, v)| v.as_str())
            .to_string();
        let b = &mut self.out.buf;
        be::auth_ok(b);
        let app = get("application_name").unwrap_or("");
        for (k, v) in [
            ("server_version", self.router.server_version.as_str()),
            ("server_encoding", "UTF8"),
            ("client_encoding", encoding),
            ("DateStyle", get("DateStyle").unwrap_or("ISO, MDY")),
            (
                "TimeZone",
                get("TimeZone").unwrap_or(self.router.time_zone.as_str()),
            ),
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
        self.router.register_cancel(
            self.key,
            self.cancel_slot.clone(),
            self.out.deadlock_victim.clone(),
        );
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

    /// Resolve a template, drawing the ids it needs (see
    /// `shardgate_sql::ids`) from the router.
    fn resolve_plan(&self, t: &Template, params: &Params<'_>) -> Result<Plan, SqlError> {
        resolve_plan(&self.router, &self.topo, t, params)
    }

    /// After `t` ran: record what its DDL teaches, if it succeeded.
    async fn learn_after(&mut self, d: &Done, t: &Template) {
        if let (
            Done::Ok,
            Template::Route {
                learns: Some(l), ..
            },
        ) = (d, t)
        {
            self.learn(l).await;
        }
    }

    /// The schema generation (see `schema_changed`).
    fn schema_generation(&self) -> u64 {
        self.router
            .pools
            .first()
            .map_or(0, |p| p.schema_generation())
    }

    /// DDL ran: statements prepared on shard connections before it may
    /// have another result type now. Every pool's connections forget
    /// theirs at their next checkout, this session's at once (statements
    /// of suspended portals are closed only when the portal is done: see
    /// `ShardConn::take_to_close`).
    fn schema_changed(&mut self) {
        for p in &self.router.pools {
            p.schema_changed();
        }
        for c in self.conns.values_mut() {
            c.forget_prepared();
        }
    }

    /// Record what a DDL statement that the shards ran teaches shardgate.
    async fn learn(&mut self, l: &shardgate_sql::plan::Learn) {
        if let Some((t, cols)) = &l.columns
            && let Err(e) = crate::admin::learn_columns(&self.router, t, cols).await
        {
            tracing::warn!("could not record the columns of {t}: {}", e.message);
        }
        if let Some((t, names)) = &l.names
            && let Err(e) = crate::admin::learn_column_names(&self.router, t, names).await
        {
            tracing::warn!("could not record the columns of {t}: {}", e.message);
        }
        if let Some(ids) = &l.ids
            && ids.changes_ids()
            && self.txn != TxnState::Idle
        {
            // In a transaction block: recorded when it commits.
            self.defer_ids(&ids.change);
        } else if let Some(ids) = &l.ids
            && let Err(e) = crate::admin::learn_ids(&self.router, &ids.change).await
        {
            self.ids_not_recorded("the statement ran", &e);
        }
        self.refresh_topology();
    }

    /// Refresh the topology snapshot if the router has a newer one.
    fn refresh_topology(&mut self) {
        if self.ids_pending() {
            self.refresh_pending_ids();
            return;
        }
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
            b'P' => self.parse(&f).await,
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
            // The fast-path function call (libpq's PQfn, large objects): a
            // command of its own like a Query, answered with an error and
            // ReadyForQuery; the session goes on.
            b'F' => {
                self.fail_statement(&err_fields(
                    "0A000",
                    "the fast-path function call (FunctionCall message) is not supported through shardgate: call the function in a query",
                ));
                self.ready();
                self.out.flush().await?;
            }
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
            &ErrorFields::fatal("08P01", format!("protocol violation: {why}")),
        );
        self.out.flush().await?;
        Ok(false)
    }
}

/// Resolve a template against `topo`, drawing the ids it needs from the
/// router.
fn resolve_plan(
    router: &Router,
    topo: &Topology,
    t: &Template,
    params: &Params<'_>,
) -> Result<Plan, SqlError> {
    let n = t.ids_needed();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(router.next_id().map_err(SqlError::ObjectState)?);
    }
    t.resolve_with_ids(params, &ids, &topo.shards(), topo.default_shard)
}
