//! `x [NOT] BETWEEN SYMMETRIC a AND b`, which sqlparser does not read.
//!
//! PostgreSQL itself expands it (`transformAExprBetween`): `(x BETWEEN a
//! AND b) OR (x BETWEEN b AND a)`, and `NOT BETWEEN SYMMETRIC` to `(x NOT
//! BETWEEN a AND b) AND (x NOT BETWEEN b AND a)` (each operand copied, as
//! there). So a statement sqlparser refuses for it is read again with each
//! `SYMMETRIC` after `BETWEEN` blanked out (spaces, so every location in
//! the text stays where it was), and each `BETWEEN` whose `SYMMETRIC` lay
//! between its operand and its lower bound is replaced by that expansion.
//! Where the locations do not tell (an operand without a known span), the
//! statement stays unread. `ASYMMETRIC` (the default) is blanked out alone.

use sqlparser::ast::{BinaryOperator, Expr, Spanned, Statement, VisitMut, VisitorMut};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, Tokenizer};
use std::ops::ControlFlow;

/// `sql` with `SYMMETRIC`/`ASYMMETRIC` after `BETWEEN` blanked out, and
/// the locations of the blanked `SYMMETRIC`s; `None` when there is none
/// (or the text does not tokenize).
pub(crate) fn blank(sql: &str) -> Option<(String, Vec<Location>)> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .ok()?;
    let mut out: Vec<u8> = sql.as_bytes().to_vec();
    let mut symmetric = Vec::new();
    let mut any = false;
    let mut after_between = false;
    for t in &tokens {
        match &t.token {
            Token::Whitespace(_) => continue,
            Token::Word(w) if w.quote_style.is_none() && after_between => {
                let v = w.value.to_ascii_uppercase();
                if v == "SYMMETRIC" || v == "ASYMMETRIC" {
                    let at = offset(sql, t.span.start)?;
                    let end = at + w.value.len();
                    if sql.get(at..end).is_none_or(|s| !s.eq_ignore_ascii_case(&v)) {
                        return None;
                    }
                    out[at..end].fill(b' ');
                    any = true;
                    if v == "SYMMETRIC" {
                        symmetric.push(t.span.start);
                    }
                }
            }
            _ => {}
        }
        after_between = matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("BETWEEN"));
    }
    if !any {
        return None;
    }
    Some((String::from_utf8(out).ok()?, symmetric))
}

/// The byte offset of a tokenizer location in `sql` (lines counted at
/// `\n`, columns in characters, both from 1).
fn offset(sql: &str, at: Location) -> Option<usize> {
    let (mut line, mut col) = (1u64, 1u64);
    for (i, c) in sql.char_indices() {
        if line == at.line && col == at.column {
            return Some(i);
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    None
}

/// Replace, in the parsed statements, each `BETWEEN` whose blanked
/// `SYMMETRIC` is at one of `at` by PostgreSQL's expansion. False when
/// the locations do not match the `BETWEEN`s one to one.
pub(crate) fn expand(stmts: &mut [Statement], at: &[Location]) -> bool {
    struct Expand<'a> {
        at: &'a [Location],
        used: Vec<bool>,
        ok: bool,
    }
    impl VisitorMut for Expand<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            let Expr::Between {
                expr,
                negated,
                low,
                high,
            } = e
            else {
                return ControlFlow::Continue(());
            };
            let (end, start) = (expr.span().end, low.span().start);
            let hits: Vec<usize> = self
                .at
                .iter()
                .enumerate()
                .filter(|(_, l)| end.line > 0 && start.line > 0 && end < **l && **l < start)
                .map(|(i, _)| i)
                .collect();
            match hits.as_slice() {
                [] => {}
                [i] if !self.used[*i] => {
                    self.used[*i] = true;
                    let between = |low: &Expr, high: &Expr| Expr::Between {
                        expr: expr.clone(),
                        negated: *negated,
                        low: Box::new(low.clone()),
                        high: Box::new(high.clone()),
                    };
                    let op = if *negated {
                        BinaryOperator::And
                    } else {
                        BinaryOperator::Or
                    };
                    *e = Expr::Nested(Box::new(Expr::BinaryOp {
                        left: Box::new(between(low, high)),
                        op,
                        right: Box::new(between(high, low)),
                    }));
                }
                _ => {
                    self.ok = false;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut x = Expand {
        at,
        used: vec![false; at.len()],
        ok: true,
    };
    for s in stmts.iter_mut() {
        if s.visit(&mut x).is_break() {
            return false;
        }
    }
    x.ok && x.used.iter().all(|u| *u)
}

#[cfg(test)]
mod tests {
    use crate::parse::parse_sql;

    fn read(sql: &str) -> String {
        parse_sql(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn symmetric_is_expanded_as_postgresql_does() {
        assert_eq!(
            read("SELECT * FROM t WHERE x BETWEEN SYMMETRIC 5 AND 1"),
            "SELECT * FROM t WHERE (x BETWEEN 5 AND 1 OR x BETWEEN 1 AND 5)"
        );
        assert_eq!(
            read(
                "select * from t where x not between symmetric -5 and y + 1 and z = 'between symmetric'"
            ),
            "SELECT * FROM t WHERE (x NOT BETWEEN -5 AND y + 1 AND x NOT BETWEEN y + 1 AND -5) AND z = 'between symmetric'"
        );
        assert_eq!(
            read("SELECT a BETWEEN ASYMMETRIC 1 AND 2,\n  b BETWEEN SYMMETRIC 2 AND 1 FROM t"),
            "SELECT a BETWEEN 1 AND 2, (b BETWEEN 2 AND 1 OR b BETWEEN 1 AND 2) FROM t"
        );
        // Two in one statement, one inside the other's bound.
        assert_eq!(
            read("SELECT 1 WHERE (a BETWEEN SYMMETRIC 1 AND 2) = (b BETWEEN SYMMETRIC 3 AND 4)"),
            "SELECT 1 WHERE ((a BETWEEN 1 AND 2 OR a BETWEEN 2 AND 1)) = ((b BETWEEN 3 AND 4 OR b BETWEEN 4 AND 3))"
        );
    }

    #[test]
    fn invalid_sql_stays_an_error() {
        assert!(parse_sql("SELECT * FROM t WHERE x BETWEEN SYMMETRIC 5 AND").is_err());
        assert!(parse_sql("SELECT symmetric FROM t WHERE").is_err());
        assert!(parse_sql("SELECT \"symmetric\" FROM t").is_ok());
    }
}
