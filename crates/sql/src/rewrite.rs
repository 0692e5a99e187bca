//! Statement rewrites: splitting a multi-row INSERT into one INSERT per
//! shard, with bind parameters inlined as literals.

use crate::error::SqlError;
use crate::params::Params;
use shardgate_core::ShardId;
use sqlparser::ast::{Expr, SetExpr, Statement, Value, VisitMut, VisitorMut};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

struct Inline<'p, 'a> {
    params: &'p Params<'a>,
    err: Option<SqlError>,
}

fn literal(params: &Params<'_>, n: usize) -> Result<Value, SqlError> {
    let (v, binary, oid) = params
        .get(n)
        .ok_or_else(|| SqlError::Invalid(format!("there is no parameter ${n}")))?;
    let Some(raw) = v else { return Ok(Value::Null) };
    if !binary {
        let s = std::str::from_utf8(raw)
            .map_err(|_| SqlError::InvalidValue("invalid UTF-8 in parameter".into()))?;
        return Ok(Value::SingleQuotedString(s.to_string()));
    }
    let num = |s: String| Ok(Value::Number(s, false));
    match (oid, raw.len()) {
        (21, 2) => num(i16::from_be_bytes([raw[0], raw[1]]).to_string()),
        (23, 4) => num(i32::from_be_bytes(raw.try_into().expect("4 bytes")).to_string()),
        (20, 8) => num(i64::from_be_bytes(raw.try_into().expect("8 bytes")).to_string()),
        (700, 4) => Ok(Value::SingleQuotedString(
            f32::from_be_bytes(raw.try_into().expect("4 bytes")).to_string(),
        )),
        (701, 8) => Ok(Value::SingleQuotedString(
            f64::from_be_bytes(raw.try_into().expect("8 bytes")).to_string(),
        )),
        (16, 1) => Ok(Value::Boolean(raw[0] != 0)),
        (25 | 1043 | 19 | 1042, _) => std::str::from_utf8(raw)
            .map(|s| Value::SingleQuotedString(s.to_string()))
            .map_err(|_| SqlError::InvalidValue("invalid UTF-8 in parameter".into())),
        _ => Err(SqlError::Unsupported(format!(
            "a multi-row INSERT whose rows go to several shards cannot yet take a binary parameter of type {oid}; send it in text format or split the INSERT"
        ))),
    }
}

impl VisitorMut for Inline<'_, '_> {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Value(v) = expr
            && let Value::Placeholder(p) = &v.value
        {
            let n = p.trim_start_matches('$').parse::<usize>().unwrap_or(0);
            match literal(self.params, n) {
                Ok(l) => v.value = l,
                Err(e) => {
                    self.err = Some(e);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// One INSERT per shard from a multi-row INSERT: `per_row[i]` is the shard
/// of VALUES row `i`.
///
/// # Errors
/// Parameters that cannot be inlined.
pub fn split_insert(
    stmt: &Statement,
    per_row: &[ShardId],
    params: &Params<'_>,
) -> Result<BTreeMap<ShardId, String>, SqlError> {
    let mut out = BTreeMap::new();
    let Statement::Insert(ins) = stmt else {
        return Err(SqlError::Invalid("not an INSERT".into()));
    };
    let Some(SetExpr::Values(values)) = ins.source.as_ref().map(|q| q.body.as_ref()) else {
        return Err(SqlError::Invalid("INSERT without VALUES".into()));
    };
    let mut shards: Vec<ShardId> = per_row.to_vec();
    shards.sort();
    shards.dedup();
    for s in shards {
        let mut part = stmt.clone();
        if let Statement::Insert(pi) = &mut part
            && let Some(q) = pi.source.as_mut()
            && let SetExpr::Values(v) = q.body.as_mut()
        {
            v.rows = values
                .rows
                .iter()
                .zip(per_row)
                .filter(|(_, owner)| **owner == s)
                .map(|(r, _)| r.clone())
                .collect();
        }
        if !params.is_empty() {
            let mut inl = Inline { params, err: None };
            let _ = part.visit(&mut inl);
            if let Some(e) = inl.err {
                return Err(e);
            }
        }
        out.insert(s, part.to_string());
    }
    Ok(out)
}
