"""KOL / KOC rankings: computed off the request path, served from Redis.

:func:`compute` pulls the engagement graph of a scope (:mod:`graph.projection`), runs the
algorithms (:mod:`graph.algorithms`, :mod:`graph.authenticity`) and scores every member
(:func:`domain.influence.score_influence`). :class:`KolStore` writes a run under its own
keys and then swaps one pointer, so readers keep getting the previous ranking until the
new one is complete; a Redis lock makes sure two processes never compute the same scope
at once. :func:`write_back` stores the tenant-wide scores on the members in the graph so
member lists can filter on them.

Redis layout for tenant ``t``, scope ``s`` (``tenant``, ``com_…`` or ``tag_…``), run ``r``:

* ``q:{t}:kol:{s}:cur`` — the current run id;
* ``q:{t}:kol:{s}:{r}:KOL`` / ``:KOC`` — sorted sets member → score;
* ``q:{t}:kol:{s}:{r}:c`` — hash member → JSON list of :data:`COMPONENTS`;
* ``q:{t}:kol:{s}:{r}:meta`` — computedAt (µs), graphVersion, members, timings;
* ``q:{t}:kol:{s}:lock`` — held while a run computes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import redis.asyncio as aioredis

from domain.growth import RankedMember, RankingPage, Scope, ScopeKind
from domain.influence import (
    InfluenceInputs,
    InfluenceScores,
    InfluenceWeights,
    KocRule,
    MemberInfluence,
    RankingKind,
    score_influence,
)
from graph import algorithms, authenticity
from graph.client import GraphClient, Tx, from_micros, now, to_datetime, to_micros
from graph.cypher import cypher
from graph.locks import ComputeLock
from graph.projection import EngagementGraph, pull_engagement

__all__ = [
    "COMPONENTS",
    "InteractionWeights",
    "KolRun",
    "KolStore",
    "RankedMember",
    "RankingPage",
    "compute",
    "inputs_from",
    "write_back",
]

log = logging.getLogger(__name__)

#: the order of the per-member component list stored in Redis
COMPONENTS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(MemberInfluence))

WRITE_BACK = cypher(
    """
    UNWIND range(0, size($ids) - 1) AS i
    MATCH (m:Member {id: $ids[i]}) WITH * WHERE m.tenantId = $tenant AND coalesce(m.profilingWithdrawn, false) = false
    SET m.kolScore = $scores[i], m.kocScore = $kocScores[i], m.isKoc = $isKoc[i], m.kolRank = $ranks[i],
        m.kocRank = $kocRanks[i], m.kolComponents = $components[i], m.kolComputedAt = $at,
        m.kolGraphVersion = $version, m.kolTotal = $kolTotal, m.kocTotal = $kocTotal,
        m.followDegree = $degrees[i]
    """
)
# The tenant-wide ranking read back from the members when Redis is unavailable: a range
# of ranks is an index seek on (tenantId, kolRank) / (tenantId, kocRank); the member
# ranked first carries the run's totals and time.
KOL_FROM_GRAPH = cypher(
    """
    MATCH (top:Member {tenantId: $tenant, kolRank: 1})
    CALL () {
      MATCH (m:Member {tenantId: $tenant}) WHERE m.kolRank > $offset AND m.kolRank <= $offset + $limit
      WITH m ORDER BY m.kolRank
      RETURN collect([m.id, m.kolRank, m.kolComponents, m.kolScore]) AS rows
    }
    RETURN rows, top.kolTotal AS total, top.kolComputedAt AS computedAt, top.kolGraphVersion AS version
    """
)
KOC_FROM_GRAPH = cypher(
    """
    MATCH (top:Member {tenantId: $tenant, kolRank: 1})
    CALL () {
      MATCH (m:Member {tenantId: $tenant}) WHERE m.kocRank > $offset AND m.kocRank <= $offset + $limit
      WITH m ORDER BY m.kocRank
      RETURN collect([m.id, m.kocRank, m.kolComponents, m.kocScore]) AS rows
    }
    RETURN rows, top.kocTotal AS total, top.kolComputedAt AS computedAt, top.kolGraphVersion AS version
    """
)
MEMBER_KOL_FROM_GRAPH = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    RETURN m.kolRank AS rank, m.kolComponents AS components, m.kolComputedAt AS computedAt
    """
)


#: edge visits the sampled betweenness may spend (samples x relationships)
BETWEENNESS_EDGE_BUDGET = 2e8


@dataclass(frozen=True, slots=True)
class InteractionWeights:
    """How much one interaction counts as an endorsement in the influence graph."""

    follow: float = 1.0
    like: float = 1.0
    favorite: float = 2.0
    comment: float = 3.0
    share: float = 4.0


@dataclass(frozen=True)
class KolRun:
    """One computed ranking of one scope."""

    tenant: str
    scope: Scope
    member_ids: list[str]
    scores: InfluenceScores
    computed_at: datetime
    graph_version: int
    timings: dict[str, float]
    #: FOLLOWS relationships per member, both directions (written back for recommendations)
    follow_degree: npt.NDArray[np.int64] | None = None


def inputs_from(g: EngagementGraph, *, weights: InteractionWeights | None = None,
                bridging_samples: int = 128, seed: int = 7) -> InfluenceInputs:
    """The raw per-member numbers of :class:`InfluenceInputs` from a projection."""
    n = g.n
    weights = weights or InteractionWeights()
    kind_weight = np.array([weights.like, weights.comment, weights.share, weights.favorite])
    src = np.concatenate([g.follow_src, g.inter_src]).astype(np.int32)
    dst = np.concatenate([g.follow_dst, g.inter_dst]).astype(np.int32)
    w = np.concatenate([np.full(len(g.follow_src), weights.follow), kind_weight[g.inter_kind]]).astype(np.float64)
    pagerank = algorithms.pagerank(n, src, dst, w)
    _, followers = algorithms.degrees(n, g.follow_src, g.follow_dst)
    reach = algorithms.two_hop_reach(n, g.follow_src, g.follow_dst, seed=seed)
    # Each Brandes source costs a pass over every edge: bound the work (about 2e8 edge visits),
    # never below 16 sources; the bridging component is a percentile, which few samples rank well.
    samples = min(n, bridging_samples, max(16, int(BETWEENNESS_EDGE_BUDGET // max(len(src), 1))))
    bridging = algorithms.approximate_betweenness(n, src, dst, samples=samples, seed=seed)
    bought = g.paid_purchases > 0
    invitees_bought = np.bincount(g.ref_src[bought[g.ref_dst]], minlength=n).astype(np.int64)
    invitee_gmv = np.bincount(g.ref_src, weights=g.paid_gmv[g.ref_dst], minlength=n).astype(np.int64)
    ring = authenticity.reciprocal_ring_share(n, g.inter_src, g.inter_dst)
    burst = authenticity.young_burst_share(n, g.inter_src, g.inter_dst, g.inter_at, g.joined_at)
    return InfluenceInputs(
        pagerank=pagerank, followers=followers, two_hop_reach=reach,
        interactions_received=np.bincount(g.inter_dst, minlength=n).astype(np.int64),
        posts=g.posts.astype(np.int64), invitees_bought=invitees_bought,
        attributed_gmv=g.attributed_gmv + invitee_gmv, bridging=bridging,
        suspicion=authenticity.suspicion(ring, burst),
    )


DEFAULT_WEIGHTS = InfluenceWeights()
DEFAULT_KOC = KocRule()


async def compute(graph: GraphClient, tenant: str, scope: Scope, *, graph_version: int = 0,
                  weights: InfluenceWeights = DEFAULT_WEIGHTS, koc: KocRule = DEFAULT_KOC,
                  on_stage: Callable[[str], None] | None = None) -> KolRun:
    """Pull, run the algorithms and score one scope (no Redis, no writes).

    *on_stage* is called with ``"projection"``, ``"algorithms"`` and ``"scoring"`` as each
    stage finishes (the CLI's progress bar).
    """
    stage = on_stage or (lambda _: None)
    started = time.perf_counter()
    projection = await pull_engagement(graph, tenant, scope)
    pulled = time.perf_counter()
    stage("projection")
    # The numeric work takes seconds on a large tenant: run it off the event loop so the
    # server keeps answering requests while a scheduled recompute runs in the same process.
    inputs = await asyncio.to_thread(inputs_from, projection)
    algos = time.perf_counter()
    stage("algorithms")
    scores = await asyncio.to_thread(score_influence, inputs, weights, koc)
    scored = time.perf_counter()
    stage("scoring")
    out_degree, in_degree = algorithms.degrees(projection.n, projection.follow_src, projection.follow_dst)
    return KolRun(
        tenant=tenant, scope=scope, member_ids=projection.member_ids, scores=scores, computed_at=now(),
        graph_version=graph_version, follow_degree=(out_degree + in_degree).astype(np.int64),
        timings={
            "pull": projection.pull_seconds, "projection": pulled - started,
            "algorithms": algos - pulled, "scoring": scored - algos,
        },
    )


def redis_order(member_ids: Sequence[str], scores: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Member indices in the order a Redis sorted set reads them back best first.

    ``ZREVRANGE`` orders by score descending and equal scores by member id descending, so
    ranks written to the graph match the ranks Redis reports.
    """
    ascending = np.lexsort((np.asarray(member_ids), scores))
    return ascending[::-1].astype(np.int64)


async def write_back(graph: GraphClient, run: KolRun, *, batch: int = 5_000) -> None:
    """Store the tenant-wide scores on the members (for filtering, and for reads without Redis)."""
    if run.scope.kind is not ScopeKind.TENANT or not run.member_ids:
        return
    s = run.scores
    ranks = np.empty(s.n, dtype=np.int64)
    ranks[redis_order(run.member_ids, s.score)] = np.arange(1, s.n + 1)
    koc = np.flatnonzero(s.is_koc)
    koc_ranks: list[int | None] = [None] * s.n
    for position, i in enumerate(koc[redis_order([run.member_ids[j] for j in koc], s.koc_score[koc])], start=1):
        koc_ranks[int(i)] = position
    components = [row.decode() for row in _component_rows(s)]
    degrees: list[int | None] = [None] * s.n if run.follow_degree is None else run.follow_degree.tolist()
    for lo in range(0, s.n, batch):
        hi = min(lo + batch, s.n)
        params: dict[str, Any] = {
            "tenant": run.tenant, "ids": run.member_ids[lo:hi], "scores": s.score[lo:hi].tolist(),
            "kocScores": s.koc_score[lo:hi].tolist(), "isKoc": s.is_koc[lo:hi].tolist(),
            "ranks": ranks[lo:hi].tolist(), "kocRanks": koc_ranks[lo:hi], "components": components[lo:hi],
            "at": run.computed_at, "version": run.graph_version, "kolTotal": s.n, "kocTotal": len(koc),
            "degrees": degrees[lo:hi],
        }

        async def work(tx: Tx, params: dict[str, Any] = params) -> None:
            await graph.run(tx, WRITE_BACK, **params)

        await graph.write(work)


async def page_from_graph(graph: GraphClient, tenant: str, kind: RankingKind, offset: int, limit: int) -> RankingPage | None:
    """The tenant-wide ranking as last written back to the members (the path without Redis)."""
    query = KOL_FROM_GRAPH if kind is RankingKind.KOL else KOC_FROM_GRAPH
    row = await graph.read_one(query, tenant=tenant, offset=offset, limit=limit)
    if row is None:
        return None
    items = []
    for member_id, rank, comp, score in row["rows"]:
        items.append(RankedMember(member_id=member_id, rank=int(rank), score=float(score),
                                  influence=_influence(comp.encode())))
    return RankingPage(items=items, total=int(row["total"]), computed_at=to_datetime(row["computedAt"]),
                       graph_version=int(row["version"] or 0))


async def member_from_graph(graph: GraphClient, tenant: str, member_id: str) -> tuple[RankedMember | None, datetime] | None:
    row = await graph.read_one(MEMBER_KOL_FROM_GRAPH, tenant=tenant, memberId=member_id)
    if row is None or row["rank"] is None:
        return None
    influence = _influence(str(row["components"]).encode())
    return (RankedMember(member_id=member_id, rank=int(row["rank"]), score=influence.score, influence=influence),
            to_datetime(row["computedAt"]))


def _component_rows(scores: InfluenceScores) -> list[bytes]:
    """Every member's :data:`COMPONENTS` as compact JSON lists (built column-wise)."""
    inputs = scores.inputs
    columns: dict[str, Sequence[Any]] = {
        "score": scores.score.round(6).tolist(), "koc_score": scores.koc_score.round(6).tolist(),
        "is_koc": scores.is_koc.tolist(), "influence": scores.influence.round(6).tolist(),
        "reach": scores.reach.round(6).tolist(), "engagement": scores.engagement.round(6).tolist(),
        "conversion": scores.conversion.round(6).tolist(), "bridging": scores.bridging.round(6).tolist(),
        "penalty": scores.penalty.round(6).tolist(), "suspicion": np.asarray(inputs.suspicion).round(6).tolist(),
        "engagement_rate": scores.engagement_rate.round(8).tolist(),
        "pagerank": np.asarray(inputs.pagerank).tolist(), "betweenness": np.asarray(inputs.bridging).tolist(),
        "followers": np.asarray(inputs.followers).tolist(), "two_hop_reach": np.asarray(inputs.two_hop_reach).tolist(),
        "invitees_bought": np.asarray(inputs.invitees_bought).tolist(),
        "attributed_gmv": np.asarray(inputs.attributed_gmv).tolist(),
    }
    cols = [columns[name] for name in COMPONENTS]
    return [orjson.dumps(row) for row in zip(*cols)]


def _influence(raw: bytes) -> MemberInfluence:
    values = orjson.loads(raw)
    return MemberInfluence(**dict(zip(COMPONENTS, values)))


# One round trip per read: the current run, its metadata, and the page with components.
_PAGE = """
local run = redis.call('GET', KEYS[1])
if not run then return false end
local base = ARGV[1] .. run
local meta = redis.call('HMGET', base .. ':meta', 'computedAt', 'graphVersion')
local zkey = base .. ':' .. ARGV[2]
local total = redis.call('ZCARD', zkey)
local page = redis.call('ZREVRANGE', zkey, tonumber(ARGV[3]), tonumber(ARGV[4]), 'WITHSCORES')
local comps = {}
for i = 1, #page, 2 do comps[#comps + 1] = redis.call('HGET', base .. ':c', page[i]) or '' end
return {meta[1], meta[2], total, page, comps}
"""
_MEMBER = """
local run = redis.call('GET', KEYS[1])
if not run then return false end
local base = ARGV[1] .. run
local meta = redis.call('HMGET', base .. ':meta', 'computedAt', 'graphVersion')
local comp = redis.call('HGET', base .. ':c', ARGV[2])
if not comp then return {meta[1], meta[2], false, false} end
local rank = redis.call('ZREVRANK', base .. ':KOL', ARGV[2])
return {meta[1], meta[2], rank, comp}
"""

class KolStore:
    """Rankings in Redis: written as a whole run, swapped in atomically, read in one round trip."""

    def __init__(self, redis: aioredis.Redis, *, keep_old_seconds: int = 120) -> None:
        self.redis = redis
        self.keep_old_seconds = keep_old_seconds
        self._page = redis.register_script(_PAGE)
        self._member = redis.register_script(_MEMBER)
        self._lock = ComputeLock(redis)

    @staticmethod
    def _prefix(tenant: str, scope: Scope) -> str:
        return f"q:{tenant}:kol:{scope.key}:"

    async def try_lock(self, tenant: str, scope: Scope, *, ttl_ms: int = 600_000) -> str | None:
        """Take the scope's compute lock; return its token, or ``None`` when another holds it."""
        return await self._lock.acquire(self._prefix(tenant, scope) + "lock", ttl_ms=ttl_ms)

    async def unlock(self, tenant: str, scope: Scope, token: str) -> None:
        await self._lock.release(self._prefix(tenant, scope) + "lock", token)

    async def save(self, run: KolRun, *, chunk: int = 5_000) -> None:
        """Write *run* under its own keys, then make it current and let the previous one expire."""
        prefix = self._prefix(run.tenant, run.scope)
        run_id = str(to_micros(run.computed_at))
        base = prefix + run_id
        s = run.scores
        rows = _component_rows(s)
        ids = run.member_ids
        koc = np.flatnonzero(s.is_koc)
        for lo in range(0, len(ids), chunk):
            hi = min(lo + chunk, len(ids))
            pipe = self.redis.pipeline(transaction=False)
            pipe.zadd(base + ":KOL", dict(zip(ids[lo:hi], s.score[lo:hi].tolist())))
            pipe.hset(base + ":c", mapping=dict(zip(ids[lo:hi], rows[lo:hi])))
            await pipe.execute()
        for lo in range(0, len(koc), chunk):
            part = koc[lo:lo + chunk]
            await self.redis.zadd(base + ":KOC", {ids[i]: float(s.koc_score[i]) for i in part})
        meta = {"computedAt": run_id, "graphVersion": run.graph_version, "members": len(ids),
                "timings": orjson.dumps(run.timings)}
        previous = await self.redis.get(prefix + "cur")
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(base + ":meta", mapping=meta)
        pipe.set(prefix + "cur", run_id)
        if previous is not None and previous.decode() != run_id:
            old = prefix + previous.decode()
            for suffix in (":KOL", ":KOC", ":c", ":meta"):
                pipe.expire(old + suffix, self.keep_old_seconds)
        await pipe.execute()

    async def meta(self, tenant: str, scope: Scope) -> dict[str, Any] | None:
        """The current run's metadata (computedAt, graphVersion, members, timings), or ``None``."""
        prefix = self._prefix(tenant, scope)
        run_id = await self.redis.get(prefix + "cur")
        if run_id is None:
            return None
        raw = await self.redis.hgetall(prefix + run_id.decode() + ":meta")
        out: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
        out["computedAt"] = from_micros(int(out["computedAt"]))
        out["graphVersion"] = int(out["graphVersion"])
        out["members"] = int(out["members"])
        out["timings"] = orjson.loads(out["timings"])
        return out

    async def page(self, tenant: str, scope: Scope, kind: RankingKind, offset: int, limit: int) -> RankingPage | None:
        """Members ranked *offset* .. *offset + limit - 1* (0-based), or ``None`` before the first run."""
        prefix = self._prefix(tenant, scope)
        if limit <= 0:
            stop = offset - 1
        else:
            stop = offset + limit - 1
        raw = await self._page(keys=[prefix + "cur"], args=[prefix, kind.value, offset, stop])
        if not raw:
            return None
        computed, version, total, flat, comps = raw
        items = [
            RankedMember(member_id=flat[i].decode(), rank=offset + i // 2 + 1, score=float(flat[i + 1]),
                         influence=_influence(comps[i // 2]))
            for i in range(0, len(flat) if limit > 0 else 0, 2)
        ]
        return RankingPage(items=items, total=int(total), computed_at=from_micros(int(computed)),
                           graph_version=int(version))

    async def member(self, tenant: str, scope: Scope, member_id: str) -> tuple[RankedMember | None, datetime] | None:
        """One member's rank and components in *scope*; ``None`` before the first run."""
        prefix = self._prefix(tenant, scope)
        raw = await self._member(keys=[prefix + "cur"], args=[prefix, member_id])
        if not raw:
            return None
        computed, _, rank, comp = raw
        at = from_micros(int(computed))
        if not comp:
            return None, at
        influence = _influence(comp)
        return RankedMember(member_id=member_id, rank=int(rank) + 1, score=influence.score, influence=influence), at

