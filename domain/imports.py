"""Bulk import and export files (批量导入 / 导出): their columns and row validation (pure).

A file set is a folder holding one file per kind, named after the kind, as CSV (UTF-8,
a header row, RFC 4180 quoting: fields may hold commas, quotes and newlines) or JSONL (one
JSON object per line)::

    members.csv  communities.csv  memberships.csv  follows.csv  content.csv
    interactions.csv  products.csv  purchases.csv  referrals.csv      (or .jsonl)

Kinds are read in that order (:data:`IMPORT_ORDER`), so a row only refers to rows of
earlier kinds (or to what is already in the graph). Every file is optional. The columns of
each kind are :data:`SCHEMAS` (``quanzi import --help`` and the README list them):

==============  =================================================================================
kind            columns (``*`` required)
==============  =================================================================================
members         id* (mem_…), displayName*, joinedAt*, channel (default app), level (0), points (0),
                city, phone, wechatId, inviteCode (8 characters; generated from the id when empty),
                marketingConsent (false), profilingConsent (false)
communities     id* (com_…), name*, kind*, channel*, createdAt*, description
memberships     member*, community*, role (member), joinedAt*
follows         follower*, followee*, at*
content         id* (cnt_…), author*, community*, kind*, title, body, createdAt*
interactions    kind* (like / comment / share / favorite), member*, content*, at*, comment (cmt_…,
                required for comments), body (required for comments), count (shares, default 1),
                lastAt (shares, default at)
products        id* (prd_…), sku*, name*, category*, priceAmount* (minor units), priceCurrency (CNY),
                createdAt*
purchases       id* (pur_…), member*, at*, amount* (minor units; must equal the lines' total),
                currency (CNY), channel (app), status (paid), lines* (a JSON list of
                {"product", "qty", "unitPrice"}; in CSV the cell holds that JSON), idempotencyKey
                (default "import:<id>"), attributedTo (mem_…)
referrals       inviter*, invitee*, at*, code, channel, campaignId
==============  =================================================================================

Values: ids are the API's ids (``mem_…``); timestamps are ISO 8601 *with* a time zone
(``2025-03-01T08:30:00+08:00``, ``…Z``) and are stored in UTC; money is an integer number of
minor units (fen: ``12900`` is ¥129.00; ``129.00`` is rejected); booleans are
``true``/``false``; an empty CSV cell or a JSON ``null`` is "no value".

:class:`ImportValidator` checks one row at a time and remembers what it accepted, so it
rejects duplicates (ids, follow pairs, memberships, invite codes...), self-follows,
self-referrals, a second inviter and referral cycles within the file set. References to ids
that no earlier row defined are returned as ``refs`` for the caller to look up in the graph.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from domain.ids import Kind, kind_of
from domain.models import (
    Channel,
    CommunityChannel,
    CommunityKind,
    ContentKind,
    MembershipRole,
    PurchaseStatus,
)

__all__ = [
    "IMPORT_ORDER",
    "SCHEMAS",
    "Accepted",
    "Column",
    "ColumnType",
    "FileKind",
    "ImportValidator",
    "InteractionType",
    "RawRecord",
    "Rejected",
    "export_value",
    "format_datetime",
    "invite_code_for",
    "read_csv",
    "read_jsonl",
]

Row = dict[str, Any]


class FileKind(StrEnum):
    """The kinds of file in a file set, in the order they are imported."""

    MEMBERS = "members"
    COMMUNITIES = "communities"
    MEMBERSHIPS = "memberships"
    FOLLOWS = "follows"
    CONTENT = "content"
    INTERACTIONS = "interactions"
    PRODUCTS = "products"
    PURCHASES = "purchases"
    REFERRALS = "referrals"


IMPORT_ORDER: tuple[FileKind, ...] = tuple(FileKind)


class InteractionType(StrEnum):
    """The ``kind`` column of ``interactions`` (each is its own relationship type in the graph)."""

    LIKE = "like"
    COMMENT = "comment"
    SHARE = "share"
    FAVORITE = "favorite"


class ColumnType(StrEnum):
    ID = "id"
    TEXT = "text"
    INT = "int"
    MONEY = "money"
    BOOL = "bool"
    DATETIME = "datetime"
    ENUM = "enum"
    LINES = "lines"


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a kind: its name in files, its type and whether it is required."""

    name: str
    type: ColumnType
    required: bool = False
    id_kind: Kind | None = None
    choices: tuple[str, ...] = ()
    max_length: int = 200


def _id(name: str, kind: Kind, required: bool = True) -> Column:
    return Column(name, ColumnType.ID, required, id_kind=kind)


def _enum(name: str, choices: Iterable[str], required: bool = False) -> Column:
    return Column(name, ColumnType.ENUM, required, choices=tuple(choices))


def _text(name: str, required: bool = False, max_length: int = 200) -> Column:
    return Column(name, ColumnType.TEXT, required, max_length=max_length)


def _time(name: str, required: bool = True) -> Column:
    return Column(name, ColumnType.DATETIME, required)


SCHEMAS: dict[FileKind, tuple[Column, ...]] = {
    FileKind.MEMBERS: (
        _id("id", Kind.MEMBER), _text("displayName", True, 64), _time("joinedAt"), _enum("channel", Channel),
        Column("level", ColumnType.INT), Column("points", ColumnType.INT), _text("city", max_length=64),
        _text("phone", max_length=32), _text("wechatId", max_length=64), _text("inviteCode", max_length=8),
        Column("marketingConsent", ColumnType.BOOL), Column("profilingConsent", ColumnType.BOOL),
    ),
    FileKind.COMMUNITIES: (
        _id("id", Kind.COMMUNITY), _text("name", True, 100), _enum("kind", CommunityKind, True),
        _enum("channel", CommunityChannel, True), _time("createdAt"), _text("description", max_length=2000),
    ),
    FileKind.MEMBERSHIPS: (
        _id("member", Kind.MEMBER), _id("community", Kind.COMMUNITY), _enum("role", MembershipRole), _time("joinedAt"),
    ),
    FileKind.FOLLOWS: (_id("follower", Kind.MEMBER), _id("followee", Kind.MEMBER), _time("at")),
    FileKind.CONTENT: (
        _id("id", Kind.CONTENT), _id("author", Kind.MEMBER), _id("community", Kind.COMMUNITY),
        _enum("kind", ContentKind, True), _text("title", max_length=200), _text("body", max_length=20_000),
        _time("createdAt"),
    ),
    FileKind.INTERACTIONS: (
        _enum("kind", InteractionType, True), _id("member", Kind.MEMBER), _id("content", Kind.CONTENT), _time("at"),
        _id("comment", Kind.COMMENT, False), _text("body", max_length=5000), Column("count", ColumnType.INT),
        _time("lastAt", False),
    ),
    FileKind.PRODUCTS: (
        _id("id", Kind.PRODUCT), _text("sku", True, 64), _text("name", True, 200), _text("category", True, 64),
        Column("priceAmount", ColumnType.MONEY, True), _text("priceCurrency", max_length=3), _time("createdAt"),
    ),
    FileKind.PURCHASES: (
        _id("id", Kind.PURCHASE), _id("member", Kind.MEMBER), _time("at"), Column("amount", ColumnType.MONEY, True),
        _text("currency", max_length=3), _enum("channel", Channel), _enum("status", PurchaseStatus),
        Column("lines", ColumnType.LINES, True), _text("idempotencyKey", max_length=200),
        _id("attributedTo", Kind.MEMBER, False),
    ),
    FileKind.REFERRALS: (
        _id("inviter", Kind.MEMBER), _id("invitee", Kind.MEMBER), _time("at"), _text("code", max_length=64),
        _enum("channel", Channel), _text("campaignId", max_length=64),
    ),
}

_NODE_KIND: dict[FileKind, Kind] = {
    FileKind.MEMBERS: Kind.MEMBER, FileKind.COMMUNITIES: Kind.COMMUNITY, FileKind.CONTENT: Kind.CONTENT,
    FileKind.PRODUCTS: Kind.PRODUCT, FileKind.PURCHASES: Kind.PURCHASE,
}
_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_MAX_INT = 2**53


class _Bad(Exception):
    """One reason a row is rejected (internal)."""


# --------------------------------------------------------------------------------------
# Records: what a reader yields
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record of a file: the line it starts on and its values (``None``: not parseable)."""

    line: int
    values: Mapping[str, Any] | None
    problem: str | None = None


def read_csv(lines: Iterable[str], *, columns: Iterable[str]) -> tuple[list[str], Iterator[RawRecord]]:
    """The header of a CSV stream and its records (values are strings; ``""`` means none).

    Raises ``ValueError`` when the header is missing, repeats a column, names a column the
    kind does not have, or lacks a required one (a file-level mistake, not a row problem).
    """
    reader = csv.reader(iter(lines), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError("the file is empty (a CSV file needs a header row)") from None
    except csv.Error as exc:
        raise ValueError(f"the header row is not valid CSV ({exc})") from None
    header = [h.strip() for h in header]
    allowed = list(columns)
    unknown = [h for h in header if h not in allowed]
    if unknown:
        raise ValueError(f"unknown column {unknown[0]!r} (columns: {', '.join(allowed)})")
    if len(set(header)) != len(header):
        raise ValueError("a column appears twice in the header")

    def records() -> Iterator[RawRecord]:
        line = reader.line_num + 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RawRecord(line, None, f"not valid CSV ({exc})")
                line = reader.line_num + 1
                continue
            start, line = line, reader.line_num + 1
            if not values:
                continue  # a blank line
            if len(values) != len(header):
                yield RawRecord(start, None, f"has {len(values)} fields but the header has {len(header)}")
                continue
            yield RawRecord(start, {h: (v if v != "" else None) for h, v in zip(header, values, strict=True)})

    return header, records()


def read_jsonl(lines: Iterable[str]) -> Iterator[RawRecord]:
    """The records of a JSONL stream (blank lines are skipped)."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield RawRecord(number, None, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(value, dict):
            yield RawRecord(number, None, "not a JSON object")
            continue
        yield RawRecord(number, value)


# --------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------


def format_datetime(value: datetime) -> str:
    """The canonical text of a timestamp: UTC, microseconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def invite_code_for(member_id: str) -> str:
    """The invite code given to an imported member whose row has none (derived from its id)."""
    digest = int.from_bytes(hashlib.sha256(("invite:" + member_id).encode()).digest()[:5], "big")
    return "".join(_CODE_ALPHABET[(digest >> s) & 31] for s in (35, 30, 25, 20, 15, 10, 5, 0))


def _parse_int(col: Column, raw: Any) -> int:
    if isinstance(raw, bool):
        raise _Bad(f"{col.name} must be an integer, got {raw!r}")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        value = int(raw.strip())
    elif col.type is ColumnType.MONEY and isinstance(raw, (float, str)):
        raise _Bad(f"{col.name} must be an integer amount in minor units (fen, 12900 for ¥129.00), got {raw!r}")
    else:
        raise _Bad(f"{col.name} must be an integer, got {str(raw)[:40]!r}")
    if value < 0:
        raise _Bad(f"{col.name} must not be negative, got {value}")
    if value > _MAX_INT:
        raise _Bad(f"{col.name} is too large ({value})")
    return value


def _parse_bool(col: Column, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise _Bad(f"{col.name} must be true or false, got {str(raw)[:40]!r}")


def _parse_datetime(col: Column, raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise _Bad(f"{col.name} must be an ISO 8601 timestamp, got {raw!r}")
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise _Bad(f"{col.name} must be an ISO 8601 timestamp like 2025-03-01T08:30:00+08:00, got {raw[:40]!r}") from None
    if value.tzinfo is None:
        raise _Bad(f"{col.name} needs a time zone (…Z or …+08:00), got {raw[:40]!r}")
    return value.astimezone(UTC)


def _parse_lines(col: Column, raw: Any) -> list[Row]:
    value = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise _Bad(f'{col.name} must be a JSON list of {{"product", "qty", "unitPrice"}}, got {raw[:40]!r}') from None
    if not isinstance(value, list) or not value:
        raise _Bad(f"{col.name} must be a non-empty list of purchase lines")
    out: list[Row] = []
    for k, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"product", "qty", "unitPrice"}:
            raise _Bad(f'{col.name}[{k}] must be an object with exactly "product", "qty" and "unitPrice"')
        product = item["product"]
        if not isinstance(product, str) or kind_of(product) is not Kind.PRODUCT:
            raise _Bad(f"{col.name}[{k}].product must be a product id like 'prd_…', got {str(product)[:40]!r}")
        qty = _parse_int(Column(f"{col.name}[{k}].qty", ColumnType.INT), item["qty"])
        if qty < 1:
            raise _Bad(f"{col.name}[{k}].qty must be at least 1")
        price = _parse_int(Column(f"{col.name}[{k}].unitPrice", ColumnType.MONEY), item["unitPrice"])
        out.append({"productId": product, "qty": qty, "unitPrice": price})
    products = [ln["productId"] for ln in out]
    if len(set(products)) != len(products):
        raise _Bad(f"{col.name} names a product twice (give one line per product with its qty)")
    return out


def _parse(col: Column, raw: Any) -> Any:
    if col.type is ColumnType.ID:
        if not isinstance(raw, str) or kind_of(raw.strip()) is not col.id_kind:
            assert col.id_kind is not None
            raise _Bad(f"{col.name} must be a {col.id_kind.name.lower()} id like '{col.id_kind.value}_…', got {str(raw)[:60]!r}")
        return raw.strip()
    if col.type is ColumnType.TEXT:
        if not isinstance(raw, str):
            raise _Bad(f"{col.name} must be text, got {raw!r}")
        if len(raw) > col.max_length:
            raise _Bad(f"{col.name} is longer than {col.max_length} characters")
        return raw
    if col.type in (ColumnType.INT, ColumnType.MONEY):
        return _parse_int(col, raw)
    if col.type is ColumnType.BOOL:
        return _parse_bool(col, raw)
    if col.type is ColumnType.DATETIME:
        return _parse_datetime(col, raw)
    if col.type is ColumnType.ENUM:
        if not isinstance(raw, str) or raw.strip() not in col.choices:
            raise _Bad(f"{col.name} must be one of {', '.join(col.choices)}, got {str(raw)[:40]!r}")
        return raw.strip()
    return _parse_lines(col, raw)


def export_value(col: Column, value: Any) -> Any:
    """A graph value as written to a JSONL file (CSV writes ``str`` of it, ``""`` for none)."""
    if value is None:
        return None
    if col.type is ColumnType.DATETIME:
        return format_datetime(value)
    if col.type is ColumnType.LINES:
        return [{"product": ln["productId"], "qty": int(ln["qty"]), "unitPrice": int(ln["unitPrice"])}
                for ln in sorted(value, key=lambda ln: str(ln["productId"]))]
    if col.type in (ColumnType.INT, ColumnType.MONEY):
        return int(value)
    if col.type is ColumnType.BOOL:
        return bool(value)
    return value


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid row: the graph row to write and what must still be checked against the graph.

    ``node`` is the new node's id (checked for not existing yet); ``refs`` are the
    ``(kind, id)`` references no earlier row of the file set defined; ``unique`` are
    ``(key, value)`` pairs that must be free in the tenant (``inviteCode``, ``idempotencyKey``);
    ``invitee`` is set on referrals (the invitee must not have an inviter in the graph yet).
    """

    line: int
    row: Row
    node: str | None = None
    refs: tuple[tuple[Kind, str], ...] = ()
    unique: tuple[tuple[str, str], ...] = ()
    invitee: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A rejected row: the line it starts on and why."""

    line: int
    reason: str


@dataclass
class ImportValidator:
    """Validates rows kind by kind and remembers what it accepted (one per import run).

    ``check(kind, record)`` returns :class:`Accepted` or :class:`Rejected`. A caller that
    later rejects an accepted node row (its id exists in the graph) calls :meth:`forget`.
    """

    known: dict[Kind, set[str]] = field(default_factory=lambda: {k: set() for k in Kind})
    pairs: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    unique: dict[str, set[str]] = field(default_factory=dict)
    inviter_of: dict[str, str] = field(default_factory=dict)

    def forget(self, kind: Kind, node_id: str) -> None:
        self.known[kind].discard(node_id)

    def learn(self, kind: Kind, ids: Iterable[str]) -> None:
        """Remember ids found in the graph, so later rows referring to them need no look-up."""
        self.known[kind].update(ids)

    def check(self, kind: FileKind, record: RawRecord) -> Accepted | Rejected:
        if record.values is None:
            return Rejected(record.line, record.problem or "unreadable")
        try:
            values = self._values(kind, record.values)
            return self._row(kind, record.line, values)
        except _Bad as exc:
            return Rejected(record.line, str(exc))

    def _values(self, kind: FileKind, raw: Mapping[str, Any]) -> Row:
        columns = SCHEMAS[kind]
        names = {c.name for c in columns}
        extra = [k for k in raw if k not in names]
        if extra:
            raise _Bad(f"unknown field {str(extra[0])[:40]!r}")
        out: Row = {}
        for col in columns:
            value = raw.get(col.name)
            if isinstance(value, str) and col.type is not ColumnType.TEXT and not value.strip():
                value = None
            if value is None:
                if col.required:
                    raise _Bad(f"{col.name} is required")
                out[col.name] = None
                continue
            out[col.name] = _parse(col, value)
        return out

    def _ref(self, kind: Kind, value: str, refs: list[tuple[Kind, str]]) -> None:
        if value not in self.known[kind]:
            refs.append((kind, value))

    def _once(self, space: str, key: tuple[str, str], what: str) -> None:
        seen = self.pairs.setdefault(space, set())
        if key in seen:
            raise _Bad(f"duplicate: {what} appears earlier in the file set")
        seen.add(key)

    def _unique(self, space: str, value: str, what: str) -> None:
        seen = self.unique.setdefault(space, set())
        if value in seen:
            raise _Bad(f"duplicate: {what} {value!r} is used by an earlier row")
        seen.add(value)

    def _node(self, kind: FileKind, node_id: str) -> None:
        if node_id in self.known[_NODE_KIND[kind]]:
            raise _Bad(f"duplicate: id {node_id} appears earlier in the file set")

    def _row(self, kind: FileKind, line: int, v: Row) -> Accepted:
        refs: list[tuple[Kind, str]] = []
        if kind is FileKind.MEMBERS:
            self._node(kind, v["id"])
            code = v["inviteCode"] or invite_code_for(v["id"])
            if len(code) != 8 or any(ch not in _CODE_ALPHABET for ch in code):
                raise _Bad(f"inviteCode must be 8 characters from {_CODE_ALPHABET}, got {code!r}")
            self._unique("inviteCode", code, "inviteCode")
            row = {
                "id": v["id"], "displayName": v["displayName"], "joinedAt": v["joinedAt"],
                "channel": v["channel"] or Channel.APP.value, "level": v["level"] or 0, "points": v["points"] or 0,
                "city": v["city"], "phone": v["phone"], "wechatId": v["wechatId"], "inviteCode": code,
                "marketingConsent": bool(v["marketingConsent"]), "profilingConsent": bool(v["profilingConsent"]),
            }
            self.known[Kind.MEMBER].add(v["id"])
            return Accepted(line, _drop_none(row), node=v["id"], unique=(("inviteCode", code),))
        if kind is FileKind.COMMUNITIES:
            self._node(kind, v["id"])
            self.known[Kind.COMMUNITY].add(v["id"])
            return Accepted(line, _drop_none(dict(v)), node=v["id"])
        if kind is FileKind.PRODUCTS:
            self._node(kind, v["id"])
            currency = _currency(v["priceCurrency"], "priceCurrency")
            self._unique("sku", v["sku"], "sku")
            self.known[Kind.PRODUCT].add(v["id"])
            return Accepted(line, {**v, "priceCurrency": currency}, node=v["id"], unique=(("sku", v["sku"]),))
        if kind is FileKind.MEMBERSHIPS:
            self._ref(Kind.MEMBER, v["member"], refs)
            self._ref(Kind.COMMUNITY, v["community"], refs)
            self._once("memberships", (v["member"], v["community"]), "this member and community")
            row = {"a": v["member"], "b": v["community"], "role": v["role"] or MembershipRole.MEMBER.value,
                   "joinedAt": v["joinedAt"]}
            return Accepted(line, row, refs=tuple(refs))
        if kind is FileKind.FOLLOWS:
            if v["follower"] == v["followee"]:
                raise _Bad("a member cannot follow themselves (follower = followee)")
            self._ref(Kind.MEMBER, v["follower"], refs)
            self._ref(Kind.MEMBER, v["followee"], refs)
            self._once("follows", (v["follower"], v["followee"]), "this follower and followee")
            return Accepted(line, {"a": v["follower"], "b": v["followee"], "at": v["at"]}, refs=tuple(refs))
        if kind is FileKind.CONTENT:
            self._node(kind, v["id"])
            self._ref(Kind.MEMBER, v["author"], refs)
            self._ref(Kind.COMMUNITY, v["community"], refs)
            props = {"id": v["id"], "kind": v["kind"], "title": v["title"] or "", "body": v["body"] or "",
                     "createdAt": v["createdAt"]}
            self.known[Kind.CONTENT].add(v["id"])
            return Accepted(line, {"author": v["author"], "community": v["community"], "props": props}, node=v["id"],
                            refs=tuple(refs))
        if kind is FileKind.INTERACTIONS:
            return self._interaction(line, v, refs)
        if kind is FileKind.PURCHASES:
            return self._purchase(line, v, refs)
        return self._referral(line, v, refs)

    def _interaction(self, line: int, v: Row, refs: list[tuple[Kind, str]]) -> Accepted:
        what = InteractionType(v["kind"])
        self._ref(Kind.MEMBER, v["member"], refs)
        self._ref(Kind.CONTENT, v["content"], refs)
        row: Row = {"kind": what.value, "a": v["member"], "b": v["content"], "at": v["at"]}
        if what is InteractionType.COMMENT:
            if v["comment"] is None or not v["body"]:
                raise _Bad("comment and body are required for a comment")
            if v["comment"] in self.known[Kind.COMMENT]:
                raise _Bad(f"duplicate: comment id {v['comment']} appears earlier in the file set")
            self.known[Kind.COMMENT].add(v["comment"])
            row["props"] = {"id": v["comment"], "body": v["body"], "createdAt": v["at"]}
            return Accepted(line, row, node=v["comment"], refs=tuple(refs))
        for name in ("comment", "body"):
            if v[name] is not None:
                raise _Bad(f"{name} is only for comments (kind is {what.value})")
        if what is not InteractionType.SHARE and (v["count"] is not None or v["lastAt"] is not None):
            raise _Bad("count and lastAt are only for shares")
        if what is InteractionType.SHARE:
            count = 1 if v["count"] is None else v["count"]
            if count < 1:
                raise _Bad("count must be at least 1")
            last = v["lastAt"] or v["at"]
            if last < v["at"]:
                raise _Bad("lastAt must not be before at")
            row.update(count=count, lastAt=last)
        self._once(what.value, (v["member"], v["content"]), f"this member's {what.value} of this content")
        return Accepted(line, row, refs=tuple(refs))

    def _purchase(self, line: int, v: Row, refs: list[tuple[Kind, str]]) -> Accepted:
        self._node(FileKind.PURCHASES, v["id"])
        currency = _currency(v["currency"], "currency")
        total = sum(ln["qty"] * ln["unitPrice"] for ln in v["lines"])
        if total != v["amount"]:
            raise _Bad(f"amount {v['amount']} does not match the lines' total {total} (qty × unitPrice)")
        self._ref(Kind.MEMBER, v["member"], refs)
        for ln in v["lines"]:
            self._ref(Kind.PRODUCT, ln["productId"], refs)
        if v["attributedTo"] is not None:
            self._ref(Kind.MEMBER, v["attributedTo"], refs)
        key = v["idempotencyKey"] or f"import:{v['id']}"
        self._unique("idempotencyKey", key, "idempotencyKey")
        props = {
            "id": v["id"], "amount": v["amount"], "currency": currency, "at": v["at"],
            "channel": v["channel"] or Channel.APP.value, "status": v["status"] or PurchaseStatus.PAID.value,
            "idempotencyKey": key, "requestHash": "import", "attributedTo": v["attributedTo"],
        }
        self.known[Kind.PURCHASE].add(v["id"])
        return Accepted(line, {"member": v["member"], "props": _drop_none(props), "lines": v["lines"]}, node=v["id"],
                        refs=tuple(dict.fromkeys(refs)), unique=(("idempotencyKey", key),))

    def _referral(self, line: int, v: Row, refs: list[tuple[Kind, str]]) -> Accepted:
        inviter, invitee = v["inviter"], v["invitee"]
        if inviter == invitee:
            raise _Bad("self-referral: inviter and invitee are the same member")
        if invitee in self.inviter_of:
            raise _Bad(f"second inviter: {invitee} was already invited by {self.inviter_of[invitee]} (earlier row)")
        up, depth = inviter, 0
        while up in self.inviter_of and depth < 100_000:
            up = self.inviter_of[up]
            depth += 1
            if up == invitee:
                raise _Bad(f"referral cycle: {invitee} is already upline of {inviter}")
        self._ref(Kind.MEMBER, inviter, refs)
        self._ref(Kind.MEMBER, invitee, refs)
        self.inviter_of[invitee] = inviter
        row = {"a": inviter, "b": invitee, "at": v["at"], "code": v["code"], "channel": v["channel"],
               "campaignId": v["campaignId"]}
        return Accepted(line, row, refs=tuple(refs), invitee=invitee)


def _currency(value: str | None, name: str) -> str:
    if value is None:
        return "CNY"
    if len(value) != 3 or not value.isascii() or not value.isupper():
        raise _Bad(f"{name} must be a 3-letter ISO 4217 code like CNY, got {value!r}")
    return value


def _drop_none(row: Row) -> Row:
    return {k: v for k, v in row.items() if v is not None}
