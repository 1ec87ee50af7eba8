"""Communities (社群): the Community type, memberships, feeds, queries and mutations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from domain import models as dm
from domain.auth import MANAGER_ROLES
from domain.commands import CreateCommunity, SetMemberRole, parse
from domain.errors import PermissionDenied
from domain.ids import Kind, require_id
from domain.ports import CommunityFilter
from resolvers.common import (
    ConflictError,
    Connection,
    ConnectionBase,
    Node,
    NotFoundError,
    PermissionError,
    ReferralError,
    ValidationError,
    XInfo,
    connection,
    connection_args,
    guarded,
    load_page,
)
from resolvers.enums import CommunityChannel, CommunityKind, CommunityOrder, MembershipRole
from resolvers.health import CommunityHealth, HealthWindowInput, community_health
from resolvers.lookahead import FEED_NESTED, node_fields
from resolvers.members import Member, member_or_raise
from resolvers.privacy import record_role_change

if TYPE_CHECKING:
    from resolvers.content import Content

__all__ = [
    "CommunitiesMutation",
    "CommunitiesQuery",
    "Community",
    "CommunityMemberConnection",
    "MemberCommunityConnection",
    "load_community",
    "member_communities",
    "member_communities_of",
]

ContentRef = Annotated["Content", strawberry.lazy("resolvers.content")]


@strawberry.type(description="A community (社群): a WeChat group, WeCom group, app circle or mini-program community.")
class Community(Node):
    id: strawberry.ID
    name: str
    kind: CommunityKind  # type: ignore[valid-type]
    channel: CommunityChannel  # type: ignore[valid-type]
    created_at: datetime
    description: str | None
    _c: strawberry.Private[dm.Community]

    @classmethod
    def from_domain(cls, c: dm.Community) -> Community:
        return cls(
            id=strawberry.ID(c.id), name=c.name, kind=c.kind, channel=c.channel, created_at=c.created_at,
            description=c.description, _c=c,
        )

    @strawberry.field(description="How many members the community has.")
    async def member_count(self, info: XInfo) -> int:
        return (await info.context.loaders.community_counts.load(self._c.id)).members

    @strawberry.field(description="Members with their role, most recently joined first.")
    async def members(self, info: XInfo, first: int | None = 20, after: str | None = None) -> CommunityMemberConnection:
        loaders = info.context.loaders
        page = await load_page(info, loaders.community_members, (self._c.id, connection_args(first), after))
        members = [ms.member for ms in page.items]
        if any(m is None for m in members):
            members = await loaders.member.load_many([ms.member_id for ms in page.items])
        edges = [
            CommunityMemberEdge(cursor=cursor, role=ms.role, joined_at=ms.joined_at, node=Member.from_domain(m))
            for cursor, ms, m in zip(page.cursors, page.items, members)
            if m is not None
        ]

        async def count() -> int:
            return (await loaders.community_counts.load(self._c.id)).members

        return CommunityMemberConnection(edges=edges, nodes=[e.node for e in edges], _page=page, _count=count)  # type: ignore[arg-type]

    @strawberry.field(description="Health and funnel metrics of this community over a window (default: the last "
                      "30 days); see CommunityHealth for the definitions. Operators, analysts and admins only.")
    async def health(self, info: XInfo, window: HealthWindowInput | None = None) -> CommunityHealth:
        return await community_health(info, self._c.id, window)

    @strawberry.field(description="Content posted in this community, newest first.")
    async def feed(self, info: XInfo, first: int | None = 20, after: str | None = None) -> Connection[ContentRef]:
        from resolvers.content import Content

        loaders = info.context.loaders
        key = (self._c.id, connection_args(first), after)

        async def count() -> int:
            return (await loaders.community_counts.load(self._c.id)).posts

        if node_fields(info) & FEED_NESTED:
            # the page with its authors and counts in one round trip: the nodes come ready
            items = await load_page(info, loaders.feed_items, key)
            return connection(items, lambda i: Content.from_domain(i.content, i.author, i.counts), count)  # type: ignore[return-value]
        page = await load_page(info, loaders.feed, key)
        return connection(page, Content.from_domain, count)  # type: ignore[return-value]


@strawberry.type(description="A member of a community with their role there.")
class CommunityMemberEdge:
    cursor: str
    role: MembershipRole  # type: ignore[valid-type]
    joined_at: datetime
    node: Member


@strawberry.type
class CommunityMemberConnection(ConnectionBase):
    edges: list[CommunityMemberEdge]
    nodes: list[Member]


@strawberry.type(description="A community a member belongs to, with the member's role there.")
class MemberCommunityEdge:
    cursor: str
    role: MembershipRole  # type: ignore[valid-type]
    joined_at: datetime
    node: Community


@strawberry.type
class MemberCommunityConnection(ConnectionBase):
    edges: list[MemberCommunityEdge]
    nodes: list[Community]


async def member_communities(info: XInfo, member_id: str, first: int, after: str | None) -> MemberCommunityConnection:
    loaders = info.context.loaders
    page = await load_page(info, loaders.memberships, (member_id, first, after))
    communities = [ms.community for ms in page.items]
    if any(c is None for c in communities):
        communities = await loaders.community.load_many([ms.community_id for ms in page.items])
    return member_communities_of(info, member_id, page, communities)


def member_communities_of(
    info: XInfo, member_id: str, page: dm.Page[dm.Membership], communities: Sequence[dm.Community | None] | None = None
) -> MemberCommunityConnection:
    """The connection for a loaded page (its memberships carry their communities unless given)."""
    loaders = info.context.loaders
    if communities is None:
        communities = [ms.community for ms in page.items]
    edges = [
        MemberCommunityEdge(cursor=cursor, role=ms.role, joined_at=ms.joined_at, node=Community.from_domain(c))
        for cursor, ms, c in zip(page.cursors, page.items, communities)
        if c is not None
    ]

    async def count() -> int:
        return (await loaders.member_counts.load(member_id)).communities

    return MemberCommunityConnection(edges=edges, nodes=[e.node for e in edges], _page=page, _count=count)  # type: ignore[arg-type]


async def load_community(info: XInfo, community_id: str, *, field: str = "id") -> Community | None:
    require_id(community_id, Kind.COMMUNITY, field=field)
    found = await info.context.loaders.community.load(community_id)
    return None if found is None else Community.from_domain(found)


@strawberry.input
class CommunityFilterInput:
    kind: CommunityKind | None = None  # type: ignore[valid-type]
    channel: CommunityChannel | None = None  # type: ignore[valid-type]
    name_contains: str | None = strawberry.field(default=None, description="Case-insensitive substring of the name.")

    def to_domain(self) -> CommunityFilter:
        if self.name_contains is not None and len(self.name_contains) > 80:
            from domain.errors import ValidationFailed

            raise ValidationFailed("filter.nameContains must be at most 80 characters", field="filter.nameContains")
        return CommunityFilter(kind=self.kind, channel=self.channel, name_contains=self.name_contains)


@strawberry.type
class CommunitiesQuery:
    @strawberry.field(description="A community of your tenant by id, or null.")
    async def community(self, info: XInfo, id: strawberry.ID) -> Community | None:
        return await load_community(info, id)

    @strawberry.field(description="Communities of your tenant, newest first by default.")
    async def communities(
        self,
        info: XInfo,
        first: int | None = 20,
        after: str | None = None,
        filter: CommunityFilterInput | None = None,
        order_by: CommunityOrder = CommunityOrder.CREATED_AT_DESC,  # type: ignore[valid-type]
    ) -> Connection[Community]:
        ctx = info.context
        tenant = ctx.tenant
        domain_filter = filter.to_domain() if filter else CommunityFilter()
        page = await ctx.repos.communities.list(
            tenant, filter=domain_filter, order=order_by, first=connection_args(first), after=after
        )

        async def count() -> int:
            return await ctx.repos.communities.count(tenant, filter=domain_filter)

        return connection(page, Community.from_domain, count)


@strawberry.input
class CreateCommunityInput:
    name: str
    kind: CommunityKind = dm.CommunityKind.INTEREST  # type: ignore[valid-type]
    channel: CommunityChannel = dm.CommunityChannel.APP_CIRCLE  # type: ignore[valid-type]
    description: str | None = None
    owner_id: strawberry.ID | None = strawberry.field(default=None, description="A member who becomes the owner.")


@strawberry.type
class CommunityPayload:
    community: Community


@strawberry.type
class MembershipPayload:
    member: Member
    community: Community
    role: MembershipRole | None  # type: ignore[valid-type]
    changed: bool


_Errors = ValidationError | NotFoundError | PermissionError | ConflictError | ReferralError
CommunityResult = Annotated[CommunityPayload | _Errors, strawberry.union("CommunityResult")]
MembershipResult = Annotated[MembershipPayload | _Errors, strawberry.union("MembershipResult")]


async def _community_or_raise(info: XInfo, community_id: str) -> Community:
    from domain.errors import NotFound

    found = await load_community(info, community_id, field="communityId")
    if found is None:
        raise NotFound(f"no community {community_id!r}", field="communityId")
    return found


@strawberry.type
class CommunitiesMutation:
    @strawberry.mutation(description="Create a community (operator, admin).")
    async def create_community(self, info: XInfo, input: CreateCommunityInput) -> CommunityResult:
        async def work() -> CommunityPayload:
            tenant = info.context.principal.require_role(MANAGER_ROLES, "creating communities")
            owner = input.owner_id
            if owner is not None:
                require_id(owner, Kind.MEMBER, field="input.ownerId")
            data = {k: v for k, v in vars(input).items() if k != "owner_id"}
            cmd = parse(CreateCommunity, data)
            community = await info.context.repos.communities.create(tenant, cmd, owner_id=owner)
            return CommunityPayload(community=Community.from_domain(community))

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Join a community (idempotent).")
    async def join_community(self, info: XInfo, community_id: strawberry.ID, as_member_id: strawberry.ID | None = None) -> MembershipResult:
        async def work() -> MembershipPayload:
            principal = info.context.principal
            require_id(community_id, Kind.COMMUNITY, field="communityId")
            if as_member_id is not None:
                require_id(as_member_id, Kind.MEMBER, field="asMemberId")
            acting = principal.acting_member(as_member_id, field="asMemberId")
            ms, created = await info.context.repos.communities.join(principal.require_tenant(), acting, community_id)
            return MembershipPayload(
                member=await member_or_raise(info, acting, "asMemberId"),
                community=await _community_or_raise(info, community_id),
                role=ms.role, changed=created,
            )

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Leave a community (idempotent).")
    async def leave_community(self, info: XInfo, community_id: strawberry.ID, as_member_id: strawberry.ID | None = None) -> MembershipResult:
        async def work() -> MembershipPayload:
            principal = info.context.principal
            require_id(community_id, Kind.COMMUNITY, field="communityId")
            if as_member_id is not None:
                require_id(as_member_id, Kind.MEMBER, field="asMemberId")
            acting = principal.acting_member(as_member_id, field="asMemberId")
            removed = await info.context.repos.communities.leave(principal.require_tenant(), acting, community_id)
            return MembershipPayload(
                member=await member_or_raise(info, acting, "asMemberId"),
                community=await _community_or_raise(info, community_id),
                role=None, changed=removed,
            )

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Set a member's role in a community (operators, admins, or the community's owner/admins).")
    async def set_member_role(
        self, info: XInfo, member_id: strawberry.ID, community_id: strawberry.ID, role: MembershipRole  # type: ignore[valid-type]
    ) -> MembershipResult:
        async def work() -> MembershipPayload:
            principal = info.context.principal
            tenant = principal.require_tenant()
            cmd = parse(SetMemberRole, {"member_id": member_id, "community_id": community_id, "role": role}, prefix="")
            repo = info.context.repos.communities
            if not principal.has_any(MANAGER_ROLES):
                mine = None if principal.member_id is None else await repo.role_of(tenant, principal.member_id, cmd.community_id)
                if mine not in (dm.MembershipRole.OWNER, dm.MembershipRole.ADMIN):
                    raise PermissionDenied("only operators, admins and the community's owner or admins can set roles")
                if cmd.role is dm.MembershipRole.OWNER and mine is not dm.MembershipRole.OWNER:
                    raise PermissionDenied("only the owner can make someone owner", field="role")
            ms = await repo.set_role(tenant, cmd.member_id, cmd.community_id, cmd.role)
            await record_role_change(info.context, cmd.member_id, cmd.community_id, cmd.role.value)
            return MembershipPayload(
                member=await member_or_raise(info, cmd.member_id, "memberId"),
                community=await _community_or_raise(info, cmd.community_id),
                role=ms.role, changed=True,
            )

        return await guarded(work)  # type: ignore[return-value]
