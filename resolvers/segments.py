"""Saved segments (人群包): the filter language as GraphQL inputs, storage mutations, size and members.

A filter is an OR of clauses (``anyOf``), each an AND of predicates (``allOf``), each naming
exactly one condition and optionally negated: disjunctive normal form, evaluated by constant
parameterised Cypher (see ``domain.segments`` for the exact semantics).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from domain import segments as ds
from domain.auth import STAFF_ROLES, Role
from domain.commands import parse
from domain.errors import NotFound, ValidationFailed
from resolvers.common import (
    Connection,
    NotFoundError,
    PermissionError,
    ValidationError,
    XInfo,
    connection,
    connection_args,
    guarded,
)
from resolvers.enums import Channel, LifecycleStage, MemberLayer, MembershipRole, ValueTier
from resolvers.members import Member

__all__ = ["Segment", "SegmentsMutation", "SegmentsQuery"]

#: who creates, changes and archives segments (members never; integrators read them)
SEGMENT_WRITERS = frozenset({Role.OPERATOR, Role.ANALYST, Role.ADMIN})

SegmentPurpose = strawberry.enum(ds.SegmentPurpose, description="MARKETING segments keep only members whose "
                                 "marketing consent (营销推送) is in force; ANALYSIS segments keep every member "
                                 "who matches. Erased members are never in a segment.")
TagMatch = strawberry.enum(ds.TagMatch, description="ANY: at least one of the tags; ALL: every one of them.")

_SEMANTICS = (
    "A member without the property a predicate reads (no lifecycle yet, no city) does not match the predicate, "
    "so it matches its negation."
)


@strawberry.input(description="An integer range, inclusive at both ends; give min, max or both.")
class IntRangeInput:
    min: int | None = None
    max: int | None = None


@strawberry.input(description="A time range: since inclusive, until exclusive, both with a time zone.")
class TimeRangeInput:
    since: datetime | None = None
    until: datetime | None = None


@strawberry.input(description="RFM quintile scores (1–5 within the tenant, 5 best: most recent, most frequent, "
                  "highest paid GMV), as of the last segmentation run; the given ranges must all hold.")
class RfmRangeInput:
    recency: IntRangeInput | None = None
    frequency: IntRangeInput | None = None
    monetary: IntRangeInput | None = None


@strawberry.input(description="Profile tags (用户画像): ANY or ALL of the tags, each with weight >= minWeight and, "
                  "when given, from source (declared, behavior, import ...).")
class TagsPredicateInput:
    tag_ids: list[strawberry.ID]
    match: TagMatch = ds.TagMatch.ANY  # type: ignore[valid-type]
    min_weight: float = 0.0
    source: str | None = None


@strawberry.input(description="Member of any of the communities (with this role when given).")
class MemberOfPredicateInput:
    community_ids: list[strawberry.ID]
    role: MembershipRole | None = None  # type: ignore[valid-type]


@strawberry.input(description="Invited by a KOL: the member's inviter ranks within the top maxRank of the last "
                  "tenant-wide KOL ranking, or (koc: true) is a KOC.")
class InvitedByKolPredicateInput:
    max_rank: int | None = None
    koc: bool = False


@strawberry.input(description="Follows someone who is a member of any of the communities.")
class FollowsMemberOfPredicateInput:
    community_ids: list[strawberry.ID]


@strawberry.input(description="Has a paid purchase (refunds excluded) of any of the products or in any of the "
                  "categories.")
class BoughtPredicateInput:
    product_ids: list[strawberry.ID] | None = None
    categories: list[str] | None = None


@strawberry.input(description="Exactly one condition, optionally negated. " + _SEMANTICS + " Attribute "
                  "predicates (cityIn … rfm) appear at most once per clause; tags, memberOf, invitedByKol, "
                  "followsMemberOf and bought up to 5 times each. Lists hold 1–100 values.")
class SegmentPredicateInput:
    negate: bool = strawberry.field(default=False, description="Select the members the condition does not match.")
    city_in: list[str] | None = strawberry.field(default=None, description="City is one of these.")
    channel_in: list[Channel] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Acquisition channel (渠道) is one of these.")
    level: IntRangeInput | None = strawberry.field(default=None, description="Membership level (0–10).")
    points: IntRangeInput | None = strawberry.field(default=None, description="Points balance (积分).")
    joined_at: TimeRangeInput | None = strawberry.field(default=None, description="Joined the brand in this range.")
    lifecycle_in: list[LifecycleStage] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Lifecycle stage is one of these (last segmentation run).")
    layer_in: list[MemberLayer] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Layer (核心/活跃/普通/沉默) is one of these (last segmentation run).")
    value_tier_in: list[ValueTier] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Value tier is one of these (last segmentation run).")
    circle_in: list[str] | None = strawberry.field(default=None, description="Interest circle ids (community "
                                                   "detection; stable between runs).")
    rfm: RfmRangeInput | None = None
    tags: TagsPredicateInput | None = None
    member_of: MemberOfPredicateInput | None = None
    invited_by_kol: InvitedByKolPredicateInput | None = None
    follows_member_of: FollowsMemberOfPredicateInput | None = None
    bought: BoughtPredicateInput | None = None


@strawberry.input(description="An AND of predicates (an empty list matches every member); at most 20.")
class SegmentClauseInput:
    all_of: list[SegmentPredicateInput]


@strawberry.input(description="An OR of 1–10 clauses: a member is in the segment when it matches any clause.")
class SegmentFilterInput:
    any_of: list[SegmentClauseInput]


def _plain(value: Any) -> Any:
    """A Strawberry input as plain data (snake_case keys, enum values), unset fields left out."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is not None and item is not strawberry.UNSET:
                out[f.name] = _plain(item)
        return out
    return value


def filter_of(value: SegmentFilterInput, *, field: str) -> ds.SegmentFilter:
    parsed: ds.SegmentFilter = parse(ds.SegmentFilter, _plain(value), prefix=field)
    return parsed


@strawberry.type(description="A saved segment (人群包): a filter over members, evaluated when read (never a stored "
                 "list), usable as a campaign target.")
class Segment:
    id: strawberry.ID = strawberry.field(description="A stable id like 'seg_…'.")
    name: str
    description: str
    purpose: SegmentPurpose = strawberry.field(description="MARKETING excludes members without marketing "  # type: ignore[valid-type]
                                               "consent.")
    filter: JSON = strawberry.field(description="The filter in the shape of SegmentFilterInput (send it back as "
                                    "that input), defaults left out.")
    created_at: datetime
    created_by: str | None = strawberry.field(description="The subject of the token that created it.")
    updated_at: datetime
    archived: bool = strawberry.field(description="Archived segments still read, but no longer change.")
    _s: strawberry.Private[ds.Segment]

    @classmethod
    def from_domain(cls, s: ds.Segment) -> Segment:
        return cls(id=strawberry.ID(s.id), name=s.name, description=s.description, purpose=s.purpose,
                   filter=cast(JSON, ds.filter_document(s.filter)), created_at=s.created_at, created_by=s.created_by,
                   updated_at=s.updated_at, archived=s.archived, _s=s)

    @strawberry.field(description="How many members are in the segment now (each once, whichever clauses it "
                      "matches).")
    async def size(self, info: XInfo) -> int:
        return await info.context.repos.segments.size(info.context.tenant, self._s.filter, self._s.purpose)

    @strawberry.field(description="The segment's members now, by member id (keyset pages, 20 by default).")
    async def members(self, info: XInfo, first: int | None = 20, after: str | None = None) -> Connection[Member]:
        return await _members(info, self._s.filter, self._s.purpose, connection_args(first), after)


async def _members(info: XInfo, f: ds.SegmentFilter, purpose: ds.SegmentPurpose, first: int,
                   after: str | None) -> Connection[Member]:
    repo, tenant = info.context.repos.segments, info.context.tenant
    page = await repo.members(tenant, f, purpose, first=first, after=after)

    async def count() -> int:
        return await repo.size(tenant, f, purpose)

    return connection(page, Member.from_domain, count)


async def _segment(info: XInfo, segment_id: str, *, field: str) -> ds.Segment:
    ds.require_segment_id(segment_id, field=field)
    found = (await info.context.repos.segments.get_many(info.context.tenant, [segment_id]))[0]
    if found is None:
        raise NotFound(f"no segment {segment_id!r}", field=field)
    return found


async def _target(info: XInfo, segment_id: str | None, filter: SegmentFilterInput | None,
                  purpose: ds.SegmentPurpose | None) -> tuple[ds.SegmentFilter, ds.SegmentPurpose]:
    """The filter and purpose of a saved segment, or of a filter given inline (exactly one of the two)."""
    if (segment_id is None) == (filter is None):
        raise ValidationFailed("give exactly one of segmentId and filter", field="segmentId")
    if segment_id is not None:
        if purpose is not None:
            raise ValidationFailed("purpose goes with filter; a saved segment has its own", field="purpose")
        saved = await _segment(info, segment_id, field="segmentId")
        return saved.filter, saved.purpose
    assert filter is not None
    parsed = filter_of(filter, field="filter")
    await info.context.repos.segments.check(info.context.tenant, parsed, field="filter")
    return parsed, purpose or ds.SegmentPurpose.ANALYSIS


_PURPOSE_ARG = strawberry.argument(description="With filter: MARKETING keeps only members with marketing consent "
                                   "(default ANALYSIS).")


@strawberry.type
class SegmentsQuery:
    @strawberry.field(description="A saved segment by id, or null (staff only).")
    async def segment(self, info: XInfo, id: strawberry.ID) -> Segment | None:
        info.context.principal.require_role(STAFF_ROLES, "reading segments")
        ds.require_segment_id(id, field="id")
        found = (await info.context.repos.segments.get_many(info.context.tenant, [id]))[0]
        return None if found is None else Segment.from_domain(found)

    @strawberry.field(description="The tenant's saved segments, newest first (staff only).")
    async def segments(self, info: XInfo, first: int | None = 20, after: str | None = None,
                       include_archived: bool = False) -> Connection[Segment]:
        tenant = info.context.principal.require_role(STAFF_ROLES, "reading segments")
        repo = info.context.repos.segments
        page = await repo.list(tenant, first=connection_args(first), after=after, include_archived=include_archived)

        async def count() -> int:
            return await repo.count(tenant, include_archived=include_archived)

        return connection(page, Segment.from_domain, count)

    @strawberry.field(description="How many members a saved segment (segmentId) or a filter holds now; each member "
                      "counts once whichever clauses it matches (staff only).")
    async def segment_size(self, info: XInfo, segment_id: strawberry.ID | None = None,
                           filter: SegmentFilterInput | None = None,
                           purpose: Annotated[SegmentPurpose | None, _PURPOSE_ARG] = None,  # type: ignore[valid-type]
                           ) -> int:
        tenant = info.context.principal.require_role(STAFF_ROLES, "reading segments")
        f, p = await _target(info, segment_id, filter, purpose)
        return await info.context.repos.segments.size(tenant, f, p)

    @strawberry.field(description="The members of a saved segment (segmentId) or of a filter, by member id "
                      "(keyset pages, 20 by default; staff only).")
    async def segment_members(self, info: XInfo, segment_id: strawberry.ID | None = None,
                              filter: SegmentFilterInput | None = None,
                              purpose: Annotated[SegmentPurpose | None, _PURPOSE_ARG] = None,  # type: ignore[valid-type]
                              first: int | None = 20, after: str | None = None) -> Connection[Member]:
        info.context.principal.require_role(STAFF_ROLES, "reading segments")
        size = connection_args(first)
        f, p = await _target(info, segment_id, filter, purpose)
        return await _members(info, f, p, size, after)


@strawberry.input
class CreateSegmentInput:
    name: str = strawberry.field(description="1–80 characters.")
    filter: SegmentFilterInput
    description: str = strawberry.field(default="", description="Up to 2,000 characters.")
    purpose: SegmentPurpose = ds.SegmentPurpose.ANALYSIS  # type: ignore[valid-type]


@strawberry.input(description="The fields to change (at least one).")
class UpdateSegmentInput:
    name: str | None = None
    description: str | None = None
    purpose: SegmentPurpose | None = None  # type: ignore[valid-type]
    filter: SegmentFilterInput | None = None


@strawberry.type
class SegmentPayload:
    segment: Segment


@strawberry.type
class ArchiveSegmentPayload:
    segment: Segment
    changed: bool = strawberry.field(description="False when it was archived already.")


_Errors = ValidationError | NotFoundError | PermissionError
SegmentResult = Annotated[SegmentPayload | _Errors, strawberry.union("SegmentResult")]
ArchiveSegmentResult = Annotated[ArchiveSegmentPayload | _Errors, strawberry.union("ArchiveSegmentResult")]


@strawberry.type
class SegmentsMutation:
    @strawberry.mutation(description="Save a segment (operator, analyst, admin).")
    async def create_segment(self, info: XInfo, input: CreateSegmentInput) -> SegmentResult:
        async def work() -> SegmentPayload:
            principal = info.context.principal
            tenant = principal.require_role(SEGMENT_WRITERS, "saving segments")
            cmd = parse(ds.CreateSegment, _plain(input), prefix="input")
            saved = await info.context.repos.segments.create(tenant, cmd, created_by=principal.subject)
            return SegmentPayload(segment=Segment.from_domain(saved))

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Change a segment's name, description, purpose or filter (operator, analyst, "
                         "admin); archived segments cannot change.")
    async def update_segment(self, info: XInfo, segment_id: strawberry.ID, input: UpdateSegmentInput) -> SegmentResult:
        async def work() -> SegmentPayload:
            tenant = info.context.principal.require_role(SEGMENT_WRITERS, "changing segments")
            ds.require_segment_id(segment_id, field="segmentId")
            cmd = parse(ds.UpdateSegment, _plain(input), prefix="input")
            saved = await info.context.repos.segments.update(tenant, segment_id, cmd)
            return SegmentPayload(segment=Segment.from_domain(saved))

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Archive a segment (operator, analyst, admin): it stays readable but no longer "
                         "changes and leaves the default segments list. Idempotent.")
    async def archive_segment(self, info: XInfo, segment_id: strawberry.ID) -> ArchiveSegmentResult:
        async def work() -> ArchiveSegmentPayload:
            tenant = info.context.principal.require_role(SEGMENT_WRITERS, "archiving segments")
            ds.require_segment_id(segment_id, field="segmentId")
            saved, changed = await info.context.repos.segments.archive(tenant, segment_id)
            return ArchiveSegmentPayload(segment=Segment.from_domain(saved), changed=changed)

        return await guarded(work)  # type: ignore[return-value]
