"""Campaign mechanics over GraphQL: group-buys (拼团), coupons (优惠券) and the points ledger (积分).

Members act for themselves (open and join group-buys, redeem their coupons, spend their points,
read their coupons and ledger); operators, integrators and admins issue coupons, add or adjust
points and act for any member; staff read anyone's. The rules live in :mod:`domain.rewards`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from domain import rewards as dr
from domain.auth import WRITER_ROLES, Principal
from domain.commands import parse
from domain.errors import NotFound, PermissionDenied
from domain.ids import Kind, require_id
from resolvers.commerce import MoneyInput, Product
from resolvers.common import (
    CampaignRuleError,
    ConflictError,
    Connection,
    Money,
    Node,
    NotFoundError,
    PermissionError,
    ValidationError,
    XInfo,
    connection,
    connection_args,
    guarded,
)
from resolvers.members import Member

if TYPE_CHECKING:
    from resolvers.campaigns import Campaign

__all__ = ["Coupon", "GroupBuy", "PointsEntry", "RewardsMutation", "RewardsQuery", "load_reward"]

CampaignRef = Annotated["Campaign", strawberry.lazy("resolvers.campaigns")]

GroupBuyStatus = strawberry.enum(dr.GroupBuyStatus, description=(
    "OPEN until every seat is taken (SUCCEEDED) or expiresAt passes with a free seat (FAILED). "
    "Both are final. An OPEN group past its expiry reads FAILED even before the sweep records it."))
SeatState = strawberry.enum(dr.SeatState, description=(
    "JOINED while the group is open; CONFIRMED when it succeeds; REFUND_PENDING when it fails, "
    "until the refund is recorded (REFUNDED)."))
CouponKind = strawberry.enum(dr.CouponKind, description="AMOUNT_OFF: a fixed amount off; PERCENT_OFF: a share off.")
CouponStatus = strawberry.enum(dr.CouponStatus, description=(
    "ISSUED (redeemable), REDEEMED (exactly once), EXPIRED (issued but past expiresAt: not redeemable)."))
PointsKind = strawberry.enum(dr.PointsKind, description=(
    "OPENING: the points a member had before the ledger; EARN and positive ADJUST add a lot (which may "
    "expire); SPEND and negative ADJUST consume lots first-expiring-first; EXPIRE writes off what is left "
    "of a lot at its expiry."))


async def _member(info: XInfo, member_id: str) -> Member | None:
    found = await info.context.loaders.member.load(member_id)
    return None if found is None else Member.from_domain(found)


def _self_or_staff(principal: Principal, member_id: str, *, field: str) -> str:
    """The tenant, when the caller may read *member_id*'s rewards (the member itself, or staff)."""
    tenant = principal.require_tenant()
    if not principal.is_staff and principal.member_id != member_id:
        raise PermissionDenied("members can only read their own coupons and points", field=field)
    return tenant


@strawberry.type(description="One seat of a group-buy.")
class GroupBuySeat:
    joined_at: datetime
    state: SeatState  # type: ignore[valid-type]
    leader: bool = strawberry.field(description="The leader opened the group and holds its first seat.")
    _member_id: strawberry.Private[str]

    @strawberry.field(description="The member holding the seat.")
    async def member(self, info: XInfo) -> Member | None:
        return await _member(info, self._member_id)


@strawberry.type(description="A group-buy (拼团): `requiredSize` members buy together before `expiresAt`, or it "
                 "fails and every seat is refunded. Exactly `requiredSize` seats are ever taken.")
class GroupBuy(Node):
    id: strawberry.ID
    status: GroupBuyStatus  # type: ignore[valid-type]
    required_size: int
    seats_taken: int
    leader_id: strawberry.ID = strawberry.field(description="The member who opened it (it holds the first seat).")
    expires_at: datetime
    created_at: datetime
    completed_at: datetime | None = strawberry.field(description="When the last seat was taken (SUCCEEDED).")
    failed_at: datetime | None = strawberry.field(description="When it failed (its expiry).")
    seats: list[GroupBuySeat] = strawberry.field(description="The seats, leader first, then by joining time.")
    _g: strawberry.Private[dr.GroupBuy]

    @classmethod
    def from_domain(cls, g: dr.GroupBuy) -> GroupBuy:
        return cls(
            id=strawberry.ID(g.id), status=g.status, required_size=g.required_size, seats_taken=g.seats_taken,
            leader_id=strawberry.ID(g.leader_id),
            expires_at=g.expires_at, created_at=g.created_at, completed_at=g.completed_at, failed_at=g.failed_at,
            seats=[GroupBuySeat(joined_at=s.joined_at, state=s.state, leader=s.leader, _member_id=s.member_id)
                   for s in g.seats],
            _g=g,
        )

    @strawberry.field(description="Seats still free (0 once it succeeded or failed).")
    def seats_left(self) -> int:
        return self._g.required_size - self._g.seats_taken if self._g.status is dr.GroupBuyStatus.OPEN else 0

    @strawberry.field(description="The product bought together.")
    async def product(self, info: XInfo) -> Product | None:
        found = await info.context.loaders.product.load(self._g.product_id)
        return None if found is None else Product.from_domain(found)

    @strawberry.field(description="The campaign it belongs to, if any.")
    async def campaign(self, info: XInfo) -> CampaignRef | None:
        from resolvers.campaigns import Campaign

        if self._g.campaign_id is None:
            return None
        found = await info.context.loaders.campaign.load(self._g.campaign_id)
        return None if found is None else Campaign.from_domain(found)


@strawberry.type(description="A coupon (优惠券) held by a member: redeemable once, before expiresAt.")
class Coupon(Node):
    id: strawberry.ID
    kind: CouponKind  # type: ignore[valid-type]
    amount_off: Money | None
    percent_off: int | None = strawberry.field(description="1–100 percent off (PERCENT_OFF coupons).")
    status: CouponStatus  # type: ignore[valid-type]
    expires_at: datetime
    issued_at: datetime
    redeemed_at: datetime | None
    campaign_id: strawberry.ID | None
    idempotency_key: str
    member_id: strawberry.ID = strawberry.field(description="The member holding it.")

    @classmethod
    def from_domain(cls, c: dr.Coupon) -> Coupon:
        return cls(
            id=strawberry.ID(c.id), kind=c.kind, amount_off=None if c.amount_off is None else Money.from_domain(c.amount_off),
            percent_off=c.percent_off, status=c.status, expires_at=c.expires_at, issued_at=c.issued_at,
            redeemed_at=c.redeemed_at, campaign_id=None if c.campaign_id is None else strawberry.ID(c.campaign_id),
            idempotency_key=c.idempotency_key, member_id=strawberry.ID(c.member_id),
        )



@strawberry.type(description="One entry of a member's points ledger (积分明细); entries are never changed or removed, "
                 "except `remaining`, which tracks what is left of a positive entry (a lot).")
class PointsEntry:
    id: strawberry.ID
    kind: PointsKind  # type: ignore[valid-type]
    amount: int = strawberry.field(description="Signed: earnings positive, spending and expiry negative.")
    balance_after: int = strawberry.field(description="The member's balance right after this entry.")
    at: datetime
    seq: int = strawberry.field(description="The entry's position in the member's ledger (1, 2, …).")
    idempotency_key: str
    reason: str | None
    expires_at: datetime | None = strawberry.field(description="When what is left of this lot expires.")
    remaining: int | None = strawberry.field(description="Points left of this lot (positive entries only).")

    @classmethod
    def from_domain(cls, e: dr.PointsEntry) -> PointsEntry:
        return cls(id=strawberry.ID(e.id), kind=e.kind, amount=e.amount, balance_after=e.balance_after, at=e.at,
                   seq=e.seq, idempotency_key=e.idempotency_key, reason=e.reason, expires_at=e.expires_at,
                   remaining=e.remaining)


async def load_reward(info: XInfo, id: str, kind: Kind) -> Node | None:
    """``node(id)`` for a group-buy, or a coupon its holder or staff may see (points entries are not nodes)."""
    tenant = info.context.principal.require_tenant()
    if kind is Kind.GROUP_BUY:
        group = await info.context.repos.group_buys.get(tenant, id)
        return None if group is None else GroupBuy.from_domain(group)
    if kind is Kind.COUPON:
        coupon = await info.context.repos.coupons.get(tenant, id)
        principal = info.context.principal
        if coupon is None or not (principal.is_staff or principal.member_id == coupon.member_id):
            return None
        return Coupon.from_domain(coupon)
    return None


@strawberry.type
class RewardsQuery:
    @strawberry.field(description="A group-buy by id, or null. Anyone in the tenant may read it (it is shared "
                      "to gather members).")
    async def group_buy(self, info: XInfo, id: strawberry.ID) -> GroupBuy | None:
        require_id(id, Kind.GROUP_BUY, field="id")
        tenant = info.context.principal.require_tenant()
        found = await info.context.repos.group_buys.get(tenant, id)
        return None if found is None else GroupBuy.from_domain(found)

    @strawberry.field(description="A member's coupons, newest first (the member itself, or staff).")
    async def member_coupons(self, info: XInfo, member_id: strawberry.ID, first: int | None = 20,
                             after: str | None = None) -> Connection[Coupon]:
        require_id(member_id, Kind.MEMBER, field="memberId")
        tenant = _self_or_staff(info.context.principal, member_id, field="memberId")
        size = connection_args(first)
        page = await info.context.repos.coupons.of_member(tenant, member_id, size, after)
        if page is None:
            raise NotFound(f"no member {member_id!r}", field="memberId")
        coupons = info.context.repos.coupons

        async def count() -> int:
            return await coupons.count_of(tenant, member_id)

        return connection(page, Coupon.from_domain, count)

    @strawberry.field(description="A member's points ledger, newest entry first (the member itself, or staff). "
                      "The entries sum to the member's balance.")
    async def points_ledger(self, info: XInfo, member_id: strawberry.ID, first: int | None = 20,
                            after: str | None = None) -> Connection[PointsEntry]:
        require_id(member_id, Kind.MEMBER, field="memberId")
        tenant = _self_or_staff(info.context.principal, member_id, field="memberId")
        size = connection_args(first)
        points = info.context.repos.points
        page = await points.ledger(tenant, member_id, size, after)
        if page is None:
            raise NotFound(f"no member {member_id!r}", field="memberId")

        async def count() -> int:
            return await points.entry_count(tenant, member_id)

        return connection(page, PointsEntry.from_domain, count)

    @strawberry.field(description="A member's spendable points balance (积分余额): the sum of the ledger, less lots "
                      "past their expiry that the sweep has not written off yet (the member itself, or staff).")
    async def points_balance(self, info: XInfo, member_id: strawberry.ID) -> int:
        require_id(member_id, Kind.MEMBER, field="memberId")
        tenant = _self_or_staff(info.context.principal, member_id, field="memberId")
        found = await info.context.repos.points.balance(tenant, member_id)
        if found is None:
            raise NotFound(f"no member {member_id!r}", field="memberId")
        return found


@strawberry.input
class OpenGroupBuyInput:
    product_id: strawberry.ID
    required_size: int = strawberry.field(description="Seats, the leader's included: 2–100.")
    expires_at: datetime = strawberry.field(description="When it fails unless full; in the future.")
    campaign_id: strawberry.ID | None = strawberry.field(default=None, description="A running campaign it belongs to.")


@strawberry.input
class IssueCouponInput:
    member_id: strawberry.ID
    expires_at: datetime = strawberry.field(description="Redeemable until then; in the future.")
    idempotency_key: str = strawberry.field(description="Required. The same key again returns the original coupon.")
    amount_off: MoneyInput | None = strawberry.field(default=None, description="A fixed amount off (give this or percentOff).")
    percent_off: int | None = strawberry.field(default=None, description="1–100 percent off (give this or amountOff).")
    campaign_id: strawberry.ID | None = strawberry.field(default=None, description="The campaign it is issued in.")


@strawberry.input
class ChangePointsInput:
    member_id: strawberry.ID
    kind: PointsKind = strawberry.field(description="EARN, SPEND or ADJUST (OPENING and EXPIRE are the ledger's own).")  # type: ignore[valid-type]
    amount: int = strawberry.field(description="EARN and SPEND: positive; ADJUST: signed, not 0.")
    idempotency_key: str = strawberry.field(description="Required. The same key again returns the original entry.")
    expires_at: datetime | None = strawberry.field(default=None, description="When added points expire (EARN, ADJUST > 0).")
    reason: str | None = strawberry.field(default=None, description="Why (required for ADJUST).")


@strawberry.type
class GroupBuyPayload:
    group_buy: GroupBuy


@strawberry.type
class CouponPayload:
    coupon: Coupon
    created: bool = strawberry.field(description="False when this call wrote nothing (an idempotency key seen before).")


@strawberry.type
class PointsPayload:
    entry: PointsEntry
    created: bool = strawberry.field(description="False when this idempotency key was seen before (nothing written).")
    balance: int = strawberry.field(description="The member's balance after this call.")


_Errors = ValidationError | NotFoundError | PermissionError | ConflictError | CampaignRuleError
GroupBuyResult = Annotated[GroupBuyPayload | _Errors, strawberry.union("GroupBuyResult")]
CouponResult = Annotated[CouponPayload | _Errors, strawberry.union("CouponResult")]
PointsResult = Annotated[PointsPayload | _Errors, strawberry.union("PointsResult")]


@strawberry.type
class RewardsMutation:
    @strawberry.mutation(description="Open a group-buy as its leader (the leader takes the first seat).")
    async def open_group_buy(self, info: XInfo, input: OpenGroupBuyInput,
                             as_member_id: strawberry.ID | None = None) -> GroupBuyResult:
        async def work() -> GroupBuyPayload:
            principal = info.context.principal
            tenant = principal.require_tenant()
            leader = principal.acting_member(as_member_id, field="asMemberId")
            cmd = parse(dr.OpenGroupBuy, {**vars(input), "leader_id": leader})
            return GroupBuyPayload(group_buy=GroupBuy.from_domain(await info.context.repos.group_buys.open(tenant, cmd)))

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Take a seat in a group-buy (once per member). Refused with GROUP_BUY_FULL when "
                         "every seat is taken, GROUP_BUY_CLOSED when it expired, ALREADY_JOINED for a second seat.")
    async def join_group_buy(self, info: XInfo, group_buy_id: strawberry.ID,
                             as_member_id: strawberry.ID | None = None) -> GroupBuyResult:
        async def work() -> GroupBuyPayload:
            principal = info.context.principal
            tenant = principal.require_tenant()
            member = principal.acting_member(as_member_id, field="asMemberId")
            require_id(group_buy_id, Kind.GROUP_BUY, field="groupBuyId")
            return GroupBuyPayload(group_buy=GroupBuy.from_domain(
                await info.context.repos.group_buys.join(tenant, group_buy_id, member)))

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Record that a failed group-buy's seat was refunded: REFUND_PENDING → REFUNDED "
                         "(operator, integrator, admin).")
    async def record_group_buy_refund(self, info: XInfo, group_buy_id: strawberry.ID,
                                      member_id: strawberry.ID) -> GroupBuyResult:
        async def work() -> GroupBuyPayload:
            tenant = info.context.principal.require_role(WRITER_ROLES, "recording refunds")
            require_id(group_buy_id, Kind.GROUP_BUY, field="groupBuyId")
            require_id(member_id, Kind.MEMBER, field="memberId")
            return GroupBuyPayload(group_buy=GroupBuy.from_domain(
                await info.context.repos.group_buys.record_refund(tenant, group_buy_id, member_id)))

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Issue a coupon to a member, once per idempotency key (operator, integrator, admin).")
    async def issue_coupon(self, info: XInfo, input: IssueCouponInput) -> CouponResult:
        async def work() -> CouponPayload:
            tenant = info.context.principal.require_role(WRITER_ROLES, "issuing coupons")
            cmd = parse(dr.IssueCoupon, dataclasses.asdict(input))
            coupon, created = await info.context.repos.coupons.issue(tenant, cmd)
            return CouponPayload(coupon=Coupon.from_domain(coupon), created=created)

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Redeem one of the member's coupons: exactly once, before it expires "
                         "(COUPON_REDEEMED, COUPON_EXPIRED otherwise).")
    async def redeem_coupon(self, info: XInfo, coupon_id: strawberry.ID,
                            as_member_id: strawberry.ID | None = None) -> CouponResult:
        async def work() -> CouponPayload:
            principal = info.context.principal
            tenant = principal.require_tenant()
            member = principal.acting_member(as_member_id, field="asMemberId")
            require_id(coupon_id, Kind.COUPON, field="couponId")
            coupon = await info.context.repos.coupons.redeem(tenant, coupon_id, member)
            return CouponPayload(coupon=Coupon.from_domain(coupon), created=True)

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Add an entry to a member's points ledger, once per idempotency key. Members may "
                         "SPEND their own points; operators, integrators and admins may EARN, SPEND or ADJUST anyone's. "
                         "The balance never goes negative (INSUFFICIENT_POINTS).")
    async def change_points(self, info: XInfo, input: ChangePointsInput) -> PointsResult:
        async def work() -> PointsPayload:
            principal = info.context.principal
            tenant = principal.require_tenant()
            cmd = parse(dr.PointsChange, dataclasses.asdict(input))
            if not principal.has_any(WRITER_ROLES):
                if cmd.kind is not dr.PointsKind.SPEND:
                    raise PermissionDenied("members can only spend points; EARN and ADJUST need an operator, "
                                           "integrator or admin", field="input.kind")
                if principal.member_id != cmd.member_id:
                    raise PermissionDenied("members can only spend their own points", field="input.memberId")
            entry, created = await info.context.repos.points.change(tenant, cmd)
            balance = await info.context.repos.points.balance(tenant, cmd.member_id)
            return PointsPayload(entry=PointsEntry.from_domain(entry), created=created, balance=balance or 0)

        return await guarded(work)  # type: ignore[return-value]
