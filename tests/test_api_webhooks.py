"""Webhooks over GraphQL: register, receive signed deliveries from the running app, read the log."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from domain.webhooks import verify
from tests.helpers import community, join, register
from tests.test_webhooks import Receiver, receiver  # noqa: F401  (session fixture)

REGISTER = """
mutation($url: String!, $types: [EventType!]!) {
  registerWebhook(input: {url: $url, eventTypes: $types}) {
    __typename
    ... on RegisterWebhookPayload { secret webhook { id url eventTypes active } }
    ... on UserError { code field }
  }
}
"""
LOG = """
query($id: ID!) { webhookDeliveries(webhookId: $id) { eventType attempt statusCode delivered nextAttemptAt } }
"""


async def test_a_registered_webhook_receives_signed_events_and_logs_them(
    api: Any, operator_token: str, receiver: Receiver  # noqa: F811
) -> None:
    integrator = api.token("integrator")
    data = (await api.ok(REGISTER, {"url": receiver.url(api.tenant), "types": ["MEMBER_JOINED"]},
                         token=integrator))["registerWebhook"]
    assert data["__typename"] == "RegisterWebhookPayload" and data["webhook"]["eventTypes"] == ["MEMBER_JOINED"]

    com = await community(api, operator_token, "Hooked")
    member = await register(api, operator_token, "Hooked member")  # MEMBER_REGISTERED: not subscribed
    await join(api, operator_token, com, member["id"])
    for _ in range(100):
        if receiver.requests[api.tenant]:
            break
        await asyncio.sleep(0.1)

    [got] = receiver.requests[api.tenant]
    body = json.loads(got.body)
    assert body["type"] == "MEMBER_JOINED" and body["tenantId"] == api.tenant
    assert body["data"] == {"communityId": com, "memberId": member["id"]}
    assert verify(data["secret"], got.headers["quanzi-signature"], got.body)
    await asyncio.sleep(0.3)
    log = (await api.ok(LOG, {"id": data["webhook"]["id"]}, token=integrator))["webhookDeliveries"]
    assert log == [{"eventType": "MEMBER_JOINED", "attempt": 1, "statusCode": 200, "delivered": True,
                    "nextAttemptAt": None}]


async def test_bad_urls_and_roles_are_refused(api: Any) -> None:
    bad = await api.ok(REGISTER, {"url": "ftp://example.com/x", "types": ["MEMBER_JOINED"]},
                       token=api.token("integrator"))
    member = await api.ok(REGISTER, {"url": "https://example.com/x", "types": ["MEMBER_JOINED"]},
                          token=api.token("member", member="mem_x"))
    other = await api("query { webhookDeliveries(webhookId: \"whk_nothing\") { attempt } }", token=api.token("admin"))

    assert bad["registerWebhook"] == {"__typename": "ValidationError", "code": "VALIDATION_FAILED", "field": "input.url"}
    assert member["registerWebhook"]["code"] == "FORBIDDEN"
    assert other["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_outside_development_private_targets_are_refused(stack: Any) -> None:
    from api.auth import issue_token
    from api.settings import Settings
    from tests.conftest import JWT_SECRET, own_app

    settings = Settings(env="test", jwt_secret=JWT_SECRET, demo_members=0, relay_interval=3600,  # type: ignore[arg-type]
                        scheduler_interval=0)
    assert settings.webhook_allow_private is False  # the default
    token = issue_token(settings, tenant="ten_ssrf", roles=["integrator"])
    async with own_app(stack, settings) as client:
        response = await client.post("/graphql", json={"query": REGISTER, "variables": {
            "url": "http://169.254.169.254/latest/meta-data", "types": ["MEMBER_JOINED"]}},
            headers={"Authorization": f"Bearer {token}"})
    assert response.json()["data"]["registerWebhook"] == {
        "__typename": "ValidationError", "code": "VALIDATION_FAILED", "field": "input.url"}
