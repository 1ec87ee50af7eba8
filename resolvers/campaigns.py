"""Campaigns (活动) and their virality: K-factor and viral cycle time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from domain import models as dm
from domain.auth import STAFF_ROLES, WRITER_ROLES
from domain.commands import CreateCampaign, RecordInvitesSent, parse
from domain.errors import NotFound
from domain.ids import Kind, require_id
from resolvers.common import (
    ConflictError,
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

    @classmethod
    def from_domain(cls, c: dm.Campaign) -> Campaign:
        return cls(id=strawberry.ID(c.id), name=c.name, kind=c.kind, starts_at=c.starts_at, ends_at=c.ends_at,
                   created_at=c.created_at)


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
            cmd = parse(CreateCampaign, dict(vars(input)))
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
