"""Coupons (优惠券): issued to a member once per idempotency key, redeemed exactly once before expiry.

``(Member)-[:HOLDS]->(:Coupon {id, tenantId, memberId, kind, amountOff?, currency?, percentOff?,
expiresAt, issuedAt, status, campaignId?, redeemedAt?, idempotencyKey, requestHash})``.

Redeeming is one conditional statement that matches the coupon only while it is ISSUED and
unexpired and sets it REDEEMED: two concurrent redemptions both write the coupon record, so
ArcadeDB's MVCC commits one and the other retries, finds it REDEEMED and is refused with
``COUPON_REDEEMED`` (tests/test_api_coupons.py). Issuing follows recordPurchase: the key is
looked up inside the write transaction, a (tenantId, idempotencyKey) constraint backs it, and
the same key for a different request is an ``IDEMPOTENCY_CONFLICT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.errors import AlreadyExists, IdempotencyConflict, NotFound, ValidationFailed
from domain.ids import Kind, new_id
from domain.models import Money, Page
from domain.rewards import (
    Coupon,
    CouponKind,
    CouponStatus,
    IssueCoupon,
    coupon_status,
    redeem_refusal,
    request_fingerprint,
)
from graph.campaigns import CAMPAIGN_WINDOW
from graph.client import GraphClient, Tx, now, to_datetime
from graph.cypher import cypher
from graph.paging import page_of, time_after, time_key

__all__ = ["GraphCoupons", "coupon_from"]

COUPON_BY_KEY = cypher(
    """
    MATCH (c:Coupon {tenantId: $tenant, idempotencyKey: $key})
    RETURN c
    """
)
ISSUE_COUPON = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    CREATE (m)-[:HOLDS {at: $props.issuedAt}]->(c:Coupon)
    SET c = $props
    RETURN c
    """
)
REDEEM_COUPON = cypher(
    """
    MATCH (c:Coupon {id: $id}) WITH * WHERE c.tenantId = $tenant
    SET c._lock = true REMOVE c._lock  // lock first, then check (see JOIN_SEAT in graph/group_buys.py)
    WITH * WHERE c.memberId = $memberId AND c.status = 'ISSUED' AND c.expiresAt > $now
    SET c.status = 'REDEEMED', c.redeemedAt = $now
    RETURN c
    """
)
COUPON_BY_ID = cypher(
    """
    MATCH (c:Coupon {id: $id}) WITH * WHERE c.tenantId = $tenant
    RETURN c
    """
)
MEMBER_COUPONS = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    CALL (m) {
      MATCH (m)-[:HOLDS]->(c:Coupon)
      WHERE $afterAt IS NULL OR c.issuedAt < $afterAt OR (c.issuedAt = $afterAt AND c.id < $afterId)
      WITH c ORDER BY c.issuedAt DESC, c.id DESC LIMIT $limit
      RETURN collect(c) AS coupons
    }
    RETURN coupons
    """
)

COUPON_COUNT = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    RETURN COUNT { (m)-[:HOLDS]->(:Coupon) } AS n
    """
)


def coupon_from(c: Any, *, at: datetime | None = None) -> Coupon:
    """A stored coupon as read at *at* (an ISSUED coupon past its expiry reads EXPIRED)."""
    expires_at = to_datetime(c["expiresAt"])
    amount = c.get("amountOff")
    return Coupon(
        id=c["id"], tenant_id=c["tenantId"], member_id=c["memberId"], kind=CouponKind(c["kind"]), expires_at=expires_at,
        issued_at=to_datetime(c["issuedAt"]),
        status=coupon_status(CouponStatus(c["status"]), expires_at=expires_at, now=at or now()),
        idempotency_key=c["idempotencyKey"],
        amount_off=None if amount is None else Money(int(amount), str(c["currency"])),
        percent_off=None if c.get("percentOff") is None else int(c["percentOff"]),
        campaign_id=c.get("campaignId"),
        redeemed_at=None if c.get("redeemedAt") is None else to_datetime(c["redeemedAt"]),
    )


def _fingerprint(cmd: IssueCoupon) -> str:
    return request_fingerprint(cmd.model_dump(mode="json", exclude={"idempotency_key"}))


def _original(c: Any, fingerprint: str) -> Coupon:
    if c.get("requestHash") != fingerprint:
        raise IdempotencyConflict("this idempotency key was already used for a different coupon",
                                  field="input.idempotencyKey")
    return coupon_from(c)


@dataclass
class GraphCoupons:
    graph: GraphClient

    async def issue(self, tenant: str, cmd: IssueCoupon) -> tuple[Coupon, bool]:
        """Issue *cmd* once per idempotency key; return the coupon and whether this call issued it."""
        fingerprint = _fingerprint(cmd)
        at = now()
        if cmd.expires_at <= at:
            raise ValidationFailed("input.expiresAt must be in the future", field="input.expiresAt")
        props: dict[str, Any] = {
            "id": new_id(Kind.COUPON), "tenantId": tenant, "memberId": cmd.member_id, "kind": cmd.kind.value,
            "expiresAt": cmd.expires_at, "issuedAt": at, "status": CouponStatus.ISSUED.value,
            "idempotencyKey": cmd.idempotency_key, "requestHash": fingerprint,
        }
        if cmd.amount_off is not None:
            props["amountOff"], props["currency"] = cmd.amount_off.amount, cmd.amount_off.currency
        if cmd.percent_off is not None:
            props["percentOff"] = cmd.percent_off
        if cmd.campaign_id is not None:
            props["campaignId"] = cmd.campaign_id

        async def work(tx: Tx) -> tuple[Coupon, bool]:
            prior = await self.graph.run_one(tx, COUPON_BY_KEY, tenant=tenant, key=cmd.idempotency_key)
            if prior is not None:
                return _original(prior["c"], fingerprint), False
            if cmd.campaign_id is not None:
                found = await self.graph.run_one(tx, CAMPAIGN_WINDOW, tenant=tenant, campaignId=cmd.campaign_id)
                if found is None:
                    raise NotFound(f"no campaign {cmd.campaign_id!r}", field="input.campaignId")
            row = await self.graph.run_one(tx, ISSUE_COUPON, tenant=tenant, memberId=cmd.member_id, props=props)
            if row is None:
                raise NotFound(f"no member {cmd.member_id!r}", field="input.memberId")
            return coupon_from(row["c"], at=at), True

        try:
            return await self.graph.write(work)
        except AlreadyExists:
            # a concurrent request with the same key committed first: answer with its coupon
            async def again(tx: Tx) -> Any:
                return await self.graph.run_one(tx, COUPON_BY_KEY, tenant=tenant, key=cmd.idempotency_key)

            winner = await self.graph.write(again)
            if winner is None:
                raise
            return _original(winner["c"], fingerprint), False

    async def redeem(self, tenant: str, coupon_id: str, member_id: str) -> Coupon:
        """Redeem the member's coupon exactly once, before it expires."""
        async def work(tx: Tx) -> Coupon:
            at = now()
            row = await self.graph.run_one(tx, REDEEM_COUPON, tenant=tenant, id=coupon_id, memberId=member_id, now=at)
            if row is not None:
                return coupon_from(row["c"], at=at)
            found = await self.graph.run_one(tx, COUPON_BY_ID, tenant=tenant, id=coupon_id)
            if found is None or found["c"]["memberId"] != member_id:  # another member's coupon: not theirs to see
                raise NotFound(f"member {member_id!r} holds no coupon {coupon_id!r}", field="couponId")
            c = found["c"]
            refusal = redeem_refusal(CouponStatus(c["status"]), expires_at=to_datetime(c["expiresAt"]), now=at)
            assert refusal is not None, "the conditional redeem matched nothing, so some rule refuses it"
            raise refusal

        return await self.graph.write(work)

    async def get(self, tenant: str, coupon_id: str) -> Coupon | None:
        row = await self.graph.read_one(COUPON_BY_ID, tenant=tenant, id=coupon_id)
        return None if row is None else coupon_from(row["c"])

    async def of_member(self, tenant: str, member_id: str, first: int, after: str | None) -> Page[Coupon] | None:
        """The member's coupons, newest first (None: no such member)."""
        row = await self.graph.read_one(MEMBER_COUPONS, tenant=tenant, memberId=member_id, limit=first + 1,
                                        **time_after(after).params())
        if row is None:
            return None
        at = now()
        return page_of(list(row["coupons"]), first, lambda c: coupon_from(c, at=at),
                       lambda c: time_key(c["issuedAt"], c["id"]))

    async def count_of(self, tenant: str, member_id: str) -> int:
        row = await self.graph.read_one(COUPON_COUNT, tenant=tenant, memberId=member_id)
        return 0 if row is None else int(row["n"])
