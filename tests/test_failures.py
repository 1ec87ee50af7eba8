"""Failures under load: Redis stopped, the graph server stopped or killed, one idempotency key raced.

Each scenario runs the real app (in this process, over HTTP through httpx's ASGI transport)
against servers of this module's own, never the session's, because the tests stop and kill
them: one graph server (ArcadeDB in its own JVM, data on disk) for the module, and a
persistent ``redis-server`` per test. Blocking server starts and stops run in a thread so
the load keeps running on the event loop meanwhile.

What is asserted, per issue 5 item 7:

* Redis stopped during load: reads and writes keep answering from the graph, error rate
  under 0.5 %, ``/readyz`` says ``degraded`` and then ``ready``; when Redis returns the
  recommendation cache fills again and every purchase acknowledged while it was down reaches
  the tenant's event stream exactly once.
* Graph server stopped (SIGTERM) or killed (SIGKILL): every request fails, with
  ``GRAPH_UNAVAILABLE`` (nothing else) within 2 s (a lone request in milliseconds; the 95th
  percentile under load), ``/readyz`` answers 503 naming the graph, and after the server is
  started again the same app serves everything without a restart. Every
  purchase the API acknowledged exists exactly once with the acknowledged id, retrying its
  key returns it (``created: false``), and retrying a key whose answer was an error records
  it at most once.
* 50 concurrent calls with one key, through two app instances (two drivers): one purchase,
  one ``PURCHASE_RECORDED`` event, and 50 answers naming it.

Each test records its figures (requests, errors, error rate, time to fail, time to recover,
acknowledged vs found purchases). With ``QUANZI_FAILURE_REPORT=<path>`` set
(benchmarks/failure_bench.py sets it and scales the load with ``QUANZI_FAILURE_LOAD``),
the module writes them there as a markdown table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from api.auth import issue_token
from api.settings import Settings
from domain.recommendations import RecommendationKind
from graph.client import GraphClient
from graph.embedded import EmbeddedGraph, EmbeddedRedis
from graph.recommendations import cache_key
from graph.streams import stream_key
from tests.conftest import JWT_SECRET, PASSWORD, graph_client, running_app

pytestmark = pytest.mark.slow

#: load multiplier: workers = 6 x LOAD, each phase lasts 2 x LOAD seconds
LOAD = max(1, int(os.environ.get("QUANZI_FAILURE_LOAD", "1")))
WORKERS = 6 * LOAD
PHASE = 2.0 * LOAD
#: the issue's bound for a request to fail while the graph server is gone
FAIL_WITHIN = 2.0
#: generous bounds for things that are functional, not performance, on a busy 2-core machine
RECOVER_WITHIN = 30.0
WARM_WITHIN = 90.0
#: events recorded while Redis was down reach the stream within this once it is back: well under
#: the relay lock's 30 s, so a lock the outage left behind in Redis fails the test
EVENTS_WITHIN = 10.0

# Background jobs as in production (the relay catches up on its own), rate limits off so
# every error counted comes from the failure under test.
SETTINGS = Settings(env="test", jwt_secret=JWT_SECRET, demo_members=0, relay_interval=0.5,  # type: ignore[arg-type]
                    scheduler_interval=0, webhook_interval=0.5, rate_limit=False)

RECORD = """
mutation($input: RecordPurchaseInput!) {
  recordPurchase(input: $input) {
    __typename
    ... on PurchasePayload { created purchase { id idempotencyKey total { amount currency } member { id } } }
    ... on UserError { code message }
  }
}
"""
READ = """
query($id: ID!) {
  member(id: $id) {
    id displayName
    referralStats { directInvites teamSize }
    recommendedMembers(first: 5) { score member { id } }
    purchases(first: 5) { totalCount }
  }
}
"""
FOLLOW = """
mutation($target: ID!, $as: ID) {
  followMember(memberId: $target, asMemberId: $as) { __typename ... on UserError { code message } }
}
"""
REGISTER = """
mutation($n: String!) {
  registerMember(input: {displayName: $n, marketingConsent: true, profilingConsent: true}) {
    ... on MemberPayload { member { id } }
  }
}
"""
PRODUCT = """
mutation($sku: String!) {
  createProduct(input: {sku: $sku, name: $sku, category: "tea", price: {amount: 3800}}) {
    ... on ProductPayload { product { id } }
  }
}
"""
PURCHASES_OF_TENANT = "MATCH (p:Purchase) WHERE p.tenantId = $tenant RETURN collect([p.idempotencyKey, p.id]) AS rows"
PURCHASE_EVENTS = (
    "MATCH (e:Event) WHERE e.tenantId = $tenant AND e.type = 'PURCHASE_RECORDED' RETURN collect(e.payload) AS payloads"
)

#: figures of each scenario, written by the module fixture when QUANZI_FAILURE_REPORT is set
FIGURES: dict[str, dict[str, str]] = {}


# --- servers and app ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedGraph]:
    """A graph server of this module's own (the tests stop and kill it)."""
    g = EmbeddedGraph(tmp_path_factory.mktemp("failures") / "arcadedb", PASSWORD)
    g.start()
    try:
        yield g
    finally:
        g.stop()
        _write_report()


@pytest_asyncio.fixture(scope="module")
async def own_graph_client(own_graph: EmbeddedGraph) -> AsyncIterator[GraphClient]:
    async with graph_client(own_graph.uri) as client:
        yield client


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    r = EmbeddedRedis(tmp_path / "redis", persistent=True)
    r.start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
async def graph_up(own_graph: EmbeddedGraph, own_graph_client: GraphClient) -> AsyncIterator[GraphClient]:
    """The module's graph server, started again after a test that took it away."""
    yield own_graph_client
    if own_graph.proc is None or own_graph.proc.poll() is not None:
        own_graph.proc = None
        await asyncio.to_thread(own_graph.start)


@dataclass
class Client:
    http: httpx.AsyncClient
    token: str
    graph: GraphClient

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                        headers={"Authorization": f"Bearer {self.token}"})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def ok(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = await self.gql(query, variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


@contextlib.asynccontextmanager
async def serving(graph: EmbeddedGraph, redis_url: str, tenant: str) -> AsyncIterator[Client]:
    async with running_app(SETTINGS, graph.uri, redis_url) as app:
        client: GraphClient = app.state.resources.graph
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://quanzi.test",
                                     timeout=60) as http:
            token = issue_token(SETTINGS, tenant=tenant, roles=["operator"])
            yield Client(http, token, client)


# --- load ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    started: float
    seconds: float
    op: str
    #: "ok", an error code, or "EXCEPTION:<type>" / "HTTP <status>"
    code: str


@dataclass
class Shop:
    members: list[str]
    products: list[str]


@dataclass
class Load:
    """Workers that read, follow and buy (a fresh idempotency key per purchase) until stopped."""

    client: Client
    shop: Shop
    outcomes: list[Outcome] = field(default_factory=list)
    #: key -> purchase id, for every purchase the API acknowledged
    acked: dict[str, str] = field(default_factory=dict)
    #: key -> (worker, product) for purchases answered with an error (outcome unknown to the client)
    in_doubt: dict[str, tuple[int, str]] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def purchase_input(self, worker: int, key: str) -> dict[str, Any]:
        return {"input": {"memberId": self.shop.members[worker], "idempotencyKey": key,
                          "lines": [{"productId": self.shop.products[worker], "quantity": 1}]}}

    async def _one(self, op: str, query: str, variables: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        body: dict[str, Any] | None = None
        try:
            response = await self.client.http.post(
                "/graphql", json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {self.client.token}"})
            if response.status_code != 200:
                code = f"HTTP {response.status_code}"
            else:
                body = response.json()
                assert body is not None
                if body.get("errors"):
                    code = str(body["errors"][0].get("extensions", {}).get("code"))
                else:
                    code = "ok"
                    for value in (body.get("data") or {}).values():
                        if isinstance(value, dict) and "code" in value:  # a typed UserError
                            code = str(value["code"])
        except Exception as exc:  # noqa: BLE001 - counted (and reported) as an error of the request
            code = f"EXCEPTION:{type(exc).__name__}"
        self.outcomes.append(Outcome(started, loop.time() - started, op, code))
        return code, body

    async def worker(self, w: int) -> None:
        n = len(self.shop.members)
        i = 0
        while not self.stop.is_set():
            key = f"load-{w}-{i:06d}"
            code, body = await self._one("purchase", RECORD, self.purchase_input(w, key))
            if code == "ok" and body is not None:
                self.acked[key] = body["data"]["recordPurchase"]["purchase"]["id"]
            else:
                self.in_doubt[key] = (w, self.shop.products[w])
            await self._one("read", READ, {"id": self.shop.members[(w + i) % n]})
            target = self.shop.members[(w + 1 + i % (n - 1)) % n]  # never the worker's own member
            await self._one("follow", FOLLOW, {"as": self.shop.members[w], "target": target})
            i += 1
            if code != "ok":
                await asyncio.sleep(0.2)  # a client backing off after an error, not a tight loop

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Load]:
        tasks = [asyncio.create_task(self.worker(w)) for w in range(WORKERS)]
        try:
            yield self
        finally:
            self.stop.set()
            await asyncio.gather(*tasks)

    async def until_acknowledged(self, more: int) -> None:
        """Wait until *more* purchases than now are acknowledged (a cold server starts slowly)."""
        target = len(self.acked) + more

        async def enough() -> bool:
            return len(self.acked) >= target

        await wait_until(enough, WARM_WITHIN)

    def between(self, start: float, end: float = float("inf")) -> list[Outcome]:
        return [o for o in self.outcomes if start <= o.started < end]


def errors(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.code != "ok"]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def open_shop(client: Client, members: int) -> Shop:
    ids = [(await client.ok(REGISTER, {"n": f"Buyer {i}"}))["registerMember"]["member"]["id"] for i in range(members)]
    products = [(await client.ok(PRODUCT, {"sku": f"TEA-{i:03d}"}))["createProduct"]["product"]["id"]
                for i in range(members)]
    return Shop(ids, products)


async def purchases_by_key(graph: GraphClient, tenant: str) -> dict[str, list[str]]:
    row = await graph.read_one(PURCHASES_OF_TENANT, tenant=tenant)
    found: dict[str, list[str]] = {}
    for key, pid in (row["rows"] if row else []):
        found.setdefault(str(key), []).append(str(pid))
    return found


async def wait_until(check: Any, timeout: float, interval: float = 0.05) -> float:
    """Seconds until ``await check()`` is true; fails after *timeout*."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():
        assert loop.time() - start < timeout, f"not true within {timeout} s"
        await asyncio.sleep(interval)
    return loop.time() - start


# --- 50 concurrent calls, one key ----------------------------------------------------------------


async def test_fifty_concurrent_calls_with_one_key_make_one_purchase(graph_up, own_graph, own_redis):
    tenant = "ten_" + uuid.uuid4().hex[:16]
    async with serving(own_graph, own_redis.url, tenant) as one, serving(own_graph, own_redis.url, tenant) as two:
        shop = await open_shop(one, 1)
        variables = {"input": {"memberId": shop.members[0], "idempotencyKey": "checkout-7f3a-0001",
                               "lines": [{"productId": shop.products[0], "quantity": 2}]}}
        loop = asyncio.get_running_loop()

        async def call(client: Client) -> tuple[float, dict[str, Any]]:
            started = loop.time()
            body = await client.ok(RECORD, variables)
            return loop.time() - started, body["recordPurchase"]

        started = loop.time()
        results = await asyncio.gather(*(call(one if i % 2 else two) for i in range(50)))
        wall = loop.time() - started
        answers = [r for _, r in results]

        assert {a["__typename"] for a in answers} == {"PurchasePayload"}, answers
        assert sorted(a["created"] for a in answers) == [False] * 49 + [True]
        assert len({a["purchase"]["id"] for a in answers}) == 1
        assert {a["purchase"]["total"]["amount"] for a in answers} == {7600}
        found = await purchases_by_key(graph_up, tenant)
        assert found == {"checkout-7f3a-0001": [answers[0]["purchase"]["id"]]}
        events = (await graph_up.read_one(PURCHASE_EVENTS, tenant=tenant) or {"payloads": []})["payloads"]
        assert [json.loads(p)["purchaseId"] for p in events] == [answers[0]["purchase"]["id"]]
        again = (await one.ok(RECORD, variables))["recordPurchase"]
        assert (again["created"], again["purchase"]) == (False, answers[0]["purchase"])

    latencies = [s for s, _ in results]
    FIGURES["50 concurrent calls, one key (2 app instances)"] = {
        "requests": "50", "errors": "0", "error rate": "0 %",
        "time to fail": "—", "time to recover": "—",
        "acknowledged / found": "50 answers naming 1 purchase / 1 purchase, 1 event",
        "notes": f"wall {wall:.2f} s; latency p50 {pct(latencies, 0.5) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms",
    }


# --- Redis stopped under load --------------------------------------------------------------------


async def test_redis_stopped_during_load_reads_and_writes_keep_working(graph_up, own_graph, own_redis):
    tenant = "ten_" + uuid.uuid4().hex[:16]
    loop = asyncio.get_running_loop()
    # the test's own look into Redis (it connects on first use, after Redis is back)
    async with serving(own_graph, own_redis.url, tenant) as client, aioredis.Redis.from_url(own_redis.url) as probe:
        shop = await open_shop(client, WORKERS)
        member = shop.members[0]
        load = Load(client, shop)
        async with load.running():
            await load.until_acknowledged(WORKERS)
            await asyncio.sleep(PHASE)
            stopped_at = loop.time()
            await asyncio.to_thread(own_redis.stop)
            await asyncio.sleep(PHASE)
            ready_down = await client.http.get("/readyz")
            await asyncio.sleep(PHASE / 2)
            restarting = loop.time()
            await asyncio.to_thread(own_redis.start)
            returned_at = loop.time()
            acked_by_then = dict(load.acked)

            # While the load goes on, the cache fills again and the events recorded in the
            # graph's outbox while Redis was down reach the tenant's stream.
            async def cached() -> bool:
                await client.ok(READ, {"id": member})
                return bool(await probe.exists(cache_key(tenant, RecommendationKind.MEMBER, member)))

            async def streamed() -> list[str]:
                entries = await probe.xrange(stream_key(tenant))
                return [json.loads(f[b"payload"])["purchaseId"] for _, f in entries if f[b"type"] == b"PURCHASE_RECORDED"]

            async def caught_up() -> bool:
                return set(acked_by_then.values()) <= set(await streamed())

            await probe.delete(cache_key(tenant, RecommendationKind.MEMBER, member))
            cache_back = await wait_until(cached, RECOVER_WITHIN)
            events_back = cache_back + await wait_until(caught_up, EVENTS_WITHIN, interval=0.1)
            await asyncio.sleep(PHASE)
            await load.until_acknowledged(WORKERS)

        ready_after = (await client.http.get("/readyz")).json()
        before, during, after = (load.between(0, stopped_at), load.between(stopped_at, returned_at),
                                 load.between(returned_at))
        everything = load.outcomes
        assert len(during) >= WORKERS, "the load did not run while Redis was down"
        assert len(errors(everything)) / len(everything) < 0.005, errors(everything)
        assert ready_down.status_code == 200
        assert ready_down.json()["status"] == "degraded" and ready_down.json()["checks"]["graph"] == "ok"
        assert ready_down.json()["checks"]["redis"].startswith("unavailable: ")
        assert ready_after == {"status": "ready", "checks": {"graph": "ok", "redis": "ok"}}

        # Nothing acknowledged is lost: every purchase is in the graph once, and its event
        # reaches the stream once.
        found = await purchases_by_key(graph_up, tenant)
        assert {k: found.get(k) for k in load.acked} == {k: [v] for k, v in load.acked.items()}
        assert set(found) <= set(load.acked) | set(load.in_doubt)
        assert all(len(ids) == 1 for ids in found.values())

        async def all_streamed() -> bool:
            return len(await streamed()) >= len(found)

        await wait_until(all_streamed, EVENTS_WITHIN, interval=0.1)
        ids = await streamed()
        assert sorted(ids) == sorted(pid for pids in found.values() for pid in pids)

    def latency(outcomes: list[Outcome]) -> str:
        s = [o.seconds * 1000 for o in outcomes if o.code == "ok"]
        return f"{pct(s, 0.5):.0f}/{pct(s, 0.95):.0f}"

    bad = errors(everything)
    FIGURES["Redis stopped during load (SIGTERM, 1 API process)"] = {
        "requests": f"{len(everything)} ({len(during)} while down)",
        "errors": str(len(bad)),
        "error rate": f"{100 * len(bad) / len(everything):.2f} %",
        "time to fail": "— (nothing fails)",
        "time to recover": f"Redis start {returned_at - restarting:.2f} s; then cache filled again after "
                           f"{cache_back:.2f} s, purchases made while down streamed after {events_back:.2f} s",
        "acknowledged / found": f"{len(load.acked)} / {sum(len(v) for v in found.values())}, streamed {len(ids)}",
        "notes": f"{WORKERS} workers; latency of successes p50/p95 ms: before {latency(before)}, "
                 f"Redis down {latency(during)}, after {latency(after)}",
    }


# --- graph server stopped or killed under load ---------------------------------------------------


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_graph_server_taken_away_under_load(graph_up, own_graph, own_redis, how):
    """SIGTERM (stop) or SIGKILL (kill) the graph server while purchases, reads and follows run."""
    tenant = "ten_" + uuid.uuid4().hex[:16]
    loop = asyncio.get_running_loop()
    async with serving(own_graph, own_redis.url, tenant) as client:
        shop = await open_shop(client, WORKERS)
        load = Load(client, shop)
        async with load.running():
            await load.until_acknowledged(WORKERS)
            await asyncio.sleep(PHASE)
            down_at = loop.time()
            await asyncio.to_thread(own_graph.stop if how == "stop" else own_graph.kill)
            gone_at = loop.time()
            await asyncio.sleep(PHASE)

            # A request while the server is gone fails fast with GRAPH_UNAVAILABLE; /readyz says so.
            probe_started = loop.time()
            probe = await client.gql(READ, {"id": shop.members[0]})
            time_to_fail = loop.time() - probe_started
            ready_down = await client.http.get("/readyz")

            restarting = loop.time()
            await asyncio.to_thread(own_graph.start)
            up_at = loop.time()

            async def ready() -> bool:
                return (await client.http.get("/readyz")).status_code == 200

            ready_after = await wait_until(ready, RECOVER_WITHIN)
            ready_at = loop.time()
            await asyncio.sleep(PHASE)
            await load.until_acknowledged(WORKERS)

        first_ok = min((o.started + o.seconds for o in load.between(up_at) if o.code == "ok"), default=None)

        assert probe["data"] == {"member": None} or probe["data"] is None
        assert [e["extensions"]["code"] for e in probe["errors"]] == ["GRAPH_UNAVAILABLE"]
        assert probe["errors"][0]["message"] == "the graph database is unavailable; try again shortly"
        assert time_to_fail < FAIL_WITHIN
        assert ready_down.status_code == 503
        assert ready_down.json()["status"] == "unavailable"
        assert ready_down.json()["checks"]["graph"].startswith("unavailable: ")

        # While it was gone every request failed, and every failure (until /readyz said ready
        # again) was GRAPH_UNAVAILABLE within 2 s. The bound is the design's (once the server is
        # declared gone, calls fail without touching the network), asserted on the 95th
        # percentile: the server restarting takes both cores, and the odd request waiting a
        # second for the CPU says nothing about it.
        outage = load.between(gone_at, restarting)
        failed = errors(load.outcomes)
        assert {o.code for o in failed} <= {"GRAPH_UNAVAILABLE"}, {o.code for o in failed}
        assert outage and errors(outage) == outage
        failures = [o.seconds for o in errors(load.between(gone_at, ready_at))]
        assert pct(failures, 0.95) < FAIL_WITHIN, sorted(failures)[-5:]
        # After /readyz said ready, the same app served everything, without a restart.
        resumed = load.between(ready_at)
        assert resumed and errors(resumed) == [], errors(resumed)
        assert {o.op for o in resumed} == {"purchase", "read", "follow"}

        # No acknowledged purchase is lost: each exists once, with the acknowledged id ...
        found = await purchases_by_key(client.graph, tenant)
        assert {k: found.get(k) for k in load.acked} == {k: [v] for k, v in load.acked.items()}
        committed_in_doubt = sorted(k for k in load.in_doubt if k in found)
        assert set(found) == set(load.acked) | set(committed_in_doubt)
        # ... retrying its key returns the original ...
        retries = await asyncio.gather(*(client.ok(RECORD, load.purchase_input(int(k.split("-")[1]), k))
                                         for k in load.acked))
        assert [(r["recordPurchase"]["created"], r["recordPurchase"]["purchase"]["id"]) for r in retries] == \
            [(False, v) for v in load.acked.values()]
        # ... and a key answered with an error, sent again (each worker resending its own, one by
        # one, as a client would), is recorded exactly once.
        async def resend(worker: int) -> list[tuple[str, dict[str, Any]]]:
            keys = [k for k, (w, _) in load.in_doubt.items() if w == worker]
            return [(k, (await client.ok(RECORD, load.purchase_input(worker, k)))["recordPurchase"]) for k in keys]

        resent = [pair for pairs in await asyncio.gather(*(resend(w) for w in range(WORKERS))) for pair in pairs]
        assert len(resent) == len(load.in_doubt)
        for key, payload in resent:
            assert payload["__typename"] == "PurchasePayload"
            assert payload["created"] is (key not in found), key
        final = await purchases_by_key(client.graph, tenant)
        assert all(len(ids) == 1 for ids in final.values())
        assert set(final) == set(load.acked) | set(load.in_doubt)

    FIGURES[f"graph server {'stopped (SIGTERM)' if how == 'stop' else 'killed (SIGKILL)'} under load"] = {
        "requests": f"{len(load.outcomes)} ({len(outage)} while down)",
        "errors": f"{len(failed)}, all GRAPH_UNAVAILABLE",
        "error rate": f"{100 * len(failed) / len(load.outcomes):.1f} % overall, 100 % while down",
        "time to fail": f"probe {time_to_fail * 1000:.0f} ms; failures p50 {pct(failures, 0.5) * 1000:.0f} ms, "
                        f"p95 {pct(failures, 0.95) * 1000:.0f} ms, max {max(failures) * 1000:.0f} ms",
        "time to recover": f"server start {up_at - restarting:.1f} s; then /readyz 200 after {ready_after:.2f} s, "
                           f"first success after {(first_ok - up_at) if first_ok else float('nan'):.2f} s",
        "acknowledged / found": f"{len(load.acked)} / {len(load.acked)} (each once, retry returns it); "
                                f"{len(load.in_doubt)} answered with an error, {len(committed_in_doubt)} of them "
                                f"had committed",
        "notes": f"{WORKERS} workers; stop took {gone_at - down_at:.2f} s",
    }


# --- the report ----------------------------------------------------------------------------------


def _write_report() -> None:
    target = os.environ.get("QUANZI_FAILURE_REPORT")
    if not target or len(FIGURES) < 4:  # only a complete run (all four scenarios passed) is reported
        return
    columns = ["requests", "errors", "error rate", "time to fail", "time to recover", "acknowledged / found", "notes"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Failure tests ({stamp}, {platform.machine()}, {os.cpu_count()} cores, load x{LOAD})",
        "",
        "From tests/test_failures.py (benchmarks/failure_bench.py runs it): the real app in one process over HTTP,",
        f"its own ArcadeDB server and redis-server; {WORKERS} workers each buy (a fresh idempotency key), read a",
        "member (referral stats, recommended members, purchases) and follow, in phases of "
        + f"{PHASE:.0f} s. The tests assert",
        "the properties; these are the figures they measured.",
        "",
        "| scenario | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for scenario, figures in FIGURES.items():
        lines.append(f"| {scenario} | " + " | ".join(figures.get(c, "") for c in columns) + " |")
    Path(target).write_text("\n".join(lines) + "\n", encoding="utf-8")
