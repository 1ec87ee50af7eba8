"""Group-buys (拼团) over GraphQL: exactly N seats under concurrency, success, expiry, refunds, typed errors."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graph.client import GraphClient
from tests.helpers import register

PRODUCT = """
mutation($input: CreateProductInput!) {
  createProduct(input: $input) { __typename ... on ProductPayload { product { id } } }
}
"""
GROUP = """
  __typename
  ... on GroupBuyPayload {
    groupBuy { id status requiredSize seatsTaken seatsLeft expiresAt completedAt failedAt
               product { id } leaderId campaign { id }
               seats { member { id } state leader } }
  }
  ... on UserError { code field message }
"""
OPEN = "mutation($input: OpenGroupBuyInput!, $as: ID) { openGroupBuy(input: $input, asMemberId: $as) {" + GROUP + "} }"
JOIN = "mutation($g: ID!, $as: ID) { joinGroupBuy(groupBuyId: $g, asMemberId: $as) {" + GROUP + "} }"
REFUND = "mutation($g: ID!, $m: ID!) { recordGroupBuyRefund(groupBuyId: $g, memberId: $m) {" + GROUP + "} }"
READ = """query($id: ID!) { groupBuy(id: $id) { id status seatsTaken seatsLeft failedAt seats { member { id } state } } }"""


async def product(api: Any, token: str, sku: str = "tea-gift-box") -> str:
    data = await api.ok(PRODUCT, {"input": {"sku": sku, "name": "Tea gift box", "category": "tea",
                                            "price": {"amount": 19_900}}}, token=token)
    return str(data["createProduct"]["product"]["id"])


async def open_group(api: Any, token: str, leader: str, product_id: str, size: int, **fields: Any) -> dict[str, Any]:
    expires = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    data = await api.ok(OPEN, {"input": {"productId": product_id, "requiredSize": size, "expiresAt": expires, **fields},
                               "as": leader}, token=token)
    result: dict[str, Any] = data["openGroupBuy"]
    return result


async def members(api: Any, token: str, n: int) -> list[str]:
    return [str((await register(api, token, f"Buyer {i}"))["id"]) for i in range(n)]


async def stored(graph: GraphClient, group_id: str) -> dict[str, Any]:
    rows = await graph.read(
        """MATCH (g:GroupBuy {id: $id})
           RETURN g.status AS status, g.seats AS seats,
                  [(m:Member)-[j:JOINED]->(g) | [m.id, j.state]] AS joined""", id=group_id)
    return dict(rows[0])


async def events(graph: GraphClient, tenant: str, type_: str) -> list[dict[str, Any]]:
    rows = await graph.read("MATCH (e:Event {tenantId: $tenant}) WHERE e.type = $type RETURN e.payload AS p",
                            tenant=tenant, type=type_)
    return [json.loads(r["p"]) for r in rows]


async def expire(graph: GraphClient, group_id: str) -> None:
    async def work(tx: Any) -> None:
        await graph.run(tx, "MATCH (g:GroupBuy {id: $id}) SET g.expiresAt = $at",
                        id=group_id, at=datetime.now(UTC) - timedelta(minutes=1))

    await graph.write(work)


async def test_a_group_succeeds_when_its_last_seat_is_taken(api: Any, operator_token: str, graph: GraphClient,
                                                          tenant: str) -> None:
    leader, a, b = await members(api, operator_token, 3)
    prd = await product(api, operator_token)
    opened = await open_group(api, api.token(member=leader), leader, prd, 3)
    gid = opened["groupBuy"]["id"]
    assert (opened["groupBuy"]["status"], opened["groupBuy"]["seatsTaken"], opened["groupBuy"]["seatsLeft"]) == ("OPEN", 1, 2)
    assert opened["groupBuy"]["seats"] == [{"member": {"id": leader}, "state": "JOINED", "leader": True}]

    second = (await api.ok(JOIN, {"g": gid}, token=api.token(member=a)))["joinGroupBuy"]
    third = (await api.ok(JOIN, {"g": gid}, token=api.token(member=b)))["joinGroupBuy"]

    assert (second["groupBuy"]["status"], second["groupBuy"]["seatsTaken"]) == ("OPEN", 2)
    done = third["groupBuy"]
    assert (done["status"], done["seatsTaken"], done["seatsLeft"]) == ("SUCCEEDED", 3, 0)
    assert done["completedAt"] is not None and done["failedAt"] is None
    assert done["product"] == {"id": prd} and done["leaderId"] == leader and done["campaign"] is None
    assert [s["member"]["id"] for s in done["seats"]] == [leader, a, b]
    assert {s["state"] for s in done["seats"]} == {"CONFIRMED"}
    assert await events(graph, tenant, "GROUP_BUY_COMPLETED") == [{"groupBuyId": gid, "members": sorted([leader, a, b])}]


async def test_twenty_five_concurrent_joins_take_exactly_the_free_seats(api: Any, operator_token: str,
                                                                        graph: GraphClient, tenant: str) -> None:
    leader, *crowd = await members(api, operator_token, 26)
    gid = (await open_group(api, operator_token, leader, await product(api, operator_token), 5))["groupBuy"]["id"]

    answers = await asyncio.gather(*(api.ok(JOIN, {"g": gid}, token=api.token(member=m)) for m in crowd[:25]))

    kinds = [a["joinGroupBuy"]["__typename"] for a in answers]
    winners = [m for m, a in zip(crowd, answers) if a["joinGroupBuy"]["__typename"] == "GroupBuyPayload"]
    refused = [a["joinGroupBuy"] for a in answers if a["joinGroupBuy"]["__typename"] != "GroupBuyPayload"]
    assert len(winners) == 4, kinds
    assert {(r["__typename"], r["code"], r["field"]) for r in refused} == {
        ("CampaignRuleError", "GROUP_BUY_FULL", "groupBuyId")}
    assert len(refused) == 21
    row = await stored(graph, gid)
    assert (row["status"], row["seats"]) == ("SUCCEEDED", 5)
    assert sorted(m for m, _ in row["joined"]) == sorted([leader, *winners])  # nothing half-written
    assert {state for _, state in row["joined"]} == {"CONFIRMED"}
    assert len(await events(graph, tenant, "GROUP_BUY_COMPLETED")) == 1


async def test_a_member_takes_one_seat_and_acts_only_for_itself(api: Any, operator_token: str,
                                                               graph: GraphClient) -> None:
    leader, a, b = await members(api, operator_token, 3)
    gid = (await open_group(api, operator_token, leader, await product(api, operator_token), 4))["groupBuy"]["id"]
    await api.ok(JOIN, {"g": gid}, token=api.token(member=a))

    again = (await api.ok(JOIN, {"g": gid}, token=api.token(member=a)))["joinGroupBuy"]
    as_leader = (await api.ok(JOIN, {"g": gid}, token=api.token(member=leader)))["joinGroupBuy"]
    for_other = (await api.ok(JOIN, {"g": gid, "as": b}, token=api.token(member=a)))["joinGroupBuy"]
    unknown = (await api.ok(JOIN, {"g": "grb_nothing"}, token=api.token(member=b)))["joinGroupBuy"]
    bad_id = (await api.ok(JOIN, {"g": "mem_nothing"}, token=api.token(member=b)))["joinGroupBuy"]

    assert (again["code"], again["field"]) == ("ALREADY_JOINED", "groupBuyId")
    assert as_leader["code"] == "ALREADY_JOINED"
    assert (for_other["code"], for_other["field"]) == ("FORBIDDEN", "asMemberId")
    assert (unknown["code"], unknown["field"]) == ("NOT_FOUND", "groupBuyId")
    assert (bad_id["code"], bad_id["field"]) == ("VALIDATION_FAILED", "groupBuyId")
    row = await stored(graph, gid)
    assert (row["status"], row["seats"], sorted(m for m, _ in row["joined"])) == ("OPEN", 2, sorted([leader, a]))


@pytest.mark.parametrize(("fields", "code", "field"), [
    ({"requiredSize": 1}, "VALIDATION_FAILED", "input.requiredSize"),
    ({"requiredSize": 101}, "VALIDATION_FAILED", "input.requiredSize"),
    ({"expiresAt": "2020-01-01T00:00:00+00:00"}, "VALIDATION_FAILED", "input.expiresAt"),
    ({"expiresAt": "2030-01-01T00:00:00"}, "VALIDATION_FAILED", "input.expiresAt"),
    ({"productId": "prd_nothing"}, "NOT_FOUND", "input.productId"),
    ({"campaignId": "cpg_nothing"}, "NOT_FOUND", "input.campaignId"),
])
async def test_bad_group_buys_are_refused_and_write_nothing(api: Any, operator_token: str, graph: GraphClient,
                                                            tenant: str, fields: dict[str, Any], code: str,
                                                            field: str) -> None:
    (leader,) = await members(api, operator_token, 1)
    prd = await product(api, operator_token)
    result = await open_group(api, operator_token, leader, fields.pop("productId", prd), fields.pop("requiredSize", 3),
                              **fields)

    assert (result["code"], result["field"]) == (code, field)
    rows = await graph.read("MATCH (g:GroupBuy {tenantId: $tenant}) RETURN count(g) AS n", tenant=tenant)
    assert rows[0]["n"] == 0


async def test_an_expired_group_reads_failed_then_the_sweep_fails_it_and_refunds_are_recorded(
        api: Any, app: Any, operator_token: str, graph: GraphClient, tenant: str) -> None:
    leader, a = await members(api, operator_token, 2)
    gid = (await open_group(api, operator_token, leader, await product(api, operator_token), 3))["groupBuy"]["id"]
    await api.ok(JOIN, {"g": gid}, token=api.token(member=a))
    await expire(graph, gid)

    read = (await api.ok(READ, {"id": gid}, token=api.token(member=a)))["groupBuy"]
    before = await stored(graph, gid)

    assert (read["status"], read["seatsLeft"], {s["state"] for s in read["seats"]}) == ("FAILED", 0, {"REFUND_PENDING"})
    assert read["failedAt"] is not None
    assert before["status"] == "OPEN"  # only the sweep writes it

    repos = app.state.resources.repos
    assert await repos.group_buys.sweep(tenant=tenant) == 1
    assert await repos.group_buys.sweep(tenant=tenant) == 0
    after = await stored(graph, gid)
    assert (after["status"], after["seats"], {s for _, s in after["joined"]}) == ("FAILED", 2, {"REFUND_PENDING"})
    failed = await events(graph, tenant, "GROUP_BUY_FAILED")
    assert [(e["groupBuyId"], e["members"], e["requiredSize"]) for e in failed] == [(gid, sorted([leader, a]), 3)]

    refunded = (await api.ok(REFUND, {"g": gid, "m": a}, token=operator_token))["recordGroupBuyRefund"]
    twice = (await api.ok(REFUND, {"g": gid, "m": a}, token=operator_token))["recordGroupBuyRefund"]
    by_member = (await api.ok(REFUND, {"g": gid, "m": leader}, token=api.token(member=leader)))["recordGroupBuyRefund"]

    states = {s["member"]["id"]: s["state"] for s in refunded["groupBuy"]["seats"]}
    assert states == {leader: "REFUND_PENDING", a: "REFUNDED"}
    assert (twice["code"], twice["field"]) == ("VALIDATION_FAILED", "memberId")
    assert by_member["code"] == "FORBIDDEN"


async def test_a_join_of_an_expired_group_is_closed(api: Any, operator_token: str, graph: GraphClient) -> None:
    leader, a = await members(api, operator_token, 2)
    gid = (await open_group(api, operator_token, leader, await product(api, operator_token), 3))["groupBuy"]["id"]
    await expire(graph, gid)

    refused = (await api.ok(JOIN, {"g": gid}, token=api.token(member=a)))["joinGroupBuy"]

    assert (refused["__typename"], refused["code"], refused["field"]) == (
        "CampaignRuleError", "GROUP_BUY_CLOSED", "groupBuyId")
    assert (await stored(graph, gid))["seats"] == 1


async def test_a_group_buy_reads_as_null_in_another_tenant(api: Any, operator_token: str) -> None:
    (leader,) = await members(api, operator_token, 1)
    gid = (await open_group(api, operator_token, leader, await product(api, operator_token), 2))["groupBuy"]["id"]

    other = await api.ok(READ, {"id": gid}, token=api.token("operator", tenant="ten_someoneelse"))

    assert other == {"groupBuy": None}


async def test_the_background_sweep_fails_expired_groups(api: Any, app: Any, operator_token: str,
                                                         graph: GraphClient, tenant: str) -> None:
    from graph.rewards_sweep import sweep_campaigns, sweep_once

    leader, a = await members(api, operator_token, 2)
    prd = await product(api, operator_token)
    first = (await open_group(api, operator_token, leader, prd, 3))["groupBuy"]["id"]
    second = (await open_group(api, operator_token, a, prd, 3))["groupBuy"]["id"]
    await expire(graph, first)
    repos = app.state.resources.repos

    assert await sweep_once(repos, tenant=tenant) == (1, 0)
    await expire(graph, second)
    stop = asyncio.Event()
    loop = asyncio.create_task(sweep_campaigns(repos, stop, interval=0.05))
    for _ in range(200):  # the loop's first pass runs at once; wait for it, not for a time
        if (await stored(graph, second))["status"] == "FAILED":
            break
        await asyncio.sleep(0.05)
    stop.set()
    await loop

    assert (await stored(graph, first))["status"] == (await stored(graph, second))["status"] == "FAILED"
    assert len(await events(graph, tenant, "GROUP_BUY_FAILED")) == 2


async def test_joins_through_two_app_instances_take_exactly_the_free_seats(
        api: Any, operator_token: str, graph: GraphClient, stack: Any, settings: Any) -> None:
    """Each app instance queues its own joins; between instances only the graph's MVCC arbitrates."""
    from tests.conftest import Api, own_app

    leader, *crowd = await members(api, operator_token, 25)
    gid = (await open_group(api, operator_token, leader, await product(api, operator_token), 5))["groupBuy"]["id"]

    async with own_app(stack, settings) as http2:
        other = Api(http2, settings, api.tenant)
        answers = await asyncio.gather(*((api if i % 2 else other).ok(JOIN, {"g": gid}, token=api.token(member=m))
                                         for i, m in enumerate(crowd)))

    codes = sorted(a["joinGroupBuy"].get("code") or "OK" for a in answers)
    assert codes == ["GROUP_BUY_FULL"] * 20 + ["OK"] * 4
    row = await stored(graph, gid)
    assert (row["status"], row["seats"], len(row["joined"])) == ("SUCCEEDED", 5, 5)
