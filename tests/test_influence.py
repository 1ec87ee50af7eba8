"""KOL / KOC scoring (domain.influence) and fake-engagement signals (graph.authenticity).

Known-answer tests on hand-built graphs, plus loop-based reference implementations that the
vectorised versions are compared against on random inputs. Pure functions: no servers.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from domain.influence import (
    InfluenceInputs,
    InfluenceWeights,
    KocRule,
    RankingKind,
    engagement_rate,
    percentile_ranks,
    score_influence,
)
from graph.authenticity import reciprocal_ring_share, suspicion, young_burst_share

PROPERTY = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

DAY = 86_400_000_000
MINUTE = 60_000_000
T0 = 1_700_000_000_000_000  # an interaction-time origin, microseconds


def i32(values: Any) -> np.ndarray[Any, np.dtype[np.int32]]:
    return np.asarray(values, dtype=np.int32)


def i64(values: Any) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.asarray(values, dtype=np.int64)


def inputs(**overrides: Any) -> InfluenceInputs:
    """InfluenceInputs with every array defaulting to zeros of the length of the given ones."""
    n = len(next(iter(overrides.values())))
    base: dict[str, Any] = {f.name: np.zeros(n, dtype=np.float64) for f in dataclasses.fields(InfluenceInputs)}
    for name in ("followers", "two_hop_reach", "interactions_received", "posts", "invitees_bought",
                 "attributed_gmv"):
        base[name] = np.zeros(n, dtype=np.int64)
    base.update({k: np.asarray(v) for k, v in overrides.items()})
    return InfluenceInputs(**base)


# ---------------------------------------------------------------------------------------
# percentile ranks


def test_percentile_ranks_ties_share_the_lowest_rank():
    # the two 7s have one value (5) strictly below them, out of n - 1 = 3 others
    assert percentile_ranks([5, 7, 7, 9]).tolist() == [0.0, 1 / 3, 1 / 3, 1.0]
    assert percentile_ranks([3.0, 1.0, 2.0]).tolist() == [1.0, 0.0, 0.5]
    # three tied zeros are strictly ahead of nobody: 0, not the average rank's 1/3
    assert percentile_ranks([0, 0, 0, 1]).tolist() == [0.0, 0.0, 0.0, 1.0]
    assert percentile_ranks([2, 2, 1, 1]).tolist() == [2 / 3, 2 / 3, 0.0, 0.0]
    # a tie at the top does not reach 1: each 3 is strictly ahead of 1 of the 2 others
    assert percentile_ranks([1, 3, 3]).tolist() == [0.0, 0.5, 0.5]
    # most members at zero: 3 zeros, then two 4s (3 of 5 others below), then 9
    assert percentile_ranks([4, 0, 9, 0, 4, 0]).tolist() == [0.6, 0.0, 1.0, 0.0, 0.6, 0.0]


def test_percentile_ranks_without_signal_are_zero():
    assert percentile_ranks([4, 4, 4]).tolist() == [0.0, 0.0, 0.0]
    assert percentile_ranks([7]).tolist() == [0.0]
    assert percentile_ranks(np.array([], dtype=np.float64)).tolist() == []


def test_percentile_ranks_reject_nan_and_matrices():
    with pytest.raises(ValueError, match="NaN"):
        percentile_ranks([1.0, math.nan])
    with pytest.raises(ValueError, match="one-dimensional"):
        percentile_ranks([[1, 2], [3, 4]])


@PROPERTY
@given(st.lists(st.integers(-5, 5) | st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30))
def test_percentile_ranks_properties(values):
    p = percentile_ranks(values)
    v = np.asarray(values, dtype=np.float64)
    assert p.shape == v.shape and p.dtype == np.float64
    assert np.all((p >= 0.0) & (p <= 1.0))
    # monotone: strictly larger value -> strictly larger rank; equal values -> equal ranks
    assert np.array_equal(v[:, None] < v[None, :], p[:, None] < p[None, :])
    assert np.array_equal(v[:, None] == v[None, :], p[:, None] == p[None, :])
    if v.min() == v.max():
        assert np.all(p == 0.0)
    else:
        expected = (rankdata(v, method="min") - 1) / (len(v) - 1)
        np.testing.assert_allclose(p, expected, rtol=0, atol=1e-15)
        # the share of the other values strictly below each value
        strictly_below = (v[None, :] < v[:, None]).sum(axis=1)
        np.testing.assert_allclose(p, strictly_below / (len(v) - 1), rtol=0, atol=1e-15)
        assert p.min() == 0.0
        assert (p.max() == 1.0) == (np.count_nonzero(v == v.max()) == 1)


# ---------------------------------------------------------------------------------------
# engagement rate


def test_engagement_rate_definition_and_zero_cases():
    rate = engagement_rate(
        interactions_received=i64([10, 6, 5, 0, 3, 0]),
        posts=i32([2, 3, 0, 4, 1, 0]),
        followers=i64([5, 4, 10, 7, 0, 0]),
    )
    # 10 / (2 * 5), 6 / (3 * 4), no posts, nothing received, no followers, neither
    assert rate.tolist() == [1.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    assert rate.dtype == np.float64


def test_engagement_rate_does_not_overflow_int32():
    rate = engagement_rate(i32([2_000_000_000]), i32([100_000]), i32([100_000]))
    assert rate.tolist() == [0.2]


def test_engagement_rate_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in shape"):
        engagement_rate(i64([1, 2]), i64([1]), i64([1, 2]))


# ---------------------------------------------------------------------------------------
# configuration


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reach": -0.1}, r"InfluenceWeights\.reach must be a finite number >= 0"),
        ({"influence": math.nan}, r"InfluenceWeights\.influence must be a finite number >= 0"),
        ({"conversion": math.inf}, r"InfluenceWeights\.conversion must be a finite number >= 0"),
        ({"penalty": -1.0}, r"InfluenceWeights\.penalty must be a finite number >= 0"),
        ({"penalty": 1.5}, r"InfluenceWeights\.penalty must be between 0 and 1"),
        (
            {"influence": 0, "reach": 0, "engagement": 0, "conversion": 0, "bridging": 0},
            r"component weights .* must not all be 0",
        ),
    ],
)
def test_weights_validation_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InfluenceWeights(**kwargs)


def test_weights_accept_edge_values():
    w = InfluenceWeights(influence=0, reach=0, engagement=0, conversion=2, bridging=0, penalty=0)
    assert w.total() == 2.0
    assert InfluenceWeights(penalty=1).penalty == 1
    assert InfluenceWeights().total() == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"min_conversion_pct": 1.2}, "min_conversion_pct"), ({"max_reach_pct": -0.1}, "max_reach_pct"),
     ({"min_converted": -1}, "min_converted")],
)
def test_koc_rule_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"KocRule\.{field}"):
        KocRule(**kwargs)


def test_inputs_validation_names_the_field():
    with pytest.raises(ValueError, match=r"InfluenceInputs\.followers has length 2, expected 3"):
        inputs(pagerank=[0.1, 0.2, 0.3], followers=i64([1, 2]))
    with pytest.raises(ValueError, match=r"InfluenceInputs\.posts must hold integers"):
        inputs(pagerank=[0.1, 0.2], posts=np.array([1.5, 2.0]))
    with pytest.raises(ValueError, match=r"InfluenceInputs\.attributed_gmv must be >= 0"):
        inputs(pagerank=[0.1, 0.2], attributed_gmv=i64([5, -1]))
    with pytest.raises(ValueError, match=r"InfluenceInputs\.suspicion must be <= 1"):
        inputs(pagerank=[0.1, 0.2], suspicion=[0.0, 1.5])
    with pytest.raises(ValueError, match=r"InfluenceInputs\.bridging must be finite"):
        inputs(pagerank=[0.1, 0.2], bridging=[0.0, math.nan])


def test_inputs_are_copied_and_read_only():
    followers = i32([3, 4])
    x = inputs(pagerank=[0.1, 0.2], followers=followers)
    followers[0] = 99
    assert x.followers.tolist() == [3, 4] and x.followers.dtype == np.int64
    with pytest.raises(ValueError, match="read-only"):
        x.followers[0] = 1


# ---------------------------------------------------------------------------------------
# composite score on a hand-computed example

#: member 0: small audience, high engagement, converts best   -> the KOC
#: member 1: the big account, but sells nothing               -> second KOL
#: member 2: middling, sells nothing, half of its engagement is suspicious
#: member 3: solid on everything                              -> top KOL
#: (percentiles: share of the 3 other members strictly below; ties share the lowest)
FOUR: dict[str, Any] = dict(  # noqa: C408 - keyword form reads like the inputs
    pagerank=[0.1, 0.4, 0.2, 0.3],            # influence  = [0, 1, 1/3, 2/3]
    followers=i64([10, 100, 10, 50]),        # pct [0, 1, 0, 2/3] (the two 10s: nobody below)
    two_hop_reach=i64([20, 500, 40, 200]),   # pct [0, 1, 1/3, 2/3]; mean [0, 1, 1/6, 2/3]
                                             # reach      = [0, 1, 1/3, 2/3]
    interactions_received=i64([50, 200, 0, 100]),
    posts=i64([5, 10, 0, 4]),                # rate [50/50, 200/1000, 0, 100/200] = [1, .2, 0, .5]
                                             # engagement = [1, 1/3, 0, 2/3]
    invitees_bought=i64([3, 0, 0, 1]),       # pct [1, 0, 0, 2/3]
    attributed_gmv=i64([50_000, 0, 0, 10_000]),  # pct [1, 0, 0, 2/3]; mean [1, 0, 0, 2/3]
                                             # conversion = [1, 0, 0, 2/3]
    bridging=[0.0, 0.5, 0.1, 0.2],           # bridging   = [0, 1, 1/3, 2/3]
    suspicion=[0.0, 0.0, 0.5, 0.0],          # member 2 keeps 1 - 0.8 * 0.5 = 0.6
)


def test_components_of_the_four_member_example():
    s = score_influence(inputs(**FOUR))
    assert s.influence.tolist() == [0.0, 1.0, 1 / 3, 2 / 3]
    assert s.reach.tolist() == [0.0, 1.0, 1 / 3, 2 / 3]
    assert s.engagement_rate.tolist() == [1.0, 0.2, 0.0, 0.5]
    assert s.engagement.tolist() == [1.0, 1 / 3, 0.0, 2 / 3]
    assert s.conversion.tolist() == [1.0, 0.0, 0.0, 2 / 3]
    assert s.bridging.tolist() == [0.0, 1.0, 1 / 3, 2 / 3]
    assert s.penalty.tolist() == [0.0, 0.0, 0.4, 0.0]


def test_composite_score_of_the_four_member_example():
    s = score_influence(inputs(**FOUR))
    expected = [
        0.15 * 1 + 0.25 * 1,                                             # 0.40
        0.30 + 0.15 + 0.15 / 3 + 0.25 * 0 + 0.15,                       # 0.65 (sells nothing)
        (0.30 / 3 + 0.15 / 3 + 0 + 0.25 * 0 + 0.15 / 3) * (1 - 0.8 * 0.5),  # 0.20 * 0.6
        2 / 3,                                                           # 2/3 on every component
    ]
    assert s.score.tolist() == pytest.approx(expected, rel=1e-12, abs=0)
    assert s.score.tolist() == pytest.approx([0.40, 0.65, 0.12, 2 / 3], rel=1e-12, abs=0)
    assert s.koc_score.tolist() == pytest.approx([1.0, 0.0, 0.0, 2 / 3], rel=1e-12, abs=0)
    assert s.is_koc.tolist() == [True, False, False, False]
    assert s.ranking(RankingKind.KOL).tolist() == [3, 1, 0, 2]  # 2/3 > 0.65 > 0.40 > 0.12
    assert s.ranking(RankingKind.KOC).tolist() == [0]
    assert s.ranking(RankingKind.KOL).dtype == np.int64


def test_custom_weights_change_the_composite():
    only_conversion = InfluenceWeights(influence=0, reach=0, engagement=0, conversion=1, bridging=0, penalty=0)
    s = score_influence(inputs(**FOUR), only_conversion)
    assert s.score.tolist() == [1.0, 0.0, 0.0, 2 / 3]
    assert s.ranking(RankingKind.KOL).tolist() == [0, 3, 1, 2]  # 1 and 2 tie: lower index first


def test_member_explains_the_score():
    m = score_influence(inputs(**FOUR)).member(2)
    assert m.score == pytest.approx(0.12, rel=1e-12)
    assert (m.influence, m.reach, m.engagement, m.conversion, m.bridging) == (1 / 3, 1 / 3, 0.0, 0.0, 1 / 3)
    assert (m.penalty, m.suspicion, m.engagement_rate) == (0.4, 0.5, 0.0)
    assert (m.pagerank, m.betweenness) == (0.2, 0.1)
    assert (m.followers, m.two_hop_reach, m.invitees_bought, m.attributed_gmv) == (10, 40, 0, 0)
    assert m.is_koc is False
    assert type(m.followers) is int and type(m.score) is float


def test_member_index_out_of_range():
    s = score_influence(inputs(**FOUR))
    for bad in (-1, 4):
        with pytest.raises(IndexError, match="out of range 0..3"):
            s.member(bad)


def test_penalty_puts_a_ring_member_below_an_honest_twin():
    twins = {k: (v[:2] + v[:2] if isinstance(v, list) else np.concatenate([v[:2], v[:2]]))
             for k, v in FOUR.items()}
    # member 2 is member 0's twin (the KOC), member 3 member 1's (the big account); both twins
    # have a like ring. Every component is 0 or 2/3 (each pair ties; the lower pair gets 0):
    # member 0: engagement and conversion 2/3 -> (0.15 + 0.25) * 2/3 = 4/15, koc_score 2/3
    # member 1: influence, reach, bridging 2/3 -> (0.30 + 0.15 + 0.15) * 2/3 = 0.40, koc_score 0
    twins["suspicion"] = [0.0, 0.0, 0.5, 0.25]
    s = score_influence(inputs(**twins))
    assert s.score.tolist() == pytest.approx([4 / 15, 0.40, 4 / 15 * 0.6, 0.40 * 0.8], rel=1e-12, abs=0)
    assert s.score[1] > s.score[3] > 0
    assert s.score[3] == pytest.approx(s.score[1] * (1 - 0.8 * 0.25), rel=1e-12)
    assert s.score[0] > s.score[2] > 0
    assert s.koc_score[0] > s.koc_score[2] > 0
    assert s.koc_score[2] == pytest.approx(s.koc_score[0] * (1 - 0.8 * 0.5), rel=1e-12)
    assert s.koc_score[1] == s.koc_score[3] == 0.0  # sells nothing: nothing to discount
    assert s.ranking(RankingKind.KOL).tolist() == [1, 3, 0, 2]  # 0.40 > 0.32 > 0.2667 > 0.16
    lenient = score_influence(inputs(**twins), InfluenceWeights(penalty=0))
    assert lenient.score[3] == lenient.score[1]
    assert lenient.score[2] == lenient.score[0]


# ---------------------------------------------------------------------------------------
# KOC selection

#: member 0: few followers, many converted invitees        -> KOC
#: member 1: converts even more, but a huge audience       -> a KOL, not a KOC
#: members 2-5: ordinary audiences, sold nothing
SIX: dict[str, Any] = dict(  # noqa: C408
    pagerank=[0.1, 0.5, 0.1, 0.1, 0.1, 0.1],
    followers=i64([5, 1000, 20, 30, 40, 50]),         # reach = [0, 1, .2, .4, .6, .8]
    two_hop_reach=i64([10, 5000, 60, 80, 100, 120]),
    invitees_bought=i64([6, 8, 0, 0, 0, 0]),          # conversion = [.8, 1, 0, 0, 0, 0]
    attributed_gmv=i64([30_000, 90_000, 0, 0, 0, 0]),
)


def test_koc_is_high_conversion_with_modest_reach():
    s = score_influence(inputs(**SIX))
    assert s.reach.tolist() == [0.0, 1.0, 0.2, 0.4, 0.6, 0.8]
    assert s.conversion.tolist() == [0.8, 1.0, 0.0, 0.0, 0.0, 0.0]  # sold nothing: ahead of nobody
    assert s.is_koc.tolist() == [True, False, False, False, False, False]
    assert s.ranking(RankingKind.KOC).tolist() == [0]
    assert s.ranking(RankingKind.KOL)[0] == 1


def test_koc_thresholds_are_configurable():
    x = inputs(**SIX)
    assert score_influence(x, koc=KocRule(min_conversion_pct=0.81)).is_koc.tolist() == [False] * 6
    assert score_influence(x, koc=KocRule(max_reach_pct=1.0)).ranking(RankingKind.KOC).tolist() == [1, 0]


def test_koc_needs_real_sales():
    no_gmv = {**SIX, "attributed_gmv": i64([0, 90_000, 0, 0, 0, 0])}
    assert score_influence(inputs(**no_gmv)).is_koc[0]  # 6 invitees bought >= 1
    assert not score_influence(inputs(**no_gmv), koc=KocRule(min_converted=7)).is_koc[0]
    # attributed GMV counts as a sale on its own
    assert score_influence(inputs(**SIX), koc=KocRule(min_converted=7)).is_koc[0]


def test_nobody_is_koc_when_nobody_sold():
    s = score_influence(inputs(pagerank=[0.1, 0.2, 0.3], followers=i64([1, 2, 3])))
    assert s.conversion.tolist() == [0.0, 0.0, 0.0]
    assert s.is_koc.tolist() == [False, False, False]
    assert s.ranking(RankingKind.KOC).tolist() == []


def test_rankings_break_ties_by_member_number():
    s = score_influence(inputs(**SIX))
    tied = dataclasses.replace(
        s,
        score=np.array([0.5, 0.9, 0.5, 0.1, 0.9, 0.5]),
        koc_score=np.array([0.2, 0.7, 0.7, 0.2, 0.9, 0.0]),
        is_koc=np.array([True, True, True, True, False, False]),
    )
    assert tied.ranking(RankingKind.KOL).tolist() == [1, 4, 0, 2, 5, 3]
    assert tied.ranking(RankingKind.KOC).tolist() == [1, 2, 0, 3]


# ---------------------------------------------------------------------------------------
# score properties


@st.composite
def random_inputs(draw: st.DrawFn) -> InfluenceInputs:
    n = draw(st.integers(1, 12))
    counts = st.lists(st.integers(0, 50), min_size=n, max_size=n)
    reals = st.lists(st.floats(0, 1, allow_nan=False), min_size=n, max_size=n)
    return InfluenceInputs(
        pagerank=np.array(draw(reals)),
        followers=i64(draw(counts)),
        two_hop_reach=i64(draw(counts)),
        interactions_received=i64(draw(counts)),
        posts=i64(draw(counts)),
        invitees_bought=i64(draw(counts)),
        attributed_gmv=i64(draw(counts)) * 100,
        bridging=np.array(draw(reals)),
        suspicion=np.array(draw(reals)),
    )


weights_strategy = st.builds(
    InfluenceWeights,
    influence=st.floats(0, 5), reach=st.floats(0, 5), engagement=st.floats(0, 5),
    conversion=st.floats(0.01, 5), bridging=st.floats(0, 5), penalty=st.floats(0, 1),
)


@PROPERTY
@given(random_inputs(), weights_strategy)
def test_scores_are_in_unit_interval(x, weights):
    s = score_influence(x, weights)
    for name in ("score", "koc_score", "influence", "reach", "engagement", "conversion", "bridging", "penalty"):
        values = getattr(s, name)
        assert values.shape == (x.n,)
        assert np.all((values >= 0.0) & (values <= 1.0)), name


@PROPERTY
@given(random_inputs(), weights_strategy)
def test_penalty_never_increases_a_score(x, weights):
    honest = dataclasses.replace(x, suspicion=np.zeros(x.n))
    penalised, clean = score_influence(x, weights), score_influence(honest, weights)
    assert np.array_equal(penalised.conversion, clean.conversion)
    assert np.all(penalised.score <= clean.score)
    assert np.all(penalised.koc_score <= clean.koc_score)
    suspicious = (penalised.penalty > 1e-9) & (clean.score > 1e-9)  # clear of float rounding
    assert np.all(penalised.score[suspicious] < clean.score[suspicious])


@PROPERTY
@given(random_inputs())
def test_rankings_are_ordered_and_complete(x):
    s = score_influence(x)
    kol = s.ranking(RankingKind.KOL)
    assert sorted(kol.tolist()) == list(range(x.n))
    for a, b in itertools.pairwise(kol):
        assert s.score[a] > s.score[b] or (s.score[a] == s.score[b] and a < b)
    koc = s.ranking(RankingKind.KOC)
    assert sorted(koc.tolist()) == np.flatnonzero(s.is_koc).tolist()
    for a, b in itertools.pairwise(koc):
        assert s.koc_score[a] > s.koc_score[b] or (s.koc_score[a] == s.koc_score[b] and a < b)


# ---------------------------------------------------------------------------------------
# authenticity: like rings


def ring_share_reference(n: int, src: list[int], dst: list[int], min_mutual: int = 3) -> list[float]:
    pairs = Counter(zip(src, dst, strict=True))
    received = [0] * n
    from_ring = [0] * n
    for a, b in zip(src, dst, strict=True):
        received[b] += 1
        if a != b and pairs[(a, b)] >= min_mutual and pairs[(b, a)] >= min_mutual:
            from_ring[b] += 1
    return [r / t if t else 0.0 for r, t in zip(from_ring, received, strict=True)]


def test_like_ring_is_all_ring_and_strangers_are_none():
    src: list[int] = []
    dst: list[int] = []
    for a in range(4):  # members 0-3 like each other 5 times each
        for b in range(4):
            if a != b:
                src += [a] * 5
                dst += [b] * 5
    for stranger in range(5, 25):  # member 4 is liked once by each of 20 strangers
        src.append(stranger)
        dst.append(4)
    share = reciprocal_ring_share(25, i32(src), i32(dst))
    assert share.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0] + [0.0] * 20
    assert share.dtype == np.float64


def test_ring_needs_min_mutual_in_both_directions():
    # 0 <-> 1: 3 each way (ring); 2 -> 3 ten times, 3 -> 2 twice (not a ring); 5 -> 4 once
    src = [0] * 3 + [1] * 3 + [2] * 10 + [3] * 2 + [5]
    dst = [1] * 3 + [0] * 3 + [3] * 10 + [2] * 2 + [4]
    share = reciprocal_ring_share(6, i32(src), i32(dst))
    assert share.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert reciprocal_ring_share(6, i32(src), i32(dst), min_mutual=2).tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert reciprocal_ring_share(6, i32(src), i32(dst), min_mutual=4).tolist() == [0.0] * 6


def test_ring_share_is_a_share_of_received():
    # member 0 gets 5 likes from ring partner 1 and 15 from strangers 2..16
    src = [1] * 5 + [0] * 5 + list(range(2, 17))
    dst = [0] * 5 + [1] * 5 + [0] * 15
    share = reciprocal_ring_share(17, i32(src), i32(dst))
    assert share[0] == 0.25 and share[1] == 1.0 and share[2:].tolist() == [0.0] * 15


def test_ring_share_edge_cases():
    assert reciprocal_ring_share(3, i32([]), i32([])).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="outside 0..2"):
        reciprocal_ring_share(3, i32([0]), i32([3]))
    with pytest.raises(ValueError, match="differ in length"):
        reciprocal_ring_share(3, i32([0, 1]), i32([1]))
    with pytest.raises(ValueError, match="min_mutual"):
        reciprocal_ring_share(3, i32([0]), i32([1]), min_mutual=0)


@PROPERTY
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=60),
    st.integers(1, 4),
)))
def test_ring_share_matches_reference(case):
    n, rows, min_mutual = case
    src, dst = [a for a, _ in rows], [b for _, b in rows]
    got = reciprocal_ring_share(n, i32(src), i32(dst), min_mutual=min_mutual)
    assert got.tolist() == ring_share_reference(n, src, dst, min_mutual)


# ---------------------------------------------------------------------------------------
# authenticity: bursts from brand-new accounts


def burst_share_reference(
    n: int, src: list[int], dst: list[int], at: list[int], joined: list[int],
    young_days: float = 7.0, window_us: int = 3_600_000_000, burst_min: int = 10,
) -> list[float]:
    received = Counter(dst)
    young = [e for e in range(len(src)) if at[e] - joined[src[e]] < young_days * DAY]
    in_burst: set[int] = set()
    for e in young:  # every window starting at a young interaction's time
        window = [f for f in young if dst[f] == dst[e] and at[e] <= at[f] < at[e] + window_us]
        if len(window) >= burst_min:
            in_burst.update(window)
    hits = Counter(dst[e] for e in in_burst)
    return [hits[a] / received[a] if received[a] else 0.0 for a in range(n)]


def likes_to_author_0(times: list[int], account_age_days: float) -> tuple[int, Any, Any, Any, Any]:
    """Member 0 is liked by members 1..k at *times*; the likers joined *account_age_days* before T0."""
    k = len(times)
    joined = np.full(k + 1, T0 - int(account_age_days * DAY), dtype=np.int64)
    joined[0] = T0 - 400 * DAY
    return k + 1, i32(range(1, k + 1)), i32([0] * k), i64([T0 + t for t in times]), joined


def test_burst_from_new_accounts_is_all_burst():
    n, src, dst, at, joined = likes_to_author_0([i * 40_000_000 for i in range(15)], 2)  # 15 in 10 min
    share = young_burst_share(n, src, dst, at, joined)
    assert share.tolist() == [1.0] + [0.0] * 15


def test_same_likes_from_old_accounts_or_spread_out_are_not_a_burst():
    burst = [i * 40_000_000 for i in range(15)]
    assert young_burst_share(*likes_to_author_0(burst, 30)).tolist() == [0.0] * 16
    spread = [i * DAY // 3 for i in range(15)]  # one every 8 hours, accounts still young at T0
    assert young_burst_share(*likes_to_author_0(spread, 2)).tolist() == [0.0] * 16


def test_burst_share_counts_only_the_burst_part():
    # 15 burst likes from 2-day-old accounts, then 5 likes from 1-year-old accounts
    n, src, dst, at, joined = likes_to_author_0([i * MINUTE for i in range(20)], 2)
    joined[16:] = T0 - 365 * DAY
    assert young_burst_share(n, src, dst, at, joined)[0] == 0.75


def test_burst_window_is_half_open_and_needs_burst_min():
    nine = [i * MINUTE for i in range(9)]
    assert young_burst_share(*likes_to_author_0(nine, 1))[0] == 0.0
    ten = [i * MINUTE for i in range(10)]
    assert young_burst_share(*likes_to_author_0(ten, 1))[0] == 1.0
    # the tenth like lands exactly one window after the first: not inside [t, t + window)
    stretched = [*nine, 60 * MINUTE]
    assert young_burst_share(*likes_to_author_0(stretched, 1))[0] == 0.0
    assert young_burst_share(*likes_to_author_0(stretched, 1), window_us=60 * MINUTE + 1)[0] == 1.0
    # a 4-like burst only with burst_min=4
    assert young_burst_share(*likes_to_author_0(ten[:4], 1), burst_min=4)[0] == 1.0
    assert young_burst_share(*likes_to_author_0(ten[:4], 1), young_days=0.5)[0] == 0.0


def test_burst_share_validation():
    n, src, dst, at, joined = likes_to_author_0([0], 1)
    with pytest.raises(ValueError, match="joined_at must have shape"):
        young_burst_share(n, src, dst, at, joined[:1])
    with pytest.raises(ValueError, match="differ in length"):
        young_burst_share(n, src, dst, at[:0], joined)
    with pytest.raises(ValueError, match="window_us"):
        young_burst_share(n, src, dst, at, joined, window_us=0)
    with pytest.raises(ValueError, match="burst_min"):
        young_burst_share(n, src, dst, at, joined, burst_min=0)


@PROPERTY
@given(st.integers(1, 5).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.integers(0, 12)), max_size=40),
    st.lists(st.integers(0, 10), min_size=n, max_size=n),
    st.integers(1, 5),
)))
def test_burst_share_matches_reference(case):
    n, rows, joined_days, burst_min = case
    # times on a 15-minute grid over 3 hours; joined 0-10 days before T0
    src = [a for a, _, _ in rows]
    dst = [b for _, b, _ in rows]
    at = [T0 + k * 15 * MINUTE for _, _, k in rows]
    joined = [T0 - d * DAY for d in joined_days]
    got = young_burst_share(n, i32(src), i32(dst), i64(at), i64(joined),
                            young_days=5, window_us=60 * MINUTE, burst_min=burst_min)
    expected = burst_share_reference(n, src, dst, at, joined, young_days=5, window_us=60 * MINUTE,
                                     burst_min=burst_min)
    assert got.tolist() == pytest.approx(expected, rel=1e-12, abs=0)


# ---------------------------------------------------------------------------------------
# combined suspicion


def test_suspicion_combines_signals():
    got = suspicion(np.array([0.0, 0.5, 1.0, 0.0, 0.2]), np.array([0.0, 0.5, 0.0, 1.0, 0.5]))
    assert got.tolist() == [0.0, 0.75, 1.0, 1.0, 0.6]


def test_suspicion_validation():
    with pytest.raises(ValueError, match="differ in shape"):
        suspicion(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="ring_share must lie in"):
        suspicion(np.array([1.5]), np.array([0.0]))
    with pytest.raises(ValueError, match="burst_share must lie in"):
        suspicion(np.array([0.0]), np.array([math.nan]))


def test_signals_feed_the_score_end_to_end():
    # members 0-3 are a like ring; member 4 has the same raw numbers from honest likes
    src = [a for a in range(4) for b in range(4) if a != b for _ in range(5)]
    dst = [b for a in range(4) for b in range(4) if a != b for _ in range(5)]
    src += list(range(5, 20))  # member 4: 15 likes, like each ring member, from 15 strangers
    dst += [4] * 15
    n = 20
    ring = reciprocal_ring_share(n, i32(src), i32(dst))
    joined = np.full(n, T0 - 400 * DAY, dtype=np.int64)
    at = np.full(len(src), T0, dtype=np.int64) + np.arange(len(src), dtype=np.int64) * DAY
    burst = young_burst_share(n, i32(src), i32(dst), at, joined)
    sus = suspicion(ring, burst)
    assert sus[:5].tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]
    x = inputs(
        pagerank=[0.2] * 5 + [0.0] * 15,
        followers=i64([30] * 5 + [0] * 15),
        interactions_received=i64(np.bincount(dst, minlength=n)),
        posts=i64([3] * 5 + [0] * 15),
        suspicion=sus,
    )
    s = score_influence(x)
    assert s.score[4] > 0
    assert s.score[:4].tolist() == pytest.approx([s.score[4] * (1 - 0.8)] * 4, rel=1e-12, abs=0)
    assert s.ranking(RankingKind.KOL)[0] == 4
