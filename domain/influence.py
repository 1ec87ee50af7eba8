"""KOL / KOC scoring (意见领袖 / 关键意见消费者): pure functions over per-member arrays.

Inputs are the per-member numbers of one scope (the whole tenant, one community or one
topic), indexed ``0..n-1`` like :class:`graph.projection.EngagementGraph`; the graph layer
computes them (PageRank, betweenness, follower counts, conversions, fake-engagement
suspicion) and :func:`score_influence` turns them into scores an operator can act on.

Every component is a **percentile rank within the scope** (see :func:`percentile_ranks`):
the share of the *other* members of the scope whose value is strictly lower, in ``[0, 1]``.
So components measured in different units (PageRank mass, follower counts, yuan) can be
averaged, and "0.9" always means "strictly ahead of 90% of the other members". Tied
members share the lowest rank of their tie: members with nothing to show (no invitees, no
GMV, ...) are strictly ahead of nobody and get 0, however many of them there are. Only a
member alone at the top gets 1.

Components ("why this member")
------------------------------
influence
    Percentile of weighted PageRank on the engagement graph: how much attention flows to
    the member, counting attention from attended-to members more.
reach
    Percentile of the average of two percentiles: followers (direct audience) and two-hop
    reach (members reachable through followers of followers).
engagement
    Percentile of the engagement rate (:func:`engagement_rate`): how strongly the audience
    reacts per post and per follower.
conversion
    Percentile of the average of two percentiles: invitees who bought (direct invitees with
    at least one paid purchase) and attributed GMV (paid purchases credited to the member).
bridging
    Percentile of betweenness centrality: how often the member sits on the shortest paths
    between other members, i.e. connects otherwise separate circles.

Scores
------
score (KOL, 意见领袖)
    Weighted average of the five components (weights in :class:`InfluenceWeights`), then
    discounted for fake engagement: ``average * (1 - weights.penalty * suspicion)``.
koc_score (KOC, 关键意见消费者)
    A KOC is an ordinary consumer whose recommendations make other people buy: high
    conversion with modest reach. ``koc_score = conversion * (1 - weights.penalty *
    suspicion)``; who counts as a KOC at all is decided by :class:`KocRule`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "InfluenceInputs",
    "InfluenceScores",
    "InfluenceWeights",
    "KocRule",
    "MemberInfluence",
    "RankingKind",
    "engagement_rate",
    "percentile_ranks",
    "score_influence",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
Counts = npt.NDArray[np.integer[Any]]
Reals = npt.NDArray[np.floating[Any]]


class RankingKind(StrEnum):
    """Which ranking to read from :meth:`InfluenceScores.ranking`."""

    KOL = "KOL"
    """Opinion leaders (意见领袖): everyone, by composite ``score``."""
    KOC = "KOC"
    """Key opinion consumers (关键意见消费者): only members passing :class:`KocRule`, by ``koc_score``."""


_COMPONENTS = ("influence", "reach", "engagement", "conversion", "bridging")


@dataclass(frozen=True)
class InfluenceWeights:
    """How much each component counts in the KOL ``score``, and how hard fake engagement is punished.

    The five component weights are relative: only their proportions matter (they are
    divided by their sum), so ``(2, 1, 1, 1, 1)`` and ``(0.4, 0.2, 0.2, 0.2, 0.2)`` rank
    identically. A weight of 0 leaves that component out.

    Attributes
    ----------
    influence, reach, engagement, conversion, bridging : float
        Non-negative relative weights of the components; at least one must be positive.
    penalty : float, default 0.8
        Between 0 and 1: the share of the score removed from a member whose received
        engagement is entirely suspicious (``suspicion == 1``). With 0.8, such a member
        keeps 20% of their score; with ``suspicion == 0.5`` they keep 60%.

    Raises
    ------
    ValueError
        Naming the field, if a weight is negative or not finite, ``penalty`` exceeds 1,
        or all component weights are 0.
    """

    influence: float = 0.30
    reach: float = 0.15
    engagement: float = 0.15
    conversion: float = 0.25
    bridging: float = 0.15
    penalty: float = 0.8

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
                raise ValueError(f"InfluenceWeights.{f.name} must be a finite number >= 0, got {value!r}")
        if self.penalty > 1:
            raise ValueError(f"InfluenceWeights.penalty must be between 0 and 1, got {self.penalty!r}")
        if self.total() <= 0:
            raise ValueError(
                "InfluenceWeights: the component weights (influence, reach, engagement, conversion, "
                "bridging) must not all be 0"
            )

    def total(self) -> float:
        """Sum of the five component weights (the divisor of the weighted average)."""
        return float(sum(getattr(self, name) for name in _COMPONENTS))


@dataclass(frozen=True)
class KocRule:
    """Who counts as a KOC (关键意见消费者): high conversion, modest reach, real sales.

    A member is a KOC when **all** of these hold:

    * ``conversion >= min_conversion_pct`` -- their conversion percentile is high
      (default: strictly ahead of at least 80% of the other members of the scope);
    * ``reach <= max_reach_pct`` -- their reach percentile is modest (default: strictly
      ahead of at most 60% of the others); members with big audiences are KOLs, not KOCs;
    * they actually sold something: ``invitees_bought >= min_converted`` (default 1) or
      ``attributed_gmv > 0``.

    Raises
    ------
    ValueError
        Naming the field, if a percentile lies outside ``[0, 1]`` or ``min_converted < 0``.
    """

    min_conversion_pct: float = 0.8
    max_reach_pct: float = 0.6
    min_converted: int = 1

    def __post_init__(self) -> None:
        for name in ("min_conversion_pct", "max_reach_pct"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"KocRule.{name} must be between 0 and 1, got {value!r}")
        if not isinstance(self.min_converted, numbers.Integral) or self.min_converted < 0:
            raise ValueError(f"KocRule.min_converted must be an integer >= 0, got {self.min_converted!r}")


def _frozen(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class InfluenceInputs:
    """Raw per-member numbers of one scope; every array has shape ``(n,)``.

    The arrays are copied (counts to int64, the rest to float64) and made read-only.

    Attributes
    ----------
    pagerank : float array
        Weighted PageRank on the engagement graph.
    followers : integer array
        Members following this member.
    two_hop_reach : integer array
        Distinct members reachable through followers and followers' followers.
    interactions_received : integer array
        Likes, comments, shares and favorites received on the member's content.
    posts : integer array
        Content the member posted.
    invitees_bought : integer array
        Direct invitees (members this member referred) with at least one paid purchase.
    attributed_gmv : integer array
        Paid GMV of purchases attributed to the member, in minor units (fen).
    bridging : float array
        Betweenness centrality (raw; its percentile is the ``bridging`` component).
    suspicion : float array
        Fake-engagement suspicion in ``[0, 1]`` (:func:`graph.authenticity.suspicion`).

    Raises
    ------
    ValueError
        Naming the field, if an array is not one-dimensional, lengths differ, a count is
        not an integer array, a value is negative or not finite, or suspicion exceeds 1.
    """

    pagerank: Reals
    followers: Counts
    two_hop_reach: Counts
    interactions_received: Counts
    posts: Counts
    invitees_bought: Counts
    attributed_gmv: Counts
    bridging: Reals
    suspicion: Reals

    _COUNTS = ("followers", "two_hop_reach", "interactions_received", "posts", "invitees_bought",
               "attributed_gmv")

    def __post_init__(self) -> None:
        n: int | None = None
        for f in fields(self):
            raw = np.asarray(getattr(self, f.name))
            if raw.ndim != 1:
                raise ValueError(f"InfluenceInputs.{f.name} must be one-dimensional, got shape {raw.shape}")
            if n is None:
                n = len(raw)
            elif len(raw) != n:
                raise ValueError(f"InfluenceInputs.{f.name} has length {len(raw)}, expected {n}")
            if f.name in self._COUNTS:
                if raw.size and raw.dtype.kind not in "iub":
                    raise ValueError(f"InfluenceInputs.{f.name} must hold integers, got {raw.dtype}")
                value: npt.NDArray[Any] = raw.astype(np.int64)
            else:
                value = raw.astype(np.float64)
                if not np.all(np.isfinite(value)):
                    raise ValueError(f"InfluenceInputs.{f.name} must be finite")
            if np.any(value < 0):
                raise ValueError(f"InfluenceInputs.{f.name} must be >= 0")
            object.__setattr__(self, f.name, _frozen(value))
        if np.any(np.asarray(self.suspicion) > 1.0):
            raise ValueError("InfluenceInputs.suspicion must be <= 1")

    @property
    def n(self) -> int:
        """Number of members."""
        return len(self.pagerank)


@dataclass(frozen=True)
class MemberInfluence:
    """One member's scores with the reasons behind them ("why this member").

    Percentile components are in ``[0, 1]`` (see the module docstring); raw values are in
    their own units.

    Attributes
    ----------
    score : float
        KOL composite score in ``[0, 1]``, after the fake-engagement penalty.
    koc_score : float
        KOC score in ``[0, 1]``: ``conversion`` after the penalty.
    is_koc : bool
        Whether the member passes :class:`KocRule`.
    influence, reach, engagement, conversion, bridging : float
        Percentile components.
    penalty : float
        Share of the scores removed for fake engagement: ``weights.penalty * suspicion``
        (0 = untouched, 0.8 = 80% removed).
    suspicion : float
        Raw fake-engagement suspicion in ``[0, 1]``.
    engagement_rate : float
        Raw engagement rate (:func:`engagement_rate`).
    pagerank : float
        Raw weighted PageRank.
    betweenness : float
        Raw betweenness centrality (the input ``bridging``).
    followers, two_hop_reach, invitees_bought, attributed_gmv : int
        Raw counts; ``attributed_gmv`` in minor units.
    """

    score: float
    koc_score: float
    is_koc: bool
    influence: float
    reach: float
    engagement: float
    conversion: float
    bridging: float
    penalty: float
    suspicion: float
    engagement_rate: float
    pagerank: float
    betweenness: float
    followers: int
    two_hop_reach: int
    invitees_bought: int
    attributed_gmv: int


@dataclass(frozen=True, eq=False)
class InfluenceScores:
    """Scores of every member of one scope, as arrays of shape ``(n,)``.

    Built by :func:`score_influence`; field meanings as in :class:`MemberInfluence`.
    ``penalty`` is the share removed per member (``weights.penalty * suspicion``).
    """

    score: F64
    koc_score: F64
    is_koc: B
    influence: F64
    reach: F64
    engagement: F64
    conversion: F64
    bridging: F64
    engagement_rate: F64
    penalty: F64
    inputs: InfluenceInputs
    weights: InfluenceWeights = field(default_factory=InfluenceWeights)
    koc_rule: KocRule = field(default_factory=KocRule)

    @property
    def n(self) -> int:
        """Number of members."""
        return len(self.score)

    def member(self, i: int) -> MemberInfluence:
        """Scores, components and raw values of member number *i* (``0 <= i < n``).

        Raises
        ------
        IndexError
            If *i* is outside ``0..n-1`` (negative indices are not counted from the end).
        """
        if not 0 <= i < self.n:
            raise IndexError(f"member {i} out of range 0..{self.n - 1}")
        x = self.inputs
        return MemberInfluence(
            score=float(self.score[i]),
            koc_score=float(self.koc_score[i]),
            is_koc=bool(self.is_koc[i]),
            influence=float(self.influence[i]),
            reach=float(self.reach[i]),
            engagement=float(self.engagement[i]),
            conversion=float(self.conversion[i]),
            bridging=float(self.bridging[i]),
            penalty=float(self.penalty[i]),
            suspicion=float(x.suspicion[i]),
            engagement_rate=float(self.engagement_rate[i]),
            pagerank=float(x.pagerank[i]),
            betweenness=float(x.bridging[i]),
            followers=int(x.followers[i]),
            two_hop_reach=int(x.two_hop_reach[i]),
            invitees_bought=int(x.invitees_bought[i]),
            attributed_gmv=int(x.attributed_gmv[i]),
        )

    def ranking(self, kind: RankingKind) -> I64:
        """Member numbers, best first.

        ``KOL``: every member by ``score`` descending. ``KOC``: only members with
        ``is_koc``, by ``koc_score`` descending. Equal scores are ordered by member number
        ascending, so the ranking is deterministic. Rank ``r`` (1-based) of a member is its
        position in this array plus one.
        """
        if kind is RankingKind.KOL:
            candidates = np.arange(self.n, dtype=np.int64)
            by = self.score
        elif kind is RankingKind.KOC:
            candidates = np.flatnonzero(self.is_koc).astype(np.int64)
            by = self.koc_score[candidates]
        else:  # pragma: no cover - exhaustive over the enum
            raise ValueError(f"unknown ranking kind {kind!r}")
        return candidates[np.lexsort((candidates, -by))]


def engagement_rate(interactions_received: Counts, posts: Counts, followers: Counts) -> F64:
    """Engagement rate of each author: ``interactions_received / (posts * followers)``.

    In plain words: how many interactions (likes, comments, shares, favorites) a post got
    on average, per follower of the author. 0.05 means each post drew, on average, as many
    interactions as 5% of the author's follower count. All three counts cover the same
    window. Members with no posts or no followers get 0 (there is nothing to measure).

    Parameters
    ----------
    interactions_received, posts, followers : integer arrays, shape (n,)

    Returns
    -------
    float64 array, shape (n,)

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    received = np.asarray(interactions_received, dtype=np.float64)
    p = np.asarray(posts, dtype=np.float64)
    f = np.asarray(followers, dtype=np.float64)
    if not received.shape == p.shape == f.shape:
        raise ValueError(
            f"interactions_received, posts and followers differ in shape: {received.shape}, {p.shape}, {f.shape}"
        )
    denominator = p * f
    out = np.zeros(received.shape, dtype=np.float64)
    np.divide(received, denominator, out=out, where=denominator > 0)
    return out


def percentile_ranks(values: npt.ArrayLike) -> F64:
    """Percentile rank of each value within the array, in ``[0, 1]``.

    ``(number of values strictly lower) / (n - 1)``: the share of the *other* values that
    this one is strictly greater than. Equivalently ``(rank - 1) / (n - 1)`` with 1-based
    ranks from lowest to highest where tied values share the **lowest** rank of their tie
    group (``scipy.stats.rankdata(..., method="min")``). So ``[5, 7, 7, 9]`` gives
    ``[0, 1/3, 1/3, 1]`` and ``[0, 0, 0, 1]`` gives ``[0, 0, 0, 1]``: ties at the bottom
    get 0, and only a value greater than all others gets 1 (``[1, 3, 3]`` gives
    ``[0, 0.5, 0.5]``).

    When all values are equal (including ``n == 1``, where ``n - 1`` would be 0) every
    member gets **0**: nobody is strictly ahead of anyone, and a component that does not
    tell members apart carries no signal and should add nothing to anyone's score.

    Parameters
    ----------
    values : array_like, shape (n,)
        Real numbers; NaN is rejected.

    Returns
    -------
    float64 array, shape (n,)

    Raises
    ------
    ValueError
        If *values* is not one-dimensional or holds NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {v.shape}")
    if np.any(np.isnan(v)):
        raise ValueError("values must not contain NaN")
    n = v.size
    out = np.zeros(n, dtype=np.float64)
    if n < 2 or v.min() == v.max():
        return out
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    starts_group = np.empty(n, dtype=bool)
    starts_group[0] = True
    np.not_equal(sorted_v[1:], sorted_v[:-1], out=starts_group[1:])
    group = np.cumsum(starts_group) - 1
    # first 0-based position of the tie group = number of values strictly lower
    first = np.flatnonzero(starts_group)
    out[order] = first[group] / float(n - 1)
    return out


def score_influence(
    inputs: InfluenceInputs,
    weights: InfluenceWeights = InfluenceWeights(),
    koc: KocRule = KocRule(),
) -> InfluenceScores:
    """KOL and KOC scores of every member of one scope.

    1. Components, each a percentile rank within the scope (:func:`percentile_ranks`):
       ``influence = pct(pagerank)``;
       ``reach = pct(mean(pct(followers), pct(two_hop_reach)))``;
       ``engagement = pct(engagement_rate)``;
       ``conversion = pct(mean(pct(invitees_bought), pct(attributed_gmv)))``;
       ``bridging = pct(betweenness)``.
    2. ``penalty = weights.penalty * suspicion`` -- the share removed for fake engagement.
    3. ``score = (sum of weight * component) / (sum of weights) * (1 - penalty)``, in
       ``[0, 1]``. A member with suspicious engagement always ends below an otherwise
       identical honest member (unless both score 0).
    4. ``koc_score = conversion * (1 - penalty)``; ``is_koc`` per :class:`KocRule`.

    Percentiles are relative to the members passed in, so scores of different scopes
    (a community vs. the whole tenant) are not comparable with each other.

    Parameters
    ----------
    inputs : InfluenceInputs
    weights : InfluenceWeights, optional
    koc : KocRule, optional

    Returns
    -------
    InfluenceScores
    """
    x = inputs
    rate = engagement_rate(x.interactions_received, x.posts, x.followers)
    components = {
        "influence": percentile_ranks(x.pagerank),
        "reach": percentile_ranks((percentile_ranks(x.followers) + percentile_ranks(x.two_hop_reach)) / 2.0),
        "engagement": percentile_ranks(rate),
        "conversion": percentile_ranks(
            (percentile_ranks(x.invitees_bought) + percentile_ranks(x.attributed_gmv)) / 2.0
        ),
        "bridging": percentile_ranks(x.bridging),
    }
    weighted = np.zeros(x.n, dtype=np.float64)
    for name in _COMPONENTS:
        weighted += getattr(weights, name) * components[name]
    penalty = weights.penalty * np.asarray(x.suspicion, dtype=np.float64)
    kept = 1.0 - penalty
    score = weighted / weights.total() * kept
    conversion = components["conversion"]
    sold = (np.asarray(x.invitees_bought) >= koc.min_converted) | (np.asarray(x.attributed_gmv) > 0)
    is_koc = (conversion >= koc.min_conversion_pct) & (components["reach"] <= koc.max_reach_pct) & sold
    arrays = {k: _frozen(v) for k, v in components.items()}
    return InfluenceScores(
        score=_frozen(score),
        koc_score=_frozen(conversion * kept),
        is_koc=_frozen(is_koc),
        engagement_rate=_frozen(rate),
        penalty=_frozen(penalty),
        inputs=x,
        weights=weights,
        koc_rule=koc,
        **arrays,
    )
