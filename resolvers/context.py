"""The typed per-request context and its DataLoaders.

Built by ``api.app`` for every HTTP request (and every websocket operation: loaders must
not cache across events). Resolvers read it through ``Info[Context, None]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from strawberry.dataloader import DataLoader

from domain.auth import Principal
from domain.models import (
    Campaign,
    Comment,
    Community,
    Content,
    Interest,
    Member,
    Membership,
    Page,
    Product,
    Purchase,
    Referral,
    Tag,
)
from domain.ports import CommunityCounts, ContentCounts, MemberCounts, Repositories
from domain.privacy import ConsentPurpose, MemberConsents, PiiReads

__all__ = ["Context", "Loaders", "PageKey"]

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

#: (parent id, first, after): nested connections of many parents load in one batch.
PageKey = tuple[str, int, str | None]
PageFn = Callable[[str, Sequence[str], int, str | None], Awaitable[list[Page[T]]]]


def _by_id(fn: Callable[[str, Sequence[str]], Awaitable[list[V]]], tenant: str) -> DataLoader[str, V]:
    async def load(keys: list[str]) -> list[V]:
        return await fn(tenant, keys)

    return DataLoader(load_fn=load)


def _pages(fn: PageFn[T], tenant: str) -> DataLoader[PageKey, Page[T]]:
    async def load(keys: list[PageKey]) -> list[Page[T]]:
        groups: dict[tuple[int, str | None], list[int]] = {}
        for index, (_, first, after) in enumerate(keys):
            groups.setdefault((first, after), []).append(index)
        results: list[Page[T] | None] = [None] * len(keys)

        async def one(first: int, after: str | None, indexes: list[int]) -> None:
            pages = await fn(tenant, [keys[i][0] for i in indexes], first, after)
            for i, page in zip(indexes, pages):
                results[i] = page

        await asyncio.gather(*(one(first, after, idx) for (first, after), idx in groups.items()))
        return [r for r in results if r is not None]

    return DataLoader(load_fn=load)


async def _having(repos: Repositories, tenant: str, ids: Sequence[str], purpose: ConsentPurpose) -> list[bool]:
    having = set(await repos.privacy.with_consent(tenant, ids, purpose))
    return [i in having for i in ids]


@dataclass
class Loaders:
    member: DataLoader[str, Member | None]
    community: DataLoader[str, Community | None]
    content: DataLoader[str, Content | None]
    comment: DataLoader[str, Comment | None]
    tag: DataLoader[str, Tag | None]
    product: DataLoader[str, Product | None]
    purchase: DataLoader[str, Purchase | None]
    inviter: DataLoader[str, Member | None]
    interests: DataLoader[str, list[Interest]]
    topics: DataLoader[str, list[Tag]]
    member_counts: DataLoader[str, MemberCounts]
    community_counts: DataLoader[str, CommunityCounts]
    content_counts: DataLoader[str, ContentCounts]
    followers: DataLoader[PageKey, Page[Member]]
    following: DataLoader[PageKey, Page[Member]]
    invitees: DataLoader[PageKey, Page[Member]]
    memberships: DataLoader[PageKey, Page[Membership]]
    community_members: DataLoader[PageKey, Page[Membership]]
    feed: DataLoader[PageKey, Page[Content]]
    posts: DataLoader[PageKey, Page[Content]]
    comments: DataLoader[PageKey, Page[Comment]]
    purchases_of: DataLoader[PageKey, Page[Purchase]]
    referral: DataLoader[str, Referral | None]
    campaign: DataLoader[str, Campaign | None]
    viewer_liked: DataLoader[str, bool] | None
    #: consent records and status per member (domain.privacy)
    consents: DataLoader[str, MemberConsents | None]
    #: whether profiling is in force for a member (False: refused, or erased, or unknown)
    profiling_allowed: DataLoader[str, bool]

    @classmethod
    def build(cls, repos: Repositories, tenant: str, viewer: str | None = None) -> Loaders:
        m, c, ct, cm = repos.members, repos.communities, repos.content, repos.commerce
        return cls(
            member=_by_id(m.get_many, tenant),
            community=_by_id(c.get_many, tenant),
            content=_by_id(ct.get_many, tenant),
            comment=_by_id(ct.comments_by_id, tenant),
            tag=_by_id(ct.tags_by_id, tenant),
            product=_by_id(cm.products, tenant),
            purchase=_by_id(cm.purchases, tenant),
            inviter=_by_id(m.inviters, tenant),
            interests=_by_id(m.interests, tenant),
            topics=_by_id(ct.topics, tenant),
            member_counts=_by_id(m.counts, tenant),
            community_counts=_by_id(c.counts, tenant),
            content_counts=_by_id(ct.counts, tenant),
            followers=_pages(m.followers, tenant),
            following=_pages(m.following, tenant),
            invitees=_pages(m.invitees, tenant),
            memberships=_pages(m.memberships, tenant),
            community_members=_pages(c.members, tenant),
            feed=_pages(c.feed, tenant),
            posts=_pages(ct.posts, tenant),
            comments=_pages(ct.comments, tenant),
            purchases_of=_pages(cm.purchases_of, tenant),
            referral=_by_id(repos.growth.referrals_of, tenant),
            campaign=_by_id(repos.campaigns.get_many, tenant),
            viewer_liked=None if viewer is None else _by_id(
                lambda t, ids: ct.liked_by(t, viewer, ids), tenant  # type: ignore[arg-type]
            ),
            consents=_by_id(repos.privacy.consents, tenant),
            profiling_allowed=_by_id(lambda t, ids: _having(repos, t, ids, ConsentPurpose.PROFILING), tenant),
        )


@dataclass
class Context:
    """Everything a resolver may use: who is calling, the ports, and the loaders."""

    principal: Principal
    repos: Repositories
    request_id: str
    #: run after a mutation before answering: relays its events (read-your-writes for derived data)
    after_mutation: Callable[[], Awaitable[object]] | None = field(default=None, repr=False)
    #: charge the rate limiter an operation's cost: None when admitted, else seconds to wait
    admit: Callable[[int], Awaitable[float | None]] | None = field(default=None, repr=False)
    #: the ``connection_init`` payload of a websocket (set by the protocol handler)
    connection_params: dict[str, object] | None = field(default=None, repr=False)
    #: unmasked personal data returned so far: one READ_PII audit entry per request (resolvers.privacy)
    pii_reads: PiiReads = field(default_factory=PiiReads, repr=False)
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def tenant(self) -> str:
        """The caller's tenant (raises NOT_AUTHENTICATED for anonymous callers)."""
        return self.principal.require_tenant()

    def reset_loaders(self) -> None:
        """Forget cached objects (a websocket context outlives each event it sends)."""
        self._loaders = None

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders.build(self.repos, self.tenant, self.principal.member_id)
        return self._loaders
