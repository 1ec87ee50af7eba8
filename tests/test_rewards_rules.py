"""The pure rules of campaign mechanics (domain.rewards): group-buy states, coupons, the points ledger."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.commands import parse
from domain.errors import CampaignRuleBroken, ErrorCode, ValidationFailed
from domain.rewards import (
    CouponStatus,
    GroupBuyStatus,
    IssueCoupon,
    LedgerOp,
    Lot,
    PointsChange,
    PointsKind,
    SeatState,
    allocate,
    coupon_status,
    effective_seat_state,
    effective_status,
    join_refusal,
    plan_ledger,
    redeem_refusal,
    roi,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)


def code(error: object) -> ErrorCode | None:
    return None if error is None else error.code  # type: ignore[attr-defined,no-any-return]


# --- group-buys -------------------------------------------------------------------------------


def test_an_open_group_past_its_expiry_with_a_free_seat_reads_as_failed() -> None:
    assert effective_status(GroupBuyStatus.OPEN, seats=2, required=3, expires_at=T0, now=T0 - H) is GroupBuyStatus.OPEN
    assert effective_status(GroupBuyStatus.OPEN, seats=2, required=3, expires_at=T0, now=T0) is GroupBuyStatus.FAILED
    assert effective_status(GroupBuyStatus.SUCCEEDED, seats=3, required=3, expires_at=T0, now=T0 + H) \
        is GroupBuyStatus.SUCCEEDED
    assert effective_seat_state(SeatState.JOINED, GroupBuyStatus.FAILED) is SeatState.REFUND_PENDING
    assert effective_seat_state(SeatState.REFUNDED, GroupBuyStatus.FAILED) is SeatState.REFUNDED
    assert effective_seat_state(SeatState.JOINED, GroupBuyStatus.OPEN) is SeatState.JOINED


@pytest.mark.parametrize(("status", "seats", "now", "joined", "expected"), [
    (GroupBuyStatus.OPEN, 1, T0 - H, False, None),
    (GroupBuyStatus.OPEN, 1, T0 - H, True, ErrorCode.ALREADY_JOINED),
    (GroupBuyStatus.SUCCEEDED, 3, T0 - H, False, ErrorCode.GROUP_BUY_FULL),
    (GroupBuyStatus.OPEN, 3, T0 - H, False, ErrorCode.GROUP_BUY_FULL),
    (GroupBuyStatus.OPEN, 2, T0, False, ErrorCode.GROUP_BUY_CLOSED),
    (GroupBuyStatus.FAILED, 2, T0 - H, False, ErrorCode.GROUP_BUY_CLOSED),
])
def test_join_refusals(status: GroupBuyStatus, seats: int, now: datetime, joined: bool, expected: ErrorCode | None) -> None:
    assert code(join_refusal(status, seats=seats, required=3, expires_at=T0, now=now, already_joined=joined)) == expected


# --- coupons ----------------------------------------------------------------------------------


def test_a_coupon_redeems_once_and_never_after_expiry() -> None:
    assert redeem_refusal(CouponStatus.ISSUED, expires_at=T0, now=T0 - H) is None
    assert code(redeem_refusal(CouponStatus.ISSUED, expires_at=T0, now=T0)) is ErrorCode.COUPON_EXPIRED
    assert code(redeem_refusal(CouponStatus.REDEEMED, expires_at=T0, now=T0 - H)) is ErrorCode.COUPON_REDEEMED
    assert coupon_status(CouponStatus.ISSUED, expires_at=T0, now=T0 + H) is CouponStatus.EXPIRED
    assert coupon_status(CouponStatus.REDEEMED, expires_at=T0, now=T0 + H) is CouponStatus.REDEEMED


@pytest.mark.parametrize(("fields", "field"), [
    ({}, "input.percentOff"),
    ({"amount_off": {"amount": 100}, "percent_off": 10}, "input.percentOff"),
    ({"amount_off": {"amount": 0}}, "input.amountOff"),
    ({"percent_off": 101}, "input.percentOff"),
    ({"percent_off": 10, "idempotency_key": "short"}, "input.idempotencyKey"),
    ({"percent_off": 10, "expires_at": datetime(2030, 1, 1)}, "input.expiresAt"),
])
def test_bad_coupons_name_the_field(fields: dict[str, object], field: str) -> None:
    data = {"member_id": "mem_a", "expires_at": T0, "idempotency_key": "coupon-key-1", **fields}
    with pytest.raises(ValidationFailed) as caught:
        parse(IssueCoupon, data)
    assert caught.value.field == field


@pytest.mark.parametrize(("fields", "field"), [
    ({"kind": "SPEND", "amount": -5}, "input.amount"),
    ({"kind": "EARN", "amount": 0}, "input.amount"),
    ({"kind": "EXPIRE", "amount": -5}, "input.kind"),
    ({"kind": "OPENING", "amount": 5}, "input.kind"),
    ({"kind": "ADJUST", "amount": 5}, "input.reason"),
    ({"kind": "SPEND", "amount": 5, "expires_at": T0}, "input.expiresAt"),
    ({"kind": "ADJUST", "amount": -5, "reason": "fix", "expires_at": T0}, "input.expiresAt"),
])
def test_bad_points_changes_name_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse(PointsChange, {"member_id": "mem_a", "idempotency_key": "points-key-1", **fields})
    assert caught.value.field == field


# --- points ledger ----------------------------------------------------------------------------


def test_spending_takes_the_first_expiring_lot_first_and_never_an_expired_one() -> None:
    lots = [Lot("never", 50, T0), Lot("late", 30, T0, T0 + 48 * H), Lot("soon", 20, T0 + H, T0 + 2 * H),
            Lot("gone", 99, T0, T0)]

    assert allocate(lots, 45, T0 + H) == [("soon", 20), ("late", 25)]
    assert allocate(lots, 100, T0 + H) == [("soon", 20), ("late", 30), ("never", 50)]
    with pytest.raises(CampaignRuleBroken) as caught:
        allocate(lots, 101, T0 + H)
    assert caught.value.code is ErrorCode.INSUFFICIENT_POINTS


def _ids() -> itertools.count[int]:
    return itertools.count(1)


def test_the_first_operation_books_the_old_points_as_an_opening_lot_and_expires_due_lots() -> None:
    ids = _ids()
    first = plan_ledger(member_id="mem_a", tenant="t", balance=120, opened=False, seq=0, lots=[],
                        op=LedgerOp(PointsKind.SPEND, 20, "k1"), now=T0, new_id=lambda: f"e{next(ids)}")

    assert [(e["kind"], e["amount"], e["balanceAfter"], e["seq"]) for e in first.entries] == [
        ("OPENING", 120, 120, 1), ("SPEND", -20, 100, 2)]
    assert first.remaining == {"e1": 100} and first.balance == 100

    lots = [Lot("e1", 100, T0), Lot("e3", 40, T0, T0 + H)]
    later = plan_ledger(member_id="mem_a", tenant="t", balance=140, opened=True, seq=3, lots=lots,
                        op=LedgerOp(PointsKind.EARN, 10, "k2", expires_at=T0 + 9 * H), now=T0 + H,
                        new_id=lambda: f"e{next(ids)}")

    assert [(e["kind"], e["amount"], e["balanceAfter"], e["idempotencyKey"]) for e in later.entries] == [
        ("EXPIRE", -40, 100, "#expire:e3"), ("EARN", 10, 110, "k2")]
    assert later.remaining == {"e3": 0} and later.result is not None and later.result["remaining"] == 10


ops = st.lists(st.tuples(st.sampled_from([PointsKind.EARN, PointsKind.SPEND, PointsKind.ADJUST]),
                         st.integers(1, 60), st.booleans(), st.integers(0, 5), st.booleans()), max_size=25)


@given(opening=st.integers(0, 100), steps=ops)
def test_the_balance_equals_the_entries_and_the_lots_and_never_goes_negative(
        opening: int, steps: list[tuple[PointsKind, int, bool, int, bool]]) -> None:
    ids = _ids()
    balance, opened, seq, lots, entries = opening, False, 0, {}, []
    for hour, (kind, amount, negative, lifetime, expiring) in enumerate(steps):
        now = T0 + hour * H
        signed = -amount if kind is PointsKind.ADJUST and negative else amount
        adds = kind is PointsKind.EARN or signed > 0
        op = LedgerOp(kind, signed, f"k{hour}", expires_at=now + lifetime * H if adds and expiring else None)
        live = [Lot(i, r, at, exp) for i, (r, at, exp) in lots.items() if r > 0]
        try:
            plan = plan_ledger(member_id="m", tenant="t", balance=balance, opened=opened, seq=seq, lots=live, op=op,
                               now=now, new_id=lambda: f"e{next(ids)}")
        except CampaignRuleBroken as exc:
            assert exc.code is ErrorCode.INSUFFICIENT_POINTS
            continue  # nothing is written
        opened, balance, seq = True, plan.balance, seq + len(plan.entries)
        for e in plan.entries:
            entries.append(e)
            if "remaining" in e:
                lots[e["id"]] = (e["remaining"], e["at"], e.get("expiresAt"))
        for lot_id, left in plan.remaining.items():
            lots[lot_id] = (left, *lots[lot_id][1:])
        assert balance >= 0
        assert balance == sum(e["amount"] for e in entries) == sum(r for r, _, _ in lots.values())
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
        assert all(e["balanceAfter"] >= 0 for e in entries)


def test_roi() -> None:
    assert roi(30_000, 10_000) == 2.0
    assert roi(5_000, 10_000) == -0.5
    assert roi(5_000, None) is None and roi(5_000, 0) is None
