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
}

impl<W: AsyncWrite + Unpin> ClientOut<W> {
    /// Wrap a writer.
    pub fn new(w: W) -> Self {
        ClientOut {
            buf: BytesMut::with_capacity(FLUSH_AT * 2),
            w,
            flushed: 0,
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
