"""No N+1: nested lists cost the same number of Bolt round trips for 5 rows as for 50."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

SEED = [
    "UNWIND $members AS m CREATE (:Member {id: m.id, tenantId: $tenant, displayName: m.name, joinedAt: m.at, inviteCode: m.id, "
    "channel: 'app', level: 1, points: 0})",
    "UNWIND $communities AS c CREATE (:Community {id: c.id, tenantId: $tenant, name: c.name, kind: 'interest', "
    "channel: 'app_circle', createdAt: c.at})",
    "UNWIND $memberships AS ms MATCH (m:Member {id: ms.m}) MATCH (c:Community {id: ms.c}) "
    "CREATE (m)-[:MEMBER_OF {role: 'member', joinedAt: ms.at}]->(c)",
    "UNWIND $follows AS f MATCH (a:Member {id: f.a}) MATCH (b:Member {id: f.b}) CREATE (a)-[:FOLLOWS {at: f.at}]->(b)",
]

QUERY = """
query($first: Int!) {
  members(first: $first) {
    totalCount
    edges { node {
      displayName
      communities { nodes { name } }
      followers(first: 5) { totalCount nodes { displayName } }
    } }
  }
}
"""


@pytest.fixture
async def seeded(graph, tenant):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    n = 60
    members = [{"id": f"mem_rt{tenant[4:]}{i:03d}", "name": f"m{i}", "at": t0 + timedelta(minutes=i)} for i in range(n)]
    communities = [{"id": f"com_rt{tenant[4:]}{i}", "name": f"c{i}", "at": t0} for i in range(4)]
    memberships = [{"m": m["id"], "c": communities[i % 4]["id"], "at": t0} for i, m in enumerate(members)]
    memberships += [{"m": m["id"], "c": communities[(i + 1) % 4]["id"], "at": t0} for i, m in enumerate(members)]
    follows = [
        {"a": members[(i + k) % n]["id"], "b": members[i]["id"], "at": t0 + timedelta(seconds=k)}
        for i in range(n) for k in range(1, 8)
    ]

    async def work(tx):
        for statement in SEED:
            result = await tx.run(statement, tenant=tenant, members=members, communities=communities,
                                  memberships=memberships, follows=follows)
            await result.consume()

    await graph.write(work)
    return members


async def round_trips(api, app_graph, token, first):
    before = app_graph.round_trips
    data = await api.ok(QUERY, {"first": first}, token=token)
    assert len(data["members"]["edges"]) == first
    return app_graph.round_trips - before, data


async def test_nested_lists_do_not_multiply_round_trips(api, app_graph, seeded):
    token = api.token("operator")
    small, small_data = await round_trips(api, app_graph, token, 5)
    large, large_data = await round_trips(api, app_graph, token, 50)
    assert small == large
    # members page + total count + memberships + communities + followers page + follower counts
    assert large <= 6
    first = large_data["members"]["edges"][0]["node"]
    assert first["displayName"] == "m59"
    assert len(first["communities"]["nodes"]) == 2
    assert first["followers"]["totalCount"] == 7
    assert len(first["followers"]["nodes"]) == 5
    assert small_data["members"]["totalCount"] == 60


async def test_total_count_alone_does_not_load_the_page(api, app_graph, seeded):
    token = api.token("operator")
    query = "query($id: ID!) { member(id: $id) { followers { totalCount } following { totalCount } } }"
    before = app_graph.round_trips
    data = await api.ok(query, {"id": seeded[0]["id"]}, token=token)
    assert data["member"] == {"followers": {"totalCount": 7}, "following": {"totalCount": 7}}
    assert app_graph.round_trips - before == 2  # the member, then one statement for all its counts


# --- createContent (issue 7): one statement, and no relay pass before the answer -------------

POST = """
mutation($input: CreateContentInput!, $as: ID) {
  createContent(input: $input, asMemberId: $as) {
    __typename
    ... on ContentPayload { content { id title } }
    ... on UserError { code field }
  }
}
"""


async def _stream_types(redis, tenant: str) -> list[tuple[str, str]]:
    """(type, payload) of every entry of the tenant's event stream, oldest first."""
    entries = await redis.xrange(f"q:{tenant}:stream")
    return [(f[b"type"].decode(), f[b"payload"].decode()) for _, f in entries]


async def _stream_until(redis, tenant: str, n: int) -> list[tuple[str, str]]:
    """The stream once it holds *n* entries (the woken background relay delivers them)."""
    import asyncio

    for _ in range(200):
        got = await _stream_types(redis, tenant)
        if len(got) >= n:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"the stream holds {await _stream_types(redis, tenant)}, expected {n} entries")


async def test_a_post_is_one_statement_and_its_events_are_relayed_after_the_answer(
        api, app_graph, seeded, tenant, redis_client):
    # given a member of a community who has been active before (no activation event)
    author, community = seeded[0]["id"], f"com_rt{tenant[4:]}0"
    await app_graph.write(lambda tx: app_graph.run(
        tx, "MATCH (m:Member {id: $id}) WITH * WHERE m.tenantId = $tenant SET m.firstActiveAt = m.joinedAt",
        id=author, tenant=tenant))
    token = api.token("operator")
    before = app_graph.round_trips
    # when it posts
    data = await api.ok(POST, {"input": {"communityId": community, "title": "t1", "body": "b"}, "as": author},
                        token=token)
    # then the checks, the post, its topics and its outbox event are one statement, and the
    # answer does not wait for a relay pass (its reads and MARK_RELAYED come after it)
    assert data["createContent"]["__typename"] == "ContentPayload"
    assert data["createContent"]["content"]["title"] == "t1"
    assert app_graph.round_trips - before == 1
    # and the woken background relay (its poll interval is an hour here) still streams the event
    ((kind, payload),) = await _stream_until(redis_client, tenant, 1)
    assert kind == "CONTENT_POSTED" and data["createContent"]["content"]["id"] in payload


async def test_a_first_post_activates_its_author_before_the_post_event(api, app_graph, seeded, tenant, redis_client):
    # given a member who joined in 2026-01 and was never active: a first activity now is
    # outside the 7-day window, so take one who joined just now
    token = api.token("operator")
    author = seeded[1]["id"]
    await app_graph.write(lambda tx: app_graph.run(
        tx, "MATCH (m:Member {id: $id}) WITH * WHERE m.tenantId = $tenant SET m.joinedAt = datetime()",
        id=author, tenant=tenant))
    community = f"com_rt{tenant[4:]}1"
    data = await api.ok(POST, {"input": {"communityId": community, "title": "t2", "body": "b"}, "as": author},
                        token=token)
    assert data["createContent"]["__typename"] == "ContentPayload"
    # then the activation is relayed with read-your-writes (not deferrable), in order before the post
    got = await _stream_types(redis_client, tenant)
    assert [k for k, _ in got] == ["MEMBER_ACTIVATED", "CONTENT_POSTED"]
    assert author in got[0][1]
    rows = await app_graph.read("MATCH (m:Member {id: $id}) WITH * WHERE m.tenantId = $tenant "
                                "RETURN m.firstActiveAt IS NOT NULL AS active", id=author, tenant=tenant)
    assert rows[0]["active"] is True


async def test_a_refused_post_names_the_field_and_writes_nothing(api, app_graph, seeded, tenant, redis_client):
    token = api.token("operator")
    community = f"com_rt{tenant[4:]}0"
    # the operator acts for a member of another community: staff may post anywhere
    unknown = await api.ok(POST, {"input": {"communityId": "com_nothing000000", "body": "b"}, "as": seeded[2]["id"]},
                           token=token)
    assert unknown["createContent"] == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "input.communityId"}
    nobody = await api.ok(POST, {"input": {"communityId": community, "body": "b"}, "as": "mem_nobody0000000"},
                          token=token)
    assert nobody["createContent"] == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "asMemberId"}
    # a member posting as itself in a community it does not belong to (seeded[2] is in c2 and c3)
    outsider = await api.ok(POST, {"input": {"communityId": community, "body": "b"}},
                            token=api.token("member", member=seeded[2]["id"]))
    assert outsider["createContent"] == {"__typename": "PermissionError", "code": "FORBIDDEN",
                                         "field": "input.communityId"}
    rows = await app_graph.read("MATCH (c:Content {tenantId: $tenant}) RETURN count(c) AS n", tenant=tenant)
    assert rows[0]["n"] == 0
    rows = await app_graph.read("MATCH (e:Event {tenantId: $tenant}) RETURN count(e) AS n", tenant=tenant)
    assert rows[0]["n"] == 0


# --- a feed with its authors and counts (issue 7: look-ahead) ---------------------------------

FEED = """
query($id: ID!, $first: Int!) {
  community(id: $id) {
    name
    feed(first: $first) {
      pageInfo { hasNextPage }
      edges { node { title likeCount commentCount author { displayName } } }
    }
  }
}
"""
NESTED = """
query($id: ID!) {
  member(id: $id) {
    communities(first: 5) { nodes { name feed(first: 3) { nodes { title author { displayName } } } } }
  }
}
"""
SEED_POSTS = """
UNWIND $posts AS p
MATCH (a:Member {id: p.author}) MATCH (k:Community {id: p.community})
CREATE (a)-[:POSTED {at: p.at}]->(c:Content {id: p.id, tenantId: $tenant, kind: 'post', title: p.title, body: 'b',
                                            createdAt: p.at})-[:IN]->(k)
WITH c, p UNWIND p.likers AS liker
MATCH (l:Member {id: liker}) CREATE (l)-[:LIKED {at: p.at}]->(c)
"""


@pytest.fixture
async def posts(graph, tenant, seeded):
    # 30 posts in c0, post i by member i, liked by the i % 4 members after it
    t0 = datetime(2026, 2, 1, tzinfo=UTC)
    community = f"com_rt{tenant[4:]}0"
    rows = [{"id": f"cnt_rt{tenant[4:]}{i:03d}", "author": seeded[i]["id"], "community": community,
             "title": f"p{i}", "at": t0 + timedelta(minutes=i),
             "likers": [seeded[(i + k) % len(seeded)]["id"] for k in range(1, i % 4 + 1)]} for i in range(30)]

    async def work(tx):
        await (await tx.run(SEED_POSTS, posts=rows, tenant=tenant)).consume()

    await graph.write(work)
    return community


async def test_a_feed_page_with_authors_and_counts_is_two_round_trips(api, app_graph, seeded, posts):
    token = api.token("operator")
    for first in (5, 20):
        before = app_graph.round_trips
        data = await api.ok(FEED, {"id": posts, "first": first}, token=token)
        # the community, then its page with every post's author and counts (loaders primed)
        assert app_graph.round_trips - before == 2
        nodes = [e["node"] for e in data["community"]["feed"]["edges"]]
        assert [n["title"] for n in nodes] == [f"p{i}" for i in range(29, 29 - first, -1)]
        assert [n["likeCount"] for n in nodes] == [i % 4 for i in range(29, 29 - first, -1)]
        assert {n["commentCount"] for n in nodes} == {0}
        assert [n["author"]["displayName"] for n in nodes] == [f"m{i}" for i in range(29, 29 - first, -1)]


async def test_a_feed_without_nested_fields_loads_no_authors(api, app_graph, seeded, posts):
    token = api.token("operator")
    before = app_graph.round_trips
    data = await api.ok("query($id: ID!) { community(id: $id) { feed(first: 3) { nodes { title } } } }",
                        {"id": posts}, token=token)
    assert app_graph.round_trips - before == 2
    assert data["community"]["feed"]["nodes"] == [{"title": "p29"}, {"title": "p28"}, {"title": "p27"}]


async def test_nested_feeds_of_several_communities_are_one_round_trip(api, app_graph, seeded, posts):
    token = api.token("operator")
    before = app_graph.round_trips
    data = await api.ok(NESTED, {"id": seeded[0]["id"]}, token=token)
    # the member, its memberships (with the communities), then every community's feed with authors
    assert app_graph.round_trips - before == 3
    by_name = {c["name"]: c["feed"]["nodes"] for c in data["member"]["communities"]["nodes"]}
    assert by_name == {
        "c0": [{"title": f"p{i}", "author": {"displayName": f"m{i}"}} for i in (29, 28, 27)],
        "c1": [],
    }


async def test_projected_pages_read_the_same_objects_as_whole_nodes(app_graph, seeded, posts, tenant):
    """Pages and lists project the properties the mappers read; by-id reads return whole nodes.
    The same object either way, so a property a mapper starts reading cannot be left out silently."""
    from domain.ports import MemberFilter, MemberOrder
    from graph.communities import GraphCommunityRepository
    from graph.content import GraphContentRepository
    from graph.members import GraphMemberRepository

    members, communities = GraphMemberRepository(app_graph), GraphCommunityRepository(app_graph)
    content = GraphContentRepository(app_graph)
    await app_graph.write(lambda tx: app_graph.run(
        tx, "MATCH (m:Member {tenantId: $tenant}) SET m.phone = '13800138000', m.wechatId = 'wx_' + m.id, "
            "m.city = 'Hangzhou', m.marketingConsent = true, m.profilingConsent = true, m.points = 5",
        tenant=tenant))
    target = seeded[0]["id"]
    (followers,) = await members.followers(tenant, [target], 10, None)
    assert followers.items and list(followers.items) == await members.get_many(tenant, [m.id for m in followers.items])
    page = await members.list(tenant, filter=MemberFilter(community_id=posts), order=MemberOrder.JOINED_AT_DESC,
                              first=5, after=None)
    assert page.items and list(page.items) == await members.get_many(tenant, [m.id for m in page.items])
    (memberships,) = await members.memberships(tenant, [target], 10, None)
    found = [ms.community for ms in memberships.items]
    assert found and found == await communities.get_many(tenant, [ms.community_id for ms in memberships.items])
    (feed,) = await communities.feed(tenant, [posts], 5, None)
    assert feed.items and list(feed.items) == await content.get_many(tenant, [c.id for c in feed.items])
    (items,) = await communities.feed_items(tenant, [posts], 5, None)
    assert [i.content for i in items.items] == list(feed.items)
    assert [i.author for i in items.items] == await members.get_many(tenant, [c.author_id for c in feed.items])


MEMBERS_NESTED = """
query($first: Int!) {
  members(first: $first, orderBy: JOINED_AT_ASC) {
    nodes {
      displayName
      communities(first: 5) { nodes { name } pageInfo { hasNextPage } }
      followers(first: 5) { nodes { displayName } pageInfo { hasNextPage } }
    }
  }
}
"""


async def test_a_member_list_loads_its_nested_first_pages_with_one_statement(api, app_graph, seeded):
    token = api.token("operator")
    for first in (3, 40):
        before = app_graph.round_trips
        data = await api.ok(MEMBERS_NESTED, {"first": first}, token=token)
        # the page, then every member's first communities and followers together
        assert app_graph.round_trips - before == 2
        nodes = data["members"]["nodes"]
        assert len(nodes) == first
        for i, node in enumerate(nodes):
            assert node["displayName"] == f"m{i}"
            assert node["communities"] == {"nodes": [{"name": f"c{k}"} for k in sorted({i % 4, (i + 1) % 4}, reverse=True)],
                                           "pageInfo": {"hasNextPage": False}}
            assert node["followers"] == {"nodes": [{"displayName": f"m{(i + k) % 60}"} for k in range(7, 2, -1)],
                                         "pageInfo": {"hasNextPage": True}}


async def test_nested_pages_that_cannot_be_loaded_ahead_use_their_loaders(api, app_graph, seeded):
    # two different first pages of the same field, and a page after a cursor: each through its loader
    token = api.token("operator")
    query = """query($after: String) { members(first: 2, orderBy: JOINED_AT_ASC) { nodes {
      a: followers(first: 1) { nodes { displayName } } b: followers(first: 2) { nodes { displayName } }
      communities(first: 1, after: $after) { nodes { name } } } } }"""
    data = await api.ok(query, {"after": None}, token=token)
    assert [(n["a"]["nodes"], n["b"]["nodes"]) for n in data["members"]["nodes"]] == [
        ([{"displayName": "m7"}], [{"displayName": "m7"}, {"displayName": "m6"}]),
        ([{"displayName": "m8"}], [{"displayName": "m8"}, {"displayName": "m7"}]),
    ]
    assert [n["communities"]["nodes"] for n in data["members"]["nodes"]] == [[{"name": "c1"}], [{"name": "c2"}]]
