"""Session fixtures: one real embedded graph server and one real redis-server for the run.

Tests are isolated by tenant: every test gets a fresh tenant id, and every query the
application sends is scoped to the caller's tenant, so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from api.app import create_app
from api.auth import issue_token
from api.settings import Settings
from graph.client import GraphClient
from graph.embedded import EmbeddedStack
from graph.migrations import migrate

PASSWORD = "quanzi-test-password"
#: every GraphClient the session opened: their `executed` sets show which statements ran
CLIENTS: list[GraphClient] = []
JWT_SECRET = "test-secret-" + "x" * 40


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    s = EmbeddedStack(tmp_path_factory.mktemp("stack"), PASSWORD, persistent=False)
    s.start()
    try:
        yield s
    finally:
        s.stop()


@contextlib.asynccontextmanager
async def graph_client(uri: str) -> AsyncIterator[GraphClient]:
    """A migrated client of the graph server at *uri*, counted for the statement-coverage check."""
    client = GraphClient.connect(uri, user="root", password=PASSWORD, database="quanzi")
    await migrate(client)
    CLIENTS.append(client)
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def running_app(settings: Settings, graph_uri: str, redis_url: str) -> AsyncIterator[Starlette]:
    """The app on the given servers with its lifespan entered; its graph client is counted too."""
    application = create_app(settings, graph_uri=graph_uri, redis_url=redis_url, graph_user="root",
                             graph_password=PASSWORD, graph_database="quanzi")
    async with application.router.lifespan_context(application):
        CLIENTS.append(application.state.resources.graph)
        yield application


@pytest_asyncio.fixture(scope="session")
async def graph(stack: EmbeddedStack) -> AsyncIterator[GraphClient]:
    assert stack.graph is not None
    async with graph_client(stack.graph.uri) as client:
        yield client


@pytest.fixture
def tenant() -> str:
    return "ten_" + uuid.uuid4().hex[:16]


@pytest.fixture(scope="session")
def settings() -> Settings:
    # background jobs off: tests drive the relay (flush after mutations) and recomputes themselves
    # short websocket limits keep the protocol tests fast (defaults: 3 s, 20 subscriptions)
    # rate limiting off: every test request comes from one IP; tests/test_rate_limits.py runs its own app
    # webhooks may target the tests' local receivers (tests/test_webhooks.py checks the refusal)
    return Settings(env="test", jwt_secret=JWT_SECRET, demo_members=0, relay_interval=3600,  # type: ignore[arg-type]
                    scheduler_interval=0, ws_init_timeout_seconds=1.0, ws_max_subscriptions=3,
                    ws_ping_seconds=0.3, rate_limit=False, webhook_allow_private=True)


@pytest_asyncio.fixture(scope="session")
async def app(stack: EmbeddedStack, graph: GraphClient, settings: Settings) -> AsyncIterator[Starlette]:
    assert stack.graph is not None and stack.redis is not None
    async with running_app(settings, stack.graph.uri, stack.redis.url) as application:
        yield application


@contextlib.asynccontextmanager
async def own_app(stack: EmbeddedStack, settings: Settings, *, redis_url: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the session's servers with its own *settings* (or another Redis), as an HTTP client."""
    assert stack.graph is not None and stack.redis is not None
    async with running_app(settings, stack.graph.uri, redis_url or stack.redis.url) as application:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://quanzi.test") as client:
            yield client


@pytest_asyncio.fixture(scope="session")
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://quanzi.test") as client:
        yield client


@pytest.fixture
def app_graph(app: Starlette) -> GraphClient:
    """The app's own graph client (its round-trip counter sees what requests send)."""
    return app.state.resources.graph  # type: ignore[no-any-return]


class Api:
    """Send GraphQL over HTTP as a given principal."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings, tenant: str) -> None:
        self.http = http
        self.settings = settings
        self.tenant = tenant

    def token(self, *roles: str, member: str | None = None, scopes: tuple[str, ...] = (), tenant: str | None = None) -> str:
        return issue_token(self.settings, tenant=tenant or self.tenant, roles=roles or ("member",), member_id=member,
                           scopes=scopes)

    async def raw(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)

    async def __call__(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None) -> dict[str, Any]:
        response = await self.raw(query, variables, token=token)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def ok(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None) -> dict[str, Any]:
        body = await self(query, variables, token=token)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture
def api(http: httpx.AsyncClient, settings: Settings, tenant: str) -> Api:
    return Api(http, settings, tenant)


@pytest.fixture
def operator_token(api: Api) -> str:
    return api.token("operator")


ROOT = Path(__file__).resolve().parent.parent


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On a full run, every registered Cypher statement must have run on the embedded server."""
    from graph.cypher import all_statements

    full_run = not session.config.option.file_or_dir and not session.config.option.keyword \
        and not session.config.option.markexpr
    if not full_run or exitstatus != 0 or not CLIENTS:
        return
    executed = set().union(*(c.executed for c in CLIENTS))
    missing = [st for st in all_statements() if st.text not in executed]
    if missing:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = [f"{len(missing)} registered Cypher statement(s) never ran on the embedded server:"]
        lines += [f"  {st.module}: {' '.join(st.text.split())[:110]}" for st in missing]
        if reporter is not None:
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest_asyncio.fixture(scope="session")
async def redis_client(stack: EmbeddedStack) -> AsyncIterator[Any]:
    """A real asyncio Redis client on the session's redis-server."""
    import redis.asyncio as aioredis

    assert stack.redis is not None
    client = aioredis.Redis.from_url(stack.redis.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture(scope="session")
async def ws_url(app: Starlette) -> AsyncIterator[str]:
    """The app served by a real uvicorn on a free port (websockets need a socket), same event loop."""
    import asyncio

    import uvicorn

    from graph.embedded import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                                           ws="websockets-sansio"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        server.force_exit = True  # do not wait for websockets a failed test left open
        await task
