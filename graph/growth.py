"""Growth analytics services: KOL rankings, referral aggregates, and their upkeep.

* :class:`GrowthService` answers the API (``domain.ports.GrowthRepository``): rankings and
  referral aggregates from Redis, falling back to the graph when Redis is down or a
  tenant's aggregates were never built.
* :class:`GrowthConsumer` is the event relay's consumer: it keeps the referral aggregates
  current in O(depth) Redis operations per event, drops the member's cached
  recommendations when the member's own writes change them, and counts changes per
  tenant (the graph version the KOL scheduler compares against).
* :class:`KolScheduler` recomputes rankings in the background when enough has changed or
  enough time has passed, one process at a time per scope (a Redis lock).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from domain.errors import GraphUnavailable
from domain.events import Event, EventType
from domain.growth import RankedMember, RankingPage, Scope, ScopeKind, TreePage
from domain.influence import RankingKind
from domain.models import Member, Referral
from domain.recommendations import RecommendationKind
from domain.referral_stats import ReferralStats
from graph import kol
from graph.cache_stats import CACHE_STATS
from graph.client import GraphClient, now
from graph.events import event
from graph.periodic import every
from graph.recommendations import GraphRecommender
from graph.referral_stats import ReferralStatsStore
from graph.referrals import GraphReferrals
from graph.streams import StreamPublisher

__all__ = [
    "RECOMPUTE_STAGES",
    "GrowthConsumer",
    "GrowthService",
    "KolScheduler",
    "RecomputeResult",
    "rebuild_referrals",
    "recompute_kol",
]

log = logging.getLogger(__name__)

_REDIS_DOWN = (RedisError, OSError)


def version_key(tenant: str) -> str:
    """Redis counter of relayed changes of *tenant* (the graph version rankings record)."""
    return f"q:{tenant}:version"


TENANTS_KEY = "q:tenants"


def parent_key(tenant: str) -> str:
    return f"q:{tenant}:ref:parent"


async def graph_version(redis: aioredis.Redis, tenant: str) -> int:
    raw = await redis.get(version_key(tenant))
    return int(raw) if raw else 0


@dataclass
class GrowthService:
    graph: GraphClient
    redis: aioredis.Redis
    kol_store: kol.KolStore
    stats_store: ReferralStatsStore
    referrals: GraphReferrals

    async def kol_page(self, tenant: str, scope: Scope, kind: RankingKind, offset: int, limit: int) -> RankingPage | None:
        """From Redis; without Redis, the tenant-wide ranking as written back to the members."""
        try:
            page = await self.kol_store.page(tenant, scope, kind, offset, limit)
        except _REDIS_DOWN as exc:
            CACHE_STATS.miss("kol_ranking")
            if scope.kind is not ScopeKind.TENANT:
                raise GraphUnavailable(f"rankings of a {scope.kind.value.lower()} need Redis, which is unavailable") from exc
            log.warning("KOL ranking from the graph, Redis unavailable: %s", exc)
            return await kol.page_from_graph(self.graph, tenant, kind, offset, limit)
        CACHE_STATS.hit("kol_ranking")
        return page

    async def kol_member(self, tenant: str, scope: Scope, member_id: str) -> tuple[RankedMember | None, datetime] | None:
        try:
            ranked = await self.kol_store.member(tenant, scope, member_id)
        except _REDIS_DOWN as exc:
            CACHE_STATS.miss("kol_member")
            if scope.kind is not ScopeKind.TENANT:
                raise GraphUnavailable(f"rankings of a {scope.kind.value.lower()} need Redis, which is unavailable") from exc
            log.warning("member influence from the graph, Redis unavailable: %s", exc)
            return await kol.member_from_graph(self.graph, tenant, member_id)
        CACHE_STATS.hit("kol_member")
        return ranked

    async def upline(self, tenant: str, member_id: str) -> list[Member] | None:
        return await self.referrals.upline(tenant, member_id)

    async def referral_tree(self, tenant: str, member_id: str, *, depth: int, first: int,
                            after: tuple[int, str] | None) -> TreePage | None:
        return await self.referrals.tree(tenant, member_id, depth=depth, first=first, after=after)

    async def referrals_of(self, tenant: str, ids: Sequence[str]) -> list[Referral | None]:
        return await self.referrals.referrals_of(tenant, ids)

    async def referral_stats(self, tenant: str, member_id: str) -> ReferralStats | None:
        """From Redis when the tenant's aggregates are built; else (or when Redis is down) from the graph."""
        try:
            stats = await self.stats_store.stats_if_built(tenant, member_id)
            if stats is not None:
                CACHE_STATS.hit("referral_stats")
                if not stats.is_empty():
                    return stats
                # most members invited nobody and did nothing; an unknown id reads the same way
                return stats if await self.referrals.exists(tenant, member_id) else None
        except _REDIS_DOWN as exc:
            log.warning("referral stats from the graph, Redis unavailable: %s", exc)
        CACHE_STATS.miss("referral_stats")
        return await self.referrals.stats_from_graph(tenant, member_id)


_UPLINE = """
local out, current = {}, ARGV[1]
for _ = 1, tonumber(ARGV[2]) do
  current = redis.call('HGET', KEYS[1], current)
  if not current then break end
  out[#out + 1] = current
end
return out
"""


class GrowthConsumer:
    """The relay consumer for growth analytics; idempotent by event id."""

    def __init__(self, redis: aioredis.Redis, store: ReferralStatsStore, recommender: GraphRecommender | None) -> None:
        self.redis = redis
        self.store = store
        self.recommender = recommender
        self._upline = redis.register_script(_UPLINE)

    async def upline(self, tenant: str, member_id: str, *, limit: int = 64) -> list[str]:
        """The member's upline from the parent map kept in Redis (inviter first), in one round trip."""
        raw = await self._upline(keys=[parent_key(tenant)], args=[member_id, limit])
        return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]

    async def __call__(self, e: Event) -> None:
        t = e.tenant
        if e.type is EventType.REFERRAL_CREATED:
            inviter, invitee = e.str_("inviterId"), e.str_("inviteeId")
            upline = [inviter, *await self.upline(t, inviter)]
            await self.store.apply_referral(t, e.id, invitee, upline)
            await self.redis.hset(parent_key(t), invitee, inviter)
            await self._invalidate(t, inviter, (RecommendationKind.MEMBER,))
        elif e.type is EventType.MEMBER_ACTIVATED:
            member = e.str_("memberId")
            await self.store.apply_activation(t, e.id, member, await self.upline(t, member))
        elif e.type is EventType.PURCHASE_RECORDED:
            buyer = e.str_("memberId")
            await self.store.apply_paid_purchase(
                t, e.id, buyer, await self.upline(t, buyer), int(e.payload["amount"]), e.str_("currency"),
                first_paid=bool(e.payload.get("firstPaid")), attributed_to=e.opt("attributedTo"),
            )
            await self._invalidate(t, buyer, (RecommendationKind.PRODUCT,))
        elif e.type is EventType.MEMBER_UPDATED:
            if "marketingConsent" in e.payload.get("fields", ()):  # PIPL: withdrawn consent stops product picks now
                await self._invalidate(t, e.str_("memberId"), (RecommendationKind.PRODUCT,))
        elif e.type in (EventType.FOLLOWED, EventType.UNFOLLOWED):
            await self._invalidate(t, e.str_("followerId"), (RecommendationKind.MEMBER,))
        elif e.type in (EventType.MEMBER_JOINED, EventType.MEMBER_LEFT):
            await self._invalidate(t, e.str_("memberId"), (RecommendationKind.COMMUNITY, RecommendationKind.PRODUCT))
        elif e.type in (EventType.INTERACTED, EventType.CONTENT_POSTED, EventType.COMMENT_ADDED):
            actor = e.opt("memberId") or e.str_("authorId")
            await self._invalidate(t, actor, (RecommendationKind.CONTENT,))
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(version_key(t))
        pipe.sadd(TENANTS_KEY, t)
        await pipe.execute()

    async def _invalidate(self, tenant: str, member_id: str, kinds: Sequence[RecommendationKind]) -> None:
        if self.recommender is not None:
            await self.recommender.invalidate(tenant, member_id, kinds)


@dataclass(frozen=True)
class RecomputeResult:
    tenant: str
    scope: Scope
    members: int
    seconds: float
    timings: dict[str, float]
    skipped: bool = False


#: the stages :func:`recompute_kol` reports, in order
RECOMPUTE_STAGES = ("projection", "algorithms", "scoring", "redis", "graph write")


async def recompute_kol(graph: GraphClient, redis: aioredis.Redis, tenant: str, scope: Scope, *,
                        write_to_graph: bool = True, on_stage: Callable[[str], None] | None = None) -> RecomputeResult:
    """Compute and publish one scope's ranking unless another process is already doing it.

    Readers keep getting the previous ranking until the new one is saved.
    """
    stage = on_stage or (lambda _: None)
    store = kol.KolStore(redis)
    token = await store.try_lock(tenant, scope)
    if token is None:
        return RecomputeResult(tenant=tenant, scope=scope, members=0, seconds=0.0, timings={}, skipped=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        version = await graph_version(redis, tenant)
        run = await kol.compute(graph, tenant, scope, graph_version=version, on_stage=stage)
        saving = loop.time()
        await store.save(run)
        timings = dict(run.timings)
        top = await store.page(tenant, scope, RankingKind.KOL, 0, 10)
        await StreamPublisher(redis).publish(event(
            tenant, EventType.KOL_RANKING_CHANGED, run.computed_at, scope=scope.key,
            computedAt=run.computed_at.isoformat(), top=[r.member_id for r in top.items] if top else []))
        timings["redis"] = loop.time() - saving
        stage("redis")
        if write_to_graph:
            writing = loop.time()
            await kol.write_back(graph, run)
            timings["graph_write"] = loop.time() - writing
        stage("graph write")
        return RecomputeResult(tenant=tenant, scope=scope, members=len(run.member_ids), seconds=loop.time() - started, timings=timings)
    finally:
        await store.unlock(tenant, scope, token)


async def rebuild_referrals(graph: GraphClient, redis: aioredis.Redis, tenant: str) -> int:
    """Rebuild a tenant's referral aggregates (and the parent map) from the graph; return members."""
    referrals = GraphReferrals(graph)
    stats = await referrals.all_stats(tenant)
    store = ReferralStatsStore(redis)
    await store.rebuild(tenant, stats)
    parents = {m: s.inviter for m, s in stats.items() if s.inviter is not None}
    pipe = redis.pipeline(transaction=True)
    pipe.delete(parent_key(tenant))
    items = list(parents.items())
    for lo in range(0, len(items), 10_000):
        pipe.hset(parent_key(tenant), mapping=dict(items[lo:lo + 10_000]))
    await pipe.execute()
    return len(stats)


class KolScheduler:
    """Recomputes tenant-wide rankings in the background.

    A tenant is recomputed when ``changes`` events were relayed since its last ranking, or
    when its ranking is older than ``max_age`` and anything changed; a tenant with no
    ranking yet is computed on the first check. The per-scope Redis lock in
    :func:`recompute_kol` keeps several API processes from computing the same scope.
    """

    def __init__(self, graph: GraphClient, redis: aioredis.Redis, *, changes: int = 1_000,
                 max_age: timedelta = timedelta(hours=1), interval: float = 30.0,
                 clock: Callable[[], datetime] = now) -> None:
        self.graph = graph
        self.redis = redis
        self.changes = changes
        self.max_age = max_age
        self.interval = interval
        self.clock = clock

    async def scopes(self, tenant: str) -> list[Scope]:
        """The tenant scope, plus every community or topic scope someone has ranked before."""
        found = [Scope(ScopeKind.TENANT)]
        async for raw in self.redis.scan_iter(match=f"q:{tenant}:kol:*:cur", count=1000):
            key = (raw.decode() if isinstance(raw, bytes) else str(raw)).split(":")[3]
            if key.startswith("com_"):
                found.append(Scope(ScopeKind.COMMUNITY, key))
            elif key.startswith("tag_"):
                found.append(Scope(ScopeKind.TOPIC, key))
        return found

    async def due(self, tenant: str, scope: Scope) -> bool:
        meta = await kol.KolStore(self.redis).meta(tenant, scope)
        version = await graph_version(self.redis, tenant)
        if meta is None:
            return True
        changed = version - int(meta["graphVersion"])
        if changed >= self.changes:
            return True
        return changed > 0 and self.clock() - meta["computedAt"] >= self.max_age

    async def check(self, tenants: Sequence[str] | None = None) -> list[RecomputeResult]:
        """One scheduling pass over *tenants* (default: every tenant that has relayed events)."""
        done: list[RecomputeResult] = []
        if tenants is None:
            tenants = sorted(raw.decode() for raw in await self.redis.smembers(TENANTS_KEY))
        for tenant in tenants:
            for scope in await self.scopes(tenant):
                if await self.due(tenant, scope):
                    result = await recompute_kol(self.graph, self.redis, tenant, scope)
                    if not result.skipped:
                        log.info("KOL ranking of %s (%s) recomputed: %d members in %.2fs", tenant, scope.key,
                                 result.members, result.seconds)
                        done.append(result)
        return done

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.interval, stop, self.check, what="KOL scheduling")
