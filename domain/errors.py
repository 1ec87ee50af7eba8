"""The error tree of Quanzi, with stable codes.

Every expected failure is a subclass of :class:`QuanziError` carrying an :class:`ErrorCode`
(stable: clients switch on it), a human-readable message and, for input problems, the
name of the offending field as the client spelled it (``input.displayName``).

Hierarchy::

    QuanziError
    ├── ValidationFailed        VALIDATION_FAILED     bad input; nothing was written
    ├── NotAuthenticated        NOT_AUTHENTICATED     no or invalid credentials
    ├── PermissionDenied        FORBIDDEN             authenticated, but not allowed
    ├── NotFound                NOT_FOUND             no such object in the caller's tenant
    ├── AlreadyExists           ALREADY_EXISTS        a unique key is taken
    ├── ReferralRejected        SELF_REFERRAL | REFERRAL_CYCLE | ALREADY_REFERRED
    │                           | INVALID_INVITE_CODE
    ├── IdempotencyConflict     IDEMPOTENCY_CONFLICT  same key, different request
    ├── GraphUnavailable        GRAPH_UNAVAILABLE     the graph server cannot be reached
    ├── RequestRejected         QUERY_TOO_DEEP | TOO_MANY_ALIASES | TOO_MANY_TOKENS
    │                           | QUERY_TOO_COSTLY | REQUEST_TOO_LARGE | RATE_LIMITED
    │                           | PERSISTED_QUERY_NOT_FOUND | PERSISTED_QUERY_HASH_MISMATCH
    │                           | OPERATION_NOT_SAFELISTED   refused before it ran
    ├── MigrationError          MIGRATION_FAILED | MIGRATION_CHECKSUM_MISMATCH
    ├── StartupError            STARTUP_FAILED        the embedded stack could not start
    └── CampaignRuleBroken      GROUP_BUY_FULL | GROUP_BUY_CLOSED | ALREADY_JOINED
                                | COUPON_REDEEMED | COUPON_EXPIRED | INSUFFICIENT_POINTS
                                a campaign rule refused the action; nothing was written

Adapters translate driver exceptions at the boundary (a uniqueness ``ConstraintError``
becomes :class:`AlreadyExists`, ``ServiceUnavailable`` becomes :class:`GraphUnavailable`).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ErrorCode",
    "QuanziError",
    "ValidationFailed",
    "NotAuthenticated",
    "PermissionDenied",
    "NotFound",
    "AlreadyExists",
    "ReferralRejected",
    "IdempotencyConflict",
    "GraphUnavailable",
    "RequestRejected",
    "MigrationError",
    "StartupError",
    "CampaignRuleBroken",
]


class ErrorCode(StrEnum):
    VALIDATION_FAILED = "VALIDATION_FAILED"
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    SELF_REFERRAL = "SELF_REFERRAL"
    REFERRAL_CYCLE = "REFERRAL_CYCLE"
    ALREADY_REFERRED = "ALREADY_REFERRED"
    INVALID_INVITE_CODE = "INVALID_INVITE_CODE"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    GRAPH_UNAVAILABLE = "GRAPH_UNAVAILABLE"
    QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
    TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
    TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
    QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    PERSISTED_QUERY_HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
    OPERATION_NOT_SAFELISTED = "OPERATION_NOT_SAFELISTED"
    MIGRATION_FAILED = "MIGRATION_FAILED"
    MIGRATION_CHECKSUM_MISMATCH = "MIGRATION_CHECKSUM_MISMATCH"
    STARTUP_FAILED = "STARTUP_FAILED"
    GROUP_BUY_FULL = "GROUP_BUY_FULL"
    GROUP_BUY_CLOSED = "GROUP_BUY_CLOSED"
    ALREADY_JOINED = "ALREADY_JOINED"
    COUPON_REDEEMED = "COUPON_REDEEMED"
    COUPON_EXPIRED = "COUPON_EXPIRED"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"


class QuanziError(Exception):
    """Base of every expected failure."""

    code: ErrorCode = ErrorCode.VALIDATION_FAILED

    def __init__(self, message: str, *, field: str | None = None, code: ErrorCode | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.value!r}, field={self.field!r}, message={self.message!r})"


class ValidationFailed(QuanziError):
    code = ErrorCode.VALIDATION_FAILED


class NotAuthenticated(QuanziError):
    code = ErrorCode.NOT_AUTHENTICATED


class PermissionDenied(QuanziError):
    code = ErrorCode.FORBIDDEN


class NotFound(QuanziError):
    code = ErrorCode.NOT_FOUND


class AlreadyExists(QuanziError):
    code = ErrorCode.ALREADY_EXISTS


class ReferralRejected(QuanziError):
    code = ErrorCode.REFERRAL_CYCLE


class IdempotencyConflict(QuanziError):
    code = ErrorCode.IDEMPOTENCY_CONFLICT


class GraphUnavailable(QuanziError):
    code = ErrorCode.GRAPH_UNAVAILABLE


class RequestRejected(QuanziError):
    """A request refused before it ran (limits, rate limits, persisted-query rules); nothing ran.

    ``details`` go to the error's extensions (the limit and the measured value, or
    ``retryAfter`` seconds for ``RATE_LIMITED``).
    """

    def __init__(self, message: str, *, code: ErrorCode, details: dict[str, object] | None = None):
        super().__init__(message, code=code)
        self.details = dict(details or {})


class MigrationError(QuanziError):
    code = ErrorCode.MIGRATION_FAILED


class StartupError(QuanziError):
    code = ErrorCode.STARTUP_FAILED


class CampaignRuleBroken(QuanziError):
    """A group-buy, coupon or points rule refused the action (domain.rewards); nothing was written."""

    code = ErrorCode.GROUP_BUY_CLOSED
