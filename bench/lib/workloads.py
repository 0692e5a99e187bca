"""The three workloads. Each returns a "section" dict for the report:

    {"id", "title", "about", "setup": {...}, "targets": [names],
     "cells": [{"label": {...}, "results": {target: summary}, "rounds": {...},
                "ratios": {...}}], ...}

pgbench cells are run INTERLEAVED: for each round, for each cell, every
target in turn (A, B, C, A, B, C, ...), so that machine noise falls on all
targets alike. A cell's summary is the median over rounds.
"""

import concurrent.futures
import hashlib
import os
import re
import statistics
import subprocess
import time

import pgbench
from cluster import (HarnessError, PgBouncer, Shardgate, psql_cmd, psql_env, run,
                     tail)

REFUSED = "refused"      # shardgate answered SQLSTATE 0A000 (not supported yet)
FAILED = "failed"


class Ctx:
    """What the workloads share: settings, servers, errors and notes."""

    def __init__(self, env, profile, single, shards, pool_size):
        self.env = env
        self.p = profile
        self.single = single          # Postgres: the one-server baseline
        self.shards = shards          # [Postgres] x 4, database "app"
        self.pool_size = pool_size
        self.errors = []              # harness/shardgate failures: exit 1
        self.notes = []               # tolerated failures (pgbouncer ...)
        self.started = []             # pgbouncer/shardgate to stop at the end
        self.logdir = os.path.join(env.work, "pgbench-logs")
        self.scripts = os.path.join(env.work, "scripts")
        os.makedirs(self.scripts, exist_ok=True)

    def log(self, msg):
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def start(self, proc):
        proc.start()
        self.started.append(proc)
        return proc

    def stop(self, proc):
        proc.stop()
        if proc in self.started:
            self.started.remove(proc)

    def script(self, name, text):
        path = os.path.join(self.scripts, name)
        with open(path, "w") as f:
            f.write(text)
        return path


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return round(a / b, 3)


def summarize(rounds):
    """Median over rounds; any failed/refused round makes the cell so."""
    for r in rounds:
        if r["status"] != "ok":
            return {"status": r["status"], "error": r.get("error", ""),
                    "command": r.get("command", "")}

    def med(key):
        vals = [r[key] for r in rounds if r.get(key) is not None]
        return round(statistics.median(vals), 3) if vals else None
    return {"status": "ok", "tps": med("tps"), "latency_avg_ms": med("latency_avg_ms"),
            "latency_p99_ms": med("latency_p99_ms"), "command": rounds[0]["command"]}


def run_interleaved(ctx, section, cells, targets, run_one):
    """cells: [label dict]; targets: {name: spec}; run_one(label, name, spec, round) -> result."""
    raw = [{name: [] for name in targets} for _ in cells]
    for rnd in range(ctx.p["rounds"]):
        for i, label in enumerate(cells):
            for name, spec in targets.items():
                res = run_one(label, name, spec, rnd)
                raw[i][name].append(res)
                shown = (f"{res['tps']:.0f} tps" if res["status"] == "ok" and res.get("tps")
                         else res["status"])
                ctx.log(f"  {section} round {rnd + 1} {fmt_label(label)} {name}: {shown}")
    return [{"label": label, "results": {n: summarize(raw[i][n]) for n in targets},
             "rounds": raw[i]} for i, label in enumerate(cells)]


def fmt_label(label):
    return " ".join(f"{k}={v}" for k, v in label.items())


def judge(ctx, section, cells, tolerated=()):
    """Failures go to ctx.errors (exit 1), except for targets in `tolerated`."""
    for cell in cells:
        for target, res in cell["results"].items():
            if res["status"] == FAILED:
                msg = (f"{section}: {fmt_label(cell['label'])} target={target} failed\n"
                       f"  command: {res.get('command', '')}\n  output:\n"
                       + "\n".join("    " + l for l in res.get("error", "").splitlines()))
                (ctx.notes if target in tolerated else ctx.errors).append(msg)


def pgbench_cell(ctx, endpoint, db, label, name, rnd, **kw):
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{name}-{fmt_label(label)}-r{rnd}")
    res = pgbench.run_cell(ctx.env, endpoint, db, seconds=ctx.p["seconds"],
                           logdir=ctx.logdir, tag=tag, **kw)
    if isinstance(endpoint, Shardgate):
        endpoint.check_alive()
    return res


def probe(endpoint, db, sql):
    """Runs one query; returns ("ok", stdout) / ("refused", msg) / ("error", msg)."""
    r = run(psql_cmd(endpoint.env, endpoint.port, endpoint.user, db,
                     ["-v", "VERBOSITY=verbose", "-c", sql]), env=psql_env(), timeout=600)
    if r.returncode == 0:
        return "ok", r.stdout
    m = re.search(r"ERROR:\s+([0-9A-Z]{5}):\s*(.*)", r.stderr)
    if m and m.group(1) == "0A000":
        return REFUSED, f"SQLSTATE 0A000: {m.group(2).strip()}"
    return "error", tail(r.stderr, 6)


# ---------------------------------------------------------------------------
# 1. Proxy overhead: pgbench -S on one PostgreSQL: direct, pgbouncer, shardgate
# ---------------------------------------------------------------------------

def proxy_overhead(ctx):
    p = ctx.p
    pg = ctx.single
    db = "proxy"
    ctx.log(f"proxy overhead: pgbench -i -s {p['proxy_scale']} on one PostgreSQL")
    pg.createdb(db)
    r = run([ctx.env.bin("pgbench"), "-i", "-q", "-s", str(p["proxy_scale"]), "-h", "127.0.0.1",
             "-p", str(pg.port), "-U", "postgres", db], env=psql_env(), timeout=1800)
    if r.returncode != 0:
        raise HarnessError(f"pgbench -i failed:\n{tail(r.stderr)}")
    pgb = ctx.start(PgBouncer(ctx.env, pg, ctx.pool_size))
    # Session pooling with a server connection per client: a hop that only
    # forwards bytes, the floor of any proxy's cost on this machine (and
    # pgbouncer 1.18 runs -M prepared this way).
    pgb_session = ctx.start(PgBouncer(ctx.env, pg, max(p["proxy_clients"]) + 8,
                                      name="pgbouncer-session", pool_mode="session"))
    sg = ctx.start(Shardgate(ctx.env, "shardgate-1shard", [("s0", pg, db)],
                             pool_size=ctx.pool_size))
    got = sg.psql("SELECT count(*) FROM pgbench_branches", "app")
    if got != str(p["proxy_scale"]):
        raise HarnessError(f"through shardgate, pgbench_branches has {got!r} rows, "
                           f"expected {p['proxy_scale']}")
    targets = {"direct": (pg, db), "pgbouncer": (pgb, db), "pgbouncer_session": (pgb_session, db),
               "shardgate": (sg, "app")}
    cells = [{"script": "select-only", "protocol": m, "clients": c}
             for m in p["proxy_protocols"] for c in p["proxy_clients"]]
    # Single-shard transactions (BEGIN, 3 UPDATEs, SELECT, INSERT, END).
    cells += [{"script": "tpcb-like", "protocol": m, "clients": c}
              for m in p["tpcb_protocols"] for c in p["tpcb_clients"]]

    def one(label, name, spec, rnd):
        endpoint, dbname = spec
        builtin = "-S" if label["script"] == "select-only" else "-btpcb-like"
        return pgbench_cell(ctx, endpoint, dbname, label, name, rnd, builtin=builtin,
                            clients=label["clients"], protocol=label["protocol"])
    ctx.log(f"proxy overhead: {len(cells)} cells x {len(targets)} targets x {p['rounds']} rounds")
    out = run_interleaved(ctx, "proxy", cells, targets, one)
    ctx.stop(sg)
    ctx.stop(pgb_session)
    ctx.stop(pgb)
    for cell in out:
        res = cell["results"]
        cell["ratios"] = {
            "shardgate/direct tps": ratio(res["shardgate"].get("tps"), res["direct"].get("tps")),
            "shardgate/pgbouncer tps": ratio(res["shardgate"].get("tps"), res["pgbouncer"].get("tps")),
            "pgbouncer session/direct tps": ratio(res["pgbouncer_session"].get("tps"),
                                                  res["direct"].get("tps")),
            "shardgate/direct p99": ratio(res["shardgate"].get("latency_p99_ms"),
                                          res["direct"].get("latency_p99_ms")),
            "shardgate/pgbouncer p99": ratio(res["shardgate"].get("latency_p99_ms"),
                                             res["pgbouncer"].get("latency_p99_ms")),
        }
    judge(ctx, "proxy overhead", out, tolerated=("pgbouncer", "pgbouncer_session"))
    return {
        "id": "proxy",
        "title": "Proxy overhead: pgbench select-only and tpcb-like on one PostgreSQL",
        "about": (f"pgbench -S (select-only) and -b tpcb-like (single-shard write transactions), "
                  f"scale {p['proxy_scale']}, -j 2, {p['seconds']} s per cell, "
                  f"{p['rounds']} round(s), median. shardgate has the server as its only shard "
                  "(pgbench tables are unsharded). pgbouncer: pool_mode=transaction, "
                  f"default_pool_size={ctx.pool_size}; shardgate pool_size={ctx.pool_size}. "
                  "*pgbouncer session* is pgbouncer with pool_mode=session and a server "
                  "connection per client: it forwards bytes and nothing more, so its ratio to "
                  "direct is the cost of one hop on this machine, a floor for any proxy."),
        "targets": list(targets),
        "cells": out,
    }


# ---------------------------------------------------------------------------
# 2. Sharded point queries: pgbench_accounts over 4 shards vs one server
# ---------------------------------------------------------------------------

ACCOUNTS_DDL = ("CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, "
                "filler char(84))")


def range_rule(table, per_shard, nshards=4):
    ranges = ", ".join(
        f'{{ shard = "s{i}", to = {per_shard * (i + 1) + 1} }}' if i < nshards - 1
        else f'{{ shard = "s{i}" }}' for i in range(nshards))
    return (f'\n[[tables]]\nname = "{table}"\nshard_key = ["id"]\nstrategy = "range"\n'
            f'key_type = "bigint"\nranges = [{ranges}]\n')


def four_shard_rules(p):
    return ('\n[[tables]]\nname = "pgbench_accounts"\nshard_key = ["aid"]\n'
            'strategy = "hash"\nkey_type = "int"\n'
            + range_rule("topn_items", p["topn_rows_per_shard"])
            + range_rule("scan_rows", p["scan_rows"] // 4))


def four_shard_gate(ctx, name, shard_user="postgres", via_socket=False, lanes=0):
    return Shardgate(ctx.env, name, [(f"s{i}", s, "app") for i, s in enumerate(ctx.shards)],
                     tables_toml=four_shard_rules(ctx.p), pool_size=ctx.pool_size,
                     shard_user=shard_user, via_socket=via_socket, lanes=lanes)


# The role a second shardgate logs in to the shards as, for top-N: its
# sessions start no parallel workers (ALTER ROLE ... SET), as an operator
# would configure four shards that share two cores (their parallelism is
# the shard count). The single server keeps its defaults (its best).
SERIAL_ROLE = "sg_serial"


def write_account_copy(path, n):
    """A psql script that COPYs `n` accounts through shardgate (\\copy, text
    format; shardgate splits the rows by aid), with the data file beside it."""
    data = path + ".tsv"
    with open(data, "w") as f:
        for a in range(1, n + 1):
            f.write(f"{a}\t{(a - 1) // 100000 + 1}\t0\t\n")
    with open(path, "w") as f:
        f.write(f"\\copy pgbench_accounts (aid, bid, abalance, filler) FROM '{data}'\n")


def parallel(fns, workers=2):
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        return [f.result() for f in [ex.submit(fn) for fn in fns]]


def sharded_points(ctx):
    p = ctx.p
    n = p["accounts_rows"]
    single = ctx.single
    ctx.log(f"sharded point queries: loading {n} rows through shardgate and into one server")
    single.createdb("single")
    sg = ctx.start(four_shard_gate(ctx, "shardgate-4shards"))
    sg.psql(ACCOUNTS_DDL, "app")
    sql = os.path.join(ctx.scripts, "accounts.sql")
    write_account_copy(sql, n)
    t0 = time.time()
    parallel([
        lambda: sg.psql_file(sql, "app"),
        lambda: single.psql(ACCOUNTS_DDL + "; INSERT INTO pgbench_accounts SELECT g, "
                            f"(g - 1) / 100000 + 1, 0, '' FROM generate_series(1, {n}) g",
                            "single"),
    ])
    load_s = time.time() - t0
    counts = [int(s.psql("SELECT count(*) FROM pgbench_accounts", "app")) for s in ctx.shards]
    if sum(counts) != n or min(counts) == 0:
        raise HarnessError(f"rows per shard after loading {n} through shardgate: {counts}")
    parallel([lambda s=s: s.psql("VACUUM ANALYZE pgbench_accounts", "app") for s in ctx.shards]
             + [lambda: single.psql("VACUUM ANALYZE pgbench_accounts", "single")])
    got = sg.psql("SELECT abalance FROM pgbench_accounts WHERE aid = 1", "app")
    if got != "0":
        raise HarnessError(f"point select through shardgate returned {got!r}")
    scripts = {
        "select": ctx.script("point-select.sql", "\\set aid random(1, :n)\n"
                             "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n"),
        "update": ctx.script("point-update.sql", "\\set aid random(1, :n)\n"
                             "UPDATE pgbench_accounts SET abalance = abalance + 1 "
                             "WHERE aid = :aid;\n"),
    }
    # The same shards reached over their Unix-domain sockets, with one lane
    # per shard (autocommit reads of all clients pipelined on one shared
    # connection): how a router placed beside its shards would be set up.
    sg_unix = ctx.start(four_shard_gate(ctx, "shardgate-4shards-unix", via_socket=True, lanes=1))
    got = sg_unix.psql("SELECT abalance FROM pgbench_accounts WHERE aid = 2", "app")
    if got != "0":
        raise HarnessError(f"point select through shardgate (unix sockets) returned {got!r}")
    targets = {"single": (single, "single"), "shardgate": (sg, "app"),
               "shardgate_unix": (sg_unix, "app")}
    cells = [{"script": s, "protocol": m, "clients": c} for s in p["point_scripts"]
             for m in p["point_protocols"] for c in p["point_clients"]]

    def one(label, name, spec, rnd):
        endpoint, dbname = spec
        return pgbench_cell(ctx, endpoint, dbname, label, name, rnd,
                            script=scripts[label["script"]], defines=[f"n={n}"],
                            clients=label["clients"], protocol=label["protocol"])
    ctx.log(f"sharded point queries: {len(cells)} cells x {len(targets)} targets "
            f"x {p['rounds']} rounds")
    out = run_interleaved(ctx, "sharded", cells, targets, one)
    ctx.stop(sg_unix)
    ctx.stop(sg)
    for cell in out:
        res = cell["results"]
        cell["ratios"] = {
            "sharded/single tps": ratio(res["shardgate"].get("tps"), res["single"].get("tps")),
            "sharded unix/single tps": ratio(res["shardgate_unix"].get("tps"),
                                             res["single"].get("tps")),
            "sharded/single p99": ratio(res["shardgate"].get("latency_p99_ms"),
                                        res["single"].get("latency_p99_ms")),
        }
    judge(ctx, "sharded point queries", out)
    return {
        "id": "sharded",
        "title": "Sharded point queries: pgbench_accounts by aid over 4 shards vs one PostgreSQL",
        "about": (f"{n} rows; shardgate: hash on aid (key_type int) over 4 PostgreSQL servers, "
                  "rows loaded through shardgate with COPY (psql \\copy) "
                  f"({load_s:.1f} s, rows per shard {counts}); single: the same rows in one "
                  f"server. *shardgate (unix sockets, lanes)* is a second shardgate on the same "
                  "shards that reaches them over their Unix-domain sockets and has `lanes = 1` "
                  "(each shard's autocommit reads and writes of all clients pipelined on one "
                  "shared connection; the servers run with synchronous_commit=off, so writes "
                  "take the lanes). Scripts: point select / point update by random aid. -j 2, "
                  f"{p['seconds']} s per cell, {p['rounds']} round(s), median. "
                  "All servers share the same machine."),
        "setup": {"rows": n, "rows_per_shard": counts, "load_seconds_both": round(load_s, 2)},
        "targets": list(targets),
        "cells": out,
    }


# ---------------------------------------------------------------------------
# 3. Cross-shard: top-N (ORDER BY ... LIMIT) and a full scan
# ---------------------------------------------------------------------------

def load_range_table(ctx, table, per_shard, payload_sql):
    """DDL for `table` and jobs that fill each shard directly with the ids it owns
    (range-sharded on id: s0 owns 1..per_shard, s1 the next per_shard, ...) and the
    single server (database "single") with all of them."""
    ddl = f"CREATE TABLE {table} (id bigint PRIMARY KEY, score int NOT NULL, payload text)"
    fill = ("INSERT INTO {t} SELECT g, (g * 7919) % 1000003, " + payload_sql +
            " FROM generate_series({a}::bigint, {b}::bigint) g")
    jobs = [lambda i=i, s=s: s.psql([fill.format(t=table, a=i * per_shard + 1,
                                                 b=(i + 1) * per_shard),
                                     f"VACUUM ANALYZE {table}"], "app")
            for i, s in enumerate(ctx.shards)]
    jobs.append(lambda: ctx.single.psql([ddl, fill.format(t=table, a=1, b=4 * per_shard),
                                         f"VACUUM ANALYZE {table}"], "single"))
    return ddl, jobs


def time_scan(endpoint, db, sql):
    """Streams `sql` through psql to a pipe we drain; returns seconds, rows, psql max RSS."""
    argv = psql_cmd(endpoint.env, endpoint.port, endpoint.user, db,
                    ["-v", "VERBOSITY=verbose", "-c", sql])
    t0 = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=psql_env())
    rows = 0
    digest = hashlib.sha1()
    while True:
        chunk = proc.stdout.read(1 << 20)
        if not chunk:
            break
        rows += chunk.count(b"\n")
        digest.update(chunk)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    secs = time.time() - t0
    if proc.returncode != 0:
        m = re.search(r"ERROR:\s+([0-9A-Z]{5}):\s*(.*)", err)
        if m and m.group(1) == "0A000":
            return {"status": REFUSED, "error": f"SQLSTATE 0A000: {m.group(2).strip()}"}
        return {"status": FAILED, "error": tail(err, 6), "command": " ".join(argv)}
    return {"status": "ok", "seconds": round(secs, 3), "rows": rows, "sha1": digest.hexdigest(),
            "client_max_rss_kib": usage.ru_maxrss, "command": "psql -X -At -c " + repr(sql)}


def scan_one(ctx, sg, scan_sql, want_rows, ordered):
    """Rounds of one full scan, direct and through shardgate in turn; for an
    ordered scan the two outputs must be byte-identical (sha1 of psql's)."""
    p = ctx.p
    mem_before = sg.memory()
    runs = {"direct": [], "shardgate": []}
    for rnd in range(p["scan_rounds"]):
        for name, (ep, db) in (("direct", (ctx.single, "single")), ("shardgate", (sg, "app"))):
            reset = name == "shardgate" and sg.reset_peak_memory()
            res = time_scan(ep, db, scan_sql)
            if name == "shardgate":
                sg.check_alive()
                res.update({"shardgate_" + k: v for k, v in sg.memory().items()})
                res["shardgate_peak_reset"] = bool(reset)
            if res["status"] == "ok" and res["rows"] != want_rows:
                res = {"status": FAILED, "command": res["command"],
                       "error": f"returned {res['rows']} rows, expected {want_rows}"}
            runs[name].append(res)
            ctx.log(f"  scan round {rnd + 1} {name} ({scan_sql}): "
                    + (f"{res['seconds']:.2f} s" if res["status"] == "ok" else res["status"]))
    scan = {"query": scan_sql, "rows": want_rows, "ordered": ordered, "rounds": runs,
            "results": {}, "shardgate_rss_before_kib": mem_before.get("VmRSS"),
            "shardgate_hwm_before_kib": mem_before.get("VmHWM")}
    if ordered:
        digests = {r["sha1"] for rs in runs.values() for r in rs if r["status"] == "ok"}
        if len(digests) > 1:
            ctx.errors.append(f"cross-shard scan: shardgate's rows differ from PostgreSQL's "
                              f"(sha1 of psql's output) for: {scan_sql}")
    for name, rs in runs.items():
        bad = [r for r in rs if r["status"] != "ok"]
        if bad:
            scan["results"][name] = bad[0]
            if bad[0]["status"] == FAILED:
                ctx.errors.append(f"cross-shard scan {name} failed\n  command: "
                                  f"{bad[0].get('command', '')}\n  output: {bad[0]['error']}")
            continue
        scan["results"][name] = {
            "status": "ok", "seconds": round(statistics.median(r["seconds"] for r in rs), 3),
            "client_max_rss_kib": max(r["client_max_rss_kib"] for r in rs),
            "rows_per_second": round(want_rows / statistics.median(r["seconds"] for r in rs)),
        }
        if name == "shardgate":
            scan["results"][name]["peak_rss_kib"] = max(r.get("shardgate_VmHWM", 0) for r in rs)
            scan["results"][name]["peak_reset"] = all(r.get("shardgate_peak_reset") for r in rs)
    scan["ratios"] = {"shardgate/direct seconds": ratio(
        scan["results"]["shardgate"].get("seconds"), scan["results"]["direct"].get("seconds"))}
    return scan


def cross_shard(ctx):
    p = ctx.p
    per = p["topn_rows_per_shard"]
    scan_per = p["scan_rows"] // 4
    ctx.log(f"cross-shard: top-N over 4 x {per} rows, scan of {4 * scan_per} rows")
    sg = ctx.start(four_shard_gate(ctx, "shardgate-4shards-scan"))
    jobs = []
    for table, n, payload in (("topn_items", per, "md5(g::text)"),
                              ("scan_rows", scan_per, "lpad(g::text, 64, 'abcdefgh')")):
        ddl, js = load_range_table(ctx, table, n, payload)
        sg.psql(ddl, "app")
        jobs += js
    parallel(jobs)
    index = "CREATE INDEX topn_items_score ON topn_items (score)"
    sg.psql(index, "app")
    ctx.single.psql(index, "single")
    # Placement check: a key on the last shard is found through shardgate.
    key = 3 * scan_per + 1
    if sg.psql(f"SELECT id FROM scan_rows WHERE id = {key}", "app") != str(key):
        raise HarnessError(f"scan_rows id {key} not found through shardgate")
    section = {"id": "cross", "title": "Cross-shard queries: top-N and full scan",
               "targets": ["direct", "shardgate"]}

    # --- full scans, interleaved direct / shardgate: a plain one (shards'
    # rows concatenated) and one ORDER BY (a k-way merge of 4 sorted
    # streams, the case). shardgate's peak RSS is reset before each
    # of its runs (clear_refs), so each figure is that scan's own peak.
    section["scans"] = [scan_one(ctx, sg, sql, 4 * scan_per, ordered)
                        for sql, ordered in (("SELECT * FROM scan_rows", False),
                                             ("SELECT * FROM scan_rows ORDER BY score, id", True))]

    # --- top-N: probe shardgate once; if it answers, compare with direct and time it
    # --- top-N: with an index on the sort column (each server reads 100
    # index entries) and without one (each server scans and keeps a top-100
    # heap: the case where four shards share the work). Each query is probed
    # once and compared with the single server's answer before it is timed.
    # A deep page (LIMIT 100 OFFSET 10000 by the index): each shard
    # returns only about its share of the 10,100 rows the merge reads.
    deep = min(10_000, per)
    queries = [("ORDER BY score LIMIT 100 (index)",
                "SELECT * FROM topn_items ORDER BY score, id LIMIT 100"),
               ("ORDER BY payload LIMIT 100 (no index)",
                "SELECT * FROM topn_items ORDER BY payload, id LIMIT 100"),
               (f"ORDER BY score LIMIT 100 OFFSET {deep} (index)",
                f"SELECT * FROM topn_items ORDER BY score, id LIMIT 100 OFFSET {deep}")]
    for s in ctx.shards:
        s.psql([f"CREATE ROLE {SERIAL_ROLE} LOGIN SUPERUSER",
                f"ALTER ROLE {SERIAL_ROLE} SET max_parallel_workers_per_gather = 0"], "postgres")
    sg_serial = ctx.start(four_shard_gate(ctx, "shardgate-4shards-serial", SERIAL_ROLE))
    targets = {"direct": (ctx.single, "single"), "shardgate": (sg, "app"),
               "shardgate_serial": (sg_serial, "app")}
    gates = [name for name in targets if name != "direct"]
    refused, scripts = {}, {}
    for label, sql in queries:
        want_status, want = probe(ctx.single, "single", sql)
        if want_status != "ok":
            raise HarnessError(f"top-N on the single server failed: {want}")
        for name in gates:
            status, text = probe(targets[name][0], "app", sql)
            if status == "ok" and text != want:
                ctx.errors.append(f"cross-shard top-N: {name}'s answer differs from "
                                  f"PostgreSQL's for: {sql}")
            elif status == REFUSED:
                refused[(name, label)] = {"status": REFUSED, "error": text,
                                          "command": f"psql -c {sql!r}"}
                ctx.log(f"  top-N through {name}: refused ({text})")
            elif status != "ok":
                refused[(name, label)] = {"status": FAILED, "error": text,
                                          "command": f"psql -c {sql!r}"}
                ctx.errors.append(f"cross-shard top-N: {name} failed (not a refusal)\n"
                                  f"  command: psql -c {sql!r}\n  output: {text}")
        scripts[label] = ctx.script(f"topn{len(scripts)}.sql", sql + ";\n")
    cells = [{"query": label, "clients": c} for label, _ in queries for c in p["topn_clients"]]

    def one(label, name, spec, rnd):
        endpoint, dbname = spec
        if (name, label["query"]) in refused:
            return dict(refused[(name, label["query"])])
        return pgbench_cell(ctx, endpoint, dbname, label, name, rnd,
                            script=scripts[label["query"]], clients=label["clients"],
                            protocol="simple")
    out = run_interleaved(ctx, "top-N", cells, targets, one)
    for cell in out:
        r = cell["results"]
        cell["ratios"] = {
            "shardgate/direct tps": ratio(r["shardgate"].get("tps"), r["direct"].get("tps")),
            "shardgate serial shards/direct tps": ratio(r["shardgate_serial"].get("tps"),
                                                        r["direct"].get("tps"))}
    judge(ctx, "cross-shard top-N", out)
    section["topn"] = {"queries": [sql for _, sql in queries], "rows": 4 * per, "cells": out,
                       "targets": list(targets)}
    section["about"] = (
        f"top-N: " + ", ".join(f"`{sql}`" for _, sql in queries) + f" (index on score, none "
        f"on payload; for the deep page the merge reads limit + offset rows, each shard "
        f"sending about its share in batches) "
        f"over 4 shards x {per} rows (range-sharded on id) vs one PostgreSQL "
        f"with {4 * per} rows (default parallel query settings), pgbench -M simple, "
        f"{p['seconds']} s per cell; *shardgate serial shards* is a second shardgate on the "
        f"same shards logging in as a role whose sessions start no parallel workers "
        f"(`ALTER ROLE {SERIAL_ROLE} SET max_parallel_workers_per_gather = 0`: four shards "
        "sharing two cores already run in parallel; one parallel query per shard puts 12 "
        "processes on them), the single server keeping its defaults. Scans: "
        + ", ".join(f"`{sc['query']}`" for sc in section["scans"])
        + f" of {4 * scan_per} rows through psql -At to a pipe, {p['scan_rounds']} round(s), "
        "median; shardgate's peak RSS is its VmHWM after the scan, reset (clear_refs) before "
        "each run; the ORDER BY scan's output is checked byte for byte against the single "
        "server's. Tables are created through shardgate and filled on each shard directly "
        "with the ids it owns.")
    ctx.stop(sg_serial)
    ctx.stop(sg)
    return section
