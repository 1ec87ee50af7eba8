"""Recommendations for one member: exact rankings on hand-built graphs, exclusions, consent,
reasons, the Redis cache (hits, invalidation, failure fallback).

Every graph is written with plain Cypher into a fresh tenant, so every value is exact.
Adamic-Adar scores are computed by hand with :func:`math.log`; the content walk is checked
against networkx's personalised PageRank on the same bipartite graph.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import networkx as nx
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

import graph.recommendations as recs
from domain.recommendations import (
    MAX_RECOMMENDATIONS,
    Recommendation,
    RecommendationKind,
    followed_by,
    joined_by_co_members,
)
from graph.client import GraphClient
from graph.recommendations import GraphRecommender, cache_key

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
T0 = NOW - timedelta(days=30)

MEMBERS = """
UNWIND $rows AS r
CREATE (:Member {tenantId: $tenant, id: r.id, displayName: r.name, inviteCode: r.id,
                 marketingConsent: r.consent, joinedAt: $t0})
"""
FOLLOWS = """
UNWIND $rows AS r
MATCH (a:Member {id: r.a}) MATCH (b:Member {id: r.b})
CREATE (a)-[:FOLLOWS {at: r.at}]->(b)
"""
COMMUNITIES = """
UNWIND $rows AS r
CREATE (:Community {tenantId: $tenant, id: r.id, name: r.name, kind: 'interest', createdAt: $t0})
"""
MEMBER_OF = """
UNWIND $rows AS r
MATCH (a:Member {id: r.a}) MATCH (b:Community {id: r.b})
CREATE (a)-[:MEMBER_OF {role: 'member', joinedAt: r.at}]->(b)
"""
CONTENT = """
UNWIND $rows AS r
MATCH (k:Community {id: r.community})
CREATE (c:Content {tenantId: $tenant, id: r.id, kind: 'post', title: r.id, body: '', createdAt: r.created})
CREATE (c)-[:IN]->(k)
"""
# One statement per relationship type (types are never spliced into text).
INTERACTIONS = {
    "POSTED": "UNWIND $rows AS r MATCH (a:Member {id: r.a}) MATCH (b:Content {id: r.b}) "
    "CREATE (a)-[:POSTED {at: r.at}]->(b)",
    "LIKED": "UNWIND $rows AS r MATCH (a:Member {id: r.a}) MATCH (b:Content {id: r.b}) "
    "CREATE (a)-[:LIKED {at: r.at}]->(b)",
    "COMMENTED": "UNWIND $rows AS r MATCH (a:Member {id: r.a}) MATCH (b:Content {id: r.b}) "
    "CREATE (a)-[:COMMENTED {at: r.at}]->(b)",
    "SHARED": "UNWIND $rows AS r MATCH (a:Member {id: r.a}) MATCH (b:Content {id: r.b}) "
    "CREATE (a)-[:SHARED {at: r.at}]->(b)",
    "FAVORITED": "UNWIND $rows AS r MATCH (a:Member {id: r.a}) MATCH (b:Content {id: r.b}) "
    "CREATE (a)-[:FAVORITED {at: r.at}]->(b)",
}
PRODUCTS = """
UNWIND $rows AS r
CREATE (:Product {tenantId: $tenant, id: r.id, sku: r.id, name: r.name, category: 'test',
                  priceAmount: 1000, priceCurrency: 'CNY'})
"""
PURCHASES = """
UNWIND $rows AS r
MATCH (m:Member {id: r.member}) MATCH (x:Product {id: r.product})
CREATE (m)-[:PLACED {at: r.at}]->(p:Purchase {tenantId: $tenant, id: r.id, idempotencyKey: r.id, amount: 1000,
                                              currency: 'CNY', at: r.at, channel: 'app', status: r.status})
CREATE (p)-[:OF {qty: 1, unitPrice: 1000}]->(x)
"""


class World:
    """Writes a small graph into one tenant; ``w.id("u")`` is the node id of the key ``u``."""

    def __init__(self, graph: GraphClient, tenant: str) -> None:
        self.graph = graph
        self.tenant = tenant
        self._tick = 0

    def id(self, key: str) -> str:
        return f"{self.tenant}_{key}"

    def ids(self, *keys: str) -> list[str]:
        return [self.id(k) for k in keys]

    def at(self) -> datetime:
        """Strictly increasing times, so "most recent" caps are deterministic."""
        self._tick += 1
        return T0 + timedelta(minutes=self._tick)

    async def _write(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return

        async def work(tx: Any) -> None:
            await self.graph.run(tx, statement, rows=rows, tenant=self.tenant, t0=T0)

        await self.graph.write(work)

    async def members(self, names: dict[str, str], *, consent: dict[str, bool | None] | None = None) -> None:
        consent = consent or {}
        await self._write(MEMBERS, [
            {"id": self.id(k), "name": name, "consent": consent.get(k, True)} for k, name in names.items()
        ])

    async def follows(self, pairs: Sequence[tuple[str, str]]) -> None:
        await self._write(FOLLOWS, [{"a": self.id(a), "b": self.id(b), "at": self.at()} for a, b in pairs])

    async def communities(self, names: dict[str, str]) -> None:
        await self._write(COMMUNITIES, [{"id": self.id(k), "name": n} for k, n in names.items()])

    async def join(self, pairs: Sequence[tuple[str, str]]) -> None:
        await self._write(MEMBER_OF, [{"a": self.id(a), "b": self.id(b), "at": self.at()} for a, b in pairs])

    async def content(self, items: dict[str, tuple[float, str]]) -> None:
        """key -> (age in days at NOW, community key)."""
        await self._write(CONTENT, [
            {"id": self.id(k), "created": NOW - timedelta(days=age), "community": self.id(c)}
            for k, (age, c) in items.items()
        ])

    async def interact(self, kind: str, pairs: Sequence[tuple[str, str]]) -> None:
        await self._write(INTERACTIONS[kind], [{"a": self.id(a), "b": self.id(b), "at": self.at()} for a, b in pairs])

    async def products(self, names: dict[str, str]) -> None:
        await self._write(PRODUCTS, [{"id": self.id(k), "name": n} for k, n in names.items()])

    async def buy(self, pairs: Sequence[tuple[str, str]], *, status: str = "paid") -> None:
        await self._write(PURCHASES, [
            {"id": self.id(f"pur{self._tick}_{i}"), "member": self.id(m), "product": self.id(p),
             "at": self.at(), "status": status}
            for i, (m, p) in enumerate(pairs)
        ])


@pytest.fixture
def world(graph: GraphClient, tenant: str) -> World:
    return World(graph, tenant)


def recommender(graph: GraphClient, redis: aioredis.Redis | None = None) -> GraphRecommender:
    return GraphRecommender(graph, redis, ttl_seconds=600, clock=lambda: NOW)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def ranking(items: list[Recommendation]) -> list[tuple[str, float]]:
    return [(r.item_id, r.score) for r in items]


def adamic_adar(*degrees: int) -> float:
    return sum(1.0 / math.log(d) for d in degrees)


# ---------------------------------------------------------------------------------------
# Members: friends of friends, Adamic-Adar
# ---------------------------------------------------------------------------------------

async def follow_graph(world: World) -> None:
    """u follows a, b, c and f. Degrees (FOLLOWS in both directions): a 5, b 7, c 2, f 3.

    v1 <- a, b, c;  v2 <- a, f;  v3 <- b;  v4 <- b;  f <- a (already followed);  u <- a.
    """
    await world.members({
        "u": "You", "a": "Lin Wei", "b": "Chen Jing", "c": "Zhao Lei", "f": "Wang Fang",
        "v1": "V One", "v2": "V Two", "v3": "V Three", "v4": "V Four",
        "x1": "X1", "x2": "X2", "x3": "X3",
    })
    await world.follows([
        ("u", "a"), ("u", "b"), ("u", "c"), ("u", "f"),
        ("a", "v1"), ("a", "v2"), ("a", "f"), ("a", "u"),
        ("b", "v1"), ("b", "v3"), ("b", "v4"),
        ("x1", "b"), ("x2", "b"), ("x3", "b"),
        ("c", "v1"),
        ("f", "v2"),
    ])


async def test_members_ranked_by_adamic_adar(graph: GraphClient, world: World) -> None:
    await follow_graph(world)

    got = await recommender(graph).members(world.tenant, world.id("u"), 10)

    assert [r.item_id for r in got] == world.ids("v1", "v2", "v3", "v4")  # v3/v4 tie: by id
    expected = [adamic_adar(5, 7, 2), adamic_adar(5, 3), adamic_adar(7), adamic_adar(7)]
    assert [r.score for r in got] == pytest.approx(expected, rel=1e-12)
    assert got[0].evidence == tuple(world.ids("c", "a", "b"))  # strongest (lowest degree) first
    assert got[1].evidence == tuple(world.ids("f", "a"))
    assert got[0].reason == "Followed by Zhao Lei and 2 others you follow"
    assert got[1].reason == "Followed by Wang Fang and Lin Wei, who you follow"
    assert got[2].reason == "Followed by Chen Jing, who you follow"


async def test_members_exclude_self_and_followed_and_slice(graph: GraphClient, world: World) -> None:
    await follow_graph(world)

    got = await recommender(graph).members(world.tenant, world.id("u"), 2)

    assert [r.item_id for r in got] == world.ids("v1", "v2")
    everything = await recommender(graph).members(world.tenant, world.id("u"), 100)
    ids = {r.item_id for r in everything}
    assert world.id("u") not in ids  # a follows u back
    assert world.id("f") not in ids  # a follows f, but u already follows f
    assert not ids & set(world.ids("x1", "x2", "x3"))  # they follow b: not friends of friends


# ---------------------------------------------------------------------------------------
# Communities: co-membership
# ---------------------------------------------------------------------------------------

async def test_communities_by_co_membership(graph: GraphClient, world: World) -> None:
    await world.members({k: k.upper() for k in ("u", "p", "q", "r", "s", "o")})
    await world.communities({k: f"Community {k}" for k in ("c1", "c2", "d1", "d2", "d3", "d4")})
    await world.join([
        ("u", "c1"), ("p", "c1"), ("q", "c1"), ("r", "c1"),
        ("u", "c2"), ("q", "c2"), ("s", "c2"),
        ("p", "d1"), ("q", "d1"), ("s", "d1"),  # q shares two communities with u: counted once
        ("r", "d2"), ("o", "d2"),  # o shares no community with u
        ("p", "d3"), ("r", "d3"),
        ("o", "d4"),
    ])

    got = await recommender(graph).communities(world.tenant, world.id("u"), 10)

    assert ranking(got) == [(world.id("d1"), 3.0), (world.id("d3"), 2.0), (world.id("d2"), 1.0)]
    assert got[0].evidence == tuple(world.ids("p", "q", "s"))
    assert got[1].evidence == tuple(world.ids("p", "r"))
    assert got[2].evidence == (world.id("r"),)
    assert got[0].reason == "3 members of your communities joined it"
    assert got[2].reason == "1 member of your communities joined it"


# ---------------------------------------------------------------------------------------
# Content: random walk with restart, freshness
# ---------------------------------------------------------------------------------------

CONTENT_EDGES = {
    # (member, content): weight = number of interaction relationships between them
    ("u", "c0"): 1, ("u", "c1"): 2, ("u", "c2"): 1,
    ("a", "c1"): 1, ("a", "c3"): 2,
    ("b", "c2"): 1, ("b", "c3"): 1, ("b", "c4"): 1,
    ("d", "c0"): 1, ("d", "c5"): 1,
}
AGES = {"c0": 20.0, "c1": 8.0, "c2": 6.0, "c3": 5.0, "c4": 10.0, "c5": 2.0, "c6": 0.5}


async def content_graph(world: World) -> None:
    await world.members({"u": "You", "a": "Ann", "b": "Bo", "d": "Dee", "e": "Eve"})
    await world.communities({"run": "Running Club", "cook": "Cooking"})
    await world.content({k: (age, "run" if k in ("c3", "c5") else "cook") for k, age in AGES.items()})
    await world.interact("POSTED", [("u", "c0"), ("d", "c5")])
    await world.interact("LIKED", [("u", "c1"), ("u", "c2"), ("a", "c1"), ("a", "c3"), ("b", "c2"), ("b", "c3"),
                                   ("d", "c0"), ("e", "c6"), ("e", "c3")])
    await world.interact("COMMENTED", [("u", "c1")])
    await world.interact("SHARED", [("a", "c3")])
    await world.interact("FAVORITED", [("b", "c4")])


def reference_walk(edges: dict[tuple[str, str], int]) -> dict[str, float]:
    g = nx.Graph()
    for (m, c), weight in edges.items():
        g.add_edge(("m", m), ("c", c), weight=weight)
    pr = nx.pagerank(g, alpha=0.85, personalization={("m", "u"): 1.0}, weight="weight", tol=1e-14, max_iter=1000)
    return {f"{kind}:{key}": value for (kind, key), value in pr.items()}


async def test_content_by_random_walk_with_restart(graph: GraphClient, world: World) -> None:
    await content_graph(world)

    got = await recommender(graph).content(world.tenant, world.id("u"), 10)

    pr = reference_walk(CONTENT_EDGES)
    expected = {c: pr[f"c:{c}"] * 2 ** (-AGES[c] / 7) for c in ("c3", "c4", "c5")}
    order = sorted(expected, key=lambda c: -expected[c])
    assert [r.item_id for r in got] == world.ids(*order)
    assert [r.score for r in got] == pytest.approx([expected[c] for c in order], rel=1e-6)
    by_id = {r.item_id: r for r in got}
    # c6 is only reachable through e, who shares nothing with u; c0-c2 are u's own
    assert not set(by_id) & set(world.ids("c0", "c1", "c2", "c6"))
    assert by_id[world.id("c5")].reason == "New in Running Club"
    assert by_id[world.id("c5")].evidence == (world.id("d"),)
    assert by_id[world.id("c3")].reason == "Liked by people who like what you like"
    peers = sorted(["a", "b"], key=lambda m: -pr[f"m:{m}"])
    assert by_id[world.id("c3")].evidence == tuple(world.ids(*peers))


async def test_content_excludes_seen_beyond_the_neighbourhood_cap(
    graph: GraphClient, world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # u liked "old" first and "new" last; with a cap of one own content, only "new" seeds
    # the walk, so "old" is a candidate (a liked both) that the second statement must drop.
    await world.members({"u": "You", "a": "Ann"})
    await world.communities({"k": "K"})
    await world.content({"old": (9.0, "k"), "new": (1.0, "k"), "other": (1.0, "k")})
    await world.interact("LIKED", [("u", "old"), ("a", "old"), ("a", "other"), ("a", "new"), ("u", "new")])
    monkeypatch.setattr(recs, "MAX_OWN_CONTENT", 1)

    got = await recommender(graph).content(world.tenant, world.id("u"), 10)

    assert [r.item_id for r in got] == [world.id("other")]


# ---------------------------------------------------------------------------------------
# Products: co-purchase plus community popularity, marketing consent
# ---------------------------------------------------------------------------------------

async def product_graph(world: World) -> None:
    await world.members(
        {k: k.upper() for k in ("u", "p", "q", "r", "s", "t", "n", "z")},
        consent={"n": False, "z": None},
    )
    await world.products({"x1": "Trail Shoes", "x2": "Running Socks", "y1": "Y1", "y2": "Y2", "y3": "Y3",
                          "y4": "Y4", "zz": "Refunded Thing"})
    await world.communities({"club": "Club"})
    await world.join([("u", "club"), ("s", "club"), ("t", "club")])
    await world.buy([("u", "x1"), ("u", "x2"), ("u", "x1")])
    await world.buy([("u", "zz")], status="refunded")  # excluded, but no co-purchase seed
    await world.buy([("p", "x1"), ("p", "y1"), ("p", "y2"), ("p", "zz"),
                     ("q", "x1"), ("q", "x2"), ("q", "y1"),
                     ("r", "x2"), ("r", "y1"),
                     ("s", "y4"), ("t", "y4"), ("t", "y2"),
                     ("n", "x1"), ("z", "x1")])
    await world.buy([("r", "y3")], status="refunded")


async def test_products_by_co_purchase_and_communities(graph: GraphClient, world: World) -> None:
    await product_graph(world)

    got = await recommender(graph).products(world.tenant, world.id("u"), 10)

    # y1: co-bought with x1 by p, q and with x2 by q, r -> 4
    # y2: co-bought with x1 by p -> 1, plus t of u's community -> 1 + 0.5
    # y4: s and t of u's community -> 0.5 * 2;  y3: only a refunded purchase
    assert ranking(got) == [(world.id("y1"), 4.0), (world.id("y2"), 1.5), (world.id("y4"), 1.0)]
    assert recs.COMMUNITY_WEIGHT == 0.5
    assert [r.reason for r in got] == [
        "Often bought with Trail Shoes", "Often bought with Trail Shoes", "Popular in your communities",
    ]
    assert [r.evidence for r in got] == [
        tuple(world.ids("x1", "x2")), tuple(world.ids("x1", "club")), (world.id("club"),),
    ]


async def test_products_need_marketing_consent(graph: GraphClient, world: World) -> None:
    await product_graph(world)
    r = recommender(graph)
    # n and z bought x1 like q (who has consent); q is suggested y2 through p, so would they be
    assert world.id("y2") in [x.item_id for x in await r.products(world.tenant, world.id("q"), 10)]

    assert await r.products(world.tenant, world.id("n"), 10) == []  # marketingConsent false
    assert await r.products(world.tenant, world.id("z"), 10) == []  # never given


# ---------------------------------------------------------------------------------------
# Unknown members
# ---------------------------------------------------------------------------------------

async def test_unknown_member_gets_empty_lists(graph: GraphClient, world: World) -> None:
    await follow_graph(world)
    r = recommender(graph)
    for kind in ("members", "communities", "content", "products"):
        assert await getattr(r, kind)(world.tenant, world.id("nobody"), 10) == [], kind
    # another tenant's member is unknown too
    assert await r.members("ten_other", world.id("u"), 10) == []


# ---------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------

async def test_cache_hit_skips_the_graph(graph: GraphClient, world: World, redis_client: aioredis.Redis) -> None:
    await follow_graph(world)
    r = recommender(graph, redis_client)
    key = cache_key(world.tenant, RecommendationKind.MEMBER, world.id("u"))
    assert key == f"q:{world.tenant}:rec:member:{world.id('u')}"

    before = graph.round_trips
    first = await r.members(world.tenant, world.id("u"), 10)
    assert graph.round_trips == before + 1
    assert 0 < await redis_client.ttl(key) <= 600

    again = await r.members(world.tenant, world.id("u"), 10)
    one = await r.members(world.tenant, world.id("u"), 1)
    assert graph.round_trips == before + 1
    assert again == first
    assert one == first[:1]
    assert first == await recommender(graph).members(world.tenant, world.id("u"), 10)


async def test_invalidate_recomputes(graph: GraphClient, world: World, redis_client: aioredis.Redis) -> None:
    await follow_graph(world)
    r = recommender(graph, redis_client)
    u = world.id("u")
    await r.communities(world.tenant, u, 10)
    assert [x.item_id for x in await r.members(world.tenant, u, 10)] == world.ids("v1", "v2", "v3", "v4")

    await world.follows([("u", "v1")])  # v1 is now followed: it must disappear...
    stale = await r.members(world.tenant, u, 10)
    assert stale[0].item_id == world.id("v1")  # ...once invalidated

    await r.invalidate(world.tenant, u, [RecommendationKind.MEMBER])
    before = graph.round_trips
    got = await r.members(world.tenant, u, 10)
    assert graph.round_trips == before + 1
    assert [x.item_id for x in got] == world.ids("v2", "v3", "v4")
    # only the kinds asked for were dropped
    assert await redis_client.exists(cache_key(world.tenant, RecommendationKind.COMMUNITY, u)) == 1
    await r.invalidate(world.tenant, u)
    assert await redis_client.exists(*(cache_key(world.tenant, k, u) for k in RecommendationKind)) == 0


async def test_redis_failure_falls_back_to_the_graph(
    graph: GraphClient, world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    await follow_graph(world)
    # nobody listens on the port: every command fails with a ConnectionError (no retries)
    dead = aioredis.Redis(
        host="127.0.0.1", port=closed_port(), socket_connect_timeout=0.5, socket_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        r = recommender(graph, dead)
        with caplog.at_level(logging.WARNING, logger="graph.recommendations"):
            got = await r.members(world.tenant, world.id("u"), 10)
            await r.invalidate(world.tenant, world.id("u"))
        assert got == await recommender(graph).members(world.tenant, world.id("u"), 10)
        assert [x.item_id for x in got] == world.ids("v1", "v2", "v3", "v4")
        assert any("cache unavailable" in m for m in caplog.messages)
        assert any("could not invalidate" in m for m in caplog.messages)
    finally:
        await dead.aclose()


async def test_malformed_cache_entry_is_recomputed(graph: GraphClient, world: World, redis_client: aioredis.Redis) -> None:
    await follow_graph(world)
    key = cache_key(world.tenant, RecommendationKind.MEMBER, world.id("u"))
    await redis_client.set(key, b"not json", ex=60)

    got = await recommender(graph, redis_client).members(world.tenant, world.id("u"), 10)

    assert [x.item_id for x in got] == world.ids("v1", "v2", "v3", "v4")
    assert await redis_client.get(key) != b"not json"


# ---------------------------------------------------------------------------------------
# Reasons (pure)
# ---------------------------------------------------------------------------------------

def test_reasons_read_as_sentences() -> None:
    assert followed_by(["Lin Wei"], 1) == "Followed by Lin Wei, who you follow"
    assert followed_by(["Lin Wei", "Chen Jing"], 2) == "Followed by Lin Wei and Chen Jing, who you follow"
    assert followed_by(["Lin Wei", "Chen Jing"], 3) == "Followed by Lin Wei and 2 others you follow"
    assert followed_by(["Lin Wei"], 2) == "Followed by Lin Wei and 1 other you follow"
    assert followed_by([None], 4) == "Followed by a member and 3 others you follow"
    assert joined_by_co_members(12) == "12 members of your communities joined it"
    assert MAX_RECOMMENDATIONS == 100
