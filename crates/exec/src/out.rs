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
    /// (a reply the session reads itself), at most `cap` bytes of it.
    pub hold: Option<(usize, usize)>,
    /// A held reply grew past its cap and was dropped.
    pub held_over: bool,
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
        }
    }

    /// Write out everything pending.
    ///
    /// # Errors
    /// The client socket failed.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        let end = match self.hold {
            Some((mark, cap)) => {
                if self.buf.len() > mark + cap {
                    self.buf.truncate(mark);
                    self.held_over = true;
                }
                mark
            }
            None => self.buf.len(),
        };
        if end > 0 {
            self.w.write_all(&self.buf[..end]).await?;
            self.flushed += end as u64;
            let _ = self.buf.split_to(end);
            if let Some((mark, _)) = &mut self.hold {
                *mark = 0;
            }
        }
        Ok(())
    }

    /// Flush if enough is pending (keeps memory bounded while streaming).
    ///
    /// # Errors
    /// The client socket failed.
    pub async fn maybe_flush(&mut self) -> std::io::Result<()> {
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
