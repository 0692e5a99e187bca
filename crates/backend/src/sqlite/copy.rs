//! COPY on the embedded shard: `COPY t [(cols)] FROM STDIN` reads text or
//! CSV rows (the same reader the router splits rows with) into INSERTs of
//! one transaction; `COPY t | (query) TO STDOUT` writes rows in PostgreSQL's
//! text or CSV format. Binary COPY is refused.

use super::{LiteConn, SqlError, err, types};
use rusqlite::types::{Value, ValueRef};
use shardgate_sql::copy::{CopyFormat, CopyOptions};
use shardgate_sql::copy_rows::{Keys, RowError, Splitter};
use shardgate_wire::backend as be;

/// A `COPY ... FROM STDIN` in progress.
pub(super) struct CopyIn {
    splitter: Splitter,
    insert: String,
    types: Vec<u32>,
    count: u64,
    /// The COPY began the transaction it runs in.
    own_txn: bool,
    error: Option<SqlError>,
}

impl From<RowError> for SqlError {
    fn from(e: RowError) -> SqlError {
        err(e.code, e.message)
    }
}

impl LiteConn {
    /// The declared columns of `table`, in order: (name, type).
    fn table_columns(&self, table: &str) -> Result<Vec<(String, String)>, SqlError> {
        let mut st = self
            .db
            .prepare("SELECT name, type FROM pragma_table_info(?1)")?;
        let cols: Vec<(String, String)> = st
            .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if cols.is_empty() {
            return Err(err("42P01", format!("relation \"{table}\" does not exist")));
        }
        Ok(cols)
    }

    /// Start a COPY: `Ok(true)` if the client now sends rows.
    pub(super) fn copy_start(&mut self, sql: &str) -> Result<bool, SqlError> {
        let spec = shardgate_sql::copy::parse(sql).map_err(|e| err(e.sqlstate(), e.to_string()))?;
        if spec.options.format == CopyFormat::Binary {
            return Err(err(
                "0A000",
                "binary COPY is not supported on embedded (SQLite) shards; use text or CSV",
            ));
        }
        if self.failed {
            return Err(err(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        if spec.from_client {
            let table = spec.table.clone().unwrap_or_default();
            let all = self.table_columns(&table)?;
            let names: Vec<String> = if spec.columns.is_empty() {
                all.iter().map(|(n, _)| n.clone()).collect()
            } else {
                spec.columns.clone()
            };
            let mut types = Vec::with_capacity(names.len());
            for n in &names {
                let Some((_, decl)) = all.iter().find(|(c, _)| c.eq_ignore_ascii_case(n)) else {
                    return Err(err(
                        "42703",
                        format!("column \"{n}\" of relation \"{table}\" does not exist"),
                    ));
                };
                types.push(types::oid_for_decl(decl).0);
            }
            let quoted: Vec<String> = names
                .iter()
                .map(|n| format!("\"{}\"", n.replace('"', "\"\"")))
                .collect();
            let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
            let insert = format!(
                "INSERT INTO \"{}\" ({}) VALUES ({})",
                table.replace('"', "\"\""),
                quoted.join(", "),
                marks.join(", ")
            );
            let own_txn = self.db.is_autocommit();
            if own_txn {
                self.db.execute_batch("BEGIN")?;
            }
            self.copy = Some(Box::new(CopyIn {
                splitter: Splitter::all_fields(&spec.options),
                insert,
                types,
                count: 0,
                own_txn,
                error: None,
            }));
            let n = names.len();
            let at = shardgate_wire::begin(&mut self.out, b'G');
            self.out.extend_from_slice(&[0]);
            self.out.extend_from_slice(&(n as i16).to_be_bytes());
            for _ in 0..n {
                self.out.extend_from_slice(&0i16.to_be_bytes());
            }
            shardgate_wire::finish(&mut self.out, at);
            return Ok(true);
        }
        self.copy_out(sql, &spec)?;
        Ok(false)
    }

    /// CopyData from the client.
    pub(super) fn copy_data(&mut self, data: &[u8]) {
        let Some(mut c) = self.copy.take() else {
            return;
        };
        if c.error.is_none() {
            let r = {
                let db = &self.db;
                let (insert, types, count) = (&c.insert, &c.types, &mut c.count);
                c.splitter.push(data, |_, fields| {
                    insert_row(db, insert, types, fields, count)
                })
            };
            if let Err(e) = r {
                c.error = Some(e);
            }
        }
        self.copy = Some(c);
    }

    /// CopyDone (`ok`) or CopyFail from the client: the COPY's answer.
    pub(super) fn copy_end(&mut self, ok: bool, why: &str) {
        let Some(mut c) = self.copy.take() else {
            return;
        };
        if ok && c.error.is_none() {
            let r = {
                let db = &self.db;
                let (insert, types, count) = (&c.insert, &c.types, &mut c.count);
                c.splitter
                    .finish(|_, fields| insert_row(db, insert, types, fields, count))
            };
            if let Err(e) = r {
                c.error = Some(e);
            }
        }
        let error = match (ok, c.error) {
            (_, Some(e)) => Some(e),
            (false, None) => Some(err("57014", format!("COPY from stdin failed: {why}"))),
            (true, None) => None,
        };
        match error {
            None => {
                if c.own_txn
                    && !self.db.is_autocommit()
                    && let Err(e) = self.db.execute_batch("COMMIT")
                {
                    self.fail(e.into());
                    let st = self.status();
                    be::ready_for_query(&mut self.out, st);
                    return;
                }
                be::command_complete(&mut self.out, &format!("COPY {}", c.count));
            }
            Some(e) => {
                if c.own_txn && !self.db.is_autocommit() {
                    let _ = self.db.execute_batch("ROLLBACK");
                }
                self.fail(e);
            }
        }
        let st = self.status();
        be::ready_for_query(&mut self.out, st);
    }

    /// `COPY ... TO STDOUT`: every row in the COPY's format.
    fn copy_out(
        &mut self,
        sql: &str,
        spec: &shardgate_sql::copy::CopySpec,
    ) -> Result<(), SqlError> {
        let query = match &spec.table {
            Some(t) => {
                let cols = if spec.columns.is_empty() {
                    "*".to_string()
                } else {
                    spec.columns
                        .iter()
                        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!("SELECT {cols} FROM \"{}\"", t.replace('"', "\"\""))
            }
            None => inner_query(sql)?,
        };
        let t = self.translation(&query)?;
        let Some(last) = t.sql.last() else {
            return Err(err("0A000", "COPY of this query is not supported"));
        };
        let mut st = self.db.prepare(last)?;
        let cols = Self::columns_of(&st, &[], &t);
        let o = &spec.options;
        let at = shardgate_wire::begin(&mut self.out, b'H');
        self.out.extend_from_slice(&[0]);
        self.out
            .extend_from_slice(&(cols.len() as i16).to_be_bytes());
        for _ in &cols {
            self.out.extend_from_slice(&0i16.to_be_bytes());
        }
        shardgate_wire::finish(&mut self.out, at);
        let mut line = Vec::new();
        if o.header && o.format == CopyFormat::Csv {
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    line.push(o.delimiter);
                }
                csv_field(&mut line, c.name.as_bytes(), o);
            }
            line.push(b'\n');
            copy_data(&mut self.out, &line);
        }
        let mut rows = st.raw_query();
        let mut count = 0u64;
        while let Some(row) = rows.next()? {
            line.clear();
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    line.push(o.delimiter);
                }
                let v: ValueRef<'_> = row.get_ref(i)?;
                match types::to_text(v, c.type_oid) {
                    None => line.extend_from_slice(o.null.as_bytes()),
                    Some(text) if o.format == CopyFormat::Csv => csv_field(&mut line, &text, o),
                    Some(text) => text_field(&mut line, &text, o.delimiter),
                }
            }
            line.push(b'\n');
            copy_data(&mut self.out, &line);
            count += 1;
        }
        let at = shardgate_wire::begin(&mut self.out, b'c');
        shardgate_wire::finish(&mut self.out, at);
        be::command_complete(&mut self.out, &format!("COPY {count}"));
        Ok(())
    }
}

/// The query of `COPY (query) TO STDOUT`.
fn inner_query(sql: &str) -> Result<String, SqlError> {
    use sqlparser::ast::{CopySource, Statement};
    let stmts = shardgate_sql::parse::parse_sql(sql).map_err(|e| err("42601", e.to_string()))?;
    match stmts.first() {
        Some(Statement::Copy {
            source: CopySource::Query(q),
            ..
        }) => Ok(q.to_string()),
        _ => Err(err("42601", "COPY needs a table or a query")),
    }
}

fn copy_data(out: &mut bytes::BytesMut, data: &[u8]) {
    let at = shardgate_wire::begin(out, b'd');
    out.extend_from_slice(data);
    shardgate_wire::finish(out, at);
}

/// A text-format field, escaped as PostgreSQL writes it.
fn text_field(line: &mut Vec<u8>, v: &[u8], delimiter: u8) {
    for &b in v {
        match b {
            b'\\' => line.extend_from_slice(b"\\\\"),
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            b'\t' if delimiter == b'\t' => line.extend_from_slice(b"\\t"),
            b if b == delimiter => {
                line.push(b'\\');
                line.push(b);
            }
            b => line.push(b),
        }
    }
}

/// A CSV field, quoted when it has to be (or would read as NULL).
fn csv_field(line: &mut Vec<u8>, v: &[u8], o: &CopyOptions) {
    let needs = v.is_empty()
        || v == o.null.as_bytes()
        || v.iter().any(|&b| {
            b == o.delimiter || b == o.quote || b == b'\n' || b == b'\r' || b == o.escape
        })
        || v == b"\\.";
    if !needs {
        line.extend_from_slice(v);
        return;
    }
    line.push(o.quote);
    for &b in v {
        if b == o.quote || b == o.escape {
            line.push(o.escape);
        }
        line.push(b);
    }
    line.push(o.quote);
}

/// Insert one row of fields read as PostgreSQL would read them.
fn insert_row(
    db: &rusqlite::Connection,
    insert: &str,
    types: &[u32],
    fields: Keys,
    count: &mut u64,
) -> Result<(), SqlError> {
    if fields.len() != types.len() {
        return Err(err(
            "22P04",
            if fields.len() < types.len() {
                format!("missing data for column {} of the COPY", fields.len() + 1)
            } else {
                "extra data after last expected column".to_string()
            },
        ));
    }
    let mut st = db.prepare_cached(insert)?;
    for (i, (f, ty)) in fields.into_iter().zip(types).enumerate() {
        let v = match f {
            None => Value::Null,
            Some(s) => {
                types::param_value(Some(s.as_bytes()), *ty, false).map_err(|m| err("22P02", m))?
            }
        };
        st.raw_bind_parameter(i + 1, v)?;
    }
    st.raw_execute()?;
    *count += 1;
    Ok(())
}
