"""Ports: what the use cases and resolvers need from storage, as Protocols.

The ``graph`` package implements them against Neo4j/Bolt; resolvers only see these.
Batch methods take a list of parent ids and return one result per id, in order, so a
DataLoader can serve a whole GraphQL list in one round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from domain.commands import (
    AddComment,
    CreateCampaign,
    CreateCommunity,
    CreateContent,
    CreateProduct,
    RecordInvitesSent,
    RecordPurchase,
    RegisterMember,
    UpdateMember,
)
from domain.events import StreamedEvent
from domain.growth import RankedMember, RankingPage, Scope, TreePage
from domain.health import HealthReport, HealthScope, Window
from domain.influence import RankingKind
from domain.models import (
    Campaign,
    CampaignVirality,
    Channel,
    Comment,
    Community,
    CommunityChannel,
    CommunityKind,
    Content,
    InteractionKind,
    Interest,
    Member,
    Membership,
    MembershipRole,
    Page,
    Product,
    Purchase,
    Referral,
    Tag,
)
from domain.privacy import (
    AuditAction,
    AuditActor,
    AuditEntry,
    AuditFilter,
    ConsentChange,
    ConsentPurpose,
    ConsentSource,
    ErasureReport,
    MemberConsents,
    PurgeReport,
)
from domain.recommendations import Recommendation, RecommendationKind
from domain.referral_stats import ReferralStats
from domain.rewards import CampaignResults, CouponRepository, GroupBuyRepository, PointsRepository
from domain.segmentation import SegmentationRepository
from domain.segments import CreateSegment, Segment, SegmentFilter, SegmentPurpose, UpdateSegment
from domain.webhooks import Delivery, Webhook

__all__ = [
    "MemberOrder",
    "MemberFilter",
    "MemberCounts",
    "CommunityOrder",
    "CommunityFilter",
    "CommunityCounts",
    "ContentCounts",
    "FeedItem",
    "PostedContent",
    "MemberRepository",
    "CommunityRepository",
    "ContentRepository",
    "CommerceRepository",
    "PrivacyRepository",
    "Repositories",
]


class MemberOrder(StrEnum):
    JOINED_AT_DESC = "JOINED_AT_DESC"
    JOINED_AT_ASC = "JOINED_AT_ASC"
    LEVEL_DESC = "LEVEL_DESC"
    DISPLAY_NAME_ASC = "DISPLAY_NAME_ASC"


@dataclass(frozen=True, slots=True)
class MemberFilter:
    community_id: str | None = None
    tag_id: str | None = None
    channel: Channel | None = None
    min_level: int | None = None
    max_level: int | None = None
    joined_from: datetime | None = None
    joined_to: datetime | None = None
    #: from the last tenant-wide KOL computation (written back to the members)
    is_koc: bool | None = None
    min_kol_score: float | None = None


@dataclass(frozen=True, slots=True)
class MemberCounts:
    followers: int = 0
    following: int = 0
    communities: int = 0
    posts: int = 0
    purchases: int = 0
    invitees: int = 0


class CommunityOrder(StrEnum):
    CREATED_AT_DESC = "CREATED_AT_DESC"
    NAME_ASC = "NAME_ASC"


@dataclass(frozen=True, slots=True)
class CommunityFilter:
    kind: CommunityKind | None = None
    channel: CommunityChannel | None = None
    name_contains: str | None = None


@dataclass(frozen=True, slots=True)
class CommunityCounts:
    members: int = 0
    posts: int = 0


@dataclass(frozen=True, slots=True)
class ContentCounts:
    likes: int = 0
    comments: int = 0
    shares: int = 0
    favorites: int = 0


@dataclass(frozen=True, slots=True)
class PostedContent:
    """New content with its author and community as the write found them (no read after it)."""

    content: Content
    author: Member
    community: Community


@dataclass(frozen=True, slots=True)
class FeedItem:
    """A feed entry with what a feed's readers nest most: the author and the counts (one round trip)."""

    content: Content
    author: Member | None
    counts: ContentCounts


class MemberRepository(Protocol):
    async def get_many(self, tenant: str, ids: Sequence[str]) -> list[Member | None]: ...
    async def first_pages(
        self, tenant: str, ids: Sequence[str], *, communities: int | None, followers: int | None
    ) -> list[tuple[Page[Membership], Page[Member]]]: ...
    async def list(
        self, tenant: str, *, filter: MemberFilter, order: MemberOrder, first: int, after: str | None
    ) -> Page[Member]: ...
    async def count(self, tenant: str, *, filter: MemberFilter) -> int: ...
    async def register(self, tenant: str, cmd: RegisterMember) -> Member: ...
    async def update(self, tenant: str, member_id: str, cmd: UpdateMember) -> Member: ...
    async def follow(self, tenant: str, follower: str, followee: str) -> bool: ...
    async def unfollow(self, tenant: str, follower: str, followee: str) -> bool: ...
    async def set_inviter(self, tenant: str, invitee: str, inviter: str) -> datetime: ...
    async def followers(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Member]]: ...
    async def following(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Member]]: ...
    async def invitees(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Member]]: ...
    async def memberships(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Membership]]: ...
    async def inviters(self, tenant: str, ids: Sequence[str]) -> list[Member | None]: ...
    async def interests(self, tenant: str, ids: Sequence[str]) -> list[list[Interest]]: ...
    async def counts(self, tenant: str, ids: Sequence[str]) -> list[MemberCounts]: ...


class CommunityRepository(Protocol):
    async def get_many(self, tenant: str, ids: Sequence[str]) -> list[Community | None]: ...
    async def list(
        self, tenant: str, *, filter: CommunityFilter, order: CommunityOrder, first: int, after: str | None
    ) -> Page[Community]: ...
    async def count(self, tenant: str, *, filter: CommunityFilter) -> int: ...
    async def create(self, tenant: str, cmd: CreateCommunity, *, owner_id: str | None) -> Community: ...
    async def join(self, tenant: str, member_id: str, community_id: str) -> tuple[Membership, bool]: ...
    async def leave(self, tenant: str, member_id: str, community_id: str) -> bool: ...
    async def set_role(self, tenant: str, member_id: str, community_id: str, role: MembershipRole) -> Membership: ...
    async def role_of(self, tenant: str, member_id: str, community_id: str) -> MembershipRole | None: ...
    async def members(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Membership]]: ...
    async def feed(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Content]]: ...
    async def feed_items(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[FeedItem]]: ...
    async def counts(self, tenant: str, ids: Sequence[str]) -> list[CommunityCounts]: ...


class ContentRepository(Protocol):
    async def get_many(self, tenant: str, ids: Sequence[str]) -> list[Content | None]: ...
    async def comments_by_id(self, tenant: str, ids: Sequence[str]) -> list[Comment | None]: ...
    async def tags_by_id(self, tenant: str, ids: Sequence[str]) -> list[Tag | None]: ...
    async def create(self, tenant: str, author_id: str, cmd: CreateContent, *, must_be_member: bool) -> PostedContent: ...
    async def add_comment(self, tenant: str, author_id: str, cmd: AddComment) -> Comment: ...
    async def interact(self, tenant: str, member_id: str, content_id: str, kind: InteractionKind, *, on: bool) -> bool: ...
    async def comments(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Comment]]: ...
    async def posts(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Content]]: ...
    async def topics(self, tenant: str, ids: Sequence[str]) -> list[list[Tag]]: ...
    async def counts(self, tenant: str, ids: Sequence[str]) -> list[ContentCounts]: ...
    async def liked_by(self, tenant: str, member_id: str, ids: Sequence[str]) -> list[bool]: ...


class CommerceRepository(Protocol):
    async def products(self, tenant: str, ids: Sequence[str]) -> list[Product | None]: ...
    async def create_product(self, tenant: str, cmd: CreateProduct) -> Product: ...
    async def record_purchase(self, tenant: str, cmd: RecordPurchase) -> tuple[Purchase, bool]: ...
    async def purchases(self, tenant: str, ids: Sequence[str]) -> list[Purchase | None]: ...
    async def purchases_of(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Purchase]]: ...


class GrowthRepository(Protocol):
    """KOL rankings and referral chains (served from Redis, falling back to the graph)."""

    async def kol_page(self, tenant: str, scope: Scope, kind: RankingKind, offset: int, limit: int) -> RankingPage | None: ...
    async def kol_member(self, tenant: str, scope: Scope, member_id: str) -> tuple[RankedMember | None, datetime] | None: ...
    async def upline(self, tenant: str, member_id: str) -> list[Member] | None: ...
    async def referral_tree(self, tenant: str, member_id: str, *, depth: int, first: int,
                            after: tuple[int, str] | None) -> TreePage | None: ...
    async def referral_stats(self, tenant: str, member_id: str) -> ReferralStats | None: ...
    async def referrals_of(self, tenant: str, ids: Sequence[str]) -> list[Referral | None]: ...


class HealthRepository(Protocol):
    """Community health reports (domain.health), cached per (tenant, scope, window)."""

    def window(self, start: datetime | None, end: datetime | None, *, field: str = "window") -> Window:
        """The window asked for, defaults filled in (the last 30 days); VALIDATION_FAILED when bad."""
        ...
    async def health(self, tenant: str, scope: HealthScope, window: Window) -> HealthReport: ...


class CampaignRepository(Protocol):
    async def create(self, tenant: str, cmd: CreateCampaign) -> Campaign: ...
    async def get_many(self, tenant: str, ids: Sequence[str]) -> list[Campaign | None]: ...
    async def record_invites_sent(self, tenant: str, cmd: RecordInvitesSent) -> int: ...
    async def virality(self, tenant: str, campaign_id: str) -> CampaignVirality | None: ...
    async def results(self, tenant: str, campaign_id: str) -> CampaignResults | None: ...


class RecommendationRepository(Protocol):
    """Personal recommendations (cached per member, computed from the graph on a miss)."""

    async def members(self, tenant: str, member_id: str, first: int) -> list[Recommendation]: ...
    async def communities(self, tenant: str, member_id: str, first: int) -> list[Recommendation]: ...
    async def content(self, tenant: str, member_id: str, first: int) -> list[Recommendation]: ...
    async def products(self, tenant: str, member_id: str, first: int) -> list[Recommendation]: ...
    async def popular(self, tenant: str, kind: RecommendationKind, member_id: str, first: int) -> list[Recommendation]:
        """The same list for everyone (without *member_id*): for members who refused profiling."""
        ...


class PrivacyRepository(Protocol):
    """Consent records, the audit log, export and erasure (domain.privacy)."""

    async def consents(self, tenant: str, ids: Sequence[str]) -> list[MemberConsents | None]: ...
    async def with_consent(self, tenant: str, ids: Sequence[str], purpose: ConsentPurpose) -> list[str]:
        """Those of *ids* whose consent to *purpose* is in force, in the order given; one round trip."""
        ...
    async def record_consent(self, tenant: str, member_id: str, purpose: ConsentPurpose, *, granted: bool,
                             source: ConsentSource, actor: AuditActor) -> ConsentChange: ...
    async def record_audit(self, tenant: str, action: AuditAction, actor: AuditActor, target_ids: Sequence[str],
                           detail: Mapping[str, object]) -> None:
        """Write one audit entry now (durable when it returns)."""
        ...
    async def audit_log(self, tenant: str, filter: AuditFilter, first: int, after: str | None) -> Page[AuditEntry]: ...
    async def audit_count(self, tenant: str, filter: AuditFilter) -> int: ...
    async def export(self, tenant: str, member_id: str, actor: AuditActor) -> dict[str, object]: ...
    async def erase(self, tenant: str, member_id: str, actor: AuditActor) -> ErasureReport: ...
    async def purge(self, tenant: str, member_id: str) -> PurgeReport: ...


class SegmentRepository(Protocol):
    """Saved segments (domain.segments): storage, and members evaluated from a filter."""

    async def check(self, tenant: str, filter: SegmentFilter, *, field: str) -> None:
        """NOT_FOUND naming the first tag, community or product id of the filter not in the tenant."""
        ...
    async def create(self, tenant: str, cmd: CreateSegment, *, created_by: str | None) -> Segment: ...
    async def get_many(self, tenant: str, ids: Sequence[str]) -> list[Segment | None]: ...
    async def update(self, tenant: str, segment_id: str, cmd: UpdateSegment) -> Segment: ...
    async def archive(self, tenant: str, segment_id: str) -> tuple[Segment, bool]: ...
    async def list(self, tenant: str, *, first: int, after: str | None, include_archived: bool) -> Page[Segment]: ...
    async def count(self, tenant: str, *, include_archived: bool) -> int: ...
    async def members(self, tenant: str, filter: SegmentFilter, purpose: SegmentPurpose, *, first: int,
                      after: str | None) -> Page[Member]: ...
    async def size(self, tenant: str, filter: SegmentFilter, purpose: SegmentPurpose) -> int: ...


class WebhookRepository(Protocol):
    async def create(self, tenant: str, url: str, event_types: Iterable[str]) -> Webhook: ...
    async def list(self, tenant: str) -> list[Webhook]: ...
    async def deactivate(self, tenant: str, webhook_id: str) -> bool: ...
    async def deliveries(self, tenant: str, webhook_id: str, limit: int) -> list[Delivery] | None: ...


class EventStream(Protocol):
    """A tenant's events in order, live, optionally resumed after a cursor."""

    def entries(self, tenant: str, *, after: str | None = None) -> AsyncIterator[StreamedEvent]: ...


@dataclass(frozen=True, slots=True)
class Repositories:
    members: MemberRepository
    communities: CommunityRepository
    content: ContentRepository
    commerce: CommerceRepository
    growth: GrowthRepository
    recommendations: RecommendationRepository
    campaigns: CampaignRepository
    events: EventStream
    webhooks: WebhookRepository
    privacy: PrivacyRepository
    group_buys: GroupBuyRepository
    coupons: CouponRepository
    points: PointsRepository
    health: HealthRepository
    segments: SegmentRepository
    segmentation: SegmentationRepository
