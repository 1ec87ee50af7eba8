"""Privacy (PIPL) through the real app: consent, its effect on profiling and marketing, the audit
log, export and erasure of a member, against the embedded graph server and a real Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette

from domain.growth import Scope
from graph.client import GraphClient
from graph.growth import rebuild_referrals, recompute_kol
from graph.privacy import GraphPrivacy
from resolvers.context import Context
from tests.conftest import PASSWORD
from tests.helpers import community, follow, join, post, register

CONSENTS = """
query($id: ID!) {
  member(id: $id) {
    marketingConsent
    consents { purpose granted since source byDefault history { granted at source recordedBy } }
  }
}
"""
GRANT = """
mutation($purpose: ConsentPurpose!, $source: ConsentSource!, $m: ID) {
  grantConsent(purpose: $purpose, source: $source, memberId: $m) {
    __typename
    ... on ConsentPayload { changed member { id } consent { purpose granted source byDefault history { granted } } }
    ... on UserError { code field }
  }
}
"""
WITHDRAW = GRANT.replace("grantConsent", "withdrawConsent")
AUDIT = """
query($first: Int, $after: String, $action: AuditAction, $target: ID) {
  auditLog(first: $first, after: $after, action: $action, targetId: $target) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id at action requestId targetIds detail actor { subject memberId roles } }
  }
}
"""
EXPORT = "query($id: ID!) { exportMemberData(memberId: $id) }"
ERASE = """
mutation($id: ID!) {
  eraseMember(memberId: $id) {
    __typename
    ... on ErasurePayload {
      memberId alreadyErased relationshipsRemoved contentErased commentsErased purchasesAnonymised
      consentsDetached eventsRedacted streamEntriesDeleted cacheEntriesDeleted redisPurged
    }
    ... on UserError { code field }
  }
}
"""
RECOMMENDED = """
query($id: ID!) {
  member(id: $id) {
    recommendedMembers(first: 10) { personalized reason member { id } }
    recommendedCommunities(first: 10) { personalized community { id } }
    recommendedContent(first: 10) { personalized content { id } }
    recommendedProducts(first: 10) { personalized product { id } }
  }
}
"""
RANKING = """
query { kolRanking(first: 50) { totalCount pageInfo { hasNextPage endCursor } nodes { rank member { id } } } }
"""
INFLUENCE = "query($id: ID!) { member(id: $id) { influence { rank } } }"
PRODUCT = """
mutation($sku: String!) {
  createProduct(input: {sku: $sku, name: $sku, category: "tea", price: {amount: 1500, currency: "CNY"}}) {
    ... on ProductPayload { product { id } }
  }
}
"""
BUY = """
mutation($m: ID!, $p: ID!, $key: String!, $credit: ID) {
  recordPurchase(input: {memberId: $m, lines: [{productId: $p, quantity: 2}], idempotencyKey: $key,
                         attributedTo: $credit}) {
    __typename
    ... on PurchasePayload { purchase { id } }
    ... on UserError { code field }
  }
}
"""
LIKE = "mutation($c: ID!, $as: ID) { likeContent(contentId: $c, asMemberId: $as) { __typename } }"
COMMENT = """
mutation($c: ID!, $body: String!, $as: ID) {
  addComment(input: {contentId: $c, body: $body}, asMemberId: $as) {
    __typename ... on CommentPayload { comment { id } }
  }
}
"""
PII = "query { members(first: 20) { nodes { id phone wechatId } } }"


def admin(api: Any) -> str:
    return str(api.token("admin", scopes=("pii:read",)))


async def consents(api: Any, token: str, member: str) -> dict[str, Any]:
    return (await api.ok(CONSENTS, {"id": member}, token=token))["member"]  # type: ignore[no-any-return]


async def audit(api: Any, **variables: Any) -> dict[str, Any]:
    return (await api.ok(AUDIT, variables, token=api.token("admin")))["auditLog"]  # type: ignore[no-any-return]


async def product(api: Any, token: str, sku: str) -> str:
    return str((await api.ok(PRODUCT, {"sku": sku}, token=token))["createProduct"]["product"]["id"])


async def buy(api: Any, token: str, member: str, product_id: str, credit: str | None = None) -> str:
    data = await api.ok(BUY, {"m": member, "p": product_id, "key": f"key-{random.getrandbits(64):x}",
                              "credit": credit}, token=token)
    assert data["recordPurchase"]["__typename"] == "PurchasePayload", data
    return str(data["recordPurchase"]["purchase"]["id"])


async def tag(graph: GraphClient, tenant: str, member: str, tag_id: str, name: str, source: str) -> None:
    """A profile tag (用户画像); no mutation writes them (imports and jobs do), so the test seeds it."""
    async def work(tx: Any) -> None:
        result = await tx.run(
            "MATCH (m:Member {id: $m}) MERGE (t:Tag {id: $id}) ON CREATE SET t.tenantId = $tenant, t.name = $name, "
            "t.kind = 'interest' CREATE (m)-[:INTERESTED_IN {weight: 0.5, source: $source}]->(t)",
            m=member, id=tag_id, tenant=tenant, name=name, source=source)
        await result.consume()

    await graph.write(work)


@pytest.fixture
def redis(app: Starlette) -> aioredis.Redis:
    return app.state.resources.redis  # type: ignore[no-any-return]


# --- consent -----------------------------------------------------------------------------------


async def test_consent_defaults_grants_withdrawals_and_history(api: Any, operator_token: str) -> None:
    me = (await register(api, operator_token, "Lin"))["id"]
    own = api.token("member", member=me)

    before = await consents(api, own, me)
    assert before["marketingConsent"] is False
    assert [(c["purpose"], c["granted"], c["byDefault"], c["source"], c["history"]) for c in before["consents"]] == [
        ("MARKETING", False, True, None, []), ("PROFILING", True, True, None, []),
        ("DATA_SHARING", False, True, None, []),
    ]

    granted = (await api.ok(GRANT, {"purpose": "MARKETING", "source": "MINI_PROGRAM"}, token=own))["grantConsent"]
    assert granted == {"__typename": "ConsentPayload", "changed": True, "member": {"id": me}, "consent": {
        "purpose": "MARKETING", "granted": True, "source": "MINI_PROGRAM", "byDefault": False,
        "history": [{"granted": True}]}}
    withdrawn = (await api.ok(WITHDRAW, {"purpose": "MARKETING", "source": "OPERATOR", "m": me},
                              token=operator_token))["withdrawConsent"]
    assert withdrawn["changed"] is True and withdrawn["consent"]["granted"] is False
    again = (await api.ok(WITHDRAW, {"purpose": "MARKETING", "source": "APP"}, token=own))["withdrawConsent"]
    assert again["changed"] is False  # the decision stands; the record is kept anyway

    after = await consents(api, own, me)
    assert after["marketingConsent"] is False
    marketing = after["consents"][0]
    assert (marketing["granted"], marketing["source"], marketing["byDefault"]) == (False, "APP", False)
    assert [(h["granted"], h["source"]) for h in marketing["history"]] == [
        (False, "APP"), (False, "OPERATOR"), (True, "MINI_PROGRAM")]
    assert marketing["since"] == marketing["history"][0]["at"]
    assert [h["recordedBy"] is not None for h in marketing["history"]] == [True, True, True]
    assert [(c["purpose"], c["granted"], c["byDefault"]) for c in after["consents"][1:]] == [
        ("PROFILING", True, True), ("DATA_SHARING", False, True)]

    log = await audit(api, action="CONSENT_CHANGE", target=me)
    assert log["totalCount"] == 3
    assert [n["detail"] for n in log["nodes"]] == [
        {"purpose": "MARKETING", "granted": False, "source": "APP", "changed": False},
        {"purpose": "MARKETING", "granted": False, "source": "OPERATOR", "changed": True},
        {"purpose": "MARKETING", "granted": True, "source": "MINI_PROGRAM", "changed": True},
    ]
    assert [n["actor"]["memberId"] for n in log["nodes"]] == [me, None, me]
    assert log["nodes"][1]["actor"]["roles"] == ["operator"]
    assert all(n["targetIds"] == [me] for n in log["nodes"])


async def test_a_registration_flag_shows_as_profile_source(api: Any, operator_token: str) -> None:
    me = (await register(api, operator_token, "Wei", marketingConsent=True))["id"]
    marketing = (await consents(api, operator_token, me))["consents"][0]
    assert marketing == {"purpose": "MARKETING", "granted": True, "since": None, "source": "PROFILE",
                         "byDefault": False, "history": []}


async def test_bad_consent_requests_are_typed_errors_and_change_nothing(api: Any, operator_token: str) -> None:
    me = (await register(api, operator_token, "Me"))["id"]
    other = (await register(api, operator_token, "Other"))["id"]
    own = api.token("member", member=me)
    cases = [
        (GRANT, {"purpose": "MARKETING", "source": "OPERATOR"}, own, ("PermissionError", "FORBIDDEN", "source")),
        (GRANT, {"purpose": "MARKETING", "source": "PROFILE", "m": me}, operator_token,
         ("ValidationError", "VALIDATION_FAILED", "source")),
        (WITHDRAW, {"purpose": "PROFILING", "source": "APP", "m": other}, own,
         ("PermissionError", "FORBIDDEN", "memberId")),
        (GRANT, {"purpose": "DATA_SHARING", "source": "OPERATOR", "m": "mem_doesnotexist00"}, operator_token,
         ("NotFoundError", "NOT_FOUND", "memberId")),
        (GRANT, {"purpose": "DATA_SHARING", "source": "OPERATOR", "m": "com_notamember"}, operator_token,
         ("ValidationError", "VALIDATION_FAILED", "memberId")),
        (GRANT, {"purpose": "MARKETING", "source": "APP"}, api.token("analyst"),
         ("PermissionError", "FORBIDDEN", "memberId")),
    ]
    for query, variables, token, expected in cases:
        result = (await api.ok(query, variables, token=token))
        result = next(iter(result.values()))
        assert (result["__typename"], result["code"], result["field"]) == expected, (variables, result)
    for member in (me, other):
        assert all(c["history"] == [] and c["byDefault"] for c in (await consents(api, operator_token, member))["consents"])
    assert (await audit(api, action="CONSENT_CHANGE"))["totalCount"] == 0


async def test_consents_are_for_the_member_itself_and_staff(api: Any, operator_token: str) -> None:
    me = (await register(api, operator_token, "Me"))["id"]
    other = (await register(api, operator_token, "Other"))["id"]
    assert (await consents(api, api.token("member", member=other), me))["consents"] is None
    assert len((await consents(api, api.token("analyst"), me))["consents"]) == 3


async def test_which_members_have_a_consent_in_one_round_trip(api: Any, operator_token: str, app: Starlette,
                                                               app_graph: GraphClient) -> None:
    ids = [(await register(api, operator_token, f"M{i}", marketingConsent=i % 2 == 0))["id"] for i in range(6)]
    await api.ok(GRANT, {"purpose": "DATA_SHARING", "source": "IMPORT", "m": ids[3]}, token=operator_token)
    await api.ok(WITHDRAW, {"purpose": "PROFILING", "source": "APP", "m": ids[4]}, token=operator_token)
    await api.ok(WITHDRAW, {"purpose": "MARKETING", "source": "APP", "m": ids[2]}, token=operator_token)
    privacy = app.state.resources.repos.privacy
    from domain.privacy import ConsentPurpose

    asked = [*reversed(ids), "mem_unknown000000"]
    before = app_graph.round_trips
    assert await privacy.with_consent(api.tenant, asked, ConsentPurpose.MARKETING) == [ids[4], ids[0]]
    assert await privacy.with_consent(api.tenant, asked, ConsentPurpose.DATA_SHARING) == [ids[3]]
    assert await privacy.with_consent(api.tenant, asked, ConsentPurpose.PROFILING) == [
        ids[5], ids[3], ids[2], ids[1], ids[0]]
    assert app_graph.round_trips - before == 3
    assert await privacy.with_consent("ten_someoneelse", ids, ConsentPurpose.PROFILING) == []


# --- profiling and marketing consent honoured ----------------------------------------------------


@pytest.fixture
async def social(api: Any, operator_token: str) -> dict[str, Any]:
    """me -> a -> b (follows), c followed by three, two communities, two products."""
    names = ["me", "a", "b", "c", "d"]
    ids = {n: (await register(api, operator_token, n.upper(), marketingConsent=True))["id"] for n in names}
    for x, y in (("me", "a"), ("a", "b"), ("a", "c"), ("b", "c"), ("d", "c"), ("d", "me")):
        await follow(api, operator_token, ids[x], ids[y])
    big = await community(api, operator_token, "Big")
    small = await community(api, operator_token, "Small")
    for n in ("a", "b", "c"):
        await join(api, operator_token, big, ids[n])
    await join(api, operator_token, small, ids["d"])
    await join(api, operator_token, small, ids["me"])
    hot = (await post(api, operator_token, ids["c"], big, "Hot"))["content"]["id"]
    cold = (await post(api, operator_token, ids["d"], small, "Cold"))["content"]["id"]
    for n in ("a", "b"):
        await api.ok(LIKE, {"c": hot, "as": ids[n]}, token=operator_token)
    tea, cup = await product(api, operator_token, "TEA"), await product(api, operator_token, "CUP")
    for n in ("a", "b", "c"):
        await buy(api, operator_token, ids[n], tea)
    await buy(api, operator_token, ids["d"], cup)
    return {**ids, "big": big, "small": small, "hot": hot, "cold": cold, "tea": tea, "cup": cup}


async def test_withdrawing_profiling_switches_to_non_personalised_lists(
    api: Any, operator_token: str, social: dict[str, Any]
) -> None:
    me = social["me"]
    own = api.token("member", member=me)
    personal = (await api.ok(RECOMMENDED, {"id": me}, token=own))["member"]
    friends_of_friends = [(m, True) for m in sorted([social["b"], social["c"]])]  # both through a: a tie
    assert [(r["member"]["id"], r["personalized"]) for r in personal["recommendedMembers"]] == friends_of_friends
    assert all(r["personalized"] for r in personal["recommendedCommunities"])

    await api.ok(WITHDRAW, {"purpose": "PROFILING", "source": "APP"}, token=own)
    popular = (await api.ok(RECOMMENDED, {"id": me}, token=own))["member"]
    # the same lists for everyone: followers 3 (c), then 1 each (a, b; me is left out), by id
    assert [(r["member"]["id"], r["personalized"], r["reason"]) for r in popular["recommendedMembers"]] == [
        (social["c"], False, "Popular in this brand's community"),
        *[(m, False, "Popular in this brand's community") for m in sorted([social["a"], social["b"]])],
    ]
    assert [(r["community"]["id"], r["personalized"]) for r in popular["recommendedCommunities"]] == [
        (social["big"], False), (social["small"], False)]
    assert [(r["content"]["id"], r["personalized"]) for r in popular["recommendedContent"]] == [
        (social["hot"], False), (social["cold"], False)]
    assert [(r["product"]["id"], r["personalized"]) for r in popular["recommendedProducts"]] == [
        (social["tea"], False), (social["cup"], False)]
    other = (await api.ok(RECOMMENDED, {"id": social["d"]}, token=operator_token))["member"]
    assert all(r["personalized"] for r in other["recommendedMembers"])

    # marketing is still opt-in on the non-personalised path
    await api.ok(WITHDRAW, {"purpose": "MARKETING", "source": "APP"}, token=own)
    assert (await api.ok(RECOMMENDED, {"id": me}, token=own))["member"]["recommendedProducts"] == []

    await api.ok(GRANT, {"purpose": "PROFILING", "source": "APP"}, token=own)
    back = (await api.ok(RECOMMENDED, {"id": me}, token=own))["member"]
    assert [(r["member"]["id"], r["personalized"]) for r in back["recommendedMembers"]] == friends_of_friends


async def test_members_who_refuse_profiling_leave_the_popular_lists(
    api: Any, operator_token: str, social: dict[str, Any]
) -> None:
    await api.ok(WITHDRAW, {"purpose": "PROFILING", "source": "OPERATOR", "m": social["c"]}, token=operator_token)
    await api.ok(WITHDRAW, {"purpose": "PROFILING", "source": "OPERATOR", "m": social["me"]}, token=operator_token)
    popular = (await api.ok(RECOMMENDED, {"id": social["me"]}, token=operator_token))["member"]
    assert [r["member"]["id"] for r in popular["recommendedMembers"]] == sorted([social["a"], social["b"]])


async def test_withdrawn_profiling_hides_the_kol_profile(
    api: Any, operator_token: str, social: dict[str, Any], app_graph: GraphClient, redis: aioredis.Redis,
    tenant: str,
) -> None:
    await tag(app_graph, tenant, social["c"], f"tag_{tenant}d", "hiking", "declared")
    await tag(app_graph, tenant, social["c"], f"tag_{tenant}b", "luxury", "behavior")
    interests = "query($id: ID!) { member(id: $id) { interests { tag { name } source } } }"
    await recompute_kol(app_graph, redis, tenant, Scope())
    ranking = (await api.ok(RANKING, {}, token=operator_token))["kolRanking"]
    assert ranking["totalCount"] == 5
    assert ranking["nodes"][0]["member"]["id"] == social["c"]
    assert (await api.ok(INFLUENCE, {"id": social["c"]}, token=operator_token))["member"]["influence"] == {"rank": 1}
    filtered = "query { members(first: 10, filter: {minKolScore: 0}) { nodes { id } } }"
    assert social["c"] in {n["id"] for n in (await api.ok(filtered, token=operator_token))["members"]["nodes"]}

    await api.ok(WITHDRAW, {"purpose": "PROFILING", "source": "WECHAT"}, token=api.token("member", member=social["c"]))

    assert (await api.ok(INFLUENCE, {"id": social["c"]}, token=operator_token))["member"]["influence"] is None
    assert (await api.ok(interests, {"id": social["c"]}, token=operator_token))["member"]["interests"] == [
        {"tag": {"name": "hiking"}, "source": "declared"}]  # what it told us stays; what we inferred goes
    ranking = (await api.ok(RANKING, {}, token=operator_token))["kolRanking"]
    assert social["c"] not in [n["member"]["id"] for n in ranking["nodes"]]
    assert ranking["totalCount"] == 4 and [n["rank"] for n in ranking["nodes"]] == [1, 2, 3, 4]
    # c itself now gets the tenant's most influential members (by the computation), not a profile of its own
    popular = (await api.ok(RECOMMENDED, {"id": social["c"]}, token=operator_token))["member"]["recommendedMembers"]
    assert [(r["member"]["id"], r["personalized"]) for r in popular] == [
        (n["member"]["id"], False) for n in ranking["nodes"]]
    assert social["c"] not in {n["id"] for n in (await api.ok(filtered, token=operator_token))["members"]["nodes"]}
    # a later computation still scores the member (graph.kol is consent-blind): reads skip it and its rank
    await recompute_kol(app_graph, redis, tenant, Scope())
    ranking = (await api.ok(RANKING, {}, token=operator_token))["kolRanking"]
    assert social["c"] not in [n["member"]["id"] for n in ranking["nodes"]]
    assert [n["rank"] for n in ranking["nodes"]] == [2, 3, 4, 5] and ranking["totalCount"] == 5
    first = (await api.ok(RANKING.replace("first: 50", "first: 1"), token=operator_token))["kolRanking"]
    assert first["nodes"] == [] and first["pageInfo"]["hasNextPage"] is True  # the skipped first place
    assert first["pageInfo"]["endCursor"] is not None


# --- READ_PII audit ----------------------------------------------------------------------------


async def test_unmasked_personal_data_is_audited_once_per_request(
    api: Any, operator_token: str, app_graph: GraphClient
) -> None:
    with_pii = [(await register(api, operator_token, f"P{i}", phone=f"1390000{i:04d}", wechatId=f"wxid_p{i}"))["id"]
                for i in range(3)]
    phone_only = (await register(api, operator_token, "Q", phone="13700001111"))["id"]
    await register(api, operator_token, "Nothing personal")
    reader = api.token("operator", scopes=("pii:read",))

    before = app_graph.round_trips
    masked = await api.ok(PII, token=operator_token)
    masked_trips = app_graph.round_trips - before
    assert {n["phone"] for n in masked["members"]["nodes"] if n["phone"]} == {"139****0000", "139****0001",
                                                                             "139****0002", "137****1111"}
    before = app_graph.round_trips
    response = await api.http.post("/graphql", json={"query": PII}, headers={
        "Authorization": f"Bearer {reader}", "X-Request-Id": "req-pii-0001"})
    assert response.status_code == 200, response.text
    assert app_graph.round_trips - before == masked_trips + 1  # one audit write for the whole list
    nodes = response.json()["data"]["members"]["nodes"]
    assert {n["phone"] for n in nodes if n["phone"]} == {"13900000000", "13900000001", "13900000002", "13700001111"}

    await api.ok("query { members(first: 20) { nodes { displayName } } }", token=reader)  # nothing personal
    log = await audit(api, action="READ_PII")
    assert log["totalCount"] == 1
    entry = log["nodes"][0]
    assert entry["targetIds"] == sorted([*with_pii, phone_only])
    assert entry["detail"] == {"fields": ["phone", "wechatId"]}
    assert entry["requestId"] == "req-pii-0001"
    assert entry["actor"]["roles"] == ["operator"] and entry["actor"]["subject"]
    assert (await audit(api, action="READ_PII", target=phone_only))["totalCount"] == 1
    assert (await audit(api, action="EXPORT", target=phone_only))["totalCount"] == 0


async def test_personal_data_is_withheld_when_its_audit_entry_cannot_be_written(
    api: Any, operator_token: str, app: Starlette
) -> None:
    """A real adapter on a graph server nobody runs: no audit entry, so no personal data."""
    from domain.auth import Principal, Role
    from domain.auth import Scope as AuthScope
    from graph.embedded import free_port
    from resolvers.schema import build_schema

    await register(api, operator_token, "Secret", phone="13612345678")
    repos = app.state.resources.repos
    dead = GraphClient.connect(f"bolt://127.0.0.1:{free_port()}", user="root", password=PASSWORD, database="quanzi")
    try:
        schema = build_schema()
        principal = Principal(tenant_id=api.tenant, roles=frozenset({Role.OPERATOR}),
                              scopes=frozenset({AuthScope.PII_READ}), subject="op")
        ctx = Context(principal=principal, repos=dataclasses.replace(repos, privacy=GraphPrivacy(dead, None)),
                      request_id="req-dead")
        result = await schema.execute(PII, context_value=ctx)
        assert result.data is None
        assert [e.message for e in result.errors or []] == [
            "the audit log could not be written; personal data was not returned"]
        masked = await schema.execute(PII, context_value=dataclasses.replace(
            ctx, principal=dataclasses.replace(principal, scopes=frozenset()), pii_reads=type(ctx.pii_reads)()))
        assert masked.errors is None and masked.data is not None
        assert masked.data["members"]["nodes"][0]["phone"] == "136****5678"
    finally:
        await dead.close()


# --- audit log -----------------------------------------------------------------------------------


async def test_audit_log_is_for_admins_newest_first_in_keyset_pages(api: Any, operator_token: str) -> None:
    a = (await register(api, operator_token, "A"))["id"]
    b = (await register(api, operator_token, "B"))["id"]
    for member, purpose in ((a, "MARKETING"), (b, "MARKETING"), (a, "DATA_SHARING"), (b, "PROFILING"),
                            (a, "PROFILING")):
        await api.ok(GRANT, {"purpose": purpose, "source": "OPERATOR", "m": member}, token=operator_token)
    await api.ok(EXPORT, {"id": b}, token=api.token("admin"))

    everything = await audit(api, first=100)
    assert everything["totalCount"] == 6
    assert [n["action"] for n in everything["nodes"]] == ["EXPORT", *["CONSENT_CHANGE"] * 5]
    ats = [n["at"] for n in everything["nodes"]]
    assert ats == sorted(ats, reverse=True)

    seen: list[str] = []
    after = None
    while True:
        page = await audit(api, first=2, after=after)
        seen += [n["id"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [n["id"] for n in everything["nodes"]]

    for_a = await audit(api, target=a)
    assert for_a["totalCount"] == 3 and [n["detail"]["purpose"] for n in for_a["nodes"]] == [
        "PROFILING", "DATA_SHARING", "MARKETING"]
    assert (await audit(api, target=b, action="EXPORT"))["totalCount"] == 1

    for role in ("operator", "analyst", "integrator", "member"):
        body = await api(AUDIT, {}, token=api.token(role, scopes=("pii:read",)))
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN", role
    body = await api(AUDIT, {"after": "not-a-cursor"}, token=api.token("admin"))
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": "after"}
    body = await api(AUDIT, {"target": "cnt_abc"}, token=api.token("admin"))
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": "targetId"}
    body = await api(AUDIT, {"first": 101}, token=api.token("admin"))
    assert body["errors"][0]["extensions"]["code"] in ("VALIDATION_FAILED", "QUERY_TOO_COSTLY")


# --- export and erasure --------------------------------------------------------------------------


@pytest.fixture
async def person(api: Any, operator_token: str, app_graph: GraphClient, redis: aioredis.Redis,
                 tenant: str) -> dict[str, Any]:
    """X with everything a member can have: profile, referrals both ways, a membership, follows both ways,
    a post liked by A, a like and a comment on A's post, purchases (one credited to A, one by Y credited to X),
    a consent, a KOL standing, referral numbers, cached recommendations and stream entries."""
    await rebuild_referrals(app_graph, redis, tenant)
    tag_id = uuid.uuid4().hex[:10]
    secrets = {"name": f"王小明{tag_id}", "phone": f"139{random.randrange(10**8):08d}", "wechat": f"wxid_{tag_id}",
               "city": f"城市{tag_id}", "title": f"我的私人帖子{tag_id}", "body": f"正文{tag_id}",
               "comment": f"评论{tag_id}"}
    inviter = await register(api, operator_token, "Inviter")
    x = await register(api, operator_token, secrets["name"], phone=secrets["phone"], wechatId=secrets["wechat"],
                       city=secrets["city"], inviteCode=inviter["inviteCode"], marketingConsent=True)
    y = await register(api, operator_token, "Y", inviteCode=x["inviteCode"])
    a = (await register(api, operator_token, "A"))["id"]
    b = (await register(api, operator_token, "B"))["id"]
    z = (await register(api, operator_token, "Z"))["id"]
    circle = await community(api, operator_token, "Tea lovers")
    for m in (x["id"], a):
        await join(api, operator_token, circle, m)
    await follow(api, operator_token, x["id"], a)
    await follow(api, operator_token, b, x["id"])
    await follow(api, operator_token, x["id"], z)  # b follows x follows z: b is told "Followed by <x's name>"
    mine = (await post(api, operator_token, x["id"], circle, secrets["title"], body=secrets["body"]))["content"]["id"]
    theirs = (await post(api, operator_token, a, circle, "A's post"))["content"]["id"]
    await api.ok(LIKE, {"c": mine, "as": a}, token=operator_token)
    await api.ok(LIKE, {"c": theirs, "as": x["id"]}, token=operator_token)
    comment = (await api.ok(COMMENT, {"c": theirs, "body": secrets["comment"], "as": x["id"]},
                            token=operator_token))["addComment"]["comment"]["id"]
    tea = await product(api, operator_token, "TEA")
    bought = await buy(api, operator_token, x["id"], tea, credit=a)
    credited = await buy(api, operator_token, y["id"], tea, credit=x["id"])
    await api.ok(GRANT, {"purpose": "DATA_SHARING", "source": "MINI_PROGRAM"}, token=api.token("member", member=x["id"]))
    await tag(app_graph, tenant, x["id"], "tag_" + tag_id, "green tea", "declared")
    await recompute_kol(app_graph, redis, tenant, Scope())
    told = (await api.ok(RECOMMENDED, {"id": b}, token=operator_token))["member"]["recommendedMembers"]
    assert any(secrets["name"] in r["reason"] for r in told)  # the cache now quotes x's name
    await api.ok(RECOMMENDED, {"id": x["id"]}, token=operator_token)
    return {"x": x["id"], "y": y["id"], "a": a, "b": b, "z": z, "inviter": inviter["id"], "community": circle,
            "tag": "tag_" + tag_id,
            "mine": mine, "theirs": theirs, "comment": comment, "tea": tea, "bought": bought, "credited": credited,
            "secrets": secrets}


async def test_export_returns_everything_held_about_a_member(
    api: Any, operator_token: str, person: dict[str, Any], app_graph: GraphClient
) -> None:
    s, x = person["secrets"], person["x"]
    before = app_graph.round_trips
    doc = (await api.ok(EXPORT, {"id": x}, token=api.token("admin")))["exportMemberData"]
    assert app_graph.round_trips - before == 3  # audit entry, the member's graph, its consents: one transaction
    assert doc["memberId"] == x and doc["erased"] is False
    profile = doc["profile"]
    assert (profile["displayName"], profile["phone"], profile["wechatId"], profile["city"]) == (
        s["name"], s["phone"], s["wechat"], s["city"])
    assert isinstance(profile["joinedAt"], str) and profile["kolRank"] >= 1
    assert doc["memberships"] == [{"communityId": person["community"], "name": "Tea lovers", "role": "member",
                                   "joinedAt": doc["memberships"][0]["joinedAt"]}]
    assert sorted(f["memberId"] for f in doc["following"]) == sorted([person["a"], person["z"]])
    assert [f["memberId"] for f in doc["followers"]] == [person["b"]]
    assert [(c["id"], c["title"], c["body"], c["communityIds"]) for c in doc["content"]] == [
        (person["mine"], s["title"], s["body"], [person["community"]])]
    assert [(c["id"], c["contentId"], c["body"]) for c in doc["comments"]] == [
        (person["comment"], person["theirs"], s["comment"])]
    assert sorted((i["kind"], i["contentId"]) for i in doc["interactions"]) == [
        ("COMMENTED", person["theirs"]), ("LIKED", person["theirs"])]
    assert [(p["id"], p["amount"], p["currency"], p["attributedTo"], [ln["productId"] for ln in p["lines"]])
            for p in doc["purchases"]] == [(person["bought"], 3000, "CNY", person["a"], [person["tea"]])]
    assert [(p["purchaseId"], p["amount"]) for p in doc["attributedPurchases"]] == [(person["credited"], 3000)]
    assert [r["memberId"] for r in doc["referrals"]["invitedBy"]] == [person["inviter"]]
    assert [r["memberId"] for r in doc["referrals"]["invitees"]] == [person["y"]]
    assert [(c["purpose"], c["granted"], c["source"], len(c["history"])) for c in doc["consents"]] == [
        ("MARKETING", True, "PROFILE", 0), ("PROFILING", True, None, 0), ("DATA_SHARING", True, "MINI_PROGRAM", 1)]
    assert doc["interests"] == [{"tagId": person["tag"], "name": "green tea", "kind": "interest", "weight": 0.5,
                                 "source": "declared"}]
    assert doc["campaigns"] == []

    exports = await audit(api, action="EXPORT", target=x)
    assert exports["totalCount"] == 1 and exports["nodes"][0]["actor"]["roles"] == ["admin"]


async def test_export_needs_an_admin_and_an_existing_member(api: Any, operator_token: str, person: dict[str, Any]) -> None:
    for token in (api.token("operator", scopes=("pii:read",)), api.token("member", member=person["x"])):
        body = await api(EXPORT, {"id": person["x"]}, token=token)
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await api(EXPORT, {"id": "mem_nobody0000000"}, token=api.token("admin"))
    assert body["errors"][0]["extensions"] == {"code": "NOT_FOUND", "field": "memberId"}
    body = await api(EXPORT, {"id": "robert'); DROP"}, token=api.token("admin"))
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": "memberId"}
    assert (await audit(api, action="EXPORT"))["totalCount"] == 0


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_text(v) for v in value]
    return value


async def redis_dump(redis: aioredis.Redis) -> str:
    """Every key and value in Redis, as text."""
    parts: list[Any] = []
    async for key in redis.scan_iter(count=1_000):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            value: Any = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "set":
            value = await redis.smembers(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1)
        elif kind == "stream":
            value = await redis.xrange(key)
        else:
            value = kind
        parts.append([key, value])
    return json.dumps(_text(parts), ensure_ascii=False)


def holds(blob: str, value: str) -> bool:
    """Whether *blob* holds *value* as text or JSON-escaped (JSON caches store ``\\u738b``)."""
    escaped = json.dumps(value)[1:-1]
    return value in blob or escaped in blob or escaped.replace("\\", "\\\\") in blob


async def graph_fingerprint(graph: GraphClient, tenant: str) -> str:
    """Every property of every node and relationship of the tenant (events and audit entries too)."""
    nodes = await graph.read("MATCH (n) WHERE n.tenantId = $tenant RETURN collect([labels(n), properties(n)]) AS xs",
                             tenant=tenant)
    rels = await graph.read("MATCH (a)-[r]->(b) WHERE a.tenantId = $tenant OR b.tenantId = $tenant "
                            "RETURN collect([type(r), a.id, b.id, properties(r)]) AS xs", tenant=tenant)
    return json.dumps([nodes[0]["xs"], rels[0]["xs"]], ensure_ascii=False, default=str)


async def test_erasure_removes_personal_data_everywhere_and_keeps_accounting(
    api: Any, operator_token: str, person: dict[str, Any], app_graph: GraphClient, redis: aioredis.Redis,
    tenant: str,
) -> None:
    s, x = person["secrets"], person["x"]
    secrets = [s["name"], s["phone"], s["wechat"], s["city"], s["title"], s["body"], s["comment"]]
    dump, fingerprint = await redis_dump(redis), await graph_fingerprint(app_graph, tenant)
    assert all(holds(fingerprint, v) for v in secrets)
    assert holds(dump, s["name"]) and x in dump  # cached reasons, the stream, rankings, referral numbers

    denied = (await api.ok(ERASE, {"id": x}, token=api.token("operator", scopes=("pii:read",))))["eraseMember"]
    assert (denied["__typename"], denied["code"]) == ("PermissionError", "FORBIDDEN")
    assert await graph_fingerprint(app_graph, tenant) == fingerprint

    done = (await api.ok(ERASE, {"id": x}, token=api.token("admin")))["eraseMember"]
    assert {k: v for k, v in done.items() if k not in ("eventsRedacted", "streamEntriesDeleted",
                                                       "cacheEntriesDeleted")} == {
        "__typename": "ErasurePayload", "memberId": x, "alreadyErased": False,
        "relationshipsRemoved": 7,  # follows x->a, x->z, b->x; like and comment mark on theirs; membership; tag
        "contentErased": 1, "commentsErased": 1, "purchasesAnonymised": 1, "consentsDetached": 1,
        "redisPurged": True,
    }
    assert done["eventsRedacted"] >= 10 and done["streamEntriesDeleted"] >= 10 and done["cacheEntriesDeleted"] >= 4

    # no personal string of x remains anywhere; its id is gone from the stream, rankings and caches
    dump, fingerprint = await redis_dump(redis), await graph_fingerprint(app_graph, tenant)
    assert [v for v in secrets if holds(dump, v)] == []
    assert [v for v in secrets if holds(fingerprint, v)] == []
    stream = await redis.xrange(f"q:{tenant}:stream")
    assert stream and not [e for _, e in stream if x.encode() in e[b"payload"]]
    rankings = [k async for k in redis.scan_iter(match=f"q:{tenant}:kol:*:KOL")]
    assert rankings and [k for k in rankings if await redis.zscore(k, x) is not None] == []
    assert not await redis.exists("q:{" + tenant + "}:ref:m:" + x)
    events = await app_graph.read("MATCH (e:Event {tenantId: $t}) WHERE e.payload CONTAINS $x RETURN count(e) AS n",
                                  t=tenant, x=x)
    assert events[0]["n"] == 0

    # reads return the tombstone; what accounting needs is still there, anonymous
    read = """query($x: ID!, $p: ID!, $q: ID!, $i: ID!) {
      member(id: $x) { displayName phone wechatId city followers { totalCount } posts { totalCount } }
      purchase(id: $p) { total { amount currency } member { id displayName } }
      credited: purchase(id: $q) { total { amount } attributedTo { id displayName } }
      referralTree(memberId: $i, depth: 3) { levelCounts }
    }"""
    data = await api.ok(read, {"x": x, "p": person["bought"], "q": person["credited"], "i": person["inviter"]},
                        token=api.token("admin", scopes=("pii:read",)))
    assert data["member"] == {"displayName": "已注销用户", "phone": None, "wechatId": None, "city": None,
                              "followers": {"totalCount": 0}, "posts": {"totalCount": 1}}
    assert data["purchase"] == {"total": {"amount": 3000, "currency": "CNY"},
                                "member": {"id": x, "displayName": "已注销用户"}}
    assert data["credited"] == {"total": {"amount": 3000}, "attributedTo": {"id": x, "displayName": "已注销用户"}}
    assert data["referralTree"]["levelCounts"] == [1, 1]
    feed = "query($c: ID!) { community(id: $c) { feed { nodes { id } } } }"
    assert [n["id"] for n in (await api.ok(feed, {"c": person["community"]}, token=operator_token))
            ["community"]["feed"]["nodes"]] == [person["theirs"]]
    exported = (await api.ok(EXPORT, {"id": x}, token=api.token("admin")))["exportMemberData"]
    assert set(exported) == {"memberId", "exportedAt", "erased", "profile"} and exported["erased"] is True
    assert exported["profile"]["displayName"] == "已注销用户" and exported["profile"]["id"] == x
    assert (await api.ok(GRANT, {"purpose": "MARKETING", "source": "OPERATOR", "m": x}, token=operator_token)
            )["grantConsent"]["code"] == "VALIDATION_FAILED"
    still = await api.ok("query($a: ID!) { member(id: $a) { displayName followers { totalCount } } }",
                         {"a": person["a"]}, token=operator_token)
    assert still["member"] == {"displayName": "A", "followers": {"totalCount": 0}}

    # idempotent, and every call is audited
    again = (await api.ok(ERASE, {"id": x}, token=api.token("admin")))["eraseMember"]
    assert (again["alreadyErased"], again["relationshipsRemoved"], again["purchasesAnonymised"],
            again["consentsDetached"], again["streamEntriesDeleted"], again["redisPurged"]) == (True, 0, 1, 0, 0, True)
    assert await graph_fingerprint(app_graph, tenant) != fingerprint  # only the new audit entry
    erasures = await audit(api, action="ERASE", target=x)
    assert erasures["totalCount"] == 2
    assert [n["detail"]["alreadyErased"] for n in erasures["nodes"]] == [True, False]


async def test_subscriptions_audit_unmasked_personal_data_once_per_event(
    api: Any, operator_token: str, ws_url: str
) -> None:
    from tests.test_subscriptions import JOINED, ack, joined_events

    circle = await community(api, operator_token, "Live")
    first = (await register(api, operator_token, "First", phone="13511112222"))["id"]
    second = (await register(api, operator_token, "Second", phone="13533334444"))["id"]
    client = await ack(ws_url, api.token("integrator", scopes=("pii:read",)))
    try:
        await client.subscribe(JOINED, {"c": circle})
        await asyncio.sleep(0.3)  # the subscription is listening
        await join(api, operator_token, circle, first)
        await join(api, operator_token, circle, second)
        events = await joined_events(client, 2)
    finally:
        await client.ws.close()
    assert [e["member"]["phone"] for e in events] == ["13511112222", "13533334444"]
    log = await audit(api, action="READ_PII")
    assert [(n["targetIds"], n["detail"], n["actor"]["roles"]) for n in log["nodes"]] == [
        ([second], {"fields": ["phone"]}, ["integrator"]), ([first], {"fields": ["phone"]}, ["integrator"])]


async def test_role_changes_are_audited(api: Any, operator_token: str) -> None:
    member = (await register(api, operator_token, "Promoted"))["id"]
    circle = await community(api, operator_token, "Club")
    await join(api, operator_token, circle, member)
    data = await api.ok("mutation($m: ID!, $c: ID!) { setMemberRole(memberId: $m, communityId: $c, role: ADMIN) "
                        "{ __typename } }", {"m": member, "c": circle}, token=operator_token)
    assert data["setMemberRole"]["__typename"] == "MembershipPayload"
    log = await audit(api, action="ROLE_CHANGE", target=member)
    assert [(n["targetIds"], n["detail"], n["actor"]["roles"]) for n in log["nodes"]] == [
        ([member], {"communityId": circle, "role": "admin"}, ["operator"])]
