"""The transactional outbox and its relay, against the real graph server and Redis.

Given writes through the repositories, the outbox holds their events exactly when the
change committed; the relay hands them to consumers in order, at least once, and keeps
them pending while a consumer (Redis) is unavailable.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from domain.commands import RegisterMember
from domain.errors import NotFound, ReferralRejected
from domain.events import Event, EventType
from graph.client import GraphClient
from graph.events import EventRelay
from graph.members import GraphMemberRepository
from tests.helpers import dead_redis

PENDING_OF_TENANT = """
MATCH (e:Event {tenantId: $tenant}) WHERE e.pending = true
RETURN e.type AS type ORDER BY e.at, e.id
"""
ALL_OF_TENANT = """
MATCH (e:Event {tenantId: $tenant})
RETURN e.type AS type, e.pending AS pending, e.relayedAt IS NOT NULL AS relayed ORDER BY e.at, e.id
"""




class Recorder:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.seen: list[Event] = []

    async def __call__(self, e: Event) -> None:
        if e.tenant == self.tenant:
            self.seen.append(e)


async def register(repo: GraphMemberRepository, tenant: str, name: str, **fields: Any) -> str:
    return (await repo.register(tenant, RegisterMember(display_name=name, **fields))).id


async def test_a_write_records_its_events_in_the_same_transaction(graph: GraphClient, tenant: str) -> None:
    repo = GraphMemberRepository(graph)
    a = await register(repo, tenant, "A")
    b = await register(repo, tenant, "B", inviter_id=a)
    await repo.follow(tenant, b, a)
    await repo.follow(tenant, b, a)  # no change: no event

    rows = await graph.read(PENDING_OF_TENANT, tenant=tenant)

    assert [r["type"] for r in rows] == ["MEMBER_REGISTERED", "MEMBER_REGISTERED", "REFERRAL_CREATED", "FOLLOWED"]


async def test_a_rejected_write_records_nothing(graph: GraphClient, tenant: str) -> None:
    repo = GraphMemberRepository(graph)
    a = await register(repo, tenant, "A")
    b = await register(repo, tenant, "B", inviter_id=a)
    before = await graph.read(ALL_OF_TENANT, tenant=tenant)

    with pytest.raises(ReferralRejected):
        await repo.set_inviter(tenant, a, b)  # a cycle
    with pytest.raises(NotFound):
        await repo.follow(tenant, a, "mem_doesnotexist")

    assert await graph.read(ALL_OF_TENANT, tenant=tenant) == before


async def test_the_relay_delivers_in_order_and_marks_events_relayed(
    graph: GraphClient, redis_client: aioredis.Redis, tenant: str
) -> None:
    repo = GraphMemberRepository(graph)
    a = await register(repo, tenant, "A")
    b = await register(repo, tenant, "B")
    await repo.follow(tenant, a, b)
    await repo.set_inviter(tenant, b, a)
    recorder = Recorder(tenant)

    assert await EventRelay(graph, redis_client, [recorder]).flush(timeout=10)

    assert [e.type for e in recorder.seen] == [
        EventType.MEMBER_REGISTERED, EventType.MEMBER_REGISTERED, EventType.FOLLOWED, EventType.REFERRAL_CREATED,
    ]
    assert recorder.seen[3].payload == {"inviterId": a, "inviteeId": b}
    rows = await graph.read(ALL_OF_TENANT, tenant=tenant)
    assert all(r["relayed"] and r["pending"] is None for r in rows)


async def test_events_stay_pending_while_redis_is_down_and_arrive_when_it_returns(
    graph: GraphClient, redis_client: aioredis.Redis, tenant: str
) -> None:
    repo = GraphMemberRepository(graph)
    a = await register(repo, tenant, "A")
    down = dead_redis()
    recorder = Recorder(tenant)

    assert await EventRelay(graph, down, [recorder]).flush(timeout=2) is False
    await down.aclose()

    assert recorder.seen == []
    assert [r["type"] for r in await graph.read(PENDING_OF_TENANT, tenant=tenant)] == ["MEMBER_REGISTERED"]
    assert await EventRelay(graph, redis_client, [recorder]).flush(timeout=10)
    assert [e.payload["memberId"] for e in recorder.seen] == [a]


async def test_a_failing_consumer_leaves_the_rest_of_the_batch_pending(
    graph: GraphClient, redis_client: aioredis.Redis, tenant: str
) -> None:
    repo = GraphMemberRepository(graph)
    a = await register(repo, tenant, "A")
    b = await register(repo, tenant, "B")
    calls: list[str] = []

    async def flaky(e: Event) -> None:
        if e.tenant != tenant:
            return
        calls.append(e.payload["memberId"])
        if e.payload["memberId"] == b and calls.count(b) == 1:
            raise ConnectionError("redis went away")

    relay = EventRelay(graph, redis_client, [flaky])
    with pytest.raises(ConnectionError):
        await relay.relay_once()
    assert [r["type"] for r in await graph.read(PENDING_OF_TENANT, tenant=tenant)] == ["MEMBER_REGISTERED"]

    assert await relay.flush(timeout=10)
    assert calls == [a, b, b]
    assert await graph.read(PENDING_OF_TENANT, tenant=tenant) == []


async def test_two_relays_never_run_a_pass_at_the_same_time(graph: GraphClient, redis_client: aioredis.Redis, tenant: str) -> None:
    first = EventRelay(graph, redis_client)
    second = EventRelay(graph, redis_client)
    token = await redis_client.set(first.lock_key, "held-by-another-process", nx=True, px=5_000)
    assert token

    try:
        assert await second.relay_once() is None
    finally:
        await redis_client.delete(first.lock_key)
    assert await second.relay_once() is not None


async def test_a_poison_event_is_set_aside_so_later_events_still_flow(
    graph: GraphClient, redis_client: aioredis.Redis, tenant: str
) -> None:
    repo = GraphMemberRepository(graph)
    bad = await register(repo, tenant, "Poison")
    good = await register(repo, tenant, "Fine")
    delivered: list[str] = []

    async def picky(e: Event) -> None:
        if e.tenant != tenant:
            return
        if e.payload["memberId"] == bad:
            raise ValueError("a consumer bug")
        delivered.append(e.payload["memberId"])

    relay = EventRelay(graph, redis_client, [picky])
    for _ in range(4):
        with pytest.raises(ValueError):
            await relay.relay_once()
    assert delivered == []

    assert await relay.flush(timeout=10)
    assert delivered == [good] and len(relay.set_aside) == 1
    assert await graph.read(PENDING_OF_TENANT, tenant=tenant) == []


async def test_a_slow_pass_extends_its_lock_so_no_second_relay_starts(
    graph: GraphClient, redis_client: aioredis.Redis, tenant: str
) -> None:
    repo = GraphMemberRepository(graph)
    ids = [await register(repo, tenant, f"S{i}") for i in range(4)]
    seen: list[str] = []

    async def slow(e: Event) -> None:
        if e.tenant == tenant:
            await asyncio.sleep(0.25)
            seen.append(e.payload["memberId"])

    first = EventRelay(graph, redis_client, [slow], lock_ms=300)
    second = EventRelay(graph, redis_client, lock_ms=300)
    await redis_client.delete(first.lock_key)
    task = asyncio.create_task(first.relay_once())
    await asyncio.sleep(0.7)  # past the 300 ms lock: only the extensions keep it

    assert await second.relay_once() is None
    await task
    assert seen == ids


async def test_a_pass_that_lost_its_lock_stops_and_leaves_the_rest_pending(
    graph: GraphClient, redis_client: aioredis.Redis, tenant: str
) -> None:
    repo = GraphMemberRepository(graph)
    ids = [await register(repo, tenant, f"L{i}") for i in range(4)]
    seen: list[str] = []
    relay = EventRelay(graph, redis_client, lock_ms=300)

    async def slow(e: Event) -> None:
        if e.tenant == tenant:
            seen.append(e.payload["memberId"])
            await asyncio.sleep(0.25)
            if len(seen) == 1:
                await redis_client.set(relay.lock_key, "taken-over", px=5_000)

    relay.consumers = [slow]
    await redis_client.delete(relay.lock_key)
    try:
        await relay.relay_once()
    finally:
        await redis_client.delete(relay.lock_key)

    assert seen == ids[:1]
    assert len(await graph.read(PENDING_OF_TENANT, tenant=tenant)) == 3
    assert await relay.flush(timeout=10)
    assert seen == ids
