"""Pure domain rules: plain unit tests, no servers."""

from __future__ import annotations

import pytest

from api.auth import decode_token, issue_token, principal_from_header
from api.settings import DEV_JWT_SECRET, Settings
from domain.auth import Principal, Role, Scope, mask_phone, mask_wechat_id
from domain.commands import RecordPurchase, RegisterMember, UpdateMember, parse
from domain.errors import ErrorCode, NotAuthenticated, PermissionDenied, ReferralRejected, StartupError, ValidationFailed
from domain.ids import Kind, kind_of, new_id, require_id
from domain.pagination import decode_cursor, encode_cursor, page_size
from domain.referrals import check_referral, commission_levels, new_invite_code


def test_referral_rules():
    check_referral(invitee_id="mem_b", inviter_id="mem_a", existing_inviter_id=None, inviter_upline=["mem_r"])
    cases = [
        (dict(invitee_id="mem_a", inviter_id="mem_a", existing_inviter_id=None, inviter_upline=[]), ErrorCode.SELF_REFERRAL),
        (dict(invitee_id="mem_b", inviter_id="mem_a", existing_inviter_id="mem_c", inviter_upline=[]), ErrorCode.ALREADY_REFERRED),
        (dict(invitee_id="mem_b", inviter_id="mem_a", existing_inviter_id=None, inviter_upline=["mem_x", "mem_b"]), ErrorCode.REFERRAL_CYCLE),
    ]
    for kwargs, code in cases:
        with pytest.raises(ReferralRejected) as caught:
            check_referral(**kwargs)
        assert caught.value.code is code


def test_commission_levels_are_capped():
    upline = ["mem_1", "mem_2", "mem_3", "mem_4"]
    assert commission_levels(upline) == ["mem_1", "mem_2"]
    assert commission_levels(upline, 3) == ["mem_1", "mem_2", "mem_3"]
    with pytest.raises(ValidationFailed):
        commission_levels(upline, 4)


def test_invite_codes_avoid_ambiguous_characters():
    codes = {new_invite_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 8 and not set(c) & set("01OI") for c in codes)


def test_cursors_round_trip_and_reject_garbage():
    assert decode_cursor(encode_cursor([1700000000000000, "mem_a"]), arity=2) == [1700000000000000, "mem_a"]
    assert decode_cursor(None, arity=2) is None
    for bad in ("!!!", encode_cursor([1, 2, 3]), encode_cursor([True, "x"]), "eyJ"):
        with pytest.raises(ValidationFailed) as caught:
            decode_cursor(bad, arity=2)
        assert caught.value.field == "after"


def test_page_size_bounds():
    assert page_size(None) == 20 and page_size(0) == 0 and page_size(100) == 100
    for bad in (-1, 101):
        with pytest.raises(ValidationFailed, match="between 0 and 100"):
            page_size(bad)


def test_masks():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("12345") == "*****"
    assert mask_wechat_id("wxid_abc123") == "w*********3"
    assert mask_phone(None) is None


def test_ids():
    value = new_id(Kind.MEMBER)
    assert kind_of(value) is Kind.MEMBER
    assert kind_of("mem_") is None and kind_of("xyz_abc") is None and kind_of("mem_a b") is None
    with pytest.raises(ValidationFailed) as caught:
        require_id("com_abc", Kind.MEMBER, field="memberId")
    assert caught.value.field == "memberId"


def test_commands_name_the_offending_field():
    with pytest.raises(ValidationFailed) as caught:
        parse(RegisterMember, {"display_name": "x" * 81})
    assert caught.value.field == "input.displayName"
    with pytest.raises(ValidationFailed) as caught:
        parse(RecordPurchase, {"member_id": "mem_a", "idempotency_key": "key-12345",
                               "lines": [{"product_id": "prd_a", "quantity": 1, "unit_price": {"amount": -1}}]})
    assert caught.value.field == "input.lines[0].unitPrice.amount"
    with pytest.raises(ValidationFailed, match="nothing to update"):
        parse(UpdateMember, {})
    with pytest.raises(ValidationFailed, match="control characters"):
        parse(RegisterMember, {"display_name": "a\x00b"})


def test_members_act_as_themselves_and_staff_for_anyone():
    member = Principal(tenant_id="t", member_id="mem_me", roles=frozenset({Role.MEMBER}))
    assert member.acting_member(None) == "mem_me"
    with pytest.raises(PermissionDenied):
        member.acting_member("mem_other")
    operator = Principal(tenant_id="t", roles=frozenset({Role.OPERATOR}))
    assert operator.acting_member("mem_other") == "mem_other"
    with pytest.raises(PermissionDenied, match="memberId is required"):
        operator.acting_member(None)
    with pytest.raises(NotAuthenticated):
        Principal(tenant_id=None).acting_member(None)


def test_tokens_round_trip_and_reject_tampering():
    settings = Settings(env="test", jwt_secret="s" * 40)
    token = issue_token(settings, tenant="demo", roles=["operator"], member_id="mem_x", scopes=["pii:read"])
    p = decode_token(settings, token)
    assert (p.tenant_id, p.member_id, p.roles, p.scopes) == ("demo", "mem_x", frozenset({Role.OPERATOR}), frozenset({Scope.PII_READ}))
    other = Settings(env="test", jwt_secret="t" * 40)
    with pytest.raises(NotAuthenticated, match="invalid"):
        decode_token(other, token)
    expired = issue_token(settings, tenant="demo", roles=["member"], ttl_seconds=-10)
    with pytest.raises(NotAuthenticated, match="expired"):
        decode_token(settings, expired)
    assert principal_from_header(settings, None).tenant_id is None
    with pytest.raises(NotAuthenticated, match="Bearer"):
        principal_from_header(settings, "Basic abc")
    with pytest.raises(ValidationFailed, match="roles are"):
        issue_token(settings, tenant="demo", roles=["superuser"])


def test_default_secret_is_refused_outside_development():
    Settings(env="development").check()
    with pytest.raises(StartupError, match="development default"):
        Settings(env="production", jwt_secret=DEV_JWT_SECRET).check()
    with pytest.raises(StartupError, match="at least 32"):
        Settings(env="production", jwt_secret="short").check()
    Settings(env="production", jwt_secret="p" * 40).check()
