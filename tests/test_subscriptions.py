"""Subscriptions over a real websocket (graphql-transport-ws) against the real app, graph and Redis.

Writes go through HTTP mutations; their events through the outbox, the relay and the
tenant's Redis Stream to the subscriber.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis.asyncio as aioredis
import websockets
from websockets.exceptions import ConnectionClosed

from api.auth import issue_token
from domain.events import EventType
from graph.events import event
from graph.streams import SlowConsumer, StreamHub, StreamPublisher
from tests.helpers import community, join, register

JOINED = """
subscription($c: ID!, $after: String) {
  memberJoined(communityId: $c, after: $after) { id type tenantId cursor at communityId member { id displayName phone } }
}
"""
PURCHASES = "subscription { purchaseRecorded { id amount currency } }"


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next message that is not a ping or pong, within *timeout* seconds in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), remaining))
            if message["type"] not in ("ping", "pong"):
                return message

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self.next_id += 1
        op = str(self.next_id)
        await self.send({"id": op, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}})
        return op


async def connect(ws_url: str, token: str | None) -> Client:
    ws = await websockets.connect(ws_url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    client = Client(ws)
    payload = {} if token is None else {"authorization": f"Bearer {token}"}
    await client.send({"type": "connection_init", "payload": payload})
    return client


async def ack(ws_url: str, token: str) -> Client:
    client = await connect(ws_url, token)
    assert (await client.recv())["type"] == "connection_ack"
    return client


async def joined_events(client: Client, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        message = await client.recv()
        assert message["type"] == "next", message
        out.append(message["payload"]["data"]["memberJoined"])
    return out


async def started(client: Client) -> None:
    await asyncio.sleep(0.3)  # the subscription is registered with the hub before writes start


async def test_a_subscriber_receives_joins_with_masked_personal_data(api: Any, operator_token: str, ws_url: str) -> None:
    com = await community(api, operator_token, "Live")
    client = await ack(ws_url, api.token("operator"))
    await client.subscribe(JOINED, {"c": com})
    await started(client)

    member = await register(api, operator_token, "Ann", phone="13812345678")
    await join(api, operator_token, com, member["id"])

    [e] = await joined_events(client, 1)
    assert e["communityId"] == com and e["member"] == {"id": member["id"], "displayName": "Ann", "phone": "138****5678"}
    assert e["id"].startswith("evt_") and "-" in e["cursor"]
    assert e["type"] == "MEMBER_JOINED" and e["tenantId"] == api.tenant
    await client.ws.close()


async def test_a_reconnecting_subscriber_resumes_after_its_cursor_without_gaps_or_duplicates(
    api: Any, operator_token: str, ws_url: str
) -> None:
    com = await community(api, operator_token, "Resume")
    members = [(await register(api, operator_token, f"M{i}"))["id"] for i in range(5)]
    client = await ack(ws_url, api.token("operator"))
    await client.subscribe(JOINED, {"c": com})
    await started(client)
    for m in members[:2]:
        await join(api, operator_token, com, m)
    first = await joined_events(client, 2)
    await client.ws.close()  # the network drops

    for m in members[2:]:
        await join(api, operator_token, com, m)
    again = await ack(ws_url, api.token("operator"))
    await again.subscribe(JOINED, {"c": com, "after": first[-1]["cursor"]})
    resumed = await joined_events(again, 3)

    assert [e["member"]["id"] for e in first + resumed] == members
    cursors = [e["cursor"] for e in first + resumed]
    assert len(set(cursors)) == 5
    with pytest.raises(TimeoutError):
        await again.recv(timeout=1.0)  # nothing twice
    await again.ws.close()


async def test_no_connection_init_closes_with_4408(ws_url: str) -> None:
    ws = await websockets.connect(ws_url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]

    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)

    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408


@pytest.mark.parametrize("token", [None, "not-a-token"])
async def test_a_missing_or_bad_token_closes_with_4403(ws_url: str, token: str | None) -> None:
    client = await connect(ws_url, token)

    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()

    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_members_only_get_events_of_their_communities_and_no_purchases(
    api: Any, operator_token: str, ws_url: str
) -> None:
    com = await community(api, operator_token, "Private")
    outsider = (await register(api, operator_token, "Out"))["id"]
    client = await ack(ws_url, api.token("member", member=outsider))

    await client.subscribe(JOINED, {"c": com})
    denied, done = await client.recv(), await client.recv()
    await client.subscribe(PURCHASES)
    no_purchases = await client.recv()

    assert done == {"id": denied["id"], "type": "complete"}
    for refused in (denied, no_purchases):
        assert refused["type"] == "next" and refused["payload"]["data"] is None
        assert refused["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    await client.ws.close()


async def test_subscriptions_per_connection_are_capped(api: Any, operator_token: str, ws_url: str) -> None:
    com = await community(api, operator_token, "Cap")
    client = await ack(ws_url, api.token("operator"))
    for _ in range(3):  # the test settings allow 3
        await client.subscribe(JOINED, {"c": com})
    await started(client)

    await client.subscribe(JOINED, {"c": com})
    refused = await client.recv()

    assert refused["type"] == "error" and "limit" in json.dumps(refused).lower()
    await client.ws.close()


async def test_a_slow_subscriber_is_dropped_instead_of_buffering_without_bound(
    redis_client: aioredis.Redis, tenant: str
) -> None:
    hub = StreamHub(redis_client, buffer=2, block_ms=100)
    publisher = StreamPublisher(redis_client)
    entries = hub.entries(tenant)
    first = asyncio.ensure_future(entries.__anext__())
    await asyncio.sleep(0.2)

    for i in range(6):
        await publisher.publish(event(tenant, EventType.MEMBER_JOINED, memberId=f"mem_{i}", communityId="com_x"))
    got = await asyncio.wait_for(first, 5)
    await asyncio.sleep(0.5)  # the reader fills the 2-slot buffer and drops the subscriber

    assert got.payload["memberId"] == "mem_0"
    with pytest.raises(SlowConsumer):
        for _ in range(10):
            await asyncio.wait_for(entries.__anext__(), 5)
    await entries.aclose()
    assert hub.subscribers == 0


async def test_a_redelivered_event_is_appended_to_the_stream_once(redis_client: aioredis.Redis, tenant: str) -> None:
    publisher = StreamPublisher(redis_client)
    e = event(tenant, EventType.MEMBER_JOINED, memberId="mem_a", communityId="com_a")

    first, again = await publisher.publish(e), await publisher.publish(e)

    assert first is not None and again is None
    assert await redis_client.xlen(f"q:{tenant}:stream") == 1


async def test_the_server_pings_idle_connections(api: Any, ws_url: str) -> None:
    client = await ack(ws_url, api.token("operator"))

    message = json.loads(await asyncio.wait_for(client.ws.recv(), 5))  # the test settings ping every 0.3 s

    assert message == {"type": "ping"}
    await client.ws.close()


def test_protocol_defaults_match_the_issue() -> None:
    from api.settings import Settings

    s = Settings()
    assert (s.ws_init_timeout_seconds, s.ws_max_subscriptions, s.subscription_buffer) == (3.0, 20, 1_000)


async def test_history_is_read_a_page_at_a_time_in_order_without_gaps(redis_client: aioredis.Redis, tenant: str) -> None:
    publisher = StreamPublisher(redis_client)
    for i in range(8):
        await publisher.publish(event(tenant, EventType.MEMBER_JOINED, memberId=f"mem_{i}", communityId="com_x"))
    first = (await redis_client.xrange(f"q:{tenant}:stream", count=1))[0][0].decode()
    hub = StreamHub(redis_client)
    calls = 0
    xrange = redis_client.xrange

    async def counting_xrange(*args: Any, **kwargs: Any) -> Any:  # counts real XRANGE calls, no fake
        nonlocal calls
        calls += 1
        return await xrange(*args, **kwargs)

    redis_client.xrange = counting_xrange  # type: ignore[method-assign]
    try:
        got = [e.payload["memberId"] async for e in hub.history(tenant, first, page=3)]
    finally:
        del redis_client.xrange

    assert got == [f"mem_{i}" for i in range(1, 8)]
    assert calls == 3  # 3 + 3 + 1 entries


LEAVE = """
mutation($c: ID!, $m: ID) { leaveCommunity(communityId: $c, asMemberId: $m) { __typename } }
"""


async def test_a_member_who_leaves_a_community_stops_receiving_its_events(
    api: Any, operator_token: str, ws_url: str
) -> None:
    com = await community(api, operator_token, "Leavers")
    me = (await register(api, operator_token, "Leaver"))["id"]
    await join(api, operator_token, com, me)
    client = await ack(ws_url, api.token("member", member=me))
    op = await client.subscribe(JOINED, {"c": com})
    await started(client)

    first = (await register(api, operator_token, "Before"))["id"]
    await join(api, operator_token, com, first)
    [before] = await joined_events(client, 1)
    await api.ok(LEAVE, {"c": com, "m": me}, token=operator_token)
    later = (await register(api, operator_token, "After"))["id"]
    await join(api, operator_token, com, later)
    ended, done = await client.recv(), await client.recv()

    assert before["member"]["id"] == first
    assert ended["type"] == "next" and ended["payload"]["data"] is None
    assert ended["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert done == {"id": op, "type": "complete"}
    assert later not in json.dumps(ended)
    await client.ws.close()


async def test_a_subscription_ends_when_its_token_expires(api: Any, operator_token: str, ws_url: str) -> None:
    com = await community(api, operator_token, "Expiring")
    short = issue_token(api.settings, tenant=api.tenant, roles=("operator",), ttl_seconds=2)
    client = await ack(ws_url, short)
    op = await client.subscribe(JOINED, {"c": com})
    await started(client)
    early = (await register(api, operator_token, "Early"))["id"]
    await join(api, operator_token, com, early)
    [got] = await joined_events(client, 1)

    await asyncio.sleep(2.5)
    late = (await register(api, operator_token, "Late"))["id"]
    await join(api, operator_token, com, late)
    ended, done = await client.recv(), await client.recv()

    assert got["member"]["id"] == early
    assert ended["payload"]["errors"][0]["extensions"]["code"] == "NOT_AUTHENTICATED"
    assert "expired" in ended["payload"]["errors"][0]["message"]
    assert done == {"id": op, "type": "complete"}
    await client.ws.close()
