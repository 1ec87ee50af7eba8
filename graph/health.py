"""Community health reports: pulled from the graph in a few fat round trips, cached in Redis.

:func:`pull` reads what one scope needs over one window in five concurrent read round
trips (each one record of ``collect`` lists): the scope's members with their join time,
the posts and interactions made in the window, every purchase placed by those members up
to the window end, and the invitations made in the window. :func:`compute` turns them into
a :class:`~domain.health.HealthReport` with :func:`domain.health.compute_health`.

Scopes: the tenant (every member, joined = ``Member.joinedAt``); a community (its members,
joined = ``MEMBER_OF.joinedAt``; posts and interactions on content in the community only);
an acquisition channel (members whose ``channel`` is it); a campaign (members who
PARTICIPATED in it). Purchases of any scope are the purchases placed by its members
(``(Member)-[:PLACED]->(Purchase)``), whatever community or campaign they came from.

Caching (:class:`HealthService`), Redis key ``q:{tenant}:health:{scope}:{window}`` where
the default window ("the last 30 days", whose end moves) is ``last30d``:

* a report younger than ``fresh_seconds`` (default 300) is served as is;
* an older one is still served, and one background task per process recomputes it under
  the key's lock (``…:lock``, ``SET NX``), so readers never wait for a recompute;
* the key expires ``max_age_seconds`` (default 3,600) after it was written: the staleness
  bound. A report is never served older than that;
* on a miss, one request computes under the lock while the others poll for its result
  (stampede-safe); when Redis is down every request computes from the graph, uncached.

``quanzi recompute health`` (:func:`recompute`) refreshes a scope's default window now.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, LiteralString

import numpy as np
import numpy.typing as npt
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from domain.health import (
    ACTIVATION_DAYS,
    Cohort,
    CurrencyRevenue,
    Funnel,
    FunnelStage,
    HealthInputs,
    HealthMetrics,
    HealthReport,
    HealthScope,
    HealthScopeKind,
    Window,
    compute_health,
    resolve_window,
)
from graph.cache_stats import CACHE_STATS
from graph.client import GraphClient, from_micros, now, to_datetime, to_micros
from graph.cypher import cypher

__all__ = ["HealthRun", "HealthService", "compute", "decode", "encode", "pull", "recompute"]

log = logging.getLogger(__name__)

_REDIS_DOWN = (RedisError, OSError)
I64 = npt.NDArray[np.int64]

MEMBERS_OF_TENANT = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    RETURN collect(m.id) AS ids, collect(m.joinedAt) AS joined
    """
)
MEMBERS_OF_COMMUNITY = cypher(
    """
    MATCH (k:Community {id: $scopeId}) WITH * WHERE k.tenantId = $tenant
    MATCH (k)<-[r:MEMBER_OF]-(m:Member)
    RETURN collect(m.id) AS ids, collect(r.joinedAt) AS joined
    """
)
MEMBERS_OF_CHANNEL = cypher(
    """
    MATCH (m:Member {tenantId: $tenant, channel: $scopeId})
    RETURN collect(m.id) AS ids, collect(m.joinedAt) AS joined
    """
)
MEMBERS_OF_CAMPAIGN = cypher(
    """
    MATCH (c:Campaign {id: $scopeId}) WITH * WHERE c.tenantId = $tenant
    MATCH (m:Member)-[:PARTICIPATED]->(c)
    RETURN collect(m.id) AS ids, collect(m.joinedAt) AS joined
    """
)
# Posts and interactions in the window: everything the tenant's members did, or (community)
# what was done on the community's content.
POSTS_OF_TENANT = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})-[r:POSTED]->(:Content)
    WHERE r.at >= $start AND r.at < $end
    RETURN collect(m.id) AS members, collect(r.at) AS ats
    """
)
POSTS_OF_COMMUNITY = cypher(
    """
    MATCH (k:Community {id: $scopeId}) WITH * WHERE k.tenantId = $tenant
    MATCH (k)<-[:IN]-(:Content)<-[r:POSTED]-(m:Member)
    WHERE r.at >= $start AND r.at < $end
    RETURN collect(m.id) AS members, collect(r.at) AS ats
    """
)
INTERACTIONS_OF_TENANT = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})-[r:LIKED|COMMENTED|SHARED|FAVORITED]->(:Content)
    WHERE r.at >= $start AND r.at < $end
    RETURN collect(m.id) AS members, collect(r.at) AS ats
    """
)
INTERACTIONS_OF_COMMUNITY = cypher(
    """
    MATCH (k:Community {id: $scopeId}) WITH * WHERE k.tenantId = $tenant
    MATCH (k)<-[:IN]-(:Content)<-[r:LIKED|COMMENTED|SHARED|FAVORITED]-(m:Member)
    WHERE r.at >= $start AND r.at < $end
    RETURN collect(m.id) AS members, collect(r.at) AS ats
    """
)
# Every purchase up to the window end (historical LTV looks back to each member's join).
PURCHASES_OF_TENANT = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})-[:PLACED]->(p:Purchase)
    WHERE p.at < $end
    RETURN collect(m.id) AS members, collect(p.at) AS ats, collect(p.amount) AS amounts,
           collect(p.status = 'paid') AS paid, collect(coalesce(p.currency, 'CNY')) AS currencies
    """
)
PURCHASES_OF_COMMUNITY = cypher(
    """
    MATCH (k:Community {id: $scopeId}) WITH * WHERE k.tenantId = $tenant
    MATCH (k)<-[:MEMBER_OF]-(m:Member)-[:PLACED]->(p:Purchase)
    WHERE p.at < $end
    RETURN collect(m.id) AS members, collect(p.at) AS ats, collect(p.amount) AS amounts,
           collect(p.status = 'paid') AS paid, collect(coalesce(p.currency, 'CNY')) AS currencies
    """
)
REFERRALS_IN_WINDOW = cypher(
    """
    MATCH (a:Member {tenantId: $tenant})-[r:REFERRED]->(:Member)
    WHERE r.at >= $start AND r.at < $end
    RETURN collect(a.id) AS members, collect(r.at) AS ats
    """
)

_MEMBERS: dict[HealthScopeKind, LiteralString] = {
    HealthScopeKind.TENANT: MEMBERS_OF_TENANT,
    HealthScopeKind.COMMUNITY: MEMBERS_OF_COMMUNITY,
    HealthScopeKind.CHANNEL: MEMBERS_OF_CHANNEL,
    HealthScopeKind.CAMPAIGN: MEMBERS_OF_CAMPAIGN,
}


def _micros(values: Sequence[Any]) -> I64:
    return np.fromiter((to_micros(to_datetime(v)) for v in values), dtype=np.int64, count=len(values))


def _rows(index: dict[str, int], members: Sequence[str]) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Dense numbers of *members* and which of them belong to the scope."""
    get = index.get
    idx = np.fromiter((get(m, -1) for m in members), dtype=np.int64, count=len(members))
    keep = idx >= 0
    return idx[keep], keep


@dataclass(frozen=True)
class Pulled:
    inputs: HealthInputs
    member_ids: list[str]
    seconds: float


async def pull(graph: GraphClient, tenant: str, scope: HealthScope, window: Window) -> Pulled:
    """Everything :func:`domain.health.compute_health` needs, in five concurrent round trips."""
    started = time.perf_counter()
    community = scope.kind is HealthScopeKind.COMMUNITY
    params: dict[str, Any] = {"tenant": tenant, "scopeId": scope.id, "start": window.start, "end": window.end}
    rows = await asyncio.gather(
        graph.read_one(_MEMBERS[scope.kind], **params),
        graph.read_one(POSTS_OF_COMMUNITY if community else POSTS_OF_TENANT, **params),
        graph.read_one(INTERACTIONS_OF_COMMUNITY if community else INTERACTIONS_OF_TENANT, **params),
        graph.read_one(PURCHASES_OF_COMMUNITY if community else PURCHASES_OF_TENANT, **params),
        graph.read_one(REFERRALS_IN_WINDOW, **params),
    )
    members, posts, inters, buys, refs = (r or {} for r in rows)
    joined_by_id: dict[str, Any] = {}
    for member_id, joined in zip(members.get("ids", []), members.get("joined", [])):
        if member_id not in joined_by_id and joined is not None:  # a member twice in a campaign counts once
            joined_by_id[member_id] = joined
    ids = list(joined_by_id)
    index = {m: i for i, m in enumerate(ids)}
    post_member, keep_p = _rows(index, posts.get("members", []))
    inter_member, keep_i = _rows(index, inters.get("members", []))
    buyer, keep_b = _rows(index, buys.get("members", []))
    inviter, keep_r = _rows(index, refs.get("members", []))
    currencies = [str(c) for c, k in zip(buys.get("currencies", []), keep_b.tolist()) if k]
    inputs = HealthInputs(
        joined_at=_micros(list(joined_by_id.values())),
        post_member=post_member, post_at=_micros(posts.get("ats", []))[keep_p],
        inter_member=inter_member, inter_at=_micros(inters.get("ats", []))[keep_i],
        purchase_member=buyer, purchase_at=_micros(buys.get("ats", []))[keep_b],
        purchase_amount=np.asarray(buys.get("amounts", []), dtype=np.int64)[keep_b],
        purchase_paid=np.asarray(buys.get("paid", []), dtype=np.bool_)[keep_b],
        purchase_currency=currencies,
        referral_inviter=inviter, referral_at=_micros(refs.get("ats", []))[keep_r],
    )
    return Pulled(inputs=inputs, member_ids=ids, seconds=time.perf_counter() - started)


@dataclass(frozen=True)
class HealthRun:
    report: HealthReport
    pull_seconds: float
    compute_seconds: float


async def compute(graph: GraphClient, tenant: str, scope: HealthScope, window: Window, *,
                  activation_days: int = ACTIVATION_DAYS) -> HealthRun:
    """Pull and compute one report (no Redis)."""
    pulled = await pull(graph, tenant, scope, window)
    started = time.perf_counter()
    metrics = compute_health(pulled.inputs, to_micros(window.start), to_micros(window.end),
                             activation_days=activation_days)
    report = HealthReport(scope=scope, window=window, computed_at=now(), metrics=metrics)
    return HealthRun(report=report, pull_seconds=pulled.seconds, compute_seconds=time.perf_counter() - started)


# --- Redis encoding ------------------------------------------------------------------------------


def encode(report: HealthReport) -> bytes:
    m = report.metrics
    return orjson.dumps({
        "scope": [report.scope.kind.value, report.scope.id],
        "window": [to_micros(report.window.start), to_micros(report.window.end), report.window.default],
        "computedAt": to_micros(report.computed_at),
        "m": [m.member_count, m.new_members, m.active_members, m.dau, m.wau, m.mau, m.stickiness, m.posts,
              m.interactions, m.posts_per_active_member, m.interactions_per_active_member, m.repurchase_rate,
              m.top20_interaction_share],
        "cohorts": [[to_micros(c.start), c.size, c.retention] for c in m.cohorts],
        "funnel": [m.funnel.acquired] + [[s.members, s.share] for s in
                                         (m.funnel.activated, m.funnel.retained, m.funnel.revenue, m.funnel.referral)],
        "revenue": [[r.currency, r.gmv, r.paid_purchases, r.aov, r.ltv] for r in m.revenue],
    })


def decode(raw: bytes | str) -> HealthReport:
    d = orjson.loads(raw)
    (members, new, active, dau, wau, mau, stickiness, posts, inters, ppa, ipa, repurchase, top) = d["m"]
    acquired, *stages = d["funnel"]
    metrics = HealthMetrics(
        member_count=members, new_members=new, active_members=active, dau=dau, wau=wau, mau=mau,
        stickiness=stickiness, posts=posts, interactions=inters, posts_per_active_member=ppa,
        interactions_per_active_member=ipa,
        cohorts=[Cohort(start=from_micros(s), size=n, retention=r) for s, n, r in d["cohorts"]],
        funnel=Funnel(acquired, *(FunnelStage(k, share) for k, share in stages)),
        repurchase_rate=repurchase, revenue=[CurrencyRevenue(*r) for r in d["revenue"]],
        top20_interaction_share=top,
    )
    kind, scope_id = d["scope"]
    start, end, default = d["window"]
    return HealthReport(scope=HealthScope(HealthScopeKind(kind), scope_id),
                        window=Window(from_micros(start), from_micros(end), default),
                        computed_at=from_micros(d["computedAt"]), metrics=metrics)


def cache_key(tenant: str, scope: HealthScope, window: Window) -> str:
    return f"q:{tenant}:health:{scope.key}:{window.key}"


_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class HealthService:
    """Health reports from Redis, computed on a miss and refreshed in the background (module docstring)."""

    graph: GraphClient
    redis: aioredis.Redis
    fresh_seconds: float = 300.0
    max_age_seconds: int = 3_600
    #: how long a request waits for another process's computation before computing itself
    wait_seconds: float = 30.0
    clock: Callable[[], datetime] = now
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    def window(self, start: datetime | None, end: datetime | None, *, field: str = "window") -> Window:
        return resolve_window(start, end, now=self.clock(), field=field)

    async def health(self, tenant: str, scope: HealthScope, window: Window) -> HealthReport:
        key = cache_key(tenant, scope, window)
        try:
            raw = await self.redis.get(key)
        except _REDIS_DOWN as exc:
            log.warning("community health from the graph, Redis unavailable: %s", exc)
            CACHE_STATS.miss("health")
            return (await compute(self.graph, tenant, scope, window)).report
        if raw is not None:
            CACHE_STATS.hit("health")
            report = decode(raw)
            if (self.clock() - report.computed_at).total_seconds() >= self.fresh_seconds:
                self._refresh_later(tenant, scope, window)
            return report
        CACHE_STATS.miss("health")
        return await self._compute_on_miss(tenant, scope, window, key)

    async def _compute_on_miss(self, tenant: str, scope: HealthScope, window: Window, key: str) -> HealthReport:
        token = await self._lock(key)
        if token is None:  # someone else computes it: wait for their answer
            deadline = time.monotonic() + self.wait_seconds
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                raw = await self.redis.get(key)
                if raw is not None:
                    return decode(raw)
            return (await compute(self.graph, tenant, scope, window)).report
        try:
            raw = await self.redis.get(key)  # stored while this request was taking the lock?
            if raw is not None:
                return decode(raw)
            return (await self._compute_and_store(tenant, scope, window, key)).report
        finally:
            await self._unlock(key, token)

    async def _compute_and_store(self, tenant: str, scope: HealthScope, window: Window, key: str) -> HealthRun:
        if window.default:  # "the last 30 days" up to now
            window = self.window(None, None)
        run = await compute(self.graph, tenant, scope, window)
        await self.redis.set(key, encode(run.report), ex=self.max_age_seconds)
        return run

    async def _lock(self, key: str) -> str | None:
        token = secrets.token_hex(8)
        ok = await self.redis.set(key + ":lock", token, nx=True, px=int(max(self.wait_seconds, 60) * 1000))
        return token if ok else None

    async def _unlock(self, key: str, token: str) -> None:
        await self.redis.eval(_UNLOCK, 1, key + ":lock", token)

    def _refresh_later(self, tenant: str, scope: HealthScope, window: Window) -> None:
        async def refresh() -> None:
            try:
                await self.refresh(tenant, scope, window)
            except Exception:  # the next read of the stale report tries again
                log.exception("refreshing the health report of %s (%s) failed", tenant, scope.key)

        task = asyncio.get_running_loop().create_task(refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def refresh(self, tenant: str, scope: HealthScope, window: Window) -> HealthRun | None:
        """Recompute and store one report unless another process is doing it (then None)."""
        key = cache_key(tenant, scope, window)
        token = await self._lock(key)
        if token is None:
            return None
        try:
            return await self._compute_and_store(tenant, scope, window, key)
        finally:
            await self._unlock(key, token)

    async def settle(self) -> None:
        """Wait for the background refreshes started so far (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def recompute(graph: GraphClient, redis: aioredis.Redis, tenant: str, scope: HealthScope) -> HealthRun | None:
    """Refresh the default window ("the last 30 days") of *scope* now; None when another process is at it."""
    service = HealthService(graph, redis)
    return await service.refresh(tenant, scope, service.window(None, None))
