"""Growth analytics over GraphQL: referral chains and stats, commissions, KOL rankings.

Everything runs for real: mutations go through the app, their events through the outbox
and the relay into Redis, rankings are computed from the embedded graph server.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette

from domain.errors import GraphUnavailable
from domain.growth import Scope, ScopeKind
from domain.influence import RankingKind
from graph.client import GraphClient
from graph.growth import GrowthService, KolScheduler, rebuild_referrals, recompute_kol, version_key
from graph.kol import KolStore, compute
from graph.referral_stats import ReferralStatsStore
from graph.referrals import GraphReferrals
from tests.helpers import community, dead_redis, follow, join, post, register

STATS = """
query($id: ID!) {
  referralStats(memberId: $id) {
    directInvites teamSize depth levelCounts activatedInvitees activatedTeam convertedInvitees convertedTeam
    teamGmv { amount currency } ownGmv { amount currency } attributedGmv { amount currency }
  }
}
"""
UPLINE = "query($id: ID!) { referralUpline(memberId: $id) { level member { id displayName } } }"
TREE = """
query($id: ID!, $depth: Int!, $first: Int, $after: String) {
  referralTree(memberId: $id, depth: $depth, first: $first, after: $after) {
    levelCounts totalCount
    edges { cursor node { level inviterId member { id } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
PRODUCT = """
mutation($sku: String!) {
  createProduct(input: {sku: $sku, name: $sku, category: "tea", price: {amount: 1000, currency: "CNY"}}) {
    ... on ProductPayload { product { id } }
  }
}
"""
BUY = """
mutation($m: ID!, $p: ID!, $q: Int!, $key: String!, $credit: ID) {
  recordPurchase(input: {memberId: $m, lines: [{productId: $p, quantity: $q}], idempotencyKey: $key,
                         attributedTo: $credit}) {
    __typename
    ... on PurchasePayload { purchase { id attributedTo { id } commissions { level member { id } } } }
    ... on UserError { code field }
  }
}
"""
LIKE = "mutation($c: ID!, $as: ID) { likeContent(contentId: $c, asMemberId: $as) { __typename } }"
SET_INVITER = """
mutation($m: ID!, $i: ID!) { setInviter(memberId: $m, inviterId: $i) { __typename ... on UserError { code } } }
"""
RANKING = """
query($first: Int, $after: String, $kind: RankingKind, $scope: ScopeInput) {
  kolRanking(first: $first, after: $after, kind: $kind, scope: $scope) {
    totalCount computedAt graphVersion
    pageInfo { hasNextPage endCursor }
    edges { cursor node { rank score member { id displayName }
            influence { rank score kocScore isKoc components { followers influence reach inviteesBought } } } }
  }
}
"""
INFLUENCE = """
query($id: ID!) { member(id: $id) { influence { rank score isKoc computedAt components { followers } } } }
"""




async def product(api: Any, token: str, sku: str = "TEA") -> str:
    return str((await api.ok(PRODUCT, {"sku": sku}, token=token))["createProduct"]["product"]["id"])


async def buy(api: Any, token: str, member: str, product_id: str, qty: int = 1, credit: str | None = None) -> dict[str, Any]:
    data = await api.ok(BUY, {"m": member, "p": product_id, "q": qty, "key": f"key-{random.getrandbits(64):x}",
                              "credit": credit}, token=token)
    return data["recordPurchase"]  # type: ignore[no-any-return]


@pytest.fixture
def redis(app: Starlette) -> aioredis.Redis:
    return app.state.resources.redis  # type: ignore[no-any-return]


@pytest.fixture
async def chain(api: Any, operator_token: str, app_graph: GraphClient, redis: aioredis.Redis, tenant: str) -> dict[str, str]:
    """root -> a -> b -> c (each invited by the previous); aggregates built before any event."""
    await rebuild_referrals(app_graph, redis, tenant)
    root = await register(api, operator_token, "Root")
    a = await register(api, operator_token, "A", inviteCode=root["inviteCode"])
    b = await register(api, operator_token, "B", inviteCode=a["inviteCode"])
    c = await register(api, operator_token, "C", inviterId=b["id"])
    return {"root": root["id"], "a": a["id"], "b": b["id"], "c": c["id"]}


# --- referral chains --------------------------------------------------------------------------


async def test_upline_walks_to_the_root(api: Any, operator_token: str, chain: dict[str, str]) -> None:
    data = await api.ok(UPLINE, {"id": chain["c"]}, token=operator_token)

    assert [(u["level"], u["member"]["id"]) for u in data["referralUpline"]] == [
        (1, chain["b"]), (2, chain["a"]), (3, chain["root"])]
    assert (await api.ok(UPLINE, {"id": chain["root"]}, token=operator_token))["referralUpline"] == []


async def test_tree_has_per_level_counts_and_pages_by_level(api: Any, operator_token: str, chain: dict[str, str]) -> None:
    extra = await register(api, operator_token, "A2", inviterId=chain["root"])

    first = (await api.ok(TREE, {"id": chain["root"], "depth": 2, "first": 2}, token=operator_token))["referralTree"]
    rest = (await api.ok(TREE, {"id": chain["root"], "depth": 2, "first": 2, "after": first["pageInfo"]["endCursor"]},
                         token=operator_token))["referralTree"]

    assert first["levelCounts"] == [2, 1] and first["totalCount"] == 3
    level_one = sorted([chain["a"], extra["id"]])
    assert [(e["node"]["level"], e["node"]["member"]["id"]) for e in first["edges"]] == [(1, m) for m in level_one]
    assert first["pageInfo"]["hasNextPage"] is True
    assert [(e["node"]["level"], e["node"]["member"]["id"], e["node"]["inviterId"]) for e in rest["edges"]] == [
        (2, chain["b"], chain["a"])]
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_tree_rejects_a_depth_out_of_range(api: Any, operator_token: str, chain: dict[str, str]) -> None:
    body = await api(TREE, {"id": chain["root"], "depth": 11}, token=operator_token)

    assert body["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"


async def test_stats_follow_referrals_activity_and_purchases_incrementally(
    api: Any, operator_token: str, chain: dict[str, str], app_graph: GraphClient, redis: aioredis.Redis, tenant: str
) -> None:
    tea = await product(api, operator_token)
    com = await community(api, operator_token, "Tea lovers")
    await join(api, operator_token, com, chain["c"])
    await post(api, operator_token, chain["c"], com, "My first brew")  # activates c (joined seconds ago)
    assert (await buy(api, operator_token, chain["c"], tea, qty=2, credit=chain["root"]))["__typename"] == "PurchasePayload"
    await buy(api, operator_token, chain["c"], tea, qty=1)
    await buy(api, operator_token, chain["b"], tea, qty=3)

    stats = (await api.ok(STATS, {"id": chain["a"]}, token=operator_token))["referralStats"]

    assert stats == {
        "directInvites": 1, "teamSize": 2, "depth": 2, "levelCounts": [1, 1],
        "activatedInvitees": 1, "activatedTeam": 2, "convertedInvitees": 1, "convertedTeam": 2,
        "teamGmv": [{"amount": 6000, "currency": "CNY"}], "ownGmv": [], "attributedGmv": [],
    }
    root = (await api.ok(STATS, {"id": chain["root"]}, token=operator_token))["referralStats"]
    assert root["attributedGmv"] == [{"amount": 2000, "currency": "CNY"}]
    assert root["levelCounts"] == [1, 1, 1] and root["teamSize"] == 3
    # the incremental aggregates equal a rebuild from the graph
    store = ReferralStatsStore(redis)
    incremental = await store.stats_many(tenant, list(chain.values()))
    rebuilt = await GraphReferrals(app_graph).all_stats(tenant)
    assert incremental == [rebuilt[m] for m in chain.values()]


async def test_attaching_a_team_moves_its_numbers_to_the_new_upline(
    api: Any, operator_token: str, chain: dict[str, str], redis: aioredis.Redis, tenant: str
) -> None:
    leader = await register(api, operator_token, "Leader")
    follower_ = await register(api, operator_token, "F", inviterId=leader["id"])
    tea = await product(api, operator_token)
    await buy(api, operator_token, follower_["id"], tea, qty=5)

    data = await api.ok(SET_INVITER, {"m": leader["id"], "i": chain["c"]}, token=operator_token)

    assert data["setInviter"]["__typename"] == "ReferralPayload"
    stats = (await api.ok(STATS, {"id": chain["a"]}, token=operator_token))["referralStats"]
    assert stats["teamSize"] == 4 and stats["levelCounts"] == [1, 1, 1, 1] and stats["depth"] == 4
    assert stats["convertedTeam"] == 1 and stats["teamGmv"] == [{"amount": 5000, "currency": "CNY"}]


async def test_stats_come_from_the_graph_when_redis_is_down(
    api: Any, operator_token: str, chain: dict[str, str], app_graph: GraphClient, redis: aioredis.Redis, tenant: str
) -> None:
    tea = await product(api, operator_token)
    await buy(api, operator_token, chain["c"], tea, qty=2, credit=chain["a"])
    down = dead_redis()
    fast = GrowthService(app_graph, redis, KolStore(redis), ReferralStatsStore(redis), GraphReferrals(app_graph))
    slow = GrowthService(app_graph, down, KolStore(down), ReferralStatsStore(down), GraphReferrals(app_graph))

    try:
        for member in chain.values():
            assert await slow.referral_stats(tenant, member) == await fast.referral_stats(tenant, member)
    finally:
        await down.aclose()
    assert await slow.referral_stats(tenant, "mem_nobody") is None


async def test_stats_of_an_unknown_member_are_not_found(api: Any, operator_token: str, chain: dict[str, str]) -> None:
    body = await api(STATS, {"id": "mem_nobody"}, token=operator_token)

    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_members_see_their_own_referral_numbers_only(api: Any, chain: dict[str, str]) -> None:
    own = await api(STATS, {"id": chain["a"]}, token=api.token("member", member=chain["a"]))
    other = await api(STATS, {"id": chain["b"]}, token=api.token("member", member=chain["a"]))

    assert own["data"]["referralStats"]["directInvites"] == 1
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_random_writes_keep_incremental_and_rebuilt_aggregates_identical(
    api: Any, operator_token: str, app_graph: GraphClient, redis: aioredis.Redis, tenant: str
) -> None:
    await rebuild_referrals(app_graph, redis, tenant)
    rng = random.Random(20261123)
    tea = await product(api, operator_token)
    com = await community(api, operator_token, "Circle")
    members: list[str] = []
    for step in range(40):
        action = rng.choice(["register", "register", "invite", "attach", "activate", "buy", "buy"])
        if action == "register" or len(members) < 3:
            members.append((await register(api, operator_token, f"M{step}"))["id"])
        elif action == "invite":
            members.append((await register(api, operator_token, f"M{step}", inviterId=rng.choice(members)))["id"])
        elif action == "attach":
            await api.ok(SET_INVITER, {"m": rng.choice(members), "i": rng.choice(members)}, token=operator_token)
        elif action == "activate":
            who = rng.choice(members)
            await join(api, operator_token, com, who)
            await post(api, operator_token, who, com, f"post {step}")
        else:
            await buy(api, operator_token, rng.choice(members), tea, qty=rng.randint(1, 4),
                      credit=rng.choice([None, rng.choice(members)]))

    incremental = await ReferralStatsStore(redis).stats_many(tenant, members)
    rebuilt = await GraphReferrals(app_graph).all_stats(tenant)

    assert incremental == [rebuilt[m] for m in members]
    assert any(s.team_size > 1 for s in incremental)


# --- commissions and attribution --------------------------------------------------------------


async def test_commission_walks_two_levels_of_the_upline_by_default(api: Any, operator_token: str, chain: dict[str, str]) -> None:
    tea = await product(api, operator_token)

    result = await buy(api, operator_token, chain["c"], tea, credit=chain["root"])

    assert result["purchase"]["attributedTo"] == {"id": chain["root"]}
    assert [(c["level"], c["member"]["id"]) for c in result["purchase"]["commissions"]] == [
        (1, chain["b"]), (2, chain["a"])]


async def test_commission_levels_are_configurable_up_to_three(
    app_graph: GraphClient, api: Any, operator_token: str, chain: dict[str, str], tenant: str
) -> None:
    from domain.commands import RecordPurchase
    from graph.commerce import GraphCommerceRepository

    tea = await product(api, operator_token)
    cmd = RecordPurchase(member_id=chain["c"], lines=[{"product_id": tea, "quantity": 1}],  # type: ignore[list-item]
                         idempotency_key="three-levels-1")

    purchase, _ = await GraphCommerceRepository(app_graph, max_commission_levels=3).record_purchase(tenant, cmd)
    flat, _ = await GraphCommerceRepository(app_graph, max_commission_levels=0).record_purchase(
        tenant, cmd.model_copy(update={"idempotency_key": "zero-levels-1"}))

    assert purchase.commission_to == (chain["b"], chain["a"], chain["root"])
    assert flat.commission_to == ()


async def test_crediting_an_unknown_member_is_not_found_and_writes_nothing(
    api: Any, operator_token: str, chain: dict[str, str], app_graph: GraphClient, tenant: str
) -> None:
    tea = await product(api, operator_token)

    result = await buy(api, operator_token, chain["c"], tea, credit="mem_nobody")

    assert result == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "input.attributedTo"}
    rows = await app_graph.read("MATCH (p:Purchase {tenantId: $tenant}) RETURN count(p) AS n", tenant=tenant)
    assert rows[0]["n"] == 0


# --- KOL rankings -----------------------------------------------------------------------------


@pytest.fixture
async def circle(api: Any, operator_token: str) -> dict[str, Any]:
    """'star' is followed and liked by every fan; fans follow each other in a ring; 'seller' has one
    follower, like every fan, and invited two buyers."""
    com = await community(api, operator_token, "Hikers")
    star = (await register(api, operator_token, "Star"))["id"]
    seller = (await register(api, operator_token, "Seller"))["id"]
    fans = [(await register(api, operator_token, f"Fan {i}"))["id"] for i in range(8)]
    buyers = [(await register(api, operator_token, f"Buyer {i}", inviterId=seller))["id"] for i in range(2)]
    for m in [star, seller, *fans, *buyers]:
        await join(api, operator_token, com, m)
    content = (await post(api, operator_token, star, com, "Summit views"))["content"]["id"]
    for fan in fans:
        await follow(api, operator_token, fan, star)
        await api.ok(LIKE, {"c": content, "as": fan}, token=operator_token)
    for a, b in zip(fans, fans[1:] + fans[:1]):  # a ring: every fan has one follower, like the seller
        await follow(api, operator_token, a, b)
    await follow(api, operator_token, fans[0], seller)
    tea = await product(api, operator_token)
    for b in buyers:
        await buy(api, operator_token, b, tea, qty=3)
    return {"community": com, "star": star, "seller": seller, "fans": fans, "buyers": buyers}


async def test_ranking_is_null_before_the_first_computation(api: Any, operator_token: str, circle: dict[str, Any]) -> None:
    assert (await api.ok(RANKING, {}, token=operator_token))["kolRanking"] is None
    assert (await api.ok(INFLUENCE, {"id": circle["star"]}, token=operator_token))["member"]["influence"] is None


async def test_kol_ranking_puts_the_star_first_and_explains_why(
    api: Any, operator_token: str, circle: dict[str, Any], app_graph: GraphClient, redis: aioredis.Redis, tenant: str
) -> None:
    result = await recompute_kol(app_graph, redis, tenant, Scope())

    data = (await api.ok(RANKING, {"first": 3}, token=operator_token))["kolRanking"]
    top = data["edges"][0]["node"]
    assert result.members == 12 and data["totalCount"] == 12
    assert top["rank"] == 1 and top["member"]["id"] == circle["star"]
    assert top["influence"]["components"]["followers"] == 8
    assert top["influence"]["components"]["influence"] == 1.0
    assert [e["node"]["rank"] for e in data["edges"]] == [1, 2, 3]
    scores = [e["node"]["score"] for e in data["edges"]]
    assert scores == sorted(scores, reverse=True)
    nxt = (await api.ok(RANKING, {"first": 100, "after": data["pageInfo"]["endCursor"]}, token=operator_token))["kolRanking"]
    assert [e["node"]["rank"] for e in nxt["edges"]] == list(range(4, 13))
    assert nxt["pageInfo"]["hasNextPage"] is False
    mine = (await api.ok(INFLUENCE, {"id": circle["star"]}, token=operator_token))["member"]["influence"]
    assert mine["rank"] == 1 and mine["computedAt"] == data["computedAt"]


async def test_koc_ranking_finds_the_member_who_brings_buyers(
    api: Any, operator_token: str, circle: dict[str, Any], app_graph: GraphClient, redis: aioredis.Redis, tenant: str
) -> None:
    await recompute_kol(app_graph, redis, tenant, Scope())

    data = (await api.ok(RANKING, {"kind": "KOC"}, token=operator_token))["kolRanking"]

    assert [e["node"]["member"]["id"] for e in data["edges"]] == [circle["seller"]]
    assert data["edges"][0]["node"]["influence"]["isKoc"] is True
    assert data["edges"][0]["node"]["influence"]["components"]["inviteesBought"] == 2


async def test_community_scope_ranks_only_its_members(
    api: Any, operator_token: str, circle: dict[str, Any], app_graph: GraphClient, redis: aioredis.Redis, tenant: str
) -> None:
    outsider = (await register(api, operator_token, "Outsider"))["id"]
    scope = Scope(ScopeKind.COMMUNITY, circle["community"])
    await recompute_kol(app_graph, redis, tenant, scope)

    data = (await api.ok(RANKING, {"first": 100, "scope": {"kind": "COMMUNITY", "id": circle["community"]}},
                         token=operator_token))["kolRanking"]

    ids = [e["node"]["member"]["id"] for e in data["edges"]]
    assert data["totalCount"] == 12 and outsider not in ids and ids[0] == circle["star"]
    assert (await api.ok(RANKING, {}, token=operator_token))["kolRanking"] is None  # the tenant scope was not computed


async def test_rankings_are_written_back_to_members(
    api: Any, operator_token: str, circle: dict[str, Any], app_graph: GraphClient, redis: aioredis.Redis, tenant: str
) -> None:
    await recompute_kol(app_graph, redis, tenant, Scope())

    rows = await app_graph.read(
        "MATCH (m:Member {id: $id}) RETURN m.kolRank AS rank, m.isKoc AS koc, m.followDegree AS degree",
        id=circle["star"], tenant=tenant)

    assert rows[0]["rank"] == 1 and rows[0]["koc"] is False
    assert rows[0]["degree"] == 8  # eight fans follow the star; recommendations weigh by it
    kocs = await api.ok("{ members(filter: {isKoc: true}) { totalCount nodes { id } } }", token=operator_token)
    assert kocs["members"] == {"totalCount": 1, "nodes": [{"id": circle["seller"]}]}
    star = (await api.ok(INFLUENCE, {"id": circle["star"]}, token=operator_token))["member"]["influence"]
    top = await api.ok("query($s: Float!) { members(filter: {minKolScore: $s}) { nodes { id } } }",
                       {"s": star["score"]}, token=operator_token)
    assert top["members"]["nodes"] == [{"id": circle["star"]}]


async def test_readers_keep_the_previous_ranking_until_a_new_one_is_saved(
    circle: dict[str, Any], app_graph: GraphClient, redis: aioredis.Redis, tenant: str, api: Any, operator_token: str
) -> None:
    store = KolStore(redis)
    await recompute_kol(app_graph, redis, tenant, Scope())
    before = await store.page(tenant, Scope(), RankingKind.KOL, 0, 3)
    newer = await compute(app_graph, tenant, Scope(), graph_version=99)

    during = await store.page(tenant, Scope(), RankingKind.KOL, 0, 3)
    await store.save(newer)
    after = await store.page(tenant, Scope(), RankingKind.KOL, 0, 3)

    assert before is not None and during is not None and after is not None
    assert during.computed_at == before.computed_at and during.graph_version == before.graph_version
    assert after.graph_version == 99 and after.computed_at > before.computed_at
    keys = [k async for k in redis.scan_iter(match=f"q:{tenant}:kol:tenant:*:KOL")]
    ttls = sorted([await redis.ttl(k) for k in keys])
    assert len(keys) == 2 and ttls[0] == -1 and 0 < ttls[1] <= 120  # the old run expires, the new one stays


async def test_two_processes_never_compute_the_same_scope_at_once(
    circle: dict[str, Any], app_graph: GraphClient, redis: aioredis.Redis, tenant: str
) -> None:
    store = KolStore(redis)
    token = await store.try_lock(tenant, Scope())
    assert token is not None

    try:
        skipped = await recompute_kol(app_graph, redis, tenant, Scope())
    finally:
        await store.unlock(tenant, Scope(), token)
    ran = await recompute_kol(app_graph, redis, tenant, Scope())

    assert skipped.skipped and await store.meta(tenant, Scope()) is not None and not ran.skipped


async def test_the_scheduler_recomputes_when_enough_has_changed(
    api: Any, operator_token: str, circle: dict[str, Any], app_graph: GraphClient, redis: aioredis.Redis, tenant: str
) -> None:
    scheduler = KolScheduler(app_graph, redis, changes=3)
    assert await scheduler.due(tenant, Scope())  # never computed
    await recompute_kol(app_graph, redis, tenant, Scope())
    assert not await scheduler.due(tenant, Scope())

    for fan in circle["fans"][1:4]:
        await follow(api, operator_token, fan, circle["seller"])  # three relayed changes

    assert await redis.get(version_key(tenant)) is not None
    assert await scheduler.due(tenant, Scope())
    community = Scope(ScopeKind.COMMUNITY, circle["community"])
    await recompute_kol(app_graph, redis, tenant, community)  # ranked once: the scheduler keeps it fresh too
    await follow(api, operator_token, circle["fans"][4], circle["seller"])
    await follow(api, operator_token, circle["fans"][5], circle["seller"])
    await follow(api, operator_token, circle["fans"][6], circle["seller"])
    results = await scheduler.check(tenants=[tenant])
    assert sorted((r.scope.key, r.members) for r in results) == sorted([("tenant", 12), (circle["community"], 12)])
    assert not await scheduler.due(tenant, Scope()) and not await scheduler.due(tenant, community)


async def test_ranking_needs_a_staff_role(api: Any, circle: dict[str, Any]) -> None:
    body = await api(RANKING, {}, token=api.token("member", member=circle["star"]))

    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(("scope", "field"), [
    ({"kind": "COMMUNITY"}, "scope.id"), ({"kind": "TENANT", "id": "com_x"}, "scope.id"),
    ({"kind": "TOPIC", "id": "com_x"}, "scope.id"),
])
async def test_bad_scopes_are_rejected(api: Any, operator_token: str, scope: dict[str, Any], field: str) -> None:
    body = await api(RANKING, {"scope": scope}, token=operator_token)

    assert body["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
    assert body["errors"][0]["extensions"]["field"] == field


async def test_rankings_are_read_from_the_members_when_redis_is_down(
    circle: dict[str, Any], app_graph: GraphClient, redis: aioredis.Redis, tenant: str
) -> None:
    await recompute_kol(app_graph, redis, tenant, Scope())
    down = dead_redis()
    fast = GrowthService(app_graph, redis, KolStore(redis), ReferralStatsStore(redis), GraphReferrals(app_graph))
    slow = GrowthService(app_graph, down, KolStore(down), ReferralStatsStore(down), GraphReferrals(app_graph))

    try:
        for kind in (RankingKind.KOL, RankingKind.KOC):
            cached = await fast.kol_page(tenant, Scope(), kind, 0, 20)
            fallback = await slow.kol_page(tenant, Scope(), kind, 0, 20)
            assert cached is not None and fallback is not None
            assert [(r.member_id, r.rank, r.score) for r in fallback.items] == [
                (r.member_id, r.rank, r.score) for r in cached.items]
            assert fallback.total == cached.total and fallback.computed_at == cached.computed_at
        assert await slow.kol_member(tenant, Scope(), circle["star"]) == await fast.kol_member(
            tenant, Scope(), circle["star"])
        with pytest.raises(GraphUnavailable):
            await slow.kol_page(tenant, Scope(ScopeKind.COMMUNITY, circle["community"]), RankingKind.KOL, 0, 20)
    finally:
        await down.aclose()


REFERRAL = "query($id: ID!) { member(id: $id) { referral { inviter { id } riskSignals { kind detail } } } }"


async def test_referrals_carry_their_fraud_signals(api: Any, operator_token: str) -> None:
    farmer = (await register(api, operator_token, "Farmer"))["id"]
    invitees = [(await register(api, operator_token, f"Bot {i}", inviterId=farmer, phone=f"1390000{i:04d}"))["id"]
                for i in range(10)]
    honest = (await register(api, operator_token, "Honest"))["id"]
    friend = (await register(api, operator_token, "Friend", inviterId=honest, phone="13712345678"))["id"]

    bot = (await api.ok(REFERRAL, {"id": invitees[0]}, token=operator_token))["member"]["referral"]
    ok = (await api.ok(REFERRAL, {"id": friend}, token=operator_token))["member"]["referral"]

    assert bot["inviter"] == {"id": farmer}
    assert sorted(s["kind"] for s in bot["riskSignals"]) == ["SHARED_PHONE_PREFIX", "VELOCITY_BURST"]
    assert ok == {"inviter": {"id": honest}, "riskSignals": []}
    assert (await api.ok(REFERRAL, {"id": farmer}, token=operator_token))["member"]["referral"] is None


def test_the_recompute_command_ranks_a_scope_with_a_progress_bar(stack: Any, tenant: str) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import PASSWORD, ROOT

    env = dict(os.environ, QUANZI_NEO4J_URI=stack.graph.uri, QUANZI_NEO4J_USER="root", QUANZI_NEO4J_PASSWORD=PASSWORD,
               QUANZI_NEO4J_DATABASE="quanzi", QUANZI_REDIS_URL=stack.redis.url)
    run = [sys.executable, "-m", "api.cli", "recompute"]

    kol_run = subprocess.run([*run, "kol", "--tenant", tenant], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=120)
    refs = subprocess.run([*run, "referrals", "--tenant", tenant], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    bad = subprocess.run([*run, "kol", "--tenant", tenant, "--community", "mem_wrongkind"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)

    assert kol_run.returncode == 0, kol_run.stderr
    assert kol_run.stdout.startswith(f"ranked 0 members of '{tenant}' (tenant)")
    assert "kol tenant" in kol_run.stderr and "5/5" in kol_run.stderr  # the progress bar reached the last stage
    assert refs.returncode == 0 and refs.stdout.strip() == f"rebuilt the referral aggregates of 0 members of tenant '{tenant}'"
    assert bad.returncode == 2 and bad.stderr.startswith("quanzi: error: --community must be a community id")
    assert "Traceback" not in bad.stderr


async def test_topic_scope_ranks_who_writes_and_engages_on_the_topic(
    api: Any, operator_token: str, circle: dict[str, Any], app_graph: GraphClient, redis: aioredis.Redis, tenant: str
) -> None:
    made = await post(api, operator_token, circle["star"], circle["community"], "Trail shoes", topics=["trail running"])
    content = made["content"]["id"]
    for fan in circle["fans"][:2]:
        await api.ok(LIKE, {"c": content, "as": fan}, token=operator_token)
    topic = (await api.ok("query($id: ID!) { content(id: $id) { topics { id } } }", {"id": content},
                          token=operator_token))["content"]["topics"][0]["id"]
    await recompute_kol(app_graph, redis, tenant, Scope(ScopeKind.TOPIC, topic))

    data = (await api.ok(RANKING, {"scope": {"kind": "TOPIC", "id": topic}}, token=operator_token))["kolRanking"]

    assert data["totalCount"] == 3
    assert data["edges"][0]["node"]["member"]["id"] == circle["star"]
    assert {e["node"]["member"]["id"] for e in data["edges"]} == {circle["star"], *circle["fans"][:2]}
