"""Content (内容 / UGC) and comments: types, queries and the interaction mutations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import strawberry

from domain import models as dm
from domain.commands import AddComment, CreateContent, parse
from domain.ids import Kind, require_id
from domain.ports import ContentCounts
from resolvers.common import (
    ConflictError,
    Connection,
    Node,
    NotFoundError,
    PermissionError,
    ReferralError,
    ValidationError,
    XInfo,
    connection,
    connection_args,
    guarded,
    load_page,
)
from resolvers.communities import Community
from resolvers.enums import ContentKind
from resolvers.members import Member, Tag, member_or_raise

__all__ = ["Content", "Comment", "ContentQuery", "ContentMutation", "load_content"]


@strawberry.type(description="A post, article, video, live, question or review (内容 / UGC).")
class Content(Node):
    id: strawberry.ID
    kind: ContentKind  # type: ignore[valid-type]
    title: str
    body: str
    created_at: datetime
    _c: strawberry.Private[dm.Content]
    #: loaded with the content (a feed page's look-ahead): the author and counts, or None
    _author: strawberry.Private[dm.Member | None] = None
    _counts: strawberry.Private[ContentCounts | None] = None

    @classmethod
    def from_domain(cls, c: dm.Content, author: dm.Member | None = None, counts: ContentCounts | None = None) -> Content:
        return cls(id=strawberry.ID(c.id), kind=c.kind, title=c.title, body=c.body, created_at=c.created_at, _c=c,
                   _author=author, _counts=counts)

    # author and the counts are sync when they came with the content, else awaitable (loaders)

    @strawberry.field
    def author(self, info: XInfo) -> Member | None:
        if self._author is not None:
            return Member.from_domain(self._author)

        async def load() -> Member | None:
            found = await info.context.loaders.member.load(self._c.author_id)
            return None if found is None else Member.from_domain(found)

        return load()  # type: ignore[return-value]

    def _count(self, info: XInfo, pick: Callable[[ContentCounts], int]) -> int:
        if self._counts is not None:
            return pick(self._counts)

        async def load() -> int:
            return pick(await info.context.loaders.content_counts.load(self._c.id))

        return load()  # type: ignore[return-value]

    @strawberry.field
    async def community(self, info: XInfo) -> Community | None:
        if self._c.community_id is None:
            return None
        found = await info.context.loaders.community.load(self._c.community_id)
        return None if found is None else Community.from_domain(found)

    @strawberry.field(description="Topics (话题) this content is about.")
    async def topics(self, info: XInfo) -> list[Tag]:
        return [Tag.from_domain(t) for t in await info.context.loaders.topics.load(self._c.id)]

    @strawberry.field(description="Members who liked it (点赞).")
    def like_count(self, info: XInfo) -> int:
        return self._count(info, lambda c: c.likes)

    @strawberry.field(description="Comments on it (评论).")
    def comment_count(self, info: XInfo) -> int:
        return self._count(info, lambda c: c.comments)

    @strawberry.field(description="Members who shared it (转发), each counted once.")
    def share_count(self, info: XInfo) -> int:
        return self._count(info, lambda c: c.shares)

    @strawberry.field(description="Members who favorited it (收藏).")
    def favorite_count(self, info: XInfo) -> int:
        return self._count(info, lambda c: c.favorites)

    @strawberry.field(description="Whether the calling member likes it; null when the token is not a member's.")
    async def viewer_has_liked(self, info: XInfo) -> bool | None:
        loader = info.context.loaders.viewer_liked
        return None if loader is None else await loader.load(self._c.id)

    @strawberry.field(description="Comments, newest first.")
    async def comments(self, info: XInfo, first: int | None = 20, after: str | None = None) -> Connection[Comment]:
        loaders = info.context.loaders
        page = await load_page(info, loaders.comments, (self._c.id, connection_args(first), after))

        async def count() -> int:
            return (await loaders.content_counts.load(self._c.id)).comments

        return connection(page, Comment.from_domain, count)


@strawberry.type(description="A comment (评论) on content.")
class Comment(Node):
    id: strawberry.ID
    body: str
    created_at: datetime
    _c: strawberry.Private[dm.Comment]

    @classmethod
    def from_domain(cls, c: dm.Comment) -> Comment:
        return cls(id=strawberry.ID(c.id), body=c.body, created_at=c.created_at, _c=c)

    @strawberry.field
    async def author(self, info: XInfo) -> Member | None:
        found = await info.context.loaders.member.load(self._c.author_id)
        return None if found is None else Member.from_domain(found)

    @strawberry.field
    async def content(self, info: XInfo) -> Content | None:
        found = await info.context.loaders.content.load(self._c.content_id)
        return None if found is None else Content.from_domain(found)


async def load_content(info: XInfo, content_id: str, *, field: str = "id") -> Content | None:
    require_id(content_id, Kind.CONTENT, field=field)
    found = await info.context.loaders.content.load(content_id)
    return None if found is None else Content.from_domain(found)


@strawberry.type
class ContentQuery:
    @strawberry.field(description="Content of your tenant by id, or null.")
    async def content(self, info: XInfo, id: strawberry.ID) -> Content | None:
        return await load_content(info, id)


@strawberry.input
class CreateContentInput:
    community_id: strawberry.ID
    body: str
    kind: ContentKind = dm.ContentKind.POST  # type: ignore[valid-type]
    title: str = ""
    topics: list[str] = strawberry.field(default_factory=list, description="Topic names (话题), at most 10.")


@strawberry.input
class AddCommentInput:
    content_id: strawberry.ID
    body: str


@strawberry.type
class ContentPayload:
    content: Content


@strawberry.type
class CommentPayload:
    comment: Comment


@strawberry.type
class InteractionPayload:
    member: Member
    content: Content
    changed: bool = strawberry.field(description="False when nothing changed (already liked, not liked).")


_Errors = ValidationError | NotFoundError | PermissionError | ConflictError | ReferralError
ContentResult = Annotated[ContentPayload | _Errors, strawberry.union("ContentResult")]
CommentResult = Annotated[CommentPayload | _Errors, strawberry.union("CommentResult")]
InteractionResult = Annotated[InteractionPayload | _Errors, strawberry.union("InteractionResult")]


def _acting(info: XInfo, as_member_id: str | None) -> str:
    if as_member_id is not None:
        require_id(as_member_id, Kind.MEMBER, field="asMemberId")
    return info.context.principal.acting_member(as_member_id, field="asMemberId")


async def _interact(
    info: XInfo, content_id: str, as_member_id: str | None, kind: dm.InteractionKind, *, on: bool
) -> InteractionResult:
    async def work() -> InteractionPayload:
        require_id(content_id, Kind.CONTENT, field="contentId")
        acting = _acting(info, as_member_id)
        tenant = info.context.principal.require_tenant()
        changed = await info.context.repos.content.interact(tenant, acting, content_id, kind, on=on)
        content = await load_content(info, content_id, field="contentId")
        assert content is not None
        return InteractionPayload(member=await member_or_raise(info, acting, "asMemberId"), content=content, changed=changed)

    return await guarded(work)  # type: ignore[return-value]


@strawberry.type
class ContentMutation:
    @strawberry.mutation(description="Post content in a community the member belongs to.")
    async def create_content(self, info: XInfo, input: CreateContentInput, as_member_id: strawberry.ID | None = None) -> ContentResult:
        async def work() -> ContentPayload:
            acting = _acting(info, as_member_id)
            principal = info.context.principal
            cmd = parse(CreateContent, dict(vars(input)))
            posted = await info.context.repos.content.create(
                principal.require_tenant(), acting, cmd, must_be_member=not principal.is_staff
            )
            loaders = info.context.loaders  # the answer's author and community come with the write
            loaders.member.prime(posted.author.id, posted.author)
            loaders.community.prime(posted.community.id, posted.community)
            return ContentPayload(content=Content.from_domain(posted.content))

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Comment on content.")
    async def add_comment(self, info: XInfo, input: AddCommentInput, as_member_id: strawberry.ID | None = None) -> CommentResult:
        async def work() -> CommentPayload:
            acting = _acting(info, as_member_id)
            cmd = parse(AddComment, dict(vars(input)))
            comment = await info.context.repos.content.add_comment(info.context.principal.require_tenant(), acting, cmd)
            return CommentPayload(comment=Comment.from_domain(comment))

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Like content (idempotent).")
    async def like_content(self, info: XInfo, content_id: strawberry.ID, as_member_id: strawberry.ID | None = None) -> InteractionResult:
        return await _interact(info, content_id, as_member_id, dm.InteractionKind.LIKED, on=True)

    @strawberry.mutation(description="Remove a like (idempotent).")
    async def unlike_content(self, info: XInfo, content_id: strawberry.ID, as_member_id: strawberry.ID | None = None) -> InteractionResult:
        return await _interact(info, content_id, as_member_id, dm.InteractionKind.LIKED, on=False)

    @strawberry.mutation(description="Share content; every share is counted on the SHARED relationship.")
    async def share_content(self, info: XInfo, content_id: strawberry.ID, as_member_id: strawberry.ID | None = None) -> InteractionResult:
        return await _interact(info, content_id, as_member_id, dm.InteractionKind.SHARED, on=True)

    @strawberry.mutation(description="Favorite content (idempotent).")
    async def favorite_content(self, info: XInfo, content_id: strawberry.ID, as_member_id: strawberry.ID | None = None) -> InteractionResult:
        return await _interact(info, content_id, as_member_id, dm.InteractionKind.FAVORITED, on=True)
