"""Keyset pages from the graph: one statement returns every parent's page at once.

Nested connections (a member's followers, a community's feed) are loaded for many
parents in one round trip: the statement takes ``$ids`` and returns one row per parent
with ``items``, a list already sorted and cut to ``$limit`` (= first + 1, the extra item
tells whether a next page exists).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from domain.errors import ValidationFailed
from domain.models import Page
from domain.pagination import decode_cursor, encode_cursor
from graph.client import from_micros, to_datetime, to_micros

__all__ = ["TimeKey", "time_after", "time_key", "page_of", "pages_by_parent"]

T = TypeVar("T")
Item = Mapping[str, Any]


class TimeKey:
    """Decoded ``[time µs, id]`` cursor: the position after which a page starts."""

    __slots__ = ("at", "id")

    def __init__(self, at: datetime | None, id: str) -> None:
        self.at = at
        self.id = id

    def params(self) -> dict[str, Any]:
        return {"afterAt": self.at, "afterId": self.id}


def time_after(after: str | None, *, field: str = "after") -> TimeKey:
    key = decode_cursor(after, arity=2, field=field)
    if key is None:
        return TimeKey(None, "")
    at, id_ = key
    if not isinstance(at, int) or not isinstance(id_, str):
        raise ValidationFailed(f"{field} is not a cursor returned by this connection", field=field)
    return TimeKey(from_micros(at), id_)


def time_key(at: Any, id_: str) -> list[Any]:
    return [to_micros(to_datetime(at)), id_]


def page_of(items: Sequence[Item], first: int, convert: Callable[[Item], T], key: Callable[[Item], list[Any]]) -> Page[T]:
    """One page from up to first + 1 sorted items."""
    shown = items[:first]
    return Page(
        items=tuple(convert(i) for i in shown),
        cursors=tuple(encode_cursor(key(i)) for i in shown),
        has_next=len(items) > first,
    )


def pages_by_parent(
    rows: Sequence[Mapping[str, Any]],
    parent_ids: Sequence[str],
    first: int,
    convert: Callable[[Item], T],
    key: Callable[[Item], list[Any]],
) -> list[Page[T]]:
    """Split ``(pid, items)`` rows into one page per requested parent, in request order."""
    by_parent = {row["pid"]: row["items"] for row in rows}
    return [page_of(by_parent.get(pid) or [], first, convert, key) for pid in parent_ids]
