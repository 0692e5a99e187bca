//! Sending one statement to its shards and streaming the merged reply.

use crate::error::ExecError;
use crate::merge::{Merger, Outcome, is_terminal};
use crate::out::ClientOut;
use bytes::BytesMut;
use shardgate_backend::{BackendError, PooledConn};
use shardgate_core::ShardId;
use shardgate_wire::{Frame, frontend};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use tokio::io::AsyncWrite;

/// The shard connections a session holds, by shard.
pub type Conns = BTreeMap<ShardId, PooledConn>;

/// What to send to each shard for one statement.
pub enum Request<'a> {
    /// A client's message to send as it is (a Query); the reply ends
    /// with ReadyForQuery.
    Raw(&'a Frame),
    /// A simple-protocol query; ends with ReadyForQuery.
    Simple(&'a str),
    /// A simple-protocol query per shard.
    SimplePer(&'a BTreeMap<ShardId, String>),
    /// Extended protocol: prepare (if needed) and execute a statement with
    /// the client's bind values; ends at the Execute's completion.
    Extended {
        /// The statement's SQL.
        sql: &'a str,
        /// Its parameter types.
        param_types: &'a [u32],
        /// The client's Bind after the statement name (formats, values).
        bind_tail: &'a [u8],
        /// Portal name.
        portal: &'a str,
        /// Send Describe Portal before Execute.
        describe: bool,
        /// Execute's row limit (0 = all).
        max_rows: i32,
        /// The portal is already bound on the shard (a later Execute of a
        /// suspended portal): send only Execute.
        bound: bool,
        /// The client's Sync follows at once: send Sync instead of Flush and
        /// read to ReadyForQuery (one round trip instead of two).
        sync: bool,
    },
    /// Extended protocol with SQL rewritten per shard and no parameters.
    ExtendedPer {
        /// SQL per shard.
        per: &'a BTreeMap<ShardId, String>,
        /// Result formats from the client's Bind.
        result_formats: &'a [i16],
        /// Send Describe Portal before Execute.
        describe: bool,
    },
    /// Bind and describe a portal without executing it, then close it
    /// (for a client's Describe Portal with no Execute in the same batch).
    DescribePortal {
        /// The statement's SQL.
        sql: &'a str,
        /// Its parameter types.
        param_types: &'a [u32],
        /// The client's Bind after the statement name.
        bind_tail: &'a [u8],
    },
    /// Describe a portal that already exists on the shard: a SQL cursor
    /// declared there (for a client's Describe Portal of its name).
    DescribeCursor {
        /// The cursor's name.
        name: &'a str,
    },
    /// Parse and Describe a statement (for a client's Describe Statement).
    DescribeStatement {
        /// The statement's SQL.
        sql: &'a str,
        /// Its parameter types.
        param_types: &'a [u32],
    },
}

/// The name shardgate gives a statement on a shard connection, in a
/// generation of names (see `ShardConn::forget_prepared`).
pub fn statement_name(sql: &str, types: &[u32], epoch: u32) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sql.hash(&mut h);
    types.hash(&mut h);
    format!("sg{epoch}_{:016x}", h.finish())
}

pub(crate) fn prepare_if_needed(
    c: &mut PooledConn,
    sql: &str,
    types: &[u32],
    buf: &mut BytesMut,
) -> String {
    prepare(c, sql, types, buf).0
}

/// The statement's name on `c`, with a Parse added to `buf` if it is not
/// prepared there yet; the flag says a Parse was added.
fn prepare(c: &mut PooledConn, sql: &str, types: &[u32], buf: &mut BytesMut) -> (String, bool) {
    let mut name = statement_name(sql, types, c.epoch());
    if !c.prepared().contains(&name) && c.prepared().len() >= shardgate_backend::MAX_PREPARED {
        c.forget_prepared();
        name = statement_name(sql, types, c.epoch());
    }
    if !c.prepared().contains(&name) {
        frontend::parse(buf, &name, sql, types);
        c.prepared().insert(name.clone());
        return (name, true);
    }
    (name, false)
}

/// Add `req`'s messages for `shard` to `buf`; returns the name of a
/// statement parsed by them (not known to exist until ParseComplete).
fn encode(
    req: &Request<'_>,
    shard: ShardId,
    c: &mut PooledConn,
    buf: &mut BytesMut,
) -> Option<String> {
    let mut parsed = None;
    match req {
        Request::Raw(f) => f.encode(buf),
        Request::Simple(sql) => frontend::query(buf, sql),
        Request::SimplePer(per) => {
            frontend::query(buf, per.get(&shard).map(String::as_str).unwrap_or(""))
        }
        Request::Extended {
            sql,
            param_types,
            bind_tail,
            portal,
            describe,
            max_rows,
            bound,
            sync,
        } => {
            if *sync && !bound {
                // The reply is read to ReadyForQuery whatever it holds, so
                // CloseComplete messages are harmless here (not while a
                // suspended portal runs: closing its statement closes it).
                for old in c.take_to_close() {
                    frontend::close(buf, b'S', &old);
                }
            }
            if !bound {
                let (name, new) = prepare(c, sql, param_types, buf);
                frontend::bind_renamed(buf, portal, &name, bind_tail);
                parsed = new.then_some(name);
            }
            if *describe {
                frontend::describe(buf, b'P', portal);
            }
            frontend::execute(buf, portal, *max_rows);
            if *sync {
                frontend::sync(buf);
            } else {
                frontend::flush(buf);
            }
        }
        Request::ExtendedPer {
            per,
            result_formats,
            describe,
        } => {
            frontend::parse(
                buf,
                "",
                per.get(&shard).map(String::as_str).unwrap_or(""),
                &[],
            );
            frontend::bind(buf, "", "", &[], &[], result_formats);
            if *describe {
                frontend::describe(buf, b'P', "");
            }
            frontend::execute(buf, "", 0);
            frontend::flush(buf);
        }
        Request::DescribePortal {
            sql,
            param_types,
            bind_tail,
        } => {
            let (name, new) = prepare(c, sql, param_types, buf);
            frontend::bind_renamed(buf, "", &name, bind_tail);
            frontend::describe(buf, b'P', "");
            frontend::close(buf, b'P', "");
            frontend::flush(buf);
            parsed = new.then_some(name);
        }
        Request::DescribeCursor { name } => {
            frontend::describe(buf, b'P', name);
            frontend::flush(buf);
        }
        Request::DescribeStatement { sql, param_types } => {
            let (name, new) = prepare(c, sql, param_types, buf);
            frontend::describe(buf, b'S', &name);
            frontend::flush(buf);
            parsed = new.then_some(name);
        }
    }
    parsed
}

fn ends(req: &Request<'_>, f: &Frame) -> bool {
    match req {
        Request::Raw(_) | Request::Simple(_) | Request::SimplePer(_) => f.tag == b'Z',
        Request::Extended { sync: true, .. } => f.tag == b'Z',
        Request::DescribeStatement { .. } | Request::DescribeCursor { .. } => {
            matches!(f.tag, b'T' | b'n' | b'E')
        }
        Request::DescribePortal { .. } => matches!(f.tag, b'3' | b'E'),
        _ => is_terminal(f.tag),
    }
}

/// The statement's connection to shard `s` (gone: the shard is lost).
///
/// # Errors
/// The session holds none (a bug: it is reported, not a panic).
// The same error type every (async) function of this crate returns.
#[allow(clippy::result_large_err)]
pub fn conn(conns: &mut Conns, s: ShardId) -> Result<&mut PooledConn, ExecError> {
    conns
        .get_mut(&s)
        .ok_or_else(|| lost(s, BackendError::Closed))
}

/// A shard connection failed.
pub fn lost(shard: ShardId, source: BackendError) -> ExecError {
    ExecError::Shard {
        shard: shard.to_string(),
        source,
    }
}

/// Run `req` on `shards` (each must be in `conns`), streaming the merged
/// reply to `out`. ReadyForQuery from shards is not forwarded: the session
/// sends its own.
///
/// # Errors
/// A shard connection failed (discard it) or the client is gone.
///
/// # Cancel safety
/// Not cancel safe: a dropped call leaves shards mid-reply; the session
/// must discard their connections.
pub async fn run<W: AsyncWrite + Unpin>(
    conns: &mut Conns,
    shards: &[ShardId],
    req: &Request<'_>,
    out: &mut ClientOut<W>,
) -> Result<Outcome, ExecError> {
    run_merged(conns, shards, req, out, Merger::new(shards.len())).await
}

/// [`run`] with a given merger (for example [`Merger::copies`]).
///
/// # Errors
/// As [`run`].
pub async fn run_merged<W: AsyncWrite + Unpin>(
    conns: &mut Conns,
    shards: &[ShardId],
    req: &Request<'_>,
    out: &mut ClientOut<W>,
    mut m: Merger,
) -> Result<Outcome, ExecError> {
    // A cancel from the deadlock detector is for the statement it saw wait.
    out.deadlock_victim.store(false, Ordering::Relaxed);
    let mut buf = BytesMut::new();
    let mut parsed: Vec<Option<String>> = Vec::with_capacity(shards.len());
    for s in shards {
        let c = conn(conns, *s)?;
        buf.clear();
        parsed.push(encode(req, *s, c, &mut buf));
        c.send(&buf).await.map_err(|e| lost(*s, e))?;
    }
    for (i, s) in shards.iter().enumerate() {
        m.shard(i);
        let c = conn(conns, *s)?;
        let named = !matches!(
            req,
            Request::Raw(_) | Request::Simple(_) | Request::SimplePer(_)
        );
        let mut parse_ok = false;
        loop {
            let f = c.recv().await.map_err(|e| lost(*s, e))?;
            if matches!(f.tag, b'G' | b'H' | b'W') {
                // COPY is refused before it reaches a shard; a shard in COPY
                // mode cannot be used further.
                return Err(lost(
                    *s,
                    BackendError::Config("unexpected COPY from shard".into()),
                ));
            }
            if f.tag == b'E' && named {
                // A statement in an unknown state must not be reused under
                // its name: one whose Parse in this request failed or, after
                // DDL changed a result's type (0A000,
                // "cached plan must not change result type") or when the
                // server lost the statements (26000), every one.
                if f.body
                    .windows(7)
                    .any(|w| w == b"C0A000\0" || w == b"C26000\0")
                {
                    c.forget_prepared();
                } else if let Some(name) = &parsed[i]
                    && !parse_ok
                {
                    // Its Parse failed: it does not exist on the server.
                    c.prepared().remove(name);
                    c.described().remove(name);
                }
            }
            if f.tag == b'1' {
                parse_ok = true;
            }
            let deadlock;
            let f = match (f.tag == b'E')
                .then(|| victim_error(out, &f.body))
                .flatten()
            {
                Some(e) => {
                    deadlock = error_frame(&e);
                    &deadlock
                }
                None => &f,
            };
            let done = ends(req, f);
            if f.tag != b'Z' {
                m.push(f, &mut out.buf);
            }
            if done {
                break;
            }
            if !c.has_buffered() {
                out.maybe_flush().await?;
            }
        }
    }
    m.finish(&mut out.buf);
    Ok(m.outcome)
}

/// The error a statement cancelled by the cross-shard deadlock detector
/// reports, as PostgreSQL's own detector would.
fn deadlock_fields() -> shardgate_wire::backend::ErrorFields {
    shardgate_wire::backend::ErrorFields {
        severity: "ERROR".into(),
        code: "40P01".into(),
        message: "deadlock detected".into(),
        detail: Some(
            "The transaction waited for a lock on one shard while holding one that another transaction waited for on another shard; shardgate cancelled this statement to break the cycle."
                .into(),
        ),
        hint: Some("Retry the transaction.".into()),
        other: None,
    }
}

/// A shard's ErrorResponse body as the client should see it: a cancel by
/// the deadlock detector (see `ClientOut::deadlock_victim`) is 40P01.
pub(crate) fn shard_error<W>(
    out: &ClientOut<W>,
    body: &[u8],
) -> Option<shardgate_wire::backend::ErrorFields> {
    victim_error(out, body).or_else(|| shardgate_wire::backend::parse_error(body).ok())
}

/// The 40P01 error to send instead of this shard error, when it is the
/// cancel of a deadlock victim.
pub(crate) fn victim_error<W>(
    out: &ClientOut<W>,
    body: &[u8],
) -> Option<shardgate_wire::backend::ErrorFields> {
    (body.windows(7).any(|w| w == b"C57014\0")
        && out.deadlock_victim.swap(false, Ordering::Relaxed))
    .then(deadlock_fields)
}

fn error_frame(e: &shardgate_wire::backend::ErrorFields) -> Frame {
    let mut b = BytesMut::new();
    shardgate_wire::backend::error_like(&mut b, b'E', e);
    Frame::take(&mut b)
        .ok()
        .flatten()
        .expect("a whole error frame")
}

/// What [`collect`] read.
#[derive(Debug, Default)]
pub struct Collected {
    /// The rows, values as text.
    pub rows: Vec<Vec<Option<String>>>,
    /// The type OID of each column (from the first row description).
    pub types: Vec<u32>,
    /// The first error a shard reported.
    pub error: Option<shardgate_wire::backend::ErrorFields>,
    /// More rows than the limit arrived (the rest were dropped).
    pub over_limit: bool,
}

/// Run one simple query per shard (in parallel) and collect the rows, at
/// most `max_rows` of them, instead of sending them to a client. Notices
/// are dropped.
///
/// # Errors
/// A shard connection failed.
pub async fn collect(
    conns: &mut Conns,
    per: &BTreeMap<ShardId, String>,
    max_rows: usize,
) -> Result<Collected, ExecError> {
    let mut buf = BytesMut::new();
    for (s, sql) in per {
        let c = conn(conns, *s)?;
        buf.clear();
        frontend::query(&mut buf, sql);
        c.send(&buf).await.map_err(|e| lost(*s, e))?;
    }
    let mut out = Collected::default();
    for s in per.keys() {
        let c = conn(conns, *s)?;
        loop {
            let f = c.recv().await.map_err(|e| lost(*s, e))?;
            match f.tag {
                b'Z' => break,
                b'E' if out.error.is_none() => {
                    out.error = shardgate_wire::backend::parse_error(&f.body).ok()
                }
                b'T' if out.types.is_empty() => {
                    out.types = shardgate_wire::backend::parse_row_description(&f.body)
                        .map_err(|e| lost(*s, BackendError::Protocol(e)))?
                        .into_iter()
                        .map(|c| c.type_oid)
                        .collect();
                }
                b'D' if out.rows.len() >= max_rows => out.over_limit = true,
                b'D' => {
                    let vals = shardgate_wire::backend::parse_data_row(&f.body)
                        .map_err(|e| lost(*s, BackendError::Protocol(e)))?;
                    out.rows.push(
                        vals.into_iter()
                            .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                            .collect(),
                    );
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Send Sync to every connection and read to ReadyForQuery; notices are
/// forwarded. Returns each shard's transaction status.
///
/// # Errors
/// A shard connection failed.
pub async fn sync_all<W: AsyncWrite + Unpin>(
    conns: &mut Conns,
    out: &mut ClientOut<W>,
) -> Result<BTreeMap<ShardId, u8>, ExecError> {
    let mut buf = BytesMut::new();
    frontend::sync(&mut buf);
    for (s, c) in conns.iter_mut() {
        c.send(&buf).await.map_err(|e| lost(*s, e))?;
    }
    let mut st = BTreeMap::new();
    for (s, c) in conns.iter_mut() {
        loop {
            let f = c.recv().await.map_err(|e| lost(*s, e))?;
            match f.tag {
                b'Z' => {
                    st.insert(*s, f.body.first().copied().unwrap_or(b'I'));
                    break;
                }
                b'N' => f.encode(&mut out.buf),
                _ => {}
            }
        }
    }
    Ok(st)
}

/// End an extended-protocol batch that failed: on each connection, a
/// ROLLBACK (which aborts the implicit transaction of the batch, where a
/// shard had no error of its own) and Sync, read to ReadyForQuery; replies
/// are dropped.
///
/// # Errors
/// A shard connection failed.
pub async fn rollback_batch(conns: &mut Conns) -> Result<(), ExecError> {
    let mut buf = BytesMut::new();
    frontend::parse(&mut buf, "", "ROLLBACK", &[]);
    frontend::bind(&mut buf, "", "", &[], &[], &[]);
    frontend::execute(&mut buf, "", 0);
    frontend::sync(&mut buf);
    for (s, c) in conns.iter_mut() {
        c.send(&buf).await.map_err(|e| lost(*s, e))?;
    }
    for (s, c) in conns.iter_mut() {
        while c.recv().await.map_err(|e| lost(*s, e))?.tag != b'Z' {}
    }
    Ok(())
}

/// Run an internal simple query on each of `shards` in parallel (for BEGIN,
/// COMMIT, SET...). Returns the first server error, if any.
///
/// # Errors
/// A shard connection failed.
pub async fn internal(
    conns: &mut Conns,
    shards: &[ShardId],
    sql: &str,
) -> Result<Option<shardgate_wire::backend::ErrorFields>, ExecError> {
    Ok(internal_collect(conns, shards, sql).await?.error)
}

/// [`internal`], also returning the ParameterStatus messages the shards
/// sent (a SET of a reported parameter), without repeats.
///
/// # Errors
/// A shard connection failed.
pub async fn internal_collect(
    conns: &mut Conns,
    shards: &[ShardId],
    sql: &str,
) -> Result<Internal, ExecError> {
    internal_collect_per(conns, shards, |_| sql.to_string()).await
}

/// [`internal_collect`] with each shard's own SQL.
///
/// # Errors
/// A shard connection failed.
pub async fn internal_collect_per(
    conns: &mut Conns,
    shards: &[ShardId],
    sql: impl Fn(ShardId) -> String,
) -> Result<Internal, ExecError> {
    let mut buf = BytesMut::new();
    for s in shards {
        buf.clear();
        frontend::query(&mut buf, &sql(*s));
        let c = conn(conns, *s)?;
        c.send(&buf).await.map_err(|e| lost(*s, e))?;
    }
    let mut first = None;
    let mut statuses: Vec<Frame> = Vec::new();
    let mut rolled_back = false;
    for s in shards {
        let c = conn(conns, *s)?;
        loop {
            let f = c.recv().await.map_err(|e| lost(*s, e))?;
            match f.tag {
                b'Z' => break,
                b'E' if first.is_none() => {
                    first = shardgate_wire::backend::parse_error(&f.body).ok()
                }
                b'S' if !statuses.iter().any(|x| x.body == f.body) => statuses.push(f),
                b'C' if &f.body[..] == b"ROLLBACK\0" => rolled_back = true,
                _ => {}
            }
        }
    }
    Ok(Internal {
        error: first,
        statuses,
        rolled_back,
    })
}

/// What an internal statement returned.
pub struct Internal {
    /// The first server error.
    pub error: Option<shardgate_wire::backend::ErrorFields>,
    /// ParameterStatus messages, without repeats.
    pub statuses: Vec<Frame>,
    /// Some shard answered ROLLBACK (a COMMIT of a failed transaction).
    pub rolled_back: bool,
}
