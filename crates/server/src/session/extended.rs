//! The extended query protocol: Parse, Bind, Describe, Execute, Close and
//! Sync; a batch up to Sync is one implicit transaction outside explicit
//! ones.

use super::*;

impl Session {
    pub(super) fn batch_error(&mut self, e: &ErrorFields) {
        self.fail_statement(e);
        self.skip_to_sync = true;
    }

    pub(super) async fn parse(&mut self, f: &Frame) {
        let p = match frontend::parse_parse(&f.body) {
            Ok(p) => p,
            Err(e) => return self.batch_error(&err_fields("08P01", e.to_string())),
        };
        if !p.name.is_empty() && self.stmts.contains_key(p.name) {
            return self.batch_error(&err_fields(
                "42P05",
                format!("prepared statement \"{}\" already exists", p.name),
            ));
        }
        self.refresh_topology();
        let pieces = shardgate_sql::split::split_statements(p.sql);
        if pieces.len() > 1 {
            return self.batch_error(&err_fields(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let template = if pieces.is_empty() {
            Template::Local(Local::Empty)
        } else {
            shardgate_sql::analyze(p.sql, &self.topo)
        };
        if let Template::Refuse(e) = &template {
            let fields = super::refusal(&self.router, e, p.sql).await;
            return self.batch_error(&fields);
        }
        if let Template::Local(Local::Prepare { .. } | Local::Execute { .. }) = &template {
            return self.batch_error(&err_fields(
                "0A000",
                "SQL-level PREPARE/EXECUTE is supported in the simple query protocol; in the extended one, prepare the statement itself",
            ));
        }
        let prepared = Prepared {
            sql: p.sql.to_string(),
            types: p.param_types,
            param_types_described: None,
            template,
            version: self.topo.version,
            described: None,
        };
        self.stmts.insert(p.name.to_string(), prepared);
        be::parse_complete(&mut self.out.buf);
    }

    pub(super) fn bind(&mut self, f: &Frame) {
        let b = match frontend::parse_bind(&f.body) {
            Ok(b) => b,
            Err(e) => return self.batch_error(&err_fields("08P01", e.to_string())),
        };
        self.refresh_topology();
        let topo = self.topo.clone();
        let Some(st) = self.stmts.get_mut(b.statement) else {
            let e = err_fields(
                "26000",
                format!("prepared statement \"{}\" does not exist", b.statement),
            );
            return self.batch_error(&e);
        };
        if st.version != topo.version && !st.sql.trim().is_empty() {
            st.template = shardgate_sql::analyze(&st.sql, &topo);
            st.version = topo.version;
        }
        let params = Params {
            values: b.params.clone(),
            binary: (0..b.params.len()).map(|i| b.is_binary(i)).collect(),
            types: st
                .param_types_described
                .clone()
                .unwrap_or_else(|| st.types.clone()),
        };
        let plan = match resolve_plan(&self.router, &topo, &st.template, &params) {
            Ok(p) => p,
            Err(e) => return self.batch_error(&sql_err(&e)),
        };
        let result_formats = frontend::bind_result_formats(&f.body).unwrap_or_default();
        let portal = Portal {
            stmt: b.statement.to_string(),
            plan,
            bind: f.body.clone(),
            result_formats,
            describe_pending: false,
            bound_on: None,
            held: None,
        };
        self.portals.insert(b.portal.to_string(), portal);
        be::bind_complete(&mut self.out.buf);
    }

    pub(super) async fn describe(&mut self, f: &Frame) -> Result<(), ExecError> {
        let (kind, name) = match frontend::parse_target(&f.body) {
            Ok(x) => x,
            Err(e) => {
                self.batch_error(&err_fields("08P01", e.to_string()));
                return Ok(());
            }
        };
        if kind == b'P' {
            if let Some(p) = self.portals.get_mut(name) {
                p.describe_pending = true;
                return Ok(());
            }
            // A SQL cursor (DECLARE) is a portal too (psycopg 3 describes
            // its server-side cursors so): described where it lives.
            match self.cursors.get(name) {
                Some(cursors::Cursor::OnShard(shard, _)) if self.conns.contains_key(shard) => {
                    let shard = *shard;
                    let req = Request::DescribeCursor { name };
                    let o =
                        shardgate_exec::run(&mut self.conns, &[shard], &req, &mut self.out).await?;
                    if o.error.is_some() {
                        self.skip_to_sync = true;
                        if self.txn == TxnState::Active {
                            self.txn = TxnState::Failed;
                        }
                    }
                }
                Some(cursors::Cursor::Held(_)) => {
                    if let Some(d) = self.held_cursor_desc(name) {
                        self.out.buf.extend_from_slice(&d);
                    }
                }
                _ => self.batch_error(&err_fields(
                    "34000",
                    format!("portal \"{name}\" does not exist"),
                )),
            }
            return Ok(());
        }
        let Some(st) = self.stmts.get(name) else {
            self.batch_error(&err_fields(
                "26000",
                format!("prepared statement \"{name}\" does not exist"),
            ));
            return Ok(());
        };
        // A cursor statement is described where it goes (a cursor the
        // router holds describes its own rows).
        let cursor_shard = match &st.template {
            Template::Local(Local::Cursor(op)) => match self.cursor_target(op, &Params::none()) {
                Some(s) => Some(s),
                None => {
                    let desc = match op {
                        shardgate_sql::cursor::CursorOp::Fetch {
                            name, moves: false, ..
                        } => self.held_cursor_desc(name),
                        _ => None,
                    };
                    let types = st.types.clone();
                    be::parameter_description(&mut self.out.buf, &types);
                    match desc {
                        Some(d) => self.out.buf.extend_from_slice(&d),
                        None => be::no_data(&mut self.out.buf),
                    }
                    return Ok(());
                }
            },
            _ => None,
        };
        match &st.template {
            Template::Route { .. }
            | Template::Insert { .. }
            | Template::Move(_)
            | Template::WithIds { .. }
            | Template::PreEvaluate { .. }
            | Template::Local(Local::Cursor(_) | Local::SetConfig { .. }) => {
                let sql = st
                    .template
                    .describe_text()
                    .unwrap_or_else(|| st.sql.clone());
                let types = st.types.clone();
                let shard = cursor_shard.unwrap_or_else(|| {
                    self.conns
                        .keys()
                        .next()
                        .copied()
                        .unwrap_or(self.topo.default_shard)
                });
                if let Some(e) = self.ensure(&[shard]).await? {
                    self.batch_error(&e);
                    return Ok(());
                }
                let req = Request::DescribeStatement {
                    sql: &sql,
                    param_types: &types,
                };
                let generation = self.schema_generation();
                let (mark, flushed) = (self.out.buf.len(), self.out.flushed);
                let o = shardgate_exec::run(&mut self.conns, &[shard], &req, &mut self.out).await?;
                if o.error.is_none()
                    && cursor_shard.is_none()
                    && self.out.flushed == flushed
                    && let Some(st) = self.stmts.get_mut(name)
                {
                    st.described = Some((generation, result_description(&self.out.buf[mark..])));
                }
                if o.error.is_some() {
                    self.skip_to_sync = true;
                    if self.txn == TxnState::Active {
                        self.txn = TxnState::Failed;
                    }
                } else if let Some(described) = o.param_types
                    && let Some(st) = self.stmts.get_mut(name)
                    && described.len() >= st.types.len()
                {
                    // Parameters the client left untyped now have the types
                    // the shard inferred (binary values are read by them).
                    st.param_types_described = Some(described);
                }
            }
            t => {
                let mut types = st.types.clone();
                // A shardgate function's `$n` arguments are text.
                if let Template::Admin(call) = t {
                    let n = call.params.iter().map(|(_, n)| *n).max().unwrap_or(0);
                    if types.len() < n {
                        types.resize(n, 0);
                    }
                    for (_, n) in &call.params {
                        if types[n - 1] == 0 {
                            types[n - 1] = 25;
                        }
                    }
                }
                be::parameter_description(&mut self.out.buf, &types);
                match t {
                    Template::Admin(call) if call.function == "next_id" => {
                        be::row_description(&mut self.out.buf, &[Column::new("next_id", 20, 8)]);
                    }
                    Template::Admin(_) => {
                        be::row_description(&mut self.out.buf, &[Column::new("result", 25, -1)]);
                    }
                    Template::Explain(_) => {
                        be::row_description(
                            &mut self.out.buf,
                            &[Column::new("QUERY PLAN", 25, -1)],
                        );
                    }
                    _ => be::no_data(&mut self.out.buf),
                }
            }
        }
        Ok(())
    }

    /// After a schema change made through shardgate: does statement
    /// `name`, described to the client before it, now return rows of
    /// another shape? PostgreSQL refuses to run such a statement ("cached
    /// plan must not change result type"); so does shardgate, where it
    /// would otherwise send rows the client decodes by the old
    /// description. The statement is described again on a shard (and the
    /// new generation recorded when nothing changed).
    async fn stale_description(&mut self, name: &str) -> Result<Option<ErrorFields>, ExecError> {
        let generation = self.schema_generation();
        let Some(st) = self.stmts.get(name) else {
            return Ok(None);
        };
        let Some((seen_at, before)) = &st.described else {
            return Ok(None);
        };
        if *seen_at == generation {
            return Ok(None);
        }
        let before = before.clone();
        let sql = st
            .template
            .describe_text()
            .unwrap_or_else(|| st.sql.clone());
        let types = st.types.clone();
        let shard = self
            .conns
            .keys()
            .next()
            .copied()
            .unwrap_or(self.topo.default_shard);
        if let Some(e) = self.ensure(&[shard]).await? {
            return Ok(Some(e));
        }
        let req = Request::DescribeStatement {
            sql: &sql,
            param_types: &types,
        };
        let (mark, flushed) = (self.out.buf.len(), self.out.flushed);
        let o = shardgate_exec::run(&mut self.conns, &[shard], &req, &mut self.out).await?;
        if self.out.flushed != flushed {
            // (A description is far smaller than a flush: not reached.)
            return Ok(None);
        }
        let now = result_description(&self.out.buf[mark..]);
        self.out.buf.truncate(mark);
        if let Some(e) = o.error {
            return Ok(Some(e));
        }
        if now != before {
            // PostgreSQL's routine too: drivers (asyncpg) recognise the
            // error by it and prepare the statement again.
            let mut e = err_fields("0A000", "cached plan must not change result type");
            e.push_other(b'R', "RevalidateCachedQuery");
            return Ok(Some(e));
        }
        if let Some(st) = self.stmts.get_mut(name) {
            st.described = Some((generation, now));
        }
        Ok(None)
    }

    pub(super) async fn execute(&mut self, f: &Frame) -> Result<(), ExecError> {
        let (name, max_rows) = match frontend::parse_execute(&f.body) {
            Ok((n, m)) => (n.to_string(), m),
            Err(e) => {
                self.batch_error(&err_fields("08P01", e.to_string()));
                return Ok(());
            }
        };
        // A cursor statement that one shard answers is sent there as it
        // is (where is decided now, after the batch's earlier statements;
        // what it changes is noted once it has run).
        // (A DECLARE's query placed by its bound parameters: `DECLARE c
        // CURSOR FOR SELECT ... WHERE key = $1` goes to the key's shard.)
        let cursor = match self.portals.get(&name) {
            Some(p) => match &p.plan {
                Plan::Local(Local::Cursor(op)) => {
                    let types = self
                        .stmts
                        .get(&p.stmt)
                        .map(|st| {
                            st.param_types_described
                                .clone()
                                .unwrap_or_else(|| st.types.clone())
                        })
                        .unwrap_or_default();
                    let params = match frontend::parse_bind(&p.bind) {
                        Ok(b) => Params {
                            binary: (0..b.params.len()).map(|i| b.is_binary(i)).collect(),
                            values: b.params,
                            types,
                        },
                        Err(_) => Params::none(),
                    };
                    self.cursor_target(op, &params).map(|s| (op.clone(), s))
                }
                _ => None,
            },
            None => None,
        };
        if let Some((_, shard)) = &cursor
            && let Some(p) = self.portals.get_mut(&name)
        {
            p.plan = super::cursors::single_route(*shard);
        }
        if self.execute_held(&name, max_rows).await? {
            return Ok(());
        }
        let router_run = self
            .portals
            .get(&name)
            .is_some_and(|p| !super::batches::shard_keeps_rows(&p.plan));
        if let Some((shardgate_sql::cursor::CursorOp::Close(None), _)) = &cursor
            && self.txn != TxnState::Failed
        {
            self.close_all_elsewhere().await?;
        }
        let (mark, flushed) = (self.out.buf.len(), self.out.flushed);
        self.execute_portal(&name, max_rows).await?;
        if let Some((op, shard)) = cursor {
            let ok = !self.skip_to_sync;
            self.cursor_done(&op, shard, ok);
        }
        if router_run {
            // Run to completion: it is not run again (see `batches`).
            let from = if self.out.flushed == flushed { mark } else { 0 };
            self.portal_done(&name, from);
        }
        Ok(())
    }

    /// Execute portal `name` with row limit `max_rows` (0: none).
    pub(super) async fn execute_portal(
        &mut self,
        name: &str,
        max_rows: i32,
    ) -> Result<(), ExecError> {
        let name = name.to_string();
        let Some(portal) = self.portals.get(&name) else {
            self.batch_error(&err_fields(
                "34000",
                format!("portal \"{name}\" does not exist"),
            ));
            return Ok(());
        };
        let plan = portal.plan.clone();
        let describe = portal.describe_pending;
        let (sql, types) = match self.stmts.get(&portal.stmt) {
            Some(s) => (s.sql.clone(), s.types.clone()),
            None => {
                self.batch_error(&err_fields(
                    "26000",
                    format!("prepared statement \"{}\" does not exist", portal.stmt),
                ));
                return Ok(());
            }
        };
        // Outside a transaction block, the batch is the transaction: such
        // DDL is recorded when it succeeds, so it must be alone in it (in
        // a transaction block it is recorded at COMMIT).
        let id_ddl = self.stmts.get(&portal.stmt).and_then(|st| match &st.template {
            Template::Route {
                learns: Some(l), ..
            } if self.txn == TxnState::Idle
                && l.ids.as_ref().is_some_and(|i| i.changes_ids()) =>
            {
                Some(err_fields(
                    "25001",
                    "DDL that adds, changes or drops a shardgate.next_id() default must be alone in its batch (Sync right after its Execute) or in a transaction block: shardgate records it when it succeeds",
                ))
            }
            _ => None,
        });
        let bind = portal.bind.clone();
        let result_formats = portal.result_formats.clone();
        let bound_on = portal.bound_on;
        // (The statement's name is copied only after a schema change.)
        let generation = self.schema_generation();
        let described_before = bound_on.is_none()
            && self
                .stmts
                .get(&portal.stmt)
                .and_then(|st| st.described.as_ref())
                .is_some_and(|(seen_at, _)| *seen_at != generation);
        if described_before && let Some(e) = self.stale_description(&portal.stmt.clone()).await? {
            self.batch_error(&e);
            return Ok(());
        }
        if let Some(e) = id_ddl
            && (!self.batch_used.is_empty() || !self.next_is_sync())
        {
            self.batch_error(&e);
            return Ok(());
        }
        if let Some(p) = self.portals.get_mut(&name) {
            p.describe_pending = false;
        }
        if self.txn == TxnState::Failed
            && !matches!(
                plan,
                Plan::Local(Local::Commit | Local::Rollback | Local::InTransaction)
            )
        {
            self.aborted();
            self.skip_to_sync = true;
            return Ok(());
        }
        let done = match &plan {
            Plan::Local(Local::Empty) => {
                if describe {
                    be::no_data(&mut self.out.buf);
                }
                be::empty_query(&mut self.out.buf);
                Done::Ok
            }
            // A cursor the router holds (one shard's were routed there
            // in `execute`).
            Plan::Local(Local::Cursor(op)) => {
                let types = self
                    .stmts
                    .get(
                        &self
                            .portals
                            .get(&name)
                            .map(|p| p.stmt.clone())
                            .unwrap_or_default(),
                    )
                    .and_then(|st| st.param_types_described.clone())
                    .unwrap_or(types);
                let b = match frontend::parse_bind(&bind) {
                    Ok(b) => b,
                    Err(e) => {
                        self.batch_error(&err_fields("08P01", e.to_string()));
                        return Ok(());
                    }
                };
                let params = Params {
                    binary: (0..b.params.len()).map(|i| b.is_binary(i)).collect(),
                    values: b.params,
                    types,
                };
                self.held_cursor_extended(op, &params, describe, &result_formats)
                    .await?
            }
            Plan::Local(l @ Local::SetConfig { .. }) => {
                self.run_set_config(l, Some((describe, &result_formats)))
                    .await?
            }
            Plan::Local(l) => {
                if describe {
                    be::no_data(&mut self.out.buf);
                }
                self.run_local(l, &sql).await?
            }
            Plan::Admin(call) => {
                let r = crate::admin::run(&self.router, call).await;
                self.refresh_topology();
                match r {
                    Ok((cols, rows)) => {
                        let types = crate::admin::column_types(&call.function, cols.len());
                        self.local_rows(&cols, &types, &rows, describe, false, &result_formats);
                        Done::Ok
                    }
                    Err(e) => {
                        self.send_error(&e);
                        Done::Failed
                    }
                }
            }
            Plan::Explain(p) => {
                let rows: Vec<Vec<Option<String>>> =
                    p.describe().into_iter().map(|l| vec![Some(l)]).collect();
                self.local_rows(
                    &["QUERY PLAN".to_string()],
                    &[25],
                    &rows,
                    describe,
                    true,
                    &result_formats,
                );
                Done::Ok
            }
            Plan::Move {
                shards,
                delete,
                sql,
                rule,
                key_positions,
            } => {
                let reply = super::moves::Reply::Extended {
                    result_formats: &result_formats,
                    describe,
                };
                match self.join_batch_whole().await? {
                    Some(d) => d,
                    None => {
                        self.run_move(shards, delete, sql, rule, key_positions, reply)
                            .await?
                    }
                }
            }
            // COPY in the extended protocol (pg8000, tokio-postgres): as in
            // the simple protocol, once the batch's earlier statements are
            // settled on their shards. The client's Sync sent before its
            // data (both drivers do) is ignored during COPY, as PostgreSQL
            // ignores it; the Sync after CopyDone ends the batch.
            Plan::Copy { spec, route } => match self.join_batch_whole().await? {
                Some(d) => d,
                None => {
                    self.sync_open().await?;
                    if describe {
                        // A COPY's portal describes no rows.
                        be::no_data(&mut self.out.buf);
                    }
                    self.run_copy(spec, route).await?
                }
            },
            Plan::PreEvaluate {
                subs,
                outer,
                refused,
            } => match self.join_batch_whole().await? {
                Some(d) => d,
                None => {
                    let reply = super::moves::Reply::Extended {
                        result_formats: &result_formats,
                        describe,
                    };
                    self.run_pre_evaluated(subs, outer, refused, reply).await?
                }
            },
            Plan::Read(node) => {
                if let Some(d) = self.merged_read_in_batch().await? {
                    d
                } else {
                    let tail = frontend::parse_bind(&bind)
                        .map(|b| b.tail.to_vec())
                        .unwrap_or_default();
                    let params = shardgate_exec::bind_params(&tail)
                        .map(<[u8]>::to_vec)
                        .unwrap_or_else(|_| vec![0, 0, 0, 0]);
                    let req = shardgate_exec::ReadRequest {
                        extended: true,
                        param_types: &types,
                        params: &params,
                        result_formats: &result_formats,
                        describe,
                        bytewise_text: self.router.bytewise_text,
                        max_rows: self.router.max_merge_rows,
                        max_bytes: self.router.max_merge_bytes,
                    };
                    self.run_read_plan(node, &req).await?
                }
            }
            Plan::Route {
                shards,
                sql: how @ (ShardSql::Original | ShardSql::Params { .. }),
                kind,
            } => {
                let write = matches!(
                    kind,
                    StmtKind::Write | StmtKind::WriteCopies | StmtKind::Ddl
                );
                // A read or write alone in its batch may share a lane.
                let on_lane = if matches!(kind, StmtKind::Read | StmtKind::Write)
                    && shards.len() == 1
                    && max_rows == 0
                    && bound_on.is_none()
                    && matches!(how, ShardSql::Original)
                    && let Ok(b) = frontend::parse_bind(&bind)
                {
                    self.portal_on_lane(shards[0], write, &sql, &types, b.tail, describe)
                        .await
                } else {
                    None
                };
                // (A row limit reaches here only for one shard: see
                // `batches`.)
                if let Some(d) = on_lane {
                    d
                } else if let Some(d) = self.join_batch(shards, write).await? {
                    d
                } else {
                    let b = match frontend::parse_bind(&bind) {
                        Ok(b) => b,
                        Err(e) => {
                            self.batch_error(&err_fields("08P01", e.to_string()));
                            return Ok(());
                        }
                    };
                    // An INSERT with ids drawn here: its rewritten text, the
                    // ids bound as parameters after the client's own.
                    let (sql, types, tail_owned) = match how {
                        ShardSql::Params {
                            sql: text,
                            first,
                            ids,
                        } => {
                            let keep = first - 1;
                            let mut t: Vec<u32> = types.iter().copied().take(keep).collect();
                            t.resize(keep, 0);
                            t.extend(std::iter::repeat_n(20, ids.len()));
                            let extra: Vec<String> = ids.iter().map(ToString::to_string).collect();
                            let tail =
                                frontend::bind_tail_appended(&b, keep, &extra, &result_formats);
                            (text.clone(), t, tail)
                        }
                        _ => (sql, types, b.tail.to_vec()),
                    };
                    let bound =
                        bound_on.is_some() && shards.len() == 1 && bound_on == Some(shards[0]);
                    // A Sync right behind this Execute (the usual pipeline)
                    // goes to the shard with it.
                    let sync = shards.len() == 1 && max_rows == 0 && self.next_is_sync();
                    let d = self
                        .route_with(
                            shards,
                            *kind,
                            |_| Request::Extended {
                                sql: &sql,
                                param_types: &types,
                                bind_tail: &tail_owned,
                                portal: &name,
                                describe,
                                max_rows,
                                bound,
                                sync,
                            },
                            kind == &StmtKind::Ddl
                                && sql.to_ascii_lowercase().contains("concurrently"),
                            None,
                        )
                        .await?;
                    if !sync
                        && shards.len() == 1
                        && let Some(p) = self.portals.get_mut(&name)
                    {
                        p.bound_on = Some(shards[0]);
                    }
                    if *kind == StmtKind::Ddl {
                        self.learn_from(&d, &name).await;
                    }
                    d
                }
            }
            Plan::Route { shards, sql, kind } => {
                let Some((per, order)) = sql.per_shard() else {
                    unreachable!("ShardSql::Original and Params are matched above")
                };
                let write = matches!(
                    kind,
                    StmtKind::Write | StmtKind::WriteCopies | StmtKind::Ddl
                );
                if let Some(d) = self.join_batch(shards, write).await? {
                    d
                } else {
                    let d = self
                        .route_with(
                            shards,
                            *kind,
                            |_| Request::ExtendedPer {
                                per,
                                result_formats: &result_formats,
                                describe,
                            },
                            false,
                            order,
                        )
                        .await?;
                    if *kind == StmtKind::Ddl {
                        self.learn_from(&d, &name).await;
                    }
                    d
                }
            }
        };
        if matches!(done, Done::Failed) {
            self.skip_to_sync = true;
        }
        Ok(())
    }

    /// After portal `portal` ran DDL: record what the DDL teaches.
    async fn learn_from(&mut self, d: &Done, portal: &str) {
        let learn = self
            .portals
            .get(portal)
            .and_then(|p| self.stmts.get(&p.stmt))
            .and_then(|st| match &st.template {
                Template::Route {
                    learns: Some(l), ..
                } => Some(l.clone()),
                _ => None,
            });
        if let (Done::Ok, Some(l)) = (d, learn) {
            self.learn(&l).await;
        }
    }

    /// A write outside a transaction block joins the batch's implicit
    /// transaction (up to Sync). While the batch writes to one shard, that
    /// shard's own implicit transaction is the batch's; a write that would
    /// make it span more shards first turns the batch into a transaction
    /// of the router's ([`Session::batch_transaction`]). `Some` (after
    /// sending the error) when that failed.
    async fn join_batch(
        &mut self,
        shards: &[ShardId],
        write: bool,
    ) -> Result<Option<Done>, ExecError> {
        if !write || self.txn != TxnState::Idle {
            return Ok(None);
        }
        let spans = if shards.len() > 1 {
            !self.batch_writes.is_empty() || !self.next_is_sync()
        } else {
            self.batch_multi || self.batch_writes.iter().any(|s| *s != shards[0])
        };
        if spans {
            return self.batch_transaction().await;
        }
        self.batch_writes.extend(shards.iter().copied());
        self.batch_multi |= shards.len() > 1;
        Ok(None)
    }

    /// A statement that makes a transaction of its own outside a block (a
    /// key move, subqueries run first): alone in its batch it does; with
    /// other writes before it, or statements after it, it is part of the
    /// batch's ([`Session::batch_transaction`]). `Some` (after sending the
    /// error) when that failed.
    async fn join_batch_whole(&mut self) -> Result<Option<Done>, ExecError> {
        if self.txn == TxnState::Idle && (!self.batch_writes.is_empty() || !self.next_is_sync()) {
            return self.batch_transaction().await;
        }
        Ok(None)
    }

    /// Make the batch (up to Sync, outside a transaction block) one
    /// transaction of the router's: BEGIN on every shard the batch holds
    /// (what already ran there becomes part of it, as a BEGIN inside a
    /// batch does in PostgreSQL), and on every shard it joins later. It is
    /// implicit: it ends at Sync, committed (with two-phase commit when it
    /// wrote to several shards) unless a statement failed, then rolled
    /// back on every shard. `Some` (after sending the error) when a BEGIN
    /// failed; the batch is then rolled back at Sync.
    pub(super) async fn batch_transaction(&mut self) -> Result<Option<Done>, ExecError> {
        let held: Vec<ShardId> = self.conns.keys().copied().collect();
        if !held.is_empty()
            && let Some(e) = shardgate_exec::internal(&mut self.conns, &held, "BEGIN").await?
        {
            self.send_error(&e);
            return Ok(Some(Done::Failed));
        }
        self.begin_implicit();
        self.written = std::mem::take(&mut self.batch_writes);
        self.batch_multi = false;
        Ok(None)
    }

    /// Is the client's next message a Sync? Looks at what was received,
    /// and at what the socket already holds, without waiting.
    pub(super) fn next_is_sync(&mut self) -> bool {
        if self.rbuf.len() < 5 {
            if self.rbuf.capacity() - self.rbuf.len() < 1024 {
                self.rbuf.reserve(8192);
            }
            let _ = self.rd.try_read_buf(&mut self.rbuf);
        }
        self.rbuf.len() >= 5 && self.rbuf[..5] == [b'S', 0, 0, 0, 4]
    }

    /// A merged multi-shard read syncs its shards, which would end the
    /// shard transactions of the batch's earlier writes: after a write,
    /// the batch becomes a transaction of the router's first. `Some`
    /// (after sending the error) when that failed.
    async fn merged_read_in_batch(&mut self) -> Result<Option<Done>, ExecError> {
        if self.txn != TxnState::Idle || self.batch_writes.is_empty() {
            return Ok(None);
        }
        self.batch_transaction().await
    }

    pub(super) async fn answer_pending_describes(&mut self) -> Result<(), ExecError> {
        let pending: Vec<String> = self
            .portals
            .iter()
            .filter(|(_, p)| p.describe_pending)
            .map(|(n, _)| n.clone())
            .collect();
        for name in pending {
            let Some(p) = self.portals.get_mut(&name) else {
                continue;
            };
            p.describe_pending = false;
            let plan = p.plan.clone();
            let bind = p.bind.clone();
            let stmt = p.stmt.clone();
            let default_shard = self.topo.default_shard;
            // The shards whose answer to the client's own statement
            // describes the portal.
            let described_by = match &plan {
                Plan::Route {
                    shards,
                    sql: ShardSql::Original,
                    ..
                }
                | Plan::Move { shards, .. }
                | Plan::Route {
                    shards,
                    sql: ShardSql::PerShard(_) | ShardSql::Rows { .. } | ShardSql::Params { .. },
                    kind: StmtKind::Write | StmtKind::WriteCopies,
                } => Some(shards.as_slice()),
                Plan::Read(node) => Some(node.shards()),
                // Subqueries run first: the statement as written, which a
                // shard can plan (not run).
                Plan::PreEvaluate { .. } => Some(std::slice::from_ref(&default_shard)),
                _ => None,
            };
            if let Some(shards) = described_by {
                let Some(st) = self.stmts.get(&stmt) else {
                    continue;
                };
                let sql = st
                    .template
                    .describe_text()
                    .unwrap_or_else(|| st.sql.clone());
                let types = st.types.clone();
                let tail = frontend::parse_bind(&bind)
                    .map(|b| b.tail.to_vec())
                    .unwrap_or_default();
                let shard = shards[0];
                if let Some(e) = self.ensure(&[shard]).await? {
                    self.batch_error(&e);
                    return Ok(());
                }
                let req = Request::DescribePortal {
                    sql: &sql,
                    param_types: &types,
                    bind_tail: &tail,
                };
                let o = shardgate_exec::run(&mut self.conns, &[shard], &req, &mut self.out).await?;
                if o.error.is_some() {
                    self.skip_to_sync = true;
                    if self.txn == TxnState::Active {
                        self.txn = TxnState::Failed;
                    }
                    return Ok(());
                }
            } else {
                match &plan {
                    Plan::Admin(_) => {
                        be::row_description(&mut self.out.buf, &[Column::new("result", 25, -1)])
                    }
                    Plan::Explain(_) => {
                        be::row_description(&mut self.out.buf, &[Column::new("QUERY PLAN", 25, -1)])
                    }
                    _ => be::no_data(&mut self.out.buf),
                }
            }
        }
        Ok(())
    }

    pub(super) async fn sync(&mut self) -> Result<(), ExecError> {
        if !self.skip_to_sync {
            self.answer_pending_describes().await?;
        }
        // Outside a transaction, a batch is one implicit transaction: when
        // it failed, no shard may keep its part.
        let rollback = self.skip_to_sync && self.txn == TxnState::Idle;
        // The batch became a transaction of the router's: it ends here.
        let own_txn = self.implicit && self.txn != TxnState::Idle;
        let commit = own_txn && !self.skip_to_sync && self.txn == TxnState::Active;
        if self.skip_to_sync {
            for p in self.portals.values_mut() {
                p.describe_pending = false;
            }
        }
        self.skip_to_sync = false;
        self.batch_writes.clear();
        self.batch_multi = false;
        let used: Vec<ShardId> = self
            .batch_used
            .iter()
            .copied()
            .filter(|s| self.conns.get(s).is_some_and(|c| !c.is_ready()))
            .collect();
        if !used.is_empty() {
            let mut sub: Conns = Conns::new();
            for s in &used {
                if let Some(c) = self.conns.remove(s) {
                    sub.insert(*s, c);
                }
            }
            let st = if rollback {
                shardgate_exec::rollback_batch(&mut sub)
                    .await
                    .map(|_| Default::default())
            } else {
                shardgate_exec::sync_all(&mut sub, &mut self.out).await
            };
            self.conns.append(&mut sub);
            st?;
        }
        if own_txn && let Some(e) = self.finish_txn(commit).await? {
            self.send_error(&e);
        }
        self.batch_used.clear();
        if self.txn == TxnState::Idle {
            self.portals.clear();
            self.release_all();
        } else {
            self.portals.remove("");
        }
        self.ready();
        Ok(())
    }
}

/// The RowDescription or NoData frame among a Describe's reply frames
/// (whole), empty if none.
fn result_description(reply: &[u8]) -> Bytes {
    let mut b = BytesMut::from(reply);
    while let Ok(Some(f)) = Frame::take(&mut b) {
        if matches!(f.tag, b'T' | b'n') {
            let mut out = BytesMut::new();
            f.encode(&mut out);
            return out.freeze();
        }
    }
    Bytes::new()
}
