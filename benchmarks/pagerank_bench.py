"""PageRank benchmark: graph.algorithms.pagerank against networkx and plain SciPy.

For each size, a seeded synthetic power-law directed graph (Chung-Lu style: in-degree
popularity ~ rank^-0.9, so a few members have hundreds of thousands of followers;
out-degree ~ rank^-0.5; no repeated edges, no self-loops; edges shuffled) is ranked by

- ours: ``graph.algorithms.pagerank(n, src, dst)`` from the arrays (CSR build included);
- scipy: the textbook float64 power iteration on a ``scipy.sparse.csr_array`` (int32 indices)
  built from the same arrays (build included);
- networkx: ``nx.pagerank(G, tol=TOL / n)`` on a ``DiGraph`` built from the arrays (the build
  is timed separately and not counted; networkx stops when its L1 change is below n * tol,
  so tol / n makes its stopping rule ours).

All three must agree within 1e-6 (max abs). Then one sparse mat-vec pass is compared with
the memory-bandwidth floor: the bytes the pass must move in its format (indices + values +
indptr, x read once, y written once) over the copy bandwidth ``np.copyto`` reaches on a
large array (read + write bytes; best of several; one thread, and two threads since our
pass uses two).

    .venv/bin/python benchmarks/pagerank_bench.py [--sizes 100000:1000000,1000000:10000000]
        [--repeat 3] [--skip-networkx]

Prints markdown tables and writes them to benchmarks/results/pagerank_bench.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import networkx as nx
import numpy as np
import scipy
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graph import algorithms

TOL = 1e-10
ALPHA = 0.85


def power_law_digraph(n: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """m distinct edges, no self-loops, shuffled; int32 arrays (src, dst)."""
    rng = np.random.default_rng(seed)
    in_rank = rng.permutation(n)  # member of popularity rank r, for following
    out_rank = rng.permutation(n)  # ... for being active (following others)
    keys = np.zeros(0, np.int64)
    draw = int(m * 1.4)
    while keys.size < m:
        dst = in_rank[np.minimum((n * rng.random(draw) ** 4).astype(np.int64), n - 1)]
        src = out_rank[np.minimum((n * rng.random(draw) ** 2).astype(np.int64), n - 1)]
        keys = np.concatenate([keys, src.astype(np.int64) * n + dst])
        keys.sort()
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
        keys = keys[keys // n != keys % n]
        draw = int((m - keys.size) * 1.6) + 1000
    keys = rng.permutation(keys)[:m]
    return (keys // n).astype(np.int32), (keys % n).astype(np.int32)


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def scipy_pagerank(n: int, src: np.ndarray, dst: np.ndarray, tol: float = TOL,
                   alpha: float = ALPHA, max_iter: int = 200) -> tuple[np.ndarray, int, sp.csr_array]:
    """The plain float64 baseline: CSR of W^T, x' = alpha (A x/out + dangling) + (1-alpha)/n."""
    a = sp.csr_array((np.ones(src.size), (dst, src)), shape=(n, n))
    a.indices = a.indices.astype(np.int32)
    a.indptr = a.indptr.astype(np.int32)
    out = np.bincount(src, minlength=n).astype(np.float64)
    dangling = out == 0
    inv = np.where(dangling, 0.0, 1.0 / np.where(dangling, 1.0, out))
    x = np.full(n, 1.0 / n)
    for it in range(1, max_iter + 1):
        new = alpha * (a @ (x * inv)) + (alpha * x[dangling].sum() + 1 - alpha) / n
        err = np.abs(new - x).sum()
        x = new
        if err < tol:
            return x, it, a
    raise RuntimeError("scipy baseline did not converge")


def copy_bandwidth(threads: int, mib: int = 512, repeat: int = 7) -> float:
    """Bytes per second np.copyto moves (read + write) on `threads` threads, best of `repeat`."""
    a = np.ones(mib * 2**20 // 8)
    b = np.empty_like(a)
    np.copyto(b, a)  # fault the pages in
    parts = np.array_split(np.arange(a.size), threads)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts]

    def copy(lo: int, hi: int) -> None:
        np.copyto(b[lo:hi], a[lo:hi])

    def run() -> None:
        workers = [threading.Thread(target=copy, args=bound) for bound in bounds[1:]]
        for w in workers:
            w.start()
        copy(*bounds[0])
        for w in workers:
            w.join()

    seconds, _ = best_of(repeat, run)
    return 2 * a.nbytes / seconds


@dataclass
class PassProfile:
    passes32: int
    passes64: int
    kernel1_seconds: float  # one float32 mat-vec in our layout, one thread
    kernel_seconds: float  # ... as pagerank runs it (threads: see `threads`)
    threads: int
    kernel_bytes: int
    step_seconds: float  # one whole float32 step (vector work included), from the solve
    scipy_pass_seconds: float
    scipy_pass_bytes: int


def profile_passes(n: int, src: np.ndarray, dst: np.ndarray, scipy_matrix: sp.csr_array,
                   repeat: int) -> PassProfile:
    """Count our passes in one solve, and time one pass of each kind in isolation."""
    matrix = algorithms._TransitionMatrix.build(n, src, dst, None)
    counts = {"f32": 0, "f64": 0}
    step32 = algorithms._Float32Steps.step
    step64 = algorithms._TransitionMatrix.step64

    def counted32(self):  # type: ignore[no-untyped-def]
        counts["f32"] += 1
        return step32(self)

    def counted64(self, *args):  # type: ignore[no-untyped-def]
        counts["f64"] += 1
        return step64(self, *args)

    algorithms._Float32Steps.step = counted32  # type: ignore[method-assign]
    algorithms._TransitionMatrix.step64 = counted64  # type: ignore[method-assign]
    try:
        matrix.solve(ALPHA, None, TOL, 200)
    finally:
        algorithms._Float32Steps.step = step32  # type: ignore[method-assign]
        algorithms._TransitionMatrix.step64 = step64  # type: ignore[method-assign]
    reps = max(10, repeat)
    x32 = np.full(matrix.n_front, 1.0 / n, np.float32)
    y32 = np.zeros(matrix.chunk_indptr.size - 1, np.float32)
    xs = np.full(n, 1.0 / n)
    best = {"step": np.inf, "kernel": np.inf, "kernel1": np.inf, "scipy": np.inf}
    with algorithms._Float32Steps(matrix, ALPHA, None) as steps:
        r = np.random.default_rng(1).random(n).astype(np.float32)
        steps.start(r / r.sum())
        threads = len(steps.spmv.blocks)
        for _ in range(4):  # interleaved rounds: other work on the machine comes and goes
            best["step"] = min(best["step"], best_of(reps, steps.step)[0])
            best["kernel"] = min(best["kernel"], best_of(reps, partial(steps.spmv, x32, y32))[0])
            best["kernel1"] = min(best["kernel1"], best_of(reps, partial(
                algorithms._spmv_add, matrix.chunk_indptr, matrix.indices, matrix.data32, x32,
                y32))[0])
            best["scipy"] = min(best["scipy"], best_of(reps, lambda: scipy_matrix @ xs)[0])
    step_seconds, kernel_seconds = best["step"], best["kernel"]
    kernel1_seconds, scipy_pass_seconds = best["kernel1"], best["scipy"]
    rows = matrix.chunk_indptr.size - 1
    kernel_bytes = (matrix.indices.nbytes + matrix.data32.nbytes + matrix.chunk_indptr.nbytes
                    + 4 * matrix.n_front + 4 * rows)
    scipy_pass_bytes = (scipy_matrix.indices.nbytes + scipy_matrix.data.nbytes
                        + scipy_matrix.indptr.nbytes + 8 * n + 8 * n)
    return PassProfile(counts["f32"], counts["f64"], kernel1_seconds, kernel_seconds, threads,
                       kernel_bytes, step_seconds, scipy_pass_seconds, scipy_pass_bytes)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        n, m = item.split(":")
        sizes.append((int(n), int(m)))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000:1000000,1000000:10000000",
                        help="comma-separated n:m pairs")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--skip-networkx", action="store_true")
    args = parser.parse_args()
    bw1 = copy_bandwidth(1)
    bw2 = copy_bandwidth(2)
    print(f"copy bandwidth: {bw1 / 1e9:.1f} GB/s one thread, {bw2 / 1e9:.1f} GB/s two threads",
          flush=True)
    rows, passes = [], []
    for n, m in parse_sizes(args.sizes):
        t0 = time.perf_counter()
        src, dst = power_law_digraph(n, m, seed=0)
        print(f"n={n:,} m={m:,}: generated in {time.perf_counter() - t0:.1f} s; "
              f"max in-degree {np.bincount(dst).max():,}", flush=True)
        ours_s, ours = best_of(args.repeat, partial(algorithms.pagerank, n, src, dst, tol=TOL))
        print(f"  ours {ours_s:.3f} s", flush=True)
        scipy_s, (base, scipy_iters, scipy_matrix) = best_of(
            args.repeat, partial(scipy_pagerank, n, src, dst))
        print(f"  scipy {scipy_s:.3f} s ({scipy_iters} iterations)", flush=True)
        profile = profile_passes(n, src, dst, scipy_matrix, args.repeat)
        del scipy_matrix
        nx_build = nx_s = float("nan")
        diff_ours = diff_scipy = float("nan")
        if not args.skip_networkx:
            gc.collect()
            t0 = time.perf_counter()
            g = nx.DiGraph()
            g.add_nodes_from(range(n))
            g.add_edges_from(zip(src.tolist(), dst.tolist(), strict=True))
            nx_build = time.perf_counter() - t0
            print(f"  networkx graph built in {nx_build:.1f} s", flush=True)
            t0 = time.perf_counter()
            ranks = nx.pagerank(g, alpha=ALPHA, tol=TOL / n, max_iter=200)
            nx_s = time.perf_counter() - t0
            reference = np.fromiter((ranks[i] for i in range(n)), np.float64, n)
            del g, ranks
            gc.collect()
            diff_ours = float(np.abs(ours - reference).max())
            diff_scipy = float(np.abs(base - reference).max())
            print(f"  networkx {nx_s:.1f} s; max |ours - nx| {diff_ours:.1e}", flush=True)
        diff_ours_scipy = float(np.abs(ours - base).max())
        rows.append((n, m, ours_s, scipy_s, nx_s, nx_build, diff_ours, diff_scipy,
                     diff_ours_scipy, scipy_iters, profile))
        passes.append((n, m, profile))
    write_report(rows, bw1, bw2, args)


def write_report(rows, bw1: float, bw2: float, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = platform.processor() or platform.machine()
    sizes = ", ".join(f"{n:,} members / {m:,} edges" for n, m, *_ in rows)
    lines = [
        f"# PageRank benchmark ({stamp}, {cpu}, {os.cpu_count()} cores shared with other work)",
        "",
        f"Sizes: {sizes}. Synthetic power-law directed graphs (seed 0; in-degree popularity",
        "~ rank^-0.75, out-degree ~ rank^-0.5; distinct edges, shuffled). alpha 0.85, uniform",
        f"restart. Tolerance: L1 change < {TOL:g} for ours and the SciPy baseline; networkx gets",
        f"tol = {TOL:g} / n because it compares its L1 change with n * tol. Times are the best of",
        f"{args.repeat} (networkx: one run) and include building the matrix from the arrays",
        "(networkx's DiGraph build is listed apart and not counted). Other work shared the",
        "two cores during the run, so single timings vary by up to 2x; pass times are the",
        "best of 4 interleaved rounds of 10.",
        f"numpy {np.__version__}, scipy {scipy.__version__}, networkx {nx.__version__}.",
        "",
        ("| members | edges | ours s | scipy f64 s | networkx s (+ build) | vs networkx "
         "| vs scipy | max abs diff vs networkx: ours / scipy | ours vs scipy "
         "| passes: ours f32+f64 / scipy |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, m, ours_s, scipy_s, nx_s, nx_build, d_ours, d_scipy, d_os, iters, prof in rows:
        lines.append(
            f"| {n:,} | {m:,} | {ours_s:.3f} | {scipy_s:.3f} | {nx_s:.1f} (+{nx_build:.0f}) "
            f"| {nx_s / ours_s:.0f}x | {scipy_s / ours_s:.1f}x | {d_ours:.1e} / {d_scipy:.1e} "
            f"| {d_os:.1e} | {prof.passes32}+{prof.passes64} / {iters} |")
    lines += [
        "",
        (f"Copy bandwidth (np.copyto, 512 MiB, read + write bytes): {bw1 / 1e9:.1f} GB/s on one "
         f"thread, {bw2 / 1e9:.1f} GB/s on two. Floor = bytes the pass must move / bandwidth."),
        "",
        ("| members | edges | pass | bytes moved | time ms | floor ms (1 thread / 2) "
         "| multiple of floor (1 thread / 2) |"),
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for n, m, *_, prof in rows:
        threaded = [] if prof.threads == 1 else [
            (f"ours: float32 mat-vec, {prof.threads} threads", prof.kernel_seconds,
             prof.kernel_bytes)]
        for label, seconds, nbytes in [
            ("ours: float32 mat-vec, 1 thread", prof.kernel1_seconds, prof.kernel_bytes),
            *threaded,
            (f"ours: whole float32 step ({prof.threads} thread{'s' * (prof.threads > 1)})",
             prof.step_seconds, prof.kernel_bytes),
            ("scipy float64 A @ x", prof.scipy_pass_seconds, prof.scipy_pass_bytes),
        ]:
            f1, f2 = nbytes / bw1, nbytes / bw2
            lines.append(f"| {n:,} | {m:,} | {label} | {nbytes / 1e6:.0f} MB | "
                         f"{seconds * 1e3:.1f} | {f1 * 1e3:.1f} / {f2 * 1e3:.1f} | "
                         f"{seconds / f1:.1f}x / {seconds / f2:.1f}x |")
    measured = [r for r in rows if r[4] == r[4]]  # networkx not skipped (not NaN)

    def verdict(ok: bool) -> str:
        return "not measured" if not measured else "met" if ok else "NOT met"

    ok_speed = all(r[4] / r[2] >= 50 for r in measured)
    ok_diff = all(r[6] < 1e-6 and r[8] < 1e-6 for r in measured)
    # the floor is a DRAM floor: judge it where a pass's data do not fit the 32 MiB L3
    big = [r for r in rows if r[-1].kernel_bytes > 32 * 2**20] or rows
    ok_floor = all(r[-1].kernel1_seconds / (r[-1].kernel_bytes / bw1) < 3 for r in big)
    ok_floor_run = all(r[-1].kernel_seconds / (r[-1].kernel_bytes / bw1) < 3 for r in big)
    lines += [
        "",
        ("A whole step adds the vector work (scale x, restart term, L1 change) to the mat-vec. "
         "x is counted once (n reads), the least a pass can read; reading it per edge would "
         "double the floor."),
        "",
        (f"Targets: >= 50x networkx: {verdict(ok_speed)}; max abs diff < 1e-6: "
         f"{verdict(ok_diff)}; mat-vec < 3x the one-thread floor (graphs whose pass data "
         f"exceed the 32 MiB L3): on one thread "
         f"{'met' if ok_floor else 'NOT met'}, as pagerank runs it "
         f"{'met' if ok_floor_run else 'NOT met'}."),
    ]
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / "pagerank_bench.md"
    out.write_text(text, "utf-8")
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
