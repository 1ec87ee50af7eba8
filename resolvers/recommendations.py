"""Personal recommendations (个性化推荐) on ``Member`` (and so on ``viewer``).

Each item carries a ``reason`` a person can read. Lists are computed from the graph on a
cache miss and cached per member in Redis; a member's own follows, joins, interactions
and purchases invalidate them. Members without marketing consent get no products.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

from domain.errors import PermissionDenied
from domain.recommendations import Recommendation
from resolvers.common import XInfo, connection_args

if TYPE_CHECKING:
    from resolvers.commerce import Product
    from resolvers.communities import Community
    from resolvers.content import Content
    from resolvers.members import Member

__all__ = ["RecommendedMember", "RecommendedCommunity", "RecommendedContent", "RecommendedProduct", "recommendations"]

MemberRef = Annotated["Member", strawberry.lazy("resolvers.members")]
CommunityRef = Annotated["Community", strawberry.lazy("resolvers.communities")]
ContentRef = Annotated["Content", strawberry.lazy("resolvers.content")]
ProductRef = Annotated["Product", strawberry.lazy("resolvers.commerce")]


@strawberry.type(description="A member to follow: friends of friends ranked by Adamic-Adar "
                 "(sum over shared contacts z of 1 / ln(degree of z)).")
class RecommendedMember:
    score: float
    reason: str
    member: MemberRef


@strawberry.type(description="A community to join, by co-membership with members of your communities.")
class RecommendedCommunity:
    score: float
    reason: str
    community: CommunityRef


@strawberry.type(description="Content to read: a random walk with restart over who interacted with what, "
                 "fresh content boosted (the score halves every 7 days of age).")
class RecommendedContent:
    score: float
    reason: str
    content: ContentRef


@strawberry.type(description="A product: bought together with what you bought, and popular in your communities. "
                 "Empty without marketing consent.")
class RecommendedProduct:
    score: float
    reason: str
    product: ProductRef


def _may_see(info: XInfo, member_id: str) -> str:
    principal = info.context.principal
    tenant = principal.require_tenant()
    if not (principal.is_staff or principal.member_id == member_id):
        raise PermissionDenied("recommendations are for the member itself and staff")
    return tenant


async def recommendations(info: XInfo, member_id: str, kind: str, first: int | None) -> list[Recommendation]:
    tenant = _may_see(info, member_id)
    limit = connection_args(first)
    repo = info.context.repos.recommendations
    if kind == "member":
        return await repo.members(tenant, member_id, limit)
    if kind == "community":
        return await repo.communities(tenant, member_id, limit)
    if kind == "content":
        return await repo.content(tenant, member_id, limit)
    return await repo.products(tenant, member_id, limit)
