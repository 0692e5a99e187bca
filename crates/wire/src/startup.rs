//! The untagged first packet of a connection: startup, SSL/GSS requests and
//! cancel requests.

use crate::{Reader, WireError};
use bytes::{BufMut, BytesMut};

/// Protocol version 3.0.
pub const PROTOCOL_3_0: i32 = 196_608;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// The first packet a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// A normal startup with its parameters (user, database, options...).
    Start(Vec<(String, String)>),
    /// The client asks for TLS.
    SslRequest,
    /// The client asks for GSSAPI encryption.
    GssEncRequest,
    /// Cancel the query running on the connection with this key.
    Cancel {
        /// Backend process id we handed out.
        pid: i32,
        /// Its secret.
        secret: i32,
    },
}

/// Take one startup packet from `buf`, if it is whole.
///
/// # Errors
/// A bad length, an unsupported protocol version or a malformed body.
pub fn take(buf: &mut BytesMut) -> Result<Option<Startup>, WireError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(8..=10_000).contains(&len) {
        return Err(WireError::BadLength(len));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let pkt = buf.split_to(len);
    let mut r = Reader::new(&pkt[4..]);
    let code = r.i32()?;
    match code {
        SSL_REQUEST => Ok(Some(Startup::SslRequest)),
        GSSENC_REQUEST => Ok(Some(Startup::GssEncRequest)),
        CANCEL_REQUEST => Ok(Some(Startup::Cancel {
            pid: r.i32()?,
            secret: r.i32()?,
        })),
        PROTOCOL_3_0 => {
            let mut params = Vec::new();
            loop {
                let k = r.cstr()?;
                if k.is_empty() {
                    break;
                }
                let v = r.cstr()?;
                params.push((k.to_string(), v.to_string()));
            }
            Ok(Some(Startup::Start(params)))
        }
        other => Err(WireError::Unexpected(format!(
            "unsupported frontend protocol {}.{}",
            other >> 16,
            other & 0xffff
        ))),
    }
}

/// Append a protocol 3.0 startup message with `params`.
pub fn encode_startup(out: &mut BytesMut, params: &[(&str, &str)]) {
    let at = out.len();
    out.put_u32(0);
    out.put_i32(PROTOCOL_3_0);
    for (k, v) in params {
        crate::put_cstr(out, k);
        crate::put_cstr(out, v);
    }
    out.put_u8(0);
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Append a cancel request.
pub fn encode_cancel(out: &mut BytesMut, pid: i32, secret: i32) {
    out.put_u32(16);
    out.put_i32(CANCEL_REQUEST);
    out.put_i32(pid);
    out.put_i32(secret);
}
/// The `name=value` settings of a startup packet's `options` parameter
/// (`-c name=value`, `-cname=value`, `--name=value`), in order.
pub fn option_pairs(options: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut words = options.split_whitespace();
    while let Some(w) = words.next() {
        let pair = if w == "-c" {
            words.next().unwrap_or("")
        } else {
            w.trim_start_matches("--").trim_start_matches("-c")
        };
        if let Some(p) = pair.split_once('=') {
            out.push(p);
        }
    }
    out
}

/// The client encoding a startup packet asks for (its `client_encoding`
/// parameter, or `-c client_encoding=...` in `options`), as the name the
/// server reports back: `UTF8` (also when none is asked for) or
/// `SQL_ASCII` (no conversion: the bytes pass as they are, which for a
/// UTF-8 server is UTF-8). Any other encoding is the `Err` of its name:
/// shardgate reads and answers UTF-8 only, and must not serve such a
/// client bytes it would misread.
pub fn client_encoding(params: &[(String, String)]) -> Result<&'static str, String> {
    let mut asked: Option<&str> = None;
    for (k, v) in params {
        if k == "client_encoding" {
            asked = Some(v);
        } else if k == "options" {
            for (n, val) in option_pairs(v) {
                if n == "client_encoding" {
                    asked = Some(val);
                }
            }
        }
    }
    let Some(name) = asked else {
        return Ok("UTF8");
    };
    let norm: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_uppercase();
    match norm.as_str() {
        "UTF8" | "UNICODE" => Ok("UTF8"),
        "SQLASCII" => Ok("SQL_ASCII"),
        _ => Err(name.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_are_read_as_postgresql_reads_them() {
        assert_eq!(
            option_pairs("-c a=1 -cb=2 --c=3 -c d lonely"),
            [("a", "1"), ("b", "2"), ("c", "3")]
        );
        assert!(option_pairs("").is_empty());
    }

    #[test]
    fn client_encodings_are_utf8_sql_ascii_or_refused() {
        assert_eq!(client_encoding(&p(&[("user", "a")])), Ok("UTF8"));
        for utf8 in ["UTF8", "utf-8", "Unicode", "utf_8"] {
            assert_eq!(
                client_encoding(&p(&[("client_encoding", utf8)])),
                Ok("UTF8")
            );
        }
        assert_eq!(
            client_encoding(&p(&[("client_encoding", "SQL_ASCII")])),
            Ok("SQL_ASCII")
        );
        assert_eq!(
            client_encoding(&p(&[("client_encoding", "LATIN1")])),
            Err("LATIN1".to_string())
        );
        // In options, the last word wins, as on PostgreSQL.
        assert_eq!(
            client_encoding(&p(&[
                ("client_encoding", "UTF8"),
                ("options", "-c search_path=x -c client_encoding=WIN1252")
            ])),
            Err("WIN1252".to_string())
        );
        assert_eq!(
            client_encoding(&p(&[("options", "--client_encoding=utf8")])),
            Ok("UTF8")
        );
    }
}
