//! Rows of the router standing for a subquery, CTE or set operation
//! branch that ran first (see [`crate::analyze::subquery`]): each shard
//! statement of a plan gets that shard's rows as a CTE in front of it.

use crate::error::SqlError;
use crate::plan::{Node, Plan, ShardSql, StmtKind};
use shardgate_core::ShardId;
use std::collections::BTreeMap;

/// Whether `sql` has the identifier `name` anywhere (a word as the
/// tokenizer reads it, quoted or not; text that does not tokenize counts
/// as having it).
fn names_word(sql: &str, name: &str) -> bool {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    match Tokenizer::new(&dialect, sql).tokenize() {
        Ok(tokens) => tokens.iter().any(|t| match t {
            Token::Word(w) if w.quote_style.is_some() => w.value == name,
            Token::Word(w) => w.value.to_lowercase() == name,
            _ => false,
        }),
        Err(_) => true,
    }
}

/// `cte` (a CTE definition, `name (columns) AS (...)`) put in front of
/// `body`: in its WITH list if it has one.
fn with_cte(cte: &str, body: &str) -> String {
    let t = body.trim_start();
    let starts = |w: &str| {
        t.get(..w.len()).is_some_and(|h| h.eq_ignore_ascii_case(w))
            && t[w.len()..].starts_with(|c: char| c.is_whitespace())
    };
    if starts("WITH") {
        let rest = t[4..].trim_start();
        let recursive = rest
            .get(..9)
            .is_some_and(|h| h.eq_ignore_ascii_case("RECURSIVE"))
            && rest[9..].starts_with(|c: char| c.is_whitespace());
        if recursive {
            return format!("WITH RECURSIVE {cte}, {}", rest[9..].trim_start());
        }
        return format!("WITH {cte}, {rest}");
    }
    format!("WITH {cte} {t}")
}

impl Plan {
    /// This read with `ctes[s]` in front of every statement shard `s` runs
    /// (`sql`: the statement, for a route that sends it as written): how a
    /// FROM subquery run first gives each shard its own rows (see
    /// [`crate::analyze::subquery`]). `names` are the CTEs': a final query
    /// that names one (it runs over partial rows, not on the shards' own)
    /// is refused.
    ///
    /// # Errors
    /// A plan that is not a read, or that runs SQL this cannot reach.
    pub fn with_shard_cte(
        self,
        sql: &str,
        ctes: &BTreeMap<ShardId, String>,
        names: &[String],
    ) -> Result<Plan, SqlError> {
        let put = |s: &ShardId, body: &str| -> Result<String, SqlError> {
            let cte = ctes
                .get(s)
                .ok_or_else(|| SqlError::Invalid(format!("no rows for shard {s}")))?;
            Ok(with_cte(cte, body))
        };
        match self {
            // (A write's statement on each shard writes that shard's rows
            // with that shard's stand-in rows; a reference table's copies
            // must all get the same rows.)
            Plan::Route {
                shards,
                sql: ShardSql::Original,
                kind: kind @ (StmtKind::Read | StmtKind::Write | StmtKind::WriteCopies),
            } if kind != StmtKind::WriteCopies || ctes.values().all(|c| Some(c) == ctes.values().next()) => {
                let per = shards
                    .iter()
                    .map(|s| Ok((*s, put(s, sql)?)))
                    .collect::<Result<_, SqlError>>()?;
                Ok(Plan::Route {
                    shards,
                    sql: ShardSql::PerShard(per),
                    kind,
                })
            }
            Plan::Route {
                shards,
                sql: ShardSql::PerShard(per),
                kind: kind @ (StmtKind::Read | StmtKind::Write),
            } => {
                let per = per
                    .iter()
                    .map(|(s, body)| Ok((*s, put(s, body)?)))
                    .collect::<Result<_, SqlError>>()?;
                Ok(Plan::Route {
                    shards,
                    sql: ShardSql::PerShard(per),
                    kind,
                })
            }
            Plan::Read(node) => Ok(Plan::Read(node.with_shard_cte(&put, names)?)),
            _ => Err(SqlError::Unsupported(
                "a subquery in FROM run before its statement is supported in reads and in writes of sharded tables".into(),
            )),
        }
    }
}

impl Node {
    /// The tree with `put(shard, sql)` as the SQL each shard runs (see
    /// [`Plan::with_shard_cte`]); the lean variant of a merge is dropped
    /// (it would send its own SQL).
    pub(crate) fn with_shard_cte(
        self,
        put: &dyn Fn(&ShardId, &str) -> Result<String, SqlError>,
        names: &[String],
    ) -> Result<Node, SqlError> {
        let inner = |input: Box<Node>| -> Result<Box<Node>, SqlError> {
            Ok(Box::new(input.with_shard_cte(put, names)?))
        };
        Ok(match self {
            Node::Scatter {
                shards,
                sql,
                per_shard,
            } => {
                let per = shards
                    .iter()
                    .map(|s| {
                        let body = per_shard.as_ref().and_then(|m| m.get(s)).unwrap_or(&sql);
                        Ok((*s, put(s, body)?))
                    })
                    .collect::<Result<_, SqlError>>()?;
                Node::Scatter {
                    shards,
                    sql,
                    per_shard: Some(per),
                }
            }
            Node::MergeSort { keys, input, .. } => Node::MergeSort {
                keys,
                lean: None,
                input: inner(input)?,
            },
            Node::Concat { input } => Node::Concat {
                input: inner(input)?,
            },
            Node::Limit {
                limit,
                offset,
                with_ties,
                input,
            } => Node::Limit {
                limit,
                offset,
                with_ties,
                input: inner(input)?,
            },
            Node::Project { hidden, input } => Node::Project {
                hidden,
                input: inner(input)?,
            },
            Node::Aggregate { spec, input } => {
                if names.iter().any(|n| names_word(&spec.final_pg, n)) {
                    return Err(SqlError::Unsupported(
                        "a subquery in FROM run before its statement cannot be read by the final step of a cross-shard aggregation".into(),
                    ));
                }
                Node::Aggregate {
                    spec,
                    input: inner(input)?,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cte_goes_in_front_or_into_the_with_list() {
        let cte = "\"m\" (\"a\") AS (VALUES (1))";
        assert_eq!(
            with_cte(cte, "SELECT * FROM m"),
            format!("WITH {cte} SELECT * FROM m")
        );
        assert_eq!(
            with_cte(cte, "  with x AS (SELECT 1) SELECT * FROM m, x"),
            format!("WITH {cte}, x AS (SELECT 1) SELECT * FROM m, x")
        );
        assert_eq!(
            with_cte(cte, "WITH RECURSIVE r AS (SELECT 1) SELECT * FROM r, m"),
            format!("WITH RECURSIVE {cte}, r AS (SELECT 1) SELECT * FROM r, m")
        );
        assert_eq!(
            with_cte(cte, "WITHOUT_TABLE"),
            format!("WITH {cte} WITHOUT_TABLE")
        );
    }

    #[test]
    fn every_shard_statement_gets_its_own_cte() {
        let ctes: BTreeMap<ShardId, String> = [
            (ShardId(0), "a AS (SELECT 0)".to_string()),
            (ShardId(1), "a AS (SELECT 1)".to_string()),
        ]
        .into_iter()
        .collect();
        let route = Plan::Route {
            shards: vec![ShardId(0), ShardId(1)],
            sql: ShardSql::Original,
            kind: StmtKind::Read,
        };
        let Plan::Route {
            sql: ShardSql::PerShard(per),
            ..
        } = route
            .with_shard_cte("SELECT * FROM a", &ctes, &["a".to_string()])
            .unwrap()
        else {
            panic!("not per shard");
        };
        assert_eq!(per[&ShardId(1)], "WITH a AS (SELECT 1) SELECT * FROM a");
        let scatter = Node::Scatter {
            shards: vec![ShardId(0), ShardId(1)],
            sql: "SELECT x FROM a".into(),
            per_shard: Some(
                [(ShardId(0), "SELECT y FROM a".to_string())]
                    .into_iter()
                    .collect(),
            ),
        };
        let read = Plan::Read(Node::Limit {
            limit: Some(1),
            offset: 0,
            with_ties: false,
            input: Box::new(Node::Concat {
                input: Box::new(scatter),
            }),
        });
        let got = read.with_shard_cte("", &ctes, &["a".to_string()]).unwrap();
        let Plan::Read(Node::Limit { input, .. }) = got else {
            panic!("{got:?}");
        };
        let Node::Concat { input } = *input else {
            panic!("not a concat");
        };
        let Node::Scatter {
            per_shard: Some(per),
            ..
        } = *input
        else {
            panic!("not a scatter");
        };
        assert_eq!(per[&ShardId(0)], "WITH a AS (SELECT 0) SELECT y FROM a");
        assert_eq!(per[&ShardId(1)], "WITH a AS (SELECT 1) SELECT x FROM a");
        // Writes to every copy of a reference table are taken only when
        // every copy gets the same rows.
        let write = Plan::Route {
            shards: vec![ShardId(0), ShardId(1)],
            sql: ShardSql::Original,
            kind: StmtKind::WriteCopies,
        };
        assert!(
            write
                .clone()
                .with_shard_cte("DELETE FROM a", &ctes, &["a".to_string()])
                .is_err()
        );
        let same: BTreeMap<ShardId, String> = [ShardId(0), ShardId(1)]
            .into_iter()
            .map(|s| (s, "a AS (SELECT 1)".to_string()))
            .collect();
        assert!(
            write
                .with_shard_cte("DELETE FROM a", &same, &["a".to_string()])
                .is_ok()
        );
    }
}
