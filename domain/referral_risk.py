"""Per-referral fraud signals (裂变风控): why an invitation edge looks suspicious.

Self-referrals and cycles never get this far: they are rejected when written. These
signals describe referrals that exist but look like farming: a burst of sign-ups under
one inviter, invitees who never did anything, and invitees that share a phone-number
prefix or a device with many of the inviter's other invitees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = ["RiskRules", "RiskSignal", "RiskSignalKind", "referral_risk", "phone_prefix"]


class RiskSignalKind(StrEnum):
    VELOCITY_BURST = "VELOCITY_BURST"
    NEVER_ACTIVE = "NEVER_ACTIVE"
    SHARED_PHONE_PREFIX = "SHARED_PHONE_PREFIX"
    SHARED_DEVICE = "SHARED_DEVICE"


@dataclass(frozen=True, slots=True)
class RiskSignal:
    kind: RiskSignalKind
    detail: str


@dataclass(frozen=True, slots=True)
class RiskRules:
    """Thresholds; the defaults suit WeChat fission campaigns."""

    #: this many invitees of one inviter within ``burst_window`` of this referral is a burst
    burst_size: int = 10
    burst_window: timedelta = timedelta(hours=1)
    #: an invitee idle this long after joining "never became active"
    idle_after: timedelta = timedelta(days=7)
    #: this many other invitees of the same inviter sharing the phone prefix (or device) is a cluster
    cluster_size: int = 3
    #: leading digits of a mobile number that identify a number block (e.g. 138 0013)
    prefix_digits: int = 7


def phone_prefix(phone: str | None, digits: int = 7) -> str | None:
    """The first *digits* digits of a phone number (country code +86 dropped), or None."""
    if not phone:
        return None
    only = "".join(ch for ch in phone if ch.isdigit())
    if phone.strip().startswith("+86") or (len(only) == 13 and only.startswith("86")):
        only = only[2:]
    return only[:digits] if len(only) >= digits else None


def referral_risk(
    *,
    at: datetime,
    now: datetime,
    invitee_joined_at: datetime,
    invitee_first_active_at: datetime | None,
    sibling_times: Sequence[datetime],
    invitee_phone: str | None = None,
    sibling_phones: Sequence[str | None] = (),
    invitee_device: str | None = None,
    sibling_devices: Sequence[str | None] = (),
    rules: RiskRules = RiskRules(),  # noqa: B008 - frozen value object
) -> list[RiskSignal]:
    """The signals of one referral made at *at*.

    ``sibling_*`` describe the inviter's *other* invitees (not this one).
    """
    signals: list[RiskSignal] = []
    near = sum(1 for t in sibling_times if abs(t - at) <= rules.burst_window) + 1
    if near >= rules.burst_size:
        minutes = int(rules.burst_window.total_seconds() // 60)
        signals.append(RiskSignal(RiskSignalKind.VELOCITY_BURST,
                                  f"{near} invitees of this inviter joined within {minutes} minutes of this one"))
    if invitee_first_active_at is None and now - invitee_joined_at >= rules.idle_after:
        days = (now - invitee_joined_at).days
        signals.append(RiskSignal(RiskSignalKind.NEVER_ACTIVE, f"the invitee has done nothing in {days} days"))
    prefix = phone_prefix(invitee_phone, rules.prefix_digits)
    if prefix is not None:
        same = sum(1 for p in sibling_phones if phone_prefix(p, rules.prefix_digits) == prefix)
        if same >= rules.cluster_size:
            signals.append(RiskSignal(RiskSignalKind.SHARED_PHONE_PREFIX,
                                      f"{same} other invitees of this inviter have phone numbers starting {prefix}"))
    if invitee_device:
        same = sum(1 for d in sibling_devices if d == invitee_device)
        if same >= 1:
            signals.append(RiskSignal(RiskSignalKind.SHARED_DEVICE,
                                      f"{same} other invitees of this inviter signed up on the same device"))
    return signals
