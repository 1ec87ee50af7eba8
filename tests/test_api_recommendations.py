"""Recommendations over GraphQL, and cache correctness: a member's own writes refresh them at once.

The lists are cached per member in Redis; each write below (follow, join, purchase,
consent withdrawal) goes through the app, its event through the outbox and relay, and the
next read must already reflect it.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from starlette.applications import Starlette

from tests.helpers import community, follow, join, register

RECS = """
query($id: ID!) {
  member(id: $id) {
    recommendedMembers(first: 10) { score reason member { id } }
    recommendedCommunities(first: 10) { reason community { id } }
    recommendedProducts(first: 10) { reason product { id } }
  }
}
"""
PRODUCT = """
mutation($sku: String!) {
  createProduct(input: {sku: $sku, name: $sku, category: "tea", price: {amount: 500, currency: "CNY"}}) {
    ... on ProductPayload { product { id } }
  }
}
"""
BUY = """
mutation($m: ID!, $p: ID!, $key: String!) {
  recordPurchase(input: {memberId: $m, lines: [{productId: $p, quantity: 1}], idempotencyKey: $key}) { __typename }
}
"""
CONSENT = """
mutation($id: ID!, $on: Boolean!) {
  updateMember(memberId: $id, input: {marketingConsent: $on}) { __typename ... on UserError { code field } }
}
"""


async def recs(api: Any, token: str, member: str) -> dict[str, list[str]]:
    data = (await api.ok(RECS, {"id": member}, token=token))["member"]
    return {
        "members": [r["member"]["id"] for r in data["recommendedMembers"]],
        "communities": [r["community"]["id"] for r in data["recommendedCommunities"]],
        "products": [r["product"]["id"] for r in data["recommendedProducts"]],
    }


async def buy(api: Any, token: str, member: str, product: str) -> None:
    data = await api.ok(BUY, {"m": member, "p": product, "key": f"rec-{random.getrandbits(64):x}"}, token=token)
    assert data["recordPurchase"]["__typename"] == "PurchasePayload"


@pytest.fixture
async def world(api: Any, operator_token: str) -> dict[str, Any]:
    """me -> friend -> {x, y}; me and friend share 'home'; friend is also in 'other'; friend bought tea and cake."""
    me = (await register(api, operator_token, "Me", marketingConsent=True))["id"]
    friend = (await register(api, operator_token, "Friend"))["id"]
    x = (await register(api, operator_token, "X"))["id"]
    y = (await register(api, operator_token, "Y"))["id"]
    await follow(api, operator_token, me, friend)
    await follow(api, operator_token, friend, x)
    await follow(api, operator_token, friend, y)
    home = await community(api, operator_token, "Home")
    other = await community(api, operator_token, "Other")
    for m in (me, friend):
        await join(api, operator_token, home, m)
    await join(api, operator_token, other, friend)
    tea = (await api.ok(PRODUCT, {"sku": "TEA"}, token=operator_token))["createProduct"]["product"]["id"]
    cake = (await api.ok(PRODUCT, {"sku": "CAKE"}, token=operator_token))["createProduct"]["product"]["id"]
    await buy(api, operator_token, friend, tea)
    await buy(api, operator_token, friend, cake)
    await buy(api, operator_token, me, tea)
    return {"me": me, "friend": friend, "x": x, "y": y, "home": home, "other": other, "tea": tea, "cake": cake}


async def test_recommendations_carry_readable_reasons(api: Any, operator_token: str, world: dict[str, Any]) -> None:
    data = (await api.ok(RECS, {"id": world["me"]}, token=operator_token))["member"]

    assert sorted(r["member"]["id"] for r in data["recommendedMembers"]) == sorted([world["x"], world["y"]])
    assert all("Friend" in r["reason"] for r in data["recommendedMembers"])
    assert [r["community"]["id"] for r in data["recommendedCommunities"]] == [world["other"]]
    assert [r["product"]["id"] for r in data["recommendedProducts"]] == [world["cake"]]
    assert all(r["reason"] for r in data["recommendedCommunities"] + data["recommendedProducts"])


async def test_each_write_refreshes_the_cached_answers_it_touches(
    api: Any, operator_token: str, world: dict[str, Any], app: Starlette, tenant: str
) -> None:
    redis = app.state.resources.redis
    before = await recs(api, operator_token, world["me"])  # now cached
    assert [k async for k in redis.scan_iter(match=f"q:{tenant}:rec:*:{world['me']}")]

    await follow(api, operator_token, world["me"], world["x"])
    after_follow = await recs(api, operator_token, world["me"])
    await join(api, operator_token, world["other"], world["me"])
    after_join = await recs(api, operator_token, world["me"])
    await buy(api, operator_token, world["me"], world["cake"])
    after_buy = await recs(api, operator_token, world["me"])

    assert world["x"] in before["members"] and after_follow["members"] == [world["y"]]
    assert before["communities"] == [world["other"]] and after_join["communities"] == []
    assert before["products"] == [world["cake"]] and after_buy["products"] == []


async def test_withdrawing_marketing_consent_stops_product_recommendations_at_once(
    api: Any, operator_token: str, world: dict[str, Any]
) -> None:
    assert (await recs(api, operator_token, world["me"]))["products"] == [world["cake"]]

    data = await api.ok(CONSENT, {"id": world["me"], "on": False}, token=operator_token)

    assert data["updateMember"]["__typename"] == "MemberPayload"
    assert (await recs(api, operator_token, world["me"]))["products"] == []


async def test_only_the_member_and_staff_see_recommendations(api: Any, world: dict[str, Any]) -> None:
    own = await api(RECS, {"id": world["me"]}, token=api.token("member", member=world["me"]))
    other = await api(RECS, {"id": world["me"]}, token=api.token("member", member=world["x"]))

    assert "errors" not in own
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
