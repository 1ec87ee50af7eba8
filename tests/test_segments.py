"""The segment filter language (domain.segments): validation, storage form and compilation (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.commands import parse as parse_input
from domain.errors import ValidationFailed
from domain.segments import (
    MAX_CLAUSES,
    MAX_RELATION_PREDICATES,
    MAX_VALUES,
    PARAMETER_NAMES,
    CreateSegment,
    SegmentFilter,
    SegmentPurpose,
    UpdateSegment,
    compile_clause,
    filter_document,
    filter_from_json,
    filter_to_json,
    require_segment_id,
)


def one(*predicates: dict[str, Any]) -> dict[str, Any]:
    return {"any_of": [{"all_of": list(predicates)}]}


def parse(data: dict[str, Any]) -> SegmentFilter:
    result: SegmentFilter = parse_input(SegmentFilter, data, prefix="filter")
    return result


def rejected(data: dict[str, Any]) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        parse(data)
    return caught.value


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "field"), [
    ({"any_of": []}, "filter.anyOf"),
    ({"any_of": [{"all_of": []}] * (MAX_CLAUSES + 1)}, "filter.anyOf"),
    (one({}), "filter.anyOf[0].allOf[0]"),
    (one({"city_in": ["SH"], "level": {"min": 1}}), "filter.anyOf[0].allOf[0]"),
    (one({"city_in": []}), "filter.anyOf[0].allOf[0].cityIn"),
    (one({"city_in": ["x"] * (MAX_VALUES + 1)}), "filter.anyOf[0].allOf[0].cityIn"),
    (one({"city_in": ["  "]}), "filter.anyOf[0].allOf[0].cityIn[0]"),
    (one({"channel_in": ["fax"]}), "filter.anyOf[0].allOf[0].channelIn[0]"),
    (one({"level": {}}), "filter.anyOf[0].allOf[0].level"),
    (one({"level": {"min": 4, "max": 2}}), "filter.anyOf[0].allOf[0].level"),
    (one({"level": {"max": 11}}), "filter.anyOf[0].allOf[0].level"),
    (one({"joined_at": {"since": "2026-01-01T00:00:00"}}), "filter.anyOf[0].allOf[0].joinedAt"),
    (one({"joined_at": {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}}),
     "filter.anyOf[0].allOf[0].joinedAt"),
    (one({"lifecycle_in": ["asleep"]}), "filter.anyOf[0].allOf[0].lifecycleIn[0]"),
    (one({"rfm": {}}), "filter.anyOf[0].allOf[0].rfm"),
    (one({"rfm": {"recency": {"min": 0}}}), "filter.anyOf[0].allOf[0].rfm.recency"),
    (one({"tags": {"tag_ids": ["com_abc"]}}), "filter.anyOf[0].allOf[0].tags.tagIds[0]"),
    (one({"tags": {"tag_ids": ["tag_a"], "min_weight": -1}}), "filter.anyOf[0].allOf[0].tags.minWeight"),
    (one({"member_of": {"community_ids": ["com_a"], "role": "boss"}}), "filter.anyOf[0].allOf[0].memberOf.role"),
    (one({"invited_by_kol": {}}), "filter.anyOf[0].allOf[0].invitedByKol"),
    (one({"invited_by_kol": {"max_rank": 0}}), "filter.anyOf[0].allOf[0].invitedByKol.maxRank"),
    (one({"bought": {}}), "filter.anyOf[0].allOf[0].bought"),
    (one({"bought": {"product_ids": ["mem_a"]}}), "filter.anyOf[0].allOf[0].bought.productIds[0]"),
    (one({"city_in": ["SH"]}, {"city_in": ["BJ"], "negate": True}), "filter.anyOf[0]"),
    (one(*[{"tags": {"tag_ids": [f"tag_{i}"]}} for i in range(MAX_RELATION_PREDICATES + 1)]), "filter.anyOf[0]"),
    (one({"city_in": ["SH"], "extra": 1}), "filter.anyOf[0].allOf[0].extra"),
])
def test_bad_filters_name_the_field(data: dict[str, Any], field: str) -> None:
    error = rejected(data)

    assert error.field == field
    assert error.message.startswith(field + ": ")


def test_the_messages_say_what_is_wrong() -> None:
    assert "exactly one of" in rejected(one({})).message
    assert "combine them" in rejected(one({"level": {"min": 1}}, {"level": {"max": 3}})).message
    assert "time zone" in rejected(one({"joined_at": {"until": "2026-01-01T00:00:00"}})).message
    assert "min (4) is greater than max (2)" in rejected(one({"points": {"min": 4, "max": 2}})).message


def test_relationship_predicates_may_repeat_in_a_clause() -> None:
    f = parse(one({"tags": {"tag_ids": ["tag_a"]}}, {"tags": {"tag_ids": ["tag_b"]}, "negate": True}))

    params = compile_clause(f.any_of[0], SegmentPurpose.ANALYSIS)

    assert [(p["ids"], p["negate"]) for p in params["tagPreds"]] == [(["tag_a"], False), (["tag_b"], True)]


def test_commands_validate_name_purpose_and_filter() -> None:
    with pytest.raises(ValidationFailed) as blank:
        parse_input(CreateSegment, {"name": " ", "filter": one()})
    with pytest.raises(ValidationFailed) as nested:
        parse_input(CreateSegment, {"name": "x", "filter": one({"level": {"min": 9, "max": 1}})})
    with pytest.raises(ValidationFailed) as empty:
        parse_input(UpdateSegment, {})
    with pytest.raises(ValidationFailed) as purpose:
        parse_input(CreateSegment, {"name": "x", "purpose": "SPAM", "filter": one()})

    assert (blank.value.field, nested.value.field, empty.value.field, purpose.value.field) == (
        "input.name", "input.filter.anyOf[0].allOf[0].level", "input", "input.purpose")


@pytest.mark.parametrize("value", ["seg_", "seg_ABCDEFGHIJKLMNOP", "mem_abcdefghijklmnop", "seg_abc", ""])
def test_segment_ids_are_checked(value: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        require_segment_id(value, field="segmentId")

    assert caught.value.field == "segmentId"


# --- storage form ----------------------------------------------------------------------------------


def test_lists_are_sets_and_the_stored_json_is_compact_and_stable() -> None:
    f = parse(one({"city_in": ["SH", "BJ", "SH"]}, {"tags": {"tag_ids": ["tag_a"], "match": "ALL"}, "negate": True}))

    text = filter_to_json(f)

    assert text == ('{"any_of":[{"all_of":[{"city_in":["SH","BJ"]},'
                    '{"negate":true,"tags":{"match":"ALL","tag_ids":["tag_a"]}}]}]}')
    assert filter_from_json(text) == f
    assert filter_document(f) == {"anyOf": [{"allOf": [{"cityIn": ["SH", "BJ"]},
                                                        {"negate": True, "tags": {"match": "ALL", "tagIds": ["tag_a"]}}]}]}


# --- compilation -----------------------------------------------------------------------------------


def test_an_empty_clause_switches_every_predicate_off() -> None:
    params = compile_clause(parse(one()).any_of[0], SegmentPurpose.ANALYSIS)

    assert set(params) == PARAMETER_NAMES
    assert params["marketingOnly"] is False and params["profiled"] is False
    assert all(v is None for k, v in params.items() if not k.endswith("Preds") and k not in ("marketingOnly", "profiled"))
    assert all(params[k] == [] for k in params if k.endswith("Preds"))


def test_every_predicate_kind_compiles_to_its_parameters() -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    f = parse(one(
        {"city_in": ["SH"]},
        {"channel_in": ["wechat"], "negate": True},
        {"level": {"min": 2}},
        {"points": {"max": 100}, "negate": True},
        {"joined_at": {"since": since.isoformat()}},
        {"lifecycle_in": ["new", "active"]},
        {"layer_in": ["core"]},
        {"value_tier_in": ["high"], "negate": True},
        {"circle_in": ["c1"]},
        {"rfm": {"recency": {"min": 4}, "monetary": {"max": 2}}},
        {"tags": {"tag_ids": ["tag_a", "tag_b"], "match": "ALL", "min_weight": 0.5, "source": "declared"}},
        {"member_of": {"community_ids": ["com_a"], "role": "kol"}},
        {"invited_by_kol": {"max_rank": 10}},
        {"follows_member_of": {"community_ids": ["com_b"]}, "negate": True},
        {"bought": {"categories": ["beauty"]}},
    ))

    params = compile_clause(f.any_of[0], SegmentPurpose.MARKETING)

    assert params == {
        "marketingOnly": True,
        "profiled": True,  # lifecycle, RFM, tags, purchases...: members who withdrew profiling are left out
        "cities": ["SH"], "citiesNeg": False,
        "channels": ["wechat"], "channelsNeg": True,
        "levelNeg": False, "levelMin": 2, "levelMax": None,
        "pointsNeg": True, "pointsMin": None, "pointsMax": 100,
        "joinedNeg": False, "joinedSince": since, "joinedUntil": None,
        "lifecycles": ["new", "active"], "lifecyclesNeg": False,
        "layers": ["core"], "layersNeg": False,
        "tiers": ["high"], "tiersNeg": True,
        "circles": ["c1"], "circlesNeg": False,
        "rfmNeg": False, "rMin": 4, "rMax": None, "fMin": None, "fMax": None, "mMin": None, "mMax": 2,
        "tagPreds": [{"ids": ["tag_a", "tag_b"], "all": True, "minWeight": 0.5, "source": "declared", "negate": False}],
        "memberOfPreds": [{"ids": ["com_a"], "role": "kol", "negate": False}],
        "kolPreds": [{"maxRank": 10, "koc": False, "negate": False}],
        "followsPreds": [{"ids": ["com_b"], "negate": True}],
        "boughtPreds": [{"productIds": [], "categories": ["beauty"], "negate": False}],
    }


def test_compiling_does_not_share_lists_between_clauses() -> None:
    f = parse({"any_of": [{"all_of": [{"tags": {"tag_ids": ["tag_a"]}}]}, {"all_of": []}]})

    first, second = (compile_clause(c, SegmentPurpose.ANALYSIS) for c in f.any_of)

    assert len(first["tagPreds"]) == 1 and second["tagPreds"] == []


# --- properties ------------------------------------------------------------------------------------

_TEXT = st.text(alphabet="abcSHBJ上海北京", min_size=1, max_size=6)
_RANGE = st.tuples(st.integers(0, 10), st.integers(0, 10)).map(lambda t: {"min": min(t), "max": max(t)})
_QUINTILE = st.tuples(st.integers(1, 5), st.integers(1, 5)).map(lambda t: {"min": min(t), "max": max(t)})
_IDS = st.lists(st.sampled_from(["a1", "b2", "c3", "d4"]), min_size=1, max_size=4)
_KINDS: dict[str, Any] = {
    "city_in": st.lists(_TEXT, min_size=1, max_size=4),
    "channel_in": st.lists(st.sampled_from(["app", "wechat", "livestream"]), min_size=1, max_size=3),
    "level": _RANGE,
    "points": _RANGE,
    "lifecycle_in": st.lists(st.sampled_from(["new", "active", "silent", "churned"]), min_size=1, max_size=4),
    "layer_in": st.lists(st.sampled_from(["core", "active", "ordinary", "silent"]), min_size=1, max_size=4),
    "value_tier_in": st.lists(st.sampled_from(["high", "medium", "low", "none"]), min_size=1, max_size=4),
    "rfm": st.fixed_dictionaries({}, optional={"recency": _QUINTILE, "frequency": _QUINTILE,
                                               "monetary": _QUINTILE}).filter(bool),
    "tags": st.fixed_dictionaries({"tag_ids": _IDS.map(lambda ids: ["tag_" + i for i in ids])},
                                  optional={"match": st.sampled_from(["ANY", "ALL"]),
                                            "min_weight": st.floats(0, 1), "source": _TEXT}),
    "member_of": st.fixed_dictionaries({"community_ids": _IDS.map(lambda ids: ["com_" + i for i in ids])},
                                       optional={"role": st.sampled_from(["owner", "kol", "member"])}),
    "bought": st.fixed_dictionaries({"categories": st.lists(_TEXT, min_size=1, max_size=3)}),
}


@st.composite
def clauses(draw: st.DrawFn) -> dict[str, Any]:
    kinds = draw(st.lists(st.sampled_from(sorted(_KINDS)), max_size=6, unique=True))
    return {"all_of": [{k: draw(_KINDS[k]), "negate": draw(st.booleans())} for k in kinds]}


@settings(max_examples=150, deadline=None)
@given(st.lists(clauses(), min_size=1, max_size=4), st.sampled_from(list(SegmentPurpose)))
def test_valid_filters_round_trip_and_compile_to_the_same_parameter_set(
        data: list[dict[str, Any]], purpose: SegmentPurpose) -> None:
    f = parse({"any_of": data})

    again = filter_from_json(filter_to_json(f))
    fed_back = parse_input(SegmentFilter, _snake(filter_document(f)), prefix="filter")
    compiled = [compile_clause(c, purpose) for c in f.any_of]

    assert again == f and fed_back == f
    assert all(set(p) == PARAMETER_NAMES for p in compiled)
    assert all(p["marketingOnly"] is (purpose is SegmentPurpose.MARKETING) for p in compiled)
    for clause, params in zip(f.any_of, compiled, strict=True):
        switched_on = sum(1 for k, v in params.items() if k.endswith("Neg") and v is not None)
        relations = sum(len(v) for k, v in params.items() if k.endswith("Preds"))
        assert switched_on + relations == len(clause.all_of)


def _snake(value: Any) -> Any:
    import re

    if isinstance(value, dict):
        return {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value
