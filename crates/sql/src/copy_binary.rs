//! Reading a COPY stream in PostgreSQL's binary format: the header, then
//! tuples (a field count, then each field as a length and its bytes), then
//! the trailer (a field count of -1). The reader finds whole tuples across
//! CopyData boundaries and hands on each with the raw bytes of its key
//! fields, so the router can send the tuple unchanged to the shard its key
//! names; memory holds one partial tuple.
//!
//! Used to split a binary `COPY ... FROM STDIN` by shard key, and to join
//! the binary `COPY ... TO STDOUT` streams of several shards into one (one
//! header, every shard's tuples, one trailer).

use crate::copy_rows::RowError;

/// The 11-byte signature every binary COPY stream starts with.
pub const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// The trailer: a tuple field count of -1.
pub const TRAILER: [u8; 2] = [0xff, 0xff];

/// What the reader found in the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// The header (signature, flags and extension area), once, first.
    Header(&'a [u8]),
    /// A whole tuple (field count included) and its key fields' bytes
    /// (`None`: NULL), in the order the reader was given the keys.
    Tuple(&'a [u8], Vec<Option<&'a [u8]>>),
}

/// Finds the header and the tuples of a binary COPY stream.
#[derive(Debug, Default)]
pub struct BinaryReader {
    /// Positions of the key fields in a tuple (0-based).
    keys: Vec<usize>,
    /// Bytes not yet handed on (a partial header or tuple).
    buf: Vec<u8>,
    /// The header was read.
    started: bool,
    /// The trailer was read.
    ended: bool,
    /// Tuples handed on (for error messages).
    tuples: u64,
}

fn error(message: impl Into<String>) -> RowError {
    RowError {
        code: "22P04",
        message: message.into(),
    }
}

fn int16(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn int32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// What the start of `b` holds.
enum Scan {
    /// Not all of it has arrived.
    More,
    /// A whole piece of this many bytes.
    Whole(usize),
    /// The trailer.
    End,
}

impl BinaryReader {
    /// A reader that hands on the fields at `keys` of each tuple.
    pub fn new(keys: Vec<usize>) -> BinaryReader {
        BinaryReader {
            keys,
            ..BinaryReader::default()
        }
    }

    /// Whether the trailer was read.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Take `data` (one CopyData's worth); `each` gets the header and then
    /// every whole tuple.
    ///
    /// # Errors
    /// A stream PostgreSQL would refuse (signature, flags, field sizes,
    /// data after the trailer), a tuple without a key field, or `each`'s
    /// own error.
    pub fn push<E>(
        &mut self,
        data: &[u8],
        mut each: impl FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<RowError>,
    {
        if self.ended {
            if data.is_empty() {
                return Ok(());
            }
            return Err(error("received copy data after EOF marker").into());
        }
        self.buf.extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &self.buf[start..];
            if !self.started {
                let Some(n) = header_len(rest)? else { break };
                each(Piece::Header(&rest[..n]))?;
                self.started = true;
                start += n;
                continue;
            }
            match self.scan_tuple(rest)? {
                Scan::More => break,
                Scan::End => {
                    self.ended = true;
                    if rest.len() > 2 {
                        return Err(error("received copy data after EOF marker").into());
                    }
                    self.buf.clear();
                    return Ok(());
                }
                Scan::Whole(n) => {
                    self.tuples += 1;
                    let tuple = &rest[..n];
                    let keys = self.key_fields(tuple)?;
                    each(Piece::Tuple(tuple, keys))?;
                    start += n;
                }
            }
        }
        self.buf.drain(..start);
        Ok(())
    }

    /// The stream ended (CopyDone).
    ///
    /// # Errors
    /// A stream without a header, or that stops inside a tuple.
    pub fn finish(&mut self) -> Result<(), RowError> {
        if !self.started {
            return Err(error("COPY file signature not recognized"));
        }
        if !self.ended && !self.buf.is_empty() {
            return Err(error("unexpected EOF in COPY data"));
        }
        Ok(())
    }

    /// Whether `b` starts with a whole tuple, and its length.
    fn scan_tuple(&self, b: &[u8]) -> Result<Scan, RowError> {
        let Some(count) = int16(b, 0) else {
            return Ok(Scan::More);
        };
        if count == -1 {
            return Ok(Scan::End);
        }
        if count < 0 {
            return Err(error(format!(
                "invalid field count {count} in tuple {} of the COPY data",
                self.tuples + 1
            )));
        }
        let mut at = 2usize;
        for _ in 0..count {
            let Some(len) = int32(b, at) else {
                return Ok(Scan::More);
            };
            at += 4;
            if len < -1 {
                return Err(error("invalid field size"));
            }
            if len > 0 {
                at += len as usize;
            }
        }
        Ok(if b.len() >= at {
            Scan::Whole(at)
        } else {
            Scan::More
        })
    }

    /// The key fields of a whole tuple.
    fn key_fields<'t>(&self, tuple: &'t [u8]) -> Result<Vec<Option<&'t [u8]>>, RowError> {
        if self.keys.is_empty() {
            return Ok(Vec::new());
        }
        let count = int16(tuple, 0).unwrap_or(0).max(0) as usize;
        let mut fields = Vec::with_capacity(count.min(self.keys.iter().max().map_or(0, |m| m + 1)));
        let mut at = 2usize;
        let last = self.keys.iter().copied().max().unwrap_or(0);
        for _ in 0..count.min(last + 1) {
            let len = int32(tuple, at).unwrap_or(-1);
            at += 4;
            if len < 0 {
                fields.push(None);
            } else {
                let n = len as usize;
                fields.push(Some(&tuple[at..at + n]));
                at += n;
            }
        }
        self.keys
            .iter()
            .map(|k| {
                fields.get(*k).copied().ok_or_else(|| {
                    error(format!(
                        "row field count is {count}: missing data for a shard key column (tuple {} of the COPY data)",
                        self.tuples
                    ))
                })
            })
            .collect()
    }
}

/// The length of the header at the start of `b` (`None`: not all of it
/// has arrived).
fn header_len(b: &[u8]) -> Result<Option<usize>, RowError> {
    let seen = b.len().min(SIGNATURE.len());
    if b[..seen] != SIGNATURE[..seen] {
        return Err(error("COPY file signature not recognized"));
    }
    let Some(flags) = int32(b, 11) else {
        return Ok(None);
    };
    if flags & (1 << 16) != 0 {
        return Err(error("invalid COPY file header (WITH OIDS)"));
    }
    if flags & !0xffff & !(1 << 16) != 0 {
        return Err(error("unrecognized critical flags in COPY file header"));
    }
    let Some(ext) = int32(b, 15) else {
        return Ok(None);
    };
    if ext < 0 {
        return Err(error("invalid COPY file header (missing length)"));
    }
    let n = 19 + ext as usize;
    Ok((b.len() >= n).then_some(n))
}

/// The header of a stream with no extension area (what PostgreSQL writes).
pub fn header() -> Vec<u8> {
    let mut h = SIGNATURE.to_vec();
    h.extend_from_slice(&[0; 8]);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A tuple of these fields (`None`: NULL).
    fn tuple(fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut t = (fields.len() as i16).to_be_bytes().to_vec();
        for f in fields {
            match f {
                None => t.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    t.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    t.extend_from_slice(b);
                }
            }
        }
        t
    }

    /// Everything the reader hands on, as owned values.
    #[derive(Debug, Clone, PartialEq)]
    enum Got {
        Header(Vec<u8>),
        Tuple(Vec<u8>, Vec<Option<Vec<u8>>>),
    }

    fn read(chunks: &[&[u8]], keys: Vec<usize>) -> Result<Vec<Got>, RowError> {
        let mut r = BinaryReader::new(keys);
        let mut got = Vec::new();
        for c in chunks {
            r.push(c, |p| {
                got.push(match p {
                    Piece::Header(h) => Got::Header(h.to_vec()),
                    Piece::Tuple(t, k) => Got::Tuple(
                        t.to_vec(),
                        k.iter().map(|f| f.map(<[u8]>::to_vec)).collect(),
                    ),
                });
                Ok::<(), RowError>(())
            })?;
        }
        r.finish()?;
        Ok(got)
    }

    fn stream(tuples: &[Vec<u8>]) -> Vec<u8> {
        let mut s = header();
        for t in tuples {
            s.extend_from_slice(t);
        }
        s.extend_from_slice(&TRAILER);
        s
    }

    #[test]
    fn tuples_and_key_fields_are_found() {
        let a = tuple(&[Some(&7i64.to_be_bytes()), Some(b"x"), None]);
        let b = tuple(&[None, Some(b""), Some(b"yz")]);
        let s = stream(&[a.clone(), b.clone()]);
        let got = read(&[&s], vec![2, 0]).unwrap();
        assert_eq!(
            got,
            vec![
                Got::Header(header()),
                Got::Tuple(a, vec![None, Some(7i64.to_be_bytes().to_vec())]),
                Got::Tuple(b, vec![Some(b"yz".to_vec()), None]),
            ]
        );
    }

    #[test]
    fn a_header_extension_is_kept_whole() {
        let mut s = SIGNATURE.to_vec();
        s.extend_from_slice(&0i32.to_be_bytes());
        s.extend_from_slice(&3i32.to_be_bytes());
        s.extend_from_slice(b"abc");
        let h = s.clone();
        s.extend_from_slice(&TRAILER);
        assert_eq!(read(&[&s], vec![0]).unwrap(), vec![Got::Header(h)]);
    }

    #[test]
    fn bad_streams_are_refused_as_postgresql_does() {
        let msg = |chunks: &[&[u8]], keys: Vec<usize>| read(chunks, keys).unwrap_err().message;
        assert_eq!(
            msg(&[b"PGCOPX\n"], vec![0]),
            "COPY file signature not recognized"
        );
        assert_eq!(msg(&[], vec![0]), "COPY file signature not recognized");
        let mut oids = SIGNATURE.to_vec();
        oids.extend_from_slice(&(1i32 << 16).to_be_bytes());
        oids.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(
            msg(&[&oids], vec![0]),
            "invalid COPY file header (WITH OIDS)"
        );
        let mut s = stream(&[]);
        s.push(0);
        assert_eq!(msg(&[&s], vec![0]), "received copy data after EOF marker");
        let mut cut = header();
        cut.extend_from_slice(&tuple(&[Some(b"abc")])[..5]);
        assert_eq!(msg(&[&cut], vec![0]), "unexpected EOF in COPY data");
        let short = stream(&[tuple(&[Some(b"a")])]);
        assert!(msg(&[&short], vec![1]).contains("missing data for a shard key column"));
        let e = read(&[&short], vec![1]).unwrap_err();
        assert_eq!(e.code, "22P04");
    }

    #[test]
    fn no_trailer_at_a_tuple_boundary_is_the_end() {
        let mut s = header();
        let t = tuple(&[Some(b"a")]);
        s.extend_from_slice(&t);
        assert_eq!(read(&[&s], vec![0]).unwrap().len(), 2);
    }

    proptest! {
        /// However the stream is cut into CopyData messages, the same
        /// header and tuples come out.
        #[test]
        fn chunking_does_not_matter(
            rows in proptest::collection::vec(
                proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12)), 1..4),
                0..8,
            ),
            cuts in proptest::collection::vec(0usize..200, 0..10),
        ) {
            let tuples: Vec<Vec<u8>> = rows
                .iter()
                .map(|r| tuple(&r.iter().map(|f| f.as_deref()).collect::<Vec<_>>()))
                .collect();
            let s = stream(&tuples);
            let whole = read(&[&s], vec![0]).unwrap();
            let mut at: Vec<usize> = cuts.into_iter().map(|c| c % (s.len() + 1)).collect();
            at.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for c in at {
                chunks.push(&s[prev..c]);
                prev = c;
            }
            chunks.push(&s[prev..]);
            prop_assert_eq!(read(&chunks, vec![0]).unwrap(), whole.clone());
            prop_assert_eq!(whole.len(), tuples.len() + 1);
        }
    }
}
