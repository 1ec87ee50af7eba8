"""Small GraphQL helpers the API tests share."""

from __future__ import annotations

from typing import Any

REGISTER = """
mutation($input: RegisterMemberInput!) {
  registerMember(input: $input) {
    __typename
    ... on MemberPayload { member { id displayName inviteCode channel } }
    ... on UserError { code message field }
  }
}
"""
CREATE_COMMUNITY = """
mutation($input: CreateCommunityInput!) {
  createCommunity(input: $input) {
    __typename
    ... on CommunityPayload { community { id name } }
    ... on UserError { code message field }
  }
}
"""
JOIN = """
mutation($c: ID!, $m: ID) {
  joinCommunity(communityId: $c, asMemberId: $m) {
    __typename
    ... on MembershipPayload { changed role }
    ... on UserError { code message field }
  }
}
"""
FOLLOW = """
mutation($target: ID!, $as: ID) {
  followMember(memberId: $target, asMemberId: $as) {
    __typename
    ... on FollowPayload { changed follower { id } followee { id } }
    ... on UserError { code message field }
  }
}
"""
POST = """
mutation($input: CreateContentInput!, $as: ID) {
  createContent(input: $input, asMemberId: $as) {
    __typename
    ... on ContentPayload { content { id title createdAt } }
    ... on UserError { code message field }
  }
}
"""


async def register(api: Any, token: str, name: str, **fields: Any) -> dict[str, Any]:
    data = await api.ok(REGISTER, {"input": {"displayName": name, **fields}}, token=token)
    result: dict[str, Any] = data["registerMember"]
    assert result["__typename"] == "MemberPayload", result
    member: dict[str, Any] = result["member"]
    return member


async def community(api: Any, token: str, name: str, **fields: Any) -> str:
    data = await api.ok(CREATE_COMMUNITY, {"input": {"name": name, **fields}}, token=token)
    assert data["createCommunity"]["__typename"] == "CommunityPayload", data
    return str(data["createCommunity"]["community"]["id"])


async def join(api: Any, token: str, community_id: str, member_id: str) -> None:
    data = await api.ok(JOIN, {"c": community_id, "m": member_id}, token=token)
    assert data["joinCommunity"]["__typename"] == "MembershipPayload", data


async def follow(api: Any, token: str, follower: str, followee: str) -> dict[str, Any]:
    data = await api.ok(FOLLOW, {"target": followee, "as": follower}, token=token)
    result: dict[str, Any] = data["followMember"]
    return result


async def post(api: Any, token: str, author: str, community_id: str, title: str, **fields: Any) -> dict[str, Any]:
    data = await api.ok(POST, {"input": {"communityId": community_id, "title": title, "body": fields.pop("body", title + " body"), **fields}, "as": author}, token=token)
    result: dict[str, Any] = data["createContent"]
    return result


def dead_redis() -> Any:
    """A Redis client pointed at a port nobody listens on (Redis "down")."""
    import socket

    import redis.asyncio as aioredis

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
