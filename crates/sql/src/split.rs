//! Splitting a query string into statements, respecting quotes, comments
//! and dollar quoting.

/// Split a SQL string on top-level semicolons (outside quotes, comments and
/// dollar quotes). Empty statements are dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let mut v = split_raw(sql);
    v.retain(|s| !is_blank(s));
    v
}

/// Is a piece only whitespace and comments?
pub fn is_blank(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
        } else if b[i] == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            match s[i + 2..].find("*/") {
                Some(e) => i = i + 2 + e + 2,
                None => return true,
            }
        } else {
            return false;
        }
    }
    true
}

fn split_raw(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                // E'...' strings take backslash escapes.
                let escapes = q == b'\''
                    && i > 0
                    && matches!(b[i - 1], b'E' | b'e')
                    && (i < 2 || !(b[i - 2].is_ascii_alphanumeric() || b[i - 2] == b'_'));
                i += 1;
                while i < b.len() && b[i] != q {
                    if escapes && b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'$' => {
                let tag_end = sql[i + 1..].find('$').map(|j| i + 1 + j);
                if let Some(e) = tag_end {
                    let tag = &sql[i..=e];
                    if tag[1..tag.len() - 1]
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'_')
                        && !tag[1..].starts_with(|c: char| c.is_ascii_digit())
                        && let Some(close) = sql[e + 1..].find(tag)
                    {
                        i = e + 1 + close + tag.len() - 1;
                    }
                }
            }
            b';' => {
                let s = sql[start..i].trim();
                if !s.is_empty() {
                    out.push(s);
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let s = sql[start.min(sql.len())..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements() {
        assert_eq!(
            split_statements("select 1; select ';'; ; select $$a;b$$; select $1"),
            vec!["select 1", "select ';'", "select $$a;b$$", "select $1"]
        );
        assert_eq!(split_statements("  ;  "), Vec::<&str>::new());
        assert_eq!(split_statements("/* c */"), Vec::<&str>::new());
        assert_eq!(
            split_statements(r"SELECT E'\''; DELETE FROM t; SELECT 'a\'"),
            vec![r"SELECT E'\''", "DELETE FROM t", r"SELECT 'a\'"]
        );
        assert_eq!(
            split_statements("SELECT 1; /* x */ ; -- y"),
            vec!["SELECT 1"]
        );
        assert_eq!(
            split_statements("select 1 -- ; no\n; select 2"),
            vec!["select 1 -- ; no", "select 2"]
        );
    }
}
