"""Privacy under China's PIPL (个人信息保护法): consent, the audit log, export and erasure.

Pure rules only; :mod:`graph.privacy` stores them and :mod:`resolvers.privacy` serves them.

Consent
-------
A member's consent is kept per :class:`ConsentPurpose` as a full history of
:class:`ConsentRecord` s (each grant and each withdrawal, with its time and source). What
is *in force* follows two rules:

* ``MARKETING`` and ``DATA_SHARING`` are **opt-in** (PIPL Art. 13 and 23: sharing and
  marketing need the person's consent): no record means no consent.
* ``PROFILING`` is **opt-out** (PIPL Art. 24: automated decisions that push information
  to a person must offer an easy way to refuse personalisation): it is in force until the
  member withdraws it.

The member node also carries the state in force as flags (the ones features filter on);
a flag set outside the consent API (``registerMember`` / ``updateMember``) shows as source
:attr:`ConsentSource.PROFILE` without a record of its own.

Audit
-----
Every read of unmasked personal data (``READ_PII``, one entry per request), every export,
erasure, consent change and role change is an :class:`AuditEntry`: who (subject, member,
roles), what, when, the request id and the ids it touched. Entries hold ids, never the
personal data itself, so they survive an erasure without keeping what was erased.

Erasure
-------
A member is erased *in place*: the node stays as a tombstone (:func:`tombstone`) so that
purchases (kept for accounting, now anonymous), referral structure (commissions) and
audit entries still point at something, while every personal property is dropped. The
embedded graph server fails concurrent reads with ``EntityNotFound`` while a node
deletion commits (relationship deletions and property writes do not), so nodes are never
deleted by erasure.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.errors import PermissionDenied, ValidationFailed

__all__ = [
    "OPT_IN_PURPOSES",
    "SELF_SERVICE_SOURCES",
    "TOMBSTONE_KEEPS",
    "TOMBSTONE_NAME",
    "AuditAction",
    "AuditActor",
    "AuditEntry",
    "AuditFilter",
    "ConsentChange",
    "ConsentPurpose",
    "ConsentRecord",
    "ConsentSource",
    "ConsentStatus",
    "ErasureReport",
    "MemberConsents",
    "PiiReads",
    "PopularReason",
    "PurgeReport",
    "check_consent_source",
    "consent_status",
    "jsonable",
    "new_audit_id",
    "new_consent_id",
    "redact_payload",
    "tombstone",
    "tombstone_invite_code",
]


class ConsentPurpose(StrEnum):
    """What a member consents to."""

    #: marketing messages and product suggestions (营销推送); opt-in
    MARKETING = "MARKETING"
    #: personalisation from the member's behaviour: recommendations, KOL scoring (用户画像); opt-out
    PROFILING = "PROFILING"
    #: handing the member's personal data to third parties (integrators, partners); opt-in
    DATA_SHARING = "DATA_SHARING"


OPT_IN_PURPOSES = frozenset({ConsentPurpose.MARKETING, ConsentPurpose.DATA_SHARING})


class ConsentSource(StrEnum):
    """Where a consent decision was captured."""

    APP = "APP"
    MINI_PROGRAM = "MINI_PROGRAM"
    WECHAT = "WECHAT"
    #: recorded by brand staff (customer service, a signed paper form)
    OPERATOR = "OPERATOR"
    #: a bulk import from another system
    IMPORT = "IMPORT"
    #: the flag given to registerMember / updateMember, before consent records existed (never an input)
    PROFILE = "PROFILE"


#: sources a member may give when it records its own decision
SELF_SERVICE_SOURCES = frozenset({ConsentSource.APP, ConsentSource.MINI_PROGRAM, ConsentSource.WECHAT})


def check_consent_source(source: ConsentSource, *, self_service: bool, field: str = "source") -> ConsentSource:
    """Validate the source of a consent decision.

    ``PROFILE`` is never an input. A member acting for itself records what it did in a
    client (``APP``, ``MINI_PROGRAM``, ``WECHAT``); ``OPERATOR`` and ``IMPORT`` are for staff.
    """
    if source is ConsentSource.PROFILE:
        raise ValidationFailed("PROFILE is set by the system for flags given at registration; "
                               "record APP, MINI_PROGRAM, WECHAT, OPERATOR or IMPORT", field=field)
    if self_service and source not in SELF_SERVICE_SOURCES:
        raise PermissionDenied(f"members record their own consent from APP, MINI_PROGRAM or WECHAT, not {source.value}",
                               field=field)
    return source


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One grant or withdrawal, as it was recorded."""

    id: str
    purpose: ConsentPurpose
    granted: bool
    at: datetime
    source: ConsentSource
    #: who recorded it (the token's subject); None once the member is erased
    recorded_by: str | None = None


@dataclass(frozen=True, slots=True)
class ConsentStatus:
    """The consent in force for one purpose, and how it came to be."""

    purpose: ConsentPurpose
    granted: bool
    #: when the decision in force was recorded (None: the default, or a profile flag)
    since: datetime | None
    #: where it was recorded (None: nothing was ever recorded and the default applies)
    source: ConsentSource | None
    #: True when no decision was ever recorded: opt-in purposes are off, profiling is on
    by_default: bool
    #: every record of this purpose, newest first
    history: tuple[ConsentRecord, ...] = ()


def consent_status(purpose: ConsentPurpose, records: Sequence[ConsentRecord], *, granted: bool) -> ConsentStatus:
    """The status of *purpose* given its *records* and the flag in force (*granted*).

    The flag is what features act on; the records explain it. When the newest record
    agrees with the flag, it is the decision in force. When there is no record, the flag
    equal to the purpose's default is the default (``by_default``); any other flag was set
    through the member's profile (source ``PROFILE``).
    """
    history = tuple(sorted((r for r in records if r.purpose is purpose), key=lambda r: (r.at, r.id), reverse=True))
    default = purpose not in OPT_IN_PURPOSES
    latest = history[0] if history else None
    if latest is not None and latest.granted == granted:
        return ConsentStatus(purpose, granted, latest.at, latest.source, False, history)
    if latest is None and granted == default:
        return ConsentStatus(purpose, granted, None, None, True, history)
    return ConsentStatus(purpose, granted, None, ConsentSource.PROFILE, False, history)


@dataclass(frozen=True, slots=True)
class MemberConsents:
    """A member's consent status for every purpose, in :class:`ConsentPurpose` order."""

    member_id: str
    statuses: tuple[ConsentStatus, ...]

    def of(self, purpose: ConsentPurpose) -> ConsentStatus:
        return next(s for s in self.statuses if s.purpose is purpose)


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """The result of recording a grant or a withdrawal."""

    member_id: str
    record: ConsentRecord
    #: False when the decision in force was already the same (the record is kept anyway)
    changed: bool
    status: ConsentStatus


# --- audit -------------------------------------------------------------------------------


class AuditAction(StrEnum):
    #: unmasked phone numbers or WeChat ids were returned (one entry per request)
    READ_PII = "READ_PII"
    EXPORT = "EXPORT"
    ERASE = "ERASE"
    ROLE_CHANGE = "ROLE_CHANGE"
    CONSENT_CHANGE = "CONSENT_CHANGE"


def new_audit_id() -> str:
    return "aud_" + secrets.token_hex(10)


def new_consent_id() -> str:
    return "csn_" + secrets.token_hex(10)


@dataclass(frozen=True, slots=True)
class AuditActor:
    """Who did it: the token's subject, the member it acts as, its roles, and the request."""

    subject: str | None
    member_id: str | None
    roles: tuple[str, ...]
    request_id: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    tenant_id: str
    at: datetime
    action: AuditAction
    actor: AuditActor
    #: ids of what it touched (members, for all current actions)
    target_ids: tuple[str, ...]
    #: small, id-only facts (fields read, purpose, counts); never personal data
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    action: AuditAction | None = None
    target_id: str | None = None


class PiiReads:
    """Unmasked personal fields returned during one request (or one subscription event).

    Resolvers note each read; the request ends with one ``READ_PII`` audit entry listing
    every member touched and the fields, instead of one write per field.
    """

    __slots__ = ("_fields",)

    def __init__(self) -> None:
        self._fields: dict[str, set[str]] = {}

    def add(self, member_id: str, field_name: str) -> None:
        self._fields.setdefault(member_id, set()).add(field_name)

    def __bool__(self) -> bool:
        return bool(self._fields)

    def drain(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The member ids and field names read since the last drain (sorted), and forget them."""
        ids = tuple(sorted(self._fields))
        names = tuple(sorted(set().union(*self._fields.values()))) if self._fields else ()
        self._fields = {}
        return ids, names


# --- erasure -------------------------------------------------------------------------------

#: the display name of an erased member (已注销用户: "deregistered user")
TOMBSTONE_NAME = "已注销用户"
#: member properties an erasure keeps: ids and the non-identifying facts analytics count
#: (when and through which channel someone joined, first activity and first payment)
TOMBSTONE_KEEPS = ("id", "tenantId", "joinedAt", "channel", "firstActiveAt", "firstPaidAt")


def tombstone_invite_code() -> str:
    """A unique placeholder for the erased member's invite code.

    The (tenantId, inviteCode) uniqueness index of the embedded server counts a missing
    code as a value, so two erased members of a tenant cannot both go without one; the
    placeholder has lowercase letters and ``_``, which no typed invite code may contain
    (``^[A-Z0-9]{4,16}$``), so nobody can be invited with it.
    """
    return "erased_" + secrets.token_hex(8)


def tombstone(current: Mapping[str, Any], *, at: datetime, invite_code: str) -> dict[str, Any]:
    """The complete property map of an erased member: what it kept, and nothing personal.

    A member erased before keeps its first ``erasedAt`` and placeholder code (idempotent).
    """
    kept = {k: current[k] for k in TOMBSTONE_KEEPS if current.get(k) is not None}
    kept.update({
        "displayName": TOMBSTONE_NAME,
        "level": 0,
        "points": 0,
        "inviteCode": current["inviteCode"] if current.get("erasedAt") is not None and current.get("inviteCode")
        else invite_code,
        "marketingConsent": False,
        "profilingConsent": False,
        "dataSharingConsent": False,
        "profilingWithdrawn": True,
        "erasedAt": current.get("erasedAt") or at,
    })
    return kept


def redact_payload(payload: Any, member_id: str) -> tuple[Any, bool]:
    """*payload* with every value equal to *member_id* replaced by ``None`` (lists and maps
    walked), and whether anything changed. Event payloads carry ids, not personal data;
    an erased member's id is dropped so its history cannot be pieced together."""
    if isinstance(payload, str):
        return (None, True) if payload == member_id else (payload, False)
    if isinstance(payload, Mapping):
        out: dict[str, Any] = {}
        changed = False
        for key, value in payload.items():
            out[key], hit = redact_payload(value, member_id)
            changed = changed or hit
        return out, changed
    if isinstance(payload, (list, tuple)):
        items = [redact_payload(v, member_id) for v in payload]
        return [v for v, _ in items], any(hit for _, hit in items)
    return payload, False


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What an erasure changed in the graph (all zero but ``member_id`` on a repeat)."""

    member_id: str
    erased_at: datetime
    #: True when the member had been erased before (the call only re-checked everything)
    already_erased: bool
    content_erased: int = 0
    comments_erased: int = 0
    relationships_removed: int = 0
    purchases_anonymised: int = 0
    consents_detached: int = 0


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What the purge of derived copies removed: outbox payloads, stream entries, caches."""

    events_redacted: int = 0
    stream_entries_deleted: int = 0
    cache_entries_deleted: int = 0
    #: False when Redis could not be reached: run the (idempotent) erasure again later
    redis_purged: bool = True


class PopularReason(StrEnum):
    """Reasons of non-personalised recommendations (for members who refused profiling)."""

    MEMBER = "Popular in this brand's community"
    COMMUNITY = "One of the most joined communities"
    CONTENT = "Popular right now"
    PRODUCT = "A best seller"


def jsonable(value: Any) -> Any:
    """*value* with datetimes as ISO 8601 strings and tuples as lists (for the JSON export)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
