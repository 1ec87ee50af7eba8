"""Referral aggregates (team size, depth, per-level counts, GMV) kept in Redis.

The numbers of :class:`domain.referral_stats.ReferralStats` are maintained incrementally:
every referral, activation and paid purchase is applied once, as it arrives from the outbox
relay, by one Lua script that updates the member and each member of its upline atomically
in O(depth of the upline). Reads are one hash per member, one round trip for any number of
members. A full rebuild (:meth:`ReferralStatsStore.rebuild` with
:func:`domain.referral_stats.compute_all`) replaces the lot, for a new tenant, after Redis
lost its data, or to repair drift.

Key layout
----------
Every key of a tenant carries the Redis Cluster hash tag ``{<tenant>}``, so all of them live
in one slot and one script may touch any of them.

``q:{<tenant>}:ref:m:<member>``
    Hash: the member's numbers. Fields, all absent when zero: ``direct``, ``team``,
    ``depth``, ``l1`` .. ``l<depth>`` (team members per level), ``act_d``, ``act_t``,
    ``conv_d``, ``conv_t`` (activated / converted invitees, direct and whole team),
    ``gmv_t:<CUR>``, ``gmv_o:<CUR>``, ``gmv_a:<CUR>`` (team, own and attributed GMV in
    minor units), ``act`` and ``conv`` (``1`` when the member itself is activated /
    converted) and ``inv`` (its inviter).
``q:{<tenant>}:ref:members``
    Set: the members that have a hash, so a rebuild can delete them without ``SCAN``.
``q:{<tenant>}:ref:ev:<event id>``
    String with a TTL (7 days by default): the event was applied; a redelivery is a no-op.
    A rebuild keeps these.
``q:{<tenant>}:ref:built``
    String: when the last full rebuild finished (UTC, ISO 8601). Absent before the first
    rebuild and while one runs.

Ordering and failures
---------------------
Events must be applied in the order the graph committed them (the outbox order): the upline
passed with an event is the one at commit time. Redelivering an event already applied is
always safe. Redis errors (``redis.exceptions.ConnectionError``, ``TimeoutError``,
``ResponseError`` ...) are not caught here: they reach the caller, which decides whether to
retry the event later or to serve from the graph. Because each event is one script, a
failure never leaves an event half applied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from domain.referral_stats import ReferralStats

__all__ = ["ReferralStatsStore"]

log = logging.getLogger(__name__)

# KEYS[1] applied-event marker, KEYS[2] member index, KEYS[3] invitee, KEYS[4..] its upline
# (inviter first). ARGV[1] marker TTL in seconds, ARGV[2] invitee id, ARGV[3..] upline ids.
# The ancestor at distance k from the invitee takes the invitee and its whole team, each
# level shifted down by k; its depth becomes max(old, k + depth of the invitee).
_REFERRAL = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
if redis.call('HEXISTS', KEYS[3], 'inv') == 1 then return 0 end
local flat = redis.call('HGETALL', KEYS[3])
local h = {}
for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
local team = tonumber(h['team'] or '0')
local depth = tonumber(h['depth'] or '0')
local act = tonumber(h['act'] or '0')
local conv = tonumber(h['conv'] or '0')
local act_t = act + tonumber(h['act_t'] or '0')
local conv_t = conv + tonumber(h['conv_t'] or '0')
local gmv = {}
for field, value in pairs(h) do
  local kind = string.sub(field, 1, 6)
  if (kind == 'gmv_o:' or kind == 'gmv_t:') and value ~= '0' then
    gmv[#gmv + 1] = {'gmv_t:' .. string.sub(field, 7), value}
  end
end
redis.call('HSET', KEYS[3], 'inv', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
for i = 4, #KEYS do
  local key = KEYS[i]
  local dist = i - 3
  if dist == 1 then
    redis.call('HINCRBY', key, 'direct', 1)
    if act == 1 then redis.call('HINCRBY', key, 'act_d', 1) end
    if conv == 1 then redis.call('HINCRBY', key, 'conv_d', 1) end
  end
  redis.call('HINCRBY', key, 'team', team + 1)
  redis.call('HINCRBY', key, 'l' .. dist, 1)
  for j = 1, depth do
    local count = h['l' .. j]
    if count and count ~= '0' then redis.call('HINCRBY', key, 'l' .. (dist + j), count) end
  end
  if dist + depth > tonumber(redis.call('HGET', key, 'depth') or '0') then
    redis.call('HSET', key, 'depth', dist + depth)
  end
  if act_t > 0 then redis.call('HINCRBY', key, 'act_t', act_t) end
  if conv_t > 0 then redis.call('HINCRBY', key, 'conv_t', conv_t) end
  for _, g in ipairs(gmv) do redis.call('HINCRBY', key, g[1], g[2]) end
  redis.call('SADD', KEYS[2], ARGV[i - 1])
end
return 1
"""

# KEYS[1] marker, KEYS[2] index, KEYS[3] member, KEYS[4..] upline.
# ARGV[1] marker TTL, ARGV[2] member id, ARGV[3..] upline ids.
_ACTIVATION = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
if redis.call('HGET', KEYS[3], 'act') == '1' then return 0 end
redis.call('HSET', KEYS[3], 'act', 1)
redis.call('SADD', KEYS[2], ARGV[2])
for i = 4, #KEYS do
  if i == 4 then redis.call('HINCRBY', KEYS[i], 'act_d', 1) end
  redis.call('HINCRBY', KEYS[i], 'act_t', 1)
  redis.call('SADD', KEYS[2], ARGV[i - 1])
end
return 1
"""

# KEYS[1] marker, KEYS[2] index, KEYS[3] buyer, KEYS[4] credited member (the buyer's key
# again when nobody is credited), KEYS[5..] upline.
# ARGV[1] marker TTL, ARGV[2] buyer id, ARGV[3] amount, ARGV[4] currency, ARGV[5] credited
# member id ('' when none), ARGV[6] '1' when the graph says this is the first paid
# purchase, ARGV[7..] upline ids.
# Returns 0 for a redelivery, 1 when applied, 2 when applied but the store's own
# conversion flag disagreed with ARGV[6] (the flag wins: it cannot count a buyer twice).
_PAID_PURCHASE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local converts = redis.call('HGET', KEYS[3], 'conv') ~= '1'
local positive = ARGV[3] ~= '0'
local currency = ARGV[4]
if converts then redis.call('HSET', KEYS[3], 'conv', 1) end
if positive then
  redis.call('HINCRBY', KEYS[3], 'gmv_o:' .. currency, ARGV[3])
  if ARGV[5] ~= '' then
    redis.call('HINCRBY', KEYS[4], 'gmv_a:' .. currency, ARGV[3])
    redis.call('SADD', KEYS[2], ARGV[5])
  end
end
if converts or positive then redis.call('SADD', KEYS[2], ARGV[2]) end
for i = 5, #KEYS do
  if converts then
    if i == 5 then redis.call('HINCRBY', KEYS[i], 'conv_d', 1) end
    redis.call('HINCRBY', KEYS[i], 'conv_t', 1)
  end
  if positive then redis.call('HINCRBY', KEYS[i], 'gmv_t:' .. currency, ARGV[3]) end
  if converts or positive then redis.call('SADD', KEYS[2], ARGV[i + 2]) end
end
if converts == (ARGV[6] == '1') then return 1 end
return 2
"""

_GMV_FIELDS = (("gmv_t:", "team_gmv"), ("gmv_o:", "own_gmv"), ("gmv_a:", "attributed_gmv"))


def _prefix(tenant: str) -> str:
    if not tenant or "{" in tenant or "}" in tenant:
        raise ValueError(f"a tenant id is not empty and has no braces, got {tenant!r}")
    return "q:{" + tenant + "}:ref:"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _check_path(event_id: str, member: str, upline: Sequence[str], *, role: str) -> None:
    if not event_id:
        raise ValueError("the event id is empty")
    if not member:
        raise ValueError(f"the {role} id is empty")
    if member in upline or len(set(upline)) != len(upline) or not all(upline):
        raise ValueError(f"the upline of {member!r} must list distinct members other than itself: {list(upline)!r}")


def _to_fields(stats: ReferralStats) -> dict[str, str | int]:
    """The hash of one member, zero fields left out (as the scripts leave them)."""
    numbers = {
        "direct": stats.direct_invites, "team": stats.team_size, "depth": stats.depth,
        "act_d": stats.activated_direct, "act_t": stats.activated_team,
        "conv_d": stats.converted_direct, "conv_t": stats.converted_team,
        "act": int(stats.activated), "conv": int(stats.converted),
    }
    numbers.update({f"l{level}": count for level, count in enumerate(stats.level_counts, 1)})
    for prefix, name in _GMV_FIELDS:
        gmv: dict[str, int] = getattr(stats, name)
        numbers.update({prefix + currency: amount for currency, amount in gmv.items()})
    fields: dict[str, str | int] = {k: v for k, v in numbers.items() if v}
    if stats.inviter is not None:
        fields["inv"] = stats.inviter
    return fields


def _from_fields(member_id: str, raw: Mapping[Any, Any]) -> ReferralStats:
    """A member's stats from its hash (an empty hash: all zeros)."""
    fields = {_text(k): _text(v) for k, v in raw.items()}

    def number(name: str) -> int:
        return int(fields.get(name, 0))

    def money(prefix: str) -> dict[str, int]:
        return {k[len(prefix):]: int(v) for k, v in fields.items() if k.startswith(prefix) and int(v)}

    depth = number("depth")
    return ReferralStats(
        member_id=member_id,
        direct_invites=number("direct"),
        team_size=number("team"),
        depth=depth,
        level_counts=tuple(number(f"l{level}") for level in range(1, depth + 1)),
        activated_direct=number("act_d"),
        activated_team=number("act_t"),
        converted_direct=number("conv_d"),
        converted_team=number("conv_t"),
        team_gmv=money("gmv_t:"),
        own_gmv=money("gmv_o:"),
        attributed_gmv=money("gmv_a:"),
        activated=fields.get("act") == "1",
        converted=fields.get("conv") == "1",
        inviter=fields.get("inv"),
    )


class ReferralStatsStore:
    """Every member's referral numbers, maintained event by event in Redis.

    Parameters
    ----------
    redis
        An asyncio Redis client (``decode_responses`` either way).
    applied_ttl
        How long an applied event id is remembered: a redelivery later than that would be
        counted again.
    chunk_size
        Members per pipeline in :meth:`rebuild` and per ``SSCAN`` page.
    """

    def __init__(self, redis: Redis, *, applied_ttl: timedelta = timedelta(days=7), chunk_size: int = 1000) -> None:
        if applied_ttl.total_seconds() < 1 or chunk_size < 1:
            raise ValueError("applied_ttl is at least one second and chunk_size at least 1")
        self._redis = redis
        self._ttl = int(applied_ttl.total_seconds())
        self._chunk = chunk_size
        self._referral = redis.register_script(_REFERRAL)
        self._activation = redis.register_script(_ACTIVATION)
        self._paid_purchase = redis.register_script(_PAID_PURCHASE)

    # -- events ------------------------------------------------------------------------

    async def apply_referral(self, tenant: str, event_id: str, invitee: str, upline: Sequence[str]) -> bool:
        """*invitee* got an inviter: ``upline[0]``, whose upline follows.

        The invitee may already have a team and activity of its own: its whole team,
        activations, conversions and GMV move up to every member of *upline*, each level
        shifted by the distance. Direct counts (invites, activated, converted) of the
        inviter take the invitee's own flags only.

        Returns
        -------
        bool
            ``True`` when applied; ``False`` when nothing changed: the event was applied
            before, or the invitee already has an inviter here.
        """
        if not upline:
            raise ValueError("a referral needs the inviter: the upline is empty")
        _check_path(event_id, invitee, upline, role="invitee")
        p = _prefix(tenant)
        keys = [p + "ev:" + event_id, p + "members", p + "m:" + invitee, *(p + "m:" + u for u in upline)]
        applied = await self._referral(keys=keys, args=[self._ttl, invitee, *upline])
        return int(applied) == 1

    async def apply_activation(self, tenant: str, event_id: str, member: str, upline: Sequence[str]) -> bool:
        """*member* did something for the first time (posted, interacted, commented, bought).

        Returns ``False`` when nothing changed: the event was applied before, or the member
        is already activated here.
        """
        _check_path(event_id, member, upline, role="member")
        p = _prefix(tenant)
        keys = [p + "ev:" + event_id, p + "members", p + "m:" + member, *(p + "m:" + u for u in upline)]
        applied = await self._activation(keys=keys, args=[self._ttl, member, *upline])
        return int(applied) == 1

    async def apply_paid_purchase(
        self,
        tenant: str,
        event_id: str,
        buyer: str,
        upline: Sequence[str],
        amount: int,
        currency: str,
        *,
        first_paid: bool,
        attributed_to: str | None,
    ) -> bool:
        """A paid purchase of *amount* minor units: own GMV of the buyer, team GMV of its
        upline, attributed GMV of *attributed_to*.

        The buyer becomes converted on the first paid purchase the store applies for it.
        *first_paid* is the graph's word for it; the store goes by its own flag (so a buyer
        is never counted twice) and logs a warning when the two disagree, a sign that
        events were lost or a rebuild overlapped them.

        Returns ``False`` for a redelivered event (nothing changed), else ``True``.
        """
        _check_path(event_id, buyer, upline, role="buyer")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(f"amount is a non-negative integer of minor units, got {amount!r}")
        if not currency:
            raise ValueError("the currency is empty")
        p = _prefix(tenant)
        credited_key = p + "m:" + (attributed_to or buyer)
        keys = [p + "ev:" + event_id, p + "members", p + "m:" + buyer, credited_key, *(p + "m:" + u for u in upline)]
        args = [self._ttl, buyer, amount, currency, attributed_to or "", "1" if first_paid else "0", *upline]
        applied = int(await self._paid_purchase(keys=keys, args=args))
        if applied == 2:
            log.warning(
                "referral stats of tenant %s disagree with the graph on whether %s had paid before "
                "(event %s, first_paid=%s): events were lost or overlapped a rebuild; rebuild to repair",
                tenant, buyer, event_id, first_paid,
            )
        return applied != 0

    # -- reads -------------------------------------------------------------------------

    async def stats(self, tenant: str, member_id: str) -> ReferralStats:
        """The numbers of one member (all zeros when it has none)."""
        raw = await self._redis.hgetall(_prefix(tenant) + "m:" + member_id)
        return _from_fields(member_id, raw)

    async def stats_many(self, tenant: str, ids: Sequence[str]) -> list[ReferralStats]:
        """The numbers of several members, in the order of *ids*, in one round trip."""
        if not ids:
            return []
        p = _prefix(tenant)
        async with self._redis.pipeline(transaction=False) as pipe:
            for member_id in ids:
                pipe.hgetall(p + "m:" + member_id)
            rows = await pipe.execute()
        return [_from_fields(member_id, raw) for member_id, raw in zip(ids, rows, strict=True)]

    async def stats_if_built(self, tenant: str, member_id: str) -> ReferralStats | None:
        """One member's numbers, or ``None`` while the tenant is not built; one round trip."""
        p = _prefix(tenant)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(p + "built")
            pipe.hgetall(p + "m:" + member_id)
            built, raw = await pipe.execute()
        return _from_fields(member_id, raw) if built else None

    async def is_built(self, tenant: str) -> bool:
        """Whether a full rebuild has finished for *tenant* (and none is running)."""
        return bool(await self._redis.exists(_prefix(tenant) + "built"))

    async def built_at(self, tenant: str) -> datetime | None:
        """When the last full rebuild of *tenant* finished, ``None`` if none has."""
        raw = await self._redis.get(_prefix(tenant) + "built")
        return datetime.fromisoformat(_text(raw)) if raw is not None else None

    # -- full rebuild --------------------------------------------------------------------

    async def rebuild(
        self, tenant: str, stats: Mapping[str, ReferralStats], *, included_events: Iterable[str] = (),
    ) -> None:
        """Replace the tenant's numbers with a full computation (``compute_all``).

        Deletes every member hash of the tenant, writes one hash per member with any
        non-zero number, in pipelines of ``chunk_size``, then marks the tenant built.
        Applied-event markers are kept, so later redeliveries stay no-ops; pass the ids of
        events the computation already includes but that may still be delivered as
        *included_events* so they are skipped too.

        Not atomic: run it while the tenant's events are held back (an event applied while
        it runs may be lost or counted twice). Readers see :meth:`is_built` ``False`` until
        it finishes.
        """
        for member_id, member_stats in stats.items():
            if member_id != member_stats.member_id:
                raise ValueError(f"stats of {member_stats.member_id!r} filed under {member_id!r}")
        p = _prefix(tenant)
        index = p + "members"
        await self._redis.delete(p + "built")
        cursor = 0
        while True:
            cursor, page = await self._redis.sscan(index, cursor, count=self._chunk)
            if page:
                await self._redis.unlink(*(p + "m:" + _text(m) for m in page))
            if cursor == 0:
                break
        await self._redis.unlink(index)

        rows = [(member_id, _to_fields(s)) for member_id, s in stats.items()]
        rows = [(member_id, fields) for member_id, fields in rows if fields]
        for start in range(0, len(rows), self._chunk):
            chunk = rows[start:start + self._chunk]
            async with self._redis.pipeline(transaction=False) as pipe:
                for member_id, fields in chunk:
                    pipe.hset(p + "m:" + member_id, mapping=fields)  # type: ignore[arg-type]
                pipe.sadd(index, *(member_id for member_id, _ in chunk))
                await pipe.execute()
        events = list(included_events)
        for start in range(0, len(events), self._chunk):
            async with self._redis.pipeline(transaction=False) as pipe:
                for event_id in events[start:start + self._chunk]:
                    pipe.set(p + "ev:" + event_id, "1", ex=self._ttl)
                await pipe.execute()
        await self._redis.set(p + "built", datetime.now(UTC).isoformat())
