"""Referral chains (邀请 / 裂变) read from the graph: upline, downline tree, and the data a
full rebuild of the referral aggregates needs.

Aggregates (team size, per-level counts, activated / converted invitees, team GMV) are
served from Redis (:mod:`graph.referral_stats`), maintained incrementally by the event
relay. This module is the source of truth they are rebuilt from, and the fallback that
answers when Redis is down (slower: it walks the member's downline in the graph).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain.events import is_activation
from domain.growth import MAX_TREE_DEPTH, TreeNode, TreePage
from domain.models import Member, Referral
from domain.referral_risk import referral_risk
from domain.referral_stats import ReferralStats, compute_all
from graph.client import GraphClient, Tx, now, to_datetime
from graph.cypher import cypher
from graph.mapping import member_from

__all__ = ["GraphReferrals"]

UPLINE = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    OPTIONAL MATCH path = (m)<-[:REFERRED*1..]-(up:Member)
    WITH up, length(path) AS level ORDER BY level
    RETURN [x IN collect({node: up, level: level}) WHERE x.node IS NOT NULL] AS upline
    """
)
TREE = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    CALL (m) {
      OPTIONAL MATCH path = (m)-[:REFERRED*1..10]->(:Member)
      WITH length(path) AS level WHERE level <= $depth
      WITH level, count(*) AS members ORDER BY level
      RETURN collect({level: level, members: members}) AS levels
    }
    CALL (m) {
      OPTIONAL MATCH path = (m)-[:REFERRED*1..10]->(d:Member)
      WITH path, d, length(path) AS level
      WHERE level <= $depth
        AND ($afterLevel IS NULL OR level > $afterLevel OR (level = $afterLevel AND d.id > $afterId))
      WITH d, level, path ORDER BY level, d.id LIMIT $limit
      RETURN collect({node: d, level: level, inviter: startNode(last(relationships(path))).id}) AS items
    }
    RETURN levels, items
    """
)
SUBTREE = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    WITH m, [(m)<-[:ATTRIBUTED_TO]-(p:Purchase {status: 'paid'}) | [p.amount, p.currency]] AS credited
    OPTIONAL MATCH (m)-[:REFERRED*0..]->(d:Member)
    WITH DISTINCT credited, d
    OPTIONAL MATCH (i:Member)-[:REFERRED]->(d)
    RETURN credited, collect({
      id: d.id, inviter: i.id, joinedAt: d.joinedAt, firstActiveAt: d.firstActiveAt,
      purchases: [(d)-[:PLACED]->(p:Purchase {status: 'paid'}) | [p.amount, p.currency]]
    }) AS rows
    """
)
FOREST = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    OPTIONAL MATCH (i:Member)-[:REFERRED]->(m)
    RETURN collect([m.id, i.id, m.joinedAt, m.firstActiveAt]) AS members
    """
)
FOREST_PURCHASES = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})-[:PLACED]->(p:Purchase {status: 'paid'})
    RETURN collect([m.id, p.amount, p.currency, coalesce(p.attributedTo, '')]) AS paid
    """
)
MEMBER_EXISTS = cypher("MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant RETURN m.id AS id")
REFERRALS_OF = cypher(
    """
    UNWIND $ids AS id
    MATCH (i:Member)-[r:REFERRED]->(m:Member {id: id}) WITH * WHERE m.tenantId = $tenant
    RETURN collect({
      invitee: m.id, inviter: i.id, at: r.at, channel: r.channel, code: r.code, campaignId: r.campaignId,
      joinedAt: m.joinedAt, firstActiveAt: m.firstActiveAt, phone: m.phone, device: m.deviceId,
      siblings: [(i)-[s:REFERRED]->(o:Member) WHERE o.id <> m.id | [s.at, o.phone, o.deviceId]]
    }) AS rows
    """
)
BACKFILL_FIRST_ACTIVE = cypher(
    """
    MATCH (m:Member {tenantId: $tenant}) WHERE m.firstActiveAt IS NULL
    CALL (m) {
      OPTIONAL MATCH (m)-[r:LIKED|COMMENTED|SHARED|FAVORITED|POSTED]->(:Content)
      RETURN min(r.at) AS interacted
    }
    CALL (m) {
      OPTIONAL MATCH (m)-[:PLACED]->(p:Purchase)
      RETURN min(p.at) AS bought
    }
    WITH m, [t IN [interacted, bought] WHERE t IS NOT NULL] AS times
    WHERE size(times) > 0
    SET m.firstActiveAt = CASE WHEN size(times) = 1 OR times[0] <= times[1] THEN times[0] ELSE times[1] END
    RETURN count(m) AS updated
    """
)
BACKFILL_FIRST_PAID = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})-[:PLACED]->(p:Purchase {status: 'paid'})
    WHERE m.firstPaidAt IS NULL
    WITH m, min(p.at) AS first
    SET m.firstPaidAt = first
    RETURN count(m) AS updated
    """
)


def _stats_input(rows: Sequence[dict[str, Any]]) -> tuple[list[str], dict[str, str | None], set[str], list[Any]]:
    members = [str(r["id"]) for r in rows]
    present = set(members)
    inviter = {str(r["id"]): (r["inviter"] if r["inviter"] in present else None) for r in rows}
    activated = {
        str(r["id"]) for r in rows
        if r["firstActiveAt"] is not None
        and is_activation(joined_at=to_datetime(r["joinedAt"]), first_active_at=to_datetime(r["firstActiveAt"]))
    }
    paid: list[Any] = []
    for r in rows:
        for amount, currency in r["purchases"]:
            paid.append((str(r["id"]), int(amount), str(currency), None))
    return members, inviter, activated, paid


@dataclass
class GraphReferrals:
    graph: GraphClient

    async def upline(self, tenant: str, member_id: str) -> list[Member] | None:
        """The member's inviter, its inviter, ... up to the root; ``None`` for an unknown member."""
        row = await self.graph.read_one(UPLINE, tenant=tenant, memberId=member_id)
        if row is None:
            return None
        return [member_from(x["node"]) for x in row["upline"]]

    async def tree(self, tenant: str, member_id: str, *, depth: int, first: int,
                   after: tuple[int, str] | None) -> TreePage | None:
        """The downline to *depth* levels in (level, id) order, with members per level."""
        row = await self.graph.read_one(
            TREE, tenant=tenant, memberId=member_id, depth=min(depth, MAX_TREE_DEPTH), limit=first + 1,
            afterLevel=None if after is None else after[0], afterId=None if after is None else after[1],
        )
        if row is None:
            return None
        counts = {int(x["level"]): int(x["members"]) for x in row["levels"] if x["level"] is not None}
        items = [TreeNode(member=member_from(x["node"]), level=int(x["level"]), inviter_id=str(x["inviter"]))
                 for x in row["items"] if x["node"] is not None]
        return TreePage(
            items=items[:first], has_next=len(items) > first,
            level_counts=[counts.get(level, 0) for level in range(1, max(counts, default=0) + 1)],
        )

    async def exists(self, tenant: str, member_id: str) -> bool:
        return await self.graph.read_one(MEMBER_EXISTS, tenant=tenant, memberId=member_id) is not None

    async def stats_from_graph(self, tenant: str, member_id: str) -> ReferralStats | None:
        """A member's referral aggregates computed from its downline in the graph (the slow path)."""
        row = await self.graph.read_one(SUBTREE, tenant=tenant, memberId=member_id)
        rows = [r for r in (row["rows"] if row else []) if r["id"] is not None]
        if not rows:
            return None
        members, inviter, activated, paid = _stats_input(rows)
        inviter[member_id] = None
        own = next(r for r in rows if r["id"] == member_id)
        stats = compute_all(members, inviter, activated, paid)[member_id]
        credited: dict[str, int] = {}
        for amount, currency in row["credited"] if row else []:
            credited[str(currency)] = credited.get(str(currency), 0) + int(amount)
        return dataclasses.replace(stats, attributed_gmv=credited, inviter=own["inviter"])

    async def all_stats(self, tenant: str) -> dict[str, ReferralStats]:
        """Every member's aggregates from scratch (the full rebuild)."""
        await self.backfill(tenant)
        forest = await self.graph.read_one(FOREST, tenant=tenant)
        bought = await self.graph.read_one(FOREST_PURCHASES, tenant=tenant)
        if forest is None or not forest["members"]:
            return {}
        rows = forest["members"]
        members = [str(r[0]) for r in rows]
        inviter = {str(r[0]): r[1] for r in rows}
        activated = {
            str(r[0]) for r in rows
            if r[3] is not None and is_activation(joined_at=to_datetime(r[2]), first_active_at=to_datetime(r[3]))
        }
        paid = [(str(b), int(a), str(c), cr or None) for b, a, c, cr in (bought["paid"] if bought else [])]
        return compute_all(members, inviter, activated, paid)

    async def referrals_of(self, tenant: str, ids: Sequence[str]) -> list[Referral | None]:
        """The referral that brought each member in (with its fraud signals), or ``None``."""
        row = await self.graph.read_one(REFERRALS_OF, tenant=tenant, ids=list(ids))
        at_now = now()
        found: dict[str, Referral] = {}
        for r in row["rows"] if row else []:
            at = to_datetime(r["at"])
            siblings = list(r["siblings"])
            signals = referral_risk(
                at=at, now=at_now, invitee_joined_at=to_datetime(r["joinedAt"]),
                invitee_first_active_at=None if r["firstActiveAt"] is None else to_datetime(r["firstActiveAt"]),
                sibling_times=[to_datetime(x[0]) for x in siblings], invitee_phone=r["phone"],
                sibling_phones=[x[1] for x in siblings], invitee_device=r["device"],
                sibling_devices=[x[2] for x in siblings],
            )
            found[r["invitee"]] = Referral(
                inviter_id=r["inviter"], invitee_id=r["invitee"], at=at, code=r["code"], campaign_id=r["campaignId"],
                channel=r["channel"], risk_signals=tuple(signals),
            )
        return [found.get(i) for i in ids]

    async def backfill(self, tenant: str) -> None:
        """Set ``firstActiveAt`` / ``firstPaidAt`` on members loaded without them (imports, demo data)."""
        async def work(tx: Tx) -> None:
            await self.graph.run(tx, BACKFILL_FIRST_ACTIVE, tenant=tenant)
            await self.graph.run(tx, BACKFILL_FIRST_PAID, tenant=tenant)

        await self.graph.write(work)

