"""Campaign results over GraphQL, with known figures: spread (K-factor), GMV without refunds, ROI,
group-buys and coupons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graph.client import GraphClient
from tests.helpers import register
from tests.test_api_campaigns import CREATE, SENT
from tests.test_api_coupons import REDEEM, issue
from tests.test_api_group_buys import JOIN, expire, open_group, product

RECORD = """
mutation($input: RecordPurchaseInput!) {
  recordPurchase(input: $input) {
    __typename
    ... on PurchasePayload { purchase { id } }
    ... on UserError { code field }
  }
}
"""
RESULTS = """
query($c: ID!) {
  campaign(id: $c) {
    cost { amount currency }
    results {
      participants invitationsSent conversions kFactor gmv { amount currency } paidPurchases
      cost { amount currency } roi groupBuysOpened groupBuysSucceeded groupBuysFailed couponsIssued couponsRedeemed
    }
  }
}
"""


async def campaign(api: Any, token: str, **fields: Any) -> str:
    now = datetime.now(UTC)
    data = await api.ok(CREATE, {"input": {"name": "Double 11", "startsAt": (now - timedelta(days=1)).isoformat(),
                                           "endsAt": (now + timedelta(days=1)).isoformat(), **fields}}, token=token)
    assert data["createCampaign"]["__typename"] == "CampaignPayload", data
    return str(data["createCampaign"]["campaign"]["id"])


async def buy(api: Any, token: str, member: str, product_id: str, key: str, amount: int, **fields: Any) -> dict[str, Any]:
    data = await api.ok(RECORD, {"input": {"memberId": member, "idempotencyKey": key, "lines": [
        {"productId": product_id, "quantity": 1, "unitPrice": {"amount": amount}}], **fields}}, token=token)
    result: dict[str, Any] = data["recordPurchase"]
    return result


async def test_campaign_results_with_known_figures(api: Any, operator_token: str, graph: GraphClient) -> None:
    op = operator_token
    cpg = await campaign(api, op, kind="GROUP_BUY", cost={"amount": 10_000})
    seed = await register(api, op, "Seed")
    await api.ok(SENT, {"c": cpg, "n": 4, "as": seed["id"]}, token=op)
    a = await register(api, op, "A", inviteCode=seed["inviteCode"], campaignId=cpg)
    b = await register(api, op, "B", inviterId=seed["id"], campaignId=cpg)
    outsider = await register(api, op, "Outsider")
    prd = await product(api, op, sku="campaign-box")

    # GMV: 20,000 + 15,000 paid in the campaign; 5,000 refunded and 9,000 outside it do not count
    await buy(api, op, a["id"], prd, "cpg-buy-0001", 20_000, campaignId=cpg)
    await buy(api, op, b["id"], prd, "cpg-buy-0002", 15_000, campaignId=cpg)
    refunded = await buy(api, op, b["id"], prd, "cpg-buy-0003", 5_000, campaignId=cpg)
    await buy(api, op, outsider["id"], prd, "cpg-buy-0004", 9_000)

    async def refund(tx: Any) -> None:
        await graph.run(tx, "MATCH (p:Purchase {id: $id}) SET p.status = 'refunded'", id=refunded["purchase"]["id"])

    await graph.write(refund)

    # group-buys: one succeeds, one expires (not swept yet: still counts as failed), one stays open; one outside
    full = (await open_group(api, op, a["id"], prd, 2, campaignId=cpg))["groupBuy"]["id"]
    await api.ok(JOIN, {"g": full}, token=api.token(member=b["id"]))
    expired = (await open_group(api, op, b["id"], prd, 3, campaignId=cpg))["groupBuy"]["id"]
    await expire(graph, expired)
    await open_group(api, op, seed["id"], prd, 3, campaignId=cpg)
    await open_group(api, op, seed["id"], prd, 3)

    # coupons: three in the campaign, one redeemed; one outside
    coupons = [(await issue(api, op, a["id"], f"cpg-coupon-{i}", campaignId=cpg))["coupon"]["id"] for i in range(3)]
    await issue(api, op, a["id"], "cpg-coupon-outside")
    await api.ok(REDEEM, {"c": coupons[0]}, token=api.token(member=a["id"]))

    data = (await api.ok(RESULTS, {"c": cpg}, token=api.token("analyst")))["campaign"]

    r = data["results"]
    assert data["cost"] == r["cost"] == {"amount": 10_000, "currency": "CNY"}
    # participants seed, a, b; 4 invitations sent, 2 became members: K = 4/3 × 2/4
    assert (r["participants"], r["invitationsSent"], r["conversions"]) == (3, 4, 2)
    assert r["kFactor"] == pytest.approx(2 / 3)
    assert (r["gmv"], r["paidPurchases"]) == ([{"amount": 35_000, "currency": "CNY"}], 2)
    assert r["roi"] == pytest.approx(2.5)  # (35,000 − 10,000) / 10,000
    assert (r["groupBuysOpened"], r["groupBuysSucceeded"], r["groupBuysFailed"]) == (3, 1, 1)
    assert (r["couponsIssued"], r["couponsRedeemed"]) == (3, 1)


async def test_results_without_a_cost_or_sales(api: Any, operator_token: str) -> None:
    cpg = await campaign(api, operator_token)

    r = (await api.ok(RESULTS, {"c": cpg}, token=operator_token))["campaign"]["results"]

    assert r == {"participants": 0, "invitationsSent": 0, "conversions": 0, "kFactor": 0.0, "gmv": [],
                 "paidPurchases": 0, "cost": None, "roi": None, "groupBuysOpened": 0, "groupBuysSucceeded": 0,
                 "groupBuysFailed": 0, "couponsIssued": 0, "couponsRedeemed": 0}


async def test_members_cannot_read_results(api: Any, operator_token: str) -> None:
    cpg = await campaign(api, operator_token)
    member = (await register(api, operator_token, "Curious"))["id"]

    body = await api(RESULTS, {"c": cpg}, token=api.token(member=member))

    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_purchase_in_an_unknown_campaign_is_refused_and_writes_nothing(api: Any, operator_token: str,
                                                                               graph: GraphClient, tenant: str) -> None:
    member = (await register(api, operator_token, "Buyer"))["id"]
    prd = await product(api, operator_token, sku="lonely-box")

    result = await buy(api, operator_token, member, prd, "cpg-buy-none", 1_000, campaignId="cpg_nothing")

    assert (result["code"], result["field"]) == ("NOT_FOUND", "input.campaignId")
    rows = await graph.read("MATCH (p:Purchase {tenantId: $tenant}) RETURN count(p) AS n", tenant=tenant)
    assert rows[0]["n"] == 0


async def test_a_negative_cost_is_refused(api: Any, operator_token: str) -> None:
    now = datetime.now(UTC)
    data = await api.ok(CREATE, {"input": {"name": "X", "startsAt": now.isoformat(),
                                           "endsAt": (now + timedelta(days=1)).isoformat(), "cost": {"amount": -1}}},
                        token=operator_token)

    assert data["createCampaign"] == {"__typename": "ValidationError", "code": "VALIDATION_FAILED",
                                      "field": "input.cost.amount"}
