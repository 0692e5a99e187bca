//! SQL cursors: `DECLARE ... CURSOR FOR`, `FETCH`, `MOVE` and `CLOSE`,
//! read into [`CursorOp`]s that the session carries out (it knows which cursors it holds and where). Pure:
//! no connection, no session state.

use crate::error::SqlError;
use crate::plan::{Local, Template};
use sqlparser::ast::{self, CloseCursor, DeclareType, Statement};

/// A cursor statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorOp {
    /// `DECLARE name [NO SCROLL | SCROLL] CURSOR [WITH HOLD] FOR query`
    /// (over any tables: the session tracks every cursor's place).
    Declare {
        /// The cursor's name as PostgreSQL folds it.
        name: String,
        /// The query, as SQL text.
        query: String,
        /// `NO SCROLL` was given: no fetching backwards.
        no_scroll: bool,
        /// `WITH HOLD`: it outlives its transaction.
        hold: bool,
        /// `BINARY`: rows in binary format.
        binary: bool,
    },
    /// `FETCH` (or, with `moves`, `MOVE`) on cursor `name`.
    Fetch {
        /// The cursor's name as PostgreSQL folds it.
        name: String,
        /// Which rows.
        dir: FetchDir,
        /// `MOVE`: position only, no rows sent.
        moves: bool,
    },
    /// `CLOSE name`, or `CLOSE ALL` (`None`).
    Close(Option<String>),
}

/// Where a FETCH goes, in PostgreSQL's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchDir {
    /// `FORWARD n` (also `NEXT`, a bare count; a negative count goes
    /// backward).
    Forward(i64),
    /// `BACKWARD n` (also `PRIOR`).
    Backward(i64),
    /// `ALL`, `FORWARD ALL`.
    ForwardAll,
    /// `BACKWARD ALL`.
    BackwardAll,
    /// `ABSOLUTE n` (also `FIRST`, `LAST`).
    Absolute(i64),
    /// `RELATIVE n`.
    Relative(i64),
}

/// An identifier as PostgreSQL folds it (unquoted: ASCII lower case).
pub fn name_of(i: &ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_ascii_lowercase()
    }
}

/// `FETCH`/`MOVE` `[direction] [FROM | IN] name`: the cursor's name and
/// the direction (PostgreSQL's grammar; counts may be signed).
fn parse_fetch(sql: &str) -> Option<(String, FetchDir)> {
    let body = sql.trim().trim_end_matches(';').trim_end();
    // Words, and quoted identifiers (which may hold spaces and "").
    let mut tokens: Vec<(String, bool)> = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut t = String::new();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        t.push('"');
                    }
                    '"' => break,
                    c => t.push(c),
                }
            }
            tokens.push((t, true));
        } else {
            let mut t = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' {
                    break;
                }
                t.push(c);
                chars.next();
            }
            tokens.push((t, false));
        }
    }
    let (name, quoted) = tokens.pop()?;
    let name = if quoted {
        name
    } else {
        name.to_ascii_lowercase()
    };
    if name.is_empty() || tokens.is_empty() {
        return None;
    }
    let mut words: Vec<&str> = tokens[1..].iter().map(|(t, _)| t.as_str()).collect();
    if matches!(
        words.last().map(|w| w.to_ascii_lowercase()).as_deref(),
        Some("from" | "in")
    ) {
        words.pop();
    }
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    // PostgreSQL's grammar takes 32-bit counts.
    let num = |w: &str| w.parse::<i32>().ok().map(i64::from);
    let dir = match lower
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["next"] | ["forward"] => FetchDir::Forward(1),
        ["prior"] | ["backward"] => FetchDir::Backward(1),
        ["first"] => FetchDir::Absolute(1),
        ["last"] => FetchDir::Absolute(-1),
        ["all"] | ["forward", "all"] => FetchDir::ForwardAll,
        ["backward", "all"] => FetchDir::BackwardAll,
        ["absolute", n] => FetchDir::Absolute(num(n)?),
        ["relative", n] => FetchDir::Relative(num(n)?),
        ["forward", n] | [n] => match num(n)? {
            k if k < 0 => FetchDir::Backward(-k),
            k => FetchDir::Forward(k),
        },
        ["backward", n] => match num(n)? {
            k if k < 0 => FetchDir::Forward(-k),
            k => FetchDir::Backward(k),
        },
        _ => return None,
    };
    Some((name, dir))
}

/// The first word of `sql`, lower-case.
fn first_word(sql: &str) -> &str {
    sql.split(|c: char| c.is_whitespace() || c == ';' || c == '(')
        .find(|w| !w.is_empty())
        .unwrap_or("")
}

/// `sql` from its first word on: leading whitespace and comments
/// (`--` lines, nested `/* */`) skipped, nothing copied.
pub fn skip_leading_comments(sql: &str) -> &str {
    let mut s = sql.trim_start();
    loop {
        if let Some(rest) = s.strip_prefix("--") {
            s = rest.find('\n').map_or("", |i| &rest[i + 1..]).trim_start();
        } else if s.starts_with("/*") {
            let b = s.as_bytes();
            let (mut depth, mut i) = (0usize, 0);
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            s = s[i.min(b.len())..].trim_start();
        } else {
            return s;
        }
    }
}

/// `sql` without its comments (`--` to the end of the line, nested
/// `/* */`), quoted strings and identifiers left alone (not dollar
/// quotes: for FETCH and MOVE, which have none).
fn strip_comments(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                i = (i + 1).min(b.len());
                out.push_str(&sql[start..i]);
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                out.push(' ');
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            _ => {
                let start = i;
                while i < b.len() && !matches!(b[i], b'\'' | b'"' | b'-' | b'/') {
                    i += 1;
                }
                if i == start {
                    i += 1;
                }
                out.push_str(&sql[start..i]);
            }
        }
    }
    out
}

/// A cursor statement's template, or `None` when `sql` is not one (or is
/// a DECLARE or CLOSE sqlparser cannot read: those go their usual way).
pub fn cursor_statement(sql: &str) -> Option<Template> {
    let word = first_word(skip_leading_comments(sql));
    let is = |w: &str| word.eq_ignore_ascii_case(w);
    if is("fetch") || is("move") {
        return Some(match parse_fetch(&strip_comments(sql)) {
            Some((name, dir)) => Template::Local(Local::Cursor(CursorOp::Fetch {
                name,
                dir,
                moves: is("move"),
            })),
            None => Template::Refuse(SqlError::Syntax(format!(
                "shardgate cannot read this {} statement",
                word.to_ascii_uppercase()
            ))),
        });
    }
    if !is("declare") && !is("close") {
        return None;
    }
    let stmts = crate::parse::parse_sql(sql).ok()?;
    let [stmt] = stmts.as_slice() else {
        return None;
    };
    let op = match stmt {
        Statement::Close { cursor } => CursorOp::Close(match cursor {
            CloseCursor::All => None,
            CloseCursor::Specific { name } => Some(name_of(name)),
        }),
        Statement::Declare { stmts } => {
            let [d] = stmts.as_slice() else {
                return None;
            };
            let (Some(DeclareType::Cursor), [name], Some(q)) =
                (&d.declare_type, d.names.as_slice(), &d.for_query)
            else {
                return None;
            };
            if d.hold == Some(true) && !q.locks.is_empty() {
                return Some(Template::Refuse(SqlError::Unsupported(
                    "DECLARE CURSOR WITH HOLD ... FOR UPDATE is not supported".into(),
                )));
            }
            let query = q.to_string();
            CursorOp::Declare {
                name: name_of(name),
                query,
                no_scroll: d.scroll == Some(false),
                hold: d.hold == Some(true),
                binary: d.binary == Some(true),
            }
        }
        _ => return None,
    };
    Some(Template::Local(Local::Cursor(op)))
}

/// The rows a FETCH (or MOVE, `moves`) takes from a cursor over `n` rows
/// that stands at `pos` (0: before the first row, `n + 1`: after the
/// last), as PostgreSQL moves: the row numbers (1-based) in the order they
/// are sent, and the position after. `Err` (55000) where PostgreSQL's
/// executor would step backwards on a cursor that may not
/// (`backward_ok` false: NO SCROLL).
pub fn fetch_rows(
    dir: FetchDir,
    pos: usize,
    n: usize,
    backward_ok: bool,
    moves: bool,
) -> Result<(Vec<usize>, usize), SqlError> {
    let (pos, n) = (pos as i64, n as i64);
    let on_row = pos >= 1 && pos <= n;
    let steps_back = match dir {
        // Re-fetching the current row steps back onto it first (a MOVE
        // only counts it); BACKWARD 0 steps back even off a row.
        FetchDir::Forward(0) | FetchDir::Relative(0) => on_row && !moves,
        FetchDir::Backward(0) => !moves,
        // Back to the start from the start is a rewind, allowed there.
        FetchDir::BackwardAll => !(moves && pos == 0),
        FetchDir::Backward(_) => true,
        FetchDir::Absolute(k) if k < 0 => true,
        // Anything at or before the current row is reached by rewinding,
        // which is free only where nothing was read yet.
        FetchDir::Absolute(k) => pos > 0 && k <= pos,
        FetchDir::Relative(k) => k < 0,
        FetchDir::Forward(_) | FetchDir::ForwardAll => false,
    };
    if steps_back && !backward_ok {
        return Err(SqlError::ObjectState("cursor can only scan forward".into()));
    }
    // One row at `target`, or none (position before the first or after
    // the last).
    let one = |target: i64| -> (Vec<usize>, usize) {
        if target < 1 {
            (Vec::new(), 0)
        } else if target > n {
            (Vec::new(), (n + 1) as usize)
        } else {
            (vec![target as usize], target as usize)
        }
    };
    let forward = |k: i64| -> (Vec<usize>, usize) {
        let last = (pos + k).min(n);
        let rows: Vec<usize> = ((pos + 1).max(1)..=last).map(|r| r as usize).collect();
        let at = if pos + k > n { n + 1 } else { pos + k };
        (rows, at as usize)
    };
    let backward = |k: i64| -> (Vec<usize>, usize) {
        let first = (pos - k).max(1);
        let rows: Vec<usize> = (first..=(pos - 1).min(n))
            .rev()
            .map(|r| r as usize)
            .collect();
        let at = if pos - k < 1 { 0 } else { pos - k };
        (rows, at as usize)
    };
    Ok(match dir {
        // The current row again.
        FetchDir::Forward(0) | FetchDir::Relative(0) | FetchDir::Backward(0) => {
            if on_row {
                (vec![pos as usize], pos as usize)
            } else {
                (Vec::new(), pos as usize)
            }
        }
        FetchDir::Forward(k) => forward(k),
        FetchDir::ForwardAll => forward(i64::from(i32::MAX) + n + 1),
        FetchDir::Backward(k) => backward(k),
        FetchDir::BackwardAll => backward(i64::from(i32::MAX) + n + 1),
        FetchDir::Absolute(k) => one(if k >= 0 { k } else { n + 1 + k }),
        FetchDir::Relative(k) => one(pos + k),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(sql: &str) -> Option<CursorOp> {
        match cursor_statement(sql)? {
            Template::Local(Local::Cursor(op)) => Some(op),
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn reads_cursor_statements() {
        assert_eq!(
            op("DECLARE \"C1\" NO SCROLL CURSOR WITH HOLD FOR SELECT id FROM t ORDER BY id"),
            Some(CursorOp::Declare {
                name: "C1".into(),
                query: "SELECT id FROM t ORDER BY id".into(),
                no_scroll: true,
                hold: true,
                binary: false,
            })
        );
        // Over unsharded tables too: the session tracks every cursor.
        assert!(matches!(
            op("DECLARE c CURSOR FOR SELECT * FROM other"),
            Some(CursorOp::Declare { .. })
        ));
        let fetch = |sql: &str| match op(sql) {
            Some(CursorOp::Fetch { name, dir, moves }) => (name, dir, moves),
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(
            fetch("FETCH 5 FROM C"),
            ("c".into(), FetchDir::Forward(5), false)
        );
        assert_eq!(
            fetch("fetch next in c"),
            ("c".into(), FetchDir::Forward(1), false)
        );
        assert_eq!(fetch("FETCH PRIOR FROM c").1, FetchDir::Backward(1));
        assert_eq!(fetch("FETCH LAST FROM c").1, FetchDir::Absolute(-1));
        assert_eq!(fetch("FETCH ABSOLUTE -2 FROM c").1, FetchDir::Absolute(-2));
        assert_eq!(fetch("FETCH BACKWARD ALL FROM c").1, FetchDir::BackwardAll);
        assert_eq!(fetch("FETCH ALL c").1, FetchDir::ForwardAll);
        assert_eq!(
            fetch("MOVE FORWARD 3 IN c"),
            ("c".into(), FetchDir::Forward(3), true)
        );
        assert_eq!(op("CLOSE ALL"), Some(CursorOp::Close(None)));
        assert_eq!(op("close \"X\""), Some(CursorOp::Close(Some("X".into()))));
        assert_eq!(op("SELECT 1"), None);
        assert_eq!(fetch("FETCH RELATIVE -2 FROM c").1, FetchDir::Relative(-2));
        assert_eq!(fetch("FETCH -3 c").1, FetchDir::Backward(3));
        assert_eq!(fetch("FETCH BACKWARD -3 IN c").1, FetchDir::Forward(3));
        assert_eq!(fetch("FETCH c;").1, FetchDir::Forward(1));
        assert_eq!(
            fetch("FETCH FORWARD 2 FROM \"my \"\"cur\"\"\""),
            ("my \"cur\"".into(), FetchDir::Forward(2), false)
        );
        assert_eq!(
            fetch("/* app */ FETCH 2 FROM c -- why\n").1,
            FetchDir::Forward(2)
        );
        assert_eq!(
            fetch("FETCH /* x */ NEXT FROM \"a--b\" -- y").0,
            "a--b".to_string()
        );
        assert!(matches!(
            cursor_statement("FETCH 3000000000 FROM c"),
            Some(Template::Refuse(_))
        ));
        assert!(matches!(
            cursor_statement("FETCH SIDEWAYS FROM c"),
            Some(Template::Refuse(_))
        ));
    }

    #[test]
    fn fetches_move_as_postgres_does() {
        let f = |dir, pos, n, ok| fetch_rows(dir, pos, n, ok, false);
        // 5 rows, before the first.
        assert_eq!(
            f(FetchDir::Forward(2), 0, 5, true).unwrap(),
            (vec![1, 2], 2)
        );
        assert_eq!(
            f(FetchDir::Forward(9), 2, 5, true).unwrap(),
            (vec![3, 4, 5], 6)
        );
        assert_eq!(f(FetchDir::Forward(1), 6, 5, true).unwrap(), (vec![], 6));
        assert_eq!(
            f(FetchDir::Forward(3), 2, 5, true).unwrap(),
            (vec![3, 4, 5], 5)
        );
        assert_eq!(
            f(FetchDir::Backward(2), 6, 5, true).unwrap(),
            (vec![5, 4], 4)
        );
        assert_eq!(
            f(FetchDir::BackwardAll, 3, 5, true).unwrap(),
            (vec![2, 1], 0)
        );
        assert_eq!(f(FetchDir::Absolute(-1), 0, 5, true).unwrap(), (vec![5], 5));
        assert_eq!(f(FetchDir::Absolute(7), 0, 5, true).unwrap(), (vec![], 6));
        assert_eq!(f(FetchDir::Relative(0), 3, 5, true).unwrap(), (vec![3], 3));
        assert_eq!(f(FetchDir::Relative(-5), 3, 5, true).unwrap(), (vec![], 0));
        assert_eq!(f(FetchDir::ForwardAll, 0, 0, true).unwrap(), (vec![], 1));
        // NO SCROLL: where PostgreSQL's executor would step backwards.
        assert!(f(FetchDir::Backward(1), 3, 5, false).is_err());
        assert!(f(FetchDir::Absolute(1), 3, 5, false).is_err());
        assert!(f(FetchDir::Absolute(-1), 0, 5, false).is_err());
        assert!(f(FetchDir::Forward(0), 3, 5, false).is_err());
        assert!(f(FetchDir::Backward(0), 0, 5, false).is_err());
        assert_eq!(f(FetchDir::Forward(0), 0, 5, false).unwrap(), (vec![], 0));
        assert_eq!(f(FetchDir::Absolute(0), 0, 5, false).unwrap(), (vec![], 0));
        assert_eq!(f(FetchDir::Absolute(1), 0, 5, false).unwrap(), (vec![1], 1));
        assert_eq!(f(FetchDir::Absolute(4), 3, 5, false).unwrap(), (vec![4], 4));
        assert_eq!(
            fetch_rows(FetchDir::Forward(0), 3, 5, false, true).unwrap(),
            (vec![3], 3)
        );
    }
}
