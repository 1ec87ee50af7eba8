"""Health and telemetry: Prometheus metrics, request ids and JSON logs, through the real app.

A second app (own metrics registry, own graph client) with a metrics token runs beside the
session app on the same graph server and Redis, so its counters move only with what these
tests send; every operation name here is unique to one test, so each delta is exact.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.app import create_app
from api.settings import Settings
from api.telemetry import BUCKETS, Telemetry, log_handler
from domain.growth import Scope
from domain.influence import RankingKind
from graph.client import GraphClient
from graph.embedded import EmbeddedStack
from graph.growth import GrowthService, rebuild_referrals, recompute_kol
from graph.kol import KolStore
from graph.referral_stats import ReferralStatsStore
from graph.referrals import GraphReferrals
from tests.conftest import PASSWORD, ROOT, Api
from tests.helpers import dead_redis, follow, register

METRICS_TOKEN = "metrics-" + "m" * 32
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest_asyncio.fixture(scope="module")
async def metered(stack: EmbeddedStack, graph: GraphClient, settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    assert stack.graph is not None and stack.redis is not None
    own = settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)})
    application = create_app(own, graph_uri=stack.graph.uri, redis_url=stack.redis.url, graph_user="root",
                             graph_password=PASSWORD, graph_database="quanzi")
    transport = httpx.ASGITransport(app=application)
    async with application.router.lifespan_context(application), \
            httpx.AsyncClient(transport=transport, base_url="http://quanzi.test") as client:
        yield application, client


@pytest.fixture
def mapi(metered: tuple[Starlette, httpx.AsyncClient], settings: Settings, tenant: str) -> Api:
    return Api(metered[1], settings, tenant)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


# --- metrics ----------------------------------------------------------------------------------


async def test_operations_latency_and_errors_are_counted_by_name_type_and_final_code(
    metered: tuple[Starlette, httpx.AsyncClient], mapi: Api, operator_token: str,
) -> None:
    _, client = metered
    member_token = mapi.token("member")
    before = await scrape(client)

    for _ in range(2):
        await mapi.ok("query TelViewer { viewer { tenantId } }", token=operator_token)
    forbidden = await mapi("query TelForbidden { members(first: 1) { totalCount } }", token=member_token)
    broken = await mapi("query TelBroken { noSuchField }", token=operator_token)
    await mapi.ok('mutation TelRegister { registerMember(input: {displayName: "T"}) { __typename } }', token=operator_token)
    await mapi.ok("{ viewer { tenantId } }", token=operator_token)
    after = await scrape(client)

    assert [e["extensions"]["code"] for e in forbidden["errors"]] == ["FORBIDDEN"]
    assert [e["extensions"]["code"] for e in broken["errors"]] == ["GRAPHQL_VALIDATION_FAILED"]
    ops = "quanzi_graphql_operations_total"
    assert delta(before, after, ops, operation="TelViewer", type="query", outcome="ok") == 2
    assert delta(before, after, ops, operation="TelForbidden", type="query", outcome="error") == 1
    assert delta(before, after, ops, operation="TelBroken", type="query", outcome="error") == 1
    assert delta(before, after, ops, operation="TelRegister", type="mutation", outcome="ok") == 1
    assert delta(before, after, ops, operation="anonymous", type="query", outcome="ok") == 1
    errors = "quanzi_graphql_errors_total"
    # the codes ErrorPolicy set: an extension that ran inside it would have seen none ("UNKNOWN")
    assert delta(before, after, errors, operation="TelForbidden", type="query", code="FORBIDDEN") == 1
    assert delta(before, after, errors, operation="TelBroken", type="query", code="GRAPHQL_VALIDATION_FAILED") == 1
    assert delta(before, after, errors, operation="TelViewer", type="query", code="FORBIDDEN") == 0
    assert not [k for k in after if k[0] == errors and ("code", "UNKNOWN") in k[1]]

    hist = "quanzi_graphql_operation_duration_seconds"
    viewer = {"operation": "TelViewer", "type": "query"}
    assert delta(before, after, hist + "_count", **viewer) == 2
    assert 0 < delta(before, after, hist + "_sum", **viewer) < 20
    les = sorted(float(dict(k[1])["le"]) for k in after if k[0] == hist + "_bucket" and ("operation", "TelViewer") in k[1])
    assert les == [*BUCKETS, float("inf")]
    assert delta(before, after, hist + "_bucket", le="10.0", **viewer) == 2
    assert delta(before, after, hist + "_count", operation="TelRegister", type="mutation") == 1

    http = "quanzi_http_requests_total"
    assert delta(before, after, http, route="/graphql", method="POST", status="200") == 6
    assert delta(before, after, http, route="/metrics", method="GET", status="200") == 1  # the first scrape
    assert delta(before, after, "quanzi_http_request_duration_seconds_count", route="/graphql") == 6


async def test_unknown_paths_share_one_label_and_health_is_counted(metered: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = metered
    before = await scrape(client)
    assert (await client.get("/no/such/path/tel-1")).status_code == 404
    assert (await client.get("/no/such/path/tel-2")).status_code == 404
    assert (await client.get("/healthz")).status_code == 200
    after = await scrape(client)

    http = "quanzi_http_requests_total"
    assert delta(before, after, http, route="other", method="GET", status="404") == 2
    assert delta(before, after, http, route="/healthz", method="GET", status="200") == 1
    assert not [k for k in after if k[0] == http and ("route", "/no/such/path/tel-1") in k[1]]


async def test_bolt_round_trips_are_the_graph_clients_counter(
    metered: tuple[Starlette, httpx.AsyncClient], mapi: Api, operator_token: str,
) -> None:
    app, client = metered
    graph: GraphClient = app.state.resources.graph
    first = await scrape(client)
    assert value(first, "quanzi_bolt_round_trips_total") == graph.round_trips

    await mapi.ok("query TelRoundTrips { members(first: 3) { totalCount nodes { id } } }", token=operator_token)
    second = await scrape(client)

    sent = graph.round_trips - value(first, "quanzi_bolt_round_trips_total")
    assert sent >= 1
    assert value(second, "quanzi_bolt_round_trips_total") == graph.round_trips


async def test_referral_stats_miss_until_aggregates_are_built_then_hit(
    metered: tuple[Starlette, httpx.AsyncClient], mapi: Api, operator_token: str, tenant: str,
) -> None:
    app, client = metered
    resources = app.state.resources
    root = await register(mapi, operator_token, "Root")
    await register(mapi, operator_token, "Invitee", inviteCode=root["inviteCode"])
    stats = "query TelStats($id: ID!) { referralStats(memberId: $id) { directInvites teamSize } }"
    cache = "quanzi_cache_requests_total"

    before = await scrape(client)
    unbuilt = await mapi.ok(stats, {"id": root["id"]}, token=operator_token)  # not built: the graph answers
    middle = await scrape(client)
    await rebuild_referrals(resources.graph, resources.redis, tenant)
    built = await mapi.ok(stats, {"id": root["id"]}, token=operator_token)
    await mapi.ok(stats, {"id": root["id"]}, token=operator_token)
    after = await scrape(client)

    assert unbuilt == built == {"referralStats": {"directInvites": 1, "teamSize": 1}}
    assert delta(before, middle, cache, cache="referral_stats", result="miss") == 1
    assert delta(before, middle, cache, cache="referral_stats", result="hit") == 0
    assert delta(middle, after, cache, cache="referral_stats", result="hit") == 2
    assert delta(middle, after, cache, cache="referral_stats", result="miss") == 0


async def test_kol_ranking_hits_redis_and_misses_to_the_graph_when_redis_is_down(
    metered: tuple[Starlette, httpx.AsyncClient], mapi: Api, operator_token: str, tenant: str,
) -> None:
    app, client = metered
    resources = app.state.resources
    star = await register(mapi, operator_token, "Star")
    for i in range(3):
        fan = await register(mapi, operator_token, f"Fan {i}")
        await follow(mapi, operator_token, fan["id"], star["id"])
    await recompute_kol(resources.graph, resources.redis, tenant, Scope())
    cache = "quanzi_cache_requests_total"

    before = await scrape(client)
    data = await mapi.ok("query TelKol { kolRanking(first: 1) { nodes { member { id } } } }", token=operator_token)
    middle = await scrape(client)
    down = dead_redis()
    try:
        service = GrowthService(resources.graph, down, KolStore(down), ReferralStatsStore(down), GraphReferrals(resources.graph))
        page = await service.kol_page(tenant, Scope(), RankingKind.KOL, 0, 1)
    finally:
        await down.aclose()
    after = await scrape(client)

    assert data["kolRanking"]["nodes"] == [{"member": {"id": star["id"]}}]
    assert page is not None and [m.member_id for m in page.items] == [star["id"]]
    assert delta(before, middle, cache, cache="kol_ranking", result="hit") == 1
    assert delta(before, middle, cache, cache="kol_ranking", result="miss") == 0
    assert delta(middle, after, cache, cache="kol_ranking", result="miss") == 1
    assert delta(middle, after, cache, cache="kol_ranking", result="hit") == 0


async def test_recommendations_miss_once_then_hit_the_cache(
    metered: tuple[Starlette, httpx.AsyncClient], mapi: Api, operator_token: str,
) -> None:
    _, client = metered
    me, friend, fof = [(await register(mapi, operator_token, n))["id"] for n in ("Me", "Friend", "FoF")]
    await follow(mapi, operator_token, me, friend)
    await follow(mapi, operator_token, friend, fof)
    recs = "query TelRecs($id: ID!) { member(id: $id) { recommendedMembers(first: 5) { member { id } } } }"
    cache = "quanzi_cache_requests_total"

    before = await scrape(client)
    first = await mapi.ok(recs, {"id": me}, token=operator_token)
    second = await mapi.ok(recs, {"id": me}, token=operator_token)
    after = await scrape(client)

    assert first == second and first["member"]["recommendedMembers"] == [{"member": {"id": fof}}]
    assert delta(before, after, cache, cache="recommendations_member", result="miss") == 1
    assert delta(before, after, cache, cache="recommendations_member", result="hit") == 1


async def test_metrics_need_the_token_outside_development(
    metered: tuple[Starlette, httpx.AsyncClient], http: httpx.AsyncClient,
) -> None:
    _, client = metered
    missing = await client.get("/metrics")
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40})
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "quanzi_" not in missing.text + wrong.text
    # the session app (QUANZI_ENV=test) has no metrics token: closed
    closed = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert closed.status_code == 403 and "QUANZI_METRICS_TOKEN" in closed.text


async def test_metrics_are_open_in_development() -> None:
    app = Starlette()
    Telemetry(Settings(env="development")).install(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dev.test") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert {"quanzi_http_requests", "quanzi_graphql_operations", "quanzi_graphql_errors", "quanzi_bolt_round_trips",
            "quanzi_cache_requests", "quanzi_graphql_operation_duration_seconds", "process_cpu_seconds"} <= names
    readme = (ROOT / "README.md").read_text("utf-8")
    documented = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in re.findall(r"quanzi_\w+", readme)}
    assert documented and documented <= names


def test_operation_names_are_bounded() -> None:
    telemetry = Telemetry(Settings(env="development"), max_operation_names=2)
    assert telemetry.operation_label(None, known=True) == "anonymous"
    assert telemetry.operation_label("A", known=True) == "A"
    assert telemetry.operation_label("Not a name!", known=True) == "invalid"
    assert telemetry.operation_label("Unparsed", known=False) == "other"  # no such operation in the document
    assert telemetry.operation_label("B", known=True) == "B"
    assert telemetry.operation_label("C", known=True) == "other"
    assert telemetry.operation_label("A", known=False) == "A"


# --- request ids ------------------------------------------------------------------------------


async def test_x_request_id_is_echoed_or_made_on_every_response(http: httpx.AsyncClient, api: Api) -> None:
    echoed = await http.post("/graphql", json={"query": "{ viewer { tenantId } }"},
                             headers={"X-Request-Id": "client-req.42", "Authorization": f"Bearer {api.token('member')}"})
    made = await http.get("/healthz")
    hostile = await http.get("/readyz", headers={"X-Request-Id": "a b\tc" + "x" * 80})
    refused = await http.post("/graphql", json={"query": "{ viewer { tenantId } }"},
                              headers={"X-Request-Id": "client-req.43", "Authorization": "Bearer not-a-token"})
    missing = await http.get("/nowhere", headers={"X-Request-Id": "client-req.44"})

    assert echoed.status_code == 200 and echoed.headers["x-request-id"] == "client-req.42"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])
    assert refused.status_code == 401 and refused.headers.get_list("x-request-id") == ["client-req.43"]
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "client-req.44"


# --- logs -------------------------------------------------------------------------------------


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """JSON log lines of every logger, as the server writes them (INFO and up)."""
    stream = io.StringIO()
    handler = log_handler("json", stream)
    root = logging.getLogger()
    access = logging.getLogger("quanzi.access")
    old_level = access.level
    access.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        access.setLevel(old_level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_each_graphql_request_writes_one_json_access_line_with_its_request_id(
    json_lines: io.StringIO, http: httpx.AsyncClient, api: Api,
) -> None:
    member = api.token("member")
    await http.post("/graphql", json={"query": "query TelLogged { viewer { tenantId } }"},
                    headers={"X-Request-Id": "tel-log-1", "Authorization": f"Bearer {member}"})
    await http.post("/graphql", json={"query": "query TelDenied { members { totalCount } }"},
                    headers={"X-Request-Id": "tel-log-2", "Authorization": f"Bearer {member}"})
    await http.get("/healthz", headers={"X-Request-Id": "tel-log-3"})

    access = [e for e in lines(json_lines) if e["logger"] == "quanzi.access"]
    by_id = {e["request_id"]: e for e in access}
    assert [e["request_id"] for e in access] == ["tel-log-1", "tel-log-2"]  # no line for health probes
    ok, denied = by_id["tel-log-1"], by_id["tel-log-2"]
    assert ok["level"] == "INFO" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ok["ts"])
    assert {k: ok[k] for k in ("method", "path", "status", "operation", "operation_type", "error_codes")} == {
        "method": "POST", "path": "/graphql", "status": 200, "operation": "TelLogged", "operation_type": "query",
        "error_codes": []}
    assert ok["duration_ms"] > 0 and "TelLogged" in ok["message"]
    assert (denied["operation"], denied["error_codes"]) == ("TelDenied", ["FORBIDDEN"])


async def test_log_lines_during_a_request_carry_its_id_and_crashes_are_masked(json_lines: io.StringIO) -> None:
    """Any logger, any depth: the request id comes from a context variable set by the middleware."""
    work = logging.getLogger("quanzi.test.work")

    async def logs(request: Request) -> Response:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            work.exception("could not divide", extra={"divisor": 0})
        return JSONResponse({})

    async def crashes(request: Request) -> Response:
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/logs", logs), Route("/crashes", crashes)])
    Telemetry(Settings(env="development")).install(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t.test") as client:
        await client.get("/logs", headers={"X-Request-Id": "tel-work-1"})
        crashed = await client.get("/crashes", headers={"X-Request-Id": "tel-work-2"})
    work.warning("outside any request")

    assert crashed.status_code == 500 and crashed.headers["x-request-id"] == "tel-work-2"
    assert crashed.json()["errors"][0]["extensions"] == {"code": "INTERNAL", "requestId": "tel-work-2"}
    assert "boom" not in crashed.text
    entries = lines(json_lines)
    logged = next(e for e in entries if e["message"] == "could not divide")
    assert logged["request_id"] == "tel-work-1" and logged["level"] == "ERROR" and logged["divisor"] == 0
    assert "ZeroDivisionError" in logged["exc_info"] and "Traceback" in logged["exc_info"]
    crash = next(e for e in entries if e["logger"] == "quanzi.telemetry")
    assert crash["request_id"] == "tel-work-2" and "RuntimeError: boom" in crash["exc_info"]
    assert next(e for e in entries if e["message"] == "outside any request")["request_id"] is None


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_configure_logging_writes_the_chosen_format_to_stderr(fmt: str) -> None:
    code = (
        "import logging; from api.telemetry import configure_logging; "
        f"configure_logging({fmt!r}); logging.getLogger('uvicorn.error').info('hello %s', 'world', extra={{'k': 1}})"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [line] = done.stderr.splitlines()
    if fmt == "json":
        entry = json.loads(line)
        assert {k: entry[k] for k in ("level", "logger", "message", "request_id", "k")} == {
            "level": "INFO", "logger": "uvicorn.error", "message": "hello world", "request_id": None, "k": 1}
    else:
        assert line.endswith(" INFO uvicorn.error [-] hello world")


def test_log_format_defaults_to_text_in_development_and_json_elsewhere() -> None:
    assert Settings(env="development").effective_log_format == "text"
    assert Settings(env="production").effective_log_format == "json"
    assert Settings(env="development", log_format="json").effective_log_format == "json"


# --- websockets -------------------------------------------------------------------------------


async def test_websocket_operations_are_counted_and_logged_with_the_connection_id(
    app: Starlette, ws_url: str, api: Api, json_lines: io.StringIO,
) -> None:
    """Queries over graphql-transport-ws go through the streaming path; subscriptions are counted, not timed."""
    registry = app.state.telemetry.registry
    before = parse(generate_latest(registry).decode())
    ws = await websockets.connect(ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                                  additional_headers={"X-Request-Id": "tel-ws-1"})
    try:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {api.token('operator')}"}}))
        assert ws.response is not None and ws.response.headers["X-Request-Id"] == "tel-ws-1"

        async def send(message: dict[str, Any]) -> None:
            await ws.send(json.dumps(message))

        async def until(kind: str, op: str) -> dict[str, Any]:
            while True:
                message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if message["type"] == kind and message.get("id") == op:
                    return message

        await send({"id": "1", "type": "subscribe", "payload": {"query": "query TelWsOk { viewer { tenantId } }"}})
        await until("complete", "1")
        await send({"id": "2", "type": "subscribe", "payload": {"query": "query TelWsDenied { member(id: \"nope\") { id } }"}})
        denied = await until("next", "2")
        await until("complete", "2")
        await send({"id": "3", "type": "subscribe", "payload": {"query": "subscription TelWsSub { purchaseRecorded { id } }"}})
        await asyncio.sleep(0.2)
        await send({"id": "3", "type": "complete"})
        await asyncio.sleep(0.2)
    finally:
        await ws.close()
    after = parse(generate_latest(registry).decode())

    assert [e["extensions"]["code"] for e in denied["payload"]["errors"]] == ["VALIDATION_FAILED"]
    ops = "quanzi_graphql_operations_total"
    assert delta(before, after, ops, operation="TelWsOk", type="query", outcome="ok") == 1
    assert delta(before, after, ops, operation="TelWsDenied", type="query", outcome="error") == 1
    assert delta(before, after, ops, operation="TelWsSub", type="subscription", outcome="ok") == 1
    assert delta(before, after, "quanzi_graphql_errors_total", operation="TelWsDenied", type="query", code="VALIDATION_FAILED") == 1
    hist = "quanzi_graphql_operation_duration_seconds_count"
    assert delta(before, after, hist, operation="TelWsOk", type="query") == 1
    assert delta(before, after, hist, operation="TelWsSub", type="subscription") == 0
    logged = [e for e in lines(json_lines) if e["logger"] == "quanzi.access" and e.get("transport") == "websocket"]
    assert [(e["operation"], e["request_id"], e["error_codes"]) for e in logged] == [
        ("TelWsOk", "tel-ws-1", []), ("TelWsDenied", "tel-ws-1", ["VALIDATION_FAILED"]), ("TelWsSub", "tel-ws-1", [])]
