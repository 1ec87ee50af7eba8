"""KOL recompute at 1,000,000 members / 10,000,000 follows: everything after the pull.

Loading ten million relationships into the embedded graph server takes longer than a CI
session allows (about 3,000 relationships per second while other work runs), so this
script measures the stages after the projection pull on a synthetic engagement graph of
that size built in memory: the algorithms (weighted PageRank, two-hop reach, sampled
betweenness, authenticity signals), the scoring, and the Redis write of the whole ranking
into a real redis-server. The pull itself is measured end to end on 100,000 members by
benchmarks/growth_bench.py; its throughput gives the projected pull time printed here.

    .venv/bin/python benchmarks/kol_scale_bench.py [--members 1000000] [--follows 10000000]

Prints a markdown table and writes it to benchmarks/results/kol_scale_bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domain.growth import Scope  # noqa: E402
from domain.influence import score_influence  # noqa: E402
from graph.embedded import EmbeddedRedis  # noqa: E402
from graph.kol import KolRun, KolStore, inputs_from  # noqa: E402
from graph.projection import EngagementGraph  # noqa: E402


def synthetic(n: int, follows: int, seed: int = 7) -> EngagementGraph:
    """A power-law engagement graph: followees and authors drawn with a heavy head."""
    rng = np.random.default_rng(seed)
    now_us = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1e6)
    day = 86_400_000_000

    def popular(k: int) -> np.ndarray:
        return np.minimum((n * rng.random(k) ** 3).astype(np.int64), n - 1)

    src = rng.integers(0, n, follows)
    dst = popular(follows)
    keep = src != dst
    pairs = np.unique(src[keep] * n + dst[keep])
    interactions = follows // 3
    i_src = rng.integers(0, n, interactions)
    i_dst = popular(interactions)
    keep = i_src != i_dst
    invitee = rng.permutation(n)[: int(0.4 * n)]
    inviter = np.minimum(invitee // 3, n - 1)  # a shallow forest: inviters joined before invitees
    ok = inviter != invitee
    paid = rng.random(n) < 0.06
    return EngagementGraph(
        member_ids=[f"mem_{i:010d}" for i in range(n)],
        joined_at=now_us - rng.integers(0, 540, n) * day,
        follow_src=(pairs // n).astype(np.int32), follow_dst=(pairs % n).astype(np.int32),
        inter_src=i_src[keep].astype(np.int32), inter_dst=i_dst[keep].astype(np.int32),
        inter_kind=rng.integers(0, 4, int(keep.sum())).astype(np.int8),
        inter_at=now_us - rng.integers(0, 90 * day, int(keep.sum())),
        posts=rng.poisson(1.5, n).astype(np.int32),
        ref_src=inviter[ok].astype(np.int32), ref_dst=invitee[ok].astype(np.int32),
        paid_purchases=paid.astype(np.int32), paid_gmv=(paid * rng.integers(1_000, 50_000, n)).astype(np.int64),
        attributed_gmv=np.zeros(n, dtype=np.int64),
    )


async def save(url: str, run: KolRun) -> float:
    redis = aioredis.Redis.from_url(url)
    try:
        started = time.perf_counter()
        await KolStore(redis).save(run)
        return time.perf_counter() - started
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--follows", type=int, default=10_000_000)
    parser.add_argument("--pull-edges-per-second", type=float, default=None,
                        help="measured projection throughput (relationships/s) to project the pull time")
    args = parser.parse_args()
    started = time.perf_counter()
    g = synthetic(args.members, args.follows)
    built = time.perf_counter() - started
    edges = len(g.follow_src) + len(g.inter_src) + len(g.ref_src)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    inputs = inputs_from(g)
    timings["algorithms"] = time.perf_counter() - t
    t = time.perf_counter()
    scores = score_influence(inputs)
    timings["scoring"] = time.perf_counter() - t
    run = KolRun(tenant="bench", scope=Scope(), member_ids=g.member_ids, scores=scores,
                 computed_at=datetime.now(UTC), graph_version=0, timings=timings)
    with tempfile.TemporaryDirectory() as tmp:
        redis = EmbeddedRedis(Path(tmp), persistent=False)
        redis.start()
        try:
            timings["redis write"] = asyncio.run(save(redis.url, run))
        finally:
            redis.stop()
    total = sum(timings.values())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# KOL recompute after the pull, {args.members:,} members ({stamp}, {platform.machine()}, {os.cpu_count()} cores)",
        "",
        f"Synthetic power-law engagement graph: {len(g.follow_src):,} follows, {len(g.inter_src):,} interactions, "
        f"{len(g.ref_src):,} referrals ({edges:,} relationships; built in {built:.1f} s, not counted).",
        "",
        "| stage | seconds |",
        "|---|---:|",
        *[f"| {k} | {v:.2f} |" for k, v in timings.items()],
        f"| **algorithms + scoring + Redis write** | **{total:.2f}** |",
    ]
    if args.pull_edges_per_second:
        pull = edges / args.pull_edges_per_second
        lines += [f"| projected pull at {args.pull_edges_per_second:,.0f} relationships/s (from growth_bench) | "
                  f"{pull:.1f} |", f"| **projected end to end** | **{total + pull:.1f}** |"]
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / "kol_scale_bench.md"
    out.write_text(text, "utf-8")
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
