"""Campaigns over GraphQL: fission registrations, invitations sent, K-factor and viral cycle time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.models import Campaign, CampaignKind
from graph.campaigns import virality
from tests.helpers import register

CREATE = """
mutation($input: CreateCampaignInput!) {
  createCampaign(input: $input) {
    __typename
    ... on CampaignPayload { campaign { id name kind startsAt endsAt } }
    ... on UserError { code field }
  }
}
"""
SENT = """
mutation($c: ID!, $n: Int!, $as: ID) {
  recordInvitesSent(input: {campaignId: $c, count: $n}, asMemberId: $as) {
    __typename
    ... on InvitesSentPayload { invitationsSent }
    ... on UserError { code field }
  }
}
"""
VIRALITY = """
query($c: ID!) {
  campaignVirality(campaignId: $c) {
    campaign { id } participants invitationsSent conversions kFactor invitationsPerParticipant conversionRate
    viralCycleSeconds
  }
}
"""
REFERRAL = "query($id: ID!) { member(id: $id) { referral { campaignId inviter { id } riskSignals { kind } } } }"


async def running_campaign(api: Any, token: str, **fields: Any) -> str:
    now = datetime.now(UTC)
    variables = {"input": {"name": "Spring fission", "startsAt": (now - timedelta(days=1)).isoformat(),
                           "endsAt": (now + timedelta(days=1)).isoformat(), **fields}}
    data = await api.ok(CREATE, variables, token=token)
    assert data["createCampaign"]["__typename"] == "CampaignPayload", data
    return str(data["createCampaign"]["campaign"]["id"])


async def test_fission_registrations_count_towards_k_factor(api: Any, operator_token: str) -> None:
    campaign = await running_campaign(api, operator_token)
    seed = await register(api, operator_token, "Seed")
    await api.ok(SENT, {"c": campaign, "n": 4, "as": seed["id"]}, token=operator_token)
    first = await register(api, operator_token, "First", inviteCode=seed["inviteCode"], campaignId=campaign)
    await register(api, operator_token, "Second", inviterId=seed["id"], campaignId=campaign)
    await api.ok(SENT, {"c": campaign, "n": 2, "as": first["id"]}, token=operator_token)
    await register(api, operator_token, "Third", inviterId=first["id"], campaignId=campaign)
    await register(api, operator_token, "Outside", inviterId=seed["id"])  # no campaign: not counted

    v = (await api.ok(VIRALITY, {"c": campaign}, token=operator_token))["campaignVirality"]

    # participants: seed, first, second, third; 6 invitations sent; 3 became members
    assert (v["participants"], v["invitationsSent"], v["conversions"]) == (4, 6, 3)
    assert v["invitationsPerParticipant"] == pytest.approx(1.5)
    assert v["conversionRate"] == pytest.approx(0.5)
    assert v["kFactor"] == pytest.approx(0.75)
    assert v["viralCycleSeconds"] is not None and v["viralCycleSeconds"] >= 0
    referral = (await api.ok(REFERRAL, {"id": first["id"]}, token=operator_token))["member"]["referral"]
    assert referral == {"campaignId": campaign, "inviter": {"id": seed["id"]}, "riskSignals": []}


async def test_registering_into_a_campaign_that_is_not_running_is_rejected(api: Any, operator_token: str) -> None:
    past = datetime.now(UTC) - timedelta(days=10)
    campaign = await running_campaign(api, operator_token, startsAt=past.isoformat(),
                                      endsAt=(past + timedelta(days=1)).isoformat())
    seed = await register(api, operator_token, "Seed")

    data = await api.ok("""mutation($i: RegisterMemberInput!) { registerMember(input: $i) {
        __typename ... on UserError { code field } } }""",
                        {"i": {"displayName": "Late", "inviterId": seed["id"], "campaignId": campaign}},
                        token=operator_token)

    assert data["registerMember"] == {"__typename": "ValidationError", "code": "VALIDATION_FAILED",
                                      "field": "input.campaignId"}


@pytest.mark.parametrize(("fields", "field"), [
    ({"name": ""}, "input.name"),
    ({"endsAt": "2020-01-01T00:00:00+00:00"}, "input"),
])
async def test_bad_campaigns_are_rejected(api: Any, operator_token: str, fields: dict[str, Any], field: str) -> None:
    now = datetime.now(UTC)
    variables = {"input": {"name": "X", "startsAt": now.isoformat(), "endsAt": (now + timedelta(days=1)).isoformat(),
                           **fields}}

    data = await api.ok(CREATE, variables, token=operator_token)

    assert data["createCampaign"]["__typename"] == "ValidationError"
    assert data["createCampaign"]["field"] == field


async def test_virality_of_an_unknown_campaign_is_not_found(api: Any, operator_token: str) -> None:
    body = await api(VIRALITY, {"c": "cpg_nothing"}, token=operator_token)

    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_k_factor_and_cycle_time_definitions() -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    c = Campaign(id="cpg_x", tenant_id="t", name="x", kind=CampaignKind.FISSION, starts_at=at, ends_at=at, created_at=at)

    v = virality(c, participants=10, sent=40, conversions=8, cycles=[timedelta(hours=h) for h in (1, 3, 10)])
    none = virality(c, participants=5, sent=0, conversions=2, cycles=[])

    assert (v.invitations_per_participant, v.conversion_rate, v.k_factor) == (4.0, 0.2, pytest.approx(0.8))
    assert v.viral_cycle == timedelta(hours=3)
    assert (none.invitations_per_participant, none.conversion_rate, none.k_factor, none.viral_cycle) == (
        None, None, 0.4, None)


async def test_a_campaign_reads_by_id_and_as_a_node(api: Any, operator_token: str) -> None:
    campaign = await running_campaign(api, operator_token, kind="GROUP_BUY")

    data = await api.ok("query($id: ID!) { campaign(id: $id) { id name kind } node(id: $id) { __typename id } }",
                        {"id": campaign}, token=operator_token)
    other = await api.ok("query($id: ID!) { campaign(id: $id) { id } }", {"id": campaign},
                         token=api.token("operator", tenant="ten_someoneelse"))

    assert data == {"campaign": {"id": campaign, "name": "Spring fission", "kind": "GROUP_BUY"},
                    "node": {"__typename": "Campaign", "id": campaign}}
    assert other == {"campaign": None}
