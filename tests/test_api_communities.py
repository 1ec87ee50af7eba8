"""Communities over HTTP: creation, memberships and roles, listing, members and feeds."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.helpers import community, join, post, register

CREATE = """
mutation($input: CreateCommunityInput!) {
  createCommunity(input: $input) {
    __typename
    ... on CommunityPayload { community { id name kind channel description memberCount createdAt } }
    ... on UserError { code field }
  }
}
"""
JOIN = """
mutation($c: ID!, $m: ID) {
  joinCommunity(communityId: $c, asMemberId: $m) {
    __typename
    ... on MembershipPayload { changed role member { id } community { id } }
    ... on UserError { code field }
  }
}
"""
LEAVE = """
mutation($c: ID!, $m: ID) {
  leaveCommunity(communityId: $c, asMemberId: $m) {
    __typename
    ... on MembershipPayload { changed role member { id } community { id } }
    ... on UserError { code field }
  }
}
"""
SET_ROLE = """
mutation($m: ID!, $c: ID!, $role: MembershipRole!) {
  setMemberRole(memberId: $m, communityId: $c, role: $role) {
    __typename
    ... on MembershipPayload { changed role member { id } community { id } }
    ... on UserError { code field }
  }
}
"""
MEMBERS_OF = """
query($id: ID!, $first: Int, $after: String) {
  community(id: $id) {
    memberCount
    members(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { role node { id } }
    }
  }
}
"""
COMMUNITIES = """
query($first: Int, $after: String, $filter: CommunityFilterInput, $order: CommunityOrder!) {
  communities(first: $first, after: $after, filter: $filter, orderBy: $order) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id name }
  }
}
"""
FEED = """
query($id: ID!, $first: Int, $after: String) {
  community(id: $id) {
    feed(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { id title author { id displayName } likeCount community { id } }
    }
  }
}
"""
LIKE = """
mutation($c: ID!, $m: ID) {
  likeContent(contentId: $c, asMemberId: $m) { __typename ... on InteractionPayload { changed } }
}
"""


async def count(graph: Any, query: Any, **params: Any) -> int:
    rows = await graph.read(query, **params)
    return int(rows[0]["n"])


async def community_count(graph: Any, tenant: str) -> int:
    return await count(graph, "MATCH (c:Community {tenantId: $tenant}) RETURN count(c) AS n", tenant=tenant)


async def membership_count(graph: Any, tenant: str) -> int:
    return await count(
        graph, "MATCH (:Member)-[r:MEMBER_OF]->(c:Community {tenantId: $tenant}) RETURN count(r) AS n", tenant=tenant
    )


async def role_in_graph(graph: Any, member_id: str, community_id: str) -> list[str]:
    rows = await graph.read(
        "MATCH (:Member {id: $m})-[r:MEMBER_OF]->(:Community {id: $c}) RETURN r.role AS role", m=member_id, c=community_id
    )
    return [r["role"] for r in rows]


# --- createCommunity -------------------------------------------------------------------------


async def test_create_community(api, operator_token, graph, tenant):
    data = await api.ok(
        CREATE,
        {"input": {"name": "上海跑团", "kind": "REGION", "channel": "WECHAT_GROUP", "description": "每周六早上"}},
        token=operator_token,
    )
    result = data["createCommunity"]
    assert result["__typename"] == "CommunityPayload"
    c = result["community"]
    assert re.fullmatch(r"com_[0-9a-z]{16}", c["id"])
    assert {k: v for k, v in c.items() if k not in ("id", "createdAt")} == {
        "name": "上海跑团", "kind": "REGION", "channel": "WECHAT_GROUP", "description": "每周六早上", "memberCount": 0,
    }
    rows = await graph.read(
        "MATCH (c:Community {id: $id}) RETURN c.tenantId AS tenant, c.kind AS kind, c.channel AS channel", id=c["id"]
    )
    assert [dict(r) for r in rows] == [{"tenant": tenant, "kind": "region", "channel": "wechat_group"}]


async def test_create_community_defaults(api, operator_token):
    data = await api.ok(CREATE, {"input": {"name": "Defaults"}}, token=operator_token)
    c = data["createCommunity"]["community"]
    assert (c["kind"], c["channel"], c["description"]) == ("INTEREST", "APP_CIRCLE", None)


@pytest.mark.parametrize("role", ["member", "analyst", "integrator"])
async def test_only_operators_and_admins_create_communities(api, graph, tenant, role):
    data = await api.ok(CREATE, {"input": {"name": "Nope"}}, token=api.token(role))
    assert data["createCommunity"] == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": None}
    assert await community_count(graph, tenant) == 0


async def test_admin_creates_communities(api):
    data = await api.ok(CREATE, {"input": {"name": "Yes"}}, token=api.token("admin"))
    assert data["createCommunity"]["__typename"] == "CommunityPayload"


async def test_create_community_with_owner(api, operator_token, graph, tenant):
    owner = await register(api, operator_token, "Owner")
    data = await api.ok(CREATE, {"input": {"name": "Owned", "ownerId": owner["id"]}}, token=operator_token)
    c = data["createCommunity"]["community"]
    assert c["memberCount"] == 1
    members = (await api.ok(MEMBERS_OF, {"id": c["id"]}, token=operator_token))["community"]
    assert members["members"]["edges"] == [{"role": "OWNER", "node": {"id": owner["id"]}}]
    mine = await api.ok(
        "query($id: ID!) { member(id: $id) { communities { totalCount edges { role node { id name } } } } }",
        {"id": owner["id"]}, token=operator_token,
    )
    assert mine["member"]["communities"] == {
        "totalCount": 1, "edges": [{"role": "OWNER", "node": {"id": c["id"], "name": "Owned"}}],
    }
    assert await role_in_graph(graph, owner["id"], c["id"]) == ["owner"]


@pytest.mark.parametrize(
    ("fields", "typename", "code", "field"),
    [
        ({"name": ""}, "ValidationError", "VALIDATION_FAILED", "input.name"),
        ({"name": "  "}, "ValidationError", "VALIDATION_FAILED", "input.name"),
        ({"name": "n" * 81}, "ValidationError", "VALIDATION_FAILED", "input.name"),
        ({"name": "ok", "description": "d" * 2001}, "ValidationError", "VALIDATION_FAILED", "input.description"),
        ({"name": "ok", "ownerId": "abc"}, "ValidationError", "VALIDATION_FAILED", "input.ownerId"),
        ({"name": "ok", "ownerId": "mem_missing0000000"}, "NotFoundError", "NOT_FOUND", "input.ownerId"),
    ],
)
async def test_create_community_rejects_bad_input_and_writes_nothing(api, operator_token, graph, tenant, fields, typename, code, field):
    data = await api.ok(CREATE, {"input": fields}, token=operator_token)
    assert data["createCommunity"] == {"__typename": typename, "code": code, "field": field}
    assert await community_count(graph, tenant) == 0


# --- join / leave ----------------------------------------------------------------------------


async def test_join_and_leave_are_idempotent(api, operator_token, graph, tenant):
    c = await community(api, operator_token, "Club")
    m = await register(api, operator_token, "M")
    me = api.token("member", member=m["id"])
    steps = [(JOIN, "joinCommunity", True, "MEMBER"), (JOIN, "joinCommunity", False, "MEMBER"),
             (LEAVE, "leaveCommunity", True, None), (LEAVE, "leaveCommunity", False, None)]
    for query, name, changed, role in steps:
        data = await api.ok(query, {"c": c}, token=me)
        assert data[name] == {
            "__typename": "MembershipPayload", "changed": changed, "role": role,
            "member": {"id": m["id"]}, "community": {"id": c},
        }, (name, changed)
        assert await membership_count(graph, tenant) == (1 if query is JOIN else 0)


async def test_joining_again_keeps_the_role(api, operator_token):
    owner = await register(api, operator_token, "Owner")
    c = (await api.ok(CREATE, {"input": {"name": "Owned", "ownerId": owner["id"]}}, token=operator_token))[
        "createCommunity"]["community"]["id"]
    data = await api.ok(JOIN, {"c": c, "m": owner["id"]}, token=operator_token)
    assert (data["joinCommunity"]["changed"], data["joinCommunity"]["role"]) == (False, "OWNER")


async def test_join_and_leave_unknown_or_malformed(api, operator_token, graph, tenant):
    c = await community(api, operator_token, "Club")
    m = await register(api, operator_token, "M")
    for query, name in ((JOIN, "joinCommunity"), (LEAVE, "leaveCommunity")):
        cases = [
            ({"c": "com_missing0000000", "m": m["id"]}, "NotFoundError", "NOT_FOUND", "communityId"),
            ({"c": c, "m": "mem_missing0000000"}, "NotFoundError", "NOT_FOUND", "memberId"),
            ({"c": "abc", "m": m["id"]}, "ValidationError", "VALIDATION_FAILED", "communityId"),
            ({"c": c, "m": "abc"}, "ValidationError", "VALIDATION_FAILED", "asMemberId"),
        ]
        for variables, typename, code, field in cases:
            data = await api.ok(query, variables, token=operator_token)
            assert data[name] == {"__typename": typename, "code": code, "field": field}, (name, variables)
    assert await membership_count(graph, tenant) == 0


async def test_member_cannot_join_as_someone_else(api, operator_token, graph, tenant):
    c = await community(api, operator_token, "Club")
    a = await register(api, operator_token, "A")
    b = await register(api, operator_token, "B")
    data = await api.ok(JOIN, {"c": c, "m": b["id"]}, token=api.token("member", member=a["id"]))
    assert data["joinCommunity"] == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": "asMemberId"}
    assert await membership_count(graph, tenant) == 0


# --- setMemberRole ---------------------------------------------------------------------------


@pytest.fixture
async def club(api, operator_token) -> dict[str, str]:
    owner = await register(api, operator_token, "Owner")
    admin = await register(api, operator_token, "Admin")
    plain = await register(api, operator_token, "Plain")
    other = await register(api, operator_token, "Other")
    outsider = await register(api, operator_token, "Outsider")
    data = await api.ok(CREATE, {"input": {"name": "Club", "ownerId": owner["id"]}}, token=operator_token)
    c = data["createCommunity"]["community"]["id"]
    for m in (admin, plain, other):
        await join(api, operator_token, c, m["id"])
    data = await api.ok(SET_ROLE, {"m": admin["id"], "c": c, "role": "ADMIN"}, token=operator_token)
    assert data["setMemberRole"]["role"] == "ADMIN"
    return {"c": c, "owner": owner["id"], "admin": admin["id"], "plain": plain["id"], "other": other["id"],
            "outsider": outsider["id"]}


async def test_operator_sets_a_role(api, operator_token, graph, club):
    data = await api.ok(SET_ROLE, {"m": club["plain"], "c": club["c"], "role": "KOL"}, token=operator_token)
    assert data["setMemberRole"] == {
        "__typename": "MembershipPayload", "changed": True, "role": "KOL",
        "member": {"id": club["plain"]}, "community": {"id": club["c"]},
    }
    assert await role_in_graph(graph, club["plain"], club["c"]) == ["kol"]


async def test_community_owner_sets_roles(api, graph, club):
    as_owner = api.token("member", member=club["owner"])
    for role in ("KOL", "ADMIN", "OWNER"):
        data = await api.ok(SET_ROLE, {"m": club["plain"], "c": club["c"], "role": role}, token=as_owner)
        assert data["setMemberRole"]["role"] == role
    assert await role_in_graph(graph, club["plain"], club["c"]) == ["owner"]


async def test_community_admin_sets_roles_but_not_owner(api, graph, club):
    as_admin = api.token("member", member=club["admin"])
    data = await api.ok(SET_ROLE, {"m": club["plain"], "c": club["c"], "role": "KOL"}, token=as_admin)
    assert data["setMemberRole"]["role"] == "KOL"
    data = await api.ok(SET_ROLE, {"m": club["plain"], "c": club["c"], "role": "OWNER"}, token=as_admin)
    assert data["setMemberRole"] == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": "role"}
    assert await role_in_graph(graph, club["plain"], club["c"]) == ["kol"]


async def test_plain_member_cannot_set_roles(api, graph, club):
    for actor in ("plain", "outsider"):
        data = await api.ok(SET_ROLE, {"m": club["other"], "c": club["c"], "role": "ADMIN"},
                            token=api.token("member", member=club[actor]))
        assert data["setMemberRole"] == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": None}
    data = await api.ok(SET_ROLE, {"m": club["plain"], "c": club["c"], "role": "OWNER"},
                        token=api.token("member", member=club["plain"]))
    assert data["setMemberRole"] == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": None}
    assert await role_in_graph(graph, club["other"], club["c"]) == ["member"]
    assert await role_in_graph(graph, club["plain"], club["c"]) == ["member"]


async def test_owner_of_another_community_cannot_set_roles_here(api, operator_token, graph, club):
    data = await api.ok(CREATE, {"input": {"name": "Elsewhere", "ownerId": club["plain"]}}, token=operator_token)
    assert data["createCommunity"]["__typename"] == "CommunityPayload"
    data = await api.ok(SET_ROLE, {"m": club["other"], "c": club["c"], "role": "ADMIN"},
                        token=api.token("member", member=club["plain"]))
    assert data["setMemberRole"] == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": None}
    assert await role_in_graph(graph, club["other"], club["c"]) == ["member"]


async def test_set_role_errors(api, operator_token, graph, club):
    cases = [
        ({"m": club["outsider"], "c": club["c"]}, "NotFoundError", "NOT_FOUND", "memberId"),
        ({"m": "mem_missing0000000", "c": club["c"]}, "NotFoundError", "NOT_FOUND", "memberId"),
        ({"m": club["plain"], "c": "com_missing0000000"}, "NotFoundError", "NOT_FOUND", "communityId"),
        ({"m": "abc", "c": club["c"]}, "ValidationError", "VALIDATION_FAILED", "memberId"),
        ({"m": club["plain"], "c": "abc"}, "ValidationError", "VALIDATION_FAILED", "communityId"),
    ]
    for variables, typename, code, field in cases:
        data = await api.ok(SET_ROLE, {**variables, "role": "KOL"}, token=operator_token)
        assert data["setMemberRole"] == {"__typename": typename, "code": code, "field": field}, variables
    assert await role_in_graph(graph, club["outsider"], club["c"]) == []
    assert await role_in_graph(graph, club["plain"], club["c"]) == ["member"]


# --- Community.members -----------------------------------------------------------------------


async def test_community_members_with_roles_newest_first_and_pages(api, operator_token, club):
    data = await api.ok(MEMBERS_OF, {"id": club["c"]}, token=operator_token)
    c = data["community"]
    assert c["memberCount"] == 4
    assert c["members"]["totalCount"] == 4
    assert c["members"]["edges"] == [
        {"role": "MEMBER", "node": {"id": club["other"]}},
        {"role": "MEMBER", "node": {"id": club["plain"]}},
        {"role": "ADMIN", "node": {"id": club["admin"]}},
        {"role": "OWNER", "node": {"id": club["owner"]}},
    ]
    seen: list[dict[str, Any]] = []
    after = None
    for _ in range(5):
        page = (await api.ok(MEMBERS_OF, {"id": club["c"], "first": 3, "after": after}, token=operator_token))[
            "community"]["members"]
        seen += page["edges"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == c["members"]["edges"]


# --- communities(...) ------------------------------------------------------------------------


async def walk(api: Any, token: str, order: str, first: int, filter: dict[str, Any] | None = None) -> tuple[list[str], int]:
    names: list[str] = []
    after = None
    for _ in range(20):
        conn = (await api.ok(COMMUNITIES, {"first": first, "after": after, "filter": filter, "order": order}, token=token))[
            "communities"]
        names += [n["name"] for n in conn["nodes"]]
        if not conn["pageInfo"]["hasNextPage"]:
            return names, conn["totalCount"]
        after = conn["pageInfo"]["endCursor"]
    raise AssertionError("pagination did not end")


NAMES = ["Running Shanghai", "Yoga", "trail running", "Coffee", "Board games", "RUNNING Beijing", "Anime"]


@pytest.fixture
async def communities(api, operator_token) -> list[str]:
    ids = []
    for i, name in enumerate(NAMES):
        kind = "REGION" if "Shanghai" in name or "Beijing" in name else "INTEREST"
        ids.append(await community(api, operator_token, name, kind=kind, channel="WECOM" if i % 2 else "APP_CIRCLE"))
    return ids


@pytest.mark.parametrize("first", [2, 3])
async def test_communities_pages_by_name_and_by_creation(api, operator_token, communities, first):
    assert await walk(api, operator_token, "NAME_ASC", first) == (sorted(NAMES), 7)
    assert await walk(api, operator_token, "CREATED_AT_DESC", first) == (list(reversed(NAMES)), 7)


async def test_communities_filters(api, operator_token, communities):
    running = ["RUNNING Beijing", "Running Shanghai", "trail running"]
    assert await walk(api, operator_token, "NAME_ASC", 2, {"nameContains": "running"}) == (running, 3)
    assert await walk(api, operator_token, "NAME_ASC", 2, {"nameContains": "RuNNinG"}) == (running, 3)
    assert await walk(api, operator_token, "CREATED_AT_DESC", 2, {"nameContains": "running"}) == (
        ["RUNNING Beijing", "trail running", "Running Shanghai"], 3)
    assert await walk(api, operator_token, "NAME_ASC", 2, {"kind": "REGION"}) == (["RUNNING Beijing", "Running Shanghai"], 2)
    assert await walk(api, operator_token, "NAME_ASC", 2, {"channel": "WECOM"}) == (
        ["Coffee", "RUNNING Beijing", "Yoga"], 3)
    assert await walk(api, operator_token, "NAME_ASC", 2, {"nameContains": "running", "channel": "APP_CIRCLE"}) == (
        ["Running Shanghai", "trail running"], 2)
    assert await walk(api, operator_token, "NAME_ASC", 2, {"nameContains": "chess"}) == ([], 0)


async def test_members_see_communities(api, operator_token, communities):
    m = await register(api, operator_token, "M")
    names, total = await walk(api, api.token("member", member=m["id"]), "NAME_ASC", 5)
    assert (names, total) == (sorted(NAMES), 7)


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"first": 101}, "first"),
        ({"after": "%%%"}, "after"),
        ({"after": "WzEsMl0", "order": "NAME_ASC"}, "after"),  # [1,2]
        ({"filter": {"nameContains": "x" * 81}}, "filter.nameContains"),
    ],
)
async def test_communities_rejects_bad_arguments(api, operator_token, variables, field):
    body = await api(COMMUNITIES, {"order": "CREATED_AT_DESC", **variables}, token=operator_token)
    assert body["data"] is None
    assert [e["extensions"] for e in body["errors"]] == [{"code": "VALIDATION_FAILED", "field": field}]


# --- Community.feed --------------------------------------------------------------------------


async def test_feed_is_newest_first_with_authors_and_like_counts(api, operator_token):
    c = await community(api, operator_token, "Feed")
    elsewhere = await community(api, operator_token, "Elsewhere")
    alice = await register(api, operator_token, "Alice")
    bob = await register(api, operator_token, "Bob")
    for m in (alice, bob):
        await join(api, operator_token, c, m["id"])
        await join(api, operator_token, elsewhere, m["id"])
    posts = []
    for i in range(5):
        author = alice if i % 2 == 0 else bob
        created = await post(api, operator_token, author["id"], c, f"post {i}")
        posts.append((created["content"]["id"], author))
    await post(api, operator_token, alice["id"], elsewhere, "not in this feed")
    first_post = posts[0][0]
    for liker in (alice, bob):
        assert (await api.ok(LIKE, {"c": first_post, "m": liker["id"]}, token=operator_token))["likeContent"]["changed"]
    assert (await api.ok(LIKE, {"c": posts[3][0], "m": bob["id"]}, token=operator_token))["likeContent"]["changed"]

    expected = [
        {"id": pid, "title": f"post {i}", "author": {"id": a["id"], "displayName": a["displayName"]},
         "likeCount": {0: 2, 3: 1}.get(i, 0), "community": {"id": c}}
        for i, (pid, a) in enumerate(posts)
    ][::-1]
    whole = (await api.ok(FEED, {"id": c}, token=operator_token))["community"]["feed"]
    assert whole == {"totalCount": 5, "pageInfo": {"hasNextPage": False, "endCursor": whole["pageInfo"]["endCursor"]},
                     "nodes": expected}

    seen: list[dict[str, Any]] = []
    after = None
    pages = 0
    for _ in range(5):
        page = (await api.ok(FEED, {"id": c, "first": 2, "after": after}, token=operator_token))["community"]["feed"]
        pages += 1
        assert page["totalCount"] == 5
        seen += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert (seen, pages) == (expected, 3)


async def test_feed_rejects_bad_cursor(api, operator_token):
    c = await community(api, operator_token, "Feed")
    body = await api(FEED, {"id": c, "after": "nope"}, token=operator_token)
    assert body["data"] == {"community": None}
    assert [(e["path"], e["extensions"]) for e in body["errors"]] == [
        (["community", "feed"], {"code": "VALIDATION_FAILED", "field": "after"}),
    ]


async def test_community_by_id(api, operator_token):
    c = await community(api, operator_token, "Lookup")
    data = await api.ok("query($id: ID!) { community(id: $id) { id name } }", {"id": c}, token=operator_token)
    assert data["community"] == {"id": c, "name": "Lookup"}
    data = await api.ok("query($id: ID!) { community(id: $id) { id } }", {"id": "com_missing0000000"}, token=operator_token)
    assert data["community"] is None
    body = await api("query($id: ID!) { community(id: $id) { id } }", {"id": "mem_abc"}, token=operator_token)
    assert [e["extensions"] for e in body["errors"]] == [{"code": "VALIDATION_FAILED", "field": "id"}]
