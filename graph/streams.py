"""Event streams for subscriptions: one Redis Stream per tenant, fanned out in each process.

:class:`StreamPublisher` is an event-relay consumer: it appends each relayed event to the
tenant's stream ``q:{tenant}:stream`` exactly once (a Lua script checks a per-event
marker and XADDs in one step, so a redelivered event is not appended twice). The stream
entry id is the event's *cursor*: ordered per tenant, and what a client passes as
``after`` to resume without gaps or duplicates.

:class:`StreamHub` runs one blocking ``XREAD`` per tenant per process and hands entries
to the subscriptions of that tenant through bounded queues. A subscriber that falls more
than ``buffer`` events behind is dropped (its iterator raises :class:`SlowConsumer`)
instead of growing memory without bound; it can reconnect with its last cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from domain.events import Event, EventType, StreamedEvent
from graph.client import to_micros

__all__ = ["SlowConsumer", "StreamEntry", "StreamHub", "StreamPublisher", "stream_key"]

log = logging.getLogger(__name__)

#: entries kept per tenant stream (approximate trim); older cursors resume from the oldest kept
STREAM_MAXLEN = 100_000

_APPEND = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', tonumber(ARGV[2]), '*',
                    'id', ARGV[3], 'type', ARGV[4], 'at', ARGV[5], 'payload', ARGV[6])
end
return false
"""


def stream_key(tenant: str) -> str:
    return f"q:{tenant}:stream"


class SlowConsumer(Exception):
    """The subscriber fell too far behind and was dropped; resume with its last cursor."""


StreamEntry = StreamedEvent


def _entry(entry_id: bytes | str, fields: dict[Any, Any]) -> StreamEntry:
    f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
         for k, v in fields.items()}
    return StreamEntry(
        cursor=entry_id.decode() if isinstance(entry_id, bytes) else entry_id, event_id=f["id"],
        type=EventType(f["type"]), at_micros=int(f["at"]), payload=json.loads(f["payload"]),
    )


class StreamPublisher:
    """Relay consumer: appends every event to its tenant's stream, once."""

    def __init__(self, redis: aioredis.Redis, *, marker_ttl: int = 7 * 86_400) -> None:
        self.redis = redis
        self.marker_ttl = marker_ttl
        self._append = redis.register_script(_APPEND)

    async def __call__(self, e: Event) -> None:
        await self.publish(e)

    async def publish(self, e: Event) -> str | None:
        """Append *e*; return its cursor, or ``None`` when it was appended before."""
        raw = await self._append(
            keys=[stream_key(e.tenant), f"q:{e.tenant}:streamed:{e.id}"],
            args=[self.marker_ttl, STREAM_MAXLEN, e.id, e.type.value, to_micros(e.at),
                  json.dumps(e.payload, sort_keys=True, default=str)],
        )
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)


class _Tenant:
    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[StreamEntry | None]] = set()
        self.task: asyncio.Task[None] | None = None


class StreamHub:
    """Fans each tenant's stream out to this process's subscriptions."""

    def __init__(self, redis: aioredis.Redis, *, buffer: int = 1_000, block_ms: int = 500) -> None:
        """*block_ms* must stay under the client's socket timeout (1 s in the app), or every
        quiet XREAD would end in a timeout and a retry pause."""
        self.redis = redis
        self.buffer = buffer
        self.block_ms = block_ms
        self._tenants: dict[str, _Tenant] = {}
        self._lock = asyncio.Lock()

    @property
    def subscribers(self) -> int:
        return sum(len(t.queues) for t in self._tenants.values())

    async def _read(self, tenant: str, state: _Tenant, last: str) -> None:
        key = stream_key(tenant)
        try:
            while state.queues:
                try:
                    reply = await self.redis.xread({key: last}, block=self.block_ms, count=500)
                except (RedisError, OSError) as exc:
                    log.warning("stream %s unavailable, retrying: %s", key, exc)
                    await asyncio.sleep(0.5)
                    continue
                for _, entries in reply or []:
                    for entry_id, fields in entries:
                        last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                        try:
                            entry = _entry(entry_id, fields)
                        except (KeyError, ValueError) as exc:  # e.g. a type a newer process wrote
                            log.error("skipping unreadable stream entry %s of %s: %s", last, key, exc)
                            continue
                        for queue in list(state.queues):
                            try:
                                queue.put_nowait(entry)
                            except asyncio.QueueFull:  # too slow: drop it rather than grow memory
                                _drop(state, queue)
        finally:
            for queue in list(state.queues):  # the reader ended: never leave a subscriber waiting forever
                _drop(state, queue)

    async def history(self, tenant: str, after: str, *, page: int = 500) -> AsyncIterator[StreamEntry]:
        """Entries after cursor *after* (exclusive), oldest first, read *page* at a time so a
        subscriber resuming far behind never pulls the whole stream into memory at once."""
        while True:
            entries = await self.redis.xrange(stream_key(tenant), min="(" + after, max="+", count=page)
            for entry_id, fields in entries:
                entry = _entry(entry_id, fields)
                after = entry.cursor
                yield entry
            if len(entries) < page:
                return

    @contextlib.asynccontextmanager
    async def _subscribe(self, tenant: str) -> AsyncIterator[asyncio.Queue[StreamEntry | None]]:
        queue: asyncio.Queue[StreamEntry | None] = asyncio.Queue(maxsize=self.buffer)
        async with self._lock:  # one reader per tenant: starting and stopping never interleave
            state = self._tenants.setdefault(tenant, _Tenant())
            if state.task is None or state.task.done():
                # start after the newest entry as of now: history read after this point overlaps, never gaps
                newest = await self.redis.xrevrange(stream_key(tenant), max="+", min="-", count=1)
                start = newest[0][0] if newest else "0-0"
                state.queues.add(queue)
                state.task = asyncio.create_task(
                    self._read(tenant, state, start.decode() if isinstance(start, bytes) else start))
            else:
                state.queues.add(queue)
        try:
            yield queue
        finally:
            async with self._lock:
                state.queues.discard(queue)
                if not state.queues and state.task is not None:
                    state.task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                        await state.task
                    if self._tenants.get(tenant) is state:
                        self._tenants.pop(tenant)

    async def entries(self, tenant: str, *, after: str | None = None) -> AsyncIterator[StreamEntry]:
        """Every entry of the tenant from now on (or from after cursor *after*), in order, once."""
        async with self._subscribe(tenant) as queue:
            seen = after or ""
            if after is not None:
                async for entry in self.history(tenant, after):
                    seen = entry.cursor
                    yield entry
            while True:
                entry = await queue.get()
                if entry is None:
                    raise SlowConsumer(f"more than {self.buffer} events behind")
                if seen and _cursor_key(entry.cursor) <= _cursor_key(seen):
                    continue  # already delivered from history
                seen = entry.cursor
                yield entry


def _drop(state: _Tenant, queue: asyncio.Queue[StreamEntry | None]) -> None:
    """Detach *queue* and wake its subscriber with the end marker (its iterator raises SlowConsumer)."""
    state.queues.discard(queue)
    while True:
        try:
            queue.put_nowait(None)
            return
        except asyncio.QueueFull:
            queue.get_nowait()


def _cursor_key(cursor: str) -> tuple[int, int]:
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq or 0)
