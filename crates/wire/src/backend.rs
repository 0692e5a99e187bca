//! Messages a server (backend) sends: builders and parsers.

use crate::{Reader, WireError, begin, finish, put_cstr};
use bytes::{BufMut, BytesMut};

/// Transaction status in ReadyForQuery.
pub const IDLE: u8 = b'I';
/// In a transaction block.
pub const IN_TXN: u8 = b'T';
/// In a failed transaction block.
pub const FAILED_TXN: u8 = b'E';

/// Append AuthenticationOk.
pub fn auth_ok(out: &mut BytesMut) {
    out.put_slice(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0]);
}

/// Append a ParameterStatus.
pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    let at = begin(out, b'S');
    put_cstr(out, name);
    put_cstr(out, value);
    finish(out, at);
}

/// Append BackendKeyData.
pub fn backend_key_data(out: &mut BytesMut, pid: i32, secret: i32) {
    let at = begin(out, b'K');
    out.put_i32(pid);
    out.put_i32(secret);
    finish(out, at);
}

/// Append ReadyForQuery with a transaction status byte.
pub fn ready_for_query(out: &mut BytesMut, status: u8) {
    out.put_slice(&[b'Z', 0, 0, 0, 5, status]);
}

/// Append CommandComplete.
pub fn command_complete(out: &mut BytesMut, tag: &str) {
    let at = begin(out, b'C');
    put_cstr(out, tag);
    finish(out, at);
}

/// Append EmptyQueryResponse.
pub fn empty_query(out: &mut BytesMut) {
    out.put_slice(&[b'I', 0, 0, 0, 4]);
}

/// Append ParseComplete.
pub fn parse_complete(out: &mut BytesMut) {
    out.put_slice(&[b'1', 0, 0, 0, 4]);
}

/// Append BindComplete.
pub fn bind_complete(out: &mut BytesMut) {
    out.put_slice(&[b'2', 0, 0, 0, 4]);
}

/// Append CloseComplete.
pub fn close_complete(out: &mut BytesMut) {
    out.put_slice(&[b'3', 0, 0, 0, 4]);
}

/// Append NoData.
pub fn no_data(out: &mut BytesMut) {
    out.put_slice(&[b'n', 0, 0, 0, 4]);
}

/// Append PortalSuspended.
pub fn portal_suspended(out: &mut BytesMut) {
    out.put_slice(&[b's', 0, 0, 0, 4]);
}

/// Append a ParameterDescription.
pub fn parameter_description(out: &mut BytesMut, types: &[u32]) {
    let at = begin(out, b't');
    out.put_i16(types.len() as i16);
    for t in types {
        out.put_u32(*t);
    }
    finish(out, at);
}

/// One column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Table OID (0 if none).
    pub table_oid: u32,
    /// Attribute number (0 if none).
    pub column_id: i16,
    /// Type OID.
    pub type_oid: u32,
    /// Type size (-1 variable).
    pub type_size: i16,
    /// Type modifier.
    pub type_modifier: i32,
    /// 0 text, 1 binary.
    pub format: i16,
}

impl Column {
    /// A column with a name, type and size, in text format.
    pub fn new(name: &str, type_oid: u32, type_size: i16) -> Column {
        Column {
            name: name.to_string(),
            table_oid: 0,
            column_id: 0,
            type_oid,
            type_size,
            type_modifier: -1,
            format: 0,
        }
    }
}

/// Append a RowDescription.
pub fn row_description(out: &mut BytesMut, cols: &[Column]) {
    let at = begin(out, b'T');
    out.put_i16(cols.len() as i16);
    for c in cols {
        put_cstr(out, &c.name);
        out.put_u32(c.table_oid);
        out.put_i16(c.column_id);
        out.put_u32(c.type_oid);
        out.put_i16(c.type_size);
        out.put_i32(c.type_modifier);
        out.put_i16(c.format);
    }
    finish(out, at);
}

/// Parse a RowDescription body.
pub fn parse_row_description(body: &[u8]) -> Result<Vec<Column>, WireError> {
    let mut r = Reader::new(body);
    let n = r.i16()?.max(0) as usize;
    let mut cols = Vec::with_capacity(n);
    for _ in 0..n {
        cols.push(Column {
            name: r.cstr()?.to_string(),
            table_oid: r.i32()? as u32,
            column_id: r.i16()?,
            type_oid: r.i32()? as u32,
            type_size: r.i16()?,
            type_modifier: r.i32()?,
            format: r.i16()?,
        });
    }
    Ok(cols)
}

/// Append a DataRow.
pub fn data_row<'a>(out: &mut BytesMut, values: impl ExactSizeIterator<Item = Option<&'a [u8]>>) {
    let at = begin(out, b'D');
    out.put_i16(values.len() as i16);
    for v in values {
        match v {
            None => out.put_i32(-1),
            Some(b) => {
                out.put_i32(b.len() as i32);
                out.put_slice(b);
            }
        }
    }
    finish(out, at);
}

/// Parse a DataRow body into its values.
pub fn parse_data_row(body: &[u8]) -> Result<Vec<Option<&[u8]>>, WireError> {
    let mut r = Reader::new(body);
    let n = r.i16()?.max(0) as usize;
    (0..n).map(|_| r.value()).collect()
}

/// An error or notice: its fields by code byte.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorFields {
    /// `S`: ERROR, FATAL, NOTICE... (boxed, as `other`: keeps the struct
    /// small enough to travel in `Result`s).
    pub severity: Box<str>,
    /// `C`: the SQLSTATE.
    pub code: String,
    /// `M`: the primary message.
    pub message: String,
    /// `D`: detail, if any.
    pub detail: Option<String>,
    /// `H`: hint, if any.
    pub hint: Option<String>,
    /// Every other field, by code byte, in the order received (position,
    /// where, schema, table, column, data type, constraint, file, line,
    /// routine): kept so that an error passed on is passed on whole
    /// (drivers read the constraint name, asyncpg the routine). Boxed:
    /// errors travel in `Result`s, and most have none.
    pub other: Option<Box<Vec<(u8, String)>>>,
}

impl ErrorFields {
    /// Add a field by its code byte (one not named above).
    pub fn push_other(&mut self, code: u8, value: impl Into<String>) {
        self.other
            .get_or_insert_with(Default::default)
            .push((code, value.into()));
    }

    /// The fields not named above, in order.
    pub fn others(&self) -> &[(u8, String)] {
        self.other.as_deref().map_or(&[], Vec::as_slice)
    }

    /// An ERROR with a SQLSTATE and a message.
    pub fn new(code: &str, message: impl Into<String>) -> ErrorFields {
        ErrorFields {
            severity: "ERROR".into(),
            code: code.into(),
            message: message.into(),
            ..Default::default()
        }
    }

    /// A FATAL error (the connection ends after it).
    pub fn fatal(code: &str, message: impl Into<String>) -> ErrorFields {
        ErrorFields {
            severity: "FATAL".into(),
            ..ErrorFields::new(code, message)
        }
    }
}

/// Append an ErrorResponse (`tag` b'E') or NoticeResponse (b'N').
pub fn error_like(out: &mut BytesMut, tag: u8, f: &ErrorFields) {
    let at = begin(out, tag);
    out.put_u8(b'S');
    put_cstr(out, &f.severity);
    out.put_u8(b'V');
    put_cstr(out, &f.severity);
    out.put_u8(b'C');
    put_cstr(out, &f.code);
    out.put_u8(b'M');
    put_cstr(out, &f.message);
    if let Some(d) = &f.detail {
        out.put_u8(b'D');
        put_cstr(out, d);
    }
    if let Some(h) = &f.hint {
        out.put_u8(b'H');
        put_cstr(out, h);
    }
    for (code, v) in f.others() {
        out.put_u8(*code);
        put_cstr(out, v);
    }
    out.put_u8(0);
    finish(out, at);
}

/// Append an ErrorResponse with severity ERROR.
pub fn error(out: &mut BytesMut, code: &str, message: &str) {
    error_like(
        out,
        b'E',
        &ErrorFields {
            severity: "ERROR".into(),
            code: code.into(),
            message: message.into(),
            ..Default::default()
        },
    );
}

/// Parse an ErrorResponse or NoticeResponse body.
pub fn parse_error(body: &[u8]) -> Result<ErrorFields, WireError> {
    let mut r = Reader::new(body);
    let mut f = ErrorFields::default();
    loop {
        let code = r.u8()?;
        if code == 0 {
            break;
        }
        let v = r.cstr()?.to_string();
        match code {
            b'S' if f.severity.is_empty() => f.severity = v.into(),
            b'V' => f.severity = v.into(),
            b'C' => f.code = v,
            b'M' => f.message = v,
            b'D' => f.detail = Some(v),
            b'H' => f.hint = Some(v),
            b'S' => {}
            _ => f.push_other(code, v),
        }
    }
    Ok(f)
}

/// The tag of a CommandComplete body, e.g. `INSERT 0 3`.
pub fn parse_command_complete(body: &[u8]) -> Result<&str, WireError> {
    Reader::new(body).cstr()
}

/// An authentication request from a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    /// Authenticated.
    Ok,
    /// Send the password in clear text.
    Cleartext,
    /// Send md5(md5(password + user) + salt).
    Md5([u8; 4]),
    /// SASL with these mechanisms.
    Sasl(Vec<String>),
    /// A SASL challenge.
    SaslContinue(Vec<u8>),
    /// The SASL outcome.
    SaslFinal(Vec<u8>),
    /// Anything else.
    Other(i32),
}

/// Parse an Authentication body.
pub fn parse_auth(body: &[u8]) -> Result<AuthRequest, WireError> {
    let mut r = Reader::new(body);
    Ok(match r.i32()? {
        0 => AuthRequest::Ok,
        3 => AuthRequest::Cleartext,
        5 => {
            let s = r.bytes(4)?;
            AuthRequest::Md5([s[0], s[1], s[2], s[3]])
        }
        10 => {
            let mut v = Vec::new();
            loop {
                let m = r.cstr()?;
                if m.is_empty() {
                    break;
                }
                v.push(m.to_string());
            }
            AuthRequest::Sasl(v)
        }
        11 => AuthRequest::SaslContinue(r.bytes(r.remaining())?.to_vec()),
        12 => AuthRequest::SaslFinal(r.bytes(r.remaining())?.to_vec()),
        n => AuthRequest::Other(n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Frame;

    #[test]
    fn error_round_trip() {
        let mut out = BytesMut::new();
        error(&mut out, "0A000", "not supported");
        let f = Frame::take(&mut out).unwrap().unwrap();
        let e = parse_error(&f.body).unwrap();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("0A000", "not supported")
        );
        // Every field a server sends survives a parse and an encode.
        let mut full = ErrorFields::new("23505", "duplicate key");
        full.detail = Some("Key (id)=(1) already exists.".into());
        for (code, v) in [
            (b's', "public"),
            (b't', "customers"),
            (b'n', "customers_pkey"),
            (b'F', "nbtinsert.c"),
            (b'R', "_bt_check_unique"),
        ] {
            full.push_other(code, v);
        }
        error_like(&mut out, b'E', &full);
        let f = Frame::take(&mut out).unwrap().unwrap();
        assert_eq!(parse_error(&f.body).unwrap(), full);
    }

    #[test]
    fn row_description_round_trip() {
        let mut out = BytesMut::new();
        let cols = vec![Column::new("a", 20, 8), Column::new("b", 25, -1)];
        row_description(&mut out, &cols);
        let f = Frame::take(&mut out).unwrap().unwrap();
        assert_eq!(parse_row_description(&f.body).unwrap(), cols);
    }
}
