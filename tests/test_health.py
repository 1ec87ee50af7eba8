"""Community health metrics (domain.health): known answers on a hand-built community, edge cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import ErrorCode, ValidationFailed
from domain.health import (
    DAY_US,
    CurrencyRevenue,
    FunnelStage,
    HealthInputs,
    HealthScope,
    HealthScopeKind,
    active_members,
    aov,
    compute_health,
    daily_active_mean,
    resolve_window,
    top_share,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
US0 = 1_735_689_600_000_000  # T0 in µs


def d(days: float) -> int:
    """T0 plus *days*, in µs."""
    return US0 + int(days * DAY_US)


START, END = d(0), d(30)

# m0, m1 joined before the window; m2, m3 (week 0) and m4 (week 1) inside it; m5 after it (not counted)
COMMUNITY = HealthInputs.build(
    [d(-10), d(-5), d(2), d(3), d(10), d(31)],
    posts=[(0, d(1)), (0, d(29.5)), (1, d(-1))],
    interactions=[(0, d(29.2)), (1, d(29.1)), (2, d(2.5)), (2, d(20)), (3, d(28)), (0, d(5)), (0, d(6)),
                  (5, d(29))],
    purchases=[(1, d(15), 1000, True), (1, d(16), 3000, True), (2, d(4), 500, True), (3, d(29), 700, False),
               (0, d(-8), 2000, True)],
    referrals=[(2, d(12)), (0, d(3))],
)


@pytest.fixture(scope="module")
def metrics():  # type: ignore[no-untyped-def]
    return compute_health(COMMUNITY, START, END)


def test_member_counts(metrics) -> None:  # type: ignore[no-untyped-def]
    assert (metrics.member_count, metrics.new_members, metrics.active_members) == (5, 3, 4)


def test_dau_wau_mau_and_stickiness(metrics) -> None:  # type: ignore[no-untyped-def]
    # day slots back from the end: [29,30) has m0, m1, m3; nine other days have one active member each
    assert metrics.dau == pytest.approx(12 / 30)
    assert (metrics.wau, metrics.mau) == (3, 4)
    assert metrics.stickiness == pytest.approx(0.1)


def test_posts_and_interactions_per_active_member(metrics) -> None:  # type: ignore[no-untyped-def]
    assert (metrics.posts, metrics.interactions) == (2, 7)  # the post before the window and m5's like excluded
    assert metrics.posts_per_active_member == pytest.approx(0.5)
    assert metrics.interactions_per_active_member == pytest.approx(1.75)


def test_retention_cohorts(metrics) -> None:  # type: ignore[no-untyped-def]
    cohorts = metrics.cohorts
    assert [(c.start, c.size) for c in cohorts] == [(T0 + timedelta(days=7 * k), s) for k, s in enumerate([2, 1, 0, 0, 0])]
    # m2 (joined day 2) is active in its weeks 0 and 2; m3 (day 3) only in its week 3, which ends after day 30
    assert cohorts[0].retention == [0.5, 0.0, 0.5] + [None] * 6
    assert cohorts[1].retention == [0.0, 0.0] + [None] * 7
    assert all(r is None for c in cohorts[2:] for r in c.retention)


def test_funnel(metrics) -> None:  # type: ignore[no-untyped-def]
    f = metrics.funnel
    assert f.acquired == 3
    assert f.activated == FunnelStage(1, pytest.approx(1 / 3))  # m2 (m3's first activity is 25 days after joining)
    assert f.retained == FunnelStage(2, pytest.approx(2 / 3))  # m2 (day 20), m3 (day 28)
    assert f.revenue == FunnelStage(1, pytest.approx(1 / 3))  # m2 paid; m3's purchase was refunded
    assert f.referral == FunnelStage(1, pytest.approx(1 / 3))  # m2 invited someone; m0 was not acquired in the window


def test_repurchase_gmv_aov_ltv(metrics) -> None:  # type: ignore[no-untyped-def]
    assert metrics.repurchase_rate == pytest.approx(0.5)  # m1 bought twice, m2 once
    # GMV 1000 + 3000 + 500 (refund and the purchase before the window excluded); LTV (2000 + 4000 + 500) / 5
    assert metrics.revenue == [CurrencyRevenue("CNY", gmv=4500, paid_purchases=3, aov=1500.0, ltv=1300.0)]


def test_top_20_percent_interaction_share(metrics) -> None:  # type: ignore[no-untyped-def]
    assert metrics.top20_interaction_share == pytest.approx(3 / 7)  # m0 made 3 of the 7


def test_an_empty_community_has_zeros_and_nulls() -> None:
    m = compute_health(HealthInputs.build([]), START, END)

    assert (m.member_count, m.new_members, m.active_members, m.dau, m.wau, m.mau) == (0, 0, 0, 0.0, 0, 0)
    assert (m.stickiness, m.posts_per_active_member, m.interactions_per_active_member) == (None, None, None)
    assert (m.repurchase_rate, m.revenue, m.top20_interaction_share) == (None, [], None)
    assert m.funnel.acquired == 0 and m.funnel.activated == FunnelStage(0, None)
    assert len(m.cohorts) == 5 and all(c.size == 0 and set(c.retention) == {None} for c in m.cohorts)


def test_members_without_purchases_have_no_aov() -> None:
    m = compute_health(HealthInputs.build([d(1), d(2)], interactions=[(0, d(3))]), START, END)

    assert m.revenue == [] and m.repurchase_rate is None
    assert aov(0, 0) is None
    assert m.top20_interaction_share == 1.0


def test_revenue_is_per_currency() -> None:
    inputs = HealthInputs.build([d(1), d(2)], purchases=[(0, d(3), 100, True, "CNY"), (1, d(4), 30, True, "USD"),
                                                        (1, d(5), 50, True, "USD"), (1, d(6), 70, False, "USD")])

    m = compute_health(inputs, START, END)

    assert m.revenue == [CurrencyRevenue("CNY", 100, 1, 100.0, 50.0), CurrencyRevenue("USD", 80, 2, 40.0, 40.0)]
    assert m.repurchase_rate == pytest.approx(0.5)


def test_a_short_window_averages_dau_over_its_whole_days() -> None:
    inputs = HealthInputs.build([d(-1), d(-1)], interactions=[(0, d(0.5)), (1, d(0.7)), (0, d(1.5))])

    m = compute_health(inputs, d(0), d(2.5))  # two whole days back from the end: [0.5, 1.5) and [1.5, 2.5)

    assert m.dau == pytest.approx((2 + 1) / 2)
    assert (m.wau, m.mau) == (2, 2)


def test_activation_days_are_configurable() -> None:
    inputs = HealthInputs.build([d(1)], interactions=[(0, d(10))])

    assert compute_health(inputs, START, END).funnel.activated.members == 0
    assert compute_health(inputs, START, END, activation_days=10).funnel.activated.members == 1


# --- windows -----------------------------------------------------------------------------------

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def test_the_default_window_is_the_last_30_days() -> None:
    w = resolve_window(None, None, now=NOW)

    assert (w.start, w.end, w.default, w.key) == (NOW - timedelta(days=30), NOW, True, "last30d")
    only_to = resolve_window(None, NOW - timedelta(days=1), now=NOW)
    assert only_to.start == NOW - timedelta(days=31) and not only_to.default


@pytest.mark.parametrize(("start", "end", "field"), [
    (NOW - timedelta(days=1), NOW - timedelta(days=2), "window.from"),
    (NOW - timedelta(days=1), NOW - timedelta(days=1), "window.from"),
    (NOW - timedelta(days=400), NOW, "window"),
    (NOW - timedelta(hours=3), NOW, "window"),
    (NOW, NOW + timedelta(days=2), "window.to"),
    (datetime(2025, 5, 1), NOW, "window.from"),
])
def test_bad_windows_are_rejected(start: datetime, end: datetime, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        resolve_window(start, end, now=NOW)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED and caught.value.field == field


def test_scope_keys() -> None:
    assert HealthScope().key == "tenant"
    assert HealthScope(HealthScopeKind.CHANNEL, "wechat").key == "chan_wechat"
    assert HealthScope(HealthScopeKind.COMMUNITY, "com_x").key == "com_x"


# --- against simple references -----------------------------------------------------------------

rows = st.lists(st.tuples(st.integers(0, 9), st.integers(d(0), d(30) - 1)), max_size=60)


@given(rows)
def test_dau_matches_a_day_by_day_count(activity: list[tuple[int, int]]) -> None:
    member = np.array([a for a, _ in activity], dtype=np.int64)
    at = np.array([t for _, t in activity], dtype=np.int64)

    expected = sum(len({m for m, t in activity if END - (k + 1) * DAY_US <= t < END - k * DAY_US}) for k in range(30)) / 30

    assert daily_active_mean(member, at, END, 30) == pytest.approx(expected)
    assert daily_active_mean(member, at, END, 30) <= active_members(member, at, START, END)


@given(st.lists(st.integers(0, 9), max_size=80))
def test_top_share_matches_sorting_by_hand(actors: list[int]) -> None:
    member = np.array(actors, dtype=np.int64)
    counts = sorted((actors.count(m) for m in range(10)), reverse=True)

    expected = sum(counts[:2]) / len(actors) if actors else None  # 20% of 10 members

    assert top_share(member, 10) == (pytest.approx(expected) if expected is not None else None)
