//! COPY in the simple protocol (see `shardgate_sql::copy`). `FROM STDIN`:
//! the client's rows are split by shard key as they stream in
//! (`shardgate_exec::copy::Splitter`), copied to every copy of a reference
//! table, or passed to the one shard of an unsharded table; outside a
//! transaction block a COPY into several shards is one transaction that
//! commits with two-phase commit. `TO STDOUT`: every shard's rows, one
//! shard after the other. Binary COPY is split and gathered by tuple
//! (`shardgate_sql::copy_binary`): each shard's stream gets the client's
//! header and a trailer; gathered streams are joined under one header.

use super::*;
use bytes::BufMut;
use shardgate_core::{KeyType, KeyValue, TableKind};
use shardgate_exec::copy::{Keys, RowError, Splitter};
use shardgate_sql::copy::{CopyFormat, CopyRoute, CopySpec};
use shardgate_sql::copy_binary::{BinaryReader, Piece, TRAILER};

/// Rows bound for one shard go out in CopyData messages of about this size.
const CHUNK: usize = 64 * 1024;

/// A row of a COPY into a sharded table that the router could not place
/// (a newtype: `RowError` becomes the client's error through it).
enum Stop {
    Row(ErrorFields),
}

impl From<RowError> for Stop {
    fn from(e: RowError) -> Stop {
        Stop::Row(err_fields(e.code, e.message))
    }
}

/// How the rows of a COPY into a sharded table are found.
enum Split {
    /// Text or CSV lines.
    Text(Splitter),
    /// Binary tuples.
    Binary(BinaryReader),
}

fn copy_data(buf: &mut BytesMut, data: &[u8]) {
    let at = shardgate_wire::begin(buf, b'd');
    buf.put_slice(data);
    shardgate_wire::finish(buf, at);
}

fn copy_done(buf: &mut BytesMut) {
    let at = shardgate_wire::begin(buf, b'c');
    shardgate_wire::finish(buf, at);
}

fn copy_fail(buf: &mut BytesMut, why: &str) {
    let at = shardgate_wire::begin(buf, b'f');
    shardgate_wire::put_cstr(buf, why);
    shardgate_wire::finish(buf, at);
}

/// The row count of a `COPY n` tag.
fn copied(tag: &[u8]) -> u64 {
    let tag = tag.strip_suffix(&[0]).unwrap_or(tag);
    std::str::from_utf8(tag)
        .ok()
        .and_then(|t| t.strip_prefix("COPY "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

impl Session {
    /// Run a COPY and answer it (the caller sends ReadyForQuery).
    pub(super) async fn run_copy(
        &mut self,
        spec: &CopySpec,
        route: &CopyRoute,
    ) -> Result<Done, ExecError> {
        let shards = route.shards();
        if spec.from_client
            && let Some(e) = self.check_write(&shards, StmtKind::Write)
        {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        if let Some(e) = self.ensure(&shards).await? {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        if spec.from_client {
            self.copy_in(spec, route, &shards).await
        } else if let CopyRoute::Merged(plan) = route {
            self.copy_out_merged(spec, plan).await
        } else {
            self.copy_out(spec, &shards).await
        }
    }

    /// `COPY (query) TO STDOUT` of a query that needs a cross-shard merge:
    /// the query runs as a SELECT, its reply turned into COPY data as it
    /// streams out (see `shardgate_exec::CopyOut`).
    async fn copy_out_merged(&mut self, spec: &CopySpec, plan: &Plan) -> Result<Done, ExecError> {
        let Some(query) = &spec.query else {
            self.fail_statement(&err_fields("XX000", "a COPY without its query"));
            return Ok(Done::Failed);
        };
        self.out.copy_out = Some(shardgate_exec::CopyOut::new(
            spec.options.clone(),
            self.out.buf.len(),
        ));
        let done = Box::pin(self.run_plan_simple(plan, query, "")).await;
        self.out.turn_copy();
        self.out.copy_out = None;
        done
    }

    /// `COPY ... TO STDOUT`: each shard's rows in turn; one CopyOutResponse,
    /// the header (CSV) from the first shard only, the counts added up.
    async fn copy_out(&mut self, spec: &CopySpec, shards: &[ShardId]) -> Result<Done, ExecError> {
        let mut buf = BytesMut::new();
        for (i, s) in shards.iter().enumerate() {
            buf.clear();
            let sql = if i == 0 {
                &spec.sql
            } else {
                &spec.sql_no_header
            };
            frontend::query(&mut buf, sql);
            let c = shardgate_exec::run::conn(&mut self.conns, *s)?;
            c.send(&buf)
                .await
                .map_err(|e| shardgate_exec::run::lost(*s, e))?;
        }
        let (mut started, mut total, mut error) = (false, 0u64, None::<ErrorFields>);
        // Binary streams of several shards are joined: one header, every
        // tuple, one trailer, in CopyData messages as PostgreSQL sends
        // them (one per tuple, the header with the first, the trailer
        // alone: psycopg reads a tuple per message).
        let join = spec.options.format == CopyFormat::Binary && shards.len() > 1;
        let mut header: Option<Vec<u8>> = None;
        let mut header_seen = false;
        for s in shards {
            let mut reader = BinaryReader::new(Vec::new());
            let c = shardgate_exec::run::conn(&mut self.conns, *s)?;
            loop {
                let f = c
                    .recv()
                    .await
                    .map_err(|e| shardgate_exec::run::lost(*s, e))?;
                match f.tag {
                    b'H' if !started && error.is_none() => {
                        started = true;
                        f.encode(&mut self.out.buf);
                    }
                    b'd' if error.is_none() && join => {
                        let buf = &mut self.out.buf;
                        let r = reader.push(&f.body, |p| {
                            match p {
                                Piece::Header(h) if !header_seen => {
                                    header_seen = true;
                                    header = Some(h.to_vec());
                                }
                                Piece::Header(_) => {}
                                Piece::Tuple(t, _) => {
                                    let at = shardgate_wire::begin(buf, b'd');
                                    if let Some(h) = header.take() {
                                        buf.put_slice(&h);
                                    }
                                    buf.put_slice(t);
                                    shardgate_wire::finish(buf, at);
                                }
                            }
                            Ok::<(), RowError>(())
                        });
                        if let Err(e) = r {
                            error = Some(err_fields("XX000", format!("shard {s}: {}", e.message)));
                        }
                        self.out.maybe_flush().await?;
                    }
                    b'd' if error.is_none() => {
                        f.encode(&mut self.out.buf);
                        self.out.maybe_flush().await?;
                    }
                    b'C' => total += copied(&f.body),
                    b'E' if error.is_none() => error = be::parse_error(&f.body).ok(),
                    b'N' => f.encode(&mut self.out.buf),
                    b'Z' => break,
                    _ => {}
                }
            }
        }
        if let Some(e) = error {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        if !started {
            self.fail_statement(&err_fields("XX000", "a shard did not start the COPY"));
            return Ok(Done::Failed);
        }
        if join {
            let mut last = header.take().unwrap_or_default();
            last.extend_from_slice(&TRAILER);
            copy_data(&mut self.out.buf, &last);
        }
        copy_done(&mut self.out.buf);
        be::command_complete(&mut self.out.buf, &format!("COPY {total}"));
        Ok(Done::Ok)
    }

    /// Where a COPY's key fields are, and their types: from the column
    /// list, or the table's columns as its first shard has them.
    async fn copy_key_fields(
        &mut self,
        spec: &CopySpec,
        shard: ShardId,
        key: &[String],
        known: &[Option<KeyType>],
    ) -> Result<Result<(Vec<usize>, Vec<KeyType>), ErrorFields>, ExecError> {
        let binary = spec.options.format == CopyFormat::Binary;
        let table = spec.table.clone().unwrap_or_default();
        let reg = format!("\"{}\"", table.replace('"', "\"\"")).replace('\'', "''");
        let sql = format!(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = to_regclass('{reg}') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        );
        let c = shardgate_exec::run::conn(&mut self.conns, shard)?;
        let rows = match c.simple_rows(&sql).await {
            Ok(r) => r,
            Err(e) => return Ok(Err(err_fields("XX000", e.to_string()))),
        };
        let catalog: Vec<(String, String)> = rows
            .into_iter()
            .filter_map(|r| Some((r.first()?.clone()?, r.get(1)?.clone()?)))
            .collect();
        if catalog.is_empty() {
            return Ok(Err(err_fields(
                "42P01",
                format!("relation \"{table}\" does not exist"),
            )));
        }
        let names: Vec<String> = if spec.columns.is_empty() {
            catalog.iter().map(|(n, _)| n.clone()).collect()
        } else {
            spec.columns.clone()
        };
        let mut positions = Vec::with_capacity(key.len());
        let mut types = Vec::with_capacity(key.len());
        for (i, k) in key.iter().enumerate() {
            let Some(p) = names.iter().position(|n| n == k) else {
                return Ok(Err(err_fields(
                    "0A000",
                    format!(
                        "COPY into the sharded table \"{table}\" must include its shard key column \"{k}\""
                    ),
                )));
            };
            let declared = catalog.iter().find(|(n, _)| n == k);
            let stored = declared.and_then(|(_, t)| KeyType::from_sql_type(t));
            let ty = known.get(i).copied().flatten().or(stored);
            // A binary field is read as the column's type: it must be the
            // key's type (a text field is read as the key's type instead).
            if binary && (stored.is_none() || stored != ty) {
                let column_type = declared.map_or("unknown", |(_, t)| t.as_str());
                return Ok(Err(err_fields(
                    "0A000",
                    format!(
                        "binary COPY into the sharded table \"{table}\": its shard key column \"{k}\" is of type {column_type}, which the router cannot read as a {} key; use FORMAT text or csv",
                        ty.map_or("shard", |t| t.name())
                    ),
                )));
            }
            let Some(ty) = ty else {
                return Ok(Err(err_fields(
                    "0A000",
                    format!("the type of shard key column \"{k}\" is not known"),
                )));
            };
            positions.push(p);
            types.push(ty);
        }
        Ok(Ok((positions, types)))
    }

    /// `COPY ... FROM STDIN`.
    async fn copy_in(
        &mut self,
        spec: &CopySpec,
        route: &CopyRoute,
        shards: &[ShardId],
    ) -> Result<Done, ExecError> {
        use shardgate_exec::run::{conn, lost};
        // Where each row goes.
        let split = match route {
            CopyRoute::ByKey { rule, .. } => {
                let TableKind::Sharded { key_types, .. } = &rule.kind else {
                    unreachable!("split by key: a sharded table")
                };
                match self
                    .copy_key_fields(spec, shards[0], rule.key_columns(), key_types)
                    .await?
                {
                    Ok((positions, types)) => {
                        let split = if spec.options.format == CopyFormat::Binary {
                            Split::Binary(BinaryReader::new(positions))
                        } else {
                            Split::Text(Splitter::new(&spec.options, positions))
                        };
                        Some((split, types, rule.clone()))
                    }
                    Err(e) => {
                        self.fail_statement(&e);
                        return Ok(Done::Failed);
                    }
                }
            }
            _ => None,
        };
        // Outside a transaction block, several shards: one transaction.
        let wrap = self.txn == TxnState::Idle && shards.len() > 1;
        if wrap && let Some(e) = shardgate_exec::internal(&mut self.conns, shards, "BEGIN").await? {
            let _ = shardgate_exec::internal(&mut self.conns, shards, "ROLLBACK").await?;
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        let mut buf = BytesMut::new();
        let sql = if split.is_some() {
            &spec.sql_no_header
        } else {
            &spec.sql
        };
        frontend::query(&mut buf, sql);
        for s in shards {
            conn(&mut self.conns, *s)?
                .send(&buf)
                .await
                .map_err(|e| lost(*s, e))?;
        }
        // Every shard answers CopyInResponse, or an error and ReadyForQuery.
        let mut response = None;
        let mut error: Option<ErrorFields> = None;
        let mut copying = vec![false; shards.len()];
        for (i, s) in shards.iter().enumerate() {
            let c = conn(&mut self.conns, *s)?;
            loop {
                let f = c.recv().await.map_err(|e| lost(*s, e))?;
                match f.tag {
                    b'G' => {
                        copying[i] = true;
                        response.get_or_insert(f);
                        break;
                    }
                    b'E' if error.is_none() => error = be::parse_error(&f.body).ok(),
                    b'N' => f.encode(&mut self.out.buf),
                    b'Z' => break,
                    _ => {}
                }
            }
        }
        if let Some(e) = error {
            buf.clear();
            copy_fail(&mut buf, "another shard refused the COPY");
            self.end_copy_in(shards, &copying, &buf).await?;
            return self.copy_in_result(shards, wrap, Some(e), 0).await;
        }
        let Some(response) = response else {
            return self
                .copy_in_result(
                    shards,
                    wrap,
                    Some(err_fields("XX000", "no shard started the COPY")),
                    0,
                )
                .await;
        };
        response.encode(&mut self.out.buf);
        self.out.flush().await?;
        // The client's data.
        let mut split = split;
        let mut per: Vec<BytesMut> = vec![BytesMut::new(); shards.len()];
        let mut stop: Option<ErrorFields> = None;
        loop {
            let frame = match Frame::take(&mut self.rbuf) {
                Ok(Some(f)) => f,
                Ok(None) => {
                    if !self.read_more().await.map_err(ExecError::Client)? {
                        return Err(ExecError::Client(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the client left during COPY",
                        )));
                    }
                    continue;
                }
                Err(e) => {
                    stop.get_or_insert_with(|| {
                        err_fields("08P01", format!("invalid message: {e}"))
                    });
                    break;
                }
            };
            match frame.tag {
                b'd' if stop.is_some() => {}
                b'd' => match &mut split {
                    None => {
                        // Every row to each shard (a reference table), or
                        // to the one shard.
                        buf.clear();
                        copy_data(&mut buf, &frame.body);
                        for s in shards {
                            conn(&mut self.conns, *s)?
                                .send(&buf)
                                .await
                                .map_err(|e| lost(*s, e))?;
                        }
                    }
                    Some((split, types, rule)) => {
                        let r = match split {
                            Split::Text(splitter) => {
                                splitter.push(&frame.body, |row: &[u8], keys: Keys| {
                                    let i = place(rule, text_keys(types, keys)?, shards)?;
                                    if per[i].is_empty() {
                                        per[i].reserve(CHUNK + row.len());
                                    }
                                    per[i].put_slice(row);
                                    Ok::<(), Stop>(())
                                })
                            }
                            Split::Binary(reader) => reader.push(&frame.body, |p| {
                                match p {
                                    // Each shard's stream starts with the
                                    // client's header.
                                    Piece::Header(h) => per.iter_mut().for_each(|b| b.put_slice(h)),
                                    Piece::Tuple(t, keys) => {
                                        let i = place(rule, binary_keys(types, &keys)?, shards)?;
                                        per[i].put_slice(t);
                                    }
                                }
                                Ok::<(), Stop>(())
                            }),
                        };
                        if let Err(Stop::Row(e)) = r {
                            stop = Some(e);
                            continue;
                        }
                        for (i, s) in shards.iter().enumerate() {
                            if per[i].len() >= CHUNK {
                                buf.clear();
                                copy_data(&mut buf, &per[i]);
                                per[i].clear();
                                conn(&mut self.conns, *s)?
                                    .send(&buf)
                                    .await
                                    .map_err(|e| lost(*s, e))?;
                            }
                        }
                    }
                },
                b'c' => break,
                b'f' => {
                    let why = String::from_utf8_lossy(
                        frame.body.strip_suffix(&[0]).unwrap_or(&frame.body),
                    )
                    .into_owned();
                    stop.get_or_insert_with(|| {
                        err_fields("57014", format!("COPY from stdin failed: {why}"))
                    });
                    break;
                }
                // Flush and Sync are ignored during COPY, as PostgreSQL does.
                b'H' | b'S' => {}
                // Any other message (a Query, a Parse): the client lost
                // track of the protocol. PostgreSQL says so and ends the
                // connection (the shards' COPY ends with it, unfinished).
                t => {
                    let why = format!("unexpected message type 0x{t:02X} during COPY from stdin");
                    self.send_error(&err_fields("08P01", why.clone()));
                    be::error_like(
                        &mut self.out.buf,
                        b'E',
                        &ErrorFields::fatal(
                            "08P01",
                            "terminating connection because protocol synchronization was lost",
                        ),
                    );
                    self.out.flush().await?;
                    return Err(ExecError::Client(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        why,
                    )));
                }
            }
        }
        // The last row, what is still buffered, and the end.
        if stop.is_none()
            && let Some((split, types, rule)) = &mut split
        {
            let r = match split {
                Split::Text(splitter) => splitter.finish(|row: &[u8], keys: Keys| {
                    let i = place(rule, text_keys(types, keys)?, shards)?;
                    per[i].put_slice(row);
                    Ok::<(), Stop>(())
                }),
                Split::Binary(reader) => reader.finish().map_err(Stop::from).map(|()| {
                    per.iter_mut().for_each(|b| b.put_slice(&TRAILER));
                }),
            };
            if let Err(Stop::Row(e)) = r {
                stop = Some(e);
            }
        }
        buf.clear();
        if stop.is_none() {
            copy_done(&mut buf);
        } else {
            copy_fail(&mut buf, "the router stopped the COPY");
        }
        for (i, s) in shards.iter().enumerate() {
            let mut msg = BytesMut::new();
            if stop.is_none() && !per[i].is_empty() {
                copy_data(&mut msg, &per[i]);
            }
            msg.put_slice(&buf);
            conn(&mut self.conns, *s)?
                .send(&msg)
                .await
                .map_err(|e| lost(*s, e))?;
        }
        // Each shard's answer.
        let copies = matches!(route, CopyRoute::Copies(_));
        let (mut total, mut first_error) = (0u64, None::<ErrorFields>);
        for (i, s) in shards.iter().enumerate() {
            let c = conn(&mut self.conns, *s)?;
            loop {
                let f = c.recv().await.map_err(|e| lost(*s, e))?;
                match f.tag {
                    b'C' if !copies || i == 0 => total += copied(&f.body),
                    b'E' if first_error.is_none() => first_error = be::parse_error(&f.body).ok(),
                    b'N' => f.encode(&mut self.out.buf),
                    b'Z' => break,
                    _ => {}
                }
            }
        }
        self.copy_in_result(shards, wrap, stop.or(first_error), total)
            .await
    }

    /// Send what ends the COPY to the shards still copying, and read every
    /// shard to ReadyForQuery.
    async fn end_copy_in(
        &mut self,
        shards: &[ShardId],
        copying: &[bool],
        msg: &[u8],
    ) -> Result<(), ExecError> {
        use shardgate_exec::run::{conn, lost};
        for (i, s) in shards.iter().enumerate() {
            if copying[i] {
                let c = conn(&mut self.conns, *s)?;
                c.send(msg).await.map_err(|e| lost(*s, e))?;
                while c.recv().await.map_err(|e| lost(*s, e))?.tag != b'Z' {}
            }
        }
        Ok(())
    }

    /// Finish a COPY FROM: commit or roll back the transaction made for it,
    /// and answer.
    async fn copy_in_result(
        &mut self,
        shards: &[ShardId],
        wrap: bool,
        error: Option<ErrorFields>,
        total: u64,
    ) -> Result<Done, ExecError> {
        if wrap {
            if error.is_some() {
                let _ = shardgate_exec::internal(&mut self.conns, shards, "ROLLBACK").await?;
            } else if let Some(e) = self.commit_two_phase(shards).await? {
                self.fail_statement(&e);
                return Ok(Done::Failed);
            }
        }
        if let Some(e) = error {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        be::command_complete(&mut self.out.buf, &format!("COPY {total}"));
        Ok(Done::Ok)
    }
}

fn null_key() -> Stop {
    Stop::Row(err_fields(
        "23502",
        "a row with a NULL shard key cannot be placed on a shard",
    ))
}

/// The key values of a text or CSV row's key fields.
fn text_keys(types: &[KeyType], keys: Keys) -> Result<Vec<KeyValue>, Stop> {
    let mut values = Vec::with_capacity(keys.len());
    for (k, ty) in keys.into_iter().zip(types) {
        let k = k.ok_or_else(null_key)?;
        match KeyValue::parse(*ty, &k) {
            Ok(v) => values.push(v),
            Err(e) => {
                return Err(Stop::Row(err_fields(
                    "22P02",
                    format!("invalid shard key value \"{k}\": {e}"),
                )));
            }
        }
    }
    Ok(values)
}

/// The key values of a binary tuple's key fields (each of its column's
/// type, which is the key's: see `copy_key_fields`).
fn binary_keys(types: &[KeyType], keys: &[Option<&[u8]>]) -> Result<Vec<KeyValue>, Stop> {
    keys.iter()
        .zip(types)
        .map(|(k, ty)| {
            let k = k.ok_or_else(null_key)?;
            KeyValue::from_binary(*ty, 0, k).map_err(|e| {
                Stop::Row(err_fields(
                    "22P03",
                    format!("invalid binary shard key value: {e}"),
                ))
            })
        })
        .collect()
}

/// The index (in `shards`) of the shard a row with key `values` belongs to.
fn place(
    rule: &shardgate_core::TableRule,
    values: Vec<KeyValue>,
    shards: &[ShardId],
) -> Result<usize, Stop> {
    let s = rule
        .place(&values)
        .map_err(|e| Stop::Row(err_fields("22023", e.to_string())))?;
    shards
        .iter()
        .position(|x| *x == s)
        .ok_or_else(|| Stop::Row(err_fields("XX000", format!("shard {s} is not in the COPY"))))
}
