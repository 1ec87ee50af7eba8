"""What exact seats and an un-overdrawable balance cost under contention, on the embedded graph server.

A join of a group-buy writes the GroupBuy record (seat count) in its transaction, so concurrent
joins of one group conflict in ArcadeDB's optimistic MVCC and all but one retry (graph/client.py);
a points spend writes the member the same way (graph/points.py). This script fires C concurrent
writes at ONE record (contended) and at C different records (the baseline, same run, same data,
same code), and reports the wall time, throughput, retried conflicts and their ratios. It also
runs the naive seat check that only counts JOINED edges without writing the GroupBuy, to show why
the write is needed: ArcadeDB rebases concurrent edge appends to one vertex instead of failing
them, so that check overbooks.

    .venv/bin/python benchmarks/campaign_contention_bench.py [--concurrency 25] [--rounds 3]

Prints a markdown table and writes it to benchmarks/results/campaign_contention_bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.runtime import endpoints
from api.settings import Settings
from domain.rewards import OpenGroupBuy, PointsChange, PointsKind
from graph.client import TRANSIENT_RETRY_TIME, GraphClient, now
from graph.group_buys import GraphGroupBuys
from graph.migrations import migrate
from graph.points import GraphPoints

TENANT = "ten_benchcontention"
#: the naive seat check: count the seats, add one; does not write the GroupBuy (not a registered statement)
NAIVE_JOIN = """
MATCH (g:GroupBuy {id: $id}) WITH * WHERE g.tenantId = $tenant
MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
WITH g, m, COUNT { (:Member)-[:JOINED]->(g) } AS taken
WHERE taken < g.requiredSize
CREATE (m)-[:JOINED {at: $now, state: 'JOINED', leader: false}]->(g)
RETURN taken
"""


class NoQueue:
    """In place of graph.write_queue.KeyedLocks: every write goes straight to the graph (MVCC retries only)."""

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        yield


class Conflicts(logging.Handler):
    """Counts the conflicts graph/client.py retries."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "conflict, retrying" in record.getMessage():
            self.n += 1


async def _members(graph: GraphClient, prefix: str, n: int, points: int = 0) -> list[str]:
    ids = [f"mem_{prefix}{i:04d}" for i in range(n)]

    async def work(tx: Any) -> None:
        await graph.run(tx, """UNWIND $ids AS id
                               CREATE (:Member {id: id, tenantId: $tenant, inviteCode: id, points: $points,
                                                joinedAt: $now})""", ids=ids, tenant=TENANT, points=points, now=now())

    await graph.write(work)
    return ids


async def _timed(conflicts: Conflicts, calls: list[Any]) -> tuple[float, int, list[Any]]:
    before = conflicts.n
    started = time.perf_counter()
    results = await asyncio.gather(*calls, return_exceptions=True)
    return time.perf_counter() - started, conflicts.n - before, results


async def run(ep: Any, c: int, rounds: int) -> dict[str, Any]:
    graph = GraphClient.connect(ep.graph_uri, user=ep.graph_user, password=ep.graph_password, database=ep.graph_database)
    conflicts = Conflicts()
    logging.getLogger("graph.client").addHandler(conflicts)
    logging.getLogger("graph.client").setLevel(logging.DEBUG)
    groups, points = GraphGroupBuys(graph), GraphPoints(graph)
    raw_groups, raw_points = GraphGroupBuys(graph, queue=NoQueue()), GraphPoints(graph, queue=NoQueue())  # type: ignore[arg-type]
    keys = ("join_one", "join_raw", "join_many", "spend_one", "spend_raw", "spend_many")
    out: dict[str, list[tuple[float, int]]] = {k: [] for k in keys}
    naive: list[int] = []
    failures: list[tuple[str, str]] = []
    try:
        await migrate(graph)

        async def product() -> str:
            async def work(tx: Any) -> None:
                await graph.run(tx, "CREATE (:Product {id: 'prd_bench', tenantId: $tenant, sku: 'bench'})",
                                tenant=TENANT)

            await graph.write(work)
            return "prd_bench"

        prd = await product()
        expires = datetime.now(UTC) + timedelta(hours=1)
        for r in range(rounds):
            leaders = await _members(graph, f"l{r}x", c + 1)
            joiners = await _members(graph, f"j{r}x", c)
            # contended: C joins into one group with a seat for each; baseline: one join into each of C groups
            one = await groups.open(TENANT, OpenGroupBuy(leader_id=leaders[0], product_id=prd, required_size=c + 1,
                                                         expires_at=expires))
            many = [await groups.open(TENANT, OpenGroupBuy(leader_id=leaders[i + 1], product_id=prd, required_size=2,
                                                           expires_at=expires)) for i in range(c)]
            seconds, n, res = await _timed(conflicts, [groups.join(TENANT, one.id, m) for m in joiners])
            failures.extend(("join_one", type(x).__name__ + ": " + str(x)[:100]) for x in res if isinstance(x, BaseException))
            out["join_one"].append((seconds, n))
            raw = await groups.open(TENANT, OpenGroupBuy(leader_id=leaders[1], product_id=prd, required_size=c + 1,
                                                         expires_at=expires))
            raw_joiners = await _members(graph, f"q{r}x", c)
            seconds, n, res = await _timed(conflicts, [raw_groups.join(TENANT, raw.id, m) for m in raw_joiners])
            failures.extend(("join_raw", type(x).__name__ + ": " + str(x)[:100]) for x in res if isinstance(x, BaseException))
            out["join_raw"].append((seconds, n))
            other = await _members(graph, f"k{r}x", c)
            seconds, n, res = await _timed(conflicts, [groups.join(TENANT, g.id, m) for g, m in zip(many, other)])
            failures.extend(("join_many", type(x).__name__ + ": " + str(x)[:100]) for x in res if isinstance(x, BaseException))
            out["join_many"].append((seconds, n))
            # points: C spends of one member (enough balance for all) vs one spend each of C members
            rich = (await _members(graph, f"r{r}x", 1, points=10 * c))[0]
            spenders = await _members(graph, f"s{r}x", c, points=10)
            raw_rich = (await _members(graph, f"w{r}x", 1, points=10 * c))[0]
            seconds, n, res = await _timed(conflicts, [raw_points.change(TENANT, PointsChange(
                member_id=raw_rich, kind=PointsKind.SPEND, amount=10, idempotency_key=f"bench-{r}-raw-{i}"))
                for i in range(c)])
            failures.extend(("spend_raw", type(x).__name__ + ": " + str(x)[:100]) for x in res if isinstance(x, BaseException))
            out["spend_raw"].append((seconds, n))
            seconds, n, res = await _timed(conflicts, [points.change(TENANT, PointsChange(
                member_id=rich, kind=PointsKind.SPEND, amount=10, idempotency_key=f"bench-{r}-one-{i}"))
                for i in range(c)])
            failures.extend(("spend_one", type(x).__name__ + ": " + str(x)[:100]) for x in res if isinstance(x, BaseException))
            out["spend_one"].append((seconds, n))
            seconds, n, res = await _timed(conflicts, [points.change(TENANT, PointsChange(
                member_id=m, kind=PointsKind.SPEND, amount=10, idempotency_key=f"bench-{r}-many-{i}"))
                for i, m in enumerate(spenders)])
            failures.extend(("spend_many", type(x).__name__ + ": " + str(x)[:100]) for x in res if isinstance(x, BaseException))
            out["spend_many"].append((seconds, n))
            # the naive check: C joins at a group of 5
            small = await groups.open(TENANT, OpenGroupBuy(leader_id=leaders[-1], product_id=prd, required_size=5,
                                                           expires_at=expires))
            crowd = await _members(graph, f"n{r}x", c)

            async def naive_join(member: str, group: str = small.id) -> None:
                async def work(tx: Any) -> None:
                    await graph.run(tx, NAIVE_JOIN, id=group, tenant=TENANT, memberId=member, now=now())

                await graph.write(work)

            await asyncio.gather(*(naive_join(m) for m in crowd))
            rows = await graph.read("MATCH (:Member)-[j:JOINED]->(g:GroupBuy {id: $id}) RETURN count(j) AS n", id=small.id)
            naive.append(int(rows[0]["n"]))
        return {"timings": out, "naive": naive, "failures": failures}
    finally:
        await graph.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    c = args.concurrency
    with tempfile.TemporaryDirectory() as tmp, endpoints(Settings(), data_dir=Path(tmp), persistent=False) as ep:
        result = asyncio.run(run(ep, c, args.rounds))
    t = result["timings"]

    def med(key: str) -> tuple[float, float]:
        return statistics.median(s for s, _ in t[key]), statistics.median(n for _, n in t[key])

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        (f"# Exact seats and balances under contention ({stamp}, {platform.machine()}, {os.cpu_count()} cores, "
         f"load {os.getloadavg()[0]:.1f})"),
        "",
        (f"{c} concurrent writes through the repositories on the embedded ArcadeDB server; median of {args.rounds} "
         "rounds. Baseline: the same writes spread over different records (no conflicts expected), same run."),
        "",
        ("| write | contended: one record ms | baseline: C records ms | ratio "
         "| retried conflicts (contended / baseline) | gave up (contended / baseline) |"),
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = (("group-buy join, queued per group (as shipped)", "join_one", "join_many"),
            ("group-buy join, no queue (MVCC retries only)", "join_raw", "join_many"),
            ("points spend, queued per member (as shipped)", "spend_one", "spend_many"),
            ("points spend, no queue (MVCC retries only)", "spend_raw", "spend_many"))
    for name, one, many in rows:
        (s1, n1), (s2, n2) = med(one), med(many)
        gave_up = sum(1 for k, _ in result["failures"] if k == one), sum(1 for k, _ in result["failures"] if k == many)
        lines.append(f"| {c} × {name} | {s1 * 1000:.0f} | {s2 * 1000:.0f} | {s1 / s2:.1f}x | {n1:.0f} / {n2:.0f} "
                     f"| {gave_up[0]} / {gave_up[1]} |")
    failures = result["failures"]
    lines += ["", f"Gave up: writes answered GRAPH_UNAVAILABLE (busy, nothing written) after the "
              f"{TRANSIENT_RETRY_TIME:.0f} s conflict-retry budget, summed over the rounds"
              + (f"; e.g. {failures[0][1]}" if failures else ".")]
    lines += ["", (f"Naive seat check without writing the GroupBuy, {c} concurrent joins at a group of 5: seats taken "
                   f"per round {result['naive']} (the real join: exactly 5, tests/test_api_group_buys.py).")]
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / "campaign_contention_bench.md"
    out.write_text(text, "utf-8")
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
