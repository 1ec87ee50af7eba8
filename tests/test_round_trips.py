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
