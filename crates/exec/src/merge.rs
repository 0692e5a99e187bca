//! Merging the replies of several shards to one statement: a single
//! RowDescription, rows concatenated, row counts added up, the first error
//! reported.

use bytes::BytesMut;
use shardgate_wire::Frame;
use shardgate_wire::backend::{self as be, ErrorFields};

/// What a statement's execution ended with.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// The first error a shard reported, if any.
    pub error: Option<ErrorFields>,
    /// The number of rows (sum over shards).
    pub rows: u64,
    /// PortalSuspended was seen (a row-limited Execute on one shard).
    pub suspended: bool,
    /// The parameter types a ParameterDescription gave, if one passed.
    pub param_types: Option<Vec<u32>>,
    /// A BindComplete passed (an error after it may have run something).
    pub bound: bool,
}

/// Combines the frames of one statement's replies from several shards.
#[derive(Debug, Default)]
pub struct Merger {
    shards: usize,
    described: bool,
    params_described: bool,
    verb: Option<String>,
    count: u64,
    completes: usize,
    empty: bool,
    copies: bool,
    simple_reply: bool,
    retag: Option<String>,
    current: usize,
    held: Option<Frame>,
    /// Rows come out in this order of shard indexes (see
    /// [`Merger::in_order`]); each shard's rows are held until the end.
    order: Option<Vec<usize>>,
    held_rows: Vec<Vec<Frame>>,
    /// Notices already passed on, when each shard's copy of the same
    /// notice is one notice for the client (see [`Merger::one_notice_each`]).
    notices: Option<Vec<Vec<u8>>>,
    /// The outcome so far.
    pub outcome: Outcome,
}

/// Does this frame end a statement's reply in the extended protocol?
pub fn is_terminal(tag: u8) -> bool {
    matches!(tag, b'C' | b'E' | b's' | b'I')
}

impl Merger {
    /// A merger for replies from `shards` shards.
    pub fn new(shards: usize) -> Merger {
        Merger {
            shards,
            ..Default::default()
        }
    }

    /// A merger for a write to every copy of a reference table: the first
    /// shard's reply stands for all; errors from any shard are reported.
    pub fn copies(shards: usize) -> Merger {
        Merger {
            shards,
            copies: true,
            notices: Some(Vec::new()),
            ..Default::default()
        }
    }

    /// Every shard runs the same statement on the same schema (DDL): a
    /// notice several shards send alike (`relation "t" already exists,
    /// skipping`) reaches the client once, as from one PostgreSQL.
    pub fn one_notice_each(mut self) -> Merger {
        self.notices = Some(Vec::new());
        self
    }

    /// Report the merged row count under `verb` (`UPDATE n` for rows an
    /// UPDATE moved with INSERTs), whatever command the shards ran.
    pub fn retag(mut self, verb: &str) -> Merger {
        self.retag = Some(verb.to_string());
        self
    }

    /// The client asked with the simple protocol, the shard was asked with
    /// the extended one: NoData (a Describe of a statement without rows)
    /// is not for the client.
    pub fn simple_reply(mut self) -> Merger {
        self.simple_reply = true;
        self
    }

    /// Rows in the order of a split multi-row INSERT ... RETURNING: the
    /// `k`-th row comes from shard index `order[k]`, as the client's VALUES
    /// rows were placed. Rows are held to the end (an INSERT's rows, which
    /// the client sent) and interleaved back when every shard returned as
    /// many rows as it was given; otherwise (ON CONFLICT DO NOTHING skipped
    /// some) they come shard after shard.
    pub fn in_order(mut self, order: Vec<usize>) -> Merger {
        self.held_rows = vec![Vec::new(); self.shards];
        self.order = Some(order);
        self
    }

    /// The frames that follow come from the `i`-th shard of the statement.
    pub fn shard(&mut self, i: usize) {
        self.current = i;
    }

    /// Take one frame (not ReadyForQuery) and append what the client should
    /// see to `out`.
    pub fn push(&mut self, f: &Frame, out: &mut BytesMut) {
        if self.copies && self.current > 0 && !matches!(f.tag, b'E' | b'N') {
            return;
        }
        match f.tag {
            // ParseComplete, BindComplete and CloseComplete are answered by
            // the session.
            b'2' => self.outcome.bound = true,
            b'1' | b'3' => {}
            b'n' if self.simple_reply => {}
            b'E' => {
                if self.outcome.error.is_none() {
                    self.outcome.error = be::parse_error(&f.body).ok().or_else(|| {
                        Some(ErrorFields {
                            severity: "ERROR".into(),
                            code: "XX000".into(),
                            message: "malformed error from shard".into(),
                            ..Default::default()
                        })
                    });
                    f.encode(out);
                }
            }
            _ if self.outcome.error.is_some() && f.tag != b'N' => {}
            b't' => {
                if !self.params_described {
                    self.params_described = true;
                    let body = &f.body;
                    if body.len() >= 2 {
                        let n = i16::from_be_bytes([body[0], body[1]]).max(0) as usize;
                        self.outcome.param_types = body.get(2..2 + 4 * n).map(|b| {
                            b.chunks(4)
                                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                                .collect()
                        });
                    }
                    f.encode(out);
                }
            }
            b'T' | b'n' => {
                if !self.described {
                    self.described = true;
                    f.encode(out);
                }
            }
            b'D' => {
                self.outcome.rows += 1;
                match self.held_rows.get_mut(self.current) {
                    Some(h) if self.order.is_some() => h.push(f.clone()),
                    _ => f.encode(out),
                }
            }
            b'C' if self.copies => {
                self.completes += 1;
                if self.held.is_none() {
                    self.held = Some(f.clone());
                }
            }
            b'C' if self.shards == 1 && self.retag.is_none() => {
                self.completes += 1;
                // One shard answering a query string of several statements
                // (forwarded whole) describes each one: the next
                // RowDescription belongs to the next statement.
                self.described = false;
                f.encode(out);
            }
            b'C' => {
                self.completes += 1;
                if let Ok(tag) = be::parse_command_complete(&f.body) {
                    let (verb, n) = match tag.rsplit_once(' ') {
                        Some((v, n)) if n.bytes().all(|c| c.is_ascii_digit()) => {
                            (v.to_string(), n.parse().unwrap_or(0))
                        }
                        _ => (tag.to_string(), 0),
                    };
                    self.verb.get_or_insert(verb);
                    self.count += n;
                }
            }
            b'I' => self.empty = true,
            b's' => {
                self.outcome.suspended = true;
                f.encode(out);
            }
            b'N' if self.notices.is_some() => {
                let seen = self.notices.get_or_insert_with(Vec::new);
                if !seen.iter().any(|b| b[..] == f.body[..]) {
                    seen.push(f.body.to_vec());
                    f.encode(out);
                }
            }
            // Notices and anything else pass through.
            _ => f.encode(out),
        }
    }

    /// After every shard has finished: write the merged CommandComplete (or
    /// EmptyQueryResponse) unless an error was reported.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.outcome.error.is_some() {
            return;
        }
        self.release_rows(out);
        if let Some(c) = self.held.take() {
            c.encode(out);
            return;
        }
        if let Some(verb) = &self.retag {
            be::command_complete(out, &format!("{verb} {}", self.count));
            return;
        }
        if self.shards > 1 && !self.copies {
            if let Some(verb) = &self.verb {
                let tag = if verb == "SELECT"
                    || verb.starts_with("INSERT")
                    || verb == "UPDATE"
                    || verb == "DELETE"
                    || verb == "MERGE"
                    || verb == "COPY"
                    || verb == "FETCH"
                    || verb == "MOVE"
                {
                    format!("{verb} {}", self.count)
                } else {
                    verb.clone()
                };
                be::command_complete(out, &tag);
            } else if self.empty {
                be::empty_query(out);
            }
        } else if self.empty && self.completes == 0 {
            be::empty_query(out);
        }
    }
}

impl Merger {
    /// Write the rows held for [`Merger::in_order`].
    fn release_rows(&mut self, out: &mut BytesMut) {
        let Some(order) = self.order.take() else {
            return;
        };
        let held = std::mem::take(&mut self.held_rows);
        let fits = held
            .iter()
            .enumerate()
            .all(|(i, rows)| order.iter().filter(|o| **o == i).count() == rows.len());
        if fits {
            let mut next = vec![0usize; held.len()];
            for i in order {
                held[i][next[i]].encode(out);
                next[i] += 1;
            }
        } else {
            for f in held.iter().flatten() {
                f.encode(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(build: impl Fn(&mut BytesMut)) -> Frame {
        let mut b = BytesMut::new();
        build(&mut b);
        Frame::take(&mut b).unwrap().unwrap()
    }

    #[test]
    fn adds_counts_and_keeps_one_description() {
        let mut m = Merger::new(2);
        let mut out = BytesMut::new();
        let desc = frame(|b| be::row_description(b, &[be::Column::new("a", 20, 8)]));
        for n in [3, 4] {
            m.push(&desc, &mut out);
            m.push(
                &frame(|b| be::command_complete(b, &format!("UPDATE {n}"))),
                &mut out,
            );
        }
        m.finish(&mut out);
        let mut tags = Vec::new();
        while let Some(f) = Frame::take(&mut out).unwrap() {
            tags.push((f.tag, f.body));
        }
        assert_eq!(tags.len(), 2);
        assert_eq!(be::parse_command_complete(&tags[1].1).unwrap(), "UPDATE 7");
    }

    #[test]
    fn one_shard_describes_each_statement_of_a_query_string() {
        let mut m = Merger::new(1);
        let mut out = BytesMut::new();
        for name in ["a", "b"] {
            m.push(
                &frame(|b| be::row_description(b, &[be::Column::new(name, 23, 4)])),
                &mut out,
            );
            m.push(
                &frame(|b| be::data_row(b, [Some(&b"1"[..])].into_iter())),
                &mut out,
            );
            m.push(&frame(|b| be::command_complete(b, "SELECT 1")), &mut out);
        }
        m.finish(&mut out);
        let mut tags = Vec::new();
        while let Some(f) = Frame::take(&mut out).unwrap() {
            tags.push(f.tag);
        }
        assert_eq!(tags, b"TDCTDC");
    }

    #[test]
    fn insert_rows_come_back_in_values_order() {
        let row = |v: &str| frame(|b| be::data_row(b, [Some(v.as_bytes())].into_iter()));
        let tag = frame(|b| be::command_complete(b, "INSERT 0 2"));
        let run = |second: &[&str]| {
            let mut m = Merger::new(2).in_order(vec![1, 0, 1, 0]);
            let mut out = BytesMut::new();
            m.shard(0);
            for v in ["b", "d"] {
                m.push(&row(v), &mut out);
            }
            m.push(&tag, &mut out);
            m.shard(1);
            for v in second {
                m.push(&row(v), &mut out);
            }
            m.push(&tag, &mut out);
            m.finish(&mut out);
            let mut got = Vec::new();
            while let Some(f) = Frame::take(&mut out).unwrap() {
                if f.tag == b'D' {
                    let v = be::parse_data_row(&f.body).unwrap();
                    got.push(String::from_utf8(v[0].unwrap().to_vec()).unwrap());
                }
            }
            got
        };
        assert_eq!(run(&["a", "c"]), ["a", "b", "c", "d"]);
        // A shard returned fewer rows than it was given: shard order.
        assert_eq!(run(&["a"]), ["b", "d", "a"]);
    }

    #[test]
    fn reports_first_error_only() {
        let mut m = Merger::new(2);
        let mut out = BytesMut::new();
        m.push(&frame(|b| be::error(b, "23505", "dup")), &mut out);
        m.push(&frame(|b| be::error(b, "23505", "dup again")), &mut out);
        m.finish(&mut out);
        assert_eq!(m.outcome.error.unwrap().message, "dup");
        let f = Frame::take(&mut out).unwrap().unwrap();
        assert_eq!(f.tag, b'E');
        assert!(Frame::take(&mut out).unwrap().is_none());
    }
}
