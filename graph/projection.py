"""Projections: the engagement graph of a tenant (or one community or topic) as arrays.

A projection is pulled from the graph in a few round trips, each returning one fat
record of ``collect`` lists (ArcadeDB streams many small rows slowly), and turned into
compact numpy arrays indexed by a dense member number ``0..n-1``. Algorithms
(:mod:`graph.algorithms`) and scores (:mod:`domain.influence`) run on these arrays only.

This is the seam where Neo4j GDS or Spark GraphFrames would take over for graphs beyond
one machine's memory: they would produce the same :class:`EngagementGraph`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

import numpy as np
import numpy.typing as npt

from domain.growth import Scope, ScopeKind
from graph.client import GraphClient, to_datetime, to_micros
from graph.cypher import cypher

__all__ = ["INTERACTION_KINDS", "EngagementGraph", "Interaction"]

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]


class Interaction:
    """Codes of the ``kind`` column of :attr:`EngagementGraph.interactions`."""

    LIKE = 0
    COMMENT = 1
    SHARE = 2
    FAVORITE = 3


INTERACTION_KINDS = {"LIKED": Interaction.LIKE, "COMMENTED": Interaction.COMMENT,
                     "SHARED": Interaction.SHARE, "FAVORITED": Interaction.FAVORITE}


@dataclass(frozen=True)
class EngagementGraph:
    """The engagement graph of one scope, with members numbered ``0..n-1``.

    Attributes
    ----------
    member_ids : list of str
        ``member_ids[i]`` is the graph id of member number ``i``.
    joined_at : int64 array, shape (n,)
        Join time in microseconds since the epoch.
    follow_src, follow_dst : int32 arrays
        ``follow_src[e]`` follows ``follow_dst[e]`` (follower -> followee). No duplicates.
    inter_src, inter_dst : int32 arrays
        ``inter_src[e]`` liked/commented/shared/favorited content authored by ``inter_dst[e]``
        (one row per interaction; self-interactions removed).
    inter_kind : int8 array
        :class:`Interaction` code per interaction row.
    inter_at : int64 array
        Interaction time in microseconds.
    posts : int32 array, shape (n,)
        Posts authored in the scope per member.
    ref_src, ref_dst : int32 arrays
        ``ref_src[e]`` invited ``ref_dst[e]`` (a forest: each member has at most one inviter).
    paid_purchases : int32 array, shape (n,)
        Paid purchases placed by each member.
    paid_gmv : int64 array, shape (n,)
        Paid GMV placed by each member, in minor units.
    attributed_gmv : int64 array, shape (n,)
        Paid GMV of purchases attributed to each member (``ATTRIBUTED_TO``), minor units.
    pull_seconds : float
        Wall time spent pulling the projection from the graph server.
    """

    member_ids: list[str]
    joined_at: I64
    follow_src: I32
    follow_dst: I32
    inter_src: I32
    inter_dst: I32
    inter_kind: I8
    inter_at: I64
    posts: I32
    ref_src: I32
    ref_dst: I32
    paid_purchases: I32
    paid_gmv: I64
    attributed_gmv: I64
    pull_seconds: float = 0.0

    @property
    def n(self) -> int:
        return len(self.member_ids)


# Members of the scope, with their join time.
MEMBERS_OF_TENANT = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    RETURN collect(m.id) AS ids, collect(m.joinedAt) AS joined
    """
)
MEMBERS_OF_COMMUNITY = cypher(
    """
    MATCH (k:Community {id: $scopeId})<-[:MEMBER_OF]-(m:Member) WITH * WHERE k.tenantId = $tenant
    RETURN collect(m.id) AS ids, collect(m.joinedAt) AS joined
    """
)
MEMBERS_OF_TOPIC = cypher(
    """
    MATCH (t:Tag {id: $scopeId}) WITH * WHERE t.tenantId = $tenant
    CALL (t) {
      MATCH (t)<-[:ABOUT]-(:Content)<-[:POSTED]-(a:Member) RETURN a AS m
      UNION
      MATCH (t)<-[:ABOUT]-(:Content)<-[:LIKED|COMMENTED|SHARED|FAVORITED]-(a:Member) RETURN a AS m
      UNION
      MATCH (t)<-[:INTERESTED_IN]-(a:Member) RETURN a AS m
    }
    RETURN collect(m.id) AS ids, collect(m.joinedAt) AS joined
    """
)
# Interactions with content, as (actor, author, kind, time); posts per author.
INTERACTIONS_OF_TENANT = cypher(
    """
    MATCH (a:Member {tenantId: $tenant})-[:POSTED]->(x:Content)<-[r:LIKED|COMMENTED|SHARED|FAVORITED]-(m:Member)
    RETURN collect(m.id) AS src, collect(a.id) AS dst, collect(type(r)) AS kinds, collect(r.at) AS ats
    """
)
INTERACTIONS_OF_COMMUNITY = cypher(
    """
    MATCH (k:Community {id: $scopeId})<-[:IN]-(x:Content)<-[:POSTED]-(a:Member) WITH * WHERE k.tenantId = $tenant
    MATCH (x)<-[r:LIKED|COMMENTED|SHARED|FAVORITED]-(m:Member)
    RETURN collect(m.id) AS src, collect(a.id) AS dst, collect(type(r)) AS kinds, collect(r.at) AS ats
    """
)
INTERACTIONS_OF_TOPIC = cypher(
    """
    MATCH (t:Tag {id: $scopeId})<-[:ABOUT]-(x:Content)<-[:POSTED]-(a:Member) WITH * WHERE t.tenantId = $tenant
    MATCH (x)<-[r:LIKED|COMMENTED|SHARED|FAVORITED]-(m:Member)
    RETURN collect(m.id) AS src, collect(a.id) AS dst, collect(type(r)) AS kinds, collect(r.at) AS ats
    """
)
POSTS_OF_TENANT = cypher(
    """
    MATCH (a:Member {tenantId: $tenant})-[:POSTED]->(:Content)
    RETURN collect(a.id) AS authors
    """
)
POSTS_OF_COMMUNITY = cypher(
    """
    MATCH (k:Community {id: $scopeId})<-[:IN]-(:Content)<-[:POSTED]-(a:Member) WITH * WHERE k.tenantId = $tenant
    RETURN collect(a.id) AS authors
    """
)
POSTS_OF_TOPIC = cypher(
    """
    MATCH (t:Tag {id: $scopeId})<-[:ABOUT]-(:Content)<-[:POSTED]-(a:Member) WITH * WHERE t.tenantId = $tenant
    RETURN collect(a.id) AS authors
    """
)
# Tenant-wide edges; a scoped projection keeps those between its members.
FOLLOWS_OF_TENANT = cypher(
    """
    MATCH (a:Member {tenantId: $tenant})-[:FOLLOWS]->(b:Member)
    RETURN collect(a.id) AS src, collect(b.id) AS dst
    """
)
REFERRALS_OF_TENANT = cypher(
    """
    MATCH (a:Member {tenantId: $tenant})-[:REFERRED]->(b:Member)
    RETURN collect(a.id) AS src, collect(b.id) AS dst
    """
)
PAID_PURCHASES_OF_TENANT = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})-[:PLACED]->(p:Purchase {status: 'paid'})
    RETURN collect(m.id) AS buyers, collect(p.amount) AS amounts, collect(coalesce(p.attributedTo, '')) AS credited
    """
)

_SCOPED: dict[ScopeKind, tuple[LiteralString, LiteralString, LiteralString]] = {
    ScopeKind.TENANT: (MEMBERS_OF_TENANT, INTERACTIONS_OF_TENANT, POSTS_OF_TENANT),
    ScopeKind.COMMUNITY: (MEMBERS_OF_COMMUNITY, INTERACTIONS_OF_COMMUNITY, POSTS_OF_COMMUNITY),
    ScopeKind.TOPIC: (MEMBERS_OF_TOPIC, INTERACTIONS_OF_TOPIC, POSTS_OF_TOPIC),
}


def _micros(values: Sequence[Any]) -> I64:
    return np.fromiter((to_micros(to_datetime(v)) for v in values), dtype=np.int64, count=len(values))


def _index(index: dict[str, int], ids: Sequence[str]) -> I64:
    """Dense numbers of *ids*; -1 for ids outside the scope."""
    get = index.get
    return np.fromiter((get(i, -1) for i in ids), dtype=np.int64, count=len(ids))


def _edges(index: dict[str, int], src: Sequence[str], dst: Sequence[str]) -> tuple[I32, I32, npt.NDArray[np.bool_]]:
    s, d = _index(index, src), _index(index, dst)
    keep = (s >= 0) & (d >= 0) & (s != d)
    return s[keep].astype(np.int32), d[keep].astype(np.int32), keep


async def pull_engagement(graph: GraphClient, tenant: str, scope: Scope | None = None) -> EngagementGraph:
    """Pull the engagement graph of *scope* in seven read round trips (one fat record each)."""
    scope = scope or Scope(ScopeKind.TENANT)
    started = time.perf_counter()
    members_q, interactions_q, posts_q = _SCOPED[scope.kind]
    params: dict[str, Any] = {"tenant": tenant, "scopeId": scope.id}
    rows = await asyncio.gather(
        graph.read_one(members_q, **params),
        graph.read_one(interactions_q, **params),
        graph.read_one(posts_q, **params),
        graph.read_one(FOLLOWS_OF_TENANT, tenant=tenant),
        graph.read_one(REFERRALS_OF_TENANT, tenant=tenant),
        graph.read_one(PAID_PURCHASES_OF_TENANT, tenant=tenant),
    )
    pulled = time.perf_counter() - started
    members, inter, posts, follows, refs, paid = (r or {} for r in rows)
    ids: list[str] = list(members.get("ids", []))
    index = {m: i for i, m in enumerate(ids)}
    n = len(ids)
    joined = _micros(members.get("joined", []))

    f_src, f_dst, _ = _edges(index, follows.get("src", []), follows.get("dst", []))
    if len(f_src):
        pairs = np.unique(f_src.astype(np.int64) * n + f_dst)
        f_src, f_dst = (pairs // n).astype(np.int32), (pairs % n).astype(np.int32)
    i_src, i_dst, keep = _edges(index, inter.get("src", []), inter.get("dst", []))
    kinds = np.fromiter((INTERACTION_KINDS[k] for k in inter.get("kinds", [])), dtype=np.int8)[keep]
    ats = _micros(inter.get("ats", []))[keep]
    authors = _index(index, posts.get("authors", []))
    r_src, r_dst, _ = _edges(index, refs.get("src", []), refs.get("dst", []))

    buyers = _index(index, paid.get("buyers", []))
    amounts = np.asarray(paid.get("amounts", []), dtype=np.int64)
    credited = _index(index, paid.get("credited", []))
    inside = buyers >= 0
    paid_purchases = np.bincount(buyers[inside], minlength=n).astype(np.int32)
    paid_gmv = np.bincount(buyers[inside], weights=amounts[inside], minlength=n).astype(np.int64)
    has_credit = credited >= 0
    attributed = np.bincount(credited[has_credit], weights=amounts[has_credit], minlength=n).astype(np.int64)

    return EngagementGraph(
        member_ids=ids, joined_at=joined, follow_src=f_src, follow_dst=f_dst,
        inter_src=i_src, inter_dst=i_dst, inter_kind=kinds, inter_at=ats,
        posts=np.bincount(authors[authors >= 0], minlength=n).astype(np.int32),
        ref_src=r_src, ref_dst=r_dst, paid_purchases=paid_purchases, paid_gmv=paid_gmv,
        attributed_gmv=attributed, pull_seconds=pulled,
    )
