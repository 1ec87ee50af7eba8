"""Stable string ids.

Every node id is ``<prefix>_<token>`` where the prefix names the kind of object
(``mem_``, ``com_`` ...). Ids are globally unique, stable for integrators and double as
Relay global ids: ``node(id)`` reads the kind from the prefix.
"""

from __future__ import annotations

import re
import secrets
from enum import StrEnum

from domain.errors import ValidationFailed

__all__ = ["ID_PATTERN", "Kind", "kind_of", "new_id", "require_id"]


class Kind(StrEnum):
    TENANT = "ten"
    MEMBER = "mem"
    COMMUNITY = "com"
    CONTENT = "cnt"
    COMMENT = "cmt"
    TAG = "tag"
    PRODUCT = "prd"
    PURCHASE = "pur"
    EVENT = "evt"
    CAMPAIGN = "cpg"
    GROUP_BUY = "grb"
    COUPON = "cpn"
    POINTS_ENTRY = "pts"


ID_PATTERN = re.compile(r"^(ten|mem|com|cnt|cmt|tag|prd|pur|evt|cpg|grb|cpn|pts)_[A-Za-z0-9]{1,40}$")
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_id(kind: Kind) -> str:
    """A new random id of *kind* (16 base-36 characters, about 82 bits)."""
    return kind.value + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(16))


def kind_of(value: str) -> Kind | None:
    """The kind encoded in *value*, or ``None`` when it is not a well-formed id."""
    if not ID_PATTERN.match(value):
        return None
    return Kind(value[:3])


def require_id(value: str, kind: Kind, *, field: str) -> str:
    """Return *value* when it is a well-formed id of *kind*, else raise ``ValidationFailed``."""
    if kind_of(value) is not kind:
        raise ValidationFailed(
            f"{field} must be a {kind.name.lower()} id like '{kind.value}_…', got {value[:60]!r}",
            field=field,
        )
    return value
