//! Query normalization for the plan cache: literals become parameters.
//!
//! `SELECT abalance FROM t WHERE aid = 42` and `... aid = 7` share one
//! normalized text, `SELECT abalance FROM t WHERE aid = $1`, whose analysis
//! can be cached and resolved with the literal values as text parameters.
//! Anything the scanner does not fully understand (comments, dollar quotes,
//! escape or typed string prefixes, existing parameters, several
//! statements) is left to the full path.
//!
//! Each parameter also gets the type PostgreSQL gives the literal it
//! replaces (`int4`, `int8` or `numeric` for numbers by their size,
//! unknown for strings), so that the normalized text can be prepared on a
//! shard in place of the client's text and resolve operators the same way.
//! Literals whose meaning a parameter would change stay literals: output
//! column positions (`ORDER BY 1`, `GROUP BY 2`, `DISTINCT ON (1)`, and a
//! string there, which PostgreSQL rejects) and the two integers whose
//! negation PostgreSQL folds into a narrower type (`-2147483648` is `int4`,
//! `-9223372036854775808` is `int8`).

/// A normalized statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The text with literals replaced by `$1`, `$2`, ...
    pub text: String,
    /// The literal values, in order, as PostgreSQL text input.
    pub values: Vec<String>,
    /// The type OID of each parameter as PostgreSQL types the literal
    /// (0, unknown, for strings).
    pub types: Vec<u32>,
}

const INT4: u32 = 23;
const INT8: u32 = 20;
const NUMERIC: u32 = 1700;
const UNKNOWN: u32 = 0;

/// The type PostgreSQL gives a numeric literal written `s` (digits and
/// dots), or `None` when it must stay a literal.
fn number_type(s: &str) -> Option<u32> {
    if s.contains('.') {
        return (s.matches('.').count() == 1 && s.len() > 1).then_some(NUMERIC);
    }
    let digits = s.trim_start_matches('0');
    if digits == "2147483648" || digits == "9223372036854775808" {
        return None;
    }
    if digits.len() <= 9 || digits.len() == 10 && digits <= "2147483647" {
        Some(INT4)
    } else if digits.len() <= 18 || digits.len() == 19 && digits <= "9223372036854775807" {
        Some(INT8)
    } else {
        Some(NUMERIC)
    }
}

/// The keyword just scanned, as far as column positions care.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Word {
    Other,
    /// `ORDER` or `GROUP`, waiting for `BY`.
    SortStart,
    /// `DISTINCT`, waiting for `ON`.
    Distinct,
    /// `DISTINCT ON`, waiting for `(`.
    DistinctOn,
}

/// The normalized text, values and parameter types, or `None`.
pub fn normalize(sql: &str) -> Option<Normalized> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut values: Vec<String> = Vec::new();
    let mut types: Vec<u32> = Vec::new();
    let mut i = 0;
    let mut last = 0; // start of the not yet copied text
    let mut depth: i32 = 0;
    // The paren depth of an ORDER BY / GROUP BY / DISTINCT ON list being
    // scanned, whose bare integers are output column positions.
    let mut position_list: Option<i32> = None;
    // The previous significant token started a list item.
    let mut item_start = false;
    let mut word = Word::Other;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let starts_item = item_start;
        item_start = false;
        if starts_item && position_list == Some(depth) && matches!(c, b'(' | b'-' | b'+') {
            // `ORDER BY (3)` is still position 3 and `GROUP BY (1, 2)` are
            // positions too: leave such lists to the full path.
            return None;
        }
        let prev_word = word;
        word = Word::Other;
        match c {
            b'\'' => {
                // A prefix letter (E'', B'', X'', U&'') changes the meaning.
                if i > 0
                    && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'&')
                {
                    return None;
                }
                let mut v = String::new();
                let mut j = i + 1;
                loop {
                    let k = j + sql[j..].find('\'')?;
                    v.push_str(&sql[j..k]);
                    if b.get(k + 1) == Some(&b'\'') {
                        v.push('\'');
                        j = k + 2;
                    } else {
                        j = k + 1;
                        break;
                    }
                }
                if starts_item && position_list == Some(depth) {
                    // `ORDER BY 'a'` is an error, `ORDER BY $1` is not.
                    i = j;
                    continue;
                }
                out.push_str(&sql[last..i]);
                values.push(v);
                types.push(UNKNOWN);
                out.push('$');
                out.push_str(&values.len().to_string());
                i = j;
                last = i;
            }
            b'"' => {
                let k = i + 1 + sql[i + 1..].find('"')?;
                i = k + 1;
            }
            b';' if sql[i + 1..].trim().is_empty() => i += 1,
            b'$' | b'\\' | b';' => return None,
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            b'0'..=b'9' => {
                let prev = if i > 0 { b[i - 1] } else { b' ' };
                if prev.is_ascii_alphanumeric() || prev == b'_' || prev >= 0x80 {
                    // Part of an identifier such as t1.
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                    continue;
                }
                if prev == b'.' {
                    // `.5`: the scanner does not take numbers apart.
                    return None;
                }
                let s = i;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                if i < b.len()
                    && (b[i] == b'e' || b[i] == b'E' || b[i].is_ascii_alphabetic() || b[i] == b'_')
                {
                    return None;
                }
                let position = starts_item && position_list == Some(depth);
                match number_type(&sql[s..i]) {
                    Some(ty) if !position => {
                        out.push_str(&sql[last..s]);
                        values.push(sql[s..i].to_string());
                        types.push(ty);
                        out.push('$');
                        out.push_str(&values.len().to_string());
                        last = i;
                    }
                    _ => {}
                }
            }
            _ if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let s = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80)
                {
                    i += 1;
                }
                let w = &sql[s..i];
                if w.eq_ignore_ascii_case("order") || w.eq_ignore_ascii_case("group") {
                    word = Word::SortStart;
                } else if w.eq_ignore_ascii_case("by") && prev_word == Word::SortStart {
                    position_list = Some(depth);
                    item_start = true;
                } else if w.eq_ignore_ascii_case("distinct") {
                    word = Word::Distinct;
                } else if w.eq_ignore_ascii_case("on") && prev_word == Word::Distinct {
                    word = Word::DistinctOn;
                } else if position_list == Some(depth) && ends_position_list(w) {
                    position_list = None;
                }
            }
            b'(' => {
                depth += 1;
                if prev_word == Word::DistinctOn {
                    position_list = Some(depth);
                    item_start = true;
                }
                i += 1;
            }
            b')' => {
                if position_list == Some(depth) {
                    position_list = None;
                }
                depth -= 1;
                i += 1;
            }
            b',' => {
                item_start = true;
                i += 1;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[last..]);
    Some(Normalized {
        text: out,
        values,
        types,
    })
}

/// Keywords after which an ORDER BY / GROUP BY list is over.
fn ends_position_list(w: &str) -> bool {
    [
        "limit",
        "offset",
        "having",
        "window",
        "for",
        "union",
        "intersect",
        "except",
        "fetch",
        "returning",
    ]
    .iter()
    .any(|k| w.eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(sql: &str) -> (String, Vec<String>, Vec<u32>) {
        let n = normalize(sql).unwrap_or_else(|| panic!("not normalized: {sql}"));
        (n.text, n.values, n.types)
    }

    #[test]
    fn literals_become_parameters() {
        let (n, v, t) = norm("SELECT abalance FROM t1 WHERE aid = 42 AND name = 'it''s' LIMIT 10");
        assert_eq!(
            n,
            "SELECT abalance FROM t1 WHERE aid = $1 AND name = $2 LIMIT $3"
        );
        assert_eq!(v, vec!["42", "it's", "10"]);
        assert_eq!(t, vec![INT4, UNKNOWN, INT4]);
        let (n2, _, _) = norm("SELECT abalance FROM t1 WHERE aid = 7 AND name = 'x' LIMIT 1");
        assert_eq!(n, n2);
        assert_eq!(norm("SELECT \"a1\" FROM x WHERE y = 1.5").1, vec!["1.5"]);
        assert_eq!(norm("SELECT 1;\n").0, "SELECT $1;\n");
        for bad in [
            "SELECT E'a'",
            "SELECT $1",
            "SELECT 1 -- c",
            "SELECT 1e5",
            "SELECT $$a$$",
            "SELECT 'open",
            "SELECT x'ff'",
            "SELECT .5",
            "SELECT 1; SELECT 2",
        ] {
            assert!(normalize(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn numbers_get_the_type_postgres_gives_them() {
        let (_, _, t) = norm(
            "SELECT 2147483647, 2147483649, 9223372036854775807, 9223372036854775809, 1.0, 007",
        );
        assert_eq!(t, vec![INT4, INT8, INT8, NUMERIC, NUMERIC, INT4]);
        // Negation folds these two into the narrower type: keep them.
        let (n, v, _) = norm("SELECT -2147483648, -9223372036854775808, -2147483647");
        assert_eq!(n, "SELECT -2147483648, -9223372036854775808, -$1");
        assert_eq!(v, vec!["2147483647"]);
    }

    #[test]
    fn column_positions_stay_literals() {
        let (n, v, _) = norm(
            "SELECT a, 5 FROM t WHERE b IN (1, 2) GROUP BY 1, a, 2 ORDER BY 2 DESC, a + 3, 1 LIMIT 4",
        );
        assert_eq!(
            n,
            "SELECT a, $1 FROM t WHERE b IN ($2, $3) GROUP BY 1, a, 2 ORDER BY 2 DESC, a + $4, 1 LIMIT $5"
        );
        assert_eq!(v, vec!["5", "1", "2", "3", "4"]);
        let (n, _, _) = norm("SELECT a FROM t GROUP BY 'x' ORDER BY 'y' || a");
        assert_eq!(n, "SELECT a FROM t GROUP BY 'x' ORDER BY 'y' || a");
        for bad in [
            "SELECT * FROM t WHERE a = 1 ORDER BY (3) DESC",
            "SELECT a, b FROM t GROUP BY (1, 2)",
            "SELECT a FROM t ORDER BY -1",
        ] {
            assert!(normalize(bad).is_none(), "{bad}");
        }
        let (n, _, _) = norm("SELECT DISTINCT ON (1) a, b FROM t ORDER BY 1, 2");
        assert_eq!(n, "SELECT DISTINCT ON (1) a, b FROM t ORDER BY 1, 2");
        // Inside a window or an aggregate, ORDER BY takes expressions, but
        // a bare integer there is still kept as it is: always safe.
        let (n, _, _) = norm(
            "SELECT string_agg(a, ',' ORDER BY 1), sum(x) OVER (ORDER BY 2) FROM t WHERE c = 3",
        );
        assert_eq!(
            n,
            "SELECT string_agg(a, $1 ORDER BY 1), sum(x) OVER (ORDER BY 2) FROM t WHERE c = $2"
        );
        // The list ends: numbers after it are values again.
        let (n, _, _) =
            norm("SELECT * FROM (SELECT a FROM t ORDER BY 1) s WHERE a > 1 ORDER BY 1 OFFSET 2");
        assert_eq!(
            n,
            "SELECT * FROM (SELECT a FROM t ORDER BY 1) s WHERE a > $1 ORDER BY 1 OFFSET $2"
        );
    }
}
