//! Finding shard keys in a WHERE clause: literals and parameters that pin
//! a key column (`=`, `IN`, ORs of them, `= ANY(ARRAY[...])`), arrays of
//! keys (`= ANY($1)`), and ranges of a range-sharded key.

use super::*;

/// A key literal or parameter, if the expression is one.
pub(super) fn literal_of(e: &Expr) -> Option<KeyExpr> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(KeyExpr::Literal(n.clone())),
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::DollarQuotedString(ast::DollarQuotedString { value: s, .. }) => {
                Some(KeyExpr::Literal(s.clone()))
            }
            Value::Placeholder(p) => p
                .strip_prefix('$')
                .and_then(|n| n.parse().ok())
                .map(KeyExpr::Param),
            _ => None,
        },
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match literal_of(expr)? {
            KeyExpr::Literal(s) if !s.starts_with('-') => Some(KeyExpr::Literal(format!("-{s}"))),
            _ => None,
        },
        Expr::Cast {
            expr, data_type, ..
        } if value_preserving(data_type) => literal_of(expr),
        Expr::Nested(expr) => literal_of(expr),
        Expr::TypedString(ts) => match &ts.value.value {
            Value::SingleQuotedString(s) => Some(KeyExpr::Literal(s.clone())),
            _ => None,
        },
        _ => None,
    }
}

/// Casts that do not change a key literal's value (no precision, length or
/// type change that could round or truncate it).
pub(super) fn value_preserving(t: &ast::DataType) -> bool {
    matches!(
        t.to_string().to_ascii_lowercase().as_str(),
        "bigint"
            | "int8"
            | "int"
            | "integer"
            | "int4"
            | "smallint"
            | "int2"
            | "text"
            | "varchar"
            | "character varying"
            | "uuid"
            | "timestamp"
            | "timestamp without time zone"
            | "date"
    )
}

/// Does `e` name column `col` of the table known as one of `quals`?
pub(super) fn is_column(e: &Expr, col: &str, quals: &[String]) -> bool {
    match e {
        Expr::Identifier(i) => ident_name(i) == col,
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            ident_name(&parts[parts.len() - 1]) == col
                && quals.contains(&ident_name(&parts[parts.len() - 2]))
        }
        Expr::Nested(e) => is_column(e, col, quals),
        _ => false,
    }
}

pub(super) fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

/// Values that `col` must take for `e` to hold, if `e` pins it.
pub(crate) fn candidates(e: &Expr, col: &str, quals: &[String]) -> Option<Vec<KeyExpr>> {
    candidate_exprs(e, col, quals)?
        .iter()
        .map(|(_, v)| literal_of(v))
        .collect()
}

/// The (column, value) expression pairs of a predicate that pins `col` to
/// a list of values: `col = v`, `col IN (v, ...)`, `col = ANY(ARRAY[v,
/// ...])`, and ORs of them. Values are returned as written, in order.
pub(crate) fn candidate_exprs<'e>(
    e: &'e Expr,
    col: &str,
    quals: &[String],
) -> Option<Vec<(&'e Expr, &'e Expr)>> {
    match e {
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Eq,
            right,
        } => {
            if is_column(left, col, quals) {
                Some(vec![(left.as_ref(), right.as_ref())])
            } else if is_column(right, col, quals) {
                Some(vec![(right.as_ref(), left.as_ref())])
            } else {
                None
            }
        }
        Expr::InList {
            expr,
            list,
            negated: false,
        } if is_column(expr, col, quals) => Some(list.iter().map(|v| (expr.as_ref(), v)).collect()),
        Expr::AnyOp {
            left,
            compare_op: ast::BinaryOperator::Eq,
            right,
            is_some: _,
        } if is_column(left, col, quals) => match right.as_ref() {
            Expr::Array(a) => Some(a.elem.iter().map(|v| (left.as_ref(), v)).collect()),
            Expr::Nested(inner) => match inner.as_ref() {
                Expr::Array(a) => Some(a.elem.iter().map(|v| (left.as_ref(), v)).collect()),
                _ => None,
            },
            _ => None,
        },
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Or,
            right,
        } => {
            let mut a = candidate_exprs(left, col, quals)?;
            a.extend(candidate_exprs(right, col, quals)?);
            Some(a)
        }
        Expr::Nested(inner) => candidate_exprs(inner, col, quals),
        _ => None,
    }
}

const MAX_KEY_TUPLES: usize = 4096;

/// The array a top-level conjunct `key = ANY(<parameter or string
/// literal>)` compares a single-column key with.
pub(super) fn extract_key_array(sel: &Expr, rule: &TableRule, quals: &[String]) -> Option<KeyExpr> {
    let [col] = rule.key_columns() else {
        return None;
    };
    let mut cs = Vec::new();
    conjuncts(sel, &mut cs);
    cs.into_iter().find_map(|c| match c {
        Expr::AnyOp {
            left,
            compare_op: ast::BinaryOperator::Eq,
            right,
            ..
        } if is_column(left, col, quals) => {
            let mut r = right.as_ref();
            while let Expr::Nested(inner) = r {
                r = inner;
            }
            match r {
                Expr::Value(v) => match &v.value {
                    Value::Placeholder(p) => p
                        .strip_prefix('$')
                        .and_then(|n| n.parse().ok())
                        .map(KeyExpr::Param),
                    Value::SingleQuotedString(s) => Some(KeyExpr::Literal(s.clone())),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    })
}

/// A bound of a key range: the value and whether it is included.
pub type Bound = Option<(KeyExpr, bool)>;

/// The range a WHERE clause confines a range-sharded table's key to
/// (`key > a`, `key >= a`, `key < b`, `key <= b`, `key BETWEEN a AND b`,
/// in top-level conjuncts), if it bounds it on at least one side. Only
/// keys whose SQL order is the order of their values (integers, dates,
/// timestamps) qualify: text compares under a collation.
pub(super) fn extract_range(
    sel: &Expr,
    rule: &TableRule,
    quals: &[String],
) -> Option<(Bound, Bound)> {
    let TableKind::Sharded {
        columns,
        key_types,
        strategy: shardgate_core::Strategy::Range { .. },
        ..
    } = &rule.kind
    else {
        return None;
    };
    let [col] = columns.as_slice() else {
        return None;
    };
    if !matches!(
        key_types.first().copied().flatten(),
        Some(shardgate_core::KeyType::Int | shardgate_core::KeyType::Date)
            | Some(shardgate_core::KeyType::Timestamp)
    ) {
        return None;
    }
    let mut cs = Vec::new();
    conjuncts(sel, &mut cs);
    let (mut low, mut high): (Bound, Bound) = (None, None);
    for c in cs {
        use ast::BinaryOperator as B;
        match c {
            Expr::BinaryOp { left, op, right } => {
                let (op, v) = if is_column(left, col, quals) {
                    (op.clone(), right)
                } else if is_column(right, col, quals) {
                    // `5 < key` is `key > 5`.
                    let flipped = match op {
                        B::Lt => B::Gt,
                        B::LtEq => B::GtEq,
                        B::Gt => B::Lt,
                        B::GtEq => B::LtEq,
                        _ => continue,
                    };
                    (flipped, left)
                } else {
                    continue;
                };
                let Some(v) = range_literal(v) else { continue };
                match op {
                    B::Gt => low = Some((v, false)),
                    B::GtEq => low = Some((v, true)),
                    B::Lt => high = Some((v, false)),
                    B::LtEq => high = Some((v, true)),
                    _ => {}
                }
            }
            Expr::Between {
                expr,
                negated: false,
                low: l,
                high: h,
            } if is_column(expr, col, quals) => {
                if let (Some(l), Some(h)) = (range_literal(l), range_literal(h)) {
                    low = Some((l, true));
                    high = Some((h, true));
                }
            }
            _ => {}
        }
    }
    (low.is_some() || high.is_some()).then_some((low, high))
}

/// A range bound's literal: as [`literal_of`], but not through a cast to
/// `date`, which truncates a timestamp (`'2025-01-01 05:00'::date` is
/// midnight: a bound read as 05:00 could skip a shard).
pub(super) fn range_literal(e: &Expr) -> Option<KeyExpr> {
    match e {
        Expr::Cast { data_type, .. } if data_type.to_string().eq_ignore_ascii_case("date") => None,
        Expr::Nested(inner) => range_literal(inner),
        _ => literal_of(e),
    }
}

/// The key tuples a WHERE clause pins for a table, if it pins all columns.
pub(super) fn extract_keys(
    selection: Option<&Expr>,
    rule: &TableRule,
    quals: &[String],
) -> Option<Vec<Vec<KeyExpr>>> {
    let sel = selection?;
    let mut cs = Vec::new();
    conjuncts(sel, &mut cs);
    let mut tuples: Vec<Vec<KeyExpr>> = vec![Vec::new()];
    for col in rule.key_columns() {
        let vals = cs.iter().find_map(|c| candidates(c, col, quals))?;
        if vals.is_empty() || tuples.len() * vals.len() > MAX_KEY_TUPLES {
            return None;
        }
        tuples = tuples
            .into_iter()
            .flat_map(|t| {
                vals.iter().map(move |v| {
                    let mut t = t.clone();
                    t.push(v.clone());
                    t
                })
            })
            .collect();
    }
    Some(tuples)
}
