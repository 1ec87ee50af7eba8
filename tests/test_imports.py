"""Import row validation (pure): every known reject, with its reason and line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from domain.ids import Kind
from domain.imports import (
    SCHEMAS,
    Accepted,
    ColumnType,
    FileKind,
    ImportValidator,
    RawRecord,
    Rejected,
    export_value,
    invite_code_for,
    read_csv,
    read_jsonl,
)

MEMBER = {"id": "mem_a", "displayName": "王小明", "joinedAt": "2025-01-02T08:00:00+08:00"}


def check(v: ImportValidator, kind: FileKind, values: dict[str, Any], line: int = 2) -> Accepted | Rejected:
    return v.check(kind, RawRecord(line, values))


def reason(v: ImportValidator, kind: FileKind, values: dict[str, Any]) -> str:
    result = check(v, kind, values)
    assert isinstance(result, Rejected), result
    return result.reason


def with_members(*ids: str) -> ImportValidator:
    v = ImportValidator()
    for i in ids:
        assert isinstance(check(v, FileKind.MEMBERS, {**MEMBER, "id": i}), Accepted)
    return v


def test_a_member_row_gets_defaults_and_utc_times() -> None:
    result = check(ImportValidator(), FileKind.MEMBERS, dict(MEMBER))
    assert isinstance(result, Accepted)
    assert result.row == {
        "id": "mem_a", "displayName": "王小明", "joinedAt": datetime(2025, 1, 2, 0, 0, tzinfo=UTC), "channel": "app",
        "level": 0, "points": 0, "inviteCode": invite_code_for("mem_a"), "marketingConsent": False,
        "profilingConsent": False,
    }
    assert result.node == "mem_a"
    assert result.unique == (("inviteCode", invite_code_for("mem_a")),)


@pytest.mark.parametrize(("values", "expected"), [
    ({"id": "com_x"}, "id must be a member id like 'mem_…', got 'com_x'"),
    ({"displayName": None}, "displayName is required"),
    ({"joinedAt": "2025-01-02"}, "joinedAt needs a time zone (…Z or …+08:00), got '2025-01-02'"),
    ({"joinedAt": "yesterday"}, "joinedAt must be an ISO 8601 timestamp like 2025-03-01T08:30:00+08:00, got 'yesterday'"),
    ({"channel": "tiktok"}, ("channel must be one of wechat, wecom, mini_program, app, h5, livestream, offline, "
                             "referral, got 'tiktok'")),
    ({"level": "1.5"}, "level must be an integer, got '1.5'"),
    ({"level": True}, "level must be an integer, got True"),
    ({"points": "-3"}, "points must not be negative, got -3"),
    ({"marketingConsent": "yes"}, "marketingConsent must be true or false, got 'yes'"),
    ({"inviteCode": "abc"}, "inviteCode must be 8 characters from 23456789ABCDEFGHJKLMNPQRSTUVWXYZ, got 'abc'"),
    ({"nickname": "x"}, "unknown field 'nickname'"),
])
def test_member_rejects(values: dict[str, Any], expected: str) -> None:
    assert reason(ImportValidator(), FileKind.MEMBERS, {**MEMBER, **values}) == expected


def test_duplicates_within_the_file_set_are_rejected() -> None:
    v = with_members("mem_a", "mem_b")
    assert reason(v, FileKind.MEMBERS, dict(MEMBER)) == "duplicate: id mem_a appears earlier in the file set"
    code = invite_code_for("mem_a")
    assert reason(v, FileKind.MEMBERS, {**MEMBER, "id": "mem_c", "inviteCode": code}) == \
        f"duplicate: inviteCode {code!r} is used by an earlier row"
    follow = {"follower": "mem_a", "followee": "mem_b", "at": "2025-02-01T00:00:00Z"}
    assert isinstance(check(v, FileKind.FOLLOWS, follow), Accepted)
    assert reason(v, FileKind.FOLLOWS, follow) == "duplicate: this follower and followee appears earlier in the file set"
    # the reverse direction is another follow
    assert isinstance(check(v, FileKind.FOLLOWS, {**follow, "follower": "mem_b", "followee": "mem_a"}), Accepted)


def test_self_follow_and_unknown_references() -> None:
    v = with_members("mem_a")
    assert reason(v, FileKind.FOLLOWS, {"follower": "mem_a", "followee": "mem_a", "at": "2025-02-01T00:00:00Z"}) == \
        "a member cannot follow themselves (follower = followee)"
    result = check(v, FileKind.FOLLOWS, {"follower": "mem_a", "followee": "mem_zz", "at": "2025-02-01T00:00:00Z"})
    assert isinstance(result, Accepted)
    assert result.refs == ((Kind.MEMBER, "mem_zz"),)  # left for the graph to answer


def test_referral_rules() -> None:
    v = with_members("mem_a", "mem_b", "mem_c")
    at = "2025-02-01T00:00:00Z"
    assert reason(v, FileKind.REFERRALS, {"inviter": "mem_a", "invitee": "mem_a", "at": at}) == \
        "self-referral: inviter and invitee are the same member"
    assert isinstance(check(v, FileKind.REFERRALS, {"inviter": "mem_a", "invitee": "mem_b", "at": at}), Accepted)
    assert reason(v, FileKind.REFERRALS, {"inviter": "mem_c", "invitee": "mem_b", "at": at}) == \
        "second inviter: mem_b was already invited by mem_a (earlier row)"
    assert isinstance(check(v, FileKind.REFERRALS, {"inviter": "mem_b", "invitee": "mem_c", "at": at}), Accepted)
    assert reason(v, FileKind.REFERRALS, {"inviter": "mem_c", "invitee": "mem_a", "at": at}) == \
        "referral cycle: mem_a is already upline of mem_c"


def test_money_is_integer_minor_units_and_must_add_up() -> None:
    v = with_members("mem_a")
    product = {"id": "prd_a", "sku": "S1", "name": "跑鞋", "category": "跑步", "createdAt": "2024-01-01T00:00:00Z"}
    assert reason(v, FileKind.PRODUCTS, {**product, "priceAmount": "129.00"}) == \
        "priceAmount must be an integer amount in minor units (fen, 12900 for ¥129.00), got '129.00'"
    assert reason(v, FileKind.PRODUCTS, {**product, "priceAmount": 129.5}) == \
        "priceAmount must be an integer amount in minor units (fen, 12900 for ¥129.00), got 129.5"
    assert reason(v, FileKind.PRODUCTS, {**product, "priceAmount": 100, "priceCurrency": "rmb"}) == \
        "priceCurrency must be a 3-letter ISO 4217 code like CNY, got 'rmb'"
    assert isinstance(check(v, FileKind.PRODUCTS, {**product, "priceAmount": "12900"}), Accepted)
    purchase = {"id": "pur_a", "member": "mem_a", "at": "2025-03-01T00:00:00Z", "amount": 25800,
                "lines": '[{"product": "prd_a", "qty": 2, "unitPrice": 12900}]'}
    assert reason(v, FileKind.PURCHASES, {**purchase, "amount": 100}) == \
        "amount 100 does not match the lines' total 25800 (qty × unitPrice)"
    assert reason(v, FileKind.PURCHASES, {**purchase, "lines": "[]"}) == "lines must be a non-empty list of purchase lines"
    assert reason(v, FileKind.PURCHASES, {**purchase, "lines": [{"product": "prd_a", "qty": 0, "unitPrice": 1}]}) == \
        "lines[0].qty must be at least 1"
    ok = check(v, FileKind.PURCHASES, purchase)
    assert isinstance(ok, Accepted)
    assert ok.row["lines"] == [{"productId": "prd_a", "qty": 2, "unitPrice": 12900}]
    assert ok.row["props"]["idempotencyKey"] == "import:pur_a"
    assert ok.refs == ()  # the member and the product were defined by earlier rows


def test_interaction_rules() -> None:
    v = with_members("mem_a")
    at = "2025-03-01T00:00:00Z"
    base = {"member": "mem_a", "content": "cnt_a", "at": at}
    assert reason(v, FileKind.INTERACTIONS, {**base, "kind": "poke"}) == \
        "kind must be one of like, comment, share, favorite, got 'poke'"
    assert reason(v, FileKind.INTERACTIONS, {**base, "kind": "comment"}) == "comment and body are required for a comment"
    assert reason(v, FileKind.INTERACTIONS, {**base, "kind": "like", "body": "hi"}) == "body is only for comments (kind is like)"
    assert reason(v, FileKind.INTERACTIONS, {**base, "kind": "like", "count": 2}) == "count and lastAt are only for shares"
    assert reason(v, FileKind.INTERACTIONS, {**base, "kind": "share", "lastAt": "2025-01-01T00:00:00Z"}) == \
        "lastAt must not be before at"
    share = check(v, FileKind.INTERACTIONS, {**base, "kind": "share"})
    assert isinstance(share, Accepted) and share.row["count"] == 1 and share.row["lastAt"] == share.row["at"]
    assert isinstance(check(v, FileKind.INTERACTIONS, {**base, "kind": "like"}), Accepted)
    assert reason(v, FileKind.INTERACTIONS, {**base, "kind": "like"}) == \
        "duplicate: this member's like of this content appears earlier in the file set"


def test_csv_reader_keeps_quotes_commas_newlines_and_reports_start_lines() -> None:
    text = 'id,displayName,joinedAt\nmem_a,"王, ""小明""\nline two",2025-01-01T00:00:00Z\nmem_b,,\n\nmem_c,x\n'
    header, records = read_csv(text.splitlines(keepends=True), columns=[c.name for c in SCHEMAS[FileKind.MEMBERS]])
    got = list(records)
    assert header == ["id", "displayName", "joinedAt"]
    assert [r.line for r in got] == [2, 4, 6]
    assert got[0].values == {"id": "mem_a", "displayName": '王, "小明"\nline two', "joinedAt": "2025-01-01T00:00:00Z"}
    assert got[1].values == {"id": "mem_b", "displayName": None, "joinedAt": None}
    assert got[2].values is None and got[2].problem == "has 2 fields but the header has 3"


def test_csv_header_mistakes_are_file_level_errors() -> None:
    with pytest.raises(ValueError, match="unknown column 'name'"):
        read_csv(["id,name\n"], columns=["id", "displayName"])
    with pytest.raises(ValueError, match="the file is empty"):
        read_csv([], columns=["id"])


def test_jsonl_reader() -> None:
    got = list(read_jsonl(['{"id": "mem_a"}\n', "\n", "[1]\n", "{oops\n"]))
    assert [(r.line, r.values, r.problem) for r in got] == [
        (1, {"id": "mem_a"}, None),
        (3, None, "not a JSON object"),
        (4, None, "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
    ]


def test_export_values_are_canonical() -> None:
    time_col = next(c for c in SCHEMAS[FileKind.MEMBERS] if c.type is ColumnType.DATETIME)
    assert export_value(time_col, datetime(2025, 1, 2, 8, 0, tzinfo=UTC)) == "2025-01-02T08:00:00.000000Z"
    lines = next(c for c in SCHEMAS[FileKind.PURCHASES] if c.type is ColumnType.LINES)
    assert export_value(lines, [{"productId": "prd_b", "qty": 1, "unitPrice": 5}, {"productId": "prd_a", "qty": 2,
                                                                                    "unitPrice": 7}]) == [
        {"product": "prd_a", "qty": 2, "unitPrice": 7}, {"product": "prd_b", "qty": 1, "unitPrice": 5}]


def test_forget_makes_a_rejected_node_unknown_again() -> None:
    v = with_members("mem_a")
    v.forget(Kind.MEMBER, "mem_a")
    result = check(v, FileKind.FOLLOWS, {"follower": "mem_a", "followee": "mem_b", "at": "2025-02-01T00:00:00Z"})
    assert isinstance(result, Accepted) and (Kind.MEMBER, "mem_a") in result.refs
