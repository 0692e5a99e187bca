//! The client's output buffer: frames are appended and flushed in batches.

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Flush when the buffer holds this much.
const FLUSH_AT: usize = 64 * 1024;

/// Buffered output to the client.
pub struct ClientOut<W> {
    /// Pending bytes.
    pub buf: BytesMut,
    /// The client socket.
    pub w: W,
    /// Bytes written to the socket so far.
    pub flushed: u64,
    /// Set when shardgate's cross-shard deadlock detector cancels this
    /// session's statement: the shard's "canceling statement" error then
    /// reaches the client as the deadlock it is (40P01).
    pub deadlock_victim: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// While set, `(mark, cap)`: what follows `mark` in `buf` is held back
    /// (a reply the session reads itself), at most `cap` bytes of it. Set
    /// and ended with [`ClientOut::push_hold`] / [`ClientOut::pop_hold`].
    pub hold: Option<(usize, usize)>,
    /// A held reply grew past its cap and was dropped.
    pub held_over: bool,
    /// Holds further out than `hold`, innermost last, each as `(mark,
    /// cap, held_over)`: a reply held back while the session reads
    /// another one inside it (a subquery run first within a subquery run
    /// first). A flush writes nothing past the outermost mark.
    outer_holds: Vec<(usize, usize, bool)>,
    /// While set, the query reply written is turned into a `COPY ... TO
    /// STDOUT` reply as it goes out (see [`CopyOut`]).
    pub copy_out: Option<CopyOut>,
}

/// Turns a query's reply (RowDescription, DataRows, CommandComplete) into
/// a `COPY ... TO STDOUT` one (CopyOutResponse, CopyData rows written as
/// COPY writes them, CopyDone, `COPY n`), frame by frame as the output is
/// flushed: a merged `COPY (query) TO` streams.
pub struct CopyOut {
    opts: shardgate_sql::copy::CopyOptions,
    /// Where the frames not yet turned begin in the buffer.
    from: usize,
    rows: u64,
    line: Vec<u8>,
}

impl CopyOut {
    /// For a COPY with these options, its reply starting at `from` in the
    /// output buffer.
    pub fn new(opts: shardgate_sql::copy::CopyOptions, from: usize) -> CopyOut {
        CopyOut {
            opts,
            from,
            rows: 0,
            line: Vec::new(),
        }
    }

    /// Turn the whole frames of `buf` after `self.from`.
    fn turn(&mut self, buf: &mut BytesMut) {
        use bytes::BufMut;
        if self.from >= buf.len() {
            self.from = buf.len();
            return;
        }
        let tail = buf.split_off(self.from);
        let mut at = 0;
        while tail.len() >= at + 5 {
            let len = u32::from_be_bytes([tail[at + 1], tail[at + 2], tail[at + 3], tail[at + 4]])
                as usize;
            if len < 4 || tail.len() < at + 1 + len {
                break;
            }
            let tag = tail[at];
            let body = &tail[at + 5..at + 1 + len];
            let frame = |buf: &mut BytesMut, tag: u8, data: &[u8]| {
                buf.put_u8(tag);
                buf.put_u32((data.len() + 4) as u32);
                buf.put_slice(data);
            };
            match tag {
                b'T' => {
                    let cols =
                        shardgate_wire::backend::parse_row_description(body).unwrap_or_default();
                    let mut r = vec![0u8];
                    r.extend_from_slice(&(cols.len() as i16).to_be_bytes());
                    for _ in &cols {
                        r.extend_from_slice(&0i16.to_be_bytes());
                    }
                    frame(buf, b'H', &r);
                    if self.opts.header {
                        let names: Vec<Option<&[u8]>> =
                            cols.iter().map(|c| Some(c.name.as_bytes())).collect();
                        self.line.clear();
                        shardgate_sql::copy_rows::encode_row(&self.opts, &names, &mut self.line);
                        frame(buf, b'd', &self.line);
                    }
                }
                b'D' => {
                    let fields = shardgate_wire::backend::parse_data_row(body).unwrap_or_default();
                    self.line.clear();
                    shardgate_sql::copy_rows::encode_row(&self.opts, &fields, &mut self.line);
                    frame(buf, b'd', &self.line);
                    self.rows += 1;
                }
                b'C' => {
                    frame(buf, b'c', &[]);
                    let tag = format!("COPY {}\0", self.rows);
                    frame(buf, b'C', tag.as_bytes());
                }
                _ => buf.put_slice(&tail[at..at + 1 + len]),
            }
            at += 1 + len;
        }
        self.from = buf.len();
        buf.put_slice(&tail[at..]);
    }
}

impl<W: AsyncWrite + Unpin> ClientOut<W> {
    /// Wrap a writer.
    pub fn new(w: W) -> Self {
        ClientOut {
            buf: BytesMut::with_capacity(FLUSH_AT * 2),
            w,
            flushed: 0,
            deadlock_victim: Default::default(),
            hold: None,
            held_over: false,
            outer_holds: Vec::new(),
            copy_out: None,
        }
    }

    /// Turn what was written since the last call into COPY data (see
    /// [`CopyOut`]), if a COPY is being written.
    pub fn turn_copy(&mut self) {
        if let Some(mut c) = self.copy_out.take() {
            c.turn(&mut self.buf);
            self.copy_out = Some(c);
        }
    }

    /// Hold back what is written from now on, at most `cap` bytes of it
    /// (inside the hold already set, if any), until [`ClientOut::pop_hold`].
    pub fn push_hold(&mut self, cap: usize) {
        if let Some((mark, c)) = self.hold.take() {
            self.outer_holds
                .push((mark, c, std::mem::take(&mut self.held_over)));
        }
        self.hold = Some((self.buf.len(), cap));
    }

    /// End the innermost hold: the bytes it held back, and whether they
    /// grew past its cap (they were then dropped). The hold around it, if
    /// any, is in force again.
    pub fn pop_hold(&mut self) -> (BytesMut, bool) {
        let (mark, _) = self.hold.take().unwrap_or((self.buf.len(), 0));
        let over = std::mem::take(&mut self.held_over);
        let held = self.buf.split_off(mark.min(self.buf.len()));
        if let Some((m, c, o)) = self.outer_holds.pop() {
            self.hold = Some((m, c));
            self.held_over = o;
        }
        (held, over)
    }

    /// How many holds are in force (see [`ClientOut::push_hold`]).
    pub fn hold_depth(&self) -> usize {
        self.outer_holds.len() + usize::from(self.hold.is_some())
    }

    /// Write out everything pending.
    ///
    /// # Errors
    /// The client socket failed.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.turn_copy();
        let end = match self.hold {
            Some((mark, cap)) => {
                if self.buf.len() > mark + cap {
                    self.buf.truncate(mark);
                    self.held_over = true;
                }
                // Nothing an outer hold holds either.
                self.outer_holds.first().map_or(mark, |o| o.0.min(mark))
            }
            None => self.buf.len(),
        };
        if end > 0 {
            self.w.write_all(&self.buf[..end]).await?;
            self.flushed += end as u64;
            let _ = self.buf.split_to(end);
            if let Some((mark, _)) = &mut self.hold {
                *mark -= end;
            }
            for o in &mut self.outer_holds {
                o.0 -= end;
            }
            if let Some(c) = &mut self.copy_out {
                c.from = c.from.saturating_sub(end);
            }
        }
        Ok(())
    }

    /// Flush if enough is pending (keeps memory bounded while streaming).
    ///
    /// # Errors
    /// The client socket failed.
    pub async fn maybe_flush(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.turn_copy();
        }
        if let Some((mark, cap)) = self.hold {
            if self.buf.len() > mark + cap {
                self.buf.truncate(mark);
                self.held_over = true;
            }
            return Ok(());
        }
        if self.buf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nested_holds_keep_outer_bytes_from_a_flush() {
        let mut out = ClientOut::new(Vec::<u8>::new());
        out.buf.extend_from_slice(b"sent ");
        out.push_hold(100);
        out.buf.extend_from_slice(b"outer ");
        out.push_hold(100);
        out.buf.extend_from_slice(b"inner");
        out.flush().await.unwrap();
        // Only what precedes the outermost hold went out.
        assert_eq!(out.w, b"sent ");
        let (inner, over) = out.pop_hold();
        assert_eq!(&inner[..], b"inner");
        assert!(!over);
        assert_eq!(out.hold_depth(), 1);
        out.buf.extend_from_slice(b"more");
        let (outer, over) = out.pop_hold();
        assert_eq!(&outer[..], b"outer more");
        assert!(!over);
        assert_eq!(out.hold_depth(), 0);
    }

    #[tokio::test]
    async fn an_inner_hold_past_its_cap_is_dropped_alone() {
        let mut out = ClientOut::new(Vec::<u8>::new());
        out.push_hold(100);
        out.buf.extend_from_slice(b"outer ");
        out.push_hold(3);
        out.buf.extend_from_slice(b"too long");
        out.maybe_flush().await.unwrap();
        let (inner, over) = out.pop_hold();
        assert!(over);
        assert!(inner.is_empty());
        let (outer, over) = out.pop_hold();
        assert!(!over);
        assert_eq!(&outer[..], b"outer ");
        assert!(out.w.is_empty());
    }
}
