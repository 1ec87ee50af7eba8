"""The typed per-request context and its DataLoaders.

Built by ``api.app`` for every HTTP request (and every websocket operation: loaders must
not cache across events). Resolvers read it through ``Info[Context, None]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar

from strawberry.dataloader import DataLoader

from domain.auth import Principal
from domain.events import EventType
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
from domain.ports import CommunityCounts, ContentCounts, FeedItem, MemberCounts, Repositories
from domain.privacy import ConsentPurpose, MemberConsents, PiiReads
from domain.segmentation import Circle, MemberSegmentation

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


class Loaders:
    """One DataLoader per kind of read, each made on first use.

    A request touches a few of them; building all 27 (each with its cache) for every
    request was 14% of the profile query's CPU under load (benchmarks/results/peer_bench.profile.md).
    """

    def __init__(self, repos: Repositories, tenant: str, viewer: str | None = None) -> None:
        self.repos = repos
        self.tenant = tenant
        self.viewer = viewer

    @classmethod
    def build(cls, repos: Repositories, tenant: str, viewer: str | None = None) -> Loaders:
        return cls(repos, tenant, viewer)

    @cached_property
    def member(self) -> DataLoader[str, Member | None]:
        return _by_id(self.repos.members.get_many, self.tenant)

    @cached_property
    def community(self) -> DataLoader[str, Community | None]:
        return _by_id(self.repos.communities.get_many, self.tenant)

    @cached_property
    def content(self) -> DataLoader[str, Content | None]:
        return _by_id(self.repos.content.get_many, self.tenant)

    @cached_property
    def comment(self) -> DataLoader[str, Comment | None]:
        return _by_id(self.repos.content.comments_by_id, self.tenant)

    @cached_property
    def tag(self) -> DataLoader[str, Tag | None]:
        return _by_id(self.repos.content.tags_by_id, self.tenant)

    @cached_property
    def product(self) -> DataLoader[str, Product | None]:
        return _by_id(self.repos.commerce.products, self.tenant)

    @cached_property
    def purchase(self) -> DataLoader[str, Purchase | None]:
        return _by_id(self.repos.commerce.purchases, self.tenant)

    @cached_property
    def inviter(self) -> DataLoader[str, Member | None]:
        return _by_id(self.repos.members.inviters, self.tenant)

    @cached_property
    def interests(self) -> DataLoader[str, list[Interest]]:
        return _by_id(self.repos.members.interests, self.tenant)

    @cached_property
    def topics(self) -> DataLoader[str, list[Tag]]:
        return _by_id(self.repos.content.topics, self.tenant)

    @cached_property
    def member_counts(self) -> DataLoader[str, MemberCounts]:
        return _by_id(self.repos.members.counts, self.tenant)

    @cached_property
    def community_counts(self) -> DataLoader[str, CommunityCounts]:
        return _by_id(self.repos.communities.counts, self.tenant)

    @cached_property
    def content_counts(self) -> DataLoader[str, ContentCounts]:
        return _by_id(self.repos.content.counts, self.tenant)

    @cached_property
    def followers(self) -> DataLoader[PageKey, Page[Member]]:
        return _pages(self.repos.members.followers, self.tenant)

    @cached_property
    def following(self) -> DataLoader[PageKey, Page[Member]]:
        return _pages(self.repos.members.following, self.tenant)

    @cached_property
    def invitees(self) -> DataLoader[PageKey, Page[Member]]:
        return _pages(self.repos.members.invitees, self.tenant)

    @cached_property
    def memberships(self) -> DataLoader[PageKey, Page[Membership]]:
        return _pages(self.repos.members.memberships, self.tenant)

    @cached_property
    def community_members(self) -> DataLoader[PageKey, Page[Membership]]:
        return _pages(self.repos.communities.members, self.tenant)

    @cached_property
    def feed(self) -> DataLoader[PageKey, Page[Content]]:
        return _pages(self.repos.communities.feed, self.tenant)

    @cached_property
    def feed_items(self) -> DataLoader[PageKey, Page[FeedItem]]:
        """Feed pages with each post's author and counts (see resolvers.lookahead)."""
        return _pages(self.repos.communities.feed_items, self.tenant)

    @cached_property
    def posts(self) -> DataLoader[PageKey, Page[Content]]:
        return _pages(self.repos.content.posts, self.tenant)

    @cached_property
    def comments(self) -> DataLoader[PageKey, Page[Comment]]:
        return _pages(self.repos.content.comments, self.tenant)

    @cached_property
    def purchases_of(self) -> DataLoader[PageKey, Page[Purchase]]:
        return _pages(self.repos.commerce.purchases_of, self.tenant)

    @cached_property
    def referral(self) -> DataLoader[str, Referral | None]:
        return _by_id(self.repos.growth.referrals_of, self.tenant)

    @cached_property
    def campaign(self) -> DataLoader[str, Campaign | None]:
        return _by_id(self.repos.campaigns.get_many, self.tenant)

    @cached_property
    def viewer_liked(self) -> DataLoader[str, bool] | None:
        """Whether the calling member liked each content (None without a calling member)."""
        viewer, content = self.viewer, self.repos.content
        if viewer is None:
            return None
        return _by_id(lambda t, ids: content.liked_by(t, viewer, ids), self.tenant)  # type: ignore[arg-type]

    @cached_property
    def consents(self) -> DataLoader[str, MemberConsents | None]:
        """Consent records and status per member (domain.privacy)."""
        return _by_id(self.repos.privacy.consents, self.tenant)

    @cached_property
    def profiling_allowed(self) -> DataLoader[str, bool]:
        """Whether profiling is in force for a member (False: refused, or erased, or unknown)."""
        repos = self.repos
        return _by_id(lambda t, ids: _having(repos, t, ids, ConsentPurpose.PROFILING), self.tenant)

    @cached_property
    def segmentation(self) -> DataLoader[str, MemberSegmentation | None]:
        """Each member's last computed segmentation (domain.segmentation)."""
        return _by_id(self.repos.segmentation.of_members, self.tenant)

    @cached_property
    def circle(self) -> DataLoader[str, Circle | None]:
        return _by_id(self.repos.segmentation.circles_by_id, self.tenant)


@dataclass
class Context:
    """Everything a resolver may use: who is calling, the ports, and the loaders."""

    principal: Principal
    repos: Repositories
    request_id: str
    #: relays every pending event now (read-your-writes for derived data; the privacy purge)
    after_mutation: Callable[[], Awaitable[object]] | None = field(default=None, repr=False)
    #: run after a mutation before answering, with the event types it recorded (None: unknown):
    #: relays them now, or only wakes the background relay when no read depends on them at once
    settle_events: Callable[[set[EventType] | None], Awaitable[object]] | None = field(default=None, repr=False)
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
