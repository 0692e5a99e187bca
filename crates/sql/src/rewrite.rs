//! Statement rewrites: splitting a multi-row INSERT into one INSERT per
//! shard, with bind parameters inlined as literals.

use crate::error::SqlError;
use crate::params::Params;
use shardgate_core::ShardId;
use sqlparser::ast::{Expr, SetExpr, Statement, Value, VisitMut, VisitorMut};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// The SQL name of a built-in type OID (for casts of inlined parameters
/// and of rows the router writes into a query), `None` for others.
pub fn type_name(oid: u32) -> Option<&'static str> {
    Some(match oid {
        16 => "boolean",
        17 => "bytea",
        18 => "\"char\"",
        19 => "name",
        20 => "bigint",
        21 => "smallint",
        23 => "integer",
        25 => "text",
        26 => "oid",
        114 => "json",
        650 => "cidr",
        700 => "real",
        701 => "double precision",
        790 => "money",
        829 => "macaddr",
        869 => "inet",
        1000 => "boolean[]",
        1001 => "bytea[]",
        1005 => "smallint[]",
        1007 => "integer[]",
        1009 => "text[]",
        1015 => "varchar[]",
        1016 => "bigint[]",
        1021 => "real[]",
        1022 => "double precision[]",
        1042 => "bpchar",
        1043 => "varchar",
        1082 => "date",
        1083 => "time",
        1114 => "timestamp",
        1115 => "timestamp[]",
        1182 => "date[]",
        1184 => "timestamptz",
        1185 => "timestamptz[]",
        1186 => "interval",
        1231 => "numeric[]",
        1266 => "timetz",
        // Quoted: unquoted `bit` means bit(1) in a cast.
        1560 => "\"bit\"",
        1562 => "varbit",
        1700 => "numeric",
        2950 => "uuid",
        2951 => "uuid[]",
        3802 => "jsonb",
        3807 => "jsonb[]",
        _ => return None,
    })
}

/// [`type_name`] with the column's type modifier, as PostgreSQL's
/// `format_type` writes it (`numeric(6,1)`, `varchar(40)`, `bpchar(3)`,
/// `timestamp(3)`): a cast to it keeps the column's typmod. `None` for a
/// type [`type_name`] does not know, or a modifier this does not read
/// (a value cast without it would describe another type).
pub fn type_name_with_mod(oid: u32, typmod: i32) -> Option<String> {
    let name = type_name(oid)?;
    if typmod < 0 {
        return Some(name.to_string());
    }
    Some(match oid {
        1700 if typmod >= 4 => {
            let m = typmod - 4;
            format!("numeric({},{})", (m >> 16) & 0xffff, m & 0xffff)
        }
        1042 | 1043 if typmod >= 4 => format!("{name}({})", typmod - 4),
        1083 | 1114 | 1184 | 1266 => {
            let (base, zone) = match oid {
                1083 => ("time", ""),
                1114 => ("timestamp", ""),
                1184 => ("timestamp", " with time zone"),
                _ => ("time", " with time zone"),
            };
            format!("{base}({typmod}){zone}")
        }
        1560 | 1562 => format!("{}({typmod})", if oid == 1560 { "bit" } else { "varbit" }),
        _ => return None,
    })
}

struct Inline<'p, 'a> {
    params: &'p Params<'a>,
    err: Option<SqlError>,
}

fn cast(e: Expr, type_name: &str) -> Expr {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let data_type = sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(type_name)
        .and_then(|mut p| p.parse_data_type())
        .expect("known type names parse");
    Expr::Cast {
        kind: sqlparser::ast::CastKind::DoubleColon,
        expr: Box::new(e),
        data_type,
        format: None,
    }
}

fn literal(params: &Params<'_>, n: usize) -> Result<Expr, SqlError> {
    let (v, binary, oid) = params
        .get(n)
        .ok_or_else(|| SqlError::Invalid(format!("there is no parameter ${n}")))?;
    let Some(raw) = v else {
        return Ok(Expr::Value(Value::Null.into()));
    };
    let text = |s: &str| Expr::Value(Value::SingleQuotedString(s.to_string()).into());
    if !binary {
        let s = std::str::from_utf8(raw)
            .map_err(|_| SqlError::InvalidValue("invalid UTF-8 in parameter".into()))?;
        if oid == 0 {
            return Ok(text(s));
        }
        // Keep the parameter's declared type: '7' as numeric is not '7'.
        let name = type_name(oid).ok_or_else(|| {
            SqlError::Unsupported(format!(
                "a statement that shardgate rewrites across shards cannot yet take a parameter of type oid {oid}"
            ))
        })?;
        return Ok(cast(text(s), name));
    }
    let unsupported = || {
        SqlError::Unsupported(format!(
            "a statement that shardgate rewrites across shards cannot yet take a binary parameter of type {oid}; send it in text format"
        ))
    };
    if oid == 16 && raw.len() == 1 {
        return Ok(Expr::Value(Value::Boolean(raw[0] != 0).into()));
    }
    if matches!(oid, 25 | 1043 | 19 | 705) {
        return std::str::from_utf8(raw)
            .map(text)
            .map_err(|_| SqlError::InvalidValue("invalid UTF-8 in parameter".into()));
    }
    let name = type_name(oid).ok_or_else(unsupported)?;
    if name.ends_with("[]") {
        // A one-dimensional array: an array literal of the same type.
        let bad = || SqlError::InvalidValue(format!("malformed binary array of type {oid}"));
        let (elem, vals) = crate::plan::parse_binary_array(raw).ok_or_else(bad)?;
        let mut items = Vec::with_capacity(vals.len());
        for v in vals {
            items.push(match v {
                None => "NULL".to_string(),
                Some(_) if !crate::binary::reads(elem) => return Err(unsupported()),
                Some(b) if matches!(elem, 20 | 21 | 23 | 26 | 700 | 701 | 1700) => {
                    crate::binary::to_text(elem, b).ok_or_else(bad)?
                }
                Some(b) => {
                    let s = crate::binary::to_text(elem, b).ok_or_else(bad)?;
                    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
                }
            });
        }
        return Ok(cast(text(&format!("{{{}}}", items.join(","))), name));
    }
    if !crate::binary::reads(oid) {
        return Err(unsupported());
    }
    let s = crate::binary::to_text(oid, raw).ok_or_else(|| {
        SqlError::InvalidValue(format!(
            "malformed binary parameter ${n} of type {name} (oid {oid})"
        ))
    })?;
    Ok(cast(text(&s), name))
}

impl VisitorMut for Inline<'_, '_> {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Value(v) = expr
            && let Value::Placeholder(p) = &v.value
        {
            let n = p.trim_start_matches('$').parse::<usize>().unwrap_or(0);
            match literal(self.params, n) {
                Ok(l) => *expr = l,
                Err(e) => {
                    self.err = Some(e);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Replace every bind parameter of `q` by its value as a literal (cast to
/// the parameter's declared type, if it has one).
///
/// # Errors
/// A missing parameter or one that cannot be written as a literal.
pub fn inline_params(q: &mut sqlparser::ast::Query, params: &Params<'_>) -> Result<(), SqlError> {
    let mut inl = Inline { params, err: None };
    let _ = q.visit(&mut inl);
    match inl.err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The text of `sql` (one query) with `params` written in as literals (a
/// cursor's query that the router runs itself).
///
/// # Errors
/// Text that is not one query; a parameter as in [`inline_params`].
pub fn inline_query_text(sql: &str, params: &Params<'_>) -> Result<String, SqlError> {
    let mut stmts = crate::parse::parse_sql(sql).map_err(|e| SqlError::Syntax(e.to_string()))?;
    match stmts.as_mut_slice() {
        [Statement::Query(q)] => {
            inline_params(q, params)?;
            Ok(q.to_string())
        }
        _ => Err(SqlError::Syntax("expected one query".into())),
    }
}

/// [`inline_params`] for a whole statement.
///
/// # Errors
/// A missing parameter or one that cannot be written as a literal.
pub(crate) fn inline_statement(stmt: &mut Statement, params: &Params<'_>) -> Result<(), SqlError> {
    let mut inl = Inline { params, err: None };
    let _ = stmt.visit(&mut inl);
    match inl.err {
        Some(e) => Err(e),
        None => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_keep_their_modifiers() {
        let t = |oid, m| type_name_with_mod(oid, m);
        assert_eq!(t(1700, -1).as_deref(), Some("numeric"));
        // numeric(6,1): ((6 << 16) | 1) + 4.
        assert_eq!(t(1700, 393_221).as_deref(), Some("numeric(6,1)"));
        assert_eq!(t(1700, 786_438).as_deref(), Some("numeric(12,2)"));
        assert_eq!(t(1043, 44).as_deref(), Some("varchar(40)"));
        assert_eq!(t(1042, 7).as_deref(), Some("bpchar(3)"));
        assert_eq!(t(1114, 3).as_deref(), Some("timestamp(3)"));
        assert_eq!(t(1184, 0).as_deref(), Some("timestamp(0) with time zone"));
        assert_eq!(t(1560, 8).as_deref(), Some("bit(8)"));
        // An interval's fields and precision are not read: no name.
        assert_eq!(t(1186, 6), None);
        assert_eq!(t(1186, -1).as_deref(), Some("interval"));
        for ty in [
            "numeric(6,1)",
            "varchar(40)",
            "bpchar(3)",
            "timestamp(0) with time zone",
            "bit(8)",
        ] {
            let _ = cast(Expr::Value(Value::Null.into()), ty);
        }
    }
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn binary_array(elem: u32, items: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [1i32, 0, elem as i32, items.len() as i32, 1] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for it in items {
            match it {
                Some(x) => {
                    b.extend_from_slice(&(x.len() as i32).to_be_bytes());
                    b.extend_from_slice(x);
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        b
    }

    #[test]
    fn binary_arrays_inline_as_typed_literals() {
        let ints = binary_array(20, &[Some(&7i64.to_be_bytes()), None]);
        let texts = binary_array(25, &[Some(b"it's \"q\""), Some(b"a\\b")]);
        let params = Params {
            values: vec![Some(&ints), Some(&texts)],
            binary: vec![true, true],
            types: vec![1016, 1009],
        };
        let Statement::Query(mut q) = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT $1, $2")
            .unwrap()
            .remove(0)
        else {
            panic!("a query")
        };
        inline_params(&mut q, &params).unwrap();
        assert_eq!(
            q.to_string(),
            r#"SELECT '{7,NULL}'::BIGINT[], '{"it''s \"q\"","a\\b"}'::TEXT[]"#
        );
    }
}
