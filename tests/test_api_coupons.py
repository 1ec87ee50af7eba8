"""Coupons (优惠券) over GraphQL: issue once per key, redeem exactly once, expiry, permissions, typed errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graph.client import GraphClient
from tests.helpers import register

ISSUE = """
mutation($input: IssueCouponInput!) {
  issueCoupon(input: $input) {
    __typename
    ... on CouponPayload { created coupon { id kind amountOff { amount currency } percentOff status expiresAt
                                            redeemedAt campaignId idempotencyKey memberId } }
    ... on UserError { code field message }
  }
}
"""
REDEEM = """
mutation($c: ID!, $as: ID) {
  redeemCoupon(couponId: $c, asMemberId: $as) {
    __typename
    ... on CouponPayload { coupon { id status redeemedAt } }
    ... on UserError { code field message }
  }
}
"""
LIST = """
query($m: ID!, $first: Int, $after: String) {
  memberCoupons(memberId: $m, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } nodes { id status percentOff }
  }
}
"""


def later(hours: float = 24) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


#: one expiry for the whole run, so a replayed request is the same request
EXPIRES = later(48)


async def issue(api: Any, token: str, member: str, key: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("percentOff", 10)
    fields.setdefault("expiresAt", EXPIRES)
    data = await api.ok(ISSUE, {"input": {"memberId": member, "idempotencyKey": key, **fields}},
                        token=token)
    result: dict[str, Any] = data["issueCoupon"]
    return result


async def stored(graph: GraphClient, tenant: str) -> list[dict[str, Any]]:
    rows = await graph.read("""MATCH (m:Member)-[:HOLDS]->(c:Coupon {tenantId: $tenant})
                               RETURN m.id AS member, c.status AS status, c.idempotencyKey AS key ORDER BY key""",
                            tenant=tenant)
    return [dict(r) for r in rows]


async def test_a_coupon_is_issued_once_per_key(api: Any, operator_token: str, graph: GraphClient, tenant: str) -> None:
    member = (await register(api, operator_token, "Holder"))["id"]

    first = await issue(api, operator_token, member, "coupon-0001", percentOff=None, amountOff={"amount": 500})
    again = await issue(api, operator_token, member, "coupon-0001", percentOff=None, amountOff={"amount": 500})
    other = await issue(api, operator_token, member, "coupon-0001", percentOff=15)

    coupon = first["coupon"]
    assert first["created"] is True and again["created"] is False
    assert again["coupon"]["id"] == coupon["id"]
    assert (coupon["kind"], coupon["amountOff"], coupon["percentOff"], coupon["status"]) == (
        "AMOUNT_OFF", {"amount": 500, "currency": "CNY"}, None, "ISSUED")
    assert coupon["memberId"] == member and coupon["redeemedAt"] is None
    assert (other["__typename"], other["code"], other["field"]) == ("ConflictError", "IDEMPOTENCY_CONFLICT",
                                                                    "input.idempotencyKey")
    assert await stored(graph, tenant) == [{"member": member, "status": "ISSUED", "key": "coupon-0001"}]


async def test_concurrent_issues_with_one_key_make_one_coupon(api: Any, operator_token: str, graph: GraphClient,
                                                              tenant: str) -> None:
    member = (await register(api, operator_token, "Holder"))["id"]

    answers = await asyncio.gather(*(issue(api, operator_token, member, "coupon-race") for _ in range(8)))

    assert {a["coupon"]["id"] for a in answers if a["__typename"] == "CouponPayload"} == {answers[0]["coupon"]["id"]}
    assert sorted(a["created"] for a in answers) == [False] * 7 + [True]
    assert len(await stored(graph, tenant)) == 1


async def test_a_coupon_redeems_exactly_once_even_concurrently(api: Any, operator_token: str,
                                                               graph: GraphClient, tenant: str) -> None:
    member = (await register(api, operator_token, "Holder"))["id"]
    coupon = (await issue(api, operator_token, member, "coupon-0002"))["coupon"]["id"]
    token = api.token(member=member)

    answers = await asyncio.gather(*(api.ok(REDEEM, {"c": coupon}, token=token) for _ in range(2)))
    late = (await api.ok(REDEEM, {"c": coupon}, token=token))["redeemCoupon"]

    kinds = sorted(a["redeemCoupon"]["__typename"] for a in answers)
    assert kinds == ["CampaignRuleError", "CouponPayload"]
    won = next(a["redeemCoupon"] for a in answers if a["redeemCoupon"]["__typename"] == "CouponPayload")
    lost = next(a["redeemCoupon"] for a in answers if a["redeemCoupon"]["__typename"] != "CouponPayload")
    assert won["coupon"]["status"] == "REDEEMED" and won["coupon"]["redeemedAt"] is not None
    assert (lost["code"], lost["field"]) == ("COUPON_REDEEMED", "couponId")
    assert late["code"] == "COUPON_REDEEMED"
    assert [c["status"] for c in await stored(graph, tenant)] == ["REDEEMED"]


async def test_ten_concurrent_redemptions_make_one(api: Any, operator_token: str) -> None:
    member = (await register(api, operator_token, "Holder"))["id"]
    coupon = (await issue(api, operator_token, member, "coupon-0003"))["coupon"]["id"]

    answers = await asyncio.gather(*(api.ok(REDEEM, {"c": coupon, "as": member}, token=operator_token) for _ in range(10)))

    codes = sorted(a["redeemCoupon"].get("code", "OK") for a in answers)
    assert codes == ["COUPON_REDEEMED"] * 9 + ["OK"]


async def test_an_expired_coupon_cannot_be_redeemed(api: Any, operator_token: str, graph: GraphClient,
                                                    tenant: str) -> None:
    member = (await register(api, operator_token, "Holder"))["id"]
    coupon = (await issue(api, operator_token, member, "coupon-0004"))["coupon"]["id"]

    async def expire(tx: Any) -> None:
        await graph.run(tx, "MATCH (c:Coupon {id: $id}) SET c.expiresAt = $at", id=coupon,
                        at=datetime.now(UTC) - timedelta(seconds=1))

    await graph.write(expire)
    refused = (await api.ok(REDEEM, {"c": coupon}, token=api.token(member=member)))["redeemCoupon"]
    listed = (await api.ok(LIST, {"m": member}, token=api.token(member=member)))["memberCoupons"]

    assert (refused["__typename"], refused["code"], refused["field"]) == ("CampaignRuleError", "COUPON_EXPIRED", "couponId")
    assert [c["status"] for c in listed["nodes"]] == ["EXPIRED"]
    assert [c["status"] for c in await stored(graph, tenant)] == ["ISSUED"]


async def test_members_redeem_and_list_only_their_own_coupons(api: Any, operator_token: str, graph: GraphClient,
                                                              tenant: str) -> None:
    owner = (await register(api, operator_token, "Owner"))["id"]
    other = (await register(api, operator_token, "Other"))["id"]
    for i in range(3):
        await issue(api, operator_token, owner, f"coupon-list-{i}", percentOff=10 + i)

    page1 = (await api.ok(LIST, {"m": owner, "first": 2}, token=api.token(member=owner)))["memberCoupons"]
    page2 = (await api.ok(LIST, {"m": owner, "first": 2, "after": page1["pageInfo"]["endCursor"]},
                          token=api.token("analyst")))["memberCoupons"]
    coupon = page1["nodes"][0]["id"]
    stolen = (await api.ok(REDEEM, {"c": coupon}, token=api.token(member=other)))["redeemCoupon"]
    as_owner = (await api.ok(REDEEM, {"c": coupon, "as": owner}, token=api.token(member=other)))["redeemCoupon"]
    peek = await api(LIST, {"m": owner}, token=api.token(member=other))
    by_member = await issue(api, api.token(member=owner), owner, "coupon-self-1")

    assert page1["totalCount"] == 3 and page1["pageInfo"]["hasNextPage"] is True
    assert [c["percentOff"] for c in page1["nodes"] + page2["nodes"]] == [12, 11, 10]
    assert page2["pageInfo"]["hasNextPage"] is False
    assert (stolen["code"], stolen["field"]) == ("NOT_FOUND", "couponId")
    assert (as_owner["code"], as_owner["field"]) == ("FORBIDDEN", "asMemberId")
    assert peek["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert by_member["code"] == "FORBIDDEN"
    assert {c["status"] for c in await stored(graph, tenant)} == {"ISSUED"}


@pytest.mark.parametrize(("fields", "code", "field"), [
    ({"percentOff": None}, "VALIDATION_FAILED", "input.percentOff"),
    ({"percentOff": 0}, "VALIDATION_FAILED", "input.percentOff"),
    ({"amountOff": {"amount": 100}}, "VALIDATION_FAILED", "input.percentOff"),
    ({"idempotencyKey": "x"}, "VALIDATION_FAILED", "input.idempotencyKey"),
    ({"expiresAt": "2020-01-01T00:00:00+00:00"}, "VALIDATION_FAILED", "input.expiresAt"),
    ({"memberId": "mem_nothing"}, "NOT_FOUND", "input.memberId"),
    ({"campaignId": "cpg_nothing"}, "NOT_FOUND", "input.campaignId"),
])
async def test_bad_coupons_are_refused_and_write_nothing(api: Any, operator_token: str, graph: GraphClient,
                                                         tenant: str, fields: dict[str, Any], code: str,
                                                         field: str) -> None:
    member = (await register(api, operator_token, "Holder"))["id"]
    key = fields.pop("idempotencyKey", "coupon-bad-1")

    result = await issue(api, operator_token, fields.pop("memberId", member), key, **fields)

    assert (result["code"], result["field"]) == (code, field)
    rows = await graph.read("MATCH (c:Coupon {tenantId: $tenant}) RETURN count(c) AS n", tenant=tenant)
    assert rows[0]["n"] == 0


async def test_group_buys_and_coupons_read_as_nodes(api: Any, operator_token: str) -> None:
    from tests.test_api_group_buys import open_group, product

    holder = (await register(api, operator_token, "Holder"))["id"]
    other = (await register(api, operator_token, "Other"))["id"]
    coupon = (await issue(api, operator_token, holder, "coupon-node-1"))["coupon"]["id"]
    group = (await open_group(api, operator_token, holder, await product(api, operator_token), 2))["groupBuy"]["id"]
    query = "query($id: ID!) { node(id: $id) { __typename id } }"

    mine = await api.ok(query, {"id": coupon}, token=api.token(member=holder))
    theirs = await api.ok(query, {"id": coupon}, token=api.token(member=other))
    shared = await api.ok(query, {"id": group}, token=api.token(member=other))
    entry = await api.ok(query, {"id": "pts_0123456789abcdef"}, token=operator_token)

    assert mine == {"node": {"__typename": "Coupon", "id": coupon}}
    assert theirs == {"node": None} and entry == {"node": None}
    assert shared == {"node": {"__typename": "GroupBuy", "id": group}}
