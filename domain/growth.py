"""Growth analytics types shared by the adapters and the API: scopes, rankings, trees.

Definitions operators read (PRODUCT.md): a *KOL* (意见领袖) is a member whose content and
follows spread furthest; a *KOC* (关键意见消费者) brings in buyers with a modest reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.influence import MemberInfluence
from domain.models import Member

__all__ = ["MAX_TREE_DEPTH", "RankedMember", "RankingPage", "Scope", "ScopeKind", "TreeNode", "TreePage"]

#: the deepest downline level a referral tree read walks
MAX_TREE_DEPTH = 10


class ScopeKind(StrEnum):
    """What a projection (and a ranking) covers."""

    TENANT = "TENANT"
    COMMUNITY = "COMMUNITY"
    TOPIC = "TOPIC"


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind = ScopeKind.TENANT
    id: str | None = None

    @property
    def key(self) -> str:
        """A short stable name used in Redis keys: ``tenant``, ``com_…`` or ``tag_…``."""
        return "tenant" if self.kind is ScopeKind.TENANT else str(self.id)


@dataclass(frozen=True, slots=True)
class RankedMember:
    member_id: str
    rank: int
    score: float
    influence: MemberInfluence


@dataclass(frozen=True, slots=True)
class RankingPage:
    items: list[RankedMember]
    total: int
    computed_at: datetime
    graph_version: int


@dataclass(frozen=True, slots=True)
class TreeNode:
    member: Member
    level: int
    inviter_id: str


@dataclass(frozen=True, slots=True)
class TreePage:
    items: list[TreeNode]
    level_counts: list[int]
    has_next: bool
