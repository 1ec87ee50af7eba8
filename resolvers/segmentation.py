"""Segmentation (用户分层) over GraphQL: a member's layer, the tenant's interest circles and summary.

Computed off the request path (``quanzi recompute segments`` or the server's scheduler,
:mod:`graph.segmentation`); every answer says when it was computed. The rules are in
:mod:`domain.segmentation` and repeated in the descriptions below.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from domain import segmentation as ds
from domain.auth import MANAGER_ROLES, STAFF_ROLES
from domain.errors import ValidationFailed
from domain.pagination import decode_cursor, encode_cursor
from resolvers.common import (
    PageInfo,
    PermissionError,
    ValidationError,
    XInfo,
    connection_args,
    guarded,
)
from resolvers.enums import LifecycleStage, MemberLayer, ValueTier

__all__ = [
    "InterestCircle", "MemberSegmentation", "SegmentationMutation", "SegmentationQuery", "segmentation_of",
]

RFM_RULE = (
    "RFM: quintile scores 1–5 among the tenant's buyers (members with at least one paid purchase): recency from "
    "the last paid purchase (more recent = higher), frequency from the number of paid purchases, monetary from paid "
    "GMV (refunds excluded). Score = 1 + floor(5 × p), at most 5, with p = (buyers with a lower value + half of those "
    "with the same value) / buyers, so ties share a score. Null for a member who never bought."
)
LIFECYCLE_RULE = (
    "Lifecycle, with the tenant's windows (segmentationConfig): NEW when joined at most newDays ago; otherwise by "
    "days since the last activity (interaction, post, comment or purchase; the join time if none): ACTIVE at most "
    "activeDays, SILENT at most churnDays, CHURNED beyond."
)
TIER_RULE = (
    "Value tier from historical paid GMV among buyers: HIGH when fewer than 20% of buyers have a higher GMV, MEDIUM "
    "when fewer than 50% do, else LOW; NONE without a paid purchase."
)
LAYER_RULE = (
    "Layer (核心/活跃/普通/沉默): SILENT when the lifecycle is SILENT or CHURNED; otherwise CORE when active within "
    "activeDays and of HIGH value or an influencer (a KOC, or a KOL in the top 1% of the tenant ranking); ACTIVE when "
    f"active within activeDays with at least {ds.ACTIVE_LAYER_MIN_ACTIONS} actions in that window; else ORDINARY."
)
CIRCLE_RULE = (
    "Interest circles (兴趣圈子): Louvain communities of the follow and interaction graph (follows weigh 1, likes 1, "
    f"favorites 2, comments 3, shares 4) with at least {ds.MIN_CIRCLE_SIZE} members. A circle keeps its id between "
    "runs: each new cluster inherits the id of the previous circle it overlaps most (Jaccard similarity at least "
    f"{ds.MIN_CIRCLE_JACCARD}, best pairs first); only genuinely new clusters get new ids."
)


@strawberry.type(description=RFM_RULE)
class Rfm:
    recency: int = strawberry.field(description="1–5: quintile of the last paid purchase time (5 = most recent).")
    frequency: int = strawberry.field(description="1–5: quintile of the number of paid purchases.")
    monetary: int = strawberry.field(description="1–5: quintile of paid GMV.")


@strawberry.type(description=CIRCLE_RULE)
class InterestCircle:
    id: strawberry.ID = strawberry.field(description="Stable between runs (cir_…).")
    name: str = strawberry.field(description="The circle's top tags joined by ' / ' (or 'circle of N' without tags).")
    size: int = strawberry.field(description="Members in the circle at the last run.")
    top_tags: list[str] = strawberry.field(description="Up to 3 tag names with the highest summed INTERESTED_IN "
                                           "weight among the circle's members.")
    computed_at: datetime = strawberry.field(description="When the circle was last computed.")

    @classmethod
    def from_domain(cls, c: ds.Circle) -> InterestCircle:
        return cls(id=strawberry.ID(c.id), name=c.name, size=c.size, top_tags=list(c.top_tags),
                   computed_at=c.computed_at)


@strawberry.type(description="A member's segmentation (用户分层) as last computed. " + LAYER_RULE)
class MemberSegmentation:
    rfm: Rfm | None = strawberry.field(description=RFM_RULE)
    lifecycle: LifecycleStage = strawberry.field(description=LIFECYCLE_RULE)  # type: ignore[valid-type]
    value_tier: ValueTier = strawberry.field(description=TIER_RULE)  # type: ignore[valid-type]
    layer: MemberLayer = strawberry.field(description=LAYER_RULE)  # type: ignore[valid-type]
    computed_at: datetime = strawberry.field(description="When this segmentation was computed.")
    _circle_id: strawberry.Private[str | None]

    @strawberry.field(description="The member's interest circle; null when it is in none (too few ties).")
    async def circle(self, info: XInfo) -> InterestCircle | None:
        if self._circle_id is None:
            return None
        found = await info.context.loaders.circle.load(self._circle_id)
        return None if found is None else InterestCircle.from_domain(found)

    @classmethod
    def from_domain(cls, s: ds.MemberSegmentation) -> MemberSegmentation:
        rfm = None if s.rfm is None else Rfm(recency=s.rfm[0], frequency=s.rfm[1], monetary=s.rfm[2])
        return cls(rfm=rfm, lifecycle=s.lifecycle, value_tier=s.value_tier, layer=s.layer,
                   computed_at=s.computed_at, _circle_id=s.circle_id)


async def segmentation_of(info: XInfo, member_id: str) -> MemberSegmentation | None:
    """``Member.segmentation``: staff and the member itself; null without PROFILING consent."""
    principal = info.context.principal
    principal.require_tenant()
    if not (principal.is_staff or principal.member_id == member_id):
        from domain.errors import PermissionDenied

        raise PermissionDenied("segmentation of other members is for staff (operator, analyst, integrator, admin)")
    if not await info.context.loaders.profiling_allowed.load(member_id):
        return None  # PIPL Art. 24: no profile of a member who refused profiling (or was erased)
    found = await info.context.loaders.segmentation.load(member_id)
    return None if found is None else MemberSegmentation.from_domain(found)


@strawberry.type
class InterestCircleEdge:
    cursor: str
    node: InterestCircle


@strawberry.type(description="Current interest circles, largest first (ties by id).")
class InterestCircleConnection:
    edges: list[InterestCircleEdge]
    nodes: list[InterestCircle]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Current circles in the tenant.")


@strawberry.type(description="Members per lifecycle stage. " + LIFECYCLE_RULE)
class LifecycleCounts:
    new: int
    active: int
    silent: int
    churned: int


@strawberry.type(description="Members per value tier. " + TIER_RULE)
class ValueTierCounts:
    high: int
    medium: int
    low: int
    none: int


@strawberry.type(description="Members per layer. " + LAYER_RULE)
class LayerCounts:
    core: int
    active: int
    ordinary: int
    silent: int


@strawberry.type(description="The tenant's segmentation at its last run. Members who withdrew PROFILING consent "
                 "(or were erased) are not segmented and not counted.")
class SegmentationSummary:
    members: int = strawberry.field(description="Members segmented.")
    circles: int = strawberry.field(description="Interest circles found.")
    lifecycle: LifecycleCounts
    value_tier: ValueTierCounts
    layer: LayerCounts
    computed_at: datetime

    @classmethod
    def from_domain(cls, s: ds.SegmentationSummary) -> SegmentationSummary:
        def get(table: dict[str, int], key: str) -> int:
            return int(table.get(key, 0))

        return cls(
            members=s.members, circles=s.circles, computed_at=s.computed_at,
            lifecycle=LifecycleCounts(**{k.value: get(s.lifecycle, k.value) for k in ds.LifecycleStage}),
            value_tier=ValueTierCounts(**{k.value: get(s.value_tier, k.value) for k in ds.ValueTier}),
            layer=LayerCounts(**{k.value: get(s.layer, k.value) for k in ds.MemberLayer}),
        )


@strawberry.type(description="The tenant's lifecycle windows in days (0 < newDays < activeDays < churnDays). "
                 + LIFECYCLE_RULE)
class SegmentationConfig:
    new_days: int = strawberry.field(description="A member joined at most this many days ago is NEW (default 7).")
    active_days: int = strawberry.field(description="Active at most this many days ago: ACTIVE (default 30).")
    churn_days: int = strawberry.field(description="Inactive for more than this many days: CHURNED; between "
                                       "activeDays and churnDays: SILENT (default 90).")

    @classmethod
    def from_domain(cls, w: ds.SegmentationWindows) -> SegmentationConfig:
        return cls(new_days=w.new_days, active_days=w.active_days, churn_days=w.churn_days)


@strawberry.input(description="Windows to change (days); omitted ones keep their value. The result must satisfy "
                  f"0 < newDays < activeDays < churnDays <= {ds.MAX_WINDOW_DAYS}.")
class SegmentationConfigInput:
    new_days: int | None = None
    active_days: int | None = None
    churn_days: int | None = None


@strawberry.type
class SegmentationConfigPayload:
    config: SegmentationConfig


SegmentationConfigResult = Annotated[SegmentationConfigPayload | ValidationError | PermissionError,
                                     strawberry.union("SegmentationConfigResult")]


@strawberry.type
class SegmentationQuery:
    @strawberry.field(description="The tenant's interest circles, largest first (staff only). " + CIRCLE_RULE)
    async def interest_circles(self, info: XInfo, first: int | None = 20,
                               after: str | None = None) -> InterestCircleConnection:
        tenant = info.context.principal.require_role(STAFF_ROLES, "reading interest circles")
        limit = connection_args(first)
        key = None
        if after is not None:
            raw = decode_cursor(after, arity=2, field="after")
            if raw is None or not isinstance(raw[0], int) or not isinstance(raw[1], str):
                raise ValidationFailed("after is not a cursor returned by this connection", field="after")
            key = (raw[0], raw[1])
        page = await info.context.repos.segmentation.circles(tenant, limit, key)
        nodes = [InterestCircle.from_domain(c) for c in page.items]
        cursors = [encode_cursor([c.size, c.id]) for c in page.items]
        return InterestCircleConnection(
            edges=[InterestCircleEdge(cursor=c, node=n) for c, n in zip(cursors, nodes)], nodes=nodes,
            page_info=PageInfo(has_next_page=page.has_next, has_previous_page=after is not None,
                               start_cursor=cursors[0] if cursors else None,
                               end_cursor=cursors[-1] if cursors else None),
            total_count=page.total,
        )

    @strawberry.field(description="Members per lifecycle stage, value tier and layer at the last segmentation run "
                      "(staff only); null before the first run.")
    async def segmentation_summary(self, info: XInfo) -> SegmentationSummary | None:
        tenant = info.context.principal.require_role(STAFF_ROLES, "reading the segmentation summary")
        summary = await info.context.repos.segmentation.summary(tenant)
        return None if summary is None else SegmentationSummary.from_domain(summary)

    @strawberry.field(description="The tenant's lifecycle windows (staff only); the defaults until changed.")
    async def segmentation_config(self, info: XInfo) -> SegmentationConfig:
        tenant = info.context.principal.require_role(STAFF_ROLES, "reading the segmentation config")
        return SegmentationConfig.from_domain(await info.context.repos.segmentation.windows(tenant))

    # (Member.segmentation lives on Member, resolvers.members, and delegates to segmentation_of.)


@strawberry.type
class SegmentationMutation:
    @strawberry.mutation(description="Change the tenant's lifecycle windows (operator or admin). They apply from the "
                         "next segmentation run. Invalid windows change nothing and return a VALIDATION_FAILED "
                         "error naming the field.")
    async def update_segmentation_config(self, info: XInfo, input: SegmentationConfigInput) -> SegmentationConfigResult:
        async def work() -> SegmentationConfigPayload:
            tenant = info.context.principal.require_role(MANAGER_ROLES, "changing the segmentation windows")
            repo = info.context.repos.segmentation
            windows = (await repo.windows(tenant)).with_changes(
                new_days=input.new_days, active_days=input.active_days, churn_days=input.churn_days)
            return SegmentationConfigPayload(config=SegmentationConfig.from_domain(await repo.set_windows(tenant, windows)))

        return await guarded(work)  # type: ignore[return-value]
