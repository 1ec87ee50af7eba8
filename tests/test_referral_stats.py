"""Referral aggregates: the pure full computation and the incremental Redis store.

Known answers on hand-built trees, then the key property: any sequence of events applied
incrementally (with redeliveries) gives exactly the numbers of ``compute_all`` on the final
state, and so does ``rebuild(compute_all(...))`` read back through Redis. ``compute_all``
itself is checked against the definitions, computed the slow way.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from domain.referral_stats import PaidPurchase, ReferralStats, compute_all
from graph.embedded import free_port
from graph.referral_stats import ReferralStatsStore


@pytest.fixture
def store(redis_client: aioredis.Redis) -> ReferralStatsStore:
    return ReferralStatsStore(redis_client)


def slow_stats(
    members: Sequence[str], inviter: Mapping[str, str | None], activated: set[str], paid: Sequence[PaidPurchase],
) -> dict[str, ReferralStats]:
    """The definitions, one member at a time, with no cleverness at all."""
    children = {m: [c for c in members if inviter.get(c) == m] for m in members}

    def add(totals: dict[str, int], currency: str, amount: int) -> None:
        totals[currency] = totals.get(currency, 0) + amount

    out = {}
    for m in members:
        levels: list[list[str]] = []
        frontier = children[m]
        while frontier:
            levels.append(frontier)
            frontier = [c for f in frontier for c in children[f]]
        team = {x for level in levels for x in level}
        direct = set(children[m])
        team_gmv: dict[str, int] = {}
        own: dict[str, int] = {}
        attributed: dict[str, int] = {}
        for buyer, amount, currency, credited in paid:
            if buyer in team:
                add(team_gmv, currency, amount)
            if buyer == m:
                add(own, currency, amount)
            if credited == m:
                add(attributed, currency, amount)
        buyers = {row[0] for row in paid}
        out[m] = ReferralStats(
            member_id=m,
            direct_invites=len(direct),
            team_size=len(team),
            depth=len(levels),
            level_counts=tuple(len(level) for level in levels),
            activated_direct=len(direct & activated),
            activated_team=len(team & activated),
            converted_direct=len(direct & buyers),
            converted_team=len(team & buyers),
            team_gmv={c: a for c, a in team_gmv.items() if a},
            own_gmv={c: a for c, a in own.items() if a},
            attributed_gmv={c: a for c, a in attributed.items() if a},
            activated=m in activated,
            converted=m in buyers,
            inviter=inviter.get(m),
        )
    return out


@dataclass
class Community:
    """The final state a sequence of events builds, mirrored in plain Python."""

    members: list[str]
    inviter: dict[str, str] = field(default_factory=dict)
    activated: set[str] = field(default_factory=set)
    paid: list[PaidPurchase] = field(default_factory=list)

    def upline(self, member: str) -> list[str]:
        path = []
        while member in self.inviter:
            member = self.inviter[member]
            path.append(member)
        return path

    def expected(self) -> dict[str, ReferralStats]:
        return compute_all(self.members, self.inviter, self.activated, self.paid)


class Events:
    """Applies events to the store and to the mirror, with fresh event ids."""

    def __init__(self, store: ReferralStatsStore, tenant: str, community: Community) -> None:
        self.store, self.tenant, self.c = store, tenant, community
        self.sent: list[tuple[str, Any]] = []

    def _id(self) -> str:
        return f"ev{len(self.sent)}"

    async def refer(self, inviter: str, invitee: str) -> bool:
        event_id, upline = self._id(), [inviter, *self.c.upline(inviter)]
        self.c.inviter[invitee] = inviter
        self.sent.append((event_id, ("referral", invitee, upline)))
        return await self.store.apply_referral(self.tenant, event_id, invitee, upline)

    async def activate(self, member: str) -> bool:
        event_id, upline = self._id(), self.c.upline(member)
        self.c.activated.add(member)
        self.sent.append((event_id, ("activation", member, upline)))
        return await self.store.apply_activation(self.tenant, event_id, member, upline)

    async def buy(self, buyer: str, amount: int, currency: str = "CNY", credited: str | None = None) -> bool:
        event_id, upline = self._id(), self.c.upline(buyer)
        first = all(row[0] != buyer for row in self.c.paid)
        self.c.paid.append((buyer, amount, currency, credited))
        args = (buyer, upline, amount, currency, first, credited)
        self.sent.append((event_id, ("paid_purchase", *args)))
        return await self.store.apply_paid_purchase(
            self.tenant, event_id, buyer, upline, amount, currency, first_paid=first, attributed_to=credited,
        )

    async def redeliver(self, index: int) -> bool:
        event_id, event = self.sent[index]
        kind = event[0]
        if kind == "referral":
            return await self.store.apply_referral(self.tenant, event_id, event[1], event[2])
        if kind == "activation":
            return await self.store.apply_activation(self.tenant, event_id, event[1], event[2])
        buyer, upline, amount, currency, first, credited = event[1:]
        return await self.store.apply_paid_purchase(
            self.tenant, event_id, buyer, upline, amount, currency, first_paid=first, attributed_to=credited,
        )


# -- compute_all: known answers and the definitions ---------------------------------------------


def test_compute_all_on_a_small_forest():
    # r -> a -> (b, c), c -> d; x alone; b bought twice, d once (credited to a)
    members = ["r", "a", "b", "c", "d", "x"]
    inviter = {"a": "r", "b": "a", "c": "a", "d": "c"}
    paid = [("b", 100, "CNY", None), ("b", 50, "USD", "a"), ("d", 7, "CNY", "a")]
    stats = compute_all(members, inviter, {"b", "c", "r"}, paid)

    assert list(stats) == members
    assert stats["r"] == ReferralStats(
        "r", direct_invites=1, team_size=4, depth=3, level_counts=(1, 2, 1), activated_direct=0, activated_team=2,
        converted_direct=0, converted_team=2, team_gmv={"CNY": 107, "USD": 50}, activated=True,
    )
    assert stats["a"] == ReferralStats(
        "a", direct_invites=2, team_size=3, depth=2, level_counts=(2, 1), activated_direct=2, activated_team=2,
        converted_direct=1, converted_team=2, team_gmv={"CNY": 107, "USD": 50},
        attributed_gmv={"USD": 50, "CNY": 7}, inviter="r",
    )
    assert stats["c"] == ReferralStats(
        "c", direct_invites=1, team_size=1, depth=1, level_counts=(1,), converted_direct=1, converted_team=1,
        team_gmv={"CNY": 7}, activated=True, inviter="a",
    )
    assert stats["b"] == ReferralStats(
        "b", own_gmv={"CNY": 100, "USD": 50}, activated=True, converted=True, inviter="a",
    )
    assert stats["x"] == ReferralStats("x")
    assert compute_all([], {}, set(), []) == {}


def test_compute_all_rejects_what_is_not_a_forest():
    cases = [
        (["a", "a"], {}, set(), [], "listed twice"),
        (["a", "b"], {"a": "b", "b": "a"}, set(), [], "cycle"),
        (["a", "b", "c"], {"a": "b", "b": "c", "c": "b"}, set(), [], "cycle"),
        (["a"], {"a": "a"}, set(), [], "itself"),
        (["a"], {"a": "zz"}, set(), [], "inviter 'zz'"),
        (["a"], {"zz": "a"}, set(), [], "invitee 'zz'"),
        (["a"], {}, {"zz"}, [], "activated member 'zz'"),
        (["a"], {}, set(), [("zz", 1, "CNY", None)], "buyer 'zz'"),
        (["a"], {}, set(), [("a", 1, "CNY", "zz")], "credited member 'zz'"),
        (["a"], {}, set(), [("a", -1, "CNY", None)], "not negative"),
    ]
    for members, inviter, activated, paid, message in cases:
        with pytest.raises(ValueError, match=message):
            compute_all(members, inviter, activated, paid)


@st.composite
def forests(draw: st.DrawFn) -> tuple[list[str], dict[str, str], set[str], list[PaidPurchase]]:
    n = draw(st.integers(0, 30))
    members = [f"m{i}" for i in range(n)]
    inviter = {}
    for i in range(1, n):  # an inviter among the earlier members keeps it a forest
        pick = draw(st.integers(-1, i - 1))
        if pick >= 0:
            inviter[members[i]] = members[pick]
    order = draw(st.permutations(members))
    activated = {m for m in members if draw(st.booleans())}
    paid: list[PaidPurchase] = []
    if members:
        rows = st.tuples(st.sampled_from(members), st.integers(0, 10**12), st.sampled_from(["CNY", "USD", "HKD"]),
                         st.none() | st.sampled_from(members))
        paid = draw(st.lists(rows, max_size=20))
    return list(order), inviter, activated, paid


@settings(max_examples=100, deadline=None, database=None)
@given(forests())
def test_compute_all_matches_the_definitions(forest):
    members, inviter, activated, paid = forest
    assert compute_all(members, inviter, activated, paid) == slow_stats(members, inviter, activated, paid)


# -- the store: known answers --------------------------------------------------------------------


async def test_a_four_level_chain(store, tenant):
    c = Community(["r", "a", "b", "c", "d"])
    ev = Events(store, tenant, c)
    # given r -> a -> b -> c -> d, built top-down
    for inviter, invitee in [("r", "a"), ("a", "b"), ("b", "c"), ("c", "d")]:
        assert await ev.refer(inviter, invitee) is True
    # when d and b become active and d and c buy
    assert await ev.activate("d") is True
    assert await ev.activate("b") is True
    assert await ev.buy("d", 1000, "CNY", credited="b") is True
    assert await ev.buy("d", 500, "USD") is True
    assert await ev.buy("c", 200, "CNY") is True

    r, a, b, c_, d = await store.stats_many(tenant, ["r", "a", "b", "c", "d"])
    everything = {"CNY": 1200, "USD": 500}
    assert r == ReferralStats("r", direct_invites=1, team_size=4, depth=4, level_counts=(1, 1, 1, 1),
                              activated_team=2, converted_team=2, team_gmv=everything)
    assert a == ReferralStats("a", direct_invites=1, team_size=3, depth=3, level_counts=(1, 1, 1), activated_direct=1,
                              activated_team=2, converted_team=2, team_gmv=everything, inviter="r")
    assert b == ReferralStats("b", direct_invites=1, team_size=2, depth=2, level_counts=(1, 1), activated_team=1,
                              converted_direct=1, converted_team=2, team_gmv=everything, attributed_gmv={"CNY": 1000},
                              activated=True, inviter="a")
    assert c_ == ReferralStats("c", direct_invites=1, team_size=1, depth=1, level_counts=(1,), activated_direct=1,
                               activated_team=1, converted_direct=1, converted_team=1,
                               team_gmv={"CNY": 1000, "USD": 500}, own_gmv={"CNY": 200}, converted=True, inviter="b")
    assert d == ReferralStats("d", own_gmv={"CNY": 1000, "USD": 500}, activated=True, converted=True, inviter="c")
    assert [r, a, b, c_, d] == list(c.expected().values())
    assert await store.stats(tenant, "b") == b


async def test_attaching_a_team_that_already_has_activity(store, tenant):
    c = Community(["q", "r", "x", "y", "z1", "z2", "w"])
    ev = Events(store, tenant, c)
    # given q -> r, and apart from them x -> y -> (z1, z2), z1 -> w, with activity of their own
    await ev.refer("q", "r")
    for inviter, invitee in [("x", "y"), ("y", "z1"), ("y", "z2"), ("z1", "w")]:
        await ev.refer(inviter, invitee)
    for member in ("x", "z1", "w"):
        await ev.activate(member)
    await ev.buy("y", 300, "CNY", credited="x")
    await ev.buy("w", 50, "USD")
    await ev.buy("z2", 20, "CNY")
    # when r invites x
    assert await ev.refer("r", "x") is True

    # then r and q take x's whole team, one and two levels further down
    q, r, x = await store.stats_many(tenant, ["q", "r", "x"])
    gmv = {"CNY": 320, "USD": 50}
    assert r == ReferralStats("r", direct_invites=1, team_size=5, depth=4, level_counts=(1, 1, 2, 1),
                              activated_direct=1, activated_team=3, converted_direct=0, converted_team=3,
                              team_gmv=gmv, inviter="q")
    assert q == ReferralStats("q", direct_invites=1, team_size=6, depth=5, level_counts=(1, 1, 1, 2, 1),
                              activated_direct=0, activated_team=3, converted_team=3, team_gmv=gmv)
    assert x == ReferralStats("x", direct_invites=1, team_size=4, depth=3, level_counts=(1, 2, 1),
                              activated_team=2, converted_direct=1, converted_team=3, team_gmv=gmv,
                              attributed_gmv={"CNY": 300}, activated=True, inviter="r")
    assert await store.stats_many(tenant, c.members) == list(c.expected().values())


async def test_depth_keeps_the_deepest_branch_and_levels_add_up(store, tenant):
    c = Community(["r", "a", "b", "c", "x", "y", "k"])
    ev = Events(store, tenant, c)
    for inviter, invitee in [("r", "a"), ("a", "b"), ("b", "c"), ("x", "y"), ("r", "x"), ("r", "k")]:
        await ev.refer(inviter, invitee)
    r = await store.stats(tenant, "r")
    assert (r.direct_invites, r.team_size, r.depth, r.level_counts) == (3, 6, 3, (3, 2, 1))
    assert sum(r.level_counts) == r.team_size and len(r.level_counts) == r.depth


async def test_gmv_by_currency_and_attributed_gmv(store, tenant):
    c = Community(["kol", "fan", "buyer"])
    ev = Events(store, tenant, c)
    await ev.refer("fan", "buyer")
    await ev.buy("buyer", 1999, "CNY", credited="kol")
    await ev.buy("buyer", 1, "CNY", credited="kol")
    await ev.buy("buyer", 250, "HKD", credited="kol")
    await ev.buy("buyer", 0, "USD", credited="kol")  # zero: converts nothing new, adds no currency
    await ev.buy("kol", 700, "CNY", credited="kol")  # credited with its own purchase
    kol, fan, buyer = await store.stats_many(tenant, ["kol", "fan", "buyer"])
    assert kol.attributed_gmv == {"CNY": 2700, "HKD": 250}
    assert kol.own_gmv == {"CNY": 700} and kol.team_gmv == {}
    assert fan.team_gmv == {"CNY": 2000, "HKD": 250} and fan.converted_direct == 1 and fan.attributed_gmv == {}
    assert buyer.own_gmv == {"CNY": 2000, "HKD": 250} and buyer.converted and buyer.team_gmv == {}
    assert [kol, fan, buyer] == list(c.expected().values())


async def test_a_member_without_numbers_reads_as_zeros(store, tenant):
    assert await store.stats(tenant, "nobody") == ReferralStats("nobody")
    assert await store.stats_many(tenant, []) == []
    assert await store.stats_many(tenant, ["x", "y"]) == [ReferralStats("x"), ReferralStats("y")]


# -- the store: idempotency, atomicity, failures ------------------------------------------------------


async def test_a_redelivered_event_changes_nothing(store, tenant, redis_client):
    c = Community(["r", "a", "b"])
    ev = Events(store, tenant, c)
    await ev.refer("r", "a")
    await ev.refer("a", "b")
    await ev.activate("b")
    await ev.buy("b", 100, "CNY", credited="r")
    before = await store.stats_many(tenant, c.members)
    keys_before = sorted(await redis_client.keys(f"q:{{{tenant}}}:*"))
    for i in range(len(ev.sent)):
        assert await ev.redeliver(i) is False
    assert await store.stats_many(tenant, c.members) == before == list(c.expected().values())
    assert sorted(await redis_client.keys(f"q:{{{tenant}}}:*")) == keys_before


async def test_repeated_facts_under_new_event_ids_count_once(store, tenant, caplog):
    c = Community(["r", "a"])
    ev = Events(store, tenant, c)
    await ev.refer("r", "a")
    await ev.activate("a")
    await ev.buy("a", 100, "CNY")
    before = await store.stats_many(tenant, c.members)
    # a second referral of a, a second activation: no-ops
    assert await store.apply_referral(tenant, "again-1", "a", ["r"]) is False
    assert await store.apply_activation(tenant, "again-2", "a", ["r"]) is False
    assert await store.stats_many(tenant, c.members) == before
    # a purchase wrongly flagged first: GMV counts, the conversion does not, and it is logged
    with caplog.at_level(logging.WARNING, logger="graph.referral_stats"):
        assert await store.apply_paid_purchase(tenant, "again-3", "a", ["r"], 5, "CNY", first_paid=True,
                                               attributed_to=None) is True
    r = await store.stats(tenant, "r")
    assert (r.converted_direct, r.converted_team, r.team_gmv) == (1, 1, {"CNY": 105})
    assert [rec.levelname for rec in caplog.records] == ["WARNING"]
    assert "a had paid before" in caplog.records[0].getMessage()


def commandstats(info: Mapping[str, Any], command: str) -> int:
    return int(info.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_each_event_is_one_script_call(store, tenant, redis_client):
    c = Community(["r", "a", "b"])
    ev = Events(store, tenant, c)
    await ev.refer("r", "a")  # warm-up: the first call may load the script
    await ev.activate("a")
    await ev.buy("a", 1, "CNY")
    steps = [lambda: ev.refer("a", "b"), lambda: ev.activate("b"), lambda: ev.buy("b", 5, "USD", credited="r")]
    for step in steps:
        before = commandstats(await redis_client.info("commandstats"), "evalsha")
        assert await step() is True
        after = commandstats(await redis_client.info("commandstats"), "evalsha")
        assert after - before == 1


async def test_scripts_are_reloaded_after_the_script_cache_is_flushed(store, tenant, redis_client):
    c = Community(["r", "a"])
    ev = Events(store, tenant, c)
    await redis_client.script_flush()
    assert await ev.refer("r", "a") is True
    assert await ev.activate("a") is True
    assert await ev.buy("a", 3, "CNY") is True
    assert await store.stats_many(tenant, c.members) == list(c.expected().values())


async def test_bad_arguments_are_refused_before_reaching_redis(store, tenant):
    with pytest.raises(ValueError, match="upline is empty"):
        await store.apply_referral(tenant, "e1", "a", [])
    with pytest.raises(ValueError, match="distinct members"):
        await store.apply_referral(tenant, "e2", "a", ["b", "a"])
    with pytest.raises(ValueError, match="distinct members"):
        await store.apply_activation(tenant, "e3", "a", ["b", "b"])
    with pytest.raises(ValueError, match="non-negative"):
        await store.apply_paid_purchase(tenant, "e4", "a", [], -1, "CNY", first_paid=True, attributed_to=None)
    with pytest.raises(ValueError, match="event id is empty"):
        await store.apply_activation(tenant, "", "a", [])
    with pytest.raises(ValueError, match="braces"):
        await store.stats("te{n}ant", "a")
    assert await store.stats(tenant, "a") == ReferralStats("a")


async def test_redis_errors_reach_the_caller():
    client = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    try:
        store = ReferralStatsStore(client)
        with pytest.raises(RedisConnectionError):
            await store.apply_activation("ten_down", "e1", "a", ["r"])
        with pytest.raises(RedisConnectionError):
            await store.stats_many("ten_down", ["a"])
    finally:
        await client.aclose()


# -- rebuild ------------------------------------------------------------------------------------


async def test_rebuild_replaces_the_numbers_and_keeps_applied_events(store, tenant, redis_client):
    other = tenant + "o"
    c = Community(["r", "a", "b", "gone"])
    ev = Events(store, tenant, c)
    await ev.refer("r", "a")
    await ev.refer("gone", "b")
    await ev.buy("b", 10, "CNY")
    await store.apply_activation(other, "x1", "a", ["r"])
    assert await store.is_built(tenant) is False and await store.built_at(tenant) is None

    # when the graph says: r -> a -> b, "gone" no longer exists, a is active
    truth = compute_all(["r", "a", "b"], {"a": "r", "b": "a"}, {"a"}, [("b", 10, "CNY", None)])
    started = datetime.now(UTC)
    await store.rebuild(tenant, truth, included_events=["in-snapshot"])

    assert await store.stats_many(tenant, ["r", "a", "b", "gone"]) == [*truth.values(), ReferralStats("gone")]
    assert await redis_client.exists(f"q:{{{tenant}}}:ref:m:gone") == 0
    assert await store.is_built(tenant) is True
    built = await store.built_at(tenant)
    assert built is not None and started - timedelta(seconds=1) <= built <= datetime.now(UTC)
    # old events and events included in the snapshot stay no-ops
    for i in range(len(ev.sent)):
        assert await ev.redeliver(i) is False
    assert await store.apply_activation(tenant, "in-snapshot", "a", ["r"]) is False
    assert await store.stats_many(tenant, ["r", "a", "b"]) == list(truth.values())
    # new events build on the rebuilt numbers; the other tenant was not touched
    assert await store.apply_activation(tenant, "after", "b", ["a", "r"]) is True
    assert (await store.stats(tenant, "r")).activated_team == 2
    assert (await store.stats(other, "r")).activated_direct == 1 and await store.is_built(other) is False


async def test_rebuild_in_chunks(redis_client, tenant):
    store = ReferralStatsStore(redis_client, chunk_size=7)
    members = [f"m{i}" for i in range(60)]
    rng = random.Random(5)
    inviter = {m: members[rng.randrange(i)] for i, m in enumerate(members) if i and rng.random() < 0.9}
    truth = compute_all(members, inviter, set(members[::3]), [(m, 3, "CNY", "m0") for m in members[::4]])
    await store.rebuild(tenant, truth)
    await store.rebuild(tenant, truth)  # again: deletes page by page, writes page by page
    assert await store.stats_many(tenant, members) == list(truth.values())
    with pytest.raises(ValueError, match="filed under"):
        await store.rebuild(tenant, {"m1": truth["m2"]})


# -- the key property ----------------------------------------------------------------------------


async def run_random_sequence(store: ReferralStatsStore, tenant: str, seed: int) -> None:
    rng = random.Random(seed)
    c = Community([f"mem_{i:02d}" for i in range(25)])
    ev = Events(store, tenant, c)

    def team_of(member: str) -> set[str]:
        return {m for m in c.members if member in c.upline(m)} | {member}

    for _ in range(60):
        roll = rng.random()
        if roll < 0.1 and ev.sent:
            assert await ev.redeliver(rng.randrange(len(ev.sent))) is False
            continue
        if roll < 0.45:
            free = [m for m in c.members if m not in c.inviter]
            invitee = rng.choice(free)
            inviters = [m for m in c.members if m not in team_of(invitee)]
            if inviters:
                assert await ev.refer(rng.choice(inviters), invitee) is True
                continue
        if roll < 0.65:
            idle = [m for m in c.members if m not in c.activated]
            if idle:
                assert await ev.activate(rng.choice(idle)) is True
                continue
        amount = rng.choice([0, 1, 99, 1999, 10**13])
        credited = rng.choice([None, None, *c.members])
        assert await ev.buy(rng.choice(c.members), amount, rng.choice(["CNY", "CNY", "USD"]), credited) is True

    expected = c.expected()
    assert expected == slow_stats(c.members, c.inviter, c.activated, c.paid)
    assert await store.stats_many(tenant, c.members) == list(expected.values()), f"seed {seed}"
    await store.rebuild(tenant, expected)
    assert await store.stats_many(tenant, c.members) == list(expected.values()), f"seed {seed} after rebuild"


async def test_incremental_events_equal_the_full_computation(store, tenant):
    for seed in range(30):
        await run_random_sequence(store, f"{tenant}s{seed}", seed)
