"""Campaign mechanics: group-buying (拼团), coupons (优惠券) and the points ledger (积分).

Pure rules, models, commands and ports; the graph adapters (graph.group_buys, graph.coupons,
graph.points) apply them inside one write transaction each.

Group-buy state machine (a group of ``required_size`` seats; the leader holds the first)::

                 join (seats < N, now < expiresAt)
               ┌───────────┐
               ▼           │            the join that takes seat N
    open ──► OPEN ─────────┴──────────────────────────────────► SUCCEEDED  (completedAt)
               │                                                 seats: JOINED → CONFIRMED
               │ now ≥ expiresAt with seats < N
               │ (the sweep writes it; every read already says so)
               ▼
             FAILED (failedAt)     seats: JOINED → REFUND_PENDING ──(refund recorded)──► REFUNDED

SUCCEEDED and FAILED are final. A join is refused with ``GROUP_BUY_FULL`` when every seat is
taken, ``GROUP_BUY_CLOSED`` when the group has succeeded, failed or expired, and
``ALREADY_JOINED`` when the member holds a seat. Reads apply :func:`effective_status`, so an
expired OPEN group reads as FAILED (and its seats as REFUND_PENDING) before the sweep runs.

Coupons: ISSUED → REDEEMED exactly once, before ``expiresAt``; an ISSUED coupon past its
expiry reads as EXPIRED and cannot be redeemed.

Points ledger: append-only entries, each with an idempotency key. Positive entries (OPENING,
EARN, positive ADJUST) are *lots* with a ``remaining`` amount and an optional expiry; negative
entries (SPEND, negative ADJUST) consume the live lots first-expiring-first (FIFO); EXPIRE
entries write off what is left of a lot at its expiry. Invariants (tests/test_rewards_rules.py):
the balance equals the sum of the entries and the sum of the lots' ``remaining``, and it never
goes negative. A member's ``points`` value from before the ledger becomes an OPENING entry on
the member's first ledger operation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Protocol

from pydantic import Field, ValidationInfo, field_validator

from domain.commands import Id, MoneyInput, Text
from domain.commands import _Command as Command  # the base of every command (parse() takes these)
from domain.errors import CampaignRuleBroken, ErrorCode, QuanziError
from domain.models import Money, Page

__all__ = [
    "CampaignResults",
    "Coupon",
    "CouponKind",
    "CouponRepository",
    "CouponStatus",
    "GroupBuy",
    "GroupBuyRepository",
    "GroupBuyStatus",
    "IssueCoupon",
    "LedgerOp",
    "LedgerPlan",
    "Lot",
    "OpenGroupBuy",
    "PointsChange",
    "PointsEntry",
    "PointsKind",
    "PointsRepository",
    "Seat",
    "SeatState",
    "allocate",
    "coupon_status",
    "effective_seat_state",
    "effective_status",
    "join_refusal",
    "plan_ledger",
    "redeem_refusal",
    "request_fingerprint",
    "roi",
]


# --- group-buying -----------------------------------------------------------------------------


class GroupBuyStatus(StrEnum):
    OPEN = "OPEN"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class SeatState(StrEnum):
    JOINED = "JOINED"  # the group is still open
    CONFIRMED = "CONFIRMED"  # the group succeeded
    REFUND_PENDING = "REFUND_PENDING"  # the group failed; the payment is to be refunded
    REFUNDED = "REFUNDED"  # the refund was recorded


@dataclass(frozen=True, slots=True)
class Seat:
    member_id: str
    joined_at: datetime
    state: SeatState
    leader: bool = False


@dataclass(frozen=True, slots=True)
class GroupBuy:
    """A group-buy (拼团) as stored; read it through :func:`effective_status`."""

    id: str
    tenant_id: str
    product_id: str
    leader_id: str
    required_size: int
    seats_taken: int
    status: GroupBuyStatus
    expires_at: datetime
    created_at: datetime
    campaign_id: str | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    seats: tuple[Seat, ...] = ()


def effective_status(status: GroupBuyStatus, *, seats: int, required: int, expires_at: datetime,
                     now: datetime) -> GroupBuyStatus:
    """The status a reader sees: an OPEN group past its expiry with a free seat has FAILED."""
    if status is GroupBuyStatus.OPEN and now >= expires_at and seats < required:
        return GroupBuyStatus.FAILED
    return status


def effective_seat_state(state: SeatState, group: GroupBuyStatus) -> SeatState:
    """A seat of a group that reads as FAILED is REFUND_PENDING until its refund is recorded."""
    if group is GroupBuyStatus.FAILED and state is SeatState.JOINED:
        return SeatState.REFUND_PENDING
    return state


def join_refusal(status: GroupBuyStatus, *, seats: int, required: int, expires_at: datetime, now: datetime,
                 already_joined: bool) -> QuanziError | None:
    """Why a member may not join now (``None``: it may). Checked in the joining transaction."""
    current = effective_status(status, seats=seats, required=required, expires_at=expires_at, now=now)
    if already_joined:
        return CampaignRuleBroken("this member already holds a seat in the group-buy", field="groupBuyId",
                                  code=ErrorCode.ALREADY_JOINED)
    if current is GroupBuyStatus.OPEN and seats >= required:  # not reachable: the last seat completes it
        current = GroupBuyStatus.SUCCEEDED
    if current is GroupBuyStatus.SUCCEEDED:
        return CampaignRuleBroken(f"the group-buy is full: all {required} seats are taken", field="groupBuyId",
                                  code=ErrorCode.GROUP_BUY_FULL)
    if current is GroupBuyStatus.FAILED:
        return CampaignRuleBroken("the group-buy has expired", field="groupBuyId", code=ErrorCode.GROUP_BUY_CLOSED)
    return None


# --- coupons ----------------------------------------------------------------------------------


class CouponKind(StrEnum):
    AMOUNT_OFF = "AMOUNT_OFF"
    PERCENT_OFF = "PERCENT_OFF"


class CouponStatus(StrEnum):
    ISSUED = "ISSUED"
    REDEEMED = "REDEEMED"
    EXPIRED = "EXPIRED"  # read-time only: an ISSUED coupon past expiresAt


@dataclass(frozen=True, slots=True)
class Coupon:
    id: str
    tenant_id: str
    member_id: str
    kind: CouponKind
    expires_at: datetime
    issued_at: datetime
    status: CouponStatus
    idempotency_key: str
    amount_off: Money | None = None
    percent_off: int | None = None
    campaign_id: str | None = None
    redeemed_at: datetime | None = None


def coupon_status(stored: CouponStatus, *, expires_at: datetime, now: datetime) -> CouponStatus:
    if stored is CouponStatus.ISSUED and now >= expires_at:
        return CouponStatus.EXPIRED
    return stored


def redeem_refusal(stored: CouponStatus, *, expires_at: datetime, now: datetime) -> QuanziError | None:
    status = coupon_status(stored, expires_at=expires_at, now=now)
    if status is CouponStatus.REDEEMED:
        return CampaignRuleBroken("the coupon was already redeemed", field="couponId", code=ErrorCode.COUPON_REDEEMED)
    if status is CouponStatus.EXPIRED:
        return CampaignRuleBroken("the coupon has expired", field="couponId", code=ErrorCode.COUPON_EXPIRED)
    return None


# --- points ledger ----------------------------------------------------------------------------


class PointsKind(StrEnum):
    OPENING = "OPENING"  # the member's points from before the ledger
    EARN = "EARN"
    SPEND = "SPEND"
    EXPIRE = "EXPIRE"
    ADJUST = "ADJUST"


@dataclass(frozen=True, slots=True)
class PointsEntry:
    id: str
    tenant_id: str
    member_id: str
    kind: PointsKind
    #: signed: earnings positive, spending and expiry negative
    amount: int
    balance_after: int
    at: datetime
    seq: int
    idempotency_key: str
    reason: str | None = None
    expires_at: datetime | None = None
    #: what is left of a positive entry (a lot) after FIFO spending and expiry
    remaining: int | None = None


@dataclass(frozen=True, slots=True)
class Lot:
    """A positive entry with points left."""

    id: str
    remaining: int
    at: datetime
    expires_at: datetime | None = None


def _fifo(lot: Lot) -> tuple[bool, datetime, datetime, str]:
    """First to expire first; lots that never expire last; then oldest first."""
    return (lot.expires_at is None, lot.expires_at or lot.at, lot.at, lot.id)


def allocate(lots: Sequence[Lot], amount: int, now: datetime) -> list[tuple[str, int]]:
    """Take *amount* points from the live lots, first-expiring first: ``[(lot id, taken)]``.

    Raises ``INSUFFICIENT_POINTS`` when the live lots hold less than *amount*.
    """
    live = sorted((lot for lot in lots if lot.remaining > 0 and (lot.expires_at is None or lot.expires_at > now)),
                  key=_fifo)
    available = sum(lot.remaining for lot in live)
    if amount > available:
        raise CampaignRuleBroken(f"the balance is {available} points, fewer than the {amount} asked for",
                                 field="input.amount", code=ErrorCode.INSUFFICIENT_POINTS)
    taken: list[tuple[str, int]] = []
    left = amount
    for lot in live:
        if left == 0:
            break
        take = min(left, lot.remaining)
        taken.append((lot.id, take))
        left -= take
    return taken


@dataclass(frozen=True, slots=True)
class LedgerOp:
    """One requested change: EARN/ADJUST(+) add a lot, SPEND/ADJUST(-) consume lots."""

    kind: PointsKind
    amount: int
    key: str
    expires_at: datetime | None = None
    reason: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerPlan:
    """What one ledger transaction writes: new entries (oldest first), lot updates, the new balance."""

    entries: tuple[dict[str, Any], ...]
    remaining: dict[str, int]
    balance: int
    #: the entry of the requested op (None for a sweep)
    result: dict[str, Any] | None = None


def plan_ledger(*, member_id: str, tenant: str, balance: int, opened: bool, seq: int, lots: Sequence[Lot],
                op: LedgerOp | None, now: datetime, new_id: Callable[[], str]) -> LedgerPlan:
    """Plan one ledger transaction (pure): open, expire what is due, then apply *op*.

    * not *opened*: the stored *balance* becomes an OPENING lot (no expiry), so the ledger
      sums to it;
    * every live lot whose ``expires_at`` has passed is written off with an EXPIRE entry
      (idempotency key ``#expire:<lot id>``; clients cannot send ``#``);
    * *op* then adds a lot (EARN, ADJUST > 0) or consumes lots FIFO (SPEND, ADJUST < 0), refused
      with ``INSUFFICIENT_POINTS`` when the balance would go negative.
    """
    entries: list[dict[str, Any]] = []
    remaining: dict[str, int] = {}
    live = [lot for lot in lots if lot.remaining > 0]

    def add(kind: PointsKind, amount: int, key: str, **extra: Any) -> dict[str, Any]:
        nonlocal balance, seq
        balance += amount
        seq += 1
        entry = {"id": new_id(), "tenantId": tenant, "memberId": member_id, "kind": kind.value, "amount": amount,
                 "balanceAfter": balance, "at": now, "seq": seq, "idempotencyKey": key,
                 **{k: v for k, v in extra.items() if v is not None}}
        entries.append(entry)
        return entry

    if not opened:
        # registration writes 0 and the demo data positive values; a negative value (which the
        # ledger's rules forbid) opens at 0
        stored, balance = max(balance, 0), 0
        if stored > 0:
            opening = add(PointsKind.OPENING, stored, f"#opening:{member_id}", reason="points before the ledger",
                          remaining=stored)
            live.append(Lot(id=opening["id"], remaining=stored, at=now))
    for lot in sorted(live, key=_fifo):
        if lot.expires_at is not None and lot.expires_at <= now:
            add(PointsKind.EXPIRE, -lot.remaining, f"#expire:{lot.id}", reason="lot expired", lotId=lot.id)
            remaining[lot.id] = 0
    live = [lot for lot in live if lot.id not in remaining]
    result = None
    if op is not None:
        extra = {"reason": op.reason, "requestHash": op.fingerprint}
        if op.kind in (PointsKind.EARN, PointsKind.ADJUST) and op.amount > 0:
            result = add(op.kind, op.amount, op.key, expiresAt=op.expires_at, remaining=op.amount, **extra)
        else:
            taken = allocate(live, abs(op.amount), now)
            for lot_id, take in taken:
                lot = next(x for x in live if x.id == lot_id)
                remaining[lot_id] = lot.remaining - take
            result = add(op.kind, -abs(op.amount), op.key, **extra)
    assert balance >= 0, "the ledger never goes negative"
    return LedgerPlan(entries=tuple(entries), remaining=remaining, balance=balance, result=result)


# --- campaign results -------------------------------------------------------------------------


def roi(gmv: int, cost: int | None) -> float | None:
    """(GMV − cost) / cost, where a positive cost is set; else None."""
    if cost is None or cost <= 0:
        return None
    return (gmv - cost) / cost


@dataclass(frozen=True, slots=True)
class CampaignResults:
    """A campaign's results; participants, invitations, conversions and K-factor come from
    the virality computation (graph.campaigns.virality), the rest from its purchases,
    group-buys and coupons."""

    campaign_id: str
    participants: int
    invitations_sent: int
    conversions: int
    k_factor: float
    #: paid purchases IN_CAMPAIGN by currency; refunded ones excluded
    gmv: tuple[Money, ...]
    paid_purchases: int
    cost: Money | None
    roi: float | None
    group_buys_opened: int
    group_buys_succeeded: int
    group_buys_failed: int
    coupons_issued: int
    coupons_redeemed: int


# --- commands ---------------------------------------------------------------------------------


IdempotencyKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9:._-]{8,128}$")]
Reason = Annotated[Text, Field(min_length=1, max_length=200)]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone")
    return value


class OpenGroupBuy(Command):
    leader_id: Id
    product_id: Id
    required_size: int = Field(ge=2, le=100)
    expires_at: datetime
    campaign_id: Id | None = None

    _tz = field_validator("expires_at")(_aware)


class IssueCoupon(Command):
    member_id: Id
    amount_off: MoneyInput | None = None
    percent_off: int | None = Field(default=None, ge=1, le=100, validate_default=True)
    expires_at: datetime
    campaign_id: Id | None = None
    idempotency_key: IdempotencyKey

    _tz = field_validator("expires_at")(_aware)

    @field_validator("amount_off")
    @classmethod
    def _positive(cls, value: MoneyInput | None) -> MoneyInput | None:
        if value is not None and value.amount <= 0:
            raise ValueError("must be a positive amount")
        return value

    @field_validator("percent_off")
    @classmethod
    def _one_value(cls, value: int | None, info: ValidationInfo) -> int | None:
        if "amount_off" in info.data and (info.data["amount_off"] is None) == (value is None):
            raise ValueError("give exactly one of amountOff and percentOff")
        return value

    @property
    def kind(self) -> CouponKind:
        return CouponKind.AMOUNT_OFF if self.amount_off is not None else CouponKind.PERCENT_OFF


class PointsChange(Command):
    member_id: Id
    kind: PointsKind
    amount: int = Field(ge=-10**9, le=10**9)
    idempotency_key: IdempotencyKey
    expires_at: datetime | None = None
    reason: Reason | None = Field(default=None, validate_default=True)

    @field_validator("kind")
    @classmethod
    def _requestable(cls, kind: PointsKind) -> PointsKind:
        if kind in (PointsKind.OPENING, PointsKind.EXPIRE):
            raise ValueError("OPENING and EXPIRE entries are written by the ledger itself")
        return kind

    @field_validator("amount")
    @classmethod
    def _signed(cls, amount: int, info: ValidationInfo) -> int:
        if amount == 0:
            raise ValueError("must not be 0")
        if info.data.get("kind") in (PointsKind.EARN, PointsKind.SPEND) and amount < 0:
            raise ValueError("must be positive (SPEND takes the points away)")
        return amount

    @field_validator("expires_at")
    @classmethod
    def _expiring(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        _aware(value)
        if info.data.get("kind") is PointsKind.SPEND or info.data.get("amount", 0) < 0:
            raise ValueError("only points that are added can expire")
        return value

    @field_validator("reason")
    @classmethod
    def _explained(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("kind") is PointsKind.ADJUST:
            raise ValueError("an ADJUST needs a reason")
        return value


def request_fingerprint(body: dict[str, Any]) -> str:
    """A fingerprint of what a request asks for (an idempotency key reused for another request conflicts)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


# --- ports ------------------------------------------------------------------------------------


class GroupBuyRepository(Protocol):
    async def open(self, tenant: str, cmd: OpenGroupBuy) -> GroupBuy: ...
    async def join(self, tenant: str, group_buy_id: str, member_id: str) -> GroupBuy: ...
    async def get(self, tenant: str, group_buy_id: str) -> GroupBuy | None: ...
    async def record_refund(self, tenant: str, group_buy_id: str, member_id: str) -> GroupBuy: ...
    async def sweep(self, *, at: datetime | None = None, tenant: str | None = None, limit: int = 500) -> int: ...


class CouponRepository(Protocol):
    async def issue(self, tenant: str, cmd: IssueCoupon) -> tuple[Coupon, bool]: ...
    async def redeem(self, tenant: str, coupon_id: str, member_id: str) -> Coupon: ...
    async def get(self, tenant: str, coupon_id: str) -> Coupon | None: ...
    async def of_member(self, tenant: str, member_id: str, first: int, after: str | None) -> Page[Coupon] | None: ...
    async def count_of(self, tenant: str, member_id: str) -> int: ...


class PointsRepository(Protocol):
    async def change(self, tenant: str, cmd: PointsChange) -> tuple[PointsEntry, bool]: ...
    async def balance(self, tenant: str, member_id: str) -> int | None: ...
    async def ledger(self, tenant: str, member_id: str, first: int, after: str | None) -> Page[PointsEntry] | None: ...
    async def entry_count(self, tenant: str, member_id: str) -> int: ...
    async def sweep(self, *, at: datetime | None = None, tenant: str | None = None, limit: int = 500) -> int: ...

