"""Commerce over HTTP: products, idempotent purchases, and who may read a member's purchases."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.helpers import register

CREATE_PRODUCT = """
mutation($input: CreateProductInput!) {
  createProduct(input: $input) {
    __typename
    ... on ProductPayload { product { id sku name category price { amount currency } } }
    ... on UserError { code field }
  }
}
"""
RECORD = """
mutation($input: RecordPurchaseInput!) {
  recordPurchase(input: $input) {
    __typename
    ... on PurchasePayload {
      created
      purchase { id total { amount currency } at channel status idempotencyKey member { id }
                 lines { quantity unitPrice { amount currency } product { id sku } } }
    }
    ... on UserError { code field }
  }
}
"""
PURCHASES = """
query($id: ID!) {
  member(id: $id) { id purchases { totalCount nodes { id total { amount currency } } } }
}
"""


async def count(graph: Any, query: Any, **params: Any) -> int:
    rows = await graph.read(query, **params)
    return int(rows[0]["n"])


async def purchase_count(graph: Any, tenant: str) -> int:
    return await count(graph, "MATCH (p:Purchase {tenantId: $tenant}) RETURN count(p) AS n", tenant=tenant)


async def product_count(graph: Any, tenant: str) -> int:
    return await count(graph, "MATCH (p:Product {tenantId: $tenant}) RETURN count(p) AS n", tenant=tenant)


async def create_product(api: Any, token: str, sku: str, amount: int, **fields: Any) -> dict[str, Any]:
    variables = {"input": {"sku": sku, "name": fields.pop("name", sku), "category": fields.pop("category", "food"),
                           "price": {"amount": amount, **fields}}}
    data = await api.ok(CREATE_PRODUCT, variables, token=token)
    result: dict[str, Any] = data["createProduct"]
    assert result["__typename"] == "ProductPayload", result
    return result["product"]  # type: ignore[no-any-return]


async def record(api: Any, token: str, member: str, lines: list[dict[str, Any]], key: str, **fields: Any) -> dict[str, Any]:
    data = await api.ok(RECORD, {"input": {"memberId": member, "lines": lines, "idempotencyKey": key, **fields}},
                        token=token)
    result: dict[str, Any] = data["recordPurchase"]
    return result


@pytest.fixture
async def shop(api, operator_token) -> dict[str, Any]:
    buyer = await register(api, operator_token, "Buyer")
    other = await register(api, operator_token, "Other")
    tea = await create_product(api, operator_token, "TEA-001", 3800)
    cake = await create_product(api, operator_token, "CAKE-7", 12_50)
    return {"buyer": buyer["id"], "other": other["id"], "tea": tea["id"], "cake": cake["id"]}


# --- createProduct ---------------------------------------------------------------------------


async def test_create_product(api, operator_token, graph, tenant):
    data = await api.ok(CREATE_PRODUCT, {"input": {"sku": "SKU-1", "name": "龙井茶", "category": "tea",
                                                   "price": {"amount": 2_147_483_647, "currency": "USD"}}},
                        token=operator_token)
    p = data["createProduct"]["product"]
    assert re.fullmatch(r"prd_[0-9a-z]{16}", p["id"])
    assert {k: v for k, v in p.items() if k != "id"} == {
        "sku": "SKU-1", "name": "龙井茶", "category": "tea", "price": {"amount": 2_147_483_647, "currency": "USD"},
    }
    rows = await graph.read("MATCH (p:Product {id: $id}) RETURN p.priceAmount AS amount, p.priceCurrency AS cur, "
                            "p.tenantId AS tenant", id=p["id"])
    assert [dict(r) for r in rows] == [{"amount": 2_147_483_647, "cur": "USD", "tenant": tenant}]


async def test_product_price_defaults_to_cny(api, operator_token):
    p = await create_product(api, operator_token, "X", 0)
    assert p["price"] == {"amount": 0, "currency": "CNY"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"price": {"amount": -1}}, "input.price.amount"),
        ({"price": {"amount": 100, "currency": "cny"}}, "input.price.currency"),
        ({"price": {"amount": 100, "currency": "YUAN"}}, "input.price.currency"),
        ({"sku": "has space"}, "input.sku"),
        ({"sku": ""}, "input.sku"),
        ({"name": " "}, "input.name"),
        ({"name": "n" * 201}, "input.name"),
        ({"category": ""}, "input.category"),
    ],
)
async def test_create_product_rejects_bad_input_and_writes_nothing(api, operator_token, graph, tenant, fields, field):
    base = {"sku": "OK-1", "name": "ok", "category": "food", "price": {"amount": 100}}
    data = await api.ok(CREATE_PRODUCT, {"input": {**base, **fields}}, token=operator_token)
    assert data["createProduct"] == {"__typename": "ValidationError", "code": "VALIDATION_FAILED", "field": field}
    assert await product_count(graph, tenant) == 0


async def test_duplicate_sku_is_a_conflict(api, operator_token, graph, tenant):
    await create_product(api, operator_token, "DUP-1", 100)
    data = await api.ok(CREATE_PRODUCT, {"input": {"sku": "DUP-1", "name": "again", "category": "x", "price": {"amount": 5}}},
                        token=operator_token)
    assert data["createProduct"] == {"__typename": "ConflictError", "code": "ALREADY_EXISTS", "field": "input.sku"}
    assert await product_count(graph, tenant) == 1


async def test_same_sku_in_another_tenant_is_fine(api, operator_token):
    await create_product(api, operator_token, "SHARED-SKU", 100)
    p = await create_product(api, api.token("operator", tenant=api.tenant + "b"), "SHARED-SKU", 200)
    assert p["price"]["amount"] == 200


@pytest.mark.parametrize("role", ["member", "analyst"])
async def test_only_writers_create_products(api, graph, tenant, role):
    data = await api.ok(CREATE_PRODUCT, {"input": {"sku": "S", "name": "n", "category": "c", "price": {"amount": 1}}},
                        token=api.token(role))
    assert data["createProduct"] == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": None}
    assert await product_count(graph, tenant) == 0


# --- recordPurchase --------------------------------------------------------------------------


async def test_record_purchase_computes_the_total(api, operator_token, shop, graph):
    result = await record(api, operator_token, shop["buyer"],
                          [{"productId": shop["tea"], "quantity": 2}, {"productId": shop["cake"], "quantity": 3}],
                          "order-0001", channel="MINI_PROGRAM", at="2026-01-02T03:04:05.123456+00:00")
    assert result["__typename"] == "PurchasePayload"
    assert result["created"] is True
    p = result["purchase"]
    assert re.fullmatch(r"pur_[0-9a-z]{16}", p["id"])
    assert {k: v for k, v in p.items() if k not in ("id", "lines")} == {
        "total": {"amount": 2 * 3800 + 3 * 1250, "currency": "CNY"},
        "at": "2026-01-02T03:04:05.123456+00:00",
        "channel": "MINI_PROGRAM", "status": "PAID", "idempotencyKey": "order-0001", "member": {"id": shop["buyer"]},
    }
    assert sorted(p["lines"], key=lambda ln: ln["product"]["sku"]) == [
        {"quantity": 3, "unitPrice": {"amount": 1250, "currency": "CNY"}, "product": {"id": shop["cake"], "sku": "CAKE-7"}},
        {"quantity": 2, "unitPrice": {"amount": 3800, "currency": "CNY"}, "product": {"id": shop["tea"], "sku": "TEA-001"}},
    ]
    rows = await graph.read(
        "MATCH (m:Member)-[:PLACED]->(p:Purchase {id: $id})-[o:OF]->(x:Product) "
        "RETURN m.id AS member, p.amount AS amount, x.id AS product, o.qty AS qty, o.unitPrice AS unit ORDER BY product",
        id=p["id"],
    )
    assert sorted((r["member"], r["amount"], r["product"], r["qty"], r["unit"]) for r in rows) == sorted([
        (shop["buyer"], 11350, shop["tea"], 2, 3800), (shop["buyer"], 11350, shop["cake"], 3, 1250),
    ])


async def test_unit_price_override_and_amounts_beyond_32_bits(api, operator_token, shop, graph):
    result = await record(api, operator_token, shop["buyer"],
                          [{"productId": shop["tea"], "quantity": 10000, "unitPrice": {"amount": 2_147_483_647}}],
                          "big-order-1")
    p = result["purchase"]
    assert p["total"] == {"amount": 21_474_836_470_000, "currency": "CNY"}
    assert p["lines"][0]["unitPrice"] == {"amount": 2_147_483_647, "currency": "CNY"}
    rows = await graph.read("MATCH (p:Purchase {id: $id}) RETURN p.amount AS amount", id=p["id"])
    assert rows[0]["amount"] == 21_474_836_470_000
    read = await api.ok("query($id: ID!) { purchase(id: $id) { total { amount currency } } }", {"id": p["id"]},
                        token=operator_token)
    assert read["purchase"]["total"] == {"amount": 21_474_836_470_000, "currency": "CNY"}


async def test_same_key_returns_the_original_purchase(api, operator_token, shop, graph, tenant):
    lines = [{"productId": shop["tea"], "quantity": 1}]
    first = await record(api, operator_token, shop["buyer"], lines, "retry-key-1")
    second = await record(api, operator_token, shop["buyer"], lines, "retry-key-1")
    assert (first["created"], second["created"]) == (True, False)
    assert second["purchase"] == first["purchase"]
    assert await count(graph, "MATCH (p:Purchase {tenantId: $tenant, idempotencyKey: $key}) RETURN count(p) AS n",
                       tenant=tenant, key="retry-key-1") == 1
    assert await count(graph, "MATCH (:Purchase {tenantId: $tenant})-[o:OF]->(:Product) RETURN count(o) AS n",
                       tenant=tenant) == 1


async def test_same_key_with_a_different_request_is_a_conflict(api, operator_token, shop, graph, tenant):
    await record(api, operator_token, shop["buyer"], [{"productId": shop["tea"], "quantity": 1}], "conflict-key")
    variants = [
        [{"productId": shop["tea"], "quantity": 2}],
        [{"productId": shop["cake"], "quantity": 1}],
        [{"productId": shop["tea"], "quantity": 1, "unitPrice": {"amount": 1}}],
    ]
    for lines in variants:
        result = await record(api, operator_token, shop["buyer"], lines, "conflict-key")
        assert result == {"__typename": "ConflictError", "code": "IDEMPOTENCY_CONFLICT", "field": "input.idempotencyKey"}
    result = await record(api, operator_token, shop["other"], [{"productId": shop["tea"], "quantity": 1}], "conflict-key")
    assert result["code"] == "IDEMPOTENCY_CONFLICT"
    assert await purchase_count(graph, tenant) == 1


async def test_concurrent_retries_create_exactly_one_purchase(api, operator_token, shop, graph, tenant):
    lines = [{"productId": shop["tea"], "quantity": 3}, {"productId": shop["cake"], "quantity": 1}]
    results = await asyncio.gather(*(record(api, operator_token, shop["buyer"], lines, "burst-key-1") for _ in range(20)))
    assert {r["__typename"] for r in results} == {"PurchasePayload"}
    assert len({r["purchase"]["id"] for r in results}) == 1
    assert sorted(r["created"] for r in results) == [False] * 19 + [True]
    assert {r["purchase"]["total"]["amount"] for r in results} == {3 * 3800 + 1250}
    assert await count(graph, "MATCH (p:Purchase {tenantId: $tenant, idempotencyKey: $key}) RETURN count(p) AS n",
                       tenant=tenant, key="burst-key-1") == 1
    assert await count(graph, "MATCH (:Member)-[r:PLACED]->(:Purchase {tenantId: $tenant}) RETURN count(r) AS n",
                       tenant=tenant) == 1
    assert await count(graph, "MATCH (:Purchase {tenantId: $tenant})-[o:OF]->(:Product) RETURN count(o) AS n",
                       tenant=tenant) == 2


async def test_the_same_key_in_another_tenant_is_another_purchase(api, operator_token, shop, graph, tenant):
    await record(api, operator_token, shop["buyer"], [{"productId": shop["tea"], "quantity": 1}], "tenant-key-1")
    other_tenant = api.tenant + "b"
    other_op = api.token("operator", tenant=other_tenant)
    buyer = (await api.ok("mutation { registerMember(input: {displayName: \"B\"}) { ... on MemberPayload { member { id } } } }",
                          token=other_op))["registerMember"]["member"]["id"]
    product = await create_product(api, other_op, "TEA-001", 100)
    result = await record(api, other_op, buyer, [{"productId": product["id"], "quantity": 1}], "tenant-key-1")
    assert (result["created"], result["purchase"]["total"]["amount"]) == (True, 100)
    assert await purchase_count(graph, tenant) == 1
    assert await purchase_count(graph, other_tenant) == 1


@pytest.mark.parametrize(
    ("line", "typename", "code", "field"),
    [
        ({"productId": "prd_missing0000000", "quantity": 1}, "NotFoundError", "NOT_FOUND", "input.lines[0].productId"),
        ({"productId": "abc", "quantity": 1}, "ValidationError", "VALIDATION_FAILED", "input.lines[0].productId"),
        ({"quantity": 0}, "ValidationError", "VALIDATION_FAILED", "input.lines[0].quantity"),
        ({"quantity": -2}, "ValidationError", "VALIDATION_FAILED", "input.lines[0].quantity"),
        ({"quantity": 10001}, "ValidationError", "VALIDATION_FAILED", "input.lines[0].quantity"),
        ({"quantity": 1, "unitPrice": {"amount": -5}}, "ValidationError", "VALIDATION_FAILED",
         "input.lines[0].unitPrice.amount"),
    ],
)
async def test_record_purchase_rejects_bad_lines_and_writes_nothing(api, operator_token, shop, graph, tenant, line, typename, code, field):
    result = await record(api, operator_token, shop["buyer"], [{"productId": shop["tea"], **line}], "bad-line-key")
    assert result == {"__typename": typename, "code": code, "field": field}
    assert await purchase_count(graph, tenant) == 0


async def test_unknown_product_in_a_later_line_names_that_line(api, operator_token, shop, graph, tenant):
    lines = [{"productId": shop["tea"], "quantity": 1}, {"productId": "prd_missing0000000", "quantity": 1}]
    result = await record(api, operator_token, shop["buyer"], lines, "later-line-key")
    assert result == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "input.lines[1].productId"}
    assert await purchase_count(graph, tenant) == 0
    # the key was not consumed: a corrected request with the same key succeeds
    result = await record(api, operator_token, shop["buyer"], lines[:1], "later-line-key")
    assert result["created"] is True


@pytest.mark.parametrize(
    ("fields", "typename", "code", "field"),
    [
        ({"lines": []}, "ValidationError", "VALIDATION_FAILED", "input.lines"),
        ({"idempotencyKey": "short"}, "ValidationError", "VALIDATION_FAILED", "input.idempotencyKey"),
        ({"idempotencyKey": "has spaces in it"}, "ValidationError", "VALIDATION_FAILED", "input.idempotencyKey"),
        ({"memberId": "abc"}, "ValidationError", "VALIDATION_FAILED", "input.memberId"),
        ({"memberId": "mem_missing0000000"}, "NotFoundError", "NOT_FOUND", "input.memberId"),
        ({"at": "2999-01-01T00:00:00+00:00"}, "ValidationError", "VALIDATION_FAILED", "input.at"),
        ({"at": "2026-01-01T00:00:00"}, "ValidationError", "VALIDATION_FAILED", "input.at"),
    ],
)
async def test_record_purchase_rejects_bad_input_and_writes_nothing(api, operator_token, shop, graph, tenant, fields, typename, code, field):
    base = {"memberId": shop["buyer"], "lines": [{"productId": shop["tea"], "quantity": 1}], "idempotencyKey": "bad-input-key"}
    data = await api.ok(RECORD, {"input": {**base, **fields}}, token=operator_token)
    assert data["recordPurchase"] == {"__typename": typename, "code": code, "field": field}
    assert await purchase_count(graph, tenant) == 0


async def test_the_same_product_twice_is_rejected(api, operator_token, shop, graph, tenant):
    lines = [{"productId": shop["tea"], "quantity": 1}, {"productId": shop["tea"], "quantity": 2}]
    result = await record(api, operator_token, shop["buyer"], lines, "twice-key-1")
    assert result == {"__typename": "ValidationError", "code": "VALIDATION_FAILED", "field": "input.lines"}
    assert await purchase_count(graph, tenant) == 0


async def test_mixed_currencies_are_rejected(api, operator_token, shop, graph, tenant):
    usd = await create_product(api, operator_token, "USD-1", 500, currency="USD")
    lines = [{"productId": shop["tea"], "quantity": 1}, {"productId": usd["id"], "quantity": 1}]
    result = await record(api, operator_token, shop["buyer"], lines, "mixed-key-1")
    assert result == {"__typename": "ValidationError", "code": "VALIDATION_FAILED", "field": "input.lines"}
    assert await purchase_count(graph, tenant) == 0


async def test_member_records_own_purchase_but_not_anothers(api, shop, graph, tenant):
    as_buyer = api.token("member", member=shop["buyer"])
    own = await record(api, as_buyer, shop["buyer"], [{"productId": shop["cake"], "quantity": 2}], "own-key-01")
    assert (own["created"], own["purchase"]["total"]) == (True, {"amount": 2500, "currency": "CNY"})
    result = await record(api, as_buyer, shop["other"], [{"productId": shop["cake"], "quantity": 1}], "not-mine-01")
    assert result == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": "input.memberId"}
    assert await purchase_count(graph, tenant) == 1


# --- reading purchases -----------------------------------------------------------------------


async def test_purchases_visible_to_self_and_staff_only(api, operator_token, shop):
    made = []
    for i in range(3):
        r = await record(api, operator_token, shop["buyer"], [{"productId": shop["tea"], "quantity": i + 1}],
                         f"visible-key-{i}", at=f"2026-01-0{i + 1}T00:00:00+00:00")
        made.append(r["purchase"])
    expected = {"id": shop["buyer"], "purchases": {
        "totalCount": 3,
        "nodes": [{"id": p["id"], "total": p["total"]} for p in reversed(made)],
    }}
    assert [p["total"]["amount"] for p in made] == [3800, 7600, 11400]
    for token in (api.token("member", member=shop["buyer"]), operator_token, api.token("analyst")):
        assert (await api.ok(PURCHASES, {"id": shop["buyer"]}, token=token))["member"] == expected

    body = await api(PURCHASES, {"id": shop["buyer"]}, token=api.token("member", member=shop["other"]))
    assert body["data"] == {"member": None}
    assert [(e["path"], e["extensions"]) for e in body["errors"]] == [(["member", "purchases"], {"code": "FORBIDDEN"})]

    query = "query($id: ID!) { purchase(id: $id) { id } }"
    assert (await api.ok(query, {"id": made[0]["id"]}, token=api.token("member", member=shop["buyer"])))["purchase"] == {
        "id": made[0]["id"]}
    assert (await api.ok(query, {"id": made[0]["id"]}, token=api.token("member", member=shop["other"])))["purchase"] is None


async def test_purchases_page_newest_first(api, operator_token, shop):
    ids = []
    for i in range(5):
        r = await record(api, operator_token, shop["buyer"], [{"productId": shop["cake"], "quantity": 1}],
                         f"page-key-{i}", at=f"2026-02-0{i + 1}T08:00:00+00:00")
        ids.append(r["purchase"]["id"])
    seen: list[str] = []
    after = None
    for _ in range(5):
        data = await api.ok(
            """query($id: ID!, $after: String) { member(id: $id) { purchases(first: 2, after: $after) {
                 totalCount pageInfo { hasNextPage endCursor } nodes { id } } } }""",
            {"id": shop["buyer"], "after": after}, token=operator_token,
        )
        conn = data["member"]["purchases"]
        assert conn["totalCount"] == 5
        seen += [n["id"] for n in conn["nodes"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert seen == list(reversed(ids))
