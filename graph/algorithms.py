"""Graph algorithms on compact arrays: PageRank, betweenness, reach, degrees, percentiles.

Every function here is pure: it takes the member count ``n`` and the edges as parallel arrays
(``src[e] -> dst[e]``, member numbers ``0..n-1``, as built by :mod:`graph.projection`) and
returns numpy arrays indexed by member number. Nothing here does I/O; jobs compute the results
off the request path and cache them.

Each fast version has a short, obviously-correct reference beside it (``*_reference``); the
tests hold the fast versions to the references and to networkx.

Conventions
-----------
- Edges are directed, ``src -> dst`` (for follows: follower -> followee).
- Parallel edges are allowed. PageRank sums their weights, as networkx does for a ``DiGraph``
  whose edge weight is the sum of the parallel weights; the unweighted algorithms
  (betweenness, reach, degrees) count a pair of members once.
- Self-loops are allowed and treated as networkx treats them.
- Bad input raises :class:`ValueError` with a message saying what is wrong (``TypeError``
  when ``n`` is not an int).
"""

from __future__ import annotations

import itertools
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

try:  # the compiled CSR kernel behind ``csr_array @ x``; it adds into ``y`` and drops the GIL
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the SciPy build
    _csr_matvec = None

__all__ = [
    "ConvergenceError",
    "approximate_betweenness",
    "betweenness_reference",
    "degrees",
    "pagerank",
    "pagerank_reference",
    "two_hop_reach",
    "two_hop_reach_reference",
]

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
IndexArray = npt.NDArray[Any]  # int32, or int64 beyond 2**31 entries

_LOW32 = np.int64(0xFFFFFFFF)


class ConvergenceError(ArithmeticError):
    """An iterative method did not reach its tolerance within ``max_iter`` iterations."""


# --------------------------------------------------------------------------------------------
# input checks


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n >= 2**31 - 1:
        raise ValueError(f"n must be < 2**31 - 1, got {n}")


def _checked_ids(name: str, ids: npt.ArrayLike, n: int) -> I32:
    a = np.asarray(ids)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    if a.size == 0:
        return np.zeros(0, np.int32)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer member numbers, got dtype {a.dtype}")
    lo, hi = int(a.min()), int(a.max())
    if lo < 0 or hi >= n:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name} holds member number {bad}, outside 0..{n - 1} (n={n})")
    return a.astype(np.int32, copy=False)


def _checked_edges(n: int, src: npt.ArrayLike, dst: npt.ArrayLike) -> tuple[I32, I32]:
    _check_n(n)
    s = _checked_ids("src", src, n)
    d = _checked_ids("dst", dst, n)
    if s.shape != d.shape:
        raise ValueError(f"src and dst must have the same length, got {s.size} and {d.size}")
    return s, d


def _checked_weights(weight: npt.ArrayLike | None, m: int) -> F64 | None:
    if weight is None:
        return None
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 1 or w.size != m:
        raise ValueError(f"weight must be a 1-D array with one value per edge ({m}), got shape "
                         f"{w.shape}")
    if m and not np.isfinite(w).all():
        raise ValueError("weight must be finite")
    if m and float(w.min()) < 0:
        raise ValueError(f"weight must be non-negative, got {float(w.min())}")
    return w


def _restart_distribution(n: int, personalization: npt.ArrayLike | None) -> F64 | None:
    """The normalised personalization vector, or None for the uniform one."""
    if personalization is None:
        return None
    p = np.asarray(personalization, dtype=np.float64)
    if p.shape != (n,):
        raise ValueError(f"personalization must have one value per member ({n}), got shape "
                         f"{p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("personalization must be finite")
    if n and float(p.min()) < 0:
        raise ValueError(f"personalization must be non-negative, got {float(p.min())}")
    total = float(p.sum())
    if total <= 0:
        raise ValueError("personalization must have a positive entry (it is all zero)")
    return p / total


def _check_pagerank_parameters(alpha: float, tol: float, max_iter: int) -> None:
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    if not tol > 0.0:
        raise ValueError(f"tol must be > 0, got {tol}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")


# --------------------------------------------------------------------------------------------
# PageRank


def pagerank_reference(n: int, src: I32, dst: I32, weight: F64 | None = None, *,
                       alpha: float = 0.85, personalization: F64 | None = None,
                       tol: float = 1e-10, max_iter: int = 200) -> F64:
    """PageRank by the textbook float64 power iteration; the reference for :func:`pagerank`.

    Same parameters, semantics and result as :func:`pagerank`; one ``np.bincount`` over the
    edges per iteration, started from the uniform vector like networkx.
    """
    s, d = _checked_edges(n, src, dst)
    w = _checked_weights(weight, s.size)
    _check_pagerank_parameters(alpha, tol, max_iter)
    p = _restart_distribution(n, personalization)
    if n == 0:
        return np.zeros(0)
    if p is None:
        p = np.full(n, 1.0 / n)
    ew = np.ones(s.size) if w is None else w
    out = np.bincount(s, weights=ew, minlength=n)
    dangling = out == 0
    share = ew / np.where(dangling, 1.0, out)[s]  # each edge's share of its source's weight
    x = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        new = alpha * (np.bincount(d, weights=share * x[s], minlength=n)
                       + x[dangling].sum() * p) + (1 - alpha) * p
        err = float(np.abs(new - x).sum())
        x = new
        if err < tol:
            result: F64 = x / float(x.sum())
            return result
    raise ConvergenceError(f"PageRank did not converge to tol={tol} in {max_iter} iterations")


def pagerank(n: int, src: I32, dst: I32, weight: F64 | None = None, *, alpha: float = 0.85,
             personalization: F64 | None = None, tol: float = 1e-10,
             max_iter: int = 200) -> F64:
    """Weighted PageRank, personalised or not, of the members of a directed graph.

    The result is the stationary distribution of a walk that, at each step, with probability
    ``alpha`` follows an out-edge of the current member chosen in proportion to its weight
    (from a member without out-weight -- a *dangling* member -- it jumps according to
    ``personalization``), and otherwise restarts at a member drawn from ``personalization``.
    This is networkx's ``pagerank(G, alpha, personalization, weight="weight")`` for the
    ``DiGraph`` ``G`` on members ``0..n-1`` with these edges, parallel edges' weights summed,
    and dangling members' mass redistributed by ``personalization`` (networkx's default).

    Parameters
    ----------
    n : int
        Number of members; they are numbered ``0..n-1``.
    src, dst : int32 arrays, shape (m,)
        Edge ``e`` goes from ``src[e]`` to ``dst[e]`` (for follows: follower -> followee).
    weight : float64 array, shape (m,), optional
        Non-negative edge weights; default 1 per edge. Parallel edges' weights are summed.
    alpha : float, default 0.85
        Damping factor, in ``[0, 1)``.
    personalization : float64 array, shape (n,), optional
        Non-negative restart weights, normalised here to sum to 1; default uniform. Putting
        weight on a few members gives their personalised PageRank (random walk with restart).
    tol : float, default 1e-10
        Stop when one power-iteration step changes the vector by less than ``tol`` in L1
        norm. (networkx compares against ``n * tol``; pass it ``tol / n`` to compare.)
    max_iter : int, default 200
        Most power-iteration steps (matrix-vector passes) to spend.

    Returns
    -------
    float64 array, shape (n,)
        The PageRank of each member; non-negative, sums to 1. Empty when ``n == 0``.

    Raises
    ------
    ValueError
        On inconsistent input: lengths differ, member numbers outside ``0..n-1``, negative or
        non-finite weights, a personalization vector that is negative or all zero, or
        ``alpha``, ``tol``, ``max_iter`` out of range.
    ConvergenceError
        When ``max_iter`` steps do not reach ``tol``.

    Notes
    -----
    One step is ``x' = alpha (W^T D^-1 x + (d . x) p) + (1 - alpha) p`` with ``W`` the summed
    weight matrix, ``D`` the out-weights and ``d`` the dangling indicator, started from the
    uniform vector as in networkx. :func:`pagerank_reference` is exactly that, in float64.

    The fast version refines in mixed precision. Each round solves for the correction
    ``e = x* - x`` of the current float64 iterate ``x``: ``e' = r + alpha (W^T D^-1 e +
    (d . e) p)``, ``r`` the float64 step residual scaled to unit L1 norm, iterated in
    float32 to a relative L1 change of about 2e-6 (the float32 floor); then ``x += e`` and
    one float64 step of the real iteration measures the L1 change. That float64 change is
    the stopping test, and the vector returned is that step's result, as networkx returns
    its last iterate; so the answer is float64 power iteration's for the same ``tol``
    (within ``tol alpha / (1 - alpha)`` in L1), while nearly all passes cost float32.
    A typical solve is two rounds and three float64 steps; every step, float32 or float64,
    counts towards ``max_iter``.

    The float32 pass is SciPy's CSR kernel on ``W^T`` with int32 indices, float32 values
    and ``x`` pre-scaled by ``alpha / out-weight`` (so the matrix is never rescaled), into
    preallocated buffers. Members are renumbered for locality -- hubs first, then by
    descending in-degree, dangling members last -- and hub rows are cut into chunks of 64
    entries summed separately, because one float32 sum over a row of 100,000 followers loses
    five digits. The total of ``e`` is known in advance and reset each step, which removes
    the one mode float32 rounding would otherwise feed that decays only like ``alpha^k``.
    With two or more CPUs and over two million edges the pass runs on two threads (the
    kernel releases the GIL).

    References
    ----------
    .. [1] A. Langville and C. Meyer, "Deeper inside PageRank", Internet Mathematics 1 (2004).
    """
    s, d = _checked_edges(n, src, dst)
    w = _checked_weights(weight, s.size)
    _check_pagerank_parameters(alpha, tol, max_iter)
    p = _restart_distribution(n, personalization)
    if n == 0:
        return np.zeros(0)
    matrix = _TransitionMatrix.build(n, s, d, w)
    x_new = matrix.solve(alpha, p, tol, max_iter)
    return x_new[matrix.new_of_old]


_INNER_RELATIVE_TOL = 2e-6  # a float32 round stops at this L1 change of its unit-L1 problem
_INNER_STALL = 6  # ... or when the change has not dropped for this many steps (float32 floor)
_CHUNK = 64  # float32 sums run over at most this many entries (rounding error ~ sqrt(64) ulp)
_THREADED_NNZ = 2_000_000  # split the float32 pass across threads above this size


@dataclass
class _TransitionMatrix:
    """``W^T`` in CSR form on renumbered members, ready for fast PageRank passes.

    Members are renumbered for cache locality and cheap bookkeeping: first the *hubs* (more
    than ``_CHUNK`` in-edges), then the other members with out-weight, then the other
    dangling members (``n_front`` members come before those), each group by descending
    in-degree. ``new_of_old[v]`` is v's new number. Row ``i`` of the CSR holds the in-edges
    of member ``i`` (columns sorted when the sort keys pack into 64 bits); values are the
    (summed) weights scaled by the largest weight, in float64 and float32.

    For float32 passes the hub rows are cut into chunks of ``_CHUNK`` entries (virtual rows
    whose partial sums are added up afterwards) so that no float32 sum runs long: a hub
    with 300,000 followers summed in one float32 accumulator loses about five digits.
    """

    n: int
    n_front: int
    n_hubs: int
    new_of_old: I32
    old_of_new: I32
    dangling_hubs: I32  # new numbers of the dangling members among the hubs
    indptr: IndexArray
    indices: IndexArray
    data32: F32
    data64: F64
    inv_out: F64  # 1 / out-weight of the first n_front members (0 where dangling)
    chunk_indptr: IndexArray  # virtual rows: hub chunks, hub rows, the rest
    hub_chunk_starts: I64  # first chunk of each hub

    @classmethod
    def build(cls, n: int, src: I32, dst: I32, weight: F64 | None) -> _TransitionMatrix:
        if weight is not None:
            keep = weight > 0
            if not keep.all():
                src, dst, weight = src[keep], dst[keep], weight[keep]
            if weight.size:
                weight = weight / float(weight.max())  # PageRank is scale-free; keeps float32 sane
        m = src.size
        in_deg = np.bincount(dst, minlength=n)
        out_w = (np.bincount(src, minlength=n).astype(np.float64) if weight is None
                 else np.bincount(src, weights=weight, minlength=n))
        dangling = out_w == 0
        hub = in_deg > _CHUNK
        group = np.where(hub, 0, np.where(dangling, 2, 1)).astype(np.int64)
        # renumber by (group, descending in-degree, member number): one sort of packed keys
        if n < 2**30 and m < 2**31:
            key = ((group << 61) | ((m - in_deg).astype(np.int64) << 30)
                   | np.arange(n, dtype=np.int64))
            key.sort()
            old_of_new = (key & np.int64(2**30 - 1)).astype(np.int32)
            del key
        else:  # pragma: no cover - beyond a billion members
            old_of_new = np.lexsort((-in_deg, group)).astype(np.int32)
        new_of_old = np.empty(n, np.int32)
        new_of_old[old_of_new] = np.arange(n, dtype=np.int32)
        n_hubs = int(np.count_nonzero(hub))
        n_front = n - int(np.count_nonzero(dangling & ~hub))
        dangling_hubs = np.flatnonzero(dangling[old_of_new[:n_hubs]]).astype(np.int32)
        s2 = new_of_old[src]
        d2 = new_of_old[dst]
        index_type = np.int32 if m < 2**31 else np.int64
        row_len = in_deg[old_of_new]
        indptr = np.zeros(n + 1, index_type)
        np.cumsum(row_len, out=indptr[1:])
        # order the entries by (row, column): one sort of packed int64 keys (fast SIMD sort)
        n_bits = max(1, (n - 1).bit_length())
        m_bits = max(1, (m - 1).bit_length())
        if weight is None:
            packed = (d2.astype(np.int64) << 32) | s2
            packed.sort()
            if sys.byteorder == "little" and index_type is np.int32:
                indices = packed.view(np.int32)[::2].copy()  # the low halves
            else:  # pragma: no cover - big-endian or more than 2**31 edges
                indices = (packed & _LOW32).astype(index_type)
            del packed
            data64 = np.ones(m)
            data32 = np.ones(m, np.float32)
        else:
            if 2 * n_bits + m_bits <= 63:
                packed = ((d2.astype(np.int64) << (n_bits + m_bits))
                          | (s2.astype(np.int64) << m_bits) | np.arange(m, dtype=np.int64))
                packed.sort()
                order = packed & np.int64((1 << m_bits) - 1)
                del packed
            elif n_bits + m_bits <= 63:  # rows in order, columns in edge order
                packed = (d2.astype(np.int64) << m_bits) | np.arange(m, dtype=np.int64)
                packed.sort()
                order = packed & np.int64((1 << m_bits) - 1)
                del packed
            else:  # pragma: no cover - keys beyond 63 bits
                order = np.lexsort((s2, d2))
            indices = s2[order].astype(index_type, copy=False)
            data64 = weight[order]
            data32 = data64.astype(np.float32)
        del s2, d2
        inv_out = np.zeros(n_front)
        front_w = out_w[old_of_new[:n_front]]
        np.divide(1.0, front_w, out=inv_out, where=front_w > 0)
        # virtual rows for float32 passes: [chunks of hub rows][hub rows, empty][other rows]
        chunks_per_hub = -(-row_len[:n_hubs] // _CHUNK)
        hub_chunk_starts = np.zeros(n_hubs, np.int64)
        np.cumsum(chunks_per_hub[:-1], out=hub_chunk_starts[1:])
        first = np.repeat(indptr[:n_hubs].astype(np.int64), chunks_per_hub)
        within = np.arange(first.size, dtype=np.int64) - np.repeat(hub_chunk_starts,
                                                                   chunks_per_hub)
        chunk_starts = first + _CHUNK * within
        hub_end = indptr[n_hubs]
        chunk_indptr = np.concatenate([
            chunk_starts, np.full(n_hubs, hub_end), indptr[n_hubs:]]).astype(index_type)
        return cls(n, n_front, n_hubs, new_of_old, old_of_new, dangling_hubs, indptr, indices,
                   data32, data64, inv_out, chunk_indptr, hub_chunk_starts)

    # ---- the iteration -------------------------------------------------------------------

    def dangling_sum(self, x: npt.NDArray[np.floating[Any]]) -> float:
        """``d . x``: the mass on dangling members."""
        return float(x[self.n_front:].sum(dtype=np.float64)) + float(
            x[self.dangling_hubs].sum(dtype=np.float64))

    def step64(self, x: F64, alpha: float, p: F64 | None, out: F64) -> None:
        """``out = alpha (W^T D^-1 x + (d . x) p) + (1 - alpha) p``, all in float64."""
        c = alpha * self.dangling_sum(x) + (1.0 - alpha)
        if p is None:
            out.fill(c / self.n)
        else:
            np.multiply(p, c, out=out)
        scaled = x[: self.n_front] * self.inv_out
        scaled *= alpha
        _spmv_add(self.indptr, self.indices, self.data64, scaled, out)

    def solve(self, alpha: float, p: F64 | None, tol: float, max_iter: int) -> F64:
        """The PageRank vector in the new numbering (see :func:`pagerank`, Notes)."""
        n = self.n
        p_new = None if p is None else p[self.old_of_new]
        # start from the uniform vector, like networkx; every float64 step is a real iteration
        x = np.full(n, 1.0 / n)
        step = np.empty(n)
        self.step64(x, alpha, p_new, step)
        steps = 1
        residual = step - x
        size = float(np.abs(residual).sum())
        with _Float32Steps(self, alpha, p_new) as inner:
            while True:
                if size < tol:  # (refinement can leave -1e-17 where the answer is 0)
                    np.maximum(step, 0.0, out=step)
                    result: F64 = step / float(step.sum())
                    return result
                if steps >= max_iter or not math.isfinite(size):
                    raise ConvergenceError(f"PageRank did not converge to tol={tol} in "
                                           f"{max_iter} iterations (L1 change {size:.3g})")
                # float32 round: solve e = r + M e for the unit-L1 residual r; then x += size * e
                inner.start((residual / size).astype(np.float32))
                target = max(0.5 * tol / size, _INNER_RELATIVE_TOL)
                best, stalled = math.inf, 0
                while steps < max_iter - 1:
                    change = inner.step()
                    steps += 1
                    if change < target:
                        break
                    if change < best:
                        best, stalled = change, 0
                    else:
                        stalled += 1
                        if stalled >= _INNER_STALL:
                            break
                x += size * inner.e.astype(np.float64)
                # float64 step of the real iteration: its L1 change is the stopping test
                self.step64(x, alpha, p_new, step)
                steps += 1
                np.subtract(step, x, out=residual)
                size = float(np.abs(residual).sum())


class _Float32Steps:
    """The float32 iteration ``e <- r + alpha (W^T D^-1 e + (d . e) p)`` with its buffers.

    ``M`` keeps ``alpha`` of the mass, so the total of ``e`` would converge at the slow rate
    ``alpha``; its limit ``sum(r) / (1 - alpha)`` is known, so each step sets the total
    there (along ``p``) and only the fast modes are left to the iteration.
    """

    def __init__(self, matrix: _TransitionMatrix, alpha: float, p: F64 | None) -> None:
        self.matrix = matrix
        self.alpha = alpha
        n = matrix.n
        self.n_chunks = int(matrix.chunk_indptr.size - 1 - n)
        self.p32 = None if p is None else p.astype(np.float32)
        self.inv_out32 = (alpha * matrix.inv_out).astype(np.float32)
        self.spmv = _ParallelSpmv(matrix.chunk_indptr, matrix.indices, matrix.data32)
        # e lives behind the hub-chunk partial sums: buffer = [partials][e]
        self.buf = np.zeros(self.n_chunks + n, np.float32)
        self.buf_next = np.zeros(self.n_chunks + n, np.float32)
        self.diff = np.empty(n, np.float32)
        self.scaled = np.empty(matrix.n_front, np.float32)
        self.r32 = np.zeros(n, np.float32)
        self.r_sum = 0.0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.spmv.close()

    @property
    def e(self) -> F32:
        return self.buf[self.n_chunks:]

    def start(self, r32: F32) -> None:
        """Begin solving ``e = r + M e`` from ``e = r``."""
        self.r32 = r32
        self.r_sum = float(r32.sum(dtype=np.float64))
        self.buf[self.n_chunks:] = r32

    def step(self) -> float:
        """One step; returns its L1 change."""
        m, alpha, n_chunks = self.matrix, self.alpha, self.n_chunks
        e, e_next = self.buf[n_chunks:], self.buf_next[n_chunks:]
        kept = alpha * (float(e.sum(dtype=np.float64)) - m.dangling_sum(e))
        c = np.float32(self.r_sum / (1.0 - alpha) - self.r_sum - kept)
        if self.p32 is None:
            np.add(self.r32, c / np.float32(m.n), out=e_next)
        else:
            np.multiply(self.p32, c, out=e_next)
            e_next += self.r32
        np.multiply(e[:m.n_front], self.inv_out32, out=self.scaled)
        if n_chunks:
            partial = self.buf_next[:n_chunks]
            partial.fill(0)
            self.spmv(self.scaled, self.buf_next)
            e_next[:m.n_hubs] += np.add.reduceat(partial, m.hub_chunk_starts)
        else:
            self.spmv(self.scaled, self.buf_next)
        np.subtract(e_next, e, out=self.diff)
        np.abs(self.diff, out=self.diff)
        self.buf, self.buf_next = self.buf_next, self.buf
        return float(self.diff.sum())  # float32 pairwise sum: plenty for a stopping test


def _spmv_add(indptr: IndexArray, indices: IndexArray,
              data: npt.NDArray[np.floating[Any]], x: npt.NDArray[np.floating[Any]],
              y: npt.NDArray[np.floating[Any]]) -> None:
    """``y += A @ x`` for the CSR matrix ``A = (data, indices, indptr)``, without temporaries.

    ``data``, ``x`` and ``y`` must share one dtype and ``y`` must be contiguous.
    """
    rows = indptr.size - 1
    if indices.size == 0 or rows == 0:
        return
    if _csr_matvec is not None:
        _csr_matvec(rows, x.size, indptr, indices, data, x, y)
    else:  # pragma: no cover - only without SciPy's private kernel
        y += sp.csr_array((data, indices, indptr), shape=(rows, x.size)) @ x


def _usable_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - platforms without affinity


class _ParallelSpmv:
    """``y += A @ x`` in float32, split into row blocks of equal work on up to two threads."""

    def __init__(self, indptr: IndexArray, indices: IndexArray, data: F32) -> None:
        nnz = int(indices.size)
        threads = 2 if nnz >= _THREADED_NNZ and _usable_cpus() >= 2 else 1
        rows = indptr.size - 1
        cuts = [0] + [int(np.searchsorted(indptr, nnz * k // threads)) for k in
                      range(1, threads)] + [rows]
        self.blocks = []
        for a, b in itertools.pairwise(cuts):
            lo, hi = int(indptr[a]), int(indptr[b])
            self.blocks.append((a, b, indptr[a:b + 1] - indptr[a], indices[lo:hi], data[lo:hi]))
        self.pool = ThreadPoolExecutor(threads - 1) if threads > 1 else None

    def __call__(self, x: F32, y: F32) -> None:
        if self.pool is None:
            for a, b, ip, ix, dx in self.blocks:
                _spmv_add(ip, ix, dx, x, y[a:b])
            return
        (a0, b0, ip0, ix0, dx0), *rest = self.blocks
        futures = [self.pool.submit(_spmv_add, ip, ix, dx, x, y[a:b])
                   for a, b, ip, ix, dx in rest]
        _spmv_add(ip0, ix0, dx0, x, y[a0:b0])
        for f in futures:
            f.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


# --------------------------------------------------------------------------------------------
# shared helpers for the unweighted algorithms


def _unique_pairs(n: int, src: I32, dst: I32) -> tuple[I32, I32]:
    """The distinct pairs ``(src, dst)`` sorted by ``src`` then ``dst``."""
    packed = _sorted_unique((src.astype(np.int64) << 32) | dst.astype(np.int64))
    return (packed >> 32).astype(np.int32), (packed & _LOW32).astype(np.int32)


def _sorted_unique(values: I64) -> I64:
    """``np.unique`` for int64 keys by one SIMD sort (NumPy 2's hash-based unique is slower)."""
    values = np.sort(values)
    if values.size:
        keep = np.empty(values.size, bool)
        keep[0] = True
        np.not_equal(values[1:], values[:-1], out=keep[1:])
        values = values[keep]
    return values


def _csr_of(n: int, rows: I32, cols: I32) -> tuple[I64, I32]:
    """CSR (indptr, indices) of pairs already sorted by row."""
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, cols


def _gather_rows(indptr: I64, rows: I64 | I32) -> tuple[I64, I64]:
    """Positions of all CSR entries of ``rows`` (concatenated), and each one's row slot."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    total = int(lengths.sum())
    slot = np.repeat(np.arange(rows.size, dtype=np.int64), lengths)
    offsets = np.cumsum(lengths) - lengths
    positions = np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lengths)
    return positions, slot


# --------------------------------------------------------------------------------------------
# degrees


def degrees(n: int, src: I32, dst: I32) -> tuple[I64, I64]:
    """Out- and in-degree of each member, counting each distinct edge once.

    Parameters
    ----------
    n : int
        Number of members.
    src, dst : int32 arrays, shape (m,)
        Directed edges ``src[e] -> dst[e]``; repeated pairs count once, a self-loop counts
        once in each degree (as in networkx's ``DiGraph``).

    Returns
    -------
    (out_degree, in_degree) : two int64 arrays, shape (n,)
    """
    s, d = _checked_edges(n, src, dst)
    us, ud = _unique_pairs(n, s, d)
    return (np.bincount(us, minlength=n).astype(np.int64),
            np.bincount(ud, minlength=n).astype(np.int64))


# --------------------------------------------------------------------------------------------
# betweenness


def betweenness_reference(n: int, src: I32, dst: I32, *, directed: bool = False,
                          normalized: bool = True) -> F64:
    """Exact betweenness by Brandes' algorithm in plain Python; the reference.

    Same scaling as networkx's ``betweenness_centrality(G, normalized=normalized)``.
    """
    s, d = _checked_edges(n, src, dst)
    adjacency: list[set[int]] = [set() for _ in range(n)]
    for a, b in zip(s.tolist(), d.tolist(), strict=True):
        adjacency[a].add(b)
        if not directed:
            adjacency[b].add(a)
    centrality = [0.0] * n
    for source in range(n):
        order: list[int] = []
        parents: list[list[int]] = [[] for _ in range(n)]
        sigma = [0.0] * n
        dist = [-1] * n
        sigma[source], dist[source] = 1.0, 0
        queue = [source]
        for v in queue:  # the list grows while we walk it: a FIFO queue
            order.append(v)
            for w in sorted(adjacency[v]):
                if dist[w] < 0:
                    dist[w] = dist[v] + 1
                    queue.append(w)
                if dist[w] == dist[v] + 1:
                    sigma[w] += sigma[v]
                    parents[w].append(v)
        delta = [0.0] * n
        for w in reversed(order):
            for v in parents[w]:
                delta[v] += sigma[v] / sigma[w] * (1.0 + delta[w])
            if w != source:
                centrality[w] += delta[w]
    return np.asarray(centrality, dtype=np.float64) * _betweenness_scale(
        n, n - 1, directed=directed, normalized=normalized)


def _betweenness_scale(n: int, k: int, *, directed: bool, normalized: bool) -> float:
    """networkx's factor for dependency sums over ``k`` sources that exclude the member.

    A member's sum runs over the other ``n - 1`` members when every member is a source
    (``k = n - 1``); when sampling, over ``k`` sources (``k - 1`` for a sampled member).
    """
    pairs = n - 1  # possible targets other than the member itself (endpoints excluded)
    if pairs < 2:
        return 1.0
    if normalized:
        return 1.0 / (k * (pairs - 1))
    return pairs / (k * (1 if directed else 2))


def approximate_betweenness(n: int, src: I32, dst: I32, *, samples: int, seed: int = 0,
                            directed: bool = False, normalized: bool = True) -> F64:
    """Shortest-path betweenness, exact or estimated from a sample of BFS sources.

    Runs Brandes' dependency accumulation from ``samples`` distinct sources drawn uniformly
    (seeded), on the unweighted graph (repeated edges count once), and scales the sums to
    estimate the betweenness over all sources. With ``samples >= n`` every member is a
    source and the result equals networkx's ``betweenness_centrality(G,
    normalized=normalized)`` (``endpoints=False``) for ``G`` the ``Graph`` (``DiGraph`` when
    ``directed``) on members ``0..n-1`` with these edges.

    Parameters
    ----------
    n : int
        Number of members.
    src, dst : int32 arrays, shape (m,)
        Edges; with ``directed=False`` each is also walked backwards.
    samples : int
        Number of BFS sources, ``>= 1`` (any value when ``n == 0``); with fewer sources than
        members it must be ``>= 2``.
    seed : int, default 0
        Seed of the source sample.
    directed : bool, default False
        Whether paths follow edge direction.
    normalized : bool, default True
        Divide by the number of ordered pairs of other members, ``(n - 1)(n - 2)`` (networkx's
        normalisation, which for undirected graphs also halves the double counting);
        otherwise undirected values are halved, directed ones left as sums.

    Returns
    -------
    float64 array, shape (n,)

    Notes
    -----
    The estimator is networkx's for ``k`` sampled sources: a member's dependency sum is
    scaled by ``(n - 1) / k`` -- or ``(n - 1) / (k - 1)`` for a sampled source, which gets
    no dependency from its own BFS -- before normalising, which makes it unbiased. Its
    error shrinks like ``1 / sqrt(k)``; large values (the members one cares about) are
    estimated best. Each BFS is level-synchronous and vectorised per level (top-down over
    the frontier's out-edges or bottom-up over the unvisited members' in-edges, whichever
    is fewer); the cost is ``O(samples * m)``, a few seconds for 64 sources on a million
    edges. :func:`betweenness_reference` is the plain-Python Brandes it is tested against.
    """
    s, d = _checked_edges(n, src, dst)
    if n == 0:
        return np.zeros(0)
    if isinstance(samples, bool) or samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if samples < n and samples < 2:
        raise ValueError("samples must be >= 2 when sampling (a single source cannot "
                         "estimate its own betweenness)")
    if not directed:
        s, d = np.concatenate([s, d]), np.concatenate([d, s])
    rows, cols = _unique_pairs(n, s, d)
    out_ptr, out_idx = _csr_of(n, rows, cols)
    if directed:  # in-edges for bottom-up levels: the same pairs sorted by target
        packed = _sorted_unique((cols.astype(np.int64) << 32) | rows)
        in_ptr, in_idx = _csr_of(n, (packed >> 32).astype(np.int32),
                                 (packed & _LOW32).astype(np.int32))
        graph = _BfsGraph(out_ptr, out_idx, in_ptr, in_idx)
    else:
        graph = _BfsGraph(out_ptr, out_idx, out_ptr, out_idx)
    if samples >= n:
        sources = np.arange(n, dtype=np.int64)
    else:
        sources = np.sort(np.random.default_rng(seed).choice(n, size=samples, replace=False))
    dependency = np.zeros(n)
    for source in sources.tolist():
        _accumulate_dependencies(graph, source, dependency)
    if samples >= n:
        return dependency * _betweenness_scale(n, n - 1, directed=directed,
                                               normalized=normalized)
    k = int(sources.size)
    scale = np.full(n, _betweenness_scale(n, k, directed=directed, normalized=normalized))
    scale[sources] = _betweenness_scale(n, k - 1, directed=directed, normalized=normalized)
    estimate: F64 = dependency * scale
    return estimate


class _BfsGraph:
    """Out- and in-edge CSR of an unweighted graph, plus BFS scratch space (reused)."""

    def __init__(self, out_ptr: I64, out_idx: I32, in_ptr: I64, in_idx: I32) -> None:
        self.out_ptr, self.out_idx = out_ptr, out_idx
        self.in_ptr, self.in_idx = in_ptr, in_idx
        self.in_deg = np.diff(in_ptr)
        n = out_ptr.size - 1
        self.dist = np.full(n, -1, np.int32)  # -1 between searches
        self.scratch = np.zeros(n, np.int64)


def _accumulate_dependencies(graph: _BfsGraph, source: int, dependency: F64) -> None:
    """Add the Brandes dependencies of one BFS from ``source`` to ``dependency``.

    Level-synchronous and direction-optimising (Beamer et al.): a level is expanded
    top-down through the frontier's out-edges, or bottom-up through the in-edges of the
    unvisited members when those are fewer -- the big middle levels of a small-world graph.
    Either way one vectorised gather finds the (parent, child) pairs of the shortest-path
    DAG between this level and the next; path counts and dependencies live in per-level
    arrays.
    """
    dist, scratch = graph.dist, graph.scratch
    frontier = np.array([source], dtype=np.int64)
    sigma = np.ones(1)
    dist[source] = 0
    unvisited: I64 | None = None
    unvisited_in = int(graph.in_ptr[-1]) - int(graph.in_deg[source])
    levels: list[tuple[I64, F64, I64, I64]] = []  # frontier, sigma, edge parent slot, child
    level = 0
    while True:
        top_down = int((graph.out_ptr[frontier + 1] - graph.out_ptr[frontier]).sum())
        if top_down > unvisited_in:
            unvisited = (np.flatnonzero(dist < 0) if unvisited is None
                         else unvisited[dist[unvisited] < 0])
            positions, slot = _gather_rows(graph.in_ptr, unvisited)
            parents = graph.in_idx[positions]
            hit = dist[parents] == level
            scratch[frontier] = np.arange(frontier.size, dtype=np.int64)
            parent_slot = scratch[parents[hit]]
            found = unvisited[slot[hit]]
        else:
            positions, slot = _gather_rows(graph.out_ptr, frontier)
            children = graph.out_idx[positions]
            new = dist[children] < 0
            parent_slot = slot[new]
            found = children[new].astype(np.int64)
        if found.size == 0:
            levels.append((frontier, sigma, parent_slot, parent_slot))
            break
        # deduplicate without sorting: of the positions written for a member, one survives
        at = np.arange(found.size, dtype=np.int64)
        scratch[found] = at
        nxt = found[scratch[found] == at]
        scratch[nxt] = np.arange(nxt.size, dtype=np.int64)
        child_slot = scratch[found]
        dist[nxt] = level + 1
        unvisited_in -= int(graph.in_deg[nxt].sum())
        levels.append((frontier, sigma, parent_slot, child_slot))
        sigma = np.bincount(child_slot, weights=sigma[parent_slot],
                            minlength=nxt.size).astype(np.float64, copy=False)
        frontier = nxt
        level += 1
    # back-propagate: delta(v) = sum over children w of sigma(v)/sigma(w) (1 + delta(w))
    delta_below = np.zeros(0)
    sigma_below = np.zeros(0)
    for depth in range(len(levels) - 1, -1, -1):
        frontier, sigma, parent_slot, child_slot = levels[depth]
        if parent_slot.size:
            share = sigma[parent_slot] / sigma_below[child_slot] * (1.0 + delta_below[child_slot])
            delta = np.bincount(parent_slot, weights=share,
                                minlength=frontier.size).astype(np.float64, copy=False)
        else:
            delta = np.zeros(frontier.size)
        if depth:
            dependency[frontier] += delta
        graph.dist[frontier] = -1
        delta_below, sigma_below = delta, sigma


# --------------------------------------------------------------------------------------------
# two-hop reach


def two_hop_reach_reference(n: int, src: I32, dst: I32) -> I64:
    """Exact two-hop reach by sparse boolean matrix products; the reference.

    ``R = A + A @ A`` counts the walks of length 1 and 2 from ``u`` (row) to ``v``
    (column); the reach of ``v`` is the number of rows ``u != v`` with a non-zero in its
    column.
    """
    s, d = _checked_edges(n, src, dst)
    a = sp.csr_array((np.ones(s.size), (s, d)), shape=(n, n))
    reach = sp.csr_array(a + a @ a)
    reach.setdiag(0)
    reach.eliminate_zeros()
    return np.bincount(reach.indices, minlength=n).astype(np.int64)


def _uniform_hash(n: int, seed: int) -> F64:
    """splitmix64 of each member number and the seed, as a float in (0, 1)."""
    with np.errstate(over="ignore"):
        z = (np.arange(n, dtype=np.uint64)
             + np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64))
        z = z * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


_CANDIDATE_BUDGET = 1 << 24  # sketch candidates sorted at once (128 MiB of int64 keys)


def two_hop_reach(n: int, src: I32, dst: I32, *, exact_up_to: int = 64, seed: int = 0) -> I64:
    """How many members reach each member in one or two hops.

    ``reach[v]`` is the number of members ``u != v`` with a path of length 1 or 2 from
    ``u`` to ``v``: for follows (follower -> followee), v's followers and their followers.

    Parameters
    ----------
    n : int
        Number of members.
    src, dst : int32 arrays, shape (m,)
        Directed edges ``src[e] -> dst[e]``.
    exact_up_to : int, default 64
        Reaches up to this value (``k``, ``>= 3``) are exact; larger ones are estimated with
        a k-minimum-values sketch of ``k`` hashes.
    seed : int, default 0
        Seed of the member hash used by the sketches.

    Returns
    -------
    int64 array, shape (n,)

    Notes
    -----
    Every member gets a hash ``h(u)`` uniform in (0, 1) (splitmix64 of its number and the
    seed). ``S1(w)`` keeps the ``k + 1`` smallest hashes of ``{w} | followers(w)``; the
    two-hop set of ``v`` (plus ``v``) is the union of ``S1(w)`` over ``w`` in
    ``{v} | followers(v)``, and the ``k + 1`` smallest hashes of that union are among those
    of the sketches. When none of those sketches was truncated the union is the whole set
    and the count is exact (this covers every member whose reach is at most ``k``, and
    more). Otherwise, with ``U`` the ``k``-th smallest hash of the set without ``v``, the
    estimate is ``(k - 1) / U`` -- unbiased, with relative standard error about
    ``1 / sqrt(k - 2)`` (12.7 % for the default 64); it is rounded, capped at ``n - 1``
    (which makes it slightly low near that cap) and may fall below ``k``. A member with more than ``k`` followers only needs sketch entries below its own
    sketch's largest hash, which bounds the work for celebrities; the rest is sorting
    packed int64 keys, in batches of about 16 million.
    """
    s, d = _checked_edges(n, src, dst)
    if isinstance(exact_up_to, bool) or exact_up_to < 3:
        raise ValueError(f"exact_up_to must be >= 3, got {exact_up_to}")
    if n == 0:
        return np.zeros(0, np.int64)
    k = int(exact_up_to)
    keep = k + 1
    h = _uniform_hash(n, seed)
    by_hash = np.argsort(h, kind="stable")
    rank = np.empty(n, np.int64)
    rank[by_hash] = np.arange(n, dtype=np.int64)
    sorted_hash = h[by_hash]
    # distinct edges without self-loops, grouped by target: follower lists
    loops = s == d
    fs, fd = _unique_pairs(n, d[~loops], s[~loops])  # (followee, follower), sorted
    # S1(w): the `keep` smallest ranks of {w} | followers(w), as a CSR over w
    s1_keys = np.sort(np.concatenate([(fs.astype(np.int64) << 32) | rank[fd],
                                      (np.arange(n, dtype=np.int64) << 32) | rank]))
    s1_owner = (s1_keys >> 32).astype(np.int32)
    full_len = np.bincount(s1_owner, minlength=n)
    s1_start = np.zeros(n + 1, np.int64)
    np.cumsum(full_len, out=s1_start[1:])
    within = np.arange(s1_keys.size, dtype=np.int64) - s1_start[s1_owner]
    s1_keys = s1_keys[within < keep]
    s1_len = np.minimum(full_len, keep)
    s1_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(s1_len, out=s1_ptr[1:])
    truncated = full_len > keep
    s1_rank = s1_keys & _LOW32
    # a member is estimated when any sketch it unions was truncated
    estimated = truncated.copy()
    estimated[fs[truncated[fd]]] = True
    # for members whose own sketch is truncated, only ranks <= its largest one matter
    threshold = np.full(n, np.int64(2**32))
    own = np.flatnonzero(truncated)
    threshold[own] = s1_rank[s1_ptr[own] + keep - 1]
    # sketch contributions: (owner v, sketch of w) for w in followers(v), and w = v itself
    # (grouped by owner: v's own entry first, then its followers; fs is sorted already)
    followers = np.bincount(fs, minlength=n)
    group = np.zeros(n + 1, np.int64)
    np.cumsum(followers + 1, out=group[1:])
    owners = np.repeat(np.arange(n, dtype=np.int32), followers + 1)
    sketches = np.empty(owners.size, np.int32)
    sketches[group[:-1]] = np.arange(n, dtype=np.int32)
    sketches[np.arange(fs.size) + fs + 1] = fd  # edge e sits after its owner's e-th entry
    lengths = s1_len[sketches].astype(np.int64)
    capped = np.flatnonzero(truncated[owners])
    if capped.size:
        lengths[capped] = _prefix_lengths(s1_rank, s1_ptr[sketches[capped]],
                                          lengths[capped], threshold[owners[capped]])
    reach = np.zeros(n, np.int64)
    bounds = np.zeros(n + 1, np.int64)  # candidates before each owner
    np.cumsum(np.bincount(owners, weights=lengths, minlength=n).astype(np.int64),
              out=bounds[1:])
    first = 0
    while first < n:  # batches of whole owners with about _CANDIDATE_BUDGET candidates
        last = int(np.searchsorted(bounds, bounds[first] + _CANDIDATE_BUDGET, side="right")) - 1
        last = min(max(last, first + 1), n)
        lo, hi = int(group[first]), int(group[last])
        _reach_batch(first, last, owners[lo:hi], sketches[lo:hi], lengths[lo:hi], s1_ptr,
                     s1_rank, rank, sorted_hash, estimated, k, reach)
        first = last
    return reach


def _prefix_lengths(values: I64, starts: I64, lengths: I64, limits: I64) -> I64:
    """For each sorted run ``values[starts[i]:starts[i] + lengths[i]]``, how many are <= limits[i].

    A vectorised scan one position at a time over the runs still going: the work is the
    sum of the answers plus one per run (runs are short: at most ``k + 1``).
    """
    count = np.zeros(starts.size, np.int64)
    live = np.flatnonzero(lengths > 0)
    while live.size:
        at = starts[live] + count[live]
        live = live[values[at] <= limits[live]]
        count[live] += 1
        live = live[count[live] < lengths[live]]
    return count


def _reach_batch(first: int, last: int, owners: I32, sketches: I32, lengths: I64,
                 s1_ptr: I64, s1_rank: I64, rank: I64, sorted_hash: F64,
                 estimated: npt.NDArray[np.bool_], k: int, reach: I64) -> None:
    """Fill ``reach[first:last]`` from the sketch prefixes ``S1(sketches)[:lengths]``."""
    starts = s1_ptr[sketches]
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    positions = np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lengths)
    owner = np.repeat(owners.astype(np.int64) - first, lengths)
    keys = _sorted_unique((owner << 32) | s1_rank[positions])
    owner = keys >> 32
    ranks = keys & _LOW32
    mine = ranks != rank[first + owner]  # drop v itself
    owner, ranks = owner[mine], ranks[mine]
    size = last - first
    n_others = rank.size - 1
    count = np.bincount(owner, minlength=size)
    reach[first:last] = count
    est = np.flatnonzero(estimated[first:last])
    if est.size:
        group = np.zeros(size + 1, np.int64)
        np.cumsum(count, out=group[1:])
        kth = sorted_hash[ranks[group[est] + k - 1]]
        reach[first + est] = np.minimum(np.rint((k - 1) / kth), n_others).astype(np.int64)
