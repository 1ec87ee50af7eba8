"""`quanzi import` throughput into the embedded server vs a naive one-row-per-transaction loader.

The file set is the demo community (graph/demo_data.py) written straight to CSV files
(default 100,000 members), imported with :func:`graph.imports.import_files` exactly as
``quanzi import`` runs it (validation, graph checks, checkpoint per batch). The baseline,
measured in the same run on the same server, writes a sample of the same kinds of rows
(a second generated community, so ids do not collide) with the same statements, but one
row per transaction: what a script looping over a CSV with the driver would do.

    .venv/bin/python benchmarks/import_bench.py [--members 100000] [--sample 2000] [--batch-size 5000]

Prints a markdown table and writes it to benchmarks/results/import.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domain.imports import SCHEMAS, FileKind
from graph.client import GraphClient, Tx
from graph.demo_data import CREATE_FOLLOWS, CREATE_MEMBERS, DemoData, generate
from graph.embedded import EmbeddedStack
from graph.imports import _Writer, discover, import_files
from graph.migrations import migrate

CHUNK = 50_000
NODE_FILES = ("members", "communities", "products")
EDGE_FILES = ("memberships", "follows", "interactions", "referrals")


def _chunks(data: DemoData, name: str) -> Iterator[list[dict[str, Any]]]:
    yield from data.stage(name).batches(CHUNK)


def write_demo_files(data: DemoData, folder: Path) -> dict[str, int]:
    """Write a generated community as an import file set (CSV); return rows per file."""
    counts: dict[str, int] = {}

    def out(kind: FileKind) -> _Writer:
        return _Writer(folder / f"{kind.value}.csv", "csv", SCHEMAS[kind])

    def simple(kind: FileKind, stage: str, rename: dict[str, str]) -> None:
        w = out(kind)
        n = 0
        for batch in _chunks(data, stage):
            for row in batch:
                w.write({rename.get(k, k): v for k, v in row.items()})
            n += len(batch)
        w.close()
        counts[kind.value] = n

    simple(FileKind.MEMBERS, "members", {})
    simple(FileKind.COMMUNITIES, "communities", {})
    simple(FileKind.MEMBERSHIPS, "memberships", {"a": "member", "b": "community"})
    simple(FileKind.FOLLOWS, "follows", {"a": "follower", "b": "followee"})
    w = out(FileKind.CONTENT)
    for nodes, posted, placed_in in zip(_chunks(data, "contents"), _chunks(data, "posted"), _chunks(data, "content_in"),
                                        strict=True):
        for node, p, c in zip(nodes, posted, placed_in, strict=True):
            w.write({**node, "author": p["a"], "community": c["b"]})
    w.close()
    counts["content"] = data.stage("contents").total
    w = out(FileKind.INTERACTIONS)
    n = 0
    for stage, kind in (("likes", "like"), ("favorites", "favorite"), ("shares", "share")):
        for batch in _chunks(data, stage):
            for row in batch:
                w.write({**row, "kind": kind, "member": row["a"], "content": row["b"]})
            n += len(batch)
    for comments, commented in zip(_chunks(data, "comments"), _chunks(data, "commented"), strict=True):
        for c, e in zip(comments, commented, strict=True):
            w.write({"kind": "comment", "member": e["a"], "content": e["b"], "at": e["at"], "comment": c["id"],
                     "body": c["body"]})
        n += len(comments)
    w.close()
    counts["interactions"] = n
    simple(FileKind.PRODUCTS, "products", {})
    lines: dict[str, list[dict[str, Any]]] = {}
    for batch in _chunks(data, "purchase_of"):
        for row in batch:
            lines.setdefault(row["a"], []).append({"productId": row["b"], "qty": row["qty"], "unitPrice": row["unitPrice"]})
    w = out(FileKind.PURCHASES)
    for nodes, placed in zip(_chunks(data, "purchases"), _chunks(data, "placed"), strict=True):
        for node, p in zip(nodes, placed, strict=True):
            w.write({**node, "member": p["a"], "lines": lines[node["id"]]})
    w.close()
    counts["purchases"] = data.stage("purchases").total
    simple(FileKind.REFERRALS, "referrals", {"a": "inviter", "b": "invitee"})
    return counts


async def naive(graph: GraphClient, data: DemoData, sample: int) -> dict[str, float]:
    """Rows per second writing *sample* members, then *sample* follows, one row per transaction."""
    rates: dict[str, float] = {}
    member_ids = {m["id"] for m in data.stage("members").rows()}
    follows = [f for f in data.stage("follows").rows() if f["a"] in member_ids and f["b"] in member_ids][:sample]
    for name, query, rows in (("members", CREATE_MEMBERS, data.stage("members").rows()), ("follows", CREATE_FOLLOWS,
                                                                                         follows)):
        if name == "members":
            # load all members of the small community first (follows need both ends); time the sample
            head, rows = rows[:sample], rows[sample:]
            await _bulk(graph, CREATE_MEMBERS, rows, data.tenant)
            rows = head
        started = time.perf_counter()
        for row in rows:
            async def work(tx: Tx, row: dict[str, Any] = row, query: Any = query) -> None:
                await graph.run(tx, query, rows=[row], tenant=data.tenant)

            await graph.write(work)
        rates[name] = len(rows) / (time.perf_counter() - started)
    return rates


async def _bulk(graph: GraphClient, query: Any, rows: list[dict[str, Any]], tenant: str) -> None:
    for lo in range(0, len(rows), 5000):
        async def work(tx: Tx, chunk: list[dict[str, Any]] = rows[lo:lo + 5000]) -> None:
            await graph.run(tx, query, rows=chunk, tenant=tenant)

        await graph.write(work)


async def run(args: argparse.Namespace) -> str:
    work_dir = Path(tempfile.mkdtemp(prefix="quanzi-import-bench-"))
    stack = EmbeddedStack(work_dir / "stack", "bench-import-password", persistent=False, start_redis=False)
    stack.start()
    assert stack.graph is not None
    graph = GraphClient.connect(stack.graph.uri, user="root", password="bench-import-password", database="quanzi")
    try:
        await migrate(graph)
        started = time.perf_counter()
        data = generate(tenant="bench_import", members=args.members, seed=11)
        folder = work_dir / "files"
        folder.mkdir()
        counts = write_demo_files(data, folder)
        prepared = time.perf_counter() - started
        size = sum(p.stat().st_size for p in folder.iterdir())

        spans: dict[str, list[float]] = {}

        def progress(kind: str, done: int, total: int) -> None:
            spans.setdefault(kind, [time.perf_counter(), 0.0])[1] = time.perf_counter()

        started = time.perf_counter()
        summary = await import_files(graph, discover(folder), tenant="bench_import", report=work_dir / "rejected.csv",
                                     batch_size=args.batch_size, progress=progress)
        total_time = time.perf_counter() - started
        assert summary.rejected == 0, (work_dir / "rejected.csv").read_text()[:2000]

        small = generate(tenant="bench_naive", members=max(args.sample * 2, 2000), seed=12)
        baseline = await naive(graph, small, args.sample)
    finally:
        await graph.close()
        stack.stop()

    def rate(kinds: tuple[str, ...]) -> tuple[int, float, float]:
        rows = sum(counts[k] for k in kinds)
        secs = sum(spans[k][1] - spans[k][0] for k in kinds)
        return rows, secs, rows / secs

    lines = [
        f"# Bulk import: `quanzi import` vs one row per transaction ({datetime.now(UTC):%Y-%m-%d})",
        "",
        (f"Embedded ArcadeDB over Bolt, {os.cpu_count()} cores, Python {platform.python_version()}; the demo community "
         f"of {args.members:,} members written to CSV ({size / 1e6:,.0f} MB, generated and written in {prepared:.0f} s), "
         f"imported in batches of {args.batch_size:,} rows, each with its checkpoint in one transaction. The machine "
         "is shared with other work, so absolute figures are noisy; the ratios are measured in the same run."),
        "",
        "| file | rows | seconds | rows/s |",
        "|---|---:|---:|---:|",
    ]
    for kind in counts:
        secs = spans[kind][1] - spans[kind][0]
        lines.append(f"| {kind} | {counts[kind]:,} | {secs:.1f} | {counts[kind] / secs:,.0f} |")
    n_rows, n_secs, n_rate = rate(NODE_FILES)
    m_rate = counts["members"] / (spans["members"][1] - spans["members"][0])
    f_rate = counts["follows"] / (spans["follows"][1] - spans["follows"][0])
    e_rows, e_secs, e_rate = rate(EDGE_FILES)
    lines += [
        f"| **node files** ({', '.join(NODE_FILES)}) | {n_rows:,} | {n_secs:.1f} | **{n_rate:,.0f} nodes/s** |",
        f"| **relationship files** ({', '.join(EDGE_FILES)}) | {e_rows:,} | {e_secs:.1f} | **{e_rate:,.0f} edges/s** |",
        f"| all files | {sum(counts.values()):,} | {total_time:.1f} | {sum(counts.values()) / total_time:,.0f} |",
        "",
        "| loader | members/s | follows/s |",
        "|---|---:|---:|",
        (f"| naive: one row per transaction (baseline, {args.sample:,}-row sample) | {baseline['members']:,.0f} | "
         f"{baseline['follows']:,.0f} |"),
        f"| `quanzi import` | {m_rate:,.0f} | {f_rate:,.0f} |",
        f"| ratio | {m_rate / baseline['members']:.1f}× | {f_rate / baseline['follows']:.1f}× |",
        "",
        (f"Target: 20,000 edges/s; measured {e_rate:,.0f} edges/s over the relationship files "
         f"({'met' if e_rate >= 20_000 else 'not met'})."),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--sample", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=5000)
    args = p.parse_args()
    table = asyncio.run(run(args))
    print(table)
    out = ROOT / "benchmarks" / "results" / "import.md"
    out.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
