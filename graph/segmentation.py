"""Segmentation (用户分层) and interest circles: the recompute job, its scheduler and the reads.

:func:`compute` pulls a tenant's per-member aggregates in a few fat round trips (members,
content activity, purchases, profile tags, plus the engagement projection of
:mod:`graph.projection` for the circles), applies the rules of :mod:`domain.segmentation`
and runs :func:`graph.circles.louvain`; :func:`write` stores the result on the members
(``rfmR``, ``rfmF``, ``rfmM``, ``lifecycle``, ``valueTier``, ``layer``, ``circleId``,
``segmentedAt``) in ``UNWIND`` batches, then, in one transaction, the circles and the run's
summary. Nothing is cleared first, so readers keep the previous results while a run is in
progress (a member reads either its old or its new segmentation; the circle list and the
summary switch at once when the run ends). :func:`recompute` wraps both under a Redis
compute lock (:class:`graph.locks.ComputeLock`) so two processes never run one tenant at
once; :class:`SegmentationScheduler` runs it in the server's background.

Privacy: members who withdrew PROFILING consent, or were erased, are left out of every
computation (they count in no quintile, circle or summary) and their segmentation
properties are removed. :data:`graph.privacy.SET_PROFILING` also removes them the moment
consent is withdrawn.

Graph layout
------------
``(:SegmentationConfig {id, tenantId, newDays, activeDays, churnDays, updatedAt,
computedAt, members, circles, counts, graphVersion})``
    one per tenant: the lifecycle windows (defaults until set) and the last run's summary
    (``counts`` is JSON: members per lifecycle stage, value tier and layer).
``(:InterestCircle {id, tenantId, size, topTags, computedAt, createdAt, retiredAt})``
    one per circle ever found; a circle that no longer exists gets ``retiredAt`` (never
    deleted: deleting nodes under concurrent reads breaks the embedded server).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import redis.asyncio as aioredis

from domain.segmentation import (
    KOL_CORE_SHARE,
    LAYERS,
    MIN_CIRCLE_JACCARD,
    MIN_CIRCLE_SIZE,
    STAGES,
    TIERS,
    Circle,
    CirclePage,
    LifecycleStage,
    MemberFacts,
    MemberLayer,
    MemberSegmentation,
    Segmentation,
    SegmentationSummary,
    SegmentationWindows,
    ValueTier,
    segment,
)
from graph.circles import louvain, match_circles, new_circle_id
from graph.client import GraphClient, Tx, now, to_datetime, to_micros
from graph.cypher import cypher
from graph.growth import TENANTS_KEY
from graph.growth import graph_version as current_version
from graph.kol import InteractionWeights
from graph.locks import ComputeLock
from graph.periodic import every
from graph.projection import pull_engagement

__all__ = [
    "MIN_CIRCLE_SIZE",
    "STAGES_REPORTED",
    "GraphSegmentation",
    "SegmentationResult",
    "SegmentationRun",
    "SegmentationScheduler",
    "compute",
    "recompute",
    "write",
]

log = logging.getLogger(__name__)

#: tags named per circle (by summed INTERESTED_IN weight of its members)
TOP_TAGS = 3
#: the stages :func:`recompute` reports, in order
STAGES_REPORTED = ("pull", "rules", "circles", "members written", "circles written")

# --- the pull: one fat record each ------------------------------------------------------------

SEG_MEMBERS = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    RETURN collect(m.id) AS ids, collect(m.joinedAt) AS joined,
           collect(coalesce(m.profilingWithdrawn, false) OR m.erasedAt IS NOT NULL) AS excluded,
           collect(coalesce(m.circleId, '')) AS circles, collect(coalesce(m.isKoc, false)) AS koc,
           collect(coalesce(m.kolRank, 0)) AS kolRanks, max(m.kolTotal) AS kolTotal
    """
)
# Last activity and actions since $since per member: posts, likes, comments, shares, favorites.
SEG_CONTENT_ACTIVITY = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})-[r:POSTED|LIKED|COMMENTED|SHARED|FAVORITED]->(x:Content)
    WITH m, coalesce(r.at, x.createdAt) AS at
    WHERE at IS NOT NULL
    WITH m, max(at) AS last, sum(CASE WHEN at >= $since THEN 1 ELSE 0 END) AS recent
    RETURN collect([m.id, last, recent]) AS rows
    """
)
# Purchases of any status count as activity; paid ones (refunds excluded) make F, M and R.
SEG_PURCHASES = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})-[:PLACED]->(p:Purchase)
    WHERE p.at IS NOT NULL
    WITH m, p, p.status = 'paid' AS paid
    WITH m, max(p.at) AS last, sum(CASE WHEN p.at >= $since THEN 1 ELSE 0 END) AS recent,
         sum(CASE WHEN paid THEN 1 ELSE 0 END) AS paidCount, sum(CASE WHEN paid THEN p.amount ELSE 0 END) AS gmv,
         max(CASE WHEN paid THEN p.at END) AS lastPaid
    RETURN collect([m.id, last, recent, paidCount, gmv, lastPaid]) AS rows
    """
)
SEG_TAGS = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})-[i:INTERESTED_IN]->(t:Tag)
    RETURN collect(m.id) AS ids, collect(coalesce(t.name, t.id)) AS names, collect(coalesce(i.weight, 1.0)) AS weights
    """
)

# --- writes -------------------------------------------------------------------------------------

WRITE_MEMBERS = cypher(
    """
    UNWIND range(0, size($ids) - 1) AS i
    MATCH (m:Member {id: $ids[i]}) WITH * WHERE m.tenantId = $tenant
      AND coalesce(m.profilingWithdrawn, false) = false AND m.erasedAt IS NULL
    SET m.rfmR = $r[i], m.rfmF = $f[i], m.rfmM = $m[i], m.lifecycle = $lifecycle[i], m.valueTier = $tier[i],
        m.layer = $layer[i], m.circleId = $circle[i], m.segmentedAt = $at
    """
)
CLEAR_MEMBERS = cypher(
    """
    UNWIND $ids AS id
    MATCH (m:Member {id: id}) WITH * WHERE m.tenantId = $tenant
    SET m.rfmR = null, m.rfmF = null, m.rfmM = null, m.lifecycle = null, m.valueTier = null, m.layer = null,
        m.circleId = null, m.segmentedAt = null
    """
)
CREATE_CIRCLES = cypher(
    """
    UNWIND range(0, size($ids) - 1) AS i
    CREATE (c:InterestCircle)
    SET c.id = $ids[i], c.tenantId = $tenant, c.size = $sizes[i], c.topTags = $tags[i], c.computedAt = $at,
        c.createdAt = $at
    """
)
UPDATE_CIRCLES = cypher(
    """
    UNWIND range(0, size($ids) - 1) AS i
    MATCH (c:InterestCircle {id: $ids[i]}) WITH * WHERE c.tenantId = $tenant
    SET c.size = $sizes[i], c.topTags = $tags[i], c.computedAt = $at, c.retiredAt = null
    """
)
RETIRE_CIRCLES = cypher(
    """
    MATCH (c:InterestCircle {tenantId: $tenant})
    WHERE c.retiredAt IS NULL AND NOT c.id IN $keep
    SET c.retiredAt = $at, c.size = 0
    """
)
SAVE_SUMMARY = cypher(
    """
    MERGE (c:SegmentationConfig {tenantId: $tenant})
    ON CREATE SET c.id = $id
    SET c.computedAt = $at, c.members = $members, c.circles = $circles, c.counts = $counts,
        c.graphVersion = $version
    """
)
SAVE_WINDOWS = cypher(
    """
    MERGE (c:SegmentationConfig {tenantId: $tenant})
    ON CREATE SET c.id = $id
    SET c.newDays = $newDays, c.activeDays = $activeDays, c.churnDays = $churnDays, c.updatedAt = $at
    RETURN c.newDays AS newDays, c.activeDays AS activeDays, c.churnDays AS churnDays
    """
)

# --- reads --------------------------------------------------------------------------------------

CONFIG = cypher(
    """
    MATCH (c:SegmentationConfig {tenantId: $tenant})
    RETURN c.newDays AS newDays, c.activeDays AS activeDays, c.churnDays AS churnDays, c.computedAt AS computedAt,
           c.members AS members, c.circles AS circles, c.counts AS counts, c.graphVersion AS graphVersion
    """
)
MEMBER_SEGMENTS = cypher(
    """
    UNWIND $ids AS id
    MATCH (m:Member {id: id}) WITH * WHERE m.tenantId = $tenant AND m.segmentedAt IS NOT NULL
    RETURN collect([m.id, m.rfmR, m.rfmF, m.rfmM, m.lifecycle, m.valueTier, m.layer, m.circleId, m.segmentedAt]) AS rows
    """
)
CIRCLE_PAGE = cypher(
    """
    MATCH (c:InterestCircle {tenantId: $tenant})
    WHERE c.retiredAt IS NULL
      AND ($afterSize IS NULL OR c.size < $afterSize OR (c.size = $afterSize AND c.id > $afterId))
    WITH c ORDER BY c.size DESC, c.id LIMIT $limit
    RETURN collect([c.id, c.size, c.topTags, c.computedAt]) AS rows
    """
)
CIRCLE_COUNT = cypher(
    """
    MATCH (c:InterestCircle {tenantId: $tenant})
    WHERE c.retiredAt IS NULL
    RETURN count(c) AS total
    """
)
CIRCLES_BY_ID = cypher(
    """
    UNWIND $ids AS id
    MATCH (c:InterestCircle {id: id}) WITH * WHERE c.tenantId = $tenant
    RETURN collect([c.id, c.size, c.topTags, c.computedAt]) AS rows
    """
)


def _config_id(tenant: str) -> str:
    return "scf_" + tenant.removeprefix("ten_")


def _us(value: Any) -> int:
    return -1 if value is None else to_micros(to_datetime(value))


# --- the job ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentationRun:
    """One computed segmentation of a tenant (not yet written)."""

    tenant: str
    computed_at: datetime
    windows: SegmentationWindows
    member_ids: list[str]
    result: Segmentation
    #: circle id per member (None: in no circle), in member order
    circle_of: list[str | None]
    #: circle id -> (size, top tags); ``kept`` are ids of the previous run, the rest are new
    circles: dict[str, tuple[int, list[str]]]
    kept: set[str]
    #: members whose segmentation must be removed (PROFILING withdrawn, or erased)
    excluded_ids: list[str]
    graph_version: int
    timings: dict[str, float]


async def compute(graph: GraphClient, tenant: str, *, at: datetime | None = None, graph_version: int = 0,
                  seed: int = 7, on_stage: Callable[[str], None] | None = None) -> SegmentationRun:
    """Pull, apply the rules and find the circles of one tenant (no writes).

    *at* is the run's "now" (default: the current time); *on_stage* is called with
    ``"pull"``, ``"rules"`` and ``"circles"`` as each stage finishes.
    """
    stage = on_stage or (lambda _: None)
    at = at or now()
    now_us = to_micros(at)
    repo = GraphSegmentation(graph)
    windows = await repo.windows(tenant)
    since = at - timedelta(days=windows.active_days)
    started = time.perf_counter()
    members, activity, purchases, tags, engagement = await asyncio.gather(
        graph.read_one(SEG_MEMBERS, tenant=tenant),
        graph.read_one(SEG_CONTENT_ACTIVITY, tenant=tenant, since=since),
        graph.read_one(SEG_PURCHASES, tenant=tenant, since=since),
        graph.read_one(SEG_TAGS, tenant=tenant),
        pull_engagement(graph, tenant),
    )
    pulled = time.perf_counter()
    stage("pull")

    m = members or {}
    all_ids: list[str] = list(m.get("ids", []))
    excluded_flags: list[bool] = list(m.get("excluded", []))
    ids = [i for i, x in zip(all_ids, excluded_flags) if not x]
    excluded_ids = [i for i, x in zip(all_ids, excluded_flags) if x]
    keep = np.asarray([not x for x in excluded_flags], bool)
    index = {member: k for k, member in enumerate(ids)}
    n = len(ids)

    joined = np.fromiter((_us(v) for v in m.get("joined", [])), np.int64, count=len(all_ids))[keep]
    joined = np.where(joined < 0, now_us, joined)  # a member without a join time counts as joined now
    previous = [c or None for c, k in zip(m.get("circles", []), keep.tolist()) if k]
    kol_total = int(m.get("kolTotal") or 0)
    top_kol = max(1, int(np.ceil(KOL_CORE_SHARE * kol_total))) if kol_total else 0
    ranks = np.asarray(m.get("kolRanks", []), np.int64)[keep] if all_ids else np.zeros(0, np.int64)
    koc = np.asarray(m.get("koc", []), bool)[keep] if all_ids else np.zeros(0, bool)
    influencer = koc | ((ranks > 0) & (ranks <= top_kol))

    last_active = np.full(n, -1, np.int64)
    recent = np.zeros(n, np.int64)
    paid_count = np.zeros(n, np.int64)
    gmv = np.zeros(n, np.int64)
    last_paid = np.full(n, -1, np.int64)
    for member, last, count in (activity or {}).get("rows", []):
        k = index.get(member)
        if k is not None:
            last_active[k] = max(last_active[k], _us(last))
            recent[k] += int(count)
    for member, last, count, paid, amount, paid_at in (purchases or {}).get("rows", []):
        k = index.get(member)
        if k is not None:
            last_active[k] = max(last_active[k], _us(last))
            recent[k] += int(count)
            paid_count[k] = int(paid)
            gmv[k] = int(amount or 0)
            last_paid[k] = _us(paid_at) if int(paid) > 0 else -1
    facts = MemberFacts(joined_at=joined, last_active=last_active, recent_actions=recent, paid_count=paid_count,
                        paid_gmv=gmv, last_paid=last_paid, influencer=influencer)
    result = segment(facts, now_us, windows)
    ruled = time.perf_counter()
    stage("rules")

    # circles: Louvain on follows + interactions between consenting members
    g = engagement
    to_local = np.asarray([index.get(x, -1) for x in g.member_ids], np.int64)
    w = InteractionWeights()
    kind_weight = np.array([w.like, w.comment, w.share, w.favorite])
    src = to_local[np.concatenate([g.follow_src, g.inter_src]).astype(np.int64)] if g.n else np.zeros(0, np.int64)
    dst = to_local[np.concatenate([g.follow_dst, g.inter_dst]).astype(np.int64)] if g.n else np.zeros(0, np.int64)
    weight = np.concatenate([np.full(len(g.follow_src), w.follow), kind_weight[g.inter_kind]])
    inside = (src >= 0) & (dst >= 0)
    labels = louvain(n, src[inside], dst[inside], weight[inside], seed=seed)
    sizes = np.bincount(labels, minlength=int(labels.max()) + 1 if n else 0)
    big = sizes >= MIN_CIRCLE_SIZE
    renumber = np.full(len(sizes), -1, np.int64)
    renumber[big] = np.arange(int(big.sum()))
    clusters = renumber[labels] if n else np.zeros(0, np.int64)
    circle_ids = match_circles(clusters, previous, min_jaccard=MIN_CIRCLE_JACCARD, new_id=new_circle_id)
    circle_of = [circle_ids[c] if c >= 0 else None for c in clusters.tolist()]
    circles = {cid: (int(s), _top_tags(clusters, c, index, tags or {})) for c, (cid, s) in
               enumerate(zip(circle_ids, sizes[big].tolist()))}
    before = {p for p in previous if p}
    kept = {c for c in circle_ids if c in before}
    found = time.perf_counter()
    stage("circles")
    return SegmentationRun(
        tenant=tenant, computed_at=at, windows=windows, member_ids=ids, result=result, circle_of=circle_of,
        circles=circles, kept=kept, excluded_ids=excluded_ids, graph_version=graph_version,
        timings={"pull": pulled - started, "rules": ruled - pulled, "circles": found - ruled},
    )


def _top_tags(clusters: npt.NDArray[np.int64], cluster: int, index: dict[str, int],
              tags: Mapping[str, Any]) -> list[str]:
    """The circle's :data:`TOP_TAGS` tag names by summed weight of its members (ties by name)."""
    totals: dict[str, float] = defaultdict(float)
    for member, name, weight in zip(tags.get("ids", []), tags.get("names", []), tags.get("weights", [])):
        k = index.get(member)
        if k is not None and clusters[k] == cluster:
            totals[str(name)] += float(weight)
    return [name for name, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_TAGS]]


def _nullable(codes: npt.NDArray[np.int8]) -> list[int | None]:
    return [int(x) if x else None for x in codes.tolist()]


async def write(graph: GraphClient, run: SegmentationRun, *, batch: int = 5_000,
                progress: Callable[[int, int], None] | None = None) -> None:
    """Store *run*: members in batches, then circles and the summary in one transaction."""
    r = run.result
    n = len(run.member_ids)
    rr, ff, mm = (_nullable(r.rfm_r), _nullable(r.rfm_f), _nullable(r.rfm_m))
    lifecycle = [STAGES[c].value for c in r.lifecycle.tolist()]
    tier = [TIERS[c].value for c in r.value_tier.tolist()]
    layer = [LAYERS[c].value for c in r.layer.tolist()]
    for lo in range(0, n, batch):
        hi = min(lo + batch, n)
        params: dict[str, Any] = {
            "tenant": run.tenant, "ids": run.member_ids[lo:hi], "r": rr[lo:hi], "f": ff[lo:hi], "m": mm[lo:hi],
            "lifecycle": lifecycle[lo:hi], "tier": tier[lo:hi], "layer": layer[lo:hi],
            "circle": run.circle_of[lo:hi], "at": run.computed_at,
        }

        async def members(tx: Tx, params: dict[str, Any] = params) -> None:
            await graph.run(tx, WRITE_MEMBERS, **params)

        await graph.write(members)
        if progress is not None:
            progress(hi, n)
    for lo in range(0, len(run.excluded_ids), batch):
        part = run.excluded_ids[lo:lo + batch]

        async def clear(tx: Tx, part: list[str] = part) -> None:
            await graph.run(tx, CLEAR_MEMBERS, tenant=run.tenant, ids=part)

        await graph.write(clear)

    kept = [c for c in run.circles if c in run.kept]
    fresh = [c for c in run.circles if c not in run.kept]
    counts = orjson.dumps(r.counts()).decode()

    async def circles(tx: Tx) -> None:
        await graph.run(tx, UPDATE_CIRCLES, tenant=run.tenant, at=run.computed_at, ids=kept,
                        sizes=[run.circles[c][0] for c in kept], tags=[run.circles[c][1] for c in kept])
        await graph.run(tx, CREATE_CIRCLES, tenant=run.tenant, at=run.computed_at, ids=fresh,
                        sizes=[run.circles[c][0] for c in fresh], tags=[run.circles[c][1] for c in fresh])
        await graph.run(tx, RETIRE_CIRCLES, tenant=run.tenant, at=run.computed_at, keep=list(run.circles))
        await graph.run(tx, SAVE_SUMMARY, tenant=run.tenant, id=_config_id(run.tenant), at=run.computed_at,
                        members=n, circles=len(run.circles), counts=counts, version=run.graph_version)

    await graph.write(circles)


@dataclass(frozen=True)
class SegmentationResult:
    tenant: str
    members: int
    circles: int
    seconds: float
    timings: dict[str, float]
    skipped: bool = False


def lock_key(tenant: str) -> str:
    return f"q:{tenant}:seg:lock"


async def recompute(graph: GraphClient, redis: aioredis.Redis, tenant: str, *, at: datetime | None = None,
                    graph_version: int | None = None, on_stage: Callable[[str], None] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> SegmentationResult:
    """Compute and write one tenant's segmentation unless another process is doing it."""
    stage = on_stage or (lambda _: None)
    lock = ComputeLock(redis)
    token = await lock.acquire(lock_key(tenant))
    if token is None:
        return SegmentationResult(tenant=tenant, members=0, circles=0, seconds=0.0, timings={}, skipped=True)
    started = time.perf_counter()
    try:
        if graph_version is None:
            graph_version = await current_version(redis, tenant)
        run = await compute(graph, tenant, at=at, graph_version=graph_version, on_stage=stage)
        writing = time.perf_counter()
        await write(graph, run, progress=progress)
        stage("members written")
        stage("circles written")
        timings = {**run.timings, "write": time.perf_counter() - writing}
        return SegmentationResult(tenant=tenant, members=len(run.member_ids), circles=len(run.circles),
                                  seconds=time.perf_counter() - started, timings=timings)
    finally:
        await lock.release(lock_key(tenant), token)


class SegmentationScheduler:
    """Recomputes tenants' segmentation in the background.

    A tenant is recomputed when it has none yet, when ``changes`` events were relayed since
    its last run, or when its last run is older than ``max_age`` (lifecycle stages move with
    time alone, so age triggers a run even when nothing changed).
    """

    def __init__(self, graph: GraphClient, redis: aioredis.Redis, *, changes: int = 1_000,
                 max_age: timedelta = timedelta(hours=24), interval: float = 30.0,
                 clock: Callable[[], datetime] = now) -> None:
        self.graph = graph
        self.redis = redis
        self.changes = changes
        self.max_age = max_age
        self.interval = interval
        self.clock = clock

    async def due(self, tenant: str) -> bool:
        summary = await GraphSegmentation(self.graph).summary(tenant)
        if summary is None:
            return True
        version = await current_version(self.redis, tenant)
        if version - summary.graph_version >= self.changes:
            return True
        return self.clock() - summary.computed_at >= self.max_age

    async def check(self, tenants: Sequence[str] | None = None) -> list[SegmentationResult]:
        """One scheduling pass over *tenants* (default: every tenant that has relayed events)."""
        if tenants is None:
            tenants = sorted(raw.decode() if isinstance(raw, bytes) else str(raw)
                             for raw in await self.redis.smembers(TENANTS_KEY))
        done = []
        for tenant in tenants:
            if await self.due(tenant):
                result = await recompute(self.graph, self.redis, tenant)
                if not result.skipped:
                    log.info("segmentation of %s recomputed: %d members, %d circles in %.2fs", tenant,
                             result.members, result.circles, result.seconds)
                    done.append(result)
        return done

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.interval, stop, self.check, what="segmentation scheduling")


# --- the reads (domain.segmentation.SegmentationRepository) ------------------------------------


def _circle(row: Sequence[Any]) -> Circle:
    cid, size, tags, at = row
    return Circle(id=cid, size=int(size or 0), top_tags=tuple(tags or ()), computed_at=to_datetime(at))


@dataclass
class GraphSegmentation:
    graph: GraphClient

    async def windows(self, tenant: str) -> SegmentationWindows:
        row = await self.graph.read_one(CONFIG, tenant=tenant)
        if row is None or row["newDays"] is None:
            return SegmentationWindows()
        return SegmentationWindows(new_days=int(row["newDays"]), active_days=int(row["activeDays"]),
                                   churn_days=int(row["churnDays"]))

    async def set_windows(self, tenant: str, windows: SegmentationWindows) -> SegmentationWindows:
        async def work(tx: Tx) -> SegmentationWindows:
            row = await self.graph.run_one(tx, SAVE_WINDOWS, tenant=tenant, id=_config_id(tenant), at=now(),
                                           newDays=windows.new_days, activeDays=windows.active_days,
                                           churnDays=windows.churn_days)
            assert row is not None
            return SegmentationWindows(int(row["newDays"]), int(row["activeDays"]), int(row["churnDays"]))

        return await self.graph.write(work)

    async def summary(self, tenant: str) -> SegmentationSummary | None:
        row = await self.graph.read_one(CONFIG, tenant=tenant)
        if row is None or row["computedAt"] is None:
            return None
        counts = orjson.loads(row["counts"] or "{}")
        return SegmentationSummary(
            computed_at=to_datetime(row["computedAt"]), members=int(row["members"] or 0),
            circles=int(row["circles"] or 0), graph_version=int(row["graphVersion"] or 0),
            lifecycle=counts.get("lifecycle", {}), value_tier=counts.get("valueTier", {}),
            layer=counts.get("layer", {}),
        )

    async def of_members(self, tenant: str, ids: Sequence[str]) -> list[MemberSegmentation | None]:
        row = await self.graph.read_one(MEMBER_SEGMENTS, tenant=tenant, ids=list(ids))
        found: dict[str, MemberSegmentation] = {}
        for mid, r, f, m, lifecycle, tier, layer, circle, at in (row or {}).get("rows", []):
            if lifecycle is None:
                continue
            found[mid] = MemberSegmentation(
                member_id=mid, rfm=None if r is None else (int(r), int(f), int(m)),
                lifecycle=LifecycleStage(lifecycle), value_tier=ValueTier(tier), layer=MemberLayer(layer),
                circle_id=circle, computed_at=to_datetime(at),
            )
        return [found.get(i) for i in ids]

    async def circles(self, tenant: str, first: int, after: tuple[int, str] | None) -> CirclePage:
        size, cid = after if after is not None else (None, None)
        page, count = await asyncio.gather(
            self.graph.read_one(CIRCLE_PAGE, tenant=tenant, afterSize=size, afterId=cid, limit=first + 1),
            self.graph.read_one(CIRCLE_COUNT, tenant=tenant),
        )
        rows = (page or {}).get("rows", [])
        return CirclePage(items=[_circle(x) for x in rows[:first]], has_next=len(rows) > first,
                          total=int((count or {}).get("total", 0)))

    async def circles_by_id(self, tenant: str, ids: Sequence[str]) -> list[Circle | None]:
        row = await self.graph.read_one(CIRCLES_BY_ID, tenant=tenant, ids=list(ids))
        found = {x[0]: _circle(x) for x in (row or {}).get("rows", [])}
        return [found.get(i) for i in ids]

