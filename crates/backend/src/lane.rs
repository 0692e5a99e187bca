//! Lanes: shard connections shared by many sessions, for single-statement
//! autocommit reads and writes (a Bind, Execute, Sync of a prepared
//! statement; or a simple-protocol statement the session forwards as a
//! prepared statement).
//!
//! A session that runs such a statement does not take a pooled connection
//! of its own: it hands the statement to one of its shard's lanes, whose writer
//! task sends the requests of every waiting session in one write, each
//! ending with its own Sync (so each is its own implicit transaction, as on
//! a connection of its own), and whose reader task hands each session the
//! frames up to its ReadyForQuery. PostgreSQL then answers several requests
//! per wake-up instead of one: on a small machine that is most of the cost
//! of a point query.
//!
//! A lane's connection is named `shardgate lane` (`application_name`) on
//! the server. An answer is gathered whole before it is handed over (lanes
//! are for short statements; streaming it in bounded chunks is a next
//! step). What a lane cannot carry, the session sends the usual way:
//! statements in a transaction, with session settings, reads that lock
//! rows.
//!
//! A lane must never wait for a lock (every request queued behind would
//! wait too): its connection has a short `lock_timeout` ([`LOCK_TIMEOUT`]),
//! and a request that meets it (55P03) was rolled back whole (it was its own
//! implicit transaction), so the session runs it again on a pooled
//! connection, where it waits as it would on PostgreSQL. Its statement then
//! skips the lane for its next [`COOL_DOWN`] runs, so that a hot row does not
//! keep stalling the lane.
//!
//! Writes take a lane only where a commit does not wait for a disk flush
//! or a standby (`synchronous_commit = off` for the lane's user and
//! database; the lane asks when it connects): a lane runs its requests one
//! after another, so each commit's wait would hold up everything behind
//! it, where connections of their own share one flush (group commit).
//!
//! A request that did not take effect ([`LaneError::Retry`]: the lane could
//! not connect, its connection had just broken, its statement was not
//! prepared there as the lane thought, or it met the lock timeout) the
//! session runs on a pooled connection; one sent on a connection that then
//! broke is [`LaneError::Lost`] (it may have run).

use crate::pg::{PgConfig, PgConn, PgReader, PgWriter};
use bytes::BytesMut;
use shardgate_wire::frontend;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Statements kept prepared on one lane; past this, the lane forgets them
/// and closes them on the server.
const MAX_PREPARED: usize = 500;

/// Requests written in one go, at most.
const MAX_BATCH: usize = 64;

/// The `lock_timeout` of a lane's connection: how long a request may wait
/// for a lock before it is sent back to run elsewhere.
pub const LOCK_TIMEOUT: &str = "5ms";

/// After a statement met the lock timeout on a lane, its next runs that go
/// elsewhere without trying the lane.
pub const COOL_DOWN: u32 = 256;

/// Why a lane did not answer a request.
#[derive(Debug, PartialEq, Eq)]
pub enum LaneError {
    /// The request did not take effect (the lane could not connect, its
    /// statement was not prepared there as the lane thought, or it met the
    /// lane's lock timeout and was rolled back): run it on a pooled
    /// connection instead.
    Retry,
    /// The connection broke after the request was sent: it may have run.
    Lost,
}

/// One statement to run on a lane.
pub struct LaneRequest {
    /// The statement's SQL as the shard runs it.
    pub sql: Arc<str>,
    /// Its parameter types.
    pub types: Arc<[u32]>,
    /// The client's Bind message after the portal and statement names
    /// (parameter formats, values, result formats).
    pub bind_tail: Vec<u8>,
    /// Ask for the portal's description (RowDescription or NoData) too.
    pub describe: bool,
    /// The pool's schema generation when the session ran it (a change
    /// makes the lane prepare its statements afresh).
    pub schema: u64,
    /// It writes (see [`Lane::takes_writes`]).
    pub write: bool,
}

/// The shard's answer: whole backend frames (BindComplete, the
/// description if asked, DataRows, CommandComplete; or an ErrorResponse)
/// without ParseComplete and ReadyForQuery.
pub type LaneReply = Result<BytesMut, LaneError>;

struct Job {
    req: LaneRequest,
    reply: oneshot::Sender<LaneReply>,
}

/// What the reader must know of a request it reads the answer of.
struct Pending {
    reply: oneshot::Sender<LaneReply>,
    /// The statement's name on the lane.
    name: String,
    /// This request's Parse prepared the statement.
    parsed: bool,
}

/// State shared by a lane's writer and reader.
#[derive(Default)]
struct Shared {
    pending: VecDeque<Pending>,
    /// Statements known prepared (ParseComplete seen) or being prepared.
    prepared: HashSet<String>,
    /// Moves on when the statements must be prepared afresh.
    epoch: u32,
    /// The schema generation the statements were prepared under.
    schema: u64,
    /// Names to close before the next request.
    to_close: Vec<String>,
    /// Statements that met the lock timeout, and how many of their next
    /// runs skip the lane.
    cooling: std::collections::HashMap<String, u32>,
    /// The reader ended (the connection broke): nothing more may be
    /// queued here, since nobody would answer it.
    closed: bool,
}

/// A shared, pipelined connection to one PostgreSQL shard (see the module
/// documentation). Cheap to clone.
#[derive(Clone)]
pub struct Lane {
    jobs: mpsc::UnboundedSender<Job>,
    /// Requests sent and not yet answered.
    load: Arc<AtomicUsize>,
    /// Whether the shard's commits wait (see [`Lane::takes_writes`]).
    writes: Arc<AtomicU8>,
}

/// [`Lane::writes`]: not known yet (the lane has not connected).
const WRITES_UNKNOWN: u8 = 0;
/// [`Lane::writes`]: commits do not wait; writes may take the lane.
const WRITES_OK: u8 = 1;
/// [`Lane::writes`]: commits wait for a flush or a standby.
const WRITES_WAIT: u8 = 2;

impl Lane {
    /// A lane to the server `cfg`; it connects on first use and again
    /// after its connection breaks. Must be called within a tokio runtime.
    pub fn start(cfg: PgConfig) -> Lane {
        let (tx, rx) = mpsc::unbounded_channel();
        let writes = Arc::new(AtomicU8::new(WRITES_UNKNOWN));
        tokio::spawn(writer(cfg, rx, writes.clone()));
        Lane {
            jobs: tx,
            load: Arc::new(AtomicUsize::new(0)),
            writes,
        }
    }

    /// May a write take this lane? Not where the shard's commits wait for
    /// a disk flush or a standby (see the module documentation); until
    /// the lane has connected and asked, a write may try (and is sent back
    /// [`LaneError::Retry`] if they do).
    pub fn takes_writes(&self) -> bool {
        self.writes.load(Ordering::Relaxed) != WRITES_WAIT
    }

    /// Requests sent to this lane and not yet answered.
    pub fn load(&self) -> usize {
        self.load.load(Ordering::Relaxed)
    }

    /// Run `req` on the lane and wait for its answer.
    pub async fn run(&self, req: LaneRequest) -> LaneReply {
        let (tx, rx) = oneshot::channel();
        let _counted = Counted::new(&self.load);
        match self.jobs.send(Job { req, reply: tx }) {
            Ok(()) => rx.await.unwrap_or(Err(LaneError::Lost)),
            Err(_) => Err(LaneError::Retry),
        }
    }
}

/// One request in a lane's load, for as long as it lives (also when the
/// session waiting for it goes away).
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(load: &'a AtomicUsize) -> Counted<'a> {
        load.fetch_add(1, Ordering::Relaxed);
        Counted(load)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The name of a statement on a lane.
fn statement_name(sql: &str, types: &[u32], epoch: u32) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sql.hash(&mut h);
    types.hash(&mut h);
    format!("sgl{epoch}_{:016x}", h.finish())
}

/// The writer task: connects, starts the reader, and writes the requests
/// of waiting sessions in batches. Ends when every [`Lane`] handle is gone.
async fn writer(cfg: PgConfig, mut rx: mpsc::UnboundedReceiver<Job>, writes: Arc<AtomicU8>) {
    let mut conn: Option<(PgWriter, Arc<Mutex<Shared>>, tokio::task::JoinHandle<()>)> = None;
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        // A connection whose reader ended (the server closed it) is
        // replaced.
        if conn.as_ref().is_some_and(|(_, _, r)| r.is_finished()) {
            conn = None;
        }
        if conn.is_none() {
            match PgConn::connect_as_app(&cfg, "shardgate lane", &[("lock_timeout", LOCK_TIMEOUT)])
                .await
            {
                Ok(mut c) => {
                    let waits = match commits_wait(&mut c).await {
                        Ok(w) => w,
                        Err(e) => {
                            tracing::debug!(error = %e, "lane: cannot read the commit settings");
                            true
                        }
                    };
                    writes.store(
                        if waits { WRITES_WAIT } else { WRITES_OK },
                        Ordering::Relaxed,
                    );
                    let (r, w) = c.into_split();
                    let shared = Arc::new(Mutex::new(Shared::default()));
                    let task = tokio::spawn(reader(r, shared.clone()));
                    conn = Some((w, shared, task));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "lane: cannot connect");
                    for j in batch.drain(..) {
                        let _ = j.reply.send(Err(LaneError::Retry));
                    }
                    continue;
                }
            }
        }
        let Some((w, shared, _)) = conn.as_mut() else {
            continue;
        };
        buf.clear();
        {
            let Ok(mut st) = shared.lock() else {
                return;
            };
            if st.closed {
                // The connection broke since the check above; nothing of
                // this batch was sent.
                drop(st);
                conn = None;
                for j in batch.drain(..) {
                    let _ = j.reply.send(Err(LaneError::Retry));
                }
                continue;
            }
            for j in batch.drain(..) {
                if j.reply.is_closed() {
                    continue;
                }
                // (Generations only move on; one read a moment earlier by
                // another session may be older.)
                if j.req.schema > st.schema || st.prepared.len() >= MAX_PREPARED {
                    st.schema = st.schema.max(j.req.schema);
                    st.epoch = st.epoch.wrapping_add(1);
                    st.cooling.clear();
                    let old: Vec<String> = st.prepared.drain().collect();
                    st.to_close.extend(old);
                }
                for old in std::mem::take(&mut st.to_close) {
                    frontend::close(&mut buf, b'S', &old);
                }
                if j.req.write && writes.load(Ordering::Relaxed) != WRITES_OK {
                    let _ = j.reply.send(Err(LaneError::Retry));
                    continue;
                }
                let name = statement_name(&j.req.sql, &j.req.types, st.epoch);
                if let Some(left) = st.cooling.get_mut(&name) {
                    *left -= 1;
                    if *left == 0 {
                        st.cooling.remove(&name);
                    }
                    let _ = j.reply.send(Err(LaneError::Retry));
                    continue;
                }
                let parsed = !st.prepared.contains(&name);
                if parsed {
                    frontend::parse(&mut buf, &name, &j.req.sql, &j.req.types);
                    st.prepared.insert(name.clone());
                }
                frontend::bind_renamed(&mut buf, "", &name, &j.req.bind_tail);
                if j.req.describe {
                    frontend::describe(&mut buf, b'P', "");
                }
                frontend::execute(&mut buf, "", 0);
                frontend::sync(&mut buf);
                st.pending.push_back(Pending {
                    reply: j.reply,
                    name,
                    parsed,
                });
            }
        }
        if buf.is_empty() {
            continue;
        }
        if let Err(e) = w.send(&buf).await {
            tracing::debug!(error = %e, "lane: write failed");
            // Its pending requests (perhaps sent) are answered Lost when
            // the reader and its queue are dropped.
            if let Some((_, shared, task)) = conn.take() {
                task.abort();
                if let Ok(mut st) = shared.lock() {
                    st.closed = true;
                    st.pending.clear();
                }
            }
        }
    }
}

/// Does a commit on `conn` wait for a disk flush or a synchronous standby?
async fn commits_wait(conn: &mut PgConn) -> Result<bool, crate::BackendError> {
    let mut buf = BytesMut::new();
    frontend::query(&mut buf, "SELECT current_setting('synchronous_commit')");
    conn.send(&buf).await?;
    let mut row: Vec<String> = Vec::new();
    loop {
        let f = conn.recv().await?;
        match f.tag {
            b'D' => {
                row = shardgate_wire::backend::parse_data_row(&f.body)
                    .map_err(crate::BackendError::Protocol)?
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.unwrap_or_default()).into_owned())
                    .collect();
            }
            b'Z' => break,
            _ => {}
        }
    }
    Ok(row.first().is_none_or(|sync| sync != "off"))
}

/// The reader task: reads the answers in order and hands each to its
/// session at its ReadyForQuery. On a broken connection, every pending
/// request is answered [`LaneError::Lost`] (dropping its sender does).
async fn reader(mut r: PgReader, shared: Arc<Mutex<Shared>>) {
    let mut acc = BytesMut::new();
    let mut parse_ok = false;
    // The SQLSTATE and message of the current answer's error, if any.
    let mut failed: Option<(String, String)> = None;
    loop {
        let f = match r.recv().await {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(error = %e, "lane: connection lost");
                if let Ok(mut st) = shared.lock() {
                    st.closed = true;
                    st.pending.clear();
                }
                return;
            }
        };
        match f.tag {
            // Replies to the lane's own messages.
            b'1' => parse_ok = true,
            b'3' | b'S' => {}
            b'Z' => {
                let Ok(mut st) = shared.lock() else {
                    return;
                };
                let Some(p) = st.pending.pop_front() else {
                    // An answer nobody asked for: the stream is out of step.
                    st.closed = true;
                    st.pending.clear();
                    return;
                };
                let reply = std::mem::take(&mut acc);
                // The statement is not (or no longer) what the lane thinks
                // (it does not exist; DDL changed its result type): it did
                // not run; prepare afresh, and run this one elsewhere.
                let stale = failed.as_ref().is_some_and(|(code, message)| {
                    code == "26000"
                        || (code == "0A000" && message.starts_with("cached plan must not change"))
                });
                // It waited for a lock past the lane's timeout: rolled back.
                let locked = failed.as_ref().is_some_and(|(code, _)| code == "55P03");
                let retry = match failed.take() {
                    Some(_) if stale => {
                        st.epoch = st.epoch.wrapping_add(1);
                        st.cooling.clear();
                        let old: Vec<String> = st.prepared.drain().collect();
                        st.to_close.extend(old);
                        true
                    }
                    Some(_) => {
                        if p.parsed && !parse_ok {
                            // Its Parse failed: not prepared.
                            st.prepared.remove(&p.name);
                        }
                        if locked {
                            st.cooling.insert(p.name.clone(), COOL_DOWN);
                        }
                        locked
                    }
                    None => false,
                };
                drop(st);
                parse_ok = false;
                let _ = p.reply.send(if retry {
                    Err(LaneError::Retry)
                } else {
                    Ok(reply)
                });
            }
            b'E' => {
                if let Ok(e) = shardgate_wire::backend::parse_error(&f.body) {
                    failed = Some((e.code, e.message));
                } else {
                    failed = Some((String::new(), String::new()));
                }
                f.encode(&mut acc);
            }
            _ => f.encode(&mut acc),
        }
    }
}
