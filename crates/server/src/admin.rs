//! The `shardgate.*` functions: declaring sharded and reference tables
//! through SQL, and looking at the topology.
//!
//! - `SELECT shardgate.shard_table('orders', 'customer_id' [, 'hash'])`;
//!   composite keys as `'tenant_id,user_id'`; strategies `hash` (default)
//!   and `consistent` (ranges and lists are declared in the configuration).
//! - `SELECT shardgate.reference_table('products')`
//! - `SELECT shardgate.shard_of('orders', '42')`: which shard owns a key.
//! - `SELECT shardgate.directory_set('accounts', '42', 's2')`: put a key of a
//!   directory-sharded table on a shard (only for keys with no rows yet).
//! - `SELECT shardgate.tables()`, `SELECT shardgate.shards()`
//! - `SELECT shardgate.next_id()`: a globally unique, time-ordered bigint.

use crate::router::Router;
use shardgate_core::{KeyType, KeyValue, ShardId, Strategy, StrategyKind, TableKind, TableRule};
use shardgate_meta::MetaError;
use shardgate_sql::AdminCall;
use shardgate_sql::ids::{AlterStep, IdChange};
use shardgate_wire::backend::ErrorFields;

/// Rows an admin function returns: column names and text rows.
pub type Rows = (Vec<String>, Vec<Vec<Option<String>>>);

fn err(code: &str, message: impl Into<String>) -> ErrorFields {
    ErrorFields::new(code, message)
}

struct AdminErr(ErrorFields);

impl From<MetaError> for AdminErr {
    fn from(e: MetaError) -> Self {
        AdminErr(err("58000", e.to_string()))
    }
}

/// A table or column name as SQL writes it: `"Mixed"` keeps its case,
/// an unquoted name folds to lower case.
fn ident(s: &str) -> Result<String, ErrorFields> {
    let t = s.trim();
    if let Some(inner) = t.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        if inner.is_empty() || inner.replace("\"\"", "").contains('"') {
            return Err(err("42602", format!("invalid name {s:?}")));
        }
        return Ok(inner.replace("\"\"", "\""));
    }
    if t.is_empty() || !t.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(err("42602", format!("invalid name {s:?}")));
    }
    Ok(t.to_lowercase())
}

/// A name quoted for use in SQL.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The type OIDs of an admin function's `n` result columns (text, but
/// `next_id` is a bigint).
pub fn column_types(function: &str, n: usize) -> Vec<u32> {
    match function {
        "next_id" => vec![20; n],
        _ => vec![25; n],
    }
}

/// Run an admin function.
///
/// # Errors
/// An error for the client (bad arguments, unknown table, a table that
/// already holds rows, a store failure).
pub async fn run(router: &Router, call: &AdminCall) -> Result<Rows, ErrorFields> {
    let arg = |i: usize| call.args.get(i).cloned().flatten();
    let one = |name: &str, v: String| Ok((vec![name.to_string()], vec![vec![Some(v)]]));
    match call.function.as_str() {
        "next_id" => {
            if !call.args.is_empty() {
                return Err(err("42883", "usage: shardgate.next_id()"));
            }
            let id = router.next_id().map_err(|e| err("55000", e))?;
            one("next_id", id.to_string())
        }
        "shard_table" => {
            let (Some(table), Some(cols)) = (arg(0), arg(1)) else {
                return Err(err(
                    "42883",
                    "usage: shardgate.shard_table(table, key_columns [, strategy])",
                ));
            };
            let table = ident(&table)?;
            let cols: Vec<String> = cols.split(',').map(ident).collect::<Result<_, _>>()?;
            let kind: StrategyKind = arg(2)
                .as_deref()
                .unwrap_or("hash")
                .parse()
                .map_err(|e: shardgate_core::CoreError| err("22023", e.to_string()))?;
            let topo = router.topology();
            let shards = topo.shards();
            let strategy = match kind {
                StrategyKind::Hash => Strategy::hash(&shards),
                StrategyKind::Consistent => {
                    let named: Vec<(ShardId, &str)> = shards.iter().map(|s| (*s, topo.shard_names[s.0 as usize].as_str())).collect();
                    Strategy::consistent(&named, 64)
                }
                StrategyKind::Directory => Ok(Strategy::Directory { entries: Default::default(), default: None }),
                other => {
                    return Err(err(
                        "0A000",
                        format!("strategy {other:?} needs its ranges or lists in the configuration file; shard_table takes hash or consistent"),
                    ));
                }
            }
            .map_err(|e| err("22023", e.to_string()))?;
            let all = table_columns(router, &table).await?;
            let mut key_types = Vec::new();
            for c in &cols {
                let Some((_, ty)) = all.iter().find(|(n, _)| n == c) else {
                    return Err(err(
                        "42703",
                        format!("column \"{c}\" of relation \"{table}\" does not exist"),
                    ));
                };
                let kt = KeyType::from_sql_type(ty).ok_or_else(|| {
                    err("0A000", format!("column {table}.{c} has type {ty}, which cannot be a shard key (use an integer, text, uuid, date or timestamp column)"))
                })?;
                key_types.push(Some(kt));
            }
            ensure_empty(router, &table).await?;
            let numbered = number_with_next_id(router, &table).await?;
            let mut rule = TableRule::sharded(&table, cols.clone(), strategy);
            if let TableKind::Sharded {
                key_types: kt,
                all_columns,
                ..
            } = &mut rule.kind
            {
                *kt = key_types;
                *all_columns = all.iter().map(|(n, _)| n.clone()).collect();
            }
            put_rule(router, rule).await?;
            let msg = format!(
                "{table} sharded by {} ({kind:?}) over {} shards",
                cols.join(", "),
                shards.len()
            )
            .to_lowercase();
            one("shard_table", msg + &numbered_note(&numbered))
        }
        "reference_table" => {
            let Some(table) = arg(0) else {
                return Err(err("42883", "usage: shardgate.reference_table(table)"));
            };
            let table = ident(&table)?;
            table_columns(router, &table).await?;
            ensure_empty(router, &table).await?;
            // Each copy would number its rows itself: the same row could
            // get other ids on other shards.
            let numbered = number_with_next_id(router, &table).await?;
            put_rule(router, TableRule::reference(&table)).await?;
            one(
                "reference_table",
                format!("{table} is a reference table on every shard") + &numbered_note(&numbered),
            )
        }
        "shard_of" => {
            let Some(table) = arg(0) else {
                return Err(err(
                    "42883",
                    "usage: shardgate.shard_of(table, key [, key2 ...])",
                ));
            };
            let topo = router.topology();
            let rule = topo
                .rule(&ident(&table)?)
                .ok_or_else(|| err("42P01", format!("{table} is not a sharded table")))?;
            let TableKind::Sharded {
                key_types, columns, ..
            } = &rule.kind
            else {
                return Err(err("42P01", format!("{table} is a reference table")));
            };
            let mut key = Vec::new();
            for (i, c) in columns.iter().enumerate() {
                let v = arg(i + 1)
                    .ok_or_else(|| err("22023", format!("missing value for key column {c}")))?;
                let ty = key_types[i]
                    .ok_or_else(|| err("0A000", format!("the type of {table}.{c} is unknown")))?;
                key.push(KeyValue::parse(ty, &v).map_err(|e| err("22P02", e.to_string()))?);
            }
            let s = rule.place(&key).map_err(|e| err("22023", e.to_string()))?;
            one("shard_of", topo.shard_name(s))
        }
        "directory_set" => {
            let (Some(table), Some(key), Some(shard)) = (arg(0), arg(1), arg(2)) else {
                return Err(err(
                    "42883",
                    "usage: shardgate.directory_set(table, key, shard)",
                ));
            };
            let table = ident(&table)?;
            let topo = router.topology();
            let sid = topo
                .shard_names
                .iter()
                .position(|n| *n == shard)
                .map(|i| ShardId(i as u32))
                .ok_or_else(|| err("22023", format!("unknown shard {shard:?}")))?;
            let Some(TableRule {
                kind:
                    TableKind::Sharded {
                        key_types,
                        strategy: Strategy::Directory { entries, .. },
                        columns,
                        ..
                    },
                ..
            }) = topo.rule(&table).map(|r| &**r)
            else {
                return Err(err("22023", format!("{table} is not sharded by directory")));
            };
            let ty = key_types[0].ok_or_else(|| {
                err(
                    "0A000",
                    format!("the type of {table}.{} is unknown", columns[0]),
                )
            })?;
            let kv = KeyValue::parse(ty, &key).map_err(|e| err("22P02", e.to_string()))?;
            if let Some(cur) = entries.get(&kv) {
                if *cur == sid {
                    return one("directory_set", format!("{key} already on {shard}"));
                }
                let pool = &router.pools[cur.0 as usize];
                let mut c = pool
                    .checkout()
                    .await
                    .map_err(|e| err("08006", e.to_string()))?;
                let rows = c
                    .simple_rows(&format!(
                        "SELECT 1 FROM {} WHERE {} = {} LIMIT 1",
                        quoted(&table),
                        quoted(&columns[0]),
                        kv.to_sql_literal()
                    ))
                    .await
                    .map_err(|e| err("XX000", e.to_string()))?;
                pool.checkin(c);
                if !rows.is_empty() {
                    return Err(err(
                        "0A000",
                        format!(
                            "key {key} already has rows on {}; moving them needs resharding",
                            pool.name
                        ),
                    ));
                }
            }
            router
                .update_rules(|rules: &mut Vec<TableRule>| -> Result<(), AdminErr> {
                    for r in rules.iter_mut().filter(|r| r.table == table) {
                        if let TableKind::Sharded {
                            strategy: Strategy::Directory { entries, .. },
                            ..
                        } = &mut r.kind
                        {
                            entries.insert(kv.clone(), sid);
                        }
                    }
                    Ok(())
                })
                .await
                .map_err(|AdminErr(e)| e)?;
            one("directory_set", format!("{key} on {shard}"))
        }
        "tables" => {
            let topo = router.topology();
            let mut rows: Vec<Vec<Option<String>>> = topo
                .rules
                .values()
                .map(|r| match &r.kind {
                    TableKind::Reference => {
                        vec![Some(r.table.clone()), Some("reference".into()), None, None]
                    }
                    TableKind::Sharded {
                        columns, strategy, ..
                    } => vec![
                        Some(r.table.clone()),
                        Some("sharded".into()),
                        Some(columns.join(",")),
                        Some(format!("{:?}", strategy.kind()).to_lowercase()),
                    ],
                })
                .collect();
            rows.sort();
            Ok((
                vec![
                    "table".into(),
                    "kind".into(),
                    "shard_key".into(),
                    "strategy".into(),
                ],
                rows,
            ))
        }
        "shards" => {
            let topo = router.topology();
            let rows = topo
                .shard_names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let kind = match &router.pools[i].target {
                        shardgate_backend::ShardTarget::Pg(c) => {
                            format!("postgres {}:{}/{}", c.host, c.port, c.database)
                        }
                        shardgate_backend::ShardTarget::Lite(l) => {
                            format!("embedded {}", l.path.display())
                        }
                    };
                    vec![Some(i.to_string()), Some(n.clone()), Some(kind)]
                })
                .collect();
            Ok((vec!["id".into(), "name".into(), "target".into()], rows))
        }
        other => Err(err(
            "42883",
            format!("function shardgate.{other} does not exist"),
        )),
    }
}

async fn put_rule(router: &Router, rule: TableRule) -> Result<(), ErrorFields> {
    let table = rule.table.clone();
    router
        .update_rules(|rules: &mut Vec<TableRule>| -> Result<(), AdminErr> {
            if let Some(existing) = rules.iter().find(|r| r.table == table)
                && *existing != rule
            {
                return Err(AdminErr(err(
                    "42P07",
                    format!("table {table} already has a rule; changing it needs resharding"),
                )));
            }
            rules.retain(|r| r.table != table);
            rules.push(rule);
            Ok(())
        })
        .await
        .map(|_| ())
        .map_err(|AdminErr(e)| e)
}

/// Record the columns of a table created through shardgate, so that a rule
/// declared for it in the configuration learns its key types.
///
/// # Errors
/// A store failure.
pub async fn learn_columns(
    router: &Router,
    table: &str,
    cols: &[(String, String)],
) -> Result<(), ErrorFields> {
    let topo = router.topology();
    let Some(TableRule {
        kind:
            TableKind::Sharded {
                columns,
                key_types,
                all_columns,
                ..
            },
        ..
    }) = topo.rule(table).map(|r| &**r)
    else {
        return Ok(());
    };
    let names: Vec<String> = cols.iter().map(|(n, _)| n.clone()).collect();
    let types: Vec<Option<KeyType>> = columns
        .iter()
        .map(|k| {
            cols.iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, t)| KeyType::from_sql_type(t))
        })
        .collect();
    if *all_columns == names && *key_types == types {
        return Ok(());
    }
    let table = table.to_string();
    router
        .update_rules(|rules: &mut Vec<TableRule>| -> Result<(), AdminErr> {
            for r in rules.iter_mut().filter(|r| r.table == table) {
                if let TableKind::Sharded {
                    key_types,
                    all_columns,
                    ..
                } = &mut r.kind
                {
                    *key_types = types.clone();
                    *all_columns = names.clone();
                }
            }
            Ok(())
        })
        .await
        .map(|_| ())
        .map_err(|AdminErr(e)| e)
}

/// Record a sharded table's column names after an `ALTER TABLE` added,
/// dropped or renamed some (its key types stay as they are).
///
/// # Errors
/// A store failure.
pub async fn learn_column_names(
    router: &Router,
    table: &str,
    names: &[String],
) -> Result<(), ErrorFields> {
    let table = table.to_string();
    router
        .update_rules(|rules: &mut Vec<TableRule>| -> Result<(), AdminErr> {
            for r in rules.iter_mut().filter(|r| r.table == table) {
                if let TableKind::Sharded { all_columns, .. } = &mut r.kind
                    && !all_columns.is_empty()
                {
                    *all_columns = names.to_vec();
                }
            }
            Ok(())
        })
        .await
        .map(|_| ())
        .map_err(|AdminErr(e)| e)
}

/// Record how a DDL statement changed the columns that default to
/// `shardgate.next_id()`.
///
/// # Errors
/// A store failure.
pub async fn learn_ids(router: &Router, change: &IdChange) -> Result<(), ErrorFields> {
    router
        .update_metadata(
            |md: &mut shardgate_meta::Metadata| -> Result<(), AdminErr> {
                change.apply(&mut md.id_defaults);
                Ok(())
            },
        )
        .await
        .map(|_| ())
        .map_err(|AdminErr(e)| e)
}

/// The columns and declared types of a table, from the default shard.
///
/// # Errors
/// 42P01 if the table does not exist there.
pub async fn table_columns(
    router: &Router,
    table: &str,
) -> Result<Vec<(String, String)>, ErrorFields> {
    let (pool, mut c) = default_conn(router).await?;
    let lit = table.replace('\'', "''");
    let reg = quoted(table).replace('\'', "''");
    let sql = if c.is_embedded() {
        format!("SELECT name, type FROM pragma_table_info('{lit}') ORDER BY cid")
    } else {
        format!(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = to_regclass('{reg}') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        )
    };
    let rows = c
        .simple_rows(&sql)
        .await
        .map_err(|e| err("XX000", e.to_string()))?;
    pool.checkin(c);
    if rows.is_empty() {
        return Err(err(
            "42P01",
            format!("relation \"{table}\" does not exist (create it through shardgate first)"),
        ));
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.first().cloned().flatten().unwrap_or_default(),
                r.get(1).cloned().flatten().unwrap_or_default(),
            )
        })
        .collect())
}

/// Refuse when any shard holds rows of the table (moving them needs
/// resharding, which is not available yet).
/// The default shard's pool and a connection from it (to check back in).
async fn default_conn(
    router: &Router,
) -> Result<
    (
        std::sync::Arc<shardgate_backend::Pool>,
        shardgate_backend::PooledConn,
    ),
    ErrorFields,
> {
    let topo = router.topology();
    let pool = router.pools[topo.default_shard.0 as usize].clone();
    let c = pool
        .checkout()
        .await
        .map_err(|e| err("08006", e.to_string()))?;
    Ok((pool, c))
}

/// What `shard_table`/`reference_table` add about the columns
/// [`number_with_next_id`] converted (nothing when none).
fn numbered_note(numbered: &[String]) -> String {
    if numbered.is_empty() {
        return String::new();
    }
    format!(
        "; {} take{} values from shardgate.next_id()",
        numbered.join(", "),
        if numbered.len() == 1 { "s" } else { "" }
    )
}

/// A sharded table's identity and serial columns (Django's and
/// SQLAlchemy's default ids) would count from 1 on every shard: the same
/// ids on each, and rows found by id on several (a reference table's
/// copies could number the same row differently). Each bigint one becomes
/// a `shardgate.next_id()` column (its identity or sequence default
/// dropped on every shard; shardgate draws the ids, unique across shards);
/// a narrower one cannot hold those ids and is refused. The columns
/// converted.
async fn number_with_next_id(router: &Router, table: &str) -> Result<Vec<String>, ErrorFields> {
    let (pool, mut c) = default_conn(router).await?;
    if c.is_embedded() {
        pool.checkin(c);
        return Ok(Vec::new());
    }
    let reg = quoted(table).replace('\'', "''");
    let rows = c
        .simple_rows(&format!(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attidentity <> '' \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = to_regclass('{reg}') AND a.attnum > 0 AND NOT a.attisdropped \
             AND (a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%') ORDER BY a.attnum"
        ))
        .await
        .map_err(|e| err("XX000", e.to_string()))?;
    pool.checkin(c);
    let mut converted = Vec::new();
    let mut sql = Vec::new();
    for r in rows {
        let (Some(Some(col)), Some(Some(ty)), Some(Some(identity))) =
            (r.first(), r.get(1), r.get(2))
        else {
            continue;
        };
        if ty != "bigint" {
            return Err(err(
                "0A000",
                format!(
                    "column {table}.{col} numbers rows by itself ({}), which every shard would do from 1 (the same ids on each); shardgate draws ids for a bigint column instead: ALTER TABLE {table} ALTER COLUMN {col} TYPE bigint, then shard the table",
                    if identity == "t" {
                        "an identity column"
                    } else {
                        "a serial column"
                    }
                ),
            ));
        }
        let q = quoted(col);
        sql.push(if identity == "t" {
            format!(
                "ALTER TABLE {} ALTER COLUMN {q} DROP IDENTITY IF EXISTS",
                quoted(table)
            )
        } else {
            format!(
                "ALTER TABLE {} ALTER COLUMN {q} DROP DEFAULT",
                quoted(table)
            )
        });
        converted.push(col.clone());
    }
    if converted.is_empty() {
        return Ok(converted);
    }
    for pool in &router.pools {
        let mut c = pool
            .checkout()
            .await
            .map_err(|e| err("08006", e.to_string()))?;
        for q in &sql {
            c.simple_rows(q).await.map_err(|e| {
                err(
                    "XX000",
                    format!(
                        "making {table} take ids from shardgate.next_id() on shard {}: {e}",
                        pool.name
                    ),
                )
            })?;
        }
        pool.checkin(c);
    }
    learn_ids(
        router,
        &IdChange::Alter {
            table: table.to_string(),
            steps: converted.iter().cloned().map(AlterStep::Add).collect(),
        },
    )
    .await?;
    Ok(converted)
}

async fn ensure_empty(router: &Router, table: &str) -> Result<(), ErrorFields> {
    for pool in &router.pools {
        let mut c = pool
            .checkout()
            .await
            .map_err(|e| err("08006", e.to_string()))?;
        let rows = c
            .simple_rows(&format!("SELECT 1 FROM {} LIMIT 1", quoted(table)))
            .await
            .map_err(|e| {
                err(
                    "42P01",
                    format!("checking {table} on shard {}: {e}", pool.name),
                )
            })?;
        pool.checkin(c);
        if !rows.is_empty() {
            return Err(err(
                "0A000",
                format!(
                    "table {table} already holds rows on shard {}; declaring it needs resharding, which is not supported yet",
                    pool.name
                ),
            ));
        }
    }
    Ok(())
}
