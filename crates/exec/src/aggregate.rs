//! Running a two-step aggregation (see `shardgate_sql::aggregate`): the
//! partial query on every shard, then the final query, over the partial
//! rows, on one shard, whose reply goes to the client.
//!
//! The partial rows are held in memory (as the text of the final query),
//! so their number is limited: past the limit the statement fails with
//! SQLSTATE 54000 instead of growing the router without bound.

use crate::error::ExecError;
use crate::merge::Outcome;
use crate::out::ClientOut;
use crate::run::{Conns, conn, lost};
use bytes::BufMut;
use shardgate_backend::BackendError;
use shardgate_core::ShardId;
use shardgate_sql::AggSpec;
use shardgate_wire::backend::{self as be, ErrorFields};
use shardgate_wire::frontend;
use tokio::io::AsyncWrite;

/// What the client asked for.
pub(crate) struct AggRequest<'a> {
    /// Extended protocol (Parse/Bind/Execute) rather than a simple Query.
    pub extended: bool,
    /// The client's result formats (extended protocol).
    pub result_formats: &'a [i16],
    /// Send the RowDescription (simple protocol, or a Describe Portal).
    pub describe: bool,
    /// The most partial rows held before the statement fails.
    pub max_rows: usize,
    /// The most bytes of partial rows (as SQL literals) held before the
    /// statement fails.
    pub max_bytes: usize,
    /// The partial query per shard (PostgreSQL shards), when the key list
    /// was split.
    pub per_shard: Option<&'a std::collections::BTreeMap<ShardId, String>>,
}

/// Is the text of a value of type `oid` read back exactly whatever the
/// session's output settings (the same settings read it)? Not floats
/// (extra_float_digits below 1 rounds them) nor timestamptz (a non-ISO
/// DateStyle prints zone abbreviations, some ambiguous), nor types this
/// does not know (they may hold either).
fn settings_free(oid: u32) -> bool {
    shardgate_sql::rewrite::type_name(oid).is_some()
        && !matches!(oid, 700 | 701 | 1021 | 1022 | 1184 | 1185)
}

/// Does the connection print every value exactly (DateStyle ISO,
/// extra_float_digits at least 1)?
async fn exact_output(c: &mut shardgate_backend::PooledConn) -> Result<bool, BackendError> {
    let r = c
        .simple_rows(
            "SELECT current_setting('DateStyle') LIKE 'ISO%' AND current_setting('extra_float_digits')::int >= 1",
        )
        .await?;
    Ok(r.first()
        .and_then(|r| r.first().cloned().flatten())
        .as_deref()
        == Some("t"))
}

/// A type name with its modifier (`varchar(40)`, `numeric(12,2)`), so the
/// final query's columns describe themselves as the shards' do.
fn with_typmod(name: &str, oid: u32, typmod: i32) -> String {
    match oid {
        1042 | 1043 if typmod >= 4 => format!("{name}({})", typmod - 4),
        1700 if typmod >= 4 => {
            let t = typmod - 4;
            let scale = ((t & 0x7ff) ^ 1024) - 1024;
            format!("numeric({}, {scale})", (t >> 16) & 0xffff)
        }
        1083 | 1114 | 1184 | 1266 | 1560 | 1562 if typmod >= 0 => {
            let base = match oid {
                1083 => "time",
                1114 => "timestamp",
                1184 => "timestamptz",
                1266 => "timetz",
                1560 => "bit",
                _ => "varbit",
            };
            format!("{base}({typmod})")
        }
        _ => name.to_string(),
    }
}

/// Append one value as a literal of the final query.
fn literal(out: &mut String, v: Option<&[u8]>, embedded: bool) {
    let Some(v) = v else {
        out.push_str("NULL");
        return;
    };
    let s = String::from_utf8_lossy(v);
    if embedded {
        // SQLite's quote() made it a literal already.
        out.push_str(&s);
        return;
    }
    // E'' strings read the same whatever standard_conforming_strings is.
    out.push_str("E'");
    for ch in s.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// Run an aggregation plan on `shards` (the final query on the first) and
/// send its reply to `out`. Every shard ends at ReadyForQuery.
///
/// # Errors
/// A shard connection failed or the client is gone.
///
/// # Cancel safety
/// Not cancel safe (see [`crate::run`]).
pub(crate) async fn run_aggregate<W: AsyncWrite + Unpin>(
    conns: &mut Conns,
    shards: &[ShardId],
    spec: &AggSpec,
    req: &AggRequest<'_>,
    out: &mut ClientOut<W>,
) -> Result<Outcome, ExecError> {
    out.deadlock_victim
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let final_shard = shards[0];
    let embedded = conn(conns, final_shard)?.is_embedded();
    // Step 1: the partial query everywhere, in parallel (on PostgreSQL
    // shards with only each shard's keys, when the key list was split).
    let mut buf = bytes::BytesMut::new();
    for s in shards {
        let sql = match req.per_shard.and_then(|m| m.get(s)) {
            Some(sql) if !embedded => sql,
            _ if embedded => &spec.partial_lite,
            _ => &spec.partial_sql,
        };
        buf.clear();
        frontend::query(&mut buf, sql);
        let c = conn(conns, *s)?;
        c.send(&buf).await.map_err(|e| lost(*s, e))?;
    }
    let limits = Limits {
        rows: req.max_rows,
        bytes: req.max_bytes,
        what: "a cross-shard aggregation",
        advice: "add a filter, group by the shard key",
    };
    let (p, mut error) = gather(conns, shards, embedded, &limits, None, out).await?;
    if error.is_none() {
        let oids = p.oids.as_deref().unwrap_or_default();
        if oids.len() != spec.columns {
            error = Some(ErrorFields::new(
                "XX000",
                "a partial aggregate query returned unexpected columns",
            ));
        } else if spec
            .no_float4
            .iter()
            .any(|i| oids.get(*i).map(|o| o.0) == Some(700))
        {
            error = Some(ErrorFields::new(
                "0A000",
                "avg/stddev/variance of a real (float4) value across shards is not supported yet (its partial sums would lose precision); cast it to double precision",
            ));
        }
    }
    if let Some(e) = error {
        return Ok(crate::merge_sort::abort(out, shadowed(spec, e)));
    }
    // Step 2: the final query on one shard, over the typed partial rows.
    let partial = match req.per_shard.and_then(|m| m.get(&final_shard)) {
        Some(sql) => sql,
        None => &spec.partial_sql,
    };
    let how = FinalRequest {
        extended: req.extended,
        result_formats: req.result_formats,
        describe: req.describe,
        collate: Collate::Probe(partial),
    };
    finish(conns, final_shard, embedded, spec, p, &how, out).await
}

/// A shard's error for the partial query, or, when it is the guard of
/// `spec.alias_groups` finding a FROM column of such a name (an ambiguous
/// column reference), the refusal that says why.
fn shadowed(spec: &AggSpec, e: ErrorFields) -> ErrorFields {
    let ambiguous = e.code == "42702" || e.message.contains("ambiguous");
    let name = spec.alias_groups.iter().find(|n| {
        e.message.contains(&format!("\"{n}\"")) || e.message.ends_with(&format!(": {n}"))
    });
    match name {
        Some(n) if ambiguous => ErrorFields {
            hint: Some(format!(
                "write the column (or the expression) in GROUP BY instead of \"{n}\", or rename the output column"
            )),
            ..ErrorFields::new(
                "0A000",
                format!(
                    "GROUP BY \"{n}\" names both an output column and a column of the FROM list, where PostgreSQL groups by the column; shardgate does not support grouping by such a name across shards"
                ),
            )
        },
        _ => e,
    }
}

/// How the client asked for the final query's reply.
pub(crate) struct FinalRequest<'a> {
    /// Extended protocol (Parse/Bind/Execute) rather than a simple Query.
    pub(crate) extended: bool,
    /// The client's result formats (extended protocol).
    pub(crate) result_formats: &'a [i16],
    /// Send the RowDescription.
    pub(crate) describe: bool,
    /// The collations of the rows' columns.
    pub(crate) collate: Collate<'a>,
}

/// Where the collations of the final query's columns come from.
pub(crate) enum Collate<'a> {
    /// Known: one per column (`None`: the database's default), as a
    /// quoted, qualified name.
    Given(&'a [Option<String>]),
    /// Asked of the final shard, from this partial query's columns.
    Probe(&'a str),
}

/// Run `spec`'s final query over the rows `p` on `final_shard` and send
/// its reply to `out`.
pub(crate) async fn finish<W: AsyncWrite + Unpin>(
    conns: &mut Conns,
    final_shard: ShardId,
    embedded: bool,
    spec: &AggSpec,
    p: Partial,
    req: &FinalRequest<'_>,
    out: &mut ClientOut<W>,
) -> Result<Outcome, ExecError> {
    let Partial {
        oids,
        first,
        values,
    } = p;
    let oids = oids.unwrap_or_default();
    let mut buf = bytes::BytesMut::new();
    let c = conn(conns, final_shard)?;
    // The rows' text is read back as literals: exact only where the
    // session's output settings print it exactly.
    if !embedded
        && oids.iter().any(|(o, _)| !settings_free(*o))
        && !exact_output(c).await.map_err(|e| lost(final_shard, e))?
    {
        return Ok(crate::merge_sort::abort(
            out,
            ErrorFields::new(
                "0A000",
                "combining float or timestamptz values across shards needs DateStyle ISO and extra_float_digits >= 1 in the session (the values travel as text, which other settings round or print with ambiguous zone abbreviations)",
            ),
        ));
    }
    // Each column's type, without and with its modifier, and whether it
    // has a collation.
    let mut names: Vec<(String, String)> = Vec::with_capacity(oids.len());
    let mut collatable: Vec<bool> = Vec::with_capacity(oids.len());
    for (o, m) in &oids {
        let n = match shardgate_sql::rewrite::type_name(*o) {
            Some(n) => {
                collatable.push(matches!(
                    o,
                    19 | 25 | 1042 | 1043 | 1003 | 1009 | 1014 | 1015
                ));
                (n.to_string(), with_typmod(n, *o, *m))
            }
            None if embedded => {
                collatable.push(false);
                ("text".to_string(), "text".to_string())
            }
            None => {
                let r = c
                    .simple_rows(&format!(
                        "SELECT format_type({o}, NULL), format_type({o}, {m}), (SELECT typcollation <> 0 FROM pg_type WHERE oid = {o})"
                    ))
                    .await
                    .map_err(|e| lost(final_shard, e))?;
                let get = |i: usize| {
                    r.first()
                        .and_then(|r| r.get(i).cloned().flatten())
                        .unwrap_or_else(|| "text".to_string())
                };
                collatable.push(get(2) == "t");
                (get(0), get(1))
            }
        };
        names.push(n);
    }
    // The final query orders and compares text under each column's own
    // collation (its rows' columns would have the database's default).
    let collate: Vec<Option<String>> = match req.collate {
        _ if embedded => Vec::new(),
        Collate::Given(v) => v.to_vec(),
        Collate::Probe(_) if !collatable.contains(&true) => Vec::new(),
        Collate::Probe(partial) => {
            let which: Vec<usize> = (0..oids.len()).filter(|i| collatable[*i]).collect();
            let probe = crate::merge_sort::collation_probe(partial, oids.len(), &which);
            let rows = match c.simple_rows(&probe).await {
                Ok(r) => r,
                Err(BackendError::Server(e)) => {
                    return Ok(crate::merge_sort::abort(out, *e));
                }
                Err(e) => return Err(lost(final_shard, e)),
            };
            let mut found = rows.into_iter().map(|r| r.into_iter().next().flatten());
            (0..oids.len())
                .map(|i| {
                    if collatable[i] {
                        found.next().flatten()
                    } else {
                        None
                    }
                })
                .collect()
        }
    };
    // Also "default": a cast to `name` would take name's own C collation.
    let collate_of = |i: usize| match collate.get(i) {
        Some(Some(c)) => format!(" COLLATE {c}"),
        _ => String::new(),
    };
    let mut rows_sql = String::new();
    if embedded {
        // SQLite: no declared types (they would give the columns an
        // affinity that converts values in comparisons); the literals
        // carry them.
        rows_sql.push_str("SELECT ");
        rows_sql.push_str(&vec!["NULL"; names.len()].join(", "));
        rows_sql.push_str(" WHERE false");
        if !first.is_empty() {
            rows_sql.push_str(" UNION ALL VALUES (");
            rows_sql.push_str(&first.join(", "));
            rows_sql.push(')');
            rows_sql.push_str(&values);
        }
    } else if first.is_empty() {
        let casts: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, (_, full))| format!("CAST(NULL AS {full}){}", collate_of(i)))
            .collect();
        rows_sql = format!("SELECT {} WHERE false", casts.join(", "));
    } else {
        // The first row's literals are typed (the VALUES list takes their
        // types); the outer casts add the modifiers (varchar(40)), which a
        // VALUES list would drop.
        let outer: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, (_, full))| format!("CAST(column{} AS {full}){}", i + 1, collate_of(i)))
            .collect();
        rows_sql = format!("SELECT {} FROM (VALUES (", outer.join(", "));
        for (i, l) in first.iter().enumerate() {
            if i > 0 {
                rows_sql.push_str(", ");
            }
            rows_sql.push_str(&format!("CAST({l} AS {})", names[i].0));
        }
        rows_sql.push(')');
        rows_sql.push_str(&values);
        rows_sql.push_str(") AS sg_values");
    }
    drop(values);
    let sql = spec.final_sql(embedded, &rows_sql, |i, float| {
        let oid = oids.get(i).map(|o| o.0).unwrap_or(25);
        if float {
            if matches!(oid, 700 | 701) {
                "double precision".to_string()
            } else {
                "numeric".to_string()
            }
        } else {
            names
                .get(i)
                .map(|n| n.0.clone())
                .unwrap_or_else(|| "text".to_string())
        }
    });
    drop(rows_sql);
    buf.clear();
    if req.extended {
        frontend::parse(&mut buf, "", &sql, &[]);
        let at = shardgate_wire::begin(&mut buf, b'B');
        shardgate_wire::put_cstr(&mut buf, "");
        shardgate_wire::put_cstr(&mut buf, "");
        buf.put_i16(0);
        buf.put_i16(0);
        buf.put_i16(req.result_formats.len() as i16);
        for f in req.result_formats {
            buf.put_i16(*f);
        }
        shardgate_wire::finish(&mut buf, at);
        if req.describe {
            frontend::describe(&mut buf, b'P', "");
        }
        frontend::execute(&mut buf, "", 0);
        frontend::sync(&mut buf);
    } else {
        frontend::query(&mut buf, &sql);
    }
    drop(sql);
    if embedded {
        // SQLite names and types an expression's column by its text: have
        // the final query answer with the columns the client's statement
        // has on one embedded shard.
        let mut d = bytes::BytesMut::new();
        frontend::parse(&mut d, "", &spec.original, &[]);
        frontend::describe(&mut d, b'S', "");
        frontend::sync(&mut d);
        c.send(&d).await.map_err(|e| lost(final_shard, e))?;
        let mut cols = None;
        loop {
            let f = c.recv().await.map_err(|e| lost(final_shard, e))?;
            match f.tag {
                b'T' => cols = be::parse_row_description(&f.body).ok(),
                b'Z' => break,
                _ => {}
            }
        }
        if let shardgate_backend::ShardConn::Lite(l) = &mut **c {
            l.state.result_columns = cols;
        }
    }
    c.send(&buf).await.map_err(|e| lost(final_shard, e))?;
    let mut outcome = Outcome::default();
    loop {
        let f = c.recv().await.map_err(|e| lost(final_shard, e))?;
        match f.tag {
            b'T' if req.describe => f.encode(&mut out.buf),
            b'D' => {
                outcome.rows += 1;
                f.encode(&mut out.buf);
                out.maybe_flush().await?;
            }
            b'C' | b'N' | b'I' => f.encode(&mut out.buf),
            b'E' => match crate::run::victim_error(out, &f.body) {
                Some(e) => {
                    be::error_like(&mut out.buf, b'E', &e);
                    outcome.error.get_or_insert(e);
                }
                None => {
                    if outcome.error.is_none() {
                        outcome.error = be::parse_error(&f.body).ok();
                    }
                    f.encode(&mut out.buf);
                }
            },
            b'Z' => break,
            _ => {}
        }
    }
    // Unused if the final query failed before producing columns: it must
    // not rename the connection's next statement.
    if let shardgate_backend::ShardConn::Lite(l) = &mut **c {
        l.state.result_columns = None;
    }
    Ok(outcome)
}

/// How many partial rows may be held, and what to say past that.
pub(crate) struct Limits {
    /// The most rows.
    pub(crate) rows: usize,
    /// The most bytes of literals.
    pub(crate) bytes: usize,
    /// What holds them, for the error.
    pub(crate) what: &'static str,
    /// How to need fewer, for the error's hint.
    pub(crate) advice: &'static str,
}

/// Partial rows held as the literals of a final query.
pub(crate) struct Partial {
    /// Each column's type OID and modifier, once known.
    pub(crate) oids: Option<Vec<(u32, i32)>>,
    /// The first row's literals (typed apart, see [`finish`]).
    pub(crate) first: Vec<String>,
    /// The other rows, as `, (lit, ...)` each.
    pub(crate) values: String,
}

/// Read every shard's reply to its ReadyForQuery, keeping the rows as
/// literals, at most `limits` of them; `oids` are the
/// columns' types when no RowDescription comes. Returns the rows and the
/// first error (a shard's, or the limit's).
pub(crate) async fn gather<W: AsyncWrite + Unpin>(
    conns: &mut Conns,
    shards: &[ShardId],
    embedded: bool,
    limits: &Limits,
    mut oids: Option<Vec<(u32, i32)>>,
    out: &mut ClientOut<W>,
) -> Result<(Partial, Option<ErrorFields>), ExecError> {
    let mut first: Vec<String> = Vec::new();
    let mut values = String::new();
    let mut rows = 0usize;
    let mut error: Option<ErrorFields> = None;
    for s in shards {
        let c = conn(conns, *s)?;
        loop {
            let f = c.recv().await.map_err(|e| lost(*s, e))?;
            match f.tag {
                b'T' if oids.is_none() => {
                    oids = Some(
                        be::parse_row_description(&f.body)
                            .map_err(|e| lost(*s, BackendError::Protocol(e)))?
                            .iter()
                            .map(|c| (c.type_oid, c.type_modifier))
                            .collect(),
                    );
                }
                b'D' if error.is_none() => {
                    rows += 1;
                    // Rows and bytes both count: a few huge values (raw
                    // rows of string_agg) must not exhaust memory either.
                    if rows > limits.rows || values.len() > limits.bytes {
                        let (what, limit) = if rows > limits.rows {
                            (
                                format!("more than {} partial rows", limits.rows),
                                "max_merge_rows",
                            )
                        } else {
                            (
                                format!("more than {} MiB of partial rows", limits.bytes >> 20),
                                "max_merge_bytes",
                            )
                        };
                        error = Some(ErrorFields {
                            hint: Some(format!(
                                "{}, or raise {limit} in the configuration",
                                limits.advice
                            )),
                            ..ErrorFields::new(
                                "54000",
                                format!("{} needs {what} ({limit})", limits.what),
                            )
                        });
                        values = String::new();
                        continue;
                    }
                    let vals = be::parse_data_row(&f.body)
                        .map_err(|e| lost(*s, BackendError::Protocol(e)))?;
                    if rows == 1 {
                        // Kept apart: its literals get explicit types, which
                        // the whole VALUES list then takes.
                        for v in &vals {
                            let mut l = String::new();
                            literal(&mut l, *v, embedded);
                            first.push(l);
                        }
                        continue;
                    }
                    values.push_str(", (");
                    for (i, v) in vals.iter().enumerate() {
                        if i > 0 {
                            values.push_str(", ");
                        }
                        literal(&mut values, *v, embedded);
                    }
                    values.push(')');
                }
                b'E' => {
                    // A named statement (a merge's) in an unknown state
                    // must not be reused.
                    c.forget_prepared();
                    if error.is_none() {
                        error = crate::run::shard_error(out, &f.body);
                    }
                }
                b'N' => f.encode(&mut out.buf),
                b'Z' => break,
                _ => {}
            }
        }
    }
    Ok((
        Partial {
            oids,
            first,
            values,
        },
        error,
    ))
}
