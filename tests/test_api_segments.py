"""Saved segments over GraphQL on a hand-built tenant where every filter's answer is known.

The members (suffix of their ids, which sort in this order):

====  ====  =======  =====  ======  ==========  =========  ========  ====  =======  ======  =========
id    city  channel  level  points  joined      lifecycle  layer     tier  rfm      circle  marketing
====  ====  =======  =====  ======  ==========  =========  ========  ====  =======  ======  =========
a     SH    wechat   5      100     2025-01-10  active     core      high  5/5/5    c1      yes
b     BJ    app      2      10      2025-03-01  new        ordinary  low   1/2/1    c2      no
c     SH    app      0      0       2025-04-01  (none: never segmented)                    yes
d     -     app      7      500     2024-12-01  silent     silent    med   3/3/3    c2      yes
e     SH    (erased: a tombstone; never in a segment)
f     SH    app      1      20      2025-05-01  churned    ordinary  none  2/1/1    c2      yes
====  ====  =======  =====  ======  ==========  =========  ========  ====  =======  ======  =========

Tags: a has T1 (0.9, declared) and T2 (0.2, behavior); b has T1 (0.3, behavior).
Communities: a in C1 as kol, d in C1 as member, b in C2 as member.
Follows: b -> a, f -> d (both follow someone in C1); a -> b (in C2).
Referrals: a (kolRank 1) invited b; d (KOC, kolRank 50) invited c; b invited f.
Purchases: c bought P1 (category beauty, paid); d bought P2 (category food, refunded).
Another tenant holds a member x in SH with marketing consent, in a community with C1's name.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio

from api.settings import Settings
from graph.client import GraphClient
from tests.conftest import Api

SEED = """
UNWIND $members AS r
CREATE (m:Member) SET m = r
WITH count(*) AS n
UNWIND $tags AS r
CREATE (:Tag {id: r.id, tenantId: $tenant, name: r.id, kind: 'interest'})
WITH count(*) AS n
UNWIND $communities AS r
CREATE (:Community {id: r.id, tenantId: r.tenant, name: 'Beauty', kind: 'interest', channel: 'app_circle',
                    createdAt: $at})
WITH count(*) AS n
UNWIND $products AS r
CREATE (:Product {id: r.id, tenantId: $tenant, sku: r.id, name: r.id, category: r.category, priceAmount: 100,
                  priceCurrency: 'CNY'})
"""
EDGES = """
UNWIND $interests AS r
MATCH (m:Member {id: r.m}) MATCH (t:Tag {id: r.t})
CREATE (m)-[:INTERESTED_IN {weight: r.w, source: r.s}]->(t)
WITH count(*) AS n
UNWIND $memberships AS r
MATCH (m:Member {id: r.m}) MATCH (c:Community {id: r.c})
CREATE (m)-[:MEMBER_OF {role: r.role, joinedAt: $at}]->(c)
WITH count(*) AS n
UNWIND $follows AS r
MATCH (a:Member {id: r.a}) MATCH (b:Member {id: r.b})
CREATE (a)-[:FOLLOWS {at: $at}]->(b)
WITH count(*) AS n
UNWIND $referrals AS r
MATCH (a:Member {id: r.a}) MATCH (b:Member {id: r.b})
CREATE (a)-[:REFERRED {at: $at, channel: 'manual'}]->(b)
WITH count(*) AS n
UNWIND $purchases AS r
MATCH (m:Member {id: r.m}) MATCH (x:Product {id: r.p})
CREATE (m)-[:PLACED]->(p:Purchase {id: r.id, tenantId: $tenant, idempotencyKey: r.id, amount: 100,
                                   currency: 'CNY', at: $at, channel: 'app', status: r.status})
CREATE (p)-[:OF {qty: 1, unitPrice: 100}]->(x)
"""

CREATE = """
mutation($input: CreateSegmentInput!) {
  createSegment(input: $input) {
    __typename
    ... on SegmentPayload { segment { id name description purpose filter archived createdBy size } }
    ... on UserError { code field message }
  }
}
"""
UPDATE = """
mutation($id: ID!, $input: UpdateSegmentInput!) {
  updateSegment(segmentId: $id, input: $input) {
    __typename
    ... on SegmentPayload { segment { id name purpose archived size } }
    ... on UserError { code field message }
  }
}
"""
ARCHIVE = """
mutation($id: ID!) {
  archiveSegment(segmentId: $id) {
    __typename
    ... on ArchiveSegmentPayload { changed segment { id archived } }
    ... on UserError { code field }
  }
}
"""
MEMBERS = """
query($filter: SegmentFilterInput, $id: ID, $purpose: SegmentPurpose, $first: Int, $after: String) {
  segmentMembers(filter: $filter, segmentId: $id, purpose: $purpose, first: $first, after: $after) {
    nodes { id }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}
"""
SIZE = "query($filter: SegmentFilterInput, $id: ID, $purpose: SegmentPurpose) " \
       "{ segmentSize(filter: $filter, segmentId: $id, purpose: $purpose) }"
LIST = """
query($first: Int, $after: String, $all: Boolean!) {
  segments(first: $first, after: $after, includeArchived: $all) {
    nodes { id name archived } pageInfo { hasNextPage endCursor } totalCount
  }
}
"""
AT = datetime(2026, 1, 15, tzinfo=UTC)


class World:
    """The module's tenant: ``w.m("a")`` is member a's id, ``w.t("1")`` tag T1's, and so on."""

    def __init__(self, tenant: str, other: str) -> None:
        self.tenant = tenant
        self.other = other
        self.key = tenant[4:]

    def m(self, suffix: str) -> str:
        return f"mem_{self.key}{suffix}"

    def members(self, suffixes: str) -> list[str]:
        return [self.m(s) for s in suffixes]

    def t(self, n: str) -> str:
        return f"tag_{self.key}t{n}"

    def c(self, n: str) -> str:
        return f"com_{self.key}c{n}"

    def p(self, n: str) -> str:
        return f"prd_{self.key}p{n}"


def _member(w: World, suffix: str, **props: Any) -> dict[str, Any]:
    return {"id": w.m(suffix), "tenantId": w.tenant, "displayName": suffix.upper(), "inviteCode": f"CODE{suffix.upper()}",
            "joinedAt": AT, "channel": "app", "level": 0, "points": 0, "marketingConsent": True, **props}


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def build(graph: GraphClient, w: World) -> None:
    seg = {"lifecycle": "active", "layer": "core", "valueTier": "high", "rfmR": 5, "rfmF": 5, "rfmM": 5, "circleId": "c1"}
    members = [
        _member(w, "a", city="SH", channel="wechat", level=5, points=100, joinedAt=_day("2025-01-10"), **seg,
                kolRank=1),
        _member(w, "b", city="BJ", level=2, points=10, joinedAt=_day("2025-03-01"), lifecycle="new", layer="ordinary",
                valueTier="low", rfmR=1, rfmF=2, rfmM=1, circleId="c2", marketingConsent=False),
        _member(w, "c", city="SH", joinedAt=_day("2025-04-01")),
        _member(w, "d", level=7, points=500, joinedAt=_day("2024-12-01"), lifecycle="silent", layer="silent",
                valueTier="medium", rfmR=3, rfmF=3, rfmM=3, circleId="c2", isKoc=True, kolRank=50),
        {"id": w.m("e"), "tenantId": w.tenant, "displayName": "已注销用户", "inviteCode": "erased_e", "joinedAt": AT,
         "channel": "app", "level": 0, "points": 0, "marketingConsent": False, "erasedAt": AT, "city": "SH"},
        _member(w, "f", city="SH", level=1, points=20, joinedAt=_day("2025-05-01"), lifecycle="churned",
                layer="ordinary", valueTier="none", rfmR=2, rfmF=1, rfmM=1, circleId="c2"),
        {**_member(w, "x", city="SH", **seg), "id": f"mem_{w.other[4:]}x", "tenantId": w.other},
    ]
    params = {
        "tenant": w.tenant, "at": AT, "members": members, "tags": [{"id": w.t("1")}, {"id": w.t("2")}],
        "communities": [{"id": w.c("1"), "tenant": w.tenant}, {"id": w.c("2"), "tenant": w.tenant},
                        {"id": f"com_{w.other[4:]}c1", "tenant": w.other}],
        "products": [{"id": w.p("1"), "category": "beauty"}, {"id": w.p("2"), "category": "food"}],
    }
    edges = {
        "tenant": w.tenant, "at": AT,
        "interests": [{"m": w.m("a"), "t": w.t("1"), "w": 0.9, "s": "declared"},
                      {"m": w.m("a"), "t": w.t("2"), "w": 0.2, "s": "behavior"},
                      {"m": w.m("b"), "t": w.t("1"), "w": 0.3, "s": "behavior"}],
        "memberships": [{"m": w.m("a"), "c": w.c("1"), "role": "kol"}, {"m": w.m("d"), "c": w.c("1"), "role": "member"},
                        {"m": w.m("b"), "c": w.c("2"), "role": "member"},
                        {"m": f"mem_{w.other[4:]}x", "c": f"com_{w.other[4:]}c1", "role": "kol"}],
        "follows": [{"a": w.m("b"), "b": w.m("a")}, {"a": w.m("f"), "b": w.m("d")}, {"a": w.m("a"), "b": w.m("b")}],
        "referrals": [{"a": w.m("a"), "b": w.m("b")}, {"a": w.m("d"), "b": w.m("c")}, {"a": w.m("b"), "b": w.m("f")}],
        "purchases": [{"m": w.m("c"), "p": w.p("1"), "id": f"pur_{w.key}1", "status": "paid"},
                      {"m": w.m("d"), "p": w.p("2"), "id": f"pur_{w.key}2", "status": "refunded"}],
    }

    async def work(tx: Any) -> None:
        await (await tx.run(SEED, **params)).consume()
        await (await tx.run(EDGES, **edges)).consume()

    await graph.write(work)


@pytest_asyncio.fixture(scope="module")
async def world(graph: GraphClient) -> AsyncIterator[World]:
    w = World("ten_" + uuid.uuid4().hex[:16], "ten_" + uuid.uuid4().hex[:16])
    await build(graph, w)
    yield w


@pytest.fixture
def seg_api(http: Any, settings: Settings, world: World) -> Api:
    return Api(http, settings, world.tenant)


@pytest.fixture
def staff(seg_api: Api) -> str:
    return seg_api.token("analyst")


def one(*predicates: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [{"allOf": list(predicates)}]}


async def members_of(api: Api, token: str, **variables: Any) -> tuple[list[str], int]:
    data = (await api.ok(MEMBERS, {"first": 100, **variables}, token=token))["segmentMembers"]
    assert data["pageInfo"]["hasNextPage"] is False
    return [n["id"] for n in data["nodes"]], data["totalCount"]


def cases(w: World) -> list[tuple[dict[str, Any], str]]:
    """(filter, the suffixes of the members it selects, in id order)."""
    return [
        (one(), "abcdf"),
        (one({"cityIn": ["SH"]}), "acf"),
        (one({"cityIn": ["SH"], "negate": True}), "bd"),  # d has no city: it does not match, so the negation does
        (one({"channelIn": ["WECHAT"]}), "a"),
        (one({"level": {"min": 2, "max": 5}}), "ab"),
        (one({"points": {"min": 100}}), "ad"),
        (one({"joinedAt": {"since": "2025-03-01T00:00:00Z", "until": "2025-05-01T00:00:00Z"}}), "bc"),
        (one({"lifecycleIn": ["NEW", "ACTIVE"]}), "ab"),
        (one({"lifecycleIn": ["NEW", "ACTIVE"], "negate": True}), "cdf"),  # c was never segmented
        (one({"layerIn": ["CORE", "SILENT"]}), "ad"),
        (one({"valueTierIn": ["HIGH", "MEDIUM"]}), "ad"),
        (one({"circleIn": ["c1"]}), "a"),
        (one({"rfm": {"recency": {"min": 3}, "monetary": {"max": 3}}}), "d"),
        (one({"rfm": {"frequency": {"max": 2}}, "negate": True}), "acd"),
        (one({"tags": {"tagIds": [w.t("1"), w.t("2")], "minWeight": 0.5}}), "a"),
        (one({"tags": {"tagIds": [w.t("1"), w.t("2")], "match": "ALL"}}), "a"),
        (one({"tags": {"tagIds": [w.t("1")]}}), "ab"),
        (one({"tags": {"tagIds": [w.t("1")], "source": "behavior"}}), "b"),
        (one({"tags": {"tagIds": [w.t("1")]}, "negate": True}), "cdf"),
        (one({"memberOf": {"communityIds": [w.c("1")]}}), "ad"),
        (one({"memberOf": {"communityIds": [w.c("1"), w.c("2")], "role": "KOL"}}), "a"),
        (one({"invitedByKol": {"maxRank": 10}}), "b"),
        (one({"invitedByKol": {"maxRank": 100}}), "bc"),
        (one({"invitedByKol": {"koc": True}}), "c"),
        (one({"followsMemberOf": {"communityIds": [w.c("1")]}}), "bf"),
        (one({"followsMemberOf": {"communityIds": [w.c("1")]}, "negate": True}), "acd"),
        (one({"bought": {"categories": ["beauty"]}}), "c"),
        (one({"bought": {"productIds": [w.p("2")]}}), ""),  # refunded purchases do not count
        (one({"cityIn": ["SH"]}, {"tags": {"tagIds": [w.t("1")]}, "negate": True}), "cf"),
        (one({"tags": {"tagIds": [w.t("1")]}}, {"tags": {"tagIds": [w.t("2")]}, "negate": True}), "b"),
        ({"anyOf": [{"allOf": [{"cityIn": ["SH"]}]}, {"allOf": [{"memberOf": {"communityIds": [w.c("1")]}}]}]},
         "acdf"),
        ({"anyOf": [{"allOf": [{"channelIn": ["WECHAT"]}]}, {"allOf": [{"level": {"min": 5}}]}]}, "ad"),
    ]


async def test_every_predicate_kind_selects_exactly_the_known_members(seg_api: Api, staff: str, world: World) -> None:
    wrong = []
    for f, expected in cases(world):
        ids, total = await members_of(seg_api, staff, filter=f)
        size = (await seg_api.ok(SIZE, {"filter": f}, token=staff))["segmentSize"]
        if (ids, total, size) != (world.members(expected), len(expected), len(expected)):
            wrong.append((f, expected, ids, total, size))

    assert wrong == []


async def test_marketing_segments_keep_only_members_with_marketing_consent(seg_api: Api, staff: str,
                                                                            world: World) -> None:
    everyone, _ = await members_of(seg_api, staff, filter=one(), purpose="MARKETING")
    invited, total = await members_of(seg_api, staff, filter=one({"invitedByKol": {"maxRank": 100}}), purpose="MARKETING")

    assert everyone == world.members("acdf")  # b refused marketing; e is erased
    assert (invited, total) == (world.members("c"), 1)


async def test_pages_across_clauses_have_no_duplicates_and_no_gaps(seg_api: Api, staff: str, world: World) -> None:
    f = {"anyOf": [{"allOf": [{"cityIn": ["SH"]}]},                                   # a c f
                   {"allOf": [{"memberOf": {"communityIds": [world.c("1")]}}]},       # a d
                   {"allOf": [{"level": {"min": 2}}]}]}                               # a b d
    seen, flags, after = [], [], None
    for _ in range(5):
        data = (await seg_api.ok(MEMBERS, {"filter": f, "first": 2, "after": after}, token=staff))["segmentMembers"]
        seen.append([n["id"] for n in data["nodes"]])
        flags.append(data["pageInfo"]["hasNextPage"])
        after = data["pageInfo"]["endCursor"]
        if not data["pageInfo"]["hasNextPage"]:
            break

    assert seen == [world.members("ab"), world.members("cd"), world.members("f")]
    assert flags == [True, True, False]
    assert (await seg_api.ok(SIZE, {"filter": f}, token=staff))["segmentSize"] == 5


async def test_saved_segments_are_created_read_updated_and_archived(seg_api: Api, world: World) -> None:
    operator = seg_api.token("operator")
    f = one({"cityIn": ["SH"]}, {"lifecycleIn": ["ACTIVE", "CHURNED"]})
    created = (await seg_api.ok(CREATE, {"input": {"name": "上海活跃", "description": "SH, active or churned",
                                                   "purpose": "MARKETING", "filter": f}}, token=operator))
    segment = created["createSegment"]["segment"]
    sid = segment["id"]

    by_id = await members_of(seg_api, operator, id=sid)
    size = (await seg_api.ok(SIZE, {"id": sid}, token=operator))["segmentSize"]
    read = (await seg_api.ok("query($id: ID!) { segment(id: $id) { id name purpose filter "
                             "members(first: 1) { nodes { id } totalCount } } }", {"id": sid}, token=operator))
    updated = (await seg_api.ok(UPDATE, {"id": sid, "input": {"filter": one({"cityIn": ["SH"]}), "name": "上海"}},
                                token=operator))["updateSegment"]

    assert segment["name"] == "上海活跃" and segment["purpose"] == "MARKETING" and segment["archived"] is False
    assert segment["filter"] == {"anyOf": [{"allOf": [{"cityIn": ["SH"]}, {"lifecycleIn": ["active", "churned"]}]}]}
    assert segment["size"] == 2 and segment["createdBy"] is not None
    assert by_id == (world.members("af"), 2) and size == 2
    assert read["segment"]["members"] == {"nodes": [{"id": world.m("a")}], "totalCount": 2}
    assert updated == {"__typename": "SegmentPayload",
                       "segment": {"id": sid, "name": "上海", "purpose": "MARKETING", "archived": False, "size": 3}}

    first = (await seg_api.ok(ARCHIVE, {"id": sid}, token=operator))["archiveSegment"]
    again = (await seg_api.ok(ARCHIVE, {"id": sid}, token=operator))["archiveSegment"]
    frozen = (await seg_api.ok(UPDATE, {"id": sid, "input": {"name": "x"}}, token=operator))["updateSegment"]
    listed = (await seg_api.ok(LIST, {"all": False}, token=operator))["segments"]
    listed_all = (await seg_api.ok(LIST, {"all": True}, token=operator))["segments"]

    assert first == {"__typename": "ArchiveSegmentPayload", "changed": True, "segment": {"id": sid, "archived": True}}
    assert again["changed"] is False
    assert (frozen["__typename"], frozen["code"], frozen["field"]) == ("ValidationError", "VALIDATION_FAILED",
                                                                        "segmentId")
    assert sid not in [n["id"] for n in listed["nodes"]]
    assert [n["id"] for n in listed_all["nodes"] if n["id"] == sid] == [sid]
    assert listed_all["totalCount"] == listed["totalCount"] + 1


async def test_members_who_withdrew_profiling_match_no_profile_predicate(
        http: Any, settings: Settings, graph: GraphClient) -> None:
    w = World("ten_" + uuid.uuid4().hex[:16], "ten_" + uuid.uuid4().hex[:16])
    api = Api(http, settings, w.tenant)
    members = [_member(w, "p", city="SH", lifecycle="active", layer="core"),
               _member(w, "q", city="SH", profilingConsent=False, profilingWithdrawn=True)]  # profile wiped

    async def work(tx: Any) -> None:
        await (await tx.run("UNWIND $members AS r CREATE (m:Member) SET m = r", members=members)).consume()

    await graph.write(work)
    token = api.token("operator")

    by_city, _ = await members_of(api, token, filter=one({"cityIn": ["SH"]}))
    not_churned, _ = await members_of(api, token, filter=one({"lifecycleIn": ["CHURNED"], "negate": True}))
    not_silent, _ = await members_of(api, token, filter=one({"cityIn": ["SH"]}, {"layerIn": ["SILENT"], "negate": True}))

    assert by_city == w.members("pq")  # an attribute the member gave: not profiling
    assert not_churned == not_silent == w.members("p")  # the wiped profile must not match a negation


async def test_the_segments_list_pages_newest_first(http: Any, settings: Settings) -> None:
    api = Api(http, settings, "ten_" + uuid.uuid4().hex[:16])
    token = api.token("admin")
    ids = []
    for n in range(3):
        data = await api.ok(CREATE, {"input": {"name": f"s{n}", "filter": one()}}, token=token)
        ids.append(data["createSegment"]["segment"]["id"])

    first = (await api.ok(LIST, {"first": 2, "all": False}, token=token))["segments"]
    second = (await api.ok(LIST, {"first": 2, "after": first["pageInfo"]["endCursor"], "all": False},
                           token=token))["segments"]

    assert [n["id"] for n in first["nodes"] + second["nodes"]] == ids[::-1]
    assert (first["pageInfo"]["hasNextPage"], second["pageInfo"]["hasNextPage"], first["totalCount"]) == (True, False, 3)


async def test_another_tenant_never_sees_these_members_or_segments(seg_api: Api, staff: str, world: World) -> None:
    outsider = seg_api.token("admin", tenant=world.other)
    sid = (await seg_api.ok(CREATE, {"input": {"name": "mine", "filter": one()}}, token=staff))["createSegment"][
        "segment"]["id"]

    theirs, total = await members_of(seg_api, outsider, filter=one({"cityIn": ["SH"]}))
    mine, _ = await members_of(seg_api, staff, filter=one({"cityIn": ["SH"]}))
    read = await seg_api.ok("query($id: ID!) { segment(id: $id) { id } }", {"id": sid}, token=outsider)
    size = await seg_api(SIZE, {"id": sid}, token=outsider)
    archive = (await seg_api.ok(ARCHIVE, {"id": sid}, token=outsider))["archiveSegment"]
    listed = (await seg_api.ok(LIST, {"all": True}, token=outsider))["segments"]

    assert (theirs, total) == ([f"mem_{world.other[4:]}x"], 1)
    assert f"mem_{world.other[4:]}x" not in mine
    assert read == {"segment": None}
    assert size["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert (archive["__typename"], archive["code"]) == ("NotFoundError", "NOT_FOUND")
    assert listed["totalCount"] == 0


@pytest.mark.parametrize("role", ["member", "integrator"])
async def test_members_and_integrators_cannot_save_segments(seg_api: Api, world: World, role: str) -> None:
    token = seg_api.token(role, member=world.m("a") if role == "member" else None)
    before = (await seg_api.ok(LIST, {"all": True}, token=seg_api.token("admin")))["segments"]["totalCount"]

    created = (await seg_api.ok(CREATE, {"input": {"name": "x", "filter": one()}}, token=token))["createSegment"]
    after = (await seg_api.ok(LIST, {"all": True}, token=seg_api.token("admin")))["segments"]["totalCount"]

    assert (created["__typename"], created["code"]) == ("PermissionError", "FORBIDDEN")
    assert after == before


async def test_members_cannot_read_segments(seg_api: Api, world: World) -> None:
    token = seg_api.token("member", member=world.m("a"))

    size = await seg_api(SIZE, {"filter": one()}, token=token)
    listed = await seg_api(MEMBERS, {"filter": one()}, token=token)
    anonymous = await seg_api(SIZE, {"filter": one()})

    assert size["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert listed["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert anonymous["errors"][0]["extensions"]["code"] == "NOT_AUTHENTICATED"


@pytest.mark.parametrize(("input", "field"), [
    ({"name": "", "filter": one()}, "input.name"),
    ({"name": "x", "filter": {"anyOf": []}}, "input.filter.anyOf"),
    ({"name": "x", "filter": one({})}, "input.filter.anyOf[0].allOf[0]"),
    ({"name": "x", "filter": one({"cityIn": ["SH"], "level": {"min": 1}})}, "input.filter.anyOf[0].allOf[0]"),
    ({"name": "x", "filter": one({"level": {"min": 5, "max": 1}})}, "input.filter.anyOf[0].allOf[0].level"),
    ({"name": "x", "filter": one({"rfm": {"recency": {"max": 9}}})}, "input.filter.anyOf[0].allOf[0].rfm.recency"),
    ({"name": "x", "filter": one({"tags": {"tagIds": ["mem_abc"]}})}, "input.filter.anyOf[0].allOf[0].tags.tagIds[0]"),
    ({"name": "x", "filter": one({"joinedAt": {"since": "2026-01-01T00:00:00"}})},
     "input.filter.anyOf[0].allOf[0].joinedAt"),
    ({"name": "x", "filter": one({"cityIn": ["SH"]}, {"cityIn": ["BJ"]})}, "input.filter.anyOf[0]"),
    ({"name": "x", "filter": {"anyOf": [{"allOf": []}] * 11}}, "input.filter.anyOf"),
])
async def test_bad_segments_are_rejected_naming_the_field_and_nothing_is_written(
        http: Any, settings: Settings, input: dict[str, Any], field: str) -> None:
    api = Api(http, settings, "ten_" + uuid.uuid4().hex[:16])
    token = api.token("operator")

    result = (await api.ok(CREATE, {"input": input}, token=token))["createSegment"]
    listed = (await api.ok(LIST, {"all": True}, token=token))["segments"]

    assert (result["__typename"], result["code"], result["field"]) == ("ValidationError", "VALIDATION_FAILED", field)
    assert listed["totalCount"] == 0


@pytest.mark.parametrize(("variables", "field"), [
    ({}, "segmentId"),
    ({"filter": one(), "id": "seg_0123456789abcdef"}, "segmentId"),
    ({"id": "seg_0123456789abcdef", "purpose": "MARKETING"}, "purpose"),
    ({"id": "mem_0123456789abcdef"}, "segmentId"),
    ({"filter": one({"pointsIn": 1})}, None),  # not in the schema: GraphQL validation
    ({"filter": one({"points": {}})}, "filter.anyOf[0].allOf[0].points"),
])
async def test_bad_size_and_members_arguments_are_rejected(seg_api: Api, staff: str, variables: dict[str, Any],
                                                           field: str | None) -> None:
    size = await seg_api(SIZE, variables, token=staff)
    listed = await seg_api(MEMBERS, variables, token=staff)

    for body in (size, listed):
        error = body["errors"][0]
        if field is None:
            assert body.get("data") is None
        else:
            assert error["extensions"]["code"] == "VALIDATION_FAILED", error
            assert error["extensions"].get("field") == field, error


async def test_a_cursor_from_elsewhere_is_rejected(seg_api: Api, staff: str) -> None:
    body = await seg_api(MEMBERS, {"filter": one(), "after": "not-a-cursor"}, token=staff)

    assert body["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"


async def test_ids_that_name_nothing_in_the_tenant_are_not_found_and_nothing_is_written(
        seg_api: Api, world: World) -> None:
    token = seg_api.token("operator")
    theirs = f"com_{world.other[4:]}c1"  # the other tenant's community
    f = one({"tags": {"tagIds": [world.t("1")]}}, {"memberOf": {"communityIds": [world.c("1"), theirs]}})
    before = (await seg_api.ok(LIST, {"all": True}, token=token))["segments"]["totalCount"]

    created = (await seg_api.ok(CREATE, {"input": {"name": "x", "filter": f}}, token=token))["createSegment"]
    size = await seg_api(SIZE, {"filter": one({"bought": {"productIds": ["prd_nothing"]}})}, token=token)
    after = (await seg_api.ok(LIST, {"all": True}, token=token))["segments"]["totalCount"]

    assert (created["__typename"], created["code"], created["field"]) == (
        "NotFoundError", "NOT_FOUND", "input.filter.anyOf[0].allOf[1].memberOf.communityIds[1]")
    assert size["errors"][0]["extensions"] == {"code": "NOT_FOUND",
                                               "field": "filter.anyOf[0].allOf[0].bought.productIds[0]"}
    assert after == before
