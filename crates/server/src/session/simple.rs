//! The simple query protocol: the plan cache, forwarding a query as it is
//! to one shard, implicit transactions of multi-statement queries, and
//! running a plan on several shards.

use super::*;
use bytes::BufMut;
use shardgate_backend::ShardTarget;
use shardgate_exec::Merger;
use shardgate_sql::normalize::Normalized;

impl Session {
    pub(super) async fn simple_query(&mut self, f: &Frame) -> Result<(), ExecError> {
        let sql = match frontend::parse_query(&f.body) {
            Ok(s) => s.to_string(),
            Err(e) => {
                self.send_error(&err_fields("08P01", e.to_string()));
                self.ready();
                return Ok(());
            }
        };
        self.refresh_topology();
        if self.txn != TxnState::Failed
            && let Some((shard, kind, norm)) = self.cached_single_shard(&sql)
        {
            if self.may_prepare(shard, &norm) {
                return self.forward_prepared(f, shard, kind, norm).await;
            }
            return self.forward_simple(f, shard, kind).await;
        }
        let analyzed = shardgate_sql::analyze_all(&sql, &self.topo);
        if analyzed.is_empty() {
            be::empty_query(&mut self.out.buf);
            self.ready();
            return Ok(());
        }
        let plans: Vec<Result<Plan, SqlError>> = analyzed
            .iter()
            .map(|a| self.resolve_plan(&a.template, &Params::none()))
            .collect();
        // Fast path: every statement goes, as written, to the same one
        // shard: forward the client's message unchanged.
        if self.txn != TxnState::Failed
            && let Some((shard, kind)) = single_target(&plans)
        {
            return self.forward_simple(f, shard, kind).await;
        }
        // Several statements in one query string form one implicit
        // transaction, as in PostgreSQL: all of them or none.
        let implicit = analyzed.len() > 1
            && self.txn == TxnState::Idle
            && !analyzed.iter().any(|a| {
                matches!(
                    a.template,
                    Template::Local(Local::Begin | Local::Commit | Local::Rollback)
                )
            });
        if implicit {
            self.begin_implicit();
        }
        let planned_at = self.topo.version;
        for (a, plan) in analyzed.iter().zip(plans) {
            // A statement before this one changed the rules (DDL, a
            // shardgate.* call): plan this one again under the new ones.
            self.refresh_topology();
            let again = (self.topo.version != planned_at).then(|| {
                let t = shardgate_sql::analyze(&a.sql, &self.topo);
                let p = self.resolve_plan(&t, &Params::none());
                (t, p)
            });
            let (template, plan) = match again {
                Some((t, p)) => (std::borrow::Cow::Owned(t), p),
                None => (std::borrow::Cow::Borrowed(&a.template), plan),
            };
            let done = match plan {
                Err(e) => {
                    let fields = super::refusal(&self.router, &e, &a.sql).await;
                    self.fail_statement(&fields);
                    Done::Failed
                }
                Ok(p) => self.run_plan_simple(&p, &template, &a.sql).await?,
            };
            if matches!(done, Done::Failed) {
                break;
            }
        }
        if implicit && self.txn != TxnState::Idle {
            let commit = self.txn == TxnState::Active;
            if let Some(e) = self.finish_txn(commit).await? {
                self.send_error(&e);
            }
        }
        self.end_simple();
        Ok(())
    }

    /// Forward a client's Query message as it is to one shard.
    pub(super) async fn forward_simple(
        &mut self,
        f: &Frame,
        shard: ShardId,
        kind: StmtKind,
    ) -> Result<(), ExecError> {
        if let Some(e) = self.check_write(&[shard], kind) {
            self.fail_statement(&e);
        } else if let Some(e) = self.ensure(&[shard]).await? {
            self.fail_statement(&e);
        } else {
            let o = shardgate_exec::run(&mut self.conns, &[shard], &Request::Raw(f), &mut self.out)
                .await?;
            self.after_statement(&o);
        }
        self.end_simple();
        Ok(())
    }

    /// The plan cache: a single statement whose normalized text (literals
    /// as parameters) was analyzed before, and that resolves, with this
    /// text's literals, to one shard as written.
    pub(super) fn cached_single_shard(
        &mut self,
        sql: &str,
    ) -> Option<(ShardId, StmtKind, Normalized)> {
        let normalized = shardgate_sql::normalize::normalize(sql)?;
        let norm = normalized.text.as_str();
        if self.plan_cache_version != self.topo.version {
            self.plan_cache.clear();
            self.plan_cache_version = self.topo.version;
        }
        let template = match self.plan_cache.get(norm) {
            Some(t) => t.clone(),
            None => {
                let first = norm
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if !matches!(
                    first.as_str(),
                    "select" | "insert" | "update" | "delete" | "with"
                ) || norm.contains("shardgate")
                {
                    return None;
                }
                let t = Arc::new(shardgate_sql::analyze(norm, &self.topo));
                if self.plan_cache.len() >= PLAN_CACHE_SIZE {
                    self.plan_cache.clear();
                    self.no_prepare.clear();
                }
                self.plan_cache.insert(norm.to_string(), t.clone());
                t
            }
        };
        // (An INSERT with ids drawn here is a `Template::WithIds`: never
        // sent as written.)
        // (A statement whose subqueries may run first still goes to one
        // shard as written when it resolves to one.)
        if !matches!(
            *template,
            Template::Route { .. } | Template::Insert { .. } | Template::PreEvaluate { .. }
        ) {
            return None;
        }
        let params = Params {
            values: normalized
                .values
                .iter()
                .map(|v| Some(v.as_bytes()))
                .collect(),
            binary: Vec::new(),
            types: Vec::new(),
        };
        match template.resolve(&params, &self.topo.shards(), self.topo.default_shard) {
            Ok(Plan::Route {
                shards,
                sql: ShardSql::Original,
                kind,
            }) if shards.len() == 1 && kind != StmtKind::Ddl => Some((shards[0], kind, normalized)),
            _ => None,
        }
    }

    /// May this single-shard statement run as a prepared statement on its
    /// shard (see [`Session::forward_prepared`])?
    fn may_prepare(&self, shard: ShardId, norm: &Normalized) -> bool {
        self.router.prepare_simple
            && self.txn == TxnState::Idle
            && norm.values.len() <= MAX_PREPARED_PARAMS
            && !self.no_prepare.contains(&norm.text)
            && self
                .router
                .pools
                .get(shard.0 as usize)
                .is_some_and(|p| matches!(p.target, ShardTarget::Pg(_)))
    }

    /// Run a simple-protocol statement outside a transaction block as a
    /// prepared statement on its one shard: the normalized text (literals
    /// as parameters typed as PostgreSQL types the literals) is parsed and
    /// planned once per shard connection, then bound with this query's
    /// literals, described and executed in one round trip. The client sees
    /// the simple protocol's reply.
    ///
    /// If the shard fails the statement before BindComplete, nothing ran
    /// (and the implicit transaction is over): the client's own text is
    /// sent instead, so the answer, success or error, is exactly the one
    /// PostgreSQL gives that text. A shape PostgreSQL cannot analyse as a
    /// parameterized statement (class 42 errors, e.g. an untyped parameter
    /// in the select list, or `DATE $1`) is not prepared again in this
    /// session.
    async fn forward_prepared(
        &mut self,
        f: &Frame,
        shard: ShardId,
        kind: StmtKind,
        norm: Normalized,
    ) -> Result<(), ExecError> {
        if let Some(e) = self.check_write(&[shard], kind) {
            self.fail_statement(&e);
            self.end_simple();
            return Ok(());
        }
        let mut tail =
            BytesMut::with_capacity(16 + norm.values.iter().map(|v| v.len() + 4).sum::<usize>());
        tail.put_i16(0); // every parameter in text format
        tail.put_i16(norm.values.len() as i16);
        for v in &norm.values {
            tail.put_i32(v.len() as i32);
            tail.put_slice(v.as_bytes());
        }
        tail.put_i16(0); // text results
        if matches!(kind, StmtKind::Read | StmtKind::Write)
            && self
                .simple_on_lane(
                    shard,
                    kind == StmtKind::Write,
                    &norm.text,
                    &norm.types,
                    &tail,
                )
                .await
        {
            self.end_simple();
            return Ok(());
        }
        if let Some(e) = self.ensure(&[shard]).await? {
            self.fail_statement(&e);
            self.end_simple();
            return Ok(());
        }
        let req = Request::Extended {
            sql: &norm.text,
            param_types: &norm.types,
            bind_tail: &tail,
            portal: "",
            describe: true,
            max_rows: 0,
            bound: false,
            sync: true,
        };
        let start = self.out.buf.len();
        let flushed = self.out.flushed;
        let o = shardgate_exec::run_merged(
            &mut self.conns,
            &[shard],
            &req,
            &mut self.out,
            Merger::new(1).simple_reply(),
        )
        .await?;
        let Some(e) = &o.error else {
            self.after_statement(&o);
            self.end_simple();
            return Ok(());
        };
        // Only errors the text itself would also meet (or not) are worth
        // a second try; a cancel, a lock or statement timeout, a
        // serialization failure or a resource error must not run the
        // statement again.
        let retry = ["42", "22", "0A", "26"]
            .iter()
            .any(|c| e.code.starts_with(c));
        if o.bound || !retry || self.out.flushed != flushed {
            self.after_statement(&o);
            self.end_simple();
            return Ok(());
        }
        // Nothing ran: answer the client's own text instead.
        if e.code.starts_with("42") {
            self.no_prepare.insert(norm.text);
        }
        self.out.buf.truncate(start);
        let o =
            shardgate_exec::run(&mut self.conns, &[shard], &Request::Raw(f), &mut self.out).await?;
        self.after_statement(&o);
        self.end_simple();
        Ok(())
    }

    pub(super) fn end_simple(&mut self) {
        if self.txn == TxnState::Idle {
            self.release_all();
        }
        self.ready();
    }

    pub(super) fn fail_statement(&mut self, e: &ErrorFields) {
        self.send_error(e);
        if self.txn == TxnState::Active {
            self.txn = TxnState::Failed;
        }
    }

    pub(super) fn after_statement(&mut self, o: &Outcome) -> Done {
        if o.error.is_some() {
            if self.txn == TxnState::Active {
                self.txn = TxnState::Failed;
            }
            Done::Failed
        } else {
            Done::Ok
        }
    }

    pub(super) fn aborted(&mut self) -> Done {
        self.send_error(&err_fields(
            "25P02",
            "current transaction is aborted, commands ignored until end of transaction block",
        ));
        Done::Failed
    }

    pub(super) async fn run_plan_simple(
        &mut self,
        plan: &Plan,
        template: &Template,
        sql: &str,
    ) -> Result<Done, ExecError> {
        if self.txn == TxnState::Failed
            && !matches!(
                plan,
                Plan::Local(Local::Commit | Local::Rollback | Local::InTransaction)
            )
        {
            return Ok(self.aborted());
        }
        match plan {
            Plan::Local(Local::Cursor(shardgate_sql::cursor::CursorOp::Fetch {
                name,
                dir,
                moves,
            })) if !self.cursors.contains_key(name) && self.portals.contains_key(name) => {
                self.move_portal(name, *dir, *moves).await
            }
            Plan::Local(Local::Cursor(op)) => match self.cursor_target(op, &Params::none()) {
                Some(shard) => {
                    if matches!(op, shardgate_sql::cursor::CursorOp::Close(None)) {
                        self.close_all_elsewhere().await?;
                    }
                    let p = super::cursors::single_route(shard);
                    let done = Box::pin(self.run_plan_simple(&p, template, sql)).await?;
                    self.cursor_done(op, shard, matches!(done, Done::Ok));
                    Ok(done)
                }
                None => self.run_held_cursor(op).await,
            },
            Plan::Local(l) => self.run_local(l, sql).await,
            Plan::Admin(call) => {
                let r = crate::admin::run(&self.router, call).await;
                self.refresh_topology();
                match r {
                    Ok((cols, rows)) => {
                        let types = crate::admin::column_types(&call.function, cols.len());
                        self.local_rows(&cols, &types, &rows, true, false, &[]);
                        Ok(Done::Ok)
                    }
                    Err(e) => {
                        self.fail_statement(&e);
                        Ok(Done::Failed)
                    }
                }
            }
            Plan::Explain(p) => {
                let rows: Vec<Vec<Option<String>>> =
                    p.describe().into_iter().map(|l| vec![Some(l)]).collect();
                self.local_rows(&["QUERY PLAN".to_string()], &[25], &rows, true, true, &[]);
                Ok(Done::Ok)
            }
            Plan::Move {
                shards,
                delete,
                sql,
                rule,
                key_positions,
            } => {
                self.run_move(
                    shards,
                    delete,
                    sql,
                    rule,
                    key_positions,
                    super::moves::Reply::Simple,
                )
                .await
            }
            Plan::Copy { spec, route } => self.run_copy(spec, route).await,
            Plan::PreEvaluate {
                subs,
                outer,
                refused,
            } => {
                self.run_pre_evaluated(subs, outer, refused, super::moves::Reply::Simple)
                    .await
            }
            Plan::Read(node) => {
                let req = shardgate_exec::ReadRequest {
                    extended: false,
                    param_types: &[],
                    params: &[0, 0, 0, 0],
                    result_formats: &[],
                    describe: true,
                    bytewise_text: self.router.bytewise_text,
                    max_rows: self.router.max_merge_rows,
                    max_bytes: self.router.max_merge_bytes,
                };
                self.run_read_plan(node, &req).await
            }
            Plan::Route {
                shards,
                sql: ShardSql::Original,
                kind,
            } => {
                let d = self.route_simple(shards, sql, *kind).await?;
                self.learn_after(&d, template).await;
                Ok(d)
            }
            Plan::Route { shards, sql, kind } => {
                let Some((per, order)) = sql.per_shard() else {
                    // Parameters the simple protocol has none of.
                    self.fail_statement(&err_fields(
                        "08P01",
                        "the statement needs bind parameters, which a simple query cannot give",
                    ));
                    return Ok(Done::Failed);
                };
                let d = self
                    .route_with(shards, *kind, |_| Request::SimplePer(per), false, order)
                    .await?;
                self.learn_after(&d, template).await;
                Ok(d)
            }
        }
    }

    /// Run a merge plan (both protocols): every shard's batch ends synced.
    /// Run a read plan (both protocols).
    pub(super) async fn run_read_plan(
        &mut self,
        node: &shardgate_sql::Node,
        req: &shardgate_exec::ReadRequest<'_>,
    ) -> Result<Done, ExecError> {
        if let Some(e) = self.ensure(node.shards()).await? {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        let start = self.out.buf.len();
        let flushed = self.out.flushed;
        let mut o = shardgate_exec::run_read(&mut self.conns, node, req, &mut self.out).await?;
        // DDL changed the result of a statement the shards had prepared
        // ("cached plan must not change result type"): the failed
        // statements are forgotten, and one PostgreSQL would have planned
        // the text afresh. Run it once more if nothing reached the client,
        // no transaction block holds the shards' work and the columns are
        // described with this run (a client that described its prepared
        // statement before gets the error, as from PostgreSQL).
        if o.rows == 0
            && req.describe
            && self.txn == TxnState::Idle
            && self.out.flushed == flushed
            && o.error.as_ref().is_some_and(|e| {
                e.code == "0A000"
                    && e.message
                        .contains("cached plan must not change result type")
            })
        {
            self.out.buf.truncate(start);
            o = shardgate_exec::run_read(&mut self.conns, node, req, &mut self.out).await?;
        }
        Ok(self.after_statement(&o))
    }

    pub(super) async fn route_simple(
        &mut self,
        shards: &[ShardId],
        sql: &str,
        kind: StmtKind,
    ) -> Result<Done, ExecError> {
        let concurrently =
            kind == StmtKind::Ddl && sql.to_ascii_lowercase().contains("concurrently");
        self.route_with(shards, kind, |_| Request::Simple(sql), concurrently, None)
            .await
    }

    /// Run a statement on `shards`. Outside a transaction a multi-shard
    /// write or DDL is wrapped in a transaction on each shard that commits
    /// only if all succeeded: writes on PostgreSQL shards with two-phase
    /// commit (atomic even if the router dies), DDL and embedded shards
    /// shard by shard.
    pub(super) async fn route_with<'r>(
        &mut self,
        shards: &[ShardId],
        kind: StmtKind,
        req: impl Fn(()) -> Request<'r>,
        no_wrap: bool,
        row_order: Option<&[ShardId]>,
    ) -> Result<Done, ExecError> {
        if let Some(e) = self.check_write(shards, kind) {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        if let Some(e) = self.ensure(shards).await? {
            self.fail_statement(&e);
            return Ok(Done::Failed);
        }
        let wrap = self.txn == TxnState::Idle
            && shards.len() > 1
            && matches!(
                kind,
                StmtKind::Write | StmtKind::WriteCopies | StmtKind::Ddl
            )
            && !no_wrap;
        if wrap && let Some(e) = shardgate_exec::internal(&mut self.conns, shards, "BEGIN").await? {
            self.send_error(&e);
            let _ = shardgate_exec::internal(&mut self.conns, shards, "ROLLBACK").await?;
            return Ok(Done::Failed);
        }
        let r = req(());
        let extended = !matches!(
            r,
            Request::Raw(_) | Request::Simple(_) | Request::SimplePer(_)
        );
        let mut merger = match kind {
            StmtKind::WriteCopies => shardgate_exec::Merger::copies(shards.len()),
            StmtKind::Ddl => shardgate_exec::Merger::new(shards.len()).one_notice_each(),
            _ => shardgate_exec::Merger::new(shards.len()),
        };
        if let Some(order) = row_order
            && shards.len() > 1
        {
            merger = merger.in_order(
                order
                    .iter()
                    .map(|s| shards.iter().position(|x| x == s).unwrap_or(0))
                    .collect(),
            );
        }
        let o =
            shardgate_exec::run_merged(&mut self.conns, shards, &r, &mut self.out, merger).await?;
        if kind == StmtKind::Ddl && o.error.is_none() {
            self.schema_changed();
        }
        if wrap {
            if extended {
                let mut sub: Conns = Conns::new();
                for s in shards {
                    if let Some(c) = self.conns.remove(s) {
                        sub.insert(*s, c);
                    }
                }
                let st = shardgate_exec::sync_all(&mut sub, &mut self.out).await;
                self.conns.append(&mut sub);
                st?;
            }
            let two_phase = o.error.is_none()
                && matches!(kind, StmtKind::Write | StmtKind::WriteCopies)
                && shards.iter().all(|s| {
                    self.router
                        .pools
                        .get(s.0 as usize)
                        .is_some_and(|p| matches!(p.target, shardgate_backend::ShardTarget::Pg(_)))
                });
            if two_phase {
                // All shards or none, even if the router dies mid-commit.
                if let Some(e) = self.commit_two_phase(shards).await? {
                    self.send_error(&e);
                    return Ok(Done::Failed);
                }
            } else {
                let end = if o.error.is_none() {
                    "COMMIT"
                } else {
                    "ROLLBACK"
                };
                if let Some(e) = shardgate_exec::internal(&mut self.conns, shards, end).await? {
                    self.send_error(&e);
                    return Ok(Done::Failed);
                }
            }
        }
        Ok(self.after_statement(&o))
    }
}

/// If every plan routes, as written, to one and the same shard and none
/// needs the session (transaction control, admin), that shard.
pub(super) fn single_target(plans: &[Result<Plan, SqlError>]) -> Option<(ShardId, StmtKind)> {
    let mut target = None;
    let mut kind = StmtKind::Read;
    for p in plans {
        match p {
            Ok(Plan::Route {
                shards,
                sql: ShardSql::Original,
                kind: k,
            }) if shards.len() == 1 => {
                if *k == StmtKind::Ddl {
                    return None;
                }
                if target.is_some_and(|t| t != shards[0]) {
                    return None;
                }
                target = Some(shards[0]);
                if matches!(k, StmtKind::Write | StmtKind::WriteCopies) {
                    kind = StmtKind::Write;
                }
            }
            _ => return None,
        }
    }
    target.map(|t| (t, kind))
}
