//! The embedded shard: a SQLite database that answers PostgreSQL protocol
//! messages in-process, so the rest of shardgate treats it like any shard.
//!
//! It speaks SQLite's SQL dialect (which accepts the common PostgreSQL DDL
//! and DML), emulates PostgreSQL's transaction states (a failed transaction
//! refuses statements until ROLLBACK), and maps declared column types to
//! PostgreSQL type OIDs for text and binary results.

pub mod catalog;
mod copy;
pub mod infer;
pub mod settings;
pub mod translate;
pub mod types;

use crate::error::BackendError;
use bytes::BytesMut;
use rusqlite::types::Value;
use shardgate_wire::backend::{self as be, Column};
use shardgate_wire::{Frame, frontend};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use types::oid;

/// One embedded shard: the path of its database file.
#[derive(Debug)]
pub struct LiteShard {
    /// The database file.
    pub path: PathBuf,
}

impl LiteShard {
    /// An embedded shard stored at `path` (created on first connection).
    pub fn new(path: PathBuf) -> LiteShard {
        LiteShard { path }
    }
}

struct Stmt {
    sql: String,
    types: Vec<u32>,
}

struct Portal {
    sql: String,
    params: Vec<Value>,
    result_formats: Vec<i16>,
}

/// A connection to an embedded shard.
pub struct LiteConn {
    db: rusqlite::Connection,
    out: BytesMut,
    /// shardgate's bookkeeping for this connection.
    pub state: crate::ConnState,
    /// A BEGIN made for the current extended-protocol batch.
    implicit: bool,
    stmts: HashMap<String, Stmt>,
    portals: HashMap<String, Portal>,
    failed: bool,
    /// The open transaction block is READ ONLY (`None`: no block, the
    /// session default applies).
    read_only: Option<bool>,
    skip_to_sync: bool,
    columns: Option<HashMap<String, String>>,
    /// SET/SHOW state, shared with the SQL functions that read it.
    settings: settings::Settings,
    /// Statements as SQLite runs them, by their PostgreSQL text.
    translations: HashMap<String, Arc<translate::Translation>>,
    /// A `COPY ... FROM STDIN` taking rows.
    copy: Option<Box<copy::CopyIn>>,
    /// Messages not handled yet: the first waits for another connection's
    /// lock (see [`LiteConn::waiting`]).
    inbox: BytesMut,
    /// The first message in `inbox` found SQLite's database locked.
    waiting: bool,
    /// Stop waiting: a locked database is the statement's error.
    patience_over: bool,
}

/// At most this many translations are kept per connection.
const TRANSLATIONS: usize = 512;

/// Process ids the embedded shard's connections report (`pg_backend_pid()`).
static NEXT_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

struct SqlError {
    code: &'static str,
    message: String,
    /// SQLite's lock was taken (the statement did nothing; it may be
    /// tried again).
    busy: bool,
}

impl From<rusqlite::Error> for SqlError {
    fn from(e: rusqlite::Error) -> Self {
        let message = e.to_string();
        let by_message = |m: &str| {
            if m.contains("no such table") {
                "42P01"
            } else if m.contains("no such column") {
                "42703"
            } else if m.contains("syntax error") || m.contains("incomplete input") {
                "42601"
            } else if m.contains("already exists") {
                "42P07"
            } else if m.contains("no such function") {
                "42883"
            } else if m.contains("division by zero") {
                "22012"
            } else if m.contains("invalid input syntax for type") {
                "22P02"
            } else if m.contains("unrecognized configuration parameter") {
                "42704"
            } else {
                "XX000"
            }
        };
        let code = match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.extended_code {
                1555 | 2067 => "23505",
                1299 => "23502",
                275 => "23514",
                787 => "23503",
                _ if f.code == rusqlite::ErrorCode::DatabaseBusy => "40001",
                _ => by_message(&message),
            },
            _ => by_message(&message),
        };
        let busy = matches!(
            &e,
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        SqlError {
            code,
            message,
            busy,
        }
    }
}

fn err(code: &'static str, message: impl Into<String>) -> SqlError {
    SqlError {
        code,
        message: message.into(),
        busy: false,
    }
}

pub use shardgate_sql::split::split_statements;

fn is_txn_control(sql: &str) -> bool {
    matches!(
        first_words(sql, 1).first().map(String::as_str),
        Some("BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE")
    )
}

impl LiteConn {
    /// `default_transaction_read_only` is on.
    fn default_read_only(&self) -> bool {
        settings::get(&self.settings, "default_transaction_read_only")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "on" | "true" | "1" | "yes"))
    }
}

fn first_words(sql: &str, n: usize) -> Vec<String> {
    sql.split_whitespace()
        .take(n)
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .collect()
}

impl LiteConn {
    /// Open a connection to an embedded shard.
    ///
    /// # Errors
    /// SQLite errors opening the file.
    pub fn open(shard: std::sync::Arc<LiteShard>) -> Result<LiteConn, BackendError> {
        if let Some(dir) = shard.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let db = rusqlite::Connection::open(&shard.path)?;
        // A lock held by another connection is waited for by the caller,
        // asynchronously (`waiting`), not inside SQLite: a worker thread
        // blocked here could be the one the lock's holder needs.
        db.busy_timeout(Duration::from_millis(2))?;
        let _: String = db.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        // LIKE is case-sensitive in PostgreSQL (ILIKE is rewritten).
        db.execute_batch(
            "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA case_sensitive_like=ON;",
        )?;
        let settings = settings::Settings::default();
        let pid = NEXT_PID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        settings::register(&db, settings.clone(), pid)?;
        catalog::install(&db)?;
        Ok(LiteConn {
            db,
            out: BytesMut::new(),
            state: crate::ConnState::new(),
            implicit: false,
            stmts: HashMap::new(),
            portals: HashMap::new(),
            failed: false,
            read_only: None,
            skip_to_sync: false,
            columns: None,
            settings,
            translations: HashMap::new(),
            copy: None,
            inbox: BytesMut::new(),
            waiting: false,
            patience_over: false,
        })
    }

    /// Is a reply buffered?
    pub fn has_buffered(&self) -> bool {
        !self.out.is_empty()
    }

    /// Take the next reply.
    ///
    /// # Errors
    /// [`BackendError::Closed`] if nothing is pending (a protocol bug).
    pub fn recv(&mut self) -> Result<Frame, BackendError> {
        Frame::take(&mut self.out)?.ok_or(BackendError::Closed)
    }

    /// Handle frontend messages, buffering the replies.
    ///
    /// # Errors
    /// Malformed messages.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.inbox.extend_from_slice(bytes);
        self.pump()
    }

    /// Is a message waiting for a lock another connection holds? The
    /// caller waits a little and calls [`LiteConn::resume`].
    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// Try the waiting message again; `last`: if the database is still
    /// locked, that is the statement's error.
    ///
    /// # Errors
    /// Malformed messages.
    pub fn resume(&mut self, last: bool) -> Result<(), BackendError> {
        self.waiting = false;
        self.patience_over = last;
        let r = self.pump();
        self.patience_over = false;
        r
    }

    fn pump(&mut self) -> Result<(), BackendError> {
        while !self.waiting {
            let Some(f) = Frame::take(&mut self.inbox)? else {
                break;
            };
            let mark = self.out.len();
            let state = (self.implicit, self.failed, self.skip_to_sync);
            // Kept (a shared body, not a copy) to run again after a wait.
            let again = f.clone();
            let ends = matches!(f.tag, b'Q' | b'S');
            self.handle(f)?;
            if ends && self.db.is_autocommit() {
                settings::end_transaction(&self.settings);
            }
            if self.waiting {
                // Undo the message's replies; it runs again later.
                self.out.truncate(mark);
                (self.implicit, self.failed, self.skip_to_sync) = state;
                let mut inbox = BytesMut::new();
                again.encode(&mut inbox);
                inbox.extend_from_slice(&self.inbox);
                self.inbox = inbox;
            }
        }
        Ok(())
    }

    /// Should a statement that found the database locked wait for it?
    /// Only if it did nothing yet (`fresh`), and patience lasts.
    fn wait_for_lock(&mut self, e: &SqlError, fresh: bool) -> bool {
        if e.busy && fresh && !self.patience_over {
            self.waiting = true;
        }
        self.waiting
    }

    fn status(&self) -> u8 {
        if self.db.is_autocommit() {
            be::IDLE
        } else if self.failed {
            be::FAILED_TXN
        } else {
            be::IN_TXN
        }
    }

    fn fail(&mut self, e: SqlError) {
        be::error(&mut self.out, e.code, &e.message);
        if !self.db.is_autocommit() {
            self.failed = true;
        }
    }

    fn handle(&mut self, f: Frame) -> Result<(), BackendError> {
        if self.copy.is_some() {
            match f.tag {
                b'd' => self.copy_data(&f.body),
                b'c' => self.copy_end(true, ""),
                b'f' => {
                    let why = String::from_utf8_lossy(f.body.strip_suffix(&[0]).unwrap_or(&f.body))
                        .into_owned();
                    self.copy_end(false, &why);
                }
                // Flush and Sync are ignored during COPY, as PostgreSQL does.
                _ => {}
            }
            return Ok(());
        }
        if self.skip_to_sync && f.tag != b'S' {
            return Ok(());
        }
        match f.tag {
            b'Q' => {
                let sql = frontend::parse_query(&f.body)?.to_string();
                let stmts = split_statements(&sql);
                if stmts.len() == 1
                    && first_words(stmts[0], 1)
                        .first()
                        .is_some_and(|w| w == "COPY")
                {
                    match self.copy_start(stmts[0]) {
                        Ok(true) => {}
                        Ok(false) => {
                            let st = self.status();
                            be::ready_for_query(&mut self.out, st);
                        }
                        Err(e) => {
                            self.fail(e);
                            let st = self.status();
                            be::ready_for_query(&mut self.out, st);
                        }
                    }
                    return Ok(());
                }
                if stmts.is_empty() {
                    be::empty_query(&mut self.out);
                }
                // Several statements are one implicit transaction, as in
                // PostgreSQL (unless they control transactions themselves).
                let was_auto = self.db.is_autocommit();
                let wrap = stmts.len() > 1 && was_auto && !stmts.iter().any(|s| is_txn_control(s));
                if wrap {
                    self.db.execute_batch("BEGIN")?;
                }
                let mut ok = true;
                for (i, s) in stmts.into_iter().enumerate() {
                    if let Err(e) = self.run(s, &[], &[], true, 0) {
                        if self.wait_for_lock(&e, i == 0 && was_auto) {
                            if !self.db.is_autocommit() {
                                self.db.execute_batch("ROLLBACK")?;
                            }
                            return Ok(());
                        }
                        self.fail(e);
                        ok = false;
                        break;
                    }
                }
                if wrap && !self.db.is_autocommit() {
                    self.db
                        .execute_batch(if ok { "COMMIT" } else { "ROLLBACK" })?;
                    self.failed = false;
                }
                let st = self.status();
                be::ready_for_query(&mut self.out, st);
            }
            b'P' => {
                let p = frontend::parse_parse(&f.body)?;
                let (name, sql, types) = (p.name.to_string(), p.sql.to_string(), p.param_types);
                match self.describe_params(&sql, &types) {
                    Ok(types) => {
                        self.stmts.insert(name, Stmt { sql, types });
                        be::parse_complete(&mut self.out);
                    }
                    Err(e) => self.error_in_batch(e),
                }
            }
            b'B' => {
                let b = frontend::parse_bind(&f.body)?;
                let result_formats = frontend::bind_result_formats(&f.body)?;
                let Some(stmt) = self.stmts.get(b.statement) else {
                    let e = err(
                        "26000",
                        format!("prepared statement \"{}\" does not exist", b.statement),
                    );
                    self.error_in_batch(e);
                    return Ok(());
                };
                let mut params = Vec::with_capacity(b.params.len());
                for (i, raw) in b.params.iter().enumerate() {
                    let ty = stmt.types.get(i).copied().unwrap_or(oid::TEXT);
                    match types::param_value(*raw, ty, b.is_binary(i)) {
                        Ok(v) => params.push(v),
                        Err(m) => {
                            self.error_in_batch(err("22P02", m));
                            return Ok(());
                        }
                    }
                }
                let portal = Portal {
                    sql: stmt.sql.clone(),
                    params,
                    result_formats,
                };
                self.portals.insert(b.portal.to_string(), portal);
                be::bind_complete(&mut self.out);
            }
            b'D' => {
                let (kind, name) = frontend::parse_target(&f.body)?;
                let r = if kind == b'S' {
                    match self.stmts.get(name) {
                        Some(s) => {
                            let (sql, types) = (s.sql.clone(), s.types.clone());
                            be::parameter_description(&mut self.out, &types);
                            self.describe_rows(&sql, &[])
                        }
                        None => Err(err(
                            "26000",
                            format!("prepared statement \"{name}\" does not exist"),
                        )),
                    }
                } else {
                    match self.portals.get(name) {
                        Some(p) => {
                            let (sql, rf) = (p.sql.clone(), p.result_formats.clone());
                            self.describe_rows(&sql, &rf)
                        }
                        None => Err(err("34000", format!("portal \"{name}\" does not exist"))),
                    }
                };
                if let Err(e) = r {
                    self.error_in_batch(e);
                }
            }
            b'E' => {
                let (name, _max) = frontend::parse_execute(&f.body)?;
                let Some(p) = self.portals.get(name) else {
                    self.error_in_batch(err("34000", format!("portal \"{name}\" does not exist")));
                    return Ok(());
                };
                let (sql, params, rf) = (p.sql.clone(), p.params.clone(), p.result_formats.clone());
                // A batch up to Sync is one implicit transaction.
                let was_auto = self.db.is_autocommit();
                if was_auto && !is_txn_control(&sql) {
                    self.db.execute_batch("BEGIN")?;
                    self.implicit = true;
                }
                if let Err(e) = self.run(&sql, &params, &rf, false, 0) {
                    if self.wait_for_lock(&e, was_auto) {
                        if !self.db.is_autocommit() {
                            self.db.execute_batch("ROLLBACK")?;
                        }
                        return Ok(());
                    }
                    self.error_in_batch(e);
                }
            }
            b'C' => {
                let (kind, name) = frontend::parse_target(&f.body)?;
                if kind == b'S' {
                    self.stmts.remove(name);
                } else {
                    self.portals.remove(name);
                }
                be::close_complete(&mut self.out);
            }
            b'S' => {
                if self.implicit && !self.db.is_autocommit() {
                    let rollback = self.skip_to_sync || self.failed;
                    self.db
                        .execute_batch(if rollback { "ROLLBACK" } else { "COMMIT" })?;
                    self.failed = false;
                }
                self.implicit = false;
                self.skip_to_sync = false;
                self.portals.retain(|k, _| !k.is_empty());
                let st = self.status();
                be::ready_for_query(&mut self.out, st);
            }
            b'H' | b'X' => {}
            other => {
                be::error(
                    &mut self.out,
                    "08P01",
                    &format!("unexpected message type {:?}", other as char),
                );
            }
        }
        Ok(())
    }

    fn error_in_batch(&mut self, e: SqlError) {
        self.fail(e);
        self.skip_to_sync = true;
    }

    fn column_types(&mut self) -> &HashMap<String, String> {
        if self.columns.is_none() {
            let mut m = HashMap::new();
            if let Ok(mut st) = self.db.prepare(
                "SELECT p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table'",
            )
                && let Ok(rows) = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))) {
                    for (c, t) in rows.flatten() {
                        m.entry(c.to_ascii_lowercase()).or_insert(t);
                    }
                }
            self.columns = Some(m);
        }
        self.columns.get_or_insert_with(HashMap::new)
    }

    /// `sql` as SQLite runs it (cached).
    fn translation(&mut self, sql: &str) -> Result<Arc<translate::Translation>, SqlError> {
        if let Some(t) = self.translations.get(sql) {
            return Ok(t.clone());
        }
        let cols = self.column_types().clone();
        let t = Arc::new(translate::translate(sql, &cols).map_err(|(code, m)| err(code, m))?);
        if self.translations.len() >= TRANSLATIONS {
            self.translations.clear();
        }
        self.translations.insert(sql.to_string(), t.clone());
        Ok(t)
    }

    fn describe_params(&mut self, sql: &str, given: &[u32]) -> Result<Vec<u32>, SqlError> {
        if split_statements(sql).len() > 1 {
            return Err(err(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let n = if Self::passthrough(sql).is_some() {
            0
        } else {
            let t = self.translation(sql)?;
            match t.sql.last() {
                Some(last) => self.db.prepare(last)?.parameter_count(),
                None => 0,
            }
        };
        let n = n.max(given.len());
        let mut types = if given.iter().all(|t| *t != 0) && given.len() == n {
            given.to_vec()
        } else {
            let cols = self.column_types().clone();
            let inferred = infer::infer(sql, n, &cols);
            (0..n)
                .map(|i| {
                    given
                        .get(i)
                        .copied()
                        .filter(|t| *t != 0)
                        .unwrap_or(inferred[i])
                })
                .collect()
        };
        types.truncate(n);
        Ok(types)
    }

    fn columns_of(
        st: &rusqlite::Statement<'_>,
        formats: &[i16],
        t: &translate::Translation,
    ) -> Vec<Column> {
        let hints = &t.hints;
        st.columns()
            .enumerate()
            .map(|(i, c)| {
                let raw = c.name();
                let (name, (ty, size)) = match c.decl_type() {
                    Some(d) => (raw.to_string(), types::oid_for_decl(d)),
                    None => {
                        let lower = raw.to_ascii_lowercase();
                        let name = match lower.find('(') {
                            Some(p) if p > 0 => lower[..p].trim().to_string(),
                            _ => raw.to_string(),
                        };
                        let ty = if let Some(Some(t)) = hints.get(i) {
                            (*t, types::size_of(*t))
                        } else if lower.starts_with("count(") {
                            (oid::INT8, 8)
                        } else if lower.starts_with("sg_sort_") {
                            // A merge's hidden sort key of unknown type: say
                            // so, rather than let it compare as text.
                            (oid::UNKNOWN, -2)
                        } else {
                            (oid::TEXT, -1)
                        };
                        (name, ty)
                    }
                };
                let name = match t.names.get(i) {
                    Some(Some(n)) => n.clone(),
                    _ => name,
                };
                let mut col = Column::new(&name, ty, size);
                col.format = match formats.len() {
                    0 => 0,
                    1 => formats[0],
                    _ => formats.get(i).copied().unwrap_or(0),
                };
                col
            })
            .collect()
    }

    fn override_columns(cols: &mut [Column], given: &[Column]) {
        if given.len() == cols.len() {
            for (c, g) in cols.iter_mut().zip(given) {
                c.name = g.name.clone();
                c.type_oid = g.type_oid;
                c.type_size = g.type_size;
                c.type_modifier = g.type_modifier;
            }
        }
    }

    fn describe_rows(&mut self, sql: &str, formats: &[i16]) -> Result<(), SqlError> {
        if Self::passthrough(sql).is_some() {
            be::no_data(&mut self.out);
            return Ok(());
        }
        let t = self.translation(sql)?;
        let Some(last) = t.sql.last() else {
            be::no_data(&mut self.out);
            return Ok(());
        };
        let st = self.db.prepare(last)?;
        if st.column_count() == 0 {
            be::no_data(&mut self.out);
        } else {
            let mut cols = Self::columns_of(&st, formats, &t);
            if let Some(given) = &self.state.result_columns {
                Self::override_columns(&mut cols, given);
            }
            be::row_description(&mut self.out, &cols);
        }
        Ok(())
    }

    /// The session's replay of a startup parameter.
    fn replayed_setting(sql: &str) -> bool {
        sql.starts_with("SELECT pg_catalog.set_config(")
            && (sql.ends_with(", false)")
                || sql.contains(", false) FROM pg_catalog.pg_settings WHERE name = "))
    }

    /// Statements answered without SQLite: their command tag.
    fn passthrough(sql: &str) -> Option<&'static str> {
        // The session's replay of a startup parameter (clients' own
        // `set_config(..., false)` is refused before it gets here).
        if Self::replayed_setting(sql) {
            return Some("SELECT 1");
        }
        let w = first_words(sql, 2);
        match w.first().map(String::as_str) {
            Some("SET") => Some("SET"),
            Some("RESET") => Some("RESET"),
            Some("DISCARD") => Some("DISCARD ALL"),
            Some("DEALLOCATE") => Some("DEALLOCATE"),
            _ => None,
        }
    }

    fn run(
        &mut self,
        sql: &str,
        params: &[Value],
        formats: &[i16],
        describe: bool,
        _max: i32,
    ) -> Result<(), SqlError> {
        let words = first_words(sql, 2);
        let verb = words.first().cloned().unwrap_or_default();
        if let Some(tag) = Self::passthrough(sql) {
            let upper = sql.to_ascii_uppercase();
            if self.read_only.is_some() && upper.contains("SET TRANSACTION") {
                if upper.contains("READ ONLY") {
                    self.read_only = Some(true);
                } else if upper.contains("READ WRITE") {
                    self.read_only = Some(false);
                }
            }
            if Self::replayed_setting(sql) {
                settings::apply_set_config(&self.settings, sql);
            } else {
                settings::apply(&self.settings, sql);
            }
            be::command_complete(&mut self.out, tag);
            return Ok(());
        }
        match verb.as_str() {
            "BEGIN" | "START" => {
                if self.implicit {
                    // BEGIN inside a batch's implicit transaction makes it
                    // an explicit one.
                    self.implicit = false;
                } else if self.db.is_autocommit() {
                    // A transaction block takes the write lock up front
                    // (unless read-only): two that read and then write
                    // would otherwise fail to upgrade their locks, where
                    // PostgreSQL would let both go on.
                    let upper = sql.to_ascii_uppercase();
                    let read_only = upper.contains("READ ONLY")
                        || (!upper.contains("READ WRITE") && self.default_read_only());
                    self.db.execute_batch(if read_only {
                        "BEGIN"
                    } else {
                        "BEGIN IMMEDIATE"
                    })?;
                    self.failed = false;
                    self.read_only = Some(read_only);
                } else {
                    be::error_like(
                        &mut self.out,
                        b'N',
                        &be::ErrorFields {
                            severity: "WARNING".into(),
                            code: "25001".into(),
                            message: "there is already a transaction in progress".into(),
                            ..Default::default()
                        },
                    );
                }
                be::command_complete(&mut self.out, "BEGIN");
                return Ok(());
            }
            "ROLLBACK" if words.get(1).is_some_and(|w| w == "TO") => {
                self.db.execute_batch(sql)?;
                self.failed = false;
                be::command_complete(&mut self.out, "ROLLBACK");
                return Ok(());
            }
            "COMMIT" | "END" | "ROLLBACK" | "ABORT" => {
                self.implicit = false;
                self.read_only = None;
                let rollback = self.failed || verb == "ROLLBACK" || verb == "ABORT";
                if !self.db.is_autocommit() {
                    self.db
                        .execute_batch(if rollback { "ROLLBACK" } else { "COMMIT" })?;
                }
                self.failed = false;
                be::command_complete(&mut self.out, if rollback { "ROLLBACK" } else { "COMMIT" });
                return Ok(());
            }
            _ => {}
        }
        if self.failed {
            return Err(err(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        // A read-only transaction (BEGIN READ ONLY, SET TRANSACTION READ
        // ONLY, default_transaction_read_only) writes nothing.
        if matches!(
            verb.as_str(),
            "INSERT"
                | "UPDATE"
                | "DELETE"
                | "MERGE"
                | "CREATE"
                | "ALTER"
                | "DROP"
                | "TRUNCATE"
                | "COPY"
                | "GRANT"
                | "REVOKE"
                | "COMMENT"
        ) && self.read_only.unwrap_or_else(|| self.default_read_only())
            && (verb != "COPY" || sql.to_ascii_uppercase().contains("FROM STDIN"))
        {
            return Err(err(
                "25006",
                format!("cannot execute {verb} in a read-only transaction"),
            ));
        }
        let t = self.translation(sql)?;
        if matches!(verb.as_str(), "CREATE" | "ALTER" | "DROP") {
            self.columns = None;
            self.translations.clear();
        }
        if t.catalog {
            catalog::refresh(&self.db)?;
        }
        let Some((last, before)) = t.sql.split_last() else {
            be::command_complete(&mut self.out, t.tag.as_deref().unwrap_or(&verb));
            return Ok(());
        };
        for s in before {
            self.db.execute_batch(s)?;
        }
        let mut st = self.db.prepare(last)?;
        for (i, v) in params.iter().enumerate() {
            let name = format!("${}", i + 1);
            match st.parameter_index(&name)? {
                Some(ix) => st.raw_bind_parameter(ix, v)?,
                None if st.parameter_count() > i => st.raw_bind_parameter(i + 1, v)?,
                None => {}
            }
        }
        let ncols = st.column_count();
        let mut cols = if ncols > 0 {
            Self::columns_of(&st, formats, &t)
        } else {
            Vec::new()
        };
        if let Some(given) = self.state.result_columns.take() {
            Self::override_columns(&mut cols, &given);
        }
        if ncols > 0 && describe {
            be::row_description(&mut self.out, &cols);
        }
        let mut rows = st.raw_query();
        let mut count = 0u64;
        let mut cells: Vec<Option<Vec<u8>>> = Vec::with_capacity(ncols);
        while let Some(row) = rows.next()? {
            cells.clear();
            for (i, c) in cols.iter().enumerate() {
                let v = row.get_ref(i)?;
                let cell = if c.format == 1 {
                    types::to_binary(v, c.type_oid).map_err(|m| err("22P02", m))?
                } else {
                    types::to_text(v, c.type_oid)
                };
                cells.push(cell);
            }
            be::data_row(&mut self.out, cells.iter().map(|c| c.as_deref()));
            count += 1;
        }
        drop(rows);
        drop(st);
        let changes = self.db.changes();
        let tag = match verb.as_str() {
            _ if t.tag.as_deref() == Some("SHOW") => "SHOW".to_string(),
            _ if t.tag.is_some() => t.tag.clone().unwrap_or_default(),
            "INSERT" => format!("INSERT 0 {}", if ncols > 0 { count } else { changes }),
            "UPDATE" | "DELETE" => format!("{verb} {}", if ncols > 0 { count } else { changes }),
            "SELECT" | "VALUES" | "WITH" | "PRAGMA" => format!("SELECT {count}"),
            "CREATE" | "DROP" | "ALTER" => words.join(" "),
            _ => verb,
        };
        be::command_complete(&mut self.out, &tag);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn frames(c: &mut LiteConn) -> Vec<Frame> {
        let mut v = Vec::new();
        while c.has_buffered() {
            v.push(c.recv().unwrap());
        }
        v
    }

    #[test]
    fn simple_and_extended_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LiteConn::open(Arc::new(LiteShard::new(dir.path().join("s.db")))).unwrap();
        let mut out = BytesMut::new();
        frontend::query(
            &mut out,
            "CREATE TABLE t (id bigint primary key, name text); INSERT INTO t VALUES (1, 'a'), (2, 'b')",
        );
        c.send(&out).unwrap();
        let tags: Vec<u8> = frames(&mut c).iter().map(|f| f.tag).collect();
        assert_eq!(tags, b"CCZ");
        out.clear();
        frontend::parse(&mut out, "s", "SELECT id, name FROM t WHERE id = $1", &[]);
        frontend::describe(&mut out, b'S', "s");
        frontend::bind(
            &mut out,
            "",
            "s",
            &[1],
            &[Some(bytes::Bytes::copy_from_slice(&2i64.to_be_bytes()))],
            &[1, 0],
        );
        frontend::execute(&mut out, "", 0);
        frontend::sync(&mut out);
        c.send(&out).unwrap();
        let fs = frames(&mut c);
        let tags: Vec<u8> = fs.iter().map(|f| f.tag).collect();
        assert_eq!(tags, b"1tT2DCZ");
        let row = be::parse_data_row(&fs[4].body).unwrap();
        assert_eq!(row, vec![Some(&2i64.to_be_bytes()[..]), Some(&b"b"[..])]);
        // A failed transaction refuses statements until ROLLBACK.
        out.clear();
        frontend::query(&mut out, "BEGIN; INSERT INTO t VALUES (1, 'dup')");
        c.send(&out).unwrap();
        let fs = frames(&mut c);
        assert_eq!(fs.last().unwrap().body[0], be::FAILED_TXN);
        let e = be::parse_error(&fs[1].body).unwrap();
        assert_eq!(e.code, "23505");
        out.clear();
        frontend::query(&mut out, "SELECT 1");
        c.send(&out).unwrap();
        assert_eq!(
            be::parse_error(&frames(&mut c)[0].body).unwrap().code,
            "25P02"
        );
        out.clear();
        frontend::query(&mut out, "COMMIT");
        c.send(&out).unwrap();
        let fs = frames(&mut c);
        assert_eq!(be::parse_command_complete(&fs[0].body).unwrap(), "ROLLBACK");
        assert_eq!(fs[1].body[0], be::IDLE);
    }
}
