"""Personalised recommendations (个性化推荐): what they are and how their reasons read.

A :class:`Recommendation` is one suggested item (a member to follow, a community to join,
content to read, a product to buy) with its score, a sentence that tells the member why,
and the ids of what justifies it (the followees who follow the suggested member, the
co-members who joined the community, the peers who engaged with the content, the
products and communities behind a product). Scores are comparable within one list only.

The reason builders below are pure functions of display names and counts, so every
adapter words its reasons the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "MAX_RECOMMENDATIONS",
    "Recommendation",
    "RecommendationKind",
    "followed_by",
    "joined_by_co_members",
    "liked_by_similar_members",
    "new_in",
    "often_bought_with",
    "popular_in_your_communities",
]

MAX_RECOMMENDATIONS = 100
"""The longest list computed (and cached) per member and kind; ``first`` slices it."""

_SOMEONE = "a member"


class RecommendationKind(StrEnum):
    """What is recommended."""

    MEMBER = "member"
    COMMUNITY = "community"
    CONTENT = "content"
    PRODUCT = "product"


@dataclass(frozen=True)
class Recommendation:
    """One recommended item, best first in a list.

    Attributes
    ----------
    item_id:
        The id of the recommended member, community, content or product.
    score:
        The ranking score (higher is better); its scale depends on the kind.
    reason:
        A sentence a person can read, e.g. ``"Followed by Lin Wei and 3 others you follow"``.
    evidence:
        Ids of the members, communities or products that justify it, strongest first.
    """

    item_id: str
    score: float
    reason: str
    evidence: tuple[str, ...]


def _name(name: str | None) -> str:
    return name.strip() if name and name.strip() else _SOMEONE


def followed_by(names: Sequence[str | None], total: int) -> str:
    """Why to follow a member: which of the people you follow already follow them.

    *names* are display names of some of those followees (strongest first) and *total*
    is how many there are: ``"Followed by Lin Wei, who you follow"``, ``"Followed by Lin
    Wei and Chen Jing, who you follow"``, ``"Followed by Lin Wei and 3 others you follow"``.
    """
    total = max(total, len(names), 1)
    first = _name(names[0] if names else None)
    if total == 1:
        return f"Followed by {first}, who you follow"
    if total == 2 and len(names) >= 2:
        return f"Followed by {first} and {_name(names[1])}, who you follow"
    others = total - 1
    return f"Followed by {first} and {others} {'other' if others == 1 else 'others'} you follow"


def joined_by_co_members(count: int) -> str:
    """Why to join a community: how many members of your communities joined it."""
    if count == 1:
        return "1 member of your communities joined it"
    return f"{count} members of your communities joined it"


def liked_by_similar_members() -> str:
    """Why to read content reached through people who engage with what you engage with."""
    return "Liked by people who like what you like"


def new_in(community: str) -> str:
    """Why to read content that is new in a community: ``"New in Running Club"``."""
    return f"New in {community}"


def often_bought_with(product: str) -> str:
    """Why to buy a product that people who bought *product* (yours) also bought."""
    return f"Often bought with {product}"


def popular_in_your_communities() -> str:
    """Why to buy a product that members of your communities buy."""
    return "Popular in your communities"
