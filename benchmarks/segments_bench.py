"""Saved segments on the demo community: segmentSize and segmentMembers pages against `members`.

Each segment filter runs through :class:`graph.segments.GraphSegments` (one constant statement per
clause, keyset pages by member id); the baseline, measured in the same run on the same data, is
the existing ``members`` listing (:class:`graph.members.GraphMemberRepository`) with one channel
filter: its first page of 20 and its count. Both scan the tenant's members and filter them, so the
ratio is what the filter language (and several clauses) costs on top of that scan.

    .venv/bin/python benchmarks/segments_bench.py [--members 10000] [--repeats 7] [--tenant bench]

Prints a markdown table and writes it to benchmarks/results/segments_bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.runtime import endpoints
from api.settings import Settings
from domain.models import Channel
from domain.ports import MemberFilter, MemberOrder
from domain.segments import SegmentFilter, SegmentPurpose, parse_segment_input
from graph.client import GraphClient
from graph.demo_data import has_members, load_demo
from graph.members import GraphMemberRepository
from graph.migrations import migrate
from graph.segments import GraphSegments


async def timed(fn: Callable[[], Awaitable[Any]], repeats: int) -> tuple[float, Any]:
    await fn()  # warm-up
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = await fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


async def filters(graph: GraphClient, tenant: str) -> dict[str, dict[str, Any]]:
    row = await graph.read_one(
        """
        MATCH (m:Member {tenantId: $tenant}) WITH collect(DISTINCT m.city)[0..2] AS cities
        MATCH (t:Tag {tenantId: $tenant}) WITH cities, collect(t.id)[0..2] AS tags
        MATCH (c:Community {tenantId: $tenant}) WITH cities, tags, collect(c.id)[0..2] AS communities
        MATCH (p:Product {tenantId: $tenant}) RETURN cities, tags, communities, collect(DISTINCT p.category)[0] AS category
        """, tenant=tenant)
    assert row is not None
    cities, tags, communities, category = row["cities"], row["tags"], row["communities"], row["category"]
    return {
        "everyone (empty clause)": {"any_of": [{"all_of": []}]},
        "city in 2": {"any_of": [{"all_of": [{"city_in": cities}]}]},
        "level >= 3 and tag (any of 2)": {"any_of": [{"all_of": [{"level": {"min": 3}}, {"tags": {"tag_ids": tags}}]}]},
        "member of 2 communities": {"any_of": [{"all_of": [{"member_of": {"community_ids": communities}}]}]},
        "follows someone in a community": {"any_of": [{"all_of": [
            {"follows_member_of": {"community_ids": communities[:1]}}]}]},
        "bought a category": {"any_of": [{"all_of": [{"bought": {"categories": [category]}}]}]},
        "invited by a top-100 KOL or KOC": {"any_of": [{"all_of": [{"invited_by_kol": {"max_rank": 100, "koc": True}}]}]},
        "3 clauses: city, or all tags, or (not in communities and level <= 1)": {"any_of": [
            {"all_of": [{"city_in": cities[:1]}]},
            {"all_of": [{"tags": {"tag_ids": tags, "match": "ALL"}}]},
            {"all_of": [{"member_of": {"community_ids": communities}, "negate": True}, {"level": {"max": 1}}]}]},
    }


async def run(ep: Any, members: int, repeats: int, tenant: str) -> tuple[tuple[float, float], list[tuple[Any, ...]]]:
    graph = GraphClient.connect(ep.graph_uri, user=ep.graph_user, password=ep.graph_password, database=ep.graph_database)
    try:
        await migrate(graph)
        if not await has_members(graph, tenant=tenant):
            await load_demo(graph, tenant=tenant, members=members, seed=7)
        repo, segments = GraphMemberRepository(graph), GraphSegments(graph)
        by_channel = MemberFilter(channel=Channel.WECHAT)
        base_page, _ = await timed(lambda: repo.list(tenant, filter=by_channel, order=MemberOrder.JOINED_AT_DESC,
                                                      first=20, after=None), repeats)
        base_count, _ = await timed(lambda: repo.count(tenant, filter=by_channel), repeats)
        rows = []
        for name, spec in (await filters(graph, tenant)).items():
            f: SegmentFilter = parse_segment_input(SegmentFilter, spec, prefix="filter")
            for purpose in SegmentPurpose:
                size_ms, size = await timed(lambda f=f, purpose=purpose: segments.size(tenant, f, purpose), repeats)
                page_ms, page = await timed(lambda f=f, purpose=purpose: segments.members(tenant, f, purpose, first=20, after=None), repeats)
                after = page.cursors[-1] if page.cursors else None
                for _ in range(3):  # the fifth page
                    nxt = await segments.members(tenant, f, purpose, first=20, after=after)
                    after = nxt.cursors[-1] if nxt.cursors else after
                later_ms, _ = await timed(lambda f=f, purpose=purpose, after=after: segments.members(tenant, f, purpose, first=20,
                                                                                            after=after), repeats)
                rows.append((name, purpose.value, size, size_ms, page_ms, later_ms))
        return (base_page, base_count), rows
    finally:
        await graph.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--tenant", default="bench")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="embedded servers' folder (default .data/bench-segments-<members>)")
    args = parser.parse_args()
    data_dir = args.data_dir or ROOT / ".data" / f"bench-segments-{args.members}"
    with endpoints(Settings(), data_dir=data_dir) as ep:
        (base_page, base_count), rows = asyncio.run(run(ep, args.members, args.repeats, args.tenant))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        (f"# Saved segments ({args.members:,} demo members, {stamp}, {platform.machine()}, {os.cpu_count()} cores, "
         f"load {os.getloadavg()[0]:.1f})"),
        "",
        (f"Median ms over {args.repeats} sequential calls on the embedded ArcadeDB server. Baseline, same run: the "
         f"existing `members` listing filtered by channel: first page of 20 **{base_page:.1f} ms**, "
         f"count **{base_count:.1f} ms**. Ratios are against those."),
        "",
        "| filter | purpose | size | segmentSize ms | × count | first page (20) ms | × page | 5th page ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, purpose, size, size_ms, page_ms, later_ms in rows:
        lines.append(f"| {name} | {purpose} | {size:,} | {size_ms:.1f} | {size_ms / base_count:.1f} | {page_ms:.1f} | "
                     f"{page_ms / base_page:.1f} | {later_ms:.1f} |")
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / "segments_bench.md"
    out.write_text(text, "utf-8")
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
