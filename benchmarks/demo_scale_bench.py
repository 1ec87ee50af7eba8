"""`quanzi demo-data` at scale: generation and load time, nodes/s, edges/s and peak memory.

Each size runs in a child process of its own (so its peak RSS is its own): it generates the
community (graph/demo_data.py, vectorised numpy) and, for sizes up to ``--load-up-to``,
loads it into a fresh embedded server with the demo loader (``UNWIND $rows`` batches of
5,000 rows, one transaction each). The baseline is the smallest size of the run: the
"per-row cost vs smallest" column is 1.0 when the cost grows linearly with the size.

    .venv/bin/python benchmarks/demo_scale_bench.py [--sizes 100000,1000000] [--load-up-to 100000]

Prints a markdown table and writes it to benchmarks/results/demo_scale.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _load(data: Any) -> dict[str, float]:
    from graph.client import GraphClient
    from graph.demo_data import EDGE_STAGES, NODE_STAGES, load_generated
    from graph.embedded import EmbeddedStack
    from graph.migrations import migrate

    spans: dict[str, list[float]] = {}

    def progress(stage: str, done: int, total: int) -> None:
        spans.setdefault(stage, [time.perf_counter(), 0.0])[1] = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="quanzi-scale-") as tmp:
        stack = EmbeddedStack(Path(tmp), "bench-scale-password", persistent=False, start_redis=False)
        stack.start()
        assert stack.graph is not None
        graph = GraphClient.connect(stack.graph.uri, user="root", password="bench-scale-password", database="quanzi")
        try:
            await migrate(graph)
            started = time.perf_counter()
            await load_generated(graph, data, progress=progress)
            seconds = time.perf_counter() - started
            server_rss = 0.0
            if stack.graph.proc is not None:
                status = Path(f"/proc/{stack.graph.proc.pid}/status").read_text()
                server_rss = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM:")) / 1024
        finally:
            await graph.close()
            stack.stop()
    nodes = sum(data.stage(s).total for s in NODE_STAGES)
    edges = sum(data.stage(s).total for s in EDGE_STAGES)
    node_s = sum(spans[s][1] - spans[s][0] for s in NODE_STAGES if s in spans)
    edge_s = sum(spans[s][1] - spans[s][0] for s in EDGE_STAGES if s in spans)
    return {"load_s": seconds, "nodes_per_s": nodes / node_s, "edges_per_s": edges / edge_s, "server_peak_mb": server_rss}


def child(members: int, load: bool) -> dict[str, Any]:
    from graph.demo_data import EDGE_STAGES, NODE_STAGES, generate

    started = time.perf_counter()
    data = generate(tenant="scale", members=members, seed=7)
    out: dict[str, Any] = {
        "members": members, "generate_s": time.perf_counter() - started,
        "nodes": sum(data.stage(s).total for s in NODE_STAGES),
        "edges": sum(data.stage(s).total for s in EDGE_STAGES),
        "social_edges": sum(data.stage(s).total for s in ("follows", "referrals", "memberships")),
        "generate_peak_mb": _peak_mb(),
    }
    # building the parameter rows is part of loading: time it for every size on the follows
    started = time.perf_counter()
    built = 0
    for batch in data.stage("follows").batches(5000):
        built += len(batch)
        if built >= 200_000:
            break
    out["rows_built_per_s"] = built / (time.perf_counter() - started)
    if load:
        out.update(asyncio.run(_load(data)))
    out["peak_mb"] = _peak_mb()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--load-up-to", type=int, default=100_000, help="load sizes up to this many members (0: none)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.load)))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    results = []
    for members in sizes:
        cmd = [sys.executable, __file__, "--child", str(members)] + (["--load"] if members <= args.load_up_to else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{members:,} members done", file=sys.stderr)
    base = results[0]
    lines = [
        f"# Demo data at scale ({datetime.now(UTC):%Y-%m-%d})",
        "",
        (f"`generate` (vectorised numpy) and the demo loader (`UNWIND $rows`, 5,000 rows per transaction) into a fresh "
         f"embedded ArcadeDB; {os.cpu_count()} cores shared with other work, Python {platform.python_version()}. "
         "Peak RSS is the generating process's (the loader builds rows one batch at a time); the server's is its JVM "
         "process high-water mark. Baseline: the smallest size, per-member generation cost (1.0 = linear)."),
        "",
        ("| members | nodes | relationships (follows+referrals+memberships) | generate s | vs smallest, per member | "
         "peak RSS MB | rows built/s | load s | nodes/s | edges/s | server peak MB |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = (r["generate_s"] / r["members"]) / (base["generate_s"] / base["members"])
        load = (f"{r['load_s']:,.0f} | {r['nodes_per_s']:,.0f} | {r['edges_per_s']:,.0f} | {r['server_peak_mb']:,.0f}"
                if "load_s" in r else "not loaded | | | ")
        lines.append(
            f"| {r['members']:,} | {r['nodes']:,} | {r['edges']:,} ({r['social_edges']:,}) | {r['generate_s']:.1f} | "
            f"{ratio:.2f} | {r['peak_mb']:,.0f} | {r['rows_built_per_s']:,.0f} | {load} |")
    table = "\n".join(lines) + "\n"
    print(table)
    (ROOT / "benchmarks" / "results" / "demo_scale.md").write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
