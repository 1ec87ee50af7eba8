"""The transactional outbox and its relay.

Writers call :func:`record` inside their graph transaction, so an event exists exactly
when its change committed. :class:`EventRelay` reads pending events in ``(at, id)``
order, hands each to every consumer, and only then marks them relayed; a consumer that
fails (Redis down) leaves them pending and the next pass retries. Delivery is therefore
at least once, and consumers are idempotent by event id.

Several API processes may run a relay: a short Redis lock makes one pass run at a time,
so consumers see events one by one in order. :meth:`EventRelay.flush` runs a pass right
after a mutation (read-your-writes for derived data); the background loop catches up on
anything a flush could not deliver.

:func:`touch_activity` marks a member's first activity (post, interaction, comment,
purchase) in the same transaction and returns the ``MEMBER_ACTIVATED`` event when it
activates the member (PRODUCT.md: first activity within 7 days of joining).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from domain.errors import GraphUnavailable
from domain.events import Event, EventType, is_activation
from graph.client import GraphClient, Tx, now, to_datetime, to_micros
from graph.cypher import cypher

__all__ = ["Consumer", "EventRelay", "event", "record", "touch_activity"]

log = logging.getLogger(__name__)

RECORD_EVENTS = cypher(
    """
    UNWIND $events AS e
    CREATE (x:Event)
    SET x.id = e.id, x.tenantId = e.tenantId, x.type = e.type, x.at = e.at, x.payload = e.payload,
        x.pending = true
    """
)
TOUCH_ACTIVITY = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant AND m.firstActiveAt IS NULL
    SET m.firstActiveAt = $at
    RETURN m.joinedAt AS joinedAt
    """
)
PENDING_EVENTS = cypher(
    """
    MATCH (e:Event) WHERE e.pending = true
    WITH e ORDER BY e.at, e.id LIMIT $limit
    RETURN collect({id: e.id, tenant: e.tenantId, type: e.type, at: e.at, payload: e.payload}) AS events
    """
)
MARK_RELAYED = cypher(
    """
    UNWIND $ids AS id
    MATCH (e:Event {id: id})
    REMOVE e.pending
    SET e.relayedAt = $now
    """
)

#: consumes one event; must be idempotent by ``event.id``
Consumer = Callable[[Event], Awaitable[None]]

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


_sequence = itertools.count()


def event_id(at: datetime) -> str:
    """A fresh event id that sorts by time, then by creation order within this process.

    ``evt_`` + 14 hex digits of microseconds + 6 of a process counter + 8 random.
    """
    return f"evt_{to_micros(at):014x}{next(_sequence) % 0x1000000:06x}{secrets.token_hex(4)}"


def event(tenant: str, type_: EventType, at: datetime | None = None, **payload: Any) -> Event:
    """A new event with a fresh, time-ordered id."""
    at = at or now()
    return Event(id=event_id(at), tenant=tenant, type=type_, at=at, payload=payload)


async def record(graph: GraphClient, tx: Tx, events: Sequence[Event]) -> None:
    """Record *events* in the outbox, inside the caller's write transaction."""
    if not events:
        return
    rows = [
        {"id": e.id, "tenantId": e.tenant, "type": e.type.value, "at": e.at,
         "payload": json.dumps(e.payload, sort_keys=True, default=str)}
        for e in events
    ]
    await graph.run(tx, RECORD_EVENTS, events=rows)


async def touch_activity(graph: GraphClient, tx: Tx, tenant: str, member_id: str, at: datetime) -> list[Event]:
    """Mark *member_id*'s first activity; return the activation event when it activates them."""
    row = await graph.run_one(tx, TOUCH_ACTIVITY, tenant=tenant, memberId=member_id, at=at)
    if row is None or row["joinedAt"] is None:
        return []
    if not is_activation(joined_at=to_datetime(row["joinedAt"]), first_active_at=at):
        return []
    return [event(tenant, EventType.MEMBER_ACTIVATED, at, memberId=member_id)]


def _event_from(row: dict[str, Any]) -> Event:
    return Event(
        id=str(row["id"]), tenant=str(row["tenant"]), type=EventType(row["type"]),
        at=to_datetime(row["at"]), payload=json.loads(row["payload"]),
    )


class EventRelay:
    """Moves committed events from the graph outbox to the consumers, in order."""

    def __init__(self, graph: GraphClient, redis: aioredis.Redis, consumers: Sequence[Consumer] = (), *,
                 batch: int = 500, lock_ms: int = 30_000) -> None:
        self.graph = graph
        self.redis = redis
        self.consumers = list(consumers)
        self.batch = batch
        self.lock_ms = lock_ms
        self.lock_key = "q:relay:lock"
        self.relayed = 0
        #: failed deliveries per event id; after max_failures the event is set aside (logged)
        self.failures: dict[str, int] = {}
        self.max_failures = 5
        self.set_aside: list[str] = []
        #: our lock tokens that a pass could not release (Redis went away during the pass); a
        #: set, since the background loop and every mutation's flush run passes concurrently
        self._unreleased: set[str] = set()

    async def relay_once(self) -> int | None:
        """Relay one batch; return how many events moved, or ``None`` when another relay runs."""
        for stale in list(self._unreleased):
            # Our own lock from a pass cut short by a Redis outage; a persistent Redis keeps it
            # after a restart, which held every relay back for the rest of its 30 s.
            await self.redis.eval(_RELEASE, 1, self.lock_key, stale)  # type: ignore[misc]
            self._unreleased.discard(stale)
        token = secrets.token_hex(8)
        try:
            acquired = await self.redis.set(self.lock_key, token, nx=True, px=self.lock_ms)
        except (RedisError, OSError):
            self._unreleased.add(token)  # the SET may have landed just before the connection broke
            raise
        if not acquired:
            return None
        try:
            row = await self.graph.read_one(PENDING_EVENTS, limit=self.batch)
            events = [_event_from(r) for r in (row["events"] if row else [])]
            done: list[str] = []
            extended = time.monotonic()
            try:
                for e in events:
                    if time.monotonic() - extended > self.lock_ms / 3_000:
                        # A slow pass (a slow graph or webhook target) keeps its lock instead of
                        # letting a second relay start on the same events; a lost lock ends the pass.
                        if not await self.redis.eval(_EXTEND, 1, self.lock_key, token, self.lock_ms):  # type: ignore[misc]
                            log.warning("relay lock lost during a pass; the rest of the batch waits")
                            break
                        extended = time.monotonic()
                    try:
                        for consume in self.consumers:
                            await consume(e)
                    except (RedisError, OSError, GraphUnavailable):
                        raise  # an outage: the whole batch waits for the next pass
                    except Exception:
                        # A bug or a bad payload: retry a few passes, then set the event aside so one
                        # poison event cannot stop every tenant's events behind it.
                        self.failures[e.id] = self.failures.get(e.id, 0) + 1
                        if self.failures[e.id] < self.max_failures:
                            raise
                        log.exception("event %s (%s) set aside after %d failed deliveries", e.id, e.type, self.max_failures)
                        self.set_aside.append(e.id)
                    self.failures.pop(e.id, None)
                    done.append(e.id)
            finally:
                if done:
                    async def work(tx: Tx) -> None:
                        await self.graph.run(tx, MARK_RELAYED, ids=done, now=now())

                    await self.graph.write(work)
                    self.relayed += len(done)
            return len(events)
        finally:
            try:
                await self.redis.eval(_RELEASE, 1, self.lock_key, token)
            except (RedisError, OSError):
                self._unreleased.add(token)
                raise

    async def flush(self, *, timeout: float = 2.0) -> bool:
        """Relay until nothing is pending; ``False`` when it could not finish in *timeout*.

        Never raises: the caller's write is committed; the background loop retries later.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                moved = await self.relay_once()
            except (RedisError, OSError, GraphUnavailable) as exc:
                log.warning("event relay postponed: %s", exc)
                return False
            except Exception:  # the write is committed: never turn it into an error for the client
                log.exception("event relay pass failed; the background relay retries")
                return False
            if moved == 0:
                return True
            if moved is None:
                await asyncio.sleep(0.01)
        return False

    async def run(self, stop: asyncio.Event, *, interval: float = 1.0) -> None:
        """Relay in the background until *stop* is set."""
        while not stop.is_set():
            try:
                moved = await self.relay_once()
            except (RedisError, OSError, GraphUnavailable) as exc:
                log.warning("event relay postponed: %s", exc)
                moved = 0
            except Exception:  # a consumer bug must not kill the loop; events stay pending
                log.exception("event relay pass failed")
                moved = 0
            if not moved:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                except TimeoutError:
                    pass
