"""Members over HTTP: registration, referrals, profile updates, follows and the members list.

Each test gets a fresh tenant, so every count below is exact.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.helpers import community, follow, join, register

REGISTER = """
mutation($input: RegisterMemberInput!) {
  registerMember(input: $input) {
    __typename
    ... on MemberPayload {
      member { id displayName phone wechatId city channel level points inviteCode
               marketingConsent profilingConsent joinedAt invitedBy { id } }
    }
    ... on UserError { code field }
  }
}
"""
SET_INVITER = """
mutation($m: ID!, $i: ID!) {
  setInviter(memberId: $m, inviterId: $i) {
    __typename
    ... on ReferralPayload { inviter { id } invitee { id } at }
    ... on UserError { code field }
  }
}
"""
UPDATE = """
mutation($id: ID!, $input: UpdateMemberInput!) {
  updateMember(memberId: $id, input: $input) {
    __typename
    ... on MemberPayload { member { id displayName level city } }
    ... on UserError { code field }
  }
}
"""
FOLLOW = """
mutation($target: ID!, $as: ID) {
  followMember(memberId: $target, asMemberId: $as) {
    __typename
    ... on FollowPayload { changed follower { id } followee { id } }
    ... on UserError { code field }
  }
}
"""
UNFOLLOW = """
mutation($target: ID!, $as: ID) {
  unfollowMember(memberId: $target, asMemberId: $as) {
    __typename
    ... on FollowPayload { changed follower { id } followee { id } }
    ... on UserError { code field }
  }
}
"""
REFERRALS = """
query($id: ID!) {
  member(id: $id) { invitedBy { id } invitees { totalCount nodes { id } } }
}
"""
MEMBERS = """
query($first: Int, $after: String, $filter: MemberFilterInput, $order: MemberOrder!) {
  members(first: $first, after: $after, filter: $filter, orderBy: $order) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id } }
    nodes { id }
  }
}
"""


async def count(graph: Any, query: Any, **params: Any) -> int:
    rows = await graph.read(query, **params)
    return int(rows[0]["n"])


async def member_count(graph: Any, tenant: str) -> int:
    return await count(graph, "MATCH (m:Member {tenantId: $tenant}) RETURN count(m) AS n", tenant=tenant)


async def referral_count(graph: Any, tenant: str) -> int:
    return await count(
        graph,
        "MATCH (a:Member {tenantId: $tenant})-[r:REFERRED]->(b:Member) RETURN count(r) AS n",
        tenant=tenant,
    )


async def follow_count(graph: Any, tenant: str) -> int:
    return await count(
        graph,
        "MATCH (a:Member {tenantId: $tenant})-[r:FOLLOWS]->(b:Member) RETURN count(r) AS n",
        tenant=tenant,
    )


# --- registerMember ------------------------------------------------------------------------


async def test_register_member_returns_every_field_and_writes_one_node(api, operator_token, graph, tenant):
    data = await api.ok(
        REGISTER,
        {"input": {"displayName": "  Alice  ", "phone": "13812345678", "wechatId": "wxid_abc123", "city": "上海",
                   "channel": "WECHAT", "level": 3, "marketingConsent": True}},
        token=operator_token,
    )
    result = data["registerMember"]
    assert result["__typename"] == "MemberPayload"
    m = result["member"]
    assert re.fullmatch(r"mem_[0-9a-z]{16}", m["id"])
    assert re.fullmatch(r"[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{8}", m["inviteCode"])
    assert {k: v for k, v in m.items() if k not in ("id", "inviteCode", "joinedAt")} == {
        "displayName": "Alice",
        "phone": "138****5678",
        "wechatId": "w*********3",
        "city": "上海",
        "channel": "WECHAT",
        "level": 3,
        "points": 0,
        "marketingConsent": True,
        "profilingConsent": False,
        "invitedBy": None,
    }
    rows = await graph.read(
        "MATCH (m:Member {id: $id}) RETURN m.tenantId AS tenant, m.displayName AS name, m.phone AS phone, "
        "m.wechatId AS wechat, m.channel AS channel, m.inviteCode AS code",
        id=m["id"],
    )
    assert [dict(r) for r in rows] == [{
        "tenant": tenant, "name": "Alice", "phone": "13812345678", "wechat": "wxid_abc123",
        "channel": "wechat", "code": m["inviteCode"],
    }]


async def test_register_member_defaults(api, operator_token):
    m = (await api.ok(REGISTER, {"input": {"displayName": "Bo"}}, token=operator_token))["registerMember"]["member"]
    assert {k: m[k] for k in ("channel", "level", "points", "phone", "wechatId", "city", "marketingConsent")} == {
        "channel": "APP", "level": 0, "points": 0, "phone": None, "wechatId": None, "city": None,
        "marketingConsent": False,
    }


async def test_display_name_of_exactly_80_characters_is_accepted(api, operator_token):
    m = await register(api, operator_token, "名" * 80)
    assert m["displayName"] == "名" * 80


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"displayName": ""}, "input.displayName"),
        ({"displayName": "   "}, "input.displayName"),
        ({"displayName": "x" * 81}, "input.displayName"),
        ({"displayName": "a\x00b"}, "input.displayName"),
        ({"displayName": "Ann", "phone": "12ab345"}, "input.phone"),
        ({"displayName": "Ann", "phone": "123"}, "input.phone"),
        ({"displayName": "Ann", "level": 11}, "input.level"),
        ({"displayName": "Ann", "level": -1}, "input.level"),
        ({"displayName": "Ann", "city": "c" * 65}, "input.city"),
        ({"displayName": "Ann", "inviterId": "abc"}, "input.inviterId"),
        ({"displayName": "Ann", "inviteCode": "bad code"}, "input.inviteCode"),
    ],
)
async def test_register_member_rejects_invalid_input_and_writes_nothing(api, operator_token, graph, tenant, fields, field):
    data = await api.ok(REGISTER, {"input": fields}, token=operator_token)
    assert data["registerMember"] == {"__typename": "ValidationError", "code": "VALIDATION_FAILED", "field": field}
    assert await member_count(graph, tenant) == 0


async def test_register_member_rejects_invite_code_together_with_inviter_id(api, operator_token, graph, tenant):
    inviter = await register(api, operator_token, "Inviter")
    data = await api.ok(
        REGISTER,
        {"input": {"displayName": "Both", "inviteCode": inviter["inviteCode"], "inviterId": inviter["id"]}},
        token=operator_token,
    )
    assert data["registerMember"] == {"__typename": "ValidationError", "code": "VALIDATION_FAILED", "field": "input"}
    assert await member_count(graph, tenant) == 1
    assert await referral_count(graph, tenant) == 0


async def test_register_with_invite_code_creates_the_referral(api, operator_token, graph, tenant):
    inviter = await register(api, operator_token, "Inviter")
    data = await api.ok(REGISTER, {"input": {"displayName": "Invitee", "inviteCode": inviter["inviteCode"]}},
                        token=operator_token)
    invitee = data["registerMember"]["member"]
    assert invitee["invitedBy"] == {"id": inviter["id"]}
    assert invitee["channel"] == "REFERRAL"

    up = (await api.ok(REFERRALS, {"id": inviter["id"]}, token=operator_token))["member"]
    assert up == {"invitedBy": None, "invitees": {"totalCount": 1, "nodes": [{"id": invitee["id"]}]}}
    down = (await api.ok(REFERRALS, {"id": invitee["id"]}, token=operator_token))["member"]
    assert down == {"invitedBy": {"id": inviter["id"]}, "invitees": {"totalCount": 0, "nodes": []}}
    rows = await graph.read(
        "MATCH (a:Member)-[r:REFERRED]->(b:Member {id: $id}) RETURN a.id AS inviter, r.code AS code", id=invitee["id"]
    )
    assert [dict(r) for r in rows] == [{"inviter": inviter["id"], "code": inviter["inviteCode"]}]


async def test_register_with_inviter_id_creates_the_referral_and_keeps_an_explicit_channel(api, operator_token, tenant, graph):
    inviter = await register(api, operator_token, "Inviter")
    data = await api.ok(REGISTER, {"input": {"displayName": "Invitee", "inviterId": inviter["id"], "channel": "LIVESTREAM"}},
                        token=operator_token)
    invitee = data["registerMember"]["member"]
    assert invitee["invitedBy"] == {"id": inviter["id"]}
    assert invitee["channel"] == "LIVESTREAM"
    assert await referral_count(graph, tenant) == 1


async def test_register_with_unknown_invite_code_is_a_referral_error(api, operator_token, graph, tenant):
    await register(api, operator_token, "Someone")
    data = await api.ok(REGISTER, {"input": {"displayName": "New", "inviteCode": "ZZZZ9999"}}, token=operator_token)
    assert data["registerMember"] == {"__typename": "ReferralError", "code": "INVALID_INVITE_CODE", "field": "input.inviteCode"}
    assert await member_count(graph, tenant) == 1


async def test_register_with_unknown_inviter_id_is_not_found(api, operator_token, graph, tenant):
    data = await api.ok(REGISTER, {"input": {"displayName": "New", "inviterId": "mem_doesnotexist00"}}, token=operator_token)
    assert data["registerMember"] == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "input.inviterId"}
    assert await member_count(graph, tenant) == 0


@pytest.mark.parametrize("role", ["member", "analyst"])
async def test_roles_that_do_not_write_cannot_register(api, graph, tenant, role):
    data = await api.ok(REGISTER, {"input": {"displayName": "Nope"}}, token=api.token(role))
    assert data["registerMember"] == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": None}
    assert await member_count(graph, tenant) == 0


@pytest.mark.parametrize("role", ["integrator", "admin"])
async def test_writer_roles_can_register(api, role):
    m = await register(api, api.token(role), "Yes")
    assert m["displayName"] == "Yes"


# --- setInviter ------------------------------------------------------------------------------


async def test_set_inviter_creates_the_referral(api, operator_token, graph, tenant):
    a = await register(api, operator_token, "A")
    b = await register(api, operator_token, "B")
    data = await api.ok(SET_INVITER, {"m": b["id"], "i": a["id"]}, token=operator_token)
    result = data["setInviter"]
    assert result["__typename"] == "ReferralPayload"
    assert (result["inviter"], result["invitee"]) == ({"id": a["id"]}, {"id": b["id"]})
    assert (await api.ok(REFERRALS, {"id": b["id"]}, token=operator_token))["member"]["invitedBy"] == {"id": a["id"]}
    assert await referral_count(graph, tenant) == 1


async def test_self_referral_is_rejected(api, operator_token, graph, tenant):
    a = await register(api, operator_token, "A")
    data = await api.ok(SET_INVITER, {"m": a["id"], "i": a["id"]}, token=operator_token)
    assert data["setInviter"] == {"__typename": "ReferralError", "code": "SELF_REFERRAL", "field": "inviterId"}
    assert await referral_count(graph, tenant) == 0


async def test_second_inviter_is_rejected(api, operator_token, graph, tenant):
    a = await register(api, operator_token, "A")
    b = await register(api, operator_token, "B")
    c = await register(api, operator_token, "C")
    assert (await api.ok(SET_INVITER, {"m": c["id"], "i": a["id"]}, token=operator_token))["setInviter"]["__typename"] == "ReferralPayload"
    for inviter in (b, a):  # another inviter, and the same inviter again
        data = await api.ok(SET_INVITER, {"m": c["id"], "i": inviter["id"]}, token=operator_token)
        assert data["setInviter"] == {"__typename": "ReferralError", "code": "ALREADY_REFERRED", "field": "memberId"}
    assert await referral_count(graph, tenant) == 1
    assert (await api.ok(REFERRALS, {"id": c["id"]}, token=operator_token))["member"]["invitedBy"] == {"id": a["id"]}


async def test_referral_cycle_is_rejected(api, operator_token, graph, tenant):
    a = await register(api, operator_token, "A")
    b = await register(api, operator_token, "B", inviteCode=a["inviteCode"])
    c = await register(api, operator_token, "C", inviterId=b["id"])
    assert await referral_count(graph, tenant) == 2
    for invitee, inviter in ((a, c), (a, b)):  # a is upline of both c and b
        data = await api.ok(SET_INVITER, {"m": invitee["id"], "i": inviter["id"]}, token=operator_token)
        assert data["setInviter"] == {"__typename": "ReferralError", "code": "REFERRAL_CYCLE", "field": "inviterId"}
    assert await referral_count(graph, tenant) == 2
    assert (await api.ok(REFERRALS, {"id": a["id"]}, token=operator_token))["member"]["invitedBy"] is None


async def test_set_inviter_with_unknown_or_malformed_ids(api, operator_token, graph, tenant):
    a = await register(api, operator_token, "A")
    cases = [
        ({"m": "mem_missing0000000", "i": a["id"]}, "NotFoundError", "NOT_FOUND", "memberId"),
        ({"m": a["id"], "i": "mem_missing0000000"}, "NotFoundError", "NOT_FOUND", "inviterId"),
        ({"m": "abc", "i": a["id"]}, "ValidationError", "VALIDATION_FAILED", "memberId"),
        ({"m": a["id"], "i": "com_notamember"}, "ValidationError", "VALIDATION_FAILED", "inviterId"),
    ]
    for variables, typename, code, field in cases:
        data = await api.ok(SET_INVITER, variables, token=operator_token)
        assert data["setInviter"] == {"__typename": typename, "code": code, "field": field}, variables
    assert await referral_count(graph, tenant) == 0


async def test_members_cannot_set_inviters(api, operator_token, graph, tenant):
    a = await register(api, operator_token, "A")
    b = await register(api, operator_token, "B")
    data = await api.ok(SET_INVITER, {"m": b["id"], "i": a["id"]}, token=api.token("member", member=b["id"]))
    assert data["setInviter"] == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": None}
    assert await referral_count(graph, tenant) == 0


# --- updateMember ----------------------------------------------------------------------------


async def test_member_updates_own_display_name(api, operator_token, graph):
    a = await register(api, operator_token, "Old name")
    data = await api.ok(UPDATE, {"id": a["id"], "input": {"displayName": "New name"}},
                        token=api.token("member", member=a["id"]))
    assert data["updateMember"] == {
        "__typename": "MemberPayload", "member": {"id": a["id"], "displayName": "New name", "level": 0, "city": None},
    }
    rows = await graph.read("MATCH (m:Member {id: $id}) RETURN m.displayName AS name", id=a["id"])
    assert rows[0]["name"] == "New name"


async def test_member_cannot_change_own_level(api, operator_token, graph):
    a = await register(api, operator_token, "Climber")
    data = await api.ok(UPDATE, {"id": a["id"], "input": {"displayName": "Sneaky", "level": 9}},
                        token=api.token("member", member=a["id"]))
    assert data["updateMember"] == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": "input.level"}
    rows = await graph.read("MATCH (m:Member {id: $id}) RETURN m.displayName AS name, m.level AS level", id=a["id"])
    assert dict(rows[0]) == {"name": "Climber", "level": 0}


async def test_staff_can_change_level(api, operator_token):
    a = await register(api, operator_token, "Climber")
    data = await api.ok(UPDATE, {"id": a["id"], "input": {"level": 7, "city": "杭州"}}, token=operator_token)
    assert data["updateMember"]["member"] == {"id": a["id"], "displayName": "Climber", "level": 7, "city": "杭州"}


async def test_member_cannot_update_another_member(api, operator_token, graph):
    a = await register(api, operator_token, "A")
    b = await register(api, operator_token, "B")
    data = await api.ok(UPDATE, {"id": b["id"], "input": {"displayName": "Hacked"}},
                        token=api.token("member", member=a["id"]))
    assert data["updateMember"] == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": "memberId"}
    rows = await graph.read("MATCH (m:Member {id: $id}) RETURN m.displayName AS name", id=b["id"])
    assert rows[0]["name"] == "B"


@pytest.mark.parametrize(
    ("member_input", "field"),
    [({}, "input"), ({"displayName": "y" * 81}, "input.displayName"), ({"phone": "nope"}, "input.phone")],
)
async def test_update_member_validation(api, operator_token, graph, member_input, field):
    a = await register(api, operator_token, "Same")
    data = await api.ok(UPDATE, {"id": a["id"], "input": member_input}, token=operator_token)
    assert data["updateMember"] == {"__typename": "ValidationError", "code": "VALIDATION_FAILED", "field": field}
    rows = await graph.read("MATCH (m:Member {id: $id}) RETURN m.displayName AS name, m.phone AS phone", id=a["id"])
    assert dict(rows[0]) == {"name": "Same", "phone": None}


async def test_update_unknown_member_is_not_found(api, operator_token, graph, tenant):
    data = await api.ok(UPDATE, {"id": "mem_missing0000000", "input": {"displayName": "X"}}, token=operator_token)
    assert data["updateMember"] == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "memberId"}
    assert await member_count(graph, tenant) == 0


# --- follows ---------------------------------------------------------------------------------


async def test_follow_and_unfollow_are_idempotent(api, operator_token, graph, tenant):
    a = await register(api, operator_token, "A")
    b = await register(api, operator_token, "B")
    as_a = api.token("member", member=a["id"])
    results = []
    for query in (FOLLOW, FOLLOW, UNFOLLOW, UNFOLLOW, FOLLOW):
        data = await api.ok(query, {"target": b["id"]}, token=as_a)
        payload = next(iter(data.values()))
        assert payload["__typename"] == "FollowPayload"
        assert (payload["follower"], payload["followee"]) == ({"id": a["id"]}, {"id": b["id"]})
        results.append(payload["changed"])
    assert results == [True, False, True, False, True]
    assert await follow_count(graph, tenant) == 1


async def test_follower_and_following_counts(api, operator_token):
    a, b, c = [await register(api, operator_token, n) for n in ("A", "B", "C")]
    await follow(api, operator_token, b["id"], a["id"])
    await follow(api, operator_token, c["id"], a["id"])
    await follow(api, operator_token, a["id"], c["id"])
    data = await api.ok(
        """query($id: ID!) { member(id: $id) {
             followers { totalCount nodes { id } } following { totalCount nodes { id } } } }""",
        {"id": a["id"]}, token=operator_token,
    )
    assert data["member"] == {
        "followers": {"totalCount": 2, "nodes": [{"id": c["id"]}, {"id": b["id"]}]},  # newest first
        "following": {"totalCount": 1, "nodes": [{"id": c["id"]}]},
    }


async def test_followers_pages(api, operator_token):
    star = await register(api, operator_token, "Star")
    fans = [await register(api, operator_token, f"Fan{i}") for i in range(5)]
    for fan in fans:
        await follow(api, operator_token, fan["id"], star["id"])
    seen: list[str] = []
    after = None
    for _ in range(3):
        data = await api.ok(
            """query($id: ID!, $after: String) { member(id: $id) { followers(first: 2, after: $after) {
                 totalCount pageInfo { hasNextPage endCursor } nodes { id } } } }""",
            {"id": star["id"], "after": after}, token=operator_token,
        )
        conn = data["member"]["followers"]
        assert conn["totalCount"] == 5
        seen += [n["id"] for n in conn["nodes"]]
        after = conn["pageInfo"]["endCursor"]
        if not conn["pageInfo"]["hasNextPage"]:
            break
    assert seen == [f["id"] for f in reversed(fans)]


async def test_self_follow_is_rejected(api, operator_token, graph, tenant):
    a = await register(api, operator_token, "A")
    data = await api.ok(FOLLOW, {"target": a["id"]}, token=api.token("member", member=a["id"]))
    assert data["followMember"] == {"__typename": "ValidationError", "code": "VALIDATION_FAILED", "field": "memberId"}
    assert await follow_count(graph, tenant) == 0


async def test_follow_unknown_member_is_not_found(api, operator_token, graph, tenant):
    a = await register(api, operator_token, "A")
    for query, name in ((FOLLOW, "followMember"), (UNFOLLOW, "unfollowMember")):
        data = await api.ok(query, {"target": "mem_missing0000000"}, token=api.token("member", member=a["id"]))
        assert data[name] == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "memberId"}
        data = await api.ok(query, {"target": a["id"], "as": "mem_missing0000000"}, token=operator_token)
        assert data[name] == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "asMemberId"}
    assert await follow_count(graph, tenant) == 0


async def test_follow_with_malformed_ids(api, operator_token, graph, tenant):
    a = await register(api, operator_token, "A")
    data = await api.ok(FOLLOW, {"target": "abc"}, token=api.token("member", member=a["id"]))
    assert data["followMember"] == {"__typename": "ValidationError", "code": "VALIDATION_FAILED", "field": "memberId"}
    data = await api.ok(FOLLOW, {"target": a["id"], "as": "abc"}, token=operator_token)
    assert data["followMember"] == {"__typename": "ValidationError", "code": "VALIDATION_FAILED", "field": "asMemberId"}
    assert await follow_count(graph, tenant) == 0


async def test_member_cannot_follow_as_someone_else(api, operator_token, graph, tenant):
    a, b, c = [await register(api, operator_token, n) for n in ("A", "B", "C")]
    data = await api.ok(FOLLOW, {"target": c["id"], "as": b["id"]}, token=api.token("member", member=a["id"]))
    assert data["followMember"] == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": "asMemberId"}
    data = await api.ok(FOLLOW, {"target": c["id"]}, token=operator_token)  # staff without asMemberId is nobody
    assert data["followMember"] == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": "asMemberId"}
    assert await follow_count(graph, tenant) == 0


# --- members(first, after, filter, orderBy) --------------------------------------------------

PEOPLE = [  # (name, level, channel) in registration order
    ("Mei", 3, "APP"),
    ("Bo", 7, "WECHAT"),
    ("Chen", 3, "APP"),
    ("Bo", 0, "WECHAT"),
    ("Ann", 10, "H5"),
    ("Zed", 7, "APP"),
    ("Chen", 3, "WECHAT"),
]


@pytest.fixture
async def seven(api, operator_token) -> list[dict[str, Any]]:
    out = []
    for name, level, channel in PEOPLE:
        data = await api.ok(REGISTER, {"input": {"displayName": name, "level": level, "channel": channel}},
                            token=operator_token)
        out.append(data["registerMember"]["member"])
    return out


async def walk(api: Any, token: str, order: str, first: int, filter: dict[str, Any] | None = None) -> tuple[list[str], int]:
    """Follow endCursor until hasNextPage is false; return the ids seen and the totalCount."""
    ids: list[str] = []
    after = None
    totals = set()
    for _ in range(20):
        data = await api.ok(MEMBERS, {"first": first, "after": after, "filter": filter, "order": order}, token=token)
        conn = data["members"]
        totals.add(conn["totalCount"])
        page = [e["node"]["id"] for e in conn["edges"]]
        assert page == [n["id"] for n in conn["nodes"]]
        assert len(page) <= first
        if page:
            assert conn["pageInfo"]["startCursor"] == conn["edges"][0]["cursor"]
            assert conn["pageInfo"]["endCursor"] == conn["edges"][-1]["cursor"]
        assert conn["pageInfo"]["hasPreviousPage"] is False
        ids += page
        if not conn["pageInfo"]["hasNextPage"]:
            assert len(totals) == 1
            return ids, totals.pop()
        assert len(page) == first
        after = conn["pageInfo"]["endCursor"]
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("first", [2, 3])
@pytest.mark.parametrize("order", ["JOINED_AT_DESC", "JOINED_AT_ASC", "LEVEL_DESC", "DISPLAY_NAME_ASC"])
async def test_members_keyset_pagination_walks_every_member_once(api, operator_token, seven, order, first):
    by_id = {m["id"]: m for m in seven}
    expected = {
        "JOINED_AT_ASC": [m["id"] for m in seven],
        "JOINED_AT_DESC": [m["id"] for m in reversed(seven)],
        "LEVEL_DESC": sorted(by_id, key=lambda i: (-by_id[i]["level"], i)),
        "DISPLAY_NAME_ASC": sorted(by_id, key=lambda i: (by_id[i]["displayName"], i)),
    }[order]
    ids, total = await walk(api, operator_token, order, first)
    assert ids == expected
    assert total == 7


async def test_members_default_order_is_newest_first(api, operator_token, seven):
    data = await api.ok("{ members { totalCount nodes { id } pageInfo { hasNextPage } } }", token=operator_token)
    assert data["members"] == {
        "totalCount": 7, "nodes": [{"id": m["id"]} for m in reversed(seven)], "pageInfo": {"hasNextPage": False},
    }


async def test_members_first_zero_is_an_empty_page(api, operator_token, seven):
    data = await api.ok(MEMBERS, {"first": 0, "order": "JOINED_AT_DESC"}, token=operator_token)
    assert data["members"] == {
        "totalCount": 7, "edges": [], "nodes": [],
        "pageInfo": {"hasNextPage": True, "hasPreviousPage": False, "startCursor": None, "endCursor": None},
    }


async def test_members_filters(api, operator_token, seven):
    c = await community(api, operator_token, "Runners")
    other = await community(api, operator_token, "Cyclists")
    for i in (0, 3, 5):
        await join(api, operator_token, c, seven[i]["id"])
    await join(api, operator_token, other, seven[1]["id"])

    def ids(*indexes: int) -> list[str]:  # JOINED_AT_ASC order
        return [seven[i]["id"] for i in indexes]

    cases = [
        ({"communityId": c}, ids(0, 3, 5)),
        ({"channel": "WECHAT"}, ids(1, 3, 6)),
        ({"minLevel": 7}, ids(1, 4, 5)),
        ({"maxLevel": 3}, ids(0, 2, 3, 6)),
        ({"minLevel": 3, "maxLevel": 3}, ids(0, 2, 6)),
        ({"joinedFrom": seven[2]["joinedAt"], "joinedTo": seven[5]["joinedAt"]}, ids(2, 3, 4)),
        ({"joinedFrom": seven[6]["joinedAt"]}, ids(6)),
        ({"joinedTo": seven[0]["joinedAt"]}, []),
        ({"communityId": c, "channel": "APP"}, ids(0, 5)),
        ({"channel": "WECHAT", "minLevel": 1}, ids(1, 6)),
        ({"communityId": "com_nosuchcommunity"}, []),
    ]
    for filter, expected in cases:
        got, total = await walk(api, operator_token, "JOINED_AT_ASC", 2, filter)
        assert (got, total) == (expected, len(expected)), filter
    got, total = await walk(api, operator_token, "LEVEL_DESC", 2, {"channel": "WECHAT"})
    assert (got, total) == (ids(1, 6, 3), 3)


@pytest.mark.parametrize("order", ["JOINED_AT_DESC", "JOINED_AT_ASC", "LEVEL_DESC", "DISPLAY_NAME_ASC"])
async def test_members_of_a_community_page_in_every_order(api, operator_token, seven, order):
    # the community filter starts from the community (graph.members MEMBERS_IN_COMMUNITY_*):
    # same order, pages and totals as the tenant-wide statements
    c = await community(api, operator_token, "Walkers")
    inside = [seven[i] for i in (0, 1, 3, 4, 6)]
    for m in inside:
        await join(api, operator_token, c, m["id"])
    by_id = {m["id"]: m for m in inside}
    expected = {
        "JOINED_AT_ASC": [m["id"] for m in inside],
        "JOINED_AT_DESC": [m["id"] for m in reversed(inside)],
        "LEVEL_DESC": sorted(by_id, key=lambda i: (-by_id[i]["level"], i)),
        "DISPLAY_NAME_ASC": sorted(by_id, key=lambda i: (by_id[i]["displayName"], i)),
    }[order]
    assert await walk(api, operator_token, order, 2, {"communityId": c}) == (expected, 5)
    wechat = [i for i in expected if by_id[i]["channel"] == "WECHAT"]
    assert await walk(api, operator_token, order, 2, {"communityId": c, "channel": "WECHAT"}) == (wechat, len(wechat))


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"first": 101}, "first"),
        ({"first": -1}, "first"),
        ({"after": "garbage!"}, "after"),
        ({"after": "W10"}, "after"),  # base64 of "[]"
        ({"after": "WyJ4IiwieSJd"}, "after"),  # base64 of ["x","y"]: not a time cursor
        ({"after": "WzEsMl0", "order": "LEVEL_DESC"}, "after"),  # [1,2]: id must be a string
        ({"after": "WzEsIm1lbV8xIl0", "order": "DISPLAY_NAME_ASC"}, "after"),  # [1,"mem_1"]: name must be a string
        ({"filter": {"communityId": "abc"}}, "filter.communityId"),
        ({"filter": {"tagId": "mem_abc"}}, "filter.tagId"),
        ({"filter": {"joinedFrom": "2026-01-01T00:00:00"}}, "filter.joinedFrom"),  # no time zone
        ({"filter": {"joinedTo": "2026-01-01T00:00:00"}}, "filter.joinedTo"),
    ],
)
async def test_members_rejects_bad_arguments(api, operator_token, variables, field):
    body = await api(MEMBERS, {"order": "JOINED_AT_DESC", **variables}, token=operator_token)
    assert body["data"] is None
    assert [e["extensions"] for e in body["errors"]] == [{"code": "VALIDATION_FAILED", "field": field}]
    assert body["errors"][0]["path"] == ["members"]


async def test_members_first_100_is_allowed(api, operator_token, seven):
    data = await api.ok(MEMBERS, {"first": 100, "order": "JOINED_AT_DESC"}, token=operator_token)
    assert len(data["members"]["nodes"]) == 7


async def test_member_role_cannot_list_members(api, operator_token, seven):
    body = await api(MEMBERS, {"order": "JOINED_AT_DESC"}, token=api.token("member", member=seven[0]["id"]))
    assert body["data"] is None
    assert [e["extensions"] for e in body["errors"]] == [{"code": "FORBIDDEN"}]


async def test_analyst_can_list_members(api, seven):
    _, total = await walk(api, api.token("analyst"), "JOINED_AT_DESC", 3)
    assert total == 7


# --- what members see of each other ----------------------------------------------------------


async def test_invite_code_and_consents_are_visible_to_self_and_staff_only(api, operator_token):
    a = await register(api, operator_token, "A", marketingConsent=True)
    b = await register(api, operator_token, "B")
    query = "query($id: ID!) { member(id: $id) { displayName inviteCode marketingConsent profilingConsent } }"
    own = (await api.ok(query, {"id": a["id"]}, token=api.token("member", member=a["id"])))["member"]
    assert own == {"displayName": "A", "inviteCode": a["inviteCode"], "marketingConsent": True, "profilingConsent": False}
    other = (await api.ok(query, {"id": a["id"]}, token=api.token("member", member=b["id"])))["member"]
    assert other == {"displayName": "A", "inviteCode": None, "marketingConsent": None, "profilingConsent": None}
    staff = (await api.ok(query, {"id": a["id"]}, token=api.token("analyst")))["member"]
    assert staff == own


async def test_concurrent_inviters_leave_exactly_one_referral(api, operator_token, graph, tenant):
    invitee = await register(api, operator_token, "Popular")
    inviters = [await register(api, operator_token, f"Inviter{i}") for i in range(8)]
    results = await asyncio.gather(*(
        api.ok(SET_INVITER, {"m": invitee["id"], "i": i["id"]}, token=operator_token) for i in inviters
    ))
    kinds = sorted(r["setInviter"]["__typename"] for r in results)
    assert kinds == ["ReferralError"] * 7 + ["ReferralPayload"]
    assert {r["setInviter"].get("code") for r in results} == {None, "ALREADY_REFERRED"}
    assert await referral_count(graph, tenant) == 1
    winner = next(r["setInviter"]["inviter"]["id"] for r in results if r["setInviter"]["__typename"] == "ReferralPayload")
    assert (await api.ok(REFERRALS, {"id": invitee["id"]}, token=operator_token))["member"]["invitedBy"] == {"id": winner}


async def test_concurrent_follows_of_one_pair_leave_one_relationship(api, operator_token, graph, tenant):
    a = await register(api, operator_token, "A")
    b = await register(api, operator_token, "B")
    results = await asyncio.gather(*(follow(api, operator_token, a["id"], b["id"]) for _ in range(10)))
    assert sorted(r["changed"] for r in results) == [False] * 9 + [True]
    assert await follow_count(graph, tenant) == 1


SEED_INTERESTS = """
UNWIND $rows AS row
MATCH (m:Member {id: row.member})
MERGE (t:Tag {id: row.tag})
ON CREATE SET t.tenantId = $tenant, t.name = row.name, t.kind = 'interest'
CREATE (m)-[:INTERESTED_IN {weight: row.weight, source: 'survey'}]->(t)
RETURN count(*) AS n
"""


async def test_members_filter_by_tag_and_interests(api, operator_token, graph, tenant, seven):
    tea, tennis = "tag_tea" + tenant[4:], "tag_tennis" + tenant[4:]
    rows = [
        {"member": seven[1]["id"], "tag": tea, "name": "tea", "weight": 0.5},
        {"member": seven[4]["id"], "tag": tea, "name": "tea", "weight": 0.9},
        {"member": seven[4]["id"], "tag": tennis, "name": "tennis", "weight": 0.95},
    ]

    async def work(tx: Any) -> None:
        result = await tx.run(SEED_INTERESTS, {"rows": rows, "tenant": tenant})
        await result.consume()

    await graph.write(work)
    got, total = await walk(api, operator_token, "JOINED_AT_ASC", 1, {"tagId": tea})
    assert (got, total) == ([seven[1]["id"], seven[4]["id"]], 2)
    got, total = await walk(api, operator_token, "JOINED_AT_ASC", 1, {"tagId": tennis, "minLevel": 10})
    assert (got, total) == ([seven[4]["id"]], 1)
    data = await api.ok("query($id: ID!) { member(id: $id) { interests { tag { id name kind } weight source } } }",
                        {"id": seven[4]["id"]}, token=operator_token)
    assert data["member"]["interests"] == [
        {"tag": {"id": tennis, "name": "tennis", "kind": "INTEREST"}, "weight": 0.95, "source": "survey"},
        {"tag": {"id": tea, "name": "tea", "kind": "INTEREST"}, "weight": 0.9, "source": "survey"},
    ]


async def test_invite_codes_are_accepted_in_any_case(api, operator_token):
    inviter = await register(api, operator_token, "Inviter")
    invitee = await register(api, operator_token, "Invitee", inviteCode=" " + inviter["inviteCode"].lower())
    data = await api.ok("query($id: ID!) { member(id: $id) { invitedBy { id } } }", {"id": invitee["id"]},
                        token=operator_token)
    assert data["member"]["invitedBy"] == {"id": inviter["id"]}
