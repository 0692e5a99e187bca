//! Messages a client (frontend) sends: builders and parsers.

use crate::{Reader, WireError, begin, finish, put_cstr};
use bytes::{BufMut, Bytes, BytesMut};

/// Append a simple-protocol Query.
pub fn query(out: &mut BytesMut, sql: &str) {
    let at = begin(out, b'Q');
    put_cstr(out, sql);
    finish(out, at);
}

/// Append a Parse.
pub fn parse(out: &mut BytesMut, name: &str, sql: &str, param_types: &[u32]) {
    let at = begin(out, b'P');
    put_cstr(out, name);
    put_cstr(out, sql);
    out.put_i16(param_types.len() as i16);
    for t in param_types {
        out.put_u32(*t);
    }
    finish(out, at);
}

/// Append a Describe of a statement (`b'S'`) or portal (`b'P'`).
pub fn describe(out: &mut BytesMut, kind: u8, name: &str) {
    let at = begin(out, b'D');
    out.put_u8(kind);
    put_cstr(out, name);
    finish(out, at);
}

/// Append an Execute.
pub fn execute(out: &mut BytesMut, portal: &str, max_rows: i32) {
    let at = begin(out, b'E');
    put_cstr(out, portal);
    out.put_i32(max_rows);
    finish(out, at);
}

/// Append a Close of a statement (`b'S'`) or portal (`b'P'`).
pub fn close(out: &mut BytesMut, kind: u8, name: &str) {
    let at = begin(out, b'C');
    out.put_u8(kind);
    put_cstr(out, name);
    finish(out, at);
}

/// Append a Sync.
pub fn sync(out: &mut BytesMut) {
    out.put_slice(&[b'S', 0, 0, 0, 4]);
}

/// Append a Flush.
pub fn flush(out: &mut BytesMut) {
    out.put_slice(&[b'H', 0, 0, 0, 4]);
}

/// Append a Terminate.
pub fn terminate(out: &mut BytesMut) {
    out.put_slice(&[b'X', 0, 0, 0, 4]);
}

/// Append a PasswordMessage / SASL response with raw contents.
pub fn password_raw(out: &mut BytesMut, data: &[u8]) {
    let at = begin(out, b'p');
    out.put_slice(data);
    finish(out, at);
}

/// Append a SASLInitialResponse.
pub fn sasl_initial(out: &mut BytesMut, mechanism: &str, data: &[u8]) {
    let at = begin(out, b'p');
    put_cstr(out, mechanism);
    out.put_i32(data.len() as i32);
    out.put_slice(data);
    finish(out, at);
}

/// The SQL text of a Query body.
pub fn parse_query(body: &[u8]) -> Result<&str, WireError> {
    Reader::new(body).cstr()
}

/// A parsed Parse message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseMsg<'a> {
    /// Statement name ("" is the unnamed statement).
    pub name: &'a str,
    /// SQL text.
    pub sql: &'a str,
    /// Parameter type OIDs the client fixed (0 = unspecified).
    pub param_types: Vec<u32>,
}

/// Parse a Parse body.
pub fn parse_parse(body: &[u8]) -> Result<ParseMsg<'_>, WireError> {
    let mut r = Reader::new(body);
    let name = r.cstr()?;
    let sql = r.cstr()?;
    let n = r.i16()?.max(0) as usize;
    let mut param_types = Vec::with_capacity(n);
    for _ in 0..n {
        param_types.push(r.i32()? as u32);
    }
    Ok(ParseMsg {
        name,
        sql,
        param_types,
    })
}

/// A parsed Bind message. Parameter values borrow from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMsg<'a> {
    /// Destination portal.
    pub portal: &'a str,
    /// Source statement.
    pub statement: &'a str,
    /// Parameter format codes (0 text, 1 binary); none means all text, one
    /// means all the same.
    pub param_formats: Vec<i16>,
    /// Parameter values (None is NULL).
    pub params: Vec<Option<&'a [u8]>>,
    /// Everything after the statement name, to re-send with another name.
    pub tail: &'a [u8],
}

impl BindMsg<'_> {
    /// Is parameter `i` in binary format?
    pub fn is_binary(&self, i: usize) -> bool {
        match self.param_formats.len() {
            0 => false,
            1 => self.param_formats[0] == 1,
            _ => self.param_formats.get(i).is_some_and(|f| *f == 1),
        }
    }
}

/// A Bind's tail (what follows the statement name) with the first `keep`
/// of `b`'s parameters, then `extra` parameters in text format, then
/// `result_formats`.
pub fn bind_tail_appended(
    b: &BindMsg<'_>,
    keep: usize,
    extra: &[String],
    result_formats: &[i16],
) -> Vec<u8> {
    let n = keep.min(b.params.len());
    let mut out = BytesMut::new();
    // Counts are unsigned 16-bit on the wire (at most 65535 parameters;
    // the caller checks).
    if b.param_formats.is_empty() {
        out.put_u16(0);
    } else {
        out.put_u16((n + extra.len()) as u16);
        for i in 0..n {
            out.put_i16(i16::from(b.is_binary(i)));
        }
        for _ in extra {
            out.put_i16(0);
        }
    }
    out.put_u16((n + extra.len()) as u16);
    for p in &b.params[..n] {
        match p {
            None => out.put_i32(-1),
            Some(v) => {
                out.put_i32(v.len() as i32);
                out.put_slice(v);
            }
        }
    }
    for e in extra {
        out.put_i32(e.len() as i32);
        out.put_slice(e.as_bytes());
    }
    out.put_i16(result_formats.len() as i16);
    for f in result_formats {
        out.put_i16(*f);
    }
    out.to_vec()
}

/// Parse a Bind message.
pub fn parse_bind(body: &[u8]) -> Result<BindMsg<'_>, WireError> {
    let mut r = Reader::new(body);
    let portal = r.cstr()?;
    let statement = r.cstr()?;
    let tail = &body[body.len() - r.remaining()..];
    let nf = r.i16()? as u16 as usize;
    let mut param_formats = Vec::with_capacity(nf);
    for _ in 0..nf {
        param_formats.push(r.i16()?);
    }
    let np = r.i16()? as u16 as usize;
    let mut params = Vec::with_capacity(np);
    for _ in 0..np {
        params.push(r.value()?);
    }
    Ok(BindMsg {
        portal,
        statement,
        param_formats,
        params,
        tail,
    })
}

/// Append a Bind that reuses a parsed Bind's formats and values but names
/// another portal and statement.
pub fn bind_renamed(out: &mut BytesMut, portal: &str, statement: &str, tail: &[u8]) {
    let at = begin(out, b'B');
    put_cstr(out, portal);
    put_cstr(out, statement);
    out.put_slice(tail);
    finish(out, at);
}

/// Append a Bind from parts: text-or-binary parameters and result formats.
pub fn bind(
    out: &mut BytesMut,
    portal: &str,
    statement: &str,
    param_formats: &[i16],
    params: &[Option<Bytes>],
    result_formats: &[i16],
) {
    let at = begin(out, b'B');
    put_cstr(out, portal);
    put_cstr(out, statement);
    out.put_i16(param_formats.len() as i16);
    for f in param_formats {
        out.put_i16(*f);
    }
    out.put_i16(params.len() as i16);
    for p in params {
        match p {
            None => out.put_i32(-1),
            Some(v) => {
                out.put_i32(v.len() as i32);
                out.put_slice(v);
            }
        }
    }
    out.put_i16(result_formats.len() as i16);
    for f in result_formats {
        out.put_i16(*f);
    }
    finish(out, at);
}

/// Result format codes of a Bind (after the parameters).
pub fn bind_result_formats(body: &[u8]) -> Result<Vec<i16>, WireError> {
    let b = parse_bind(body)?;
    let mut r = Reader::new(b.tail);
    let nf = r.i16()? as u16 as usize;
    r.bytes(nf * 2)?;
    let np = r.i16()? as u16 as usize;
    for _ in 0..np {
        r.value()?;
    }
    let nr = r.i16()?.max(0) as usize;
    (0..nr).map(|_| r.i16()).collect()
}

/// Parse a Describe or Close body: the kind byte and the name.
pub fn parse_target(body: &[u8]) -> Result<(u8, &str), WireError> {
    let mut r = Reader::new(body);
    let kind = r.u8()?;
    if kind != b'S' && kind != b'P' {
        return Err(WireError::Unexpected(format!(
            "describe/close kind {:?}",
            kind as char
        )));
    }
    Ok((kind, r.cstr()?))
}

/// Parse an Execute body: the portal and the row limit (0 = all).
pub fn parse_execute(body: &[u8]) -> Result<(&str, i32), WireError> {
    let mut r = Reader::new(body);
    Ok((r.cstr()?, r.i32()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Frame;

    #[test]
    fn bind_round_trip_and_rename() {
        let mut out = BytesMut::new();
        bind(
            &mut out,
            "p",
            "s",
            &[1],
            &[Some(Bytes::from_static(&[0, 0, 0, 7])), None],
            &[0],
        );
        let f = Frame::take(&mut out).unwrap().unwrap();
        let b = parse_bind(&f.body).unwrap();
        assert_eq!((b.portal, b.statement), ("p", "s"));
        assert!(b.is_binary(1));
        assert_eq!(b.params, vec![Some(&[0u8, 0, 0, 7][..]), None]);
        let mut again = BytesMut::new();
        bind_renamed(&mut again, "", "sg_1", b.tail);
        let g = Frame::take(&mut again).unwrap().unwrap();
        let b2 = parse_bind(&g.body).unwrap();
        assert_eq!(b2.statement, "sg_1");
        assert_eq!(b2.params, b.params);
        assert_eq!(bind_result_formats(&g.body).unwrap(), vec![0]);
    }
}
