"""Per-process queues for writes to one hot record (a group-buy's seats, a member's points).

ArcadeDB's optimistic MVCC keeps such writes correct across processes: of two transactions that
wrote the same record, one commits and the other retries (graph/client.py). Inside one process,
though, 25 requests racing for one record burn most of their time in conflicts and retries, and
under load some exhaust the retry budget (benchmarks/results/campaign_contention_bench.md).
:class:`KeyedLocks` lets them queue instead: one write per key at a time in this process, while
the graph still arbitrates between processes.

On Neo4j the arbitration needs the statements' help: Neo4j checks a WHERE against committed
data and does not check it again after waiting for a lock, so two transactions could both see
"4 of 5 seats" and both take one. The hot-record statements therefore take the record's write
lock first (``SET x._lock = true REMOVE x._lock``: the lock lasts until commit, the property
does not) and check their condition after it, Neo4j's documented pattern for lost updates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["KeyedLocks"]


class KeyedLocks:
    """An :class:`asyncio.Lock` per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
