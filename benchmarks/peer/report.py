"""The results of peer benchmark runs: JSON per dataset size, one markdown file, PNG charts.

A run at N members writes ``peer_bench.N.json`` (its figures) and a chart
(``peer_bench.png`` for the default 10,000 members, ``peer_bench.N.png`` otherwise), then
rebuilds ``peer_bench.md`` from every ``peer_bench.*.json`` present, one section per size,
so a quick 10,000-member rerun keeps the last 100,000-member figures beside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.peer.bench import Result

__all__ = ["ensure_matplotlib", "render_markdown", "write_report"]

DEFAULT_MEMBERS = 10_000
SHORT = {"profile": "member profile", "feed": "community feed (20)", "members": "members filtered (50, 2 lists)",
         "nested": "member>communities>posts>authors", "post": "create post (mutation)"}


def ensure_matplotlib() -> bool:
    """Import matplotlib, installing it with pip (the project's ``bench`` extra) if missing."""
    try:
        import matplotlib
        return True
    except ImportError:
        pass
    print("matplotlib (the 'bench' extra: pip install -e '.[bench]') is missing; installing it with pip ...", flush=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib>=3.8"], check=False)
    if done.returncode != 0:
        print("could not install matplotlib: the table is written, the chart is skipped", flush=True)
        return False
    import importlib

    importlib.invalidate_caches()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib still does not import: the chart is skipped", flush=True)
        return False
    return True


def chart_name(members: int) -> str:
    return "peer_bench.png" if members == DEFAULT_MEMBERS else f"peer_bench.{members}.png"


def _node_version() -> str:
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def summarise(results: list[Result], checks: dict[str, str], meta: dict[str, Any]) -> dict[str, Any]:
    cells = []
    for r in results:
        n = len(r.cell.latencies) + r.cell.errors
        cells.append({
            "op": r.op.key, "label": r.op.label, "side": r.side, "clients": r.clients,
            "requests": len(r.cell.latencies), "errors": r.cell.errors, "first_error": r.cell.first_error[:300],
            "rps": r.rps, "p50_ms": r.pct(0.5), "p99_ms": r.pct(0.99),
            "api_cpu_ms": r.server_cpu_s / n * 1000 if n else None,
            "graph_cpu_ms": r.graph_cpu_s / n * 1000 if n and meta["graph_cpu"] else None,
            "client_cpu_ms": r.cell.client_cpu_s / n * 1000 if n else None,
            "client_core_share": r.cell.client_cpu_s / r.cell.wall_s if r.cell.wall_s else None,
        })
    m = dict(meta)
    m["targets"] = asdict(meta["targets"])
    m["node"] = _node_version()
    return {"meta": m, "checks": checks, "cells": cells}


def write_report(results: list[Result], checks: dict[str, str], profiles: dict[str, str], meta: dict[str, Any], *,
                 have_plot: bool, out_dir: Path) -> None:
    run = summarise(results, checks, meta)
    members = meta["members"]
    (out_dir / f"peer_bench.{members}.json").write_text(json.dumps(run, ensure_ascii=False, indent=1) + "\n", "utf-8")
    if have_plot:
        _plot(run, out_dir / chart_name(members))
    if profiles:
        labels = {r.op.key: r.op.label for r in results}
        top = max(r.clients for r in results)
        prof = [f"# py-spy of our server at {top} clients ({members:,} members, {meta['stamp']})", "",
                ("Sampled at 200 Hz while the harness drove one operation; stacks from `py-spy record --format raw`, "
                "summarised by benchmarks/peer/profile.py. Asyncio internals are charged to the package that "
                "called them (a socket write under the Bolt driver counts as the driver)."), ""]
        for key, text in profiles.items():
            prof += [f"## {labels.get(key, key)}", "", text, ""]
        (out_dir / "peer_bench.profile.md").write_text("\n".join(prof) + "\n", "utf-8")
    text = render_markdown(out_dir)
    (out_dir / "peer_bench.md").write_text(text, "utf-8")
    print(text)
    print(f"wrote {out_dir / 'peer_bench.md'}" + (f" and {out_dir / chart_name(members)}" if have_plot else ""))


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


def _ms(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def render_markdown(out_dir: Path) -> str:
    runs = []
    for path in sorted(out_dir.glob("peer_bench.*.json")):
        try:
            runs.append(json.loads(path.read_text("utf-8")))
        except (OSError, ValueError):
            continue
    runs.sort(key=lambda r: r["meta"]["members"])
    lines = [
        "# Quanzi vs the Neo4j GraphQL Library (`@neo4j/graphql`)",
        "",
        ("Written by `benchmarks/peer/bench.py` (`make bench-peer`, `PEER_MEMBERS=100000` for the large "
        "dataset). Same machine, same embedded Bolt server (ArcadeDB) and data, both servers up at once, "
        "one run per size. Closed-loop clients on keep-alive connections; each cell is split A-B-B-A "
        "between the two sides (the side that goes first alternates), so both see the same background "
        "load. The machine is shared with other work: **compare the ratios within a run**, not absolute "
        "figures across runs. Ratios are ours / peer: above 1 is better for ours in req/s, below 1 is "
        "better for ours in latency."),
    ]
    for run in runs:
        lines += _section(run)
    lines += [
        "",
        "## How the two sides are made equivalent",
        "",
        ("- Documents: `benchmarks/peer/operations.py` (both spellings of each operation side by side); "
        "the peer's type definitions: `benchmarks/peer/node/typeDefs.graphql` (the real labels, "
        "relationship types and property names of graph/*.py). Orders match exactly: where ours pages "
        "by `(key DESC, id DESC)` the peer sorts by the same two keys."),
        ("- Tenant scoping: ours takes the tenant from the bearer token. The peer verifies the same HS256 "
        "token (same secret, issuer and audience) and every type carries an `@authorization` *filter* "
        "`tenantId = $jwt.tenant`, so every node it matches at any depth is the caller's tenant; on "
        "create, `tenantId` is `@populatedBy` the token's claim and the id by a callback that makes "
        "ids shaped like ours. (A token of another tenant, no token or a bad signature gets empty "
        "lists from the peer; ours answers 401 for a bad token.)"),
        ("- On ArcadeDB the peer needs `cypherQueryOptions: { addVersionPrefix: false }` in every request "
        "context (ArcadeDB rejects `CYPHER 5`); totals are asked as separate aliased connection fields "
        "where a page is also asked (mixing `aggregate` with `totalCount` fails there)."),
        ("- No DateTime field is selected on either side: the library projects every DateTime through "
        "`apoc.date.convertFormat` (`DateTimeField.createApocConvertFormat`), and ArcadeDB has no APOC "
        "(`Unknown function: apoc.date.convertformat`). Both still sort and filter by dates."),
        ("- Ours runs with background jobs off and rate-limit budgets that no run can exhaust (the peer "
        "has no rate limiter; ours still checks its Redis buckets on every request, as in production)."),
        ("- Same data: each operation is sent once to both before the load, the answers are normalised "
        "(ids, counts, names, titles; for the create, title, author and community) and compared."),
        ("- CPU per request comes from /proc (user + system time of each process over the cell divided "
        "by its requests). API = our uvicorn process or the peer's node process; graph = the ArcadeDB "
        "server; load generator = the harness process, with its share of one core, to show it is not "
        "the bottleneck."),
    ]
    return "\n".join(lines) + "\n"


def _section(run: dict[str, Any]) -> list[str]:
    meta, cells, checks = run["meta"], run["cells"], run["checks"]
    by = {(c["op"], c["side"], c["clients"]): c for c in cells}
    ops = list(dict.fromkeys(c["op"] for c in cells))
    labels = {c["op"]: c["label"] for c in cells}
    clients = sorted({c["clients"] for c in cells})
    t = meta["targets"]
    lines = [
        "",
        f"## {meta['members']:,} members ({meta['stamp']})",
        "",
        (f"Ours: `quanzi serve`, {meta['workers']} uvicorn worker(s). Peer: Apollo Server 5 + `@neo4j/graphql` 7 "
        f"on Node.js {meta['node']}, one process. {meta['seconds']:g} s per side per cell. Load average (1 min) "
        f"when the measurements started / ended: {meta['load'][0]:.1f} / {meta['load'][1]:.1f} on "
        f"{meta['cores']} cores ({meta['machine']}). Our server ran from {meta.get('code', 'unknown')}."),
        "",
        ("| operation | clients | ours req/s | peer req/s | req/s ratio | ours p50 ms | peer p50 ms | p50 ratio "
        "| ours p99 ms | peer p99 ms | p99 ratio | errors (ours/peer) |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in ops:
        for n in clients:
            o, p = by.get((key, "ours", n)), by.get((key, "peer", n))
            if o is None or p is None:
                continue
            lines.append(
                f"| {labels[key]} | {n} | {o['rps']:.1f} | {p['rps']:.1f} | **{_ratio(o['rps'], p['rps'])}** "
                f"| {o['p50_ms']:.1f} | {p['p50_ms']:.1f} | {_ratio(o['p50_ms'], p['p50_ms'])} | {o['p99_ms']:.1f} "
                f"| {p['p99_ms']:.1f} | {_ratio(o['p99_ms'], p['p99_ms'])} | {o['errors']}/{p['errors']} |")
    errors = [f"{c['side']} {c['op']} at {c['clients']}: {c['first_error']}" for c in cells if c["errors"]]
    if errors:
        lines += ["", "First error of each cell with errors:", ""] + [f"- `{e}`" for e in errors]
    top = max(clients)
    lines += [
        "",
        f"CPU per request at {top} clients (ms):",
        "",
        "| operation | ours API | ours graph | peer API | peer graph | load generator (ours run / peer run) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key in ops:
        o, p = by.get((key, "ours", top)), by.get((key, "peer", top))
        if o is None or p is None:
            continue
        lines.append(
            f"| {labels[key]} | {_ms(o['api_cpu_ms'])} | {_ms(o['graph_cpu_ms'])} | {_ms(p['api_cpu_ms'])} "
            f"| {_ms(p['graph_cpu_ms'])} | {_ms(o['client_cpu_ms'], 3)} ({o['client_core_share']:.1%} of a core) / "
            f"{_ms(p['client_cpu_ms'], 3)} ({p['client_core_share']:.1%}) |")
    lines += ["", "Same data:", ""]
    for key in ops:
        lines.append(f"- {labels[key]}: {checks.get(key, 'not checked')}".replace("\n", "\n  "))
    lines += [
        "",
        (f"Targets: profile `{t['profile_member']}` (most followers of the members in a community); feed `{t['feed_community']}` (most posts); "
        f"members of `{t['filter_community']}` (most members) joined in [{t['joined_from']}, {t['joined_to']}); "
        f"nested `{t['nested_member']}` (most communities), 5 communities x 10 posts; the create posts as "
        f"{len(t['post_pairs'])} distinct (author, community) pairs, one per client (no two clients contend for "
        "a vertex), deleted after the run."),
        "",
        f"![p50/p99 latency and requests/s at {meta['members']:,} members]({chart_name(meta['members'])})",
    ]
    return lines


def _plot(run: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells, meta = run["cells"], run["meta"]
    by = {(c["op"], c["side"], c["clients"]): c for c in cells}
    ops = list(dict.fromkeys(c["op"] for c in cells))
    clients = sorted({c["clients"] for c in cells})
    metrics = [("requests/s", "rps"), ("p50 latency (ms)", "p50_ms"), ("p99 latency (ms)", "p99_ms")]
    fig, axes = plt.subplots(len(metrics), len(ops), figsize=(3.2 * len(ops), 8.5), squeeze=False)
    width = 0.38
    xs = list(range(len(clients)))
    for col, key in enumerate(ops):
        for row, (name, field) in enumerate(metrics):
            ax = axes[row][col]
            ours = [by[(key, "ours", c)][field] if (key, "ours", c) in by else 0 for c in clients]
            peer = [by[(key, "peer", c)][field] if (key, "peer", c) in by else 0 for c in clients]
            ax.bar([x - width / 2 for x in xs], ours, width, label="Quanzi (Python)", color="#c0392b")
            ax.bar([x + width / 2 for x in xs], peer, width, label="@neo4j/graphql (Node.js)", color="#2471a3")
            ax.set_xticks(xs, [str(c) for c in clients])
            if row == len(metrics) - 1:
                ax.set_xlabel("concurrent clients")
            if col == 0:
                ax.set_ylabel(name)
            for x, o, p in zip(xs, ours, peer):
                if p:
                    ax.annotate(f"{o / p:.2f}x", (x, max(o, p)), ha="center", va="bottom", fontsize=7)
            if row == 0:
                ax.set_title(SHORT.get(key, key), fontsize=9)
            top = max(ours + peer + [0])
            if top > 0:
                ax.set_ylim(0, top * 1.18)
            ax.tick_params(labelsize=8)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"Quanzi vs @neo4j/graphql, {meta['members']:,} members, same Bolt server, {meta['stamp']} "
                 "(labels: ours / peer)", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":  # rebuild peer_bench.md from the JSON files
    out = Path(__file__).resolve().parents[1] / "results"
    (out / "peer_bench.md").write_text(render_markdown(out), "utf-8")
    print(f"wrote {out / 'peer_bench.md'}")
