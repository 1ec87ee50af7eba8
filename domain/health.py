"""Community health and funnel metrics (社群健康度): pure functions over compact arrays.

Everything here is pure: the graph adapter (:mod:`graph.health`) pulls a scope's members,
their activity and their purchases into a :class:`HealthInputs` (times are integer
microseconds since the epoch, members are dense numbers ``0..n-1``), and
:func:`compute_health` turns it into a :class:`HealthMetrics`. Each metric is also a
small function of its own, with a known-answer test in ``tests/test_health.py``.

Definitions (PRODUCT.md "Metric definitions", made precise here; the GraphQL schema
repeats them). The window is the half-open interval ``[start, end)``.

* **Member count**: members of the scope who joined before the window end. A member's
  activity and purchases count only while it is counted here.
* **New members**: members who joined inside the window.
* **Active member** in a period: at least one interaction (like, comment, share,
  favorite), post or purchase (paid or refunded) in it.
* **DAU**: the mean, over the last 30 days of the window (fewer when the window is
  shorter; days are 24-hour slots counted back from the window end), of the members
  active on each day. **WAU** / **MAU**: members active in the last 7 / 30 days of the
  window (the whole window when it is shorter). **Stickiness**: DAU / MAU.
* **Posts / interactions per active member**: posts / interactions made in the window
  divided by the members active in the window.
* **Retention (week N)**: members who joined in the window are grouped by join week
  (7-day slots from the window start); week N of a member is days ``[7N, 7N + 7)`` after
  its own join, and the week-N retention of a cohort is the share of its members active
  in their week N. It is null until week N has ended, before the window end, for every
  member of the cohort.
* **AARRR funnel**, over the members acquired (joined) in the window: *activated*: active
  within ``activation_days`` (7) of joining; *retained*: active again later than that,
  before the window end; *revenue*: at least one paid purchase after joining, in the
  window; *referral*: invited at least one member (REFERRED) in the window. Each stage is
  a subset of the acquired members (not of the previous stage), with its share of them.
* **Repurchase rate**: share of members with a paid purchase in the window who have two
  or more.
* **GMV**: sum of the paid purchase amounts in the window (refunds excluded), per
  currency. **AOV**: GMV / paid purchases, per currency (null without paid purchases).
* **Historical LTV**: a member's paid GMV from joining to the window end; the scope's is
  the mean over its member count, per currency.
* **Top-20% interaction share**: the share of the window's interactions made by the 20%
  of members (rounded up) who made the most (the 80/20 concentration).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from domain.errors import ValidationFailed

__all__ = [
    "ACTIVATION_DAYS",
    "DAY_US",
    "DEFAULT_WINDOW",
    "MAX_WINDOW",
    "MIN_WINDOW",
    "RETENTION_WEEKS",
    "WEEK_US",
    "Cohort",
    "CurrencyRevenue",
    "Funnel",
    "FunnelStage",
    "HealthInputs",
    "HealthMetrics",
    "HealthReport",
    "HealthScope",
    "HealthScopeKind",
    "Window",
    "active_members",
    "aov",
    "compute_health",
    "daily_active_mean",
    "funnel",
    "member_count",
    "new_members",
    "ratio",
    "repurchase_rate",
    "resolve_window",
    "retention_cohorts",
    "revenue_by_currency",
    "top_share",
]

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

DAY_US = 86_400_000_000
WEEK_US = 7 * DAY_US
#: the window when none is given: the last 30 days
DEFAULT_WINDOW = timedelta(days=30)
#: the longest window a caller may ask for
MAX_WINDOW = timedelta(days=366)
#: the shortest window (DAU needs one whole day)
MIN_WINDOW = timedelta(days=1)
#: how far in the future a window end may lie (client clocks run ahead)
CLOCK_SKEW = timedelta(minutes=5)
#: days after joining within which activity counts as activation
ACTIVATION_DAYS = 7
#: retention weeks reported per cohort: week 0 .. week 8
RETENTION_WEEKS = 9
#: the days DAU averages over and MAU counts; the days WAU counts
DAU_DAYS = 30
WAU_DAYS = 7


class HealthScopeKind(StrEnum):
    """What a health report covers."""

    TENANT = "TENANT"
    COMMUNITY = "COMMUNITY"
    CHANNEL = "CHANNEL"
    CAMPAIGN = "CAMPAIGN"


@dataclass(frozen=True, slots=True)
class HealthScope:
    """A tenant, one community (``com_…``), one acquisition channel (``wechat``…) or one campaign (``cpg_…``)."""

    kind: HealthScopeKind = HealthScopeKind.TENANT
    id: str | None = None

    @property
    def key(self) -> str:
        """A short stable name used in Redis keys."""
        if self.kind is HealthScopeKind.TENANT:
            return "tenant"
        if self.kind is HealthScopeKind.CHANNEL:
            return f"chan_{self.id}"
        return str(self.id)


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open interval ``[start, end)``; ``default`` when it is "the last 30 days"."""

    start: datetime
    end: datetime
    default: bool = False

    @property
    def key(self) -> str:
        """``last30d`` for the default window (whose end moves), else the exact bounds."""
        if self.default:
            return "last30d"
        return f"{_us(self.start)}-{_us(self.end)}"


def _us(t: datetime) -> int:
    delta = t - datetime(1970, 1, 1, tzinfo=t.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def resolve_window(start: datetime | None, end: datetime | None, *, now: datetime, field: str = "window") -> Window:
    """The window a caller asked for, with the defaults filled in; bad windows raise VALIDATION_FAILED.

    No bounds: the last 30 days up to *now*. Only ``to``: the 30 days before it. Only
    ``from``: from it to *now*. Rejected: ``from`` not before ``to``, an end in the future
    (beyond :data:`CLOCK_SKEW`), a window shorter than a day or longer than 366 days, naive times.
    """
    for value, name in ((start, "from"), (end, "to")):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(f"{field}.{name} needs a time zone offset", field=f"{field}.{name}")
    default = start is None and end is None
    end = now if end is None else end
    start = end - DEFAULT_WINDOW if start is None else start
    if end > now + CLOCK_SKEW:
        raise ValidationFailed(f"{field}.to lies in the future", field=f"{field}.to")
    if start >= end:
        raise ValidationFailed(f"{field}.from must be before {field}.to", field=f"{field}.from")
    if end - start > MAX_WINDOW:
        raise ValidationFailed(f"a window spans at most {MAX_WINDOW.days} days", field=field)
    if end - start < MIN_WINDOW:
        raise ValidationFailed("a window spans at least one day", field=field)
    return Window(start=start, end=end, default=default)


@dataclass(frozen=True)
class HealthInputs:
    """What the metrics need about one scope, as arrays (times in µs since the epoch).

    Attributes
    ----------
    joined_at : int64 (n,)
        When each member joined the scope (the community for a community, the brand otherwise).
    post_member, post_at : int64
        One row per post: its author and time.
    inter_member, inter_at : int64
        One row per interaction (like, comment, share, favorite): who made it and when.
    purchase_member, purchase_at, purchase_amount : int64
        One row per purchase placed by a member: buyer, time, amount in minor units.
    purchase_paid : bool
        ``True`` for paid purchases, ``False`` for refunded ones.
    purchase_currency : list of str
        ISO 4217 code per purchase.
    referral_inviter, referral_at : int64
        One row per invitation that made a member (REFERRED): the inviter and when.
    """

    joined_at: I64
    post_member: I64
    post_at: I64
    inter_member: I64
    inter_at: I64
    purchase_member: I64
    purchase_at: I64
    purchase_amount: I64
    purchase_paid: Bools
    purchase_currency: list[str]
    referral_inviter: I64
    referral_at: I64

    @property
    def n(self) -> int:
        return len(self.joined_at)

    @classmethod
    def build(
        cls, joined_at: Sequence[int], *, posts: Sequence[tuple[int, int]] = (),
        interactions: Sequence[tuple[int, int]] = (),
        purchases: Sequence[tuple[int, int, int, bool] | tuple[int, int, int, bool, str]] = (),
        referrals: Sequence[tuple[int, int]] = (),
    ) -> HealthInputs:
        """From plain lists: ``(member, at)`` posts and interactions, ``(member, at, amount, paid[, currency])``
        purchases (currency CNY when left out), ``(inviter, at)`` referrals."""
        def cols(rows: Sequence[tuple[int, int]]) -> tuple[I64, I64]:
            a = np.array([r[0] for r in rows], dtype=np.int64)
            b = np.array([r[1] for r in rows], dtype=np.int64)
            return a, b

        pm, pa = cols(posts)
        im, ia = cols(interactions)
        rm, ra = cols(referrals)
        return cls(
            joined_at=np.asarray(joined_at, dtype=np.int64), post_member=pm, post_at=pa, inter_member=im, inter_at=ia,
            purchase_member=np.array([p[0] for p in purchases], dtype=np.int64),
            purchase_at=np.array([p[1] for p in purchases], dtype=np.int64),
            purchase_amount=np.array([p[2] for p in purchases], dtype=np.int64),
            purchase_paid=np.array([bool(p[3]) for p in purchases], dtype=np.bool_),
            purchase_currency=[str(p[4]) if len(p) > 4 else "CNY" for p in purchases],
            referral_inviter=rm, referral_at=ra,
        )


@dataclass(frozen=True, slots=True)
class Cohort:
    """Members who joined in one week of the window and their week-N retention."""

    start: datetime
    size: int
    #: ``retention[N]``: share active in their week N; None while week N has not ended for all
    retention: list[float | None]


@dataclass(frozen=True, slots=True)
class FunnelStage:
    members: int
    #: members / acquired members (None when none were acquired)
    share: float | None


@dataclass(frozen=True, slots=True)
class Funnel:
    """AARRR: acquired → activated → retained → revenue → referral (see the module docstring)."""

    acquired: int
    activated: FunnelStage
    retained: FunnelStage
    revenue: FunnelStage
    referral: FunnelStage


@dataclass(frozen=True, slots=True)
class CurrencyRevenue:
    """GMV, AOV and historical LTV in one currency (minor units)."""

    currency: str
    gmv: int
    paid_purchases: int
    aov: float | None
    ltv: float | None


@dataclass(frozen=True, slots=True)
class HealthMetrics:
    """Every health metric of one scope over one window."""

    member_count: int
    new_members: int
    active_members: int
    dau: float
    wau: int
    mau: int
    stickiness: float | None
    posts: int
    interactions: int
    posts_per_active_member: float | None
    interactions_per_active_member: float | None
    cohorts: list[Cohort]
    funnel: Funnel
    repurchase_rate: float | None
    revenue: list[CurrencyRevenue]
    top20_interaction_share: float | None


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The metrics of one scope over one window, and when they were computed."""

    scope: HealthScope
    window: Window
    computed_at: datetime
    metrics: HealthMetrics


# --- the metrics, one function each ------------------------------------------------------------


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when the denominator is 0."""
    return None if denominator == 0 else numerator / denominator


def member_count(joined_at: I64, end: int) -> int:
    """Members who joined before *end*."""
    return int(np.count_nonzero(joined_at < end))


def new_members(joined_at: I64, start: int, end: int) -> int:
    """Members who joined in ``[start, end)``."""
    return int(np.count_nonzero((joined_at >= start) & (joined_at < end)))


def active_members(member: I64, at: I64, start: int, end: int) -> int:
    """Distinct members with an activity row in ``[start, end)``."""
    inside = (at >= start) & (at < end)
    return int(np.unique(member[inside]).size)


def daily_active_mean(member: I64, at: I64, end: int, days: int) -> float:
    """Mean over the *days* 24-hour slots before *end* of the members active in each slot."""
    days = max(1, days)
    lo = end - days * DAY_US
    inside = (at >= lo) & (at < end)
    slot = (end - 1 - at[inside]) // DAY_US
    pairs = np.unique(slot * (int(member.max(initial=0)) + 1) + member[inside])
    return pairs.size / days


def repurchase_rate(buyer: I64, at: I64, paid: Bools, start: int, end: int) -> float | None:
    """Share of members with a paid purchase in ``[start, end)`` who have two or more there."""
    inside = paid & (at >= start) & (at < end)
    _, counts = np.unique(buyer[inside], return_counts=True)
    return ratio(int(np.count_nonzero(counts >= 2)), counts.size)


def aov(gmv: int, paid_purchases: int) -> float | None:
    """Average order value: GMV / paid purchases (None without any)."""
    return ratio(gmv, paid_purchases)


def revenue_by_currency(inputs: HealthInputs, start: int, end: int, members: int) -> list[CurrencyRevenue]:
    """GMV, AOV (in the window) and mean historical LTV (joining to *end*) per currency, by code."""
    buyer, at, amount = inputs.purchase_member, inputs.purchase_at, inputs.purchase_amount
    currency = np.asarray(inputs.purchase_currency, dtype=object)
    paid = inputs.purchase_paid
    in_window = paid & (at >= start) & (at < end)
    since_joining = paid & (at < end)
    if buyer.size:
        since_joining &= at >= inputs.joined_at[buyer]
    out = []
    for code in sorted(set(inputs.purchase_currency)):
        mine = currency == code
        window_rows = in_window & mine
        gmv = int(amount[window_rows].sum())
        count = int(np.count_nonzero(window_rows))
        lifetime = int(amount[since_joining & mine].sum())
        if count == 0 and lifetime == 0:
            continue
        out.append(CurrencyRevenue(currency=str(code), gmv=gmv, paid_purchases=count, aov=aov(gmv, count),
                                   ltv=ratio(lifetime, members)))
    return out


def top_share(member: I64, n: int, share: float = 0.2) -> float | None:
    """Share of the rows (interactions) made by the ``ceil(share × n)`` members who made the most."""
    if member.size == 0 or n == 0:
        return None
    counts = np.bincount(member, minlength=n)
    top = max(1, math.ceil(share * n - 1e-9))
    best = np.sort(counts)[::-1][:top]
    return int(best.sum()) / int(member.size)


def retention_cohorts(joined_at: I64, member: I64, at: I64, start: int, end: int,
                      weeks: int = RETENTION_WEEKS) -> list[tuple[int, int, list[float | None]]]:
    """``(cohort start, size, retention per week)`` for each join week of ``[start, end)``.

    *member* / *at* are activity rows. Week N of a member is ``[joined + 7N days, joined + 7(N+1) days)``.
    """
    n_cohorts = max(1, -(-(end - start) // WEEK_US))
    cohort = np.full(joined_at.size, -1, dtype=np.int64)
    new = (joined_at >= start) & (joined_at < end)
    cohort[new] = (joined_at[new] - start) // WEEK_US
    # (member, week) pairs with activity, for new members only
    keep = new[member] & (at < end) if member.size else np.zeros(0, dtype=np.bool_)
    m, t = member[keep], at[keep]
    week = (t - joined_at[m]) // WEEK_US
    ok = (t >= joined_at[m]) & (week < weeks)
    pairs = np.unique(m[ok] * weeks + week[ok])
    active = np.zeros((n_cohorts, weeks), dtype=np.int64)
    np.add.at(active, (cohort[pairs // weeks], pairs % weeks), 1)
    sizes = np.bincount(cohort[new], minlength=n_cohorts)
    out = []
    for c in range(n_cohorts):
        members_c = new & (cohort == c)
        last_join = int(joined_at[members_c].max()) if sizes[c] else 0
        rates: list[float | None] = []
        for w in range(weeks):
            done = sizes[c] > 0 and last_join + (w + 1) * WEEK_US <= end
            rates.append(int(active[c, w]) / int(sizes[c]) if done else None)
        out.append((start + c * WEEK_US, int(sizes[c]), rates))
    return out


def funnel(inputs: HealthInputs, act_member: I64, act_at: I64, start: int, end: int, *,
           activation_days: int = ACTIVATION_DAYS) -> Funnel:
    """The AARRR funnel of the members acquired in ``[start, end)`` (*act_* are activity rows)."""
    joined = inputs.joined_at
    n = joined.size
    acquired = (joined >= start) & (joined < end)
    limit = activation_days * DAY_US

    def flagged(member: I64, mask: Bools) -> Bools:
        out = np.zeros(n, dtype=np.bool_)
        out[member[mask]] = True
        return out & acquired

    since = act_at - joined[act_member] if act_member.size else np.zeros(0, dtype=np.int64)
    in_time = act_at < end
    activated = flagged(act_member, in_time & (since >= 0) & (since <= limit))
    retained = flagged(act_member, in_time & (since > limit))
    buyer, bought_at = inputs.purchase_member, inputs.purchase_at
    after_join = bought_at >= joined[buyer] if buyer.size else np.zeros(0, dtype=np.bool_)
    revenue = flagged(buyer, inputs.purchase_paid & after_join & (bought_at >= start) & (bought_at < end))
    inviter, invited_at = inputs.referral_inviter, inputs.referral_at
    referral = flagged(inviter, (invited_at >= start) & (invited_at < end))
    total = int(np.count_nonzero(acquired))

    def stage(mask: Bools) -> FunnelStage:
        k = int(np.count_nonzero(mask))
        return FunnelStage(members=k, share=ratio(k, total))

    return Funnel(acquired=total, activated=stage(activated), retained=stage(retained), revenue=stage(revenue),
                  referral=stage(referral))


def _counted(inputs: HealthInputs, end: int) -> HealthInputs:
    """Drop the rows of members who joined at or after *end* (they are not counted)."""
    counted = inputs.joined_at < end
    if counted.all():
        return inputs

    def rows(member: I64) -> Bools:
        return counted[member] if member.size else np.zeros(0, dtype=np.bool_)

    p, i, b, r = rows(inputs.post_member), rows(inputs.inter_member), rows(inputs.purchase_member), rows(inputs.referral_inviter)
    return HealthInputs(
        joined_at=inputs.joined_at, post_member=inputs.post_member[p], post_at=inputs.post_at[p],
        inter_member=inputs.inter_member[i], inter_at=inputs.inter_at[i],
        purchase_member=inputs.purchase_member[b], purchase_at=inputs.purchase_at[b],
        purchase_amount=inputs.purchase_amount[b], purchase_paid=inputs.purchase_paid[b],
        purchase_currency=[c for c, keep in zip(inputs.purchase_currency, b.tolist()) if keep],
        referral_inviter=inputs.referral_inviter[r], referral_at=inputs.referral_at[r],
    )


def compute_health(inputs: HealthInputs, start: int, end: int, *, activation_days: int = ACTIVATION_DAYS,
                   retention_weeks: int = RETENTION_WEEKS) -> HealthMetrics:
    """Every metric of the module docstring for the window ``[start, end)`` (µs)."""
    inputs = _counted(inputs, end)
    members = member_count(inputs.joined_at, end)
    act_member = np.concatenate([inputs.post_member, inputs.inter_member, inputs.purchase_member])
    act_at = np.concatenate([inputs.post_at, inputs.inter_at, inputs.purchase_at])
    length = end - start
    days = max(1, min(DAU_DAYS, length // DAY_US))
    dau = daily_active_mean(act_member, act_at, end, days)
    wau = active_members(act_member, act_at, max(start, end - WAU_DAYS * DAY_US), end)
    mau = active_members(act_member, act_at, max(start, end - DAU_DAYS * DAY_US), end)
    active = active_members(act_member, act_at, start, end)
    posts = int(np.count_nonzero((inputs.post_at >= start) & (inputs.post_at < end)))
    in_window = (inputs.inter_at >= start) & (inputs.inter_at < end)
    interactions = int(np.count_nonzero(in_window))
    cohorts = [Cohort(start=_dt(at), size=size, retention=rates)
               for at, size, rates in retention_cohorts(inputs.joined_at, act_member, act_at, start, end,
                                                        retention_weeks)]
    return HealthMetrics(
        member_count=members, new_members=new_members(inputs.joined_at, start, end), active_members=active,
        dau=dau, wau=wau, mau=mau, stickiness=ratio(dau, mau), posts=posts, interactions=interactions,
        posts_per_active_member=ratio(posts, active), interactions_per_active_member=ratio(interactions, active),
        cohorts=cohorts, funnel=funnel(inputs, act_member, act_at, start, end, activation_days=activation_days),
        repurchase_rate=repurchase_rate(inputs.purchase_member, inputs.purchase_at, inputs.purchase_paid, start, end),
        revenue=revenue_by_currency(inputs, start, end, members),
        top20_interaction_share=top_share(inputs.inter_member[in_window], members),
    )


def _dt(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
