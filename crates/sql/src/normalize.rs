//! Query normalization for the plan cache: literals become parameters.
//!
//! `SELECT abalance FROM t WHERE aid = 42` and `... aid = 7` share one
//! normalized text, `SELECT abalance FROM t WHERE aid = $1`, whose analysis
//! can be cached and resolved with the literal values as text parameters.
//! The text sent to the shard is still the client's own. Anything the
//! scanner does not fully understand (comments, dollar quotes, escape or
//! typed string prefixes, existing parameters) is left to the full path.

/// The normalized text and the literal values, in order, or `None`.
pub fn normalize(sql: &str) -> Option<(String, Vec<String>)> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut vals: Vec<String> = Vec::new();
    let mut i = 0;
    let mut last = 0; // start of the not yet copied text
    while i < b.len() {
        let c = b[i];
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
                out.push_str(&sql[last..i]);
                vals.push(v);
                out.push('$');
                out.push_str(&vals.len().to_string());
                i = j;
                last = i;
            }
            b'"' => {
                let k = i + 1 + sql[i + 1..].find('"')?;
                i = k + 1;
            }
            b'$' | b'\\' => return None,
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
                let s = i;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                if i < b.len()
                    && (b[i] == b'e' || b[i] == b'E' || b[i].is_ascii_alphabetic() || b[i] == b'_')
                {
                    return None;
                }
                out.push_str(&sql[last..s]);
                vals.push(sql[s..i].to_string());
                out.push('$');
                out.push_str(&vals.len().to_string());
                last = i;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80)
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[last..]);
    Some((out, vals))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_become_parameters() {
        let (n, v) =
            normalize("SELECT abalance FROM t1 WHERE aid = 42 AND name = 'it''s' LIMIT 10")
                .unwrap();
        assert_eq!(
            n,
            "SELECT abalance FROM t1 WHERE aid = $1 AND name = $2 LIMIT $3"
        );
        assert_eq!(v, vec!["42", "it's", "10"]);
        let (n2, _) =
            normalize("SELECT abalance FROM t1 WHERE aid = 7 AND name = 'x' LIMIT 1").unwrap();
        assert_eq!(n, n2);
        assert_eq!(
            normalize("SELECT \"a1\" FROM x WHERE y = 1.5").unwrap().1,
            vec!["1.5"]
        );
        for bad in [
            "SELECT E'a'",
            "SELECT $1",
            "SELECT 1 -- c",
            "SELECT 1e5",
            "SELECT $$a$$",
            "SELECT 'open",
            "SELECT x'ff'",
        ] {
            assert!(normalize(bad).is_none(), "{bad}");
        }
    }
}
