"""Known-answer and property tests of graph.algorithms against networkx and the references."""

from __future__ import annotations

import random

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from graph import algorithms
from graph.algorithms import (
    ConvergenceError,
    approximate_betweenness,
    betweenness_reference,
    degrees,
    pagerank,
    pagerank_reference,
    two_hop_reach,
    two_hop_reach_reference,
)

TOL = 1e-6  # agreement with networkx required by the brief
NX_TOL = 1e-10  # our L1 tolerance; networkx gets NX_TOL / n (it compares against n * tol)


# ---- helpers ---------------------------------------------------------------------------------


def arrays(edges: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    e = np.array(edges, dtype=np.int32).reshape(-1, 2)
    return e[:, 0].copy(), e[:, 1].copy()


def nx_digraph(n: int, src, dst, weight=None) -> nx.DiGraph:
    """The DiGraph networkx sees: parallel edges' weights summed."""
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    w = np.ones(len(src)) if weight is None else weight
    for a, b, x in zip(src.tolist(), dst.tolist(), w.tolist(), strict=True):
        if g.has_edge(a, b):
            g[a][b]["weight"] += x
        else:
            g.add_edge(a, b, weight=x)
    return g


def nx_pagerank(n, src, dst, weight=None, personalization=None, alpha=0.85) -> np.ndarray:
    g = nx_digraph(n, src, dst, weight)
    pers = None if personalization is None else dict(enumerate(personalization.tolist()))
    pr = nx.pagerank(g, alpha=alpha, personalization=pers, tol=NX_TOL / n, max_iter=1000)
    return np.array([pr[i] for i in range(n)])


def nx_betweenness(n, src, dst, *, directed, normalized) -> np.ndarray:
    g = nx.DiGraph() if directed else nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(zip(src.tolist(), dst.tolist(), strict=True))
    bc = nx.betweenness_centrality(g, normalized=normalized)
    return np.array([bc[i] for i in range(n)])


def karate() -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Zachary's karate club as directed edges both ways, with its 'weight' attribute."""
    g = nx.karate_club_graph()
    edges = list(g.edges(data="weight"))
    src = np.array([u for u, v, _ in edges] + [v for u, v, _ in edges], np.int32)
    dst = np.array([v for u, v, _ in edges] + [u for u, v, _ in edges], np.int32)
    w = np.array([x for _, _, x in edges] * 2, np.float64)
    return g.number_of_nodes(), src, dst, w


def random_digraph(rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    return (rng.integers(0, n, m).astype(np.int32), rng.integers(0, n, m).astype(np.int32))


def power_law_digraph(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Chung-Lu-style directed graph: heavy-tailed in-degrees (hubs), milder out-degrees."""
    rng = np.random.default_rng(seed)
    dst = rng.permutation(n)[np.minimum((n * rng.random(m) ** 10).astype(np.int64), n - 1)]
    src = rng.permutation(n)[np.minimum((n * rng.random(m) ** 2).astype(np.int64), n - 1)]
    return src.astype(np.int32), dst.astype(np.int32)


@st.composite
def digraphs(draw, max_n: int = 25, max_m: int = 70):
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(0, max_m))
    ids = st.lists(st.integers(0, n - 1), min_size=m, max_size=m)
    return n, np.array(draw(ids), np.int32), np.array(draw(ids), np.int32)


# ---- PageRank: known answers -----------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_pagerank_of_karate_club_matches_networkx(weighted):
    n, src, dst, w = karate()
    weight = w if weighted else None

    ours = pagerank(n, src, dst, weight)

    expected = nx_pagerank(n, src, dst, weight)
    assert np.abs(ours - expected).max() < TOL
    assert np.abs(ours - pagerank_reference(n, src, dst, weight)).max() < 1e-9
    assert ours.dtype == np.float64 and ours.sum() == pytest.approx(1.0, abs=1e-12)


def test_pagerank_of_karate_club_known_values():
    # the administrator (33) and the instructor (0) lead, then 32, with or without weights
    n, src, dst, w = karate()

    unweighted = pagerank(n, src, dst)
    weighted = pagerank(n, src, dst, w)

    assert list(np.argsort(-unweighted)[:3]) == [33, 0, 32]
    assert list(np.argsort(-weighted)[:3]) == [33, 0, 32]
    assert unweighted[[33, 0, 32]] == pytest.approx([0.100919, 0.096997, 0.071693], abs=1e-6)
    assert weighted[[33, 0, 32]] == pytest.approx([0.096989, 0.088500, 0.075934], abs=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
def test_personalized_pagerank_of_karate_club_matches_networkx(weighted):
    n, src, dst, w = karate()
    weight = w if weighted else None
    personalization = np.zeros(n)
    personalization[[5, 24]] = [1.0, 3.0]  # not normalised: pagerank normalises

    ours = pagerank(n, src, dst, weight, personalization=personalization)

    expected = nx_pagerank(n, src, dst, weight, personalization=personalization)
    assert np.abs(ours - expected).max() < TOL
    assert np.abs(ours - pagerank_reference(n, src, dst, weight,
                                            personalization=personalization)).max() < 1e-9


def test_pagerank_with_dangling_isolated_parallel_and_self_loop_edges():
    # 0 -> 1 twice (weights summed), self-loop on 2, 3 dangling, 5 and 6 isolated
    src, dst = arrays([(0, 1), (0, 1), (1, 2), (2, 2), (2, 0), (2, 3), (4, 3), (1, 4)])
    weight = np.array([1.0, 2.5, 1.0, 0.5, 2.0, 1.0, 1.0, 0.25])
    n = 7
    personalization = np.array([0, 0, 1.0, 0, 0, 0, 2.0])

    for w in (None, weight):
        for pers in (None, personalization):
            for alpha in (0.85, 0.5, 0.0):
                ours = pagerank(n, src, dst, w, alpha=alpha, personalization=pers)
                expected = nx_pagerank(n, src, dst, w, personalization=pers, alpha=alpha)
                assert np.abs(ours - expected).max() < TOL, (w, pers, alpha)


def test_pagerank_zero_weight_edges_are_no_edges():
    src, dst = arrays([(0, 1), (1, 2), (2, 0), (2, 1)])

    with_zero = pagerank(3, src, dst, np.array([1.0, 1.0, 1.0, 0.0]))

    without = pagerank(3, src[:3], dst[:3])
    assert np.abs(with_zero - without).max() < 1e-12


def test_pagerank_without_edges_is_the_restart_distribution():
    n = 5
    empty = np.zeros(0, np.int32)
    assert np.allclose(pagerank(n, empty, empty), 0.2)
    p = np.array([0, 1.0, 0, 3.0, 0])
    assert np.allclose(pagerank(n, empty, empty, personalization=p), p / 4)


def test_pagerank_of_no_members_is_empty():
    empty = np.zeros(0, np.int32)
    result = pagerank(0, empty, empty)
    assert result.shape == (0,) and result.dtype == np.float64


def test_pagerank_on_a_graph_with_hubs_matches_the_reference_and_networkx():
    # in-degrees up to hundreds: exercises the chunked float32 rows and the refinement
    n = 3000
    src, dst = power_law_digraph(n, 30_000, seed=7)
    rng = np.random.default_rng(8)
    weight = rng.lognormal(0.0, 2.0, src.size)  # weights over several orders of magnitude
    assert np.bincount(dst).max() > 10 * algorithms._CHUNK

    for w in (None, weight):
        ours = pagerank(n, src, dst, w)
        assert np.abs(ours - pagerank_reference(n, src, dst, w)).max() < 1e-9
    assert np.abs(pagerank(n, src, dst) - nx_pagerank(n, src, dst)).max() < TOL


def test_pagerank_threaded_pass_gives_the_same_result(monkeypatch):
    n = 3000
    src, dst = power_law_digraph(n, 30_000, seed=9)
    single = pagerank(n, src, dst)
    monkeypatch.setattr(algorithms, "_THREADED_NNZ", 1)
    monkeypatch.setattr(algorithms, "_usable_cpus", lambda: 2)

    threaded = pagerank(n, src, dst)

    assert np.abs(threaded - single).max() < 1e-12


def test_pagerank_stops_on_the_l1_change_not_n_times_it():
    n, src, dst, _ = karate()
    loose = pagerank(n, src, dst, tol=1e-4)
    tight = pagerank(n, src, dst, tol=1e-13)
    # the returned vector is one float64 step past a point whose step changed it < tol, so it
    # is within tol * alpha / (1 - alpha) of the fixed point in L1
    assert np.abs(loose - tight).sum() < 1e-4 * 0.85 / 0.15
    assert np.abs(tight - pagerank_reference(n, src, dst, tol=1e-13)).sum() < 1e-12


def test_pagerank_raises_when_it_cannot_converge():
    n, src, dst, _ = karate()
    with pytest.raises(ConvergenceError, match="did not converge"):
        pagerank(n, src, dst, max_iter=3)
    with pytest.raises(ConvergenceError, match="did not converge"):
        pagerank_reference(n, src, dst, max_iter=3)


def test_spmv_kernel_adds_into_its_output():
    rng = np.random.default_rng(0)
    dense = (rng.random((6, 5)) < 0.5) * rng.random((6, 5))
    indptr = np.concatenate([[0], np.cumsum((dense != 0).sum(axis=1))]).astype(np.int32)
    indices = np.nonzero(dense)[1].astype(np.int32)
    data = dense[dense != 0]
    x = rng.random(5)
    y = np.ones(6)

    algorithms._spmv_add(indptr, indices, data, x, y)

    assert np.allclose(y, 1 + dense @ x)


# ---- PageRank: properties --------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(digraphs(), st.booleans(), st.booleans())
def test_pagerank_is_a_distribution_matching_networkx(graph, weighted, personalized):
    n, src, dst = graph
    rng = np.random.default_rng(len(src))
    weight = rng.random(src.size) * 3 if weighted else None
    personalization = None
    if personalized:
        personalization = np.zeros(n)
        personalization[rng.integers(0, n, 2)] = 1.0

    ours = pagerank(n, src, dst, weight, personalization=personalization)

    assert (ours >= 0).all()
    assert ours.sum() == pytest.approx(1.0, abs=1e-12)
    expected = nx_pagerank(n, src, dst, weight, personalization=personalization)
    assert np.abs(ours - expected).max() < TOL


@settings(max_examples=50, deadline=None)
@given(digraphs(), st.randoms(use_true_random=False))
def test_pagerank_relabelling_members_permutes_the_result(graph, random):
    n, src, dst = graph
    perm = np.array(random.sample(range(n), n), np.int32)  # new number of member v
    weight = np.linspace(0.5, 2.0, src.size)

    original = pagerank(n, src, dst, weight)
    relabelled = pagerank(n, perm[src], perm[dst], weight)

    assert np.abs(relabelled[perm] - original).max() < 1e-9


# ---- betweenness -----------------------------------------------------------------------------


@pytest.mark.parametrize("directed", [False, True])
@pytest.mark.parametrize("normalized", [True, False])
def test_exact_betweenness_of_karate_club_matches_networkx(directed, normalized):
    g = nx.karate_club_graph()
    src, dst = arrays(list(g.edges()))
    n = g.number_of_nodes()

    ours = approximate_betweenness(n, src, dst, samples=n, directed=directed,
                                   normalized=normalized)

    expected = nx_betweenness(n, src, dst, directed=directed, normalized=normalized)
    assert np.abs(ours - expected).max() < 1e-9
    assert np.abs(betweenness_reference(n, src, dst, directed=directed,
                                        normalized=normalized) - expected).max() < 1e-9


def test_betweenness_of_karate_club_published_values():
    # normalized betweenness as published for Zachary's club: 0 (0.4376) then 33 (0.3041)
    g = nx.karate_club_graph()
    src, dst = arrays(list(g.edges()))

    ours = approximate_betweenness(34, src, dst, samples=100)

    assert list(np.argsort(-ours)[:2]) == [0, 33]
    assert ours[0] == pytest.approx(0.437635, abs=1e-6)
    assert ours[33] == pytest.approx(0.304075, abs=1e-6)


@settings(max_examples=50, deadline=None)
@given(digraphs(), st.booleans(), st.booleans())
def test_exact_betweenness_matches_networkx_on_random_graphs(graph, directed, normalized):
    n, src, dst = graph  # includes self-loops, repeated edges, isolated members

    ours = approximate_betweenness(n, src, dst, samples=n, directed=directed,
                                   normalized=normalized)

    expected = nx_betweenness(n, src, dst, directed=directed, normalized=normalized)
    assert np.abs(ours - expected).max() < 1e-9


def test_sampled_betweenness_tracks_exact_betweenness():
    n = 600
    g = nx.barabasi_albert_graph(n, 2, seed=1)
    src, dst = arrays(list(g.edges()))
    exact = approximate_betweenness(n, src, dst, samples=n)

    estimate = approximate_betweenness(n, src, dst, samples=100, seed=11)

    # rank agreement (Spearman), the same leaders, and the values within a sampling error
    spearman = np.corrcoef(rankdata(exact), rankdata(estimate))[0, 1]
    assert spearman > 0.9
    top = set(np.argsort(-exact)[:10].tolist())
    assert len(top & set(np.argsort(-estimate)[:10].tolist())) >= 8
    assert np.abs(estimate - exact).sum() / exact.sum() < 0.4
    leader = int(np.argmax(exact))
    assert estimate[leader] == pytest.approx(exact[leader], rel=0.15)


def test_sampled_betweenness_is_seeded():
    n = 200
    src, dst = power_law_digraph(n, 800, seed=4)
    a = approximate_betweenness(n, src, dst, samples=20, seed=1)
    assert np.array_equal(a, approximate_betweenness(n, src, dst, samples=20, seed=1))
    assert not np.array_equal(a, approximate_betweenness(n, src, dst, samples=20, seed=2))


def test_sampled_betweenness_matches_networkx_sampling_scale():
    # with the same source set, our estimate is networkx's k-sample estimate
    n = 80
    src, dst = power_law_digraph(n, 300, seed=5)
    k, seed = 12, 3
    sources = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(zip(src.tolist(), dst.tolist(), strict=True))

    class FixedSample(random.Random):
        def sample(self, population, k, *, counts=None):
            return sources.tolist()

    bc = nx.betweenness_centrality(g, k=k, seed=FixedSample())
    expected = np.array([bc[i] for i in range(n)])

    ours = approximate_betweenness(n, src, dst, samples=k, seed=seed)

    assert np.abs(ours - expected).max() < 1e-9


# ---- two-hop reach ---------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(digraphs(max_n=30, max_m=120), st.integers(3, 8))
def test_two_hop_reach_is_exact_up_to_k(graph, k):
    n, src, dst = graph
    truth = two_hop_reach_reference(n, src, dst)

    ours = two_hop_reach(n, src, dst, exact_up_to=k)

    small = truth <= k
    assert np.array_equal(ours[small], truth[small])


def test_two_hop_reach_of_a_small_graph_by_hand():
    # 0 -> 1 -> 2 -> 3, 4 -> 2, 2 -> 0 (a cycle back), 5 alone
    src, dst = arrays([(0, 1), (1, 2), (2, 3), (4, 2), (2, 0), (2, 0)])

    reach = two_hop_reach(6, src, dst)

    # 0: from 2, and 1 and 4 via 2; 1: from 0, 2 via 0; 2: 1, 4, 0 via 1;
    # 3: 2, 1 and 4 via 2; 4: none; 5: none
    assert reach.tolist() == [3, 2, 3, 3, 0, 0]


def test_two_hop_reach_estimates_large_reaches_within_30_percent():
    n = 20_000
    src, dst = power_law_digraph(n, 120_000, seed=6)
    truth = two_hop_reach_reference(n, src, dst)
    k = 64

    ours = two_hop_reach(n, src, dst, exact_up_to=k, seed=1)

    small = truth <= k
    assert np.array_equal(ours[small], truth[small])
    relative = ours[~small] / truth[~small] - 1
    estimated = relative != 0
    assert estimated.sum() > 300  # the sketch path is exercised
    assert np.abs(relative).max() < 0.6  # no wild outliers
    assert np.mean(np.abs(relative) < 0.3) > 0.95  # rel. sd is at most 1/sqrt(62) = 12.7 %
    assert abs(np.mean(relative[estimated])) < 0.05  # unbiased (members' errors correlate)


def test_two_hop_reach_depends_only_on_the_seed():
    n = 5000
    src, dst = power_law_digraph(n, 40_000, seed=2)
    a = two_hop_reach(n, src, dst, exact_up_to=16, seed=5)
    assert np.array_equal(a, two_hop_reach(n, src, dst, exact_up_to=16, seed=5))
    assert not np.array_equal(a, two_hop_reach(n, src, dst, exact_up_to=16, seed=6))


def test_two_hop_reach_in_small_batches(monkeypatch):
    n = 5000
    src, dst = power_law_digraph(n, 40_000, seed=2)
    whole = two_hop_reach(n, src, dst, exact_up_to=16)
    monkeypatch.setattr(algorithms, "_CANDIDATE_BUDGET", 1000)
    assert np.array_equal(two_hop_reach(n, src, dst, exact_up_to=16), whole)


# ---- degrees and percentile ranks ------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(digraphs())
def test_degrees_count_distinct_edges_like_networkx(graph):
    n, src, dst = graph
    g = nx_digraph(n, src, dst)

    out_degree, in_degree = degrees(n, src, dst)

    assert out_degree.tolist() == [g.out_degree(v) for v in range(n)]
    assert in_degree.tolist() == [g.in_degree(v) for v in range(n)]
    assert out_degree.dtype == in_degree.dtype == np.int64


# ---- input validation ------------------------------------------------------------------------


def test_inputs_are_validated():
    src, dst = arrays([(0, 1), (1, 2)])
    with pytest.raises(ValueError, match="same length"):
        pagerank(3, src, dst[:1])
    with pytest.raises(ValueError, match="outside 0..2"):
        pagerank(3, src, np.array([1, 3], np.int32))
    with pytest.raises(ValueError, match="outside"):
        degrees(3, np.array([-1, 0], np.int32), dst)
    with pytest.raises(ValueError, match="non-negative"):
        pagerank(3, src, dst, np.array([1.0, -0.5]))
    with pytest.raises(ValueError, match="one value per edge"):
        pagerank(3, src, dst, np.array([1.0]))
    with pytest.raises(ValueError, match="finite"):
        pagerank(3, src, dst, np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="all zero"):
        pagerank(3, src, dst, personalization=np.zeros(3))
    with pytest.raises(ValueError, match="non-negative"):
        pagerank(3, src, dst, personalization=np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="one value per member"):
        pagerank(3, src, dst, personalization=np.ones(2))
    with pytest.raises(ValueError, match="alpha"):
        pagerank(3, src, dst, alpha=1.0)
    with pytest.raises(ValueError, match="tol"):
        pagerank(3, src, dst, tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        pagerank(3, src, dst, max_iter=0)
    with pytest.raises(ValueError, match="integer"):
        pagerank(3, np.array([0.0, 1.0]), dst)
    with pytest.raises(ValueError, match="n must be >= 0"):
        two_hop_reach(-1, src, dst)
    with pytest.raises(TypeError, match="n must be an int"):
        degrees(3.0, src, dst)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="samples"):
        approximate_betweenness(3, src, dst, samples=0)
    with pytest.raises(ValueError, match="samples"):
        approximate_betweenness(3, src, dst, samples=1)
    with pytest.raises(ValueError, match="exact_up_to"):
        two_hop_reach(3, src, dst, exact_up_to=2)


def test_no_members_gives_empty_results():
    empty = np.zeros(0, np.int32)
    assert approximate_betweenness(0, empty, empty, samples=0).shape == (0,)
    assert two_hop_reach(0, empty, empty).shape == (0,)
    out_degree, in_degree = degrees(0, empty, empty)
    assert out_degree.shape == in_degree.shape == (0,)
    assert pagerank_reference(0, empty, empty).shape == (0,)
