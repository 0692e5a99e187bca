//! Test helpers for shardgate: start real PostgreSQL servers and the
//! `shardgate` binary from integration tests.
//!
//! * [`PgServer`] creates a throw-away PostgreSQL cluster (via `initdb` and
//!   `pg_ctl`) in a temporary directory, listening on a free TCP port on
//!   `127.0.0.1`, with a database named `app`. The cluster is stopped and
//!   deleted when the value is dropped.
//! * [`Shardgate`] runs `shardgate serve --listen 127.0.0.1:PORT ...` as a
//!   child process, captures its output in a log file and kills it on drop.
//! * [`psql_at`] runs one SQL string through `psql` against any port.
//!
//! The PostgreSQL binaries are taken from the directory in the `PG_BIN`
//! environment variable if it is set, otherwise from the highest-numbered
//! `/usr/lib/postgresql/*/bin`. When the tests run as root (which `initdb`
//! refuses), the server programs are run as the `postgres` system user through
//! `runuser -u postgres --`.
//!
//! `psql` invocations are bounded by a timeout (default 300 s, override with
//! the `TESTKIT_PSQL_TIMEOUT_SECS` environment variable) so that a hung
//! server fails a test instead of hanging it forever.
//!
//! ```no_run
//! use shardgate_testkit::{PgServer, Shardgate};
//! use std::path::Path;
//!
//! # fn main() -> anyhow::Result<()> {
//! let shards = PgServer::start_many(2)?;
//! shards[0].psql("CREATE TABLE t (id int)")?;
//! let sg = Shardgate::spawn(Path::new("target/debug/shardgate"), &["--config", "sg.toml"])?;
//! assert_eq!(sg.psql("SELECT 1")?, "1");
//! # Ok(())
//! # }
//! ```

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

/// How many times server start-up is retried when the chosen port turns out
/// to be taken by someone else.
const START_ATTEMPTS: usize = 5;

/// How long to wait for `pg_ctl start` / shardgate to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Timeout for server administration commands (`initdb`, `pg_ctl`, ...).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(180);

/// Default timeout for a single `psql` invocation.
const DEFAULT_PSQL_TIMEOUT: Duration = Duration::from_secs(300);

/// Returns the directory holding the PostgreSQL server binaries.
///
/// Uses `$PG_BIN` if set (and non-empty), otherwise the highest-versioned
/// `/usr/lib/postgresql/<version>/bin` that contains `initdb`.
pub fn pg_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            bail!("PG_BIN={} is not a directory", dir.display());
        }
        return Ok(dir);
    }
    let root = Path::new("/usr/lib/postgresql");
    let entries = fs::read_dir(root).with_context(|| {
        format!(
            "cannot read {} (is PostgreSQL installed? set PG_BIN to its bin directory)",
            root.display()
        )
    })?;
    let mut best: Option<(Vec<u64>, PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let bin = entry.path().join("bin");
        if !bin.join("initdb").is_file() {
            continue;
        }
        let key: Vec<u64> = name
            .split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect();
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, bin));
        }
    }
    best.map(|(_, bin)| bin).ok_or_else(|| {
        anyhow!(
            "no PostgreSQL installation with initdb found under {} (set PG_BIN)",
            root.display()
        )
    })
}

/// Returns the path of a PostgreSQL tool (`psql`, `pgbench`, `initdb`, ...).
///
/// Prefers the binary in [`pg_bin_dir`]; falls back to the bare `name`, so
/// that it is looked up in `PATH` when executed.
pub fn pg_bin(name: &str) -> PathBuf {
    if let Ok(dir) = pg_bin_dir() {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// Runs `sql` with `psql` against `127.0.0.1:port` as `user` on database `db`.
///
/// Uses `psql -X -At -w -v ON_ERROR_STOP=1`, so the output is unaligned,
/// tuples only (rows separated by newlines, columns by `|`). Returns stdout
/// with trailing whitespace removed; on failure the error contains stderr.
pub fn psql_at(port: u16, user: &str, db: &str, sql: &str) -> Result<String> {
    let mut cmd = Command::new(pg_bin("psql"));
    cmd.args([
        "-X",
        "-At",
        "-w",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
    ])
    .arg("-p")
    .arg(port.to_string())
    .args(["-U", user, "-d", db, "-c", sql])
    .env("PGCONNECT_TIMEOUT", "10");
    let out = run_with_timeout(&mut cmd, psql_timeout())
        .with_context(|| format!("running psql on port {port} for: {sql}"))?;
    if !out.status.success() {
        bail!(
            "psql on port {port} (user {user}, db {db}) failed ({}) for: {sql}\nstderr:\n{}\nstdout:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end(),
            String::from_utf8_lossy(&out.stdout).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// A throw-away PostgreSQL server listening on `127.0.0.1` on a free port.
///
/// Has a database `app`; the superuser is `postgres` with trust
/// authentication. Stopped (`pg_ctl stop -m immediate`) and deleted on drop.
#[derive(Debug)]
pub struct PgServer {
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    as_root: bool,
    running: bool,
    // Declared last so it is removed after the server is stopped.
    dir: TempDir,
}

/// initdb's locale options: `--locale=C` unless `SHARDGATE_TEST_LOCALE`
/// names another (`en_US.UTF-8`, or `icu:en-US` for an ICU default
/// collation), to run a suite under a linguistic collation.
fn locale_args() -> Vec<String> {
    match std::env::var("SHARDGATE_TEST_LOCALE") {
        Ok(l) if l.starts_with("icu:") => vec![
            "--locale=C".into(),
            "--locale-provider=icu".into(),
            format!("--icu-locale={}", &l[4..]),
        ],
        Ok(l) if !l.is_empty() => vec![format!("--locale={l}")],
        _ => vec!["--locale=C".into()],
    }
}

impl PgServer {
    /// Initializes and starts a new PostgreSQL server and creates database `app`.
    pub fn start() -> Result<PgServer> {
        let bin = pg_bin_dir()?;
        let as_root = is_root();
        let dir = make_temp_dir(as_root)?;
        let data = dir.path().join("data");

        let mut initdb = server_cmd(as_root, &bin.join("initdb"), dir.path());
        initdb
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8"])
            .args(locale_args())
            .args(["--no-sync", "-D"])
            .arg(&data);
        let out = run_with_timeout(&mut initdb, ADMIN_TIMEOUT).context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim_end(),
                String::from_utf8_lossy(&out.stderr).trim_end()
            );
        }

        let mut server = PgServer {
            port: 0,
            bin,
            data,
            as_root,
            running: false,
            dir,
        };
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            match server.try_start() {
                Ok(()) => {
                    last_err = None;
                    break;
                }
                Err(StartError::PortClash(e)) => last_err = Some(e),
                Err(StartError::Fatal(e)) => return Err(e),
            }
        }
        if let Some(e) = last_err {
            return Err(e.context(format!(
                "could not find a free port after {START_ATTEMPTS} attempts"
            )));
        }

        // pg_ctl -w has waited for readiness; retry briefly anyway in case the
        // server is still finishing start-up.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match psql_at(server.port, "postgres", "postgres", "CREATE DATABASE app") {
                Ok(_) => break,
                Err(e)
                    if Instant::now() < deadline && !e.to_string().contains("already exists") =>
                {
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "creating database app failed; postgres log:\n{}",
                        server.log()
                    )));
                }
            }
        }
        Ok(server)
    }

    /// Starts `n` servers (sequentially).
    pub fn start_many(n: usize) -> Result<Vec<PgServer>> {
        (0..n)
            .map(|i| PgServer::start().with_context(|| format!("starting server {i} of {n}")))
            .collect()
    }

    /// Crash the server (`pg_ctl stop -m immediate`), keeping its data.
    pub fn kill(&mut self) {
        self.stop();
    }

    /// Start a stopped server again on the same port, with its data
    /// (prepared transactions included).
    pub fn restart(&mut self) -> Result<()> {
        let port = self.port;
        match self.try_start_on(port) {
            Ok(()) => Ok(()),
            Err(StartError::PortClash(e) | StartError::Fatal(e)) => Err(e),
        }
    }

    fn try_start(&mut self) -> std::result::Result<(), StartError> {
        let port = free_port().map_err(StartError::Fatal)?;
        self.try_start_on(port)
    }

    fn try_start_on(&mut self, port: u16) -> std::result::Result<(), StartError> {
        let log = self.log_path();
        let _ = fs::remove_file(&log);
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c max_prepared_transactions=64 \
             -c max_connections=200 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c shared_buffers=32MB",
            shell_quote(&self.dir.path().to_string_lossy())
        );
        let mut cmd = server_cmd(self.as_root, &self.bin.join("pg_ctl"), self.dir.path());
        cmd.arg("-D").arg(&self.data).arg("-l").arg(&log).args([
            "-w",
            "-t",
            &STARTUP_TIMEOUT.as_secs().to_string(),
            "-o",
            &opts,
            "start",
        ]);
        let out = run_with_timeout(&mut cmd, ADMIN_TIMEOUT + STARTUP_TIMEOUT)
            .context("running pg_ctl start")
            .map_err(StartError::Fatal)?;
        if out.status.success() {
            self.port = port;
            self.running = true;
            return Ok(());
        }
        // Make sure nothing half-started is left behind before retrying.
        self.stop();
        let log_text = fs::read_to_string(&log).unwrap_or_default();
        let err = anyhow!(
            "pg_ctl start on port {port} failed ({}):\n{}\n{}\npostgres log ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end(),
            log.display(),
            log_text.trim_end()
        );
        if log_text.contains("Address already in use") || log_text.contains("could not bind") {
            Err(StartError::PortClash(err))
        } else {
            Err(StartError::Fatal(err))
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn stop(&mut self) {
        let mut cmd = server_cmd(self.as_root, &self.bin.join("pg_ctl"), self.dir.path());
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = run_with_timeout(&mut cmd, ADMIN_TIMEOUT);
        self.running = false;
    }

    /// The TCP port the server listens on (on `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection URL for database `app`: `postgres://postgres@127.0.0.1:PORT/app`.
    pub fn url(&self) -> String {
        self.url_db("app")
    }

    /// Connection URL for database `db` as user `postgres`.
    pub fn url_db(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Connection URL for database `db` as user `postgres` over the
    /// server's Unix-domain socket (libpq style: `?host=<socket dir>`).
    pub fn socket_url_db(&self, db: &str) -> String {
        format!(
            "postgres://postgres@/{db}?host={}&port={}",
            self.dir.path().display(),
            self.port
        )
    }

    /// The data directory of the cluster.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Contents of the server log (empty if it cannot be read).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs `sql` via `psql` as `postgres` on database `app`; see [`psql_at`].
    pub fn psql(&self, sql: &str) -> Result<String> {
        psql_at(self.port, "postgres", "app", sql)
    }

    /// Runs `sql` via `psql` as `postgres` on database `db`; see [`psql_at`].
    pub fn psql_db(&self, db: &str, sql: &str) -> Result<String> {
        psql_at(self.port, "postgres", db, sql)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            self.stop();
        }
        // `dir` (a TempDir) is removed after this when its field is dropped.
    }
}

enum StartError {
    PortClash(anyhow::Error),
    Fatal(anyhow::Error),
}

/// A running `shardgate serve` child process listening on `127.0.0.1`.
///
/// Output (stdout and stderr) goes to a log file, see [`Shardgate::log`].
/// The process is killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Shardgate {
    child: Option<Child>,
    port: u16,
    log_path: PathBuf,
    env: Vec<(String, String)>,
    _dir: TempDir,
}

impl Shardgate {
    /// Runs `bin serve --listen 127.0.0.1:PORT <args...>` on a free port and
    /// waits (up to 60 s) until it accepts TCP connections.
    ///
    /// Fails early, with the captured output, if the process exits first.
    pub fn spawn(bin: &Path, args: &[&str]) -> Result<Shardgate> {
        Shardgate::spawn_with_env(bin, args, &[])
    }

    /// [`Shardgate::spawn`] with extra environment variables for the child.
    pub fn spawn_with_env(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Shardgate> {
        let dir = tempfile::Builder::new()
            .prefix("shardgate-test-")
            .tempdir()
            .context("creating temp dir for shardgate log")?;
        let log_path = dir.path().join("shardgate.log");
        let mut sg = Shardgate {
            child: None,
            port: 0,
            log_path,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _dir: dir,
        };
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            match sg.try_spawn(bin, args) {
                Ok(()) => return Ok(sg),
                Err(StartError::PortClash(e)) => last_err = Some(e),
                Err(StartError::Fatal(e)) => return Err(e),
            }
        }
        Err(last_err
            .unwrap_or_else(|| anyhow!("shardgate did not start"))
            .context(format!(
                "could not find a free port after {START_ATTEMPTS} attempts"
            )))
    }

    fn try_spawn(&mut self, bin: &Path, args: &[&str]) -> std::result::Result<(), StartError> {
        let port = free_port().map_err(StartError::Fatal)?;
        let log = File::create(&self.log_path)
            .with_context(|| format!("creating {}", self.log_path.display()))
            .map_err(StartError::Fatal)?;
        let log_err = log
            .try_clone()
            .context("cloning log file handle")
            .map_err(StartError::Fatal)?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))
            .map_err(StartError::Fatal)?;
        self.child = Some(child);
        self.port = port;

        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Ok(None)) => None,
                Some(Err(e)) => Some(format!("wait failed: {e}")),
                None => Some("no child".to_string()),
            };
            if let Some(status) = exited {
                self.child = None;
                let log = self.log();
                let err = anyhow!(
                    "shardgate ({}) exited during start-up ({status}) on port {port}; log:\n{}",
                    bin.display(),
                    log.trim_end()
                );
                return if log.contains("Address already in use") || log.contains("AddrInUse") {
                    Err(StartError::PortClash(err))
                } else {
                    Err(StartError::Fatal(err))
                };
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(StartError::Fatal(anyhow!(
                    "shardgate ({}) did not accept connections on port {port} within {}s; log:\n{}",
                    bin.display(),
                    STARTUP_TIMEOUT.as_secs(),
                    self.log().trim_end()
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The TCP port shardgate listens on (on `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection URL: `postgres://app@127.0.0.1:PORT/app`.
    pub fn url(&self) -> String {
        format!("postgres://app@127.0.0.1:{}/app", self.port)
    }

    /// Everything the process wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Path of the log file holding stdout/stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Runs `sql` via `psql` as user `app` on database `app`; see [`psql_at`].
    pub fn psql(&self, sql: &str) -> Result<String> {
        psql_at(self.port, "app", "app", sql)
    }

    /// Returns `true` while the child process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Kills the process (SIGKILL) and waits for it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Wait up to `timeout` for the process to exit on its own; its exit
    /// status, or `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Shardgate {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Picks a currently free TCP port on 127.0.0.1 (bind to port 0, then drop).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn psql_timeout() -> Duration {
    std::env::var("TESTKIT_PSQL_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_PSQL_TIMEOUT)
}

/// Whether the effective uid is 0. `/proc/self` is owned by the process'
/// effective uid; fall back to `id -u` if /proc is unavailable.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = fs::metadata("/proc/self") {
        return meta.uid() == 0;
    }
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Creates the temp dir for a cluster. As root it is handed to the
/// `postgres` user, and placed in /tmp if `$TMPDIR` is not reachable by it.
fn make_temp_dir(as_root: bool) -> Result<TempDir> {
    let builder = || {
        let mut b = tempfile::Builder::new();
        b.prefix("shardgate-pg-");
        b
    };
    let dir = builder().tempdir().context("creating temp dir")?;
    if !as_root {
        return Ok(dir);
    }
    give_to_postgres(dir.path())?;
    if postgres_can_write(dir.path()) {
        return Ok(dir);
    }
    drop(dir);
    let dir = builder()
        .tempdir_in("/tmp")
        .context("creating temp dir in /tmp")?;
    give_to_postgres(dir.path())?;
    if !postgres_can_write(dir.path()) {
        bail!(
            "the postgres user cannot write to {} (needed to run initdb as root)",
            dir.path().display()
        );
    }
    Ok(dir)
}

fn give_to_postgres(dir: &Path) -> Result<()> {
    let out = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .context("running chown (needed when running as root)")?;
    if !out.status.success() {
        bail!(
            "chown -R postgres:postgres {} failed (does the postgres user exist?): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(())
}

fn postgres_can_write(dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-w"])
        .arg(dir)
        .arg("-a")
        .arg("-x")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Builds a command for a server program, wrapped in `runuser -u postgres --`
/// when running as root. Runs in `cwd` so that the postgres user can access
/// its working directory.
fn server_cmd(as_root: bool, program: &Path, cwd: &Path) -> Command {
    let mut cmd = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.current_dir(cwd);
    cmd
}

/// Quotes `s` for the shell command line pg_ctl builds from `-o`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `cmd` with stdin closed, collecting stdout/stderr, and kills it if it
/// does not finish within `timeout`.
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let program = cmd.get_program().to_os_string();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", display(&program)))?;
    let stdout = child.stdout.take().map(spawn_reader);
    let stderr = child.stderr.take().map(spawn_reader);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
            bail!(
                "{} timed out after {}s; stderr:\n{}",
                display(&program),
                timeout.as_secs(),
                String::from_utf8_lossy(&err).trim_end()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn spawn_reader<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

fn display(s: &OsStr) -> String {
    s.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_server_runs_sql() {
        let pg = PgServer::start().expect("start postgres");
        assert_eq!(pg.psql("SELECT 1+1").unwrap(), "2");
        assert_eq!(pg.psql("SELECT current_database()").unwrap(), "app");
        assert_eq!(
            pg.url(),
            format!("postgres://postgres@127.0.0.1:{}/app", pg.port())
        );
        assert!(pg.psql("SELECT * FROM no_such_table").is_err());
        let data = pg.data_dir().to_path_buf();
        drop(pg);
        assert!(!data.exists(), "temp dir should be removed on drop");
    }

    #[test]
    fn two_servers_have_different_ports() {
        let servers = PgServer::start_many(2).expect("start postgres servers");
        assert_eq!(servers.len(), 2);
        assert_ne!(servers[0].port(), servers[1].port());
        for s in &servers {
            assert_eq!(s.psql("SHOW max_prepared_transactions").unwrap(), "64");
            assert_eq!(s.psql("SELECT 1").unwrap(), "1");
        }
    }

    #[test]
    fn shardgate_spawn_reports_early_exit_with_log() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-shardgate");
        fs::write(&script, "#!/bin/sh\necho \"fake-boom $*\" >&2\nexit 3\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let err = Shardgate::spawn(&script, &["--config", "x.toml"]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("fake-boom serve --listen 127.0.0.1:"), "{msg}");
        assert!(msg.contains("--config x.toml"), "{msg}");
    }

    #[test]
    fn pg_bin_finds_psql() {
        let p = pg_bin("psql");
        assert!(p.ends_with("psql"));
        assert_eq!(
            pg_bin("definitely-not-a-pg-tool"),
            PathBuf::from("definitely-not-a-pg-tool")
        );
    }
}
