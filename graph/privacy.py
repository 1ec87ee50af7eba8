"""Consent records, the audit log, export and erasure of a member (PIPL) in the graph and Redis.

Graph layout
------------
``(:Consent {id, tenantId, memberId, purpose, granted, at, source, recordedBy, requestId})``
    one node per grant or withdrawal; the state in force is also written on the member
    (``marketingConsent``, ``dataSharingConsent``, ``profilingConsent`` and
    ``profilingWithdrawn``) in the same transaction, so features filter on the member alone.
``(:Audit {id, tenantId, at, action, actorSubject, actorMemberId, actorRoles, requestId,
targetIds, detail})``
    one node per audited operation; ``detail`` is a small JSON object of ids and counts.

Consent changes, exports and erasures write their audit entry in the same transaction as
the change (or, for an export, before anything is read): an acknowledged operation always
has its entry, and a failed audit write means the operation did not happen.

Erasure (:meth:`GraphPrivacy.erase`) works in place and never deletes a node: on the
embedded server, reads that run while a node deletion commits fail with ``EntityNotFound``
(measured: 36-50 of about 500 concurrent reads during 100 node deletions, none during 100
relationship deletions or property rewrites). It

* replaces the member's properties with a tombstone (:func:`domain.privacy.tombstone`);
* deletes its follows (both ways), likes, shares, favorites, comment marks, profile tags
  and memberships;
* empties the title and body of its content (and takes the content out of its community
  feed) and the body of its comments;
* keeps its purchases with amounts and lines (accounting), now placed by the anonymous
  tombstone, marked ``buyerErasedAt``;
* keeps referral relationships and campaign participation as anonymous structure
  (commissions already paid and campaign results depend on them) but drops the invite
  code it used on its own invitations;
* detaches its consent records (their ``memberId`` is removed: they remain as anonymous
  counts of decisions).

:meth:`GraphPrivacy.purge` then removes derived copies: the member's id from relayed
outbox events (payloads carry ids only; the id is replaced by null), the tenant stream
entries naming it (``XDEL``), its KOL entries in every scope, its referral-stats hash, its
cached recommendations, and every cached "members to follow" list of the tenant (their
reasons quote display names).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from domain.errors import NotFound, ValidationFailed
from domain.events import EventType
from domain.models import Page
from domain.privacy import (
    AuditAction,
    AuditActor,
    AuditEntry,
    AuditFilter,
    ConsentChange,
    ConsentPurpose,
    ConsentRecord,
    ConsentSource,
    ErasureReport,
    MemberConsents,
    PurgeReport,
    consent_status,
    jsonable,
    new_audit_id,
    new_consent_id,
    redact_payload,
    tombstone,
    tombstone_invite_code,
)
from domain.recommendations import RecommendationKind
from graph.client import GraphClient, Tx, now, to_datetime
from graph.cypher import cypher
from graph.events import event, record
from graph.paging import page_of, time_after, time_key
from graph.recommendations import cache_key, popular_cache_key
from graph.streams import stream_key

__all__ = ["GraphPrivacy"]

log = logging.getLogger(__name__)

MEMBER_CONSENTS = cypher(
    """
    UNWIND $ids AS id
    MATCH (m:Member {id: id}) WITH * WHERE m.tenantId = $tenant
    OPTIONAL MATCH (c:Consent {tenantId: $tenant, memberId: id})
    WITH m, collect(properties(c)) AS records
    RETURN collect({id: m.id, marketing: m.marketingConsent, dataSharing: m.dataSharingConsent,
                    profilingWithdrawn: m.profilingWithdrawn, records: records}) AS rows
    """
)
# One constant statement per purpose: which of $ids have the consent in force.
WITH_MARKETING = cypher(
    """
    UNWIND $ids AS id
    MATCH (m:Member {id: id}) WITH * WHERE m.tenantId = $tenant AND m.marketingConsent = true
    RETURN collect(m.id) AS ids
    """
)
WITH_DATA_SHARING = cypher(
    """
    UNWIND $ids AS id
    MATCH (m:Member {id: id}) WITH * WHERE m.tenantId = $tenant AND m.dataSharingConsent = true
    RETURN collect(m.id) AS ids
    """
)
WITH_PROFILING = cypher(
    """
    UNWIND $ids AS id
    MATCH (m:Member {id: id}) WITH * WHERE m.tenantId = $tenant AND m.erasedAt IS NULL
      AND coalesce(m.profilingWithdrawn, false) = false
    RETURN collect(m.id) AS ids
    """
)
CONSENT_STATE = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    SET m.consentCheckedAt = $now
    RETURN m.erasedAt AS erasedAt, m.marketingConsent AS marketing, m.dataSharingConsent AS dataSharing,
           m.profilingWithdrawn AS profilingWithdrawn
    """
)
CREATE_CONSENT = cypher(
    """
    CREATE (c:Consent)
    SET c.id = $record.id, c.tenantId = $tenant, c.memberId = $memberId, c.purpose = $record.purpose,
        c.granted = $record.granted, c.at = $record.at, c.source = $record.source,
        c.recordedBy = $record.recordedBy, c.requestId = $record.requestId
    RETURN c.id AS id
    """
)
SET_MARKETING = cypher(
    "MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant SET m.marketingConsent = $granted"
)
SET_DATA_SHARING = cypher(
    "MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant SET m.dataSharingConsent = $granted"
)
# A withdrawal also drops the profile the KOL and segmentation jobs wrote on the member and the profile tags
# inferred from behaviour (declared and imported tags stay).
SET_PROFILING = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    SET m.profilingConsent = $granted, m.profilingWithdrawn = NOT $granted,
        m.kolScore = CASE WHEN $granted THEN m.kolScore END, m.kocScore = CASE WHEN $granted THEN m.kocScore END,
        m.isKoc = CASE WHEN $granted THEN m.isKoc END, m.kolRank = CASE WHEN $granted THEN m.kolRank END,
        m.kocRank = CASE WHEN $granted THEN m.kocRank END,
        m.kolComponents = CASE WHEN $granted THEN m.kolComponents END,
        m.rfmR = CASE WHEN $granted THEN m.rfmR END, m.rfmF = CASE WHEN $granted THEN m.rfmF END,
        m.rfmM = CASE WHEN $granted THEN m.rfmM END, m.lifecycle = CASE WHEN $granted THEN m.lifecycle END,
        m.valueTier = CASE WHEN $granted THEN m.valueTier END, m.layer = CASE WHEN $granted THEN m.layer END,
        m.circleId = CASE WHEN $granted THEN m.circleId END, m.segmentedAt = CASE WHEN $granted THEN m.segmentedAt END
    WITH m
    OPTIONAL MATCH (m)-[r:INTERESTED_IN {source: 'behavior'}]->(:Tag) WHERE NOT $granted
    DELETE r
    RETURN count(r) AS tagsRemoved
    """
)
RECORD_AUDIT = cypher(
    """
    UNWIND $entries AS e
    CREATE (a:Audit)
    SET a.id = e.id, a.tenantId = e.tenantId, a.at = e.at, a.action = e.action, a.actorSubject = e.actorSubject,
        a.actorMemberId = e.actorMemberId, a.actorRoles = e.actorRoles, a.requestId = e.requestId,
        a.targetIds = e.targetIds, a.detail = e.detail
    """
)
AUDIT_PAGE = cypher(
    """
    MATCH (a:Audit {tenantId: $tenant})
    WHERE ($action IS NULL OR a.action = $action)
      AND ($targetId IS NULL OR $targetId IN a.targetIds)
      AND ($afterAt IS NULL OR a.at < $afterAt OR (a.at = $afterAt AND a.id < $afterId))
    WITH a ORDER BY a.at DESC, a.id DESC LIMIT $limit
    RETURN collect(a) AS entries
    """
)
AUDIT_COUNT = cypher(
    """
    MATCH (a:Audit {tenantId: $tenant})
    WHERE ($action IS NULL OR a.action = $action)
      AND ($targetId IS NULL OR $targetId IN a.targetIds)
    RETURN count(a) AS n
    """
)
# Everything held about one member, in one statement of pattern comprehensions.
EXPORT_MEMBER = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    RETURN properties(m) AS profile,
      [(m)-[r:MEMBER_OF]->(c:Community) | {communityId: c.id, name: c.name, role: r.role, joinedAt: r.joinedAt}]
        AS memberships,
      [(m)-[r:FOLLOWS]->(o:Member) | {memberId: o.id, at: r.at}] AS following,
      [(m)<-[r:FOLLOWS]-(o:Member) | {memberId: o.id, at: r.at}] AS followers,
      [(m)-[:POSTED]->(c:Content) | {id: c.id, kind: c.kind, title: c.title, body: c.body, createdAt: c.createdAt,
        communityIds: [(c)-[:IN]->(k:Community) | k.id]}] AS content,
      [(m)-[:WROTE]->(cm:Comment)-[:ON]->(c:Content) | {id: cm.id, contentId: c.id, body: cm.body,
        createdAt: cm.createdAt}] AS comments,
      [(m)-[r:LIKED|SHARED|FAVORITED|COMMENTED]->(c:Content) | {kind: type(r), contentId: c.id, at: r.at}]
        AS interactions,
      [(m)-[r:INTERESTED_IN]->(t:Tag) | {tagId: t.id, name: t.name, kind: t.kind, weight: r.weight, source: r.source}]
        AS interests,
      [(m)-[:PLACED]->(p:Purchase) | {id: p.id, amount: p.amount, currency: p.currency, at: p.at,
        status: p.status, channel: p.channel, idempotencyKey: p.idempotencyKey, attributedTo: p.attributedTo,
        commissionTo: p.commissionTo,
        lines: [(p)-[o:OF]->(x:Product) | {productId: x.id, name: x.name, qty: o.qty, unitPrice: o.unitPrice}]}]
        AS purchases,
      [(p:Purchase)-[:ATTRIBUTED_TO]->(m) | {purchaseId: p.id, amount: p.amount, currency: p.currency, at: p.at}]
        AS attributedPurchases,
      [(i:Member)-[r:REFERRED]->(m) | {memberId: i.id, at: r.at, code: r.code, channel: r.channel,
        campaignId: r.campaignId}] AS invitedBy,
      [(m)-[r:REFERRED]->(o:Member) | {memberId: o.id, at: r.at, code: r.code, channel: r.channel,
        campaignId: r.campaignId}] AS invitees,
      [(m)-[r:PARTICIPATED]->(c:Campaign) | {campaignId: c.id, name: c.name, at: r.at, invitesSent: r.invitesSent}]
        AS campaigns
    """
)
ERASE_READ = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    SET m.erasingAt = $now
    RETURN properties(m) AS props
    """
)
ERASE_MEMBER = cypher(
    "MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant SET m = $props RETURN m.id AS id"
)
ERASE_RELATIONSHIPS = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    OPTIONAL MATCH (m)-[r:FOLLOWS|LIKED|SHARED|FAVORITED|COMMENTED|INTERESTED_IN|MEMBER_OF]-()
    DELETE r
    RETURN count(r) AS removed
    """
)
ERASE_CONTENT = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    MATCH (m)-[:POSTED]->(c:Content)
    SET c = {id: c.id, tenantId: c.tenantId, kind: c.kind, createdAt: c.createdAt, title: '', body: '',
             erasedAt: coalesce(c.erasedAt, $now)}
    WITH c
    OPTIONAL MATCH (c)-[r:IN]->(:Community)
    DELETE r
    RETURN count(DISTINCT c) AS n
    """
)
ERASE_COMMENTS = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    MATCH (m)-[:WROTE]->(cm:Comment)
    SET cm = {id: cm.id, tenantId: cm.tenantId, createdAt: cm.createdAt, body: '',
              erasedAt: coalesce(cm.erasedAt, $now)}
    RETURN count(cm) AS n
    """
)
ANONYMISE_PURCHASES = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    MATCH (m)-[:PLACED]->(p:Purchase)
    SET p.buyerErasedAt = coalesce(p.buyerErasedAt, $now)
    RETURN count(p) AS n
    """
)
# An erased member's ledger is closed: no lot is left to expire (the sweep would otherwise
# keep finding it) and the ledger refuses further changes (graph.points reads erased members as absent).
CLOSE_POINTS_LOTS = cypher(
    """
    MATCH (x:PointsEntry {tenantId: $tenant, memberId: $memberId})
    WHERE x.remaining > 0
    SET x.remaining = 0
    RETURN count(x) AS n
    """
)
DROP_INVITE_CODES = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    MATCH (m)-[r:REFERRED]->(:Member)
    SET r.code = null
    RETURN count(r) AS n
    """
)
DETACH_CONSENTS = cypher(
    """
    MATCH (c:Consent {tenantId: $tenant, memberId: $memberId})
    REMOVE c.memberId, c.recordedBy, c.requestId
    SET c.erasedAt = $now
    RETURN count(c) AS n
    """
)
EVENTS_NAMING = cypher(
    """
    MATCH (e:Event {tenantId: $tenant})
    WHERE e.pending IS NULL AND e.payload CONTAINS $memberId
    RETURN collect({id: e.id, payload: e.payload}) AS events
    """
)
REDACT_EVENTS = cypher(
    """
    UNWIND $rows AS row
    MATCH (e:Event {id: row.id}) WITH * WHERE e.tenantId = $tenant
    SET e.payload = row.payload, e.redactedAt = $now
    RETURN count(e) AS n
    """
)

_WITH_CONSENT: dict[ConsentPurpose, LiteralString] = {
    ConsentPurpose.MARKETING: WITH_MARKETING,
    ConsentPurpose.DATA_SHARING: WITH_DATA_SHARING,
    ConsentPurpose.PROFILING: WITH_PROFILING,
}
#: the member flag each purpose writes (a MEMBER_UPDATED event names it: caches listen)
_FLAG: dict[ConsentPurpose, str] = {
    ConsentPurpose.MARKETING: "marketingConsent",
    ConsentPurpose.DATA_SHARING: "dataSharingConsent",
    ConsentPurpose.PROFILING: "profilingConsent",
}
_SET_FLAG: dict[ConsentPurpose, LiteralString] = {
    ConsentPurpose.MARKETING: SET_MARKETING,
    ConsentPurpose.DATA_SHARING: SET_DATA_SHARING,
    ConsentPurpose.PROFILING: SET_PROFILING,
}
_STREAM_PAGE = 1_000
_REDIS_DOWN = (RedisError, OSError)


def _granted(purpose: ConsentPurpose, marketing: Any, data_sharing: Any, profiling_withdrawn: Any) -> bool:
    if purpose is ConsentPurpose.MARKETING:
        return bool(marketing)
    if purpose is ConsentPurpose.DATA_SHARING:
        return bool(data_sharing)
    return not bool(profiling_withdrawn)


def _record_from(p: Mapping[str, Any]) -> ConsentRecord:
    return ConsentRecord(
        id=str(p["id"]), purpose=ConsentPurpose(p["purpose"]), granted=bool(p["granted"]), at=to_datetime(p["at"]),
        source=ConsentSource(p["source"]), recorded_by=p.get("recordedBy"),
    )


def _consents_from(row: Mapping[str, Any]) -> MemberConsents:
    records = [_record_from(r) for r in row["records"] if r]
    flags = (row["marketing"], row["dataSharing"], row["profilingWithdrawn"])
    return MemberConsents(
        member_id=str(row["id"]),
        statuses=tuple(consent_status(p, records, granted=_granted(p, *flags)) for p in ConsentPurpose),
    )


def _audit_row(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id, "tenantId": e.tenant_id, "at": e.at, "action": e.action.value, "actorSubject": e.actor.subject,
        "actorMemberId": e.actor.member_id, "actorRoles": list(e.actor.roles), "requestId": e.actor.request_id,
        "targetIds": list(e.target_ids), "detail": json.dumps(dict(e.detail), sort_keys=True, default=str),
    }


def _audit_from(p: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=str(p["id"]), tenant_id=str(p["tenantId"]), at=to_datetime(p["at"]), action=AuditAction(p["action"]),
        actor=AuditActor(subject=p.get("actorSubject"), member_id=p.get("actorMemberId"),
                         roles=tuple(p.get("actorRoles") or ()), request_id=str(p.get("requestId") or "-")),
        target_ids=tuple(p.get("targetIds") or ()), detail=json.loads(p.get("detail") or "{}"),
    )


def _native(value: Any) -> Any:
    """Driver values as plain Python (temporal values as UTC datetimes), recursively."""
    if isinstance(value, Mapping):
        return {str(k): _native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_native(v) for v in value]
    try:
        return to_datetime(value)
    except TypeError:
        return value


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class GraphPrivacy:
    """The ``PrivacyRepository`` port on the graph, with Redis for the purge of derived data."""

    graph: GraphClient
    redis: aioredis.Redis | None

    # -- consent -------------------------------------------------------------------------------

    async def consents(self, tenant: str, ids: Sequence[str]) -> list[MemberConsents | None]:
        row = await self.graph.read_one(MEMBER_CONSENTS, tenant=tenant, ids=list(ids))
        found = {r["id"]: _consents_from(r) for r in (row["rows"] if row else [])}
        return [found.get(i) for i in ids]

    async def with_consent(self, tenant: str, ids: Sequence[str], purpose: ConsentPurpose) -> list[str]:
        if not ids:
            return []
        row = await self.graph.read_one(_WITH_CONSENT[purpose], tenant=tenant, ids=list(ids))
        having = set(row["ids"]) if row else set()
        return [i for i in dict.fromkeys(ids) if i in having]

    async def record_consent(self, tenant: str, member_id: str, purpose: ConsentPurpose, *, granted: bool,
                             source: ConsentSource, actor: AuditActor) -> ConsentChange:
        async def work(tx: Tx) -> ConsentChange:
            at = now()
            state = await self.graph.run_one(tx, CONSENT_STATE, tenant=tenant, memberId=member_id, now=at)
            if state is None:
                raise NotFound(f"no member {member_id!r}", field="memberId")
            if state["erasedAt"] is not None:
                raise ValidationFailed(f"member {member_id!r} was erased; its consent can no longer change",
                                       field="memberId")
            before = _granted(purpose, state["marketing"], state["dataSharing"], state["profilingWithdrawn"])
            rec = ConsentRecord(id=new_consent_id(), purpose=purpose, granted=granted, at=at,
                                source=source, recorded_by=actor.subject)
            await self.graph.run(tx, CREATE_CONSENT, tenant=tenant, memberId=member_id, record={
                "id": rec.id, "purpose": purpose.value, "granted": granted, "at": at, "source": source.value,
                "recordedBy": actor.subject, "requestId": actor.request_id,
            })
            await self.graph.run(tx, _SET_FLAG[purpose], tenant=tenant, memberId=member_id, granted=granted)
            await self._audit(tx, tenant, AuditAction.CONSENT_CHANGE, actor, (member_id,), at,
                              {"purpose": purpose.value, "granted": granted, "source": source.value,
                               "changed": before != granted})
            if before != granted:  # caches derived from the flag listen for it (product recommendations)
                await record(self.graph, tx, [event(tenant, EventType.MEMBER_UPDATED, at, memberId=member_id,
                                                    fields=[_FLAG[purpose]])])
            return ConsentChange(member_id=member_id, record=rec, changed=before != granted,
                                 status=consent_status(purpose, [rec], granted=granted))

        change = await self.graph.write(work)
        if purpose is ConsentPurpose.PROFILING and not granted:
            await self._purge_profile(tenant, member_id)
        return change

    async def _purge_profile(self, tenant: str, member_id: str) -> int:
        """Drop the member's KOL entries and personalised recommendation lists from Redis.

        Best effort: reads filter out members who refused profiling anyway, so a Redis
        failure is only logged.
        """
        if self.redis is None:
            return 0
        try:
            return await self._purge_kol(tenant, member_id) + await self._purge_recommendations(tenant, member_id)
        except _REDIS_DOWN as exc:
            log.warning("could not drop the cached profile of %s: %s", member_id, exc)
            return 0

    # -- audit ---------------------------------------------------------------------------------

    async def _audit(self, tx: Tx, tenant: str, action: AuditAction, actor: AuditActor, targets: Sequence[str],
                     at: Any, detail: Mapping[str, Any]) -> None:
        entry = AuditEntry(id=new_audit_id(), tenant_id=tenant, at=at, action=action, actor=actor,
                           target_ids=tuple(targets), detail=detail)
        await self.graph.run(tx, RECORD_AUDIT, entries=[_audit_row(entry)])

    async def record_audit(self, tenant: str, action: AuditAction, actor: AuditActor, target_ids: Sequence[str],
                           detail: Mapping[str, object]) -> None:
        async def work(tx: Tx) -> None:
            await self._audit(tx, tenant, action, actor, target_ids, now(), detail)

        await self.graph.write(work)

    async def audit_log(self, tenant: str, filter: AuditFilter, first: int, after: str | None) -> Page[AuditEntry]:
        row = await self.graph.read_one(
            AUDIT_PAGE, tenant=tenant, action=None if filter.action is None else filter.action.value,
            targetId=filter.target_id, limit=first + 1, **time_after(after).params(),
        )
        nodes = [dict(a) for a in (row["entries"] if row else [])]
        return page_of(nodes, first, _audit_from, lambda a: time_key(a["at"], a["id"]))

    async def audit_count(self, tenant: str, filter: AuditFilter) -> int:
        row = await self.graph.read_one(
            AUDIT_COUNT, tenant=tenant, action=None if filter.action is None else filter.action.value,
            targetId=filter.target_id,
        )
        return int(row["n"]) if row else 0

    # -- export --------------------------------------------------------------------------------

    async def export(self, tenant: str, member_id: str, actor: AuditActor) -> dict[str, object]:
        """Everything held about the member as JSON-ready data; audited before it is read."""
        async def work(tx: Tx) -> dict[str, object]:
            at = now()
            row = await self.graph.run_one(tx, EXPORT_MEMBER, tenant=tenant, memberId=member_id)
            if row is None:
                raise NotFound(f"no member {member_id!r}", field="memberId")
            await self._audit(tx, tenant, AuditAction.EXPORT, actor, (member_id,), at, {})
            profile = _native(row["profile"])
            if profile.get("erasedAt") is not None:
                return {"memberId": member_id, "exportedAt": at, "erased": True,
                        "profile": {k: profile.get(k) for k in ("id", "displayName", "erasedAt")}}
            consents = await self.graph.run_one(tx, MEMBER_CONSENTS, tenant=tenant, ids=[member_id])
            statuses = _consents_from(consents["rows"][0]) if consents and consents["rows"] else None
            document: dict[str, object] = {"memberId": member_id, "exportedAt": at, "erased": False,
                                           "profile": profile}
            for section in ("memberships", "following", "followers", "content", "comments", "interactions",
                            "interests", "purchases", "attributedPurchases", "campaigns"):
                document[section] = _native(row[section])
            document["referrals"] = {"invitedBy": _native(row["invitedBy"]), "invitees": _native(row["invitees"])}
            document["consents"] = [] if statuses is None else [
                {"purpose": s.purpose.value, "granted": s.granted, "since": s.since,
                 "source": None if s.source is None else s.source.value, "byDefault": s.by_default,
                 "history": [{"granted": r.granted, "at": r.at, "source": r.source.value, "recordedBy": r.recorded_by}
                             for r in s.history]}
                for s in statuses.statuses
            ]
            return document

        document = await self.graph.write(work)
        out: dict[str, object] = jsonable(document)
        return out

    # -- erasure -------------------------------------------------------------------------------

    async def erase(self, tenant: str, member_id: str, actor: AuditActor) -> ErasureReport:
        """Erase the member's personal data in the graph, in one transaction (idempotent)."""
        async def work(tx: Tx) -> ErasureReport:
            at = now()
            row = await self.graph.run_one(tx, ERASE_READ, tenant=tenant, memberId=member_id, now=at)
            if row is None:
                raise NotFound(f"no member {member_id!r}", field="memberId")
            current = _native(row["props"])
            already = current.get("erasedAt") is not None
            props = tombstone(current, at=at, invite_code=tombstone_invite_code())
            await self.graph.run(tx, ERASE_MEMBER, tenant=tenant, memberId=member_id, props=props)

            async def count(query: LiteralString, key: str = "n") -> int:
                found = await self.graph.run_one(tx, query, tenant=tenant, memberId=member_id, now=at)
                return int(found[key]) if found else 0

            report = ErasureReport(
                member_id=member_id, erased_at=props["erasedAt"], already_erased=already,
                relationships_removed=await count(ERASE_RELATIONSHIPS, "removed"),
                content_erased=await count(ERASE_CONTENT),
                comments_erased=await count(ERASE_COMMENTS),
                purchases_anonymised=await count(ANONYMISE_PURCHASES),
                consents_detached=await count(DETACH_CONSENTS),
            )
            await count(DROP_INVITE_CODES)
            await count(CLOSE_POINTS_LOTS)
            await self._audit(tx, tenant, AuditAction.ERASE, actor, (member_id,), at, {
                "alreadyErased": already, "relationshipsRemoved": report.relationships_removed,
                "contentErased": report.content_erased, "commentsErased": report.comments_erased,
                "purchasesAnonymised": report.purchases_anonymised, "consentsDetached": report.consents_detached,
            })
            return report

        return await self.graph.write(work)

    async def purge(self, tenant: str, member_id: str) -> PurgeReport:
        """Remove the member's id from relayed outbox events, the tenant stream and the caches.

        Run after :meth:`erase` and after the event relay delivered what was pending, so
        no relayed copy appears later. Idempotent.
        """
        row = await self.graph.read_one(EVENTS_NAMING, tenant=tenant, memberId=member_id)
        rows = []
        for e in row["events"] if row else []:
            redacted, changed = redact_payload(json.loads(e["payload"]), member_id)
            if changed:
                rows.append({"id": e["id"], "payload": json.dumps(redacted, sort_keys=True)})
        redacted_count = 0
        if rows:
            async def work(tx: Tx) -> int:
                done = await self.graph.run_one(tx, REDACT_EVENTS, tenant=tenant, rows=rows, now=now())
                return int(done["n"]) if done else 0

            redacted_count = await self.graph.write(work)
        if self.redis is None:
            return PurgeReport(events_redacted=redacted_count, redis_purged=False)
        try:
            stream = await self._purge_stream(tenant, member_id)
            caches = await self._purge_kol(tenant, member_id) + await self._purge_recommendations(tenant, member_id)
            caches += await self._purge_referral_stats(tenant, member_id)
            caches += await self._scan_delete(f"q:{tenant}:rec:{RecommendationKind.MEMBER.value}:*")
        except _REDIS_DOWN as exc:
            log.warning("erasure of %s could not purge Redis (run it again): %s", member_id, exc)
            return PurgeReport(events_redacted=redacted_count, redis_purged=False)
        return PurgeReport(events_redacted=redacted_count, stream_entries_deleted=stream, cache_entries_deleted=caches)

    async def _purge_stream(self, tenant: str, member_id: str) -> int:
        assert self.redis is not None
        key = stream_key(tenant)
        start, deleted = "-", 0
        while True:
            entries: list[Any] = list(await self.redis.xrange(key, min=start, max="+", count=_STREAM_PAGE) or [])
            naming: list[Any] = []
            for entry_id, fields in entries:
                payload = (fields or {}).get(b"payload", (fields or {}).get("payload"))
                if payload is not None and redact_payload(json.loads(_text(payload)), member_id)[1]:
                    naming.append(entry_id)
            if naming:
                deleted += int(await self.redis.xdel(key, *naming))
            if len(entries) < _STREAM_PAGE:
                return deleted
            start = "(" + _text(entries[-1][0])

    async def _purge_kol(self, tenant: str, member_id: str) -> int:
        """ZREM / HDEL the member from every run of every scope's ranking."""
        assert self.redis is not None
        removed = 0
        async for raw in self.redis.scan_iter(match=f"q:{tenant}:kol:*", count=1_000):
            key = _text(raw)
            if key.endswith((":KOL", ":KOC")):
                removed += int(await self.redis.zrem(key, member_id))
            elif key.endswith(":c"):
                removed += int(await self.redis.hdel(key, member_id))
        return removed

    async def _purge_recommendations(self, tenant: str, member_id: str) -> int:
        assert self.redis is not None
        keys = [cache_key(tenant, kind, member_id) for kind in RecommendationKind]
        keys += [popular_cache_key(tenant, kind) for kind in (RecommendationKind.MEMBER,)]
        return int(await self.redis.delete(*keys))

    async def _purge_referral_stats(self, tenant: str, member_id: str) -> int:
        assert self.redis is not None
        prefix = "q:{" + tenant + "}:ref:"
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(prefix + "m:" + member_id)
        pipe.srem(prefix + "members", member_id)
        deleted, _ = await pipe.execute()
        return int(deleted)

    async def _scan_delete(self, pattern: str) -> int:
        assert self.redis is not None
        deleted = 0
        batch: list[Any] = []
        async for key in self.redis.scan_iter(match=pattern, count=1_000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(await self.redis.delete(*batch))
                batch = []
        if batch:
            deleted += int(await self.redis.delete(*batch))
        return deleted
