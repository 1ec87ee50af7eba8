"""Saved segments in the graph: storage, and evaluation of the filter language.

Storage: ``(:Segment {id, tenantId, name, description, purpose, filter, createdAt, createdBy,
updatedAt, archived})`` with ``filter`` the JSON text of :class:`domain.segments.SegmentFilter`.
Archiving sets ``archived``; segments are never deleted (campaigns may name them).

Evaluation: every clause of a filter runs :data:`CLAUSE_PAGE` (one constant statement; each
predicate kind an optional parameter, see :func:`domain.segments.compile_clause`) as a keyset
page ``WHERE m.id > $after ORDER BY m.id LIMIT $limit``; the pages of the clauses are merged
by id without duplicates. The first ``first`` ids of the union after the cursor are each
among the first ``first`` of their own clause, so one page per clause is enough. The size
is ``count(m)`` for a one-clause filter and the size of the union of the clauses' id lists
otherwise (members matching two clauses count once).

Every statement keeps out erased members (tombstones: ``erasedAt`` set) and, for
``MARKETING`` segments, members whose marketing consent is not in force
(``marketingConsent`` is the flag :mod:`graph.privacy` keeps in step with the consent
records). The consent predicate sits in the statement rather than in a post-filter through
``with_consent`` so that a page is never short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.errors import NotFound, ValidationFailed
from domain.models import Member, Page
from domain.pagination import decode_cursor, encode_cursor
from domain.segments import (
    CreateSegment,
    Segment,
    SegmentFilter,
    SegmentPurpose,
    UpdateSegment,
    compile_clause,
    filter_from_json,
    filter_to_json,
    new_segment_id,
    references,
)
from graph.client import GraphClient, Tx, now, to_datetime
from graph.cypher import cypher
from graph.mapping import member_from
from graph.paging import page_of, time_after, time_key

__all__ = ["GraphSegments", "segment_from"]

# The predicate block is the same in the three evaluation statements. A null parameter (or
# an empty list of relationship predicates) switches a predicate off; `coalesce(..., false)`
# makes a missing property "does not match", so that it matches the negation.
CLAUSE_PAGE = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    WHERE m.id > $after AND m.erasedAt IS NULL
      AND ($marketingOnly = false OR m.marketingConsent = true)
      AND ($profiled = false OR coalesce(m.profilingWithdrawn, false) = false)
      AND ($citiesNeg IS NULL OR coalesce(m.city IN $cities, false) <> $citiesNeg)
      AND ($channelsNeg IS NULL OR coalesce(m.channel IN $channels, false) <> $channelsNeg)
      AND ($levelNeg IS NULL OR coalesce(($levelMin IS NULL OR m.level >= $levelMin)
            AND ($levelMax IS NULL OR m.level <= $levelMax), false) <> $levelNeg)
      AND ($pointsNeg IS NULL OR coalesce(($pointsMin IS NULL OR m.points >= $pointsMin)
            AND ($pointsMax IS NULL OR m.points <= $pointsMax), false) <> $pointsNeg)
      AND ($joinedNeg IS NULL OR coalesce(($joinedSince IS NULL OR m.joinedAt >= $joinedSince)
            AND ($joinedUntil IS NULL OR m.joinedAt < $joinedUntil), false) <> $joinedNeg)
      AND ($lifecyclesNeg IS NULL OR coalesce(m.lifecycle IN $lifecycles, false) <> $lifecyclesNeg)
      AND ($layersNeg IS NULL OR coalesce(m.layer IN $layers, false) <> $layersNeg)
      AND ($tiersNeg IS NULL OR coalesce(m.valueTier IN $tiers, false) <> $tiersNeg)
      AND ($circlesNeg IS NULL OR coalesce(m.circleId IN $circles, false) <> $circlesNeg)
      AND ($rfmNeg IS NULL OR coalesce(($rMin IS NULL OR m.rfmR >= $rMin) AND ($rMax IS NULL OR m.rfmR <= $rMax)
            AND ($fMin IS NULL OR m.rfmF >= $fMin) AND ($fMax IS NULL OR m.rfmF <= $fMax)
            AND ($mMin IS NULL OR m.rfmM >= $mMin) AND ($mMax IS NULL OR m.rfmM <= $mMax), false) <> $rfmNeg)
      AND all(p IN $tagPreds WHERE
            (size([tid IN p.ids WHERE EXISTS {
               MATCH (m)-[r:INTERESTED_IN]->(t:Tag) WHERE t.id = tid AND coalesce(r.weight, 0.0) >= p.minWeight
                 AND (p.source IS NULL OR r.source = p.source) }])
             >= CASE WHEN p.all THEN size(p.ids) ELSE 1 END) <> p.negate)
      AND all(p IN $memberOfPreds WHERE EXISTS {
            MATCH (m)-[r:MEMBER_OF]->(c:Community) WHERE c.id IN p.ids AND (p.role IS NULL OR r.role = p.role)
          } <> p.negate)
      AND all(p IN $kolPreds WHERE EXISTS {
            MATCH (i:Member)-[:REFERRED]->(m)
            WHERE coalesce(i.kolRank <= p.maxRank, false) OR (p.koc AND coalesce(i.isKoc, false))
          } <> p.negate)
      AND all(p IN $followsPreds WHERE EXISTS {
            MATCH (m)-[:FOLLOWS]->(:Member)-[:MEMBER_OF]->(c:Community) WHERE c.id IN p.ids
          } <> p.negate)
      AND all(p IN $boughtPreds WHERE EXISTS {
            MATCH (m)-[:PLACED]->(pu:Purchase)-[:OF]->(x:Product)
            WHERE pu.status = 'paid' AND (x.id IN p.productIds OR x.category IN p.categories)
          } <> p.negate)
    WITH m ORDER BY m.id LIMIT $limit
    RETURN collect(m) AS members
    """
)

# The same predicates as CLAUSE_PAGE (keep the two in step): the clause's size, and its ids
# when the filter has several clauses (the union counts members matching two clauses once).
CLAUSE_COUNT = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    WHERE m.erasedAt IS NULL
      AND ($marketingOnly = false OR m.marketingConsent = true)
      AND ($profiled = false OR coalesce(m.profilingWithdrawn, false) = false)
      AND ($citiesNeg IS NULL OR coalesce(m.city IN $cities, false) <> $citiesNeg)
      AND ($channelsNeg IS NULL OR coalesce(m.channel IN $channels, false) <> $channelsNeg)
      AND ($levelNeg IS NULL OR coalesce(($levelMin IS NULL OR m.level >= $levelMin)
            AND ($levelMax IS NULL OR m.level <= $levelMax), false) <> $levelNeg)
      AND ($pointsNeg IS NULL OR coalesce(($pointsMin IS NULL OR m.points >= $pointsMin)
            AND ($pointsMax IS NULL OR m.points <= $pointsMax), false) <> $pointsNeg)
      AND ($joinedNeg IS NULL OR coalesce(($joinedSince IS NULL OR m.joinedAt >= $joinedSince)
            AND ($joinedUntil IS NULL OR m.joinedAt < $joinedUntil), false) <> $joinedNeg)
      AND ($lifecyclesNeg IS NULL OR coalesce(m.lifecycle IN $lifecycles, false) <> $lifecyclesNeg)
      AND ($layersNeg IS NULL OR coalesce(m.layer IN $layers, false) <> $layersNeg)
      AND ($tiersNeg IS NULL OR coalesce(m.valueTier IN $tiers, false) <> $tiersNeg)
      AND ($circlesNeg IS NULL OR coalesce(m.circleId IN $circles, false) <> $circlesNeg)
      AND ($rfmNeg IS NULL OR coalesce(($rMin IS NULL OR m.rfmR >= $rMin) AND ($rMax IS NULL OR m.rfmR <= $rMax)
            AND ($fMin IS NULL OR m.rfmF >= $fMin) AND ($fMax IS NULL OR m.rfmF <= $fMax)
            AND ($mMin IS NULL OR m.rfmM >= $mMin) AND ($mMax IS NULL OR m.rfmM <= $mMax), false) <> $rfmNeg)
      AND all(p IN $tagPreds WHERE
            (size([tid IN p.ids WHERE EXISTS {
               MATCH (m)-[r:INTERESTED_IN]->(t:Tag) WHERE t.id = tid AND coalesce(r.weight, 0.0) >= p.minWeight
                 AND (p.source IS NULL OR r.source = p.source) }])
             >= CASE WHEN p.all THEN size(p.ids) ELSE 1 END) <> p.negate)
      AND all(p IN $memberOfPreds WHERE EXISTS {
            MATCH (m)-[r:MEMBER_OF]->(c:Community) WHERE c.id IN p.ids AND (p.role IS NULL OR r.role = p.role)
          } <> p.negate)
      AND all(p IN $kolPreds WHERE EXISTS {
            MATCH (i:Member)-[:REFERRED]->(m)
            WHERE coalesce(i.kolRank <= p.maxRank, false) OR (p.koc AND coalesce(i.isKoc, false))
          } <> p.negate)
      AND all(p IN $followsPreds WHERE EXISTS {
            MATCH (m)-[:FOLLOWS]->(:Member)-[:MEMBER_OF]->(c:Community) WHERE c.id IN p.ids
          } <> p.negate)
      AND all(p IN $boughtPreds WHERE EXISTS {
            MATCH (m)-[:PLACED]->(pu:Purchase)-[:OF]->(x:Product)
            WHERE pu.status = 'paid' AND (x.id IN p.productIds OR x.category IN p.categories)
          } <> p.negate)
    RETURN count(m) AS n, collect(CASE WHEN $withIds THEN m.id END) AS ids
    """
)

# The ids a filter names that exist in the tenant (one round trip whatever the filter's size).
REFERENCED_IDS = cypher(
    """
    CALL () {
      UNWIND $tagIds AS id
      MATCH (t:Tag {id: id}) WITH * WHERE t.tenantId = $tenant
      RETURN collect(t.id) AS tags
    }
    CALL () {
      UNWIND $communityIds AS id
      MATCH (c:Community {id: id}) WITH * WHERE c.tenantId = $tenant
      RETURN collect(c.id) AS communities
    }
    CALL () {
      UNWIND $productIds AS id
      MATCH (p:Product {id: id}) WITH * WHERE p.tenantId = $tenant
      RETURN collect(p.id) AS products
    }
    RETURN tags, communities, products
    """
)
CREATE_SEGMENT = cypher("CREATE (s:Segment) SET s = $props RETURN s")
SEGMENTS_BY_ID = cypher(
    """
    UNWIND $ids AS id
    MATCH (s:Segment {id: id}) WITH * WHERE s.tenantId = $tenant
    RETURN collect(s) AS segments
    """
)
UPDATE_SEGMENT = cypher(
    """
    MATCH (s:Segment {id: $id}) WITH * WHERE s.tenantId = $tenant AND s.archived = false
    SET s += $changes
    RETURN s
    """
)
ARCHIVE_SEGMENT = cypher(
    """
    MATCH (s:Segment {id: $id}) WITH * WHERE s.tenantId = $tenant
    WITH s, s.archived AS was
    SET s.archived = true, s.updatedAt = CASE WHEN was THEN s.updatedAt ELSE $now END
    RETURN s, was
    """
)
SEGMENTS_PAGE = cypher(
    """
    MATCH (s:Segment {tenantId: $tenant})
    WHERE ($includeArchived OR s.archived = false)
      AND ($afterAt IS NULL OR s.createdAt < $afterAt OR (s.createdAt = $afterAt AND s.id < $afterId))
    WITH s ORDER BY s.createdAt DESC, s.id DESC LIMIT $limit
    RETURN collect(s) AS segments
    """
)
SEGMENTS_COUNT = cypher(
    """
    MATCH (s:Segment {tenantId: $tenant})
    WHERE $includeArchived OR s.archived = false
    RETURN count(s) AS n
    """
)


def segment_from(p: Mapping[str, Any]) -> Segment:
    return Segment(
        id=p["id"], tenant_id=p["tenantId"], name=p["name"], description=p.get("description") or "",
        purpose=SegmentPurpose(p["purpose"]), filter=filter_from_json(p["filter"]),
        created_at=to_datetime(p["createdAt"]), created_by=p.get("createdBy"),
        updated_at=to_datetime(p["updatedAt"]), archived=bool(p.get("archived")),
    )


def _member_after(after: str | None) -> str:
    key = decode_cursor(after, arity=1)
    if key is None:
        return ""
    if not isinstance(key[0], str):
        raise ValidationFailed("after is not a cursor returned by this connection", field="after")
    return key[0]


def merge_pages(pages: Sequence[Sequence[Mapping[str, Any]]], first: int) -> tuple[list[Mapping[str, Any]], bool]:
    """The first *first* members of the union of the clauses' pages, by id, without duplicates,
    and whether more follow (each page holds up to first + 1 members in id order)."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for page in pages:
        for m in page:
            by_id.setdefault(m["id"], m)
    ordered = [by_id[i] for i in sorted(by_id)]
    return ordered[:first], len(ordered) > first


@dataclass
class GraphSegments:
    """The ``SegmentRepository`` port on the graph."""

    graph: GraphClient

    async def check(self, tenant: str, filter: SegmentFilter, *, field: str) -> None:
        """Raise ``NOT_FOUND`` naming the first tag, community or product id of *filter* that is
        not in the tenant (*field* is where the filter sits in the input)."""
        refs = references(filter, prefix=field)
        if not refs:
            return
        wanted: dict[str, list[str]] = {"tag": [], "community": [], "product": []}
        for kind, id_, _ in refs:
            wanted[kind].append(id_)
        row = await self.graph.read_one(REFERENCED_IDS, tenant=tenant, tagIds=wanted["tag"],
                                        communityIds=wanted["community"], productIds=wanted["product"])
        present = set(row["tags"]) | set(row["communities"]) | set(row["products"]) if row else set()
        for kind, id_, at in refs:
            if id_ not in present:
                raise NotFound(f"no {kind} {id_!r} in your tenant", field=at)

    # -- storage -------------------------------------------------------------------------------

    async def create(self, tenant: str, cmd: CreateSegment, *, created_by: str | None) -> Segment:
        at = now()
        props = {
            "id": new_segment_id(), "tenantId": tenant, "name": cmd.name, "description": cmd.description,
            "purpose": cmd.purpose.value, "filter": filter_to_json(cmd.filter), "createdAt": at,
            "createdBy": created_by, "updatedAt": at, "archived": False,
        }

        await self.check(tenant, cmd.filter, field="input.filter")

        async def work(tx: Tx) -> Segment:
            row = await self.graph.run_one(tx, CREATE_SEGMENT, props=props)
            assert row is not None
            return segment_from(row["s"])

        return await self.graph.write(work)

    async def get_many(self, tenant: str, ids: Sequence[str]) -> list[Segment | None]:
        row = await self.graph.read_one(SEGMENTS_BY_ID, tenant=tenant, ids=list(ids))
        found = {s["id"]: segment_from(s) for s in (row["segments"] if row else [])}
        return [found.get(i) for i in ids]

    async def update(self, tenant: str, segment_id: str, cmd: UpdateSegment) -> Segment:
        changes: dict[str, Any] = {"updatedAt": now()}
        if cmd.name is not None:
            changes["name"] = cmd.name
        if cmd.description is not None:
            changes["description"] = cmd.description
        if cmd.purpose is not None:
            changes["purpose"] = cmd.purpose.value
        if cmd.filter is not None:
            await self.check(tenant, cmd.filter, field="input.filter")
            changes["filter"] = filter_to_json(cmd.filter)

        async def work(tx: Tx) -> Segment | None:
            row = await self.graph.run_one(tx, UPDATE_SEGMENT, tenant=tenant, id=segment_id, changes=changes)
            return None if row is None else segment_from(row["s"])

        updated = await self.graph.write(work)
        if updated is None:
            existing = (await self.get_many(tenant, [segment_id]))[0]
            if existing is None:
                raise NotFound(f"no segment {segment_id!r}", field="segmentId")
            raise ValidationFailed(f"segment {segment_id!r} is archived and can no longer change", field="segmentId")
        return updated

    async def archive(self, tenant: str, segment_id: str) -> tuple[Segment, bool]:
        """Archive the segment; the flag tells whether it changed (False: it already was)."""
        async def work(tx: Tx) -> tuple[Segment, bool] | None:
            row = await self.graph.run_one(tx, ARCHIVE_SEGMENT, tenant=tenant, id=segment_id, now=now())
            return None if row is None else (segment_from(row["s"]), not row["was"])

        done = await self.graph.write(work)
        if done is None:
            raise NotFound(f"no segment {segment_id!r}", field="segmentId")
        return done

    async def list(self, tenant: str, *, first: int, after: str | None, include_archived: bool) -> Page[Segment]:
        row = await self.graph.read_one(SEGMENTS_PAGE, tenant=tenant, includeArchived=include_archived,
                                        limit=first + 1, **time_after(after).params())
        nodes = list(row["segments"]) if row else []
        return page_of(nodes, first, segment_from, lambda s: time_key(s["createdAt"], s["id"]))

    async def count(self, tenant: str, *, include_archived: bool) -> int:
        row = await self.graph.read_one(SEGMENTS_COUNT, tenant=tenant, includeArchived=include_archived)
        return int(row["n"]) if row else 0

    # -- evaluation ----------------------------------------------------------------------------

    async def members(self, tenant: str, filter: SegmentFilter, purpose: SegmentPurpose, *, first: int,
                      after: str | None) -> Page[Member]:
        """One keyset page (by member id) of the members matching *filter*: one round trip per clause."""
        start = _member_after(after)
        clauses = [compile_clause(c, purpose) for c in filter.any_of]
        rows = await asyncio.gather(*(
            self.graph.read_one(CLAUSE_PAGE, tenant=tenant, after=start, limit=first + 1, **params)
            for params in clauses
        ))
        shown, has_next = merge_pages([list(r["members"]) if r else [] for r in rows], first)
        return Page(
            items=tuple(member_from(m) for m in shown),
            cursors=tuple(encode_cursor([m["id"]]) for m in shown),
            has_next=has_next,
        )

    async def size(self, tenant: str, filter: SegmentFilter, purpose: SegmentPurpose) -> int:
        """How many members match *filter* (each once, whichever clauses it matches)."""
        clauses = [compile_clause(c, purpose) for c in filter.any_of]
        several = len(clauses) > 1
        rows = await asyncio.gather(*(
            self.graph.read_one(CLAUSE_COUNT, tenant=tenant, withIds=several, **params) for params in clauses
        ))
        if not several:
            return int(rows[0]["n"]) if rows[0] else 0
        members: set[str] = set()
        for row in rows:
            if row:
                members.update(row["ids"])
        return len(members)
