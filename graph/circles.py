"""Interest circles (兴趣圈子): Louvain community detection and ids that survive reruns.

Pure functions on compact arrays, following :mod:`graph.algorithms`: members are numbered
``0..n-1``, edges are parallel arrays ``src[e] -> dst[e]`` with optional weights. Nothing
here does I/O; :mod:`graph.segmentation` runs them off the request path.

* :func:`louvain` -- the Louvain method (Blondel et al. 2008): repeated local moving of
  single nodes to the neighbouring community with the best modularity gain, then
  aggregation of communities into nodes, until modularity stops improving. Edges are taken
  as undirected (a follow or a like ties two members whichever way it points); parallel
  edges add their weights; self-loops are ignored. Deterministic for a given ``seed``.
* :func:`modularity` -- Newman-Girvan modularity of a labelling (networkx's definition on
  the undirected graph), the reference the tests compare with.
* :func:`match_circles` -- stable ids: each new cluster takes the id of the previous circle
  it overlaps most (greedy on Jaccard similarity, best pair first, at least
  ``min_jaccard``); only clusters that match no previous circle get new ids.
"""

from __future__ import annotations

import secrets
from collections import Counter, deque
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

__all__ = ["CIRCLE_ID_PREFIX", "louvain", "match_circles", "modularity", "new_circle_id"]

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

CIRCLE_ID_PREFIX = "cir_"
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_circle_id() -> str:
    """A new random circle id (``cir_`` + 16 base-36 characters, like :func:`domain.ids.new_id`)."""
    return CIRCLE_ID_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(16))


def _symmetric(n: int, src: npt.ArrayLike, dst: npt.ArrayLike, weight: npt.ArrayLike | None) -> sp.csr_array:
    """The undirected adjacency ``W + Wᵀ`` without self-loops, as CSR (float64)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    s = np.asarray(src, np.int64)
    d = np.asarray(dst, np.int64)
    if s.shape != d.shape or s.ndim != 1:
        raise ValueError(f"src and dst must be 1-D arrays of one length, got {s.shape} and {d.shape}")
    if s.size and (min(int(s.min()), int(d.min())) < 0 or max(int(s.max()), int(d.max())) >= n):
        raise ValueError(f"edges hold member numbers outside 0..{n - 1}")
    w = np.ones(s.size) if weight is None else np.asarray(weight, np.float64)
    if w.shape != s.shape:
        raise ValueError(f"weight must have one value per edge ({s.size}), got shape {w.shape}")
    if w.size and (not np.isfinite(w).all() or float(w.min()) < 0):
        raise ValueError("weight must be finite and non-negative")
    keep = s != d
    rows = np.concatenate([s[keep], d[keep]])
    cols = np.concatenate([d[keep], s[keep]])
    vals = np.concatenate([w[keep], w[keep]])
    a = sp.csr_array((vals, (rows, cols)), shape=(n, n))
    a.sum_duplicates()
    return a


def modularity(n: int, src: npt.ArrayLike, dst: npt.ArrayLike, labels: npt.ArrayLike,
               weight: npt.ArrayLike | None = None, *, resolution: float = 1.0) -> float:
    """Modularity of *labels* on the undirected graph of the edges (0.0 for a graph without edges).

    ``Q = Σ_c [ L_c / m − γ (d_c / 2m)² ]`` with ``L_c`` the weight of edges inside ``c``,
    ``d_c`` the total degree of ``c`` and ``m`` the total edge weight, as networkx computes it.
    """
    a = _symmetric(n, src, dst, weight)
    lab = np.asarray(labels, np.int64)
    if lab.shape != (n,):
        raise ValueError(f"labels must have one entry per member ({n}), got shape {lab.shape}")
    two_m = float(a.sum())
    if two_m == 0:
        return 0.0
    coo = a.tocoo()
    inside = lab[coo.row] == lab[coo.col]
    degree = np.asarray(a.sum(axis=1)).ravel()
    _, dense = np.unique(lab, return_inverse=True)
    totals = np.bincount(dense, weights=degree)
    return float(coo.data[inside].sum() / two_m - resolution * float((totals / two_m) @ (totals / two_m)))


def _local_moving(a: sp.csr_array, resolution: float, rng: np.random.Generator, max_visits: int) -> tuple[I64, bool]:
    """One Louvain level: move single nodes while a move raises modularity; (communities, moved).

    Nodes are visited from a queue (the fast local moving of Traag 2015): first all, in a
    seeded random order, then only the neighbours of nodes that moved, until nothing moves.
    """
    n = a.shape[0]
    indptr: list[int] = a.indptr.tolist()
    indices: list[int] = a.indices.tolist()
    data: list[float] = a.data.tolist()
    k: list[float] = np.asarray(a.sum(axis=1)).ravel().tolist()
    two_m = float(sum(k))
    comm = list(range(n))
    tot = list(k)
    scale = resolution / two_m
    queue = deque(rng.permutation(n).tolist())
    queued = [True] * n
    moved_any = False
    visits = 0
    budget = max_visits * n
    while queue and visits < budget:
        i = queue.popleft()
        queued[i] = False
        visits += 1
        ci = comm[i]
        ki = k[i]
        links: dict[int, float] = {}
        lo, hi = indptr[i], indptr[i + 1]
        for p in range(lo, hi):
            j = indices[p]
            if j != i:  # an aggregated node's self-loop never changes its best community
                cj = comm[j]
                links[cj] = links.get(cj, 0.0) + data[p]
        tot[ci] -= ki
        best = ci
        best_gain = links.get(ci, 0.0) - tot[ci] * ki * scale
        for c, w in links.items():
            gain = w - tot[c] * ki * scale
            if gain > best_gain + 1e-12:  # ties keep the first found (staying first of all)
                best, best_gain = c, gain
        tot[best] += ki
        if best != ci:
            comm[i] = best
            moved_any = True
            for p in range(lo, hi):
                j = indices[p]
                if not queued[j] and comm[j] != best:
                    queued[j] = True
                    queue.append(j)
    return np.asarray(comm, np.int64), moved_any


def _canonical(labels: I64) -> I64:
    """Relabel communities 0, 1, ... in the order of their smallest member number."""
    _, first, dense = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[dense].astype(np.int64)


def louvain(n: int, src: npt.ArrayLike, dst: npt.ArrayLike, weight: npt.ArrayLike | None = None, *,
            resolution: float = 1.0, seed: int = 0, max_levels: int = 32, max_visits: int = 64,
            tol: float = 1e-7) -> I64:
    """Louvain communities of the undirected graph of the edges.

    Parameters
    ----------
    n : int
        Number of members.
    src, dst : int arrays, shape (m,)
        Edges; direction is ignored, parallel edges add up, self-loops are dropped.
    weight : float array, shape (m,), optional
        Non-negative edge weights (default 1).
    resolution : float
        γ of the modularity; above 1 favours smaller communities.
    seed : int
        Seeds the node visiting order: the same input and seed give the same labels.
    max_levels, max_visits : int
        Bounds on aggregation levels and on node visits per level (``max_visits × nodes``).
    tol : float
        A level must raise modularity by more than this to be kept.

    Returns
    -------
    labels : int64 array, shape (n,)
        Community of each member, numbered ``0..k-1`` in the order of each community's
        smallest member number. A member without edges is a community of its own.
    """
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    a = _symmetric(n, src, dst, weight)
    labels = np.arange(n, dtype=np.int64)
    if n == 0 or a.nnz == 0:
        return labels
    rng = np.random.default_rng(seed)
    best_q = modularity(n, *_edges_of(a), labels, _weights_of(a), resolution=resolution)
    level = a
    for _ in range(max_levels):
        comm, moved = _local_moving(level, resolution, rng, max_visits)
        if not moved:
            break
        _, comm = np.unique(comm, return_inverse=True)
        candidate = comm[labels]
        q = modularity(n, *_edges_of(a), candidate, _weights_of(a), resolution=resolution)
        if q <= best_q + tol:
            break
        labels, best_q = candidate, q
        k = int(comm.max()) + 1
        member = sp.csr_array((np.ones(len(comm)), (np.arange(len(comm)), comm)), shape=(len(comm), k))
        level = (member.T @ level @ member).tocsr()
        level.sum_duplicates()
    return _canonical(labels)


def _edges_of(a: sp.csr_array) -> tuple[I64, I64]:
    """Each undirected edge of a symmetric adjacency once (upper triangle)."""
    coo = sp.triu(a, k=1).tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64)


def _weights_of(a: sp.csr_array) -> F64:
    return np.asarray(sp.triu(a, k=1).tocoo().data, np.float64)


def match_circles(clusters: npt.ArrayLike, previous: Sequence[str | None], *, min_jaccard: float = 0.2,
                  new_id: Callable[[], str] = new_circle_id) -> list[str]:
    """Ids for the new clusters, reusing previous circle ids by overlap.

    Parameters
    ----------
    clusters : int array, shape (n,)
        The new cluster of each member, ``0..k-1``; ``-1`` for members in no circle.
    previous : sequence of str or None, length n
        Each member's circle id from the previous run (None: none).
    min_jaccard : float
        The least Jaccard similarity ``|new ∩ old| / |new ∪ old|`` (sizes counted over the
        members present now) for a new cluster to inherit an old id.
    new_id : callable
        Makes an id for a cluster that matches nothing.

    Returns
    -------
    ids : list of str, length k
        ``ids[c]`` is the circle id of cluster ``c``. Pairs are taken best Jaccard first
        (then larger overlap, then lower cluster number, then smaller old id), each old id
        and each cluster at most once, so the result is deterministic.
    """
    c = np.asarray(clusters, np.int64)
    if len(previous) != len(c):
        raise ValueError(f"previous has {len(previous)} entries, clusters has {len(c)}")
    if not 0 < min_jaccard <= 1:
        raise ValueError(f"min_jaccard must be in (0, 1], got {min_jaccard}")
    k = int(c.max()) + 1 if c.size else 0
    new_size = np.bincount(c[c >= 0], minlength=k)
    old_size: Counter[str] = Counter(p for p in previous if p is not None)
    overlap: Counter[tuple[int, str]] = Counter(
        (int(x), p) for x, p in zip(c.tolist(), previous) if x >= 0 and p is not None)
    pairs = []
    for (x, old), ov in overlap.items():
        jaccard = ov / (int(new_size[x]) + old_size[old] - ov)
        if jaccard >= min_jaccard:
            pairs.append((-jaccard, -ov, x, old))
    pairs.sort()
    ids: list[str | None] = [None] * k
    taken: set[str] = set()
    for _, _, x, old in pairs:
        if ids[x] is None and old not in taken:
            ids[x] = old
            taken.add(old)
    return [i if i is not None else new_id() for i in ids]
