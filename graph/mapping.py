"""Graph records to domain objects (and back).

Property names in the graph are camelCase, as Neo4j users expect; domain objects are
snake_case dataclasses. Datetimes come back as aware UTC datetimes whatever the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.models import (
    Channel,
    Comment,
    Community,
    CommunityChannel,
    CommunityKind,
    Content,
    ContentKind,
    Member,
    Membership,
    MembershipRole,
    Money,
    Product,
    Purchase,
    PurchaseLine,
    PurchaseStatus,
    Tag,
    TagKind,
)
from graph.client import to_datetime

__all__ = [
    "comment_from",
    "community_from",
    "content_from",
    "member_from",
    "membership_from",
    "product_from",
    "purchase_from",
    "tag_from",
]

Props = Mapping[str, Any]


def member_from(p: Props) -> Member:
    return Member(
        id=p["id"],
        tenant_id=p["tenantId"],
        display_name=p["displayName"],
        joined_at=to_datetime(p["joinedAt"]),
        channel=Channel(p.get("channel") or "app"),
        level=int(p.get("level") or 0),
        points=int(p.get("points") or 0),
        city=p.get("city"),
        phone=p.get("phone"),
        wechat_id=p.get("wechatId"),
        invite_code=p.get("inviteCode"),
        marketing_consent=bool(p.get("marketingConsent")),
        profiling_consent=bool(p.get("profilingConsent")),
    )


def community_from(p: Props) -> Community:
    return Community(
        id=p["id"],
        tenant_id=p["tenantId"],
        name=p["name"],
        kind=CommunityKind(p["kind"]),
        channel=CommunityChannel(p["channel"]),
        created_at=to_datetime(p["createdAt"]),
        description=p.get("description"),
    )


def membership_from(
    member_id: str, community_id: str, rel: Props, *, member: Props | None = None, community: Props | None = None
) -> Membership:
    return Membership(
        member_id=member_id,
        community_id=community_id,
        role=MembershipRole(rel.get("role") or "member"),
        joined_at=to_datetime(rel["joinedAt"]),
        member=None if member is None else member_from(member),
        community=None if community is None else community_from(community),
    )


def content_from(p: Props, *, author_id: str, community_id: str | None) -> Content:
    return Content(
        id=p["id"],
        tenant_id=p["tenantId"],
        kind=ContentKind(p["kind"]),
        title=p.get("title") or "",
        body=p.get("body") or "",
        created_at=to_datetime(p["createdAt"]),
        author_id=author_id,
        community_id=community_id,
    )


def comment_from(p: Props, *, author_id: str, content_id: str) -> Comment:
    return Comment(
        id=p["id"],
        tenant_id=p["tenantId"],
        body=p["body"],
        created_at=to_datetime(p["createdAt"]),
        author_id=author_id,
        content_id=content_id,
    )


def tag_from(p: Props) -> Tag:
    return Tag(id=p["id"], tenant_id=p["tenantId"], name=p["name"], kind=TagKind(p["kind"]))


def product_from(p: Props) -> Product:
    return Product(
        id=p["id"],
        tenant_id=p["tenantId"],
        sku=p["sku"],
        name=p["name"],
        category=p["category"],
        price=Money(int(p["priceAmount"]), p["priceCurrency"]),
    )


def purchase_from(p: Props, *, member_id: str, lines: list[Props]) -> Purchase:
    currency = p["currency"]
    return Purchase(
        id=p["id"],
        tenant_id=p["tenantId"],
        member_id=member_id,
        total=Money(int(p["amount"]), currency),
        at=to_datetime(p["at"]),
        channel=Channel(p.get("channel") or "app"),
        status=PurchaseStatus(p.get("status") or "paid"),
        idempotency_key=p["idempotencyKey"],
        lines=tuple(
            PurchaseLine(product_id=ln["productId"], quantity=int(ln["qty"]), unit_price=Money(int(ln["unitPrice"]), currency))
            for ln in sorted(lines, key=lambda ln: str(ln["productId"]))
        ),
        attributed_to=p.get("attributedTo"),
        commission_to=tuple(p.get("commissionTo") or ()),
    )
