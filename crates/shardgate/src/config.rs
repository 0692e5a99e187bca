//! The configuration file (TOML) and the embedded default.
//!
//! ```toml
//! listen = "127.0.0.1:6432"
//! data_dir = "shardgate-data"
//! [[shards]]
//! name = "s0"
//! url = "postgres://postgres@127.0.0.1:55433/app"   # or: sqlite = "shardgate-data/s0.db"
//! [[tables]]
//! name = "orders"
//! shard_key = ["customer_id"]
//! strategy = "hash"
//! [[reference_tables]]
//! name = "products"
//! ```

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use shardgate_core::{KeyType, KeyValue, ShardId, Strategy, StrategyKind, TableKind, TableRule};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Where the metadata store (and embedded shards) live.
    pub data_dir: Option<PathBuf>,
    /// Connections per shard.
    pub pool_size: Option<usize>,
    /// The most partial rows (groups per shard, or raw rows) a cross-shard
    /// GROUP BY / DISTINCT / aggregate may hold in the router before the
    /// statement fails with SQLSTATE 54000 (default 1,000,000).
    pub max_merge_rows: Option<usize>,
    /// The most bytes of partial rows (as SQL text) a cross-shard
    /// aggregation may hold before it fails with SQLSTATE 54000 (default
    /// 268435456, 256 MiB).
    pub max_merge_bytes: Option<usize>,
    /// Run single-shard statements of the simple protocol as prepared
    /// statements on PostgreSQL shards, outside transaction blocks
    /// (default true): the shard parses and plans each statement shape
    /// once per connection instead of once per query.
    pub prepare_simple: Option<bool>,
    /// Shared pipelined connections ("lanes") per PostgreSQL shard that
    /// carry the extended protocol's single-statement autocommit reads of
    /// all sessions (default 0: every statement takes a pooled connection
    /// of its own). See `shardgate_backend::lane`.
    pub lanes: Option<usize>,
    /// This router's id in the transactions it prepares on shards (letters,
    /// digits, `-`). Every router sharing shards needs its own; by default
    /// one is made up and kept in the data directory.
    pub router_id: Option<String>,
    /// The node number (0-1023) of this router's `shardgate.next_id()`,
    /// instead of one leased from the metadata store. Routers that do not
    /// share a metadata store need distinct ones for ids to be unique.
    pub id_node: Option<u16>,
    /// The shards, in order (their position is their id).
    #[serde(default)]
    pub shards: Vec<ShardConfig>,
    /// Sharded tables.
    #[serde(default)]
    pub tables: Vec<TableConfig>,
    /// Reference tables (a copy on every shard).
    #[serde(default)]
    pub reference_tables: Vec<ReferenceConfig>,
}

/// One shard.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardConfig {
    /// Its name.
    pub name: String,
    /// A `postgres://` URL.
    pub url: Option<String>,
    /// Or the path of an embedded SQLite database.
    pub sqlite: Option<PathBuf>,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    fn list(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => s
                .split(',')
                .map(|c| c.trim().to_lowercase())
                .filter(|c| !c.is_empty())
                .collect(),
            OneOrMany::Many(v) => v.iter().map(|c| c.trim().to_lowercase()).collect(),
        }
    }
}

/// A scalar in a config file (numbers and strings both name key values).
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum Scalar {
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => s.clone(),
        }
    }
}

/// One range of a range-sharded table: values below `to` (and at or above
/// the previous range's `to`) live on `shard`; the last range has no `to`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeConfig {
    /// Owner.
    pub shard: String,
    /// Exclusive upper bound; absent for the last range.
    pub to: Option<Scalar>,
}

/// A tenant override: this key lives on this shard.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    /// Key values, one per key column.
    pub key: Vec<Scalar>,
    /// The shard.
    pub shard: String,
}

/// A sharded table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Table name.
    pub name: String,
    /// Key column(s).
    pub shard_key: OneOrMany,
    /// hash (default), range, list, directory, consistent.
    pub strategy: Option<String>,
    /// The key columns' SQL types (else learned from the table).
    pub key_type: Option<OneOrMany>,
    /// For `range`.
    #[serde(default)]
    pub ranges: Vec<RangeConfig>,
    /// For `list` and `directory`: shard name → values.
    #[serde(default)]
    pub values: HashMap<String, Vec<Scalar>>,
    /// For `list` and `directory`: where other values go.
    pub default_shard: Option<String>,
    /// For `consistent`: points per shard (default 64).
    pub vnodes: Option<u32>,
    /// Tenant overrides.
    #[serde(default)]
    pub overrides: Vec<OverrideConfig>,
}

/// A reference table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceConfig {
    /// Table name.
    pub name: String,
}

impl Config {
    /// Read and parse a file; errors name the file and the key.
    ///
    /// # Errors
    /// Unreadable file or invalid TOML/keys.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let c: Config =
            toml::from_str(&text).map_err(|e| anyhow!("config file {}: {e}", path.display()))?;
        if c.shards.is_empty() {
            bail!(
                "config file {}: key `shards`: at least one [[shards]] entry is needed",
                path.display()
            );
        }
        Ok(c)
    }

    /// The embedded default: 4 SQLite shards under `data_dir`.
    pub fn embedded(data_dir: &Path) -> Config {
        Config {
            shards: (0..4)
                .map(|i| ShardConfig {
                    name: format!("s{i}"),
                    url: None,
                    sqlite: Some(data_dir.join(format!("s{i}.db"))),
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Build the configured rules, given the shard names.
    ///
    /// # Errors
    /// Unknown shards, strategies or types, bad ranges: each names the file
    /// and key.
    pub fn rules(&self, file: &str) -> Result<Vec<TableRule>> {
        let names: Vec<&str> = self.shards.iter().map(|s| s.name.as_str()).collect();
        let ids: Vec<ShardId> = (0..names.len() as u32).map(ShardId).collect();
        let shard = |at: &str, n: &str| -> Result<ShardId> {
            names
                .iter()
                .position(|x| *x == n)
                .map(|i| ShardId(i as u32))
                .ok_or_else(|| {
                    anyhow!("config file {file}: {at}: unknown shard {n:?} (shards are {names:?})")
                })
        };
        let mut out = Vec::new();
        for (i, t) in self.tables.iter().enumerate() {
            let at = format!("tables[{i}] ({})", t.name);
            let cols = t.shard_key.list();
            if cols.is_empty() {
                bail!("config file {file}: {at}.shard_key: at least one column is needed");
            }
            let key_types: Vec<Option<KeyType>> = match &t.key_type {
                None => vec![None; cols.len()],
                Some(k) => {
                    let l = k.list();
                    if l.len() != cols.len() {
                        bail!(
                            "config file {file}: {at}.key_type: {} type(s) for {} key column(s)",
                            l.len(),
                            cols.len()
                        );
                    }
                    l.iter()
                        .map(|ty| {
                            KeyType::from_sql_type(ty)
                                .map(Some)
                                .ok_or_else(|| anyhow!("config file {file}: {at}.key_type: {ty:?} cannot be a shard key type"))
                        })
                        .collect::<Result<_>>()?
                }
            };
            let kind: StrategyKind = t
                .strategy
                .as_deref()
                .unwrap_or("hash")
                .parse()
                .map_err(|e| anyhow!("config file {file}: {at}.strategy: {e}"))?;
            let first_ty = || {
                key_types[0].ok_or_else(|| anyhow!("config file {file}: {at}.key_type: needed for strategy {kind:?} to read its values"))
            };
            let strategy = match kind {
                StrategyKind::Hash => Strategy::hash(&ids)?,
                StrategyKind::Consistent => {
                    let named: Vec<(ShardId, &str)> = ids
                        .iter()
                        .zip(names.iter())
                        .map(|(i, n)| (*i, *n))
                        .collect();
                    Strategy::consistent(&named, t.vnodes.unwrap_or(64))
                        .map_err(|e| anyhow!("config file {file}: {at}: {e}"))?
                }
                StrategyKind::Range => {
                    let ty = first_ty()?;
                    let mut parts = Vec::new();
                    for (j, r) in t.ranges.iter().enumerate() {
                        let bound = match &r.to {
                            Some(v) => Some(KeyValue::parse(ty, &v.text()).map_err(|e| {
                                anyhow!("config file {file}: {at}.ranges[{j}].to: {e}")
                            })?),
                            None => None,
                        };
                        parts.push((bound, shard(&format!("{at}.ranges[{j}].shard"), &r.shard)?));
                    }
                    Strategy::range(parts)
                        .map_err(|e| anyhow!("config file {file}: {at}.ranges: {e}"))?
                }
                StrategyKind::List | StrategyKind::Directory => {
                    let ty = first_ty()?;
                    let mut m = HashMap::new();
                    for (s, vals) in &t.values {
                        let id = shard(&format!("{at}.values"), s)?;
                        for v in vals {
                            let kv = KeyValue::parse(ty, &v.text())
                                .map_err(|e| anyhow!("config file {file}: {at}.values.{s}: {e}"))?;
                            if let Some(prev) = m.insert(kv.clone(), id)
                                && prev != id
                            {
                                bail!(
                                    "config file {file}: {at}.values: value {kv} is listed for two shards"
                                );
                            }
                        }
                    }
                    let default = match &t.default_shard {
                        Some(d) => Some(shard(&format!("{at}.default_shard"), d)?),
                        None => None,
                    };
                    if kind == StrategyKind::List {
                        Strategy::List { values: m, default }
                    } else {
                        Strategy::Directory {
                            entries: m,
                            default,
                        }
                    }
                }
            };
            let mut overrides = Vec::new();
            for (j, o) in t.overrides.iter().enumerate() {
                if o.key.len() != cols.len() {
                    bail!(
                        "config file {file}: {at}.overrides[{j}].key: {} value(s) for {} key column(s)",
                        o.key.len(),
                        cols.len()
                    );
                }
                let mut key = Vec::new();
                for (c, v) in o.key.iter().enumerate() {
                    let ty = key_types[c].ok_or_else(|| {
                        anyhow!("config file {file}: {at}.key_type: needed for overrides")
                    })?;
                    key.push(
                        KeyValue::parse(ty, &v.text())
                            .map_err(|e| anyhow!("config file {file}: {at}.overrides[{j}]: {e}"))?,
                    );
                }
                overrides.push((key, shard(&format!("{at}.overrides[{j}].shard"), &o.shard)?));
            }
            let mut rule = TableRule::sharded(&t.name.to_lowercase(), cols, strategy);
            if let TableKind::Sharded {
                key_types: kt,
                overrides: ov,
                ..
            } = &mut rule.kind
            {
                *kt = key_types;
                *ov = overrides;
            }
            out.push(rule);
        }
        for r in &self.reference_tables {
            out.push(TableRule::reference(&r.name.to_lowercase()));
        }
        let mut seen = std::collections::HashSet::new();
        for r in &out {
            if !seen.insert(r.table.clone()) {
                bail!("config file {file}: table {} is declared twice", r.table);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<TableRule>> {
        let c: Config = toml::from_str(s).map_err(|e| anyhow!("{e}"))?;
        c.rules("test.toml")
    }

    const SHARDS: &str = "[[shards]]\nname = \"s0\"\nsqlite = \"a.db\"\n[[shards]]\nname = \"s1\"\nsqlite = \"b.db\"\n";

    #[test]
    fn reads_every_strategy() {
        let rules = parse(&format!(
            "{SHARDS}
[[tables]]
name = \"orders\"
shard_key = [\"customer_id\"]
[[tables]]
name = \"events\"
shard_key = \"ts\"
strategy = \"range\"
key_type = \"timestamp\"
ranges = [{{ shard = \"s0\", to = \"2026-01-01\" }}, {{ shard = \"s1\" }}]
[[tables]]
name = \"users\"
shard_key = \"region\"
strategy = \"list\"
key_type = \"text\"
values = {{ s0 = [\"eu\"], s1 = [\"us\"] }}
[[tables]]
name = \"t\"
shard_key = \"tenant_id,user_id\"
strategy = \"consistent\"
key_type = [\"bigint\", \"bigint\"]
overrides = [{{ key = [1, 2], shard = \"s1\" }}]
[[reference_tables]]
name = \"products\"
"
        ))
        .unwrap();
        assert_eq!(rules.len(), 5);
        let ev = &rules[1];
        assert_eq!(
            ev.place(&[KeyValue::parse(KeyType::Timestamp, "2025-06-01").unwrap()])
                .unwrap(),
            ShardId(0)
        );
        assert_eq!(
            rules[3]
                .place(&[KeyValue::Int(1), KeyValue::Int(2)])
                .unwrap(),
            ShardId(1)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse(&format!(
            "{SHARDS}[[tables]]\nname = \"o\"\nshard_key = \"c\"\nstrategy = \"zigzag\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("tables[0] (o).strategy"), "{e}");
        let e = parse(&format!("{SHARDS}[[tables]]\nname = \"o\"\nshard_key = \"c\"\nstrategy = \"range\"\nkey_type = \"int\"\nranges = [{{ shard = \"s9\" }}]\n")).unwrap_err();
        assert!(e.to_string().contains("unknown shard \"s9\""), "{e}");
        let e = parse(&format!("{SHARDS}[[tables]]\nname = \"o\"\nshard_key = \"c\"\nstrategy = \"range\"\nkey_type = \"int\"\nranges = [{{ shard = \"s0\", to = 5 }}]\n")).unwrap_err();
        assert!(e.to_string().contains("owned by no shard"), "{e}");
        assert!(toml::from_str::<Config>("listen = 1\nbogus = 2").is_err());
    }
}
