//! Running a statement's uncorrelated subqueries first (see
//! `shardgate_sql::analyze::subquery`): each runs as a statement of its
//! own with its reply held back, its rows become literals in the outer
//! statement, which then runs as any statement.

use super::*;
use shardgate_sql::analyze::subquery::{Sub, SubKind, substitute};

/// A subquery's reply, read back from the held output.
struct Reply {
    /// Type OID of each column.
    types: Vec<u32>,
    /// Rows, values as text.
    rows: Vec<Vec<Option<String>>>,
    /// The error it ended with, if any.
    error: Option<ErrorFields>,
}

/// Read the frames of a held reply.
fn read_reply(bytes: &[u8]) -> Reply {
    let mut r = Reply {
        types: Vec::new(),
        rows: Vec::new(),
        error: None,
    };
    let mut at = 0;
    while bytes.len() >= at + 5 {
        let tag = bytes[at];
        let len = u32::from_be_bytes([bytes[at + 1], bytes[at + 2], bytes[at + 3], bytes[at + 4]])
            as usize;
        let Some(body) = bytes.get(at + 5..at + 1 + len) else {
            break;
        };
        match tag {
            b'T' => {
                r.types = be::parse_row_description(body)
                    .map(|c| c.iter().map(|c| c.type_oid).collect())
                    .unwrap_or_default();
            }
            b'D' => {
                if let Ok(v) = be::parse_data_row(body) {
                    r.rows.push(
                        v.iter()
                            .map(|x| x.map(|b| String::from_utf8_lossy(b).into_owned()))
                            .collect(),
                    );
                }
            }
            b'E' if r.error.is_none() => r.error = be::parse_error(body).ok(),
            _ => {}
        }
        at += 1 + len;
    }
    r
}

/// `v` as a literal of type `ty`.
fn literal(v: Option<&str>, ty: &str) -> String {
    match v {
        None => format!("CAST(NULL AS {ty})"),
        Some(v) => {
            let mut s = String::with_capacity(v.len() + ty.len() + 16);
            // E'' reads the same whatever standard_conforming_strings is.
            s.push_str("CAST(E'");
            for ch in v.chars() {
                match ch {
                    '\'' => s.push_str("''"),
                    '\\' => s.push_str("\\\\"),
                    c => s.push(c),
                }
            }
            s.push_str("' AS ");
            s.push_str(ty);
            s.push(')');
            s
        }
    }
}

impl Session {
    /// Run `subs`, write their results into `outer` and run that. A
    /// subquery that refers to the outer statement (it fails alone) gets
    /// `refused`, the statement's own refusal.
    pub(super) async fn run_pre_evaluated(
        &mut self,
        subs: &[Sub],
        outer: &str,
        refused: &SqlError,
    ) -> Result<Done, ExecError> {
        if self.output_restore().is_some() {
            self.fail_statement(&err_fields(
                "0A000",
                "a subquery over sharded tables that runs before its statement needs DateStyle ISO and extra_float_digits >= 1 in the session (its values are written into the statement as text)",
            ));
            return Ok(Done::Failed);
        }
        let mut results = Vec::with_capacity(subs.len());
        for sub in subs {
            let t = shardgate_sql::analyze(&sub.sql, &self.topo);
            let plan = match self.resolve_plan(&t, &Params::none()) {
                Ok(p) => p,
                Err(e) => {
                    self.fail_statement(&sql_err(&e));
                    return Ok(Done::Failed);
                }
            };
            // Its reply is held back, and read here.
            let cap = self.router.max_merge_bytes;
            self.out.hold = Some((self.out.buf.len(), cap));
            let done = Box::pin(self.run_plan_simple(&plan, &t, &sub.sql)).await;
            let (mark, _) = self.out.hold.take().unwrap_or_default();
            let over = std::mem::take(&mut self.out.held_over);
            let held = self.out.buf.split_off(mark);
            done?;
            let reply = read_reply(&held);
            drop(held);
            let too_many = over || reply.rows.len() > self.router.max_merge_rows;
            let error = if too_many {
                Some(ErrorFields {
                    hint: Some(
                        "add a filter to the subquery, or raise max_merge_rows / max_merge_bytes in the configuration".into(),
                    ),
                    ..err_fields(
                        "54000",
                        "a subquery run before its statement returned more rows than the router holds (max_merge_rows, max_merge_bytes)",
                    )
                })
            } else {
                match reply.error {
                    // It refers to the outer statement: correlated.
                    Some(e) if matches!(e.code.as_str(), "42703" | "42P01") => {
                        Some(sql_err(refused))
                    }
                    e => e,
                }
            };
            if let Some(e) = error {
                self.fail_statement(&e);
                return Ok(Done::Failed);
            }
            let result = match &sub.kind {
                SubKind::Exists { negated } => (reply.rows.is_empty() == *negated).to_string(),
                kind => {
                    if reply.types.len() != 1 {
                        let msg = if *kind == SubKind::Scalar {
                            "subquery must return only one column"
                        } else {
                            "subquery has too many columns"
                        };
                        self.fail_statement(&err_fields("42601", msg));
                        return Ok(Done::Failed);
                    }
                    let ty = match self.type_sql(reply.types[0]).await? {
                        Ok(t) => t,
                        Err(e) => {
                            self.fail_statement(&e);
                            return Ok(Done::Failed);
                        }
                    };
                    let value = |r: &Vec<Option<String>>| literal(r[0].as_deref(), &ty);
                    match kind {
                        SubKind::Scalar if reply.rows.len() > 1 => {
                            self.fail_statement(&err_fields(
                                "21000",
                                "more than one row returned by a subquery used as an expression",
                            ));
                            return Ok(Done::Failed);
                        }
                        SubKind::Scalar => reply
                            .rows
                            .first()
                            .map(value)
                            .unwrap_or_else(|| literal(None, &ty)),
                        // No rows: a subquery that has none (IN is false,
                        // NOT IN true, whatever the left side).
                        _ if reply.rows.is_empty() => {
                            format!("SELECT CAST(NULL AS {ty}) WHERE false")
                        }
                        _ => reply.rows.iter().map(value).collect::<Vec<_>>().join(", "),
                    }
                }
            };
            results.push(result);
        }
        let sql = substitute(outer, &results);
        drop(results);
        let t = shardgate_sql::analyze(&sql, &self.topo);
        match self.resolve_plan(&t, &Params::none()) {
            Ok(p) => Box::pin(self.run_plan_simple(&p, &t, &sql)).await,
            Err(e) => {
                self.fail_statement(&sql_err(&e));
                Ok(Done::Failed)
            }
        }
    }

    /// The SQL name of type `oid` (asked of a shard when it is not a
    /// built-in one shardgate knows).
    async fn type_sql(&mut self, oid: u32) -> Result<Result<String, ErrorFields>, ExecError> {
        if let Some(n) = shardgate_sql::rewrite::type_name(oid) {
            return Ok(Ok(n.to_string()));
        }
        let shard = self.topo.default_shard;
        if let Some(e) = self.ensure(&[shard]).await? {
            return Ok(Err(e));
        }
        let per = std::iter::once((shard, format!("SELECT format_type({oid}, NULL)"))).collect();
        let c = shardgate_exec::collect(&mut self.conns, &per, 1).await?;
        if let Some(e) = c.error {
            return Ok(Err(e));
        }
        Ok(c.rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .ok_or_else(|| err_fields("XX000", format!("type {oid} has no name"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_typed_and_escaped() {
        assert_eq!(literal(None, "bigint"), "CAST(NULL AS bigint)");
        assert_eq!(
            literal(Some("it's a \\ test"), "text"),
            "CAST(E'it''s a \\\\ test' AS text)"
        );
    }

    #[test]
    fn replies_are_read_back() {
        let mut b = bytes::BytesMut::new();
        be::row_description(&mut b, &[Column::new("x", 20, 8)]);
        be::data_row(&mut b, [Some(&b"7"[..])].into_iter());
        be::data_row(&mut b, [None].into_iter());
        be::command_complete(&mut b, "SELECT 2");
        let r = read_reply(&b);
        assert_eq!(r.types, vec![20]);
        assert_eq!(r.rows, vec![vec![Some("7".to_string())], vec![None]]);
        assert!(r.error.is_none());
    }
}
