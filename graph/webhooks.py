"""Webhooks: stored in the graph, queued and delivered through Redis.

* :class:`GraphWebhooks` creates, lists and deactivates a tenant's webhooks.
* :class:`WebhookOutbox` is an event-relay consumer. It never does HTTP: for each event
  it finds the tenant's active webhooks subscribed to the event's type (the list is
  cached in-process for ``cache_seconds``) and enqueues one delivery per webhook. A Lua
  script checks a per-(webhook, event) marker and enqueues in one step, so a redelivered
  event is queued once.
* :class:`WebhookDispatcher` claims due deliveries and POSTs them. The claim is one Lua
  step that pushes the delivery's due time a lease into the future and counts the
  attempt, so two dispatchers never send the same attempt; a dispatcher that dies mid-send
  leaves the delivery to be retried when the lease runs out (at least once). A 2xx answer
  delivers; anything else (or a timeout / connection error) reschedules with
  :func:`domain.webhooks.backoff` until ``max_attempts``, then marks the delivery failed.
  Every attempt is logged in a capped per-webhook list, newest first.

Redis layout (``ns`` defaults to ``q:webhooks``)::

    {ns}:due                    ZSET  delivery key -> due unix time
    {ns}:d:{webhook}:{event}    HASH  url, secret, body, event type, attempt, state
    {ns}:seen:{webhook}:{event} STR   enqueue marker (idempotency)
    {ns}:log:{webhook}          LIST  JSON attempt records, newest first (capped)
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from domain.events import Event
from domain.webhooks import (
    EVENT_ID_HEADER,
    MAX_ATTEMPTS,
    SIGNATURE_HEADER,
    Delivery,
    Webhook,
    backoff,
    delivery_body,
    new_secret,
    new_webhook_id,
    signature_header,
    validate_event_types,
    is_public_address,
    validate_url,
)
from graph.client import GraphClient, Tx, now, to_datetime
from graph.cypher import cypher

__all__ = ["GraphWebhooks", "WebhookDispatcher", "WebhookOutbox", "webhook_from"]

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "q:webhooks"
#: how long delivery state and enqueue markers are kept (a redelivered event older than this is queued again)
STATE_TTL_SECONDS = 7 * 86_400
#: attempts kept per webhook in its delivery log
LOG_MAX = 1_000

CREATE_WEBHOOK = cypher("CREATE (w:Webhook) SET w = $props RETURN w")
TENANT_WEBHOOKS = cypher(
    """
    MATCH (w:Webhook) WHERE w.tenantId = $tenant
    WITH w ORDER BY w.createdAt, w.id
    RETURN collect(w) AS webhooks
    """
)
DEACTIVATE_WEBHOOK = cypher(
    """
    MATCH (w:Webhook {id: $id}) WITH * WHERE w.tenantId = $tenant
    SET w.active = false, w.deactivatedAt = coalesce(w.deactivatedAt, $now)
    RETURN w.id AS id
    """
)


def webhook_from(p: Any) -> Webhook:
    return Webhook(
        id=p["id"], tenant_id=p["tenantId"], url=p["url"], event_types=tuple(p["eventTypes"]),
        secret=p["secret"], created_at=to_datetime(p["createdAt"]), active=bool(p["active"]),
    )


@dataclass
class GraphWebhooks:
    graph: GraphClient
    #: False in production: URLs pointing at private or local addresses are refused
    allow_private: bool = True

    async def create(self, tenant: str, url: str, event_types: Iterable[str]) -> Webhook:
        """A new active webhook with a fresh 32-byte signing secret."""
        props = {
            "id": new_webhook_id(), "tenantId": tenant, "url": validate_url(url, allow_private=self.allow_private),
            "eventTypes": list(validate_event_types(event_types)), "secret": new_secret(),
            "createdAt": now(), "active": True,
        }

        async def work(tx: Tx) -> Webhook:
            row = await self.graph.run_one(tx, CREATE_WEBHOOK, props=props)
            assert row is not None
            return webhook_from(row["w"])

        return await self.graph.write(work)

    async def list(self, tenant: str) -> list[Webhook]:
        """Every webhook of the tenant (active or not), oldest first."""
        row = await self.graph.read_one(TENANT_WEBHOOKS, tenant=tenant)
        return [webhook_from(w) for w in (row["webhooks"] if row else [])]

    async def deactivate(self, tenant: str, webhook_id: str) -> bool:
        """Stop deliveries to the webhook; ``False`` when the tenant has no such webhook."""
        async def work(tx: Tx) -> bool:
            return await self.graph.run_one(tx, DEACTIVATE_WEBHOOK, tenant=tenant, id=webhook_id, now=now()) is not None

        return await self.graph.write(work)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# KEYS: marker, delivery hash, due zset. ARGV: ttl, due score, member, then hash field/value pairs
_ENQUEUE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[1]))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
return 1
"""

# KEYS: due zset. ARGV: now, limit, lease-until score, delivery hash key prefix.
# Returns member, attempt pairs; the claimed deliveries are invisible until the lease ends.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, m in ipairs(due) do
  local h = ARGV[4] .. m
  if redis.call('HGET', h, 'state') == 'pending' then
    redis.call('ZADD', KEYS[1], ARGV[3], m)
    out[#out + 1] = m
    out[#out + 1] = redis.call('HINCRBY', h, 'attempt', 1)
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
"""

# KEYS: delivery hash, due zset, log list. ARGV: member, attempt, state, next due score, log entry,
# log max, ttl. Only the holder of the current attempt may finish it.
_FINISH = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[2] then return 0 end
redis.call('LPUSH', KEYS[3], ARGV[5])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
redis.call('HSET', KEYS[1], 'state', ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
if ARGV[3] == 'pending' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
"""


class _Keys:
    def __init__(self, namespace: str) -> None:
        self.ns = namespace
        self.due = f"{namespace}:due"
        self.delivery_prefix = f"{namespace}:d:"

    @staticmethod
    def member(webhook_id: str, event_id: str) -> str:
        return f"{webhook_id}:{event_id}"

    def delivery(self, member: str) -> str:
        return self.delivery_prefix + member

    def seen(self, member: str) -> str:
        return f"{self.ns}:seen:{member}"

    def log(self, webhook_id: str) -> str:
        return f"{self.ns}:log:{webhook_id}"


@dataclass
class _Cached:
    expires: float
    webhooks: list[Webhook] = field(default_factory=list)


class WebhookOutbox:
    """Relay consumer: enqueues one delivery per subscribed active webhook, once per event."""

    def __init__(self, redis: aioredis.Redis, webhooks: GraphWebhooks, *, cache_seconds: float = 5,
                 namespace: str = DEFAULT_NAMESPACE, state_ttl: int = STATE_TTL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.webhooks = webhooks
        self.cache_seconds = cache_seconds
        self.keys = _Keys(namespace)
        self.state_ttl = state_ttl
        self.clock = clock
        self._cache: dict[str, _Cached] = {}
        self._enqueue = redis.register_script(_ENQUEUE)

    def invalidate(self, tenant: str | None = None) -> None:
        """Forget the cached webhook list of *tenant* (of every tenant when ``None``)."""
        if tenant is None:
            self._cache.clear()
        else:
            self._cache.pop(tenant, None)

    async def _tenant_webhooks(self, tenant: str) -> list[Webhook]:
        loop_now = time.monotonic()
        cached = self._cache.get(tenant)
        if cached is not None and cached.expires > loop_now:
            return cached.webhooks
        hooks = [w for w in await self.webhooks.list(tenant) if w.active]
        if self.cache_seconds > 0:
            self._cache[tenant] = _Cached(expires=loop_now + self.cache_seconds, webhooks=hooks)
        return hooks

    async def __call__(self, e: Event) -> None:
        await self.enqueue(e)

    async def enqueue(self, e: Event) -> int:
        """Queue *e* for each subscribed webhook; return how many deliveries were new."""
        targets = [w for w in await self._tenant_webhooks(e.tenant) if w.wants(e.type.value)]
        if not targets:
            return 0
        body = delivery_body(e)
        due = repr(self.clock())
        queued = 0
        for w in targets:
            member = self.keys.member(w.id, e.id)
            queued += int(await self._enqueue(
                keys=[self.keys.seen(member), self.keys.delivery(member), self.keys.due],
                args=[self.state_ttl, due, member,
                      "webhook_id", w.id, "event_id", e.id, "event_type", e.type.value, "url", w.url,
                      "secret", w.secret, "body", body, "attempt", 0, "state", "pending"],
            ))
        return queued


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _delivery_from(raw: bytes | str) -> Delivery:
    d = json.loads(raw)
    return Delivery(
        webhook_id=d["webhookId"], event_id=d["eventId"], event_type=d["eventType"], attempt=int(d["attempt"]),
        status_code=d["statusCode"], error=d["error"], at=datetime.fromisoformat(d["at"]),
        delivered=bool(d["delivered"]),
        next_attempt_at=None if d["nextAttemptAt"] is None else datetime.fromisoformat(d["nextAttemptAt"]),
    )


async def _private_target(url: str) -> str | None:
    """Why *url* must not be sent to (its host resolves to a non-public address), or None.

    A name is resolved here and again by the HTTP client, so a DNS answer that changes in
    between is not caught; pinning the address would need the client to connect to it.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"refused: cannot resolve {host}: {exc}"
    private = sorted({str(info[4][0]) for info in infos if not is_public_address(str(info[4][0]))})
    return f"refused: {host} resolves to a private or local address ({', '.join(private)})" if private else None


class WebhookDispatcher:
    """Claims due deliveries, POSTs them signed, and reschedules or gives up on failures."""

    def __init__(self, redis: aioredis.Redis, http: httpx.AsyncClient | None = None, *, timeout: float = 5.0,
                 namespace: str = DEFAULT_NAMESPACE, max_attempts: int = MAX_ATTEMPTS,
                 backoff: Callable[[int], float] = backoff, batch: int = 100, concurrency: int = 16,
                 lease_seconds: float | None = None, log_max: int = LOG_MAX,
                 state_ttl: int = STATE_TTL_SECONDS, allow_private: bool = True) -> None:
        self.redis = redis
        #: False in production: a URL whose host resolves to a private or local address is
        #: not sent to (checked at each attempt, so a DNS change after registration is caught)
        self.allow_private = allow_private
        self._own_http = http is None
        self.http = http if http is not None else httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self.timeout = timeout
        self.keys = _Keys(namespace)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.batch = batch
        self.concurrency = concurrency
        #: a claimed attempt is retried by anyone after this long (the sender died)
        self.lease_seconds = lease_seconds if lease_seconds is not None else 2 * timeout + 30
        self.log_max = log_max
        self.state_ttl = state_ttl
        self.sent = 0
        self._claim = redis.register_script(_CLAIM)
        self._finish = redis.register_script(_FINISH)

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def run_once(self, now: float | None = None) -> int:
        """Send every delivery due at *now* (unix seconds; default: the clock) once; return how many."""
        at = time.time() if now is None else now
        raw = await self._claim(keys=[self.keys.due],
                                args=[repr(at), self.batch, repr(at + self.lease_seconds), self.keys.delivery_prefix])
        claimed = [(_text(raw[i]), int(raw[i + 1])) for i in range(0, len(raw), 2)]
        if not claimed:
            return 0
        fields = ("webhook_id", "event_id", "event_type", "url", "secret", "body")
        async with self.redis.pipeline(transaction=False) as pipe:
            for member, _ in claimed:
                pipe.hmget(self.keys.delivery(member), fields)
            rows: Sequence[Sequence[bytes | None]] = await pipe.execute()
        limit = asyncio.Semaphore(self.concurrency)

        async def one(member: str, attempt: int, row: Sequence[bytes | None]) -> None:
            async with limit:
                await self._attempt(member, attempt, dict(zip(fields, row, strict=True)), at)

        await asyncio.gather(*(one(m, a, row) for (m, a), row in zip(claimed, rows, strict=True)
                               if all(v is not None for v in row)))
        return len(claimed)

    async def _attempt(self, member: str, attempt: int, d: dict[str, bytes | None], at: float) -> None:
        body = d["body"] or b""
        secret, event_id = _text(d["secret"]), _text(d["event_id"])
        timestamp = int(at)
        headers = {
            SIGNATURE_HEADER: signature_header(secret, timestamp, body),
            EVENT_ID_HEADER: event_id,
            "Content-Type": "application/json",
        }
        status: int | None = None
        error: str | None = None
        url = _text(d["url"])
        refused = None if self.allow_private else await _private_target(url)
        if refused is not None:
            delivered, error = False, refused
        else:
            try:
                response = await self.http.post(url, content=body, headers=headers, timeout=self.timeout)
                status = response.status_code
                delivered = 200 <= status < 300
                if not delivered:
                    error = f"HTTP {status}"
            except httpx.HTTPError as exc:
                delivered = False
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        next_at: float | None = None
        if delivered:
            state = "delivered"
        elif attempt >= self.max_attempts or refused is not None:  # a refused target is never retried
            state = "failed"
        else:
            state = "pending"
            next_at = at + self.backoff(attempt)
        entry = json.dumps({
            "webhookId": _text(d["webhook_id"]), "eventId": event_id, "eventType": _text(d["event_type"]),
            "attempt": attempt, "statusCode": status, "error": error, "at": _iso(at), "delivered": delivered,
            "nextAttemptAt": _iso(next_at),
        })
        self.sent += 1
        await self._finish(
            keys=[self.keys.delivery(member), self.keys.due, self.keys.log(_text(d["webhook_id"]))],
            args=[member, attempt, state, repr(next_at if next_at is not None else at), entry, self.log_max,
                  self.state_ttl],
        )

    async def deliveries(self, webhook_id: str, limit: int = 50) -> list[Delivery]:
        """The webhook's latest delivery attempts, newest first."""
        if limit <= 0:
            return []
        raw = await self.redis.lrange(self.keys.log(webhook_id), 0, limit - 1)
        return [_delivery_from(r) for r in raw]

    async def state(self, webhook_id: str, event_id: str) -> str | None:
        """``pending``, ``delivered`` or ``failed`` for the event's delivery; ``None`` when unknown."""
        raw = await self.redis.hget(self.keys.delivery(self.keys.member(webhook_id, event_id)), "state")
        return None if raw is None else _text(raw)

    async def run(self, stop: asyncio.Event, interval: float = 0.5) -> None:
        """Dispatch until *stop* is set; a Redis outage or a bug only postpones deliveries."""
        while not stop.is_set():
            try:
                sent = await self.run_once()
            except (RedisError, OSError) as exc:
                log.warning("webhook dispatch postponed: %s", exc)
                sent = 0
            except Exception:
                log.exception("webhook dispatch pass failed")
                sent = 0
            if not sent:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                except TimeoutError:
                    pass


class WebhookService:
    """What the API needs: register, list and deactivate a tenant's webhooks, and read their log."""

    def __init__(self, webhooks: GraphWebhooks, outbox: WebhookOutbox, dispatcher: WebhookDispatcher) -> None:
        self.webhooks = webhooks
        self.outbox = outbox
        self.dispatcher = dispatcher

    async def create(self, tenant: str, url: str, event_types: Iterable[str]) -> Webhook:
        webhook = await self.webhooks.create(tenant, url, event_types)
        self.outbox.invalidate(tenant)
        return webhook

    async def list(self, tenant: str) -> list[Webhook]:
        return await self.webhooks.list(tenant)

    async def deactivate(self, tenant: str, webhook_id: str) -> bool:
        done = await self.webhooks.deactivate(tenant, webhook_id)
        self.outbox.invalidate(tenant)
        return done

    async def deliveries(self, tenant: str, webhook_id: str, limit: int) -> list[Delivery] | None:
        """The webhook's latest attempts, newest first; ``None`` when the tenant has no such webhook."""
        if not any(w.id == webhook_id for w in await self.webhooks.list(tenant)):
            return None
        return await self.dispatcher.deliveries(webhook_id, limit)
