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
}

impl<W: AsyncWrite + Unpin> ClientOut<W> {
    /// Wrap a writer.
    pub fn new(w: W) -> Self {
        ClientOut {
            buf: BytesMut::with_capacity(FLUSH_AT * 2),
            w,
            flushed: 0,
            deadlock_victim: Default::default(),
        }
    }

    /// Write out everything pending.
    ///
    /// # Errors
    /// The client socket failed.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.w.write_all(&self.buf).await?;
            self.flushed += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Flush if enough is pending (keeps memory bounded while streaming).
    ///
    /// # Errors
    /// The client socket failed.
    pub async fn maybe_flush(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }
}
