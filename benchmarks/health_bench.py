"""Community health benchmark: one community of 100,000 members in the embedded graph server.

Loads a synthetic community (default 100,000 members, all in one community, with a year of
joins, 90 days of posts, likes and comments, a year of purchases and referrals; data kept in
.data/bench-health-<members> so reruns skip the load; the load uses its own batched
``UNWIND`` statements), then measures:

1. the recompute of ``Community.health`` (default window, the last 30 days), split into the
   pull from the graph (five concurrent fat reads) and the computation in numpy;
2. ``Community.health`` latency over HTTP GraphQL through a real ``quanzi serve``, one client
   at a time: cached (the report in Redis) against the baseline, uncached (the cache key
   deleted before each request, so the request computes the report), measured in the same run.

    .venv/bin/python benchmarks/health_bench.py [--members 100000] [--cached 300] [--uncached 10]

Prints a markdown table and writes it to benchmarks/results/health.md. Target: p50 under
200 ms cached. Takes about 3–6 minutes on two cores (most of it the first load).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, LiteralString

import httpx
import numpy as np
import redis.asyncio as aioredis
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.auth import issue_token
from api.runtime import endpoints
from api.settings import Settings
from benchmarks.harness import server
from domain.health import HealthScope, HealthScopeKind, resolve_window
from graph.client import GraphClient, Tx
from graph.health import compute
from graph.migrations import migrate

TENANT = "benchhealth"
COMMUNITY = "com_hbench1"
BATCH = 5_000

LOADED = "MATCH (c:Community {id: $community}) RETURN c.loadedAt AS at"
NODES: dict[str, LiteralString] = {
    "members": "UNWIND $rows AS row CREATE (m:Member) SET m = row",
    "contents": "UNWIND $rows AS row CREATE (x:Content) SET x = row",
    "purchases": "UNWIND $rows AS row CREATE (p:Purchase) SET p = row",
}
EDGES: dict[str, LiteralString] = {
    "memberships": """UNWIND $rows AS row MATCH (a:Member {id: row.a}) MATCH (c:Community {id: $community})
                      CREATE (a)-[:MEMBER_OF {role: 'member', joinedAt: row.at}]->(c)""",
    "posted": """UNWIND $rows AS row MATCH (a:Member {id: row.a}) MATCH (x:Content {id: row.b})
                 MATCH (c:Community {id: $community})
                 CREATE (a)-[:POSTED {at: row.at}]->(x) CREATE (x)-[:IN]->(c)""",
    "likes": """UNWIND $rows AS row MATCH (a:Member {id: row.a}) MATCH (x:Content {id: row.b})
                CREATE (a)-[:LIKED {at: row.at}]->(x)""",
    "comments": """UNWIND $rows AS row MATCH (a:Member {id: row.a}) MATCH (x:Content {id: row.b})
                   CREATE (a)-[:COMMENTED {at: row.at}]->(x)""",
    "placed": """UNWIND $rows AS row MATCH (a:Member {id: row.a}) MATCH (p:Purchase {id: row.b})
                 CREATE (a)-[:PLACED {at: row.at}]->(p)""",
    "referrals": """UNWIND $rows AS row MATCH (a:Member {id: row.a}) MATCH (b:Member {id: row.b})
                    CREATE (a)-[:REFERRED {at: row.at, channel: 'wechat'}]->(b)""",
}
CHANNELS = ["wechat", "wecom", "mini_program", "app", "h5", "livestream", "offline", "referral"]
HEALTH_Q = """
query($id: ID!) { community(id: $id) { health {
  computedAt memberCount newMembers dau wau mau stickiness postsPerActiveMember interactionsPerActiveMember
  retention { weekStart size retention }
  funnel { acquired activated { members share } retained { members share } revenue { members share }
           referral { members share } }
  repurchaseRate gmv { amount currency } aov { amount currency } ltv { amount currency } top20InteractionShare
} } }
"""


def generate(n: int, now: datetime, seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """Rows of a synthetic community of *n* members (deterministic for a seed and *now*)."""
    rng = np.random.default_rng(seed)
    day = 86_400.0

    def at(seconds_ago: np.ndarray) -> list[datetime]:
        return [now - timedelta(seconds=float(s)) for s in seconds_ago]

    join_ago = np.sort(rng.uniform(0, 365 * day, n))[::-1]  # member 0 joined first
    mids = [f"mem_h{i:07d}" for i in range(n)]
    rows: dict[str, list[dict[str, Any]]] = {}
    joined = at(join_ago)
    rows["members"] = [{"id": m, "tenantId": TENANT, "displayName": m, "joinedAt": j, "inviteCode": m,
                        "channel": CHANNELS[c]} for m, j, c in zip(mids, joined, rng.integers(0, 8, n).tolist())]
    in_community_ago = np.maximum(join_ago - rng.uniform(0, 2 * day, n), 0)
    rows["memberships"] = [{"a": m, "at": t} for m, t in zip(mids, at(in_community_ago))]
    # posts in the last 90 days by members already there, likes and comments by anyone there
    n_posts = n // 5
    post_ago = rng.uniform(0, 90 * day, n_posts)
    authors = rng.integers(0, n, n_posts)
    post_ago = np.minimum(post_ago, in_community_ago[authors])
    cids = [f"cnt_h{i:07d}" for i in range(n_posts)]
    rows["contents"] = [{"id": c, "tenantId": TENANT, "kind": "post", "title": c, "body": c, "createdAt": t}
                        for c, t in zip(cids, at(post_ago))]
    rows["posted"] = [{"a": mids[a], "b": c, "at": t} for a, c, t in zip(authors.tolist(), cids, at(post_ago))]

    def interactions(count: int) -> list[dict[str, Any]]:
        # heavy-tailed: a few members interact a lot (the 80/20 the metric looks for)
        who = np.minimum((rng.pareto(1.2, count) * n / 20).astype(np.int64), n - 1)
        what = rng.integers(0, n_posts, count)
        ago = np.maximum(post_ago[what] - rng.exponential(2 * day, count), 0)
        ago = np.minimum(ago, in_community_ago[who])
        pairs = np.unique(who * n_posts + what, return_index=True)[1]
        return [{"a": mids[w], "b": cids[x], "at": t}
                for w, x, t in zip(who[pairs].tolist(), what[pairs].tolist(), at(ago[pairs]))]

    rows["likes"] = interactions(n * 5 // 2)
    rows["comments"] = interactions(n // 2)
    n_buys = n * 3 // 5
    buyers = rng.integers(0, n, n_buys)
    buy_ago = rng.uniform(0, 1, n_buys) * join_ago[buyers]
    pids = [f"pur_h{i:07d}" for i in range(n_buys)]
    paid = rng.random(n_buys) < 0.95
    amounts = rng.integers(1_000, 50_000, n_buys).tolist()
    rows["purchases"] = [{"id": p, "tenantId": TENANT, "amount": a, "currency": "CNY", "at": t, "idempotencyKey": p,
                          "status": "paid" if ok else "refunded"}
                         for p, a, t, ok in zip(pids, amounts, at(buy_ago), paid.tolist())]
    rows["placed"] = [{"a": mids[b], "b": p, "at": t} for b, p, t in zip(buyers.tolist(), pids, at(buy_ago))]
    invitees = rng.choice(np.arange(1, n), size=n // 5, replace=False)
    inviters = (rng.random(n // 5) * invitees).astype(np.int64)  # someone who joined earlier
    rows["referrals"] = [{"a": mids[i], "b": mids[j], "at": joined[j]} for i, j in zip(inviters.tolist(), invitees.tolist())]
    return rows


async def load(graph: GraphClient, n: int) -> datetime:
    """Load the community unless it is there already; return the time it was generated at."""
    found = await graph.read_one(LOADED, community=COMMUNITY)
    if found is not None and found["at"] is not None:
        return datetime.fromisoformat(str(found["at"]))
    now = datetime.now(UTC)
    rows = generate(n, now)

    async def write(query: LiteralString, batch: list[dict[str, Any]]) -> None:
        async def work(tx: Tx) -> None:
            result = await tx.run(query, {"rows": batch, "community": COMMUNITY})
            await result.consume()

        await graph.write(work)

    async def community(tx: Tx) -> None:
        result = await tx.run("CREATE (:Community {id: $id, tenantId: $tenant, name: 'health bench', kind: 'interest', "
                              "channel: 'app_circle', createdAt: $at})", {"id": COMMUNITY, "tenant": TENANT,
                                                                         "at": now - timedelta(days=400)})
        await result.consume()

    await graph.write(community)
    for name in [*NODES, *EDGES]:
        query = NODES.get(name) or EDGES[name]
        todo = rows[name]
        with tqdm(total=len(todo), desc=f"{name:<12}", unit="rows", unit_scale=True, file=sys.stderr) as bar:
            for lo in range(0, len(todo), BATCH):
                await write(query, todo[lo:lo + BATCH])
                bar.update(min(BATCH, len(todo) - lo))

    async def mark(tx: Tx) -> None:
        result = await tx.run("MATCH (c:Community {id: $id}) SET c.loadedAt = $at", {"id": COMMUNITY, "at": now.isoformat()})
        await result.consume()

    await graph.write(mark)
    return now


async def recompute_times(ep: Any, n: int, runs: int) -> dict[str, Any]:
    graph = GraphClient.connect(ep.graph_uri, user=ep.graph_user, password=ep.graph_password, database=ep.graph_database)
    try:
        await migrate(graph)
        started = time.perf_counter()
        loaded_at = await load(graph, n)
        load_s = time.perf_counter() - started
        scope = HealthScope(HealthScopeKind.COMMUNITY, COMMUNITY)
        pulls, computes, report = [], [], None
        for _ in range(runs):
            run = await compute(graph, TENANT, scope, resolve_window(None, None, now=datetime.now(UTC)))
            pulls.append(run.pull_seconds)
            computes.append(run.compute_seconds)
            report = run.report
        assert report is not None
        return {"pull": pulls, "compute": computes, "report": report, "load_s": load_s, "loaded_at": loaded_at}
    finally:
        await graph.close()


async def http_latencies(base: str, token: str, redis_url: str, cached: int, uncached: int) -> dict[str, list[float]]:
    redis = aioredis.Redis.from_url(redis_url)
    key = f"q:{TENANT}:health:{COMMUNITY}:last30d"
    out: dict[str, list[float]] = {"cached": [], "uncached": []}
    try:
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
            async def one() -> float:
                t = time.perf_counter()
                r = await client.post("/graphql", json={"query": HEALTH_Q, "variables": {"id": COMMUNITY}})
                elapsed = time.perf_counter() - t
                assert r.status_code == 200 and "errors" not in r.json(), r.text
                assert r.json()["data"]["community"]["health"]["memberCount"] > 0
                return elapsed

            for _ in range(uncached):
                await redis.delete(key)
                out["uncached"].append(await one())
            await one()  # make sure the report is cached
            for _ in range(cached):
                out["cached"].append(await one())
    finally:
        await redis.aclose()
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--cached", type=int, default=300, help="cached requests to time")
    parser.add_argument("--uncached", type=int, default=10, help="uncached requests to time (the baseline)")
    parser.add_argument("--runs", type=int, default=3, help="recompute runs to time")
    args = parser.parse_args()
    settings = Settings()
    with endpoints(settings, data_dir=ROOT / ".data" / f"bench-health-{args.members}") as ep:
        rec = asyncio.run(recompute_times(ep, args.members, args.runs))
        with server(ep, QUANZI_SCHEDULER_INTERVAL="0") as base:
            token = issue_token(settings, tenant=TENANT, roles=["analyst"])
            lat = asyncio.run(http_latencies(base, token, ep.redis_url, args.cached, args.uncached))
    m = rec["report"].metrics
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    c50, c99 = pct(lat["cached"], 0.5), pct(lat["cached"], 0.99)
    u50, u99 = pct(lat["uncached"], 0.5), pct(lat["uncached"], 0.99)
    lines = [
        (f"# Community health benchmark ({args.members:,} members in one community, {stamp}, {platform.machine()}, "
         f"{os.cpu_count()} cores)"),
        "",
        ("The embedded graph server (ArcadeDB over Bolt), Redis, the API and the client share the machine "
         f"(load average at the end of the run: {os.getloadavg()[0]:.1f})."),
        (f"The community: {m.member_count:,} members; in the last 30 days {m.posts:,} posts, {m.interactions:,} "
        f"interactions, {m.mau:,} monthly active members (DAU {m.dau:,.0f}, stickiness {m.stickiness or 0:.3f}), "
        f"{m.new_members:,} new members. Data generated {rec['loaded_at']:%Y-%m-%d}"
         + (f", loaded in {rec['load_s']:.0f} s." if rec["load_s"] > 5 else " (loaded before this run).")),
        "",
        "## Recompute (default window, the last 30 days)",
        "",
        "| stage | median s | runs |",
        "|---|---:|---:|",
        f"| pull (five concurrent reads from the graph, decoding) | {statistics.median(rec['pull']):.2f} | {len(rec['pull'])} |",
        f"| compute (numpy, domain.health) | {statistics.median(rec['compute']):.3f} | {len(rec['compute'])} |",
        "",
        "## `Community.health` over HTTP GraphQL (one client, sequential requests)",
        "",
        "| path | requests | p50 ms | p99 ms | p50 vs baseline |",
        "|---|---:|---:|---:|---:|",
        f"| baseline: uncached (cache key deleted; the request computes) | {len(lat['uncached'])} | {u50:.1f} | {u99:.1f} | 1.0x |",
        f"| cached (Redis) | {len(lat['cached'])} | {c50:.1f} | {c99:.1f} | {u50 / c50:.0f}x faster |",
        "",
        f"Target: p50 under 200 ms cached: {'met' if c50 < 200 else 'NOT met'} ({c50:.1f} ms).",
    ]
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / "health.md"
    out.write_text(text, "utf-8")
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
