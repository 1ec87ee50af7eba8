"""Rate limits: token buckets of cost points in Redis, per principal and per client IP.

Every GraphQL operation is charged its static cost (:mod:`api.limits`; a mutation's root
fields cost extra). A request is admitted only when both of its buckets (the principal's,
``tenant:subject``, and the client IP's) hold enough points; both are then debited in the
same Lua call, so concurrent requests and several API processes share one budget.

Refused requests get ``RATE_LIMITED`` with ``retryAfter`` seconds (HTTP 429 and a
``Retry-After`` header). When Redis is unreachable the limiter **fails open**: the
request runs and a warning is logged (at most once a minute), because Redis holds no
state the API needs to answer correctly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from domain.auth import Principal

__all__ = ["RATE_LIMIT_SCRIPT", "Bucket", "RateLimiter"]

log = logging.getLogger("quanzi.ratelimit")

# KEYS: bucket keys; ARGV: cost, now (s), then capacity and refill/s per key.
# Each bucket is a hash {points, at}; a bucket untouched long enough to be full expires.
RATE_LIMIT_SCRIPT = """
local cost = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local levels = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[1 + 2 * i])
  local refill = tonumber(ARGV[2 + 2 * i])
  local state = redis.call('HMGET', key, 'points', 'at')
  local points = tonumber(state[1]) or capacity
  local at = tonumber(state[2]) or now
  points = math.min(capacity, points + math.max(0, now - at) * refill)
  levels[i] = points
  if points < cost then
    local need = (math.min(cost, capacity) - points) / refill
    if need > wait then wait = need end
  end
end
if wait > 0 then
  return {0, tostring(wait)}
end
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[1 + 2 * i])
  local refill = tonumber(ARGV[2 + 2 * i])
  redis.call('HSET', key, 'points', tostring(levels[i] - cost), 'at', tostring(now))
  redis.call('EXPIRE', key, math.ceil(capacity / refill) + 1)
end
return {1, '0'}
"""


@dataclass(frozen=True, slots=True)
class Bucket:
    """*capacity* points (the burst), refilled at *refill* points per second."""

    capacity: int
    refill: float


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, *, principal: Bucket, ip: Bucket, prefix: str = "q:rl") -> None:
        self.redis = redis
        self.principal = principal
        self.ip = ip
        self.prefix = prefix
        self._script = redis.register_script(RATE_LIMIT_SCRIPT)
        self._warned_at = 0.0

    def keys(self, principal: Principal, ip: str) -> list[tuple[str, Bucket]]:
        buckets = [(f"{self.prefix}:ip:{ip}", self.ip)]
        if principal.tenant_id is not None:
            subject = principal.member_id or principal.subject or "token"
            buckets.append((f"{self.prefix}:p:{{{principal.tenant_id}}}:{subject}", self.principal))
        return buckets

    async def admit(self, principal: Principal, ip: str, cost: int) -> float | None:
        """Debit *cost* points; None when admitted, else the seconds until it would be."""
        buckets = self.keys(principal, ip)
        args: list[object] = [max(int(cost), 1), f"{time.time():.6f}"]
        for _, bucket in buckets:
            args += [bucket.capacity, bucket.refill]
        try:
            admitted, wait = await self._script(keys=[k for k, _ in buckets], args=args)
        except (aioredis.RedisError, OSError) as exc:
            now = time.monotonic()
            if now - self._warned_at > 60:
                self._warned_at = now
                log.warning("rate limiter cannot reach Redis (%s); admitting requests unlimited", exc)
            return None
        return None if int(admitted) == 1 else max(float(wait), 0.001)
