"""The points ledger (积分) over GraphQL: opening balance, FIFO lots, idempotent entries, concurrent spends, expiry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graph.client import GraphClient
from tests.helpers import register

CHANGE = """
mutation($input: ChangePointsInput!) {
  changePoints(input: $input) {
    __typename
    ... on PointsPayload { created balance entry { id kind amount balanceAfter seq idempotencyKey remaining reason } }
    ... on UserError { code field message }
  }
}
"""
LEDGER = """
query($m: ID!, $first: Int, $after: String) {
  pointsBalance(memberId: $m)
  member(id: $m) { points }
  pointsLedger(memberId: $m, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { kind amount balanceAfter seq remaining idempotencyKey }
  }
}
"""
EXPIRES = (datetime.now(UTC) + timedelta(days=30)).isoformat()


async def change(api: Any, token: str, member: str, kind: str, amount: int, key: str, **fields: Any) -> dict[str, Any]:
    data = await api.ok(CHANGE, {"input": {"memberId": member, "kind": kind, "amount": amount, "idempotencyKey": key,
                                           **fields}}, token=token)
    result: dict[str, Any] = data["changePoints"]
    return result


async def member_with_points(api: Any, token: str, graph: GraphClient, points: int) -> str:
    """A member whose points predate the ledger (as the demo data and older versions wrote them)."""
    member = str((await register(api, token, "Saver"))["id"])

    async def work(tx: Any) -> None:
        await graph.run(tx, "MATCH (m:Member {id: $id}) SET m.points = $points", id=member, points=points)

    await graph.write(work)
    return member


async def ledger(api: Any, token: str, member: str) -> dict[str, Any]:
    data: dict[str, Any] = await api.ok(LEDGER, {"m": member, "first": 100}, token=token)
    return data


async def stored(graph: GraphClient, member: str) -> dict[str, Any]:
    rows = await graph.read("""MATCH (m:Member {id: $id})
                               RETURN m.points AS points, [(m)-[:LEDGER]->(e:PointsEntry) | e.amount] AS amounts,
                                      [(m)-[:LEDGER]->(e:PointsEntry) WHERE e.remaining > 0 | e.remaining] AS lots""",
                            id=member)
    return dict(rows[0])


async def test_old_points_open_the_ledger_and_spending_takes_the_first_expiring_lot(
        api: Any, operator_token: str, graph: GraphClient) -> None:
    member = await member_with_points(api, operator_token, graph, 120)

    earned = await change(api, operator_token, member, "EARN", 50, "earn-0001", expiresAt=EXPIRES, reason="check-in")
    spent = await change(api, api.token(member=member), member, "SPEND", 30, "spend-0001")
    adjusted = await change(api, operator_token, member, "ADJUST", -5, "adjust-0001", reason="goodwill correction")
    read = await ledger(api, api.token(member=member), member)

    assert (earned["balance"], spent["balance"], adjusted["balance"]) == (170, 140, 135)
    assert earned["entry"]["remaining"] == 50 and earned["entry"]["reason"] == "check-in"
    assert [(e["kind"], e["amount"], e["balanceAfter"], e["seq"], e["remaining"]) for e in read["pointsLedger"]["nodes"]] == [
        ("ADJUST", -5, 135, 4, None),
        ("SPEND", -30, 140, 3, None),
        ("EARN", 50, 170, 2, 15),  # the expiring lot went first: 50 - 30 - 5
        ("OPENING", 120, 120, 1, 120),
    ]
    assert read["pointsBalance"] == read["member"]["points"] == 135 == sum(e["amount"] for e in read["pointsLedger"]["nodes"])
    assert read["pointsLedger"]["totalCount"] == 4
    row = await stored(graph, member)
    assert row["points"] == sum(row["amounts"]) == sum(row["lots"]) == 135


async def test_a_replayed_key_returns_the_original_entry(api: Any, operator_token: str, graph: GraphClient) -> None:
    member = str((await register(api, operator_token, "Earner"))["id"])

    first = await change(api, operator_token, member, "EARN", 40, "earn-replay")
    again = await change(api, operator_token, member, "EARN", 40, "earn-replay")
    other = await change(api, operator_token, member, "EARN", 41, "earn-replay")
    racing = await asyncio.gather(*(change(api, operator_token, member, "EARN", 7, "earn-race") for _ in range(6)))

    assert first["created"] is True and again["created"] is False
    assert again["entry"] == first["entry"] and again["balance"] == 40
    assert (other["__typename"], other["code"], other["field"]) == ("ConflictError", "IDEMPOTENCY_CONFLICT",
                                                                    "input.idempotencyKey")
    assert sorted(r["created"] for r in racing) == [False] * 5 + [True]
    assert len({r["entry"]["id"] for r in racing}) == 1
    assert sorted((await stored(graph, member))["amounts"]) == [7, 40]
    assert (await ledger(api, operator_token, member))["pointsBalance"] == 47


async def test_concurrent_spends_never_overdraw(api: Any, operator_token: str, graph: GraphClient) -> None:
    member = await member_with_points(api, operator_token, graph, 100)
    token = api.token(member=member)

    answers = await asyncio.gather(*(change(api, token, member, "SPEND", 30, f"spend-race-{i}") for i in range(10)))

    spent = [a for a in answers if a["__typename"] == "PointsPayload"]
    refused = [a for a in answers if a["__typename"] != "PointsPayload"]
    assert len(spent) == 3
    assert {(r["__typename"], r["code"], r["field"]) for r in refused} == {
        ("CampaignRuleError", "INSUFFICIENT_POINTS", "input.amount")}
    assert sorted(a["entry"]["balanceAfter"] for a in spent) == [10, 40, 70]
    read = await ledger(api, token, member)
    assert read["pointsBalance"] == read["member"]["points"] == 10
    assert sum(e["amount"] for e in read["pointsLedger"]["nodes"]) == 10
    assert all(e["balanceAfter"] >= 0 for e in read["pointsLedger"]["nodes"])
    assert [e["seq"] for e in read["pointsLedger"]["nodes"]] == [4, 3, 2, 1]


async def test_spending_more_than_the_balance_is_refused_and_writes_nothing(api: Any, operator_token: str,
                                                                            graph: GraphClient) -> None:
    member = await member_with_points(api, operator_token, graph, 20)

    refused = await change(api, operator_token, member, "SPEND", 21, "spend-too-much")
    negative = await change(api, operator_token, member, "ADJUST", -21, "adjust-too-much", reason="x")

    assert (refused["code"], refused["field"]) == ("INSUFFICIENT_POINTS", "input.amount")
    assert negative["code"] == "INSUFFICIENT_POINTS"
    assert await stored(graph, member) == {"points": 20, "amounts": [], "lots": []}


async def test_expired_lots_leave_the_balance_at_once_and_the_sweep_writes_them_off(
        api: Any, app: Any, operator_token: str, graph: GraphClient, tenant: str) -> None:
    member = await member_with_points(api, operator_token, graph, 10)
    earned = await change(api, operator_token, member, "EARN", 40, "earn-expiring", expiresAt=EXPIRES)
    await change(api, operator_token, member, "SPEND", 15, "spend-before-expiry")

    async def expire(tx: Any) -> None:
        await graph.run(tx, "MATCH (e:PointsEntry {id: $id}) SET e.expiresAt = $at", id=earned["entry"]["id"],
                        at=datetime.now(UTC) - timedelta(seconds=1))

    await graph.write(expire)
    before = await ledger(api, operator_token, member)
    refused = await change(api, operator_token, member, "SPEND", 11, "spend-after-expiry")

    assert (before["pointsBalance"], before["member"]["points"]) == (10, 35)  # 25 left of the lot have expired
    assert refused["code"] == "INSUFFICIENT_POINTS"

    repos = app.state.resources.repos
    assert await repos.points.sweep(tenant=tenant) == 1
    assert await repos.points.sweep(tenant=tenant) == 0
    after = await ledger(api, operator_token, member)
    newest = after["pointsLedger"]["nodes"][0]
    assert (newest["kind"], newest["amount"], newest["balanceAfter"], newest["idempotencyKey"]) == (
        "EXPIRE", -25, 10, "#expire:" + earned["entry"]["id"])
    assert after["pointsBalance"] == after["member"]["points"] == 10 == sum(e["amount"] for e in after["pointsLedger"]["nodes"])
    row = await stored(graph, member)
    assert row["points"] == sum(row["amounts"]) == sum(row["lots"]) == 10


async def test_the_ledger_pages_newest_first(api: Any, operator_token: str) -> None:
    member = str((await register(api, operator_token, "Pager"))["id"])
    for i in range(5):
        await change(api, operator_token, member, "EARN", i + 1, f"earn-page-{i}")

    one = await api.ok(LEDGER, {"m": member, "first": 2}, token=operator_token)
    two = await api.ok(LEDGER, {"m": member, "first": 2, "after": one["pointsLedger"]["pageInfo"]["endCursor"]},
                       token=operator_token)
    three = await api.ok(LEDGER, {"m": member, "first": 2, "after": two["pointsLedger"]["pageInfo"]["endCursor"]},
                         token=operator_token)

    seqs = [[e["seq"] for e in page["pointsLedger"]["nodes"]] for page in (one, two, three)]
    assert seqs == [[5, 4], [3, 2], [1]]
    assert [p["pointsLedger"]["pageInfo"]["hasNextPage"] for p in (one, two, three)] == [True, True, False]
    assert one["pointsLedger"]["totalCount"] == 5


async def test_members_spend_and_read_only_their_own_points(api: Any, operator_token: str, graph: GraphClient) -> None:
    member = await member_with_points(api, operator_token, graph, 50)
    other = str((await register(api, operator_token, "Other"))["id"])
    token = api.token(member=other)

    earn = await change(api, token, other, "EARN", 10, "self-earn-1")
    spend = await change(api, token, member, "SPEND", 10, "spend-other-1")
    peek = await api(LEDGER, {"m": member}, token=token)
    staff = await ledger(api, api.token("analyst"), member)

    assert (earn["code"], earn["field"]) == ("FORBIDDEN", "input.kind")
    assert (spend["code"], spend["field"]) == ("FORBIDDEN", "input.memberId")
    assert peek["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert staff["pointsBalance"] == 50 and staff["pointsLedger"]["nodes"] == []  # nothing was written
    assert await stored(graph, member) == {"points": 50, "amounts": [], "lots": []}


@pytest.mark.parametrize(("kind", "amount", "fields", "code", "field"), [
    ("EARN", 0, {}, "VALIDATION_FAILED", "input.amount"),
    ("SPEND", -5, {}, "VALIDATION_FAILED", "input.amount"),
    ("EXPIRE", -5, {}, "VALIDATION_FAILED", "input.kind"),
    ("ADJUST", 5, {}, "VALIDATION_FAILED", "input.reason"),
    ("SPEND", 5, {"expiresAt": EXPIRES}, "VALIDATION_FAILED", "input.expiresAt"),
    ("EARN", 5, {"idempotencyKey": "short"}, "VALIDATION_FAILED", "input.idempotencyKey"),
    ("EARN", 5, {"memberId": "mem_nothing"}, "NOT_FOUND", "input.memberId"),
])
async def test_bad_points_changes_are_refused_and_write_nothing(api: Any, operator_token: str, graph: GraphClient,
                                                                tenant: str, kind: str, amount: int,
                                                                fields: dict[str, Any], code: str, field: str) -> None:
    member = await member_with_points(api, operator_token, graph, 30)

    result = await change(api, operator_token, fields.pop("memberId", member), kind, amount,
                          fields.pop("idempotencyKey", "bad-change-1"), **fields)

    assert (result["code"], result["field"]) == (code, field)
    rows = await graph.read("MATCH (e:PointsEntry {tenantId: $tenant}) RETURN count(e) AS n", tenant=tenant)
    assert rows[0]["n"] == 0


async def test_a_client_key_cannot_take_the_ledgers_own_keys(api: Any, operator_token: str, graph: GraphClient) -> None:
    victim = await member_with_points(api, operator_token, graph, 50)
    squatter = await member_with_points(api, operator_token, graph, 10)

    # the ledger's own OPENING key for the victim, sent by another member as its own spend key
    squat = await change(api, api.token(member=squatter), squatter, "SPEND", 1, f"opening:{victim}")
    refused = await change(api, api.token(member=squatter), squatter, "SPEND", 1, f"#opening:{victim}")
    earned = await change(api, operator_token, victim, "EARN", 5, "earn-after-squat")

    assert squat["__typename"] == "PointsPayload"
    assert refused["code"] == "VALIDATION_FAILED" and refused["field"] == "input.idempotencyKey"
    assert earned["__typename"] == "PointsPayload" and earned["balance"] == 55


ERASE = "mutation($m: ID!) { eraseMember(memberId: $m) { __typename } }"


async def test_an_erased_members_ledger_is_closed_and_never_stalls_the_sweep(
        api: Any, app: Any, operator_token: str, graph: GraphClient, tenant: str) -> None:
    erased = await member_with_points(api, operator_token, graph, 0)
    other = await member_with_points(api, operator_token, graph, 0)
    lots = [await change(api, operator_token, m, "EARN", 20, f"earn-lot-{m}", expiresAt=EXPIRES) for m in (erased, other)]
    await api.ok(ERASE, {"m": erased}, token=api.token("admin"))

    async def expire(tx: Any) -> None:
        await graph.run(tx, "UNWIND $ids AS id MATCH (e:PointsEntry {id: id}) SET e.expiresAt = $at",
                        ids=[lot["entry"]["id"] for lot in lots], at=datetime.now(UTC) - timedelta(seconds=1))

    await graph.write(expire)
    written = await app.state.resources.repos.points.sweep(tenant=tenant)
    refused = await change(api, operator_token, erased, "EARN", 5, "earn-for-erased")

    assert written == 1  # the other member's lot; the erased member's was closed at erasure
    assert (await ledger(api, operator_token, other))["pointsBalance"] == 0
    assert refused["code"] == "NOT_FOUND"
    assert (await stored(graph, erased))["lots"] == []
