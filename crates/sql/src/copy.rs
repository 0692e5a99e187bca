//! `COPY ... FROM STDIN` and `COPY ... TO STDOUT`: what the router needs of
//! the statement to split a COPY's rows by shard key, copy them to every
//! copy of a reference table, or gather them from the shards; and how the
//! planner routes it ([`CopyRoute`]). Splitting the data itself is the
//! executor's (`shardgate_exec::copy`).

use crate::error::SqlError;
use crate::plan::{ShardSql, Template};
use shardgate_core::{ShardId, TableKind, TableRule, Topology};
use sqlparser::ast::{CopyOption, CopySource, CopyTarget, Statement};
use std::sync::Arc;

/// The data format of a COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// PostgreSQL's text format (tab-separated, backslash escapes).
    Text,
    /// CSV.
    Csv,
    /// PostgreSQL's binary format.
    Binary,
}

/// How the COPY's data is written (what splitting rows needs to know).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    /// The format.
    pub format: CopyFormat,
    /// The column delimiter.
    pub delimiter: u8,
    /// The CSV quote character.
    pub quote: u8,
    /// The CSV escape character.
    pub escape: u8,
    /// The string that stands for NULL.
    pub null: String,
    /// The first line is a header.
    pub header: bool,
}

/// A COPY to or from the client.
#[derive(Debug, Clone)]
pub struct CopySpec {
    /// `FROM STDIN` (the client sends rows) rather than `TO STDOUT`.
    pub from_client: bool,
    /// The table, as its rule names it (none for `COPY (query) TO`).
    pub table: Option<String>,
    /// The column list, if the statement has one.
    pub columns: Vec<String>,
    /// The data format.
    pub options: CopyOptions,
    /// The statement as a shard gets it.
    pub sql: String,
    /// The statement without its header option (for the shards after the
    /// first of a `TO`, and every shard of a split `FROM`, whose header
    /// line the router skips itself).
    pub sql_no_header: String,
    /// `COPY (query) TO`: how the query alone is routed.
    pub query: Option<Box<Template>>,
    /// The table's rule (none: unsharded, or a query).
    pub rule: Option<Arc<TableRule>>,
}

/// Two COPYs are the same statement when their text is (the rest is read
/// from it, under one topology).
impl PartialEq for CopySpec {
    fn eq(&self, other: &Self) -> bool {
        self.sql == other.sql && self.rule == other.rule
    }
}

/// Where a COPY's rows go or come from.
#[derive(Debug, Clone, PartialEq)]
pub enum CopyRoute {
    /// One shard (an unsharded table, or a query one shard answers).
    One(ShardId),
    /// `FROM`: every row to each of these shards (a reference table).
    Copies(Vec<ShardId>),
    /// `FROM`: each row to the shard its key names.
    ByKey {
        /// The table's rule.
        rule: Arc<TableRule>,
        /// Every shard of the table.
        shards: Vec<ShardId>,
    },
    /// `TO`: every shard's rows, one shard after the other.
    Gather(Vec<ShardId>),
}

impl CopyRoute {
    /// The shards the COPY uses.
    pub fn shards(&self) -> Vec<ShardId> {
        match self {
            CopyRoute::One(s) => vec![*s],
            CopyRoute::Copies(v) | CopyRoute::Gather(v) | CopyRoute::ByKey { shards: v, .. } => {
                v.clone()
            }
        }
    }
}

fn unsupported(what: impl Into<String>) -> SqlError {
    SqlError::Unsupported(what.into())
}

/// One-byte option characters, as PostgreSQL requires them.
fn one_byte(c: char, what: &str) -> Result<u8, SqlError> {
    if c.is_ascii() {
        Ok(c as u8)
    } else {
        Err(SqlError::Invalid(format!(
            "COPY {what} must be a single one-byte character"
        )))
    }
}

/// A COPY statement with its boolean options written `on`/`off` (`WITH
/// (FREEZE on, HEADER off)`, which PostgreSQL takes and the parser does
/// not) as `true`/`false`; `None` for any other statement or when there is
/// nothing to change.
pub fn with_true_false(sql: &str) -> Option<String> {
    let body = crate::cursor::skip_leading_comments(sql);
    if !body.get(..4)?.eq_ignore_ascii_case("copy") {
        return None;
    }
    let mut out = String::with_capacity(sql.len());
    let mut word = String::new();
    let mut in_str = false;
    let mut changed = false;
    let mut flush = |word: &mut String, out: &mut String| {
        match word.to_ascii_lowercase().as_str() {
            "on" => {
                out.push_str("true");
                changed = true;
            }
            "off" => {
                out.push_str("false");
                changed = true;
            }
            _ => out.push_str(word),
        }
        word.clear();
    };
    for c in sql.chars() {
        if in_str {
            out.push(c);
            in_str = c != '\'';
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out);
        out.push(c);
        in_str = c == '\'';
    }
    flush(&mut word, &mut out);
    changed.then_some(out)
}

/// Analyze a COPY statement.
///
/// # Errors
/// Forms the router does not take: files and programs on the server,
/// options it cannot honour while splitting rows.
pub fn analyze(stmt: &Statement, topo: &Topology) -> Result<Template, SqlError> {
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        values,
    } = stmt
    else {
        return Err(SqlError::Invalid("not a COPY".into()));
    };
    match (to, target) {
        (false, CopyTarget::Stdin) | (true, CopyTarget::Stdout) => {}
        _ => {
            return Err(unsupported(
                "COPY to or from a file or program on the server is not supported through shardgate; use COPY ... FROM STDIN / TO STDOUT (psql's \\copy)",
            ));
        }
    }
    if !legacy_options.is_empty() || !values.is_empty() {
        return Err(unsupported(
            "COPY with pre-9.0 options or inline data is not supported through shardgate; use WITH (...) options",
        ));
    }
    let mut o = CopyOptions {
        format: CopyFormat::Text,
        delimiter: b'\t',
        quote: b'"',
        escape: b'"',
        null: "\\N".into(),
        header: false,
    };
    let (mut delimiter, mut null, mut escape) = (None, None, None);
    for opt in options {
        match opt {
            CopyOption::Format(f) => {
                o.format = match f.value.to_ascii_lowercase().as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    other => {
                        return Err(SqlError::Invalid(format!(
                            "COPY format \"{other}\" not recognized"
                        )));
                    }
                }
            }
            CopyOption::Delimiter(c) => delimiter = Some(one_byte(*c, "delimiter")?),
            CopyOption::Null(s) => null = Some(s.clone()),
            CopyOption::Header(h) => o.header = *h,
            CopyOption::Quote(c) => o.quote = one_byte(*c, "quote")?,
            CopyOption::Escape(c) => escape = Some(one_byte(*c, "escape")?),
            CopyOption::Freeze(_)
            | CopyOption::Encoding(_)
            | CopyOption::ForceQuote(_)
            | CopyOption::ForceNotNull(_)
            | CopyOption::ForceNull(_) => {}
        }
    }
    if o.format == CopyFormat::Csv {
        o.delimiter = delimiter.unwrap_or(b',');
        o.null = null.unwrap_or_default();
        o.escape = escape.unwrap_or(o.quote);
    } else {
        o.delimiter = delimiter.unwrap_or(b'\t');
        o.null = null.unwrap_or_else(|| "\\N".into());
    }
    let sql = stmt.to_string();
    let mut bare = stmt.clone();
    if let Statement::Copy { options, .. } = &mut bare {
        options.retain(|x| !matches!(x, CopyOption::Header(_)));
    }
    let sql_no_header = bare.to_string();
    let (table, columns, query) = match source {
        CopySource::Table {
            table_name,
            columns,
        } => {
            let name = crate::analyze::object_parts(table_name)
                .pop()
                .unwrap_or_default();
            let cols = columns.iter().map(crate::analyze::ident_name).collect();
            (Some(name), cols, None)
        }
        CopySource::Query(q) => {
            if !to {
                return Err(SqlError::Invalid("COPY FROM needs a table".into()));
            }
            let inner = crate::analyze::analyze_statement(
                &Statement::Query(q.clone()),
                &q.to_string(),
                topo,
            )?;
            (None, Vec::new(), Some(Box::new(inner)))
        }
    };
    // Ids the router draws for rows that leave their column out: COPY
    // rows bypass that, so such a column must come with the data.
    if let Some(t) = &table
        && !*to
        && !columns.is_empty()
        && let Some(missing) = topo.id_columns(t).iter().find(|c| !columns.contains(*c))
    {
        return Err(unsupported(format!(
            "COPY into \"{t}\" must include column \"{missing}\" (shardgate draws its shardgate.next_id() default for INSERTs only)"
        )));
    }
    let rule = table.as_ref().and_then(|t| topo.rule(t)).cloned();
    Ok(Template::Copy(Box::new(CopySpec {
        from_client: !to,
        rule,
        table,
        columns,
        options: o,
        sql,
        sql_no_header,
        query,
    })))
}

impl CopySpec {
    /// Where this COPY goes under `topo`.
    ///
    /// # Errors
    /// A `COPY (query) TO` whose query needs a cross-shard merge, a
    /// binary COPY that would have to be split or gathered.
    pub fn route(
        &self,
        all: &[ShardId],
        default: ShardId,
        query_plan: Option<&crate::plan::Plan>,
    ) -> Result<CopyRoute, SqlError> {
        let binary = self.options.format == CopyFormat::Binary;
        let route = if let Some(plan) = query_plan {
            match plan {
                crate::plan::Plan::Route {
                    shards,
                    sql: ShardSql::Original,
                    kind: crate::plan::StmtKind::Read,
                } if shards.len() == 1 => CopyRoute::One(shards[0]),
                crate::plan::Plan::Route {
                    shards,
                    sql: ShardSql::Original,
                    kind: crate::plan::StmtKind::Read,
                } => CopyRoute::Gather(shards.clone()),
                _ => {
                    return Err(unsupported(
                        "COPY (query) TO STDOUT of a query that needs a cross-shard merge (ORDER BY, LIMIT, aggregates, DISTINCT, key lists) is not supported yet; run the query as a SELECT",
                    ));
                }
            }
        } else {
            let rule = self.rule.as_ref();
            match rule.map(|r| &r.kind) {
                None => CopyRoute::One(default),
                Some(TableKind::Reference) if self.from_client => CopyRoute::Copies(all.to_vec()),
                Some(TableKind::Reference) => {
                    CopyRoute::One(all.first().copied().unwrap_or(default))
                }
                Some(TableKind::Sharded { .. }) if self.from_client => CopyRoute::ByKey {
                    rule: rule.cloned().expect("matched a rule"),
                    shards: all.to_vec(),
                },
                Some(TableKind::Sharded { .. }) => CopyRoute::Gather(all.to_vec()),
            }
        };
        let several = matches!(&route, CopyRoute::Gather(v) if v.len() > 1)
            || matches!(route, CopyRoute::ByKey { .. });
        if binary && several {
            return Err(unsupported(
                "binary COPY of a sharded table is not supported yet; use FORMAT text or csv",
            ));
        }
        Ok(route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn spec(sql: &str) -> Result<CopySpec, SqlError> {
        let s = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        match analyze(&s, &Topology::default())? {
            Template::Copy(c) => Ok(*c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_are_read() {
        let s = spec("COPY t (a, \"B\") FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';')")
            .unwrap();
        assert!(s.from_client);
        assert_eq!(s.table.as_deref(), Some("t"));
        assert_eq!(s.columns, vec!["a".to_string(), "B".to_string()]);
        assert_eq!(s.options.format, CopyFormat::Csv);
        assert_eq!(s.options.delimiter, b';');
        assert_eq!(s.options.null, "");
        assert!(s.options.header);
        assert!(!s.sql_no_header.to_ascii_uppercase().contains("HEADER"));
        let t = spec("COPY t TO STDOUT").unwrap();
        assert!(!t.from_client);
        assert_eq!(t.options.null, "\\N");
        assert_eq!(t.options.delimiter, b'\t');
    }

    #[test]
    fn on_and_off_become_true_and_false() {
        assert_eq!(
            with_true_false("copy t from stdin with (freeze on, delimiter 'on')").as_deref(),
            Some("copy t from stdin with (freeze true, delimiter 'on')")
        );
        assert_eq!(with_true_false("COPY t FROM STDIN"), None);
        assert_eq!(with_true_false("SELECT on"), None);
        let s = with_true_false("copy pgbench_accounts from stdin with (freeze on)").unwrap();
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, &s)
            .unwrap()
            .remove(0);
        assert!(analyze(&stmt, &Topology::default()).is_ok());
    }

    #[test]
    fn id_columns_must_come_with_the_data() {
        let mut topo = Topology::default();
        topo.id_defaults.insert("t".into(), vec!["id".into()]);
        let parse = |sql: &str| {
            Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .unwrap()
                .remove(0)
        };
        assert!(analyze(&parse("COPY t (name) FROM STDIN"), &topo).is_err());
        assert!(analyze(&parse("COPY t (id, name) FROM STDIN"), &topo).is_ok());
        assert!(analyze(&parse("COPY t FROM STDIN"), &topo).is_ok());
        assert!(analyze(&parse("COPY t (name) TO STDOUT"), &topo).is_ok());
    }

    #[test]
    fn server_files_are_refused() {
        assert!(spec("COPY t FROM '/etc/passwd'").is_err());
        assert!(spec("COPY t TO '/tmp/x'").is_err());
    }
}
