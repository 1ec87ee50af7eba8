"""Segmentation (用户分层): the pure rules, Louvain circles with stable ids, and the graph job.

Known answers on hand-built data (every quintile, stage, tier and layer worked out by hand
in the comments), hypothesis properties of the rules against slow one-member-at-a-time
definitions, Louvain against networkx on Zachary's karate club, and the job on a tenant
written with plain Cypher into the real embedded graph server.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import networkx as nx
import numpy as np
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import ValidationFailed
from domain.segmentation import (
    US_PER_DAY,
    LifecycleStage,
    MemberFacts,
    MemberLayer,
    SegmentationWindows,
    ValueTier,
    quintile_scores,
    segment,
    value_tiers,
)
from graph import segmentation as seg
from graph.circles import louvain, match_circles, modularity
from graph.client import GraphClient, to_micros

PROPERTY = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NOW_US = to_micros(NOW)


def ago(days: float) -> int:
    return NOW_US - int(days * US_PER_DAY)


def facts(rows: list[dict[str, Any]]) -> MemberFacts:
    def col(name: str, default: Any, dtype: Any) -> Any:
        return np.asarray([r.get(name, default) for r in rows], dtype)

    return MemberFacts(
        joined_at=col("joined", 0, np.int64), last_active=col("last", -1, np.int64),
        recent_actions=col("recent", 0, np.int64), paid_count=col("paid", 0, np.int64),
        paid_gmv=col("gmv", 0, np.int64), last_paid=col("last_paid", -1, np.int64),
        influencer=col("influencer", False, bool),
    )


# --- quintiles --------------------------------------------------------------------------------


def test_quintiles_of_distinct_values_and_ties() -> None:
    # five distinct values: mid-rank percentiles 0.1 .. 0.9 -> 1 .. 5
    assert quintile_scores([50, 10, 40, 20, 30]).tolist() == [5, 1, 4, 2, 3]
    # ten distinct values: two per quintile
    assert quintile_scores(list(range(10))).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # all equal: everyone in the middle
    assert quintile_scores([7, 7, 7, 7]).tolist() == [3, 3, 3, 3]
    # [1, 1, 1, 2, 3]: the ones have p = 1.5/5 = 0.3 -> 2; the two p = 3.5/5 -> 4; the three p = 0.9 -> 5
    assert quintile_scores([1, 1, 1, 2, 3]).tolist() == [2, 2, 2, 4, 5]


def test_quintiles_outside_the_mask_are_zero_and_do_not_count() -> None:
    scores = quintile_scores([100, 1, 2, 3, 4, 5], [False, True, True, True, True, True])
    assert scores.tolist() == [0, 1, 2, 3, 4, 5]
    assert quintile_scores([], []).tolist() == []
    assert quintile_scores([3, 4], [False, False]).tolist() == [0, 0]
    with pytest.raises(ValueError, match="one length"):
        quintile_scores([1, 2], [True])


def slow_quintile(values: list[int], i: int) -> int:
    """The definition, for one value: 1 + floor(5 * (below + equal / 2) / n), at most 5."""
    below = sum(v < values[i] for v in values)
    equal = sum(v == values[i] for v in values)
    p = (below + equal / 2) / len(values)
    return min(5, 1 + int(5 * p + 1e-12))


@PROPERTY
@given(st.lists(st.integers(-3, 6), min_size=1, max_size=40))
def test_quintiles_match_the_definition_and_respect_order(values: list[int]) -> None:
    scores = quintile_scores(values).tolist()
    assert scores == [slow_quintile(values, i) for i in range(len(values))]
    assert all(1 <= s <= 5 for s in scores)
    for i in range(len(values)):
        for j in range(len(values)):
            if values[i] < values[j]:
                assert scores[i] <= scores[j]
            if values[i] == values[j]:
                assert scores[i] == scores[j]


def test_value_tiers_top_fifth_then_half() -> None:
    # five buyers, GMV 30000 > 20000 > 10000 > 5000 > 1000, and one member who never bought
    tiers = value_tiers([30000, 20000, 10000, 5000, 1000, 0], [3, 2, 1, 1, 1, 0])
    names = [list(ValueTier)[t] for t in tiers.tolist()]
    assert names == [ValueTier.HIGH, ValueTier.MEDIUM, ValueTier.MEDIUM, ValueTier.LOW, ValueTier.LOW, ValueTier.NONE]
    # ties share a tier: nobody is strictly above the two equal leaders
    tied = value_tiers([500, 500, 100, 100, 100, 100, 100, 100, 100, 100], [1] * 10)
    assert tied.tolist()[:3] == [0, 0, 1]  # HIGH, HIGH, MEDIUM (2 of 10 above: 20 % < 50 %)


# --- windows ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "field", "message"), [
    ({"new_days": 0}, "input.newDays", "between 1 and"),
    ({"churn_days": 5000}, "input.churnDays", "between 1 and"),
    ({"new_days": 30}, "input.newDays", "less than activeDays"),
    ({"active_days": 90}, "input.activeDays", "less than churnDays"),
    # only activeDays was given: the error names it, not the newDays it now conflicts with
    ({"active_days": 3}, "input.activeDays", "less than activeDays"),
])
def test_windows_are_validated_with_the_field_named(kwargs: dict[str, int], field: str, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message) as caught:
        SegmentationWindows().with_changes(**kwargs)
    assert caught.value.field == field


# --- the whole rule set on a hand-built tenant ------------------------------------------------

W = SegmentationWindows(new_days=7, active_days=30, churn_days=90)
#: key -> (facts row, expected lifecycle, tier, layer, rfm)
MEMBERS: dict[str, tuple[dict[str, Any], LifecycleStage, ValueTier, MemberLayer, tuple[int, int, int] | None]] = {
    # the best buyer, active 2 days ago: HIGH value and active -> core
    "a": ({"joined": ago(200), "last": ago(1), "recent": 2, "paid": 3, "gmv": 30000, "last_paid": ago(2)},
          LifecycleStage.ACTIVE, ValueTier.HIGH, MemberLayer.CORE, (5, 5, 5)),
    # 3 actions within 30 days -> active layer
    "b": ({"joined": ago(100), "last": ago(5), "recent": 3, "paid": 2, "gmv": 20000, "last_paid": ago(10)},
          LifecycleStage.ACTIVE, ValueTier.MEDIUM, MemberLayer.ACTIVE, (4, 4, 4)),
    # last seen 40 days ago: silent
    "c": ({"joined": ago(300), "last": ago(40), "paid": 1, "gmv": 10000, "last_paid": ago(40)},
          LifecycleStage.SILENT, ValueTier.MEDIUM, MemberLayer.SILENT, (3, 2, 3)),
    # last seen 100 days ago: churned
    "d": ({"joined": ago(400), "last": ago(100), "paid": 1, "gmv": 5000, "last_paid": ago(100)},
          LifecycleStage.CHURNED, ValueTier.LOW, MemberLayer.SILENT, (2, 2, 2)),
    # bought long ago but liked something 20 days ago: active, one action -> ordinary
    "e": ({"joined": ago(150), "last": ago(20), "recent": 1, "paid": 1, "gmv": 1000, "last_paid": ago(120)},
          LifecycleStage.ACTIVE, ValueTier.LOW, MemberLayer.ORDINARY, (1, 2, 1)),
    # joined 3 days ago, nothing yet: new, ordinary, no RFM
    "f": ({"joined": ago(3)}, LifecycleStage.NEW, ValueTier.NONE, MemberLayer.ORDINARY, None),
    # joined 60 days ago, never did anything: idle since joining -> silent
    "g": ({"joined": ago(60)}, LifecycleStage.SILENT, ValueTier.NONE, MemberLayer.SILENT, None),
    # joined 5 days ago and already posted and liked 3 times: new, active layer
    "h": ({"joined": ago(5), "last": ago(1), "recent": 3}, LifecycleStage.NEW, ValueTier.NONE, MemberLayer.ACTIVE, None),
    # a KOC active yesterday: core without buying
    "k": ({"joined": ago(100), "last": ago(1), "recent": 1, "influencer": True},
          LifecycleStage.ACTIVE, ValueTier.NONE, MemberLayer.CORE, None),
    # a KOC not seen for 50 days: silent beats core
    "s": ({"joined": ago(100), "last": ago(50), "influencer": True},
          LifecycleStage.SILENT, ValueTier.NONE, MemberLayer.SILENT, None),
}
# RFM among the five buyers a..e: R and M are distinct, so 5 .. 1 in order; F = [3, 2, 1, 1, 1] scores
# [5, 4, 2, 2, 2] (the three ones share p = (0 + 3/2) / 5 = 0.3 -> 2).


def test_every_rule_on_the_hand_built_tenant() -> None:
    keys = list(MEMBERS)
    result = segment(facts([MEMBERS[k][0] for k in keys]), NOW_US, W)
    got = {k: (result.lifecycle_of(i), result.tier_of(i), result.layer_of(i), result.rfm_of(i))
           for i, k in enumerate(keys)}
    assert got == {k: v[1:] for k, v in MEMBERS.items()}
    assert result.counts() == {
        "lifecycle": {"new": 2, "active": 4, "silent": 3, "churned": 1},
        "valueTier": {"high": 1, "medium": 2, "low": 2, "none": 5},
        "layer": {"core": 2, "active": 2, "ordinary": 2, "silent": 4},
    }


def test_window_boundaries_are_inclusive() -> None:
    rows = [{"joined": ago(7)}, {"joined": ago(7.001)}, {"joined": ago(200), "last": ago(30)},
            {"joined": ago(200), "last": ago(30.001)}, {"joined": ago(200), "last": ago(90)},
            {"joined": ago(200), "last": ago(90.001)}]
    result = segment(facts(rows), NOW_US, W)
    assert [result.lifecycle_of(i).value for i in range(6)] == ["new", "active", "active", "silent", "silent",
                                                               "churned"]


def test_changing_the_windows_moves_members() -> None:
    row = {"joined": ago(200), "last": ago(45)}
    assert segment(facts([row]), NOW_US, W).lifecycle_of(0) is LifecycleStage.SILENT
    wide = SegmentationWindows(new_days=14, active_days=60, churn_days=180)
    assert segment(facts([row]), NOW_US, wide).lifecycle_of(0) is LifecycleStage.ACTIVE
    narrow = SegmentationWindows(new_days=3, active_days=10, churn_days=40)
    assert segment(facts([row]), NOW_US, narrow).lifecycle_of(0) is LifecycleStage.CHURNED


def test_facts_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="last_paid"):
        facts([{"joined": 0, "paid": 1}])
    with pytest.raises(ValueError, match="entries"):
        MemberFacts(joined_at=np.zeros(2, np.int64), last_active=np.zeros(1, np.int64),
                    recent_actions=np.zeros(2, np.int64), paid_count=np.zeros(2, np.int64),
                    paid_gmv=np.zeros(2, np.int64), last_paid=np.full(2, -1, np.int64),
                    influencer=np.zeros(2, bool))


@st.composite
def member_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for _ in range(draw(st.integers(1, 25))):
        joined = ago(draw(st.integers(0, 400)))
        acted = draw(st.booleans())
        last = max(joined, ago(draw(st.integers(0, 400)))) if acted else -1
        paid = draw(st.integers(0, 4)) if acted else 0
        rows.append({"joined": joined, "last": last, "recent": draw(st.integers(0, 6)) if acted else 0,
                     "paid": paid, "gmv": draw(st.integers(1, 5)) * 1000 * paid, "last_paid": last if paid else -1,
                     "influencer": draw(st.booleans())})
    return rows


def slow_member(row: dict[str, Any]) -> tuple[str, str]:
    """Lifecycle and layer of one member, straight from the module docstring."""
    day = US_PER_DAY
    idle = NOW_US - (row["last"] if row["last"] >= 0 else row["joined"])
    if NOW_US - row["joined"] <= W.new_days * day:
        stage = "new"
    elif idle <= W.active_days * day:
        stage = "active"
    elif idle <= W.churn_days * day:
        stage = "silent"
    else:
        stage = "churned"
    recently = row["last"] >= 0 and NOW_US - row["last"] <= W.active_days * day
    return stage, ("silent" if stage in ("silent", "churned") else "core" if recently and row["influencer"]
                   else "active" if recently and row["recent"] >= 3 else "ordinary")


@PROPERTY
@given(member_rows())
def test_rules_match_the_definitions(rows: list[dict[str, Any]]) -> None:
    result = segment(facts(rows), NOW_US, W)
    buyers = [i for i, r in enumerate(rows) if r["paid"] > 0]
    for i, row in enumerate(rows):
        stage, layer = slow_member({**row, "influencer": row["influencer"] or result.tier_of(i) is ValueTier.HIGH})
        assert result.lifecycle_of(i).value == stage
        assert result.layer_of(i).value == layer
        assert (result.rfm_of(i) is None) == (row["paid"] == 0)
        assert (result.tier_of(i) is ValueTier.NONE) == (row["paid"] == 0)
    if buyers:
        gmv = [rows[i]["gmv"] for i in buyers]
        assert [int(result.rfm_m[i]) for i in buyers] == [slow_quintile(gmv, j) for j in range(len(buyers))]
        # the highest GMV is always HIGH; HIGH is never more than a fifth of distinct-GMV buyers plus ties
        top = max(gmv)
        assert all(result.tier_of(i) is ValueTier.HIGH for i in buyers if rows[i]["gmv"] == top)
    assert sum(result.counts()["layer"].values()) == len(rows)


# --- Louvain and stable circle ids -----------------------------------------------------------


def karate() -> tuple[nx.Graph, np.ndarray, np.ndarray]:
    g = nx.karate_club_graph()
    src = np.asarray([u for u, _ in g.edges()])
    dst = np.asarray([v for _, v in g.edges()])
    return g, src, dst


def test_modularity_matches_networkx() -> None:
    g, src, dst = karate()
    labels = np.asarray([0 if g.nodes[v]["club"] == "Mr. Hi" else 1 for v in g])
    expected = nx.community.modularity(g, [set(np.flatnonzero(labels == c).tolist()) for c in (0, 1)], weight=None)
    assert modularity(34, src, dst, labels) == pytest.approx(expected, abs=1e-12)
    assert modularity(3, [], [], [0, 1, 2]) == 0.0


def test_louvain_on_the_karate_club() -> None:
    g, src, dst = karate()
    reference = max(nx.community.modularity(g, nx.community.louvain_communities(g, weight=None, seed=s), weight=None)
                    for s in range(5))
    ours = [modularity(34, src, dst, louvain(34, src, dst, seed=s)) for s in range(5)]
    # the best known partition of the karate club has Q = 0.4198; networkx's Louvain finds 0.415-0.420
    assert max(ours) == pytest.approx(reference, abs=0.006)
    assert min(ours) > 0.40
    # the two factions after the split: each circle lies (almost) wholly in one faction
    labels = louvain(34, src, dst, seed=3)
    faction = np.asarray([g.nodes[v]["club"] == "Mr. Hi" for v in g])
    agree = sum(max(int(faction[labels == c].sum()), int((~faction[labels == c]).sum())) for c in set(labels.tolist()))
    assert agree >= 32  # at most 2 of 34 members sit in a circle led by the other faction
    assert labels[0] != labels[33]  # Mr. Hi and the officer lead different circles


def test_louvain_is_deterministic_per_seed_and_canonical() -> None:
    _, src, dst = karate()
    first = louvain(34, src, dst, seed=11)
    assert louvain(34, src, dst, seed=11).tolist() == first.tolist()
    assert first[0] == 0 and set(first.tolist()) == set(range(int(first.max()) + 1))
    # two triangles and an isolated member
    two = louvain(7, [0, 1, 2, 3, 4, 5, 2], [1, 2, 0, 4, 5, 3, 3])
    assert two.tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert louvain(0, [], []).tolist() == []
    with pytest.raises(ValueError, match="outside"):
        louvain(2, [0], [2])
    with pytest.raises(ValueError, match="non-negative"):
        louvain(2, [0], [1], [-1.0])


def test_louvain_uses_weights() -> None:
    # a 4-cycle 0-1-2-3-0: heavy 0-1 and 2-3 edges decide the pairs
    heavy = louvain(4, [0, 1, 2, 3], [1, 2, 3, 0], [10.0, 1.0, 10.0, 1.0])
    assert heavy.tolist() == [0, 0, 1, 1]
    other = louvain(4, [0, 1, 2, 3], [1, 2, 3, 0], [1.0, 10.0, 1.0, 10.0])
    assert other.tolist() == [0, 1, 1, 0]


def counter_ids(prefix: str = "cir_new") -> Any:
    count = iter(range(1000))
    return lambda: f"{prefix}{next(count)}"


def test_match_circles_keeps_ids_by_overlap() -> None:
    previous = ["cir_a", "cir_a", "cir_a", "cir_b", "cir_b", "cir_b", None, None]
    # same clusters, numbered the other way round
    assert match_circles([1, 1, 1, 0, 0, 0, -1, -1], previous, new_id=counter_ids()) == ["cir_b", "cir_a"]
    # cir_a split in two: the bigger part keeps the id; a genuinely new cluster gets a new id
    assert match_circles([0, 0, 1, 2, 2, 2, 3, 3], previous, new_id=counter_ids()) == [
        "cir_a", "cir_new0", "cir_b", "cir_new1"]
    # below min_jaccard: a new id
    assert match_circles([0, -1, -1, -1, -1, -1, 0, 0], previous, min_jaccard=0.5, new_id=counter_ids()) == ["cir_new0"]
    with pytest.raises(ValueError, match="entries"):
        match_circles([0], [None, None])


def test_circle_ids_are_stable_on_the_karate_club() -> None:
    _, src, dst = karate()
    labels = louvain(34, src, dst, seed=3)
    ids = match_circles(labels, [None] * 34, new_id=counter_ids("cir_x"))
    members = [ids[c] for c in labels.tolist()]
    # same graph, same seed: same labels, same ids
    again = louvain(34, src, dst, seed=3)
    assert [match_circles(again, members, new_id=counter_ids("cir_y"))[c] for c in again.tolist()] == members
    # a small perturbation (two edges dropped, two added): most members keep their circle id
    keep = np.ones(len(src), bool)
    keep[[5, 40]] = False
    src2 = np.concatenate([src[keep], [9, 16]])
    dst2 = np.concatenate([dst[keep], [30, 4]])
    for seed in range(5):
        perturbed = louvain(34, src2, dst2, seed=seed)
        new_ids = match_circles(perturbed, members, new_id=counter_ids("cir_z"))
        kept = sum(new_ids[c] == m for c, m in zip(perturbed.tolist(), members))
        assert kept >= 27, (seed, kept)  # at least ~80 % of the members keep their circle id


# --- the graph job -----------------------------------------------------------------------------

MEMBER_ROWS = """
UNWIND $rows AS r
CREATE (:Member {tenantId: $tenant, id: r.id, displayName: r.id, inviteCode: r.id, joinedAt: r.joined, isKoc: r.koc,
                 profilingWithdrawn: r.withdrawn, lifecycle: r.lifecycle, rfmR: r.rfmR, segmentedAt: r.segmentedAt})
"""
CONTENT_ROW = """
MATCH (a:Member {id: $author})
CREATE (a)-[:POSTED {at: $at}]->(:Content {tenantId: $tenant, id: $id, kind: 'post', title: $id, body: '', createdAt: $at})
"""
LIKE_ROWS = """
UNWIND $rows AS r
MATCH (m:Member {id: r.m}) MATCH (c:Content {id: r.c})
CREATE (m)-[:LIKED {at: r.at}]->(c)
"""
PURCHASE_ROWS = """
UNWIND $rows AS r
MATCH (m:Member {id: r.m})
CREATE (m)-[:PLACED {at: r.at}]->(:Purchase {tenantId: $tenant, id: r.id, amount: r.amount, currency: 'CNY',
                                             at: r.at, status: r.status, idempotencyKey: r.id})
"""
FOLLOW_ROWS = """
UNWIND $rows AS r
MATCH (a:Member {id: r.a}) MATCH (b:Member {id: r.b})
CREATE (a)-[:FOLLOWS {at: $at}]->(b)
"""
TAG_ROWS = """
UNWIND $rows AS r
MATCH (m:Member {id: r.m})
MERGE (t:Tag {tenantId: $tenant, id: r.tag})
ON CREATE SET t.name = r.name, t.kind = 'interest'
CREATE (m)-[:INTERESTED_IN {weight: r.w, source: 'declared'}]->(t)
"""
READ_MEMBERS = """
MATCH (m:Member {tenantId: $tenant})
RETURN m.id AS id, m.rfmR AS r, m.rfmF AS f, m.rfmM AS m, m.lifecycle AS lifecycle, m.valueTier AS tier,
       m.layer AS layer, m.circleId AS circle, m.segmentedAt AS at
"""
READ_CIRCLES = """
MATCH (c:InterestCircle {tenantId: $tenant})
RETURN c.id AS id, c.size AS size, c.topTags AS tags, c.retiredAt AS retiredAt
"""


class Tenant:
    """A hand-built tenant: the members of MEMBERS (a..s) plus ``w``, who withdrew PROFILING consent."""

    def __init__(self, graph: GraphClient, tenant: str) -> None:
        self.graph = graph
        self.tenant = tenant

    def id(self, key: str) -> str:
        return f"mem_{self.tenant[4:]}{key}"

    async def run(self, statement: Any, **params: Any) -> None:
        async def work(tx: Any) -> None:
            await self.graph.run(tx, statement, tenant=self.tenant, **params)

        await self.graph.write(work)

    async def build(self) -> None:
        def at(days: float) -> datetime:
            return NOW - timedelta(days=days)

        joined = {"a": 200, "b": 100, "c": 300, "d": 400, "e": 150, "f": 3, "g": 60, "h": 5, "k": 100, "s": 100,
                  "w": 100}
        await self.run(MEMBER_ROWS, rows=[
            {"id": self.id(k), "joined": at(d), "koc": k in "ks", "withdrawn": k == "w",
             # w carries a stale segmentation from before it withdrew: the job must remove it
             "lifecycle": "active" if k == "w" else None, "rfmR": 5 if k == "w" else None,
             "segmentedAt": at(1) if k == "w" else None}
            for k, d in joined.items()])
        # content by w, liked by others (w is not profiled, so these likes tie nobody into a circle)
        await self.run(CONTENT_ROW, author=self.id("w"), id=f"cnt_{self.tenant[4:]}x", at=at(59.5))
        await self.run(CONTENT_ROW, author=self.id("h"), id=f"cnt_{self.tenant[4:]}h", at=at(1))
        content = f"cnt_{self.tenant[4:]}x"
        likes = [("a", 1), ("b", 5), ("e", 20), ("h", 2), ("h", 3), ("k", 1), ("s", 50)]
        await self.run(LIKE_ROWS, rows=[{"m": self.id(m), "c": content, "at": at(d)} for m, d in likes])
        purchases = [("a", 30, 10000, "paid"), ("a", 10, 10000, "paid"), ("a", 2, 10000, "paid"),
                     ("a", 1.5, 500000, "refunded"), ("b", 10, 10000, "paid"), ("b", 12, 10000, "paid"),
                     ("c", 40, 10000, "paid"), ("d", 100, 5000, "paid"), ("e", 120, 1000, "paid"),
                     ("w", 3, 999999, "paid")]
        await self.run(PURCHASE_ROWS, rows=[
            {"m": self.id(m), "at": at(d), "amount": amount, "status": status, "id": f"pur_{self.tenant[4:]}{i}"}
            for i, (m, d, amount, status) in enumerate(purchases)])
        # two follow cliques {a, b, c, d} and {e, f, g, h}, one bridge a -> e; w sits in the first
        cliques = ["abcdw", "efgh"]
        pairs = [(x, y) for clique in cliques for x in clique for y in clique if x != y] + [("a", "e")]
        await self.follow(pairs)
        await self.run(TAG_ROWS, rows=[
            {"m": self.id(m), "tag": f"tag_{self.tenant[4:]}{name}", "name": name, "w": w}
            for m, name, w in [("a", "tea", 2.0), ("b", "tea", 2.0), ("c", "coffee", 1.0), ("w", "wine", 9.0),
                               ("e", "yoga", 1.0), ("f", "yoga", 1.0)]])

    async def follow(self, pairs: list[tuple[str, str]]) -> None:
        await self.run(FOLLOW_ROWS, at=NOW - timedelta(days=30),
                       rows=[{"a": self.id(x), "b": self.id(y)} for x, y in pairs])

    async def members(self) -> dict[str, dict[str, Any]]:
        rows = await self.graph.read(READ_MEMBERS, tenant=self.tenant)  # type: ignore[arg-type]
        prefix = self.id("")
        return {r["id"].removeprefix(prefix): dict(r) for r in rows}

    async def circles(self) -> dict[str, dict[str, Any]]:
        rows = await self.graph.read(READ_CIRCLES, tenant=self.tenant)  # type: ignore[arg-type]
        return {r["id"]: dict(r) for r in rows}


@pytest.fixture
async def built(graph: GraphClient, tenant: str) -> Tenant:
    t = Tenant(graph, tenant)
    await t.build()
    return t


async def test_job_writes_the_known_answers(built: Tenant, graph: GraphClient, redis_client: aioredis.Redis) -> None:
    result = await seg.recompute(graph, redis_client, built.tenant, at=NOW)

    assert not result.skipped and result.members == 10 and result.circles == 2
    got = await built.members()
    for key, (_, lifecycle, tier, layer, rfm) in MEMBERS.items():
        row = got[key]
        assert (row["lifecycle"], row["tier"], row["layer"]) == (lifecycle.value, tier.value, layer.value), key
        assert (None if row["r"] is None else (row["r"], row["f"], row["m"])) == rfm, key
        assert row["at"] is not None
    # the withdrawn member: not profiled, its stale segmentation removed, its 999999 GMV not counted
    assert {k: v for k, v in got["w"].items() if k != "id"} == dict.fromkeys(
        ("r", "f", "m", "lifecycle", "tier", "layer", "circle", "at"))
    # circles: the two cliques; k and s follow nobody
    first, second = got["a"]["circle"], got["e"]["circle"]
    assert first != second and first.startswith("cir_")
    assert {k for k, r in got.items() if r["circle"] == first} == set("abcd")
    assert {k for k, r in got.items() if r["circle"] == second} == set("efgh")
    assert got["k"]["circle"] is None and got["s"]["circle"] is None
    circles = await built.circles()
    assert {c: (r["size"], list(r["tags"]), r["retiredAt"]) for c, r in circles.items()} == {
        first: (4, ["tea", "coffee"], None), second: (4, ["yoga"], None)}

    summary = await seg.GraphSegmentation(graph).summary(built.tenant)
    assert summary is not None and summary.computed_at == NOW and (summary.members, summary.circles) == (10, 2)
    assert summary.layer == {"core": 2, "active": 2, "ordinary": 2, "silent": 4}
    assert summary.lifecycle == {"new": 2, "active": 4, "silent": 3, "churned": 1}
    assert summary.value_tier == {"high": 1, "medium": 2, "low": 2, "none": 5}


async def test_rerun_keeps_circle_ids_and_retires_vanished_circles(
        built: Tenant, graph: GraphClient, redis_client: aioredis.Redis) -> None:
    await seg.recompute(graph, redis_client, built.tenant, at=NOW)
    before = await built.members()
    await seg.recompute(graph, redis_client, built.tenant, at=NOW + timedelta(hours=1))
    after = await built.members()
    assert {k: r["circle"] for k, r in after.items()} == {k: r["circle"] for k, r in before.items()}

    # k and s join the second circle, which keeps its id and grows to six
    await built.follow([("k", "e"), ("e", "k"), ("k", "f"), ("s", "g"), ("g", "s"), ("s", "h")])
    await seg.recompute(graph, redis_client, built.tenant, at=NOW + timedelta(hours=2))
    grown = await built.members()
    assert grown["k"]["circle"] == grown["s"]["circle"] == before["e"]["circle"]
    assert grown["a"]["circle"] == before["a"]["circle"]
    circles = await built.circles()
    assert circles[before["e"]["circle"]]["size"] == 6


async def test_a_circle_that_vanishes_is_retired(graph: GraphClient, redis_client: aioredis.Redis, tenant: str) -> None:
    t = Tenant(graph, tenant)
    await t.run(MEMBER_ROWS, rows=[{"id": t.id(k), "joined": NOW - timedelta(days=50), "koc": False,
                                    "withdrawn": False, "lifecycle": None, "rfmR": None, "segmentedAt": None}
                                   for k in "xyz"])
    await t.follow([("x", "y"), ("y", "z"), ("z", "x")])
    await seg.recompute(graph, redis_client, tenant, at=NOW)
    (circle,) = (await t.circles()).keys()
    # z withdraws consent: only two members are left, too few for a circle
    await t.run("MATCH (m:Member {id: $id}) SET m.profilingWithdrawn = true", id=t.id("z"))
    await seg.recompute(graph, redis_client, tenant, at=NOW + timedelta(hours=1))
    retired = (await t.circles())[circle]
    assert retired["retiredAt"] is not None and retired["size"] == 0
    assert all(r["circle"] is None for r in (await t.members()).values())
    page = await seg.GraphSegmentation(graph).circles(tenant, 10, None)
    assert page.items == [] and page.total == 0


async def test_windows_come_from_the_tenant_config(built: Tenant, graph: GraphClient,
                                                   redis_client: aioredis.Redis) -> None:
    repo = seg.GraphSegmentation(graph)
    assert await repo.windows(built.tenant) == SegmentationWindows()
    wide = SegmentationWindows(new_days=10, active_days=45, churn_days=120)
    assert await repo.set_windows(built.tenant, wide) == wide
    assert await repo.windows(built.tenant) == wide
    await seg.recompute(graph, redis_client, built.tenant, at=NOW)
    got = await built.members()
    # c (last seen 40 days ago) is active within 45 days; d (100 days) is silent, not churned
    assert (got["c"]["lifecycle"], got["d"]["lifecycle"]) == ("active", "silent")


async def test_a_locked_tenant_is_skipped(built: Tenant, graph: GraphClient, redis_client: aioredis.Redis) -> None:
    await redis_client.set(seg.lock_key(built.tenant), "someone-else", px=60_000)
    try:
        result = await seg.recompute(graph, redis_client, built.tenant, at=NOW)
    finally:
        await redis_client.delete(seg.lock_key(built.tenant))
    assert result.skipped
    assert all(r["lifecycle"] is None for k, r in (await built.members()).items() if k != "w")
    assert await seg.GraphSegmentation(graph).summary(built.tenant) is None


async def test_scheduler_runs_due_tenants_only(built: Tenant, graph: GraphClient, redis_client: aioredis.Redis) -> None:
    clock = [NOW]
    scheduler = seg.SegmentationScheduler(graph, redis_client, changes=5, max_age=timedelta(hours=24),
                                          clock=lambda: clock[0])
    assert await scheduler.due(built.tenant)  # never computed
    done = await scheduler.check([built.tenant])
    assert [r.tenant for r in done] == [built.tenant]
    summary = await seg.GraphSegmentation(graph).summary(built.tenant)
    assert summary is not None
    clock[0] = summary.computed_at + timedelta(hours=1)
    assert not await scheduler.due(built.tenant)
    assert await scheduler.check([built.tenant]) == []
    await redis_client.incrby(f"q:{built.tenant}:version", 5)  # five relayed changes
    assert await scheduler.due(built.tenant)
    await redis_client.delete(f"q:{built.tenant}:version")
    clock[0] = summary.computed_at + timedelta(hours=25)  # stages move with time alone
    assert await scheduler.due(built.tenant)


async def test_reads_of_members_and_circles(built: Tenant, graph: GraphClient, redis_client: aioredis.Redis) -> None:
    repo = seg.GraphSegmentation(graph)
    assert await repo.of_members(built.tenant, [built.id("a")]) == [None]  # before the first run
    await seg.recompute(graph, redis_client, built.tenant, at=NOW)
    a, w, missing = await repo.of_members(built.tenant, [built.id("a"), built.id("w"), f"mem_{uuid.uuid4().hex}"])
    assert w is None and missing is None and a is not None
    assert (a.rfm, a.lifecycle, a.value_tier, a.layer, a.computed_at) == (
        (5, 5, 5), LifecycleStage.ACTIVE, ValueTier.HIGH, MemberLayer.CORE, NOW)
    page = await repo.circles(built.tenant, 1, None)
    assert page.total == 2 and page.has_next and len(page.items) == 1
    nxt = await repo.circles(built.tenant, 1, (page.items[0].size, page.items[0].id))
    assert not nxt.has_next and nxt.items[0].id != page.items[0].id
    assert {c.id for c in page.items + nxt.items} == {a.circle_id, (await built.members())["e"]["circle"]}
    (circle,) = await repo.circles_by_id(built.tenant, [a.circle_id])  # type: ignore[list-item]
    assert circle is not None and circle.name == "tea / coffee" and circle.size == 4


# --- the CLI ----------------------------------------------------------------------------------


async def test_cli_recompute_segments(built: Tenant, stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from api.cli import _recompute_segments
    from api.runtime import Endpoints
    from tests.conftest import PASSWORD

    ep = Endpoints(graph_uri=stack.graph.uri, graph_user="root", graph_password=PASSWORD, graph_database="quanzi",
                   redis_url=stack.redis.url, embedded=True)
    line = await _recompute_segments(ep, tenant=built.tenant)
    assert line.startswith(f"segmented 10 members of {built.tenant!r} into 2 interest circles in ")
    assert "segments" in capsys.readouterr().err  # the progress bar
    assert (await built.members())["a"]["lifecycle"] is not None


def test_cli_refuses_scopes_for_segments(capsys: pytest.CaptureFixture[str]) -> None:
    from api.cli import main

    assert main(["recompute", "segments", "--community", "com_x1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("quanzi: error: `recompute segments` covers the whole tenant; it takes no --community, "
                    "--topic, --channel or --campaign")]
