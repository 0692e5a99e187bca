"""Write the results: JSON (everything), Markdown tables, an SVG chart of the
ratios (hand-written, no plotting library) and BENCHMARKS.md."""

import html
import json
import os

TARGET_NAMES = {
    "direct": "direct",
    "pgbouncer": "pgbouncer",
    "pgbouncer_session": "pgbouncer session",
    "shardgate": "shardgate",
    "shardgate_serial": "shardgate serial shards",
    "shardgate_unix": "shardgate (unix sockets, lanes)",
    "single": "single server",
}


def fmt_num(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def fmt_ratio(v):
    return "–" if v is None else f"{v:.2f}×"


def cell_tps(res):
    if res is None:
        return "–"
    if res["status"] != "ok":
        return res["status"]
    return fmt_num(res.get("tps"))


def cell_latency(res):
    if res is None:
        return "–"
    if res["status"] != "ok":
        return res["status"]
    return f"{fmt_num(res.get('latency_avg_ms'), 3)} / {fmt_num(res.get('latency_p99_ms'), 3)}"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "| " + " | ".join("---:" if i >= 1 else "---" for i in range(len(header))) + " |"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


LABEL_HEADERS = {"protocol": "-M", "clients": "clients", "script": "script", "query": "query"}


def pgbench_tables(cells, targets, ratio_keys, label_tps="tps"):
    label_keys = list(cells[0]["label"])
    head = [LABEL_HEADERS.get(k, k) for k in label_keys]
    tps_rows, lat_rows = [], []
    for c in cells:
        labels = [c["label"][k] for k in label_keys]
        tps_rows.append(labels + [cell_tps(c["results"].get(t)) for t in targets]
                        + [fmt_ratio(c["ratios"].get(k)) for k in ratio_keys])
        lat_rows.append(labels + [cell_latency(c["results"].get(t)) for t in targets])
    t1 = table(head + [f"{TARGET_NAMES.get(t, t)} {label_tps}" for t in targets]
               + [k.replace(" tps", "") + " (tps)" for k in ratio_keys], tps_rows)
    t2 = table(head + [f"{TARGET_NAMES.get(t, t)} avg / p99 ms" for t in targets], lat_rows)
    return t1, t2


def failures_md(results):
    out = []
    for e in results["errors"]:
        out.append("- **error**: " + e.replace("\n", "\n  "))
    for n in results["notes"]:
        out.append("- note: " + n.replace("\n", "\n  "))
    return out


def markdown(results):
    m = results["machine"]
    lines = [
        f"Mode **{results['mode']}**: {results['profile']['rounds']} round(s) × "
        f"{results['profile']['seconds']} s per pgbench cell, targets interleaved within "
        "each round; figures are medians over rounds. tps: higher is better; latency "
        "in ms (average from pgbench, p99 from its per-transaction log).",
        "",
        f"- Machine: {m['cpu_model']}, {m['nproc']} CPUs, {m['memory_gib']} GiB RAM, "
        f"{m['kernel']}; everything (clients, proxies, servers) on this one machine "
        f"(load average at start {m.get('loadavg_start', '?')}, at end "
        f"{m.get('loadavg_end', '?')})",
        f"- Versions: {m['postgres']}, {m['pgbouncer']}, {m['shardgate']}",
        f"- Every PostgreSQL server (baselines and shards alike) runs with "
        f"`{results.get('postgres_options', '?')}`",
        f"- Commit: `{m['git_commit']}`{' (with uncommitted changes outside bench/)' if m['git_dirty'] else ''}"
        f", run {m['date']}, took {results.get('elapsed_seconds', '?')} s",
        f"- Command: `{results['command']}`",
        "",
    ]
    for s in results["sections"]:
        lines += [f"### {s['title']}", "", s["about"], ""]
        if s["id"] == "proxy":
            t1, t2 = pgbench_tables(s["cells"], s["targets"],
                                    [k for k in ("shardgate/direct tps", "shardgate/pgbouncer tps",
                                                 "pgbouncer session/direct tps")
                                     if k in s["cells"][0]["ratios"]])
        elif s["id"] == "sharded":
            t1, t2 = pgbench_tables(s["cells"], s["targets"],
                                    [k for k in ("sharded/single tps", "sharded unix/single tps")
                                     if k in s["cells"][0]["ratios"]])
        else:
            t1 = t2 = None
        if t1:
            lines += [t1, "", "Latency:", "", t2, ""]
        if s["id"] == "cross":
            topn_targets = s["topn"].get("targets", s["targets"])
            t1, t2 = pgbench_tables(s["topn"]["cells"], topn_targets,
                                    [k for k in ("shardgate/direct tps",
                                                 "shardgate serial shards/direct tps")
                                     if k in s["topn"]["cells"][0]["ratios"]])
            lines += [f"Top-N ({s['topn']['rows']:,} rows)", "",
                      t1, "", "Latency:", "", t2, ""]

            def secs(r):
                return f"{r['seconds']:.2f}" if r["status"] == "ok" else r["status"]

            def kib(v):
                return "–" if not v else f"{v / 1024:,.0f} MiB"
            for sc in s.get("scans") or [s["scan"]]:
                d, g = sc["results"]["direct"], sc["results"]["shardgate"]
                peak = kib(g.get("peak_rss_kib"))
                if g.get("peak_reset") is False:
                    peak += " (process peak, not reset)"
                lines += [f"Scan: `{sc['query']}` ({sc['rows']:,} rows streamed to psql"
                          + ("; output identical to the single server's" if sc.get("ordered")
                             else "") + ")", "",
                          table(["target", "seconds", "rows/s", "proxy peak RSS",
                                 "psql client peak RSS"],
                                [["direct", secs(d), fmt_num(d.get("rows_per_second")), "–",
                                  kib(d.get("client_max_rss_kib"))],
                                 ["shardgate", secs(g), fmt_num(g.get("rows_per_second")),
                                  f"{peak} (idle before: "
                                  f"{kib(sc.get('shardgate_rss_before_kib'))})",
                                  kib(g.get("client_max_rss_kib"))]]),
                          "", "shardgate/direct time: "
                          f"{fmt_ratio(sc['ratios']['shardgate/direct seconds'])}", ""]
    fails = failures_md(results)
    if fails:
        lines += ["### Failures and notes", ""] + fails + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- SVG

COLORS = {"shardgate/direct": "#3b6fb6", "shardgate/pgbouncer": "#e08a1e",
          "sharded/single": "#3a9a5b"}


def chart_rows(results):
    """[(group, label, value or None, status)] of throughput ratios (higher is better)."""
    rows = []
    for s in results["sections"]:
        if s["id"] == "proxy":
            for key, group in (("shardgate/direct tps", "shardgate/direct"),
                               ("shardgate/pgbouncer tps", "shardgate/pgbouncer")):
                for c in s["cells"]:
                    lab = f"pgbench -S -M {c['label']['protocol']} c={c['label']['clients']}"
                    st = c["results"]["shardgate"]["status"]
                    other = c["results"][group.split("/")[1]]["status"]
                    rows.append((group + " (proxy overhead)", lab, c["ratios"].get(key),
                                 f"shardgate {st}" if st != "ok"
                                 else f"{group.split('/')[1]} {other}"))
        elif s["id"] == "sharded":
            for c in s["cells"]:
                lab = (f"point {c['label']['script']} -M {c['label']['protocol']} "
                       f"c={c['label']['clients']}")
                rows.append(("sharded/single (4 shards vs 1 server)", lab,
                             c["ratios"].get("sharded/single tps"),
                             c["results"]["shardgate"]["status"]))
                if "shardgate_unix" in c["results"]:
                    rows.append(("sharded/single (4 shards vs 1 server)", lab + " unix",
                                 c["ratios"].get("sharded unix/single tps"),
                                 c["results"]["shardgate_unix"]["status"]))
        elif s["id"] == "cross":
            for c in s["topn"]["cells"]:
                q = c["label"].get("query", "top-N")
                rows.append(("shardgate/direct (cross-shard)",
                             f"{q} c={c['label']['clients']}",
                             c["ratios"].get("shardgate/direct tps"),
                             c["results"]["shardgate"]["status"]))
                if "shardgate_serial" in c["results"]:
                    rows.append(("shardgate/direct (cross-shard)",
                                 f"{q} serial shards c={c['label']['clients']}",
                                 c["ratios"].get("shardgate serial shards/direct tps"),
                                 c["results"]["shardgate_serial"]["status"]))
            for sc in s.get("scans") or [s["scan"]]:
                sec = sc["ratios"].get("shardgate/direct seconds")
                what = "ORDER BY scan" if sc.get("ordered") else "scan"
                rows.append(("shardgate/direct (cross-shard)", f"{what} {sc['rows']:,} rows",
                             round(1 / sec, 3) if sec else None,
                             sc["results"]["shardgate"]["status"]))
    return rows


def svg(results):
    rows = chart_rows(results)
    left, bar_w, row_h, top = 300, 460, 20, 58
    vals = [v for _, _, v, _ in rows if v is not None]
    vmax = max([1.25] + [v * 1.1 for v in vals])
    step = 0.25 if vmax <= 2.5 else 0.5 if vmax <= 5 else 1.0
    x = lambda v: left + bar_w * v / vmax  # noqa: E731
    groups = []
    for g, lab, v, st in rows:
        if not groups or groups[-1][0] != g:
            groups.append((g, []))
        groups[-1][1].append((lab, v, st))
    height = top + sum(row_h * (len(items) + 1) + 6 for _, items in groups) + 30
    width = left + bar_w + 90
    e = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="20" font-size="15" font-weight="bold">shardgate throughput '
           f'relative to its baseline ({e(results["mode"])} run)</text>',
           '<text x="10" y="38" fill="#555">1.0 = same as the baseline; higher is better '
           '(scan: rows/s). Bars missing: the cell failed or was refused.</text>']
    y = top
    grid_bottom = height - 30
    t = 0.0
    while t <= vmax + 1e-9:
        out.append(f'<line x1="{x(t):.1f}" y1="{top - 6}" x2="{x(t):.1f}" y2="{grid_bottom}" '
                   f'stroke="#e4e4e4"/>')
        out.append(f'<text x="{x(t):.1f}" y="{grid_bottom + 14}" text-anchor="middle" '
                   f'fill="#555">{t:g}×</text>')
        t += step
    for g, items in groups:
        color = next((c for k, c in COLORS.items() if g.startswith(k)), "#777")
        out.append(f'<text x="10" y="{y + 14}" font-weight="bold">{e(g)}</text>')
        y += row_h
        for lab, v, st in items:
            out.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{e(lab)}</text>')
            if v is None:
                out.append(f'<text x="{left + 4}" y="{y + 14}" fill="#b00">{e(st)}</text>')
            else:
                out.append(f'<rect x="{left}" y="{y + 3}" width="{x(v) - left:.1f}" '
                           f'height="{row_h - 6}" fill="{color}"/>')
                out.append(f'<text x="{x(v) + 4:.1f}" y="{y + 14}">{v:.2f}×</text>')
            y += row_h
        y += 6
    out.append(f'<line x1="{x(1):.1f}" y1="{top - 6}" x2="{x(1):.1f}" y2="{grid_bottom}" '
               'stroke="#222" stroke-dasharray="4 3"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- files

def write_all(results, results_dir, stem, benchmarks_md=None):
    os.makedirs(results_dir, exist_ok=True)
    md = markdown(results)
    paths = {k: os.path.join(results_dir, f"{stem}.{k}") for k in ("json", "md")}
    paths["svg"] = os.path.join(results_dir, "ratios.svg" if stem == "latest" else f"{stem}.svg")
    with open(paths["json"], "w") as f:
        json.dump(results, f, indent=2, sort_keys=False)
        f.write("\n")
    with open(paths["md"], "w") as f:
        f.write(f"## shardgate benchmark results\n\n{md}\n")
    with open(paths["svg"], "w") as f:
        f.write(svg(results))
    if benchmarks_md:
        with open(benchmarks_md, "w") as f:
            f.write(BENCHMARKS_HEADER.format(command=results["command"]))
            f.write(md)
            f.write("\n")
    return paths, md


BENCHMARKS_HEADER = """# Benchmarks

Produced by `bench/run` (see [bench/README.md](bench/README.md)); this file is
rewritten by every full or quick run. To reproduce on a fresh clone (as root or
not; it installs PostgreSQL 15, pgbouncer and python3 from Debian packages if
they are missing and builds shardgate in release mode):

```sh
{command}
```

`bench/run` alone is the full run (3 rounds × 10 s per cell, about fifty
minutes); `bench/run --quick` takes under two minutes. Raw figures, including
every round, are written to `bench/results/latest.json`, a chart of the
ratios to `bench/results/ratios.svg`.

## Latest results

"""
