"""Subscription fan-out, latency and memory, through a real `quanzi serve` and real websockets.

1. Fan-out: N subscribers (default 1,000) on one community's memberJoined; a burst of
   joins is written over HTTP; events delivered per second until every subscriber has
   every event.
2. Latency at 100 subscribers: from the event's commit-time stamp (taken in the write
   transaction) to receipt by each client, one join at a time; the named baseline is the
   HTTP round trip of the mutation itself, measured in the same run.
3. Memory per idle subscription: the server's resident memory before and after opening
   the N subscriptions, divided by N.

    .venv/bin/python benchmarks/subscription_bench.py [--subscribers 1000] [--events 20]

Prints a markdown table and writes it to benchmarks/results/subscription_bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.auth import issue_token  # noqa: E402
from api.runtime import endpoints  # noqa: E402
from api.settings import Settings  # noqa: E402
from benchmarks.harness import rss_bytes, server_process  # noqa: E402

TENANT = "subbench"
SUB = "subscription($c: ID!) { memberJoined(communityId: $c) { at member { id } } }"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = (await client.post("/graphql", json={"query": query, "variables": variables or {}})).json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


class Subscriber:
    def __init__(self) -> None:
        self.received: list[tuple[float, datetime]] = []
        self.ws: Any = None
        self.task: asyncio.Task[None] | None = None

    async def open(self, url: str, token: str, community: str) -> None:
        self.ws = await websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None)  # type: ignore[list-item]
        await self.ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
        assert json.loads(await self.ws.recv())["type"] == "connection_ack"
        await self.ws.send(json.dumps({"id": "1", "type": "subscribe",
                                       "payload": {"query": SUB, "variables": {"c": community}}}))
        self.task = asyncio.create_task(self.listen())

    async def listen(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if message["type"] == "next":
                at = datetime.fromisoformat(message["payload"]["data"]["memberJoined"]["at"])
                self.received.append((time.time(), at))


async def run(base: str, pid: int, token: str, subscribers: int, events: int, latency_events: int) -> dict[str, Any]:
    url = base.replace("http", "ws") + "/graphql"
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        com = (await gql(http, 'mutation { createCommunity(input: {name: "Bench"}) { ... on CommunityPayload { community { id } } } }'))["createCommunity"]["community"]["id"]
        members = [(await gql(http, 'mutation($n: String!) { registerMember(input: {displayName: $n}) { ... on MemberPayload { member { id } } } }',
                              {"n": f"B{i}"}))["registerMember"]["member"]["id"] for i in range(events + latency_events)]
        join = "mutation($c: ID!, $m: ID) { joinCommunity(communityId: $c, asMemberId: $m) { __typename } }"
        before = rss_bytes(pid)
        subs = [Subscriber() for _ in range(subscribers)]
        for i in range(0, subscribers, 50):
            await asyncio.gather(*(s.open(url, token, com) for s in subs[i:i + 50]))
        await asyncio.sleep(2)
        after = rss_bytes(pid)

        started = time.perf_counter()
        for m in members[:events]:
            await gql(http, join, {"c": com, "m": m})
        while sum(len(s.received) for s in subs) < subscribers * events:
            await asyncio.sleep(0.02)
            if time.perf_counter() - started > 300:
                break
        fanout_s = time.perf_counter() - started
        delivered = sum(len(s.received) for s in subs)

        for s in subs[100:]:
            await s.ws.close()
        await asyncio.sleep(3)  # let the server finish closing the other sockets
        for s in subs[:100]:
            s.received.clear()
        latencies: list[float] = []
        round_trips: list[float] = []
        for m in members[events:]:
            t = time.perf_counter()
            await gql(http, join, {"c": com, "m": m})
            round_trips.append(time.perf_counter() - t)
            deadline = time.perf_counter() + 10
            while any(not s.received for s in subs[:100]) and time.perf_counter() < deadline:
                await asyncio.sleep(0.002)
            for s in subs[:100]:
                latencies += [got - at.timestamp() for got, at in s.received]
                s.received.clear()
        for s in subs[:100]:
            await s.ws.close()
    return {"delivered": delivered, "expected": subscribers * events, "fanout_s": fanout_s,
            "rss_per_sub": (after - before) / subscribers, "latencies": latencies, "round_trips": round_trips}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--latency-events", type=int, default=200,
                        help="joins timed one at a time at 100 subscribers (enough samples for a p99)")
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp, endpoints(settings, data_dir=Path(tmp), persistent=False) as ep:
        with server_process(ep, QUANZI_SCHEDULER_INTERVAL="0", QUANZI_WS_MAX_SUBSCRIPTIONS="5") as (base, pid):
            token = issue_token(settings, tenant=TENANT, roles=["operator"])
            r = asyncio.run(run(base, pid, token, args.subscribers, args.events, args.latency_events))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lat, rt = r["latencies"], r["round_trips"]
    lines = [
        f"# Subscription benchmark ({stamp}, {platform.machine()}, {os.cpu_count()} cores)",
        "",
        "One `quanzi serve` process (one uvicorn worker); the embedded graph server, Redis and the websocket",
        "clients share the two cores.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| fan-out: {args.subscribers:,} subscribers × {args.events} events delivered | {r['delivered']:,} of {r['expected']:,} |",
        f"| fan-out: events delivered per second | {r['delivered'] / r['fanout_s']:,.0f} |",
        (f"| latency commit → receipt at 100 subscribers ({len(rt)} joins, one at a time), p50 / p99 ms | "
         f"{pct(lat, 0.5):.1f} / {pct(lat, 0.99):.1f} |"),
        f"| baseline: the mutation's own HTTP round trip, p50 / p99 ms | {pct(rt, 0.5):.1f} / {pct(rt, 0.99):.1f} |",
        f"| memory per idle subscription (server RSS delta / subscribers) | {r['rss_per_sub'] / 1024:,.1f} KiB |",
        "",
        "Target: p99 commit → receipt under 100 ms at 100 subscribers.",
    ]
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / "subscription_bench.md"
    out.write_text(text, "utf-8")
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
