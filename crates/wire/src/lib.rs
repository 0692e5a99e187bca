//! shardgate-wire: PostgreSQL v3 protocol messages to and from bytes.
//!
//! A message on the wire is a one-byte tag, a 4-byte big-endian length that
//! counts itself, and a body. [`Frame`] holds one such message without
//! interpreting it, so that shardgate can forward it as it is;
//! [`frontend`] parses and builds what clients send, [`backend`] what servers
//! send. The startup packet (no tag) is handled by [`startup`].

#![warn(missing_docs)]

pub mod backend;
pub mod error;
pub mod frontend;
pub mod startup;

pub use error::WireError;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest message shardgate accepts (1 GiB, PostgreSQL's own limit).
pub const MAX_MESSAGE: usize = 1 << 30;

/// One protocol message: its tag and its body (without tag and length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message type byte, e.g. `b'Q'`.
    pub tag: u8,
    /// The body after the length word.
    pub body: Bytes,
}

impl Frame {
    /// Take one whole message from the front of `buf`, if there is one.
    ///
    /// # Errors
    /// [`WireError::BadLength`] for a length below 4 or above [`MAX_MESSAGE`].
    pub fn take(buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        if buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if !(4..=MAX_MESSAGE).contains(&len) {
            return Err(WireError::BadLength(len));
        }
        if buf.len() < len + 1 {
            // Grow with what arrives, not with what a header announces.
            buf.reserve((len + 1 - buf.len()).min(1 << 20));
            return Ok(None);
        }
        let tag = buf[0];
        let mut whole = buf.split_to(len + 1);
        whole.advance(5);
        Ok(Some(Frame {
            tag,
            body: whole.freeze(),
        }))
    }

    /// Append this message, tag and length included, to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.body.len() + 5);
        out.put_u8(self.tag);
        out.put_u32(self.body.len() as u32 + 4);
        out.put_slice(&self.body);
    }

    /// The whole message as bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.body.len() + 5);
        self.encode(&mut b);
        b.freeze()
    }
}

/// Start a message with `tag` in `out`; returns the position of its length
/// word, to be filled in by [`finish`].
pub fn begin(out: &mut BytesMut, tag: u8) -> usize {
    out.put_u8(tag);
    let at = out.len();
    out.put_u32(0);
    at
}

/// Fill in the length word of a message started with [`begin`].
pub fn finish(out: &mut BytesMut, at: usize) {
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Append a NUL-terminated string.
pub fn put_cstr(out: &mut BytesMut, s: &str) {
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

/// A cursor over a message body with checked reads.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Read from `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// A NUL-terminated UTF-8 string.
    pub fn cstr(&mut self) -> Result<&'a str, WireError> {
        let n = self
            .buf
            .iter()
            .position(|b| *b == 0)
            .ok_or(WireError::Truncated)?;
        let s = std::str::from_utf8(&self.buf[..n]).map_err(|_| WireError::BadUtf8)?;
        self.buf = &self.buf[n + 1..];
        Ok(s)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        let (&b, rest) = self.buf.split_first().ok_or(WireError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    /// A big-endian i16.
    pub fn i16(&mut self) -> Result<i16, WireError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    /// A big-endian i32.
    pub fn i32(&mut self) -> Result<i32, WireError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    /// A length-prefixed value (length -1 is NULL).
    pub fn value(&mut self) -> Result<Option<&'a [u8]>, WireError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        self.bytes(n as usize).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_join() {
        let mut out = BytesMut::new();
        frontend::query(&mut out, "select 1");
        frontend::sync(&mut out);
        let mut partial = BytesMut::from(&out[..3]);
        assert_eq!(Frame::take(&mut partial).unwrap(), None);
        let f = Frame::take(&mut out).unwrap().unwrap();
        assert_eq!(f.tag, b'Q');
        assert_eq!(frontend::parse_query(&f.body).unwrap(), "select 1");
        assert_eq!(Frame::take(&mut out).unwrap().unwrap().tag, b'S');
        assert!(out.is_empty());
        let mut bad = BytesMut::from(&b"Q\x00\x00\x00\x01"[..]);
        assert!(Frame::take(&mut bad).is_err());
    }
}
