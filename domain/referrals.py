"""Referral (邀请) rules: the REFERRED relationships form a forest.

* at most one inviter per member,
* nobody invites themselves,
* no cycles: the invitee must not already be in the inviter's upline.

Commission attribution walks the upline at most ``max_levels`` (default 2, never more
than 3: deeper multi-level commission is pyramid selling under Chinese law).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from domain.errors import ErrorCode, ReferralRejected, ValidationFailed

__all__ = ["check_referral", "commission_levels", "new_invite_code", "MAX_COMMISSION_LEVELS"]

MAX_COMMISSION_LEVELS = 3
_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: codes are typed by people


def check_referral(
    *,
    invitee_id: str,
    inviter_id: str,
    existing_inviter_id: str | None,
    inviter_upline: Sequence[str],
) -> None:
    """Raise :class:`ReferralRejected` unless *inviter* may become *invitee*'s inviter.

    ``inviter_upline`` lists the inviter's inviter, its inviter, and so on to the root.
    """
    if invitee_id == inviter_id:
        raise ReferralRejected("a member cannot refer themselves", field="inviterId", code=ErrorCode.SELF_REFERRAL)
    if existing_inviter_id is not None:
        if existing_inviter_id == inviter_id:
            raise ReferralRejected(
                "this member was already referred by this inviter", field="memberId", code=ErrorCode.ALREADY_REFERRED
            )
        raise ReferralRejected(
            "this member already has an inviter; a member has at most one",
            field="memberId",
            code=ErrorCode.ALREADY_REFERRED,
        )
    if invitee_id in inviter_upline:
        raise ReferralRejected(
            "the inviter was itself brought in by this member (directly or through others): that would be a cycle",
            field="inviterId",
            code=ErrorCode.REFERRAL_CYCLE,
        )


def commission_levels(upline: Sequence[str], max_levels: int = 2) -> list[str]:
    """The members credited for a purchase: the first *max_levels* of the buyer's upline."""
    if not 0 <= max_levels <= MAX_COMMISSION_LEVELS:
        raise ValidationFailed(
            f"maxCommissionLevels must be between 0 and {MAX_COMMISSION_LEVELS}", field="maxCommissionLevels"
        )
    return list(upline[:max_levels])


def new_invite_code() -> str:
    """An 8-character invite code people can read aloud (no 0/O or 1/I)."""
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
