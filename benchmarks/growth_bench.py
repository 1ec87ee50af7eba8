"""Growth analytics benchmark on a large demo community in the embedded graph server.

Loads the deterministic demo community (default 100,000 members; data kept in
.data/bench-growth-<members> so reruns skip the load), then measures:

1. the referral-aggregate rebuild and the end-to-end KOL recompute (projection pull,
   algorithms, scoring, Redis write, write-back to the graph), stage by stage;
2. ``referralStats`` and ``kolRanking(first: 20)`` at 16 concurrent clients, through the
   service layer (Redis) against the named baselines computed from the graph in the same
   run (the paths used when Redis is down), and over HTTP through a real server;
3. ``recommendedMembers`` on a cache miss (computed from the graph) for members with many
   and few follows, against the cached read.

    .venv/bin/python benchmarks/growth_bench.py [--members 100000] [--seconds 5]

Prints a markdown table and writes it to benchmarks/results/growth_bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.auth import issue_token  # noqa: E402
from benchmarks.harness import server  # noqa: E402
from api.runtime import endpoints  # noqa: E402
from api.settings import Settings  # noqa: E402
from domain.growth import Scope  # noqa: E402
from domain.influence import RankingKind  # noqa: E402
from graph import kol  # noqa: E402
from graph.client import GraphClient  # noqa: E402
from graph.demo_data import has_members, load_demo  # noqa: E402
from graph.growth import GrowthService, rebuild_referrals, recompute_kol  # noqa: E402
from graph.kol import KolStore  # noqa: E402
from graph.migrations import migrate  # noqa: E402
from graph.projection import pull_engagement  # noqa: E402
from graph.recommendations import GraphRecommender  # noqa: E402
from graph.referral_stats import ReferralStatsStore  # noqa: E402
from graph.referrals import GraphReferrals  # noqa: E402

TENANT = "bench"

PICK = """
MATCH (m:Member {tenantId: $tenant})
WITH m, COUNT { (m)-[:REFERRED]->() } AS invites, COUNT { (m)-[:FOLLOWS]->() } AS follows
RETURN collect([m.id, invites, follows]) AS rows
"""
STATS_Q = """query($id: ID!) { referralStats(memberId: $id) { directInvites teamSize depth levelCounts
  activatedTeam convertedTeam teamGmv { amount currency } } }"""
RANKING_Q = """query { kolRanking(first: 20) { computedAt totalCount edges { node { rank score member { id displayName }
  influence { components { followers influence reach conversion } } } } } }"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


async def load(seconds: float, clients: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    """Run *call* from *clients* concurrent loops for *seconds*; return latencies (s)."""
    stop = time.perf_counter() + seconds
    out: list[float] = []

    async def loop(worker: int) -> None:
        i = worker
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await call(i)
            out.append(time.perf_counter() - started)
            i += clients

    await asyncio.gather(*(loop(w) for w in range(clients)))
    return out


async def prepare(ep: Any, members: int) -> dict[str, Any]:
    graph = GraphClient.connect(ep.graph_uri, user=ep.graph_user, password=ep.graph_password, database=ep.graph_database)
    redis = aioredis.Redis.from_url(ep.redis_url)
    try:
        await migrate(graph)
        if not await has_members(graph, tenant=TENANT):
            from tqdm import tqdm

            bars: dict[str, Any] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in bars:
                    bars[stage] = tqdm(total=total, desc=stage, unit="rows", file=sys.stderr)
                bar = bars[stage]
                bar.n = done
                bar.refresh()

            started = time.perf_counter()
            await load_demo(graph, tenant=TENANT, members=members, seed=7, progress=progress)
            for bar in bars.values():
                bar.close()
            print(f"loaded {members:,} demo members in {time.perf_counter() - started:.0f} s", flush=True)
        figures: dict[str, Any] = {}
        started = time.perf_counter()
        figures["rebuilt"] = await rebuild_referrals(graph, redis, TENANT)
        figures["rebuild_s"] = time.perf_counter() - started
        result = await recompute_kol(graph, redis, TENANT, Scope())
        figures["kol"] = result
        g = await pull_engagement(graph, TENANT)  # once more, to count what a pull moves
        figures["pulled_rows"] = (g.n + len(g.follow_src) + len(g.inter_src) + int(g.posts.sum()) + len(g.ref_src)
                                  + int(g.paid_purchases.sum()))
        figures["pull_s"] = g.pull_seconds
        row = await graph.read_one(PICK, tenant=TENANT)  # type: ignore[arg-type]
        assert row is not None
        rows = sorted(row["rows"], key=lambda r: (-r[1], r[0]))
        figures["inviters"] = [r[0] for r in rows[:200]]
        by_follows = sorted(row["rows"], key=lambda r: (-r[2], r[0]))
        figures["heavy"] = [r[0] for r in by_follows[:100]]
        figures["typical"] = [r[0] for r in by_follows[len(by_follows) // 2:len(by_follows) // 2 + 100]]
        return figures
    finally:
        await graph.close()
        await redis.aclose()


async def service_latencies(ep: Any, figures: dict[str, Any], seconds: float) -> list[tuple[str, str, list[float]]]:
    graph = GraphClient.connect(ep.graph_uri, user=ep.graph_user, password=ep.graph_password, database=ep.graph_database)
    redis = aioredis.Redis.from_url(ep.redis_url, max_connections=64)
    service = GrowthService(graph, redis, KolStore(redis), ReferralStatsStore(redis), GraphReferrals(graph))
    inviters = figures["inviters"]
    out: list[tuple[str, str, list[float]]] = []
    try:
        out.append(("referralStats", "Redis (service)", await load(seconds, 16, lambda i: service.referral_stats(
            TENANT, inviters[i % len(inviters)]))))
        out.append(("referralStats", "baseline: from the graph", await load(seconds, 16, lambda i: (
            service.referrals.stats_from_graph(TENANT, inviters[i % len(inviters)])))))
        out.append(("kolRanking(first: 20)", "Redis (service)", await load(seconds, 16, lambda i: service.kol_page(
            TENANT, Scope(), RankingKind.KOL, 0, 20))))
        out.append(("kolRanking(first: 20)", "baseline: from the graph", await load(seconds, 16, lambda i: (
            kol.page_from_graph(graph, TENANT, RankingKind.KOL, 0, 20)))))
        miss = GraphRecommender(graph, None)
        hit = GraphRecommender(graph, redis)
        for label, ids in (("many follows", figures["heavy"]), ("median member", figures["typical"])):
            lat: list[float] = []
            for member in ids:
                started = time.perf_counter()
                await miss.members(TENANT, member, 10)
                lat.append(time.perf_counter() - started)
            out.append((f"recommendedMembers, {label}", "cache miss (graph), 1 client", lat))
        for member in figures["heavy"]:
            await hit.members(TENANT, member, 10)
        out.append(("recommendedMembers, many follows", "cache hit (Redis), 16 clients", await load(
            seconds, 16, lambda i: hit.members(TENANT, figures["heavy"][i % 100], 10))))
    finally:
        await graph.close()
        await redis.aclose()
    return out


async def http_latencies(base: str, token: str, figures: dict[str, Any], seconds: float) -> list[tuple[str, str, list[float]]]:
    inviters = figures["inviters"]
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30,
                                 limits=httpx.Limits(max_connections=32)) as client:
        async def stats(i: int) -> None:
            r = await client.post("/graphql", json={"query": STATS_Q, "variables": {"id": inviters[i % len(inviters)]}})
            assert r.status_code == 200 and "errors" not in r.json(), r.text

        async def ranking(i: int) -> None:
            r = await client.post("/graphql", json={"query": RANKING_Q})
            assert r.status_code == 200 and "errors" not in r.json(), r.text

        return [("referralStats", "HTTP + GraphQL, 16 clients", await load(seconds, 16, stats)),
                ("kolRanking(first: 20)", "HTTP + GraphQL, 16 clients", await load(seconds, 16, ranking))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    settings = Settings()
    with endpoints(settings, data_dir=ROOT / ".data" / f"bench-growth-{args.members}") as ep:
        figures = asyncio.run(prepare(ep, args.members))
        service = asyncio.run(service_latencies(ep, figures, args.seconds))
        with server(ep, QUANZI_SCHEDULER_INTERVAL="0") as base:
            token = issue_token(settings, tenant=TENANT, roles=["operator"])
            http = asyncio.run(http_latencies(base, token, figures, args.seconds))
    result = figures["kol"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Growth analytics benchmark ({args.members:,} demo members, {stamp}, {platform.machine()}, "
        f"{os.cpu_count()} cores)",
        "",
        "The embedded graph server (ArcadeDB over Bolt), Redis, the API and the load generator share two cores.",
        "",
        "## Recompute (end to end, in the embedded server)",
        "",
        "| stage | seconds |",
        "|---|---:|",
    ]
    for stage, seconds in result.timings.items():
        lines.append(f"| KOL: {stage} | {seconds:.2f} |")
    lines += [
        f"| **KOL recompute total ({result.members:,} members)** | **{result.seconds:.2f}** |",
        f"| referral aggregates full rebuild ({figures['rebuilt']:,} members) | {figures['rebuild_s']:.2f} |",
        "",
        "`pull` is the time the projection's reads spent on the graph server; `projection` adds turning the",
        "records into arrays. A second pull moved {:,} rows in {:.1f} s: {:,.0f} rows/s.".format(
            figures["pulled_rows"], figures["pull_s"], figures["pulled_rows"] / figures["pull_s"]),
        "",
        "## Reads",
        "",
        "| read | path | requests | p50 ms | p99 ms | p99 vs baseline |",
        "|---|---|---:|---:|---:|---:|",
    ]
    baselines = {read: pct(lat, 0.99) for read, path, lat in service if path.startswith("baseline")}
    for read, path, lat in [*service, *http]:
        base_p99 = baselines.get(read)
        ratio = f"{base_p99 / pct(lat, 0.99):.1f}x faster" if base_p99 and not path.startswith("baseline") else ""
        lines.append(f"| {read} | {path} | {len(lat)} | {pct(lat, 0.5):.2f} | {pct(lat, 0.99):.2f} | {ratio} |")
    lines += ["", "Targets: referralStats and kolRanking(first: 20) p99 < 5 ms at 16 clients; recommendedMembers p99 < 50 ms"
              " on a cache miss."]
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / "growth_bench.md"
    out.write_text(text, "utf-8")
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
