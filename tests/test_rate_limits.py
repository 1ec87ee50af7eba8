"""Rate limits: token buckets of cost points in Redis, per principal and per IP, failing open."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx
import pytest

from api.auth import issue_token
from api.settings import Settings
from graph.embedded import EmbeddedStack
from tests.conftest import JWT_SECRET, own_app
from tests.helpers import dead_redis

#: 1 + 19 × 2 = 39 points
PAGE = "{ members(first: 19) { edges { node { id } } } }"
REGISTER = 'mutation($n: String!) { registerMember(input: {displayName: $n}) { __typename } }'
#: 1 + 5 × 2 = 11 points
NAMES = "{ members(first: 5) { edges { node { displayName } } } }"


def limited(**overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        env="test", jwt_secret=JWT_SECRET, demo_members=0, relay_interval=3600, scheduler_interval=0,
        max_query_cost=100, rate_limit_principal_burst=100, rate_limit_principal_per_second=10.0,
        rate_limit_ip_burst=100_000, rate_limit_ip_per_second=10_000.0,
    )
    values.update(overrides)
    return Settings(**values)


async def post(client: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
    return await client.post("/graphql", json={"query": query, "variables": variables or {}},
                             headers={"Authorization": f"Bearer {token}"})


def code(response: httpx.Response) -> str | None:
    errors = response.json().get("errors")
    return errors[0]["extensions"]["code"] if errors else None


async def test_a_principal_is_limited_by_cost_and_told_when_to_retry(stack: EmbeddedStack) -> None:
    settings = limited()
    tenant = f"ten_{uuid.uuid4().hex[:10]}"
    alice = issue_token(settings, tenant=tenant, roles=["operator"], member_id="mem_alice")
    bob = issue_token(settings, tenant=tenant, roles=["operator"], member_id="mem_bob")
    async with own_app(stack, settings) as client:
        first, second = await post(client, alice, PAGE), await post(client, alice, PAGE)
        assert (first.status_code, second.status_code) == (200, 200) and code(first) is None
        third = await post(client, alice, PAGE)  # 100 - 78 (+ a little refill) < 39
        assert third.status_code == 429
        assert code(third) == "RATE_LIMITED"
        wait = third.json()["errors"][0]["extensions"]["retryAfter"]
        assert 0 < wait <= 4.0
        assert int(third.headers["Retry-After"]) >= 1
        # another principal has its own bucket
        assert code(await post(client, bob, PAGE)) is None
        await asyncio.sleep(wait + 0.05)
        assert code(await post(client, alice, PAGE)) is None


async def test_a_refused_mutation_changes_nothing(stack: EmbeddedStack) -> None:
    settings = limited(mutation_cost=60)
    tenant = f"ten_{uuid.uuid4().hex[:10]}"
    token = issue_token(settings, tenant=tenant, roles=["operator"], member_id="mem_op")
    async with own_app(stack, settings) as client:
        assert code(await post(client, token, REGISTER, {"n": "first-write"})) is None  # 60 + 1 of 100
        refused = await post(client, token, REGISTER, {"n": "second-write"})
        assert refused.status_code == 429 and code(refused) == "RATE_LIMITED"
        names = (await post(client, token, NAMES)).json()["data"]["members"]["edges"]
        assert [n["node"]["displayName"] for n in names] == ["first-write"]


async def test_the_ip_bucket_covers_every_principal_and_every_process(stack: EmbeddedStack, redis_client: Any) -> None:
    settings = limited(rate_limit_principal_burst=100_000, rate_limit_principal_per_second=10_000.0,
                       rate_limit_ip_burst=100, rate_limit_ip_per_second=1.0)
    tenant = f"ten_{uuid.uuid4().hex[:10]}"
    tokens = [issue_token(settings, tenant=tenant, roles=["operator"], member_id=f"mem_{i}") for i in range(3)]
    # two apps on one Redis stand for two API processes behind one load balancer
    async with own_app(stack, settings) as one, own_app(stack, settings) as two:
        await redis_client.delete("q:rl:ip:127.0.0.1")  # other tests' requests came from this IP too
        assert code(await post(one, tokens[0], PAGE)) is None
        assert code(await post(two, tokens[1], PAGE)) is None
        assert code(await post(two, tokens[2], PAGE)) == "RATE_LIMITED"
        assert code(await post(one, tokens[2], PAGE)) == "RATE_LIMITED"


async def test_redis_down_fails_open_with_a_warning(stack: EmbeddedStack, caplog: pytest.LogCaptureFixture) -> None:
    settings = limited()
    token = issue_token(settings, tenant=f"ten_{uuid.uuid4().hex[:10]}", roles=["operator"], member_id="mem_x")
    down = dead_redis()
    url = f"redis://127.0.0.1:{down.connection_pool.connection_kwargs['port']}/0"
    await down.aclose()
    caplog.set_level(logging.WARNING, logger="quanzi.ratelimit")
    async with own_app(stack, settings, redis_url=url) as client:
        responses = [await post(client, token, PAGE) for _ in range(5)]  # 195 points: over the burst
    assert [r.status_code for r in responses] == [200] * 5
    assert all(code(r) is None for r in responses)
    warnings = [r for r in caplog.records if r.name == "quanzi.ratelimit"]
    assert len(warnings) == 1 and "admitting requests unlimited" in warnings[0].getMessage()


def test_bursts_must_fit_the_most_expensive_query() -> None:
    from domain.errors import StartupError

    with pytest.raises(StartupError, match="QUANZI_MAX_QUERY_COST"):
        limited(max_query_cost=10_000).check()
    limited(rate_limit=False, max_query_cost=10_000).check()
