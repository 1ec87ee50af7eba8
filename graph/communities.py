"""Communities, memberships (MEMBER_OF with a role) and community feeds in the graph."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain.commands import CreateCommunity
from domain.errors import NotFound, ValidationFailed
from domain.events import EventType
from domain.ids import Kind, new_id
from domain.models import (
    Community,
    Content,
    Membership,
    MembershipRole,
    Page,
)
from domain.pagination import decode_cursor, encode_cursor
from domain.ports import CommunityCounts, CommunityFilter, CommunityOrder, ContentCounts, FeedItem
from graph.client import GraphClient, Tx, now
from graph.cypher import cypher
from graph.events import event, record
from graph.mapping import community_from, content_from, member_from, membership_from
from graph.paging import pages_by_parent, time_after, time_key

__all__ = ["GraphCommunityRepository"]

COMMUNITIES_BY_ID = cypher(
    """
    UNWIND $ids AS id
    MATCH (c:Community {id: id}) WITH * WHERE c.tenantId = $tenant
    RETURN collect(c) AS communities
    """
)
COMMUNITIES_CREATED_DESC = cypher(
    """
    MATCH (c:Community {tenantId: $tenant})
    WHERE ($kind IS NULL OR c.kind = $kind)
      AND ($channel IS NULL OR c.channel = $channel)
      AND ($nameContains IS NULL OR toLower(c.name) CONTAINS toLower($nameContains))
      AND ($afterAt IS NULL OR c.createdAt < $afterAt OR (c.createdAt = $afterAt AND c.id < $afterId))
    WITH c ORDER BY c.createdAt DESC, c.id DESC LIMIT $limit
    RETURN collect(c) AS communities
    """
)
COMMUNITIES_NAME_ASC = cypher(
    """
    MATCH (c:Community {tenantId: $tenant})
    WHERE ($kind IS NULL OR c.kind = $kind)
      AND ($channel IS NULL OR c.channel = $channel)
      AND ($nameContains IS NULL OR toLower(c.name) CONTAINS toLower($nameContains))
      AND ($afterName IS NULL OR c.name > $afterName OR (c.name = $afterName AND c.id > $afterId))
    WITH c ORDER BY c.name ASC, c.id ASC LIMIT $limit
    RETURN collect(c) AS communities
    """
)
COMMUNITIES_COUNT = cypher(
    """
    MATCH (c:Community {tenantId: $tenant})
    WHERE ($kind IS NULL OR c.kind = $kind)
      AND ($channel IS NULL OR c.channel = $channel)
      AND ($nameContains IS NULL OR toLower(c.name) CONTAINS toLower($nameContains))
    RETURN count(c) AS n
    """
)
CREATE_COMMUNITY = cypher(
    """
    CREATE (c:Community)
    SET c = $props
    WITH c
    OPTIONAL MATCH (o:Member {id: $ownerId}) WHERE o.tenantId = $tenant
    FOREACH (_ IN CASE WHEN o IS NULL THEN [] ELSE [1] END |
      CREATE (o)-[:MEMBER_OF {role: 'owner', joinedAt: $now}]->(c))
    RETURN c, o IS NOT NULL AS owned
    """
)
JOIN = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    MATCH (c:Community {id: $communityId}) WITH * WHERE c.tenantId = $tenant
    MERGE (m)-[r:MEMBER_OF]->(c)
    ON CREATE SET r.role = 'member', r.joinedAt = $now
    RETURN r.role AS role, r.joinedAt AS joinedAt, r.joinedAt = $now AS created
    """
)
LEAVE = cypher(
    """
    MATCH (m:Member {id: $memberId})-[r:MEMBER_OF]->(c:Community {id: $communityId})
    WHERE m.tenantId = $tenant AND c.tenantId = $tenant
    DELETE r
    RETURN count(*) AS removed
    """
)
SET_ROLE = cypher(
    """
    MATCH (m:Member {id: $memberId})-[r:MEMBER_OF]->(c:Community {id: $communityId})
    WHERE m.tenantId = $tenant AND c.tenantId = $tenant
    SET r.role = $role
    RETURN r.role AS role, r.joinedAt AS joinedAt
    """
)
ROLE_OF = cypher(
    """
    MATCH (m:Member {id: $memberId})-[r:MEMBER_OF]->(c:Community {id: $communityId})
    WHERE m.tenantId = $tenant
    RETURN r.role AS role
    """
)
MEMBER_AND_COMMUNITY = cypher(
    """
    OPTIONAL MATCH (m:Member {id: $memberId}) WHERE m.tenantId = $tenant
    OPTIONAL MATCH (c:Community {id: $communityId}) WHERE c.tenantId = $tenant
    RETURN m IS NOT NULL AS member, c IS NOT NULL AS community
    """
)
COMMUNITY_MEMBERS_PAGES = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Community {id: pid}) WITH * WHERE p.tenantId = $tenant
    CALL (p) {
      MATCH (p)<-[r:MEMBER_OF]-(m:Member)
      WHERE $afterAt IS NULL OR r.joinedAt < $afterAt OR (r.joinedAt = $afterAt AND m.id < $afterId)
      WITH p, m, r ORDER BY r.joinedAt DESC, m.id DESC LIMIT $limit
      RETURN collect({id: m.id, community: p.id, at: r.joinedAt, role: r.role, node: m}) AS items
    }
    RETURN collect({pid: pid, items: items}) AS rows
    """
)
FEED_PAGES = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Community {id: pid}) WITH * WHERE p.tenantId = $tenant
    CALL (p) {
      MATCH (p)<-[:IN]-(c:Content)
      WHERE $afterAt IS NULL OR c.createdAt < $afterAt OR (c.createdAt = $afterAt AND c.id < $afterId)
      WITH p, c ORDER BY c.createdAt DESC, c.id DESC LIMIT $limit
      MATCH (c)<-[:POSTED]-(a:Member)
      WITH p, a, c {.id, .tenantId, .kind, .title, .body, .createdAt} AS node
      ORDER BY node.createdAt DESC, node.id DESC
      RETURN collect({node: node, author: a.id, community: p.id}) AS items
    }
    RETURN collect({pid: pid, items: items}) AS rows
    """
)
# The feed with each post's author and counts, for documents that nest them (a feed page of
# 20 with authors and like counts: one round trip instead of three; issue 7).
FEED_ITEMS_PAGES = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Community {id: pid}) WITH * WHERE p.tenantId = $tenant
    CALL (p) {
      MATCH (p)<-[:IN]-(c:Content)
      WHERE $afterAt IS NULL OR c.createdAt < $afterAt OR (c.createdAt = $afterAt AND c.id < $afterId)
      WITH p, c ORDER BY c.createdAt DESC, c.id DESC LIMIT $limit
      MATCH (c)<-[:POSTED]-(a:Member)
      WITH p, a, c {.id, .tenantId, .kind, .title, .body, .createdAt} AS node,
           a {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId,
              .inviteCode, .marketingConsent, .profilingConsent} AS authorNode,
           COUNT { (c)<-[:LIKED]-(:Member) } AS likes,
           COUNT { (c)<-[:ON]-(:Comment) } AS comments,
           COUNT { (c)<-[:SHARED]-(:Member) } AS shares,
           COUNT { (c)<-[:FAVORITED]-(:Member) } AS favorites
      ORDER BY node.createdAt DESC, node.id DESC
      RETURN collect({node: node, author: a.id, community: p.id, authorNode: authorNode, likes: likes,
                      comments: comments, shares: shares, favorites: favorites}) AS items
    }
    RETURN collect({pid: pid, items: items}) AS rows
    """
)
COMMUNITY_COUNTS = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Community {id: pid}) WITH * WHERE p.tenantId = $tenant
    RETURN collect({
      pid: pid,
      members: COUNT { (p)<-[:MEMBER_OF]-(:Member) },
      posts: COUNT { (p)<-[:IN]-(:Content) }
    }) AS rows
    """
)

_ORDERS = {CommunityOrder.CREATED_AT_DESC: COMMUNITIES_CREATED_DESC, CommunityOrder.NAME_ASC: COMMUNITIES_NAME_ASC}


def _filter_params(f: CommunityFilter) -> dict[str, Any]:
    return {
        "kind": f.kind.value if f.kind else None,
        "channel": f.channel.value if f.channel else None,
        "nameContains": f.name_contains,
    }


def _after_params(order: CommunityOrder, after: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"afterAt": None, "afterName": None, "afterId": ""}
    if order is CommunityOrder.CREATED_AT_DESC:
        params.update(time_after(after).params())
        return params
    key = decode_cursor(after, arity=2)
    if key is not None:
        if not all(isinstance(v, str) for v in key):
            raise ValidationFailed("after is not a cursor returned by this connection", field="after")
        params["afterName"], params["afterId"] = key
    return params


@dataclass
class GraphCommunityRepository:
    graph: GraphClient

    async def get_many(self, tenant: str, ids: Sequence[str]) -> list[Community | None]:
        row = await self.graph.read_one(COMMUNITIES_BY_ID, tenant=tenant, ids=list(ids))
        found = {c["id"]: community_from(c) for c in (row["communities"] if row else [])}
        return [found.get(i) for i in ids]

    async def list(
        self, tenant: str, *, filter: CommunityFilter, order: CommunityOrder, first: int, after: str | None
    ) -> Page[Community]:
        params = {"tenant": tenant, "limit": first + 1, **_filter_params(filter), **_after_params(order, after)}
        row = await self.graph.read_one(_ORDERS[order], **params)
        nodes = list(row["communities"]) if row else []
        shown = nodes[:first]

        def key(c: Any) -> list[Any]:
            return time_key(c["createdAt"], c["id"]) if order is CommunityOrder.CREATED_AT_DESC else [c["name"], c["id"]]

        return Page(
            items=tuple(community_from(c) for c in shown),
            cursors=tuple(encode_cursor(key(c)) for c in shown),
            has_next=len(nodes) > first,
        )

    async def count(self, tenant: str, *, filter: CommunityFilter) -> int:
        row = await self.graph.read_one(COMMUNITIES_COUNT, tenant=tenant, **_filter_params(filter))
        return int(row["n"]) if row else 0

    async def create(self, tenant: str, cmd: CreateCommunity, *, owner_id: str | None) -> Community:
        async def work(tx: Tx) -> tuple[Community, bool]:
            at = now()
            props: dict[str, Any] = {
                "id": new_id(Kind.COMMUNITY), "tenantId": tenant, "name": cmd.name, "kind": cmd.kind.value,
                "channel": cmd.channel.value, "createdAt": at,
            }
            if cmd.description is not None:
                props["description"] = cmd.description
            row = await self.graph.run_one(tx, CREATE_COMMUNITY, props=props, tenant=tenant, ownerId=owner_id, now=at)
            assert row is not None
            if owner_id is not None and not row["owned"]:
                raise NotFound(f"no member {owner_id!r} to own the community", field="input.ownerId")
            return community_from(row["c"]), bool(row["owned"])

        community, _ = await self.graph.write(work)
        return community

    async def _not_found(self, tenant: str, member_id: str, community_id: str) -> NotFound:
        row = await self.graph.read_one(MEMBER_AND_COMMUNITY, tenant=tenant, memberId=member_id, communityId=community_id)
        if row is None or not row["member"]:
            return NotFound(f"no member {member_id!r}", field="memberId")
        if not row["community"]:
            return NotFound(f"no community {community_id!r}", field="communityId")
        return NotFound(f"member {member_id!r} is not in community {community_id!r}", field="memberId")

    async def join(self, tenant: str, member_id: str, community_id: str) -> tuple[Membership, bool]:
        async def work(tx: Tx) -> tuple[Membership, bool] | None:
            at = now()
            row = await self.graph.run_one(tx, JOIN, tenant=tenant, memberId=member_id, communityId=community_id, now=at)
            if row is None:
                return None
            if row["created"]:
                await record(self.graph, tx, [event(tenant, EventType.MEMBER_JOINED, at, memberId=member_id,
                                                    communityId=community_id)])
            return membership_from(member_id, community_id, row), bool(row["created"])

        result = await self.graph.write(work)
        if result is None:
            raise await self._not_found(tenant, member_id, community_id)
        return result

    async def leave(self, tenant: str, member_id: str, community_id: str) -> bool:
        async def work(tx: Tx) -> int:
            row = await self.graph.run_one(tx, LEAVE, tenant=tenant, memberId=member_id, communityId=community_id)
            removed = int(row["removed"]) if row else 0
            if removed:
                await record(self.graph, tx, [event(tenant, EventType.MEMBER_LEFT, memberId=member_id,
                                                    communityId=community_id)])
            return removed

        removed = await self.graph.write(work)
        if removed == 0:
            err = await self._not_found(tenant, member_id, community_id)
            if err.field != "memberId" or "is not in" not in err.message:
                raise err
        return removed > 0

    async def set_role(self, tenant: str, member_id: str, community_id: str, role: MembershipRole) -> Membership:
        async def work(tx: Tx) -> Membership | None:
            row = await self.graph.run_one(
                tx, SET_ROLE, tenant=tenant, memberId=member_id, communityId=community_id, role=role.value
            )
            return None if row is None else membership_from(member_id, community_id, row)

        result = await self.graph.write(work)
        if result is None:
            raise await self._not_found(tenant, member_id, community_id)
        return result

    async def role_of(self, tenant: str, member_id: str, community_id: str) -> MembershipRole | None:
        row = await self.graph.read_one(ROLE_OF, tenant=tenant, memberId=member_id, communityId=community_id)
        return MembershipRole(row["role"]) if row and row["role"] else None

    async def members(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Membership]]:
        row = await self.graph.read_one(
            COMMUNITY_MEMBERS_PAGES, tenant=tenant, ids=list(ids), limit=first + 1, **time_after(after).params()
        )
        return pages_by_parent(
            row["rows"] if row else [], ids, first,
            lambda i: membership_from(i["id"], i["community"], {"role": i["role"], "joinedAt": i["at"]}, member=i["node"]),
            lambda i: time_key(i["at"], i["id"]),
        )

    async def feed_items(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[FeedItem]]:
        """The feed pages of *ids* with every post's author and counts, in one round trip."""
        row = await self.graph.read_one(FEED_ITEMS_PAGES, tenant=tenant, ids=list(ids), limit=first + 1,
                                        **time_after(after).params())
        return pages_by_parent(
            row["rows"] if row else [], ids, first,
            lambda i: FeedItem(
                content=content_from(i["node"], author_id=i["author"], community_id=i["community"]),
                author=member_from(i["authorNode"]),
                counts=ContentCounts(likes=int(i["likes"]), comments=int(i["comments"]), shares=int(i["shares"]),
                                     favorites=int(i["favorites"])),
            ),
            lambda i: time_key(i["node"]["createdAt"], i["node"]["id"]),
        )

    async def feed(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Content]]:
        row = await self.graph.read_one(FEED_PAGES, tenant=tenant, ids=list(ids), limit=first + 1, **time_after(after).params())
        return pages_by_parent(
            row["rows"] if row else [], ids, first,
            lambda i: content_from(i["node"], author_id=i["author"], community_id=i["community"]),
            lambda i: time_key(i["node"]["createdAt"], i["node"]["id"]),
        )

    async def counts(self, tenant: str, ids: Sequence[str]) -> list[CommunityCounts]:
        row = await self.graph.read_one(COMMUNITY_COUNTS, tenant=tenant, ids=list(ids))
        found = {r["pid"]: CommunityCounts(members=int(r["members"]), posts=int(r["posts"])) for r in (row["rows"] if row else [])}
        return [found.get(i, CommunityCounts()) for i in ids]


