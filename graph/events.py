"""The transactional outbox and its relay.

Writers call :func:`record` inside their graph transaction, so an event exists exactly
when its change committed. :class:`EventRelay` reads pending events in ``(at, id)``
order, hands each to every consumer, and only then marks them relayed; a consumer that
fails (Redis down) leaves them pending and the next pass retries. Delivery is therefore
at least once, and consumers are idempotent by event id.

Several API processes may run a relay: a short Redis lock makes one pass run at a time,
so consumers see events one by one in order. :meth:`EventRelay.after_mutation` runs a pass
right after a mutation (read-your-writes for derived data) unless every event the request
recorded is one no read depends on at once (:data:`DEFERRABLE`): then it only wakes the
background loop, which relays them a moment later; that loop also catches up on anything a
flush could not deliver. :func:`watch_events` collects the types a request recorded.

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
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from domain.errors import GraphUnavailable
from domain.events import Event, EventType, is_activation
from graph.client import GraphClient, Tx, now, to_datetime, to_micros
from graph.cypher import cypher

__all__ = [
    "DEFERRABLE", "Consumer", "EventRelay", "activation", "event", "event_id", "outbox_rows", "record",
    "touch_activity", "watch_events",
]

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

#: Event types whose derived data no read needs right after the write: the stream (subscriptions
#: wait for it anyway), webhooks, and the poster's content recommendations (the new post is
#: never recommended to its author). A mutation that recorded only these answers without
#: waiting for the relay; every other type keeps read-your-writes (referral numbers, consent,
#: follows, likes, joins and comments change what the next read returns — a comment takes the
#: content out of the commenter's recommendations).
DEFERRABLE: frozenset[EventType] = frozenset({EventType.CONTENT_POSTED})

#: the event types recorded so far in this context (one GraphQL request), when watched
_recorded: ContextVar[set[EventType] | None] = ContextVar("quanzi_recorded_events", default=None)


def watch_events() -> set[EventType]:
    """Collect, from now on in this context, the type of every event :func:`record` writes.

    The returned set fills in as the request's transactions record events (a retried
    transaction may add a type twice: it is a set). Tasks started later share it.
    """
    seen: set[EventType] = set()
    _recorded.set(seen)
    return seen

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


def outbox_rows(events: Sequence[Event]) -> list[dict[str, Any]]:
    """*events* as ``$events`` rows of an outbox write (``RECORD_EVENTS`` or a statement that
    records its events itself, with the same ``SET``); notes their types for :func:`watch_events`."""
    seen = _recorded.get()
    if seen is not None:
        seen.update(e.type for e in events)
    return [
        {"id": e.id, "tenantId": e.tenant, "type": e.type.value, "at": e.at,
         "payload": json.dumps(e.payload, sort_keys=True, default=str)}
        for e in events
    ]


async def record(graph: GraphClient, tx: Tx, events: Sequence[Event]) -> None:
    """Record *events* in the outbox, inside the caller's write transaction."""
    if not events:
        return
    await graph.run(tx, RECORD_EVENTS, events=outbox_rows(events))


def activation(tenant: str, member_id: str, at: datetime, *, joined_at: Any, event_id_: str | None = None) -> Event | None:
    """The ``MEMBER_ACTIVATED`` event of a first activity at *at*, or None when it does not activate.

    *joined_at* is the member's join time as the graph returned it (None: unknown);
    *event_id_* an id reserved earlier, so the event sorts before events made after it.
    """
    if joined_at is None or not is_activation(joined_at=to_datetime(joined_at), first_active_at=at):
        return None
    return Event(id=event_id_ or event_id(at), tenant=tenant, type=EventType.MEMBER_ACTIVATED, at=at,
                 payload={"memberId": member_id})


async def touch_activity(graph: GraphClient, tx: Tx, tenant: str, member_id: str, at: datetime) -> list[Event]:
    """Mark *member_id*'s first activity; return the activation event when it activates them."""
    row = await graph.run_one(tx, TOUCH_ACTIVITY, tenant=tenant, memberId=member_id, at=at)
    found = None if row is None else activation(tenant, member_id, at, joined_at=row["joinedAt"])
    return [] if found is None else [found]


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
        #: set when a mutation left its events for the background loop (see :meth:`wake`)
        self._wake = asyncio.Event()
        #: whether the last pass relayed everything that was pending when it started
        self._drained = False

    def wake(self) -> None:
        """Have the background loop run a pass now instead of at its next poll."""
        self._wake.set()

    async def after_mutation(self, recorded: set[EventType] | None, *, timeout: float = 1.0) -> bool:
        """What a mutation does before answering, given the event types it *recorded*.

        Nothing recorded: nothing to relay. Only :data:`DEFERRABLE` types: wake the background
        loop and answer at once. Anything else (or unknown, ``None``): :meth:`flush`, so the
        next read sees the derived data.
        """
        if recorded is not None and recorded <= DEFERRABLE:
            if recorded:
                self.wake()
            return True
        return await self.flush(timeout=timeout)

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
        self._drained = False
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
            self._drained = len(events) < self.batch and len(done) == len(events)
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
            if moved == 0 or (moved is not None and self._drained):
                return True  # a short batch, all relayed: nothing was left (no second read)
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
            if moved is None:
                # another pass holds the lock; it may have read the outbox before the events
                # of a mutation that woke us committed, so look again shortly
                await self._idle(stop, min(interval, 0.05))
            elif not moved or self._drained:
                await self._idle(stop, interval)

    async def _idle(self, stop: asyncio.Event, seconds: float) -> None:
        """Wait until *stop*, a :meth:`wake` or *seconds*; then forget the wake."""
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        # a wake that comes after this clear finds the next pass not yet started: not lost
        self._wake.clear()
