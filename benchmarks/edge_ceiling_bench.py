"""How fast the embedded graph server creates relationships over Bolt, whatever the importer does.

Issue 6 asks `quanzi import` for 20,000 edges/s. This measures the ceiling the import sits
under: 20,000 members, then FOLLOWS edges created by one `UNWIND $rows` statement per
transaction in several shapes, from the importer's own (tenant filter on both ends, a count
returned) down to the cheapest Cypher can express (no tenant filter, no properties), at two
batch sizes, after a warm-up pass. Run it on a quiet machine:

    .venv/bin/python benchmarks/edge_ceiling_bench.py [--members 20000] [--rows 40000]

Prints a markdown table and writes it to benchmarks/results/edge_ceiling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.runtime import endpoints
from api.settings import Settings
from graph.client import GraphClient
from graph.demo_data import CREATE_FOLLOWS
from graph.migrations import migrate

TENANT = "ten_edgeceiling"
SHAPES: list[tuple[str, str]] = [
    ("the importer's statement (graph.demo_data.CREATE_FOLLOWS)", CREATE_FOLLOWS),
    ("same, no count returned", """
        UNWIND $rows AS row
        MATCH (a:Member {id: row.a}) WITH * WHERE a.tenantId = $tenant
        MATCH (b:Member {id: row.b}) WITH * WHERE b.tenantId = $tenant
        CREATE (a)-[r:FOLLOWS {at: row.at}]->(b)"""),
    ("no tenant filter (ids are unique across tenants)", """
        UNWIND $rows AS row
        MATCH (a:Member {id: row.a}) MATCH (b:Member {id: row.b})
        CREATE (a)-[r:FOLLOWS {at: row.at}]->(b)"""),
    ("no tenant filter, no properties", """
        UNWIND $rows AS row
        MATCH (a:Member {id: row.a}) MATCH (b:Member {id: row.b})
        CREATE (a)-[:FOLLOWS]->(b)"""),
]


async def run(members: int, rows: int) -> list[tuple[str, int, float]]:
    out: list[tuple[str, int, float]] = []
    with endpoints(Settings(), data_dir=Path(tempfile.mkdtemp(prefix="edge-ceiling-"))) as ep:
        graph = GraphClient.connect(ep.graph_uri, user=ep.graph_user, password=ep.graph_password,
                                    database=ep.graph_database)
        try:
            await migrate(graph)
            at = datetime.now(UTC)
            people = [{"id": f"mem_ec{i}", "tenantId": TENANT, "displayName": f"m{i}", "joinedAt": at,
                       "inviteCode": f"EC{i}", "channel": "app", "level": 0, "points": 0} for i in range(members)]
            for k in range(0, members, 5_000):
                async def add(tx: object, chunk: list[dict[str, object]] = people[k:k + 5_000]) -> None:
                    await (await tx.run("UNWIND $rows AS r CREATE (m:Member) SET m = r", rows=chunk)).consume()  # type: ignore[attr-defined]
                await graph.write(add)
            rnd = random.Random(7)

            async def create(query: str, size: int) -> float:
                started = time.perf_counter()
                for _ in range(0, rows, size):
                    batch = [{"a": f"mem_ec{rnd.randrange(members)}", "b": f"mem_ec{rnd.randrange(members)}", "at": at}
                             for _ in range(size)]

                    async def work(tx: object, batch: list[dict[str, object]] = batch) -> None:
                        await (await tx.run(query, rows=batch, tenant=TENANT)).consume()  # type: ignore[attr-defined]
                    await graph.write(work)
                return rows / (time.perf_counter() - started)

            await create(SHAPES[0][1], 5_000)  # warm-up: the server's JIT and caches
            for size in (5_000, 20_000):
                for name, query in SHAPES:
                    rate = await create(query, size)
                    out.append((name, size, rate))
                    print(f"{name:60s} batch {size:6,}: {rate:8,.0f} edges/s", flush=True)
        finally:
            await graph.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=40_000, help="edges created per shape and batch size")
    args = parser.parse_args()
    results = asyncio.run(run(args.members, args.rows))
    base = {size: rate for name, size, rate in results if name == SHAPES[0][0]}
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Relationship creation ceiling over Bolt ({stamp})",
        "",
        (f"Embedded ArcadeDB over Bolt, {platform.machine()}, 2 cores; {args.members:,} members, "
         f"{args.rows:,} FOLLOWS edges per cell, one `UNWIND $rows` statement per transaction, after a "
         "warm-up pass. Ratios are against the importer's own statement at the same batch size, same run."),
        "",
        "| statement | batch | edges/s | vs importer's |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {size:,} | {rate:,.0f} | {rate / base[size]:.2f}x |" for name, size, rate in results],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "edge_ceiling.md"
    out.write_text(text, "utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
