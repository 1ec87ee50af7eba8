"""Look-ahead: what a document selects below the field being resolved (issue 7).

A resolver that knows what its result's nodes will be asked for can load a page together
with what the document nests in it (a feed's authors and counts) in one round trip, and
hand the nested resolvers ready objects, which they return without an await.

These read graphql-core's field nodes directly: Strawberry's ``info.selected_fields``
converts the whole sub-tree (arguments and all) on every call, which showed in the profile
of a page of 50 members with two nested connections each. ``@skip``/``@include`` are not
evaluated: a field they would drop still counts as selected, so a look-ahead may load a
little more than asked, never less.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    SelectionSetNode,
    VariableNode,
)
from strawberry.types import Info
from strawberry.types.nodes import get_variable_values

from domain.models import Member, Membership, Page

__all__ = [
    "FEED_NESTED", "Preloaded", "nested_first", "node_fields", "preload_member_pages", "selects_beyond",
]

#: fields of Content that the feed look-ahead loads with the page (author, counts)
FEED_NESTED = frozenset({"author", "likeCount", "commentCount", "shareCount", "favoriteCount"})


def _fields(selection_set: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode]) -> Iterator[FieldNode]:
    """The fields of a selection set, fragments (inline and named) flattened."""
    if selection_set is None:
        return
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            yield sel
        elif isinstance(sel, InlineFragmentNode):
            yield from _fields(sel.selection_set, fragments)
        elif isinstance(sel, FragmentSpreadNode):
            found = fragments.get(sel.name.value)
            if found is not None:
                yield from _fields(found.selection_set, fragments)


def node_fields(info: Info[Any, Any]) -> frozenset[str]:
    """Names selected on the nodes of the connection being resolved (``nodes`` and ``edges.node``)."""
    raw = info._raw_info
    names: set[str] = set()
    for field in raw.field_nodes:
        for sub in _fields(field.selection_set, raw.fragments):
            if sub.name.value == "nodes":
                names.update(f.name.value for f in _fields(sub.selection_set, raw.fragments))
            elif sub.name.value == "edges":
                for edge in _fields(sub.selection_set, raw.fragments):
                    if edge.name.value == "node":
                        names.update(f.name.value for f in _fields(edge.selection_set, raw.fragments))
    return frozenset(names)


def selects_beyond(info: Info[Any, Any], names: frozenset[str]) -> bool:
    """Whether the field being resolved selects anything other than *names* directly below it."""
    raw = info._raw_info
    return any(sub.name.value not in names for field in raw.field_nodes for sub in _fields(field.selection_set, raw.fragments))


def _node_field_nodes(info: Info[Any, Any], name: str) -> list[FieldNode]:
    """Every occurrence of field *name* on the nodes of the connection being resolved."""
    raw = info._raw_info
    found: list[FieldNode] = []
    for field in raw.field_nodes:
        for sub in _fields(field.selection_set, raw.fragments):
            if sub.name.value == "nodes":
                found += [f for f in _fields(sub.selection_set, raw.fragments) if f.name.value == name]
            elif sub.name.value == "edges":
                for edge in _fields(sub.selection_set, raw.fragments):
                    if edge.name.value == "node":
                        found += [f for f in _fields(edge.selection_set, raw.fragments) if f.name.value == name]
    return found


def nested_first(info: Info[Any, Any], name: str, *, default: int = 20) -> int | None:
    """The ``first`` that the nodes' connection field *name* asks for, when it can be loaded ahead.

    None unless every occurrence asks for the same first page (no ``after``, one ``first``)
    of an item list (not only ``totalCount``), and ``first`` is a valid page size; a bad value
    is then left to the field's own resolver, which reports it as before.
    """
    from domain.errors import QuanziError
    from domain.pagination import page_size

    raw = info._raw_info
    variables = get_variable_values(raw)
    firsts: set[int] = set()
    for node in _node_field_nodes(info, name):
        args: dict[str, Any] = {}
        for arg in node.arguments or ():
            value = arg.value
            if isinstance(value, VariableNode):
                args[arg.name.value] = variables.get(value.name.value)
            elif isinstance(value, IntValueNode):
                args[arg.name.value] = int(value.value)
            elif isinstance(value, NullValueNode):
                args[arg.name.value] = None
            else:
                return None  # not a page size or a null cursor: leave it to the field
        if set(args) - {"first", "after"} or args.get("after") is not None:
            return None
        if not any(f.name.value not in ("totalCount", "__typename") for f in _fields(node.selection_set, raw.fragments)):
            return None
        try:
            firsts.add(page_size(args.get("first", default)))
        except (QuanziError, TypeError):
            return None
    return firsts.pop() if len(firsts) == 1 else None


@dataclass(slots=True)
class Preloaded:
    """A member's first pages loaded with its list (see :func:`preload_member_pages`)."""

    communities: tuple[int, Page[Membership]] | None = None
    followers: tuple[int, Page[Member]] | None = None


async def preload_member_pages(info: Info[Any, Any], ids: Sequence[str]) -> dict[str, Preloaded]:
    """For a member list whose nodes nest ``communities`` and/or ``followers`` (first page),
    load both for every member in one round trip; member id -> what was loaded ({} for none)."""
    communities, followers = nested_first(info, "communities"), nested_first(info, "followers")
    if not ids or (communities is None and followers is None):
        return {}
    context = info.context
    pages = await context.repos.members.first_pages(context.tenant, ids, communities=communities, followers=followers)
    return {
        member_id: Preloaded(
            communities=None if communities is None else (communities, c),
            followers=None if followers is None else (followers, f),
        )
        for member_id, (c, f) in zip(ids, pages)
    }

