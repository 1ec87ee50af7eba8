"""Group-buys (拼团) in the graph: exactly ``requiredSize`` seats under concurrency, and expiry.

``(:GroupBuy {id, tenantId, productId, leaderId, campaignId?, status, requiredSize, seats,
expiresAt, createdAt, completedAt?, failedAt?})`` with ``(Member)-[:JOINED {at, state,
leader}]->(GroupBuy)``; the rules and the state machine are in :mod:`domain.rewards`.

Exactly N seats: a join is one conditional statement that matches the group only while it is
OPEN, unexpired and has a free seat (and the member holds none), and in the same statement
increments ``g.seats`` and creates the JOINED edge. Every join therefore writes the GroupBuy
record; ArcadeDB's optimistic MVCC lets only one of two transactions that wrote the same
record version commit, and the loser's ``TransientError`` is retried by
:class:`graph.client.GraphClient` from the start, when it sees the new seat count. A join
that finds no open seat writes nothing and explains itself from a read in the same
transaction (tests/test_api_group_buys.py fires 25 joins at a group of 5, also split over two
app instances). Within one process, joins of one group queue (:class:`graph.write_queue.KeyedLocks`)
instead of burning their retry budget in conflicts; the MVCC arbitrates between processes.
A seat check that only counts JOINED edges, without writing the GroupBuy, overbooks: ArcadeDB
rebases concurrent edge appends to one vertex rather than failing them (6–9 seats of 5 measured,
benchmarks/results/campaign_contention_bench.md).

Expiry: :meth:`GraphGroupBuys.sweep` (run by the server's background loop) fails every OPEN
group past ``expiresAt`` one transaction each, under the same condition, so a join that
takes the last seat and the sweep serialize on the record too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.errors import NotFound, ValidationFailed
from domain.events import EventType
from domain.ids import Kind, new_id
from domain.rewards import (
    GroupBuy,
    GroupBuyStatus,
    OpenGroupBuy,
    Seat,
    SeatState,
    effective_seat_state,
    effective_status,
    join_refusal,
)
from graph.campaigns import check_running
from graph.client import GraphClient, Tx, now, to_datetime
from graph.cypher import cypher
from graph.events import event, record
from graph.write_queue import KeyedLocks

__all__ = ["GraphGroupBuys", "group_buy_from"]

log = logging.getLogger(__name__)

OPEN_PRECHECK = cypher(
    """
    OPTIONAL MATCH (m:Member {id: $leaderId}) WHERE m.tenantId = $tenant
    OPTIONAL MATCH (p:Product {id: $productId}) WHERE p.tenantId = $tenant
    RETURN m IS NOT NULL AS member, p IS NOT NULL AS product
    """
)
OPEN_GROUP_BUY = cypher(
    """
    MATCH (m:Member {id: $leaderId}) WITH * WHERE m.tenantId = $tenant
    CREATE (g:GroupBuy)
    SET g = $props
    CREATE (m)-[:JOINED {at: $now, state: 'JOINED', leader: true}]->(g)
    RETURN g
    """
)
JOIN_SEAT = cypher(
    """
    MATCH (g:GroupBuy {id: $id}) WITH * WHERE g.tenantId = $tenant
    // lock first, then check (Neo4j reads committed data and re-checks nothing after a lock
    // wait; the lock is held to commit though the property is gone; see graph/write_queue.py)
    SET g._lock = true REMOVE g._lock
    WITH * WHERE g.status = 'OPEN' AND g.expiresAt > $now AND g.seats < g.requiredSize
    MATCH (m:Member {id: $memberId}) WITH *
    WHERE m.tenantId = $tenant AND NOT EXISTS { (m)-[:JOINED]->(g) }
    SET g.seats = g.seats + 1
    CREATE (m)-[:JOINED {at: $now, state: 'JOINED', leader: false}]->(g)
    RETURN g.seats AS seats, g.requiredSize AS requiredSize
    """
)
JOIN_STATE = cypher(
    """
    OPTIONAL MATCH (g:GroupBuy {id: $id}) WHERE g.tenantId = $tenant
    OPTIONAL MATCH (m:Member {id: $memberId}) WHERE m.tenantId = $tenant
    RETURN g IS NOT NULL AS group, m IS NOT NULL AS member, g.status AS status, g.seats AS seats,
           g.requiredSize AS requiredSize, g.expiresAt AS expiresAt,
           g IS NOT NULL AND m IS NOT NULL AND EXISTS { (m)-[:JOINED]->(g) } AS joined
    """
)
COMPLETE = cypher(
    """
    MATCH (g:GroupBuy {id: $id}) WITH * WHERE g.tenantId = $tenant AND g.seats = g.requiredSize
    SET g.status = 'SUCCEEDED', g.completedAt = $now
    WITH g
    MATCH (m:Member)-[j:JOINED]->(g)
    SET j.state = 'CONFIRMED'
    RETURN collect(m.id) AS members
    """
)
DUE_GROUP_BUYS = cypher(
    """
    MATCH (g:GroupBuy)
    WHERE g.status = 'OPEN' AND g.expiresAt <= $now AND ($tenant IS NULL OR g.tenantId = $tenant)
    WITH g ORDER BY g.expiresAt LIMIT $limit
    RETURN collect({id: g.id, tenant: g.tenantId}) AS due
    """
)
FAIL_GROUP_BUY = cypher(
    """
    MATCH (g:GroupBuy {id: $id}) WITH *
    WHERE g.tenantId = $tenant AND g.status = 'OPEN' AND g.expiresAt <= $now AND g.seats < g.requiredSize
    SET g.status = 'FAILED', g.failedAt = $now
    WITH g
    MATCH (m:Member)-[j:JOINED]->(g)
    SET j.state = 'REFUND_PENDING'
    RETURN g.campaignId AS campaignId, g.productId AS productId, g.requiredSize AS requiredSize,
           collect(m.id) AS members
    """
)
RECORD_REFUND = cypher(
    """
    MATCH (g:GroupBuy {id: $id}) WITH * WHERE g.tenantId = $tenant AND g.status = 'FAILED'
    MATCH (m:Member {id: $memberId})-[j:JOINED]->(g) WITH * WHERE j.state = 'REFUND_PENDING'
    SET j.state = 'REFUNDED', j.refundedAt = $now
    RETURN j.state AS state
    """
)
GROUP_BUY_BY_ID = cypher(
    """
    MATCH (g:GroupBuy {id: $id}) WITH * WHERE g.tenantId = $tenant
    RETURN g, [(m:Member)-[j:JOINED]->(g) | {member: m.id, at: j.at, state: j.state, leader: j.leader}] AS seats
    """
)


def group_buy_from(g: Any, seats: Sequence[Any] = ()) -> GroupBuy:
    def opt(key: str) -> datetime | None:
        value = g.get(key)
        return None if value is None else to_datetime(value)

    ordered = sorted(seats, key=lambda s: (not s["leader"], to_datetime(s["at"]), s["member"]))
    return GroupBuy(
        id=g["id"], tenant_id=g["tenantId"], product_id=g["productId"], leader_id=g["leaderId"],
        required_size=int(g["requiredSize"]), seats_taken=int(g["seats"]), status=GroupBuyStatus(g["status"]),
        expires_at=to_datetime(g["expiresAt"]), created_at=to_datetime(g["createdAt"]), campaign_id=g.get("campaignId"),
        completed_at=opt("completedAt"), failed_at=opt("failedAt"),
        seats=tuple(Seat(member_id=s["member"], joined_at=to_datetime(s["at"]), state=SeatState(s["state"]),
                         leader=bool(s["leader"])) for s in ordered),
    )


def as_read_at(group: GroupBuy, at: datetime) -> GroupBuy:
    """*group* as a reader sees it at *at*: expired OPEN groups have FAILED (domain.rewards)."""
    status = effective_status(group.status, seats=group.seats_taken, required=group.required_size,
                              expires_at=group.expires_at, now=at)
    if status is group.status:
        return group
    seats = tuple(Seat(member_id=s.member_id, joined_at=s.joined_at, state=effective_seat_state(s.state, status),
                       leader=s.leader) for s in group.seats)
    return GroupBuy(**{**{f: getattr(group, f) for f in GroupBuy.__dataclass_fields__}, "status": status,
                       "seats": seats, "failed_at": group.expires_at})


@dataclass
class GraphGroupBuys:
    graph: GraphClient
    #: one join per group-buy at a time in this process (graph.write_queue); the graph arbitrates between processes
    queue: KeyedLocks = field(default_factory=KeyedLocks)

    async def open(self, tenant: str, cmd: OpenGroupBuy) -> GroupBuy:
        at = now()
        if cmd.expires_at <= at:
            raise ValidationFailed("input.expiresAt must be in the future", field="input.expiresAt")
        props: dict[str, Any] = {
            "id": new_id(Kind.GROUP_BUY), "tenantId": tenant, "productId": cmd.product_id, "leaderId": cmd.leader_id,
            "status": GroupBuyStatus.OPEN.value, "requiredSize": cmd.required_size, "seats": 1,
            "expiresAt": cmd.expires_at, "createdAt": at,
        }
        if cmd.campaign_id is not None:
            props["campaignId"] = cmd.campaign_id

        async def work(tx: Tx) -> GroupBuy:
            check = await self.graph.run_one(tx, OPEN_PRECHECK, tenant=tenant, leaderId=cmd.leader_id,
                                             productId=cmd.product_id)
            assert check is not None
            if not check["member"]:
                raise NotFound(f"no member {cmd.leader_id!r}", field="input.leaderId")
            if not check["product"]:
                raise NotFound(f"no product {cmd.product_id!r}", field="input.productId")
            if cmd.campaign_id is not None:
                await check_running(self.graph, tx, tenant, cmd.campaign_id, at)
            row = await self.graph.run_one(tx, OPEN_GROUP_BUY, tenant=tenant, leaderId=cmd.leader_id, props=props, now=at)
            assert row is not None
            return group_buy_from(row["g"], [{"member": cmd.leader_id, "at": at, "state": "JOINED", "leader": True}])

        return await self.graph.write(work)

    async def join(self, tenant: str, group_buy_id: str, member_id: str) -> GroupBuy:
        """Take a seat for *member_id*; the join that takes the last seat completes the group."""
        async def work(tx: Tx) -> None:
            at = now()
            row = await self.graph.run_one(tx, JOIN_SEAT, tenant=tenant, id=group_buy_id, memberId=member_id, now=at)
            if row is None:
                state = await self.graph.run_one(tx, JOIN_STATE, tenant=tenant, id=group_buy_id, memberId=member_id)
                assert state is not None
                if not state["group"]:
                    raise NotFound(f"no group-buy {group_buy_id!r}", field="groupBuyId")
                if not state["member"]:
                    raise NotFound(f"no member {member_id!r}", field="asMemberId")
                refusal = join_refusal(GroupBuyStatus(state["status"]), seats=int(state["seats"]),
                                       required=int(state["requiredSize"]), expires_at=to_datetime(state["expiresAt"]),
                                       now=at, already_joined=bool(state["joined"]))
                assert refusal is not None, "the conditional join matched nothing, so some rule refuses it"
                raise refusal
            if int(row["seats"]) == int(row["requiredSize"]):
                done = await self.graph.run_one(tx, COMPLETE, tenant=tenant, id=group_buy_id, now=at)
                assert done is not None
                await record(self.graph, tx, [event(tenant, EventType.GROUP_BUY_COMPLETED, at, groupBuyId=group_buy_id,
                                                    members=sorted(done["members"]))])

        async with self.queue.hold(tenant + "/" + group_buy_id):
            await self.graph.write(work)
        found = await self.get(tenant, group_buy_id)
        assert found is not None
        return found

    async def get(self, tenant: str, group_buy_id: str) -> GroupBuy | None:
        row = await self.graph.read_one(GROUP_BUY_BY_ID, tenant=tenant, id=group_buy_id)
        if row is None:
            return None
        return as_read_at(group_buy_from(row["g"], list(row["seats"])), now())

    async def _fail(self, tenant: str, group_buy_id: str, at: datetime) -> bool:
        async def work(tx: Tx) -> bool:
            row = await self.graph.run_one(tx, FAIL_GROUP_BUY, tenant=tenant, id=group_buy_id, now=at)
            if row is None:
                return False  # filled, or failed by another sweep meanwhile
            await record(self.graph, tx, [event(
                tenant, EventType.GROUP_BUY_FAILED, at, groupBuyId=group_buy_id, campaignId=row["campaignId"],
                productId=row["productId"], requiredSize=row["requiredSize"], members=sorted(row["members"]),
            )])
            return True

        return await self.graph.write(work)

    async def sweep(self, *, at: datetime | None = None, tenant: str | None = None, limit: int = 500) -> int:
        """Fail every OPEN group past its expiry (at most *limit* per pass); return how many failed."""
        at = at or now()
        row = await self.graph.read_one(DUE_GROUP_BUYS, tenant=tenant, now=at, limit=limit)
        failed = 0
        for due in row["due"] if row else []:
            try:
                failed += await self._fail(due["tenant"], due["id"], at)
            except Exception:  # one group must never stop the expiry of every other
                log.exception("group-buy sweep skipped %s of %s", due["id"], due["tenant"])
        return failed

    async def record_refund(self, tenant: str, group_buy_id: str, member_id: str) -> GroupBuy:
        """Mark a REFUND_PENDING seat REFUNDED (the payment was returned); fails a due group first."""
        at = now()
        await self._fail(tenant, group_buy_id, at)

        async def work(tx: Tx) -> bool:
            return await self.graph.run_one(tx, RECORD_REFUND, tenant=tenant, id=group_buy_id, memberId=member_id,
                                            now=at) is not None

        if not await self.graph.write(work):
            found = await self.get(tenant, group_buy_id)
            if found is None:
                raise NotFound(f"no group-buy {group_buy_id!r}", field="groupBuyId")
            if not any(s.member_id == member_id for s in found.seats):
                raise NotFound(f"member {member_id!r} holds no seat in this group-buy", field="memberId")
            raise ValidationFailed("only a seat of a failed group-buy that awaits its refund can be marked refunded",
                                   field="memberId")
        found = await self.get(tenant, group_buy_id)
        assert found is not None
        return found
