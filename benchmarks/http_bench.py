"""HTTP benchmark of three everyday operations on the 10,000-member demo community.

Starts the embedded servers (data kept in .data/bench so reruns skip the load), runs
`quanzi serve` in its own process, and drives it over HTTP with 1 and 16 concurrent
clients for a fixed time per cell. The named baseline is the same data read straight
through the repositories over Bolt (no HTTP, no GraphQL), measured in the same run at one
client: the ratio shows what the API layer adds.

    .venv/bin/python benchmarks/http_bench.py [--seconds 8] [--members 10000]

Prints a markdown table and writes it to benchmarks/results/http_bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.app import repositories  # noqa: E402
from benchmarks.harness import server  # noqa: E402
from api.auth import issue_token  # noqa: E402
from api.runtime import endpoints  # noqa: E402
from api.settings import Settings  # noqa: E402
from graph.client import GraphClient  # noqa: E402
from graph.demo_data import has_members, load_demo  # noqa: E402
from graph.migrations import migrate  # noqa: E402

TENANT = "bench"

PROFILE = """query Profile($id: ID!) { member(id: $id) { id displayName city level
  communities(first: 10) { nodes { name } } followers { totalCount } following { totalCount } } }"""
FEED = """query Feed($id: ID!) { community(id: $id) { name feed(first: 20) { pageInfo { hasNextPage endCursor }
  edges { node { id title createdAt likeCount author { id displayName } } } } } }"""
MEMBERS = """query Members { members(first: 50) { pageInfo { hasNextPage endCursor }
  edges { node { id displayName joinedAt level channel city } } } }"""

PICK = """
MATCH (m:Member {tenantId: $tenant})
WITH m, COUNT { (m)<-[:FOLLOWS]-() } AS f ORDER BY f DESC LIMIT 1
MATCH (c:Community {tenantId: $tenant})
WITH m, c, COUNT { (c)<-[:IN]-() } AS posts ORDER BY posts DESC LIMIT 1
RETURN m.id AS member, c.id AS community
"""


async def prepare(ep, members: int) -> tuple[str, str]:
    graph = GraphClient.connect(ep.graph_uri, user=ep.graph_user, password=ep.graph_password, database=ep.graph_database)
    try:
        await migrate(graph)
        if not await has_members(graph, tenant=TENANT):
            started = time.perf_counter()
            await load_demo(graph, tenant=TENANT, members=members, seed=7)
            print(f"loaded {members:,} demo members in {time.perf_counter() - started:.1f} s", flush=True)
        row = await graph.read_one(PICK, tenant=TENANT)  # type: ignore[arg-type]
        assert row is not None
        return str(row["member"]), str(row["community"])
    finally:
        await graph.close()


async def bolt_baseline(ep, member: str, community: str, seconds: float) -> dict[str, list[float]]:
    """The same reads through the repositories over Bolt, one client, no GraphQL."""
    graph = GraphClient.connect(ep.graph_uri, user=ep.graph_user, password=ep.graph_password, database=ep.graph_database)
    import redis.asyncio as aioredis

    from api.settings import Settings

    repos = repositories(graph, aioredis.Redis.from_url(ep.redis_url), Settings())
    from domain.ports import MemberFilter, MemberOrder

    async def profile() -> None:
        await repos.members.get_many(TENANT, [member])
        pages = await repos.members.memberships(TENANT, [member], 10, None)
        await repos.communities.get_many(TENANT, [m.community_id for m in pages[0].items])
        await repos.members.counts(TENANT, [member])

    async def feed() -> None:
        await repos.communities.get_many(TENANT, [community])
        page = (await repos.communities.feed(TENANT, [community], 20, None))[0]
        ids = [c.id for c in page.items]
        await repos.content.counts(TENANT, ids)
        await repos.members.get_many(TENANT, list({c.author_id for c in page.items}))

    async def members_page() -> None:
        await repos.members.list(TENANT, filter=MemberFilter(), order=MemberOrder.JOINED_AT_DESC, first=50, after=None)

    out: dict[str, list[float]] = {}
    try:
        for name, fn in (("profile", profile), ("feed", feed), ("members", members_page)):
            for _ in range(20):
                await fn()
            times: list[float] = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t = time.perf_counter()
                await fn()
                times.append(time.perf_counter() - t)
            out[name] = times
    finally:
        await graph.close()
    return out


async def drive(base: str, token: str, query: str, variables: dict[str, str], clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    payload = {"query": query, "variables": variables}
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
        for _ in range(10):  # warm up (parser/validation caches, connection pools)
            r = await http.post("/graphql", json=payload, headers=headers)
            body = r.json()
            assert "errors" not in body, body
        end = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < end:
                t = time.perf_counter()
                r = await http.post("/graphql", json=payload, headers=headers)
                latencies.append(time.perf_counter() - t)
                if r.status_code != 200:
                    raise RuntimeError(r.text)

        await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--members", type=int, default=10_000)
    args = parser.parse_args()
    settings = Settings()
    with endpoints(settings, data_dir=ROOT / ".data" / "bench") as ep:
        member, community = asyncio.run(prepare(ep, args.members))
        with server(ep) as base:
            token = issue_token(settings, tenant=TENANT, roles=["operator"])
            baseline = asyncio.run(bolt_baseline(ep, member, community, args.seconds / 2))
            ops = [("(a) member profile", "profile", PROFILE, {"id": member}),
                   ("(b) community feed, 20", "feed", FEED, {"id": community}),
                   ("(c) members page, 50", "members", MEMBERS, {})]
            rows = []
            for label, key, query, variables in ops:
                base_p50 = pct(baseline[key], 0.5)
                for clients in (1, 16):
                    lat = asyncio.run(drive(base, token, query, variables, clients, args.seconds))
                    rps = len(lat) / args.seconds
                    rows.append((label, clients, len(lat), rps, pct(lat, 0.5), pct(lat, 0.99), base_p50))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# HTTP benchmark ({args.members:,} demo members, {stamp}, {platform.machine()}, {os.cpu_count()} cores)",
        "",
        "One uvicorn worker; the embedded graph server (ArcadeDB over Bolt) and the load generator share the",
        "same two cores. Baseline: the same reads straight through the repositories over Bolt, one client.",
        "",
        "| operation | clients | requests | req/s | p50 ms | p99 ms | Bolt baseline p50 ms | p50 / baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, clients, n, rps, p50, p99, b50 in rows:
        lines.append(f"| {label} | {clients} | {n} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {b50:.2f} | {p50 / b50:.2f}x |")
    a_p50 = next(r[4] for r in rows if r[0].startswith("(a)") and r[1] == 1)
    lines += ["", f"Target (a) p50 < 10 ms at one client: {'met' if a_p50 < 10 else 'NOT met'} ({a_p50:.2f} ms)."]
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / "http_bench.md"
    out.write_text(text, "utf-8")
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
