"""Webhooks end to end: real graph, real Redis, and a real HTTP receiver served by uvicorn."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from domain.errors import ValidationFailed
from domain.events import Event, EventType
from domain.webhooks import backoff, delivery_body, is_public_address, sign, signature_header, validate_url, verify
from graph.events import event
from graph.webhooks import GraphWebhooks, WebhookDispatcher, WebhookOutbox


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Records every POST per path name and answers with scripted status codes (then 200)."""

    def __init__(self) -> None:
        self.requests: dict[str, list[Received]] = defaultdict(list)
        self.script: dict[str, list[int]] = {}
        self.always: dict[str, int] = {}
        self.base = ""

    async def endpoint(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.requests[name].append(Received(dict(request.headers), await request.body()))
        if name in self.always:
            return Response(status_code=self.always[name])
        queue = self.script.get(name) or []
        return Response(status_code=queue.pop(0) if queue else 200)

    def url(self, name: str) -> str:
        return f"{self.base}/hook/{name}"


@pytest_asyncio.fixture(scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    import uvicorn

    from graph.embedded import free_port

    r = Receiver()
    app = Starlette(routes=[Route("/hook/{name}", r.endpoint, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    r.base = f"http://127.0.0.1:{port}"
    try:
        yield r
    finally:
        server.should_exit = True
        await task


@pytest_asyncio.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def ns(tenant: str) -> str:
    """A Redis namespace of the test's own, so dispatchers never see other tests' deliveries."""
    return f"q:webhooks:test:{tenant}"


@pytest.fixture
def name() -> str:
    return uuid.uuid4().hex


def registered(tenant: str, **payload: str) -> Event:
    return event(tenant, EventType.MEMBER_REGISTERED, **payload)


# --- pure rules ----------------------------------------------------------------------------


def test_backoff_doubles_and_is_capped_at_an_hour():
    assert [backoff(a) for a in range(1, 9)] == [1, 2, 4, 8, 16, 32, 64, 128]
    assert backoff(12) == 2048
    assert backoff(13) == 3600
    assert backoff(500) == 3600
    with pytest.raises(ValueError):
        backoff(0)


def test_signature_is_a_hex_hmac_of_timestamp_dot_body():
    body = b'{"a":1}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1700000000, body) == expected
    header = signature_header("s3cret", 1700000000, body)
    assert header == f"t=1700000000,v1={expected}"
    assert verify("s3cret", header, body, now=1700000010)
    assert not verify("s3cret", header, body + b" ", now=1700000010)  # tampered body
    assert not verify("other", header, body, now=1700000010)  # wrong secret
    assert not verify("s3cret", header, body, now=1700000000 + 301)  # replayed too late
    assert verify("s3cret", header, body, now=1700000000 + 10_000, tolerance=None)
    assert not verify("s3cret", "garbage", body, now=1700000000)
    assert not verify("s3cret", "t=x,v1=" + expected, body, now=1700000000)


@pytest.mark.parametrize("url", [
    "", "   ", "ftp://example.com/hook", "javascript:alert(1)", "file:///etc/passwd", "http://", "https:///path",
    "example.com/hook", "http://exa mple.com/", "http://example.com/\nx", "http://example.com:99999/",
    "https://example.com/" + "a" * 2000,
])
async def test_bad_urls_are_rejected(graph, tenant, url):
    webhooks = GraphWebhooks(graph)
    with pytest.raises(ValidationFailed) as caught:
        await webhooks.create(tenant, url, [EventType.MEMBER_REGISTERED])
    assert caught.value.field == "input.url"
    assert await webhooks.list(tenant) == []


def test_good_urls_are_accepted():
    assert validate_url(" https://example.com/hooks?x=1 ") == "https://example.com/hooks?x=1"
    assert validate_url("http://127.0.0.1:8080/h") == "http://127.0.0.1:8080/h"
    longest = "https://example.com/" + "a" * (2000 - len("https://example.com/"))
    assert validate_url(longest) == longest


async def test_unknown_or_missing_event_types_are_rejected(graph, tenant):
    webhooks = GraphWebhooks(graph)
    for types in ([], ["NOT_A_TYPE"]):
        with pytest.raises(ValidationFailed) as caught:
            await webhooks.create(tenant, "https://example.com/h", types)
        assert caught.value.field == "input.eventTypes"
    assert await webhooks.list(tenant) == []


# --- the graph repository ------------------------------------------------------------------


async def test_create_list_and_deactivate(graph, tenant):
    webhooks = GraphWebhooks(graph)
    first = await webhooks.create(tenant, "https://example.com/a", [EventType.FOLLOWED, "FOLLOWED", "MEMBER_LEFT"])
    second = await webhooks.create(tenant, "http://example.com/b", ["CONTENT_POSTED"])
    assert first.id.startswith("whk_") and first.id != second.id
    assert first.tenant_id == tenant and first.url == "https://example.com/a"
    assert first.event_types == ("FOLLOWED", "MEMBER_LEFT")
    assert first.active is True
    assert len(first.secret) == 64 and int(first.secret, 16) >= 0 and first.secret != second.secret
    assert abs((datetime.now(UTC) - first.created_at).total_seconds()) < 60

    assert await webhooks.list(tenant) == [first, second]
    assert await webhooks.list(tenant + "x") == []

    assert await webhooks.deactivate(tenant + "x", first.id) is False  # another tenant's webhook
    assert await webhooks.deactivate(tenant, "whk_missing") is False
    assert await webhooks.deactivate(tenant, first.id) is True
    listed = await webhooks.list(tenant)
    assert [(w.id, w.active) for w in listed] == [(first.id, False), (second.id, True)]


# --- delivery -------------------------------------------------------------------------------


async def test_a_subscribed_event_is_delivered_once_signed_with_the_exact_body(
        graph, redis_client, tenant, ns, receiver, http_client, name):
    webhooks = GraphWebhooks(graph)
    hook = await webhooks.create(tenant, receiver.url(name), [EventType.MEMBER_REGISTERED])
    outbox = WebhookOutbox(redis_client, webhooks, namespace=ns)
    dispatcher = WebhookDispatcher(redis_client, http_client, namespace=ns)
    e = registered(tenant, memberId="mem_1", displayName="Ann 安")

    await outbox(e)
    assert await dispatcher.state(hook.id, e.id) == "pending"
    before = int(time.time())
    assert await dispatcher.run_once() == 1
    assert await dispatcher.run_once() == 0

    [got] = receiver.requests[name]
    assert json.loads(got.body) == {
        "id": e.id, "type": "MEMBER_REGISTERED", "tenantId": tenant, "at": e.at.isoformat(),
        "data": {"memberId": "mem_1", "displayName": "Ann 安"},
    }
    assert got.body == delivery_body(e)
    assert got.headers["content-type"] == "application/json"
    assert got.headers["quanzi-event-id"] == e.id
    signature = got.headers["quanzi-signature"]
    assert verify(hook.secret, signature, got.body)
    assert not verify("wrong-secret", signature, got.body)
    ts = int(signature.split(",")[0].removeprefix("t="))
    assert before <= ts <= int(time.time())
    independent = hmac.new(hook.secret.encode(), f"{ts}.".encode() + got.body, hashlib.sha256).hexdigest()
    assert signature == f"t={ts},v1={independent}"

    assert await dispatcher.state(hook.id, e.id) == "delivered"
    [entry] = await dispatcher.deliveries(hook.id, 10)
    assert (entry.webhook_id, entry.event_id, entry.event_type) == (hook.id, e.id, "MEMBER_REGISTERED")
    assert (entry.attempt, entry.status_code, entry.error, entry.delivered, entry.next_attempt_at) == \
        (1, 200, None, True, None)


async def test_an_unsubscribed_type_is_not_delivered(graph, redis_client, tenant, ns, receiver, http_client, name):
    webhooks = GraphWebhooks(graph)
    hook = await webhooks.create(tenant, receiver.url(name), [EventType.FOLLOWED])
    outbox = WebhookOutbox(redis_client, webhooks, namespace=ns)
    dispatcher = WebhookDispatcher(redis_client, http_client, namespace=ns)

    assert await outbox.enqueue(registered(tenant, memberId="mem_1")) == 0
    assert await outbox.enqueue(event(tenant + "x", EventType.FOLLOWED, memberId="m")) == 0  # another tenant
    assert await dispatcher.run_once() == 0
    assert receiver.requests[name] == []

    followed = event(tenant, EventType.FOLLOWED, memberId="mem_1", followedId="mem_2")
    assert await outbox.enqueue(followed) == 1
    assert await dispatcher.run_once() == 1
    assert [json.loads(r.body)["id"] for r in receiver.requests[name]] == [followed.id]
    assert [d.event_id for d in await dispatcher.deliveries(hook.id, 10)] == [followed.id]


async def test_a_redelivered_event_is_delivered_once(graph, redis_client, tenant, ns, receiver, http_client, name):
    webhooks = GraphWebhooks(graph)
    await webhooks.create(tenant, receiver.url(name), [EventType.MEMBER_REGISTERED])
    outbox = WebhookOutbox(redis_client, webhooks, namespace=ns)
    other_process = WebhookOutbox(redis_client, webhooks, namespace=ns)
    dispatcher = WebhookDispatcher(redis_client, http_client, namespace=ns)
    e = registered(tenant, memberId="mem_1")

    assert await outbox.enqueue(e) == 1
    assert await outbox.enqueue(e) == 0
    await other_process(e)
    assert await dispatcher.run_once() == 1
    await outbox(e)  # redelivered after it was sent
    assert await dispatcher.run_once(time.time() + 10_000) == 0
    assert len(receiver.requests[name]) == 1


async def test_two_dispatchers_never_send_the_same_attempt(graph, redis_client, tenant, ns, receiver, name):
    webhooks = GraphWebhooks(graph)
    await webhooks.create(tenant, receiver.url(name), [EventType.MEMBER_REGISTERED])
    outbox = WebhookOutbox(redis_client, webhooks, namespace=ns)
    events = [registered(tenant, memberId=f"mem_{i}") for i in range(20)]
    for e in events:
        await outbox(e)
    async with WebhookDispatcher(redis_client, namespace=ns, batch=3) as a, \
            WebhookDispatcher(redis_client, namespace=ns, batch=3) as b:
        counts = []
        while sum(counts) < len(events):
            pair = await asyncio.gather(a.run_once(), b.run_once())
            assert sum(pair) > 0
            counts.extend(pair)
    ids = [json.loads(r.body)["id"] for r in receiver.requests[name]]
    assert sorted(ids) == sorted(e.id for e in events)


async def test_a_failing_receiver_is_retried_with_backoff_and_every_attempt_is_logged(
        graph, redis_client, tenant, ns, receiver, http_client, name):
    webhooks = GraphWebhooks(graph)
    hook = await webhooks.create(tenant, receiver.url(name), [EventType.MEMBER_REGISTERED])
    outbox = WebhookOutbox(redis_client, webhooks, namespace=ns)
    dispatcher = WebhookDispatcher(redis_client, http_client, namespace=ns)
    receiver.script[name] = [500, 500]
    e = registered(tenant, memberId="mem_1")
    await outbox(e)

    t0 = time.time() + 1
    assert await dispatcher.run_once(t0) == 1  # 500: retry after 1 s
    assert await dispatcher.run_once(t0 + 0.9) == 0
    assert await dispatcher.run_once(t0 + 1) == 1  # 500: retry after 2 s
    assert await dispatcher.run_once(t0 + 2.9) == 0
    assert await dispatcher.state(hook.id, e.id) == "pending"
    assert await dispatcher.run_once(t0 + 3) == 1  # 200
    assert await dispatcher.run_once(t0 + 10_000) == 0

    got = receiver.requests[name]
    assert len(got) == 3
    assert all(r.body == delivery_body(e) and verify(hook.secret, r.headers["quanzi-signature"], r.body,
                                                     tolerance=None) for r in got)
    assert [int(r.headers["quanzi-signature"].split(",")[0][2:]) for r in got] == \
        [int(t0), int(t0 + 1), int(t0 + 3)]
    assert await dispatcher.state(hook.id, e.id) == "delivered"

    log = await dispatcher.deliveries(hook.id, 10)
    assert [(d.attempt, d.status_code, d.delivered) for d in log] == [(3, 200, True), (2, 500, False), (1, 500, False)]
    assert [d.error for d in log] == [None, "HTTP 500", "HTTP 500"]
    assert log[2].next_attempt_at == datetime.fromtimestamp(t0 + 1, UTC)
    assert log[1].next_attempt_at == datetime.fromtimestamp(t0 + 3, UTC)
    assert log[0].next_attempt_at is None and not log[0].failed
    assert log[2].at == datetime.fromtimestamp(t0, UTC)
    assert [d.attempt for d in await dispatcher.deliveries(hook.id, 2)] == [3, 2]


async def test_a_receiver_that_never_succeeds_is_given_up_after_max_attempts(
        graph, redis_client, tenant, ns, receiver, http_client, name):
    webhooks = GraphWebhooks(graph)
    hook = await webhooks.create(tenant, receiver.url(name), [EventType.MEMBER_REGISTERED])
    outbox = WebhookOutbox(redis_client, webhooks, namespace=ns)
    dispatcher = WebhookDispatcher(redis_client, http_client, namespace=ns)
    receiver.always[name] = 503
    e = registered(tenant, memberId="mem_1")
    await outbox(e)

    t = time.time() + 1
    sent = 0
    for _ in range(30):
        sent += await dispatcher.run_once(t)
        t += 3601
    assert sent == 8
    assert len(receiver.requests[name]) == 8
    assert await dispatcher.state(hook.id, e.id) == "failed"

    log = await dispatcher.deliveries(hook.id, 100)
    assert [d.attempt for d in log] == list(range(8, 0, -1))
    assert all(d.status_code == 503 and not d.delivered for d in log)
    assert log[0].failed and log[0].next_attempt_at is None
    assert not any(d.failed for d in log[1:])
    waits = [(d.next_attempt_at - d.at).total_seconds() for d in reversed(log[1:])]
    assert waits == [1, 2, 4, 8, 16, 32, 64]


async def test_connection_errors_count_as_failed_attempts(graph, redis_client, tenant, ns, http_client):
    from graph.embedded import free_port

    webhooks = GraphWebhooks(graph)
    hook = await webhooks.create(tenant, f"http://127.0.0.1:{free_port()}/nobody", [EventType.MEMBER_REGISTERED])
    outbox = WebhookOutbox(redis_client, webhooks, namespace=ns)
    dispatcher = WebhookDispatcher(redis_client, http_client, namespace=ns, max_attempts=2, backoff=lambda a: 0.0,
                                   timeout=1.0)
    e = registered(tenant, memberId="mem_1")
    await outbox(e)
    t = time.time() + 1
    assert await dispatcher.run_once(t) == 1
    assert await dispatcher.run_once(t) == 1
    assert await dispatcher.run_once(t + 10_000) == 0
    log = await dispatcher.deliveries(hook.id, 10)
    assert [(d.attempt, d.status_code, d.delivered) for d in log] == [(2, None, False), (1, None, False)]
    assert all(d.error and "ConnectError" in d.error for d in log)
    assert log[0].failed and not log[1].failed
    assert await dispatcher.state(hook.id, e.id) == "failed"


async def test_the_delivery_log_is_capped_newest_first(graph, redis_client, tenant, ns, receiver, http_client, name):
    webhooks = GraphWebhooks(graph)
    hook = await webhooks.create(tenant, receiver.url(name), [EventType.MEMBER_REGISTERED])
    outbox = WebhookOutbox(redis_client, webhooks, namespace=ns)
    dispatcher = WebhookDispatcher(redis_client, http_client, namespace=ns, log_max=2)
    events = [registered(tenant, memberId=f"mem_{i}") for i in range(3)]
    for e in events:
        await outbox(e)
        assert await dispatcher.run_once() == 1
    assert [d.event_id for d in await dispatcher.deliveries(hook.id, 10)] == [events[2].id, events[1].id]


async def test_deactivated_webhooks_receive_nothing(graph, redis_client, tenant, ns, receiver, http_client, name):
    webhooks = GraphWebhooks(graph)
    hook = await webhooks.create(tenant, receiver.url(name), [EventType.MEMBER_REGISTERED])
    outbox = WebhookOutbox(redis_client, webhooks, namespace=ns, cache_seconds=60)
    dispatcher = WebhookDispatcher(redis_client, http_client, namespace=ns)
    before = registered(tenant, memberId="mem_1")
    await outbox(before)
    assert await dispatcher.run_once() == 1

    assert await webhooks.deactivate(tenant, hook.id) is True
    # a fresh process (or one whose cache expired) sees the deactivation at once
    fresh = WebhookOutbox(redis_client, webhooks, namespace=ns)
    after = registered(tenant, memberId="mem_2")
    assert await fresh.enqueue(after) == 0
    # this process's cached list is stale until it expires or is invalidated
    outbox.invalidate(tenant)
    await outbox(after)
    assert await dispatcher.run_once(time.time() + 10_000) == 0
    assert [json.loads(r.body)["id"] for r in receiver.requests[name]] == [before.id]
    assert await dispatcher.state(hook.id, after.id) is None


# --- private and local targets (server-side request forgery) ------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/h", "http://10.1.2.3/h", "http://192.168.0.9/h",
                                 "http://169.254.169.254/latest/meta-data", "http://[::1]/h", "http://0.0.0.0/h",
                                 "http://localhost/h", "http://api.localhost/h", "http://100.64.0.1/h"])
async def test_private_and_local_urls_are_refused_when_not_allowed(graph, tenant, url):
    with pytest.raises(ValidationFailed) as caught:
        await GraphWebhooks(graph, allow_private=False).create(tenant, url, [EventType.MEMBER_REGISTERED])
    assert caught.value.message == "the webhook URL points at a private or local address"
    assert validate_url(url) == url  # allowed where private targets are (development, tests)


def test_public_addresses_are_public():
    assert is_public_address("93.184.216.34") and is_public_address("2606:2800:220:1:248:1893:25c8:1946")
    assert not any(is_public_address(a) for a in ("127.0.0.1", "10.0.0.1", "172.16.5.4", "fe80::1", "::1", "x"))


async def test_a_name_resolving_to_a_private_address_is_not_sent_to(graph, redis_client, tenant, ns, receiver, name):
    webhooks = GraphWebhooks(graph, allow_private=False)
    # a name (not a literal) passes registration; where it resolves is checked at each attempt
    url = receiver.url(name).replace("127.0.0.1", socket.gethostname())
    hook = await webhooks.create(tenant, url, [EventType.MEMBER_REGISTERED])
    outbox = WebhookOutbox(redis_client, webhooks, namespace=ns)
    async with WebhookDispatcher(redis_client, namespace=ns, allow_private=False) as dispatcher:
        assert await outbox.enqueue(registered(tenant, memberId="mem_1")) == 1
        assert await dispatcher.run_once() == 1
        (entry,) = await dispatcher.deliveries(hook.id, 10)
    assert receiver.requests[name] == []
    assert entry.delivered is False and entry.next_attempt_at is None  # given up at once, never retried
    assert entry.error is not None and "resolves to a private or local address" in entry.error
