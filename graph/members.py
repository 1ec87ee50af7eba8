"""Members, follows and referrals in the graph."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.commands import RegisterMember, UpdateMember
from domain.errors import ErrorCode, NotFound, ReferralRejected, ValidationFailed
from domain.events import EventType
from domain.ids import Kind, new_id
from domain.models import Channel, Interest, Member, Membership, Page
from domain.pagination import decode_cursor, encode_cursor
from domain.ports import MemberCounts, MemberFilter, MemberOrder
from domain.referrals import check_referral, new_invite_code
from graph.client import GraphClient, Tx, now, to_datetime
from graph.campaigns import check_running, participate
from graph.cypher import cypher
from graph.events import event, record
from graph.mapping import member_from, membership_from, tag_from
from graph.paging import page_of, pages_by_parent, time_after, time_key

__all__ = ["GraphMemberRepository"]

MEMBERS_BY_ID = cypher(
    """
    UNWIND $ids AS id
    MATCH (m:Member {id: id}) WITH * WHERE m.tenantId = $tenant
    RETURN collect(m) AS members
    """
)

# One constant statement per sort order (sort keys come from a closed enum). The filter
# predicate is the same in each; every filter is optional (a null parameter disables it).
# Lists and pages return map projections of exactly what graph.mapping.member_from /
# community_from read (issue 7: hydrating whole nodes, every DateTime and property, was a
# fifth of a 50-member page's CPU); MEMBERS_BY_ID returns whole nodes, and
# tests/test_round_trips.py checks that both give the same Member. ArcadeDB answers a map
# literal holding a map projection with the projection alone ({id: c.id, node: c {.id}} comes
# back as {id: ...} of c): project in a WITH first, then build the map.
MEMBERS_JOINED_DESC = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    WHERE ($channel IS NULL OR m.channel = $channel)
      AND ($minLevel IS NULL OR m.level >= $minLevel)
      AND ($maxLevel IS NULL OR m.level <= $maxLevel)
      AND ($joinedFrom IS NULL OR m.joinedAt >= $joinedFrom)
      AND ($joinedTo IS NULL OR m.joinedAt < $joinedTo)
      AND ($communityId IS NULL OR EXISTS { (m)-[:MEMBER_OF]->(:Community {id: $communityId}) })
      AND ($tagId IS NULL OR EXISTS { (m)-[:INTERESTED_IN]->(:Tag {id: $tagId}) })
      AND ($isKoc IS NULL OR coalesce(m.isKoc, false) = $isKoc)
      AND ($minKolScore IS NULL OR m.kolScore >= $minKolScore)
      AND ($afterAt IS NULL OR m.joinedAt < $afterAt OR (m.joinedAt = $afterAt AND m.id < $afterId))
    WITH m ORDER BY m.joinedAt DESC, m.id DESC LIMIT $limit
    RETURN collect(m {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId, .inviteCode,
                       .marketingConsent, .profilingConsent}) AS members
    """
)
MEMBERS_JOINED_ASC = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    WHERE ($channel IS NULL OR m.channel = $channel)
      AND ($minLevel IS NULL OR m.level >= $minLevel)
      AND ($maxLevel IS NULL OR m.level <= $maxLevel)
      AND ($joinedFrom IS NULL OR m.joinedAt >= $joinedFrom)
      AND ($joinedTo IS NULL OR m.joinedAt < $joinedTo)
      AND ($communityId IS NULL OR EXISTS { (m)-[:MEMBER_OF]->(:Community {id: $communityId}) })
      AND ($tagId IS NULL OR EXISTS { (m)-[:INTERESTED_IN]->(:Tag {id: $tagId}) })
      AND ($isKoc IS NULL OR coalesce(m.isKoc, false) = $isKoc)
      AND ($minKolScore IS NULL OR m.kolScore >= $minKolScore)
      AND ($afterAt IS NULL OR m.joinedAt > $afterAt OR (m.joinedAt = $afterAt AND m.id > $afterId))
    WITH m ORDER BY m.joinedAt ASC, m.id ASC LIMIT $limit
    RETURN collect(m {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId, .inviteCode,
                       .marketingConsent, .profilingConsent}) AS members
    """
)
MEMBERS_LEVEL_DESC = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    WHERE ($channel IS NULL OR m.channel = $channel)
      AND ($minLevel IS NULL OR m.level >= $minLevel)
      AND ($maxLevel IS NULL OR m.level <= $maxLevel)
      AND ($joinedFrom IS NULL OR m.joinedAt >= $joinedFrom)
      AND ($joinedTo IS NULL OR m.joinedAt < $joinedTo)
      AND ($communityId IS NULL OR EXISTS { (m)-[:MEMBER_OF]->(:Community {id: $communityId}) })
      AND ($tagId IS NULL OR EXISTS { (m)-[:INTERESTED_IN]->(:Tag {id: $tagId}) })
      AND ($isKoc IS NULL OR coalesce(m.isKoc, false) = $isKoc)
      AND ($minKolScore IS NULL OR m.kolScore >= $minKolScore)
      AND ($afterLevel IS NULL OR m.level < $afterLevel OR (m.level = $afterLevel AND m.id > $afterId))
    WITH m ORDER BY m.level DESC, m.id ASC LIMIT $limit
    RETURN collect(m {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId, .inviteCode,
                       .marketingConsent, .profilingConsent}) AS members
    """
)
MEMBERS_NAME_ASC = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    WHERE ($channel IS NULL OR m.channel = $channel)
      AND ($minLevel IS NULL OR m.level >= $minLevel)
      AND ($maxLevel IS NULL OR m.level <= $maxLevel)
      AND ($joinedFrom IS NULL OR m.joinedAt >= $joinedFrom)
      AND ($joinedTo IS NULL OR m.joinedAt < $joinedTo)
      AND ($communityId IS NULL OR EXISTS { (m)-[:MEMBER_OF]->(:Community {id: $communityId}) })
      AND ($tagId IS NULL OR EXISTS { (m)-[:INTERESTED_IN]->(:Tag {id: $tagId}) })
      AND ($isKoc IS NULL OR coalesce(m.isKoc, false) = $isKoc)
      AND ($minKolScore IS NULL OR m.kolScore >= $minKolScore)
      AND ($afterName IS NULL OR m.displayName > $afterName OR (m.displayName = $afterName AND m.id > $afterId))
    WITH m ORDER BY m.displayName ASC, m.id ASC LIMIT $limit
    RETURN collect(m {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId, .inviteCode,
                       .marketingConsent, .profilingConsent}) AS members
    """
)
# The same four orders and the count for lists filtered by community: they start from the
# community's MEMBER_OF edges instead of testing every member of the tenant (issue 7: 50 of a
# community's members by join date cost the graph about 95 ms of CPU at 10,000 members when
# it scanned the tenant). ``$communityId`` is never null here.
MEMBERS_IN_COMMUNITY_JOINED_DESC = cypher(
    """
    MATCH (k:Community {id: $communityId}) WITH * WHERE k.tenantId = $tenant
    MATCH (k)<-[:MEMBER_OF]-(m:Member)
    WHERE m.tenantId = $tenant
      AND ($channel IS NULL OR m.channel = $channel)
      AND ($minLevel IS NULL OR m.level >= $minLevel)
      AND ($maxLevel IS NULL OR m.level <= $maxLevel)
      AND ($joinedFrom IS NULL OR m.joinedAt >= $joinedFrom)
      AND ($joinedTo IS NULL OR m.joinedAt < $joinedTo)
      AND ($tagId IS NULL OR EXISTS { (m)-[:INTERESTED_IN]->(:Tag {id: $tagId}) })
      AND ($isKoc IS NULL OR coalesce(m.isKoc, false) = $isKoc)
      AND ($minKolScore IS NULL OR m.kolScore >= $minKolScore)
      AND ($afterAt IS NULL OR m.joinedAt < $afterAt OR (m.joinedAt = $afterAt AND m.id < $afterId))
    WITH m ORDER BY m.joinedAt DESC, m.id DESC LIMIT $limit
    RETURN collect(m {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId, .inviteCode,
                       .marketingConsent, .profilingConsent}) AS members
    """
)
MEMBERS_IN_COMMUNITY_JOINED_ASC = cypher(
    """
    MATCH (k:Community {id: $communityId}) WITH * WHERE k.tenantId = $tenant
    MATCH (k)<-[:MEMBER_OF]-(m:Member)
    WHERE m.tenantId = $tenant
      AND ($channel IS NULL OR m.channel = $channel)
      AND ($minLevel IS NULL OR m.level >= $minLevel)
      AND ($maxLevel IS NULL OR m.level <= $maxLevel)
      AND ($joinedFrom IS NULL OR m.joinedAt >= $joinedFrom)
      AND ($joinedTo IS NULL OR m.joinedAt < $joinedTo)
      AND ($tagId IS NULL OR EXISTS { (m)-[:INTERESTED_IN]->(:Tag {id: $tagId}) })
      AND ($isKoc IS NULL OR coalesce(m.isKoc, false) = $isKoc)
      AND ($minKolScore IS NULL OR m.kolScore >= $minKolScore)
      AND ($afterAt IS NULL OR m.joinedAt > $afterAt OR (m.joinedAt = $afterAt AND m.id > $afterId))
    WITH m ORDER BY m.joinedAt ASC, m.id ASC LIMIT $limit
    RETURN collect(m {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId, .inviteCode,
                       .marketingConsent, .profilingConsent}) AS members
    """
)
MEMBERS_IN_COMMUNITY_LEVEL_DESC = cypher(
    """
    MATCH (k:Community {id: $communityId}) WITH * WHERE k.tenantId = $tenant
    MATCH (k)<-[:MEMBER_OF]-(m:Member)
    WHERE m.tenantId = $tenant
      AND ($channel IS NULL OR m.channel = $channel)
      AND ($minLevel IS NULL OR m.level >= $minLevel)
      AND ($maxLevel IS NULL OR m.level <= $maxLevel)
      AND ($joinedFrom IS NULL OR m.joinedAt >= $joinedFrom)
      AND ($joinedTo IS NULL OR m.joinedAt < $joinedTo)
      AND ($tagId IS NULL OR EXISTS { (m)-[:INTERESTED_IN]->(:Tag {id: $tagId}) })
      AND ($isKoc IS NULL OR coalesce(m.isKoc, false) = $isKoc)
      AND ($minKolScore IS NULL OR m.kolScore >= $minKolScore)
      AND ($afterLevel IS NULL OR m.level < $afterLevel OR (m.level = $afterLevel AND m.id > $afterId))
    WITH m ORDER BY m.level DESC, m.id ASC LIMIT $limit
    RETURN collect(m {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId, .inviteCode,
                       .marketingConsent, .profilingConsent}) AS members
    """
)
MEMBERS_IN_COMMUNITY_NAME_ASC = cypher(
    """
    MATCH (k:Community {id: $communityId}) WITH * WHERE k.tenantId = $tenant
    MATCH (k)<-[:MEMBER_OF]-(m:Member)
    WHERE m.tenantId = $tenant
      AND ($channel IS NULL OR m.channel = $channel)
      AND ($minLevel IS NULL OR m.level >= $minLevel)
      AND ($maxLevel IS NULL OR m.level <= $maxLevel)
      AND ($joinedFrom IS NULL OR m.joinedAt >= $joinedFrom)
      AND ($joinedTo IS NULL OR m.joinedAt < $joinedTo)
      AND ($tagId IS NULL OR EXISTS { (m)-[:INTERESTED_IN]->(:Tag {id: $tagId}) })
      AND ($isKoc IS NULL OR coalesce(m.isKoc, false) = $isKoc)
      AND ($minKolScore IS NULL OR m.kolScore >= $minKolScore)
      AND ($afterName IS NULL OR m.displayName > $afterName OR (m.displayName = $afterName AND m.id > $afterId))
    WITH m ORDER BY m.displayName ASC, m.id ASC LIMIT $limit
    RETURN collect(m {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId, .inviteCode,
                       .marketingConsent, .profilingConsent}) AS members
    """
)
MEMBERS_IN_COMMUNITY_COUNT = cypher(
    """
    MATCH (k:Community {id: $communityId}) WITH * WHERE k.tenantId = $tenant
    MATCH (k)<-[:MEMBER_OF]-(m:Member)
    WHERE m.tenantId = $tenant
      AND ($channel IS NULL OR m.channel = $channel)
      AND ($minLevel IS NULL OR m.level >= $minLevel)
      AND ($maxLevel IS NULL OR m.level <= $maxLevel)
      AND ($joinedFrom IS NULL OR m.joinedAt >= $joinedFrom)
      AND ($joinedTo IS NULL OR m.joinedAt < $joinedTo)
      AND ($tagId IS NULL OR EXISTS { (m)-[:INTERESTED_IN]->(:Tag {id: $tagId}) })
      AND ($isKoc IS NULL OR coalesce(m.isKoc, false) = $isKoc)
      AND ($minKolScore IS NULL OR m.kolScore >= $minKolScore)
    RETURN count(m) AS n
    """
)
MEMBERS_COUNT = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    WHERE ($channel IS NULL OR m.channel = $channel)
      AND ($minLevel IS NULL OR m.level >= $minLevel)
      AND ($maxLevel IS NULL OR m.level <= $maxLevel)
      AND ($joinedFrom IS NULL OR m.joinedAt >= $joinedFrom)
      AND ($joinedTo IS NULL OR m.joinedAt < $joinedTo)
      AND ($communityId IS NULL OR EXISTS { (m)-[:MEMBER_OF]->(:Community {id: $communityId}) })
      AND ($tagId IS NULL OR EXISTS { (m)-[:INTERESTED_IN]->(:Tag {id: $tagId}) })
      AND ($isKoc IS NULL OR coalesce(m.isKoc, false) = $isKoc)
      AND ($minKolScore IS NULL OR m.kolScore >= $minKolScore)
    RETURN count(m) AS n
    """
)

INVITER_BY_ID = cypher(
    "MATCH (i:Member {id: $inviterId}) WITH * WHERE i.tenantId = $tenant RETURN i.id AS id"
)
INVITER_BY_CODE = cypher(
    "MATCH (i:Member {tenantId: $tenant, inviteCode: $code}) RETURN i.id AS id"
)
CREATE_MEMBER = cypher(
    """
    CREATE (m:Member)
    SET m = $props
    WITH m
    OPTIONAL MATCH (i:Member {id: $inviterId}) WHERE i.tenantId = $tenant
    FOREACH (_ IN CASE WHEN i IS NULL THEN [] ELSE [1] END |
      CREATE (i)-[:REFERRED {at: $now, code: $code, channel: $channel, campaignId: $campaignId}]->(m))
    RETURN m
    """
)
UPDATE_MEMBER = cypher(
    "MATCH (m:Member {id: $id}) WITH * WHERE m.tenantId = $tenant SET m += $changes RETURN m"
)
FOLLOW = cypher(
    """
    MATCH (a:Member {id: $follower}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Member {id: $followee}) WITH * WHERE b.tenantId = $tenant
    MERGE (a)-[r:FOLLOWS]->(b)
    ON CREATE SET r.at = $now
    RETURN r.at = $now AS created
    """
)
UNFOLLOW = cypher(
    """
    MATCH (a:Member {id: $follower})-[r:FOLLOWS]->(b:Member {id: $followee})
    WHERE a.tenantId = $tenant AND b.tenantId = $tenant
    DELETE r
    RETURN count(*) AS removed
    """
)
EXISTING_IDS = cypher(
    """
    UNWIND $ids AS id
    MATCH (m:Member {id: id}) WITH * WHERE m.tenantId = $tenant
    RETURN collect(m.id) AS ids
    """
)
LOCK_PAIR = cypher(
    """
    MATCH (m:Member {id: $invitee}) WITH * WHERE m.tenantId = $tenant
    MATCH (i:Member {id: $inviter}) WITH * WHERE i.tenantId = $tenant
    SET m.referralCheckedAt = $now, i.referralCheckedAt = $now
    WITH m, i
    OPTIONAL MATCH (existing:Member)-[:REFERRED]->(m)
    OPTIONAL MATCH (i)<-[:REFERRED*1..]-(up:Member)
    RETURN existing.id AS existing, collect(up.id) AS upline
    """
)
CREATE_REFERRAL = cypher(
    """
    MATCH (m:Member {id: $invitee}) WITH * WHERE m.tenantId = $tenant
    MATCH (i:Member {id: $inviter}) WITH * WHERE i.tenantId = $tenant
    CREATE (i)-[r:REFERRED {at: $now, channel: $channel}]->(m)
    RETURN r.at AS at
    """
)

FOLLOWERS_PAGES = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Member {id: pid}) WITH * WHERE p.tenantId = $tenant
    CALL (p) {
      MATCH (p)<-[r:FOLLOWS]-(f:Member)
      WHERE $afterAt IS NULL OR r.at < $afterAt OR (r.at = $afterAt AND f.id < $afterId)
      WITH f, r ORDER BY r.at DESC, f.id DESC LIMIT $limit
      WITH r, f {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId,
                 .inviteCode, .marketingConsent, .profilingConsent} AS node
      ORDER BY r.at DESC, node.id DESC
      RETURN collect({node: node, at: r.at}) AS items
    }
    RETURN collect({pid: pid, items: items}) AS rows
    """
)
FOLLOWING_PAGES = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Member {id: pid}) WITH * WHERE p.tenantId = $tenant
    CALL (p) {
      MATCH (p)-[r:FOLLOWS]->(f:Member)
      WHERE $afterAt IS NULL OR r.at < $afterAt OR (r.at = $afterAt AND f.id < $afterId)
      WITH f, r ORDER BY r.at DESC, f.id DESC LIMIT $limit
      WITH r, f {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId,
                 .inviteCode, .marketingConsent, .profilingConsent} AS node
      ORDER BY r.at DESC, node.id DESC
      RETURN collect({node: node, at: r.at}) AS items
    }
    RETURN collect({pid: pid, items: items}) AS rows
    """
)
INVITEES_PAGES = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Member {id: pid}) WITH * WHERE p.tenantId = $tenant
    CALL (p) {
      MATCH (p)-[r:REFERRED]->(f:Member)
      WHERE $afterAt IS NULL OR r.at < $afterAt OR (r.at = $afterAt AND f.id < $afterId)
      WITH f, r ORDER BY r.at DESC, f.id DESC LIMIT $limit
      WITH r, f {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId,
                 .inviteCode, .marketingConsent, .profilingConsent} AS node
      ORDER BY r.at DESC, node.id DESC
      RETURN collect({node: node, at: r.at}) AS items
    }
    RETURN collect({pid: pid, items: items}) AS rows
    """
)
MEMBERSHIPS_PAGES = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Member {id: pid}) WITH * WHERE p.tenantId = $tenant
    CALL (p) {
      MATCH (p)-[r:MEMBER_OF]->(c:Community)
      WHERE $afterAt IS NULL OR r.joinedAt < $afterAt OR (r.joinedAt = $afterAt AND c.id < $afterId)
      WITH p, c, r ORDER BY r.joinedAt DESC, c.id DESC LIMIT $limit
      WITH p, r, c {.id, .tenantId, .name, .kind, .channel, .createdAt, .description} AS node
      ORDER BY r.joinedAt DESC, node.id DESC
      RETURN collect({id: node.id, member: p.id, at: r.joinedAt, role: r.role, node: node}) AS items
    }
    RETURN collect({pid: pid, items: items}) AS rows
    """
)
# A member page's first communities and first followers together, for documents that nest
# both (50 members with two nested lists: one round trip instead of two, and no DataLoader
# hop per member; issue 7). $communities / $followers are first + 1 (0 when not asked).
MEMBER_FIRST_PAGES = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Member {id: pid}) WITH * WHERE p.tenantId = $tenant
    CALL (p) {
      MATCH (p)-[r:MEMBER_OF]->(c:Community)
      WITH p, c, r ORDER BY r.joinedAt DESC, c.id DESC LIMIT $communities
      WITH p, r, c {.id, .tenantId, .name, .kind, .channel, .createdAt, .description} AS node
      ORDER BY r.joinedAt DESC, node.id DESC
      RETURN collect({id: node.id, member: p.id, at: r.joinedAt, role: r.role, node: node}) AS communities
    }
    CALL (p) {
      MATCH (p)<-[r:FOLLOWS]-(f:Member)
      WITH f, r ORDER BY r.at DESC, f.id DESC LIMIT $followers
      WITH r, f {.id, .tenantId, .displayName, .joinedAt, .channel, .level, .points, .city, .phone, .wechatId,
                 .inviteCode, .marketingConsent, .profilingConsent} AS node
      ORDER BY r.at DESC, node.id DESC
      RETURN collect({node: node, at: r.at}) AS followers
    }
    RETURN collect({pid: pid, communities: communities, followers: followers}) AS rows
    """
)
INVITERS = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Member {id: pid})<-[:REFERRED]-(i:Member) WITH * WHERE p.tenantId = $tenant
    RETURN collect({pid: pid, node: i}) AS rows
    """
)
MEMBER_COUNTS = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Member {id: pid}) WITH * WHERE p.tenantId = $tenant
    RETURN collect({
      pid: pid,
      followers: COUNT { (p)<-[:FOLLOWS]-(:Member) },
      following: COUNT { (p)-[:FOLLOWS]->(:Member) },
      communities: COUNT { (p)-[:MEMBER_OF]->(:Community) },
      posts: COUNT { (p)-[:POSTED]->(:Content) },
      purchases: COUNT { (p)-[:PLACED]->(:Purchase) },
      invitees: COUNT { (p)-[:REFERRED]->(:Member) }
    }) AS rows
    """
)

MEMBER_INTERESTS = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Member {id: pid})-[r:INTERESTED_IN]->(t:Tag) WITH * WHERE p.tenantId = $tenant
    WITH pid, t, r ORDER BY r.weight DESC, t.name
    RETURN collect({pid: pid, node: t, weight: r.weight, source: r.source}) AS rows
    """
)

_ORDERS = {
    MemberOrder.JOINED_AT_DESC: MEMBERS_JOINED_DESC,
    MemberOrder.JOINED_AT_ASC: MEMBERS_JOINED_ASC,
    MemberOrder.LEVEL_DESC: MEMBERS_LEVEL_DESC,
    MemberOrder.DISPLAY_NAME_ASC: MEMBERS_NAME_ASC,
}
_IN_COMMUNITY_ORDERS = {
    MemberOrder.JOINED_AT_DESC: MEMBERS_IN_COMMUNITY_JOINED_DESC,
    MemberOrder.JOINED_AT_ASC: MEMBERS_IN_COMMUNITY_JOINED_ASC,
    MemberOrder.LEVEL_DESC: MEMBERS_IN_COMMUNITY_LEVEL_DESC,
    MemberOrder.DISPLAY_NAME_ASC: MEMBERS_IN_COMMUNITY_NAME_ASC,
}


def _filter_params(f: MemberFilter) -> dict[str, Any]:
    return {
        "channel": f.channel.value if f.channel else None,
        "minLevel": f.min_level,
        "maxLevel": f.max_level,
        "joinedFrom": f.joined_from,
        "joinedTo": f.joined_to,
        "communityId": f.community_id,
        "tagId": f.tag_id,
        "isKoc": f.is_koc,
        "minKolScore": f.min_kol_score,
    }


def _order_key(order: MemberOrder, m: Mapping[str, Any]) -> list[Any]:
    if order is MemberOrder.LEVEL_DESC:
        return [int(m.get("level") or 0), m["id"]]
    if order is MemberOrder.DISPLAY_NAME_ASC:
        return [m["displayName"], m["id"]]
    return time_key(m["joinedAt"], m["id"])


def _after_params(order: MemberOrder, after: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"afterAt": None, "afterLevel": None, "afterName": None, "afterId": ""}
    if order in (MemberOrder.JOINED_AT_DESC, MemberOrder.JOINED_AT_ASC):
        params.update(time_after(after).params())
        return params
    key = decode_cursor(after, arity=2)
    if key is None:
        return params
    value, id_ = key
    if not isinstance(id_, str):
        raise ValidationFailed("after is not a cursor returned by this connection", field="after")
    if order is MemberOrder.LEVEL_DESC:
        if not isinstance(value, int):
            raise ValidationFailed("after is not a cursor returned by this connection", field="after")
        params["afterLevel"] = value
    else:
        if not isinstance(value, str):
            raise ValidationFailed("after is not a cursor returned by this connection", field="after")
        params["afterName"] = value
    params["afterId"] = id_
    return params


def _membership_item(i: Mapping[str, Any]) -> Membership:
    return membership_from(i["member"], i["id"], {"role": i["role"], "joinedAt": i["at"]}, community=i["node"])


def _membership_key(i: Mapping[str, Any]) -> list[Any]:
    return time_key(i["at"], i["id"])


@dataclass
class GraphMemberRepository:
    graph: GraphClient

    async def get_many(self, tenant: str, ids: Sequence[str]) -> list[Member | None]:
        row = await self.graph.read_one(MEMBERS_BY_ID, tenant=tenant, ids=list(ids))
        found = {m["id"]: member_from(m) for m in (row["members"] if row else [])}
        return [found.get(i) for i in ids]

    async def list(
        self, tenant: str, *, filter: MemberFilter, order: MemberOrder, first: int, after: str | None
    ) -> Page[Member]:
        params = {"tenant": tenant, "limit": first + 1, **_filter_params(filter), **_after_params(order, after)}
        orders = _ORDERS if filter.community_id is None else _IN_COMMUNITY_ORDERS
        row = await self.graph.read_one(orders[order], **params)
        nodes = list(row["members"]) if row else []
        shown = nodes[:first]
        return Page(
            items=tuple(member_from(m) for m in shown),
            cursors=tuple(encode_cursor(_order_key(order, m)) for m in shown),
            has_next=len(nodes) > first,
        )

    async def count(self, tenant: str, *, filter: MemberFilter) -> int:
        query = MEMBERS_COUNT if filter.community_id is None else MEMBERS_IN_COMMUNITY_COUNT
        row = await self.graph.read_one(query, tenant=tenant, **_filter_params(filter))
        return int(row["n"]) if row else 0

    async def register(self, tenant: str, cmd: RegisterMember) -> Member:
        async def work(tx: Tx) -> Member:
            inviter: str | None = None
            if cmd.invite_code is not None:
                hit = await self.graph.run_one(tx, INVITER_BY_CODE, tenant=tenant, code=cmd.invite_code)
                if hit is None:
                    raise ReferralRejected(
                        f"no member has the invite code {cmd.invite_code!r}",
                        field="input.inviteCode",
                        code=ErrorCode.INVALID_INVITE_CODE,
                    )
                inviter = hit["id"]
            elif cmd.inviter_id is not None:
                hit = await self.graph.run_one(tx, INVITER_BY_ID, tenant=tenant, inviterId=cmd.inviter_id)
                if hit is None:
                    raise NotFound(f"no member {cmd.inviter_id!r} to be the inviter", field="input.inviterId")
                inviter = hit["id"]
            at = now()
            if cmd.campaign_id is not None:
                await check_running(self.graph, tx, tenant, cmd.campaign_id, at)
            props: dict[str, Any] = {
                "id": new_id(Kind.MEMBER),
                "tenantId": tenant,
                "displayName": cmd.display_name,
                "joinedAt": at,
                "channel": (Channel.REFERRAL if inviter and cmd.channel is Channel.APP else cmd.channel).value,
                "level": cmd.level,
                "points": 0,
                "inviteCode": new_invite_code(),
                "marketingConsent": cmd.marketing_consent,
                "profilingConsent": cmd.profiling_consent,
            }
            for key, value in (("phone", cmd.phone), ("wechatId", cmd.wechat_id), ("city", cmd.city)):
                if value is not None:
                    props[key] = value
            row = await self.graph.run_one(
                tx, CREATE_MEMBER, props=props, tenant=tenant, inviterId=inviter, now=at,
                code=cmd.invite_code, channel=cmd.channel.value, campaignId=cmd.campaign_id,
            )
            assert row is not None
            if cmd.campaign_id is not None and inviter is not None:
                await participate(self.graph, tx, tenant, cmd.campaign_id, inviter=inviter, invitee=props["id"], at=at)
            events = [event(tenant, EventType.MEMBER_REGISTERED, at, memberId=props["id"], inviterId=inviter,
                            channel=props["channel"])]
            if inviter is not None:
                events.append(event(tenant, EventType.REFERRAL_CREATED, at, inviterId=inviter, inviteeId=props["id"],
                                    code=cmd.invite_code, campaignId=cmd.campaign_id))
            await record(self.graph, tx, events)
            return member_from(row["m"])

        return await self.graph.write(work)

    async def update(self, tenant: str, member_id: str, cmd: UpdateMember) -> Member:
        async def work(tx: Tx) -> Member:
            changes = cmd.changes()
            row = await self.graph.run_one(tx, UPDATE_MEMBER, tenant=tenant, id=member_id, changes=changes)
            if row is None:
                raise NotFound(f"no member {member_id!r}", field="memberId")
            await record(self.graph, tx, [event(tenant, EventType.MEMBER_UPDATED, memberId=member_id,
                                                fields=sorted(changes))])
            return member_from(row["m"])

        return await self.graph.write(work)

    async def _missing(self, tenant: str, ids: Sequence[str], fields: Sequence[str]) -> NotFound:
        row = await self.graph.read_one(EXISTING_IDS, tenant=tenant, ids=list(ids))
        present = set(row["ids"]) if row else set()
        for id_, field in zip(ids, fields):
            if id_ not in present:
                return NotFound(f"no member {id_!r}", field=field)
        return NotFound("no such member")

    async def follow(self, tenant: str, follower: str, followee: str) -> bool:
        if follower == followee:
            raise ValidationFailed("a member cannot follow themselves", field="memberId")

        async def work(tx: Tx) -> bool | None:
            at = now()
            row = await self.graph.run_one(tx, FOLLOW, tenant=tenant, follower=follower, followee=followee, now=at)
            if row is None:
                return None
            if row["created"]:
                await record(self.graph, tx, [event(tenant, EventType.FOLLOWED, at, followerId=follower, followeeId=followee)])
            return bool(row["created"])

        created = await self.graph.write(work)
        if created is None:
            raise await self._missing(tenant, [follower, followee], ["asMemberId", "memberId"])
        return created

    async def unfollow(self, tenant: str, follower: str, followee: str) -> bool:
        async def work(tx: Tx) -> int:
            row = await self.graph.run_one(tx, UNFOLLOW, tenant=tenant, follower=follower, followee=followee)
            removed = int(row["removed"]) if row else 0
            if removed:
                await record(self.graph, tx, [event(tenant, EventType.UNFOLLOWED, followerId=follower, followeeId=followee)])
            return removed

        removed = await self.graph.write(work)
        if removed == 0:
            row = await self.graph.read_one(EXISTING_IDS, tenant=tenant, ids=[follower, followee])
            if row is None or len(set(row["ids"])) < len({follower, followee}):
                raise await self._missing(tenant, [follower, followee], ["asMemberId", "memberId"])
        return removed > 0

    async def set_inviter(self, tenant: str, invitee: str, inviter: str) -> datetime:
        if invitee == inviter:
            check_referral(invitee_id=invitee, inviter_id=inviter, existing_inviter_id=None, inviter_upline=())

        async def work(tx: Tx) -> datetime | None:
            at = now()
            row = await self.graph.run_one(tx, LOCK_PAIR, tenant=tenant, invitee=invitee, inviter=inviter, now=at)
            if row is None:
                return None
            check_referral(
                invitee_id=invitee,
                inviter_id=inviter,
                existing_inviter_id=row["existing"],
                inviter_upline=list(row["upline"]),
            )
            created = await self.graph.run_one(
                tx, CREATE_REFERRAL, tenant=tenant, invitee=invitee, inviter=inviter, now=at, channel="manual"
            )
            assert created is not None
            await record(self.graph, tx, [event(tenant, EventType.REFERRAL_CREATED, at, inviterId=inviter, inviteeId=invitee)])
            return to_datetime(created["at"])

        at = await self.graph.write(work)
        if at is None:
            raise await self._missing(tenant, [invitee, inviter], ["memberId", "inviterId"])
        return at

    async def _member_pages(self, query: str, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Member]]:
        row = await self.graph.read_one(query, tenant=tenant, ids=list(ids), limit=first + 1, **time_after(after).params())  # type: ignore[arg-type]
        return pages_by_parent(
            row["rows"] if row else [], ids, first,
            lambda i: member_from(i["node"]),
            lambda i: time_key(i["at"], i["node"]["id"]),
        )

    async def followers(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Member]]:
        return await self._member_pages(FOLLOWERS_PAGES, tenant, ids, first, after)

    async def following(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Member]]:
        return await self._member_pages(FOLLOWING_PAGES, tenant, ids, first, after)

    async def invitees(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Member]]:
        return await self._member_pages(INVITEES_PAGES, tenant, ids, first, after)

    async def memberships(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Membership]]:
        row = await self.graph.read_one(MEMBERSHIPS_PAGES, tenant=tenant, ids=list(ids), limit=first + 1, **time_after(after).params())
        return pages_by_parent(row["rows"] if row else [], ids, first, _membership_item, _membership_key)

    async def first_pages(
        self, tenant: str, ids: Sequence[str], *, communities: int | None, followers: int | None
    ) -> list[tuple[Page[Membership], Page[Member]]]:
        """Each member's first *communities* memberships and first *followers* followers (None: not
        asked, an empty page)."""
        row = await self.graph.read_one(MEMBER_FIRST_PAGES, tenant=tenant, ids=list(ids),
                                        communities=0 if communities is None else communities + 1,
                                        followers=0 if followers is None else followers + 1)
        by_parent = {r["pid"]: r for r in (row["rows"] if row else [])}
        out: list[tuple[Page[Membership], Page[Member]]] = []
        for pid in ids:
            r = by_parent.get(pid) or {}
            out.append((
                page_of(r.get("communities") or [], communities or 0, _membership_item, _membership_key),
                page_of(r.get("followers") or [], followers or 0, lambda i: member_from(i["node"]),
                        lambda i: time_key(i["at"], i["node"]["id"])),
            ))
        return out

    async def inviters(self, tenant: str, ids: Sequence[str]) -> list[Member | None]:
        row = await self.graph.read_one(INVITERS, tenant=tenant, ids=list(ids))
        found = {r["pid"]: member_from(r["node"]) for r in (row["rows"] if row else [])}
        return [found.get(i) for i in ids]

    async def interests(self, tenant: str, ids: Sequence[str]) -> list[list[Interest]]:
        row = await self.graph.read_one(MEMBER_INTERESTS, tenant=tenant, ids=list(ids))
        found: dict[str, list[Interest]] = {}
        for r in row["rows"] if row else []:
            found.setdefault(r["pid"], []).append(
                Interest(tag=tag_from(r["node"]), weight=float(r["weight"] or 0.0), source=str(r["source"] or "unknown"))
            )
        return [found.get(i, []) for i in ids]

    async def counts(self, tenant: str, ids: Sequence[str]) -> list[MemberCounts]:
        row = await self.graph.read_one(MEMBER_COUNTS, tenant=tenant, ids=list(ids))
        found = {
            r["pid"]: MemberCounts(
                followers=int(r["followers"]), following=int(r["following"]), communities=int(r["communities"]),
                posts=int(r["posts"]), purchases=int(r["purchases"]), invitees=int(r["invitees"]),
            )
            for r in (row["rows"] if row else [])
        }
        return [found.get(i, MemberCounts()) for i in ids]
