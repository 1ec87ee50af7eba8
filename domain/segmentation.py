"""User layering (用户分层): the vocabulary shared by segmentation and saved segments, and the rules.

The segmentation job writes these onto each Member node: ``rfmR``, ``rfmF``, ``rfmM``
(quintiles 1–5 within the tenant), ``lifecycle``, ``valueTier``, ``layer``, ``circleId`` and
``segmentedAt``. Saved segments filter on the same properties.

Everything here is pure and vectorised over members numbered ``0..n-1`` (numpy arrays in,
numpy arrays out); :func:`segment` applies every rule at once. The rules, as operators read
them (the GraphQL descriptions repeat them):

RFM (:func:`rfm_scores`)
    Quintile scores 1–5 *among the tenant's buyers* (members with at least one paid
    purchase): R from the time of the last paid purchase (more recent = higher), F from
    the number of paid purchases, M from paid GMV (refunds excluded). A member who never
    bought has no RFM (null), so non-buyers do not crowd the bottom quintile. A score is
    ``1 + floor(5 × p)`` (at most 5) where ``p`` is the member's mid-rank percentile: (buyers
    with a lower value + half of the buyers with the same value) / buyers. Ties therefore
    share one score, and when every buyer has the same value they all score 3.
Lifecycle (:func:`lifecycle_stages`), with the tenant's windows (:class:`SegmentationWindows`)
    *new*: joined at most ``newDays`` days ago. Otherwise by the days since the last
    activity (interaction, post, comment or purchase; the join time for a member who never
    did anything): *active* at most ``activeDays``, *silent* more than ``activeDays`` and at
    most ``churnDays``, *churned* more than ``churnDays``.
Value tier (:func:`value_tiers`)
    From historical paid GMV (amounts summed in minor units; a tenant sells in one
    currency): *none* without a paid purchase; among buyers, *high* when fewer than 20 % of
    the buyers have a strictly higher GMV (the top fifth, ties included), *medium* when fewer
    than 50 % do, else *low*.
Layer (:func:`member_layers`) — 核心 / 活跃 / 普通 / 沉默
    *silent*: lifecycle silent or churned. Of the rest, a member active within ``activeDays``
    is *core* when its value tier is high or it is an influencer (a KOC, or a KOL in the top
    1 % of the tenant's ranking); *active* when it made at least
    :data:`ACTIVE_LAYER_MIN_ACTIONS` actions in the last ``activeDays``; everyone else (new
    members who have not acted yet, occasional members) is *ordinary*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from domain.errors import ValidationFailed

__all__ = [
    "ACTIVE_LAYER_MIN_ACTIONS",
    "HIGH_VALUE_SHARE",
    "KOL_CORE_SHARE",
    "MAX_WINDOW_DAYS",
    "MEDIUM_VALUE_SHARE",
    "MIN_CIRCLE_JACCARD",
    "MIN_CIRCLE_SIZE",
    "Circle",
    "CirclePage",
    "LifecycleStage",
    "MemberFacts",
    "MemberLayer",
    "MemberSegmentation",
    "Segmentation",
    "SegmentationRepository",
    "SegmentationSummary",
    "SegmentationWindows",
    "ValueTier",
    "lifecycle_stages",
    "member_layers",
    "quintile_scores",
    "rfm_scores",
    "segment",
    "value_tiers",
]

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

US_PER_DAY = 86_400_000_000
#: actions (interactions, posts, comments, purchases) within ``activeDays`` that make the ACTIVE layer
ACTIVE_LAYER_MIN_ACTIONS = 3
#: share of buyers (by GMV, ties included) in the HIGH value tier, and in HIGH or MEDIUM
HIGH_VALUE_SHARE = 0.2
MEDIUM_VALUE_SHARE = 0.5
#: a KOL counts as an influencer for the CORE layer within this top share of the tenant ranking
KOL_CORE_SHARE = 0.01
#: the longest window a tenant may configure (ten years)
MAX_WINDOW_DAYS = 3650
#: a community smaller than this is no interest circle (its members get no circleId)
MIN_CIRCLE_SIZE = 3
#: a new cluster inherits a previous circle's id at this Jaccard similarity or more
MIN_CIRCLE_JACCARD = 0.2


class LifecycleStage(StrEnum):
    """Where a member is in its life with the brand (windows configurable per tenant)."""

    NEW = "new"
    ACTIVE = "active"
    SILENT = "silent"
    CHURNED = "churned"


class ValueTier(StrEnum):
    """Value tier from historical paid GMV within the tenant."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NONE = "none"


class MemberLayer(StrEnum):
    """The operators' core / active / ordinary / silent layering (核心 / 活跃 / 普通 / 沉默)."""

    CORE = "core"
    ACTIVE = "active"
    ORDINARY = "ordinary"
    SILENT = "silent"


#: array codes of the enums (position in these tuples)
STAGES: tuple[LifecycleStage, ...] = tuple(LifecycleStage)
TIERS: tuple[ValueTier, ...] = tuple(ValueTier)
LAYERS: tuple[MemberLayer, ...] = tuple(MemberLayer)
_NEW, _ACTIVE, _SILENT, _CHURNED = range(4)
_HIGH, _MEDIUM, _LOW, _NONE = range(4)
_L_CORE, _L_ACTIVE, _L_ORDINARY, _L_SILENT = range(4)


@dataclass(frozen=True, slots=True)
class SegmentationWindows:
    """A tenant's lifecycle windows in days: ``0 < new_days < active_days < churn_days``.

    Invalid windows raise :class:`ValidationFailed` naming the field (``input.newDays`` ...).
    """

    new_days: int = 7
    active_days: int = 30
    churn_days: int = 90

    def __post_init__(self) -> None:
        for name, value in (("newDays", self.new_days), ("activeDays", self.active_days),
                            ("churnDays", self.churn_days)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationFailed(f"{name} must be a whole number of days", field=f"input.{name}")
            if not 1 <= value <= MAX_WINDOW_DAYS:
                raise ValidationFailed(f"{name} must be between 1 and {MAX_WINDOW_DAYS} days, got {value}",
                                       field=f"input.{name}")
        if self.new_days >= self.active_days:
            raise ValidationFailed(f"newDays ({self.new_days}) must be less than activeDays ({self.active_days})",
                                   field="input.newDays")
        if self.active_days >= self.churn_days:
            raise ValidationFailed(f"activeDays ({self.active_days}) must be less than churnDays "
                                   f"({self.churn_days})", field="input.activeDays")

    def with_changes(self, *, new_days: int | None = None, active_days: int | None = None,
                     churn_days: int | None = None) -> SegmentationWindows:
        """These windows with the given ones replaced (validated together).

        When the order breaks, the error names a window the caller gave (``input.activeDays``
        when only that was changed), not one it left alone.
        """
        given = {"input.newDays": new_days, "input.activeDays": active_days, "input.churnDays": churn_days}
        try:
            return SegmentationWindows(
                new_days=self.new_days if new_days is None else new_days,
                active_days=self.active_days if active_days is None else active_days,
                churn_days=self.churn_days if churn_days is None else churn_days,
            )
        except ValidationFailed as exc:
            changed = [name for name, value in given.items() if value is not None]
            if exc.field in changed or not changed:
                raise
            raise ValidationFailed(exc.message, field=changed[0]) from None


@dataclass(frozen=True)
class MemberFacts:
    """What segmentation needs per member, as arrays indexed by member number.

    Times are microseconds since the epoch; ``-1`` means "never".

    Attributes
    ----------
    joined_at : int64, (n,)
    last_active : int64, (n,)
        Last interaction, post, comment or purchase (any status); -1 when none.
    recent_actions : int64, (n,)
        Actions within the tenant's ``activeDays`` before the run's *now*.
    paid_count : int64, (n,)
        Paid purchases.
    paid_gmv : int64, (n,)
        Paid GMV in minor units (refunds excluded).
    last_paid : int64, (n,)
        Time of the last paid purchase; -1 when none.
    influencer : bool, (n,)
        KOC, or KOL within the top :data:`KOL_CORE_SHARE` of the tenant ranking.
    """

    joined_at: I64
    last_active: I64
    recent_actions: I64
    paid_count: I64
    paid_gmv: I64
    last_paid: I64
    influencer: B

    def __post_init__(self) -> None:
        n = len(self.joined_at)
        for name in ("last_active", "recent_actions", "paid_count", "paid_gmv", "last_paid", "influencer"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, joined_at has {n}")
        if n and ((self.paid_count > 0) != (self.last_paid >= 0)).any():
            raise ValueError("last_paid must be set exactly for members with a paid purchase")

    @property
    def n(self) -> int:
        return len(self.joined_at)


def quintile_scores(values: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> I8:
    """Quintile score 1–5 of each value among the masked values; 0 outside the mask.

    ``1 + floor(5 × p)`` capped at 5, with ``p`` the mid-rank percentile (strictly lower
    values + half the equal ones, over the masked count): equal values share a score.
    """
    v = np.asarray(values)
    m = np.ones(len(v), bool) if mask is None else np.asarray(mask, bool)
    if v.ndim != 1 or m.shape != v.shape:
        raise ValueError(f"values and mask must be 1-D of one length, got {v.shape} and {m.shape}")
    out = np.zeros(len(v), np.int8)
    inside = v[m]
    total = len(inside)
    if total == 0:
        return out
    ordered = np.sort(inside)
    below = np.searchsorted(ordered, inside, side="left")
    equal = np.searchsorted(ordered, inside, side="right") - below
    # 5 × (below + equal / 2) / total, in integers: floor((10 × below + 5 × equal) / (2 × total))
    score = 1 + (10 * below.astype(np.int64) + 5 * equal) // (2 * total)
    out[m] = np.minimum(score, 5).astype(np.int8)
    return out


def rfm_scores(facts: MemberFacts) -> tuple[I8, I8, I8]:
    """(R, F, M) quintile scores among buyers; 0 (null) for members without a paid purchase."""
    buyers = facts.paid_count > 0
    return (quintile_scores(facts.last_paid, buyers), quintile_scores(facts.paid_count, buyers),
            quintile_scores(facts.paid_gmv, buyers))


def _days_since(now_us: int, times: I64) -> I64:
    """Whole microseconds since *times*, never negative (a clock ahead of the run counts as now)."""
    return np.maximum(now_us - times, 0)


def lifecycle_stages(facts: MemberFacts, now_us: int, windows: SegmentationWindows) -> I8:
    """Codes into :data:`STAGES` (new, active, silent, churned); see the module docstring."""
    age = _days_since(now_us, facts.joined_at)
    last = np.where(facts.last_active >= 0, np.maximum(facts.last_active, facts.joined_at), facts.joined_at)
    idle = _days_since(now_us, last)
    out = np.full(facts.n, _CHURNED, np.int8)
    out[idle <= windows.churn_days * US_PER_DAY] = _SILENT
    out[idle <= windows.active_days * US_PER_DAY] = _ACTIVE
    out[age <= windows.new_days * US_PER_DAY] = _NEW
    return out


def value_tiers(paid_gmv: npt.ArrayLike, paid_count: npt.ArrayLike) -> I8:
    """Codes into :data:`TIERS` (high, medium, low, none) from paid GMV among buyers."""
    gmv = np.asarray(paid_gmv, np.int64)
    buyers = np.asarray(paid_count) > 0
    out = np.full(len(gmv), _NONE, np.int8)
    total = int(buyers.sum())
    if total == 0:
        return out
    ordered = np.sort(gmv[buyers])
    higher = total - np.searchsorted(ordered, gmv[buyers], side="right")
    tier = np.where(higher < HIGH_VALUE_SHARE * total, _HIGH, np.where(higher < MEDIUM_VALUE_SHARE * total, _MEDIUM, _LOW))
    out[buyers] = tier.astype(np.int8)
    return out


def member_layers(facts: MemberFacts, stages: I8, tiers: I8, now_us: int, windows: SegmentationWindows) -> I8:
    """Codes into :data:`LAYERS` (core, active, ordinary, silent); see the module docstring."""
    recently = (facts.last_active >= 0) & (_days_since(now_us, facts.last_active) <= windows.active_days * US_PER_DAY)
    out = np.full(facts.n, _L_ORDINARY, np.int8)
    out[recently & (facts.recent_actions >= ACTIVE_LAYER_MIN_ACTIONS)] = _L_ACTIVE
    out[recently & ((tiers == _HIGH) | facts.influencer)] = _L_CORE
    out[(stages == _SILENT) | (stages == _CHURNED)] = _L_SILENT
    return out


@dataclass(frozen=True)
class Segmentation:
    """The result of :func:`segment`: codes per member (0 = null for the RFM scores)."""

    rfm_r: I8
    rfm_f: I8
    rfm_m: I8
    lifecycle: I8
    value_tier: I8
    layer: I8

    def lifecycle_of(self, i: int) -> LifecycleStage:
        return STAGES[int(self.lifecycle[i])]

    def tier_of(self, i: int) -> ValueTier:
        return TIERS[int(self.value_tier[i])]

    def layer_of(self, i: int) -> MemberLayer:
        return LAYERS[int(self.layer[i])]

    def rfm_of(self, i: int) -> tuple[int, int, int] | None:
        if self.rfm_r[i] == 0:
            return None
        return int(self.rfm_r[i]), int(self.rfm_f[i]), int(self.rfm_m[i])

    def counts(self) -> dict[str, dict[str, int]]:
        """Members per lifecycle stage, value tier and layer (every value present, zeros included)."""
        def tally(codes: I8, names: Sequence[StrEnum]) -> dict[str, int]:
            found = np.bincount(codes.astype(np.int64), minlength=len(names))
            return {name.value: int(found[i]) for i, name in enumerate(names)}

        return {"lifecycle": tally(self.lifecycle, STAGES), "valueTier": tally(self.value_tier, TIERS),
                "layer": tally(self.layer, LAYERS)}


def segment(facts: MemberFacts, now_us: int, windows: SegmentationWindows | None = None) -> Segmentation:
    """Every rule of the module docstring, for every member at once."""
    windows = windows or SegmentationWindows()
    r, f, m = rfm_scores(facts)
    stages = lifecycle_stages(facts, now_us, windows)
    tiers = value_tiers(facts.paid_gmv, facts.paid_count)
    return Segmentation(rfm_r=r, rfm_f=f, rfm_m=m, lifecycle=stages, value_tier=tiers,
                        layer=member_layers(facts, stages, tiers, now_us, windows))


# --- what the API reads ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Circle:
    """An interest circle (兴趣圈子) found by community detection; its id survives reruns."""

    id: str
    size: int
    top_tags: tuple[str, ...]
    computed_at: datetime

    @property
    def name(self) -> str:
        return " / ".join(self.top_tags) if self.top_tags else f"circle of {self.size}"


@dataclass(frozen=True, slots=True)
class CirclePage:
    items: list[Circle]
    has_next: bool
    total: int


@dataclass(frozen=True, slots=True)
class MemberSegmentation:
    """One member's segmentation as last computed (``rfm`` is None for a member who never bought)."""

    member_id: str
    rfm: tuple[int, int, int] | None
    lifecycle: LifecycleStage
    value_tier: ValueTier
    layer: MemberLayer
    circle_id: str | None
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class SegmentationSummary:
    """Members per lifecycle stage, value tier and layer at the last run."""

    computed_at: datetime
    members: int
    circles: int
    #: relayed changes of the tenant when the run started (the scheduler compares against it)
    graph_version: int = 0
    lifecycle: dict[str, int] = field(default_factory=dict)
    value_tier: dict[str, int] = field(default_factory=dict)
    layer: dict[str, int] = field(default_factory=dict)


class SegmentationRepository(Protocol):
    """Segmentation results and tenant windows (graph.segmentation)."""

    async def windows(self, tenant: str) -> SegmentationWindows: ...
    async def set_windows(self, tenant: str, windows: SegmentationWindows) -> SegmentationWindows: ...
    async def summary(self, tenant: str) -> SegmentationSummary | None: ...
    async def of_members(self, tenant: str, ids: Sequence[str]) -> list[MemberSegmentation | None]: ...
    async def circles(self, tenant: str, first: int, after: tuple[int, str] | None) -> CirclePage: ...
    async def circles_by_id(self, tenant: str, ids: Sequence[str]) -> list[Circle | None]: ...
