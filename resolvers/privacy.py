"""Privacy over GraphQL (PIPL): consent, the audit log, export and erasure of a member.

* ``grantConsent`` / ``withdrawConsent``: a member for itself, or staff who write
  (operator, integrator, admin) for a member; every call is kept with its time and source.
* ``Member.consents``: the state in force per purpose and its history.
* ``exportMemberData`` / ``eraseMember``: admins only, and audited.
* ``auditLog``: admins only, newest first.
* :class:`AuditTrail`: one ``READ_PII`` audit entry per request (or subscription event)
  in which unmasked phone numbers or WeChat ids were returned. It is written before the
  response leaves; when it cannot be written, the data is withheld (an error with code
  ``GRAPH_UNAVAILABLE``) instead of returning personal data nobody could account for.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.scalars import JSON

from domain import privacy as dp
from domain.auth import WRITER_ROLES, Role
from domain.errors import GraphUnavailable
from domain.ids import Kind, require_id
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
from resolvers.context import Context

if TYPE_CHECKING:
    from resolvers.members import Member

__all__ = [
    "AuditEntry", "AuditTrail", "Consent", "PrivacyMutation", "PrivacyQuery", "consents_of", "note_pii_read",
    "record_role_change",
]

log = logging.getLogger(__name__)

MemberRef = Annotated["Member", strawberry.lazy("resolvers.members")]
ADMIN = frozenset({Role.ADMIN})

ConsentPurpose = strawberry.enum(
    dp.ConsentPurpose,
    description="What a member consents to. MARKETING (营销: messages, product suggestions) and DATA_SHARING "
    "(handing personal data to third parties) are opt-in: without a grant there is no consent. PROFILING "
    "(用户画像: personalised recommendations, KOL scoring) is opt-out (PIPL Art. 24): in force until withdrawn.",
)
ConsentSource = strawberry.enum(
    dp.ConsentSource,
    description="Where a decision was captured. Members record their own from APP, MINI_PROGRAM or WECHAT; "
    "OPERATOR and IMPORT are for staff. PROFILE marks a flag given to registerMember/updateMember "
    "(never an input).",
)
AuditAction = strawberry.enum(
    dp.AuditAction,
    description="READ_PII: unmasked phone numbers or WeChat ids were returned (one entry per request, listing "
    "every member read); EXPORT, ERASE: exportMemberData, eraseMember; CONSENT_CHANGE: grantConsent, "
    "withdrawConsent; ROLE_CHANGE: a role was changed.",
)


@strawberry.type(description="One grant or withdrawal, as recorded.")
class ConsentRecord:
    granted: bool
    at: datetime
    source: ConsentSource  # type: ignore[valid-type]
    recorded_by: str | None = strawberry.field(description="The subject of the token that recorded it.")

    @classmethod
    def from_domain(cls, r: dp.ConsentRecord) -> ConsentRecord:
        return cls(granted=r.granted, at=r.at, source=r.source, recorded_by=r.recorded_by)


@strawberry.type(description="A member's consent for one purpose: the decision in force and its history.")
class Consent:
    purpose: ConsentPurpose  # type: ignore[valid-type]
    granted: bool = strawberry.field(description="Whether the consent is in force (what features act on).")
    since: datetime | None = strawberry.field(description="When the decision in force was recorded; null for "
                                              "the default or a registration flag.")
    source: ConsentSource | None = strawberry.field(  # type: ignore[valid-type]
        description="Where the decision in force was recorded; null when the default applies.")
    by_default: bool = strawberry.field(description="True when nothing was ever recorded: opt-in purposes are "
                                        "off, PROFILING is on.")
    history: list[ConsentRecord] = strawberry.field(description="Every grant and withdrawal, newest first.")

    @classmethod
    def from_domain(cls, s: dp.ConsentStatus) -> Consent:
        return cls(purpose=s.purpose, granted=s.granted, since=s.since, source=s.source, by_default=s.by_default,
                   history=[ConsentRecord.from_domain(r) for r in s.history])


async def consents_of(info: XInfo, member_id: str) -> list[Consent] | None:
    """The member's consents (the member itself and staff; null for anyone else)."""
    principal = info.context.principal
    principal.require_tenant()
    if not (principal.is_staff or principal.member_id == member_id):
        return None
    found = await info.context.loaders.consents.load(member_id)
    return None if found is None else [Consent.from_domain(s) for s in found.statuses]


def note_pii_read(info: XInfo, member_id: str, field_name: str) -> None:
    """Note that an unmasked personal field of *member_id* is being returned (see :class:`AuditTrail`)."""
    info.context.pii_reads.add(member_id, field_name)


@strawberry.type(description="Who did an audited operation.")
class AuditActor:
    subject: str | None = strawberry.field(description="The token's subject.")
    member_id: strawberry.ID | None = strawberry.field(description="The member the token acts as, if any.")
    roles: list[str]


@strawberry.type(description="One audited operation. Entries hold ids, never the personal data itself.")
class AuditEntry:
    id: strawberry.ID
    at: datetime
    action: AuditAction  # type: ignore[valid-type]
    actor: AuditActor
    request_id: str = strawberry.field(description="The X-Request-Id of the request (also in the server log).")
    target_ids: list[strawberry.ID] = strawberry.field(description="The members the operation touched.")
    detail: JSON = strawberry.field(description="Facts of the operation: fields read, purpose and source, "
                                    "counts of what an erasure changed.")

    @classmethod
    def from_domain(cls, e: dp.AuditEntry) -> AuditEntry:
        return cls(
            id=strawberry.ID(e.id), at=e.at, action=e.action,
            actor=AuditActor(subject=e.actor.subject,
                             member_id=None if e.actor.member_id is None else strawberry.ID(e.actor.member_id),
                             roles=list(e.actor.roles)),
            request_id=e.actor.request_id, target_ids=[strawberry.ID(t) for t in e.target_ids],
            detail=cast(JSON, dict(e.detail)),
        )


def actor_of(context: Context) -> dp.AuditActor:
    p = context.principal
    return dp.AuditActor(subject=p.subject, member_id=p.member_id, roles=tuple(sorted(r.value for r in p.roles)),
                         request_id=context.request_id)


@strawberry.type
class ConsentPayload:
    member: MemberRef
    consent: Consent = strawberry.field(description="The consent of this purpose after the change, with its history.")
    changed: bool = strawberry.field(description="False when the decision in force was already this one (the "
                                     "record is kept anyway).")


@strawberry.type(description="What an erasure did. The member stays as a tombstone (displayName 已注销用户, no "
                 "personal properties); purchases stay for accounting, anonymous; referral links stay as anonymous "
                 "structure for commissions.")
class ErasurePayload:
    member_id: strawberry.ID
    erased_at: datetime
    already_erased: bool = strawberry.field(description="The member had been erased before; everything was checked "
                                            "and purged again.")
    relationships_removed: int = strawberry.field(description="Follows (both ways), likes, shares, favorites, "
                                                  "comment marks, profile tags and memberships.")
    content_erased: int = strawberry.field(description="Posts whose title and body were emptied (they leave their "
                                           "community's feed).")
    comments_erased: int
    purchases_anonymised: int
    consents_detached: int
    events_redacted: int = strawberry.field(description="Outbox events whose payload named the member.")
    stream_entries_deleted: int = strawberry.field(description="Event stream entries naming the member.")
    cache_entries_deleted: int = strawberry.field(description="KOL ranking entries, referral numbers and cached "
                                                  "recommendations.")
    redis_purged: bool = strawberry.field(description="False when Redis was unreachable: call eraseMember again "
                                          "(idempotent) to finish the purge.")


_Errors = ValidationError | NotFoundError | PermissionError
ConsentResult = Annotated[ConsentPayload | _Errors, strawberry.union("ConsentResult")]
ErasureResult = Annotated[ErasurePayload | _Errors, strawberry.union("ErasureResult")]


async def _record_consent(info: XInfo, member_id: str | None, purpose: dp.ConsentPurpose, source: dp.ConsentSource,
                          *, granted: bool) -> ConsentResult:
    from resolvers.members import member_or_raise

    async def work() -> ConsentPayload:
        principal = info.context.principal
        if member_id is not None:
            require_id(member_id, Kind.MEMBER, field="memberId")
        acting = principal.acting_member(member_id)
        dp.check_consent_source(source, self_service=not principal.has_any(WRITER_ROLES))
        change = await info.context.repos.privacy.record_consent(
            principal.require_tenant(), acting, purpose, granted=granted, source=source,
            actor=actor_of(info.context))
        member = await member_or_raise(info, acting, "memberId")
        found = await info.context.loaders.consents.load(acting)
        status = change.status if found is None else found.of(purpose)
        return ConsentPayload(member=member, consent=Consent.from_domain(status),
                              changed=change.changed)

    return await guarded(work)  # type: ignore[return-value]


@strawberry.type
class PrivacyQuery:
    @strawberry.field(description="The audit log of personal-data reads, exports, erasures, consent and role "
                      "changes, newest first (admins only). Filter by action and by the member touched.")
    async def audit_log(
        self, info: XInfo, first: int | None = 20, after: str | None = None,
        action: AuditAction | None = None,  # type: ignore[valid-type]
        target_id: strawberry.ID | None = None,
    ) -> Connection[AuditEntry]:
        ctx = info.context
        tenant = ctx.principal.require_role(ADMIN, "reading the audit log")
        if target_id is not None:
            require_id(target_id, Kind.MEMBER, field="targetId")
        audit_filter = dp.AuditFilter(action=action, target_id=target_id)
        page = await ctx.repos.privacy.audit_log(tenant, audit_filter, connection_args(first), after)

        async def count() -> int:
            return await ctx.repos.privacy.audit_count(tenant, audit_filter)

        return connection(page, AuditEntry.from_domain, count)

    @strawberry.field(description="Everything held about a member, as JSON (PIPL Art. 45: the right to a copy): "
                      "profile (unmasked), memberships, follows, content, comments, interactions, profile tags, "
                      "purchases with lines, purchases credited to it, referrals both ways, campaigns and consents "
                      "with their history. Admins only; audited (EXPORT). An erased member exports as its tombstone.")
    async def export_member_data(self, info: XInfo, member_id: strawberry.ID) -> JSON:
        tenant = info.context.principal.require_role(ADMIN, "exporting a member's data")
        require_id(member_id, Kind.MEMBER, field="memberId")
        return cast(JSON, await info.context.repos.privacy.export(tenant, member_id, actor_of(info.context)))


@strawberry.type
class PrivacyMutation:
    @strawberry.mutation(description="Record a member's consent to a purpose (a member for itself; operators, "
                         "integrators and admins for any member with memberId). Kept with its time and source.")
    async def grant_consent(
        self, info: XInfo, purpose: ConsentPurpose, source: ConsentSource,  # type: ignore[valid-type]
        member_id: strawberry.ID | None = None,
    ) -> ConsentResult:
        return await _record_consent(info, member_id, purpose, source, granted=True)

    @strawberry.mutation(description="Record that a member withdraws its consent to a purpose; takes effect at "
                         "once. Withdrawing PROFILING switches the member to non-personalised recommendations, hides "
                         "its KOL standing and drops the profile tags inferred from its behaviour.")
    async def withdraw_consent(
        self, info: XInfo, purpose: ConsentPurpose, source: ConsentSource,  # type: ignore[valid-type]
        member_id: strawberry.ID | None = None,
    ) -> ConsentResult:
        return await _record_consent(info, member_id, purpose, source, granted=False)

    @strawberry.mutation(description="Erase a member's personal data (PIPL Art. 47), admins only, audited, "
                         "idempotent. The member stays as a tombstone (reads return displayName 已注销用户 and no "
                         "personal fields); its follows, interactions, tags and memberships are removed, its content "
                         "and comments emptied, its purchases kept for accounting but anonymous; its id is removed "
                         "from past events, the event stream and the caches.")
    async def erase_member(self, info: XInfo, member_id: strawberry.ID) -> ErasureResult:
        async def work() -> ErasurePayload:
            ctx = info.context
            tenant = ctx.principal.require_role(ADMIN, "erasing a member")
            require_id(member_id, Kind.MEMBER, field="memberId")
            report = await ctx.repos.privacy.erase(tenant, member_id, actor_of(ctx))
            if ctx.after_mutation is not None:
                await ctx.after_mutation()  # relay pending events first, so the purge sees every copy
            purge = await ctx.repos.privacy.purge(tenant, member_id)
            return ErasurePayload(
                member_id=strawberry.ID(member_id), erased_at=report.erased_at, already_erased=report.already_erased,
                relationships_removed=report.relationships_removed, content_erased=report.content_erased,
                comments_erased=report.comments_erased, purchases_anonymised=report.purchases_anonymised,
                consents_detached=report.consents_detached, events_redacted=purge.events_redacted,
                stream_entries_deleted=purge.stream_entries_deleted, cache_entries_deleted=purge.cache_entries_deleted,
                redis_purged=purge.redis_purged,
            )

        return await guarded(work)  # type: ignore[return-value]


async def record_role_change(context: Context, member_id: str, community_id: str, role: str) -> None:
    """Audit a role change (ROLE_CHANGE): call it after a role was set, in the same request."""
    await context.repos.privacy.record_audit(
        context.tenant, dp.AuditAction.ROLE_CHANGE, actor_of(context), (member_id,),
        {"communityId": community_id, "role": role})


# --- READ_PII: one audit entry per request ----------------------------------------------------


async def flush_pii_reads(context: Context) -> None:
    """Write one READ_PII entry for what the request returned unmasked (nothing when it returned none)."""
    if not context.pii_reads:
        return
    ids, fields = context.pii_reads.drain()
    await context.repos.privacy.record_audit(
        context.tenant, dp.AuditAction.READ_PII, actor_of(context), ids, {"fields": list(fields)})


def _withhold(result: Any) -> None:
    error = GraphUnavailable("the audit log could not be written; personal data was not returned")
    result.data = None
    result.errors = [GraphQLError(error.message, original_error=error)]


class AuditTrail(SchemaExtension):
    """Audits unmasked personal data once per request, before the response leaves."""

    async def _flush(self, result: Any) -> None:
        context = self.execution_context.context
        if not isinstance(context, Context) or not context.pii_reads:
            return
        try:
            await flush_pii_reads(context)
        except Exception as exc:  # no audit entry, no personal data
            log.error("READ_PII audit entry not written (request %s); response withheld", context.request_id,
                      exc_info=exc)
            if result is not None:
                _withhold(result)

    async def on_execute(self) -> AsyncIterator[None]:
        yield
        await self._flush(self.execution_context.result)

    async def on_stream_result(self, result: Any) -> AsyncIterator[None]:
        await self._flush(result)  # subscriptions: once per event
        yield
