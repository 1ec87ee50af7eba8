"""GraphQL subscriptions (graphql-transport-ws): a tenant's live events, resumable by cursor.

Every event carries a ``cursor``; pass the last one you received as ``after`` when you
reconnect and you get every later event exactly once, in order. Who may subscribe to
what is checked when the subscription starts — members only to communities they belong to
and to their own referrals; purchases and rankings are for staff — and again as events
flow: a subscription ends when its token expires or when its member leaves the community. Personal data in the
events is masked as everywhere else unless the token holds ``pii:read``.

A websocket context lives as long as the connection, so its DataLoaders are dropped
before each event (no stale cached objects across events).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import strawberry

from domain.auth import STAFF_ROLES, Role
from domain.errors import NotAuthenticated, NotFound, PermissionDenied, ValidationFailed
from domain.events import EventType, StreamedEvent
from domain.ids import Kind, require_id
from resolvers.common import XInfo

if TYPE_CHECKING:
    from resolvers.commerce import Purchase
    from resolvers.content import Comment, Content
    from resolvers.members import Member

__all__ = ["Subscription"]

T = TypeVar("T")

MemberRef = Annotated["Member", strawberry.lazy("resolvers.members")]
ContentRef = Annotated["Content", strawberry.lazy("resolvers.content")]
CommentRef = Annotated["Comment", strawberry.lazy("resolvers.content")]
PurchaseRef = Annotated["Purchase", strawberry.lazy("resolvers.commerce")]

LiveEventType = strawberry.enum(EventType, name="EventType", description="What happened.")

#: who may see purchases as they happen
PURCHASE_ROLES = frozenset({Role.OPERATOR, Role.INTEGRATOR, Role.ADMIN})


@strawberry.interface(description="A live event. `cursor` orders the tenant's events; pass the last one as `after` "
                      "to resume without gaps or duplicates.")
class LiveEvent:
    id: strawberry.ID = strawberry.field(description="The event id (stable across redeliveries).")
    type: LiveEventType  # type: ignore[valid-type]
    tenant_id: str
    cursor: str
    at: datetime
    _memo: strawberry.Private[dict[str, Any]]


def _base(e: StreamedEvent, tenant: str) -> dict[str, object]:
    return {"id": strawberry.ID(e.event_id), "type": e.type, "tenant_id": tenant, "cursor": e.cursor,
            "at": datetime.fromtimestamp(e.at_micros / 1e6, tz=UTC), "_memo": e.memo}


async def _shared(memo: dict[str, Any], key: str, load: Callable[[], Awaitable[T]]) -> T:
    """Load an event's object once per process, however many subscribers render it.

    Domain objects only: masking and permissions still apply per subscriber when the
    GraphQL types render them.
    """
    if key not in memo:
        memo[key] = asyncio.ensure_future(load())
    return await asyncio.shield(memo[key])  # type: ignore[no-any-return]


async def _member(info: XInfo, memo: dict[str, Any], member_id: str | None) -> Member | None:
    from resolvers.members import Member

    if member_id is None:
        return None
    found = await _shared(memo, "member:" + member_id, lambda: info.context.loaders.member.load(member_id))
    return None if found is None else Member.from_domain(found)


@strawberry.type(description="A member joined a community.")
class MemberJoinedEvent(LiveEvent):
    community_id: strawberry.ID
    _member_id: strawberry.Private[str]

    @strawberry.field
    async def member(self, info: XInfo) -> MemberRef | None:
        return await _member(info, self._memo, self._member_id)


@strawberry.type(description="Content was posted in a community.")
class ContentPostedEvent(LiveEvent):
    community_id: strawberry.ID
    _content_id: strawberry.Private[str]

    @strawberry.field
    async def content(self, info: XInfo) -> ContentRef | None:
        from resolvers.content import Content

        found = await _shared(self._memo, "content:" + self._content_id,
                              lambda: info.context.loaders.content.load(self._content_id))
        return None if found is None else Content.from_domain(found)


@strawberry.type(description="A comment was added to content.")
class CommentAddedEvent(LiveEvent):
    content_id: strawberry.ID
    _comment_id: strawberry.Private[str]

    @strawberry.field
    async def comment(self, info: XInfo) -> CommentRef | None:
        from resolvers.content import Comment

        found = await _shared(self._memo, "comment:" + self._comment_id,
                              lambda: info.context.loaders.comment.load(self._comment_id))
        return None if found is None else Comment.from_domain(found)


@strawberry.type(description="A paid purchase was recorded (operators, integrators and admins).")
class PurchaseRecordedEvent(LiveEvent):
    amount: int = strawberry.field(description="Total in minor units.")
    currency: str
    _purchase_id: strawberry.Private[str]

    @strawberry.field
    async def purchase(self, info: XInfo) -> PurchaseRef | None:
        from resolvers.commerce import Purchase

        found = await _shared(self._memo, "purchase:" + self._purchase_id,
                              lambda: info.context.loaders.purchase.load(self._purchase_id))
        return None if found is None else Purchase.from_domain(found)


@strawberry.type(description="An invitation became a member (裂变 conversion).")
class ReferralConvertedEvent(LiveEvent):
    campaign_id: strawberry.ID | None
    _inviter_id: strawberry.Private[str]
    _invitee_id: strawberry.Private[str]

    @strawberry.field
    async def inviter(self, info: XInfo) -> MemberRef | None:
        return await _member(info, self._memo, self._inviter_id)

    @strawberry.field
    async def invitee(self, info: XInfo) -> MemberRef | None:
        return await _member(info, self._memo, self._invitee_id)


@strawberry.type(description="A KOL/KOC ranking was recomputed (staff).")
class KolRankingChangedEvent(LiveEvent):
    scope_key: str = strawberry.field(description="`tenant`, or the community or topic id.")
    computed_at: datetime
    top_member_ids: list[strawberry.ID] = strawberry.field(description="The new top 10, best first.")


async def _events(info: XInfo, after: str | None, kind: EventType, keep: Callable[[StreamedEvent], bool],
                  community_id: str | None = None) -> AsyncGenerator[StreamedEvent, None]:
    """The tenant's events of *kind* that pass *keep*, for as long as the caller may see them.

    Permissions are re-checked as the stream moves, not only at the start: the subscription
    ends (before the next event) once the token has expired, and a member's subscription to a
    community's events ends at the event of that member leaving it.
    """
    if after is not None and not _is_cursor(after):
        raise ValidationFailed("after must be a cursor from a previous event, like 1700000000000-0", field="after")
    ctx = info.context
    principal = ctx.principal
    watch_leave = community_id is not None and not principal.is_staff and principal.member_id is not None
    async for entry in ctx.repos.events.entries(ctx.tenant, after=after):
        if principal.expires_at is not None and datetime.now(UTC) >= principal.expires_at:
            raise NotAuthenticated("the bearer token has expired: reconnect with a new token and "
                                   "resume with `after` set to the last cursor you received")
        if (watch_leave and entry.type is EventType.MEMBER_LEFT and entry.payload.get("memberId") == principal.member_id
                and entry.payload.get("communityId") == community_id):
            raise PermissionDenied(f"you left community {community_id!r}; its events stop here")
        if entry.type is kind and keep(entry):
            ctx.reset_loaders()
            yield entry


def _is_cursor(value: str) -> bool:
    ms, dash, seq = value.partition("-")
    return ms.isdigit() and (not dash or seq.isdigit()) and len(value) <= 40


async def _require_community_access(info: XInfo, community_id: str) -> None:
    principal = info.context.principal
    tenant = principal.require_tenant()
    if (await info.context.loaders.community.load(community_id)) is None:
        raise NotFound(f"no community {community_id!r}", field="communityId")
    if principal.is_staff:
        return
    if principal.member_id is None or await info.context.repos.communities.role_of(
            tenant, principal.member_id, community_id) is None:
        raise PermissionDenied("only members of a community (and staff) receive its events")


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Members joining a community.")
    async def member_joined(self, info: XInfo, community_id: strawberry.ID,
                            after: str | None = None) -> AsyncGenerator[MemberJoinedEvent, None]:
        require_id(community_id, Kind.COMMUNITY, field="communityId")
        await _require_community_access(info, community_id)
        async for e in _events(info, after, EventType.MEMBER_JOINED, lambda e: e.payload["communityId"] == community_id,
                               community_id):
            yield MemberJoinedEvent(**_base(e, info.context.tenant), community_id=community_id,  # type: ignore[arg-type]
                                    _member_id=e.payload["memberId"])

    @strawberry.subscription(description="Content posted in a community.")
    async def content_posted(self, info: XInfo, community_id: strawberry.ID,
                             after: str | None = None) -> AsyncGenerator[ContentPostedEvent, None]:
        require_id(community_id, Kind.COMMUNITY, field="communityId")
        await _require_community_access(info, community_id)
        async for e in _events(info, after, EventType.CONTENT_POSTED, lambda e: e.payload["communityId"] == community_id,
                               community_id):
            yield ContentPostedEvent(**_base(e, info.context.tenant), community_id=community_id,  # type: ignore[arg-type]
                                     _content_id=e.payload["contentId"])

    @strawberry.subscription(description="Comments added to one piece of content.")
    async def comment_added(self, info: XInfo, content_id: strawberry.ID,
                            after: str | None = None) -> AsyncGenerator[CommentAddedEvent, None]:
        require_id(content_id, Kind.CONTENT, field="contentId")
        info.context.principal.require_tenant()
        content = await info.context.loaders.content.load(content_id)
        if content is None:
            raise NotFound(f"no content {content_id!r}", field="contentId")
        await _require_community_access(info, content.community_id)
        async for e in _events(info, after, EventType.COMMENT_ADDED, lambda e: e.payload["contentId"] == content_id,
                               content.community_id):
            yield CommentAddedEvent(**_base(e, info.context.tenant), content_id=content_id,  # type: ignore[arg-type]
                                    _comment_id=e.payload["commentId"])

    @strawberry.subscription(description="Paid purchases as they are recorded (operators, integrators, admins).")
    async def purchase_recorded(self, info: XInfo, after: str | None = None) -> AsyncGenerator[PurchaseRecordedEvent, None]:
        info.context.principal.require_role(PURCHASE_ROLES, "receiving purchases")
        async for e in _events(info, after, EventType.PURCHASE_RECORDED, lambda e: True):
            yield PurchaseRecordedEvent(**_base(e, info.context.tenant), amount=int(e.payload["amount"]),  # type: ignore[arg-type]
                                        currency=str(e.payload["currency"]), _purchase_id=e.payload["purchaseId"])

    @strawberry.subscription(description="Invitations that became members, of one inviter or one campaign. Members "
                             "may follow their own invitations; staff any.")
    async def referral_converted(self, info: XInfo, inviter_id: strawberry.ID | None = None,
                                 campaign_id: strawberry.ID | None = None,
                                 after: str | None = None) -> AsyncGenerator[ReferralConvertedEvent, None]:
        principal = info.context.principal
        principal.require_tenant()
        if (inviter_id is None) == (campaign_id is None):
            raise ValidationFailed("give exactly one of inviterId and campaignId", field="inviterId")
        if inviter_id is not None:
            require_id(inviter_id, Kind.MEMBER, field="inviterId")
        if campaign_id is not None:
            require_id(campaign_id, Kind.CAMPAIGN, field="campaignId")
        if not principal.is_staff and (inviter_id is None or inviter_id != principal.member_id):
            raise PermissionDenied("members may follow their own invitations only")

        def keep(e: StreamedEvent) -> bool:
            if inviter_id is not None:
                return bool(e.payload.get("inviterId") == inviter_id)
            return bool(e.payload.get("campaignId") == campaign_id)

        async for e in _events(info, after, EventType.REFERRAL_CREATED, keep):
            campaign = e.payload.get("campaignId")
            yield ReferralConvertedEvent(**_base(e, info.context.tenant), campaign_id=campaign,  # type: ignore[arg-type]
                                         _inviter_id=e.payload["inviterId"], _invitee_id=e.payload["inviteeId"])

    @strawberry.subscription(description="Rankings recomputed; `scope` is `tenant`, a community id or a topic id "
                             "(staff).")
    async def kol_ranking_changed(self, info: XInfo, scope: str = "tenant",
                                  after: str | None = None) -> AsyncGenerator[KolRankingChangedEvent, None]:
        info.context.principal.require_role(STAFF_ROLES, "receiving ranking changes")
        async for e in _events(info, after, EventType.KOL_RANKING_CHANGED, lambda e: e.payload["scope"] == scope):
            yield KolRankingChangedEvent(
                **_base(e, info.context.tenant), scope_key=scope,  # type: ignore[arg-type]
                computed_at=datetime.fromisoformat(str(e.payload["computedAt"])),
                top_member_ids=[strawberry.ID(m) for m in e.payload.get("top", [])],
            )
