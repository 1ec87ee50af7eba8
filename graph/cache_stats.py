"""Hits and misses of the Redis-first reads, as plain integer counters.

Every read that tries Redis before the graph records its outcome here, keyed by cache
name and result:

* ``hit``: Redis answered and the graph was not read for the answer;
* ``miss``: the graph answered instead (nothing cached yet, an expired or malformed
  entry, aggregates not built, or Redis unavailable).

The counters are per process (:data:`CACHE_STATS`), like the process's own CPU and memory
figures: the API layer turns them into the Prometheus counter
``quanzi_cache_requests_total{cache, result}`` at scrape time. This module knows nothing of
Prometheus, so the graph adapters stay free of API concerns.
"""

from __future__ import annotations

import threading
from typing import Literal

__all__ = ["CACHE_STATS", "CacheStats", "Result"]

Result = Literal["hit", "miss"]


class CacheStats:
    """Monotonic hit and miss counts per cache name (thread-safe, cheap)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, Result], int] = {}
        self._lock = threading.Lock()

    def record(self, cache: str, result: Result) -> None:
        with self._lock:
            key = (cache, result)
            self._counts[key] = self._counts.get(key, 0) + 1

    def hit(self, cache: str) -> None:
        self.record(cache, "hit")

    def miss(self, cache: str) -> None:
        self.record(cache, "miss")

    def snapshot(self) -> dict[tuple[str, Result], int]:
        """A copy of every count so far, keyed by ``(cache, result)``."""
        with self._lock:
            return dict(self._counts)


#: the process's counters, recorded by graph.growth and graph.recommendations
CACHE_STATS = CacheStats()
