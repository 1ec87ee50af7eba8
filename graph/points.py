"""The points ledger (积分): append-only, idempotent entries; FIFO lots; a balance that never goes negative.

``(Member)-[:LEDGER]->(:PointsEntry {id, tenantId, memberId, kind, amount, balanceAfter, at, seq,
idempotencyKey, requestHash?, reason?, expiresAt?, remaining?, lotId?})``. The member's
``points`` property stays the balance (what profiles and segments read) and always equals the
sum of its entries: every ledger transaction writes both. ``pointsVersion`` counts the
member's ledger transactions and ``pointsSeq`` its entries; ``pointsOpened`` marks that the
member's points from before the ledger were booked as an OPENING entry.

One change is one transaction: read the member's live lots and version, plan the entries
with :func:`domain.rewards.plan_ledger` (open, expire what is due, apply the change), then
write them under a compare-and-set on ``pointsVersion``. Two concurrent changes of one member
both write its record: ArcadeDB's MVCC commits one and the other is retried (by the client,
or here when the compare-and-set sees a version that moved), re-reading the balance, so
concurrent spends can never overdraw it (tests/test_api_points.py). Within one process, changes
of one member queue (:class:`graph.write_queue.KeyedLocks`) rather than conflict.

Idempotency: the entry carries the key under a (tenantId, idempotencyKey) constraint; a
replayed key returns the original entry and writes nothing, the same key for another request
is an ``IDEMPOTENCY_CONFLICT``. EXPIRE entries use ``#expire:<lot id>``, OPENING entries
``#opening:<member id>`` (``#`` is outside the keys clients may send, so no client key can take them), so a sweep racing a spend cannot write either twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.errors import AlreadyExists, GraphUnavailable, IdempotencyConflict, NotFound
from domain.ids import Kind, new_id
from domain.models import Page
from domain.pagination import decode_cursor, encode_cursor
from domain.rewards import (
    LedgerOp,
    Lot,
    PointsChange,
    PointsEntry,
    PointsKind,
    plan_ledger,
    request_fingerprint,
)
from graph.client import GraphClient, Tx, now, to_datetime
from graph.cypher import cypher
from graph.write_queue import KeyedLocks

__all__ = ["GraphPoints", "entry_from"]

log = logging.getLogger(__name__)

#: compare-and-set attempts before a change gives up as GRAPH_UNAVAILABLE (busy)
MAX_ATTEMPTS = 40

ENTRY_BY_KEY = cypher(
    """
    MATCH (e:PointsEntry {tenantId: $tenant, idempotencyKey: $key})
    RETURN e
    """
)
LEDGER_STATE = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant AND m.erasedAt IS NULL
    RETURN coalesce(m.points, 0) AS points, coalesce(m.pointsVersion, 0) AS version,
           coalesce(m.pointsSeq, 0) AS seq, coalesce(m.pointsOpened, false) AS opened,
           [(m)-[:LEDGER]->(x:PointsEntry) WHERE x.remaining > 0 |
             {id: x.id, remaining: x.remaining, at: x.at, expiresAt: x.expiresAt}] AS lots
    """
)
APPLY_BALANCE = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    SET m._lock = true REMOVE m._lock  // lock first, then check (see JOIN_SEAT in graph/group_buys.py)
    WITH * WHERE coalesce(m.pointsVersion, 0) = $version
    SET m.points = $balance, m.pointsVersion = $version + 1, m.pointsSeq = $seq, m.pointsOpened = true
    RETURN m.points AS points
    """
)
APPEND_ENTRIES = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    UNWIND $entries AS row
    CREATE (m)-[:LEDGER]->(e:PointsEntry)
    SET e = row
    RETURN count(e) AS created
    """
)
UPDATE_LOTS = cypher(
    """
    UNWIND $lots AS lot
    MATCH (x:PointsEntry {id: lot.id}) WITH * WHERE x.tenantId = $tenant
    SET x.remaining = lot.remaining
    RETURN count(x) AS updated
    """
)
BALANCE = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    RETURN coalesce(m.points, 0) AS points,
           [(m)-[:LEDGER]->(x:PointsEntry) WHERE x.remaining > 0 AND x.expiresAt <= $now | x.remaining] AS due
    """
)
ENTRY_COUNT = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    RETURN coalesce(m.pointsSeq, 0) AS n
    """
)
LEDGER_PAGE = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    CALL (m) {
      MATCH (m)-[:LEDGER]->(e:PointsEntry)
      WHERE $afterSeq IS NULL OR e.seq < $afterSeq
      WITH e ORDER BY e.seq DESC LIMIT $limit
      RETURN collect(e) AS entries
    }
    RETURN entries
    """
)
DUE_LOTS = cypher(
    """
    MATCH (x:PointsEntry)
    WHERE x.expiresAt <= $now AND x.remaining > 0 AND ($tenant IS NULL OR x.tenantId = $tenant)
    WITH x LIMIT $limit
    RETURN collect(DISTINCT {tenant: x.tenantId, member: x.memberId}) AS due
    """
)


class _Moved(Exception):
    """The member's ledger changed between reading and writing it: plan again."""


def entry_from(e: Any) -> PointsEntry:
    return PointsEntry(
        id=e["id"], tenant_id=e["tenantId"], member_id=e["memberId"], kind=PointsKind(e["kind"]), amount=int(e["amount"]),
        balance_after=int(e["balanceAfter"]), at=to_datetime(e["at"]), seq=int(e["seq"]),
        idempotency_key=e["idempotencyKey"], reason=e.get("reason"),
        expires_at=None if e.get("expiresAt") is None else to_datetime(e["expiresAt"]),
        remaining=None if e.get("remaining") is None else int(e["remaining"]),
    )


def _fingerprint(cmd: PointsChange) -> str:
    return request_fingerprint(cmd.model_dump(mode="json", exclude={"idempotency_key"}))


def _original(e: Any, fingerprint: str) -> PointsEntry:
    if e.get("requestHash") != fingerprint:
        raise IdempotencyConflict("this idempotency key was already used for a different points change",
                                  field="input.idempotencyKey")
    return entry_from(e)


@dataclass
class GraphPoints:
    graph: GraphClient
    #: one ledger transaction per member at a time in this process (graph.write_queue)
    queue: KeyedLocks = field(default_factory=KeyedLocks)

    async def _apply(self, tenant: str, member_id: str, op: LedgerOp | None) -> tuple[PointsEntry, bool] | int | None:
        """One ledger transaction for *member_id*: the op's entry and whether it is new (a replayed
        key answers its original entry), or for a sweep (*op* None) the number of entries written.
        None: no such member."""

        async def work(tx: Tx) -> tuple[PointsEntry, bool] | int | None:
            at = now()
            if op is not None:
                prior = await self.graph.run_one(tx, ENTRY_BY_KEY, tenant=tenant, key=op.key)
                if prior is not None:
                    return _original(prior["e"], op.fingerprint or ""), False
            state = await self.graph.run_one(tx, LEDGER_STATE, tenant=tenant, memberId=member_id)
            if state is None:
                return None
            lots = [Lot(id=x["id"], remaining=int(x["remaining"]), at=to_datetime(x["at"]),
                        expires_at=None if x["expiresAt"] is None else to_datetime(x["expiresAt"])) for x in state["lots"]]
            plan = plan_ledger(member_id=member_id, tenant=tenant, balance=int(state["points"]), opened=bool(state["opened"]),
                               seq=int(state["seq"]), lots=lots, op=op, now=at, new_id=lambda: new_id(Kind.POINTS_ENTRY))
            if not plan.entries:
                return 0
            version = int(state["version"])
            moved = await self.graph.run_one(tx, APPLY_BALANCE, tenant=tenant, memberId=member_id, version=version,
                                             balance=plan.balance, seq=int(state["seq"]) + len(plan.entries))
            if moved is None:
                raise _Moved
            await self.graph.run(tx, APPEND_ENTRIES, tenant=tenant, memberId=member_id, entries=list(plan.entries))
            if plan.remaining:
                await self.graph.run(tx, UPDATE_LOTS, tenant=tenant,
                                     lots=[{"id": k, "remaining": v} for k, v in plan.remaining.items()])
            return len(plan.entries) if plan.result is None else (entry_from(plan.result), True)

        for _ in range(MAX_ATTEMPTS):
            try:
                async with self.queue.hold(tenant + "/" + member_id):
                    return await self.graph.write(work)
            except _Moved:
                pass
            except AlreadyExists:
                # A concurrent transaction of this member wrote a key first: the op's own (the next
                # attempt returns that entry) or a ledger key (an OPENING or EXPIRE entry the next
                # attempt sees): plan again either way.
                pass
            await asyncio.sleep(random.uniform(0, 0.02))
        raise GraphUnavailable("the member's points changed too often to apply this change; try again shortly")

    async def change(self, tenant: str, cmd: PointsChange) -> tuple[PointsEntry, bool]:
        """Apply *cmd* once per idempotency key; return its entry and whether this call wrote it."""
        fingerprint = _fingerprint(cmd)
        op = LedgerOp(kind=cmd.kind, amount=cmd.amount, key=cmd.idempotency_key, expires_at=cmd.expires_at,
                      reason=cmd.reason, fingerprint=fingerprint)
        result = await self._apply(tenant, cmd.member_id, op)
        if result is None:
            raise NotFound(f"no member {cmd.member_id!r}", field="input.memberId")
        assert isinstance(result, tuple)
        return result

    async def balance(self, tenant: str, member_id: str) -> int | None:
        """The spendable balance now: stored points less lots past their expiry the sweep has not written off."""
        row = await self.graph.read_one(BALANCE, tenant=tenant, memberId=member_id, now=now())
        if row is None:
            return None
        return int(row["points"]) - sum(int(x) for x in row["due"])

    async def ledger(self, tenant: str, member_id: str, first: int, after: str | None) -> Page[PointsEntry] | None:
        """The member's entries, newest first (None: no such member)."""
        key = decode_cursor(after, arity=1)
        row = await self.graph.read_one(LEDGER_PAGE, tenant=tenant, memberId=member_id, limit=first + 1,
                                        afterSeq=None if key is None else key[0])
        if row is None:
            return None
        items = [entry_from(e) for e in row["entries"]]
        shown = items[:first]
        return Page(items=tuple(shown), cursors=tuple(encode_cursor([e.seq]) for e in shown), has_next=len(items) > first)

    async def entry_count(self, tenant: str, member_id: str) -> int:
        """How many entries the member's ledger holds (its ``pointsSeq``)."""
        row = await self.graph.read_one(ENTRY_COUNT, tenant=tenant, memberId=member_id)
        return 0 if row is None else int(row["n"])

    async def sweep(self, *, at: datetime | None = None, tenant: str | None = None, limit: int = 500) -> int:
        """Write off every lot past its expiry (members of up to *limit* due lots); return entries written."""
        row = await self.graph.read_one(DUE_LOTS, tenant=tenant, now=at or now(), limit=limit)
        written = 0
        for due in row["due"] if row else []:
            try:
                result = await self._apply(due["tenant"], due["member"], None)
            except Exception:  # one member's ledger must never stop the write-offs of everyone else
                log.exception("points sweep skipped member %s of %s", due["member"], due["tenant"])
                continue
            written += result if isinstance(result, int) else 0
        return written

