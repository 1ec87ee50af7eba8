"""Content over HTTP: posting, topics, comments and interactions (like, favorite, share)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.helpers import community, join, register

CREATE = """
mutation($input: CreateContentInput!, $as: ID) {
  createContent(input: $input, asMemberId: $as) {
    __typename
    ... on ContentPayload {
      content { id kind title body author { id } community { id } topics { id name kind }
                likeCount commentCount shareCount favoriteCount }
    }
    ... on UserError { code field }
  }
}
"""
COMMENT = """
mutation($input: AddCommentInput!, $as: ID) {
  addComment(input: $input, asMemberId: $as) {
    __typename
    ... on CommentPayload { comment { id body author { id } content { id commentCount } } }
    ... on UserError { code field }
  }
}
"""
INTERACT = {
    name: f"""
mutation($c: ID!, $as: ID) {{
  {name}(contentId: $c, asMemberId: $as) {{
    __typename
    ... on InteractionPayload {{ changed member {{ id }} content {{ id likeCount favoriteCount shareCount }} }}
    ... on UserError {{ code field }}
  }}
}}
"""
    for name in ("likeContent", "unlikeContent", "favoriteContent", "shareContent")
}
CONTENT = """
query($id: ID!, $first: Int, $after: String) {
  content(id: $id) {
    id title likeCount favoriteCount shareCount commentCount
    comments(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { id body author { id } content { id } }
    }
  }
}
"""


async def count(graph: Any, query: Any, **params: Any) -> int:
    rows = await graph.read(query, **params)
    return int(rows[0]["n"])


async def content_count(graph: Any, tenant: str) -> int:
    return await count(graph, "MATCH (c:Content {tenantId: $tenant}) RETURN count(c) AS n", tenant=tenant)


async def tag_count(graph: Any, tenant: str) -> int:
    return await count(graph, "MATCH (t:Tag {tenantId: $tenant}) RETURN count(t) AS n", tenant=tenant)


async def comment_count(graph: Any, tenant: str) -> int:
    return await count(graph, "MATCH (c:Comment {tenantId: $tenant}) RETURN count(c) AS n", tenant=tenant)


@pytest.fixture
async def world(api, operator_token) -> dict[str, str]:
    """A community with two members (Alice, Bob) and an outsider (Olga)."""
    c = await community(api, operator_token, "Runners")
    alice = await register(api, operator_token, "Alice")
    bob = await register(api, operator_token, "Bob")
    olga = await register(api, operator_token, "Olga")
    await join(api, operator_token, c, alice["id"])
    await join(api, operator_token, c, bob["id"])
    return {"c": c, "alice": alice["id"], "bob": bob["id"], "olga": olga["id"]}


async def create(api: Any, token: str, fields: dict[str, Any], as_member: str | None = None) -> dict[str, Any]:
    data = await api.ok(CREATE, {"input": fields, "as": as_member}, token=token)
    result: dict[str, Any] = data["createContent"]
    return result


# --- createContent ---------------------------------------------------------------------------


async def test_member_posts_in_own_community(api, world, graph, tenant):
    result = await create(api, api.token("member", member=world["alice"]),
                          {"communityId": world["c"], "title": "晨跑", "body": "6 km today", "kind": "REVIEW",
                           "topics": ["Run"]})
    assert result["__typename"] == "ContentPayload"
    c = result["content"]
    assert re.fullmatch(r"cnt_[0-9a-z]{16}", c["id"])
    assert [(t["name"], t["kind"]) for t in c["topics"]] == [("run", "TOPIC")]
    assert {k: v for k, v in c.items() if k not in ("id", "topics")} == {
        "kind": "REVIEW", "title": "晨跑", "body": "6 km today", "author": {"id": world["alice"]},
        "community": {"id": world["c"]}, "likeCount": 0, "commentCount": 0, "shareCount": 0,
        "favoriteCount": 0,
    }
    rows = await graph.read(
        "MATCH (a:Member)-[:POSTED]->(c:Content {id: $id})-[:IN]->(k:Community) "
        "RETURN a.id AS author, k.id AS community, c.tenantId AS tenant",
        id=c["id"],
    )
    assert [dict(r) for r in rows] == [{"author": world["alice"], "community": world["c"], "tenant": tenant}]


async def test_member_must_belong_to_the_community_to_post(api, world, graph, tenant):
    result = await create(api, api.token("member", member=world["olga"]), {"communityId": world["c"], "body": "hi"})
    assert result == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": "input.communityId"}
    assert await content_count(graph, tenant) == 0


async def test_staff_may_post_as_a_member_outside_the_community(api, operator_token, world):
    result = await create(api, operator_token, {"communityId": world["c"], "body": "announcement"}, world["olga"])
    assert result["__typename"] == "ContentPayload"
    assert result["content"]["author"] == {"id": world["olga"]}


async def test_member_cannot_post_as_someone_else(api, world, graph, tenant):
    result = await create(api, api.token("member", member=world["alice"]), {"communityId": world["c"], "body": "hi"},
                          world["bob"])
    assert result == {"__typename": "PermissionError", "code": "FORBIDDEN", "field": "asMemberId"}
    assert await content_count(graph, tenant) == 0


@pytest.mark.parametrize(
    ("fields", "typename", "code", "field"),
    [
        ({"body": ""}, "ValidationError", "VALIDATION_FAILED", "input.body"),
        ({"body": "   "}, "ValidationError", "VALIDATION_FAILED", "input.body"),
        ({"body": "b" * 20001}, "ValidationError", "VALIDATION_FAILED", "input.body"),
        ({"body": "ok", "title": "t" * 201}, "ValidationError", "VALIDATION_FAILED", "input.title"),
        ({"body": "ok", "topics": [f"t{i}" for i in range(11)]}, "ValidationError", "VALIDATION_FAILED", "input.topics"),
        ({"body": "ok", "topics": ["fine", "x" * 41]}, "ValidationError", "VALIDATION_FAILED", "input.topics[1]"),
        ({"body": "ok", "topics": [""]}, "ValidationError", "VALIDATION_FAILED", "input.topics[0]"),
        ({"body": "ok", "communityId": "abc"}, "ValidationError", "VALIDATION_FAILED", "input.communityId"),
        ({"body": "ok", "communityId": "com_missing0000000"}, "NotFoundError", "NOT_FOUND", "input.communityId"),
    ],
)
async def test_create_content_rejects_bad_input_and_writes_nothing(api, world, graph, tenant, fields, typename, code, field):
    result = await create(api, api.token("member", member=world["alice"]), {"communityId": world["c"], **fields})
    assert result == {"__typename": typename, "code": code, "field": field}
    assert await content_count(graph, tenant) == 0
    assert await tag_count(graph, tenant) == 0


async def test_post_as_unknown_member_is_not_found(api, operator_token, world, graph, tenant):
    result = await create(api, operator_token, {"communityId": world["c"], "body": "hi"}, "mem_missing0000000")
    assert result == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "asMemberId"}
    assert await content_count(graph, tenant) == 0


async def test_topics_are_tags_shared_across_posts(api, world, graph, tenant):
    as_alice = api.token("member", member=world["alice"])
    first = (await create(api, as_alice, {"communityId": world["c"], "body": "a",
                                           "topics": ["Running", " running ", "马拉松"]}))["content"]
    assert [(t["name"], t["kind"]) for t in first["topics"]] == [("running", "TOPIC"), ("马拉松", "TOPIC")]
    assert all(re.fullmatch(r"tag_[0-9a-z]{16}", t["id"]) for t in first["topics"])
    second = (await create(api, api.token("member", member=world["bob"]),
                           {"communityId": world["c"], "body": "b", "topics": ["RUNNING", "coffee"]}))["content"]
    by_name = {t["name"]: t["id"] for t in first["topics"]}
    assert [t["name"] for t in second["topics"]] == ["coffee", "running"]
    assert second["topics"][1]["id"] == by_name["running"]
    assert await tag_count(graph, tenant) == 3
    rows = await graph.read(
        "MATCH (c:Content)-[:ABOUT]->(t:Tag {id: $id}) RETURN c.id AS content ORDER BY content", id=by_name["running"]
    )
    assert sorted(r["content"] for r in rows) == sorted([first["id"], second["id"]])
    data = await api.ok("query($id: ID!) { node(id: $id) { __typename ... on Tag { name kind } } }",
                        {"id": by_name["running"]}, token=as_alice)
    assert data["node"] == {"__typename": "Tag", "name": "running", "kind": "TOPIC"}


async def test_member_posts_are_listed_newest_first(api, world):
    as_alice = api.token("member", member=world["alice"])
    ids = [(await create(api, as_alice, {"communityId": world["c"], "title": f"p{i}", "body": "x"}))["content"]["id"]
           for i in range(3)]
    data = await api.ok("query($id: ID!) { member(id: $id) { posts(first: 2) { totalCount nodes { id } "
                        "pageInfo { hasNextPage } } } }", {"id": world["alice"]}, token=as_alice)
    assert data["member"]["posts"] == {
        "totalCount": 3, "nodes": [{"id": ids[2]}, {"id": ids[1]}], "pageInfo": {"hasNextPage": True},
    }


# --- comments --------------------------------------------------------------------------------


@pytest.fixture
async def article(api, world) -> str:
    result = await create(api, api.token("member", member=world["alice"]), {"communityId": world["c"], "title": "A",
                                                                           "body": "text"})
    return str(result["content"]["id"])


async def test_add_comment_and_page_through_comments(api, world, article, graph, tenant):
    as_bob = api.token("member", member=world["bob"])
    ids = []
    for i in range(5):
        data = await api.ok(COMMENT, {"input": {"contentId": article, "body": f"c{i}"}}, token=as_bob)
        result = data["addComment"]
        assert result["__typename"] == "CommentPayload"
        assert re.fullmatch(r"cmt_[0-9a-z]{16}", result["comment"]["id"])
        assert {k: v for k, v in result["comment"].items() if k != "id"} == {
            "body": f"c{i}", "author": {"id": world["bob"]}, "content": {"id": article, "commentCount": i + 1},
        }
        ids.append(result["comment"]["id"])
    expected = [{"id": ids[i], "body": f"c{i}", "author": {"id": world["bob"]}, "content": {"id": article}}
                for i in reversed(range(5))]
    seen: list[dict[str, Any]] = []
    after = None
    for _ in range(5):
        c = (await api.ok(CONTENT, {"id": article, "first": 2, "after": after}, token=as_bob))["content"]
        assert (c["commentCount"], c["comments"]["totalCount"]) == (5, 5)
        seen += c["comments"]["nodes"]
        if not c["comments"]["pageInfo"]["hasNextPage"]:
            break
        after = c["comments"]["pageInfo"]["endCursor"]
    assert seen == expected
    assert await comment_count(graph, tenant) == 5
    assert await count(graph, "MATCH (:Member {id: $m})-[r:COMMENTED]->(:Content {id: $c}) RETURN count(r) AS n",
                       m=world["bob"], c=article) == 5


@pytest.mark.parametrize(
    ("fields", "typename", "code", "field"),
    [
        ({"body": ""}, "ValidationError", "VALIDATION_FAILED", "input.body"),
        ({"body": " \n "}, "ValidationError", "VALIDATION_FAILED", "input.body"),
        ({"body": "b" * 5001}, "ValidationError", "VALIDATION_FAILED", "input.body"),
        ({"body": "ok", "contentId": "abc"}, "ValidationError", "VALIDATION_FAILED", "input.contentId"),
        ({"body": "ok", "contentId": "cnt_missing0000000"}, "NotFoundError", "NOT_FOUND", "input.contentId"),
    ],
)
async def test_add_comment_rejects_bad_input_and_writes_nothing(api, world, article, graph, tenant, fields, typename, code, field):
    data = await api.ok(COMMENT, {"input": {"contentId": article, **fields}}, token=api.token("member", member=world["bob"]))
    assert data["addComment"] == {"__typename": typename, "code": code, "field": field}
    assert await comment_count(graph, tenant) == 0


# --- interactions ----------------------------------------------------------------------------


async def interact(api: Any, name: str, token: str, content_id: str, as_member: str | None = None) -> dict[str, Any]:
    data = await api.ok(INTERACT[name], {"c": content_id, "as": as_member}, token=token)
    result: dict[str, Any] = data[name]
    return result


async def test_like_and_unlike_are_idempotent(api, world, article, graph):
    as_bob = api.token("member", member=world["bob"])
    steps = [("likeContent", True, 1), ("likeContent", False, 1), ("unlikeContent", True, 0), ("unlikeContent", False, 0)]
    for name, changed, likes in steps:
        result = await interact(api, name, as_bob, article)
        assert result == {
            "__typename": "InteractionPayload", "changed": changed, "member": {"id": world["bob"]},
            "content": {"id": article, "likeCount": likes, "favoriteCount": 0, "shareCount": 0},
        }, name
    assert (await interact(api, "likeContent", as_bob, article))["changed"] is True
    assert (await interact(api, "likeContent", api.token("member", member=world["alice"]), article))["content"][
        "likeCount"] == 2
    assert await count(graph, "MATCH (:Member)-[r:LIKED]->(:Content {id: $c}) RETURN count(r) AS n", c=article) == 2


async def test_favorite_is_idempotent(api, world, article, graph):
    as_bob = api.token("member", member=world["bob"])
    assert [(r["changed"], r["content"]["favoriteCount"]) for r in
            [await interact(api, "favoriteContent", as_bob, article) for _ in range(2)]] == [(True, 1), (False, 1)]
    assert await count(graph, "MATCH (:Member)-[r:FAVORITED]->(:Content {id: $c}) RETURN count(r) AS n", c=article) == 1


async def test_shares_count_each_member_once_and_every_share_on_the_relationship(api, operator_token, world, article, graph):
    as_bob = api.token("member", member=world["bob"])
    first = await interact(api, "shareContent", as_bob, article)
    second = await interact(api, "shareContent", as_bob, article)
    assert [(r["changed"], r["content"]["shareCount"]) for r in (first, second)] == [(True, 1), (True, 1)]
    third = await interact(api, "shareContent", operator_token, article, world["olga"])
    assert third["content"]["shareCount"] == 2
    rows = await graph.read("MATCH (m:Member)-[r:SHARED]->(:Content {id: $c}) RETURN m.id AS m, r.count AS n", c=article)
    assert sorted((r["m"], r["n"]) for r in rows) == sorted([(world["bob"], 2), (world["olga"], 1)])
    c = (await api.ok(CONTENT, {"id": article}, token=as_bob))["content"]
    assert (c["likeCount"], c["favoriteCount"], c["shareCount"], c["commentCount"]) == (0, 0, 2, 0)


@pytest.mark.parametrize("name", ["likeContent", "unlikeContent", "favoriteContent", "shareContent"])
async def test_interactions_with_unknown_or_malformed_ids(api, operator_token, world, article, graph, tenant, name):
    as_bob = api.token("member", member=world["bob"])
    assert await interact(api, name, as_bob, "cnt_missing0000000") == {
        "__typename": "NotFoundError", "code": "NOT_FOUND", "field": "contentId"}
    assert await interact(api, name, as_bob, "abc") == {
        "__typename": "ValidationError", "code": "VALIDATION_FAILED", "field": "contentId"}
    assert await interact(api, name, operator_token, article, "mem_missing0000000") == {
        "__typename": "NotFoundError", "code": "NOT_FOUND", "field": "asMemberId"}
    assert await interact(api, name, as_bob, article, world["alice"]) == {
        "__typename": "PermissionError", "code": "FORBIDDEN", "field": "asMemberId"}
    assert await count(
        graph, "MATCH (:Member)-[r]->(c:Content {tenantId: $tenant}) WHERE type(r) IN ['LIKED', 'FAVORITED', 'SHARED'] "
        "RETURN count(r) AS n", tenant=tenant) == 0


async def test_content_by_id(api, world, article):
    token = api.token("member", member=world["olga"])
    data = await api.ok("query($id: ID!) { content(id: $id) { id title author { displayName } } }", {"id": article},
                        token=token)
    assert data["content"] == {"id": article, "title": "A", "author": {"displayName": "Alice"}}
    data = await api.ok("query($id: ID!) { content(id: $id) { id } }", {"id": "cnt_missing0000000"}, token=token)
    assert data["content"] is None


async def test_topics_are_per_tenant(api, world):
    mine = (await create(api, api.token("member", member=world["alice"]),
                         {"communityId": world["c"], "body": "a", "topics": ["tea"]}))["content"]["topics"]
    other = api.token("operator", tenant=api.tenant + "b")
    c = await community(api, other, "Elsewhere")
    m = await register(api, other, "Eve")
    theirs = (await create(api, other, {"communityId": c, "body": "b", "topics": ["tea"]}, m["id"]))["content"]["topics"]
    assert [t["name"] for t in mine] == [t["name"] for t in theirs] == ["tea"]
    assert mine[0]["id"] != theirs[0]["id"]
    data = await api.ok("query($id: ID!) { node(id: $id) { id } }", {"id": mine[0]["id"]}, token=other)
    assert data == {"node": None}


async def test_viewer_has_liked_follows_the_calling_member(api, world, article, operator_token):
    query = "query($id: ID!) { content(id: $id) { viewerHasLiked } }"
    as_bob = api.token("member", member=world["bob"])
    as_alice = api.token("member", member=world["alice"])
    await interact(api, "likeContent", as_bob, article)
    assert (await api.ok(query, {"id": article}, token=as_bob))["content"] == {"viewerHasLiked": True}
    assert (await api.ok(query, {"id": article}, token=as_alice))["content"] == {"viewerHasLiked": False}
    assert (await api.ok(query, {"id": article}, token=operator_token))["content"] == {"viewerHasLiked": None}
