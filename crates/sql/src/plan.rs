//! Plans: what the executor does with one statement, as data.
//!
//! The analyzer turns a statement into a [`Template`] once (at Parse time for
//! prepared statements); [`Template::resolve`] fills in bind parameters and
//! yields a [`Plan`], a small tree of primitives the executor interprets and
//! `EXPLAIN` prints with [`Plan::describe`].

use crate::aggregate::AggSpec;
use crate::error::SqlError;
use crate::params::Params;
use shardgate_core::{KeyType, KeyValue, ShardId, TableRule};
use sqlparser::ast::Statement;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A shard-key value as written in the statement: a literal, or a bind
/// parameter filled in at execution.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyExpr {
    /// A literal's text (number or string contents).
    Literal(String),
    /// `$n` (1-based).
    Param(usize),
}

/// Which shards a statement must reach, before parameters are known.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// The default shard (tables with no rule, catalog queries, no table).
    Default,
    /// Every shard.
    All,
    /// The shards owning these keys (a disjunction of full key tuples).
    Keys {
        /// The rule that places the keys.
        rule: Arc<TableRule>,
        /// Each tuple has one value per key column.
        keys: Vec<Vec<KeyExpr>>,
    },
    /// The shards owning the elements of an array of keys: `key =
    /// ANY($1)` or `key = ANY('{1,2,3}')` (a single key column).
    KeyArray {
        /// The rule that places the keys.
        rule: Arc<TableRule>,
        /// The array: a parameter, or a literal's text.
        array: KeyExpr,
    },
    /// The shards whose ranges meet a range of keys (a range-sharded
    /// table with a single key column).
    Range {
        /// The rule (its strategy is a range).
        rule: Arc<TableRule>,
        /// The lower bound and whether it is included.
        low: Option<(KeyExpr, bool)>,
        /// The upper bound and whether it is included.
        high: Option<(KeyExpr, bool)>,
    },
}

/// Statements shardgate answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// BEGIN / START TRANSACTION (its text is replayed on each shard that joins).
    Begin,
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT.
    Rollback,
    /// SET of a session parameter: name and value as SQL text.
    Set {
        /// Parameter name, lower-case.
        name: String,
        /// The statement text, replayed on shard connections.
        sql: String,
    },
    /// `SELECT set_config('name', 'value', false)` (pg_dump's preamble;
    /// asyncpg's, next to `current_setting` calls, the value maybe a bind
    /// parameter): tracked as a SET, answered with the row the default
    /// shard gives.
    SetConfig {
        /// Parameter name, lower-case.
        name: String,
        /// The new value (`None`: the form over `pg_settings`, whose rows
        /// the default shard gives).
        value: Option<String>,
        /// The call as shard connections replay it.
        sql: String,
        /// The bind parameter (1-based) that gives the value: `value` and
        /// `sql` are filled in when the statement is bound.
        param: Option<usize>,
        /// The answer's columns (name, and the `current_setting(...)`
        /// call it shows, `None` for the set_config call's value); empty
        /// for the form over `pg_settings`.
        columns: Vec<(String, Option<String>)>,
    },
    /// SQL-level `PREPARE name [(types)] AS statement`: kept by the session.
    Prepare {
        /// Statement name (as PostgreSQL folds it).
        name: String,
        /// Declared parameter types, as SQL text.
        types: Vec<String>,
        /// The statement, with `$n` placeholders.
        body: String,
    },
    /// SQL-level `EXECUTE name [(args)]`: the statement with the arguments
    /// in place of its placeholders ([`crate::analyze::substitute`]).
    Execute {
        /// Statement name.
        name: String,
        /// Argument expressions, as SQL text.
        args: Vec<String>,
    },
    /// SET LOCAL, SAVEPOINT, RELEASE, ROLLBACK TO: sent to every shard in
    /// the transaction, and replayed on shards that join later.
    InTransaction,
    /// RESET ALL / DISCARD ALL of session state.
    Reset,
    /// DEALLOCATE of a client's prepared statement (`None`: ALL).
    Deallocate(Option<String>),
    /// An empty statement (only whitespace or comments).
    Empty,
    /// Answered with this command tag and nothing else.
    Tag(String),
    /// A cursor statement (see [`crate::cursor`]).
    Cursor(crate::cursor::CursorOp),
}

/// A `shardgate.*` function call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCall {
    /// Function name after `shardgate.`.
    pub function: String,
    /// Arguments as text (NULL is None).
    pub args: Vec<Option<String>>,
    /// Arguments given as bind parameters: (argument, `$n`), filled in
    /// when the statement is bound.
    pub params: Vec<(usize, usize)>,
}

/// What kind of statement it is, as far as execution cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StmtKind {
    /// Reads only.
    Read,
    /// INSERT/UPDATE/DELETE.
    Write,
    /// A write applied to every copy of a reference table: one shard's
    /// reply stands for all.
    WriteCopies,
    /// Schema change.
    Ddl,
    /// Anything else (SHOW, utility statements).
    Other,
}

/// A statement analyzed but with parameters still open.
#[derive(Debug, Clone)]
pub enum Template {
    /// Answered by the session.
    Local(Local),
    /// A shardgate admin function.
    Admin(AdminCall),
    /// Refused with an error.
    Refuse(SqlError),
    /// Sent to shards as written.
    Route {
        /// Where.
        targets: Targets,
        /// Kind of statement.
        kind: StmtKind,
        /// Why the statement cannot run on more than one shard, if it cannot
        /// (it needs a merge shardgate does not do yet).
        single_only: Option<SqlError>,
        /// What shardgate records once this DDL ran on the shards.
        learns: Option<Box<Learn>>,
        /// How to merge the shards' rows when more than one is reached
        /// (ORDER BY, LIMIT, OFFSET); `None` means concatenate.
        merge: Option<Box<crate::merge::MergeSpec>>,
        /// How to aggregate across shards when more than one is reached
        /// (aggregates, GROUP BY, HAVING, DISTINCT).
        aggregate: Option<Box<AggTemplate>>,
        /// How to give each shard only its own keys, when the statement
        /// lists several (see [`crate::keysplit`]).
        split: Option<Box<crate::keysplit::KeySplit>>,
    },
    /// An INSERT into a sharded table; rows may be split across shards.
    Insert {
        /// The table's rule.
        rule: Arc<TableRule>,
        /// Key per row.
        rows: Vec<Vec<KeyExpr>>,
        /// The parsed statement, to rewrite per shard.
        stmt: Box<Statement>,
    },
    /// An UPDATE of a shard key: rows move between shards.
    Move(Box<crate::keymove::MoveTemplate>),
    /// An INSERT that needs ids drawn by shardgate (see [`crate::ids`]):
    /// `inner` is the analysis of `stmt`, whose placeholders `$first ..
    /// $first + count - 1` stand for the ids.
    WithIds {
        /// The INSERT with id placeholders.
        stmt: Box<Statement>,
        /// The first id placeholder.
        first: usize,
        /// How many ids one execution takes.
        count: usize,
        /// How `stmt` is routed.
        inner: Box<Template>,
    },
    /// A statement whose uncorrelated subqueries over sharded tables run
    /// first (see [`crate::analyze::subquery`]), for when `original` is
    /// refused.
    PreEvaluate {
        /// The statement as it stands.
        original: Box<Template>,
        /// The subqueries, in the order of their markers.
        subs: Vec<crate::analyze::subquery::Sub>,
        /// The statement with markers in place of the subqueries.
        outer: Box<Statement>,
    },
    /// Show the plan of another statement.
    Explain(Box<Template>),
    /// `COPY ... FROM STDIN` / `TO STDOUT` (see [`crate::copy`]).
    Copy(Box<crate::copy::CopySpec>),
}

/// What a DDL statement teaches shardgate, recorded after the shards ran it.
#[derive(Debug, Clone, PartialEq)]
pub struct Learn {
    /// A created table and all its columns with their declared types (the
    /// key types of a sharded table are learned from them).
    pub columns: Option<(String, Vec<(String, String)>)>,
    /// A sharded table's column names after an `ALTER TABLE` added,
    /// dropped or renamed some (its key types stay).
    pub names: Option<(String, Vec<String>)>,
    /// Columns that default to `shardgate.next_id()`, and the statement
    /// to send instead of the client's (without those defaults).
    pub ids: Option<crate::ids::DdlIds>,
}

/// A multi-shard aggregation, planned once its parameters are known.
#[derive(Debug, Clone)]
pub struct AggTemplate {
    /// The SELECT (parameters still open).
    pub query: Box<sqlparser::ast::Query>,
    /// The plan, when the statement has no parameters.
    pub planned: Option<std::sync::Arc<AggSpec>>,
    /// A query over this aggregation's result, whose final query becomes
    /// this one's (see `crate::analyze::nested`).
    pub outer: Option<Box<sqlparser::ast::Query>>,
    /// Placeholders in `query` and the constant subqueries they stand for
    /// (see [`AggSpec::with_consts`]).
    pub consts: Vec<(String, String)>,
}

impl AggTemplate {
    fn resolve(&self, params: &Params<'_>) -> Result<std::sync::Arc<AggSpec>, SqlError> {
        if let Some(p) = &self.planned {
            return Ok(p.clone());
        }
        let mut q = (*self.query).clone();
        crate::rewrite::inline_params(&mut q, params)?;
        let spec = crate::aggregate::plan_aggregate(&q)
            .map_err(|why| crate::analyze::select::refusal(&why))?;
        Ok(std::sync::Arc::new(
            match &self.outer {
                Some(o) => {
                    let mut o = (**o).clone();
                    crate::rewrite::inline_params(&mut o, params)?;
                    spec.nest(&o)
                }
                None => spec,
            }
            .with_consts(&self.consts),
        ))
    }
}

/// The SQL a route sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardSql {
    /// The statement as the client wrote it (with its parameters).
    Original,
    /// Rewritten per shard (parameters inlined).
    PerShard(BTreeMap<ShardId, String>),
    /// An INSERT with ids drawn by shardgate, to one shard with the
    /// client's parameters (extended protocol): `sql` keeps them as `$1`
    /// .. and takes the ids as parameters `$first` .. (bigints, in text).
    Params {
        /// The statement.
        sql: String,
        /// The first id parameter.
        first: usize,
        /// The ids.
        ids: Vec<i64>,
    },
    /// A multi-row INSERT ... RETURNING split per shard (parameters
    /// inlined), whose returned rows go back in the order of its VALUES.
    Rows {
        /// The INSERT per shard.
        per: BTreeMap<ShardId, String>,
        /// The shard of each VALUES row, in order.
        order: Vec<ShardId>,
    },
}

/// Rewritten SQL per shard, and for [`ShardSql::Rows`] the shard of each
/// returned row in order.
pub type PerShardSql<'a> = (&'a BTreeMap<ShardId, String>, Option<&'a [ShardId]>);

impl ShardSql {
    /// The SQL per shard and the shard of each returned row in order, for
    /// rewritten SQL.
    pub fn per_shard(&self) -> Option<PerShardSql<'_>> {
        match self {
            ShardSql::Original | ShardSql::Params { .. } => None,
            ShardSql::PerShard(per) => Some((per, None)),
            ShardSql::Rows { per, order } => Some((per, Some(order))),
        }
    }
}

/// A resolved plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Answered by the session.
    Local(Local),
    /// A shardgate admin function.
    Admin(AdminCall),
    /// Run on these shards (in parallel) and concatenate rows, adding up
    /// row counts. One shard means a pass-through.
    Route {
        /// Target shards, sorted, at least one.
        shards: Vec<ShardId>,
        /// What to send.
        sql: ShardSql,
        /// Kind of statement.
        kind: StmtKind,
    },
    /// A read across shards whose rows are merged: a tree of primitives.
    Read(Node),
    /// Move rows to the shards of their new keys: the DELETE on these
    /// shards, then INSERTs where the returned rows belong.
    Move {
        /// The shards the DELETE reaches.
        shards: Vec<ShardId>,
        /// The DELETE per shard.
        delete: BTreeMap<ShardId, String>,
        /// The rest of the move's SQL (parameters inlined).
        sql: crate::keymove::MoveSql,
        /// The table's rule, to place the moved rows.
        rule: Arc<TableRule>,
        /// Where the key columns are in the DELETE's returned rows.
        key_positions: Vec<usize>,
    },
    /// Run these subqueries first, write their results into the outer
    /// statement and run that (see [`crate::analyze::subquery`]).
    PreEvaluate {
        /// The subqueries.
        subs: Vec<crate::analyze::subquery::Sub>,
        /// The statement with markers in place of the subqueries.
        outer: Box<Statement>,
        /// Why the statement as it stands was refused (the answer when a
        /// subquery turns out to refer to the outer query).
        refused: SqlError,
    },
    /// Describe another plan.
    Explain(Box<Plan>),
    /// A COPY to or from the client, and where its rows go.
    Copy {
        /// The statement.
        spec: Box<crate::copy::CopySpec>,
        /// Its shards.
        route: crate::copy::CopyRoute,
    },
}

/// A cross-shard read as a tree of primitives, each doing one thing to
/// streams of rows. The executor (`shardgate_exec::read`) interprets it,
/// `EXPLAIN` prints it. The planner builds these shapes:
///
/// * `Project(Limit?(MergeSort(Scatter)))`: ORDER BY, LIMIT and OFFSET
///   (see [`crate::merge`]), streamed; `Limit(Concat(Scatter))`: LIMIT or
///   OFFSET without ORDER BY;
/// * `Aggregate(Scatter)`: aggregates, GROUP BY, HAVING, DISTINCT and
///   queries over them (see [`crate::aggregate`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Run SQL on shards in parallel: one stream of rows per shard.
    Scatter {
        /// Target shards, sorted, more than one.
        shards: Vec<ShardId>,
        /// What every shard runs (in the extended protocol, with the
        /// client's parameters).
        sql: String,
        /// Each shard's own SQL with only its keys (parameters inlined),
        /// when the key list was split.
        per_shard: Option<BTreeMap<ShardId, String>>,
    },
    /// Merge the input's streams, each sorted by its last `keys.len()`
    /// columns, into one sorted stream.
    MergeSort {
        /// The sort keys, in order.
        keys: Vec<crate::merge::SortKey>,
        /// The same merge reading keys from the rows' own columns where the
        /// select list returns them: the input's SQL is then replaced by
        /// this one, when the executor can compare those columns as the
        /// client asked for them (see [`crate::merge`]).
        lean: Option<Box<crate::merge::LeanMerge>>,
        /// The sorted streams.
        input: Box<Node>,
    },
    /// Pass the input's streams' rows as they come, in any order.
    Concat {
        /// The streams.
        input: Box<Node>,
    },
    /// Skip `offset` rows, then pass at most `limit` (and, `with_ties`,
    /// the rows after them that sort equal to the last: FETCH FIRST ...
    /// WITH TIES).
    Limit {
        /// Rows to pass, if limited.
        limit: Option<u64>,
        /// Rows to skip first.
        offset: u64,
        /// Also the rows tied with the last one passed.
        with_ties: bool,
        /// The rows.
        input: Box<Node>,
    },
    /// Drop the last `hidden` columns (the sort keys a merge fetched).
    Project {
        /// How many trailing columns to drop.
        hidden: usize,
        /// The rows.
        input: Box<Node>,
    },
    /// Hand the input's rows (partial aggregates, or raw rows) to the
    /// first shard as `sg_partial` and return the rows of the final query
    /// it runs over them.
    Aggregate {
        /// The partial and final queries.
        spec: std::sync::Arc<AggSpec>,
        /// The partial rows.
        input: Box<Node>,
    },
}

impl Node {
    /// The shards the tree reads (those of its scatter).
    pub fn shards(&self) -> &[ShardId] {
        match self {
            Node::Scatter { shards, .. } => shards,
            Node::MergeSort { input, .. }
            | Node::Concat { input }
            | Node::Limit { input, .. }
            | Node::Project { input, .. }
            | Node::Aggregate { input, .. } => input.shards(),
        }
    }

    fn describe_into(&self, out: &mut Vec<String>, depth: usize) {
        let pad = "  ".repeat(depth);
        let next = match self {
            Node::Scatter {
                shards,
                sql,
                per_shard,
            } => {
                let list: Vec<String> = shards.iter().map(|s| s.to_string()).collect();
                out.push(format!("{pad}Scatter Read shards=[{}]", list.join(",")));
                out.push(format!("{pad}  sql: {sql}"));
                describe_per_shard(out, &pad, per_shard.as_ref());
                None
            }
            Node::MergeSort { keys, lean, input } => {
                let keys: Vec<String> = keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| {
                        format!(
                            "#{}{}{}",
                            i + 1,
                            if k.desc { " DESC" } else { "" },
                            if k.nulls_first == k.desc {
                                ""
                            } else if k.nulls_first {
                                " NULLS FIRST"
                            } else {
                                " NULLS LAST"
                            }
                        )
                    })
                    .collect();
                out.push(format!("{pad}MergeSort keys=[{}]", keys.join(", ")));
                if let Some(lean) = lean {
                    let cols: Vec<String> = lean
                        .columns
                        .iter()
                        .map(|c| match c {
                            crate::merge::KeyColumn::Output(i) => format!("column {}", i + 1),
                            crate::merge::KeyColumn::Named(n) => format!("column {n:?}"),
                            crate::merge::KeyColumn::Hidden(i) => format!("hidden #{}", i + 1),
                        })
                        .collect();
                    out.push(format!(
                        "{pad}  lean: keys from [{}] when comparable as the client asks (else the scatter's sql)",
                        cols.join(", ")
                    ));
                    out.push(format!("{pad}    sql: {}", lean.sql));
                }
                Some(input)
            }
            Node::Concat { input } => {
                out.push(format!("{pad}Concat"));
                Some(input)
            }
            Node::Limit {
                limit,
                offset,
                with_ties,
                input,
            } => {
                let mut head = format!("{pad}Limit");
                if *offset > 0 {
                    head.push_str(&format!(" offset={offset}"));
                }
                if let Some(l) = limit {
                    head.push_str(&format!(" limit={l}"));
                }
                if *with_ties {
                    head.push_str(" with ties");
                }
                out.push(head);
                Some(input)
            }
            Node::Project { hidden, input } => {
                out.push(format!(
                    "{pad}Project (drop {hidden} hidden sort column{})",
                    if *hidden == 1 { "" } else { "s" }
                ));
                Some(input)
            }
            Node::Aggregate { spec, input } => {
                out.push(format!(
                    "{pad}Aggregate (final query on shard {}){}",
                    input
                        .shards()
                        .first()
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                    if spec.raw { " over raw rows" } else { "" }
                ));
                out.push(match spec.final_pg.strip_prefix(", ") {
                    // Nested in a WITH (see `AggSpec::nest`).
                    Some(rest) => format!("{pad}  final: WITH sg_partial AS (...), {rest}"),
                    None => format!("{pad}  final: {}", spec.final_pg),
                });
                Some(input)
            }
        };
        if let Some(n) = next {
            n.describe_into(out, depth + 1);
        }
    }
}

impl Plan {
    /// The plan as indented lines (what `EXPLAIN` shows).
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.describe_into(&mut out, 0);
        out
    }

    fn describe_into(&self, out: &mut Vec<String>, depth: usize) {
        let pad = "  ".repeat(depth);
        match self {
            Plan::Local(l) => out.push(format!("{pad}Local {l:?}")),
            Plan::Admin(a) => out.push(format!("{pad}Admin shardgate.{}", a.function)),
            Plan::Route { shards, sql, kind } => {
                let list: Vec<String> = shards.iter().map(|s| s.to_string()).collect();
                let how = if shards.len() == 1 {
                    "Route"
                } else if matches!(sql, ShardSql::Rows { .. }) {
                    "Scatter (returned rows in VALUES order)"
                } else if *kind == StmtKind::WriteCopies {
                    "Replicate (one reply for all copies)"
                } else {
                    "Scatter (concatenate)"
                };
                out.push(format!("{pad}{how} {kind:?} shards=[{}]", list.join(",")));
                match sql.per_shard() {
                    None if matches!(sql, ShardSql::Original) => {
                        out.push(format!("{pad}  sql: as written"))
                    }
                    None => {
                        if let ShardSql::Params { sql, first, ids } = sql {
                            out.push(format!("{pad}  sql: {sql}"));
                            let ids: Vec<String> = ids
                                .iter()
                                .enumerate()
                                .map(|(i, id)| format!("${}={id}", first + i))
                                .collect();
                            out.push(format!("{pad}  ids: {}", ids.join(", ")));
                        }
                    }
                    Some((m, _)) => {
                        for (s, q) in m {
                            out.push(format!("{pad}  shard {s}: {q}"));
                        }
                    }
                }
            }
            Plan::Read(n) => n.describe_into(out, depth),
            Plan::Move { delete, sql, .. } => {
                out.push(format!(
                    "{pad}MoveRows (UPDATE of the shard key: DELETE ... RETURNING, then INSERT on each new key's shard, in one transaction)"
                ));
                for (s, q) in delete {
                    out.push(format!("{pad}  shard {s}: {q}"));
                }
                out.push(format!(
                    "{pad}  then: {}(...){}",
                    sql.insert_head,
                    sql.returning.clone().unwrap_or_default()
                ));
            }
            Plan::Explain(p) => p.describe_into(out, depth),
            Plan::Copy { spec, route } => {
                use crate::copy::CopyRoute;
                let list = |v: &[ShardId]| {
                    v.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let line = match route {
                    CopyRoute::One(s) => format!("Route shards=[{s}]"),
                    CopyRoute::Copies(v) => format!("CopyToEveryCopy shards=[{}]", list(v)),
                    CopyRoute::ByKey { rule, shards } => format!(
                        "CopySplitByKey key=({}) shards=[{}]",
                        rule.key_columns().join(", "),
                        list(shards)
                    ),
                    CopyRoute::Gather(v) => {
                        format!("CopyGather (concatenate) shards=[{}]", list(v))
                    }
                    CopyRoute::Merged(_) => {
                        "CopyMerged (the query's merged rows, written as COPY data by the router)"
                            .to_string()
                    }
                };
                out.push(format!("{pad}{line}"));
                out.push(format!("{pad}  sql: {}", spec.sql));
                if let CopyRoute::Merged(plan) = route {
                    plan.describe_into(out, depth + 1);
                }
            }
            Plan::PreEvaluate { subs, outer, .. } => {
                out.push(format!(
                    "{pad}PreEvaluate (uncorrelated subqueries run first, their results written into the statement)"
                ));
                for (i, s) in subs.iter().enumerate() {
                    use crate::analyze::subquery::SubKind;
                    let kind = match &s.kind {
                        SubKind::Scalar => "a value".to_string(),
                        SubKind::In => "an IN list".to_string(),
                        SubKind::Exists => "EXISTS".to_string(),
                        SubKind::Rows { .. } => "rows to insert".to_string(),
                        SubKind::Derived {
                            name,
                            placed: Some((table, column)),
                            ..
                        } => format!(
                            "rows standing for {name}, each on the shard its {column} places under the rule of {table}"
                        ),
                        SubKind::Derived { name, .. } => {
                            format!("rows standing for {name}, on every shard")
                        }
                    };
                    out.push(format!("{pad}  subquery {} ({kind}): {}", i + 1, s.sql));
                }
                out.push(format!("{pad}  then: {outer}"));
            }
        }
    }
}

/// A split key list replaces the one statement every shard would run:
/// its SQL per shard, under the plan's own lines.
fn describe_per_shard(out: &mut Vec<String>, pad: &str, per: Option<&BTreeMap<ShardId, String>>) {
    if let Some(per) = per {
        out.push(format!("{pad}  keys split per shard:"));
        for (s, q) in per {
            out.push(format!("{pad}    shard {s}: {q}"));
        }
    }
}

impl Template {
    /// Fill in parameters and compute the target shards.
    ///
    /// # Errors
    /// A parameter that is not a valid shard-key value, a key with no
    /// placement, or a refused statement.
    pub fn resolve(
        &self,
        params: &Params<'_>,
        all: &[ShardId],
        default: ShardId,
    ) -> Result<Plan, SqlError> {
        self.resolve_with_ids(params, &[], all, default)
    }

    /// How many ids shardgate must draw for one execution (see
    /// [`crate::ids`]).
    pub fn ids_needed(&self) -> usize {
        match self {
            Template::WithIds { count, .. } => *count,
            Template::Explain(t) => t.ids_needed(),
            _ => 0,
        }
    }

    /// For an INSERT with ids drawn by shardgate: its text with every id
    /// written as 0 and the client's parameters kept, which a shard can
    /// describe (the client's own text may call `shardgate.next_id()`).
    pub fn describe_text(&self) -> Option<String> {
        match self {
            Template::WithIds {
                stmt, first, count, ..
            } => {
                let mut s = (**stmt).clone();
                crate::ids::write_typed_zeros(&mut s, *first, *count);
                Some(s.to_string())
            }
            _ => None,
        }
    }

    /// [`Template::resolve`] with the ids drawn for this execution
    /// ([`Template::ids_needed`] of them).
    ///
    /// # Errors
    /// As [`Template::resolve`]; also too few ids.
    pub fn resolve_with_ids(
        &self,
        params: &Params<'_>,
        ids: &[i64],
        all: &[ShardId],
        default: ShardId,
    ) -> Result<Plan, SqlError> {
        crate::guard(|| self.resolve_unguarded(params, ids, all, default))
    }

    fn resolve_unguarded(
        &self,
        params: &Params<'_>,
        ids: &[i64],
        all: &[ShardId],
        default: ShardId,
    ) -> Result<Plan, SqlError> {
        match self {
            Template::Local(Local::SetConfig {
                name,
                param: Some(n),
                columns,
                ..
            }) => {
                let value = match params.get(*n) {
                    Some((Some(v), binary, ty)) if !binary || matches!(ty, 0 | 25 | 1043 | 705) => {
                        std::str::from_utf8(v)
                            .map_err(|_| {
                                SqlError::State(
                                    "22021",
                                    "invalid UTF-8 in the value of set_config".into(),
                                )
                            })?
                            .to_string()
                    }
                    Some((Some(_), _, ty)) => {
                        return Err(SqlError::Unsupported(format!(
                            "set_config with a binary parameter of type {ty} is not supported; send it as text"
                        )));
                    }
                    Some((None, ..)) => {
                        return Err(SqlError::Unsupported(
                            "set_config(..., NULL, false) is not supported through shardgate; use RESET".into(),
                        ));
                    }
                    None => {
                        return Err(SqlError::State(
                            "08P01",
                            format!(
                                "bind message supplies {} parameters, but set_config needs ${n}",
                                params.len()
                            ),
                        ));
                    }
                };
                Ok(Plan::Local(Local::SetConfig {
                    sql: format!(
                        "SELECT pg_catalog.set_config('{name}', '{}', false)",
                        value.replace('\'', "''")
                    ),
                    name: name.clone(),
                    value: Some(value),
                    param: None,
                    columns: columns.clone(),
                }))
            }
            Template::Local(l) => Ok(Plan::Local(l.clone())),
            Template::Admin(a) => {
                let mut a = a.clone();
                for (arg, n) in std::mem::take(&mut a.params) {
                    let value = match params.get(n) {
                        None => {
                            return Err(SqlError::Protocol(format!(
                                "the statement uses ${n} but {} parameters were bound",
                                params.len()
                            )));
                        }
                        Some((None, ..)) => None,
                        // (Untyped parameters were described as text.)
                        Some((Some(v), binary, ty)) => Some(if binary && ty != 0 {
                            crate::binary::to_text(ty, v).ok_or_else(|| {
                                SqlError::Unsupported(format!(
                                    "a binary parameter of type {ty} to a shardgate function; send it as text"
                                ))
                            })?
                        } else {
                            std::str::from_utf8(v)
                                .map_err(|_| {
                                    SqlError::InvalidValue("invalid UTF-8 in parameter".into())
                                })?
                                .to_string()
                        }),
                    };
                    if let Some(slot) = a.args.get_mut(arg) {
                        *slot = value;
                    }
                }
                Ok(Plan::Admin(a))
            }
            Template::Refuse(e) => Err(e.clone()),
            Template::PreEvaluate {
                original,
                subs,
                outer,
            } => match original.resolve_with_ids(params, ids, all, default) {
                Ok(p) => Ok(p),
                Err(refused) if params.is_empty() => Ok(Plan::PreEvaluate {
                    subs: subs.clone(),
                    outer: outer.clone(),
                    refused,
                }),
                // The subqueries run on their own: the parameters go in as
                // literals.
                Err(refused) => {
                    let (subs, outer) = crate::analyze::subquery::with_params(subs, outer, params)?;
                    Ok(Plan::PreEvaluate {
                        subs,
                        outer: Box::new(outer),
                        refused,
                    })
                }
            },
            Template::Copy(spec) => {
                let query_plan = match &spec.query {
                    Some(q) => Some(q.resolve_with_ids(params, ids, all, default)?),
                    None => None,
                };
                let route = spec.route(all, default, query_plan.as_ref())?;
                Ok(Plan::Copy {
                    spec: spec.clone(),
                    route,
                })
            }
            Template::Explain(t) => Ok(Plan::Explain(Box::new(
                t.resolve_with_ids(params, ids, all, default)?,
            ))),
            Template::WithIds {
                stmt,
                first,
                count,
                inner,
            } => {
                if ids.len() < *count {
                    return Err(SqlError::Invalid(format!(
                        "this INSERT needs {count} ids from shardgate.next_id(), {} were drawn",
                        ids.len()
                    )));
                }
                if params.len() + 1 < *first {
                    return Err(SqlError::Protocol(format!(
                        "the statement uses ${} but {} parameters were bound",
                        first - 1,
                        params.len()
                    )));
                }
                let mut filled = (**stmt).clone();
                crate::ids::write_ids(&mut filled, *first, ids);
                let plan = match inner.as_ref() {
                    Template::Insert { rule, rows, .. } => {
                        let rows = rows
                            .iter()
                            .map(|k| {
                                k.iter()
                                    .map(|e| match e {
                                        KeyExpr::Param(n) if *n >= *first => KeyExpr::Literal(
                                            ids.get(n - first).copied().unwrap_or(0).to_string(),
                                        ),
                                        e => e.clone(),
                                    })
                                    .collect()
                            })
                            .collect();
                        Template::Insert {
                            rule: rule.clone(),
                            rows,
                            stmt: Box::new(filled.clone()),
                        }
                        .resolve(params, all, default)?
                    }
                    other => other.resolve(params, all, default)?,
                };
                // The client's text lacks the ids: always send the filled
                // statement; to one shard with the client's parameters, as
                // parameters (any type, any format), else inlined.
                match plan {
                    Plan::Route {
                        shards,
                        sql: ShardSql::Original,
                        kind,
                    } if *first > 1 && shards.len() == 1 && first - 1 + count <= 65535 => {
                        Ok(Plan::Route {
                            shards,
                            sql: ShardSql::Params {
                                sql: stmt.to_string(),
                                first: *first,
                                ids: ids[..*count].to_vec(),
                            },
                            kind,
                        })
                    }
                    Plan::Route {
                        shards,
                        sql: ShardSql::Original,
                        kind,
                    } => {
                        crate::rewrite::inline_statement(&mut filled, params)?;
                        let text = filled.to_string();
                        Ok(Plan::Route {
                            sql: ShardSql::PerShard(
                                shards.iter().map(|s| (*s, text.clone())).collect(),
                            ),
                            shards,
                            kind,
                        })
                    }
                    p @ Plan::Route { .. } => Ok(p),
                    _ => Err(SqlError::Invalid(
                        "an INSERT with ids is not a route".into(),
                    )),
                }
            }
            Template::Move(m) => {
                let sql = m.sql(params)?;
                let Plan::Route {
                    shards, sql: how, ..
                } = m.delete.resolve(params, all, default)?
                else {
                    return Err(SqlError::Invalid(
                        "a key move's DELETE is not a route".into(),
                    ));
                };
                let delete = match how {
                    ShardSql::PerShard(per) | ShardSql::Rows { per, .. } => per,
                    ShardSql::Original | ShardSql::Params { .. } => {
                        shards.iter().map(|s| (*s, sql.delete.clone())).collect()
                    }
                };
                Ok(Plan::Move {
                    shards,
                    delete,
                    sql,
                    rule: m.rule.clone(),
                    key_positions: m.key_positions.clone(),
                })
            }
            Template::Route {
                targets,
                kind,
                single_only,
                merge,
                aggregate,
                split,
                learns,
            } => {
                // The shard of each key, when every key has one.
                let mut per_key = Vec::new();
                let shards = match targets {
                    Targets::Default => vec![default],
                    Targets::All => all.to_vec(),
                    Targets::Keys { rule, keys } => {
                        let mut v = Vec::new();
                        let mut all_placed = true;
                        for k in keys {
                            match place(rule, k, params) {
                                Ok(s) => v.push(s),
                                // A key that cannot be placed (a NULL, a
                                // literal of another type) is still filtered
                                // by every shard: reaching all is correct.
                                Err(_) => {
                                    v = all.to_vec();
                                    all_placed = false;
                                    break;
                                }
                            }
                        }
                        if all_placed {
                            per_key = v.clone();
                        }
                        v.sort();
                        v.dedup();
                        v
                    }
                    Targets::KeyArray { rule, array } => {
                        array_shards(rule, array, params, default).unwrap_or_else(|| all.to_vec())
                    }
                    Targets::Range { rule, low, high } => {
                        range_shards(rule, low.as_ref(), high.as_ref(), params)
                            .unwrap_or_else(|| all.to_vec())
                    }
                };
                if shards.len() > 1 {
                    if let Some(e) = single_only {
                        return Err(e.clone());
                    }
                    // Each shard gets only its own keys where the key list
                    // can be split; otherwise every shard gets all of them
                    // (still correct: a shard holds no row of another's).
                    let split_sql = |sql: &str, params: &Params<'_>| {
                        split
                            .as_ref()
                            .filter(|_| !per_key.is_empty())
                            .and_then(|k| k.split_sql(sql, &per_key, params).ok())
                    };
                    if let Some(a) = aggregate {
                        let spec = a.resolve(params)?;
                        let per_shard = split_sql(&spec.partial_sql, &Params::none());
                        return Ok(Plan::Read(Node::Aggregate {
                            input: Box::new(Node::Scatter {
                                shards,
                                sql: spec.partial_sql.clone(),
                                per_shard,
                            }),
                            spec,
                        }));
                    }
                    if let Some(spec) = merge {
                        let spec = spec.bind(params)?;
                        let per_shard = split_sql(&spec.sql, params);
                        return Ok(Plan::Read(spec.tree(shards, per_shard)));
                    }
                    if let Some(split) = split
                        && !per_key.is_empty()
                        && let Ok(per) = split.per_shard(&per_key, params)
                    {
                        return Ok(Plan::Route {
                            shards,
                            sql: ShardSql::PerShard(per),
                            kind: *kind,
                        });
                    }
                }
                // DDL rewritten for shardgate's own defaults.
                if let Some(text) = learns
                    .as_ref()
                    .and_then(|l| l.ids.as_ref())
                    .and_then(|i| i.rewritten.as_ref())
                {
                    return Ok(Plan::Route {
                        sql: ShardSql::PerShard(
                            shards.iter().map(|s| (*s, text.clone())).collect(),
                        ),
                        shards,
                        kind: *kind,
                    });
                }
                Ok(Plan::Route {
                    shards,
                    sql: ShardSql::Original,
                    kind: *kind,
                })
            }
            Template::Insert { rule, rows, stmt } => {
                let mut per_row = Vec::with_capacity(rows.len());
                for k in rows {
                    per_row.push(place(rule, k, params)?);
                }
                let mut shards = per_row.clone();
                shards.sort();
                shards.dedup();
                if shards.len() == 1 {
                    return Ok(Plan::Route {
                        shards,
                        sql: ShardSql::Original,
                        kind: StmtKind::Write,
                    });
                }
                let m = crate::rewrite::split_insert(stmt, &per_row, params)?;
                let returning =
                    matches!(stmt.as_ref(), Statement::Insert(i) if i.returning.is_some());
                Ok(Plan::Route {
                    shards,
                    sql: if returning {
                        ShardSql::Rows {
                            per: m,
                            order: per_row,
                        }
                    } else {
                        ShardSql::PerShard(m)
                    },
                    kind: StmtKind::Write,
                })
            }
        }
    }
}

/// Bind parameter `$n` as an integer (LIMIT and OFFSET counts): text, or
/// binary int2/int4/int8 (or an unspecified type sent as 8 bytes, which
/// PostgreSQL would take as the bigint a LIMIT is); `None` for NULL.
///
/// # Errors
/// A missing parameter or a value that is not an integer.
pub(crate) fn param_i64(params: &Params<'_>, n: usize) -> Result<Option<i64>, SqlError> {
    let Some((v, binary, oid)) = params.get(n) else {
        return Err(SqlError::Protocol(format!(
            "the statement uses ${n} but {} parameters were bound",
            params.len()
        )));
    };
    let Some(v) = v else {
        return Ok(None);
    };
    let bad = || {
        SqlError::State(
            "22P02",
            format!("invalid input syntax for type bigint: parameter ${n}"),
        )
    };
    if binary {
        return match (oid, v.len()) {
            (21, 2) => Ok(Some(i16::from_be_bytes([v[0], v[1]]).into())),
            (23, 4) => Ok(Some(i32::from_be_bytes([v[0], v[1], v[2], v[3]]).into())),
            (20 | 0, 8) => Ok(Some(i64::from_be_bytes(v.try_into().map_err(|_| bad())?))),
            _ => Err(bad()),
        };
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .map(Some)
        .ok_or_else(bad)
}

fn key_value(
    ty: Option<KeyType>,
    e: &KeyExpr,
    params: &Params<'_>,
    table: &str,
    col: &str,
) -> Result<KeyValue, SqlError> {
    let ty = ty.ok_or_else(|| {
        SqlError::Unsupported(format!(
            "the type of shard key column {table}.{col} is unknown; create the table through shardgate or set key_type in the configuration"
        ))
    })?;
    let bad = |e: shardgate_core::CoreError| match e {
        shardgate_core::CoreError::OutOfRange { .. } => SqlError::State("22003", e.to_string()),
        e => SqlError::InvalidValue(e.to_string()),
    };
    match e {
        KeyExpr::Literal(s) => KeyValue::parse(ty, s).map_err(bad),
        KeyExpr::Param(n) => match params.get(*n) {
            None => Err(SqlError::Invalid(format!("there is no parameter ${n}"))),
            Some((None, _, _)) => Err(SqlError::NotNull(format!(
                "null value in column \"{col}\" of relation \"{table}\": a row of a sharded table needs its shard key"
            ))),
            Some((Some(raw), true, oid)) => KeyValue::from_binary(ty, oid, raw).map_err(bad),
            Some((Some(raw), false, _)) => {
                let s = std::str::from_utf8(raw)
                    .map_err(|_| SqlError::InvalidValue("invalid UTF-8 in parameter".into()))?;
                KeyValue::parse(ty, s).map_err(bad)
            }
        },
    }
}

/// The shards owning the elements of an array of keys, or `None` when the
/// array cannot be read (then every shard). An empty array (or one of
/// NULLs only) matches no row: one shard answers.
fn array_shards(
    rule: &TableRule,
    array: &KeyExpr,
    params: &Params<'_>,
    default: ShardId,
) -> Option<Vec<ShardId>> {
    let shardgate_core::TableKind::Sharded { key_types, .. } = &rule.kind else {
        return None;
    };
    let ty = key_types.first().copied().flatten()?;
    let values: Vec<shardgate_core::KeyValue> = match array {
        KeyExpr::Literal(text) => parse_text_array(text)?
            .into_iter()
            .flatten()
            .map(|e| shardgate_core::KeyValue::parse(ty, &e).ok())
            .collect::<Option<_>>()?,
        KeyExpr::Param(n) => match params.get(*n)? {
            (None, _, _) => Vec::new(),
            (Some(raw), false, _) => parse_text_array(std::str::from_utf8(raw).ok()?)?
                .into_iter()
                .flatten()
                .map(|e| shardgate_core::KeyValue::parse(ty, &e).ok())
                .collect::<Option<_>>()?,
            (Some(raw), true, _) => {
                // Elements are read by the array's own element type.
                let (elem, vals) = parse_binary_array(raw)?;
                vals.into_iter()
                    .flatten()
                    .map(|e| shardgate_core::KeyValue::from_binary(ty, elem, e).ok())
                    .collect::<Option<_>>()?
            }
        },
    };
    let mut v = Vec::new();
    for k in values {
        v.push(rule.place(&[k]).ok()?);
    }
    if v.is_empty() {
        v.push(default);
    }
    v.sort();
    v.dedup();
    Some(v)
}

/// The elements of a one-dimensional array in PostgreSQL's text form
/// (`{1,"a b",NULL}`), or `None` for anything else.
fn parse_text_array(s: &str) -> Option<Vec<Option<String>>> {
    let inner = s.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut e = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => e.push(chars.next()?),
                    '"' => break,
                    c => e.push(c),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if matches!(c, '{' | '}' | '"' | '\\') {
                    return None;
                }
                e.push(c);
                chars.next();
            }
            e = e.trim().to_string();
        }
        out.push(if !quoted && e.eq_ignore_ascii_case("null") {
            None
        } else {
            Some(e)
        });
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// The element type and elements of a one-dimensional array in
/// PostgreSQL's binary form, or `None` for anything else.
pub(crate) fn parse_binary_array(b: &[u8]) -> Option<(u32, Vec<Option<&[u8]>>)> {
    let int = |at: usize| -> Option<i32> {
        Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let ndim = int(0)?;
    let elem = int(8)? as u32;
    if ndim == 0 {
        return Some((elem, Vec::new()));
    }
    if ndim != 1 {
        return None;
    }
    let n = int(12)?;
    let mut at = 20;
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n.max(0) {
        let len = int(at)?;
        at += 4;
        if len < 0 {
            out.push(None);
        } else {
            let end = at.checked_add(len as usize)?;
            out.push(Some(b.get(at..end)?));
            at = end;
        }
    }
    Some((elem, out))
}

/// The shards of a range-sharded table whose ranges meet the keys from
/// `low` to `high`, or `None` when a bound cannot be read (a NULL, another
/// type): then every shard.
fn range_shards(
    rule: &TableRule,
    low: Option<&(KeyExpr, bool)>,
    high: Option<&(KeyExpr, bool)>,
    params: &Params<'_>,
) -> Option<Vec<ShardId>> {
    let shardgate_core::TableKind::Sharded {
        columns,
        key_types,
        strategy: shardgate_core::Strategy::Range { bounds, shards },
        overrides,
        ..
    } = &rule.kind
    else {
        return None;
    };
    let ty = key_types.first().copied().flatten();
    let col = columns.first().map(String::as_str).unwrap_or("?");
    let value = |e: &KeyExpr| {
        // `id < 1000.4` compares as numeric: an integer key's bound must
        // be an integer, or every shard is reached.
        if ty == Some(shardgate_core::KeyType::Int) {
            let text = match e {
                KeyExpr::Literal(s) => Some(s.as_str()),
                KeyExpr::Param(n) => match params.get(*n) {
                    Some((Some(raw), false, _)) => std::str::from_utf8(raw).ok(),
                    _ => None,
                },
            };
            if let Some(t) = text {
                let t = t.trim();
                let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
            }
        }
        key_value(ty, e, params, &rule.table, col).ok()
    };
    // shards[i] owns [bounds[i-1], bounds[i]).
    let first = match low {
        Some((e, _)) => {
            let v = value(e)?;
            bounds.partition_point(|b| b <= &v)
        }
        None => 0,
    };
    let last = match high {
        Some((e, inclusive)) => {
            let v = value(e)?;
            if *inclusive {
                bounds.partition_point(|b| b <= &v)
            } else {
                bounds.partition_point(|b| b < &v)
            }
        }
        None => shards.len() - 1,
    };
    let mut v: Vec<ShardId> = if first <= last {
        shards[first..=last].to_vec()
    } else {
        // An empty range: one shard answers (with no rows).
        vec![shards[first.min(shards.len() - 1)]]
    };
    // Keys moved elsewhere by a tenant override may be anywhere.
    v.extend(overrides.iter().map(|(_, s)| *s));
    v.sort();
    v.dedup();
    Some(v)
}

/// The shard of one key tuple.
pub(crate) fn place(
    rule: &TableRule,
    key: &[KeyExpr],
    params: &Params<'_>,
) -> Result<ShardId, SqlError> {
    let shardgate_core::TableKind::Sharded {
        columns, key_types, ..
    } = &rule.kind
    else {
        return Err(SqlError::Invalid(format!("{} is not sharded", rule.table)));
    };
    let mut vals = Vec::with_capacity(key.len());
    for (i, e) in key.iter().enumerate() {
        let col = columns.get(i).map(String::as_str).unwrap_or("?");
        vals.push(key_value(
            key_types.get(i).copied().flatten(),
            e,
            params,
            &rule.table,
            col,
        )?);
    }
    rule.place(&vals)
        .map_err(|e| SqlError::InvalidValue(e.to_string()))
}

#[cfg(test)]
mod array_tests {
    use super::*;

    #[test]
    fn text_arrays() {
        assert_eq!(
            parse_text_array("{1, 2,NULL,\"a b\",\"x\\\"y\"}").unwrap(),
            vec![
                Some("1".into()),
                Some("2".into()),
                None,
                Some("a b".into()),
                Some("x\"y".into())
            ]
        );
        assert_eq!(parse_text_array("{}").unwrap(), vec![]);
        assert!(parse_text_array("{{1,2},{3,4}}").is_none());
        assert!(parse_text_array("1,2").is_none());
    }

    #[test]
    fn binary_arrays() {
        let mut b = Vec::new();
        for v in [1i32, 0, 20, 2, 1] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(&8i32.to_be_bytes());
        b.extend_from_slice(&7i64.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        let (elem, vals) = parse_binary_array(&b).unwrap();
        assert_eq!(elem, 20);
        assert_eq!(vals, vec![Some(&7i64.to_be_bytes()[..]), None]);
        assert!(parse_binary_array(&b[..10]).is_none());
    }
}
