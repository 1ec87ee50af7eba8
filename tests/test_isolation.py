"""Tenant isolation proof: principals of tenant A try every operation on the ids of tenant B.

Tenant B holds a small but complete world: a demo community loaded by the generator (members with
interests, follows, referrals, content, comments, likes, purchases) plus objects made through the
API (a fission campaign, a referral chain, a community with roles, content with a topic, a comment,
likes, shares, favorites, a product, an attributed purchase, a webhook with deliveries) and KOL
rankings computed for three scopes.

For every root field of the schema (queries, mutations and subscriptions; the table below must
name each one, so a new root field fails :func:`test_every_root_field_has_an_isolation_case`),
principals of tenant A with the strongest roles send B's ids and B's unique values. Each request is
sent twice: once with B's values and once with "ghost" values of the same shape that exist nowhere.
The two answers must be the same once the values sent are replaced by placeholders: a B object is
indistinguishable from one that does not exist. On top of that:

* admins see each B id as absent (null, empty, NOT_FOUND) and each B unique value as free;
* no response contains anything of B (ids, names, phones, codes, keys, secrets) that was not sent;
* B's graph (every node, relationship and property) and B's Redis keys are unchanged afterwards,
  and no relationship joins a node of A to a node of B;
* subscriptions of A with B's ids are refused like ghost ids, or receive nothing while B's events
  flow, while A's own events arrive on the same server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import string
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
import redis.asyncio as aioredis
import websockets
from starlette.applications import Starlette

from api.settings import Settings
from domain.growth import Scope, ScopeKind
from graph.client import GraphClient
from graph.demo_data import load_demo
from graph.growth import rebuild_referrals, recompute_kol
from graph.segmentation import recompute as recompute_segments
from tests.conftest import Api
from tests.helpers import community, follow, join, post, register
from tests.schema_walk import (
    ID_RE,
    ROOTS,
    classify,
    count_tokens,
    graph_fingerprint,
    operation,
    redis_fingerprint,
    root_fields,
    tenant_strings,
)
from tests.test_webhooks import Receiver, receiver  # noqa: F401  (session fixture)

# --- the two worlds -----------------------------------------------------------------------------


@dataclass
class World:
    a: str
    b: str
    A: dict[str, str]
    B: dict[str, str]
    ghost: dict[str, str]
    tokens: dict[str, str]  # principal name -> token of tenant A
    ghost_tokens: dict[str, str]  # the same principals for the ghost run (a member claim names the ghost member)
    b_strings: set[str]
    b_token: str  # an operator of B, to cause B's events
    a_token: str  # an operator of A


def _rand(n: int, alphabet: str = string.ascii_lowercase + string.digits) -> str:
    return "".join(random.choice(alphabet) for _ in range(n))


def _ghost(key: str, value: str) -> str:
    """A value of the same shape as *value* that names nothing (same masked form for phones and WeChat ids)."""
    if ID_RE.fullmatch(value):
        prefix, _, token = value.partition("_")
        return f"{prefix}_{_rand(len(token))}"
    if key == "phone":
        return value[:3] + _rand(len(value) - 7, string.digits) + value[-4:]
    if key == "wechat":
        return value[0] + _rand(len(value) - 2) + value[-1]
    if key == "webhook_url":
        return value.rsplit("/", 1)[0] + "/ghost-" + _rand(12)
    if key == "invite_code":
        return _rand(len(value), string.ascii_uppercase + string.digits)
    return "ghost-" + _rand(max(6, len(value) - 6))


async def _api_b(api: Api, token: str, receiver_url: str) -> dict[str, str]:
    """Tenant B's objects made through the API, the way clients make them."""
    from tests.test_api_campaigns import running_campaign
    from tests.test_api_commerce import create_product, record

    integrator = api.token("integrator")
    hook = await api.ok("""mutation($url: String!) { registerWebhook(input: {url: $url,
        eventTypes: [MEMBER_JOINED, PURCHASE_RECORDED, CONTENT_POSTED]}) {
        ... on RegisterWebhookPayload { secret webhook { id url } } } }""", {"url": receiver_url}, token=integrator)
    campaign = await running_campaign(api, token, name="BSECRET Spring fission")
    root = await register(api, token, "Bianca BSECRET Root", phone="13911112222", wechatId="wxid_bsecret_root",
                          city="BSECRET City", marketingConsent=True, profilingConsent=True)
    invitee = await register(api, token, "Boris BSECRET Invitee", inviteCode=root["inviteCode"], campaignId=campaign,
                             phone="13933334444")
    second = await register(api, token, "Bella BSECRET Second", inviterId=invitee["id"], campaignId=campaign)
    fan = await register(api, token, "Bert BSECRET Fan", wechatId="wxid_bsecret_fan")
    com = await community(api, token, "BSECRET Garden", ownerId=root["id"], description="BSECRET description")
    for m in (invitee, second, fan):
        await join(api, token, com, m["id"])
    await api.ok("""mutation($m: ID!, $c: ID!) { setMemberRole(memberId: $m, communityId: $c, role: ADMIN) {
        __typename } }""", {"m": fan["id"], "c": com}, token=token)
    await follow(api, token, fan["id"], root["id"])
    await follow(api, token, invitee["id"], root["id"])
    content = (await post(api, token, root["id"], com, "BSECRET launch", topics=["bsecret-topic"]))["content"]["id"]
    comment = await api.ok("""mutation($c: ID!, $as: ID) { addComment(input: {contentId: $c, body: "BSECRET comment"},
        asMemberId: $as) { ... on CommentPayload { comment { id } } } }""", {"c": content, "as": fan["id"]}, token=token)
    for verb, who in (("likeContent", fan), ("shareContent", invitee), ("favoriteContent", second)):
        await api.ok(f"mutation($c: ID!, $as: ID) {{ {verb}(contentId: $c, asMemberId: $as) {{ __typename }} }}",
                     {"c": content, "as": who["id"]}, token=token)
    topic = (await api.ok("query($id: ID!) { content(id: $id) { topics { id } } }", {"id": content},
                          token=token))["content"]["topics"][0]["id"]
    product = await create_product(api, token, "BSKU-SECRET-1", 8800, name="BSECRET tea")
    bought = await record(api, token, second["id"], [{"productId": product["id"], "quantity": 2}], "bkey-secret-1",
                          attributedTo=root["id"])
    assert bought["__typename"] == "PurchasePayload", bought
    sent = await api.ok("""mutation($c: ID!, $as: ID) { recordInvitesSent(input: {campaignId: $c, count: 5},
        asMemberId: $as) { __typename } }""", {"c": campaign, "as": root["id"]}, token=token)
    assert sent["recordInvitesSent"]["__typename"] == "InvitesSentPayload"
    admin = api.token("admin")
    consent = await api.ok("""mutation($m: ID) { grantConsent(purpose: DATA_SHARING, source: OPERATOR, memberId: $m) {
        __typename } }""", {"m": root["id"]}, token=token)
    assert consent["grantConsent"]["__typename"] == "ConsentPayload", consent
    await api.ok("query($m: ID!) { exportMemberData(memberId: $m) }", {"m": root["id"]}, token=admin)  # audited
    segment = await api.ok("""mutation($c: ID!) { createSegment(input: {name: "BSECRET segment", filter: {anyOf: [
        {allOf: [{memberOf: {communityIds: [$c]}}]}]}}) { ... on SegmentPayload { segment { id } } } }""",
                           {"c": com}, token=admin)
    rewards = await _rewards_b(api, token, root["id"], fan["id"], product["id"], campaign)
    return {
        **rewards,
        "root": root["id"], "invitee": invitee["id"], "second": second["id"], "fan": fan["id"], "community": com,
        "content": content, "comment": comment["addComment"]["comment"]["id"], "topic": topic, "product": product["id"],
        "purchase": bought["purchase"]["id"], "campaign": campaign, "segment": segment["createSegment"]["segment"]["id"],
        "webhook": hook["registerWebhook"]["webhook"]["id"], "webhook_url": receiver_url,
        "webhook_secret": hook["registerWebhook"]["secret"], "invite_code": root["inviteCode"],
        "sku": "BSKU-SECRET-1", "idempotency_key": "bkey-secret-1", "phone": "13911112222",
        "wechat": "wxid_bsecret_root", "community_name": "BSECRET Garden", "campaign_name": "BSECRET Spring fission",
    }


async def _rewards_b(api: Api, token: str, root: str, fan: str, product: str, campaign: str) -> dict[str, str]:
    """B's group-buy (in its campaign), coupon and points entry."""
    from tests.test_api_coupons import issue
    from tests.test_api_group_buys import open_group
    from tests.test_api_points import change

    group = (await open_group(api, token, root, product, 3, campaignId=campaign))["groupBuy"]["id"]
    coupon = (await issue(api, token, fan, "bcoupon-secret-1", campaignId=campaign))["coupon"]["id"]
    earned = await change(api, token, root, "EARN", 30, "bpoints-secret-1")
    assert earned["__typename"] == "PointsPayload", earned
    return {"group_buy": group, "coupon": coupon, "coupon_key": "bcoupon-secret-1", "points_key": "bpoints-secret-1"}


async def _demo_ids(graph: GraphClient, tenant: str) -> dict[str, str]:
    rows = await graph.read("""
        MATCH (m:Member)-[:INTERESTED_IN]->(t:Tag) WHERE m.tenantId = $tenant
        RETURN m.id AS member, t.id AS tag ORDER BY m.id, t.id LIMIT 1""", tenant=tenant)
    inviter = await graph.read("""
        MATCH (i:Member)-[:REFERRED]->(m:Member) WHERE m.tenantId = $tenant
        RETURN i.id AS inviter, m.id AS invitee ORDER BY m.id LIMIT 1""", tenant=tenant)
    return {"demo_member": rows[0]["member"], "interest_tag": rows[0]["tag"], "demo_inviter": inviter[0]["inviter"],
            "demo_invitee": inviter[0]["invitee"]}


async def _api_a(api: Api, token: str) -> dict[str, str]:
    from tests.test_api_campaigns import running_campaign
    from tests.test_api_commerce import create_product

    one = await register(api, token, "Alpha One")
    two = await register(api, token, "Alpha Two")
    com = await community(api, token, "Alpha Circle")
    for m in (one, two):
        await join(api, token, com, m["id"])
    content = (await post(api, token, one["id"], com, "Alpha post"))["content"]["id"]
    product = await create_product(api, token, "ASKU-1", 1000, name="Alpha tea")
    campaign = await running_campaign(api, token, name="Alpha fission")
    return {"member": one["id"], "member2": two["id"], "community": com, "content": content,
            "product": product["id"], "campaign": campaign}


async def _settle_webhooks(api: Api, webhook: str) -> None:
    """Wait until B's webhook deliveries are all delivered (the dispatcher then leaves B alone)."""
    q = "query($id: ID!) { webhookDeliveries(webhookId: $id, first: 100) { delivered nextAttemptAt } }"
    token = api.token("integrator")
    for _ in range(100):
        log = (await api.ok(q, {"id": webhook}, token=token))["webhookDeliveries"]
        if log and all(d["delivered"] for d in log) and len(log) >= 3:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"B's webhook deliveries did not settle: {log}")


@pytest_asyncio.fixture(scope="module")
async def world(http: httpx.AsyncClient, settings: Settings, graph: GraphClient, app: Starlette,
                receiver: Receiver) -> World:  # noqa: F811
    a, b = "ten_isoA" + uuid.uuid4().hex[:12], "ten_isoB" + uuid.uuid4().hex[:12]
    api_a, api_b = Api(http, settings, a), Api(http, settings, b)
    b_token, a_token = api_b.token("operator"), api_a.token("operator")
    redis = app.state.resources.redis
    app_graph = app.state.resources.graph

    await load_demo(graph, tenant=b, members=30, seed=5)
    await rebuild_referrals(app_graph, redis, b)
    B = await _api_b(api_b, b_token, receiver.url("iso-b-" + uuid.uuid4().hex[:12]))
    B.update(await _demo_ids(graph, b))
    await recompute_kol(app_graph, redis, b, Scope())
    await recompute_kol(app_graph, redis, b, Scope(ScopeKind.COMMUNITY, B["community"]))
    await recompute_kol(app_graph, redis, b, Scope(ScopeKind.TOPIC, B["topic"]))
    await recompute_segments(app_graph, redis, b)  # B has circles, a summary and member segmentation
    await app.state.resources.relay.flush(timeout=5.0)
    await _settle_webhooks(api_b, B["webhook"])
    element = await graph.read("MATCH (m:Member {id: $id}) RETURN elementId(m) AS e", id=B["root"])
    B["element_id"] = str(element[0]["e"])

    A = await _api_a(api_a, a_token)
    tokens = {
        "admin+pii": api_a.token("admin", scopes=("pii:read",)),
        "operator": api_a.token("operator"),
        "integrator": api_a.token("integrator"),
        "analyst+pii": api_a.token("analyst", scopes=("pii:read",)),
        "member": api_a.token("member", member=A["member"]),
        # a token of tenant A whose member claim names a member of B: the claim is scoped by the tenant too
        "member-claiming-B": api_a.token("member", member=B["fan"]),
    }
    b_strings = await tenant_strings(graph, b) | {b, B["webhook_secret"], B["invite_code"]}
    ghost = {k: _ghost(k, v) for k, v in B.items()}
    ghost_tokens = {**tokens, "member-claiming-B": api_a.token("member", member=ghost["fan"])}
    return World(a, b, A, B, ghost, tokens, ghost_tokens, b_strings, b_token, a_token)


# --- the case table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    side: str  # "A", "B" or "fresh"
    key: str = ""


def B(key: str) -> Ref:
    return Ref("B", key)


def A(key: str) -> Ref:
    return Ref("A", key)


FRESH = Ref("fresh")
ABSENT = frozenset({"absent"})
#: a social action without asMemberId by a token that is not a member's: refused before any lookup
NOT_A_MEMBER = frozenset({"absent", "error:FORBIDDEN"})


@dataclass(frozen=True)
class Case:
    kind: str
    field: str
    args: dict[str, Any]
    #: what admins must see; anything else in the list is a refusal that is not NOT_FOUND but leaks nothing
    expect: frozenset[str] = ABSENT
    #: run once (as the admin): the case creates something in A that must not exist twice
    once: bool = False
    sel: str | None = None

    @property
    def name(self) -> str:
        return f"{self.field}({json.dumps(self.args, default=lambda r: f'{r.side}.{r.key}')})"


def _now(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


LOOKUP_KINDS = {
    "node": ["root", "community", "content", "comment", "topic", "interest_tag", "product", "purchase", "campaign",
             "demo_member", "webhook"],
    "member": ["root", "demo_member", "fan"], "community": ["community"], "content": ["content"],
    "product": ["product"], "purchase": ["purchase"], "campaign": ["campaign"], "segment": ["segment"],
}

#: a segment filter naming B's ids in every predicate that takes ids
B_FILTER = {"anyOf": [{"allOf": [
    {"memberOf": {"communityIds": [B("community")]}}, {"tags": {"tagIds": [B("interest_tag")]}},
    {"followsMemberOf": {"communityIds": [B("community")]}}, {"bought": {"productIds": [B("product")]}}]}]}

CASES: list[Case] = [
    # queries: lookups by id
    *[Case("query", f, {"id": B(k)}, expect=ABSENT if k != "webhook" else frozenset({"error:VALIDATION_FAILED"}))
      for f, keys in LOOKUP_KINDS.items() for k in keys],
    Case("query", "viewer", {}, expect=frozenset({"ok"})),
    Case("query", "members", {"filter": {"communityId": B("community")}}),
    Case("query", "members", {"filter": {"tagId": B("interest_tag")}}),
    Case("query", "members", {"filter": {"tagId": B("topic")}}),
    Case("query", "members", {}, expect=frozenset({"ok"})),
    Case("query", "communities", {"filter": {"nameContains": B("community_name")}}),
    Case("query", "communities", {}, expect=frozenset({"ok"})),
    Case("query", "kolRanking", {"scope": {"kind": "COMMUNITY", "id": B("community")}}),
    Case("query", "kolRanking", {"scope": {"kind": "TOPIC", "id": B("topic")}}),
    Case("query", "kolRanking", {}),
    Case("query", "member", {"id": A("member")}, expect=frozenset({"ok"}),
         sel="{ id influence(scope: {kind: COMMUNITY, id: $scopeId}) { rank score } }"),
    Case("query", "referralUpline", {"memberId": B("second")}),
    Case("query", "referralUpline", {"memberId": B("demo_invitee")}),
    Case("query", "referralTree", {"memberId": B("root")}),
    Case("query", "referralTree", {"memberId": B("demo_inviter"), "depth": 10}),
    Case("query", "referralStats", {"memberId": B("root")}),
    Case("query", "referralStats", {"memberId": B("demo_inviter")}),
    Case("query", "campaignVirality", {"campaignId": B("campaign")}),
    Case("query", "health", {"scope": {"kind": "COMMUNITY", "id": B("community")}}),
    Case("query", "health", {"scope": {"kind": "CAMPAIGN", "id": B("campaign")}}),
    Case("query", "health", {}, expect=frozenset({"ok"})),
    Case("query", "segments", {}, expect=frozenset({"ok", "absent"})),
    Case("query", "segmentSize", {"segmentId": B("segment")}),
    Case("query", "segmentSize", {"filter": {"anyOf": [{"allOf": [{"memberOf": {"communityIds": [B("community")]}}]}]}}),
    Case("query", "segmentMembers", {"segmentId": B("segment")}),
    Case("query", "segmentSize", {"filter": B_FILTER}),
    Case("query", "segmentMembers", {"filter": B_FILTER}),
    Case("query", "segmentMembers", {"filter": {"anyOf": [{"allOf": [
        {"tags": {"tagIds": [B("interest_tag")]}}, {"followsMemberOf": {"communityIds": [B("community")]}},
        {"bought": {"productIds": [B("product")]}}]}]}}),
    Case("query", "interestCircles", {}, expect=frozenset({"ok", "absent"})),
    Case("query", "segmentationSummary", {}, expect=frozenset({"ok", "absent"})),
    Case("query", "segmentationConfig", {}, expect=frozenset({"ok"})),
    Case("query", "webhooks", {}),
    Case("query", "webhookDeliveries", {"webhookId": B("webhook")}),
    Case("query", "auditLog", {"targetId": B("root")}),
    Case("query", "auditLog", {"targetId": B("demo_member"), "action": "ERASE"}),
    Case("query", "auditLog", {}, expect=frozenset({"ok", "absent"})),
    Case("query", "exportMemberData", {"memberId": B("root")}),
    Case("query", "exportMemberData", {"memberId": B("demo_member")}),
    # mutations: B's ids as the target, as the acting member, or both
    Case("mutation", "registerMember", {"input": {"displayName": "Alpha via B", "inviterId": B("root")}}),
    Case("mutation", "registerMember", {"input": {"displayName": "Alpha via code", "inviteCode": B("invite_code")}},
         expect=frozenset({"error:INVALID_INVITE_CODE"})),
    Case("mutation", "registerMember", {"input": {"displayName": "Alpha in B campaign", "inviterId": A("member"),
                                                  "campaignId": B("campaign")}}),
    Case("mutation", "registerMember", {"input": {"displayName": "Alpha same phone", "phone": B("phone"),
                                                  "wechatId": B("wechat")}}, expect=frozenset({"ok"}), once=True),
    Case("mutation", "updateMember", {"memberId": B("root"), "input": {"city": "Alpha City"}}),
    Case("mutation", "updateMember", {"memberId": B("fan"), "input": {"displayName": "pwned", "level": 9,
                                                                      "marketingConsent": True}}),
    Case("mutation", "followMember", {"memberId": B("root"), "asMemberId": A("member")}),
    Case("mutation", "followMember", {"memberId": A("member2"), "asMemberId": B("fan")}),
    Case("mutation", "followMember", {"memberId": B("root"), "asMemberId": B("invitee")}),
    Case("mutation", "followMember", {"memberId": B("root")}, expect=NOT_A_MEMBER),
    Case("mutation", "unfollowMember", {"memberId": B("root"), "asMemberId": B("fan")}),
    Case("mutation", "unfollowMember", {"memberId": B("root"), "asMemberId": A("member")}),
    Case("mutation", "setInviter", {"memberId": B("fan"), "inviterId": B("root")}),
    Case("mutation", "setInviter", {"memberId": A("member2"), "inviterId": B("root")}),
    Case("mutation", "setInviter", {"memberId": B("fan"), "inviterId": A("member")}),
    Case("mutation", "createCommunity", {"input": {"name": "Alpha owned by B", "ownerId": B("root")}}),
    Case("mutation", "createCommunity", {"input": {"name": B("community_name")}}, expect=frozenset({"ok"}), once=True),
    Case("mutation", "joinCommunity", {"communityId": B("community"), "asMemberId": A("member")}),
    Case("mutation", "joinCommunity", {"communityId": A("community"), "asMemberId": B("fan")}),
    Case("mutation", "joinCommunity", {"communityId": B("community"), "asMemberId": B("root")}),
    Case("mutation", "joinCommunity", {"communityId": B("community")}, expect=NOT_A_MEMBER),
    Case("mutation", "leaveCommunity", {"communityId": B("community"), "asMemberId": B("fan")}),
    Case("mutation", "leaveCommunity", {"communityId": B("community"), "asMemberId": A("member")}),
    Case("mutation", "setMemberRole", {"memberId": B("fan"), "communityId": B("community"), "role": "OWNER"}),
    Case("mutation", "setMemberRole", {"memberId": A("member"), "communityId": B("community"), "role": "ADMIN"}),
    Case("mutation", "setMemberRole", {"memberId": B("fan"), "communityId": A("community"), "role": "MEMBER"}),
    Case("mutation", "createContent", {"input": {"communityId": B("community"), "body": "Alpha in B"},
                                       "asMemberId": A("member")}),
    Case("mutation", "createContent", {"input": {"communityId": A("community"), "body": "B in Alpha"},
                                       "asMemberId": B("root")}),
    Case("mutation", "createContent", {"input": {"communityId": B("community"), "body": "B in B",
                                                 "topics": ["bsecret-topic"]}, "asMemberId": B("root")}),
    Case("mutation", "addComment", {"input": {"contentId": B("content"), "body": "Alpha comment"},
                                    "asMemberId": A("member")}),
    Case("mutation", "addComment", {"input": {"contentId": A("content"), "body": "B comment"}, "asMemberId": B("fan")}),
    *[Case("mutation", verb, {"contentId": B("content"), "asMemberId": who})
      for verb in ("likeContent", "unlikeContent", "shareContent", "favoriteContent")
      for who in (A("member"), B("fan"))],
    Case("mutation", "likeContent", {"contentId": A("content"), "asMemberId": B("fan")}),
    Case("mutation", "likeContent", {"contentId": B("content")}, expect=NOT_A_MEMBER),
    Case("mutation", "createProduct", {"input": {"sku": B("sku"), "name": "Alpha same sku", "category": "tea",
                                                 "price": {"amount": 100}}}, expect=frozenset({"ok"}), once=True),
    Case("mutation", "recordPurchase", {"input": {"memberId": B("second"), "idempotencyKey": FRESH,
                                                  "lines": [{"productId": A("product"), "quantity": 1}]}}),
    Case("mutation", "recordPurchase", {"input": {"memberId": A("member"), "idempotencyKey": FRESH,
                                                  "lines": [{"productId": B("product"), "quantity": 1}]}}),
    Case("mutation", "recordPurchase", {"input": {"memberId": A("member"), "idempotencyKey": FRESH,
                                                  "attributedTo": B("root"),
                                                  "lines": [{"productId": A("product"), "quantity": 1}]}}),
    Case("mutation", "recordPurchase", {"input": {"memberId": A("member"), "idempotencyKey": B("idempotency_key"),
                                                  "lines": [{"productId": A("product"), "quantity": 1}]}},
         expect=frozenset({"ok"}), once=True),
    Case("mutation", "createCampaign", {"input": {"name": B("campaign_name"), "startsAt": _now(-1),
                                                  "endsAt": _now(1)}}, expect=frozenset({"ok"}), once=True),
    Case("mutation", "recordInvitesSent", {"input": {"campaignId": B("campaign"), "count": 3},
                                           "asMemberId": A("member")}),
    Case("mutation", "recordInvitesSent", {"input": {"campaignId": A("campaign"), "count": 3},
                                           "asMemberId": B("root")}),
    Case("mutation", "recordInvitesSent", {"input": {"campaignId": B("campaign"), "count": 3},
                                           "asMemberId": B("root")}),
    Case("mutation", "registerWebhook", {"input": {"url": B("webhook_url"), "eventTypes": ["KOL_RANKING_CHANGED"]}},
         expect=frozenset({"ok"}), once=True),
    Case("mutation", "deactivateWebhook", {"webhookId": B("webhook")}),
    Case("mutation", "updateSegmentationConfig", {"input": {"newDays": 3, "activeDays": 20, "churnDays": 60}},
         expect=frozenset({"ok"}), once=True),
    Case("mutation", "createSegment", {"input": {"name": "Alpha on B", "filter": {"anyOf": [{"allOf": [
        {"memberOf": {"communityIds": [B("community")]}}]}]}}}),
    Case("mutation", "updateSegment", {"segmentId": B("segment"), "input": {"name": "pwned"}}),
    Case("mutation", "createSegment", {"input": {"name": "Alpha on B ids", "filter": B_FILTER}}),
    Case("mutation", "updateSegment", {"segmentId": B("segment"), "input": {"filter": B_FILTER}}),
    Case("mutation", "archiveSegment", {"segmentId": B("segment")}),
    Case("mutation", "grantConsent", {"purpose": "MARKETING", "source": "OPERATOR", "memberId": B("root")}),
    Case("mutation", "grantConsent", {"purpose": "PROFILING", "source": "APP", "memberId": B("fan")}),
    Case("mutation", "withdrawConsent", {"purpose": "DATA_SHARING", "source": "OPERATOR", "memberId": B("root")}),
    Case("mutation", "eraseMember", {"memberId": B("fan")}),
    Case("mutation", "eraseMember", {"memberId": B("demo_member")}),
    # campaign mechanics: group-buys, coupons, points
    Case("query", "groupBuy", {"id": B("group_buy")}),
    Case("query", "node", {"id": B("group_buy")}),
    Case("query", "node", {"id": B("coupon")}),
    Case("query", "memberCoupons", {"memberId": B("fan")}),
    Case("query", "pointsLedger", {"memberId": B("root")}),
    Case("query", "pointsBalance", {"memberId": B("root")}),
    Case("mutation", "openGroupBuy", {"input": {"productId": B("product"), "requiredSize": 2, "expiresAt": _now(1)},
                                      "asMemberId": A("member")}),
    Case("mutation", "openGroupBuy", {"input": {"productId": A("product"), "requiredSize": 2, "expiresAt": _now(1)},
                                      "asMemberId": B("root")}),
    Case("mutation", "openGroupBuy", {"input": {"productId": A("product"), "requiredSize": 2, "expiresAt": _now(1),
                                                "campaignId": B("campaign")}, "asMemberId": A("member")}),
    Case("mutation", "joinGroupBuy", {"groupBuyId": B("group_buy"), "asMemberId": A("member")}),
    Case("mutation", "joinGroupBuy", {"groupBuyId": B("group_buy"), "asMemberId": B("fan")}),
    Case("mutation", "joinGroupBuy", {"groupBuyId": B("group_buy")}, expect=NOT_A_MEMBER),
    Case("mutation", "recordGroupBuyRefund", {"groupBuyId": B("group_buy"), "memberId": B("root")}),
    Case("mutation", "issueCoupon", {"input": {"memberId": B("fan"), "percentOff": 10, "expiresAt": _now(1),
                                               "idempotencyKey": FRESH}}),
    Case("mutation", "issueCoupon", {"input": {"memberId": A("member"), "percentOff": 10, "expiresAt": _now(1),
                                               "idempotencyKey": FRESH, "campaignId": B("campaign")}}),
    Case("mutation", "issueCoupon", {"input": {"memberId": A("member"), "percentOff": 10, "expiresAt": _now(1),
                                               "idempotencyKey": B("coupon_key")}}, expect=frozenset({"ok"}), once=True),
    Case("mutation", "redeemCoupon", {"couponId": B("coupon"), "asMemberId": A("member")}),
    Case("mutation", "redeemCoupon", {"couponId": B("coupon"), "asMemberId": B("fan")}),
    Case("mutation", "recordPurchase", {"input": {"memberId": A("member"), "idempotencyKey": FRESH,
                                                  "campaignId": B("campaign"),
                                                  "lines": [{"productId": A("product"), "quantity": 1}]}}),
    Case("mutation", "changePoints", {"input": {"memberId": B("root"), "kind": "EARN", "amount": 5,
                                                "idempotencyKey": FRESH}}),
    # B's key is unknown in A: the spend is judged on A's (empty) balance, not answered with B's entry
    Case("mutation", "changePoints", {"input": {"memberId": A("member"), "kind": "SPEND", "amount": 5,
                                                "idempotencyKey": B("points_key")}},
         expect=frozenset({"error:INSUFFICIENT_POINTS"})),
]

#: subscriptions: (field, arguments); B's events are caused while they are open
SUBSCRIPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("memberJoined", {"communityId": B("community")}),
    ("contentPosted", {"communityId": B("community")}),
    ("commentAdded", {"contentId": B("content")}),
    ("purchaseRecorded", {}),
    ("referralConverted", {"inviterId": B("root")}),
    ("referralConverted", {"campaignId": B("campaign")}),
    ("kolRankingChanged", {"scope": B("community")}),
    ("kolRankingChanged", {}),
]

STRONGEST = ("admin+pii",)


def test_every_root_field_has_an_isolation_case() -> None:
    covered = {"query": set(), "mutation": set(), "subscription": {f for f, _ in SUBSCRIPTIONS}}
    for case in CASES:
        covered[case.kind].add(case.field)
    missing = {kind: sorted(set(root_fields(kind)) - covered[kind]) for kind in ROOTS}
    stale = {kind: sorted(covered[kind] - set(root_fields(kind))) for kind in ROOTS}

    assert missing == {"query": [], "mutation": [], "subscription": []}, f"root fields without an isolation case: {missing}"
    assert stale == {"query": [], "mutation": [], "subscription": []}, f"cases for fields the schema lacks: {stale}"


def test_every_id_argument_of_a_root_field_gets_a_b_id() -> None:
    """Each ID argument (also inside inputs) of each root field is given one of B's ids by some case."""
    from tests.schema_walk import string_slots

    given: set[tuple[str, str]] = set()

    def walk(field: str, value: Any, path: str) -> None:
        if isinstance(value, Ref) and value.side == "B":
            given.add((field, re.sub(r"\[\d+\]", "[0]", path)))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(field, v, f"{path}.{k}" if path else k)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(field, v, f"{path}[{i}]")

    for case in CASES:
        walk(case.field, case.args, "")
    for f, args in SUBSCRIPTIONS:
        walk(f, args, "")
    wanted = {(s.field, s.path) for s in string_slots() if s.type_name == "ID"}
    # kolRanking's scope id and Member.influence's are the same input type: covered through kolRanking
    assert sorted(wanted - given) == []


# --- running a case -----------------------------------------------------------------------------


def resolve(value: Any, world: World, mode: str, slots: dict[str, str]) -> Any:
    if isinstance(value, Ref):
        if value.side == "A":
            return world.A[value.key]
        if value.side == "fresh":
            v = "key-" + uuid.uuid4().hex
            slots[v] = "<fresh>"
            return v
        v = world.B[value.key] if mode == "B" else world.ghost[value.key]
        slots[v] = f"<B.{value.key}>"
        return v
    if isinstance(value, dict):
        return {k: resolve(v, world, mode, slots) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, world, mode, slots) for v in value]
    return value


#: values that differ between two equivalent answers (made-up ids, times, codes, cursors)
_VOLATILE = frozenset({"inviteCode", "secret", "cursor", "startCursor", "endCursor", "at", "createdAt", "joinedAt",
                       "computedAt", "startsAt", "endsAt", "requestId", "idempotencyKey", "issuedAt"})


def normalize(body: Any, slots: dict[str, str]) -> Any:
    text = json.dumps(body, ensure_ascii=False, sort_keys=True)
    for value in sorted(slots, key=len, reverse=True):
        text = text.replace(json.dumps(value, ensure_ascii=False)[1:-1], slots[value])
    text = ID_RE.sub("<id>", text)

    def scrub(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ("<v>" if k in _VOLATILE and x is not None else scrub(x)) for k, x in v.items()}
        if isinstance(v, list):
            return [scrub(x) for x in v]
        return v

    return scrub(json.loads(text))


def leaked(text: str, world: World, sent: set[str]) -> list[str]:
    return sorted(s for s in world.b_strings - sent if s in text)


@dataclass
class Tally:
    requests: int = 0
    absent: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    ok: int = 0


async def send(http: httpx.AsyncClient, token: str, document: str, variables: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    response = await http.post("/graphql", json={"query": document, "variables": variables},
                               headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json(), response.text


async def run_case(http: httpx.AsyncClient, world: World, case: Case, principal: str, tally: Tally) -> list[str]:
    """Both runs of one case for one principal; the problems found (empty when isolated)."""
    problems: list[str] = []
    results = {}
    for mode in ("B", "ghost"):
        token = (world.tokens if mode == "B" else world.ghost_tokens)[principal]
        slots: dict[str, str] = {}
        if principal == "member-claiming-B":  # the token's member claim is a value this caller sent
            resolve(B("fan"), world, mode, slots)
        variables = resolve(case.args, world, mode, slots)
        if case.sel is not None:  # the nested-scope case passes B's community as a variable of the selection
            variables["scopeId"] = resolve(B("community"), world, mode, slots)
            defs = ", ".join(f"${k}: ID!" for k in variables)
            document = f"query({defs}) {{ {case.field}(id: $id) {case.sel} }}"
        else:
            document = operation(case.kind, case.field, variables)
            if count_tokens(document) > Settings.model_fields["max_tokens"].default:
                # node(id) selects every type's fields; two levels of that outgrew the token
                # limit, so it reads one level (each type's own lookup still reads two)
                document = operation(case.kind, case.field, variables, depth=1)
        status, body, text = await send(http, token, document, variables)
        tally.requests += 1
        where = f"{principal} {case.name} [{mode}]"
        if status != 200:
            problems.append(f"{where}: HTTP {status} {text[:300]}")
            continue
        if any(c in (None, "None", "INTERNAL") for c in _codes(body)):
            problems.append(f"{where}: unmasked or internal error {body.get('errors')}")
        if mode == "B":
            found = leaked(text, world, set(slots))
            if found:
                problems.append(f"{where}: B's data in the response: {found[:5]} in {text[:400]}")
            outcome = classify(body, case.field)
            if outcome == "absent":
                tally.absent += 1
            elif outcome == "ok":
                tally.ok += 1
            else:
                tally.refused[outcome] = tally.refused.get(outcome, 0) + 1
            if principal in STRONGEST and outcome not in case.expect:
                problems.append(f"{where}: expected {sorted(case.expect)}, got {outcome}: {text[:400]}")
        results[mode] = normalize(body, slots)
    if len(results) == 2 and results["B"] != results["ghost"]:
        problems.append(f"{principal} {case.name}: B's ids answer differently from ids that exist nowhere:\n"
                        f"  B:     {json.dumps(results['B'], ensure_ascii=False)[:600]}\n"
                        f"  ghost: {json.dumps(results['ghost'], ensure_ascii=False)[:600]}")
    return problems


def _codes(body: dict[str, Any]) -> list[Any]:
    return [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]


async def b_state(graph: GraphClient, redis: aioredis.Redis, world: World) -> tuple[Any, Any]:
    fp = await graph_fingerprint(graph)
    keys = await redis_fingerprint(redis, [f"q:{world.b}:*", f"q:{{{world.b}}}:*", f"q:webhooks:*{world.B['webhook']}*"])
    return fp.only({world.b}), keys


async def cross_links(graph: GraphClient, world: World) -> list[Any]:
    rows = await graph.read("""
        MATCH (x)-[r]-(y) WHERE x.tenantId = $a AND y.tenantId <> $a
        RETURN type(r) AS type, x.id AS x, y.id AS y, y.tenantId AS tenant""", a=world.a)
    return [dict(r) for r in rows]


async def a_mentions_b(graph: GraphClient, world: World) -> list[str]:
    """Properties in A's nodes or relationships that hold one of B's ids (a reference across tenants)."""
    rows = await graph.read("""
        MATCH (x) WHERE x.tenantId = $a
        OPTIONAL MATCH (x)-[r]->()
        RETURN properties(x) AS p, collect(properties(r)) AS rs""", a=world.a)
    b_ids = {v for v in world.b_strings if ID_RE.fullmatch(v)}
    text = json.dumps([[dict(r["p"]), [dict(x) for x in r["rs"]]] for r in rows], default=str)
    return sorted(i for i in b_ids if i in text)


# --- the matrix ---------------------------------------------------------------------------------


async def test_tenant_a_gets_nothing_of_tenant_b_from_any_query_or_mutation(
    http: httpx.AsyncClient, world: World, graph: GraphClient, app: Starlette
) -> None:
    redis = app.state.resources.redis
    before = await b_state(graph, redis, world)
    tally = Tally()
    problems: list[str] = []
    started = time.monotonic()

    for case in CASES:
        for principal in ["admin+pii"] if case.once else list(world.tokens):
            problems += await run_case(http, world, case, principal, tally)
    await app.state.resources.relay.flush(timeout=5.0)

    after = await b_state(graph, redis, world)
    if after[0] != before[0]:
        problems.append(f"B's graph changed: before {before[0]} after {after[0]}")
    if after[1] != before[1]:
        changed = sorted(k for k in set(before[1]) | set(after[1]) if before[1].get(k) != after[1].get(k))
        problems.append(f"B's Redis keys changed: {changed}")
    links = await cross_links(graph, world)
    if links:
        problems.append(f"relationships join A to another tenant: {links}")
    mentions = await a_mentions_b(graph, world)
    if mentions:
        problems.append(f"A's graph stores B's ids: {mentions}")
    print(f"\nisolation matrix: {len(CASES)} cases x {len(world.tokens)} principals, {tally.requests} requests "
          f"(B ids and ghost ids), {tally.absent} answered absent, {tally.ok} ok, refused {tally.refused}, "
          f"{time.monotonic() - started:.1f}s")
    assert not problems, f"{len(problems)} isolation problem(s):\n" + "\n".join(problems)


RAW_VARIANTS = {
    "bare token": lambda v: v.partition("_")[2],
    "upper case": lambda v: v.upper(),
    "relay base64": lambda v: base64.b64encode(f"Node:{v}".encode()).decode(),
    "padded": lambda v: f" {v}\n",
    "quoted": lambda v: f"'{v}'",
    "with injection": lambda v: f"{v}' OR 1=1 //",
    "prefix only": lambda v: v.partition("_")[0] + "_",
}


async def test_raw_and_mangled_forms_of_b_ids_find_nothing(http: httpx.AsyncClient, world: World) -> None:
    """B's ids in other spellings (bare tokens, Relay base64, the graph's element id, ...) read nothing of B."""
    problems: list[str] = []
    token = world.tokens["admin+pii"]
    for fname, keys in LOOKUP_KINDS.items():
        for key in keys:
            forms = {name: (f(world.B[key]), f(world.ghost[key])) for name, f in RAW_VARIANTS.items()}
            forms["element id"] = (world.B["element_id"], "#999:999")
            for name, (b_value, ghost_value) in forms.items():
                answers = []
                for value in (b_value, ghost_value):
                    document = operation("query", fname, {"id": value})
                    status, body, text = await send(http, token, document, {"id": value})
                    assert status == 200, (fname, name, text)
                    assert "INTERNAL" not in _codes(body), (fname, name, text)
                    if value == b_value:
                        found = leaked(text, world, {world.B[key]})
                        if found:
                            problems.append(f"{fname}({name} of B.{key}) leaked {found}")
                        if classify(body, fname) not in ("absent", "error:VALIDATION_FAILED"):
                            problems.append(f"{fname}({name} of B.{key}) answered {text[:300]}")
                    answers.append(normalize(body, {b_value: "<v>", ghost_value: "<v>"}))
                if name != "element id" and answers[0] != answers[1]:
                    problems.append(f"{fname}({name} of B.{key}): {answers[0]} != {answers[1]}")
    assert not problems, "\n".join(problems)


# --- subscriptions ------------------------------------------------------------------------------


class Socket:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Messages other than pings that arrive within *seconds*."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        got = []
        while (remaining := deadline - loop.time()) > 0:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), remaining)
            except (TimeoutError, websockets.ConnectionClosed):
                break
            message = json.loads(raw)
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            if message["type"] != "pong":
                got.append(message)
        self.messages += got
        return got


async def open_socket(ws_url: str, token: str) -> Socket:
    ws = await websockets.connect(ws_url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    sock = Socket(ws)
    await sock.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    acked = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert acked["type"] == "connection_ack", acked
    return sock


async def subscribe(ws_url: str, token: str, fname: str, variables: dict[str, Any]) -> Socket:
    sock = await open_socket(ws_url, token)
    document = operation("subscription", fname, variables, depth=1)
    await sock.send({"id": "1", "type": "subscribe", "payload": {"query": document, "variables": variables}})
    return sock


async def test_subscriptions_of_tenant_a_on_b_ids_receive_nothing_of_b(
    http: httpx.AsyncClient, world: World, ws_url: str, app: Starlette, settings: Settings
) -> None:
    api_a, api_b = Api(http, settings, world.a), Api(http, settings, world.b)
    plans = []
    for principal in world.tokens:
        for fname, args in SUBSCRIPTIONS:
            for mode in ("B", "ghost"):
                token = (world.tokens if mode == "B" else world.ghost_tokens)[principal]
                slots: dict[str, str] = {}
                if principal == "member-claiming-B":
                    resolve(B("fan"), world, mode, slots)
                variables = resolve(args, world, mode, slots)
                plans.append((principal, fname, args, mode, slots, subscribe(ws_url, token, fname, variables)))
    sockets = await asyncio.gather(*(p[-1] for p in plans))
    await asyncio.gather(*(s.drain(0.5) for s in sockets))  # refusals arrive at once
    control = await subscribe(ws_url, world.tokens["admin+pii"], "memberJoined", {"communityId": world.A["community"]})
    await asyncio.sleep(0.3)

    # B's events: a referral in B's campaign, a join, a post, a comment, a purchase, two rankings
    newcomer = await register(api_b, world.b_token, "Bob BSECRET Newcomer", inviterId=world.B["root"],
                              campaignId=world.B["campaign"])
    await join(api_b, world.b_token, world.B["community"], newcomer["id"])
    await post(api_b, world.b_token, newcomer["id"], world.B["community"], "BSECRET live post")
    await api_b.ok("""mutation($c: ID!, $as: ID) { addComment(input: {contentId: $c, body: "BSECRET live"},
        asMemberId: $as) { __typename } }""", {"c": world.B["content"], "as": newcomer["id"]}, token=world.b_token)
    from tests.test_api_commerce import record

    await record(api_b, world.b_token, newcomer["id"], [{"productId": world.B["product"], "quantity": 1}],
                 "bkey-live-" + uuid.uuid4().hex)
    resources = app.state.resources
    await recompute_kol(resources.graph, resources.redis, world.b, Scope())
    await recompute_kol(resources.graph, resources.redis, world.b, Scope(ScopeKind.COMMUNITY, world.B["community"]))
    await resources.relay.flush(timeout=5.0)
    # then one event of A: it must reach A's own subscriber, so the pipeline was live all along
    late = await register(api_a, world.a_token, "Alpha Late")
    await join(api_a, world.a_token, world.A["community"], late["id"])
    [arrived] = [m for m in await control.drain(5.0) if m["type"] == "next"][:1] or [None]
    assert arrived is not None and arrived["payload"]["data"]["memberJoined"]["member"]["id"] == late["id"], arrived
    await asyncio.gather(*(s.drain(1.0) for s in sockets))

    problems = []
    by_key: dict[tuple[str, str, str], dict[str, Any]] = {}
    for (principal, fname, args, mode, slots, _), sock in zip(plans, sockets):
        text = json.dumps(sock.messages, ensure_ascii=False)
        if mode == "B":
            found = leaked(text, world, set(slots))
            data = [m for m in sock.messages if m["type"] == "next" and (m.get("payload") or {}).get("data")]
            if found or data:
                problems.append(f"{principal} {fname}{args}: received {text[:400]}")
            if "INTERNAL" in text:
                problems.append(f"{principal} {fname}{args}: internal error {text[:300]}")
        by_key.setdefault((principal, fname, json.dumps(args, default=str)), {})[mode] = normalize(sock.messages, slots)
    for key, answers in by_key.items():
        if answers["B"] != answers["ghost"]:
            problems.append(f"{key}: B ids {answers['B']} != ghost ids {answers['ghost']}")
    refused = sum(1 for (p, *_), s in zip(plans, sockets) if any(m["type"] in ("error", "complete") or
                  (m.get("payload") or {}).get("errors") for m in s.messages))
    print(f"\nisolation subscriptions: {len(plans)} subscriptions, {refused} refused at once, "
          f"{len(plans) - refused} open while B's events flowed; nothing of B arrived")
    for s in [*sockets, control]:
        await s.ws.close()
    assert not problems, "\n".join(problems)
