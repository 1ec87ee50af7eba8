"""Domain enums exposed in the schema (values are the graph's; names are GraphQL's)."""

from __future__ import annotations

import strawberry

from domain import models as dm
from domain import ports
from domain import segmentation as seg

__all__ = [
    "Channel",
    "CommunityKind",
    "CommunityChannel",
    "MembershipRole",
    "ContentKind",
    "TagKind",
    "PurchaseStatus",
    "MemberOrder",
    "CommunityOrder",
    "LifecycleStage",
    "ValueTier",
    "MemberLayer",
]

Channel = strawberry.enum(dm.Channel, description="How a member was acquired (渠道).")
CommunityKind = strawberry.enum(dm.CommunityKind)
CommunityChannel = strawberry.enum(dm.CommunityChannel, description="Where the community lives.")
MembershipRole = strawberry.enum(dm.MembershipRole, description="A member's role in a community.")
ContentKind = strawberry.enum(dm.ContentKind)
TagKind = strawberry.enum(dm.TagKind)
PurchaseStatus = strawberry.enum(dm.PurchaseStatus, description="paid purchases count towards GMV; refunded ones do not.")
MemberOrder = strawberry.enum(ports.MemberOrder, description="Sort orders of `members`; ties broken by id.")
CommunityOrder = strawberry.enum(ports.CommunityOrder)
LifecycleStage = strawberry.enum(seg.LifecycleStage, description="Lifecycle stage: new, active, silent or churned (windows per tenant).")
ValueTier = strawberry.enum(seg.ValueTier, description="Value tier from historical paid GMV within the tenant.")
MemberLayer = strawberry.enum(seg.MemberLayer, description="Core / active / ordinary / silent layering (核心/活跃/普通/沉默).")
