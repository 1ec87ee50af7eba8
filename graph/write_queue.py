"""Per-process queues for writes to one hot record (a group-buy's seats, a member's points).

ArcadeDB's optimistic MVCC keeps such writes correct across processes: of two transactions that
wrote the same record, one commits and the other retries (graph/client.py). Inside one process,
though, 25 requests racing for one record burn most of their time in conflicts and retries, and
under load some exhaust the retry budget (benchmarks/results/campaign_contention_bench.md).
:class:`KeyedLocks` lets them queue instead: one write per key at a time in this process, while
the graph still arbitrates between processes.
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
