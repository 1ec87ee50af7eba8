"""Walk the live GraphQL schema, and fingerprint the graph: helpers of the isolation and hostile suites.

* :data:`SCHEMA` is the graphql-core schema the app serves (built from ``resolvers.schema``), so the
  suites enumerate every root field, argument and input field instead of keeping a list by hand.
* :func:`selection` writes a selection set that reads everything a type exposes a few levels down
  (every union member and interface implementation included), small enough for the query limits.
* :func:`string_slots` lists every place a root field takes a string (``String`` or ``ID``), also
  inside input objects and lists, with a valid value for everything around it.
* :func:`graph_fingerprint` digests nodes and relationships (labels, types, every property) so a
  test can show that some part of the graph did not change.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    get_named_type,
    is_leaf_type,
)
from graphql.language import Lexer, Source, TokenKind
from graphql.pyutils import Undefined

from resolvers.schema import build_schema

__all__ = [
    "ID_RE",
    "ROOTS",
    "SCHEMA",
    "FingerPrint",
    "StringSlot",
    "classify",
    "count_tokens",
    "error_codes",
    "graph_fingerprint",
    "operation",
    "redis_fingerprint",
    "root_fields",
    "root_type",
    "selection",
    "string_slots",
    "tenant_strings",
    "valid_value",
]

SCHEMA: GraphQLSchema = build_schema()._schema
ROOTS = ("query", "mutation", "subscription")
#: every id the application makes: ``<kind>_<token>`` (webhooks: ``whk_<hex>``)
ID_RE = re.compile(r"\b(?:ten|mem|com|cnt|cmt|tag|prd|pur|evt|cpg|whk|seg|grb|cpn|pts)_[A-Za-z0-9]{1,40}\b")


def root_type(kind: str) -> GraphQLObjectType:
    t = {"query": SCHEMA.query_type, "mutation": SCHEMA.mutation_type, "subscription": SCHEMA.subscription_type}[kind]
    assert t is not None
    return t


def root_fields(kind: str) -> dict[str, GraphQLField]:
    return dict(root_type(kind).fields)


# --- selections ---------------------------------------------------------------------------------

#: connection parts that repeat what ``nodes`` already reads
_SKIP = frozenset({"edges", "pageInfo"})


def _args_for_nested(field: GraphQLField) -> str | None:
    """Arguments for a nested field: small pages; None when a required argument has no default."""
    parts = []
    for name, arg in field.args.items():
        if name == "first":
            parts.append("first: 2")
        elif isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined:
            return None
    return "(" + ", ".join(parts) + ")" if parts else ""


def _fields(t: GraphQLObjectType | GraphQLInterfaceType, depth: int) -> list[str]:
    out = []
    for name, field in t.fields.items():
        if name in _SKIP:
            continue
        named = get_named_type(field.type)
        args = _args_for_nested(field)
        if args is None:
            continue
        if is_leaf_type(named):
            out.append(name + args)
        elif depth > 0:
            out.append(name + args + " " + selection(field.type, depth - 1))
    return out


def _alias_conflicts(fragments: list[tuple[GraphQLObjectType, list[str]]]) -> list[tuple[GraphQLObjectType, list[str]]]:
    """Alias fields that two fragments read with different types (GraphQL refuses to merge them)."""
    types: dict[str, set[str]] = {}
    for t, fields in fragments:
        for f in fields:
            name = f.split("(")[0].split(" ")[0]
            types.setdefault(name, set()).add(str(t.fields[name].type))
    out = []
    for t, fields in fragments:
        renamed = []
        for f in fields:
            name = f.split("(")[0].split(" ")[0]
            renamed.append(f"{t.name}_{name}: {f}" if len(types[name]) > 1 else f)
        out.append((t, renamed))
    return out


def selection(t: GraphQLOutputType | GraphQLNamedType, depth: int = 2) -> str:
    """A selection set reading every field of *t* down to *depth* object levels ('' for leaves)."""
    named = get_named_type(t)
    if is_leaf_type(named):
        return ""
    parts = ["__typename"]
    fragments: list[tuple[GraphQLObjectType, list[str]]] = []
    if isinstance(named, GraphQLUnionType):
        fragments = [(member, _fields(member, depth)) for member in named.types]
    elif isinstance(named, GraphQLInterfaceType):
        parts += _fields(named, depth)
        fragments = [(impl, [f for f in _fields(impl, depth) if f.split("(")[0].split(" ")[0] not in named.fields])
                     for impl in SCHEMA.get_possible_types(named)]
    else:
        assert isinstance(named, GraphQLObjectType)
        parts += _fields(named, depth)
    for member, inner in _alias_conflicts(fragments):
        if inner:
            parts.append(f"... on {member.name} {{ {' '.join(inner)} }}")
    return "{ " + " ".join(parts) + " }"


def operation(kind: str, field: str, args: dict[str, Any], *, depth: int = 2, sel: str | None = None) -> str:
    """``kind($a: T, ...) { field(a: $a, ...) <selection> }`` with the schema's own argument types."""
    f = root_fields(kind)[field]
    unknown = set(args) - set(f.args)
    assert not unknown, f"{field} has no arguments {unknown}"
    defs = ", ".join(f"${name}: {f.args[name].type}" for name in args)
    call = ", ".join(f"{name}: ${name}" for name in args)
    head = f"{kind}({defs})" if defs else kind
    body = f"{field}({call})" if call else field
    return f"{head} {{ {body} {selection(f.type, depth) if sel is None else sel} }}"


def count_tokens(document: str) -> int:
    lexer = Lexer(Source(document))
    n = 0
    while lexer.advance().kind is not TokenKind.EOF:
        n += 1
    return n


# --- valid values and string slots -------------------------------------------------------------


def valid_value(t: GraphQLInputType, ids: Callable[[str], str], path: str = "", *, toward: str = "") -> Any:
    """A value of input type *t* that passes GraphQL validation (``ids(path)`` picks ID values).

    Optional input fields are filled when worth reaching or when they lie on the path *toward*.
    """
    if isinstance(t, GraphQLNonNull):
        return valid_value(t.of_type, ids, path, toward=toward)
    if isinstance(t, GraphQLList):
        return [valid_value(t.of_type, ids, path + "[0]", toward=toward)]
    if isinstance(t, GraphQLEnumType):
        return next(iter(t.values))
    if isinstance(t, GraphQLInputObjectType):
        def wanted(name: str, f: Any) -> bool:
            sub = f"{path}.{name}"
            on_path = toward == sub or toward.startswith((sub + ".", sub + "["))
            return isinstance(f.type, GraphQLNonNull) or name in _USEFUL_OPTIONAL or on_path
        return {name: valid_value(f.type, ids, f"{path}.{name}", toward=toward) for name, f in t.fields.items()
                if wanted(name, f)}
    assert isinstance(t, GraphQLScalarType)
    return _SCALARS[t.name](ids, path)


#: optional input fields worth filling so that more code runs
_USEFUL_OPTIONAL = frozenset({"city", "description", "nameContains", "phone", "wechatId"})


def _datetime(offset_days: int) -> Callable[[Callable[[str], str], str], str]:
    return lambda ids, path: (datetime.now(UTC) + timedelta(days=offset_days)).isoformat()


_SCALARS: dict[str, Callable[[Callable[[str], str], str], Any]] = {
    "String": lambda ids, path: "hello" if not path.endswith("url") else "https://example.com/hook",
    "ID": lambda ids, path: ids(path),
    "Int": lambda ids, path: 1,
    "Float": lambda ids, path: 0.5,
    "Boolean": lambda ids, path: True,
    "DateTime": lambda ids, path: (datetime.now(UTC) + timedelta(days=1 if "end" in path.lower() else -1)).isoformat(),
    "MinorUnits": lambda ids, path: 100,
}


@dataclass(frozen=True)
class StringSlot:
    """One place a root field takes a string: ``path`` like ``input.lines[0].productId``."""

    kind: str
    field: str
    path: str
    type_name: str  # String or ID

    def set(self, args: dict[str, Any], value: str) -> dict[str, Any]:
        """A deep copy of *args* with *value* at this slot."""
        copy = json.loads(json.dumps(args))
        target: Any = copy
        keys = re.findall(r"[^.\[\]]+|\[\d+\]", self.path)
        for key in keys[:-1]:
            target = target[int(key[1:-1])] if key.startswith("[") else target.setdefault(key, {})
        last = keys[-1]
        if last.startswith("["):
            target[int(last[1:-1])] = value
        else:
            target[last] = value
        return copy  # type: ignore[no-any-return]


def _slots_in(t: GraphQLInputType, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(t, GraphQLNonNull):
        yield from _slots_in(t.of_type, path)
    elif isinstance(t, GraphQLList):
        yield from _slots_in(t.of_type, path + "[0]")
    elif isinstance(t, GraphQLInputObjectType):
        for name, f in t.fields.items():
            yield from _slots_in(f.type, f"{path}.{name}")
    elif isinstance(t, GraphQLScalarType) and t.name in ("String", "ID"):
        yield path, t.name


def string_slots() -> list[StringSlot]:
    """Every String/ID argument of every root field, nested input fields and list items included."""
    out = []
    for kind in ROOTS:
        for fname, field in root_fields(kind).items():
            for aname, arg in field.args.items():
                for path, type_name in _slots_in(arg.type, aname):
                    out.append(StringSlot(kind, fname, path, type_name))
    return out


# --- responses ----------------------------------------------------------------------------------


def error_codes(body: dict[str, Any]) -> list[str]:
    return [str((e.get("extensions") or {}).get("code")) for e in body.get("errors") or []]


def classify(body: dict[str, Any], field: str) -> str:
    """What a response says about one root field.

    ``absent``: null, an empty list or connection, a NOT_FOUND error, or a typed NotFoundError.
    ``error:<CODE>``: another error (GraphQL error or typed UserError). ``ok``: data.
    """
    codes = error_codes(body)
    value = (body.get("data") or {}).get(field)
    if codes:
        return "absent" if set(codes) == {"NOT_FOUND"} else "error:" + ",".join(sorted(set(codes)))
    if value is None or value == []:
        return "absent"
    if isinstance(value, dict):
        typename = value.get("__typename")
        if typename == "NotFoundError":
            return "absent"
        if isinstance(typename, str) and typename.endswith("Error") and "code" in value:
            return "error:" + str(value["code"])
        if value.get("totalCount") == 0 and not value.get("nodes"):
            return "absent"
    return "ok"


# --- graph fingerprints -------------------------------------------------------------------------

NODES = "MATCH (n) WHERE n.tenantId IS NOT NULL RETURN n.tenantId AS tenant, labels(n) AS labels, properties(n) AS props"
RELS = """
MATCH (a)-[r]->(b)
RETURN a.tenantId AS ta, b.tenantId AS tb, type(r) AS type, a.id AS a, b.id AS b, properties(r) AS props
"""


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # temporal values


@dataclass(frozen=True)
class FingerPrint:
    """Counts by label and relationship type, and a digest of every property, per tenant."""

    nodes: dict[str, Counter[str]]
    rels: dict[str, Counter[str]]
    digests: dict[str, str]
    cross_tenant: tuple[tuple[str, str, str], ...]  # (type, a, b) of relationships joining two tenants

    def only(self, tenants: set[str] | None = None, *, without: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
        keys = set(self.digests) if tenants is None else tenants
        keys -= without
        return {t: (dict(self.nodes.get(t, {})), dict(self.rels.get(t, {})), self.digests.get(t)) for t in sorted(keys)}


async def graph_fingerprint(graph: Any, *, skip_labels: frozenset[str] = frozenset()) -> FingerPrint:
    """Every node that has a tenantId and every relationship, grouped by the tenant they belong to.

    Events of the outbox (``Event``) are included: a request must not write any for another tenant.
    Nodes with a label in *skip_labels* (e.g. the audit log, which reads append to) are left out.
    """
    nodes: dict[str, Counter[str]] = {}
    rels: dict[str, Counter[str]] = {}
    hashes: dict[str, Any] = {}
    for row in await graph.read(NODES):
        t = str(row["tenant"])
        label = ":".join(sorted(row["labels"]))
        if skip_labels.intersection(row["labels"]):
            continue
        nodes.setdefault(t, Counter())[label] += 1
        hashes.setdefault(t, []).append(json.dumps([label, _plain(dict(row["props"]))], sort_keys=True))
    cross = []
    for row in await graph.read(RELS):
        ta, tb = row["ta"], row["tb"]
        t = str(ta if ta is not None else tb)
        if ta is not None and tb is not None and ta != tb:
            cross.append((row["type"], str(row["a"]), str(row["b"])))
        rels.setdefault(t, Counter())[row["type"]] += 1
        hashes.setdefault(t, []).append(json.dumps([row["type"], row["a"], row["b"], _plain(dict(row["props"]))],
                                                   sort_keys=True))
    digests = {t: hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest() for t, items in hashes.items()}
    return FingerPrint(nodes, rels, digests, tuple(sorted(cross)))


async def tenant_strings(graph: Any, tenant: str) -> set[str]:
    """Every string property value of the tenant's nodes and relationships that could identify its data."""
    out: set[str] = set()
    rows = await graph.read("MATCH (n) WHERE n.tenantId = $tenant RETURN properties(n) AS props", tenant=tenant)
    for row in rows:
        for key, value in dict(row["props"]).items():
            if key in _DESCRIPTIVE and isinstance(value, str) and (len(value) >= 4 or (len(value) >= 2 and not value.isascii())):
                out.add(value)  # short ASCII strings would match by chance; two Chinese characters do not
    return out


#: properties whose values name, identify or describe a tenant's data (not enums, dates or flags)
_DESCRIPTIVE = frozenset({
    "id", "displayName", "phone", "wechatId", "inviteCode", "name", "title", "body", "description", "sku",
    "idempotencyKey", "url", "secret", "city",
})


async def redis_fingerprint(redis: Any, patterns: list[str]) -> dict[str, Any]:
    """Keys matching *patterns* with their type and content (streams: length and last id)."""
    out: dict[str, Any] = {}
    for pattern in patterns:
        async for raw in redis.scan_iter(match=pattern, count=1000):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            kind = (await redis.type(key)).decode()
            if kind == "string":
                value: Any = await redis.get(key)
            elif kind == "hash":
                value = sorted((await redis.hgetall(key)).items())
            elif kind == "zset":
                value = await redis.zrange(key, 0, -1, withscores=True)
            elif kind == "list":
                value = await redis.lrange(key, 0, -1)
            elif kind == "set":
                value = sorted(await redis.smembers(key))
            elif kind == "stream":
                info = await redis.xinfo_stream(key)
                value = (info["length"], info["last-generated-id"])
            else:
                value = None
            out[key] = (kind, repr(value))
    return out
