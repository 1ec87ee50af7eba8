"""Real `quanzi serve` processes: events cross processes, and survive Redis being down at write time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from api.auth import issue_token
from api.settings import Settings
from graph.embedded import EmbeddedRedis, EmbeddedStack, free_port
from tests.conftest import JWT_SECRET, PASSWORD, ROOT

pytestmark = pytest.mark.slow

SETTINGS = Settings(env="test", jwt_secret=JWT_SECRET)  # type: ignore[arg-type]
JOINED = "subscription($c: ID!) { memberJoined(communityId: $c) { cursor member { id } } }"


@contextlib.contextmanager
def serve(stack: EmbeddedStack, redis_url: str) -> Iterator[str]:
    assert stack.graph is not None
    port = free_port()
    env = dict(os.environ, QUANZI_ENV="test", QUANZI_JWT_SECRET=JWT_SECRET, QUANZI_NEO4J_URI=stack.graph.uri,
               QUANZI_NEO4J_USER="root", QUANZI_NEO4J_PASSWORD=PASSWORD, QUANZI_NEO4J_DATABASE="quanzi",
               QUANZI_REDIS_URL=redis_url, QUANZI_PORT=str(port), QUANZI_DEMO_MEMBERS="0",
               QUANZI_SCHEDULER_INTERVAL="0", QUANZI_RELAY_INTERVAL="0.5")
    log = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would block the server
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                raise AssertionError(log.read().decode(errors="replace")[-2000:])
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def gql(base: str, token: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = httpx.post(base + "/graphql", json={"query": query, "variables": variables or {}},
                      headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


def setup_community(base: str, token: str, members: int) -> tuple[str, list[str]]:
    com = gql(base, token, 'mutation { createCommunity(input: {name: "Cross"}) { ... on CommunityPayload { community { id } } } }')
    ids = [gql(base, token, 'mutation($n: String!) { registerMember(input: {displayName: $n}) { ... on MemberPayload { member { id } } } }',
               {"n": f"P{i}"})["registerMember"]["member"]["id"] for i in range(members)]
    return com["createCommunity"]["community"]["id"], ids


JOIN = "mutation($c: ID!, $m: ID) { joinCommunity(communityId: $c, asMemberId: $m) { __typename } }"


async def subscribe(ws_base: str, token: str, community: str) -> Any:
    ws = await websockets.connect(ws_base.replace("http", "ws") + "/graphql", subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": JOINED, "variables": {"c": community}}}))
    await asyncio.sleep(0.5)
    return ws


async def received(ws: Any, n: int, timeout: float = 15) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message["type"] == "next":
            out.append(message["payload"]["data"]["memberJoined"]["member"]["id"])
    return out


async def test_write_through_one_process_and_receive_through_another(stack: EmbeddedStack, tenant: str) -> None:
    assert stack.redis is not None
    token = issue_token(SETTINGS, tenant=tenant, roles=["operator"])
    with serve(stack, stack.redis.url) as writer, serve(stack, stack.redis.url) as reader:
        com, members = setup_community(writer, token, 3)
        ws = await subscribe(reader, token, com)
        for m in members:
            gql(writer, token, JOIN, {"c": com, "m": m})

        assert await received(ws, 3) == members
        await ws.close()


async def test_events_written_while_redis_is_down_arrive_when_it_returns(
    stack: EmbeddedStack, tenant: str, tmp_path: Path
) -> None:
    redis = EmbeddedRedis(tmp_path / "redis", persistent=False)
    redis.start()
    token = issue_token(SETTINGS, tenant=tenant, roles=["operator"])
    try:
        with serve(stack, redis.url) as base:
            com, members = setup_community(base, token, 3)
            ws = await subscribe(base, token, com)
            port = redis.port
            redis.stop()

            for m in members:  # acknowledged while Redis is down
                gql(base, token, JOIN, {"c": com, "m": m})

            redis = EmbeddedRedis(tmp_path / "redis", port=port, persistent=False)
            redis.start()
            assert await received(ws, 3, timeout=30) == members
            await ws.close()
    finally:
        redis.stop()
