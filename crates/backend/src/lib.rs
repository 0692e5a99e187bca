//! shardgate-backend: connections to shards.
//!
//! Every shard speaks the PostgreSQL v3 protocol to the rest of shardgate:
//! a PostgreSQL shard over TCP ([`pg::PgConn`]), an embedded SQLite shard
//! in-process ([`sqlite::LiteConn`]) that answers the same messages. The
//! [`ShardConn`] enum puts both behind one interface (send frontend bytes,
//! receive backend frames), and [`pool::Pool`] keeps idle connections per
//! shard.

#![warn(missing_docs)]

pub mod error;
pub mod lane;
pub mod pg;
pub mod pool;
pub mod sqlite;

pub use error::BackendError;
pub use pg::collation_is_bytewise;
pub use pool::{Pool, PooledConn, ShardTarget};

use shardgate_wire::Frame;

/// What shardgate keeps about one shard connection, whatever its kind.
#[derive(Debug)]
pub struct ConnState {
    /// Names of statements prepared on this connection by shardgate.
    pub prepared: std::collections::HashSet<String>,
    /// Fingerprint of the session settings last applied (0 = none).
    pub settings: u64,
    /// Result columns of prepared statements, by name, once described.
    pub described: std::collections::HashMap<String, Vec<shardgate_wire::backend::Column>>,
    /// Answers of the collation probes of merges (the rows of
    /// `shardgate_exec::merge_sort::collation_probe`) of statements
    /// prepared on this connection, by statement name: valid as long as
    /// the statement is (PostgreSQL refuses to run a prepared statement
    /// whose result columns, collations included, changed).
    pub probed: std::collections::HashMap<String, Vec<Vec<String>>>,
    /// Generation of statement names; it moves on after an error, so a
    /// statement in an unknown state is never reused.
    pub epoch: u32,
    /// The pool's schema generation when this connection's statements
    /// were last known good (see [`crate::Pool::schema_changed`]).
    pub schema: u64,
    /// Every reply read, the last ReadyForQuery said `I`.
    pub idle: bool,
    /// Every reply read up to a ReadyForQuery (no Sync owed).
    pub ready: bool,
    /// Names and types the next statement's result columns report instead
    /// of the shard's own (used by embedded shards, whose column types come
    /// from declarations: the router's final aggregation query answers with
    /// the columns of the client's statement).
    pub result_columns: Option<Vec<shardgate_wire::backend::Column>>,
    /// Statements forgotten by [`ShardConn::forget_prepared`] that are
    /// still (or may still be) prepared on the server: closed in the next
    /// batch that can take Close messages ([`ShardConn::take_to_close`]).
    pub to_close: Vec<String>,
}

/// At most this many statements are kept prepared on one connection; past
/// it, all of them are forgotten and closed (a simple bound that keeps a
/// long-lived pooled connection from growing without end).
pub const MAX_PREPARED: usize = 500;

impl ConnState {
    /// The state of a fresh connection (at ReadyForQuery, idle).
    pub fn new() -> ConnState {
        ConnState {
            prepared: Default::default(),
            settings: 0,
            described: Default::default(),
            probed: Default::default(),
            epoch: 0,
            schema: 0,
            idle: true,
            ready: true,
            result_columns: None,
            to_close: Vec::new(),
        }
    }
}

impl Default for ConnState {
    fn default() -> Self {
        ConnState::new()
    }
}

/// One connection to one shard. (Both kinds are a few hundred bytes and
/// live as long as a pooled connection: boxing either would buy nothing.)
#[allow(clippy::large_enum_variant)]
pub enum ShardConn {
    /// A PostgreSQL server.
    Pg(pg::PgConn),
    /// An embedded SQLite database.
    Lite(sqlite::LiteConn),
}

/// How long a statement on an embedded shard waits for another
/// connection's write lock before it fails.
const LITE_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

impl ShardConn {
    /// Send frontend protocol bytes (one or more whole messages).
    ///
    /// # Errors
    /// I/O errors; the connection must then be discarded.
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped send may leave a partial message on the
    /// socket; the connection must then be discarded (the pool does so).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        *self.idle_mut() = false;
        *self.ready_mut() = false;
        match self {
            ShardConn::Pg(c) => c.send(bytes).await,
            ShardConn::Lite(c) => {
                c.send(bytes)?;
                // Another connection holds the database's write lock: wait
                // here (not in SQLite, which would block this thread).
                let start = std::time::Instant::now();
                let mut pause = std::time::Duration::from_micros(200);
                while c.waiting() {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(20));
                    c.resume(start.elapsed() > LITE_LOCK_PATIENCE)?;
                }
                Ok(())
            }
        }
    }

    /// Receive the next backend message.
    ///
    /// # Errors
    /// I/O or protocol errors; the connection must then be discarded.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is only consumed when returned.
    pub async fn recv(&mut self) -> Result<Frame, BackendError> {
        let f = match self {
            ShardConn::Pg(c) => c.recv().await?,
            ShardConn::Lite(c) => c.recv()?,
        };
        if f.tag == b'Z' {
            let ready = !self.has_buffered();
            let idle = ready && f.body.first() == Some(&b'I');
            *self.idle_mut() = idle;
            *self.ready_mut() = ready;
        }
        Ok(f)
    }

    fn idle_mut(&mut self) -> &mut bool {
        &mut self.state_mut().idle
    }

    fn ready_mut(&mut self) -> &mut bool {
        &mut self.state_mut().ready
    }

    /// Has every reply been read, ending with ReadyForQuery (in or out of a
    /// transaction)? If not, the connection needs a Sync.
    pub fn is_ready(&self) -> bool {
        self.state().ready
    }

    /// Has every reply been read, ending with ReadyForQuery outside a
    /// transaction? Only such a connection may go back to a pool.
    pub fn is_idle(&self) -> bool {
        let st = self.state();
        // Too many statements waiting to be closed: give the connection up
        // rather than let the server's memory grow.
        st.idle && st.to_close.len() <= 4 * MAX_PREPARED
    }

    /// Is another whole message already buffered (so `recv` won't wait)?
    pub fn has_buffered(&self) -> bool {
        match self {
            ShardConn::Pg(c) => c.has_buffered(),
            ShardConn::Lite(c) => c.has_buffered(),
        }
    }

    /// Names of statements already prepared on this connection.
    pub fn prepared(&mut self) -> &mut std::collections::HashSet<String> {
        &mut self.state_mut().prepared
    }

    /// Fingerprint of the session settings last applied to this connection.
    pub fn settings(&mut self) -> &mut u64 {
        &mut self.state_mut().settings
    }

    /// Forget every statement prepared on this connection by name: later
    /// uses prepare again under new names. Called after an error, when
    /// the state of a statement is unknown.
    pub fn forget_prepared(&mut self) {
        let st = self.state_mut();
        st.epoch = st.epoch.wrapping_add(1);
        let old = std::mem::take(&mut st.prepared);
        st.to_close.extend(old);
        st.described.clear();
        st.probed.clear();
    }

    /// The forgotten statements to close now (see [`ConnState::to_close`]);
    /// the caller sends a Close for each in its next batch.
    pub fn take_to_close(&mut self) -> Vec<String> {
        std::mem::take(&mut self.state_mut().to_close)
    }

    /// Result columns of statements prepared on this connection, by name.
    pub fn described(
        &mut self,
    ) -> &mut std::collections::HashMap<String, Vec<shardgate_wire::backend::Column>> {
        &mut self.state_mut().described
    }

    /// Collation-probe answers of statements prepared on this connection
    /// (see [`ConnState::probed`]).
    pub fn probed(&mut self) -> &mut std::collections::HashMap<String, Vec<Vec<String>>> {
        &mut self.state_mut().probed
    }

    /// The schema generation this connection's statements belong to (see
    /// [`crate::Pool::schema_changed`]).
    pub fn schema(&mut self) -> &mut u64 {
        &mut self.state_mut().schema
    }

    /// The generation of statement names (see [`ShardConn::forget_prepared`]).
    pub fn epoch(&self) -> u32 {
        self.state().epoch
    }

    fn state(&self) -> &ConnState {
        match self {
            ShardConn::Pg(c) => &c.state,
            ShardConn::Lite(c) => &c.state,
        }
    }

    fn state_mut(&mut self) -> &mut ConnState {
        match self {
            ShardConn::Pg(c) => &mut c.state,
            ShardConn::Lite(c) => &mut c.state,
        }
    }

    /// Does the connection still look open? (No wait: an idle connection
    /// that has anything to read, end of stream included, was closed or
    /// told something by the server.)
    pub fn is_alive(&self) -> bool {
        match self {
            ShardConn::Pg(c) => c.is_alive(),
            ShardConn::Lite(_) => true,
        }
    }

    /// Is this an embedded (SQLite) shard?
    pub fn is_embedded(&self) -> bool {
        matches!(self, ShardConn::Lite(_))
    }

    /// The server's process id and secret, for cancel requests.
    pub fn cancel_key(&self) -> Option<(i32, i32)> {
        match self {
            ShardConn::Pg(c) => Some((c.pid, c.secret)),
            ShardConn::Lite(_) => None,
        }
    }

    /// Send messages and read until ReadyForQuery, returning every frame
    /// before it and the transaction status byte. For internal statements
    /// (setup, catalog look-ups), not for client traffic.
    ///
    /// # Errors
    /// I/O and protocol errors. A server ErrorResponse is returned among the
    /// frames, not as an error.
    pub async fn round_trip(&mut self, bytes: &[u8]) -> Result<(Vec<Frame>, u8), BackendError> {
        self.send(bytes).await?;
        let mut frames = Vec::new();
        loop {
            let f = self.recv().await?;
            if f.tag == b'Z' {
                return Ok((frames, f.body.first().copied().unwrap_or(b'I')));
            }
            frames.push(f);
        }
    }

    /// Run one simple query for internal use and return its rows as text;
    /// a server error becomes [`BackendError::Server`].
    ///
    /// # Errors
    /// I/O, protocol and server errors.
    pub async fn simple_rows(
        &mut self,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, BackendError> {
        let mut out = bytes::BytesMut::new();
        shardgate_wire::frontend::query(&mut out, sql);
        let (frames, _) = self.round_trip(&out).await?;
        let mut rows = Vec::new();
        for f in frames {
            match f.tag {
                b'E' => {
                    return Err(BackendError::Server(Box::new(
                        shardgate_wire::backend::parse_error(&f.body)?,
                    )));
                }
                b'D' => rows.push(
                    shardgate_wire::backend::parse_data_row(&f.body)?
                        .into_iter()
                        .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect(),
                ),
                _ => {}
            }
        }
        Ok(rows)
    }
}
