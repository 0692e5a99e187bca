//! A protocol-level connection to a PostgreSQL shard: startup and
//! authentication (trust, password, md5, SCRAM-SHA-256), then raw frames in
//! both directions, so rows are forwarded without decoding. A shard is
//! reached over TCP, or over a Unix-domain socket when its host is a
//! directory (as in libpq: `host=/var/run/postgresql`), which costs the
//! kernel much less per message when shardgate runs beside its server.

use crate::error::BackendError;
use bytes::BytesMut;
use shardgate_wire::backend::{AuthRequest, parse_auth, parse_error};
use shardgate_wire::{Frame, frontend, startup};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Where and as whom to connect to a PostgreSQL shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// Host name or address; a path starting with `/` is the directory of
    /// the server's Unix-domain socket (`<host>/.s.PGSQL.<port>`), as in
    /// libpq.
    pub host: String,
    /// TCP port, or the number in the Unix-domain socket's file name.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password, if the server asks for one.
    pub password: Option<String>,
    /// Database name.
    pub database: String,
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` with the password of its user part and of a `password=`
/// parameter replaced by `***`.
fn redact(url: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let mut out = match main.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((auth, host)) => match auth.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => main.to_string(),
            },
            None => main.to_string(),
        },
        None => main.to_string(),
    };
    if let Some(q) = query {
        let parts: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some(("password", _)) => "password=***".to_string(),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&parts.join("&"));
    }
    out
}

impl PgConfig {
    /// Parse `postgres://user[:password]@host[:port]/database[?host=..&port=..]`.
    /// As in libpq, the host may be a percent-encoded socket directory
    /// (`postgres://app@%2Fvar%2Frun%2Fpostgresql/shop`) or come from a
    /// `host` query parameter (`postgres://app@/shop?host=/var/run/postgresql`),
    /// and an IPv6 address is written in brackets (`[::1]:5432`).
    ///
    /// # Errors
    /// [`BackendError::Config`] naming what is wrong.
    pub fn from_url(url: &str) -> Result<PgConfig, BackendError> {
        // Errors name the URL without its passwords.
        let shown = redact(url);
        let bad = |why: &str| BackendError::Config(format!("{why} in shard URL {shown:?}"));
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| bad("expected postgres:// scheme"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, q),
            None => (rest, ""),
        };
        let (auth, hostpart) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (user, password) = match auth {
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (pct_decode(u), Some(pct_decode(p))),
                None => (pct_decode(a), None),
            },
            None => ("postgres".to_string(), None),
        };
        let (hostport, database) = match hostpart.split_once('/') {
            Some((h, d)) => (h, pct_decode(d)),
            None => (hostpart, String::new()),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            match after.strip_prefix(':') {
                Some(p) => (h.to_string(), Some(p)),
                None if after.is_empty() => (h.to_string(), None),
                None => return Err(bad("unexpected text after ]")),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (pct_decode(h), Some(p)),
                None => (pct_decode(hostport), None),
            }
        };
        let (mut host, mut user, mut password, mut database) = (host, user, password, database);
        let mut port = port.map(str::to_string);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "host" => host = pct_decode(v),
                "port" => port = Some(pct_decode(v)),
                "user" => user = pct_decode(v),
                "password" => password = Some(pct_decode(v)),
                "dbname" => database = pct_decode(v),
                // No TLS to shards yet: modes that do not insist on it.
                "sslmode" if matches!(v, "disable" | "allow" | "prefer") => {}
                "application_name" | "connect_timeout" => {}
                // Anything else (sslmode=require, options, ...) is not for
                // shardgate to drop silently.
                other => {
                    return Err(bad(&format!("unsupported parameter {other:?}")));
                }
            }
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("invalid port"))?,
            None => 5432,
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let database = if database.is_empty() {
            user.clone()
        } else {
            database
        };
        Ok(PgConfig {
            host,
            port,
            user,
            password,
            database,
        })
    }
}

/// The socket to a server: TCP, or Unix-domain when the host is a path.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    async fn connect(cfg: &PgConfig) -> std::io::Result<Stream> {
        if cfg.host.starts_with('/') {
            let path = format!("{}/.s.PGSQL.{}", cfg.host.trim_end_matches('/'), cfg.port);
            Ok(Stream::Unix(UnixStream::connect(path).await?))
        } else {
            let s = TcpStream::connect((cfg.host.as_str(), cfg.port)).await?;
            s.set_nodelay(true)?;
            Ok(Stream::Tcp(s))
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(bytes).await,
            Stream::Unix(s) => s.write_all(bytes).await,
        }
    }

    async fn read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read_buf(buf).await,
            Stream::Unix(s) => s.read_buf(buf).await,
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read(buf),
            Stream::Unix(s) => s.try_read(buf),
        }
    }

    fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Stream::Unix(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Unix(r), WriteHalf::Unix(w))
            }
        }
    }
}

/// The next whole frame in `rbuf`; if there is none, room is made there
/// for more bytes.
fn buffered_frame(rbuf: &mut BytesMut) -> Result<Option<Frame>, BackendError> {
    if let Some(f) = Frame::take(rbuf)? {
        return Ok(Some(f));
    }
    if rbuf.capacity() - rbuf.len() < 4096 {
        rbuf.reserve(16 * 1024);
    }
    Ok(None)
}

/// The reading half of a split connection.
enum ReadHalf {
    Tcp(tokio::net::tcp::OwnedReadHalf),
    Unix(tokio::net::unix::OwnedReadHalf),
}

/// The writing half of a split connection.
enum WriteHalf {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    Unix(tokio::net::unix::OwnedWriteHalf),
}

/// The receiving side of a connection split with [`PgConn::into_split`].
pub struct PgReader {
    half: ReadHalf,
    rbuf: BytesMut,
}

impl PgReader {
    /// Read the next backend frame.
    ///
    /// # Errors
    /// I/O errors, a closed connection, or a malformed frame.
    pub async fn recv(&mut self) -> Result<Frame, BackendError> {
        loop {
            if let Some(f) = buffered_frame(&mut self.rbuf)? {
                return Ok(f);
            }
            let n = match &mut self.half {
                ReadHalf::Tcp(s) => s.read_buf(&mut self.rbuf).await?,
                ReadHalf::Unix(s) => s.read_buf(&mut self.rbuf).await?,
            };
            if n == 0 {
                return Err(BackendError::Closed);
            }
        }
    }
}

/// The sending side of a connection split with [`PgConn::into_split`].
pub struct PgWriter {
    half: WriteHalf,
}

impl PgWriter {
    /// Write raw frontend bytes.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        match &mut self.half {
            WriteHalf::Tcp(s) => s.write_all(bytes).await?,
            WriteHalf::Unix(s) => s.write_all(bytes).await?,
        }
        Ok(())
    }
}

/// An open, authenticated connection to a PostgreSQL server.
pub struct PgConn {
    stream: Stream,
    rbuf: BytesMut,
    /// Server process id (for cancel requests).
    pub pid: i32,
    /// Cancel secret.
    pub secret: i32,
    /// shardgate's bookkeeping for this connection.
    pub state: crate::ConnState,
    /// ParameterStatus values the server reported at startup.
    pub server_params: Vec<(String, String)>,
}

impl PgConn {
    /// Connect and authenticate.
    ///
    /// # Errors
    /// I/O, authentication, or a server error during startup.
    pub async fn connect(cfg: &PgConfig) -> Result<PgConn, BackendError> {
        PgConn::connect_as_app(cfg, "shardgate", &[]).await
    }

    /// Connect and authenticate with `application_name` set to `app` and
    /// the settings `extra` (startup parameters: `("lock_timeout", "5ms")`).
    ///
    /// # Errors
    /// I/O, authentication, or a server error during startup.
    pub async fn connect_as_app(
        cfg: &PgConfig,
        app: &str,
        extra: &[(&str, &str)],
    ) -> Result<PgConn, BackendError> {
        let stream = Stream::connect(cfg).await?;
        let mut conn = PgConn {
            stream,
            rbuf: BytesMut::with_capacity(16 * 1024),
            pid: 0,
            secret: 0,
            state: crate::ConnState::new(),
            server_params: Vec::new(),
        };
        let mut out = BytesMut::new();
        let mut params: Vec<(&str, &str)> = vec![
            ("user", &cfg.user),
            ("database", &cfg.database),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("application_name", app),
        ];
        params.extend_from_slice(extra);
        startup::encode_startup(&mut out, &params);
        conn.send(&out).await?;
        let mut scram: Option<postgres_protocol::authentication::sasl::ScramSha256> = None;
        loop {
            let f = conn.recv().await?;
            match f.tag {
                b'R' => {
                    let mut out = BytesMut::new();
                    let password = || {
                        cfg.password.clone().ok_or_else(|| {
                            BackendError::Auth(format!(
                                "shard asks for a password; none is configured for user {}",
                                cfg.user
                            ))
                        })
                    };
                    match parse_auth(&f.body)? {
                        AuthRequest::Ok => continue,
                        AuthRequest::Cleartext => {
                            let mut p = password()?.into_bytes();
                            p.push(0);
                            frontend::password_raw(&mut out, &p);
                        }
                        AuthRequest::Md5(salt) => {
                            let h = postgres_protocol::authentication::md5_hash(
                                cfg.user.as_bytes(),
                                password()?.as_bytes(),
                                salt,
                            );
                            let mut p = h.into_bytes();
                            p.push(0);
                            frontend::password_raw(&mut out, &p);
                        }
                        AuthRequest::Sasl(mechs) => {
                            if !mechs.iter().any(|m| m == "SCRAM-SHA-256") {
                                return Err(BackendError::Auth(format!(
                                    "unsupported SASL mechanisms {mechs:?}"
                                )));
                            }
                            let s = postgres_protocol::authentication::sasl::ScramSha256::new(
                                password()?.as_bytes(),
                                postgres_protocol::authentication::sasl::ChannelBinding::unsupported(),
                            );
                            frontend::sasl_initial(&mut out, "SCRAM-SHA-256", s.message());
                            scram = Some(s);
                        }
                        AuthRequest::SaslContinue(data) => {
                            let s = scram.as_mut().ok_or_else(|| {
                                BackendError::Auth("unexpected SASL continue".into())
                            })?;
                            s.update(&data)
                                .map_err(|e| BackendError::Auth(e.to_string()))?;
                            frontend::password_raw(&mut out, s.message());
                        }
                        AuthRequest::SaslFinal(data) => {
                            let mut s = scram.take().ok_or_else(|| {
                                BackendError::Auth("unexpected SASL final".into())
                            })?;
                            s.finish(&data)
                                .map_err(|e| BackendError::Auth(e.to_string()))?;
                            continue;
                        }
                        AuthRequest::Other(n) => {
                            return Err(BackendError::Auth(format!(
                                "unsupported authentication method {n}"
                            )));
                        }
                    }
                    conn.send(&out).await?;
                }
                b'K' => {
                    let mut r = shardgate_wire::Reader::new(&f.body);
                    conn.pid = r.i32()?;
                    conn.secret = r.i32()?;
                }
                b'S' => {
                    let mut r = shardgate_wire::Reader::new(&f.body);
                    let k = r.cstr()?.to_string();
                    let v = r.cstr()?.to_string();
                    conn.server_params.push((k, v));
                }
                b'E' => return Err(BackendError::Server(Box::new(parse_error(&f.body)?))),
                b'Z' => return Ok(conn),
                _ => {}
            }
        }
    }

    /// Write raw frontend bytes.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Read the next backend frame.
    ///
    /// # Errors
    /// I/O errors, a closed connection, or a malformed frame.
    pub async fn recv(&mut self) -> Result<Frame, BackendError> {
        loop {
            if let Some(f) = buffered_frame(&mut self.rbuf)? {
                return Ok(f);
            }
            let n = self.stream.read_buf(&mut self.rbuf).await?;
            if n == 0 {
                return Err(BackendError::Closed);
            }
        }
    }

    /// Split into a receiving and a sending side, which separate tasks can
    /// use at once (a pipelined connection: see [`crate::lane`]).
    pub fn into_split(self) -> (PgReader, PgWriter) {
        let (r, w) = self.stream.into_split();
        (
            PgReader {
                half: r,
                rbuf: self.rbuf,
            },
            PgWriter { half: w },
        )
    }

    /// See [`crate::ShardConn::is_alive`].
    pub fn is_alive(&self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut b = [0u8; 1];
        matches!(self.stream.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Is a whole frame already buffered?
    pub fn has_buffered(&self) -> bool {
        if self.rbuf.len() < 5 {
            return false;
        }
        let len =
            u32::from_be_bytes([self.rbuf[1], self.rbuf[2], self.rbuf[3], self.rbuf[4]]) as usize;
        self.rbuf.len() > len
    }
}

/// Send a cancel request for the backend `pid`/`secret` of a shard.
///
/// # Errors
/// I/O errors reaching the shard.
pub async fn cancel(cfg: &PgConfig, pid: i32, secret: i32) -> Result<(), BackendError> {
    let mut s = Stream::connect(cfg).await?;
    let mut out = BytesMut::new();
    startup::encode_cancel(&mut out, pid, secret);
    s.write_all(&out).await?;
    let mut buf = BytesMut::with_capacity(1);
    let _ = s.read_buf(&mut buf).await;
    Ok(())
}

/// Does a PostgreSQL collation order text bytewise (as the C collation
/// does)? `provider` is `pg_collation.collprovider` or
/// `pg_database.datlocprovider` (`c` libc, `i` ICU, `b` builtin; empty
/// before PostgreSQL 15: libc), `collate` the libc locale, `locale` the
/// ICU or builtin one, `utf8` whether the database's encoding is UTF8.
/// libc's and the builtin provider's `C.UTF-8` order by code point, which
/// is byte order in UTF-8.
pub fn collation_is_bytewise(provider: &str, collate: &str, locale: &str, utf8: bool) -> bool {
    let c_utf8 = |l: &str| l.eq_ignore_ascii_case("C.UTF-8") || l.eq_ignore_ascii_case("C.utf8");
    match provider {
        "" | "c" => matches!(collate, "C" | "POSIX") || (utf8 && c_utf8(collate)),
        "b" => locale == "C" || (utf8 && c_utf8(locale)),
        _ => false,
    }
}

/// The query telling [`collation_is_bytewise`]'s arguments (as text) for
/// the connection's database: provider, collate, locale, encoding.
pub const DATABASE_COLLATION_SQL: &str = "SELECT coalesce(to_jsonb(d) ->> 'datlocprovider', ''), d.datcollate, coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale', ''), pg_encoding_to_char(d.encoding) FROM pg_database d WHERE d.datname = current_database()";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytewise_collations() {
        assert!(collation_is_bytewise("c", "C", "", false));
        assert!(collation_is_bytewise("", "POSIX", "", true));
        assert!(collation_is_bytewise("c", "C.UTF-8", "", true));
        assert!(collation_is_bytewise("c", "C.utf8", "", true));
        assert!(!collation_is_bytewise("c", "C.UTF-8", "", false));
        assert!(!collation_is_bytewise("c", "en_US.UTF-8", "", true));
        // ICU orders linguistically whatever the libc setting says.
        assert!(!collation_is_bytewise("i", "C", "en-US", true));
        assert!(collation_is_bytewise("b", "en_US.UTF-8", "C.UTF-8", true));
        assert!(!collation_is_bytewise("b", "C", "PG_UNICODE_FAST", true));
    }

    #[test]
    fn parses_urls() {
        let c = PgConfig::from_url("postgres://app:s%40cret@127.0.0.1:55433/shop").unwrap();
        assert_eq!(c.user, "app");
        assert_eq!(c.password.as_deref(), Some("s@cret"));
        assert_eq!(
            (c.host.as_str(), c.port, c.database.as_str()),
            ("127.0.0.1", 55433, "shop")
        );
        let d = PgConfig::from_url("postgresql://localhost").unwrap();
        assert_eq!(
            (d.port, d.user.as_str(), d.database.as_str()),
            (5432, "postgres", "postgres")
        );
        assert!(PgConfig::from_url("mysql://x").is_err());
        assert!(PgConfig::from_url("postgres://u@h:notaport/db").is_err());
        let u = PgConfig::from_url("postgres://app@%2Fvar%2Frun%2Fpostgresql:5433/shop").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.database.as_str()),
            ("/var/run/postgresql", 5433, "shop")
        );
        let q = PgConfig::from_url("postgres://app@/shop?host=/tmp/pg&port=6000").unwrap();
        assert_eq!(
            (
                q.host.as_str(),
                q.port,
                q.user.as_str(),
                q.database.as_str()
            ),
            ("/tmp/pg", 6000, "app", "shop")
        );
        let v6 = PgConfig::from_url("postgres://app@[::1]:6001/shop").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 6001));
        let v6 = PgConfig::from_url("postgres://app@[::1]/shop").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 5432));
        assert!(PgConfig::from_url("postgres://app@[::1/shop").is_err());
        assert!(PgConfig::from_url("postgres://app@/shop").is_err());
        let p = PgConfig::from_url("postgres:///x?host=/tmp&user=app&dbname=shop&password=p%26q")
            .unwrap();
        assert_eq!(
            (p.user.as_str(), p.database.as_str(), p.password.as_deref()),
            ("app", "shop", Some("p&q"))
        );
        assert!(PgConfig::from_url("postgres://a@h/db?sslmode=require").is_err());
        assert!(PgConfig::from_url("postgres://a@h/db?sslmode=disable").is_ok());
        let e = PgConfig::from_url("postgres://a:s3cret@h:x/db?password=t0p&sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret") && !e.contains("t0p"), "{e}");
        assert!(e.contains("a:***@h:x/db?password=***"), "{e}");
    }
}
