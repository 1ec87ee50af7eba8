"""A Redis compute lock: one process at a time runs a job for a key (stampede protection).

``SET key token NX PX ttl`` takes it; a Lua compare-and-delete releases it only when the
token is still ours (a lock that expired and was taken by another process is left alone).
Used by the KOL rankings (:class:`graph.kol.KolStore`) and the segmentation job.
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

__all__ = ["ComputeLock"]

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ComputeLock:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._unlock = redis.register_script(_UNLOCK)

    async def acquire(self, key: str, *, ttl_ms: int = 600_000) -> str | None:
        """Take the lock at *key*; return its token, or ``None`` when another holds it."""
        token = secrets.token_hex(8)
        ok = await self.redis.set(key, token, nx=True, px=ttl_ms)
        return token if ok else None

    async def release(self, key: str, token: str) -> None:
        """Release the lock at *key* if *token* still holds it."""
        await self._unlock(keys=[key], args=[token])
