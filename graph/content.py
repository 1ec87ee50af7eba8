"""Content (UGC), comments, topics and member -> content interactions in the graph."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

from domain.commands import AddComment, CreateContent
from domain.errors import NotFound, PermissionDenied
from domain.events import EventType
from domain.ids import Kind, new_id
from domain.models import Comment, Content, InteractionKind, Page, Tag
from domain.ports import ContentCounts, PostedContent
from graph.client import GraphClient, Tx, now
from graph.cypher import cypher
from graph.events import activation, event, event_id, outbox_rows, record, touch_activity
from graph.mapping import comment_from, community_from, content_from, member_from, tag_from
from graph.paging import pages_by_parent, time_after, time_key

__all__ = ["GraphContentRepository"]

CONTENT_BY_ID = cypher(
    """
    UNWIND $ids AS id
    MATCH (a:Member)-[:POSTED]->(c:Content {id: id}) WITH * WHERE c.tenantId = $tenant
    OPTIONAL MATCH (c)-[:IN]->(k:Community)
    RETURN collect({node: c, author: a.id, community: k.id}) AS rows
    """
)
COMMENTS_BY_ID = cypher(
    """
    UNWIND $ids AS id
    MATCH (a:Member)-[:WROTE]->(cm:Comment {id: id})-[:ON]->(c:Content) WITH * WHERE cm.tenantId = $tenant
    RETURN collect({node: cm, author: a.id, content: c.id}) AS rows
    """
)
TAGS_BY_ID = cypher(
    """
    UNWIND $ids AS id
    MATCH (t:Tag {id: id}) WITH * WHERE t.tenantId = $tenant
    RETURN collect(t) AS tags
    """
)
POST_PRECHECK = cypher(
    """
    OPTIONAL MATCH (a:Member {id: $authorId}) WHERE a.tenantId = $tenant
    OPTIONAL MATCH (k:Community {id: $communityId}) WHERE k.tenantId = $tenant
    RETURN a IS NOT NULL AS author, k IS NOT NULL AS community,
           a IS NOT NULL AND k IS NOT NULL AND EXISTS { (a)-[:MEMBER_OF]->(k) } AS isMember
    """
)
# One round trip for a post (issue 7): the checks are the two id lookups and the membership
# pattern (no row: nothing written, and POST_PRECHECK then names the failing check), the
# author's first activity, the topics and the outbox event all in the one statement.
# Topics come as two parallel lists: ArcadeDB fails the first run of a MERGE whose pattern
# reads a map's key (``name: topic.name``) with "Encountered a map assigned to property".
CREATE_CONTENT = cypher(
    """
    MATCH (a:Member {id: $authorId}) WITH * WHERE a.tenantId = $tenant
    MATCH (k:Community {id: $communityId}) WITH * WHERE k.tenantId = $tenant
    WITH a, k WHERE $anyone OR EXISTS { (a)-[:MEMBER_OF]->(k) }
    WITH a, k, a.firstActiveAt IS NULL AS first, a.joinedAt AS joinedAt
    CREATE (a)-[:POSTED {at: $now}]->(c:Content)-[:IN]->(k)
    SET c = $props
    FOREACH (_ IN CASE WHEN first THEN [1] ELSE [] END | SET a.firstActiveAt = $now)
    FOREACH (i IN range(0, size($topicNames) - 1) |
      MERGE (t:Tag {tenantId: $tenant, kind: 'topic', name: $topicNames[i]})
      ON CREATE SET t.id = $topicIds[i]
      MERGE (c)-[:ABOUT]->(t))
    FOREACH (e IN $events |
      CREATE (x:Event)
      SET x.id = e.id, x.tenantId = e.tenantId, x.type = e.type, x.at = e.at, x.payload = e.payload,
          x.pending = true)
    RETURN c.createdAt AS createdAt, first, joinedAt,
           a {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId,
              .inviteCode, .marketingConsent, .profilingConsent} AS author,
           k {.id, .tenantId, .name, .kind, .channel, .createdAt, .description} AS community
    """
)
COMMENT_PRECHECK = cypher(
    """
    OPTIONAL MATCH (a:Member {id: $authorId}) WHERE a.tenantId = $tenant
    OPTIONAL MATCH (c:Content {id: $contentId}) WHERE c.tenantId = $tenant
    RETURN a IS NOT NULL AS author, c IS NOT NULL AS content
    """
)
CREATE_COMMENT = cypher(
    """
    MATCH (a:Member {id: $authorId}) WITH * WHERE a.tenantId = $tenant
    MATCH (c:Content {id: $contentId}) WITH * WHERE c.tenantId = $tenant
    CREATE (a)-[:WROTE]->(cm:Comment)-[:ON]->(c)
    SET cm = $props
    CREATE (a)-[:COMMENTED {at: $now, commentId: $props.id}]->(c)
    RETURN cm
    """
)
# One statement per interaction kind: relationship types are never spliced into text.
LIKE = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    MATCH (c:Content {id: $contentId}) WITH * WHERE c.tenantId = $tenant
    MERGE (m)-[r:LIKED]->(c)
    ON CREATE SET r.at = $now
    RETURN r.at = $now AS changed
    """
)
FAVORITE = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    MATCH (c:Content {id: $contentId}) WITH * WHERE c.tenantId = $tenant
    MERGE (m)-[r:FAVORITED]->(c)
    ON CREATE SET r.at = $now
    RETURN r.at = $now AS changed
    """
)
SHARE = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    MATCH (c:Content {id: $contentId}) WITH * WHERE c.tenantId = $tenant
    MERGE (m)-[r:SHARED]->(c)
    ON CREATE SET r.at = $now, r.count = 0
    SET r.count = r.count + 1, r.lastAt = $now
    RETURN true AS changed
    """
)
UNLIKE = cypher(
    """
    MATCH (m:Member {id: $memberId})-[r:LIKED]->(c:Content {id: $contentId})
    WHERE m.tenantId = $tenant AND c.tenantId = $tenant
    DELETE r
    RETURN count(*) > 0 AS changed
    """
)
COMMENTS_PAGES = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Content {id: pid}) WITH * WHERE p.tenantId = $tenant
    CALL (p) {
      MATCH (p)<-[:ON]-(cm:Comment)
      WHERE $afterAt IS NULL OR cm.createdAt < $afterAt OR (cm.createdAt = $afterAt AND cm.id < $afterId)
      WITH p, cm ORDER BY cm.createdAt DESC, cm.id DESC LIMIT $limit
      MATCH (cm)<-[:WROTE]-(a:Member)
      WITH p, cm, a ORDER BY cm.createdAt DESC, cm.id DESC
      RETURN collect({node: cm, author: a.id, content: p.id}) AS items
    }
    RETURN collect({pid: pid, items: items}) AS rows
    """
)
POSTS_PAGES = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Member {id: pid}) WITH * WHERE p.tenantId = $tenant
    CALL (p) {
      MATCH (p)-[:POSTED]->(c:Content)
      WHERE $afterAt IS NULL OR c.createdAt < $afterAt OR (c.createdAt = $afterAt AND c.id < $afterId)
      WITH p, c ORDER BY c.createdAt DESC, c.id DESC LIMIT $limit
      OPTIONAL MATCH (c)-[:IN]->(k:Community)
      WITH p, k, c {.id, .tenantId, .kind, .title, .body, .createdAt} AS node
      ORDER BY node.createdAt DESC, node.id DESC
      RETURN collect({node: node, author: p.id, community: k.id}) AS items
    }
    RETURN collect({pid: pid, items: items}) AS rows
    """
)
TOPICS_OF = cypher(
    """
    UNWIND $ids AS pid
    MATCH (c:Content {id: pid})-[:ABOUT]->(t:Tag) WITH * WHERE c.tenantId = $tenant
    WITH pid, t ORDER BY t.name
    RETURN collect({pid: pid, node: t}) AS rows
    """
)
CONTENT_COUNTS = cypher(
    """
    UNWIND $ids AS pid
    MATCH (c:Content {id: pid}) WITH * WHERE c.tenantId = $tenant
    RETURN collect({
      pid: pid,
      likes: COUNT { (c)<-[:LIKED]-(:Member) },
      comments: COUNT { (c)<-[:ON]-(:Comment) },
      shares: COUNT { (c)<-[:SHARED]-(:Member) },
      favorites: COUNT { (c)<-[:FAVORITED]-(:Member) }
    }) AS rows
    """
)
VIEWER_LIKED = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    UNWIND $ids AS pid
    OPTIONAL MATCH (m)-[r:LIKED]->(:Content {id: pid})
    RETURN collect({pid: pid, liked: r IS NOT NULL}) AS rows
    """
)

_INTERACTIONS: dict[tuple[InteractionKind, bool], LiteralString] = {
    (InteractionKind.LIKED, True): LIKE,
    (InteractionKind.LIKED, False): UNLIKE,
    (InteractionKind.FAVORITED, True): FAVORITE,
    (InteractionKind.SHARED, True): SHARE,
}


def _content(i: Any) -> Content:
    return content_from(i["node"], author_id=i["author"], community_id=i["community"])


def _comment(i: Any) -> Comment:
    return comment_from(i["node"], author_id=i["author"], content_id=i["content"])


def _node_key(i: Any) -> list[Any]:
    return time_key(i["node"]["createdAt"], i["node"]["id"])


@dataclass
class GraphContentRepository:
    graph: GraphClient

    async def get_many(self, tenant: str, ids: Sequence[str]) -> list[Content | None]:
        row = await self.graph.read_one(CONTENT_BY_ID, tenant=tenant, ids=list(ids))
        found = {r["node"]["id"]: _content(r) for r in (row["rows"] if row else [])}
        return [found.get(i) for i in ids]

    async def comments_by_id(self, tenant: str, ids: Sequence[str]) -> list[Comment | None]:
        row = await self.graph.read_one(COMMENTS_BY_ID, tenant=tenant, ids=list(ids))
        found = {r["node"]["id"]: _comment(r) for r in (row["rows"] if row else [])}
        return [found.get(i) for i in ids]

    async def tags_by_id(self, tenant: str, ids: Sequence[str]) -> list[Tag | None]:
        row = await self.graph.read_one(TAGS_BY_ID, tenant=tenant, ids=list(ids))
        found = {t["id"]: tag_from(t) for t in (row["tags"] if row else [])}
        return [found.get(i) for i in ids]

    async def create(self, tenant: str, author_id: str, cmd: CreateContent, *, must_be_member: bool) -> PostedContent:
        topics = sorted({t.strip().lower() for t in cmd.topics})

        async def work(tx: Tx) -> PostedContent:
            at = now()
            activated_id = event_id(at)  # reserved first: activation sorts before the post's event
            props = {
                "id": new_id(Kind.CONTENT), "tenantId": tenant, "kind": cmd.kind.value,
                "title": cmd.title, "body": cmd.body, "createdAt": at,
            }
            posted = event(tenant, EventType.CONTENT_POSTED, at, contentId=props["id"], authorId=author_id,
                           communityId=cmd.community_id, kind=cmd.kind.value)
            row = await self.graph.run_one(
                tx, CREATE_CONTENT, tenant=tenant, authorId=author_id, communityId=cmd.community_id, props=props,
                now=at, topicNames=topics, topicIds=[new_id(Kind.TAG) for _ in topics], anyone=not must_be_member,
                events=outbox_rows([posted]),
            )
            if row is None:
                await self._refuse_post(tx, tenant, author_id, cmd.community_id)
            assert row is not None
            if row["first"]:
                activated = activation(tenant, author_id, at, joined_at=row["joinedAt"], event_id_=activated_id)
                if activated is not None:
                    await record(self.graph, tx, [activated])
            content = content_from({**props, "createdAt": row["createdAt"]}, author_id=author_id,
                                   community_id=cmd.community_id)
            return PostedContent(content=content, author=member_from(row["author"]),
                                 community=community_from(row["community"]))

        return await self.graph.write(work)

    async def _refuse_post(self, tx: Tx, tenant: str, author_id: str, community_id: str) -> None:
        """Why CREATE_CONTENT wrote nothing, as the typed error naming the field at fault."""
        check = await self.graph.run_one(tx, POST_PRECHECK, tenant=tenant, authorId=author_id, communityId=community_id)
        assert check is not None
        if not check["author"]:
            raise NotFound(f"no member {author_id!r}", field="asMemberId")
        if not check["community"]:
            raise NotFound(f"no community {community_id!r}", field="input.communityId")
        raise PermissionDenied("only members of a community can post in it", field="input.communityId")

    async def add_comment(self, tenant: str, author_id: str, cmd: AddComment) -> Comment:
        async def work(tx: Tx) -> Comment:
            check = await self.graph.run_one(tx, COMMENT_PRECHECK, tenant=tenant, authorId=author_id, contentId=cmd.content_id)
            assert check is not None
            if not check["author"]:
                raise NotFound(f"no member {author_id!r}", field="asMemberId")
            if not check["content"]:
                raise NotFound(f"no content {cmd.content_id!r}", field="input.contentId")
            at = now()
            props = {"id": new_id(Kind.COMMENT), "tenantId": tenant, "body": cmd.body, "createdAt": at}
            row = await self.graph.run_one(
                tx, CREATE_COMMENT, tenant=tenant, authorId=author_id, contentId=cmd.content_id, props=props, now=at
            )
            assert row is not None
            events = await touch_activity(self.graph, tx, tenant, author_id, at)
            events.append(event(tenant, EventType.COMMENT_ADDED, at, commentId=props["id"], authorId=author_id,
                                contentId=cmd.content_id))
            await record(self.graph, tx, events)
            return comment_from(row["cm"], author_id=author_id, content_id=cmd.content_id)

        return await self.graph.write(work)

    async def interact(self, tenant: str, member_id: str, content_id: str, kind: InteractionKind, *, on: bool) -> bool:
        query = _INTERACTIONS[(kind, on)]

        async def work(tx: Tx) -> bool | None:
            at = now()
            row = await self.graph.run_one(tx, query, tenant=tenant, memberId=member_id, contentId=content_id, now=at)
            if row is None:
                return None
            if row["changed"]:
                events = await touch_activity(self.graph, tx, tenant, member_id, at) if on else []
                events.append(event(tenant, EventType.INTERACTED, at, memberId=member_id, contentId=content_id,
                                    kind=kind.value, on=on))
                await record(self.graph, tx, events)
            return bool(row["changed"])

        changed = await self.graph.write(work)
        if changed is None or (not on and not changed):
            row = await self.graph.read_one(COMMENT_PRECHECK, tenant=tenant, authorId=member_id, contentId=content_id)
            if row is None or not row["author"]:
                raise NotFound(f"no member {member_id!r}", field="asMemberId")
            if not row["content"]:
                raise NotFound(f"no content {content_id!r}", field="contentId")
        return bool(changed)

    async def comments(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Comment]]:
        row = await self.graph.read_one(COMMENTS_PAGES, tenant=tenant, ids=list(ids), limit=first + 1, **time_after(after).params())
        return pages_by_parent(row["rows"] if row else [], ids, first, _comment, _node_key)

    async def posts(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Content]]:
        row = await self.graph.read_one(POSTS_PAGES, tenant=tenant, ids=list(ids), limit=first + 1, **time_after(after).params())
        return pages_by_parent(row["rows"] if row else [], ids, first, _content, _node_key)

    async def topics(self, tenant: str, ids: Sequence[str]) -> list[list[Tag]]:
        row = await self.graph.read_one(TOPICS_OF, tenant=tenant, ids=list(ids))
        found: dict[str, list[Tag]] = {}
        for r in row["rows"] if row else []:
            found.setdefault(r["pid"], []).append(tag_from(r["node"]))
        return [found.get(i, []) for i in ids]

    async def counts(self, tenant: str, ids: Sequence[str]) -> list[ContentCounts]:
        row = await self.graph.read_one(CONTENT_COUNTS, tenant=tenant, ids=list(ids))
        found = {
            r["pid"]: ContentCounts(
                likes=int(r["likes"]), comments=int(r["comments"]), shares=int(r["shares"]), favorites=int(r["favorites"])
            )
            for r in (row["rows"] if row else [])
        }
        return [found.get(i, ContentCounts()) for i in ids]

    async def liked_by(self, tenant: str, member_id: str, ids: Sequence[str]) -> list[bool]:
        row = await self.graph.read_one(VIEWER_LIKED, tenant=tenant, memberId=member_id, ids=list(ids))
        found = {r["pid"]: bool(r["liked"]) for r in (row["rows"] if row else [])}
        return [found.get(i, False) for i in ids]
