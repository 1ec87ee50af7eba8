"""Segmentation over GraphQL: Member.segmentation, interestCircles, segmentationSummary and the
tenant's windows, with their permissions, consent and typed errors.

The tenant is the hand-built one of tests/test_segmentation.py (known answers there); the job
runs for real on the embedded graph server, the queries go through the app over HTTP.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from graph import segmentation as seg
from graph.client import GraphClient
from tests.test_segmentation import NOW, Tenant

SEGMENTATION = """
query($id: ID!) {
  member(id: $id) {
    segmentation {
      rfm { recency frequency monetary } lifecycle valueTier layer computedAt
      circle { id name size topTags }
    }
  }
}
"""
CIRCLES = """
query($first: Int, $after: String) {
  interestCircles(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { id name size topTags computedAt } }
  }
}
"""
SUMMARY = """
{ segmentationSummary { members circles computedAt
    lifecycle { new active silent churned } valueTier { high medium low none }
    layer { core active ordinary silent } } }
"""
CONFIG = "{ segmentationConfig { newDays activeDays churnDays } }"
UPDATE = """
mutation($input: SegmentationConfigInput!) {
  updateSegmentationConfig(input: $input) {
    __typename
    ... on SegmentationConfigPayload { config { newDays activeDays churnDays } }
    ... on UserError { code message field }
  }
}
"""
WITHDRAW = """
mutation($m: ID) {
  withdrawConsent(purpose: PROFILING, source: APP, memberId: $m) { __typename ... on UserError { code field } }
}
"""


@pytest.fixture
async def segmented(graph: GraphClient, redis_client: aioredis.Redis, tenant: str) -> Tenant:
    t = Tenant(graph, tenant)
    await t.build()
    await seg.recompute(graph, redis_client, tenant, at=NOW)
    return t


async def test_member_segmentation_for_staff_and_self(api: Any, operator_token: str, segmented: Tenant) -> None:
    a = segmented.id("a")
    data = await api.ok(SEGMENTATION, {"id": a}, token=operator_token)
    s = data["member"]["segmentation"]
    assert (s["rfm"], s["lifecycle"], s["valueTier"], s["layer"]) == (
        {"recency": 5, "frequency": 5, "monetary": 5}, "ACTIVE", "HIGH", "CORE")
    assert s["computedAt"] == "2025-06-01T12:00:00+00:00"
    assert s["circle"]["size"] == 4 and s["circle"]["name"] == "tea / coffee" and s["circle"]["topTags"] == [
        "tea", "coffee"]
    # the member itself
    own = await api.ok(SEGMENTATION, {"id": a}, token=api.token("member", member=a))
    assert own["member"]["segmentation"] == s
    # a new member who never bought: no RFM; a KOC outside any circle
    f = (await api.ok(SEGMENTATION, {"id": segmented.id("f")}, token=operator_token))["member"]["segmentation"]
    assert (f["rfm"], f["lifecycle"], f["valueTier"], f["layer"]) == (None, "NEW", "NONE", "ORDINARY")
    k = (await api.ok(SEGMENTATION, {"id": segmented.id("k")}, token=operator_token))["member"]["segmentation"]
    assert (k["layer"], k["circle"]) == ("CORE", None)


async def test_member_segmentation_of_others_is_forbidden(api: Any, segmented: Tenant) -> None:
    body = await api(SEGMENTATION, {"id": segmented.id("a")}, token=api.token("member", member=segmented.id("b")))
    assert body["data"]["member"]["segmentation"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]


async def test_withdrawn_profiling_consent_hides_and_clears_the_segmentation(
        api: Any, operator_token: str, segmented: Tenant, graph: GraphClient) -> None:
    b = segmented.id("b")
    assert (await api.ok(SEGMENTATION, {"id": b}, token=operator_token))["member"]["segmentation"] is not None
    data = await api.ok(WITHDRAW, {"m": b}, token=operator_token)
    assert data["withdrawConsent"]["__typename"] == "ConsentPayload"

    assert (await api.ok(SEGMENTATION, {"id": b}, token=operator_token))["member"]["segmentation"] is None
    row = (await segmented.members())["b"]
    assert {k: v for k, v in row.items() if k != "id"} == dict.fromkeys(
        ("r", "f", "m", "lifecycle", "tier", "layer", "circle", "at"))
    # the withdrawn member never shows the w-member's stale profile either
    assert (await api.ok(SEGMENTATION, {"id": segmented.id("w")}, token=operator_token))["member"]["segmentation"] is None


async def test_interest_circles_page_largest_first(api: Any, operator_token: str, segmented: Tenant) -> None:
    first = (await api.ok(CIRCLES, {"first": 1}, token=operator_token))["interestCircles"]
    assert first["totalCount"] == 2 and first["pageInfo"]["hasNextPage"]
    rest = (await api.ok(CIRCLES, {"first": 5, "after": first["pageInfo"]["endCursor"]},
                         token=operator_token))["interestCircles"]
    assert not rest["pageInfo"]["hasNextPage"] and rest["pageInfo"]["hasPreviousPage"]
    nodes = [e["node"] for e in first["edges"] + rest["edges"]]
    # both circles have 4 members: ordered by id
    assert [n["size"] for n in nodes] == [4, 4] and nodes[0]["id"] < nodes[1]["id"]
    assert sorted(n["name"] for n in nodes) == ["tea / coffee", "yoga"]
    bad = await api(CIRCLES, {"after": "not-a-cursor"}, token=operator_token)
    assert bad["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"


async def test_summary_counts_every_layer(api: Any, operator_token: str, segmented: Tenant) -> None:
    s = (await api.ok(SUMMARY, token=operator_token))["segmentationSummary"]
    assert s == {
        "members": 10, "circles": 2, "computedAt": "2025-06-01T12:00:00+00:00",
        "lifecycle": {"new": 2, "active": 4, "silent": 3, "churned": 1},
        "valueTier": {"high": 1, "medium": 2, "low": 2, "none": 5},
        "layer": {"core": 2, "active": 2, "ordinary": 2, "silent": 4},
    }


async def test_before_the_first_run(api: Any, operator_token: str) -> None:
    assert (await api.ok(SUMMARY, token=operator_token))["segmentationSummary"] is None
    circles = (await api.ok(CIRCLES, token=operator_token))["interestCircles"]
    assert circles["totalCount"] == 0 and circles["edges"] == []
    assert (await api.ok(CONFIG, token=operator_token))["segmentationConfig"] == {
        "newDays": 7, "activeDays": 30, "churnDays": 90}


@pytest.mark.parametrize("query", [CIRCLES, SUMMARY, CONFIG])
async def test_tenant_wide_fields_are_for_staff(api: Any, query: str) -> None:
    body = await api(query, token=api.token("member", member="mem_x1"))
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    assert (await api.ok(query, token=api.token("analyst")))  # analysts read them


async def test_update_config_validates_and_changes_nothing_on_error(api: Any, operator_token: str) -> None:
    ok = (await api.ok(UPDATE, {"input": {"activeDays": 45, "churnDays": 120}}, token=operator_token))
    assert ok["updateSegmentationConfig"] == {"__typename": "SegmentationConfigPayload",
                                              "config": {"newDays": 7, "activeDays": 45, "churnDays": 120}}
    cases = [
        ({"newDays": 0}, "input.newDays", "newDays must be between 1 and 3650 days, got 0"),
        ({"churnDays": 40}, "input.churnDays", "activeDays (45) must be less than churnDays (40)"),
        ({"newDays": 50}, "input.newDays", "newDays (50) must be less than activeDays (45)"),
        ({"activeDays": 200}, "input.activeDays", "activeDays (200) must be less than churnDays (120)"),
    ]
    for given, field, message in cases:
        data = await api.ok(UPDATE, {"input": given}, token=operator_token)
        assert data["updateSegmentationConfig"] == {"__typename": "ValidationError", "code": "VALIDATION_FAILED",
                                                    "message": message, "field": field}, given
    assert (await api.ok(CONFIG, token=operator_token))["segmentationConfig"] == {
        "newDays": 7, "activeDays": 45, "churnDays": 120}


@pytest.mark.parametrize("role", ["analyst", "integrator", "member"])
async def test_only_operators_and_admins_change_the_windows(api: Any, role: str) -> None:
    data = await api.ok(UPDATE, {"input": {"newDays": 3}}, token=api.token(role))
    assert data["updateSegmentationConfig"]["__typename"] == "PermissionError"
    assert data["updateSegmentationConfig"]["code"] == "FORBIDDEN"
    admin = await api.ok(UPDATE, {"input": {"newDays": 3}}, token=api.token("admin"))
    assert admin["updateSegmentationConfig"]["config"]["newDays"] == 3
