//! Running a statement's uncorrelated subqueries first (see
//! `shardgate_sql::analyze::subquery`): each runs as a statement of its
//! own with its reply held back, its rows become literals in the outer
//! statement, which then runs as any statement.

use super::moves::Reply;
use super::*;
use shardgate_sql::analyze::subquery::{Filled, Sub, SubKind, fill};
use shardgate_sql::sqlparser::ast::Statement;
use std::collections::BTreeMap;

/// How deep subqueries run first may nest (held replies inside held
/// replies; each level copies the rows of the one inside it).
const MAX_NESTING: usize = 3;

/// A subquery's reply, read back from the held output.
struct SubReply {
    /// Name of each column.
    names: Vec<String>,
    /// Type OID of each column.
    types: Vec<u32>,
    /// Type modifier of each column.
    typmods: Vec<i32>,
    /// Rows, values as text.
    rows: Vec<Vec<Option<String>>>,
    /// The error it ended with, if any.
    error: Option<ErrorFields>,
}

/// Read the frames of a held reply.
fn read_reply(bytes: &[u8]) -> SubReply {
    let mut r = SubReply {
        names: Vec::new(),
        types: Vec::new(),
        typmods: Vec::new(),
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
                let cols = be::parse_row_description(body).unwrap_or_default();
                r.names = cols.iter().map(|c| c.name.clone()).collect();
                r.types = cols.iter().map(|c| c.type_oid).collect();
                r.typmods = cols.iter().map(|c| c.type_modifier).collect();
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

/// Does the text of a value of type `oid` depend on output settings
/// (extra_float_digits rounds floats, a non-ISO DateStyle prints zone
/// abbreviations)?
fn settings_bound(oid: u32) -> bool {
    matches!(oid, 700 | 701 | 1021 | 1022 | 1184 | 1185)
}

impl Session {
    /// Does the session print every value exactly (DateStyle ISO,
    /// extra_float_digits at least 1), as its default shard says?
    async fn exact_output(&mut self) -> Result<bool, ExecError> {
        let shard = self.topo.default_shard;
        if self.ensure(&[shard]).await?.is_some() {
            return Ok(false);
        }
        let sql = "SELECT current_setting('DateStyle') LIKE 'ISO%' AND current_setting('extra_float_digits')::int >= 1";
        let per = std::iter::once((shard, sql.to_string())).collect();
        let c = shardgate_exec::collect(&mut self.conns, &per, 1).await?;
        Ok(c.error.is_none()
            && c.rows
                .first()
                .and_then(|r| r.first().cloned().flatten())
                .as_deref()
                == Some("t"))
    }

    /// Run `subs`, write their results into `outer` and run that. Whatever
    /// could make the result differ from PostgreSQL's (a subquery that
    /// fails, which PostgreSQL may never have evaluated; more than one row
    /// for a scalar; values whose text depends on the session's settings or
    /// whose collation a literal would lose) gets `refused`, the
    /// statement's own refusal.
    pub(super) async fn run_pre_evaluated(
        &mut self,
        subs: &[Sub],
        outer: &Statement,
        refused: &SqlError,
        reply: Reply<'_>,
    ) -> Result<Done, ExecError> {
        let embedded = self
            .router
            .pools
            .iter()
            .any(|p| matches!(p.target, shardgate_backend::ShardTarget::Lite(_)));
        // Subqueries run first nest (a FROM subquery whose own query
        // joins off the key), each level's reply held inside the one
        // around it, to a few levels; not over embedded shards (no typed
        // literals there).
        if self.out.hold_depth() >= MAX_NESTING || embedded {
            self.fail_statement(&sql_err(refused));
            return Ok(Done::Failed);
        }
        // Outside a transaction block the subqueries and the statement are
        // one implicit transaction, as one statement is in PostgreSQL: all
        // of its writes or none (two-phase commit across shards).
        let implicit = self.txn == TxnState::Idle;
        if implicit {
            self.begin_implicit();
        }
        let done = self
            .run_pre_evaluated_in(subs, outer, refused, reply)
            .await?;
        if implicit && self.txn != TxnState::Idle {
            // In the extended protocol the shards' batches are still open
            // (the client's Sync has not come; a shard that failed skips
            // all but a Sync): end them before the COMMIT or ROLLBACK.
            self.sync_open().await?;
            let commit = self.txn == TxnState::Active;
            if let Some(e) = self.finish_txn(commit).await? {
                self.send_error(&e);
                return Ok(Done::Failed);
            }
        }
        Ok(done)
    }

    /// [`Session::run_pre_evaluated`] inside its transaction.
    async fn run_pre_evaluated_in(
        &mut self,
        subs: &[Sub],
        outer: &Statement,
        refused: &SqlError,
        reply: Reply<'_>,
    ) -> Result<Done, ExecError> {
        let mut results = Vec::with_capacity(subs.len());
        for sub in subs {
            match self.pre_evaluate_one(sub).await? {
                Ok(f) => results.push(f),
                Err(None) => {
                    self.fail_statement(&sql_err(refused));
                    return Ok(Done::Failed);
                }
                Err(Some(e)) => {
                    self.fail_statement(&e);
                    return Ok(Done::Failed);
                }
            }
        }
        let sql = match fill(outer, &results) {
            Ok(s) => s,
            Err(e) => {
                self.fail_statement(&sql_err(&e));
                return Ok(Done::Failed);
            }
        };
        // FROM subqueries, CTEs or set operation branches: tables of the
        // router's in their place, each shard's rows CTEs in front of what
        // that shard runs.
        let mut topo: Option<Topology> = None;
        let mut ctes: BTreeMap<ShardId, Vec<String>> = BTreeMap::new();
        let mut names = Vec::new();
        for (sub, filled) in subs.iter().zip(&results) {
            let SubKind::Derived {
                name,
                columns: renamed,
                placed,
            } = &sub.kind
            else {
                continue;
            };
            match self.stand_in(name, renamed, placed.as_ref(), filled) {
                Ok((rule, per)) => {
                    topo.get_or_insert_with(|| (*self.topo).clone())
                        .rules
                        .insert(name.clone(), std::sync::Arc::new(rule));
                    for (s, cte) in per {
                        ctes.entry(s).or_default().push(cte);
                    }
                    names.push(name.clone());
                }
                Err(e) => {
                    self.fail_statement(&sql_err(&e));
                    return Ok(Done::Failed);
                }
            }
        }
        if let Some(topo) = topo {
            drop(results);
            let ctes: BTreeMap<ShardId, String> =
                ctes.into_iter().map(|(s, v)| (s, v.join(", "))).collect();
            let t = shardgate_sql::analyze(&sql, &topo);
            let plan = resolve_plan(&self.router, &topo, &t, &Params::none())
                .and_then(|p| p.with_shard_cte(&sql, &ctes, &names));
            return match plan {
                Ok(p) => self.run_filled(p, t, sql, reply).await,
                Err(_) => {
                    // Planned with the rows in place, the statement is
                    // still refused: as it stood.
                    self.fail_statement(&sql_err(refused));
                    Ok(Done::Failed)
                }
            };
        }
        let no_rows = results
            .iter()
            .any(|r| matches!(r, Filled::Rows { rows, .. } if rows.is_empty()));
        drop(results);
        if no_rows {
            // An INSERT of no rows inserts nothing anywhere: one shard
            // answers it (its RETURNING columns too).
            let plan = Plan::Route {
                shards: vec![self.topo.default_shard],
                sql: ShardSql::Original,
                kind: StmtKind::Write,
            };
            let t = Template::Local(Local::Empty);
            return self.run_filled(plan, t, sql, reply).await;
        }
        let t = shardgate_sql::analyze(&sql, &self.topo);
        match self.resolve_plan(&t, &Params::none()) {
            Ok(p) => self.run_filled(p, t, sql, reply).await,
            Err(e) => {
                self.fail_statement(&sql_err(&e));
                Ok(Done::Failed)
            }
        }
    }

    /// Run the statement with the subqueries' results written in, and
    /// answer as the client asked: in the extended protocol as a portal of
    /// the router's own (no parameters left, the client's result formats).
    async fn run_filled(
        &mut self,
        plan: Plan,
        template: Template,
        sql: String,
        reply: Reply<'_>,
    ) -> Result<Done, ExecError> {
        let Reply::Extended {
            result_formats,
            describe,
        } = reply
        else {
            return Box::pin(self.run_plan_simple(&plan, &template, &sql)).await;
        };
        // A statement and portal of the router's (the portal's name may
        // reach a shard), under a name the client does not use.
        let name = (0u32..)
            .map(|i| format!("sg_pre_evaluated_{i}"))
            .find(|n| !self.stmts.contains_key(n) && !self.portals.contains_key(n))
            .unwrap_or_default();
        // The Bind's own names are not read (the maps are).
        let mut bind = bytes::BytesMut::new();
        shardgate_wire::put_cstr(&mut bind, "");
        shardgate_wire::put_cstr(&mut bind, "");
        bind.extend_from_slice(&[0, 0, 0, 0]);
        bind.extend_from_slice(&(result_formats.len() as i16).to_be_bytes());
        for f in result_formats {
            bind.extend_from_slice(&f.to_be_bytes());
        }
        let version = self.topo.version;
        self.stmts.insert(
            name.clone(),
            Prepared {
                sql,
                types: Vec::new(),
                param_types_described: None,
                template,
                version,
                described: None,
            },
        );
        self.portals.insert(
            name.clone(),
            Portal {
                stmt: name.clone(),
                plan,
                bind: bind.freeze(),
                result_formats: result_formats.to_vec(),
                describe_pending: describe,
                bound_on: None,
                held: None,
            },
        );
        let failed_before = self.skip_to_sync;
        let r = Box::pin(self.execute_portal(&name, 0)).await;
        self.portals.remove(&name);
        self.stmts.remove(&name);
        r?;
        Ok(if self.skip_to_sync && !failed_before {
            Done::Failed
        } else {
            Done::Ok
        })
    }

    /// The rule of the table `name` standing for a FROM subquery's, CTE's
    /// or set operation branch's rows (`filled`; `renamed`: the CTE's own
    /// column names), placed by `placed` (a sharded table and the column
    /// its rule places them by) or on every shard, and each shard's CTE.
    fn stand_in(
        &self,
        name: &str,
        renamed: &[String],
        placed: Option<&(String, String)>,
        filled: &Filled,
    ) -> Result<(shardgate_core::TableRule, BTreeMap<ShardId, String>), SqlError> {
        let mut filled = filled.clone();
        if let Filled::Derived { columns, .. } = &mut filled {
            for (c, r) in columns.iter_mut().zip(renamed) {
                c.clone_from(r);
            }
        }
        let rule = match placed {
            Some((table, column)) => Some((
                self.topo.rule(table).ok_or_else(|| {
                    SqlError::Unsupported(format!("{table} is no longer sharded"))
                })?,
                column.as_str(),
            )),
            None => None,
        };
        shardgate_sql::analyze::subquery::derived_cte(
            name,
            rule.map(|(r, c)| (r.as_ref(), c)),
            &filled,
            &self.topo.shards(),
        )
    }

    /// Run one subquery with its reply held back: its result, or
    /// `Err(None)` to refuse the statement, `Err(Some(e))` for an error.
    async fn pre_evaluate_one(
        &mut self,
        sub: &Sub,
    ) -> Result<Result<Filled, Option<ErrorFields>>, ExecError> {
        let t = shardgate_sql::analyze(&sub.sql, &self.topo);
        let Ok(plan) = self.resolve_plan(&t, &Params::none()) else {
            return Ok(Err(None));
        };
        // The rows are copied a few times over on their way into the
        // statement's text: a tighter cap than the merges'.
        let cap = self.router.max_merge_bytes / 8;
        self.out.push_hold(cap);
        let done = Box::pin(self.run_plan_simple(&plan, &t, &sub.sql)).await;
        let (held, over) = self.out.pop_hold();
        done?;
        let reply = read_reply(&held);
        drop(held);
        if over || reply.rows.len() > self.router.max_merge_rows {
            return Ok(Err(Some(ErrorFields {
                hint: Some(
                    "add a filter to the subquery, or raise max_merge_rows / max_merge_bytes in the configuration".into(),
                ),
                ..err_fields(
                    "54000",
                    "a subquery (or a table joined off its shard key) run before its statement returned more rows than the router holds (max_merge_rows, max_merge_bytes)",
                )
            })));
        }
        // A failure here (a reference to the outer query, or an error
        // PostgreSQL might never have run into): refused.
        if reply.error.is_some() {
            return Ok(Err(None));
        }
        if sub.kind == SubKind::Exists {
            return Ok(Ok(Filled::Exists(!reply.rows.is_empty())));
        }
        if let SubKind::Derived { .. } = &sub.kind {
            // With the type modifiers: the columns are described as
            // PostgreSQL describes the subquery's.
            let Some(types) = reply
                .types
                .iter()
                .zip(&reply.typmods)
                .map(|(o, m)| shardgate_sql::rewrite::type_name_with_mod(*o, *m))
                .collect::<Option<Vec<String>>>()
            else {
                return Ok(Err(None));
            };
            if reply.types.is_empty() {
                return Ok(Err(None));
            }
            // Values a literal would not give back: said why.
            let inexact = |why: &str| {
                Ok(Err(Some(err_fields(
                    "0A000",
                    format!(
                        "a subquery in FROM, CTE or set operation branch that shardgate runs before its statement {why}, so its rows cannot be written into the statement exactly"
                    ),
                ))))
            };
            if reply.types.iter().any(|o| settings_bound(*o)) && !self.exact_output().await? {
                return inexact(
                    "returned float or timestamptz values that this session prints inexactly (DateStyle other than ISO, or extra_float_digits below 1)",
                );
            }
            if !self.default_collations(sub, &reply.types).await? {
                return inexact(
                    "returned text columns of another collation than the database default",
                );
            }
            return Ok(Ok(Filled::Derived {
                columns: reply.names,
                types,
                rows: reply.rows,
            }));
        }
        if let SubKind::Rows { untyped } = &sub.kind {
            if reply.types.is_empty() {
                // `INSERT ... SELECT FROM t`: no VALUES list has no column.
                return Ok(Err(None));
            }
            // Types whose OIDs may differ between shards cannot be named.
            let Some(types) = reply
                .types
                .iter()
                .map(|o| shardgate_sql::rewrite::type_name(*o).map(str::to_string))
                .collect::<Option<Vec<String>>>()
            else {
                return Ok(Err(None));
            };
            if reply.types.iter().any(|o| settings_bound(*o)) && !self.exact_output().await? {
                return Ok(Err(None));
            }
            return Ok(Ok(Filled::Rows {
                types,
                untyped: untyped.clone(),
                rows: reply.rows,
            }));
        }
        if reply.types.len() != 1 {
            let msg = if sub.kind == SubKind::Scalar {
                "subquery must return only one column"
            } else {
                "subquery has too many columns"
            };
            return Ok(Err(Some(err_fields("42601", msg))));
        }
        if sub.kind == SubKind::Scalar && reply.rows.len() > 1 {
            // PostgreSQL fails with 21000 where it evaluates the subquery,
            // but it evaluates it only when a row reaches it (`CASE WHEN
            // false THEN (SELECT ...)` answers): which shardgate cannot
            // tell, so it refuses, saying why.
            return Ok(Err(Some(err_fields(
                "0A000",
                "a subquery used as an expression returned more than one row: PostgreSQL fails such a statement (21000) if it evaluates the subquery for some row, which shardgate cannot tell before running it; make the subquery return one row (or none)",
            ))));
        }
        let oid = reply.types[0];
        // With the column's type modifier: the statement's result column
        // is described as PostgreSQL describes the subquery's.
        let typmod = reply.typmods.first().copied().unwrap_or(-1);
        let Some(ty) = shardgate_sql::rewrite::type_name_with_mod(oid, typmod) else {
            // Other types' OIDs may differ between shards.
            return Ok(Err(None));
        };
        if !self.literal_keeps_meaning(sub, oid).await? {
            return Ok(Err(None));
        }
        let values = reply.rows.into_iter().map(|mut r| r.remove(0)).collect();
        Ok(Ok(Filled::Values {
            ty: ty.to_string(),
            values,
        }))
    }

    /// Do the text columns (of `types`) of subquery `sub` have the
    /// collation a literal gets (their rows are compared and sorted as
    /// literals on the shards)?
    async fn default_collations(&mut self, sub: &Sub, types: &[u32]) -> Result<bool, ExecError> {
        let texts: Vec<usize> = types
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, 25 | 1042 | 1043 | 19 | 1009 | 1014 | 1015 | 1003))
            .map(|(i, _)| i)
            .collect();
        if texts.is_empty() {
            return Ok(true);
        }
        let shard = self.topo.default_shard;
        if self.ensure(&[shard]).await?.is_some() {
            return Ok(false);
        }
        let sql = shardgate_exec::collation_probe(&sub.sql, types.len(), &texts);
        let per = std::iter::once((shard, sql)).collect();
        let c = shardgate_exec::collect(&mut self.conns, &per, texts.len()).await?;
        if c.error.is_some() || c.rows.len() != texts.len() {
            return Ok(false);
        }
        Ok(c.rows.iter().zip(&texts).all(|(r, i)| {
            let own = if matches!(types[*i], 19 | 1003) {
                "\"C\""
            } else {
                "\"default\""
            };
            r.first().cloned().flatten().as_deref() == Some(own)
        }))
    }

    /// Does a literal of type `oid` mean what subquery `sub`'s value did?
    /// Not when the value's text depends on output settings the session
    /// has (a non-ISO DateStyle prints zone abbreviations; extra_float_digits
    /// below 1 rounds floats), nor when its collation is not the one the
    /// literal would get.
    async fn literal_keeps_meaning(&mut self, sub: &Sub, oid: u32) -> Result<bool, ExecError> {
        let settings = settings_bound(oid);
        let own_collation = match oid {
            25 | 1042 | 1043 | 1009 | 1014 | 1015 => Some("\"default\""),
            19 | 1003 => Some("\"C\""),
            _ => None,
        };
        if !settings && own_collation.is_none() {
            return Ok(true);
        }
        let shard = self.topo.default_shard;
        if self.ensure(&[shard]).await?.is_some() {
            return Ok(false);
        }
        let Some(own) = own_collation else {
            return self.exact_output().await;
        };
        let sql = shardgate_exec::collation_probe(&sub.sql, 1, &[0]);
        let per = std::iter::once((shard, sql)).collect();
        let c = shardgate_exec::collect(&mut self.conns, &per, 1).await?;
        if c.error.is_some() {
            return Ok(false);
        }
        let first = c
            .rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten());
        Ok(first.as_deref() == Some(own))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
