"""Id lookups with a tenant filter on the embedded graph server: in the WHERE vs after WITH *.

ArcadeDB's Cypher planner, given ``MATCH (m:Member {id: $id}) WHERE m.tenantId = $tenant``,
scans the tenant's members instead of seeking the unique id index; the same filter after
``WITH *`` keeps the seek. Every id lookup in graph/ is written the second way, and
tests/test_cypher_lint.py refuses the first. This script measures both shapes, same run,
same data (the demo community, default 10,000 members; kept in .data/bench-peer-<members>,
shared with the peer benchmark), sequentially (one client).

    .venv/bin/python benchmarks/id_lookup_bench.py [--members 10000] [--repeats 40]

Prints a markdown table and writes it to benchmarks/results/id_lookup_bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.runtime import endpoints
from api.settings import Settings
from graph.client import GraphClient
from graph.demo_data import has_members, load_demo
from graph.migrations import migrate

TENANT = "bench"
# (read, slow shape, fast shape); not registered statements: the slow ones are what the lint refuses
SHAPES = [
    ("member by id",
     "MATCH (m:Member {id: $id}) WHERE m.tenantId = $tenant RETURN m.joinedAt AS x",
     "MATCH (m:Member {id: $id}) WITH * WHERE m.tenantId = $tenant RETURN m.joinedAt AS x"),
    ("20 members by id (a DataLoader batch)",
     "UNWIND $ids AS id MATCH (m:Member {id: id}) WHERE m.tenantId = $tenant RETURN m.joinedAt AS x",
     "UNWIND $ids AS id MATCH (m:Member {id: id}) WITH * WHERE m.tenantId = $tenant RETURN m.joinedAt AS x"),
    ("followers of a member (count)",
     "MATCH (a:Member)-[:FOLLOWS]->(m:Member {id: $id}) WHERE m.tenantId = $tenant RETURN count(a) AS x",
     "MATCH (a:Member)-[:FOLLOWS]->(m:Member {id: $id}) WITH * WHERE m.tenantId = $tenant RETURN count(a) AS x"),
    ("first activity check (touch_activity)",
     "MATCH (m:Member {id: $id}) WHERE m.tenantId = $tenant AND m.firstActiveAt IS NULL RETURN m.joinedAt AS x",
     "MATCH (m:Member {id: $id}) WITH * WHERE m.tenantId = $tenant AND m.firstActiveAt IS NULL RETURN m.joinedAt AS x"),
]


async def measure(graph: GraphClient, query: Any, ids: list[str], repeats: int) -> list[float]:
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        await graph.read(query, id=ids[i % len(ids)], ids=ids[:20], tenant=TENANT)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def run(ep: Any, members: int, repeats: int) -> list[tuple[str, float, float]]:
    graph = GraphClient.connect(ep.graph_uri, user=ep.graph_user, password=ep.graph_password, database=ep.graph_database)
    try:
        await migrate(graph)
        if not await has_members(graph, tenant=TENANT):
            await load_demo(graph, tenant=TENANT, members=members, seed=7)
        rows = await graph.read("MATCH (m:Member {tenantId: $tenant}) RETURN m.id AS id LIMIT 100", tenant=TENANT)
        ids = [r["id"] for r in rows]
        results = []
        for name, slow, fast in SHAPES:
            await measure(graph, slow, ids, 3)  # warm-up
            await measure(graph, fast, ids, 3)
            # alternate so both shapes see the same background load
            slow_ms: list[float] = []
            fast_ms: list[float] = []
            for _ in range(2):
                slow_ms += await measure(graph, slow, ids, repeats // 2)
                fast_ms += await measure(graph, fast, ids, repeats // 2)
            results.append((name, statistics.median(slow_ms), statistics.median(fast_ms)))
        return results
    finally:
        await graph.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    with endpoints(Settings(), data_dir=ROOT / ".data" / f"bench-peer-{args.members}") as ep:
        results = asyncio.run(run(ep, args.members, args.repeats))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Id lookups with a tenant filter ({args.members:,} demo members, {stamp}, {platform.machine()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})",
        "",
        f"Median ms over {args.repeats} sequential reads per shape on the embedded ArcadeDB server, alternating.",
        "",
        "| read | `{id: $id}) WHERE tenant` ms | `{id: $id}) WITH * WHERE tenant` ms | speed-up |",
        "|---|---:|---:|---:|",
    ]
    for name, slow, fast in results:
        lines.append(f"| {name} | {slow:.1f} | {fast:.1f} | {slow / fast:.0f}x |")
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / "id_lookup_bench.md"
    out.write_text(text, "utf-8")
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
