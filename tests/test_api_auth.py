"""Authentication, PII masking, tenant isolation and `node(id)` over HTTP."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from api.auth import issue_token
from tests.helpers import community, join, post, register

VIEWER = "{ viewer { tenantId roles scopes memberId member { id displayName } } }"


async def count(graph: Any, query: Any, **params: Any) -> int:
    rows = await graph.read(query, **params)
    return int(rows[0]["n"])


# --- anonymous callers -----------------------------------------------------------------------


async def test_anonymous_cannot_list_members(api):
    response = await api.raw("{ members { totalCount nodes { id } } }")
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert [(e["path"], e["extensions"]) for e in body["errors"]] == [(["members"], {"code": "NOT_AUTHENTICATED"})]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("member(id: $id) { id displayName }", "member"),
        ("node(id: $id) { id }", "node"),
    ],
)
async def test_anonymous_cannot_read_a_member(api, operator_token, query, field):
    m = await register(api, operator_token, "Private", phone="13812345678")
    body = await api(f"query($id: ID!) {{ {query} }}", {"id": m["id"]})
    assert body["data"] == {field: None}
    assert [(e["path"], e["extensions"]) for e in body["errors"]] == [([field], {"code": "NOT_AUTHENTICATED"})]
    assert "Private" not in str(body)


@pytest.mark.parametrize(
    "query",
    [
        "{ communities { totalCount } }",
        '{ community(id: "com_abc") { id } }',
        '{ content(id: "cnt_abc") { id } }',
        '{ product(id: "prd_abc") { id } }',
        '{ purchase(id: "pur_abc") { id } }',
    ],
)
async def test_anonymous_cannot_read_anything_else(api, query):
    body = await api(query)
    assert [e["extensions"] for e in body["errors"]] == [{"code": "NOT_AUTHENTICATED"}]


async def test_anonymous_mutations_are_refused_and_write_nothing(api, graph, tenant):
    data = await api.ok(
        """mutation { registerMember(input: {displayName: "Anon"}) { __typename ... on UserError { code field } }
                      followMember(memberId: "mem_abc", asMemberId: "mem_def") { __typename ... on UserError { code field } } }"""
    )
    assert data == {
        "registerMember": {"__typename": "PermissionError", "code": "NOT_AUTHENTICATED", "field": None},
        "followMember": {"__typename": "PermissionError", "code": "NOT_AUTHENTICATED", "field": None},
    }
    assert await count(graph, "MATCH (m:Member {displayName: 'Anon'}) RETURN count(m) AS n") == 0


# --- viewer ----------------------------------------------------------------------------------


async def test_viewer_is_null_for_anonymous(api):
    assert await api.ok(VIEWER) == {"viewer": None}


async def test_viewer_for_a_member_token(api, operator_token, tenant):
    m = await register(api, operator_token, "Me")
    data = await api.ok(VIEWER, token=api.token("member", member=m["id"], scopes=("pii:read",)))
    assert data["viewer"] == {
        "tenantId": tenant, "roles": ["member"], "scopes": ["pii:read"], "memberId": m["id"],
        "member": {"id": m["id"], "displayName": "Me"},
    }


async def test_viewer_for_a_staff_token(api, tenant):
    data = await api.ok(VIEWER, token=api.token("operator", "analyst"))
    assert data["viewer"] == {
        "tenantId": tenant, "roles": ["analyst", "operator"], "scopes": [], "memberId": None, "member": None,
    }


# --- bad credentials -------------------------------------------------------------------------


def _claims(settings: Any, tenant_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "x", "tenant": tenant_id, "roles": ["operator"], "scopes": [], "iss": settings.jwt_issuer,
              "aud": settings.jwt_audience, "iat": now, "exp": now + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(settings: Any, claims: dict[str, Any], secret: str | None = None) -> str:
    return jwt.encode(claims, secret or settings.jwt_secret.get_secret_value(), algorithm="HS256")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "expired",
        "wrong-secret",
        "wrong-audience",
        "wrong-issuer",
        "no-tenant",
        "empty-tenant",
        "unknown-role",
        "unsigned",
    ],
)
async def test_invalid_credentials_are_http_401(api, settings, tenant, header):
    tokens = {
        "expired": issue_token(settings, tenant=tenant, roles=["operator"], ttl_seconds=-60),
        "wrong-secret": _sign(settings, _claims(settings, tenant), secret="another-secret-" + "y" * 40),
        "wrong-audience": _sign(settings, _claims(settings, tenant, aud="someone-else")),
        "wrong-issuer": _sign(settings, _claims(settings, tenant, iss="someone-else")),
        "no-tenant": _sign(settings, _claims(settings, tenant, tenant=None)),
        "empty-tenant": _sign(settings, _claims(settings, "")),
        "unknown-role": _sign(settings, _claims(settings, tenant, roles=["superuser"])),
        "unsigned": jwt.encode(_claims(settings, tenant), None, algorithm="none"),
    }
    value = f"Bearer {tokens[header]}" if header in tokens else header
    response = await api.http.post("/graphql", json={"query": "{ viewer { tenantId } }"},
                                   headers={"Authorization": value})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert list(body) == ["errors"]
    assert [e["extensions"] for e in body["errors"]] == [{"code": "NOT_AUTHENTICATED"}]
    if header == "expired":
        assert body["errors"][0]["message"] == "the bearer token has expired"


async def test_a_bad_token_never_reaches_a_mutation(api, settings, graph, tenant):
    token = issue_token(settings, tenant=tenant, roles=["operator"], ttl_seconds=-60)
    response = await api.raw('mutation { registerMember(input: {displayName: "Late"}) { __typename } }', token=token)
    assert response.status_code == 401
    assert await count(graph, "MATCH (m:Member {tenantId: $tenant}) RETURN count(m) AS n", tenant=tenant) == 0


# --- PII masking -----------------------------------------------------------------------------

PII = "query($id: ID!) { member(id: $id) { phone wechatId } }"


async def test_phone_and_wechat_id_are_masked_without_the_pii_scope(api, operator_token):
    m = await register(api, operator_token, "Pii", phone="13812345678", wechatId="wxid_abc123")
    me = await register(api, operator_token, "Viewer")
    masked = {"phone": "138****5678", "wechatId": "w*********3"}
    clear = {"phone": "13812345678", "wechatId": "wxid_abc123"}
    cases = [
        (operator_token, masked),
        (api.token("analyst"), masked),
        (api.token("member", member=m["id"]), masked),
        (api.token("member", member=me["id"]), masked),
        (api.token("operator", scopes=("pii:read",)), clear),
        (api.token("member", member=m["id"], scopes=("pii:read",)), clear),
    ]
    for token, expected in cases:
        assert (await api.ok(PII, {"id": m["id"]}, token=token))["member"] == expected


async def test_masking_of_short_and_international_values(api, operator_token):
    short = await register(api, operator_token, "Short", phone="123456", wechatId="ab")
    intl = await register(api, operator_token, "Intl", phone="+8613812345678", wechatId="xyz")
    assert (await api.ok(PII, {"id": short["id"]}, token=operator_token))["member"] == {"phone": "******", "wechatId": "**"}
    assert (await api.ok(PII, {"id": intl["id"]}, token=operator_token))["member"] == {
        "phone": "+86*******5678", "wechatId": "x*z"}


async def test_members_list_masks_too(api, operator_token):
    await register(api, operator_token, "Pii", phone="13812345678")
    data = await api.ok("{ members { nodes { phone } } }", token=operator_token)
    assert data["members"]["nodes"] == [{"phone": "138****5678"}]
    data = await api.ok("{ members { nodes { phone } } }", token=api.token("operator", scopes=("pii:read",)))
    assert data["members"]["nodes"] == [{"phone": "13812345678"}]


# --- tenant isolation ------------------------------------------------------------------------


@pytest.fixture
async def theirs(api, operator_token) -> dict[str, str]:
    """A small world in the test's tenant, which the other tenant must never see or touch."""
    a = await register(api, operator_token, "Alice", phone="13812345678")
    b = await register(api, operator_token, "Bob")
    c = await community(api, operator_token, "Private club")
    await join(api, operator_token, c, a["id"])
    created = await post(api, operator_token, a["id"], c, "secret post", topics=["hidden"])
    content = created["content"]["id"]
    product = (await api.ok('mutation { createProduct(input: {sku: "P-1", name: "Tea", category: "tea", '
                            'price: {amount: 100}}) { ... on ProductPayload { product { id } } } }',
                            token=operator_token))["createProduct"]["product"]["id"]
    purchase = (await api.ok(
        "mutation($i: RecordPurchaseInput!) { recordPurchase(input: $i) { ... on PurchasePayload { purchase { id } } } }",
        {"i": {"memberId": a["id"], "lines": [{"productId": product, "quantity": 1}], "idempotencyKey": "iso-key-1"}},
        token=operator_token,
    ))["recordPurchase"]["purchase"]["id"]
    comment = (await api.ok(
        "mutation($i: AddCommentInput!, $as: ID) { addComment(input: $i, asMemberId: $as) "
        "{ ... on CommentPayload { comment { id } } } }",
        {"i": {"contentId": content, "body": "hi"}, "as": b["id"]}, token=operator_token,
    ))["addComment"]["comment"]["id"]
    tag = (await api.ok("query($id: ID!) { content(id: $id) { topics { id } } }", {"id": content},
                        token=operator_token))["content"]["topics"][0]["id"]
    return {"a": a["id"], "b": b["id"], "inviteCode": a["inviteCode"], "c": c, "content": content,
            "product": product, "purchase": purchase, "comment": comment, "tag": tag}


SNAPSHOT = """
MATCH (n {tenantId: $tenant})
OPTIONAL MATCH (n)-[r]-()
WITH n, count(r) AS degree
RETURN n.id AS id, properties(n) AS props, degree ORDER BY id
"""


async def snapshot(graph: Any, tenant: str) -> list[tuple[Any, ...]]:
    rows = await graph.read(SNAPSHOT, tenant=tenant)
    return sorted((r["id"], sorted(r["props"].items()), r["degree"]) for r in rows)


async def test_another_tenant_reads_nothing(api, theirs):
    other = api.token("operator", tenant="ten_other" + api.tenant[4:], scopes=("pii:read",))
    for key in ("a", "c", "content", "product", "purchase", "comment", "tag"):
        data = await api.ok("query($id: ID!) { node(id: $id) { __typename id } }", {"id": theirs[key]}, token=other)
        assert data == {"node": None}, key
    data = await api.ok(
        """query($m: ID!, $c: ID!, $t: ID!, $p: ID!, $o: ID!) {
             member(id: $m) { id } community(id: $c) { id } content(id: $t) { id } product(id: $p) { id }
             purchase(id: $o) { id }
             members { totalCount nodes { id } } communities { totalCount nodes { id } } }""",
        {"m": theirs["a"], "c": theirs["c"], "t": theirs["content"], "p": theirs["product"], "o": theirs["purchase"]},
        token=other,
    )
    assert data == {"member": None, "community": None, "content": None, "product": None, "purchase": None,
                    "members": {"totalCount": 0, "nodes": []}, "communities": {"totalCount": 0, "nodes": []}}


async def test_a_forged_member_claim_from_another_tenant_is_nobody(api, theirs):
    forged = api.token("member", member=theirs["a"], tenant="ten_other" + api.tenant[4:])
    data = await api.ok(VIEWER, token=forged)
    assert data["viewer"]["member"] is None
    data = await api.ok(
        'mutation($id: ID!) { updateMember(memberId: $id, input: {displayName: "Pwned"}) '
        "{ __typename ... on UserError { code field } } }",
        {"id": theirs["a"]}, token=forged,
    )
    assert data["updateMember"] == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "memberId"}


async def test_another_tenant_cannot_write_to_our_ids(api, graph, tenant, theirs):
    other_tenant = "ten_other" + api.tenant[4:]
    other = api.token("operator", tenant=other_tenant)
    mine = await register(api, other, "Mallory")
    before = await snapshot(graph, tenant)
    errors = "__typename ... on UserError { code field }"
    cases: list[tuple[str, dict[str, Any], str, str, str]] = [
        (f'mutation($m: ID!) {{ r: updateMember(memberId: $m, input: {{displayName: "X"}}) {{ {errors} }} }}',
         {"m": theirs["a"]}, "NotFoundError", "NOT_FOUND", "memberId"),
        (f"mutation($m: ID!, $i: ID!) {{ r: setInviter(memberId: $m, inviterId: $i) {{ {errors} }} }}",
         {"m": theirs["b"], "i": theirs["a"]}, "NotFoundError", "NOT_FOUND", "memberId"),
        (f"mutation($m: ID!, $i: ID!) {{ r: setInviter(memberId: $m, inviterId: $i) {{ {errors} }} }}",
         {"m": mine["id"], "i": theirs["a"]}, "NotFoundError", "NOT_FOUND", "inviterId"),
        (f"mutation($t: ID!, $as: ID) {{ r: followMember(memberId: $t, asMemberId: $as) {{ {errors} }} }}",
         {"t": theirs["a"], "as": theirs["b"]}, "NotFoundError", "NOT_FOUND", "asMemberId"),
        (f"mutation($t: ID!, $as: ID) {{ r: followMember(memberId: $t, asMemberId: $as) {{ {errors} }} }}",
         {"t": theirs["a"], "as": mine["id"]}, "NotFoundError", "NOT_FOUND", "memberId"),
        (f"mutation($t: ID!, $as: ID) {{ r: unfollowMember(memberId: $t, asMemberId: $as) {{ {errors} }} }}",
         {"t": theirs["a"], "as": mine["id"]}, "NotFoundError", "NOT_FOUND", "memberId"),
        (f"mutation($c: ID!, $as: ID) {{ r: joinCommunity(communityId: $c, asMemberId: $as) {{ {errors} }} }}",
         {"c": theirs["c"], "as": mine["id"]}, "NotFoundError", "NOT_FOUND", "communityId"),
        (f"mutation($c: ID!, $as: ID) {{ r: joinCommunity(communityId: $c, asMemberId: $as) {{ {errors} }} }}",
         {"c": theirs["c"], "as": theirs["b"]}, "NotFoundError", "NOT_FOUND", "memberId"),
        (f"mutation($c: ID!, $as: ID) {{ r: leaveCommunity(communityId: $c, asMemberId: $as) {{ {errors} }} }}",
         {"c": theirs["c"], "as": theirs["a"]}, "NotFoundError", "NOT_FOUND", "memberId"),
        (f"mutation($m: ID!, $c: ID!) {{ r: setMemberRole(memberId: $m, communityId: $c, role: OWNER) {{ {errors} }} }}",
         {"m": theirs["a"], "c": theirs["c"]}, "NotFoundError", "NOT_FOUND", "memberId"),
        (f"mutation($i: CreateContentInput!, $as: ID) {{ r: createContent(input: $i, asMemberId: $as) {{ {errors} }} }}",
         {"i": {"communityId": theirs["c"], "body": "spam"}, "as": mine["id"]}, "NotFoundError", "NOT_FOUND",
         "input.communityId"),
        (f"mutation($i: CreateContentInput!, $as: ID) {{ r: createContent(input: $i, asMemberId: $as) {{ {errors} }} }}",
         {"i": {"communityId": theirs["c"], "body": "spam"}, "as": theirs["a"]}, "NotFoundError", "NOT_FOUND",
         "asMemberId"),
        (f"mutation($i: AddCommentInput!, $as: ID) {{ r: addComment(input: $i, asMemberId: $as) {{ {errors} }} }}",
         {"i": {"contentId": theirs["content"], "body": "spam"}, "as": mine["id"]}, "NotFoundError", "NOT_FOUND",
         "input.contentId"),
        (f"mutation($c: ID!, $as: ID) {{ r: likeContent(contentId: $c, asMemberId: $as) {{ {errors} }} }}",
         {"c": theirs["content"], "as": mine["id"]}, "NotFoundError", "NOT_FOUND", "contentId"),
        (f"mutation($c: ID!, $as: ID) {{ r: unlikeContent(contentId: $c, asMemberId: $as) {{ {errors} }} }}",
         {"c": theirs["content"], "as": mine["id"]}, "NotFoundError", "NOT_FOUND", "contentId"),
        (f"mutation($c: ID!, $as: ID) {{ r: shareContent(contentId: $c, asMemberId: $as) {{ {errors} }} }}",
         {"c": theirs["content"], "as": mine["id"]}, "NotFoundError", "NOT_FOUND", "contentId"),
        (f"mutation($c: ID!, $as: ID) {{ r: favoriteContent(contentId: $c, asMemberId: $as) {{ {errors} }} }}",
         {"c": theirs["content"], "as": theirs["a"]}, "NotFoundError", "NOT_FOUND", "asMemberId"),
        (f"mutation($i: RecordPurchaseInput!) {{ r: recordPurchase(input: $i) {{ {errors} }} }}",
         {"i": {"memberId": theirs["a"], "lines": [{"productId": theirs["product"], "quantity": 1}],
                "idempotencyKey": "iso-key-2"}}, "NotFoundError", "NOT_FOUND", "input.memberId"),
        (f"mutation($i: RecordPurchaseInput!) {{ r: recordPurchase(input: $i) {{ {errors} }} }}",
         {"i": {"memberId": mine["id"], "lines": [{"productId": theirs["product"], "quantity": 1}],
                "idempotencyKey": "iso-key-1"}}, "NotFoundError", "NOT_FOUND", "input.lines[0].productId"),
        (f"mutation($i: RegisterMemberInput!) {{ r: registerMember(input: $i) {{ {errors} }} }}",
         {"i": {"displayName": "Sybil", "inviterId": theirs["a"]}}, "NotFoundError", "NOT_FOUND", "input.inviterId"),
        (f"mutation($i: RegisterMemberInput!) {{ r: registerMember(input: $i) {{ {errors} }} }}",
         {"i": {"displayName": "Sybil", "inviteCode": theirs["inviteCode"]}}, "ReferralError", "INVALID_INVITE_CODE",
         "input.inviteCode"),
        (f"mutation($i: CreateCommunityInput!) {{ r: createCommunity(input: $i) {{ {errors} }} }}",
         {"i": {"name": "Hijack", "ownerId": theirs["a"]}}, "NotFoundError", "NOT_FOUND", "input.ownerId"),
    ]
    for query, variables, typename, code, field in cases:
        data = await api.ok(query, variables, token=other)
        assert data["r"] == {"__typename": typename, "code": code, "field": field}, (query, variables)
    assert await snapshot(graph, tenant) == before
    rows = await graph.read("MATCH (n {tenantId: $tenant}) WHERE NOT n:Event RETURN n.id AS id", tenant=other_tenant)
    assert [r["id"] for r in rows] == [mine["id"]]


async def test_a_member_of_another_tenant_cannot_read_purchases_here(api, theirs):
    other = api.token("member", member=theirs["a"], tenant="ten_other" + api.tenant[4:])
    data = await api.ok("query($id: ID!) { purchase(id: $id) { id } }", {"id": theirs["purchase"]}, token=other)
    assert data == {"purchase": None}


# --- node(id) --------------------------------------------------------------------------------

NODE = """
query($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Member { displayName }
    ... on Community { name }
    ... on Content { title }
    ... on Product { sku }
    ... on Purchase { total { amount } }
    ... on Comment { body }
    ... on Tag { name }
  }
}
"""


async def test_node_resolves_every_kind(api, operator_token, theirs):
    expected = {
        "a": ("Member", "displayName", "Alice"),
        "c": ("Community", "name", "Private club"),
        "content": ("Content", "title", "secret post"),
        "product": ("Product", "sku", "P-1"),
        "purchase": ("Purchase", "total", {"amount": 100}),
        "comment": ("Comment", "body", "hi"),
        "tag": ("Tag", "name", "hidden"),
    }
    for key, (typename, field, value) in expected.items():
        data = await api.ok(NODE, {"id": theirs[key]}, token=operator_token)
        assert data["node"] == {"__typename": typename, "id": theirs[key], field: value}, key


@pytest.mark.parametrize("id_", ["mem_missing0000000", "com_missing0000000", "cnt_missing0000000",
                                 "prd_missing0000000", "pur_missing0000000", "cmt_missing0000000", "tag_missing000000"])
async def test_node_of_an_unknown_id_is_null(api, operator_token, id_):
    assert await api.ok(NODE, {"id": id_}, token=operator_token) == {"node": None}


@pytest.mark.parametrize("id_", ["abc", "", "xyz_123", "mem_", "mem_has space", "ten_abc"])
async def test_node_of_a_malformed_id_is_a_validation_error(api, operator_token, id_):
    body = await api(NODE, {"id": id_}, token=operator_token)
    assert body["data"] == {"node": None}
    assert [e["extensions"] for e in body["errors"]] == [{"code": "VALIDATION_FAILED", "field": "id"}]


async def test_a_members_purchase_is_not_a_node_for_another_member(api, operator_token, theirs):
    as_bob = api.token("member", member=theirs["b"])
    assert await api.ok(NODE, {"id": theirs["purchase"]}, token=as_bob) == {"node": None}
    as_alice = api.token("member", member=theirs["a"])
    assert (await api.ok(NODE, {"id": theirs["purchase"]}, token=as_alice))["node"]["__typename"] == "Purchase"
