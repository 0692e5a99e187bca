"""Run one pgbench cell and read its results.

tps and the average latency come from pgbench's summary; the p99 latency
comes from the per-transaction log (`-l --log-prefix`), whose third field is
the transaction's latency in microseconds (PostgreSQL 15 format:
`client_id transaction_no time script_no time_epoch time_us [...]`; failed
transactions say `failed` there instead of a number).
"""

import glob
import os
import re
import shlex

from cluster import LOOPBACK, psql_env, run, tail


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


def read_latencies_us(prefix):
    lat = []
    for path in glob.glob(prefix + ".*"):
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    lat.append(int(fields[2]))
    lat.sort()
    return lat


def _num(pattern, text, cast=float):
    m = re.search(pattern, text, re.M)
    return cast(m.group(1)) if m else None


def run_cell(env, endpoint, db, *, clients, seconds, protocol, script=None, builtin=None,
             defines=(), logdir, tag):
    """Runs pgbench once against `endpoint`; returns a result dict.

    result["status"] is "ok" or "failed" (pgbench exited non-zero, a client
    aborted, a transaction failed or nothing was processed); on failure
    result["error"] holds the first error lines pgbench printed.
    """
    os.makedirs(logdir, exist_ok=True)
    prefix = os.path.join(logdir, tag)
    threads = min(2, clients)
    argv = [env.bin("pgbench"), "-n", "-h", LOOPBACK, "-p", str(endpoint.port),
            "-U", endpoint.user, "-c", str(clients), "-j", str(threads),
            "-T", str(seconds), "-M", protocol, "-l", f"--log-prefix={prefix}"]
    for d in defines:
        argv += ["-D", d]
    if builtin:
        argv.append(builtin)
    if script:
        argv += ["-f", script]
    argv.append(db)
    r = run(argv, timeout=seconds * 4 + 120, env=psql_env())
    text = r.stdout + "\n" + r.stderr
    res = {
        "command": shlex.join(["pgbench"] + argv[1:]),
        "status": "ok",
        "tps": _num(r"^tps = ([0-9.]+) \(without initial connection time\)", text),
        "latency_avg_ms": _num(r"^latency average = ([0-9.]+) ms", text),
        "processed": _num(r"^number of transactions actually processed: (\d+)", text, int),
        "failed_transactions": _num(r"^number of failed transactions: (\d+)", text, int),
        "exit_code": r.returncode,
    }
    lat = read_latencies_us(prefix)
    res["latency_p99_ms"] = round(percentile(lat, 99) / 1000, 3) if lat else None
    res["logged_transactions"] = len(lat)
    for path in glob.glob(prefix + ".*"):
        os.unlink(path)  # they can be large; the numbers are kept
    errors = []  # distinct error lines, in order
    for line in text.splitlines():
        if ("error" in line.lower() or "abort" in line.lower() or "FATAL" in line) \
                and line not in errors:
            errors.append(line)
    if (r.returncode != 0 or not res["processed"] or res["tps"] is None
            or (res["failed_transactions"] or 0) > 0):
        res["status"] = "failed"
        res["error"] = "\n".join(errors[:6]) or tail(text, 8)
    return res
