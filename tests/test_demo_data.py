"""The synthetic community generator (pure) and its bulk loader (against the embedded server)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest

from domain.ids import ID_PATTERN
from graph.client import GraphClient, to_datetime
from graph.demo_data import (
    CONTENT_WINDOW_DAYS,
    MAX_REFERRAL_DEPTH,
    DemoData,
    DemoSummary,
    generate,
    has_members,
    load_demo,
)

NOW = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
CODE = re.compile(r"^[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{8}$")
PHONE = re.compile(r"^1[3-9]\d{9}$")
Row = dict[str, Any]


@cache
def community(members: int = 2000, seed: int = 7, tenant: str = "ten_demotest") -> DemoData:
    return generate(tenant=tenant, members=members, seed=seed, now=NOW)


@cache
def rows(members: int = 2000, seed: int = 7) -> dict[str, list[Row]]:
    return {st.name: st.rows() for st in community(members, seed).stages}


def all_rows(data: DemoData) -> dict[str, list[Row]]:
    return {st.name: st.rows() for st in data.stages}


# ---------------------------------------------------------------------------------------
# generate: pure
# ---------------------------------------------------------------------------------------


def test_generate_is_deterministic() -> None:
    first = all_rows(generate(tenant="ten_a", members=400, seed=11, now=NOW))
    again = all_rows(generate(tenant="ten_a", members=400, seed=11, now=NOW))
    assert first == again
    other_seed = all_rows(generate(tenant="ten_a", members=400, seed=12, now=NOW))
    assert other_seed["members"] != first["members"]
    assert other_seed["follows"] != first["follows"]


def test_tenants_never_share_ids() -> None:
    a = all_rows(generate(tenant="ten_a", members=50, seed=1, now=NOW))
    b = all_rows(generate(tenant="ten_b", members=50, seed=1, now=NOW))
    for stage in ("members", "communities", "tags", "products", "contents", "comments", "purchases"):
        assert not {r["id"] for r in a[stage]} & {r["id"] for r in b[stage]}, stage
    assert all(r["tenantId"] == "ten_b" for r in b["members"])


def test_summary_matches_the_stages() -> None:
    data = community()
    r = rows()
    assert data.summary == DemoSummary(
        members=len(r["members"]), communities=len(r["communities"]), follows=len(r["follows"]),
        referrals=len(r["referrals"]), memberships=len(r["memberships"]), contents=len(r["contents"]),
        comments=len(r["comments"]), likes=len(r["likes"]), shares=len(r["shares"]),
        favorites=len(r["favorites"]), products=len(r["products"]), purchases=len(r["purchases"]),
        tags=len(r["tags"]),
    )
    assert data.summary.members == 2000
    assert data.summary.communities == 20
    assert 50 <= data.summary.products <= 200
    # batches cover the rows exactly
    follows = data.stage("follows")
    assert [row for batch in follows.batches(777) for row in batch] == r["follows"]


def test_every_id_is_well_formed() -> None:
    r = rows()
    for stage, stage_rows in r.items():
        for row in stage_rows:
            for key in ("id", "a", "b", "commentId"):
                if key in row:
                    assert ID_PATTERN.match(row[key]), (stage, key, row[key])
    for stage in ("members", "communities", "tags", "products", "contents", "comments", "purchases"):
        ids = [row["id"] for row in r[stage]]
        assert len(set(ids)) == len(ids), stage
        assert all(row["tenantId"] == "ten_demotest" for row in r[stage])


def test_member_properties() -> None:
    members = rows()["members"]
    codes = [m["inviteCode"] for m in members]
    assert len(set(codes)) == len(codes)
    assert all(CODE.match(c) for c in codes)
    assert all(PHONE.match(m["phone"]) for m in members)
    assert all(m["wechatId"].startswith("wxid_") for m in members)
    assert all(0 <= m["level"] <= 10 and m["points"] >= 0 for m in members)
    assert {m["channel"] for m in members} <= {
        "wechat", "wecom", "mini_program", "app", "h5", "livestream", "offline", "referral"
    }
    assert all(isinstance(m["marketingConsent"], bool) and isinstance(m["profilingConsent"], bool) for m in members)
    assert len({m["city"] for m in members}) >= 10
    assert len({m["displayName"] for m in members}) > 1000
    joined = [m["joinedAt"] for m in members]
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in joined)
    assert all(NOW - timedelta(days=600) < t < NOW for t in joined)


def test_referrals_form_a_forest() -> None:
    r = rows()
    members = {m["id"]: m for m in r["members"]}
    inviter_of: dict[str, str] = {}
    for ref in r["referrals"]:
        assert ref["b"] not in inviter_of, "a member has at most one inviter"
        assert ref["a"] != ref["b"]
        inviter_of[ref["b"]] = ref["a"]
        invitee, inviter = members[ref["b"]], members[ref["a"]]
        assert invitee["joinedAt"] == ref["at"]
        assert inviter["joinedAt"] < ref["at"]
        assert invitee["channel"] == "referral"
        assert ref["code"] == inviter["inviteCode"]
    assert 0.3 <= len(inviter_of) / len(members) <= 0.5

    def depth(member: str) -> int:
        seen = {member}
        levels = 0
        while member in inviter_of:
            member = inviter_of[member]
            assert member not in seen, "referral cycle"
            seen.add(member)
            levels += 1
        return levels

    deepest = max(depth(m) for m in members)
    assert 4 <= deepest <= 10
    assert deepest <= MAX_REFERRAL_DEPTH
    assert sum(m["channel"] == "referral" for m in members.values()) == len(inviter_of)


def test_follows_are_simple_and_heavy_tailed() -> None:
    r = rows()
    follows = r["follows"]
    pairs = [(f["a"], f["b"]) for f in follows]
    assert all(a != b for a, b in pairs)
    assert len(set(pairs)) == len(pairs)
    assert 6 <= len(follows) / len(r["members"]) <= 10
    in_degree = sorted(Counter(b for _, b in pairs).values(), reverse=True)
    top = len(r["members"]) // 100
    assert sum(in_degree[:top]) >= 0.15 * len(follows)
    joined = {m["id"]: m["joinedAt"] for m in r["members"]}
    assert all(f["at"] >= max(joined[f["a"]], joined[f["b"]]) and f["at"] < NOW for f in follows)


def test_communities_and_roles() -> None:
    r = rows()
    by_community: dict[str, Counter[str]] = {}
    for ms in r["memberships"]:
        by_community.setdefault(ms["b"], Counter())[ms["role"]] += 1
    assert set(by_community) == {c["id"] for c in r["communities"]}
    assert all(roles["owner"] == 1 and roles["admin"] >= 1 for roles in by_community.values())
    assert sum(roles["kol"] for roles in by_community.values()) > 0
    per_member = Counter(ms["a"] for ms in r["memberships"])
    assert len(per_member) == len(r["members"])
    assert {c["kind"] for c in r["communities"]} == {"interest", "region", "brand", "purpose"}
    assert len({c["name"] for c in r["communities"]}) == len(r["communities"])
    created = {c["id"]: c["createdAt"] for c in r["communities"]}
    joined = {m["id"]: m["joinedAt"] for m in r["members"]}
    for ms in r["memberships"]:
        assert ms["joinedAt"] >= created[ms["b"]]
        assert ms["joinedAt"] >= joined[ms["a"]]
    pairs = [(ms["a"], ms["b"]) for ms in r["memberships"]]
    assert len(set(pairs)) == len(pairs)


def test_every_post_is_in_a_community_of_its_author() -> None:
    r = rows()
    memberships = {(ms["a"], ms["b"]) for ms in r["memberships"]}
    member_joined = {(ms["a"], ms["b"]): ms["joinedAt"] for ms in r["memberships"]}
    community_of = {row["a"]: row["b"] for row in r["content_in"]}
    created = {c["id"]: c["createdAt"] for c in r["contents"]}
    joined = {m["id"]: m["joinedAt"] for m in r["members"]}
    assert len(r["posted"]) == len(r["contents"]) == len(community_of)
    assert 1.3 <= len(r["contents"]) / len(r["members"]) <= 1.7
    for post in r["posted"]:
        pair = (post["a"], community_of[post["b"]])
        assert pair in memberships
        assert post["at"] == created[post["b"]]
        assert created[post["b"]] > joined[post["a"]]
        assert created[post["b"]] >= member_joined[pair]
        assert NOW - timedelta(days=CONTENT_WINDOW_DAYS) <= created[post["b"]] < NOW
    topics = {t["id"] for t in r["tags"] if t["kind"] == "topic"}
    about = r["about"]
    assert {a["a"] for a in about} == set(created)
    assert all(a["b"] in topics for a in about)


def test_interactions_have_no_duplicates() -> None:
    r = rows()
    created = {c["id"]: c["createdAt"] for c in r["contents"]}
    for stage in ("likes", "favorites", "shares", "commented"):
        pairs = [(x["a"], x["b"]) for x in r[stage]]
        assert len(set(pairs)) == len(pairs), stage
        assert all(x["at"] >= created[x["b"]] and x["at"] < NOW for x in r[stage]), stage
    assert all(s["count"] >= 1 and s["lastAt"] >= s["at"] for s in r["shares"])
    comments = {c["id"]: c for c in r["comments"]}
    wrote = {w["b"]: w["a"] for w in r["wrote"]}
    on = {o["a"]: o["b"] for o in r["comment_on"]}
    assert len(r["commented"]) == len(comments) == len(wrote) == len(on)
    for c in r["commented"]:
        assert wrote[c["commentId"]] == c["a"]
        assert on[c["commentId"]] == c["b"]
        assert comments[c["commentId"]]["createdAt"] == c["at"]
    # popular authors get more likes
    followers = Counter(f["b"] for f in r["follows"])
    author = {p["b"]: p["a"] for p in r["posted"]}
    likes = Counter(author[like["b"]] for like in r["likes"])
    posts = Counter(author.values())
    stars = {m for m, _ in followers.most_common(20)}
    star_rate = sum(likes[m] for m in stars) / max(1, sum(posts[m] for m in stars))
    overall = len(r["likes"]) / len(r["posted"])
    assert star_rate > overall


def test_interests_per_member() -> None:
    r = rows()
    per_member = Counter(i["a"] for i in r["interests"])
    assert len(per_member) == len(r["members"])
    assert set(per_member.values()) <= {1, 2, 3, 4}
    assert all(0.0 <= i["weight"] <= 1.0 for i in r["interests"])
    assert {i["source"] for i in r["interests"]} == {"declared", "behavior", "import"}
    tag_kind = {t["id"]: t["kind"] for t in r["tags"]}
    assert {tag_kind[i["b"]] for i in r["interests"]} == {"interest", "profile"}
    names = [(t["kind"], t["name"]) for t in r["tags"]]
    assert len(set(names)) == len(names)


def test_purchases() -> None:
    r = rows()
    purchases = {p["id"]: p for p in r["purchases"]}
    totals: Counter[str] = Counter()
    for line in r["purchase_of"]:
        assert line["qty"] >= 1 and line["unitPrice"] > 0
        totals[line["a"]] += line["qty"] * line["unitPrice"]
    assert all(purchases[p]["amount"] == totals[p] for p in purchases)
    lines = [(line["a"], line["b"]) for line in r["purchase_of"]]
    assert len(set(lines)) == len(lines)
    keys = [p["idempotencyKey"] for p in purchases.values()]
    assert len(set(keys)) == len(keys)
    statuses = Counter(p["status"] for p in purchases.values())
    assert set(statuses) == {"paid", "refunded"}
    assert 0.01 <= statuses["refunded"] / len(purchases) <= 0.1
    assert all(p["currency"] == "CNY" and p["requestHash"] == "demo" for p in purchases.values())
    buyers = {p["a"] for p in r["placed"]}
    assert 0.2 <= len(buyers) / len(r["members"]) <= 0.4
    assert len(r["placed"]) == len(purchases)
    joined = {m["id"]: m["joinedAt"] for m in r["members"]}
    product_created = {p["id"]: p["createdAt"] for p in r["products"]}
    for placed in r["placed"]:
        assert placed["at"] == purchases[placed["b"]]["at"] > joined[placed["a"]]
    for line in r["purchase_of"]:
        assert product_created[line["b"]] <= purchases[line["a"]]["at"]
    skus = [p["sku"] for p in r["products"]]
    assert len(set(skus)) == len(skus)
    assert all(p["priceCurrency"] == "CNY" and isinstance(p["priceAmount"], int) for p in r["products"])
    # invited members buy somewhat more than the others
    referred = {ref["b"] for ref in r["referrals"]}
    referred_rate = len(buyers & referred) / len(referred)
    others_rate = len(buyers - referred) / (len(r["members"]) - len(referred))
    assert referred_rate > others_rate


@pytest.mark.parametrize("members", [1, 2, 5, 40])
def test_tiny_communities(members: int) -> None:
    data = generate(tenant="ten_tiny", members=members, seed=3, now=NOW)
    r = all_rows(data)
    assert len(r["members"]) == members
    assert len(r["communities"]) == 8
    assert all(f["a"] != f["b"] for f in r["follows"])


def test_default_now_is_deterministic_within_a_day() -> None:
    a = generate(tenant="ten_a", members=20, seed=5)
    b = generate(tenant="ten_a", members=20, seed=5)
    assert a.now == b.now or a.now.date() != b.now.date()
    assert a.now.tzinfo is not None


def test_generate_rejects_no_members() -> None:
    with pytest.raises(ValueError):
        generate(tenant="ten_a", members=0, seed=1)


# ---------------------------------------------------------------------------------------
# load_demo: the embedded server
# ---------------------------------------------------------------------------------------

NODE_COUNTS = {
    "members": "MATCH (n:Member {tenantId: $tenant}) RETURN count(n) AS n",
    "communities": "MATCH (n:Community {tenantId: $tenant}) RETURN count(n) AS n",
    "tags": "MATCH (n:Tag {tenantId: $tenant}) RETURN count(n) AS n",
    "products": "MATCH (n:Product {tenantId: $tenant}) RETURN count(n) AS n",
    "contents": "MATCH (n:Content {tenantId: $tenant}) RETURN count(n) AS n",
    "comments": "MATCH (n:Comment {tenantId: $tenant}) RETURN count(n) AS n",
    "purchases": "MATCH (n:Purchase {tenantId: $tenant}) RETURN count(n) AS n",
}
EDGE_COUNTS = {
    "follows": "MATCH (a:Member {tenantId: $tenant})-[r:FOLLOWS]->(:Member) RETURN count(r) AS n",
    "referrals": "MATCH (a:Member {tenantId: $tenant})-[r:REFERRED]->(:Member) RETURN count(r) AS n",
    "memberships": "MATCH (a:Member {tenantId: $tenant})-[r:MEMBER_OF]->(:Community) RETURN count(r) AS n",
    "interests": "MATCH (a:Member {tenantId: $tenant})-[r:INTERESTED_IN]->(:Tag) RETURN count(r) AS n",
    "posted": "MATCH (a:Member {tenantId: $tenant})-[r:POSTED]->(:Content) RETURN count(r) AS n",
    "content_in": "MATCH (a:Content {tenantId: $tenant})-[r:IN]->(:Community) RETURN count(r) AS n",
    "about": "MATCH (a:Content {tenantId: $tenant})-[r:ABOUT]->(:Tag) RETURN count(r) AS n",
    "likes": "MATCH (a:Member {tenantId: $tenant})-[r:LIKED]->(:Content) RETURN count(r) AS n",
    "favorites": "MATCH (a:Member {tenantId: $tenant})-[r:FAVORITED]->(:Content) RETURN count(r) AS n",
    "shares": "MATCH (a:Member {tenantId: $tenant})-[r:SHARED]->(:Content) RETURN count(r) AS n",
    "wrote": "MATCH (a:Member {tenantId: $tenant})-[r:WROTE]->(:Comment) RETURN count(r) AS n",
    "comment_on": "MATCH (a:Comment {tenantId: $tenant})-[r:ON]->(:Content) RETURN count(r) AS n",
    "commented": "MATCH (a:Member {tenantId: $tenant})-[r:COMMENTED]->(:Content) RETURN count(r) AS n",
    "placed": "MATCH (a:Member {tenantId: $tenant})-[r:PLACED]->(:Purchase) RETURN count(r) AS n",
    "purchase_of": "MATCH (a:Purchase {tenantId: $tenant})-[r:OF]->(:Product) RETURN count(r) AS n",
}


async def test_load_demo_writes_what_it_reports(graph: GraphClient, tenant: str) -> None:
    assert not await has_members(graph, tenant=tenant)
    calls: list[tuple[str, int, int]] = []
    summary = await load_demo(
        graph, tenant=tenant, members=300, seed=5, batch_size=1000,
        progress=lambda stage, done, total: calls.append((stage, done, total)),
    )
    assert await has_members(graph, tenant=tenant)
    planned = generate(tenant=tenant, members=300, seed=5)  # the loader's `now`: today, midnight UTC
    assert summary == planned.summary

    counts: dict[str, int] = {}
    for stage, query in {**NODE_COUNTS, **EDGE_COUNTS}.items():
        row = await graph.read_one(query, tenant=tenant)  # type: ignore[arg-type]
        assert row is not None
        counts[stage] = int(row["n"])
    for field in NODE_COUNTS:
        assert counts[field] == getattr(summary, field), field
    for field in ("follows", "referrals", "memberships", "likes", "favorites", "shares"):
        assert counts[field] == getattr(summary, field), field
    for stage in EDGE_COUNTS:
        assert counts[stage] == planned.stage(stage).total, stage

    tenant_row = await graph.read_one("MATCH (t:Tenant {id: $tenant}) RETURN t.name AS name", tenant=tenant)
    assert tenant_row is not None and tenant_row["name"]

    # every stage reported its last batch with done == total
    finished = {stage: (done, total) for stage, done, total in calls}
    assert set(finished) == {st.name for st in planned.stages}
    assert all(done == total for done, total in finished.values())

    # a member reads back with the generated properties (datetimes to the microsecond)
    first = planned.stage("members").rows(0, 1)[0]
    row = await graph.read_one("MATCH (m:Member {id: $id}) RETURN m", id=first["id"])
    assert row is not None
    stored = dict(row["m"])
    assert to_datetime(stored.pop("joinedAt")) == first["joinedAt"]
    expected = {k: v for k, v in first.items() if k != "joinedAt"}
    assert stored == expected
