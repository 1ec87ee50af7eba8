"""Members: the Member type, its queries and its mutations (follows, referrals, profile)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from domain import models as dm
from domain.auth import STAFF_ROLES, WRITER_ROLES, mask_phone, mask_wechat_id
from domain.commands import RegisterMember, UpdateMember, parse
from domain.errors import PermissionDenied, ValidationFailed
from domain.ids import Kind, require_id
from domain.ports import MemberFilter
from resolvers.common import (
    ConflictError,
    Connection,
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
from resolvers.enums import Channel, MemberOrder, TagKind
from resolvers.lookahead import Preloaded, preload_member_pages
from resolvers.privacy import consents_of, note_pii_read

if TYPE_CHECKING:
    from resolvers.commerce import Purchase
    from resolvers.communities import Community
    from resolvers.content import Content
    from resolvers.growth import Influence, Referral, ReferralStats, ScopeInput
    from resolvers.privacy import Consent
    from resolvers.recommendations import (
        RecommendedCommunity,
        RecommendedContent,
        RecommendedMember,
        RecommendedProduct,
    )
    from resolvers.segmentation import MemberSegmentation

__all__ = ["Member", "Tag", "Interest", "MembersQuery", "MembersMutation", "load_member", "member_or_raise"]

CommunityRef = Annotated["Community", strawberry.lazy("resolvers.communities")]
ContentRef = Annotated["Content", strawberry.lazy("resolvers.content")]
PurchaseRef = Annotated["Purchase", strawberry.lazy("resolvers.commerce")]
InfluenceRef = Annotated["Influence", strawberry.lazy("resolvers.growth")]
ReferralStatsRef = Annotated["ReferralStats", strawberry.lazy("resolvers.growth")]
ReferralRef = Annotated["Referral", strawberry.lazy("resolvers.growth")]
MemberSegmentationRef = Annotated["MemberSegmentation", strawberry.lazy("resolvers.segmentation")]
ScopeInputRef = Annotated["ScopeInput", strawberry.lazy("resolvers.growth")]
RecommendedMemberRef = Annotated["RecommendedMember", strawberry.lazy("resolvers.recommendations")]
RecommendedCommunityRef = Annotated["RecommendedCommunity", strawberry.lazy("resolvers.recommendations")]
RecommendedContentRef = Annotated["RecommendedContent", strawberry.lazy("resolvers.recommendations")]
RecommendedProductRef = Annotated["RecommendedProduct", strawberry.lazy("resolvers.recommendations")]
ConsentRef = Annotated["Consent", strawberry.lazy("resolvers.privacy")]


@strawberry.type(description="A topic or profile tag (标签 / 话题).")
class Tag(Node):
    id: strawberry.ID
    name: str
    kind: TagKind  # type: ignore[valid-type]

    @classmethod
    def from_domain(cls, t: dm.Tag) -> Tag:
        return cls(id=strawberry.ID(t.id), name=t.name, kind=t.kind)


@strawberry.type(description="A profile tag on a member with its weight and source (用户画像).")
class Interest:
    tag: Tag
    weight: float
    source: str


def _is_self_or_staff(info: XInfo, member_id: str) -> bool:
    p = info.context.principal
    return p.member_id == member_id or p.is_staff


@strawberry.type(description="A member (用户 / 会员) of the brand's private domain.")
class Member(Node):
    id: strawberry.ID
    display_name: str
    joined_at: datetime
    channel: Channel  # type: ignore[valid-type]
    level: int = strawberry.field(description="Membership level (会员等级), 0-10.")
    points: int = strawberry.field(description="Points balance (积分) as booked: the sum of the member's points ledger "
                                   "(pointsLedger). pointsBalance also deducts lots past their expiry that the "
                                   "sweep has not written off yet.")
    city: str | None
    _m: strawberry.Private[dm.Member]
    #: first pages loaded with the list this member came in (resolvers.lookahead)
    _pre: strawberry.Private[Preloaded | None] = None

    @classmethod
    def from_domain(cls, m: dm.Member, pre: Preloaded | None = None) -> Member:
        return cls(
            id=strawberry.ID(m.id), display_name=m.display_name, joined_at=m.joined_at, channel=m.channel,
            level=m.level, points=m.points, city=m.city, _m=m, _pre=pre,
        )

    @strawberry.field(description="Phone number; masked (138****5678) unless the caller holds the pii:read scope "
                      "(each request that returns it unmasked is audited as READ_PII).")
    def phone(self, info: XInfo) -> str | None:
        if not info.context.principal.can_read_pii():
            return mask_phone(self._m.phone)
        if self._m.phone is not None:
            note_pii_read(info, self._m.id, "phone")
        return self._m.phone

    @strawberry.field(description="WeChat id; masked unless the caller holds the pii:read scope (audited as READ_PII).")
    def wechat_id(self, info: XInfo) -> str | None:
        if not info.context.principal.can_read_pii():
            return mask_wechat_id(self._m.wechat_id)
        if self._m.wechat_id is not None:
            note_pii_read(info, self._m.id, "wechatId")
        return self._m.wechat_id

    @strawberry.field(description="This member's own invite code; visible to the member and to staff.")
    def invite_code(self, info: XInfo) -> str | None:
        return self._m.invite_code if _is_self_or_staff(info, self._m.id) else None

    @strawberry.field(description="Consent to marketing messages; visible to the member and to staff.")
    def marketing_consent(self, info: XInfo) -> bool | None:
        return self._m.marketing_consent if _is_self_or_staff(info, self._m.id) else None

    @strawberry.field(description="Consent to profiling; visible to the member and to staff.")
    def profiling_consent(self, info: XInfo) -> bool | None:
        return self._m.profiling_consent if _is_self_or_staff(info, self._m.id) else None

    @strawberry.field(description="Consent per purpose (MARKETING, PROFILING, DATA_SHARING): the decision in force, "
                      "where and when it was recorded, and every grant and withdrawal. The member itself and staff; "
                      "null for others. Supersedes marketingConsent / profilingConsent, which only show the flags.")
    async def consents(self, info: XInfo) -> list[ConsentRef] | None:
        return await consents_of(info, self._m.id)  # type: ignore[return-value]

    @strawberry.field(description="Members who follow this member, newest first.")
    def followers(self, info: XInfo, first: int | None = 20, after: str | None = None) -> Connection[Member]:
        # sync when the page came with the member's list (no await per member), else awaitable
        loaders = info.context.loaders
        n = connection_args(first)

        async def count() -> int:
            return (await loaders.member_counts.load(self._m.id)).followers

        pre = None if self._pre is None else self._pre.followers
        if pre is not None and after is None and pre[0] == n:
            return connection(pre[1], Member.from_domain, count)

        async def load() -> Connection[Member]:
            return connection(await load_page(info, loaders.followers, (self._m.id, n, after)), Member.from_domain, count)

        return load()  # type: ignore[return-value]  # graphql-core awaits it

    @strawberry.field(description="Members this member follows, most recent first.")
    async def following(self, info: XInfo, first: int | None = 20, after: str | None = None) -> Connection[Member]:
        loaders = info.context.loaders
        page = await load_page(info, loaders.following, (self._m.id, connection_args(first), after))

        async def count() -> int:
            return (await loaders.member_counts.load(self._m.id)).following

        return connection(page, Member.from_domain, count)

    @strawberry.field(description="Members this member invited (REFERRED), newest first.")
    async def invitees(self, info: XInfo, first: int | None = 20, after: str | None = None) -> Connection[Member]:
        loaders = info.context.loaders
        page = await load_page(info, loaders.invitees, (self._m.id, connection_args(first), after))

        async def count() -> int:
            return (await loaders.member_counts.load(self._m.id)).invitees

        return connection(page, Member.from_domain, count)

    @strawberry.field(description="The member who invited this one (at most one), or null.")
    async def invited_by(self, info: XInfo) -> Member | None:
        inviter = await info.context.loaders.inviter.load(self._m.id)
        return None if inviter is None else Member.from_domain(inviter)

    @strawberry.field(description="Profile tags with weight and source.")
    async def interests(self, info: XInfo) -> list[Interest]:
        rows = await info.context.loaders.interests.load(self._m.id)
        return [Interest(tag=Tag.from_domain(i.tag), weight=i.weight, source=i.source) for i in rows]

    @strawberry.field(description="Communities this member belongs to, most recently joined first.")
    def communities(
        self, info: XInfo, first: int | None = 20, after: str | None = None
    ) -> Annotated["MemberCommunityConnection", strawberry.lazy("resolvers.communities")]:
        from resolvers.communities import member_communities, member_communities_of

        n = connection_args(first)
        pre = None if self._pre is None else self._pre.communities
        if pre is not None and after is None and pre[0] == n:
            return member_communities_of(info, self._m.id, pre[1])
        return member_communities(info, self._m.id, n, after)  # type: ignore[return-value]  # awaited by graphql-core

    @strawberry.field(description="Content this member posted, newest first.")
    async def posts(
        self, info: XInfo, first: int | None = 20, after: str | None = None
    ) -> Connection[ContentRef]:
        from resolvers.content import Content

        loaders = info.context.loaders
        page = await load_page(info, loaders.posts, (self._m.id, connection_args(first), after))

        async def count() -> int:
            return (await loaders.member_counts.load(self._m.id)).posts

        return connection(page, Content.from_domain, count)  # type: ignore[return-value]

    @strawberry.field(description="This member's purchases, newest first (the member themself or staff only).")
    async def purchases(
        self, info: XInfo, first: int | None = 20, after: str | None = None
    ) -> Connection[PurchaseRef]:
        from resolvers.commerce import Purchase

        if not _is_self_or_staff(info, self._m.id):
            raise PermissionDenied("only the member and staff can read a member's purchases")
        loaders = info.context.loaders
        page = await load_page(info, loaders.purchases_of, (self._m.id, connection_args(first), after))

        async def count() -> int:
            return (await loaders.member_counts.load(self._m.id)).purchases

        return connection(page, Purchase.from_domain, count)  # type: ignore[return-value]

    # --- growth analytics (resolvers.growth) and recommendations (resolvers.recommendations) ---

    @strawberry.field(description="KOL/KOC standing in a scope (default: the whole tenant), with its components "
                      "and when it was computed; null before the first computation. The member itself and staff.")
    async def influence(self, info: XInfo, scope: ScopeInputRef | None = None) -> InfluenceRef | None:
        from resolvers.growth import influence_of

        return await influence_of(info, self._m.id, scope)  # type: ignore[arg-type]

    @strawberry.field(description="The invitation that brought this member in, with its fraud signals; null when "
                      "nobody invited it (or for other members' callers who are not staff).")
    async def referral(self, info: XInfo) -> ReferralRef | None:
        from resolvers.growth import referral_of

        return await referral_of(info, self._m.id)  # type: ignore[return-value]

    @strawberry.field(description="Referral numbers (邀请数据): invites, team, depth, activated and converted "
                      "invitees, GMV. The member itself and staff.")
    async def referral_stats(self, info: XInfo) -> ReferralStatsRef | None:
        from resolvers.growth import referral_stats_of

        return await referral_stats_of(info, self._m.id)  # type: ignore[return-value]

    @strawberry.field(description="Segmentation (用户分层): RFM, lifecycle, value tier, layer and interest circle as "
                      "last computed (see MemberSegmentation). The member itself and staff; null before the first "
                      "run and for a member who withdrew PROFILING consent.")
    async def segmentation(self, info: XInfo) -> MemberSegmentationRef | None:
        from resolvers.segmentation import segmentation_of

        return await segmentation_of(info, self._m.id)  # type: ignore[return-value]

    @strawberry.field(description="Members to follow, best first, each with a reason (the member itself and staff).")
    async def recommended_members(self, info: XInfo, first: int | None = 10) -> list[RecommendedMemberRef]:
        from resolvers.recommendations import recommended_members

        return await recommended_members(info, self._m.id, first)  # type: ignore[return-value]

    @strawberry.field(description="Communities to join, best first, each with a reason.")
    async def recommended_communities(self, info: XInfo, first: int | None = 10) -> list[RecommendedCommunityRef]:
        from resolvers.recommendations import recommended_communities

        return await recommended_communities(info, self._m.id, first)  # type: ignore[return-value]

    @strawberry.field(description="Content to read, best first, each with a reason.")
    async def recommended_content(self, info: XInfo, first: int | None = 10) -> list[RecommendedContentRef]:
        from resolvers.recommendations import recommended_content

        return await recommended_content(info, self._m.id, first)  # type: ignore[return-value]

    @strawberry.field(description="Products, best first, each with a reason; empty without marketing consent.")
    async def recommended_products(self, info: XInfo, first: int | None = 10) -> list[RecommendedProductRef]:
        from resolvers.recommendations import recommended_products

        return await recommended_products(info, self._m.id, first)  # type: ignore[return-value]


@strawberry.input(description="Filters of `members`; all optional and combined with AND.")
class MemberFilterInput:
    community_id: strawberry.ID | None = None
    tag_id: strawberry.ID | None = None
    channel: Channel | None = None  # type: ignore[valid-type]
    min_level: int | None = None
    max_level: int | None = None
    joined_from: datetime | None = strawberry.field(default=None, description="Inclusive.")
    joined_to: datetime | None = strawberry.field(default=None, description="Exclusive.")
    is_koc: bool | None = strawberry.field(default=None, description="KOCs (or not) as of the last tenant-wide "
                                           "ranking.")
    min_kol_score: float | None = strawberry.field(default=None, description="KOL score at least this (0–1), as of "
                                                   "the last tenant-wide ranking.")

    def to_domain(self) -> MemberFilter:
        if self.community_id is not None:
            require_id(self.community_id, Kind.COMMUNITY, field="filter.communityId")
        if self.tag_id is not None:
            require_id(self.tag_id, Kind.TAG, field="filter.tagId")
        for name, value in (("joinedFrom", self.joined_from), ("joinedTo", self.joined_to)):
            if value is not None and value.tzinfo is None:
                # Neo4j compares a zoned and a local datetime as null: the filter would match nobody.
                raise ValidationFailed(f"filter.{name} must carry a time zone (e.g. 2026-01-01T00:00:00Z)",
                                       field=f"filter.{name}")
        return MemberFilter(
            community_id=self.community_id, tag_id=self.tag_id, channel=self.channel, min_level=self.min_level,
            max_level=self.max_level, joined_from=self.joined_from, joined_to=self.joined_to,
            is_koc=self.is_koc, min_kol_score=self.min_kol_score,
        )


async def load_member(info: XInfo, member_id: str, *, field: str = "id") -> Member | None:
    require_id(member_id, Kind.MEMBER, field=field)
    found = await info.context.loaders.member.load(member_id)
    return None if found is None else Member.from_domain(found)


@strawberry.type
class MembersQuery:
    @strawberry.field(description="A member of your tenant by id, or null.")
    async def member(self, info: XInfo, id: strawberry.ID) -> Member | None:
        return await load_member(info, id)

    @strawberry.field(description="Members of your tenant (staff only), filtered and sorted, 20 per page by default.")
    async def members(
        self,
        info: XInfo,
        first: int | None = 20,
        after: str | None = None,
        filter: MemberFilterInput | None = None,
        order_by: MemberOrder = MemberOrder.JOINED_AT_DESC,  # type: ignore[valid-type]
    ) -> Connection[Member]:
        ctx = info.context
        tenant = ctx.principal.require_role(STAFF_ROLES, "listing members")
        domain_filter = filter.to_domain() if filter else MemberFilter()
        page = await ctx.repos.members.list(
            tenant, filter=domain_filter, order=order_by, first=connection_args(first), after=after
        )

        async def count() -> int:
            return await ctx.repos.members.count(tenant, filter=domain_filter)

        pre = await preload_member_pages(info, [m.id for m in page.items])
        return connection(page, lambda m: Member.from_domain(m, pre.get(m.id)), count)


# --- mutations -------------------------------------------------------------------------------


@strawberry.input
class RegisterMemberInput:
    display_name: str
    phone: str | None = None
    wechat_id: str | None = None
    city: str | None = None
    channel: Channel = dm.Channel.APP  # type: ignore[valid-type]
    level: int = 0
    invite_code: str | None = strawberry.field(default=None, description="Another member's invite code: creates the referral.")
    inviter_id: strawberry.ID | None = strawberry.field(default=None, description="The inviter's id: creates the referral.")
    campaign_id: strawberry.ID | None = strawberry.field(
        default=None, description="The fission campaign (裂变活动) of the invitation; needs inviteCode or inviterId.")
    marketing_consent: bool = False
    profiling_consent: bool = False


@strawberry.input
class UpdateMemberInput:
    display_name: str | None = None
    phone: str | None = None
    wechat_id: str | None = None
    city: str | None = None
    level: int | None = strawberry.field(default=None, description="Staff only.")
    marketing_consent: bool | None = None
    profiling_consent: bool | None = None


@strawberry.type
class MemberPayload:
    member: Member


@strawberry.type
class FollowPayload:
    follower: Member
    followee: Member
    changed: bool = strawberry.field(description="False when the follow already existed (or was already gone).")


@strawberry.type
class ReferralPayload:
    inviter: Member
    invitee: Member
    at: datetime


_Errors = ValidationError | NotFoundError | PermissionError | ConflictError | ReferralError
MemberResult = Annotated[MemberPayload | _Errors, strawberry.union("MemberResult")]
FollowResult = Annotated[FollowPayload | _Errors, strawberry.union("FollowResult")]
ReferralResult = Annotated[ReferralPayload | _Errors, strawberry.union("ReferralResult")]


def _input_dict(obj: object) -> dict[str, object]:
    return {k: v for k, v in vars(obj).items()}


async def member_or_raise(info: XInfo, member_id: str, field: str) -> Member:
    from domain.errors import NotFound

    found = await info.context.loaders.member.load(member_id)
    if found is None:
        raise NotFound(f"no member {member_id!r}", field=field)
    return Member.from_domain(found)


@strawberry.type
class MembersMutation:
    @strawberry.mutation(description="Register a member (brand backends: operator, integrator, admin). "
                         "An invite code or inviter id creates the REFERRED relationship.")
    async def register_member(self, info: XInfo, input: RegisterMemberInput) -> MemberResult:
        async def work() -> MemberPayload:
            tenant = info.context.principal.require_role(WRITER_ROLES, "registering members")
            cmd = parse(RegisterMember, _input_dict(input))
            member = await info.context.repos.members.register(tenant, cmd)
            return MemberPayload(member=Member.from_domain(member))

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Change a member's profile. Members may change their own (not their level).")
    async def update_member(self, info: XInfo, member_id: strawberry.ID, input: UpdateMemberInput) -> MemberResult:
        async def work() -> MemberPayload:
            principal = info.context.principal
            require_id(member_id, Kind.MEMBER, field="memberId")
            acting = principal.acting_member(member_id)
            cmd = parse(UpdateMember, _input_dict(input))
            if cmd.level is not None and not principal.has_any(WRITER_ROLES):
                raise PermissionDenied("only staff can change a member's level", field="input.level")
            member = await info.context.repos.members.update(principal.require_tenant(), acting, cmd)
            return MemberPayload(member=Member.from_domain(member))

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Follow a member (idempotent). Staff may act for a member with asMemberId.")
    async def follow_member(self, info: XInfo, member_id: strawberry.ID, as_member_id: strawberry.ID | None = None) -> FollowResult:
        return await _follow(info, member_id, as_member_id, on=True)

    @strawberry.mutation(description="Stop following a member (idempotent).")
    async def unfollow_member(self, info: XInfo, member_id: strawberry.ID, as_member_id: strawberry.ID | None = None) -> FollowResult:
        return await _follow(info, member_id, as_member_id, on=False)

    @strawberry.mutation(description="Attribute an existing member to an inviter (staff). At most one inviter per "
                         "member; self-referral and cycles are rejected.")
    async def set_inviter(self, info: XInfo, member_id: strawberry.ID, inviter_id: strawberry.ID) -> ReferralResult:
        async def work() -> ReferralPayload:
            tenant = info.context.principal.require_role(WRITER_ROLES, "attributing referrals")
            require_id(member_id, Kind.MEMBER, field="memberId")
            require_id(inviter_id, Kind.MEMBER, field="inviterId")
            at = await info.context.repos.members.set_inviter(tenant, member_id, inviter_id)
            invitee = await member_or_raise(info, member_id, "memberId")
            inviter = await member_or_raise(info, inviter_id, "inviterId")
            return ReferralPayload(inviter=inviter, invitee=invitee, at=at)

        return await guarded(work)  # type: ignore[return-value]


async def _follow(info: XInfo, member_id: str, as_member_id: str | None, *, on: bool) -> FollowResult:
    async def work() -> FollowPayload:
        principal = info.context.principal
        require_id(member_id, Kind.MEMBER, field="memberId")
        if as_member_id is not None:
            require_id(as_member_id, Kind.MEMBER, field="asMemberId")
        acting = principal.acting_member(as_member_id, field="asMemberId")
        tenant = principal.require_tenant()
        repo = info.context.repos.members
        changed = await (repo.follow if on else repo.unfollow)(tenant, acting, member_id)
        follower = await member_or_raise(info, acting, "asMemberId")
        followee = await member_or_raise(info, member_id, "memberId")
        return FollowPayload(follower=follower, followee=followee, changed=changed)

    return await guarded(work)  # type: ignore[return-value]
