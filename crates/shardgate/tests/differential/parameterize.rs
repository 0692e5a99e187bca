//! The extended protocol with bind parameters, as drivers and ORMs send
//! statements: the literals compared in a statement's WHERE clauses (the
//! top-level query's and its subqueries') become `$1, $2, ...` with their
//! text as text-format parameters, and the server infers their types.
//! shardgate must route, prune and merge with them as one PostgreSQL
//! answers them.

use shardgate_sql::sqlparser::ast::{Expr, Query, SetExpr, Value, VisitMut, VisitorMut};
use std::ops::ControlFlow;

/// Literals to parameters, in the places a driver puts them: the sides
/// of comparisons, IN lists, BETWEEN bounds, LIKE patterns (not inside
/// function calls or casts, whose argument types may be ambiguous, nor in
/// subqueries, which have their own WHERE).
struct Params {
    values: Vec<String>,
}

impl Params {
    fn literal(&mut self, e: &mut Expr) {
        let text = match e {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n.clone(),
                Value::SingleQuotedString(s) => s.clone(),
                _ => return,
            },
            _ => return self.walk(e),
        };
        self.values.push(text);
        *e = Expr::Value(Value::Placeholder(format!("${}", self.values.len())).into());
    }

    fn walk(&mut self, e: &mut Expr) {
        match e {
            Expr::BinaryOp { left, right, .. } => {
                self.literal(left);
                self.literal(right);
            }
            Expr::Nested(x) | Expr::UnaryOp { expr: x, .. } => self.walk(x),
            Expr::IsNull(x)
            | Expr::IsNotNull(x)
            | Expr::IsTrue(x)
            | Expr::IsFalse(x)
            | Expr::IsNotTrue(x)
            | Expr::IsNotFalse(x)
            | Expr::IsUnknown(x)
            | Expr::IsNotUnknown(x) => self.walk(x),
            Expr::InList { expr, list, .. } => {
                self.walk(expr);
                for i in list {
                    self.literal(i);
                }
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.walk(expr);
                self.literal(low);
                self.literal(high);
            }
            Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
                self.walk(expr);
                self.literal(pattern);
            }
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
                self.literal(a);
                self.literal(b);
            }
            _ => {}
        }
    }
}

impl VisitorMut for Params {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(s) = q.body.as_mut()
            && let Some(w) = &mut s.selection
        {
            self.walk(w);
        }
        ControlFlow::Continue(())
    }
}

/// `sql` with its WHERE literals as parameters, and their values; `None`
/// when it has none (or does not parse as one statement).
pub fn parameterize(sql: &str) -> Option<(String, Vec<String>)> {
    let mut stmts = shardgate_sql::parse::parse_sql(sql).ok()?;
    if stmts.len() != 1 {
        return None;
    }
    let mut p = Params { values: Vec::new() };
    let _ = stmts[0].visit(&mut p);
    (!p.values.is_empty()).then(|| (stmts[0].to_string(), p.values))
}

#[test]
fn where_literals_become_parameters() {
    let (sql, v) = parameterize(
        "SELECT a, 1 FROM t WHERE k = 5 AND (s LIKE 'x%' OR n BETWEEN 1.5 AND 2) AND k IN (1, 2) \
         AND EXISTS (SELECT 3 FROM u WHERE u.k = t.k AND u.z <> 'q') AND f(7) > 0",
    )
    .unwrap();
    assert_eq!(
        sql,
        "SELECT a, 1 FROM t WHERE k = $1 AND (s LIKE $2 OR n BETWEEN $3 AND $4) AND k IN ($5, $6) \
         AND EXISTS (SELECT 3 FROM u WHERE u.k = t.k AND u.z <> $8) AND f(7) > $7"
    );
    assert_eq!(v, ["5", "x%", "1.5", "2", "1", "2", "0", "q"]);
    assert!(parameterize("SELECT 1 FROM t ORDER BY 1 LIMIT 3").is_none());
}
