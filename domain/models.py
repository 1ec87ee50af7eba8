"""The social-commerce graph as plain, immutable Python objects.

These are what repositories return and what resolvers map to GraphQL types. Money is
always integer minor units (fen for CNY) plus an ISO 4217 currency code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from domain.referral_risk import RiskSignal

T = TypeVar("T")

__all__ = [
    "Channel",
    "Comment",
    "Community",
    "CommunityChannel",
    "CommunityKind",
    "Content",
    "ContentKind",
    "InteractionKind",
    "Interest",
    "Member",
    "Membership",
    "MembershipRole",
    "Money",
    "Page",
    "Product",
    "Purchase",
    "PurchaseLine",
    "PurchaseStatus",
    "Referral",
    "Tag",
    "TagKind",
]


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units (分 for CNY) and its currency."""

    amount: int
    currency: str = "CNY"


class Channel(StrEnum):
    """How a member was acquired (渠道)."""

    WECHAT = "wechat"
    WECOM = "wecom"
    MINI_PROGRAM = "mini_program"
    APP = "app"
    H5 = "h5"
    LIVESTREAM = "livestream"
    OFFLINE = "offline"
    REFERRAL = "referral"


class CommunityKind(StrEnum):
    INTEREST = "interest"
    REGION = "region"
    BRAND = "brand"
    PURPOSE = "purpose"


class CommunityChannel(StrEnum):
    WECHAT_GROUP = "wechat_group"
    WECOM = "wecom"
    APP_CIRCLE = "app_circle"
    MINI_PROGRAM = "mini_program"


class MembershipRole(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    KOL = "kol"
    MEMBER = "member"


class ContentKind(StrEnum):
    POST = "post"
    ARTICLE = "article"
    VIDEO = "video"
    LIVE = "live"
    QUESTION = "question"
    REVIEW = "review"


class TagKind(StrEnum):
    INTEREST = "interest"
    PROFILE = "profile"
    TOPIC = "topic"


class InteractionKind(StrEnum):
    """Member -> Content interactions; each is its own relationship type."""

    LIKED = "LIKED"
    COMMENTED = "COMMENTED"
    SHARED = "SHARED"
    FAVORITED = "FAVORITED"


class PurchaseStatus(StrEnum):
    PAID = "paid"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    tenant_id: str
    display_name: str
    joined_at: datetime
    channel: Channel
    level: int
    points: int
    city: str | None = None
    phone: str | None = None
    wechat_id: str | None = None
    invite_code: str | None = None
    marketing_consent: bool = False
    profiling_consent: bool = False


@dataclass(frozen=True, slots=True)
class Community:
    id: str
    tenant_id: str
    name: str
    kind: CommunityKind
    channel: CommunityChannel
    created_at: datetime
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Membership:
    """A member's place in a community (the MEMBER_OF relationship)."""

    member_id: str
    community_id: str
    role: MembershipRole
    joined_at: datetime
    #: the other end, when the repository read it in the same statement
    member: Member | None = None
    community: Community | None = None


@dataclass(frozen=True, slots=True)
class Content:
    id: str
    tenant_id: str
    kind: ContentKind
    title: str
    body: str
    created_at: datetime
    author_id: str
    community_id: str | None = None
    topic_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Comment:
    id: str
    tenant_id: str
    body: str
    created_at: datetime
    author_id: str
    content_id: str


@dataclass(frozen=True, slots=True)
class Tag:
    id: str
    tenant_id: str
    name: str
    kind: TagKind


@dataclass(frozen=True, slots=True)
class Interest:
    """A profile tag on a member (INTERESTED_IN) with its weight and where it came from."""

    tag: Tag
    weight: float
    source: str


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    tenant_id: str
    sku: str
    name: str
    category: str
    price: Money


@dataclass(frozen=True, slots=True)
class PurchaseLine:
    product_id: str
    quantity: int
    unit_price: Money


@dataclass(frozen=True, slots=True)
class Purchase:
    id: str
    tenant_id: str
    member_id: str
    total: Money
    at: datetime
    channel: Channel
    status: PurchaseStatus
    idempotency_key: str
    lines: tuple[PurchaseLine, ...] = field(default=())
    #: the member credited with the sale (e.g. the KOL whose link was used)
    attributed_to: str | None = None
    #: commission (分佣) recipients, level 1 first: the buyer's upline, at most 3 levels
    commission_to: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Referral:
    """The REFERRED relationship: *inviter* brought *invitee*."""

    inviter_id: str
    invitee_id: str
    at: datetime
    code: str | None = None
    campaign_id: str | None = None
    channel: str | None = None
    #: fraud signals (domain.referral_risk), computed when the referral is read
    risk_signals: tuple[RiskSignal, ...] = ()


class CampaignKind(StrEnum):
    FISSION = "fission"  # 裂变: invite friends
    GROUP_BUY = "group_buy"  # 拼团
    COUPON = "coupon"  # 优惠券
    CHECK_IN = "check_in"  # 签到
    LOTTERY = "lottery"  # 抽奖


@dataclass(frozen=True, slots=True)
class Campaign:
    """A growth campaign (活动) with the window its results are counted in."""

    id: str
    tenant_id: str
    name: str
    kind: CampaignKind
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    #: what the campaign cost (for its ROI), if set
    cost: Money | None = None


@dataclass(frozen=True, slots=True)
class CampaignVirality:
    """How a campaign spread (PRODUCT.md definitions).

    * ``invitations_per_participant`` = invitations sent / participants;
    * ``conversion_rate`` = invitations that became members / invitations sent;
    * ``k_factor`` = their product, i.e. new members per participant (when no invitations
      were reported it is conversions / participants);
    * ``viral_cycle`` = median time from a member joining the campaign (joining the brand,
      or the campaign's start for earlier members) to its first successful invite in the
      campaign window, over participants who made one.
    """

    campaign: Campaign
    participants: int
    invitations_sent: int
    conversions: int
    k_factor: float
    invitations_per_participant: float | None
    conversion_rate: float | None
    viral_cycle: timedelta | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated list: items with their cursors."""

    items: tuple[T, ...]
    cursors: tuple[str, ...]
    has_next: bool
