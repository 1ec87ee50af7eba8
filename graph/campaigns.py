"""Campaigns (活动) in the graph and their virality (K-factor, viral cycle time).

A fission registration (an invite code or inviter plus ``campaignId``) writes the
referral with the campaign's id and records both members' participation:
``(Member)-[:PARTICIPATED {at, invitesSent}]->(Campaign)``. Invitations sent (shares of
the invite link or poster) are reported with :meth:`GraphCampaigns.record_invites_sent`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.commands import CreateCampaign, RecordInvitesSent
from domain.errors import NotFound, ValidationFailed
from domain.ids import Kind, new_id
from domain.models import Campaign, CampaignKind, CampaignVirality, Money
from domain.rewards import CampaignResults, roi
from graph.client import GraphClient, Tx, now, to_datetime
from graph.cypher import cypher

__all__ = ["GraphCampaigns", "campaign_from", "check_running", "credit_campaign", "participate", "virality"]

CREATE_CAMPAIGN = cypher("CREATE (c:Campaign) SET c = $props RETURN c")
CAMPAIGNS_BY_ID = cypher(
    """
    UNWIND $ids AS id
    MATCH (c:Campaign {id: id}) WITH * WHERE c.tenantId = $tenant
    RETURN collect(c) AS campaigns
    """
)
INVITES_SENT = cypher(
    """
    MATCH (c:Campaign {id: $campaignId}) WITH * WHERE c.tenantId = $tenant
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    MERGE (m)-[p:PARTICIPATED]->(c)
    ON CREATE SET p.at = $now, p.invitesSent = 0
    SET p.invitesSent = coalesce(p.invitesSent, 0) + $count
    RETURN p.invitesSent AS sent
    """
)
CAMPAIGN_WINDOW = cypher(
    """
    MATCH (c:Campaign {id: $campaignId}) WITH * WHERE c.tenantId = $tenant
    RETURN c.startsAt AS startsAt, c.endsAt AS endsAt
    """
)
PARTICIPATE = cypher(
    """
    MATCH (c:Campaign {id: $campaignId}) WITH * WHERE c.tenantId = $tenant
    MATCH (i:Member {id: $inviterId}) WITH * WHERE i.tenantId = $tenant
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    MERGE (i)-[p:PARTICIPATED]->(c)
    ON CREATE SET p.at = $now, p.invitesSent = 0
    CREATE (m)-[:PARTICIPATED {at: $now, invitesSent: 0}]->(c)
    RETURN count(*) AS n
    """
)
CREDIT_CAMPAIGN = cypher(
    """
    MATCH (p:Purchase {id: $purchaseId}) WITH * WHERE p.tenantId = $tenant
    MATCH (c:Campaign {id: $campaignId}) WITH * WHERE c.tenantId = $tenant
    CREATE (p)-[:IN_CAMPAIGN]->(c)
    RETURN c.id AS id
    """
)
RESULTS = cypher(
    """
    MATCH (c:Campaign {id: $campaignId}) WITH * WHERE c.tenantId = $tenant
    CALL (c) {
      OPTIONAL MATCH (p:Purchase)-[:IN_CAMPAIGN]->(c)
      WHERE p.status = 'paid'
      WITH p.currency AS currency, sum(p.amount) AS amount, count(p) AS n
      RETURN collect({currency: currency, amount: amount, n: n}) AS paid
    }
    CALL (c) {
      OPTIONAL MATCH (g:GroupBuy {tenantId: $tenant, campaignId: c.id})
      RETURN count(g) AS opened,
             sum(CASE WHEN g.status = 'SUCCEEDED' THEN 1 ELSE 0 END) AS succeeded,
             sum(CASE WHEN g.status = 'FAILED' OR (g.status = 'OPEN' AND g.expiresAt <= $now) THEN 1 ELSE 0 END)
               AS failed
    }
    CALL (c) {
      OPTIONAL MATCH (x:Coupon {tenantId: $tenant, campaignId: c.id})
      RETURN count(x) AS issued, sum(CASE WHEN x.status = 'REDEEMED' THEN 1 ELSE 0 END) AS redeemed
    }
    RETURN paid, opened, succeeded, failed, issued, redeemed
    """
)
VIRALITY = cypher(
    """
    MATCH (c:Campaign {id: $campaignId}) WITH * WHERE c.tenantId = $tenant
    CALL (c) {
      OPTIONAL MATCH (p:Member)-[x:PARTICIPATED]->(c)
      RETURN count(p) AS participants, sum(coalesce(x.invitesSent, 0)) AS sent
    }
    CALL (c) {
      OPTIONAL MATCH (:Member)-[r:REFERRED]->(:Member)
      WHERE r.campaignId = c.id AND r.at >= c.startsAt AND r.at <= c.endsAt
      RETURN count(r) AS conversions
    }
    CALL (c) {
      OPTIONAL MATCH (i:Member)-[x:PARTICIPATED]->(c)
      OPTIONAL MATCH (i)-[r:REFERRED]->(:Member)
      WHERE r.campaignId = c.id AND r.at >= c.startsAt AND r.at <= c.endsAt
      WITH i, min(r.at) AS firstInvite
      WHERE firstInvite IS NOT NULL
      RETURN collect([i.joinedAt, firstInvite]) AS cycles
    }
    RETURN c, participants, sent, conversions, cycles
    """
)


def campaign_from(p: Any) -> Campaign:
    cost = p.get("costAmount")
    return Campaign(
        id=p["id"], tenant_id=p["tenantId"], name=p["name"], kind=CampaignKind(p["kind"]),
        starts_at=to_datetime(p["startsAt"]), ends_at=to_datetime(p["endsAt"]), created_at=to_datetime(p["createdAt"]),
        cost=None if cost is None else Money(int(cost), str(p["costCurrency"])),
    )


def virality(campaign: Campaign, *, participants: int, sent: int, conversions: int,
             cycles: Sequence[timedelta]) -> CampaignVirality:
    """The PRODUCT.md metrics from the counted numbers (pure)."""
    per_participant = sent / participants if participants and sent else None
    rate = conversions / sent if sent else None
    if per_participant is not None and rate is not None:
        k = per_participant * rate
    else:
        k = conversions / participants if participants else 0.0
    return CampaignVirality(
        campaign=campaign, participants=participants, invitations_sent=sent, conversions=conversions, k_factor=k,
        invitations_per_participant=per_participant, conversion_rate=rate,
        viral_cycle=statistics.median(cycles) if cycles else None,
    )


async def check_running(graph: GraphClient, tx: Tx, tenant: str, campaign_id: str, at: datetime) -> None:
    """Raise unless the campaign exists and runs at *at* (inside a registration's transaction)."""
    row = await graph.run_one(tx, CAMPAIGN_WINDOW, tenant=tenant, campaignId=campaign_id)
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}", field="input.campaignId")
    if not to_datetime(row["startsAt"]) <= at <= to_datetime(row["endsAt"]):
        raise ValidationFailed(f"campaign {campaign_id!r} is not running now", field="input.campaignId")


async def credit_campaign(graph: GraphClient, tx: Tx, tenant: str, purchase_id: str, campaign_id: str) -> None:
    """Credit a purchase to a campaign (IN_CAMPAIGN), inside the purchase's transaction."""
    if await graph.run_one(tx, CREDIT_CAMPAIGN, tenant=tenant, purchaseId=purchase_id, campaignId=campaign_id) is None:
        raise NotFound(f"no campaign {campaign_id!r}", field="input.campaignId")


async def participate(graph: GraphClient, tx: Tx, tenant: str, campaign_id: str, *, inviter: str, invitee: str,
                      at: datetime) -> None:
    """Record the inviter's (once) and the new member's participation in the campaign."""
    await graph.run(tx, PARTICIPATE, tenant=tenant, campaignId=campaign_id, inviterId=inviter, memberId=invitee, now=at)


@dataclass
class GraphCampaigns:
    graph: GraphClient

    async def create(self, tenant: str, cmd: CreateCampaign) -> Campaign:
        props: dict[str, Any] = {
            "id": new_id(Kind.CAMPAIGN), "tenantId": tenant, "name": cmd.name, "kind": cmd.kind.value,
            "startsAt": cmd.starts_at, "endsAt": cmd.ends_at, "createdAt": now(),
        }
        if cmd.cost is not None:
            props["costAmount"], props["costCurrency"] = cmd.cost.amount, cmd.cost.currency

        async def work(tx: Tx) -> Campaign:
            row = await self.graph.run_one(tx, CREATE_CAMPAIGN, props=props)
            assert row is not None
            return campaign_from(row["c"])

        return await self.graph.write(work)

    async def get_many(self, tenant: str, ids: Sequence[str]) -> list[Campaign | None]:
        row = await self.graph.read_one(CAMPAIGNS_BY_ID, tenant=tenant, ids=list(ids))
        found = {c["id"]: campaign_from(c) for c in (row["campaigns"] if row else [])}
        return [found.get(i) for i in ids]

    async def record_invites_sent(self, tenant: str, cmd: RecordInvitesSent) -> int:
        """Add *cmd.count* invitations sent by the member; return its running total."""
        async def work(tx: Tx) -> int | None:
            row = await self.graph.run_one(tx, INVITES_SENT, tenant=tenant, campaignId=cmd.campaign_id,
                                           memberId=cmd.member_id, count=cmd.count, now=now())
            return None if row is None else int(row["sent"])

        sent = await self.graph.write(work)
        if sent is None:
            found = await self.get_many(tenant, [cmd.campaign_id])
            if found[0] is None:
                raise NotFound(f"no campaign {cmd.campaign_id!r}", field="input.campaignId")
            raise NotFound(f"no member {cmd.member_id!r}", field="input.memberId")
        return sent

    async def virality(self, tenant: str, campaign_id: str) -> CampaignVirality | None:
        row = await self.graph.read_one(VIRALITY, tenant=tenant, campaignId=campaign_id)
        if row is None:
            return None
        campaign = campaign_from(row["c"])
        # a member joins the campaign when it joins the brand, or at the campaign's start if earlier
        cycles = [to_datetime(first) - max(to_datetime(joined), campaign.starts_at) for joined, first in row["cycles"]]
        return virality(campaign, participants=int(row["participants"]), sent=int(row["sent"] or 0),
                        conversions=int(row["conversions"]), cycles=cycles)

    async def results(self, tenant: str, campaign_id: str) -> CampaignResults | None:
        """Participants, invitations, conversions and K-factor (:meth:`virality`), plus GMV of the
        paid purchases IN_CAMPAIGN (refunds excluded), ROI where a cost is set, and the
        campaign's group-buys and coupons."""
        spread = await self.virality(tenant, campaign_id)
        if spread is None:
            return None
        row = await self.graph.read_one(RESULTS, tenant=tenant, campaignId=campaign_id, now=now())
        assert row is not None
        gmv: dict[str, int] = {}
        paid = 0
        for p in row["paid"]:
            if p["currency"] is not None:
                gmv[p["currency"]] = gmv.get(p["currency"], 0) + int(p["amount"])
                paid += int(p["n"])
        cost = spread.campaign.cost
        return CampaignResults(
            campaign_id=campaign_id, participants=spread.participants, invitations_sent=spread.invitations_sent,
            conversions=spread.conversions, k_factor=spread.k_factor,
            gmv=tuple(Money(amount, currency) for currency, amount in sorted(gmv.items())), paid_purchases=paid,
            cost=cost, roi=None if cost is None else roi(gmv.get(cost.currency, 0), cost.amount),
            group_buys_opened=int(row["opened"]), group_buys_succeeded=int(row["succeeded"] or 0),
            group_buys_failed=int(row["failed"] or 0), coupons_issued=int(row["issued"]),
            coupons_redeemed=int(row["redeemed"] or 0),
        )
