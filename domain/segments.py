"""Saved segments (人群包): a small typed filter language in disjunctive normal form.

A :class:`SegmentFilter` is an OR of clauses (``any_of``); each :class:`Clause` is an AND
of predicates (``all_of``); each :class:`Predicate` names exactly one condition and may be
negated. The shape compiles without string building: :func:`compile_clause` turns one
clause into the parameters of ONE constant Cypher statement (``graph.segments``) in which
every predicate kind is an optional parameter (``$x IS NULL OR ...``), so a segment of *n*
clauses is *n* runs of the same statement.

Semantics
---------
* A member without the property a predicate reads (no ``lifecycle`` yet, no ``city``)
  does **not** match the predicate, so it **does** match its negation.
* Ranges are inclusive at both ends, except ``joined_at.until`` (exclusive).
* ``tags``: the member has ANY (or ALL) of the tags, each with weight >= ``min_weight``
  and, when given, from ``source``.
* ``member_of``: member of any of the communities (with ``role`` when given).
* ``invited_by_kol``: the member's inviter has ``kolRank <= max_rank`` or (``koc``) is a KOC,
  as of the last tenant-wide KOL computation.
* ``follows_member_of``: follows someone who is a member of any of the communities.
* ``bought``: has a paid purchase of any of the products or of any of the categories.
* Purpose ``MARKETING`` keeps only members whose marketing consent is in force; erased
  members are never in a segment.

Attribute predicates (city, channel, level, points, joined_at, lifecycle, layer, value
tier, circle, RFM) appear at most once per clause (combine them into one); relationship
predicates (tags, member_of, invited_by_kol, follows_member_of, bought) up to
:data:`MAX_RELATION_PREDICATES` times each, so "has tag A and not tag B" is one clause.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from domain.commands import camel
from domain.errors import ValidationFailed
from domain.ids import ID_PATTERN
from domain.models import Channel, MembershipRole
from domain.segmentation import LifecycleStage, MemberLayer, ValueTier

__all__ = [
    "ATTRIBUTE_KINDS",
    "MAX_CLAUSES",
    "MAX_PREDICATES",
    "MAX_RELATION_PREDICATES",
    "MAX_VALUES",
    "RELATION_KINDS",
    "SEGMENT_PREFIX",
    "Bought",
    "Clause",
    "CreateSegment",
    "FollowsMemberOf",
    "IntRange",
    "InvitedByKol",
    "MemberOf",
    "Predicate",
    "RfmRange",
    "Segment",
    "SegmentFilter",
    "SegmentPurpose",
    "TagMatch",
    "Tags",
    "TimeRange",
    "UpdateSegment",
    "compile_clause",
    "filter_document",
    "filter_from_json",
    "filter_to_json",
    "new_segment_id",
    "references",
    "require_segment_id",
]

SEGMENT_PREFIX = "seg_"
_SEGMENT_ID = re.compile(r"^seg_[a-z0-9]{16}$")
#: OR-ed clauses per filter (each is one round trip)
MAX_CLAUSES = 10
#: AND-ed predicates per clause
MAX_PREDICATES = 20
#: values in one list (cities, tag ids, community ids ...)
MAX_VALUES = 100
#: predicates of one relationship kind (tags, member_of ...) in one clause
MAX_RELATION_PREDICATES = 5

ATTRIBUTE_KINDS = ("city_in", "channel_in", "level", "points", "joined_at", "lifecycle_in", "layer_in",
                   "value_tier_in", "circle_in", "rfm")
RELATION_KINDS = ("tags", "member_of", "invited_by_kol", "follows_member_of", "bought")
_KINDS = ATTRIBUTE_KINDS + RELATION_KINDS


def _is_id(prefix: str) -> Any:
    def check(value: str) -> str:
        if not ID_PATTERN.match(value) or not value.startswith(prefix):
            raise ValueError(f"is not a valid id like '{prefix}…': {value[:60]!r}")
        return value

    return AfterValidator(check)


def _unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid unicode (lone surrogate)") from None
    return value


def _text(value: str) -> str:
    _unicode(value)
    if not value.strip():
        raise ValueError("must not be blank")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _multiline(value: str) -> str:
    _unicode(value)
    if any((ord(ch) < 32 and ch not in "\n\t") or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_text)]
TagId = Annotated[str, _is_id("tag_")]
CommunityId = Annotated[str, _is_id("com_")]
ProductId = Annotated[str, _is_id("prd_")]


def _unique(values: list[Any]) -> list[Any]:
    """Values in first-seen order without repeats (a list is a set here)."""
    return list(dict.fromkeys(values))


_LIST = (Field(min_length=1, max_length=MAX_VALUES), AfterValidator(_unique))
Texts = Annotated[list[Text], *_LIST]
TagIds = Annotated[list[TagId], *_LIST]
CommunityIds = Annotated[list[CommunityId], *_LIST]
ProductIds = Annotated[list[ProductId], *_LIST]
Channels = Annotated[list[Channel], *_LIST]
Stages = Annotated[list[LifecycleStage], *_LIST]
Layers = Annotated[list[MemberLayer], *_LIST]
Tiers = Annotated[list[ValueTier], *_LIST]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class SegmentPurpose(StrEnum):
    """What a segment is for."""

    #: targeting messages or offers: members without marketing consent are excluded
    MARKETING = "MARKETING"
    #: analysis and operations (counts, layering): every member who matches
    ANALYSIS = "ANALYSIS"


class TagMatch(StrEnum):
    ANY = "ANY"
    ALL = "ALL"


class IntRange(_Model):
    """Inclusive at both ends; at least one end."""

    min: int | None = None
    max: int | None = None

    @model_validator(mode="after")
    def _bounds(self) -> IntRange:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self

    def within(self, low: int, high: int) -> IntRange:
        for end in (self.min, self.max):
            if end is not None and not low <= end <= high:
                raise ValueError(f"must lie within {low}–{high}, got {end}")
        return self


class TimeRange(_Model):
    """``since`` inclusive, ``until`` exclusive; at least one; both with a time zone."""

    since: datetime | None = None
    until: datetime | None = None

    @model_validator(mode="after")
    def _bounds(self) -> TimeRange:
        if self.since is None and self.until is None:
            raise ValueError("give since, until or both")
        for end in (self.since, self.until):
            # Cypher compares a zoned and a local datetime as null: the predicate would match nobody
            if end is not None and end.tzinfo is None:
                raise ValueError("since and until must carry a time zone (e.g. 2026-01-01T00:00:00Z)")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("until must be after since")
        return self


class RfmRange(_Model):
    """Ranges of the RFM quintile scores (1–5); the given ones must all hold."""

    recency: IntRange | None = None
    frequency: IntRange | None = None
    monetary: IntRange | None = None

    @field_validator("recency", "frequency", "monetary")
    @classmethod
    def _quintile(cls, value: IntRange | None) -> IntRange | None:
        return None if value is None else value.within(1, 5)

    @model_validator(mode="after")
    def _something(self) -> RfmRange:
        if self.recency is None and self.frequency is None and self.monetary is None:
            raise ValueError("give recency, frequency or monetary")
        return self


class Tags(_Model):
    tag_ids: TagIds
    match: TagMatch = TagMatch.ANY
    min_weight: float = Field(default=0.0, ge=0.0, le=1_000_000.0, allow_inf_nan=False)
    source: Text | None = None


class MemberOf(_Model):
    community_ids: CommunityIds
    role: MembershipRole | None = None


class InvitedByKol(_Model):
    """The inviter ranks within the top ``max_rank`` KOLs, or (``koc``) is a KOC."""

    max_rank: int | None = Field(default=None, ge=1, le=1_000_000)
    koc: bool = False

    @model_validator(mode="after")
    def _something(self) -> InvitedByKol:
        if self.max_rank is None and not self.koc:
            raise ValueError("give maxRank, koc: true, or both")
        return self


class FollowsMemberOf(_Model):
    community_ids: CommunityIds


class Bought(_Model):
    product_ids: ProductIds | None = None
    categories: Texts | None = None

    @model_validator(mode="after")
    def _something(self) -> Bought:
        if self.product_ids is None and self.categories is None:
            raise ValueError("give productIds, categories or both")
        return self


class Predicate(_Model):
    """Exactly one condition, optionally negated."""

    negate: bool = False
    city_in: Texts | None = None
    channel_in: Channels | None = None
    level: IntRange | None = None
    points: IntRange | None = None
    joined_at: TimeRange | None = None
    lifecycle_in: Stages | None = None
    layer_in: Layers | None = None
    value_tier_in: Tiers | None = None
    circle_in: Texts | None = None
    rfm: RfmRange | None = None
    tags: Tags | None = None
    member_of: MemberOf | None = None
    invited_by_kol: InvitedByKol | None = None
    follows_member_of: FollowsMemberOf | None = None
    bought: Bought | None = None

    @field_validator("level")
    @classmethod
    def _level(cls, value: IntRange | None) -> IntRange | None:
        return None if value is None else value.within(0, 10)

    @model_validator(mode="after")
    def _exactly_one(self) -> Predicate:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            names = ", ".join(camel(k) for k in _KINDS)
            found = ", ".join(camel(k) for k in given) or "none"
            raise ValueError(f"a predicate names exactly one of {names}; got {found}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in _KINDS if getattr(self, k) is not None)


class Clause(_Model):
    """An AND of predicates (an empty clause matches every member)."""

    all_of: list[Predicate] = Field(max_length=MAX_PREDICATES)

    @model_validator(mode="after")
    def _kinds(self) -> Clause:
        counts: dict[str, int] = {}
        for p in self.all_of:
            counts[p.kind] = counts.get(p.kind, 0) + 1
        for kind, n in counts.items():
            if kind in ATTRIBUTE_KINDS and n > 1:
                raise ValueError(f"{camel(kind)} appears {n} times in one clause; combine them into one predicate")
            if kind in RELATION_KINDS and n > MAX_RELATION_PREDICATES:
                raise ValueError(f"{camel(kind)} appears {n} times in one clause; at most {MAX_RELATION_PREDICATES}")
        return self


class SegmentFilter(_Model):
    """An OR of clauses: a member is in the segment when it matches any clause."""

    any_of: list[Clause] = Field(min_length=1, max_length=MAX_CLAUSES)


_NAME = Annotated[str, Field(min_length=1, max_length=80), AfterValidator(_text)]
_DESCRIPTION = Annotated[str, Field(max_length=2000), AfterValidator(_multiline)]


class CreateSegment(_Model):
    name: _NAME
    description: _DESCRIPTION = ""
    purpose: SegmentPurpose = SegmentPurpose.ANALYSIS
    filter: SegmentFilter


class UpdateSegment(_Model):
    name: _NAME | None = None
    description: _DESCRIPTION | None = None
    purpose: SegmentPurpose | None = None
    filter: SegmentFilter | None = None

    @model_validator(mode="after")
    def _something(self) -> UpdateSegment:
        if self.name is None and self.description is None and self.purpose is None and self.filter is None:
            raise ValueError("nothing to update: give name, description, purpose or filter")
        return self


@dataclass(frozen=True, slots=True)
class Segment:
    """A saved segment (its members are evaluated when read, never stored)."""

    id: str
    tenant_id: str
    name: str
    description: str
    purpose: SegmentPurpose
    filter: SegmentFilter
    created_at: datetime
    created_by: str | None
    updated_at: datetime
    archived: bool


def new_segment_id() -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return SEGMENT_PREFIX + "".join(secrets.choice(alphabet) for _ in range(16))


def require_segment_id(value: str, *, field: str) -> str:
    if not _SEGMENT_ID.match(value):
        raise ValidationFailed(f"{field} must be a segment id like 'seg_…', got {value[:60]!r}", field=field)
    return value


def filter_to_json(f: SegmentFilter) -> str:
    """The stored form: compact JSON with stable key order, defaults left out."""
    return json.dumps(f.model_dump(mode="json", exclude_none=True, exclude_defaults=True), sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)


def filter_from_json(text: str) -> SegmentFilter:
    return SegmentFilter.model_validate_json(text)


def _camel_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {camel(k): _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def filter_document(f: SegmentFilter) -> dict[str, Any]:
    """The filter as JSON in the client's spelling (camelCase, the shape of ``SegmentFilterInput``:
    it can be sent back as that input), defaults left out."""
    out: dict[str, Any] = _camel_keys(f.model_dump(mode="json", exclude_none=True, exclude_defaults=True))
    return out


def references(f: SegmentFilter, *, prefix: str) -> list[tuple[str, str, str]]:
    """Every id the filter names, as ``(kind, id, field)`` with kind ``tag``, ``community`` or
    ``product`` and the field as the client spelled it, in input order."""
    found: list[tuple[str, str, str]] = []
    for ci, clause in enumerate(f.any_of):
        for pi, p in enumerate(clause.all_of):
            at = f"{prefix}.anyOf[{ci}].allOf[{pi}]"
            lists: list[tuple[str, list[str], str]] = []
            if p.tags is not None:
                lists.append(("tag", p.tags.tag_ids, "tags.tagIds"))
            if p.member_of is not None:
                lists.append(("community", p.member_of.community_ids, "memberOf.communityIds"))
            if p.follows_member_of is not None:
                lists.append(("community", p.follows_member_of.community_ids, "followsMemberOf.communityIds"))
            if p.bought is not None and p.bought.product_ids is not None:
                lists.append(("product", p.bought.product_ids, "bought.productIds"))
            for kind, ids, name in lists:
                found.extend((kind, id_, f"{at}.{name}[{i}]") for i, id_ in enumerate(ids))
    return found


# --- compilation -------------------------------------------------------------------------------

#: every parameter of the clause statement, with its value when no predicate sets it
_ABSENT: dict[str, Any] = {
    "cities": None, "citiesNeg": None,
    "channels": None, "channelsNeg": None,
    "levelNeg": None, "levelMin": None, "levelMax": None,
    "pointsNeg": None, "pointsMin": None, "pointsMax": None,
    "joinedNeg": None, "joinedSince": None, "joinedUntil": None,
    "lifecycles": None, "lifecyclesNeg": None,
    "layers": None, "layersNeg": None,
    "tiers": None, "tiersNeg": None,
    "circles": None, "circlesNeg": None,
    "rfmNeg": None, "rMin": None, "rMax": None, "fMin": None, "fMax": None, "mMin": None, "mMax": None,
    "tagPreds": [], "memberOfPreds": [], "kolPreds": [], "followsPreds": [], "boughtPreds": [],
}
PARAMETER_NAMES = frozenset(_ABSENT) | {"marketingOnly", "profiled"}


def _values_of(items: list[Any]) -> list[Any]:
    return [v.value if isinstance(v, StrEnum) else v for v in items]


def compile_clause(clause: Clause, purpose: SegmentPurpose) -> dict[str, Any]:
    """The parameters of the clause statement for *clause* (every predicate kind present,
    ``None`` / ``[]`` when the clause does not use it). Pure; tenant, cursor and limit are
    added by the adapter."""
    params = {k: (list(v) if isinstance(v, list) else v) for k, v in _ABSENT.items()}
    params["marketingOnly"] = purpose is SegmentPurpose.MARKETING
    # Predicates on what profiling derived (segmentation, tags) or on behaviour (purchases) leave
    # out members who withdrew PROFILING consent (PIPL art. 24): their wiped profile would
    # otherwise match every negated predicate.
    params["profiled"] = any(
        p.lifecycle_in is not None or p.layer_in is not None or p.value_tier_in is not None or p.circle_in is not None
        or p.rfm is not None or p.tags is not None or p.bought is not None for p in clause.all_of)
    for p in clause.all_of:
        neg = p.negate
        if p.city_in is not None:
            params.update(cities=list(p.city_in), citiesNeg=neg)
        elif p.channel_in is not None:
            params.update(channels=_values_of(p.channel_in), channelsNeg=neg)
        elif p.level is not None:
            params.update(levelNeg=neg, levelMin=p.level.min, levelMax=p.level.max)
        elif p.points is not None:
            params.update(pointsNeg=neg, pointsMin=p.points.min, pointsMax=p.points.max)
        elif p.joined_at is not None:
            params.update(joinedNeg=neg, joinedSince=p.joined_at.since, joinedUntil=p.joined_at.until)
        elif p.lifecycle_in is not None:
            params.update(lifecycles=_values_of(p.lifecycle_in), lifecyclesNeg=neg)
        elif p.layer_in is not None:
            params.update(layers=_values_of(p.layer_in), layersNeg=neg)
        elif p.value_tier_in is not None:
            params.update(tiers=_values_of(p.value_tier_in), tiersNeg=neg)
        elif p.circle_in is not None:
            params.update(circles=list(p.circle_in), circlesNeg=neg)
        elif p.rfm is not None:
            r, f, m = p.rfm.recency, p.rfm.frequency, p.rfm.monetary
            params.update(
                rfmNeg=neg,
                rMin=r and r.min, rMax=r and r.max, fMin=f and f.min, fMax=f and f.max,
                mMin=m and m.min, mMax=m and m.max,
            )
        elif p.tags is not None:
            params["tagPreds"].append({"ids": list(p.tags.tag_ids), "all": p.tags.match is TagMatch.ALL,
                                       "minWeight": p.tags.min_weight, "source": p.tags.source, "negate": neg})
        elif p.member_of is not None:
            role = None if p.member_of.role is None else p.member_of.role.value
            params["memberOfPreds"].append({"ids": list(p.member_of.community_ids), "role": role, "negate": neg})
        elif p.invited_by_kol is not None:
            params["kolPreds"].append({"maxRank": p.invited_by_kol.max_rank, "koc": p.invited_by_kol.koc,
                                       "negate": neg})
        elif p.follows_member_of is not None:
            params["followsPreds"].append({"ids": list(p.follows_member_of.community_ids), "negate": neg})
        elif p.bought is not None:
            params["boughtPreds"].append({"productIds": list(p.bought.product_ids or []),
                                          "categories": list(p.bought.categories or []), "negate": neg})
    return params
