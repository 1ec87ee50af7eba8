"""`node(id)` (Relay global object lookup) and `viewer` (who am I)."""

from __future__ import annotations

import strawberry

from domain.ids import Kind, kind_of
from resolvers.commerce import load_product, load_purchase
from resolvers.common import Node, XInfo
from resolvers.communities import load_community
from resolvers.content import Comment, load_content
from resolvers.members import Member, Tag, load_member

__all__ = ["NodeQuery", "Viewer"]


@strawberry.type(description="The authenticated caller.")
class Viewer:
    tenant_id: str
    roles: list[str]
    scopes: list[str]
    member_id: strawberry.ID | None

    @strawberry.field(description="The member this token belongs to, if any.")
    async def member(self, info: XInfo) -> Member | None:
        return None if self.member_id is None else await load_member(info, self.member_id)


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global id, or null when it is not in your tenant.")
    async def node(self, info: XInfo, id: strawberry.ID) -> Node | None:
        kind = kind_of(id)
        if kind is Kind.MEMBER:
            return await load_member(info, id)
        if kind is Kind.COMMUNITY:
            return await load_community(info, id)
        if kind is Kind.CONTENT:
            return await load_content(info, id)
        if kind is Kind.PRODUCT:
            return await load_product(info, id)
        if kind is Kind.PURCHASE:
            return await load_purchase(info, id)
        if kind is Kind.COMMENT:
            found = await info.context.loaders.comment.load(id)
            return None if found is None else Comment.from_domain(found)
        if kind is Kind.TAG:
            tag = await info.context.loaders.tag.load(id)
            return None if tag is None else Tag.from_domain(tag)
        if kind is Kind.CAMPAIGN:
            from resolvers.campaigns import Campaign

            campaign = await info.context.loaders.campaign.load(id)
            return None if campaign is None else Campaign.from_domain(campaign)
        if kind in (Kind.GROUP_BUY, Kind.COUPON, Kind.POINTS_ENTRY):
            from resolvers.rewards import load_reward

            return await load_reward(info, id, kind)
        from domain.errors import ValidationFailed

        raise ValidationFailed(f"id is not a Quanzi id: {id[:60]!r}", field="id")

    @strawberry.field(description="The authenticated caller, or null for anonymous requests.")
    def viewer(self, info: XInfo) -> Viewer | None:
        p = info.context.principal
        if p.tenant_id is None:
            return None
        return Viewer(
            tenant_id=p.tenant_id,
            roles=sorted(r.value for r in p.roles),
            scopes=sorted(s.value for s in p.scopes),
            member_id=None if p.member_id is None else strawberry.ID(p.member_id),
        )
