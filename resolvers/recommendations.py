"""Personal recommendations (个性化推荐) on ``Member`` (and so on ``viewer``).

Each item carries a ``reason`` a person can read. Lists are computed from the graph on a
cache miss and cached per member in Redis; a member's own follows, joins, interactions
and purchases invalidate them. Members without marketing consent get no products.
Members who withdrew PROFILING consent (PIPL Art. 24) get the tenant's popular lists
instead, the same for everyone, flagged ``personalized: false``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import strawberry
from strawberry.dataloader import DataLoader

from domain.errors import PermissionDenied
from domain.recommendations import Recommendation, RecommendationKind
from resolvers.common import XInfo, connection_args

if TYPE_CHECKING:
    from resolvers.commerce import Product
    from resolvers.communities import Community
    from resolvers.content import Content
    from resolvers.members import Member

__all__ = [
    "RecommendedCommunity", "RecommendedContent", "RecommendedMember", "RecommendedProduct", "recommended_communities",
    "recommended_content", "recommended_members", "recommended_products",
]

D = TypeVar("D")
T = TypeVar("T")

MemberRef = Annotated["Member", strawberry.lazy("resolvers.members")]
CommunityRef = Annotated["Community", strawberry.lazy("resolvers.communities")]
ContentRef = Annotated["Content", strawberry.lazy("resolvers.content")]
ProductRef = Annotated["Product", strawberry.lazy("resolvers.commerce")]


_PERSONALIZED = ("False when the member withdrew PROFILING consent: the list is then the same for every member "
                 "(most followed members, most joined communities, most engaged recent content, best sellers), "
                 "built without data about the member.")


@strawberry.type(description="A member to follow: friends of friends ranked by Adamic-Adar "
                 "(sum over shared contacts z of 1 / ln(degree of z)).")
class RecommendedMember:
    score: float
    reason: str
    member: MemberRef
    personalized: bool = strawberry.field(description=_PERSONALIZED)


@strawberry.type(description="A community to join, by co-membership with members of your communities.")
class RecommendedCommunity:
    score: float
    reason: str
    community: CommunityRef
    personalized: bool = strawberry.field(description=_PERSONALIZED)


@strawberry.type(description="Content to read: a random walk with restart over who interacted with what, "
                 "fresh content boosted (the score halves every 7 days of age).")
class RecommendedContent:
    score: float
    reason: str
    content: ContentRef
    personalized: bool = strawberry.field(description=_PERSONALIZED)


@strawberry.type(description="A product: bought together with what you bought, and popular in your communities. "
                 "Empty without marketing consent.")
class RecommendedProduct:
    score: float
    reason: str
    product: ProductRef
    personalized: bool = strawberry.field(description=_PERSONALIZED)


def _may_see(info: XInfo, member_id: str) -> str:
    principal = info.context.principal
    tenant = principal.require_tenant()
    if not (principal.is_staff or principal.member_id == member_id):
        raise PermissionDenied("recommendations are for the member itself and staff")
    return tenant


async def _load(info: XInfo, member_id: str, kind: str, first: int | None) -> tuple[list[Recommendation], bool]:
    """The list, and whether it is personalised (not when the member refused profiling)."""
    tenant = _may_see(info, member_id)
    limit = connection_args(first)
    repo = info.context.repos.recommendations
    if not await info.context.loaders.profiling_allowed.load(member_id):
        if kind == "product":  # product suggestions are marketing: still opt-in
            member = await info.context.loaders.member.load(member_id)
            if member is None or not member.marketing_consent:
                return [], False
        return await repo.popular(tenant, RecommendationKind(kind), member_id, limit), False
    fetch = {"member": repo.members, "community": repo.communities, "content": repo.content,
             "product": repo.products}[kind]
    return await fetch(tenant, member_id, limit), True


async def _hydrated(info: XInfo, recs: list[Recommendation], loader: DataLoader[str, D | None],
                    wrap: Callable[[Recommendation, D], T]) -> list[T]:
    """The recommended objects in one batched load; items deleted since they were cached drop out."""
    found = await loader.load_many([r.item_id for r in recs])
    return [wrap(r, item) for r, item in zip(recs, found) if item is not None]


async def recommended_members(info: XInfo, member_id: str, first: int | None) -> list[RecommendedMember]:
    from resolvers.members import Member

    recs, personal = await _load(info, member_id, "member", first)
    return await _hydrated(info, recs, info.context.loaders.member, lambda r, m: RecommendedMember(
        score=r.score, reason=r.reason, member=Member.from_domain(m), personalized=personal))


async def recommended_communities(info: XInfo, member_id: str, first: int | None) -> list[RecommendedCommunity]:
    from resolvers.communities import Community

    recs, personal = await _load(info, member_id, "community", first)
    return await _hydrated(info, recs, info.context.loaders.community, lambda r, c: RecommendedCommunity(
        score=r.score, reason=r.reason, community=Community.from_domain(c), personalized=personal))


async def recommended_content(info: XInfo, member_id: str, first: int | None) -> list[RecommendedContent]:
    from resolvers.content import Content

    recs, personal = await _load(info, member_id, "content", first)
    return await _hydrated(info, recs, info.context.loaders.content, lambda r, c: RecommendedContent(
        score=r.score, reason=r.reason, content=Content.from_domain(c), personalized=personal))


async def recommended_products(info: XInfo, member_id: str, first: int | None) -> list[RecommendedProduct]:
    from resolvers.commerce import Product

    recs, personal = await _load(info, member_id, "product", first)
    return await _hydrated(info, recs, info.context.loaders.product, lambda r, p: RecommendedProduct(
        score=r.score, reason=r.reason, product=Product.from_domain(p), personalized=personal))
