"""Personalised recommendations (个性化推荐) for one member, read from the graph and cached.

Four kinds, each computed by one or two read statements that return one record of
``collect`` lists. Every fan-out is capped inside a ``CALL (x) { ... LIMIT n }`` subquery, so
a read touches a bounded number of paths however large the graph or its hubs are (on the
embedded ArcadeDB every path row costs tens of microseconds, so the caps are what keep a
cache miss under 50 ms). Caps without ``ORDER BY`` take the relationships in store order,
which is newest first on ArcadeDB and, in practice, on Neo4j (not a guarantee of either);
an ``ORDER BY`` would have to read every relationship of a hub.

* **members** to follow: friends of friends ranked by Adamic-Adar. A candidate ``v`` is
  reached as ``u -FOLLOWS-> z -FOLLOWS-> v``; ``score(v) = Σ_z 1 / ln(deg(z))`` where
  ``deg(z)`` counts z's FOLLOWS relationships in both directions (at least 2 for any z on
  such a path; it is clamped to 2 so ``ln 1`` can never divide). ``u`` and every member u
  already follows are excluded; ties go by id. Caps: :data:`MAX_FOLLOWEES` of u's follows,
  :data:`MAX_FOLLOWS_PER_FOLLOWEE` follows of each of them. ``deg(z)`` is the degree the last
  KOL computation wrote back (``followDegree``) when there is one, else counted: counting a
  hub's relationships was the slowest part of a miss (p99 414 ms against 81 ms at 100,000
  members).
* **communities** to join: co-membership. The co-members of u (up to
  :data:`MAX_CO_MEMBERS_PER_COMMUNITY` members of each of up to
  :data:`MAX_OWN_COMMUNITIES` of u's communities) vote for the other communities they
  joined; ``score = number of distinct co-members who joined it`` (a raw count, not
  normalised by community size: a community many of your co-members chose is a good
  suggestion even when it is big). Communities u joined are excluded; ties go by id.
* **content**: random walk with restart (personalised PageRank, ``alpha = 0.85``, restart
  probability 0.15 at u) over the bipartite member–content graph whose edges are LIKED,
  COMMENTED, SHARED, FAVORITED and POSTED, undirected, weighted by the number of those
  relationships between the pair. The walk runs on u's neighbourhood, pulled in one
  statement: u's content (its :data:`MAX_OWN_CONTENT` newest interactions), up to
  :data:`MAX_PEERS_PER_CONTENT` other members per content (the :data:`MAX_PEERS` sharing
  the most content with u are kept) and each peer's :data:`MAX_ITEMS_PER_PEER` newest
  interactions, so at most 100 peers and 1,000 content. A candidate's score is its walk
  score times the freshness factor ``2 ** (-age_days / 7)`` (a one-week half-life from
  ``createdAt``; content without it is not decayed). Content u engaged with or authored is
  excluded, and so is content emptied by an erasure (``erasedAt``): the best :data:`MAX_CONTENT_CANDIDATES` are checked against all of u's
  relationships by a second statement, which also reads their community for the reason
  (so a member with many older interactions may get fewer than 100).
* **products**: co-purchase plus community popularity. ``co(y)`` sums, over the products x
  u bought, the number of other members who bought both x and y; ``popular(y)`` is the
  number of u's co-members who bought y; ``score = co +`` :data:`COMMUNITY_WEIGHT`
  ``× popular``. Refunded purchases give no signal; products u bought in any status are
  excluded. Caps: :data:`MAX_OWN_PRODUCTS` of u's products, :data:`MAX_BUYERS_PER_PRODUCT`
  buyers of each, :data:`PRODUCT_COMMUNITIES` of u's communities with
  :data:`PRODUCT_CO_MEMBERS` members each, :data:`MAX_PRODUCTS_PER_BUYER` products per
  buyer. Members without marketing consent (``marketingConsent`` not ``true``) get an
  empty list: under PIPL, personalised product suggestions are marketing and need the
  member's opt-in.

Caching: each list (the best :data:`~domain.recommendations.MAX_RECOMMENDATIONS`) is stored
as JSON under ``q:{tenant}:rec:{kind}:{member}`` for ``ttl_seconds``; ``first`` slices it.
Writes that change a member's inputs should call :meth:`GraphRecommender.invalidate`; in
particular whoever changes ``marketingConsent`` must invalidate the member's product list,
so a withdrawal takes effect at once rather than after the TTL. Redis holds derived data
only: when it is absent or fails, the list is computed from the graph and a warning logged.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
import scipy.sparse as sp  # type: ignore[import-untyped]
from redis.exceptions import RedisError

from domain.privacy import PopularReason
from domain.recommendations import (
    MAX_RECOMMENDATIONS,
    Recommendation,
    RecommendationKind,
    followed_by,
    joined_by_co_members,
    liked_by_similar_members,
    new_in,
    often_bought_with,
    popular_in_your_communities,
)
from graph.cache_stats import CACHE_STATS
from graph.client import GraphClient, now
from graph.cypher import cypher

__all__ = [
    "COMMUNITY_WEIGHT",
    "FRESHNESS_HALF_LIFE_DAYS",
    "GraphRecommender",
    "cache_key",
    "popular_cache_key",
]

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Caps (see the module docstring).
MAX_FOLLOWEES = 100
MAX_FOLLOWS_PER_FOLLOWEE = 50
MAX_OWN_COMMUNITIES = 10
MAX_CO_MEMBERS_PER_COMMUNITY = 100
MAX_OWN_CONTENT = 20
MAX_PEERS_PER_CONTENT = 20
MAX_PEERS = 100
MAX_ITEMS_PER_PEER = 10
MAX_OWN_PRODUCTS = 10
#: u's purchase lines read to exclude what u bought
MAX_BOUGHT = 500
MAX_BUYERS_PER_PRODUCT = 20
MAX_PRODUCTS_PER_BUYER = 10
PRODUCT_COMMUNITIES = 5
PRODUCT_CO_MEMBERS = 30
#: the evidence kept per recommendation
MAX_EVIDENCE = 10
#: product candidates read per signal before they are combined
MAX_PRODUCT_CANDIDATES = 1000
#: content candidates checked (seen / authored) and described by the second statement
MAX_CONTENT_CANDIDATES = MAX_RECOMMENDATIONS + MAX_RECOMMENDATIONS // 5

ALPHA = 0.85
FRESHNESS_HALF_LIFE_DAYS = 7.0
#: content at most this old is "New in <community>"
NEW_CONTENT_DAYS = 3.0
#: the weight of "members of your communities bought it" against co-purchase
COMMUNITY_WEIGHT = 0.5

_DAY_SECONDS = 86_400.0

SUGGEST_MEMBERS = cypher(
    """
    MATCH (u:Member {id: $memberId}) WITH * WHERE u.tenantId = $tenant
    CALL (u) {
      MATCH (u)-[:FOLLOWS]->(z:Member)
      RETURN collect(z) AS followed
    }
    CALL (u, followed) {
      UNWIND followed[..$maxFollowees] AS z
      WITH u, followed, z,
           CASE WHEN z.followDegree IS NULL THEN COUNT { (z)-[:FOLLOWS]-() } ELSE z.followDegree END AS deg
      CALL (u, z) {
        MATCH (z)-[:FOLLOWS]->(v:Member)
        WHERE v <> u
        WITH v LIMIT $maxPerFollowee
        RETURN v
      }
      WITH z, deg, v WHERE NOT v IN followed
      WITH v, sum(1.0 / log(CASE WHEN deg < 2 THEN 2 ELSE deg END)) AS score,
           collect({id: z.id, name: z.displayName, deg: deg}) AS via
      ORDER BY score DESC, v.id LIMIT $limit
      RETURN collect({id: v.id, score: score, via: via}) AS rows
    }
    RETURN rows
    """
)

SUGGEST_COMMUNITIES = cypher(
    """
    MATCH (u:Member {id: $memberId}) WITH * WHERE u.tenantId = $tenant
    CALL (u) {
      MATCH (u)-[:MEMBER_OF]->(c:Community)
      RETURN collect(c) AS joined
    }
    CALL (u, joined) {
      UNWIND joined[..$maxCommunities] AS c
      CALL (u, c) {
        MATCH (c)<-[:MEMBER_OF]-(w:Member)
        WHERE w <> u
        WITH w LIMIT $maxCoMembers
        RETURN w
      }
      WITH DISTINCT joined, w
      MATCH (w)-[:MEMBER_OF]->(d:Community)
      WHERE NOT d IN joined
      WITH d, count(w) AS n, collect(w.id)[..$maxEvidence] AS via
      ORDER BY n DESC, d.id LIMIT $limit
      RETURN collect({id: d.id, score: n, via: via}) AS rows
    }
    RETURN rows
    """
)

CONTENT_NEIGHBOURHOOD = cypher(
    """
    MATCH (u:Member {id: $memberId}) WITH * WHERE u.tenantId = $tenant
    CALL (u) {
      MATCH (u)-[:LIKED|COMMENTED|SHARED|FAVORITED|POSTED]->(c:Content)
      WITH c LIMIT $maxOwn
      WITH c, count(*) AS weight
      RETURN collect(c) AS own, collect({id: c.id, weight: weight}) AS ownLinks
    }
    CALL (u, own) {
      UNWIND own AS c
      CALL (u, c) {
        MATCH (c)<-[:LIKED|COMMENTED|SHARED|FAVORITED|POSTED]-(w:Member)
        WHERE w <> u
        WITH w LIMIT $maxPeersPerContent
        RETURN w, count(*) AS weight
      }
      WITH w, collect({id: c.id, weight: weight}) AS links
      ORDER BY size(links) DESC, w.id LIMIT $maxPeers
      RETURN collect(w) AS peers, collect({id: w.id, links: links}) AS bridges
    }
    CALL (peers) {
      UNWIND peers AS w
      CALL (w) {
        MATCH (w)-[:LIKED|COMMENTED|SHARED|FAVORITED|POSTED]->(c:Content)
        WITH c LIMIT $maxItemsPerPeer
        WITH c, count(*) AS weight
        RETURN collect(c.id) AS items, collect(weight) AS weights,
               collect(toString(c.createdAt)) AS created
      }
      RETURN collect({id: w.id, items: items, weights: weights, created: created}) AS walks
    }
    RETURN ownLinks, bridges, walks
    """
)

CONTENT_CANDIDATES = cypher(
    """
    MATCH (u:Member {id: $memberId}) WITH * WHERE u.tenantId = $tenant
    UNWIND $ids AS id
    MATCH (c:Content {id: id}) WITH * WHERE c.tenantId = $tenant AND c.erasedAt IS NULL
      AND NOT EXISTS { (u)-[:LIKED|COMMENTED|SHARED|FAVORITED|POSTED]->(c) }
    OPTIONAL MATCH (c)-[:IN]->(k:Community)
    RETURN collect({id: c.id, community: k.name}) AS rows
    """
)

SUGGEST_PRODUCTS = cypher(
    """
    MATCH (u:Member {id: $memberId}) WITH * WHERE u.tenantId = $tenant AND u.marketingConsent = true
    CALL (u) {
      MATCH (u)-[:PLACED]->(p:Purchase)-[:OF]->(x:Product)
      WITH x, p LIMIT $maxBought
      WITH x, max(CASE WHEN coalesce(p.status, 'paid') <> 'refunded' THEN 1 ELSE 0 END) AS kept
      RETURN collect(x) AS bought, collect(CASE WHEN kept = 1 THEN x END) AS seeds
    }
    CALL (u, seeds, bought) {
      UNWIND seeds[..$maxOwn] AS x
      CALL (u, x) {
        MATCH (x)<-[:OF]-(p:Purchase)<-[:PLACED]-(w:Member)
        WHERE w <> u AND coalesce(p.status, 'paid') <> 'refunded'
        WITH DISTINCT w LIMIT $maxBuyers
        RETURN w
      }
      CALL (w) {
        MATCH (w)-[:PLACED]->(q:Purchase)-[:OF]->(y:Product)
        WHERE coalesce(q.status, 'paid') <> 'refunded'
        WITH DISTINCT y LIMIT $maxPerBuyer
        RETURN y
      }
      WITH x, w, y WHERE NOT y IN bought
      WITH y, x, count(DISTINCT w) AS n
      WITH y, sum(n) AS score, collect({id: x.id, name: x.name, n: n}) AS withs
      ORDER BY score DESC, y.id LIMIT $limit
      RETURN collect({id: y.id, score: score, withs: withs}) AS co
    }
    CALL (u, bought) {
      MATCH (u)-[:MEMBER_OF]->(c:Community)
      WITH u, bought, c LIMIT $maxCommunities
      CALL (u, c) {
        MATCH (c)<-[:MEMBER_OF]-(w:Member)
        WHERE w <> u
        WITH w LIMIT $maxCoMembers
        RETURN w
      }
      CALL (w) {
        MATCH (w)-[:PLACED]->(q:Purchase)-[:OF]->(y:Product)
        WHERE coalesce(q.status, 'paid') <> 'refunded'
        WITH DISTINCT y LIMIT $maxPerBuyer
        RETURN y
      }
      WITH c, w, y WHERE NOT y IN bought
      WITH y, count(DISTINCT w) AS n, collect(DISTINCT c.id) AS via
      ORDER BY n DESC, y.id LIMIT $limit
      RETURN collect({id: y.id, score: n, via: via}) AS popular
    }
    RETURN co, popular
    """
)

# Non-personalised lists (for members who refused profiling, PIPL Art. 24): the same for
# every member of the tenant, computed from counts only and cached per tenant.
# Members: the most influential of the last tenant-wide KOL computation (an index seek on
# (tenantId, kolRank)); before the first computation, the most followed (a scan of the tenant).
POPULAR_MEMBERS = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    WHERE m.kolRank <= $ranks AND m.erasedAt IS NULL AND coalesce(m.profilingWithdrawn, false) = false
    WITH m ORDER BY m.kolRank LIMIT $limit
    RETURN collect({id: m.id, score: m.kolScore}) AS rows
    """
)
POPULAR_MEMBERS_BY_FOLLOWERS = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    WHERE m.erasedAt IS NULL AND coalesce(m.profilingWithdrawn, false) = false
    WITH m, COUNT { (m)<-[:FOLLOWS]-(:Member) } AS n
    WHERE n > 0
    WITH m, n ORDER BY n DESC, m.id LIMIT $limit
    RETURN collect({id: m.id, score: n}) AS rows
    """
)
POPULAR_COMMUNITIES = cypher(
    """
    MATCH (c:Community {tenantId: $tenant})
    WITH c, COUNT { (c)<-[:MEMBER_OF]-(:Member) } AS n
    WHERE n > 0
    WITH c, n ORDER BY n DESC, c.id LIMIT $limit
    RETURN collect({id: c.id, score: n}) AS rows
    """
)
POPULAR_CONTENT = cypher(
    """
    MATCH (c:Content {tenantId: $tenant})
    WHERE c.createdAt >= $since AND c.erasedAt IS NULL
    WITH c ORDER BY c.createdAt DESC LIMIT $window
    WITH c, COUNT { (c)<-[:LIKED|COMMENTED|SHARED|FAVORITED]-(:Member) } AS n
    WITH c, n ORDER BY n DESC, c.createdAt DESC, c.id LIMIT $limit
    RETURN collect({id: c.id, score: n}) AS rows
    """
)
POPULAR_PRODUCTS = cypher(
    """
    MATCH (x:Product {tenantId: $tenant})
    WITH x, size([(x)<-[:OF]-(p:Purchase) WHERE coalesce(p.status, 'paid') <> 'refunded' | p]) AS n
    WHERE n > 0
    WITH x, n ORDER BY n DESC, x.id LIMIT $limit
    RETURN collect({id: x.id, score: n}) AS rows
    """
)
_POPULAR = {
    RecommendationKind.MEMBER: POPULAR_MEMBERS,
    RecommendationKind.COMMUNITY: POPULAR_COMMUNITIES,
    RecommendationKind.CONTENT: POPULAR_CONTENT,
    RecommendationKind.PRODUCT: POPULAR_PRODUCTS,
}
#: the newest content the popular-content list is picked from, posted within POPULAR_CONTENT_DAYS
#: (all content when nothing was posted in that time)
POPULAR_CONTENT_WINDOW = 1_000
POPULAR_CONTENT_DAYS = 30


def cache_key(tenant: str, kind: RecommendationKind, member_id: str) -> str:
    """The Redis key of one member's cached list of one kind."""
    return f"q:{tenant}:rec:{kind.value}:{member_id}"


def popular_cache_key(tenant: str, kind: RecommendationKind) -> str:
    """The Redis key of the tenant's non-personalised list of one kind."""
    return f"q:{tenant}:rec:popular:{kind.value}"


def _ranked(items: Iterable[Recommendation]) -> list[Recommendation]:
    """Best first (score descending, then id), cut to the cached length."""
    return sorted(items, key=lambda r: (-r.score, r.item_id))[:MAX_RECOMMENDATIONS]


def _encode(items: Sequence[Recommendation]) -> str:
    return json.dumps(
        [[r.item_id, r.score, r.reason, list(r.evidence)] for r in items], separators=(",", ":")
    )


def _decode(raw: bytes | str) -> list[Recommendation]:
    rows = json.loads(raw)
    if not isinstance(rows, list):
        raise TypeError("a cached recommendation list must be a JSON array")
    return [
        Recommendation(item_id=str(i), score=float(s), reason=str(why), evidence=tuple(str(e) for e in ev))
        for i, s, why, ev in rows
    ]


def _personalized_pagerank(
    n: int, src: I64, dst: I64, weight: F64, source: int, *, alpha: float = ALPHA,
    tol: float = 1e-9, max_iter: int = 200,
) -> F64:
    """Random walk with restart at *source* on a weighted directed graph of *n* nodes.

    Power iteration of ``r = (1 - alpha) e_source + alpha P^T r`` from ``r = e_source``,
    where ``P`` follows an out-edge with probability proportional to its weight and a node
    without out-edges sends its mass back to *source*. The iteration map is an
    ``alpha``-contraction in L1, so after ``k`` steps the error is at most ``2 alpha^k``:
    it runs ``ceil(log(tol / 2) / log(alpha))`` steps (132 for the defaults), at most
    *max_iter*, with no per-step convergence test.
    """
    out = np.bincount(src, weights=weight, minlength=n)
    dangling = np.flatnonzero(out == 0)
    # alpha * P^T: row dst gathers alpha * w / out(src) from each of its in-edges
    step = sp.csr_matrix((alpha * weight / out[src], (dst, src)), shape=(n, n))
    steps = min(max_iter, math.ceil(math.log(tol / 2.0) / math.log(alpha)))
    r = np.zeros(n)
    r[source] = 1.0
    for _ in range(steps):
        nxt: F64 = step @ r
        nxt[source] += 1.0 - alpha + (alpha * float(r[dangling].sum()) if dangling.size else 0.0)
        r = nxt
    return r


def _parse_time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.split("[", 1)[0])  # drop a "[Zone/Id]" suffix
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _ages_in_days(created: Sequence[str | None], at: datetime) -> F64:
    """Ages at *at*, in days, of ``toString(datetime)`` values (NaN when unknown; never < 0).

    Values without an offset (ArcadeDB returns UTC without one) or ending in ``Z`` are
    parsed by numpy in one call; values with an offset or a zone id one by one.
    """
    ages = np.full(len(created), np.nan)
    at_utc = at.astimezone(UTC)
    plain_at: list[int] = []
    plain: list[str] = []
    for i, text in enumerate(created):
        if not text:
            continue
        body = text.removesuffix("Z")
        if "+" in body or "[" in body or body.count("-") > 2:
            when = _parse_time(text)
            if when is not None:
                ages[i] = (at_utc - when).total_seconds() / _DAY_SECONDS
        else:
            plain_at.append(i)
            plain.append(body)
    if plain:
        try:
            stamps = np.array(plain, dtype="datetime64[us]")
        except ValueError:  # something unexpected: one by one
            for i, body in zip(plain_at, plain, strict=True):
                when = _parse_time(body)
                if when is not None:
                    ages[i] = (at_utc - when).total_seconds() / _DAY_SECONDS
        else:
            now64 = np.datetime64(at_utc.replace(tzinfo=None), "us")
            micros = (now64 - stamps).astype(np.int64)
            ages[plain_at] = micros / (_DAY_SECONDS * 1e6)
    clipped: F64 = np.maximum(ages, 0.0)  # NaN stays NaN
    return clipped


def _freshness(ages: F64) -> F64:
    """``2 ** (-age_days / FRESHNESS_HALF_LIFE_DAYS)``; an unknown age (NaN) is not decayed."""
    factors: F64 = np.where(np.isnan(ages), 1.0, np.exp2(-np.nan_to_num(ages) / FRESHNESS_HALF_LIFE_DAYS))
    return factors


def _best(scores: F64, ids: Sequence[str], k: int) -> list[int]:
    """Indices of the *k* best (score descending, then id) of *scores*."""
    if len(ids) > k:
        threshold = np.partition(scores, len(ids) - k)[len(ids) - k]
        pool = np.flatnonzero(scores >= threshold).tolist()
    else:
        pool = list(range(len(ids)))
    values = scores.tolist()
    return sorted(pool, key=lambda i: (-values[i], ids[i]))[:k]


class GraphRecommender:
    """Recommendations for one member at a time, from the graph, cached in Redis.

    Parameters
    ----------
    graph:
        The graph client (reads run as auto-commit queries).
    redis:
        The cache, or ``None`` to always read the graph.
    ttl_seconds:
        How long a cached list lives.
    clock:
        The current time (content freshness); tests pass a fixed one.
    """

    def __init__(
        self, graph: GraphClient, redis: aioredis.Redis | None, *, ttl_seconds: int = 600,
        clock: Callable[[], datetime] = now,
    ) -> None:
        if ttl_seconds < 1:
            raise ValueError("ttl_seconds must be at least 1")
        self.graph = graph
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    # ----------------------------------------------------------------------------------
    # Public API
    # ----------------------------------------------------------------------------------

    async def members(self, tenant: str, member_id: str, first: int) -> list[Recommendation]:
        """Members to follow (friends of friends, Adamic-Adar), best first."""
        return await self._cached(tenant, RecommendationKind.MEMBER, member_id, first, self._members)

    async def communities(self, tenant: str, member_id: str, first: int) -> list[Recommendation]:
        """Communities to join (co-membership), best first."""
        return await self._cached(tenant, RecommendationKind.COMMUNITY, member_id, first, self._communities)

    async def content(self, tenant: str, member_id: str, first: int) -> list[Recommendation]:
        """Content to read (random walk with restart, freshness-boosted), best first."""
        return await self._cached(tenant, RecommendationKind.CONTENT, member_id, first, self._content)

    async def products(self, tenant: str, member_id: str, first: int) -> list[Recommendation]:
        """Products to buy (co-purchase and community popularity); empty without marketing consent."""
        return await self._cached(tenant, RecommendationKind.PRODUCT, member_id, first, self._products)

    async def popular(self, tenant: str, kind: RecommendationKind, member_id: str, first: int) -> list[Recommendation]:
        """The tenant's most influential members (by the last KOL computation; most followed before
        the first one), most joined communities, most engaged recent content (of the newest
        :data:`POPULAR_CONTENT_WINDOW` posted in :data:`POPULAR_CONTENT_DAYS`) or best-selling
        products, best first.

        The same list for every member (only *member_id* itself is left out): it uses no
        data about the member, for members who refused profiling. Members who refused
        profiling or were erased are not listed. Products still need marketing consent;
        the caller checks it. Cached per tenant for ``ttl_seconds``.
        """
        if first <= 0:
            return []
        key = popular_cache_key(tenant, kind)
        items: list[Recommendation] | None = None
        if self.redis is not None:
            try:
                raw = await self.redis.get(key)
                items = None if raw is None else _decode(raw)
            except (RedisError, OSError, ValueError, TypeError) as exc:
                log.warning("popular %s list not read from the cache: %s", kind.value, exc)
        if items is None:
            rows = await self._popular_rows(tenant, kind)
            reason = PopularReason[kind.name].value
            items = [Recommendation(item_id=r["id"], score=float(r["score"] or 0.0), reason=reason, evidence=())
                     for r in rows]
            if self.redis is not None:
                try:
                    await self.redis.set(key, _encode(items), ex=self.ttl_seconds)
                except (RedisError, OSError) as exc:
                    log.warning("could not cache the popular %s list: %s", kind.value, exc)
        return [r for r in items if r.item_id != member_id][:first]

    async def _popular_rows(self, tenant: str, kind: RecommendationKind) -> list[Mapping[str, Any]]:
        limit = MAX_RECOMMENDATIONS + 1
        since = self.clock() - timedelta(days=POPULAR_CONTENT_DAYS)
        row = await self.graph.read_one(_POPULAR[kind], tenant=tenant, limit=limit, ranks=2 * limit,
                                        window=POPULAR_CONTENT_WINDOW, since=since)
        rows: list[Mapping[str, Any]] = list(row["rows"]) if row else []
        if rows or kind not in (RecommendationKind.MEMBER, RecommendationKind.CONTENT):
            return rows
        if kind is RecommendationKind.MEMBER:  # no KOL computation yet
            row = await self.graph.read_one(POPULAR_MEMBERS_BY_FOLLOWERS, tenant=tenant, limit=limit)
        else:  # nothing posted lately: all content
            row = await self.graph.read_one(POPULAR_CONTENT, tenant=tenant, limit=limit,
                                            window=POPULAR_CONTENT_WINDOW, since=datetime(1970, 1, 1, tzinfo=UTC))
        return list(row["rows"]) if row else []

    async def invalidate(
        self, tenant: str, member_id: str, kinds: Iterable[RecommendationKind] = tuple(RecommendationKind),
    ) -> None:
        """Forget the member's cached lists of *kinds* (one DEL); a Redis failure is logged."""
        keys = [cache_key(tenant, kind, member_id) for kind in dict.fromkeys(kinds)]
        if self.redis is None or not keys:
            return
        try:
            await self.redis.delete(*keys)
        except (RedisError, OSError) as exc:
            log.warning("could not invalidate cached recommendations of %s: %s", member_id, exc)

    # ----------------------------------------------------------------------------------
    # Cache
    # ----------------------------------------------------------------------------------

    async def _cached(
        self, tenant: str, kind: RecommendationKind, member_id: str, first: int,
        compute: Callable[[str, str], Awaitable[list[Recommendation]]],
    ) -> list[Recommendation]:
        if first <= 0:
            return []
        key = cache_key(tenant, kind, member_id)
        usable = self.redis is not None
        if self.redis is not None:
            try:
                raw = await self.redis.get(key)
            except (RedisError, OSError) as exc:
                log.warning("recommendation cache unavailable, reading the graph: %s", exc)
                usable = False
                raw = None
            if raw is not None:
                try:
                    cached = _decode(raw)[:first]
                except (ValueError, TypeError) as exc:
                    log.warning("ignoring a malformed cached recommendation list %s: %s", key, exc)
                else:
                    CACHE_STATS.hit("recommendations_" + kind.value)
                    return cached
            CACHE_STATS.miss("recommendations_" + kind.value)
        items = await compute(tenant, member_id)
        if usable and self.redis is not None:
            try:
                await self.redis.set(key, _encode(items), ex=self.ttl_seconds)
            except (RedisError, OSError) as exc:
                log.warning("could not cache recommendations under %s: %s", key, exc)
        return items[:first]

    # ----------------------------------------------------------------------------------
    # Computation (uncached)
    # ----------------------------------------------------------------------------------

    async def _members(self, tenant: str, member_id: str) -> list[Recommendation]:
        row = await self.graph.read_one(
            SUGGEST_MEMBERS, tenant=tenant, memberId=member_id, maxFollowees=MAX_FOLLOWEES,
            maxPerFollowee=MAX_FOLLOWS_PER_FOLLOWEE, limit=MAX_RECOMMENDATIONS,
        )
        found: list[Recommendation] = []
        for r in row["rows"] if row else []:
            # strongest evidence first: a followee with fewer follows says more about you
            via = sorted(r["via"], key=lambda z: (int(z["deg"]), z["id"]))
            score = math.fsum(1.0 / math.log(max(int(z["deg"]), 2)) for z in via)
            found.append(Recommendation(
                item_id=r["id"],
                score=score,
                reason=followed_by([z["name"] for z in via[:2]], len(via)),
                evidence=tuple(z["id"] for z in via[:MAX_EVIDENCE]),
            ))
        return _ranked(found)

    async def _communities(self, tenant: str, member_id: str) -> list[Recommendation]:
        row = await self.graph.read_one(
            SUGGEST_COMMUNITIES, tenant=tenant, memberId=member_id, maxCommunities=MAX_OWN_COMMUNITIES,
            maxCoMembers=MAX_CO_MEMBERS_PER_COMMUNITY, maxEvidence=MAX_EVIDENCE, limit=MAX_RECOMMENDATIONS,
        )
        return _ranked(
            Recommendation(
                item_id=r["id"], score=float(r["score"]), reason=joined_by_co_members(int(r["score"])),
                evidence=tuple(sorted(r["via"])),
            )
            for r in (row["rows"] if row else [])
        )

    async def _content(self, tenant: str, member_id: str) -> list[Recommendation]:
        at = self.clock()
        row = await self.graph.read_one(
            CONTENT_NEIGHBOURHOOD, tenant=tenant, memberId=member_id, maxOwn=MAX_OWN_CONTENT,
            maxPeersPerContent=MAX_PEERS_PER_CONTENT, maxPeers=MAX_PEERS, maxItemsPerPeer=MAX_ITEMS_PER_PEER,
        )
        if row is None or not row["ownLinks"]:
            return []
        walk = _Neighbourhood(member_id, row)
        if not walk.candidates:
            return []
        scores = walk.rank()
        ages = _ages_in_days(walk.created, at)
        boosted = scores[walk.candidate_nodes()] * _freshness(ages)
        best = _best(boosted, walk.candidates, MAX_CONTENT_CANDIDATES)
        details = await self.graph.read_one(
            CONTENT_CANDIDATES, tenant=tenant, memberId=member_id, ids=[walk.candidates[i] for i in best],
        )
        unseen = {d["id"]: d["community"] for d in (details["rows"] if details else [])}
        found: list[Recommendation] = []
        for i in best:
            item = walk.candidates[i]
            if item not in unseen:
                continue  # u engaged with it or wrote it (beyond the neighbourhood's cap)
            community = unseen[item]
            age = float(ages[i])
            fresh = not math.isnan(age) and age <= NEW_CONTENT_DAYS and bool(community)
            found.append(Recommendation(
                item_id=item,
                score=float(boosted[i]),
                reason=new_in(str(community)) if fresh else liked_by_similar_members(),
                evidence=walk.engaged_members(i, scores)[:MAX_EVIDENCE],
            ))
        return found[:MAX_RECOMMENDATIONS]

    async def _products(self, tenant: str, member_id: str) -> list[Recommendation]:
        row = await self.graph.read_one(
            SUGGEST_PRODUCTS, tenant=tenant, memberId=member_id, maxBought=MAX_BOUGHT, maxOwn=MAX_OWN_PRODUCTS,
            maxBuyers=MAX_BUYERS_PER_PRODUCT, maxPerBuyer=MAX_PRODUCTS_PER_BUYER,
            maxCommunities=PRODUCT_COMMUNITIES, maxCoMembers=PRODUCT_CO_MEMBERS, limit=MAX_PRODUCT_CANDIDATES,
        )
        if row is None:
            return []  # unknown member, or no marketing consent
        co: dict[str, Mapping[str, Any]] = {r["id"]: r for r in row["co"]}
        popular: dict[str, Mapping[str, Any]] = {r["id"]: r for r in row["popular"]}
        found: list[Recommendation] = []
        for item in co.keys() | popular.keys():
            withs = sorted(co[item]["withs"], key=lambda w: (-int(w["n"]), w["id"])) if item in co else []
            via = sorted(popular[item]["via"]) if item in popular else []
            co_score = float(co[item]["score"]) if item in co else 0.0
            pop_score = float(popular[item]["score"]) if item in popular else 0.0
            reason = (
                often_bought_with(str(withs[0]["name"] or withs[0]["id"])) if withs
                else popular_in_your_communities()
            )
            found.append(Recommendation(
                item_id=item,
                score=co_score + COMMUNITY_WEIGHT * pop_score,
                reason=reason,
                evidence=tuple([w["id"] for w in withs][:MAX_EVIDENCE] + via[:MAX_EVIDENCE]),
            ))
        return _ranked(found)


class _Neighbourhood:
    """u's bipartite member–content neighbourhood (from ``CONTENT_NEIGHBOURHOOD``).

    Members are numbered from 0 (u), content after them; ``candidates`` are the content
    ids reached through peers that are not among u's own, with ``created`` beside them.
    """

    def __init__(self, member_id: str, row: Mapping[str, Any]) -> None:
        members: dict[str, int] = {member_id: 0}
        contents: dict[str, int] = {}
        weights: dict[tuple[int, int], float] = {}
        for link in row["ownLinks"]:
            weights[(0, contents.setdefault(link["id"], len(contents)))] = float(link["weight"])
        for peer in row["bridges"]:
            m = members.setdefault(peer["id"], len(members))
            for link in peer["links"]:
                weights[(m, contents.setdefault(link["id"], len(contents)))] = float(link["weight"])
        self.candidates: list[str] = []
        self.created: list[str | None] = []
        for peer in row["walks"]:
            m = members.setdefault(peer["id"], len(members))
            for item, weight, when in zip(peer["items"], peer["weights"], peer["created"], strict=True):
                c = contents.get(item)
                if c is None:
                    c = contents[item] = len(contents)
                    self.candidates.append(item)
                    self.created.append(when)
                weights[(m, c)] = float(weight)
        # content first seen in a bridge is u's own; candidates are numbered after them
        self._first_candidate = len(contents) - len(self.candidates)
        self.members = list(members)
        self.contents = contents
        self.weights = weights
        self._engaged: dict[int, list[int]] | None = None

    def candidate_nodes(self) -> I64:
        """The node numbers of ``candidates``, in order."""
        start = len(self.members) + self._first_candidate
        return np.arange(start, start + len(self.candidates), dtype=np.int64)

    def rank(self) -> F64:
        """Personalised PageRank of every node (members, then content), restarting at u."""
        pairs = np.array(list(self.weights), dtype=np.int64).reshape(-1, 2)
        m = pairs[:, 0]
        c = pairs[:, 1] + len(self.members)
        w = np.fromiter(self.weights.values(), dtype=np.float64, count=len(self.weights))
        n = len(self.members) + len(self.contents)
        both = np.concatenate
        return _personalized_pagerank(n, both([m, c]), both([c, m]), both([w, w]), 0)

    def engaged_members(self, candidate: int, scores: F64) -> tuple[str, ...]:
        """The peers linked to ``candidates[candidate]``, highest walk score first."""
        if self._engaged is None:
            self._engaged = {}
            for m, c in self.weights:
                if c >= self._first_candidate:
                    self._engaged.setdefault(c, []).append(m)
        linked = self._engaged.get(self._first_candidate + candidate, [])
        ranked = sorted(linked, key=lambda m: (-float(scores[m]), self.members[m]))
        return tuple(self.members[m] for m in ranked)
