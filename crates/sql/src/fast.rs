//! The fast path of analysis: a statement that names no table with a rule
//! (and no `shardgate.` function) can only touch unsharded tables, which
//! live whole on the default shard, so it needs no parse at all. One pass
//! over the text finds out.
//!
//! Only plain DML qualifies (SELECT, INSERT, UPDATE, DELETE, WITH, VALUES,
//! TABLE); anything else (transaction control, SET, DDL, EXPLAIN) takes the
//! full path, as does any text with dollar quoting or `SELECT ... INTO`.

use crate::plan::{StmtKind, Targets, Template};
use shardgate_core::Topology;

/// The default-shard template for `sql`, if the text alone proves it is
/// one; `None` means: analyze it fully.
pub fn unsharded_only(sql: &str, topo: &Topology) -> Option<Template> {
    if sql.contains('\\') {
        // Backslash escapes (E'...') need the full tokenizer.
        return None;
    }
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    let start = i;
    while i < b.len() && b[i].is_ascii_alphabetic() {
        i += 1;
    }
    let first = &sql[start..i];
    let kind = if first.eq_ignore_ascii_case("select")
        || first.eq_ignore_ascii_case("with")
        || first.eq_ignore_ascii_case("values")
        || first.eq_ignore_ascii_case("table")
    {
        StmtKind::Read
    } else if first.eq_ignore_ascii_case("insert")
        || first.eq_ignore_ascii_case("update")
        || first.eq_ignore_ascii_case("delete")
    {
        StmtKind::Write
    } else {
        return None;
    };
    let mut kind = kind;
    let mut word = String::new();
    let mut check = |w: &str, kind: &mut StmtKind| -> bool {
        word.clear();
        word.extend(w.chars().map(|c| c.to_ascii_lowercase()));
        if matches!(word.as_str(), "insert" | "update" | "delete" | "merge") {
            // A data-modifying WITH (or FOR UPDATE): count it as a write.
            *kind = StmtKind::Write;
        }
        !(topo.rules.contains_key(word.as_str())
            || topo.id_defaults.contains_key(word.as_str())
            || word == "shardgate"
            || crate::analyze::session_state::SESSION_FUNCTIONS.contains(&word.as_str())
            || word == "into" && first.eq_ignore_ascii_case("select"))
    };
    i = start;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
        } else if c == b'"' {
            let s = i + 1;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            let name = &sql[s..i.min(b.len())];
            if topo.rules.contains_key(name)
                || topo.id_defaults.contains_key(name)
                || name == "shardgate"
            {
                return None;
            }
            i += 1;
        } else if c == b'$' && !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            return None;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-')
            || c == b'/' && b.get(i + 1) == Some(&b'*')
        {
            // Comments may hide nothing we need, but keep the scan simple.
            return None;
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
                i += 1;
            }
            if !check(&sql[s..i], &mut kind) {
                return None;
            }
        } else if c == b';' {
            if sql[i + 1..].trim().is_empty() {
                break;
            }
            return None;
        } else {
            i += 1;
        }
    }
    Some(Template::Route {
        targets: Targets::Default,
        kind,
        single_only: None,
        learns: None,
        merge: None,
        aggregate: None,
        split: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardgate_core::{ShardId, Strategy, TableRule};

    fn topo() -> Topology {
        let mut t = Topology {
            shard_names: vec!["s0".into(), "s1".into()],
            ..Default::default()
        };
        t.rules.insert(
            "orders".into(),
            TableRule::sharded(
                "orders",
                vec!["id".into()],
                Strategy::hash(&[ShardId(0), ShardId(1)]).unwrap(),
            )
            .into(),
        );
        t.rules
            .insert("products".into(), TableRule::reference("products").into());
        t
    }

    #[test]
    fn only_texts_without_ruled_names_are_fast() {
        let t = topo();
        assert!(
            unsharded_only("SELECT abalance FROM pgbench_accounts WHERE aid = 5", &t).is_some()
        );
        assert!(unsharded_only("  update notes set x = 'orders' where id = $1", &t).is_some());
        let w = unsharded_only(
            "WITH d AS (DELETE FROM notes RETURNING *) SELECT * FROM d",
            &t,
        );
        assert!(matches!(
            w,
            Some(Template::Route {
                kind: StmtKind::Write,
                ..
            })
        ));
        for sql in [
            "SELECT * FROM orders",
            "SELECT * FROM public.ORDERS",
            "SELECT * FROM \"orders\"",
            "SELECT * FROM products",
            "SELECT shardgate.shard_table('a', 'b')",
            "SELECT * INTO x FROM notes",
            "BEGIN",
            "SET x = 1",
            "CREATE TABLE t (id int)",
            "EXPLAIN SELECT 1",
            "SELECT $$orders$$",
            "SELECT 1 -- orders",
            "SELECT 1; SELECT 2",
        ] {
            assert!(unsharded_only(sql, &t).is_none(), "{sql}");
        }
    }
}
