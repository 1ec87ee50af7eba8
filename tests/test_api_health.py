"""Community health over GraphQL on a hand-built graph with known answers; its cache; permissions; windows.

The graph (days after T0 = 2025-01-01; the window is [T0, T0 + 30 days)):

* members a (brand join day -10, wechat), b (day 2, wechat), c (day 5, livestream), x (day 1, livestream);
* community K: a (community join day -5), b (day 3), c (day 6); community L holds x's post;
* posts: a's k1 in K (day 1), b's k2 in K (day 4), x's o1 in L (day 2);
* interactions: b likes k1 (day 3.5), c comments k1 (day 20), x likes k2 (day 7), a likes o1 (day 8);
* purchases: b paid 1000 (day 10) and 500 (day 12), c 300 refunded (day 15), a paid 2000 (day -2);
* b invited c (day 5) in campaign P, in which b and c took part.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette

from domain.health import HealthScope, HealthScopeKind
from graph.client import GraphClient
from graph.health import HealthService, recompute
from tests.helpers import dead_redis

T0 = datetime(2025, 1, 1, tzinfo=UTC)
WINDOW = {"from": T0.isoformat(), "to": (T0 + timedelta(days=30)).isoformat()}

FIELDS = """
  window { from to } computedAt memberCount newMembers activeMembers dau wau mau stickiness posts interactions
  postsPerActiveMember interactionsPerActiveMember
  retention { weekStart size retention }
  funnel { acquired activated { members share } retained { members share } revenue { members share }
           referral { members share } }
  repurchaseRate gmv { amount currency } aov { amount currency } ltv { amount currency } paidPurchases
  top20InteractionShare
"""
COMMUNITY_HEALTH = "query($id: ID!, $window: HealthWindowInput) { community(id: $id) { health(window: $window) {" + FIELDS + "} } }"
HEALTH = "query($scope: HealthScopeInput, $window: HealthWindowInput) { health(scope: $scope, window: $window) {" + FIELDS + "} }"

SEED_MEMBERS = "UNWIND $rows AS row CREATE (m:Member) SET m = row, m.tenantId = $tenant, m.inviteCode = row.id"
SEED_COMMUNITIES = """
UNWIND $ids AS id
CREATE (:Community {id: id, tenantId: $tenant, name: id, kind: 'interest', channel: 'app_circle', createdAt: $at})
"""
SEED_CAMPAIGN = """
CREATE (c:Campaign {id: $id, tenantId: $tenant, name: 'P', kind: 'fission', startsAt: $at, endsAt: $at, createdAt: $at})
WITH c
UNWIND $members AS mid
MATCH (m:Member {id: mid})
CREATE (m)-[:PARTICIPATED {at: $at, invitesSent: 0}]->(c)
"""
SEED_MEMBERSHIPS = """
UNWIND $rows AS row
MATCH (m:Member {id: row.m}) MATCH (c:Community {id: row.c})
CREATE (m)-[:MEMBER_OF {role: 'member', joinedAt: row.at}]->(c)
"""
SEED_POSTS = """
UNWIND $rows AS row
MATCH (a:Member {id: row.author}) MATCH (k:Community {id: row.c})
CREATE (a)-[:POSTED {at: row.at}]->(x:Content {id: row.id, tenantId: $tenant, kind: 'post', title: row.id,
                                                body: row.id, createdAt: row.at})-[:IN]->(k)
"""
SEED_LIKES = """
UNWIND $rows AS row
MATCH (m:Member {id: row.m}) MATCH (x:Content {id: row.x})
CREATE (m)-[:LIKED {at: row.at}]->(x)
"""
SEED_COMMENTS = """
UNWIND $rows AS row
MATCH (m:Member {id: row.m}) MATCH (x:Content {id: row.x})
CREATE (m)-[:COMMENTED {at: row.at}]->(x)
"""
SEED_PURCHASES = """
UNWIND $rows AS row
MATCH (m:Member {id: row.m})
CREATE (m)-[:PLACED {at: row.at}]->(:Purchase {id: row.id, tenantId: $tenant, amount: row.amount, currency: 'CNY',
                                               at: row.at, status: row.status, idempotencyKey: row.id})
"""
SEED_REFERRAL = """
MATCH (a:Member {id: $a}) MATCH (b:Member {id: $b})
CREATE (a)-[:REFERRED {at: $at, campaignId: $campaign, channel: 'wechat'}]->(b)
"""


def day(x: float) -> datetime:
    return T0 + timedelta(days=x)


async def run(graph: GraphClient, tenant: str, *statements: tuple[str, dict[str, Any]]) -> None:
    async def work(tx: Any) -> None:
        for text, params in statements:
            result = await tx.run(text, {"tenant": tenant, **params})
            await result.consume()

    await graph.write(work)


@pytest.fixture
async def world(graph: GraphClient, tenant: str) -> dict[str, str]:
    s = tenant[4:]
    ids = {k: f"mem_{k}{s}" for k in "abcx"} | {"K": f"com_k{s}", "L": f"com_l{s}", "P": f"cpg_p{s}"}
    members = [
        {"id": ids["a"], "joinedAt": day(-10), "channel": "wechat"},
        {"id": ids["b"], "joinedAt": day(2), "channel": "wechat"},
        {"id": ids["c"], "joinedAt": day(5), "channel": "livestream"},
        {"id": ids["x"], "joinedAt": day(1), "channel": "livestream"},
    ]
    await run(
        graph, tenant,
        (SEED_MEMBERS, {"rows": members}),
        (SEED_COMMUNITIES, {"ids": [ids["K"], ids["L"]], "at": day(-30)}),
        (SEED_MEMBERSHIPS, {"rows": [{"m": ids["a"], "c": ids["K"], "at": day(-5)}, {"m": ids["b"], "c": ids["K"], "at": day(3)},
                                     {"m": ids["c"], "c": ids["K"], "at": day(6)}]}),
        (SEED_POSTS, {"rows": [{"author": ids["a"], "c": ids["K"], "id": f"cnt_k1{s}", "at": day(1)},
                               {"author": ids["b"], "c": ids["K"], "id": f"cnt_k2{s}", "at": day(4)},
                               {"author": ids["x"], "c": ids["L"], "id": f"cnt_o1{s}", "at": day(2)}]}),
        (SEED_LIKES, {"rows": [{"m": ids["b"], "x": f"cnt_k1{s}", "at": day(3.5)},
                               {"m": ids["x"], "x": f"cnt_k2{s}", "at": day(7)},
                               {"m": ids["a"], "x": f"cnt_o1{s}", "at": day(8)}]}),
        (SEED_COMMENTS, {"rows": [{"m": ids["c"], "x": f"cnt_k1{s}", "at": day(20)}]}),
        (SEED_PURCHASES, {"rows": [
            {"m": ids["b"], "id": f"pur_1{s}", "amount": 1000, "status": "paid", "at": day(10)},
            {"m": ids["b"], "id": f"pur_2{s}", "amount": 500, "status": "paid", "at": day(12)},
            {"m": ids["c"], "id": f"pur_3{s}", "amount": 300, "status": "refunded", "at": day(15)},
            {"m": ids["a"], "id": f"pur_4{s}", "amount": 2000, "status": "paid", "at": day(-2)}]}),
        (SEED_REFERRAL, {"a": ids["b"], "b": ids["c"], "at": day(5), "campaign": ids["P"]}),
        (SEED_CAMPAIGN, {"id": ids["P"], "members": [ids["b"], ids["c"]], "at": day(0)}),
    )
    return ids


def stage(members: int, share: float | None) -> dict[str, Any]:
    return {"members": members, "share": share}


def week(k: int) -> str:
    return day(7 * k).isoformat()


async def test_community_health_has_the_known_answers(api: Any, world: dict[str, str]) -> None:
    token = api.token("analyst")

    h = (await api.ok(COMMUNITY_HEALTH, {"id": world["K"], "window": WINDOW}, token=token))["community"]["health"]

    assert h["window"] == {"from": WINDOW["from"], "to": WINDOW["to"]}
    # community joins: a day -5, b day 3, c day 6; x's like of k2 is not a member's, a's like of o1 is outside K
    assert (h["memberCount"], h["newMembers"], h["activeMembers"]) == (3, 2, 3)
    assert (h["posts"], h["interactions"]) == (2, 2)
    assert h["postsPerActiveMember"] == pytest.approx(2 / 3) and h["interactionsPerActiveMember"] == pytest.approx(2 / 3)
    assert h["dau"] == pytest.approx(7 / 30)  # active days: a 1; b 3, 4, 10, 12; c 15, 20
    assert (h["wau"], h["mau"]) == (0, 3)
    assert h["stickiness"] == pytest.approx(7 / 90)
    assert h["retention"] == [
        {"weekStart": week(0), "size": 2, "retention": [0.5, 1.0, 0.5] + [None] * 6},
        *({"weekStart": week(k), "size": 0, "retention": [None] * 9} for k in range(1, 5)),
    ]
    assert h["funnel"] == {"acquired": 2, "activated": stage(1, 0.5), "retained": stage(2, 1.0), "revenue": stage(1, 0.5),
                           "referral": stage(1, 0.5)}
    assert h["repurchaseRate"] == 1.0
    assert h["gmv"] == [{"amount": 1500, "currency": "CNY"}] and h["paidPurchases"] == 2
    assert h["aov"] == [{"amount": 750.0, "currency": "CNY"}]
    assert h["ltv"] == [{"amount": pytest.approx(3500 / 3), "currency": "CNY"}]
    assert h["top20InteractionShare"] == 0.5


async def test_channel_health_has_the_known_answers(api: Any, world: dict[str, str]) -> None:
    scope = {"kind": "CHANNEL", "channel": "WECHAT"}

    h = (await api.ok(HEALTH, {"scope": scope, "window": WINDOW}, token=api.token("operator")))["health"]

    # a and b (brand joins day -10 and 2); everything they did anywhere in the tenant counts
    assert (h["memberCount"], h["newMembers"], h["activeMembers"], h["posts"], h["interactions"]) == (2, 1, 2, 2, 2)
    assert h["funnel"] == {"acquired": 1, "activated": stage(1, 1.0), "retained": stage(1, 1.0), "revenue": stage(1, 1.0),
                           "referral": stage(1, 1.0)}
    assert h["gmv"] == [{"amount": 1500, "currency": "CNY"}]
    assert h["ltv"] == [{"amount": 1750.0, "currency": "CNY"}]
    assert h["top20InteractionShare"] == 0.5


async def test_campaign_health_has_the_known_answers(api: Any, world: dict[str, str]) -> None:
    scope = {"kind": "CAMPAIGN", "id": world["P"]}

    h = (await api.ok(HEALTH, {"scope": scope, "window": WINDOW}, token=api.token("admin")))["health"]

    assert (h["memberCount"], h["newMembers"], h["activeMembers"], h["posts"], h["interactions"]) == (2, 2, 2, 1, 2)
    # c joined day 5 and first did something on day 15: not activated, but retained
    assert h["funnel"] == {"acquired": 2, "activated": stage(1, 0.5), "retained": stage(2, 1.0), "revenue": stage(1, 0.5),
                           "referral": stage(1, 0.5)}
    assert (h["gmv"], h["aov"], h["ltv"]) == ([{"amount": 1500, "currency": "CNY"}], [{"amount": 750.0, "currency": "CNY"}],
                                              [{"amount": 750.0, "currency": "CNY"}])
    assert h["repurchaseRate"] == 1.0


async def test_tenant_health_counts_every_member(api: Any, world: dict[str, str]) -> None:
    h = (await api.ok(HEALTH, {"window": WINDOW}, token=api.token("analyst")))["health"]

    assert (h["memberCount"], h["newMembers"], h["activeMembers"], h["posts"], h["interactions"]) == (4, 3, 4, 3, 4)
    assert h["ltv"] == [{"amount": 3500 / 4, "currency": "CNY"}]


async def test_health_is_for_operators_analysts_and_admins(api: Any, world: dict[str, str]) -> None:
    for role in ("member", "integrator"):
        body = await api(HEALTH, {"window": WINDOW}, token=api.token(role, member=world["a"]))
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN", role
        body = await api(COMMUNITY_HEALTH, {"id": world["K"]}, token=api.token(role, member=world["a"]))
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", role
    assert (await api(HEALTH, {}))["errors"][0]["extensions"]["code"] == "NOT_AUTHENTICATED"


@pytest.mark.parametrize(("window", "field"), [
    ({"from": "2025-02-01T00:00:00+00:00", "to": "2025-01-01T00:00:00+00:00"}, "window.from"),
    ({"from": "2023-01-01T00:00:00+00:00", "to": "2025-01-01T00:00:00+00:00"}, "window"),
    ({"to": "2999-01-01T00:00:00+00:00"}, "window.to"),
    ({"from": "2025-01-01T00:00:00+00:00", "to": "2025-01-01T06:00:00+00:00"}, "window"),
])
async def test_a_bad_window_is_a_validation_error(api: Any, world: dict[str, str], window: dict[str, str], field: str) -> None:
    body = await api(COMMUNITY_HEALTH, {"id": world["K"], "window": window}, token=api.token("operator"))

    assert body["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": field}


@pytest.mark.parametrize(("scope", "code", "field"), [
    ({"kind": "COMMUNITY", "id": "com_nothere"}, "NOT_FOUND", "scope.id"),
    ({"kind": "CAMPAIGN", "id": "cpg_nothere"}, "NOT_FOUND", "scope.id"),
    ({"kind": "CAMPAIGN", "id": "com_wrongkind"}, "VALIDATION_FAILED", "scope.id"),
    ({"kind": "CHANNEL"}, "VALIDATION_FAILED", "scope.channel"),
    ({"kind": "TENANT", "id": "com_x"}, "VALIDATION_FAILED", "scope"),
])
async def test_a_bad_scope_is_a_typed_error(api: Any, scope: dict[str, str], code: str, field: str) -> None:
    body = await api(HEALTH, {"scope": scope}, token=api.token("operator"))

    assert body["errors"][0]["extensions"] == {"code": code, "field": field}


# --- the cache ---------------------------------------------------------------------------------------


@pytest.fixture
def redis(app: Starlette) -> aioredis.Redis:
    return app.state.resources.redis  # type: ignore[no-any-return]


async def recent_member(graph: GraphClient, tenant: str, community: str, name: str) -> None:
    at = datetime.now(UTC) - timedelta(days=2)
    await run(graph, tenant, (SEED_MEMBERS, {"rows": [{"id": name, "joinedAt": at, "channel": "app"}]}),
              (SEED_MEMBERSHIPS, {"rows": [{"m": name, "c": community, "at": at}]}))


async def test_a_cached_report_is_served_until_recomputed(api: Any, graph: GraphClient, app_graph: GraphClient,
                                                          redis: aioredis.Redis, tenant: str, world: dict[str, str]) -> None:
    token = api.token("operator")
    await recent_member(graph, tenant, world["K"], "mem_new1" + tenant[4:])
    first = (await api.ok(COMMUNITY_HEALTH, {"id": world["K"]}, token=token))["community"]["health"]
    await recent_member(graph, tenant, world["K"], "mem_new2" + tenant[4:])

    cached = (await api.ok(COMMUNITY_HEALTH, {"id": world["K"]}, token=token))["community"]["health"]
    run_ = await recompute(app_graph, redis, tenant, HealthScope(HealthScopeKind.COMMUNITY, world["K"]))
    fresh = (await api.ok(COMMUNITY_HEALTH, {"id": world["K"]}, token=token))["community"]["health"]

    # the default window is the 30 days before the computation: only the two recent members are new
    assert (first["memberCount"], first["newMembers"]) == (4, 1)
    assert cached == first
    assert run_ is not None and (fresh["memberCount"], fresh["newMembers"]) == (5, 2)
    assert fresh["computedAt"] > first["computedAt"] and first["window"]["to"] <= first["computedAt"]
    ttl = await redis.ttl(f"q:{tenant}:health:{world['K']}:last30d")
    assert 3_500 < ttl <= 3_600  # the staleness bound: the report expires an hour after it was computed


async def test_a_stale_report_is_served_and_refreshed_in_the_background(
        graph: GraphClient, redis: aioredis.Redis, tenant: str, world: dict[str, str]) -> None:
    scope = HealthScope(HealthScopeKind.COMMUNITY, world["K"])
    service = HealthService(graph, redis, fresh_seconds=0)
    window = service.window(None, None)
    await recent_member(graph, tenant, world["K"], "mem_new1" + tenant[4:])
    before = await service.health(tenant, scope, window)
    await service.settle()  # the first read found nothing: it computed; nothing runs in the background
    await recent_member(graph, tenant, world["K"], "mem_new2" + tenant[4:])

    stale = await service.health(tenant, scope, window)  # served as it was, and a refresh starts
    await service.settle()
    refreshed = await service.health(tenant, scope, window)

    assert stale == before and stale.metrics.member_count == 4
    assert refreshed.metrics.member_count == 5 and refreshed.computed_at > before.computed_at
    await service.settle()


async def test_concurrent_misses_compute_once(graph: GraphClient, redis: aioredis.Redis, tenant: str,
                                              world: dict[str, str]) -> None:
    import asyncio

    service = HealthService(graph, redis)
    scope = HealthScope(HealthScopeKind.CHANNEL, "wechat")
    window = service.window(datetime.fromisoformat(WINDOW["from"]), datetime.fromisoformat(WINDOW["to"]))

    reports = await asyncio.gather(*(service.health(tenant, scope, window) for _ in range(8)))

    assert len({r.computed_at for r in reports}) == 1  # one computation; the others waited for it
    assert reports[0].metrics.member_count == 2


async def test_without_redis_reports_come_from_the_graph(graph: GraphClient, tenant: str, world: dict[str, str]) -> None:
    service = HealthService(graph, dead_redis())
    scope = HealthScope(HealthScopeKind.COMMUNITY, world["K"])
    window = service.window(datetime.fromisoformat(WINDOW["from"]), datetime.fromisoformat(WINDOW["to"]))

    report = await service.health(tenant, scope, window)

    assert (report.metrics.member_count, report.metrics.revenue[0].gmv) == (3, 1500)


async def test_the_recompute_command_refreshes_a_health_report(stack: Any, graph: GraphClient, redis: aioredis.Redis,
                                                               tenant: str, world: dict[str, str]) -> None:
    import asyncio
    import os
    import subprocess
    import sys

    from tests.conftest import PASSWORD, ROOT

    env = dict(os.environ, QUANZI_NEO4J_URI=stack.graph.uri, QUANZI_NEO4J_USER="root", QUANZI_NEO4J_PASSWORD=PASSWORD,
               QUANZI_NEO4J_DATABASE="quanzi", QUANZI_REDIS_URL=stack.redis.url)
    run = [sys.executable, "-m", "api.cli", "recompute", "health", "--tenant", tenant]
    await recent_member(graph, tenant, world["K"], "mem_new1" + tenant[4:])

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*run, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)

    ok = await asyncio.to_thread(cli, "--community", world["K"])
    bad = await asyncio.to_thread(cli, "--channel", "carrier_pigeon")
    service = HealthService(graph, redis, fresh_seconds=3_600)
    cached = await service.health(tenant, HealthScope(HealthScopeKind.COMMUNITY, world["K"]), service.window(None, None))

    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"health of '{tenant}' ({world['K']}, last 30 days): 4 members, MAU 0;")
    assert f"health {world['K']}" in ok.stderr and "1/1" in ok.stderr  # the progress bar
    assert cached.metrics.member_count == 4 and cached.metrics.new_members == 1
    assert bad.returncode == 2 and bad.stderr.startswith("quanzi: error: --channel must be one of wechat")
    assert "Traceback" not in bad.stderr
