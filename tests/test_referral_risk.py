"""Referral fraud signals: known answers for each rule and its threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.referral_risk import RiskSignalKind, phone_prefix, referral_risk

AT = datetime(2026, 11, 1, 12, tzinfo=UTC)


def kinds(**kw: object) -> list[RiskSignalKind]:
    defaults: dict[str, object] = {"at": AT, "now": AT + timedelta(days=1), "invitee_joined_at": AT,
                                   "invitee_first_active_at": AT, "sibling_times": []}
    return [s.kind for s in referral_risk(**{**defaults, **kw})]  # type: ignore[arg-type]


def test_an_ordinary_referral_has_no_signals() -> None:
    assert kinds(sibling_times=[AT - timedelta(days=3), AT + timedelta(days=2)]) == []


def test_ten_invitees_within_an_hour_is_a_velocity_burst() -> None:
    nine_others = [AT + timedelta(minutes=5 * i) for i in range(1, 10)]

    assert kinds(sibling_times=nine_others) == [RiskSignalKind.VELOCITY_BURST]
    assert kinds(sibling_times=nine_others[:8]) == []  # nine in all: under the threshold
    assert kinds(sibling_times=[t + timedelta(hours=2) for t in nine_others]) == []


def test_an_invitee_idle_for_seven_days_never_became_active() -> None:
    assert kinds(invitee_first_active_at=None, now=AT + timedelta(days=8)) == [RiskSignalKind.NEVER_ACTIVE]
    assert kinds(invitee_first_active_at=None, now=AT + timedelta(days=6)) == []


def test_invitees_sharing_a_phone_block_or_device_form_a_cluster() -> None:
    block = ["13800138001", "+86 138 0013 8002", "13800138003"]

    assert kinds(invitee_phone="13800138999", sibling_phones=block) == [RiskSignalKind.SHARED_PHONE_PREFIX]
    assert kinds(invitee_phone="13800138999", sibling_phones=block[:2]) == []
    assert kinds(invitee_device="dev-1", sibling_devices=["dev-2", "dev-1"]) == [RiskSignalKind.SHARED_DEVICE]
    assert kinds(invitee_device="dev-1", sibling_devices=["dev-2", None]) == []


def test_phone_prefix_drops_the_country_code_and_ignores_short_numbers() -> None:
    assert phone_prefix("+86 138-0013-8000") == "1380013"
    assert phone_prefix("8613800138000") == "1380013"
    assert phone_prefix("12345") is None and phone_prefix(None) is None
