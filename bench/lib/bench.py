#!/usr/bin/env python3
"""The benchmark driver, run by bench/run (which installs, builds and cleans up).

Starts one PostgreSQL server for the baselines ("single") and four shard
servers, runs the workloads in bench/lib/workloads.py and writes the reports.
Exit status: 0 when every non-tolerated cell ran (slow is fine: timings are
never asserted), 1 when the harness broke or shardgate failed a query it did
not refuse with SQLSTATE 0A000.
"""

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import time
import traceback

import report
import workloads
from cluster import Env, HarnessError, Postgres

# Per-mode settings. rounds x seconds is per pgbench cell and target.
PROFILES = {
    "smoke": dict(rounds=1, seconds=1, scan_rounds=1,
                  proxy_scale=1, proxy_protocols=["extended"], proxy_clients=[8],
                  tpcb_protocols=["simple"], tpcb_clients=[8],
                  accounts_rows=10_000, point_scripts=["select", "update"],
                  point_protocols=["prepared"], point_clients=[8],
                  topn_rows_per_shard=5_000, topn_clients=[8], scan_rows=40_000),
    "quick": dict(rounds=1, seconds=2, scan_rounds=1,
                  proxy_scale=10, proxy_protocols=["simple", "extended", "prepared"],
                  proxy_clients=[8, 64],
                  tpcb_protocols=["simple", "extended"], tpcb_clients=[8, 64],
                  accounts_rows=100_000, point_scripts=["select", "update"],
                  point_protocols=["simple", "prepared"], point_clients=[8, 64],
                  topn_rows_per_shard=25_000, topn_clients=[8], scan_rows=400_000),
    "full": dict(rounds=3, seconds=10, scan_rounds=3,
                 proxy_scale=10, proxy_protocols=["simple", "extended", "prepared"],
                 proxy_clients=[1, 8, 64],
                 tpcb_protocols=["simple", "extended"], tpcb_clients=[8, 64],
                 accounts_rows=1_000_000, point_scripts=["select", "update"],
                 point_protocols=["simple", "prepared"], point_clients=[8, 64],
                 topn_rows_per_shard=250_000, topn_clients=[1, 8], scan_rows=4_000_000),
}
POOL_SIZE = 20  # pgbouncer default_pool_size and shardgate pool_size (per shard)


def sh(argv, cwd=None):
    try:
        r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=30)
        return r.stdout.strip() if r.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_info(args, env):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    pgb = sh([args.pgbouncer, "--version"]).splitlines()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": sh(["git", "rev-parse", "HEAD"], cwd=args.root) or "?",
        # Uncommitted changes to anything but the benchmark itself.
        "git_dirty": bool(sh(["git", "status", "--porcelain", "--untracked-files=no", "--",
                              ".", ":!bench", ":!BENCHMARKS.md"], cwd=args.root)),
        "postgres": "PostgreSQL " + (re.findall(r"\d+\.\d+", sh([env.bin("postgres"), "--version"]))
                                     or ["?"])[0],
        "pgbench": sh([env.bin("pgbench"), "--version"]),
        "pgbouncer": pgb[0] if pgb else "pgbouncer ?",
        "shardgate": sh([args.shardgate, "--version"]) or "shardgate ?",
        "python": platform.python_version(),
        "run_as_root": env.as_root,
        "loadavg_start": round(os.getloadavg()[0], 2),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=list(PROFILES), default="full")
    ap.add_argument("--root", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--pg-bin", required=True)
    ap.add_argument("--pgbouncer", required=True)
    ap.add_argument("--shardgate", required=True)
    ap.add_argument("--command", default="bench/run")
    args = ap.parse_args()

    # bench/run sends SIGTERM on Ctrl-C / kill: unwind, stop everything, report.
    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)

    t0 = time.time()
    env = Env(args.work, args.pg_bin, args.pgbouncer, args.shardgate)
    profile = PROFILES[args.mode]
    results = {"mode": args.mode, "command": args.command, "profile": profile,
               "pool_size": POOL_SIZE, "machine": machine_info(args, env),
               "postgres_options": Postgres.OPTIONS,
               "sections": [], "errors": [], "notes": []}
    servers = []
    ctx = None
    aborted = False
    try:
        print("[bench] starting 5 PostgreSQL servers (1 baseline + 4 shards)", flush=True)
        single = Postgres(env, "single")
        shards = [Postgres(env, f"shard{i}") for i in range(4)]
        servers = [single] + shards
        workloads.parallel([s.start for s in servers], workers=len(servers))
        workloads.parallel([lambda s=s: s.createdb("app") for s in shards], workers=4)
        ctx = workloads.Ctx(env, profile, single, shards, POOL_SIZE)
        # BENCH_SECTIONS=proxy,sharded,cross runs some sections only (for
        # experiments; such a run does not rewrite BENCHMARKS.md).
        only = [x for x in os.environ.get("BENCH_SECTIONS", "").split(",") if x]
        for name, wl in (("proxy", workloads.proxy_overhead), ("sharded", workloads.sharded_points),
                         ("cross", workloads.cross_shard)):
            if not only or name in only:
                results["sections"].append(wl(ctx))
    except HarnessError as e:
        aborted = True
        results["errors"].append(f"harness aborted: {e}")
    except BaseException as e:  # KeyboardInterrupt, bugs: still clean up and report
        aborted = True
        results["errors"].append("harness aborted: " + "".join(
            traceback.format_exception_only(type(e), e)).strip())
        if not isinstance(e, KeyboardInterrupt):
            traceback.print_exc()
    finally:
        for p in reversed(ctx.started if ctx else []):
            p.stop()
        for s in servers:
            s.stop()
    if ctx:
        results["errors"] = ctx.errors + results["errors"]
        results["notes"] = ctx.notes
    results["aborted"] = aborted
    results["elapsed_seconds"] = round(time.time() - t0)
    results["machine"]["loadavg_end"] = round(os.getloadavg()[0], 2)

    results_dir = os.path.join(args.root, "bench", "results")
    stem = "smoke" if args.mode == "smoke" else "latest"
    bm = None
    if args.mode != "smoke" and not aborted and not os.environ.get("BENCH_SECTIONS"):
        bm = os.path.join(args.root, "BENCHMARKS.md")
    if results["sections"] or aborted:
        try:
            paths, md = report.write_all(results, results_dir, stem, bm)
            print("\n" + md)
            print("[bench] wrote " + ", ".join(paths.values()) + (f", {bm}" if bm else ""))
        except Exception:  # a broken report must not hide the real error
            traceback.print_exc()
            aborted = True
    if results["errors"]:
        print(f"\n[bench] {len(results['errors'])} error(s):", file=sys.stderr)
        for e in results["errors"]:
            print("  - " + e.replace("\n", "\n    "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
