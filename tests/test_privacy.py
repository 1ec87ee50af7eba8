"""Pure privacy rules (domain.privacy): consent in force, sources, tombstones, redaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import ErrorCode, PermissionDenied, ValidationFailed
from domain.privacy import (
    TOMBSTONE_KEEPS,
    TOMBSTONE_NAME,
    ConsentPurpose,
    ConsentRecord,
    ConsentSource,
    PiiReads,
    check_consent_source,
    consent_status,
    jsonable,
    redact_payload,
    tombstone,
    tombstone_invite_code,
)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def rec(id_: str, purpose: ConsentPurpose, granted: bool, minutes: int, source: ConsentSource = ConsentSource.APP,
        ) -> ConsentRecord:
    return ConsentRecord(id=id_, purpose=purpose, granted=granted, at=T0 + timedelta(minutes=minutes), source=source)


@pytest.mark.parametrize(("purpose", "granted"), [
    (ConsentPurpose.MARKETING, False), (ConsentPurpose.DATA_SHARING, False), (ConsentPurpose.PROFILING, True),
])
def test_without_records_opt_in_purposes_are_off_and_profiling_is_on(purpose: ConsentPurpose, granted: bool) -> None:
    status = consent_status(purpose, [], granted=granted)
    assert (status.granted, status.by_default, status.since, status.source, status.history) == (
        granted, True, None, None, ())


def test_the_newest_record_that_agrees_with_the_flag_is_in_force() -> None:
    records = [
        rec("a", ConsentPurpose.MARKETING, True, 0, ConsentSource.WECHAT),
        rec("b", ConsentPurpose.MARKETING, False, 5, ConsentSource.OPERATOR),
        rec("c", ConsentPurpose.PROFILING, False, 9),  # another purpose: ignored
    ]
    status = consent_status(ConsentPurpose.MARKETING, records, granted=False)
    assert (status.granted, status.since, status.source, status.by_default) == (
        False, T0 + timedelta(minutes=5), ConsentSource.OPERATOR, False)
    assert [r.id for r in status.history] == ["b", "a"]


def test_a_flag_set_outside_the_consent_api_shows_as_profile() -> None:
    # registerMember(marketingConsent: true): no record, flag on
    assert consent_status(ConsentPurpose.MARKETING, [], granted=True).source is ConsentSource.PROFILE
    # a grant, later switched off through updateMember
    status = consent_status(ConsentPurpose.MARKETING, [rec("a", ConsentPurpose.MARKETING, True, 0)], granted=False)
    assert (status.granted, status.source, status.since, status.by_default) == (False, ConsentSource.PROFILE, None, False)
    assert len(status.history) == 1


def test_records_at_the_same_time_order_by_id() -> None:
    records = [rec("x1", ConsentPurpose.PROFILING, False, 0), rec("x2", ConsentPurpose.PROFILING, True, 0)]
    status = consent_status(ConsentPurpose.PROFILING, records, granted=True)
    assert [r.id for r in status.history] == ["x2", "x1"] and status.by_default is False


@pytest.mark.parametrize("source", [ConsentSource.APP, ConsentSource.MINI_PROGRAM, ConsentSource.WECHAT])
def test_members_record_their_own_decisions_from_a_client(source: ConsentSource) -> None:
    assert check_consent_source(source, self_service=True) is source


@pytest.mark.parametrize("source", [ConsentSource.OPERATOR, ConsentSource.IMPORT])
def test_operator_and_import_sources_are_for_staff(source: ConsentSource) -> None:
    with pytest.raises(PermissionDenied) as caught:
        check_consent_source(source, self_service=True)
    assert caught.value.code is ErrorCode.FORBIDDEN and caught.value.field == "source"
    assert check_consent_source(source, self_service=False) is source


@pytest.mark.parametrize("self_service", [True, False])
def test_profile_is_never_an_input(self_service: bool) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_consent_source(ConsentSource.PROFILE, self_service=self_service)
    assert caught.value.field == "source"


def test_a_tombstone_keeps_ids_and_non_identifying_facts_only() -> None:
    current = {
        "id": "mem_1", "tenantId": "ten_1", "displayName": "王小明", "phone": "13812345678", "wechatId": "wxid_abc",
        "city": "杭州", "joinedAt": T0, "channel": "wechat", "level": 7, "points": 1200, "inviteCode": "ABCD2345",
        "marketingConsent": True, "kolScore": 0.9, "kolComponents": "[1]", "avatarUrl": "https://x/y.png",
        "firstActiveAt": T0, "firstPaidAt": None,
    }
    at = T0 + timedelta(days=3)
    props = tombstone(current, at=at, invite_code="erased_00ff")
    assert props == {
        "id": "mem_1", "tenantId": "ten_1", "joinedAt": T0, "channel": "wechat", "firstActiveAt": T0,
        "displayName": TOMBSTONE_NAME, "level": 0, "points": 0, "inviteCode": "erased_00ff",
        "marketingConsent": False, "profilingConsent": False, "dataSharingConsent": False,
        "profilingWithdrawn": True, "erasedAt": at,
    }
    assert set(props) - set(TOMBSTONE_KEEPS) == {
        "displayName", "level", "points", "inviteCode", "marketingConsent", "profilingConsent",
        "dataSharingConsent", "profilingWithdrawn", "erasedAt"}


def test_erasing_again_keeps_the_first_time_and_placeholder() -> None:
    first = tombstone({"id": "mem_1", "tenantId": "t", "inviteCode": "ABCD2345"}, at=T0, invite_code="erased_1")
    again = tombstone(first, at=T0 + timedelta(hours=1), invite_code="erased_2")
    assert again == first


def test_tombstone_invite_codes_are_unique_and_cannot_be_typed() -> None:
    import re

    codes = {tombstone_invite_code() for _ in range(200)}
    assert len(codes) == 200
    assert not any(re.fullmatch(r"[A-Z0-9]{4,16}", c.strip().upper()) for c in codes)


def test_redaction_replaces_the_id_wherever_it_appears() -> None:
    payload = {"followerId": "mem_x", "followeeId": "mem_y", "commissionTo": ["mem_y", "mem_x"],
               "nested": {"memberId": "mem_x", "amount": 5}, "note": "mem_xy"}
    redacted, changed = redact_payload(payload, "mem_x")
    assert changed is True
    assert redacted == {"followerId": None, "followeeId": "mem_y", "commissionTo": ["mem_y", None],
                        "nested": {"memberId": None, "amount": 5}, "note": "mem_xy"}
    assert redact_payload(payload, "mem_z") == (payload, False)


def test_pii_reads_collect_once_per_request() -> None:
    reads = PiiReads()
    assert not reads
    for member, name in (("mem_b", "phone"), ("mem_a", "wechatId"), ("mem_b", "phone"), ("mem_a", "phone")):
        reads.add(member, name)
    assert reads
    assert reads.drain() == (("mem_a", "mem_b"), ("phone", "wechatId"))
    assert not reads and reads.drain() == ((), ())


def test_jsonable_turns_times_into_iso_strings() -> None:
    assert jsonable({"at": T0, "items": ({"n": 1}, [T0])}) == {
        "at": "2026-03-01T08:00:00+00:00", "items": [{"n": 1}, ["2026-03-01T08:00:00+00:00"]]}
