//! The streaming k-way merge of a multi-shard SELECT with ORDER BY, LIMIT
//! and OFFSET.
//!
//! Each shard gets the merge's SQL (hidden sort columns appended) in two
//! round trips: Describe (to learn the columns), then Bind with the
//! client's parameters and result formats for the visible columns and
//! binary for the hidden ones, Execute and Sync. Rows are merged one at a
//! time: memory holds one row per shard, whatever the result size.
//!
//! When the plan has a lean variant (keys read from the result's own
//! columns, see `shardgate_sql::merge`), it is described first and used
//! if every key it reads from the result is there and comparable in the
//! format the client asked for, on PostgreSQL shards, with no collation
//! to sort by on a shard; otherwise the canonical SQL runs. Descriptions
//! are kept per connection, so the choice costs a round trip only the
//! first time.

use crate::error::ExecError;
use crate::merge::Outcome;
use crate::order;
use crate::out::ClientOut;
use crate::read::ReadRequest;
use crate::run::{Conns, conn, lost, prepare_if_needed};
use bytes::{BufMut, Bytes, BytesMut};
use shardgate_backend::BackendError;
use shardgate_core::ShardId;
use shardgate_sql::merge::SortKey;
use shardgate_wire::backend::{self as be, Column, ErrorFields};
use shardgate_wire::{Frame, Reader, frontend};
use std::cmp::Ordering;
use tokio::io::AsyncWrite;

/// One merge, as the read plan gives it: `Project(Limit?(MergeSort(
/// Scatter)))` (see `shardgate_sql::Node`).
pub struct Merge<'a> {
    /// The shards, in order.
    pub shards: &'a [ShardId],
    /// What every shard runs (with the client's parameters).
    pub sql: &'a str,
    /// Each shard's own SQL (parameters inlined), when the key list was
    /// split.
    pub per_shard: Option<&'a std::collections::BTreeMap<ShardId, String>>,
    /// The sort keys: the last `keys.len()` columns, dropped after.
    pub keys: &'a [SortKey],
    /// The variant reading keys from the result's own columns (only
    /// without per-shard SQL).
    pub lean: Option<&'a shardgate_sql::LeanMerge>,
    /// Rows to return after `offset`, if limited.
    pub limit: Option<u64>,
    /// Rows to skip after the merge.
    pub offset: u64,
    /// After `limit` rows, also those that sort equal to the last.
    pub with_ties: bool,
}

/// A Bind's parameter part with no parameters: no formats, no values.
const NO_PARAMS: &[u8] = &[0, 0, 0, 0];

impl Merge<'_> {
    /// The SQL, parameter types and Bind parameter bytes for shard `s`.
    fn for_shard<'s>(
        &'s self,
        req: &'s ReadRequest<'_>,
        s: ShardId,
    ) -> (&'s str, &'s [u32], &'s [u8]) {
        match self.per_shard.and_then(|m| m.get(&s)) {
            Some(sql) => (sql.as_str(), &[], NO_PARAMS),
            None => (self.sql, req.param_types, req.params),
        }
    }
}

/// Bind the unnamed portal to statement `name` with `params` (a Bind's
/// parameter part) and result `formats`.
fn bind_unnamed(buf: &mut BytesMut, name: &str, params: &[u8], formats: &[i16]) {
    let at = shardgate_wire::begin(buf, b'B');
    shardgate_wire::put_cstr(buf, "");
    shardgate_wire::put_cstr(buf, name);
    buf.put_slice(params);
    buf.put_i16(formats.len() as i16);
    for f in formats {
        buf.put_i16(*f);
    }
    shardgate_wire::finish(buf, at);
}

/// The part of a Bind message's tail (after the statement name) that holds
/// the parameter formats and values.
///
/// # Errors
/// A malformed Bind.
pub fn bind_params(tail: &[u8]) -> Result<&[u8], shardgate_wire::WireError> {
    let mut r = Reader::new(tail);
    let nf = r.i16()?.max(0) as usize;
    r.bytes(nf * 2)?;
    let np = r.i16()?.max(0) as usize;
    for _ in 0..np {
        r.value()?;
    }
    Ok(&tail[..tail.len() - r.remaining()])
}

/// Where a sort key is in each row and how it is encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyAt {
    /// The column (0-based, among all the row's columns).
    col: usize,
    /// Its type.
    oid: u32,
    /// Text format (else binary).
    text: bool,
    /// An enum type's labels by their sort order (an enum orders by
    /// declaration, not by label).
    ranks: Option<std::sync::Arc<std::collections::HashMap<Vec<u8>, u32>>>,
}

/// One sort key of a row: where its bytes are, or its value already
/// decoded when comparing would otherwise parse it again and again (an
/// integer in text format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyVal {
    Null,
    Raw(usize, usize),
    Int(i128),
}

#[derive(Clone)]
struct Row {
    body: Bytes,
    visible_end: usize,
    /// Inline up to four keys: no allocation per row.
    keys: smallvec::SmallVec<[KeyVal; 4]>,
}

/// Splits a DataRow body of `total` columns, the first `visible` of them
/// for the client, noting where each key of `at` is.
fn split_row(body: Bytes, visible: usize, total: usize, at: &[KeyAt]) -> Option<Row> {
    let n = i16::from_be_bytes([*body.first()?, *body.get(1)?]).max(0) as usize;
    if n != total {
        return None;
    }
    let mut pos = 2;
    let mut visible_end = 2;
    let mut keys = smallvec::smallvec![KeyVal::Null; at.len()];
    for i in 0..n {
        if i == visible {
            visible_end = pos;
        }
        let len = i32::from_be_bytes(body.get(pos..pos + 4)?.try_into().ok()?);
        pos += 4;
        let v = if len < 0 {
            None
        } else {
            let r = (pos, pos + len as usize);
            pos += len as usize;
            if pos > body.len() {
                return None;
            }
            Some(r)
        };
        for (k, a) in at.iter().enumerate() {
            if a.col == i {
                keys[k] = match v {
                    None => KeyVal::Null,
                    Some((s, e)) if a.text && order::is_int(a.oid) => {
                        KeyVal::Int(order::int_text(&body[s..e]))
                    }
                    Some((s, e)) => KeyVal::Raw(s, e),
                };
            }
        }
    }
    if n == visible {
        visible_end = pos;
    }
    Some(Row {
        body,
        visible_end,
        keys,
    })
}

fn cmp_rows(a: &Row, b: &Row, keys: &[SortKey], at: &[KeyAt]) -> Ordering {
    for (i, k) in keys.iter().enumerate() {
        let c = match (a.keys[i], b.keys[i]) {
            (KeyVal::Null, KeyVal::Null) => Ordering::Equal,
            (KeyVal::Null, _) => {
                if k.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (_, KeyVal::Null) => {
                if k.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (x, y) => {
                let c = match (x, y) {
                    (KeyVal::Int(x), KeyVal::Int(y)) => x.cmp(&y),
                    (KeyVal::Raw(xs, xe), KeyVal::Raw(ys, ye)) => {
                        let (x, y) = (&a.body[xs..xe], &b.body[ys..ye]);
                        if let Some(r) = &at[i].ranks {
                            r.get(x).cmp(&r.get(y))
                        } else if at[i].text {
                            order::compare_text(at[i].oid, x, y)
                        } else {
                            order::compare(at[i].oid, x, y)
                        }
                    }
                    // One key is decoded the same way in every row.
                    _ => Ordering::Equal,
                };
                if k.desc { c.reverse() } else { c }
            }
        };
        if c != Ordering::Equal {
            return c;
        }
    }
    Ordering::Equal
}

fn err(code: &str, message: impl Into<String>) -> ErrorFields {
    ErrorFields::new(code, message)
}

/// Read one shard to its ReadyForQuery, keeping notices.
async fn drain<W: AsyncWrite + Unpin>(
    conns: &mut Conns,
    s: ShardId,
    out: &mut ClientOut<W>,
) -> Result<(), ExecError> {
    let c = conn(conns, s)?;
    loop {
        let f = c.recv().await.map_err(|e| lost(s, e))?;
        match f.tag {
            b'Z' => return Ok(()),
            b'N' => f.encode(&mut out.buf),
            b'E' => c.forget_prepared(),
            _ => {}
        }
    }
}

/// Report a failure before any row was requested (every shard is at
/// ReadyForQuery).
pub(crate) fn abort<W: AsyncWrite + Unpin>(out: &mut ClientOut<W>, e: ErrorFields) -> Outcome {
    be::error_like(&mut out.buf, b'E', &e);
    Outcome {
        error: Some(e),
        ..Default::default()
    }
}

/// The statement every shard prepared for this merge and the columns they
/// describe; `Err` is a shard's error (every shard is at ReadyForQuery).
type Described = Result<(Vec<String>, Vec<Column>), ErrorFields>;

/// Round trip 1, unless every shard has described the statement before
/// (kept per connection): each shard's statement name and the columns.
/// `sql_of` gives each shard's SQL and parameter types.
async fn describe_all<'s, W: AsyncWrite + Unpin>(
    conns: &mut Conns,
    shards: &[ShardId],
    sql_of: impl Fn(ShardId) -> (&'s str, &'s [u32]),
    out: &mut ClientOut<W>,
) -> Result<Described, ExecError> {
    let mut names = Vec::with_capacity(shards.len());
    let mut columns: Option<Vec<Column>> = None;
    let mut all_described = true;
    for s in shards {
        let c = conn(conns, *s)?;
        let (sql, types) = sql_of(*s);
        let name = crate::run::statement_name(sql, types, c.epoch());
        let prepared = c.prepared().contains(&name);
        match c.described().get(&name) {
            Some(cols) if prepared => {
                columns.get_or_insert_with(|| cols.clone());
            }
            _ => all_described = false,
        }
        names.push(name);
    }
    if all_described {
        return Ok(Ok((names, columns.unwrap_or_default())));
    }
    let mut buf = BytesMut::new();
    let mut first_error = None;
    columns = None;
    names.clear();
    for s in shards {
        let c = conn(conns, *s)?;
        buf.clear();
        let (sql, types) = sql_of(*s);
        let name = prepare_if_needed(c, sql, types, &mut buf);
        frontend::describe(&mut buf, b'S', &name);
        frontend::sync(&mut buf);
        c.send(&buf).await.map_err(|e| lost(*s, e))?;
        names.push(name);
    }
    for (i, s) in shards.iter().enumerate() {
        let c = conn(conns, *s)?;
        loop {
            let f = c.recv().await.map_err(|e| lost(*s, e))?;
            match f.tag {
                b'T' => {
                    let cols = be::parse_row_description(&f.body)
                        .map_err(|e| lost(*s, BackendError::Protocol(e)))?;
                    c.described().insert(names[i].clone(), cols.clone());
                    columns.get_or_insert(cols);
                }
                b'n' => {
                    first_error
                        .get_or_insert_with(|| err("XX000", "a merged query returned no columns"));
                }
                b'E' => {
                    c.forget_prepared();
                    if first_error.is_none() {
                        first_error = crate::run::shard_error(out, &f.body);
                    }
                }
                b'N' => f.encode(&mut out.buf),
                b'Z' => break,
                _ => {}
            }
        }
    }
    Ok(match first_error {
        Some(e) => Err(e),
        None => Ok((names, columns.unwrap_or_default())),
    })
}

/// The result formats of the `visible` columns as the client's Bind gives
/// them (none: text, one: for all).
fn client_formats(req: &ReadRequest<'_>, visible: usize) -> Result<Vec<i16>, ErrorFields> {
    match req.result_formats.len() {
        0 => Ok(vec![0; visible]),
        1 => Ok(vec![req.result_formats[0]; visible]),
        n if n == visible => Ok(req.result_formats.to_vec()),
        n => Err(err(
            "08P01",
            format!("bind message has {n} result formats but query has {visible} columns"),
        )),
    }
}

/// Where the lean variant's keys are in rows of `cols` (the first
/// `visible` for the client, in `formats`), if every one is there and
/// comparable as it comes.
fn lean_keys(
    columns: &[shardgate_sql::KeyColumn],
    cols: &[Column],
    visible: usize,
    formats: &[i16],
) -> Option<Vec<KeyAt>> {
    use shardgate_sql::KeyColumn;
    columns
        .iter()
        .map(|c| {
            let col = match c {
                KeyColumn::Output(i) => Some(*i).filter(|i| *i < visible)?,
                KeyColumn::Named(n) => cols[..visible].iter().position(|c| &c.name == n)?,
                KeyColumn::Hidden(j) => Some(visible + j).filter(|i| *i < cols.len())?,
            };
            let oid = cols[col].type_oid;
            let text = col < visible && formats[col] == 0;
            let ok = if text {
                order::text_supported(oid)
            } else {
                order::supported(oid)
            };
            ok.then_some(KeyAt {
                col,
                oid,
                text,
                ranks: None,
            })
        })
        .collect()
}

/// The variant of the merge that runs (lean or not): its statement names,
/// columns, hidden column count, keys and the visible columns' formats.
struct Chosen {
    lean: bool,
    names: Vec<String>,
    cols: Vec<Column>,
    hidden: usize,
    keys: Vec<KeyAt>,
    formats: Vec<i16>,
}

/// Run a merge on its shards and stream the merged rows to `out`.
/// Every shard ends at ReadyForQuery (its batch is synced).
///
/// # Errors
/// A shard connection failed or the client is gone.
///
/// # Cancel safety
/// Not cancel safe (see [`crate::run`]).
pub(crate) async fn run_merge<W: AsyncWrite + Unpin>(
    conns: &mut Conns,
    spec: &Merge<'_>,
    req: &ReadRequest<'_>,
    out: &mut ClientOut<W>,
) -> Result<Outcome, ExecError> {
    let shards = spec.shards;
    out.deadlock_victim
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let k = spec.keys.len();
    let mut chosen = None;
    // The lean variant, on PostgreSQL shards (an embedded shard's
    // computed columns have no declared type to compare by).
    let mut embedded = false;
    for s in shards {
        embedded |= conn(conns, *s)?.is_embedded();
    }
    if let Some(lean) = spec.lean.filter(|_| spec.per_shard.is_none() && !embedded) {
        let (names, cols) =
            match describe_all(conns, shards, |_| (lean.sql.as_str(), req.param_types), out).await?
            {
                Ok(d) => d,
                Err(e) => return Ok(abort(out, e)),
            };
        let hidden = lean.hidden();
        let visible = cols.len().saturating_sub(hidden);
        let formats = match client_formats(req, visible) {
            Ok(f) => f,
            Err(e) => return Ok(abort(out, e)),
        };
        if cols.len() >= hidden
            && let Some(keys) = lean_keys(&lean.columns, &cols, visible, &formats)
        {
            let at: Vec<usize> = keys.iter().map(|a| a.col).collect();
            let sql_of = |_| (lean.sql.as_str(), req.param_types, req.params);
            match text_collations(conns, &cols, &at, shards, sql_of, req, out).await? {
                Err(e) => return Ok(abort(out, e)),
                // Text under a linguistic collation: the canonical
                // variant has a shard sort it.
                Ok(Some(_)) => {}
                Ok(None) => {
                    chosen = Some(Chosen {
                        lean: true,
                        names,
                        cols,
                        hidden,
                        keys,
                        formats,
                    });
                }
            }
        }
    }
    let chosen = match chosen {
        Some(c) => c,
        None => {
            let (names, cols) = match describe_all(
                conns,
                shards,
                |s| {
                    let (sql, types, _) = spec.for_shard(req, s);
                    (sql, types)
                },
                out,
            )
            .await?
            {
                Ok(d) => d,
                Err(e) => return Ok(abort(out, e)),
            };
            if cols.len() < k {
                return Ok(abort(
                    out,
                    err("XX000", "a merged query lost its sort columns"),
                ));
            }
            let visible = cols.len() - k;
            // An enum (a type of the database's own) orders by its labels'
            // declared order, which the shard the columns were described
            // by tells (the same DDL made the type on every shard).
            let mut ranks = Vec::with_capacity(k);
            for c in &cols[visible..] {
                let o = c.type_oid;
                if order::supported(o) {
                    ranks.push(None);
                    continue;
                }
                let labels = if o >= 16384 && !embedded {
                    enum_labels(conns, shards[0], o).await?
                } else {
                    Vec::new()
                };
                if labels.is_empty() {
                    let e = err(
                        "0A000",
                        format!(
                            "ORDER BY a value of type oid {o} across shards is not supported yet"
                        ),
                    );
                    return Ok(abort(out, e));
                }
                ranks.push(Some(std::sync::Arc::new(
                    labels
                        .into_iter()
                        .enumerate()
                        .map(|(i, l)| (l.into_bytes(), i as u32))
                        .collect::<std::collections::HashMap<_, _>>(),
                )));
            }
            // Text merges bytewise, which is right under the C collation
            // only; under any other, one shard sorts the shards' rows
            // instead.
            let at: Vec<usize> = (visible..cols.len()).collect();
            let sql_of = |s| spec.for_shard(req, s);
            let collate = match text_collations(conns, &cols, &at, shards, sql_of, req, out).await?
            {
                Ok(c) => c,
                Err(e) => return Ok(abort(out, e)),
            };
            if let Some(collate) = collate {
                return sort_on_shard(conns, shards, &names, spec, req, &cols, &collate, out).await;
            }
            let formats = match client_formats(req, visible) {
                Ok(f) => f,
                Err(e) => return Ok(abort(out, e)),
            };
            let keys = at
                .iter()
                .zip(ranks)
                .map(|(&col, ranks)| KeyAt {
                    col,
                    oid: cols[col].type_oid,
                    text: false,
                    ranks,
                })
                .collect();
            Chosen {
                lean: false,
                names,
                cols,
                hidden: k,
                keys,
                formats,
            }
        }
    };
    let Chosen {
        lean,
        names,
        cols,
        hidden,
        keys: at,
        formats,
    } = chosen;
    let total = cols.len();
    let visible = total - hidden;
    if req.describe {
        let mut vis: Vec<Column> = cols[..visible].to_vec();
        for (c, f) in vis.iter_mut().zip(&formats) {
            c.format = *f;
        }
        be::row_description(&mut out.buf, &vis);
    }
    // Round trip 2: the rows. With a large LIMIT + OFFSET (deep pages),
    // each PostgreSQL shard is asked for about its share first, and for
    // more only if the merge takes them all (its portal stays suspended
    // meanwhile): a shard need not send limit + offset rows of which the
    // merge uses a quarter.
    let mut all_formats = formats;
    all_formats.extend(std::iter::repeat_n(1i16, hidden));
    let first = first_batch(spec, shards.len(), embedded);
    let mut buf = BytesMut::new();
    let mut streams = Vec::with_capacity(shards.len());
    for (i, s) in shards.iter().enumerate() {
        let c = conn(conns, *s)?;
        buf.clear();
        let params = if lean {
            req.params
        } else {
            spec.for_shard(req, *s).2
        };
        bind_unnamed(&mut buf, &names[i], params, &all_formats);
        match first {
            Some((batch, cap)) => {
                frontend::execute(&mut buf, "", batch as i32);
                frontend::flush(&mut buf);
                streams.push(Stream {
                    done: false,
                    synced: false,
                    asked: batch,
                    cap,
                });
            }
            None => {
                frontend::execute(&mut buf, "", 0);
                frontend::sync(&mut buf);
                streams.push(Stream {
                    done: false,
                    synced: true,
                    asked: 0,
                    cap: 0,
                });
            }
        }
        c.send(&buf).await.map_err(|e| lost(*s, e))?;
    }
    let mut heads: Vec<Option<Row>> = Vec::with_capacity(shards.len());
    let mut error: Option<ErrorFields> = None;
    let shape = Shape {
        visible,
        total,
        at: &at,
    };
    for i in 0..shards.len() {
        let r = next_row(conns, shards[i], &shape, &mut streams[i], &mut error, out).await?;
        heads.push(r);
    }
    let mut skipped = 0u64;
    let mut sent = 0u64;
    // WITH TIES: the last row within the limit, once the limit is reached.
    let mut last: Option<Row> = None;
    while error.is_none() {
        let full = spec.limit.is_some_and(|l| sent >= l);
        if full && !spec.with_ties {
            break;
        }
        let mut best: Option<usize> = None;
        for (i, h) in heads.iter().enumerate() {
            if let Some(r) = h {
                let better = match best {
                    None => true,
                    Some(b) => {
                        cmp_rows(r, heads[b].as_ref().expect("best is some"), spec.keys, &at)
                            == Ordering::Less
                    }
                };
                if better {
                    best = Some(i);
                }
            }
        }
        let Some(b) = best else { break };
        if full {
            let head = heads[b].as_ref().expect("best is some");
            let tied = last
                .as_ref()
                .is_some_and(|l| cmp_rows(head, l, spec.keys, &at) == Ordering::Equal);
            if !tied {
                break;
            }
        }
        let row = heads[b].take().expect("best is some");
        if skipped < spec.offset {
            skipped += 1;
        } else {
            let payload = &row.body[2..row.visible_end];
            out.buf.put_u8(b'D');
            out.buf.put_u32((4 + 2 + payload.len()) as u32);
            out.buf.put_i16(visible as i16);
            out.buf.put_slice(payload);
            sent += 1;
            if spec.with_ties && spec.limit.is_some_and(|l| sent >= l) && last.is_none() {
                last = Some(row.clone());
            }
            out.maybe_flush().await?;
        }
        heads[b] = next_row(conns, shards[b], &shape, &mut streams[b], &mut error, out).await?;
    }
    for i in 0..shards.len() {
        if !streams[i].done {
            if !streams[i].synced {
                sync_stream(conns, shards[i], &mut streams[i]).await?;
            }
            drain(conns, shards[i], out).await?;
        }
    }
    if let Some(e) = &error {
        be::error_like(&mut out.buf, b'E', e);
    } else {
        be::command_complete(&mut out.buf, &format!("SELECT {sent}"));
    }
    Ok(Outcome {
        error,
        rows: sent,
        ..Default::default()
    })
}

/// Below this many rows per shard (limit + offset), every shard sends its
/// rows at once: a suspended portal costs one more round trip (the Sync
/// that ends it, after the merge), which costs more than the rows it saves
/// (measured: about 10% fewer top-100 queries per second).
const BATCHES_FROM: u64 = 1000;

/// The first batch each shard is asked for and the most rows it can
/// return (limit + offset), when the merge has a LIMIT of at least
/// [`BATCHES_FROM`] rows with the offset, more than one shard, all of them
/// PostgreSQL (an embedded shard answers at once); `None`: every row at
/// once.
fn first_batch(spec: &Merge<'_>, shards: usize, embedded: bool) -> Option<(u64, u64)> {
    let cap = spec.limit?.saturating_add(spec.offset);
    // (With ties a shard sends more than limit + offset rows.)
    if embedded || shards < 2 || cap < BATCHES_FROM || spec.with_ties {
        return None;
    }
    let share = cap.div_ceil(shards as u64);
    // A margin over the even share, so that a fair spread of the first
    // rows seldom needs a second batch.
    let batch = share + share / 4 + 8;
    (batch < cap && batch <= i32::MAX as u64).then_some((batch, cap))
}

/// One shard's stream of rows in a merge.
struct Stream {
    /// Read to its ReadyForQuery.
    done: bool,
    /// Its Sync is sent (else its rows come in batches, after Flush).
    synced: bool,
    /// Rows asked for so far (in batches).
    asked: u64,
    /// The most rows its SQL returns (limit + offset).
    cap: u64,
}

/// Ends a stream asked for in batches: Sync, so that the shard closes its
/// portal and answers ReadyForQuery.
async fn sync_stream(conns: &mut Conns, s: ShardId, st: &mut Stream) -> Result<(), ExecError> {
    let mut buf = BytesMut::new();
    frontend::sync(&mut buf);
    conn(conns, s)?.send(&buf).await.map_err(|e| lost(s, e))?;
    st.synced = true;
    Ok(())
}

/// The labels of enum type `oid` (as shard `s` numbers it) in their sort
/// order; none if it is not an enum.
async fn enum_labels(conns: &mut Conns, s: ShardId, oid: u32) -> Result<Vec<String>, ExecError> {
    let c = conn(conns, s)?;
    let rows = c
        .simple_rows(&format!(
            "SELECT enumlabel FROM pg_catalog.pg_enum WHERE enumtypid = {oid} ORDER BY enumsortorder"
        ))
        .await
        .map_err(|e| lost(s, e))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect())
}

/// The shape of a merge's rows: all columns, the client's, the keys.
struct Shape<'a> {
    visible: usize,
    total: usize,
    at: &'a [KeyAt],
}

/// A query that tells the collations of columns `which` (0-based) of
/// `sql`, a query with `columns` result columns, without running it: one
/// row per column of `which`, in order, with the collation's name as
/// `pg_collation_for` gives it (quoted; NULL: none), its provider, its
/// libc locale and its ICU or builtin locale (see
/// [`shardgate_backend::collation_is_bytewise`]).
pub fn collation_probe(sql: &str, columns: usize, which: &[usize]) -> String {
    let aliases: Vec<String> = (1..=columns).map(|i| format!("sg_p{i}")).collect();
    let fors: Vec<String> = which
        .iter()
        .map(|i| format!("pg_collation_for(sg_s.sg_p{})", i + 1))
        .collect();
    // A CTE (not inlined when it locks rows) joined on false: its columns
    // keep their collations, and it is never run.
    format!(
        "WITH sg_s({}) AS ({sql}) \
         SELECT p.coll, c.collprovider, coalesce(j ->> 'collcollate', ''), coalesce(j ->> 'colllocale', j ->> 'colliculocale', '') \
         FROM (VALUES (1)) AS sg_v LEFT JOIN sg_s ON false \
         CROSS JOIN LATERAL unnest(ARRAY[{}]::text[]) WITH ORDINALITY AS p(coll, i) \
         LEFT JOIN pg_collation c ON c.oid = to_regcollation(p.coll) \
         LEFT JOIN LATERAL to_jsonb(c) AS j ON true ORDER BY p.i",
        aliases.join(", "),
        fors.join(", ")
    )
}

/// How the text sort keys of a merge whose shards describe their columns
/// as `cols` (the keys at columns `at`) are ordered: `Ok(None)` when every
/// one compares bytewise (C collation), else the collation to sort each
/// key by on a shard (`None` for non-text keys); `Err` to refuse. Asks the
/// first PostgreSQL shard with [`collation_probe`] (of its SQL, from
/// `sql_of`), once per statement prepared on its connection.
async fn text_collations<'s, W: AsyncWrite + Unpin>(
    conns: &mut Conns,
    cols: &[Column],
    at: &[usize],
    shards: &[ShardId],
    sql_of: impl Fn(ShardId) -> (&'s str, &'s [u32], &'s [u8]),
    req: &ReadRequest<'_>,
    out: &mut ClientOut<W>,
) -> Result<Result<Option<Vec<Option<String>>>, ErrorFields>, ExecError> {
    // (key index, column) of the text keys.
    let text: Vec<(usize, usize)> = at
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, c)| matches!(cols[*c].type_oid, 19 | 25 | 1042 | 1043))
        .collect();
    if text.is_empty() {
        return Ok(Ok(None));
    }
    // SQLite compares text bytewise; a PostgreSQL shard tells.
    let mut pg = None;
    for s in shards {
        if !conn(conns, *s)?.is_embedded() {
            pg = Some(*s);
            break;
        }
    }
    let Some(shard) = pg else {
        return Ok(Ok(None));
    };
    let (sql, types, params) = sql_of(shard);
    let c = conn(conns, shard)?;
    let which: Vec<usize> = text.iter().map(|(_, c)| *c).collect();
    // Asked once per statement prepared on the connection.
    let name = crate::run::statement_name(sql, types, c.epoch());
    let cached = c
        .prepared()
        .contains(&name)
        .then(|| c.probed().get(&name).cloned())
        .flatten();
    let rows = match cached {
        Some(rows) => rows,
        None => {
            let rows = match probe_collations(c, shard, sql, types, params, cols.len(), &which, out)
                .await?
            {
                Ok(rows) => rows,
                Err(e) => return Ok(Err(e)),
            };
            if c.prepared().contains(&name) {
                c.probed().insert(name, rows.clone());
            }
            rows
        }
    };
    let mut bytewise = true;
    let mut collate = vec![None; at.len()];
    for (n, (key, _)) in text.iter().enumerate() {
        let get = |j: usize| {
            rows.get(n)
                .and_then(|r| r.get(j))
                .map_or("", String::as_str)
        };
        match (get(0), get(1)) {
            ("", _) => {
                return Ok(Err(err(
                    "0A000",
                    "ORDER BY a text value without a collation across shards is not supported",
                )));
            }
            // The database's default collation, on the sorting shard too
            // (named: a cast to `name` would take name's own C collation).
            (name, "d") => {
                bytewise &= req.bytewise_text;
                collate[*key] = Some(name.to_string());
            }
            (name, provider) => {
                bytewise &=
                    shardgate_backend::collation_is_bytewise(provider, get(2), get(3), true);
                collate[*key] = Some(name.to_string());
            }
        }
    }
    if !bytewise && conn(conns, shards[0])?.is_embedded() {
        // The sort would run on an embedded shard, which has no collations.
        return Ok(Err(err(
            "0A000",
            "ORDER BY text across embedded and PostgreSQL shards whose collation is not C is not supported",
        )));
    }
    Ok(Ok((!bytewise).then_some(collate)))
}

/// Runs [`collation_probe`] of `sql` on shard `shard` (connection `c`):
/// one row of answers per column of `text`, or the shard's error.
#[allow(clippy::too_many_arguments)]
async fn probe_collations<W: AsyncWrite + Unpin>(
    c: &mut shardgate_backend::ShardConn,
    shard: ShardId,
    sql: &str,
    types: &[u32],
    params: &[u8],
    columns: usize,
    text: &[usize],
    out: &mut ClientOut<W>,
) -> Result<Result<Vec<Vec<String>>, ErrorFields>, ExecError> {
    let probe = collation_probe(sql, columns, text);
    let mut buf = BytesMut::new();
    frontend::parse(&mut buf, "", &probe, types);
    let at = shardgate_wire::begin(&mut buf, b'B');
    shardgate_wire::put_cstr(&mut buf, "");
    shardgate_wire::put_cstr(&mut buf, "");
    buf.put_slice(params);
    buf.put_i16(0);
    shardgate_wire::finish(&mut buf, at);
    frontend::execute(&mut buf, "", 0);
    frontend::sync(&mut buf);
    c.send(&buf).await.map_err(|e| lost(shard, e))?;
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(text.len());
    let mut error = None;
    loop {
        let f = c.recv().await.map_err(|e| lost(shard, e))?;
        match f.tag {
            b'D' => {
                let vals = be::parse_data_row(&f.body)
                    .map_err(|e| lost(shard, BackendError::Protocol(e)))?;
                rows.push(
                    vals.iter()
                        .map(|v| String::from_utf8_lossy(v.unwrap_or_default()).into_owned())
                        .collect(),
                );
            }
            b'E' if error.is_none() => error = crate::run::shard_error(out, &f.body),
            b'Z' => break,
            _ => {}
        }
    }
    Ok(match error {
        Some(e) => Err(e),
        None => Ok(rows),
    })
}

/// A merge whose sort keys only a shard can compare: every shard's rows
/// (already sorted and limited by the merge's SQL, under statement
/// `names[i]`) are gathered, then one shard sorts, offsets and limits them
/// in a final query (see `shardgate_sql::merge::final_sort`). The rows are held,
/// so the merge's row limit applies.
#[allow(clippy::too_many_arguments)]
async fn sort_on_shard<W: AsyncWrite + Unpin>(
    conns: &mut Conns,
    shards: &[ShardId],
    names: &[String],
    spec: &Merge<'_>,
    req: &ReadRequest<'_>,
    cols: &[Column],
    collate: &[Option<String>],
    out: &mut ClientOut<W>,
) -> Result<Outcome, ExecError> {
    let mut buf = BytesMut::new();
    for (i, s) in shards.iter().enumerate() {
        let c = conn(conns, *s)?;
        buf.clear();
        // Every column in text: the rows become literals.
        bind_unnamed(&mut buf, &names[i], spec.for_shard(req, *s).2, &[]);
        frontend::execute(&mut buf, "", 0);
        frontend::sync(&mut buf);
        c.send(&buf).await.map_err(|e| lost(*s, e))?;
    }
    let oids: Vec<(u32, i32)> = cols.iter().map(|c| (c.type_oid, c.type_modifier)).collect();
    let limits = crate::aggregate::Limits {
        rows: req.max_rows,
        bytes: req.max_bytes,
        what: "ORDER BY text under a linguistic collation across shards (sorted by one shard)",
        advice: "add a filter or a LIMIT",
    };
    let (p, error) =
        crate::aggregate::gather(conns, shards, false, &limits, Some(oids), out).await?;
    if let Some(e) = error {
        return Ok(abort(out, e));
    }
    let visible: Vec<String> = cols[..cols.len() - spec.keys.len()]
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let fin = shardgate_sql::merge::final_sort(
        spec.keys,
        spec.limit,
        spec.offset,
        spec.with_ties,
        &visible,
    );
    let mut all = vec![None; visible.len()];
    all.extend(collate.iter().cloned());
    let how = crate::aggregate::FinalRequest {
        extended: true,
        result_formats: req.result_formats,
        describe: req.describe,
        collate: crate::aggregate::Collate::Given(&all),
    };
    crate::aggregate::finish(conns, shards[0], false, &fin, p, &how, out).await
}

/// The next row of one shard, or `None` when it has finished (read to
/// ReadyForQuery; `st.done` is set). A stream asked for in batches is
/// asked for the next (twice the last, up to its cap) when its portal is
/// suspended, and synced when it completes or fails.
async fn next_row<W: AsyncWrite + Unpin>(
    conns: &mut Conns,
    s: ShardId,
    shape: &Shape<'_>,
    st: &mut Stream,
    error: &mut Option<ErrorFields>,
    out: &mut ClientOut<W>,
) -> Result<Option<Row>, ExecError> {
    if st.done {
        return Ok(None);
    }
    loop {
        let c = conn(conns, s)?;
        let f: Frame = c.recv().await.map_err(|e| lost(s, e))?;
        if !st.synced && matches!(f.tag, b's' | b'C' | b'E') {
            let mut buf = BytesMut::new();
            if f.tag == b's' {
                // Suspended: more rows. (At its cap the portal may still
                // say suspended: one more Execute returns none.)
                let more = st
                    .asked
                    .min(st.cap.saturating_sub(st.asked))
                    .clamp(1, i32::MAX as u64);
                frontend::execute(&mut buf, "", more as i32);
                frontend::flush(&mut buf);
                st.asked += more;
            } else {
                // Complete, or failed (the shard skips to the Sync).
                frontend::sync(&mut buf);
                st.synced = true;
            }
            c.send(&buf).await.map_err(|e| lost(s, e))?;
        }
        match f.tag {
            b'D' => {
                return match split_row(f.body, shape.visible, shape.total, shape.at) {
                    Some(r) => Ok(Some(r)),
                    None => Err(lost(
                        s,
                        BackendError::Protocol(shardgate_wire::WireError::Truncated),
                    )),
                };
            }
            b'E' => {
                c.forget_prepared();
                if error.is_none() {
                    *error = crate::run::shard_error(out, &f.body);
                }
            }
            b'N' => f.encode(&mut out.buf),
            b'Z' => {
                st.done = true;
                return Ok(None);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardgate_sql::KeyColumn;

    fn cols() -> Vec<Column> {
        vec![
            Column::new("id", 20, 8),
            Column::new("f", 701, 8),
            Column::new("t", 25, -1),
            Column::new("id", 23, 4),
            Column::new("sg_sort_1", 1114, 8),
        ]
    }

    #[test]
    fn lean_keys_are_found_where_the_result_has_them_and_orders_exactly() {
        let c = cols();
        let at = |col, oid, text| KeyAt {
            col,
            oid,
            text,
            ranks: None,
        };
        // A name finds its first column; a position its own; a hidden
        // column comes after the visible ones, in binary.
        let got = lean_keys(
            &[
                KeyColumn::Named("id".into()),
                KeyColumn::Output(2),
                KeyColumn::Hidden(0),
            ],
            &c,
            4,
            &[0, 0, 0, 0],
        );
        assert_eq!(
            got,
            Some(vec![at(0, 20, true), at(2, 25, true), at(4, 1114, false)])
        );
        // A float in text does not order exactly; in binary it does.
        assert_eq!(
            lean_keys(&[KeyColumn::Output(1)], &c, 4, &[0, 0, 0, 0]),
            None
        );
        assert_eq!(
            lean_keys(&[KeyColumn::Output(1)], &c, 4, &[1, 1, 1, 1]),
            Some(vec![at(1, 701, false)])
        );
        // A name the result lacks, a hidden column's name, a position past
        // the visible columns: not there.
        for k in [
            KeyColumn::Named("nope".into()),
            KeyColumn::Named("sg_sort_1".into()),
            KeyColumn::Output(4),
            KeyColumn::Hidden(1),
        ] {
            assert_eq!(
                lean_keys(std::slice::from_ref(&k), &c, 4, &[1]),
                None,
                "{k:?}"
            );
        }
    }

    #[test]
    fn rows_split_at_the_visible_columns_with_keys_anywhere() {
        let mut body = BytesMut::new();
        body.put_i16(3);
        for v in [Some(&b"7"[..]), None, Some(&b"abc"[..])] {
            match v {
                Some(v) => {
                    body.put_i32(v.len() as i32);
                    body.put_slice(v);
                }
                None => body.put_i32(-1),
            }
        }
        let body = body.freeze();
        let keys = [
            KeyAt {
                col: 2,
                oid: 25,
                text: false,
                ranks: None,
            },
            KeyAt {
                col: 1,
                oid: 23,
                text: false,
                ranks: None,
            },
            KeyAt {
                col: 0,
                oid: 23,
                text: true,
                ranks: None,
            },
        ];
        let r = split_row(body.clone(), 2, 3, &keys).expect("a row");
        assert_eq!(r.visible_end, 2 + 4 + 1 + 4);
        let key = |i: usize| match r.keys[i] {
            KeyVal::Raw(s, e) => Some(&r.body[s..e]),
            _ => None,
        };
        assert_eq!((key(0), key(1)), (Some(&b"abc"[..]), None));
        assert_eq!(r.keys[1], KeyVal::Null);
        // An integer in text is decoded once, here.
        assert_eq!(r.keys[2], KeyVal::Int(7));
        // No hidden column: the whole row is the client's.
        let r = split_row(body.clone(), 3, 3, &keys).expect("a row");
        assert_eq!(r.visible_end, body.len());
        // A row with another column count is refused.
        assert!(split_row(body, 2, 4, &keys).is_none());
    }
}
