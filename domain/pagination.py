"""Keyset cursors and page-size rules for Relay connections.

A cursor is the opaque, URL-safe encoding of the sort key of the last row seen (for
example ``[joinedAt epoch ms, id]``). Pages are read with ``WHERE key < cursor`` instead of
``SKIP``, so page 1,000 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from domain.errors import ValidationFailed

__all__ = ["MAX_PAGE_SIZE", "DEFAULT_PAGE_SIZE", "page_size", "encode_cursor", "decode_cursor"]

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


def page_size(first: int | None, *, field: str = "first") -> int:
    """Validate ``first``: 0..100, default 20."""
    if first is None:
        return DEFAULT_PAGE_SIZE
    if first < 0 or first > MAX_PAGE_SIZE:
        raise ValidationFailed(f"{field} must be between 0 and {MAX_PAGE_SIZE}, got {first}", field=field)
    return first


def encode_cursor(key: list[Any]) -> str:
    raw = json.dumps(key, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, arity: int, field: str = "after") -> list[Any] | None:
    """Decode a cursor made by :func:`encode_cursor` with *arity* parts, or raise."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeError):
        raise ValidationFailed(f"{field} is not a cursor returned by this connection", field=field) from None
    if not isinstance(key, list) or len(key) != arity or not all(
        isinstance(v, (str, int)) and not isinstance(v, bool) for v in key
    ):
        raise ValidationFailed(f"{field} is not a cursor returned by this connection", field=field)
    return key
