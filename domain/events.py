"""Domain events: what happened, recorded in the same transaction as the change itself.

Every mutation that changes something another part of the system derives data from
(referral aggregates, recommendation caches, KOL recompute triggers, and subscriptions)
records an :class:`Event` in its graph transaction (the outbox). A relay hands recorded
events to their consumers after the commit, in order, at least once; consumers are
idempotent by event id. So an acknowledged change is never lost to a consumer, even when
Redis is down at write time: the relay catches up when it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = ["ACTIVATION_WINDOW", "Event", "EventType", "is_activation"]

#: PRODUCT.md: a member is *activated* by a first interaction within 7 days of joining.
ACTIVATION_WINDOW = timedelta(days=7)


class EventType(StrEnum):
    MEMBER_REGISTERED = "MEMBER_REGISTERED"
    MEMBER_UPDATED = "MEMBER_UPDATED"
    REFERRAL_CREATED = "REFERRAL_CREATED"
    MEMBER_ACTIVATED = "MEMBER_ACTIVATED"
    FOLLOWED = "FOLLOWED"
    UNFOLLOWED = "UNFOLLOWED"
    MEMBER_JOINED = "MEMBER_JOINED"
    MEMBER_LEFT = "MEMBER_LEFT"
    CONTENT_POSTED = "CONTENT_POSTED"
    COMMENT_ADDED = "COMMENT_ADDED"
    INTERACTED = "INTERACTED"
    PURCHASE_RECORDED = "PURCHASE_RECORDED"
    KOL_RANKING_CHANGED = "KOL_RANKING_CHANGED"
    GROUP_BUY_COMPLETED = "GROUP_BUY_COMPLETED"
    GROUP_BUY_FAILED = "GROUP_BUY_FAILED"


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded change: ``payload`` holds ids and values, never whole objects."""

    id: str
    tenant: str
    type: EventType
    at: datetime
    payload: dict[str, Any] = field(default_factory=dict)

    def str_(self, key: str) -> str:
        """A required string field of the payload."""
        return str(self.payload[key])

    def opt(self, key: str) -> str | None:
        value = self.payload.get(key)
        return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class StreamedEvent:
    """An event as subscribers receive it: ``cursor`` orders a tenant's events and resumes them."""

    cursor: str
    event_id: str
    type: EventType
    at_micros: int
    payload: dict[str, Any]
    #: objects loaded for this event, shared by every subscriber of the process that receives it
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def is_activation(*, joined_at: datetime, first_active_at: datetime, window: timedelta = ACTIVATION_WINDOW) -> bool:
    """Whether a first activity at *first_active_at* activates a member who joined at *joined_at*."""
    return first_active_at - joined_at <= window
