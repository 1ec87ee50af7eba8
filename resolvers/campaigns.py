"""Campaigns (活动) and their virality: K-factor and viral cycle time."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated

import strawberry

from domain import models as dm
from domain.auth import STAFF_ROLES, WRITER_ROLES
from domain.commands import CreateCampaign, RecordInvitesSent, parse
from domain.errors import NotFound
from domain.ids import Kind, require_id
from domain.rewards import CampaignResults as CampaignResultsModel
from resolvers.commerce import MoneyInput
from resolvers.common import (
    ConflictError,
    Money,
    Node,
    NotFoundError,
    PermissionError,
    ReferralError,
    ValidationError,
    XInfo,
    guarded,
)

__all__ = ["Campaign", "CampaignsQuery", "CampaignsMutation"]

CampaignKind = strawberry.enum(dm.CampaignKind, description="裂变 fission, 拼团 group-buy, 优惠券 coupon, 签到 check-in, 抽奖 lottery.")


@strawberry.type(description="A growth campaign (活动); its results count inside [startsAt, endsAt].")
class Campaign(Node):
    id: strawberry.ID
    name: str
    kind: CampaignKind  # type: ignore[valid-type]
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    cost: Money | None = strawberry.field(description="What the campaign cost, if set (for its ROI).")

    @classmethod
    def from_domain(cls, c: dm.Campaign) -> Campaign:
        return cls(id=strawberry.ID(c.id), name=c.name, kind=c.kind, starts_at=c.starts_at, ends_at=c.ends_at,
                   created_at=c.created_at, cost=None if c.cost is None else Money.from_domain(c.cost))

    @strawberry.field(description="The campaign's results (staff only; computed when read).")
    async def results(self, info: XInfo) -> CampaignResults:
        tenant = info.context.principal.require_role(STAFF_ROLES, "reading campaign results")
        found = await info.context.repos.campaigns.results(tenant, self.id)
        if found is None:
            raise NotFound(f"no campaign {self.id!r}", field="id")
        return CampaignResults.from_domain(found)


@strawberry.type(description="A campaign's results. Participants, invitations, conversions and the K-factor as in "
                 "campaignVirality (K-factor = invitations sent per participant × the share of invitations that became "
                 "members, within the campaign window). GMV = the sum of paid purchases credited to the campaign "
                 "(IN_CAMPAIGN), refunds excluded, per currency. ROI = (GMV − cost) / cost in the cost's currency, "
                 "where a cost is set. Group-buys count those opened in the campaign by status (an expired open one "
                 "counts as failed); coupons those issued in it and redeemed.")
class CampaignResults:
    participants: int
    invitations_sent: int
    conversions: int
    k_factor: float
    gmv: list[Money] = strawberry.field(description="Paid GMV credited to the campaign, one amount per currency.")
    paid_purchases: int = strawberry.field(description="Paid purchases credited to the campaign.")
    cost: Money | None
    roi: float | None = strawberry.field(description="(GMV − cost) / cost; null without a positive cost.")
    group_buys_opened: int
    group_buys_succeeded: int
    group_buys_failed: int
    coupons_issued: int
    coupons_redeemed: int

    @classmethod
    def from_domain(cls, r: CampaignResultsModel) -> CampaignResults:
        return cls(
            participants=r.participants, invitations_sent=r.invitations_sent, conversions=r.conversions,
            k_factor=r.k_factor, gmv=[Money.from_domain(m) for m in r.gmv], paid_purchases=r.paid_purchases,
            cost=None if r.cost is None else Money.from_domain(r.cost), roi=r.roi,
            group_buys_opened=r.group_buys_opened, group_buys_succeeded=r.group_buys_succeeded,
            group_buys_failed=r.group_buys_failed, coupons_issued=r.coupons_issued,
            coupons_redeemed=r.coupons_redeemed,
        )


@strawberry.type(description="How a campaign spread. K-factor = invitations sent per participant × the share of "
                 "invitations that became members (so: new members per participant), within the campaign window. "
                 "Viral cycle time = the median time from a member joining the campaign (joining the brand, or the "
                 "campaign start for earlier members) to its first successful invite.")
class CampaignVirality:
    campaign: Campaign
    participants: int = strawberry.field(description="Members who took part: inviters and the members they brought.")
    invitations_sent: int = strawberry.field(description="Invitations reported with recordInvitesSent.")
    conversions: int = strawberry.field(description="Invitations that became members inside the window.")
    k_factor: float
    invitations_per_participant: float | None
    conversion_rate: float | None
    viral_cycle_seconds: float | None = strawberry.field(description="The viral cycle time in seconds; null "
                                                         "before anyone's first successful invite.")

    @classmethod
    def from_domain(cls, v: dm.CampaignVirality) -> CampaignVirality:
        return cls(
            campaign=Campaign.from_domain(v.campaign), participants=v.participants, invitations_sent=v.invitations_sent,
            conversions=v.conversions, k_factor=v.k_factor, invitations_per_participant=v.invitations_per_participant,
            conversion_rate=v.conversion_rate,
            viral_cycle_seconds=None if v.viral_cycle is None else v.viral_cycle.total_seconds(),
        )


@strawberry.type
class CampaignsQuery:
    @strawberry.field(description="A campaign by id, or null.")
    async def campaign(self, info: XInfo, id: strawberry.ID) -> Campaign | None:
        require_id(id, Kind.CAMPAIGN, field="id")
        info.context.principal.require_tenant()
        found = await info.context.loaders.campaign.load(id)
        return None if found is None else Campaign.from_domain(found)

    @strawberry.field(description="A campaign's K-factor and viral cycle time (staff only).")
    async def campaign_virality(self, info: XInfo, campaign_id: strawberry.ID) -> CampaignVirality:
        require_id(campaign_id, Kind.CAMPAIGN, field="campaignId")
        tenant = info.context.principal.require_role(STAFF_ROLES, "reading campaign results")
        found = await info.context.repos.campaigns.virality(tenant, campaign_id)
        if found is None:
            raise NotFound(f"no campaign {campaign_id!r}", field="campaignId")
        return CampaignVirality.from_domain(found)


@strawberry.input
class CreateCampaignInput:
    name: str
    starts_at: datetime
    ends_at: datetime
    kind: CampaignKind = dm.CampaignKind.FISSION  # type: ignore[valid-type]
    cost: MoneyInput | None = strawberry.field(default=None, description="What the campaign costs (for its ROI).")


@strawberry.input
class RecordInvitesSentInput:
    campaign_id: strawberry.ID
    count: int = strawberry.field(description="Invitations sent (shares of the invite link or poster), 1–10,000.")


@strawberry.type
class CampaignPayload:
    campaign: Campaign


@strawberry.type
class InvitesSentPayload:
    invitations_sent: int = strawberry.field(description="The member's running total in this campaign.")


_Errors = ValidationError | NotFoundError | PermissionError | ConflictError | ReferralError
CampaignResult = Annotated[CampaignPayload | _Errors, strawberry.union("CampaignResult")]
InvitesSentResult = Annotated[InvitesSentPayload | _Errors, strawberry.union("InvitesSentResult")]


@strawberry.type
class CampaignsMutation:
    @strawberry.mutation(description="Create a campaign (operator, integrator, admin).")
    async def create_campaign(self, info: XInfo, input: CreateCampaignInput) -> CampaignResult:
        async def work() -> CampaignPayload:
            tenant = info.context.principal.require_role(WRITER_ROLES, "creating campaigns")
            cmd = parse(CreateCampaign, dataclasses.asdict(input))
            return CampaignPayload(campaign=Campaign.from_domain(await info.context.repos.campaigns.create(tenant, cmd)))

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Report invitations a member sent in a campaign (for its K-factor).")
    async def record_invites_sent(self, info: XInfo, input: RecordInvitesSentInput,
                                  as_member_id: strawberry.ID | None = None) -> InvitesSentResult:
        async def work() -> InvitesSentPayload:
            principal = info.context.principal
            tenant = principal.require_tenant()
            member = principal.acting_member(as_member_id, field="asMemberId")
            cmd = parse(RecordInvitesSent, {"campaign_id": input.campaign_id, "member_id": member, "count": input.count})
            sent = await info.context.repos.campaigns.record_invites_sent(tenant, cmd)
            return InvitesSentPayload(invitations_sent=sent)

        return await guarded(work)  # type: ignore[return-value]
