//! Parameter type inference for the embedded shard.
//!
//! PostgreSQL tells a client the type of each `$n` when it describes a
//! statement; SQLite has no such notion. This looks at what each parameter
//! is compared with, assigned to or inserted into, and takes that column's
//! declared type; LIMIT/OFFSET parameters are bigint; anything else is text.

use super::types::oid;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Param(usize),
    Punct(String),
    Other,
}

fn tokenize(sql: &str) -> Vec<Tok> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'\'' {
            i += 1;
            while i < b.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            out.push(Tok::Other);
        } else if c == b'$' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
            let s = i + 1;
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Tok::Param(sql[s..i].parse().unwrap_or(0)));
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'"' {
            let mut name;
            loop {
                if i < b.len() && b[i] == b'"' {
                    let s = i + 1;
                    i += 1;
                    while i < b.len() && b[i] != b'"' {
                        i += 1;
                    }
                    name = sql[s..i.min(b.len())].to_string();
                    i += 1;
                } else {
                    let s = i;
                    while i < b.len()
                        && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80)
                    {
                        i += 1;
                    }
                    name = sql[s..i].to_ascii_lowercase();
                }
                // a.b: keep the last part.
                if i + 1 < b.len()
                    && b[i] == b'.'
                    && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'"' || b[i + 1] == b'_')
                {
                    i += 1;
                    continue;
                }
                break;
            }
            out.push(Tok::Ident(name));
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Other);
        } else {
            let two = sql.get(i..i + 2).unwrap_or("");
            if matches!(two, "<=" | ">=" | "<>" | "!=" | "::") {
                out.push(Tok::Punct(two.to_string()));
                i += 2;
            } else {
                out.push(Tok::Punct((c as char).to_string()));
                i += 1;
            }
        }
    }
    out
}

fn is_cmp(t: &Tok) -> bool {
    matches!(t, Tok::Punct(p) if matches!(p.as_str(), "=" | "<" | ">" | "<=" | ">=" | "<>" | "!="))
}

/// Infer the type OIDs of parameters `$1..=$n` of `sql`, given the
/// declared type of each known column (by lower-case name).
pub fn infer(sql: &str, n: usize, columns: &HashMap<String, String>) -> Vec<u32> {
    let toks = tokenize(sql);
    let mut types = vec![0u32; n];
    let col_type = |name: &str| columns.get(name).map(|d| super::types::oid_for_decl(d).0);
    let mut set = |p: usize, t: Option<u32>| {
        if let Some(t) = t
            && p >= 1
            && p <= n
            && types[p - 1] == 0
        {
            types[p - 1] = t;
        }
    };
    // INSERT INTO t (cols) VALUES (...), (...)
    let mut insert_cols: Vec<String> = Vec::new();
    let mut i = 0;
    let mut depth = 0i32;
    let mut in_values = false;
    let mut pos_in_tuple = 0usize;
    let mut in_list_col: Option<(String, i32)> = None;
    while i < toks.len() {
        let t = &toks[i];
        match t {
            Tok::Ident(k) if k == "into" => {
                // INTO t ( c1, c2 )
                if let (Some(Tok::Ident(_)), Some(Tok::Punct(p))) =
                    (toks.get(i + 1), toks.get(i + 2))
                    && p == "("
                {
                    let mut j = i + 3;
                    insert_cols.clear();
                    while let Some(Tok::Ident(c)) = toks.get(j) {
                        insert_cols.push(c.clone());
                        j += 1;
                        if toks.get(j) == Some(&Tok::Punct(",".into())) {
                            j += 1;
                        }
                    }
                }
            }
            Tok::Ident(k) if k == "values" => in_values = true,
            Tok::Ident(k) if (k == "limit" || k == "offset") => {
                if let Some(Tok::Param(p)) = toks.get(i + 1) {
                    set(*p, Some(oid::INT8));
                }
            }
            Tok::Ident(k) if k == "in" => {
                if let (Some(Tok::Ident(c)), Some(Tok::Punct(p))) =
                    (i.checked_sub(1).and_then(|j| toks.get(j)), toks.get(i + 1))
                    && p == "("
                {
                    in_list_col = Some((c.clone(), depth + 1));
                }
            }
            Tok::Punct(p) if p == "(" => {
                depth += 1;
                if in_values && depth == 1 {
                    pos_in_tuple = 0;
                }
            }
            Tok::Punct(p) if p == ")" => {
                if in_list_col.as_ref().is_some_and(|(_, d)| *d == depth) {
                    in_list_col = None;
                }
                depth -= 1;
            }
            Tok::Punct(p) if p == "," && in_values && depth == 1 => pos_in_tuple += 1,
            Tok::Param(p) => {
                let p = *p;
                if in_values && depth == 1 {
                    let prev_open =
                        matches!(toks.get(i - 1), Some(Tok::Punct(x)) if x == "(" || x == ",");
                    let next_close =
                        matches!(toks.get(i + 1), Some(Tok::Punct(x)) if x == ")" || x == ",");
                    if prev_open && next_close {
                        set(p, insert_cols.get(pos_in_tuple).and_then(|c| col_type(c)));
                    }
                }
                if let Some((c, _)) = &in_list_col {
                    set(p, col_type(c));
                }
                if i >= 2
                    && is_cmp(&toks[i - 1])
                    && let Tok::Ident(c) = &toks[i - 2]
                {
                    set(p, col_type(c));
                }
                if i + 2 < toks.len()
                    && is_cmp(&toks[i + 1])
                    && let Tok::Ident(c) = &toks[i + 2]
                {
                    set(p, col_type(c));
                }
                if let (Some(Tok::Punct(x)), Some(Tok::Ident(ty))) =
                    (toks.get(i + 1), toks.get(i + 2))
                    && x == "::"
                {
                    // `$1::bigint[]` is an array (its text), not a bigint.
                    let array = matches!(toks.get(i + 3), Some(Tok::Punct(b)) if b == "[");
                    set(
                        p,
                        Some(if array {
                            oid::TEXT
                        } else {
                            super::types::oid_for_decl(ty).0
                        }),
                    );
                }
            }
            _ => {}
        }
        i += 1;
    }
    types
        .into_iter()
        .map(|t| if t == 0 { oid::TEXT } else { t })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_from_context() {
        let cols: HashMap<String, String> = [
            ("customer_id".to_string(), "bigint".to_string()),
            ("amount".to_string(), "numeric".to_string()),
            ("name".to_string(), "text".to_string()),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            infer(
                "SELECT * FROM o WHERE o.customer_id = $1 AND $2 < amount LIMIT $3",
                3,
                &cols
            ),
            vec![oid::INT8, oid::NUMERIC, oid::INT8]
        );
        assert_eq!(
            infer(
                "INSERT INTO o (customer_id, name, amount) VALUES ($1, $2, $3), ($4, 'x', $5)",
                5,
                &cols
            ),
            vec![oid::INT8, oid::TEXT, oid::NUMERIC, oid::INT8, oid::NUMERIC]
        );
        assert_eq!(
            infer("SELECT 1 WHERE customer_id IN ($1, $2)", 2, &cols),
            vec![oid::INT8, oid::INT8]
        );
        assert_eq!(infer("SELECT $1", 1, &cols), vec![oid::TEXT]);
    }
}
