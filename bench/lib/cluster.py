"""Start and stop the processes a benchmark talks to.

* `Postgres`: a throw-away PostgreSQL 15 cluster (initdb + pg_ctl) in
  WORK/pg/NAME, listening on 127.0.0.1 on a free port.
* `PgBouncer`: pgbouncer in transaction mode in front of one server.
* `Shardgate`: `shardgate serve --config ... --listen ... --data-dir ...`.

When running as root, initdb, pg_ctl and pgbouncer (which all refuse to run
as root) run as the `postgres` user through `runuser -u postgres --`.

Every long-running process we start is recorded in WORK/pids/NAME.pid as
"PID COMM" so that bench/run's trap can kill it even if this program dies.
"""

import os
import shutil
import socket
import urllib.parse
import subprocess
import time

LOOPBACK = "127.0.0.1"


class HarnessError(Exception):
    """The harness itself cannot go on (a server does not start, ...)."""


class Env:
    """Paths and settings shared by everything we start."""

    def __init__(self, work, pg_bin, pgbouncer, shardgate):
        self.work = work
        self.pg_bin = pg_bin
        self.pgbouncer_bin = pgbouncer
        self.shardgate_bin = shardgate
        self.as_root = os.geteuid() == 0
        self.pids = os.path.join(work, "pids")
        os.makedirs(self.pids, exist_ok=True)

    def bin(self, name):
        return os.path.join(self.pg_bin, name)

    def as_postgres(self, argv):
        """argv, wrapped in `runuser -u postgres --` when we are root."""
        if self.as_root:
            return ["runuser", "-u", "postgres", "--"] + list(argv)
        return list(argv)

    def own_dir(self, path):
        """Creates `path`, owned by the postgres user when we are root."""
        os.makedirs(path, exist_ok=True)
        if self.as_root:
            shutil.chown(path, "postgres", "postgres")

    def record_pid(self, name, pid):
        comm = ""
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            pass
        with open(os.path.join(self.pids, name + ".pid"), "w") as f:
            f.write(f"{pid} {comm}\n")

    def forget_pid(self, name):
        try:
            os.unlink(os.path.join(self.pids, name + ".pid"))
        except OSError:
            pass


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout, alive=lambda: True):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not alive():
            return False
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def run(argv, timeout=300, cwd=None, env=None, input=None):
    """Runs a command, returns CompletedProcess (text); never raises on exit code."""
    try:
        return subprocess.run(argv, cwd=cwd, env=env, input=input, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, 124, e.stdout or "",
                                           (e.stderr or "") + f"\n(timed out after {timeout}s)")


def tail(text, n=15):
    lines = (text or "").rstrip().splitlines()
    return "\n".join(lines[-n:])


def read_file(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def psql_cmd(env, port, user, db, extra=()):
    return [env.bin("psql"), "-X", "-At", "-w", "-v", "ON_ERROR_STOP=1",
            "-h", LOOPBACK, "-p", str(port), "-U", user, "-d", db] + list(extra)


def psql_env():
    e = dict(os.environ)
    e["PGCONNECT_TIMEOUT"] = "10"
    e.pop("PGPASSWORD", None)
    e.pop("PGSERVICE", None)
    return e


class Endpoint:
    """Something a PostgreSQL client can connect to."""

    name = "?"
    port = 0
    user = "postgres"

    def psql(self, sql, db, timeout=600, check=True):
        """Runs `sql` (a string, or a list sent as separate -c commands)."""
        stmts = [sql] if isinstance(sql, str) else list(sql)
        args = [a for s in stmts for a in ("-c", s)]
        r = run(psql_cmd(self.env, self.port, self.user, db, args),
                timeout=timeout, env=psql_env())
        if check and r.returncode != 0:
            raise HarnessError(f"psql on {self.name} (port {self.port}, db {db}) failed "
                               f"for: {'; '.join(stmts)[:300]}\n{tail(r.stderr)}")
        return r.stdout.strip() if check else r

    def psql_file(self, path, db, timeout=3600):
        r = run(psql_cmd(self.env, self.port, self.user, db, ["-q", "-f", path]),
                timeout=timeout, env=psql_env())
        if r.returncode != 0:
            raise HarnessError(f"psql -f {path} on {self.name} (port {self.port}) failed:\n"
                               f"{tail(r.stderr)}")
        return r.stdout


class Postgres(Endpoint):
    OPTIONS = ("-c max_connections=300 -c shared_buffers=128MB -c fsync=off "
               "-c synchronous_commit=off -c max_prepared_transactions=64 "
               "-c full_page_writes=off")

    def __init__(self, env, name):
        self.env = env
        self.name = name
        self.dir = os.path.join(env.work, "pg", name)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.running = False

    def start(self):
        self.env.own_dir(self.dir)
        r = run(self.env.as_postgres([
            self.env.bin("initdb"), "-A", "trust", "-U", "postgres", "--locale=C",
            "-E", "UTF8", "--no-sync", "-D", self.data]), cwd=self.dir)
        if r.returncode != 0:
            raise HarnessError(f"initdb for {self.name} failed:\n{tail(r.stdout)}\n{tail(r.stderr)}")
        for _ in range(5):
            port = free_port()
            opts = f"-p {port} -c listen_addresses={LOOPBACK} -k {self.dir} {self.OPTIONS}"
            r = run(self.env.as_postgres([
                self.env.bin("pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60",
                "-o", opts, "start"]), cwd=self.dir, timeout=120)
            if r.returncode == 0:
                self.port = port
                self.running = True
                return self
            log = read_file(self.log)
            self.stop()
            if "could not bind" not in log and "already in use" not in log:
                raise HarnessError(f"pg_ctl start for {self.name} failed:\n{tail(r.stderr)}\n"
                                   f"postgres log:\n{tail(log)}")
        raise HarnessError(f"no free port for {self.name} after 5 attempts")

    def createdb(self, db):
        self.psql(f"CREATE DATABASE {db}", "postgres")

    def stop(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            run(self.env.as_postgres([self.env.bin("pg_ctl"), "-D", self.data,
                                      "-m", "immediate", "-w", "-t", "30", "stop"]),
                cwd=self.dir, timeout=60)
        self.running = False

    def version(self):
        return self.psql("SHOW server_version", "postgres")


class PgBouncer(Endpoint):
    """pgbouncer in front of one PostgreSQL server: transaction pooling, or
    session pooling (each client keeps its server connection: the bytes are
    forwarded, so every protocol works; the cost of one hop and no more)."""

    def __init__(self, env, upstream, pool_size, name="pgbouncer", pool_mode="transaction"):
        self.env = env
        self.name = name
        self.pool_mode = pool_mode
        self.upstream = upstream
        self.pool_size = pool_size
        self.dir = os.path.join(env.work, name)
        self.log = os.path.join(self.dir, "pgbouncer.log")
        self.proc = None

    def start(self):
        self.env.own_dir(self.dir)
        userlist = os.path.join(self.dir, "userlist.txt")
        with open(userlist, "w") as f:
            f.write('"postgres" ""\n"app" ""\n')
        for _ in range(5):
            self.port = free_port()
            ini = os.path.join(self.dir, "pgbouncer.ini")
            with open(ini, "w") as f:
                f.write(f"""[databases]
* = host={LOOPBACK} port={self.upstream.port} user=postgres

[pgbouncer]
listen_addr = {LOOPBACK}
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {userlist}
pool_mode = {self.pool_mode}
default_pool_size = {self.pool_size}
max_client_conn = 500
max_db_connections = 0
ignore_startup_parameters = extra_float_digits
logfile = {self.log}
log_connections = 0
log_disconnections = 0
""")
            if self.env.as_root:
                for p in (userlist, ini):
                    shutil.chown(p, "postgres", "postgres")
            out = open(os.path.join(self.dir, "stdout.log"), "w")
            # exec so that the pid we record is pgbouncer's, not runuser's
            # (runuser stays as the parent; killing pgbouncer ends it).
            self.proc = subprocess.Popen(self.env.as_postgres([self.env.pgbouncer_bin, ini]),
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=self.dir)
            self._record()
            if wait_for_port(self.port, 30, alive=lambda: self.proc.poll() is None):
                self._record()
                return self
            self.stop()
            text = read_file(self.log) + read_file(os.path.join(self.dir, "stdout.log"))
            if "already in use" not in text:
                raise HarnessError(f"pgbouncer did not start:\n{tail(text)}")
        raise HarnessError("no free port for pgbouncer after 5 attempts")

    def _pgbouncer_pid(self):
        """pid of pgbouncer itself (a child of runuser when we are root)."""
        if self.proc is None:
            return None
        if not self.env.as_root:
            return self.proc.pid
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                kids = f.read().split()
            return int(kids[0]) if kids else None
        except OSError:
            return None

    def _record(self):
        pid = self._pgbouncer_pid()
        if pid:
            self.env.record_pid(self.name, pid)

    def version(self):
        r = run([self.env.pgbouncer_bin, "--version"])
        return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr) else "?"

    def stop(self):
        if self.proc is None:
            return
        pid = self._pgbouncer_pid()
        if pid:
            try:
                os.kill(pid, 15)
            except OSError:
                pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            if pid:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.env.forget_pid(self.name)


class Shardgate(Endpoint):
    """`shardgate serve` with a generated config file."""

    user = "app"

    def __init__(self, env, name, shards, tables_toml="", pool_size=None, shard_user="postgres",
                 via_socket=False, lanes=0):
        self.env = env
        self.shard_user = shard_user  # the role shardgate logs in to the shards as
        # Reach the shards over their Unix-domain sockets (libpq style: the
        # socket directory as host) instead of TCP on loopback.
        self.via_socket = via_socket
        # Shared pipelined connections per shard for autocommit reads.
        self.lanes = lanes
        self.name = name
        self.shards = shards  # [(shard name, Postgres, database)]
        self.tables_toml = tables_toml
        self.pool_size = pool_size
        self.dir = os.path.join(env.work, name)
        self.log = os.path.join(self.dir, "shardgate.log")
        self.config = os.path.join(self.dir, "shardgate.toml")
        self.proc = None

    def write_config(self):
        lines = ["# generated by bench/lib/cluster.py"]
        if self.pool_size:
            lines.append(f"pool_size = {self.pool_size}")
        if self.lanes:
            lines.append(f"lanes = {self.lanes}")
        for sname, pg, db in self.shards:
            host = urllib.parse.quote(pg.dir, safe="") if self.via_socket else LOOPBACK
            lines += ["", "[[shards]]", f'name = "{sname}"',
                      f'url = "postgres://{self.shard_user}@{host}:{pg.port}/{db}"']
        text = "\n".join(lines) + "\n" + self.tables_toml
        with open(self.config, "w") as f:
            f.write(text)
        return text

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.write_config()
        data = os.path.join(self.dir, "data")
        for _ in range(5):
            self.port = free_port()
            out = open(self.log, "a")
            self.proc = subprocess.Popen(
                [self.env.shardgate_bin, "serve", "--config", self.config,
                 "--listen", f"{LOOPBACK}:{self.port}", "--data-dir", data],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir)
            self.env.record_pid(self.name, self.proc.pid)
            if wait_for_port(self.port, 60, alive=lambda: self.proc.poll() is None):
                return self
            rc = self.proc.poll()
            self.stop()
            text = read_file(self.log)
            if rc is None or ("AddrInUse" not in text and "already in use" not in text):
                raise HarnessError(f"shardgate ({self.name}) did not start (exit {rc}):\n"
                                   f"{tail(text, 30)}")
        raise HarnessError("no free port for shardgate after 5 attempts")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            rc = None if self.proc is None else self.proc.poll()
            raise HarnessError(f"shardgate ({self.name}) exited (status {rc}); log:\n"
                               f"{tail(read_file(self.log), 30)}")

    def reset_peak_memory(self):
        """Resets VmHWM to the current RSS (Linux >= 4.0: `5` to clear_refs);
        False when the kernel or permissions do not allow it."""
        try:
            with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def memory(self):
        """VmRSS and VmHWM (peak RSS) in KiB from /proc/PID/status."""
        out = {}
        for line in read_file(f"/proc/{self.proc.pid}/status").splitlines():
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(val.split()[0])
        return out

    def version(self):
        r = run([self.env.shardgate_bin, "--version"])
        return r.stdout.strip()

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.env.forget_pid(self.name)
