"""The five operations of issue 7, as Quanzi and the peer (@neo4j/graphql) each spell them.

Every operation has the two documents, the variables built from the targets the harness
picked in the graph, and a normaliser per side that reduces a response to the same plain
shape (ids, counts, names), so the harness can check that both servers return the same data.

Orders match exactly: where Quanzi pages by ``(key DESC, id DESC)`` the peer sorts by the
same two keys. Quanzi takes the tenant from the bearer token; the peer's types carry an
authorization filter on the token's ``tenant`` claim (see node/typeDefs.graphql), so neither
document names the tenant.

No document selects a DateTime field: the library projects every DateTime through
``apoc.date.convertFormat`` (``DateTimeField.createApocConvertFormat`` in @neo4j/graphql 7),
and the embedded ArcadeDB server has no APOC ("Unknown function: apoc.date.convertformat").
Both sides still sort and filter by ``createdAt`` / ``joinedAt``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TITLE_PREFIX", "Operation", "Targets", "operations"]

#: every post the benchmark creates has a title starting with this, so it can be deleted
TITLE_PREFIX = "peer-bench "

Json = dict[str, Any]


@dataclass(frozen=True)
class Targets:
    """What the operations read, picked from the loaded graph (see bench.pick_targets)."""

    profile_member: str  # the member in at least one community with the most followers
    feed_community: str  # the community with the most posts
    filter_community: str  # the community with the most members
    joined_from: str  # ISO times: a window of that community's join dates
    joined_to: str
    nested_member: str  # a member in several communities with posts
    post_pairs: list[tuple[str, str]] = field(default_factory=list)  # (author, community), one per client


@dataclass(frozen=True)
class Operation:
    key: str
    label: str
    ours: str
    peer: str
    ours_vars: Callable[[Targets, int], Json]  # (targets, client index) -> variables
    peer_vars: Callable[[Targets, int], Json]
    ours_norm: Callable[[Json], Any]
    peer_norm: Callable[[Json], Any]
    mutation: bool = False


# ---------------------------------------------------------------------------------------
# (1) member profile with communities and follower counts
# ---------------------------------------------------------------------------------------

PROFILE_OURS = """query Profile($id: ID!) {
  member(id: $id) {
    id displayName city level
    communities(first: 10) { totalCount nodes { id name } }
    followers { totalCount }
    following { totalCount }
  }
}"""
PROFILE_PEER = """query Profile($id: ID!) {
  members(where: { id: { eq: $id } }) {
    id displayName city level
    communities: communitiesConnection(first: 10, sort: [{ edge: { joinedAt: DESC } }, { node: { id: DESC } }]) {
      edges { node { id name } }
    }
    communityCount: communitiesConnection { totalCount }
    followersConnection { totalCount }
    followingConnection { totalCount }
  }
}"""


def _profile_ours(d: Json) -> Any:
    m = d["member"]
    return {
        "id": m["id"], "displayName": m["displayName"], "city": m["city"], "level": m["level"],
        "communities": [(c["id"], c["name"]) for c in m["communities"]["nodes"]],
        "communityCount": m["communities"]["totalCount"],
        "followers": m["followers"]["totalCount"], "following": m["following"]["totalCount"],
    }


def _profile_peer(d: Json) -> Any:
    (m,) = d["members"]
    return {
        "id": m["id"], "displayName": m["displayName"], "city": m["city"], "level": m["level"],
        "communities": [(e["node"]["id"], e["node"]["name"]) for e in m["communities"]["edges"]],
        "communityCount": m["communityCount"]["totalCount"],
        "followers": m["followersConnection"]["totalCount"], "following": m["followingConnection"]["totalCount"],
    }


# ---------------------------------------------------------------------------------------
# (2) community feed page of 20 with authors and like counts
# ---------------------------------------------------------------------------------------

FEED_OURS = """query Feed($id: ID!) {
  community(id: $id) {
    id name
    feed(first: 20) {
      pageInfo { hasNextPage endCursor }
      edges { node { id title likeCount author { id displayName } } }
    }
  }
}"""
FEED_PEER = """query Feed($id: ID!) {
  communities(where: { id: { eq: $id } }) {
    id name
    contentsConnection(first: 20, sort: [{ node: { createdAt: DESC } }, { node: { id: DESC } }]) {
      pageInfo { hasNextPage endCursor }
      edges { node { id title likedByConnection { totalCount } author { id displayName } } }
    }
  }
}"""


def _feed_ours(d: Json) -> Any:
    c = d["community"]
    return {
        "id": c["id"], "name": c["name"], "hasNextPage": c["feed"]["pageInfo"]["hasNextPage"],
        "posts": [(n["id"], n["title"], n["likeCount"], n["author"]["id"], n["author"]["displayName"])
                  for n in (e["node"] for e in c["feed"]["edges"])],
    }


def _feed_peer(d: Json) -> Any:
    (c,) = d["communities"]
    conn = c["contentsConnection"]
    return {
        "id": c["id"], "name": c["name"], "hasNextPage": conn["pageInfo"]["hasNextPage"],
        "posts": [(n["id"], n["title"], n["likedByConnection"]["totalCount"], n["author"][0]["id"],
                   n["author"][0]["displayName"]) for n in (e["node"] for e in conn["edges"])],
    }


# ---------------------------------------------------------------------------------------
# (3) members filtered by community and join date, 50 per page, with two nested lists
# ---------------------------------------------------------------------------------------

MEMBERS_OURS = """query Members($community: ID!, $from: DateTime!, $to: DateTime!) {
  members(first: 50, orderBy: JOINED_AT_DESC, filter: { communityId: $community, joinedFrom: $from, joinedTo: $to }) {
    pageInfo { hasNextPage endCursor }
    edges {
      node {
        id displayName level
        communities(first: 5) { nodes { id name } }
        followers(first: 5) { nodes { id displayName } }
      }
    }
  }
}"""
MEMBERS_PEER = """query Members($community: ID!, $from: DateTime!, $to: DateTime!) {
  membersConnection(
    first: 50
    sort: [{ joinedAt: DESC }, { id: DESC }]
    where: { joinedAt: { gte: $from, lt: $to }, communities: { some: { id: { eq: $community } } } }
  ) {
    pageInfo { hasNextPage endCursor }
    edges {
      node {
        id displayName level
        communitiesConnection(first: 5, sort: [{ edge: { joinedAt: DESC } }, { node: { id: DESC } }]) {
          edges { node { id name } }
        }
        followersConnection(first: 5, sort: [{ edge: { at: DESC } }, { node: { id: DESC } }]) {
          edges { node { id displayName } }
        }
      }
    }
  }
}"""


def _members_ours(d: Json) -> Any:
    conn = d["members"]
    return {
        "hasNextPage": conn["pageInfo"]["hasNextPage"],
        "members": [(n["id"], n["displayName"], n["level"],
                     [(c["id"], c["name"]) for c in n["communities"]["nodes"]],
                     [(f["id"], f["displayName"]) for f in n["followers"]["nodes"]])
                    for n in (e["node"] for e in conn["edges"])],
    }


def _members_peer(d: Json) -> Any:
    conn = d["membersConnection"]
    return {
        "hasNextPage": conn["pageInfo"]["hasNextPage"],
        "members": [(n["id"], n["displayName"], n["level"],
                     [(c["node"]["id"], c["node"]["name"]) for c in n["communitiesConnection"]["edges"]],
                     [(f["node"]["id"], f["node"]["displayName"]) for f in n["followersConnection"]["edges"]])
                    for n in (e["node"] for e in conn["edges"])],
    }


# ---------------------------------------------------------------------------------------
# (4) three levels: member -> communities -> recent posts -> authors
# ---------------------------------------------------------------------------------------

NESTED_OURS = """query Nested($id: ID!) {
  member(id: $id) {
    id displayName
    communities(first: 5) {
      nodes {
        id name
        feed(first: 10) { nodes { id title author { id displayName } } }
      }
    }
  }
}"""
NESTED_PEER = """query Nested($id: ID!) {
  members(where: { id: { eq: $id } }) {
    id displayName
    communitiesConnection(first: 5, sort: [{ edge: { joinedAt: DESC } }, { node: { id: DESC } }]) {
      edges {
        node {
          id name
          contentsConnection(first: 10, sort: [{ node: { createdAt: DESC } }, { node: { id: DESC } }]) {
            edges { node { id title author { id displayName } } }
          }
        }
      }
    }
  }
}"""


def _nested_ours(d: Json) -> Any:
    m = d["member"]
    return {
        "id": m["id"], "displayName": m["displayName"],
        "communities": [(c["id"], c["name"], [(p["id"], p["title"], p["author"]["id"], p["author"]["displayName"])
                                              for p in c["feed"]["nodes"]])
                        for c in m["communities"]["nodes"]],
    }


def _nested_peer(d: Json) -> Any:
    (m,) = d["members"]
    return {
        "id": m["id"], "displayName": m["displayName"],
        "communities": [(c["id"], c["name"], [(p["id"], p["title"], p["author"][0]["id"], p["author"][0]["displayName"])
                                              for p in (e["node"] for e in c["contentsConnection"]["edges"])])
                        for c in (e["node"] for e in m["communitiesConnection"]["edges"])],
    }


# ---------------------------------------------------------------------------------------
# (5) create with relationships: a post by a member in one of its communities
# ---------------------------------------------------------------------------------------

POST_OURS = """mutation Post($author: ID!, $community: ID!, $title: String!, $body: String!) {
  createContent(asMemberId: $author, input: { communityId: $community, kind: POST, title: $title, body: $body }) {
    __typename
    ... on ContentPayload { content { id title author { id displayName } community { id name } } }
  }
}"""
POST_PEER = """mutation Post($author: ID!, $community: ID!, $title: String!, $body: String!) {
  createContents(input: [{
    kind: "post", title: $title, body: $body
    author: { connect: [{ where: { node: { id: { eq: $author } } } }] }
    community: { connect: [{ where: { node: { id: { eq: $community } } } }] }
  }]) {
    contents { id title author { id displayName } community { id name } }
  }
}"""


def _post_vars(t: Targets, i: int) -> Json:
    author, community = t.post_pairs[i % len(t.post_pairs)]
    return {"author": author, "community": community, "title": f"{TITLE_PREFIX}{i}",
            "body": "基准测试的帖子 (a benchmark post; deleted when the run ends)"}


def _post_ours(d: Json) -> Any:
    r = d["createContent"]
    if r["__typename"] != "ContentPayload":
        return {"error": r["__typename"]}
    c = r["content"]
    return {"title": c["title"], "author": (c["author"]["id"], c["author"]["displayName"]),
            "community": (c["community"]["id"], c["community"]["name"]), "idPrefix": c["id"][:4]}


def _post_peer(d: Json) -> Any:
    (c,) = d["createContents"]["contents"]
    return {"title": c["title"], "author": (c["author"][0]["id"], c["author"][0]["displayName"]),
            "community": (c["community"][0]["id"], c["community"][0]["name"]), "idPrefix": c["id"][:4]}


def operations() -> list[Operation]:
    """The five operations, reads first (the mutation adds posts the reads would see)."""
    return [
        Operation("profile", "member profile", PROFILE_OURS, PROFILE_PEER,
                  lambda t, i: {"id": t.profile_member}, lambda t, i: {"id": t.profile_member},
                  _profile_ours, _profile_peer),
        Operation("feed", "community feed, 20", FEED_OURS, FEED_PEER,
                  lambda t, i: {"id": t.feed_community}, lambda t, i: {"id": t.feed_community},
                  _feed_ours, _feed_peer),
        Operation("members", "members by community + join date, 50, 2 nested lists", MEMBERS_OURS, MEMBERS_PEER,
                  lambda t, i: {"community": t.filter_community, "from": t.joined_from, "to": t.joined_to},
                  lambda t, i: {"community": t.filter_community, "from": t.joined_from, "to": t.joined_to},
                  _members_ours, _members_peer),
        Operation("nested", "member > communities > posts > authors", NESTED_OURS, NESTED_PEER,
                  lambda t, i: {"id": t.nested_member}, lambda t, i: {"id": t.nested_member},
                  _nested_ours, _nested_peer),
        Operation("post", "create post (POSTED + IN)", POST_OURS, POST_PEER, _post_vars, _post_vars,
                  _post_ours, _post_peer, mutation=True),
    ]
