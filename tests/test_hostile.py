"""Hostile input suite: what the public internet may send, through the real app.

Every input goes through the real ASGI app (httpx) or, for raw bytes and websockets, through a real
uvicorn. For each one:

* the HTTP status is below 500;
* every error has a non-empty message and an ``extensions.code``, never ``INTERNAL``;
* the graph does not change where it must not: reads run as principals of a tenant R and must
  change nothing anywhere (the audit log of personal-data reads aside); mutations run as
  principals of a tenant W, and one that is refused must leave W exactly as it was. At the end of
  every test the whole database outside W is compared with the fingerprint taken at the start.

Categories: queries generated from the schema with Hypothesis (random fields, nesting, arguments of
right and wrong types, variables), deep nesting, alias and fragment bombs, huge lists and pages,
malformed JSON, wrong variable types for every argument, Cypher-injection strings in every string
argument of every root field, over-long strings, invalid unicode (lone surrogates, invalid UTF-8),
GET requests, wrong content types, batches, persisted-query abuse, raw HTTP and websocket frames.

The counts (inputs, rejected, 5xx) are printed (``pytest -s``) and written to
``benchmarks/results/hostile.md``.
"""

from __future__ import annotations

import asyncio
import json
import platform
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
import websockets
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    get_named_type,
    is_leaf_type,
)
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from api.settings import Settings
from graph.client import GraphClient
from tests.conftest import Api
from tests.helpers import community, follow, join, post, register
from tests.schema_walk import (
    ROOTS,
    SCHEMA,
    FingerPrint,
    StringSlot,
    graph_fingerprint,
    operation,
    root_fields,
    root_type,
    string_slots,
    valid_value,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "hostile.md"

#: strings that would break a query built by concatenation (Cypher, JSON, shell, templates)
INJECTIONS = [
    "' OR 1=1 //",
    '"}) MATCH (n) DETACH DELETE n //',
    "x` DETACH DELETE n //`",
    "$tenant",
    "') RETURN 1 UNION MATCH (n) RETURN n //",
    "\\u0027 OR \\u0027a\\u0027=\\u0027a",
    "{{7*7}} ${7*7} %s %n",
    "mem_aaaaaaaaaaaaaaaa' OR 1=1 //",
]
#: strange but valid or invalid text: lone surrogates, NUL, direction overrides, non-characters
UNICODE = ["\ud800", "a\udfffb\ud800", "nul\x00byte", "\u202eevil\u202c\uffff", "😀" * 20 + "e\u0301" * 50,
           "\x1b[31mred"]
#: IDs are checked by pattern early: fewer strings tell as much
ID_STRINGS = INJECTIONS[:3] + ["\ud800"]
#: reading personal data with pii:read appends to the audit log (intended): left out of the fingerprints
AUDIT = frozenset({"Audit"})
LONG = 100_000  # characters: far past every field's limit, well under the 1 MB body limit


# --- counting ------------------------------------------------------------------------------------


@dataclass
class Stats:
    inputs: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    internal: Counter[str] = field(default_factory=Counter)  # answers with an INTERNAL error (status < 500)
    plain: Counter[str] = field(default_factory=Counter)  # 4xx answers that are not GraphQL JSON with a code
    codes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


STATS = Stats()


def _error_problems(errors: Any) -> list[str]:
    out = []
    if not isinstance(errors, list) or not errors:
        return [f"`errors` is not a non-empty list: {str(errors)[:200]}"]
    for e in errors:
        message = e.get("message") if isinstance(e, dict) else None
        code = ((e.get("extensions") or {}) if isinstance(e, dict) else {}).get("code")
        if not isinstance(message, str) or not message.strip():
            out.append(f"an error without a message: {str(e)[:200]}")
        if not isinstance(code, str) or not code:
            out.append(f"an error without extensions.code: {str(e)[:300]}")
        elif code == "INTERNAL":
            out.append(f"an INTERNAL error: {str(e)[:300]}")
        else:
            STATS.codes[code] += 1
    return out


def _typed_errors(data: Any) -> list[str]:
    """Codes of typed UserErrors (mutation result unions) anywhere in *data*."""
    found = []
    if isinstance(data, dict):
        if isinstance(data.get("__typename"), str) and data["__typename"].endswith("Error"):
            found.append(str(data.get("code", data["__typename"])))
        for v in data.values():
            found += _typed_errors(v)
    elif isinstance(data, list):
        for v in data:
            found += _typed_errors(v)
    return found


@dataclass
class Outcome:
    status: int
    body: Any
    rejected: bool
    codes: list[str]


#: what uvicorn answers, before the app, to bytes that are not HTTP
PROTOCOL_REFUSALS = ("Invalid HTTP request received.",)


def judge(category: str, label: str, status: int, text: str, content_type: str = "application/json") -> Outcome:
    """Count one input and check the answer; problems are collected, the test asserts at its end."""
    STATS.inputs[category] += 1
    where = f"[{category}] {label[:160]!r}"
    found: list[str] = []
    outcome = _judge(where, status, text, content_type, found)
    if status >= 500:
        STATS.server_errors[category] += 1
    elif "INTERNAL" in outcome.codes:
        STATS.internal[category] += 1
    if any("without a JSON error body" in p or "without extensions.code" in p for p in found):
        STATS.plain[category] += 1
    if outcome.rejected:
        STATS.rejected[category] += 1
    STATS.problems += list(dict.fromkeys(found))  # one line per distinct problem of this input
    return outcome


def _judge(where: str, status: int, text: str, content_type: str, problems: list[str]) -> Outcome:
    if status >= 500:
        problems.append(f"{where}: HTTP {status}: {text[:300]}")
        return Outcome(status, None, True, [f"HTTP_{status}"])
    body: Any = None
    try:
        body = json.loads(text) if text else None
    except ValueError:
        pass
    codes: list[str] = []
    rejected = status >= 400
    if body is None or not isinstance(body, (dict, list)):
        if status == 400 and text.strip() in PROTOCOL_REFUSALS:
            pass  # refused by the HTTP server: the app never saw it
        elif status == 405:
            pass  # a method /graphql does not serve (PUT, DELETE, ...): routing, with an Allow header
        elif status >= 400:
            problems.append(f"{where}: HTTP {status} without a JSON error body ({content_type}): {text[:200]!r}")
        elif status != 200 or "html" not in content_type:
            problems.append(f"{where}: HTTP {status} answered {text[:200]!r}")
    else:
        results = body if isinstance(body, list) else [body]
        for result in results:
            if not isinstance(result, dict):
                problems.append(f"{where}: a result that is not an object: {str(result)[:200]}")
                continue
            if "errors" in result:
                rejected = True
                problems += [f"{where}: {p}" for p in _error_problems(result["errors"])]
                codes += [str((e.get("extensions") or {}).get("code")) for e in result["errors"] if isinstance(e, dict)]
            typed = _typed_errors(result.get("data"))
            if typed:
                rejected = True
                codes += typed
                for c in typed:
                    STATS.codes[c] += 1
            if status >= 400 and "errors" not in result:
                problems.append(f"{where}: HTTP {status} without errors: {text[:200]}")
    return Outcome(status, body, rejected, codes)


async def send(http: httpx.AsyncClient, category: str, label: str, *, method: str = "POST",
               json_body: Any = None, content: bytes | str | None = None, headers: dict[str, str] | None = None,
               params: dict[str, str] | None = None, token: str | None = None) -> Outcome:
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if json_body is not None:
        content = json.dumps(json_body).encode()
        h.setdefault("Content-Type", "application/json")
    response = await http.request(method, "/graphql", content=content, headers=h, params=params)
    return judge(category, label, response.status_code, response.text, response.headers.get("content-type", ""))


# --- the tenants ---------------------------------------------------------------------------------


@dataclass
class Hostile:
    r: str
    w: str
    ids: dict[str, dict[str, str]]  # tenant -> kind -> id
    tokens: dict[str, dict[str, str]]  # tenant -> principal -> token
    before: FingerPrint


async def _small_world(api: Api, token: str, tag: str) -> dict[str, str]:
    from tests.test_api_campaigns import running_campaign
    from tests.test_api_commerce import create_product, record

    one = await register(api, token, f"{tag} One", phone="13800001111", wechatId=f"wxid_{tag.lower()}_one")
    two = await register(api, token, f"{tag} Two", inviteCode=one["inviteCode"])
    com = await community(api, token, f"{tag} Circle", ownerId=one["id"])
    await join(api, token, com, two["id"])
    await follow(api, token, two["id"], one["id"])
    content = (await post(api, token, one["id"], com, f"{tag} post", topics=[f"{tag.lower()}-topic"]))["content"]["id"]
    comment = await api.ok("""mutation($c: ID!, $as: ID) { addComment(input: {contentId: $c, body: "hi"},
        asMemberId: $as) { ... on CommentPayload { comment { id } } } }""", {"c": content, "as": two["id"]}, token=token)
    product = await create_product(api, token, f"{tag}-SKU", 1200)
    bought = await record(api, token, two["id"], [{"productId": product["id"], "quantity": 1}], f"{tag}-key-1")
    campaign = await running_campaign(api, token, name=f"{tag} fission")
    topic = (await api.ok("query($id: ID!) { content(id: $id) { topics { id } } }", {"id": content},
                          token=token))["content"]["topics"][0]["id"]
    hook = await api.ok("""mutation { registerWebhook(input: {url: "https://example.invalid/hook",
        eventTypes: [KOL_RANKING_CHANGED]}) { ... on RegisterWebhookPayload { webhook { id } } } }""",
                        token=api.token("integrator"))
    return {"member": one["id"], "member2": two["id"], "community": com, "content": content,
            "comment": comment["addComment"]["comment"]["id"], "product": product["id"],
            "purchase": bought["purchase"]["id"], "campaign": campaign, "tag": topic,
            "webhook": hook["registerWebhook"]["webhook"]["id"], "invite_code": one["inviteCode"]}


@pytest_asyncio.fixture(scope="module")
async def hostile(http: httpx.AsyncClient, settings: Settings, graph: GraphClient) -> AsyncIterator[Hostile]:
    r, w = "ten_hostR" + uuid.uuid4().hex[:12], "ten_hostW" + uuid.uuid4().hex[:12]
    ids, tokens = {}, {}
    for tenant, tag in ((r, "Reader"), (w, "Writer")):
        api = Api(http, settings, tenant)
        ids[tenant] = await _small_world(api, api.token("operator"), tag)
        tokens[tenant] = {
            "staff": api.token("admin", "operator", "integrator", "analyst", scopes=("pii:read",)),
            "member": api.token("member", member=ids[tenant]["member"]),
        }
    before = await graph_fingerprint(graph, skip_labels=AUDIT)
    yield Hostile(r, w, ids, tokens, before)
    write_summary()


async def assert_graph_kept(graph: GraphClient, h: Hostile) -> None:
    """Nothing outside W changed (the audit log of R's personal-data reads aside)."""
    after = await graph_fingerprint(graph, skip_labels=AUDIT)
    keep = set(h.before.digests) | set(after.digests)
    keep.discard(h.w)

    def view(fp: FingerPrint) -> dict[str, Any]:
        return {t: v for t, v in fp.only(keep).items()}

    assert view(after) == view(h.before), "the graph changed outside the write tenant"
    assert after.cross_tenant == h.before.cross_tenant, f"relationships across tenants: {after.cross_tenant}"


def assert_clean(start: int) -> None:
    """Fail the test with every problem its inputs showed (the counts stay for the summary)."""
    mine = STATS.problems[start:]
    assert not mine, f"{len(mine)} problem(s):\n" + "\n".join(mine[:60])


# --- W's fingerprint around each mutation ------------------------------------------------------

W_NODES = "MATCH (n) WHERE n.tenantId = $t RETURN collect([labels(n), properties(n)]) AS rows"
W_RELS = """
MATCH (a)-[r]->(b) WHERE a.tenantId = $t OR b.tenantId = $t
RETURN collect([type(r), a.id, b.id, properties(r)]) AS rows
"""


async def w_state(graph: GraphClient, tenant: str) -> str:
    nodes = (await graph.read(W_NODES, t=tenant))[0]["rows"]
    rels = (await graph.read(W_RELS, t=tenant))[0]["rows"]
    return json.dumps(sorted(json.dumps(x, default=str, sort_keys=True) for x in [*nodes, *rels]))


class WriteWatch:
    """Sends mutations as W and checks that each refused one left W as it was."""

    def __init__(self, http: httpx.AsyncClient, graph: GraphClient, h: Hostile) -> None:
        self.http, self.graph, self.h = http, graph, h
        self.state: str | None = None

    async def send(self, category: str, label: str, body: dict[str, Any], principal: str = "staff") -> Outcome:
        if self.state is None:
            self.state = await w_state(self.graph, self.h.w)
        outcome = await send(self.http, category, label, json_body=body, token=self.h.tokens[self.h.w][principal])
        now = await w_state(self.graph, self.h.w)
        if outcome.rejected and now != self.state:
            STATS.problems.append(f"[{category}] {label[:160]!r}: refused ({outcome.codes}) but W's graph changed")
        self.state = now
        return outcome


#: the object a root field's ``id`` argument names
_BY_FIELD = {"member": "member2", "community": "community", "content": "content", "product": "product",
             "purchase": "purchase", "campaign": "campaign"}


def ids_for(h: Hostile, tenant: str, field_name: str = "") -> Any:
    """Real ids of *tenant* by argument path, so that the other arguments of a call are valid."""
    pool = h.ids[tenant]

    def pick(path: str) -> str:
        p = path.lower()
        if p == "id":
            return pool[_BY_FIELD.get(field_name, "member2")]
        for key, kind in (("webhook", "webhook"), ("campaign", "campaign"), ("product", "product"),
                          ("content", "content"), ("community", "community"), ("tag", "tag"),
                          ("purchase", "purchase"), ("inviter", "member2"), ("attributed", "member2"),
                          ("owner", "member2"), ("asmember", "member"), ("member", "member2")):
            if key in p:
                return pool[kind]
        return pool["member2"]

    return pick


def base_args(slot: StringSlot, h: Hostile, tenant: str) -> dict[str, Any]:
    """Valid arguments around a slot: every required argument, and the optional one that holds the slot."""
    slot_field = slot.field
    field_def = root_fields(slot.kind)[slot_field]
    pick = ids_for(h, tenant, slot_field)
    holder = slot.path.split(".")[0].split("[")[0]
    args: dict[str, Any] = {}
    for name, arg in field_def.args.items():
        if isinstance(arg.type, GraphQLNonNull) or name == holder:
            args[name] = valid_value(arg.type, pick, name, toward=slot.path)
    if slot_field == "recordPurchase":
        args["input"]["idempotencyKey"] = "k-" + uuid.uuid4().hex
        args["input"]["lines"][0]["quantity"] = 1
    if slot_field == "kolRanking":
        args["scope"] = {"kind": "COMMUNITY", "id": pick("community")}
    if slot_field == "referralConverted":
        args.pop("campaignId", None)
    return args


SLOTS = string_slots()


def _document(slot: StringSlot, args: dict[str, Any]) -> str:
    return operation(slot.kind, slot.field, args, depth=1)


# --- 1. every string argument: injection, invalid unicode, over-long ---------------------------


def test_every_root_field_with_a_string_argument_is_probed() -> None:
    """The slots come from the schema: a new string argument is probed without editing this file."""
    with_strings = {(k, f) for k in ROOTS for f, d in root_fields(k).items()
                    if any(s.field == f and s.kind == k for s in SLOTS)}
    assert len(SLOTS) >= 80 and len(with_strings) >= 40
    assert {s.type_name for s in SLOTS} == {"String", "ID"}


async def test_injection_and_strange_strings_in_every_string_argument(
    http: httpx.AsyncClient, graph: GraphClient, hostile: Hostile
) -> None:
    h = hostile
    start = len(STATS.problems)
    watch = WriteWatch(http, graph, h)
    for slot in SLOTS:
        if slot.kind == "subscription":
            continue  # over the websocket, below
        values = (INJECTIONS + UNICODE if slot.type_name == "String" else ID_STRINGS) + ["x" * LONG]
        for value in values:
            category = "injection" if value in INJECTIONS else \
                "over-long string" if len(value) == LONG else "invalid unicode"
            tenant = h.r if slot.kind == "query" else h.w
            args = slot.set(base_args(slot, h, tenant), value)
            body = {"query": _document(slot, args), "variables": args}
            label = f"{slot.field}.{slot.path}={value[:40]}"
            if slot.kind == "query":
                outcome = await send(http, category, label, json_body=body, token=h.tokens[h.r]["staff"])
            else:
                outcome = await watch.send(category, label, body)
            _check_round_trip(category, label, slot, value, outcome)
    await assert_graph_kept(graph, h)
    assert_clean(start)


#: input fields whose accepted value the payload shows back as it was stored
ECHOED = {("registerMember", "input.displayName"), ("registerMember", "input.city"),
          ("createCommunity", "input.name"), ("createCommunity", "input.description"),
          ("createContent", "input.title"), ("createContent", "input.body"), ("addComment", "input.body"),
          ("createProduct", "input.name"), ("createProduct", "input.category"), ("createCampaign", "input.name"),
          ("updateMember", "input.displayName"), ("updateMember", "input.city")}


def _strings(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [s for v in data.values() for s in _strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in _strings(v)]
    return [data] if isinstance(data, str) else []


def _check_round_trip(category: str, label: str, slot: StringSlot, value: str, outcome: Outcome) -> None:
    """An accepted injection string is stored and answered verbatim (or trimmed), never interpreted."""
    if outcome.rejected or (slot.field, slot.path) not in ECHOED or not isinstance(outcome.body, dict):
        return
    stored = _strings(outcome.body.get("data"))
    if value not in stored and value.strip() not in stored:
        STATS.problems.append(f"[{category}] {label!r}: accepted but not echoed verbatim: {str(stored)[:300]}")


async def test_one_megabyte_strings_and_bodies_are_refused_before_parsing(
    http: httpx.AsyncClient, graph: GraphClient, hostile: Hostile
) -> None:
    h = hostile
    start = len(STATS.problems)
    big = "x" * 1_048_576
    cases = [
        {"query": "mutation($n: String!) { registerMember(input: {displayName: $n}) { __typename } }",
         "variables": {"n": big}},
        {"query": "query { viewer { tenantId } } #" + big},
        {"query": "{ viewer { tenantId } }", "variables": {"pad": [big]}},
    ]
    for body in cases:
        outcome = await send(http, "over-long string", "1 MB " + body["query"][:40], json_body=body,
                             token=h.tokens[h.w]["staff"])
        assert outcome.status == 413 and outcome.codes == ["REQUEST_TOO_LARGE"], (outcome.status, outcome.body)
    # a body that declares a small length but streams more is cut off too
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ viewer { tenantId } }", "variables": {"x": "'
        for _ in range(20):
            yield b"y" * 65_536
        yield b'"}}'

    response = await http.post("/graphql", content=chunks(), headers={"Content-Type": "application/json",
                                                                       "Authorization": f"Bearer {h.tokens[h.r]['staff']}"})
    outcome = judge("over-long string", "streamed 1.3 MB", response.status_code, response.text)
    assert outcome.status == 413, response.text
    await assert_graph_kept(graph, h)
    assert_clean(start)


# --- 2. generated queries ------------------------------------------------------------------------

def examples(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """*n* examples drawn by Hypothesis (deterministic: derandomized, no example database)."""
    out: list[Any] = []

    @hsettings(max_examples=n, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
               suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example: Any) -> None:
        out.append(example)

    collect()
    return out


def _literal(value: Any, t: Any = None) -> str:
    """A GraphQL literal for a Python value (enum names are given as EnumValue)."""
    if isinstance(value, EnumValue):
        return value.name
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


@dataclass(frozen=True)
class EnumValue:
    name: str


#: true about one time in 17 (Hypothesis favours the ends of a range, so the rare case sits in the middle)
RARELY = st.sampled_from([False] * 8 + [True] + [False] * 8)


#: the real ids generated queries draw from (set per test: R's for queries, W's for mutations)
ID_POOL: list[str] = []


def _id_values(h: Hostile, tenant: str) -> st.SearchStrategy[str]:
    real = sorted(h.ids[tenant].values())
    ID_POOL[:] = real
    return st.one_of(st.sampled_from(real), st.sampled_from(INJECTIONS + ["mem_x", "", "cnt_" + "z" * 16]),
                     st.text(max_size=30))


#: the id prefix an argument or input field most likely wants, by (a part of) its name
_PREFIXES = {"inviter": "mem_", "member": "mem_", "owner": "mem_", "attributed": "mem_", "community": "com_",
             "content": "cnt_", "campaign": "cpg_", "product": "prd_", "purchase": "pur_", "webhook": "whk_",
             "tag": "tag_", "target": "mem_"}


def _matching(ids: st.SearchStrategy[str], name: str, pool: list[str]) -> st.SearchStrategy[str]:
    """Ids of the kind *name* suggests (``memberId``, ``community`` ...) mostly, any id otherwise."""
    prefix = next((p for key, p in _PREFIXES.items() if key in name.lower()), None)
    wanted = [i for i in pool if prefix is not None and i.startswith(prefix)]
    return st.one_of(st.sampled_from(wanted), ids) if wanted else ids


def _value(t: GraphQLInputType, ids: st.SearchStrategy[str], depth: int = 0, name: str = "") -> st.SearchStrategy[Any]:
    """Right-typed values mostly, wrong-typed ones sometimes (the server must tell them apart)."""
    wrong = st.one_of(st.none(), st.integers(-2**70, 2**70), st.floats(allow_nan=False), st.booleans(),
                      st.text(max_size=20), st.builds(EnumValue, st.sampled_from(["KOL", "BOGUS", "true"])))
    if isinstance(t, GraphQLNonNull):
        return _value(t.of_type, ids, depth, name)
    if isinstance(t, GraphQLList):
        return st.one_of(st.lists(_value(t.of_type, ids, depth + 1, name), max_size=3),
                         _value(t.of_type, ids, depth + 1, name))
    if isinstance(t, GraphQLEnumType):
        right: st.SearchStrategy[Any] = st.sampled_from([EnumValue(v) for v in t.values])
    elif isinstance(t, GraphQLInputObjectType):
        if depth > 3:
            return st.just({})
        right = st.fixed_dictionaries(
            {n: _value(f.type, ids, depth + 1, n) for n, f in t.fields.items() if isinstance(f.type, GraphQLNonNull)},
            optional={n: _value(f.type, ids, depth + 1, n) for n, f in t.fields.items()
                      if not isinstance(f.type, GraphQLNonNull)})
    else:
        assert isinstance(t, GraphQLScalarType)
        right = {
            "Int": st.one_of(st.integers(-3, 120), st.sampled_from([2**31 - 1, -2**31, 100, 101, 0])),
            "Float": st.floats(-1e9, 1e9, allow_nan=False),
            "String": st.one_of(st.text(max_size=40), st.sampled_from(INJECTIONS + ["tenant", "COMMUNITY"])),
            "ID": _matching(ids, name, ID_POOL),
            "Boolean": st.booleans(),
            "DateTime": st.one_of(st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
                                  st.text(max_size=25)),
            "MinorUnits": st.integers(-10, 2**53 + 10),
        }.get(t.name, st.text(max_size=10))
    return st.one_of(right, right, right, wrong)


@st.composite
def _selection(draw: st.DrawFn, t: Any, depth: int, ids: st.SearchStrategy[str]) -> str:
    named = get_named_type(t)
    if is_leaf_type(named):
        return ""
    if isinstance(named, GraphQLUnionType | GraphQLInterfaceType):
        options = list(named.types) if isinstance(named, GraphQLUnionType) else list(SCHEMA.get_possible_types(named))
        chosen = draw(st.lists(st.sampled_from(options), min_size=1, max_size=2, unique_by=lambda o: o.name))
        parts = ["__typename"] + [f"... on {o.name} {draw(_selection(o, depth, ids))}" for o in chosen]
        return "{ " + " ".join(parts) + " }"
    assert isinstance(named, GraphQLObjectType)
    names = sorted(named.fields)
    picked = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    parts = []
    for name in picked:
        f = named.fields[name]
        sub = get_named_type(f.type)
        if not is_leaf_type(sub) and depth <= 0:
            parts.append("__typename")
            continue
        args = draw(_arguments(f.args, ids, name))
        parts.append(name + args + ("" if is_leaf_type(sub) else " " + draw(_selection(f.type, depth - 1, ids))))
    if draw(RARELY):
        parts.append(draw(st.sampled_from(["bogusField", "id(first: 1)", "__schema { types { name } }"])))
    return "{ " + " ".join(dict.fromkeys(parts)) + " }"


@st.composite
def _arguments(draw: st.DrawFn, args: dict[str, Any], ids: st.SearchStrategy[str], field_name: str = "") -> str:
    out = []
    for name, arg in args.items():
        required = isinstance(arg.type, GraphQLNonNull)
        if required or draw(st.booleans()):
            if required and draw(RARELY):
                continue  # a required argument missing
            hint = field_name if name == "id" else name
            out.append(f"{name}: {_literal(draw(_value(arg.type, ids, 0, hint)))}")
    if draw(RARELY):
        out.append("noSuchArgument: 1")
    return "(" + ", ".join(out) + ")" if out else ""


@st.composite
def documents(draw: st.DrawFn, kind: str, ids: st.SearchStrategy[str]) -> str:
    root = root_type(kind)
    names = draw(st.lists(st.sampled_from(sorted(root.fields)), min_size=1, max_size=2 if kind == "query" else 1,
                          unique=True))
    parts = []
    for i, name in enumerate(names):
        f = root.fields[name]
        alias = f"a{i}: " if len(names) > 1 else ""
        sel = draw(_selection(f.type, draw(st.integers(0, 4)), ids))
        parts.append(f"{alias}{name}{draw(_arguments(f.args, ids, name))} {sel}".rstrip())
    return f"{kind} {{ {' '.join(parts)} }}"


async def test_generated_queries_get_an_answer_or_a_clear_error(
    http: httpx.AsyncClient, graph: GraphClient, hostile: Hostile
) -> None:
    h = hostile
    start = len(STATS.problems)
    ids = _id_values(h, h.r)
    principals = st.sampled_from(["staff", "staff", "member", "staff", "staff"])
    for doc, principal in examples(st.tuples(documents("query", ids), principals), 120):
        await send(http, "generated query", doc, json_body={"query": doc}, token=h.tokens[h.r][principal])
    await assert_graph_kept(graph, h)
    assert_clean(start)


async def test_generated_mutations_get_an_answer_or_a_clear_error_and_refusals_write_nothing(
    http: httpx.AsyncClient, graph: GraphClient, hostile: Hostile
) -> None:
    h = hostile
    start = len(STATS.problems)
    watch = WriteWatch(http, graph, h)
    ids = _id_values(h, h.w)
    for doc, principal in examples(st.tuples(documents("mutation", ids), st.sampled_from(["staff", "member"])), 60):
        await watch.send("generated mutation", doc, {"query": doc}, principal)
    await assert_graph_kept(graph, h)
    assert_clean(start)


# --- 3. wrong variable types for every argument ----------------------------------------------


def _wrong_values(t: GraphQLInputType) -> list[Any]:
    """Three values of the wrong type for *t* (null too when it is non-null)."""
    named = get_named_type(t)
    out: list[Any] = [None] if isinstance(t, GraphQLNonNull) else []
    if isinstance(named, GraphQLScalarType) and named.name in ("Int", "MinorUnits", "Float"):
        out += ["12", 2**64, [1, [2]]]
    elif isinstance(named, GraphQLScalarType) and named.name == "Boolean":
        out += ["true", 1, {"nested": True}]
    elif isinstance(named, GraphQLEnumType):
        out += ["NOT_A_VALUE", 3, {"nested": True}]
    elif isinstance(named, GraphQLInputObjectType):
        out += ["a string", {"unknownField": 1}, [42]]
    else:
        out += [True, 1.5, {"nested": {"object": True}}]
    return out


async def test_wrong_variable_types_for_every_argument(http: httpx.AsyncClient, graph: GraphClient,
                                                       hostile: Hostile) -> None:
    h = hostile
    start = len(STATS.problems)
    watch = WriteWatch(http, graph, h)
    for kind in ("query", "mutation"):
        tenant = h.r if kind == "query" else h.w
        for fname, f in root_fields(kind).items():
            for aname, arg in f.args.items():
                for wrong in _wrong_values(arg.type):
                    args = {a: valid_value(x.type, ids_for(h, tenant, fname), a)
                            for a, x in f.args.items() if isinstance(x.type, GraphQLNonNull)}
                    args[aname] = wrong
                    body = {"query": operation(kind, fname, {a: 0 for a in {**args}}, depth=0), "variables": args}
                    label = f"{fname}({aname}={str(wrong)[:30]})"
                    if kind == "query":
                        outcome = await send(http, "wrong variable type", label, json_body=body,
                                             token=h.tokens[h.r]["staff"])
                    else:
                        outcome = await watch.send("wrong variable type", label, body)
                    if not outcome.rejected:
                        STATS.problems.append(f"[wrong variable type] {label}: accepted: {str(outcome.body)[:300]}")
    await assert_graph_kept(graph, h)
    assert_clean(start)


# --- 4. deep nesting, alias and fragment bombs, huge lists ----------------------------------------


def _followers(levels: int) -> str:
    inner = "id"
    for _ in range(levels):
        inner = f"followers(first: 1) {{ nodes {{ {inner} }} }}"
    return inner


async def test_deep_nesting_is_refused_and_the_deepest_allowed_query_answers(
    http: httpx.AsyncClient, graph: GraphClient, hostile: Hostile
) -> None:
    h = hostile
    start = len(STATS.problems)
    token = h.tokens[h.r]["staff"]
    member = h.ids[h.r]["member"]  # followed by member2, who has no followers
    # member { followers { nodes { ... } } }: 1 + 2 per level + 1 for id
    allowed = f'{{ member(id: "{member}") {{ {_followers(4)} }} }}'
    ok = await send(http, "deep nesting", "depth 10", json_body={"query": allowed}, token=token)
    assert not ok.rejected and ok.body["data"]["member"] == {"followers": {"nodes": [{"followers": {"nodes": []}}]}}, \
        ok.body
    for levels in (5, 25, 50):
        doc = f'{{ member(id: "{member}") {{ {_followers(levels)} }} }}'
        outcome = await send(http, "deep nesting", f"followers x{levels}", json_body={"query": doc}, token=token)
        assert outcome.codes in (["QUERY_TOO_DEEP"], ["TOO_MANY_TOKENS"]), outcome.body
    # nesting that adds no field depth, or sits in argument values and JSON: the parsers recurse
    deep_docs = {
        "inline fragments x300": "{ " + "... on Query { " * 300 + "viewer { tenantId }" + " }" * 300 + " }",
        "list literal x900": '{ members(filter: {communityId: ' + "[" * 900 + '"x"' + "]" * 900 + "}) { totalCount } }",
        "object literal x600": "{ kolRanking(scope: " + "{id: " * 600 + '"x"' + "}" * 600 + ") { totalCount } }",
        "selection sets x1000": "{ viewer " + "{ member " * 1000 + "}" * 1000 + " }",
    }
    for label, doc in deep_docs.items():
        await send(http, "deep nesting", label, json_body={"query": doc}, token=token)
    deep_json = '{"query": "{ viewer { tenantId } }", "variables": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    await send(http, "deep nesting", "JSON variables nested 100,000 deep", content=deep_json,
               headers={"Content-Type": "application/json"}, token=token)
    nested_var = {"query": "query($f: MemberFilterInput) { members(filter: $f) { totalCount } }",
                  "variables": {"f": {"communityId": json.loads("[" * 500 + "]" * 500)}}}
    await send(http, "deep nesting", "variable nested 500 deep", json_body=nested_var, token=token)
    await assert_graph_kept(graph, h)
    assert_clean(start)


async def test_alias_and_fragment_bombs_are_refused_quickly(http: httpx.AsyncClient, graph: GraphClient,
                                                            hostile: Hostile) -> None:
    h = hostile
    start = len(STATS.problems)
    token = h.tokens[h.r]["staff"]
    fifteen = "{ " + " ".join(f"a{i}: viewer {{ tenantId }}" for i in range(15)) + " }"
    ok = await send(http, "alias bomb", "15 aliases", json_body={"query": fifteen}, token=token)
    assert not ok.rejected and len(ok.body["data"]) == 15, ok.body
    for n in (16, 300):
        doc = "{ " + " ".join(f"a{i}: viewer {{ tenantId }}" for i in range(n)) + " }"
        outcome = await send(http, "alias bomb", f"{n} aliases", json_body={"query": doc}, token=token)
        assert outcome.codes == ["TOO_MANY_ALIASES"], outcome.body
    bombs = {
        "1,000 aliases": "{ " + " ".join(f"a{i}: viewer {{ tenantId }}" for i in range(1000)) + " }",
        "same field 1,500 times": "{ viewer { " + "tenantId " * 1500 + "} }",
        "500 directives": "{ viewer " + "@include(if: true) " * 500 + "{ tenantId } }",
        "300 operations": " ".join(f"query q{i} {{ viewer {{ tenantId }} }}" for i in range(300)),
        # fragments that each spread the next twice: 2^25 fields if expanded
        "fragment fan-out 2^25": "{ ...F0 } " + " ".join(
            f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(25)) +
        " fragment F25 on Query { viewer { tenantId } }",
        "fragment cycle": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        "aliased fragment fan-out": "{ ...F0 } " + " ".join(
            f"fragment F{i} on Query {{ x{i}: viewer {{ ...G{i} }} y{i}: viewer {{ ...G{i} }} }} "
            f"fragment G{i} on Viewer {{ tenantId }}" for i in range(7)),
    }
    expected = {"1,000 aliases": {"TOO_MANY_TOKENS", "TOO_MANY_ALIASES"}, "500 directives": {"TOO_MANY_TOKENS"},
                "300 operations": {"TOO_MANY_TOKENS"}, "fragment fan-out 2^25": {"QUERY_TOO_COSTLY"}}
    for label, doc in bombs.items():
        started = time.monotonic()
        outcome = await send(http, "alias bomb", label, json_body={"query": doc}, token=token)
        took = time.monotonic() - started
        assert outcome.rejected, (label, outcome.body)
        if label in expected:
            assert set(outcome.codes) <= expected[label], (label, outcome.body)
        if took > 5:
            STATS.problems.append(f"[alias bomb] {label}: took {took:.1f} s to refuse")
    costly = "{ members(first: 100) { nodes { followers(first: 100) { nodes { followers(first: 100) { nodes { id } } } } } } }"
    outcome = await send(http, "alias bomb", "cost 1,020,201", json_body={"query": costly}, token=token)
    assert outcome.codes == ["QUERY_TOO_COSTLY"] and outcome.body["extensions"]["cost"]["requested"] > 10_000, \
        outcome.body
    await assert_graph_kept(graph, h)
    assert_clean(start)


async def test_huge_pages_and_lists(http: httpx.AsyncClient, graph: GraphClient, hostile: Hostile) -> None:
    h = hostile
    start = len(STATS.problems)
    reader = h.tokens[h.r]["staff"]
    watch = WriteWatch(http, graph, h)
    member, product = h.ids[h.w]["member"], h.ids[h.w]["product"]
    for first in (1_000_000, 101, -1, 0, 2**31 - 1):
        for doc in (f"{{ members(first: {first}) {{ totalCount nodes {{ id }} }} }}",
                    f'{{ member(id: "{h.ids[h.r]["member"]}") {{ followers(first: {first}) {{ nodes {{ id }} }} }} }}',
                    f"{{ kolRanking(first: {first}) {{ totalCount }} }}"):
            outcome = await send(http, "huge list", doc, json_body={"query": doc}, token=reader)
            if first in (1_000_000, 101, -1, 2**31 - 1):  # priced out, or refused by the page-size cap
                assert outcome.codes and set(outcome.codes) <= {"QUERY_TOO_COSTLY", "VALIDATION_FAILED"}, \
                    (doc, outcome.body)
    for doc in ("{ members(first: 2147483648) { totalCount } }", "{ members(first: 1e10) { totalCount } }",
                f'{{ referralTree(memberId: "{h.ids[h.r]["member"]}", depth: 1000000) {{ totalCount }} }}'):
        outcome = await send(http, "huge list", doc, json_body={"query": doc}, token=reader)
        assert outcome.rejected, (doc, outcome.body)
    lists = {
        "100,000 topics": {"query": """mutation($t: [String!]!, $c: ID!, $m: ID) { createContent(
            input: {communityId: $c, body: "b", topics: $t}, asMemberId: $m) { __typename } }""",
                           "variables": {"t": ["t"] * 100_000, "c": h.ids[h.w]["community"], "m": member}},
        "100,000 event types": {"query": """mutation($e: [EventType!]!) { registerWebhook(input: {
            url: "https://example.invalid/x", eventTypes: $e}) { __typename } }""",
                                "variables": {"e": ["FOLLOWED"] * 100_000}},
        "40,000 event types": {"query": """mutation($e: [EventType!]!) { registerWebhook(input: {
            url: "https://example.invalid/y", eventTypes: $e}) { __typename } }""",
                               "variables": {"e": ["FOLLOWED", "BOGUS"] * 20_000}},
        "20,000 purchase lines": {"query": """mutation($l: [PurchaseLineInput!]!, $m: ID!, $k: String!) {
            recordPurchase(input: {memberId: $m, lines: $l, idempotencyKey: $k}) { __typename } }""",
                                  "variables": {"m": member, "k": "k-" + uuid.uuid4().hex,
                                                "l": [{"productId": product, "quantity": 1}] * 20_000}},
        "100,000 purchase lines": {"query": """mutation($l: [PurchaseLineInput!]!, $m: ID!, $k: String!) {
            recordPurchase(input: {memberId: $m, lines: $l, idempotencyKey: $k}) { __typename } }""",
                                   "variables": {"m": member, "k": "k-" + uuid.uuid4().hex,
                                                 "l": [{"productId": product, "quantity": 1}] * 100_000}},
    }
    for label, body in lists.items():
        outcome = await watch.send("huge list", label, body)
        assert outcome.rejected, (label, str(outcome.body)[:300])
    await assert_graph_kept(graph, h)
    assert_clean(start)


# --- 5. malformed requests: JSON, content types, GET, batches, persisted queries ---------------


MALFORMED = [
    b"", b"{", b"[", b"null", b"42", b'"a string"', b"{}", b'{"query": 123}', b'{"query": null}',
    b'{"query": ["{ viewer { tenantId } }"]}', b'{"query": {"nested": true}}',
    b'{"query": "{ viewer { tenantId } }", "variables": "not an object"}',
    b'{"query": "{ viewer { tenantId } }", "variables": [1, 2]}',
    b'{"query": "{ viewer { tenantId } }", "operationName": 5}',
    b'{"query": "{ viewer { tenantId } }", "operationName": "Nope"}',
    b'{"query": "query A { viewer { tenantId } } query B { viewer { roles } }"}',
    b'{"query": "{ viewer { tenantId } }", "extensions": "x"}',
    b'{"query": "{ viewer { tenantId } }", "extensions": {"persistedQuery": "x"}}',
    b'{"query": "{ viewer { tenantId } }", "variables": {"x": NaN}}',
    b'{"query": "{ viewer { tenantId } }", "variables": {"x": Infinity}}',
    b'{"query": "{ viewer { tenantId } ', b'{"query": "{ viewer { tenantId } }"} trailing',
    b'{"query": "{ viewer { tenantId } }", "query": "mutation { x }"}',
    b"\xef\xbb\xbf" + b'{"query": "{ viewer { tenantId } }"}',
    b'{"query": "{ viewer { tenantId } }", "variables": {"x": "\\ud800"}}',
    b'{"query": "{ viewer { tenantId \\ud800 } }"}',
    b'{"query": "{ viewer { tenantId } }", "variables": {"x": "\xff\xfe\xfd"}}',
    b'{"query": "{ viewer { tenantId } }\xc0\xaf"}',
    b"\xff\xfe{\x00}\x00",
    b'{"query": "{ viewer { tenantId } }", "variables": {"x": 1' + b"0" * 5000 + b"}}",
    b'{"query": "query($x: Int) { members(first: $x) { totalCount } }", "variables": {"x": 1' + b"0" * 5000 + b"}}",
    b'{"query": "query($x: Float) { members(filter: {minKolScore: $x}) { totalCount } }", "variables": {"x": 1e999}}',
    b'{"query": "{ member(id: \\"mem_\\u0000x\\") { id } }"}',
    b'{"query": "{ __schema { types { name } } }"}',
    b'{"query": "{ __type(name: \\"Member\\") { fields { name } } }"}',
    b'{"query": "{ membr(id: \\"x\\") { id } }"}',
    b'{"query": "subscription { purchaseRecorded { id } }"}',
]


async def test_malformed_json_and_graphql_envelopes(http: httpx.AsyncClient, graph: GraphClient,
                                                    hostile: Hostile) -> None:
    h = hostile
    start = len(STATS.problems)
    for body in MALFORMED:
        await send(http, "malformed request", body[:80].decode("utf-8", "replace"), content=body,
                   headers={"Content-Type": "application/json"}, token=h.tokens[h.r]["staff"])
    for token in ("", "garbage", "Bearer", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer " + "x" * 8000):
        await send(http, "malformed request", f"Authorization: {token[:30]}", json_body={"query": "{ viewer { roles } }"},
                   headers={"Authorization": token})
    await assert_graph_kept(graph, h)
    assert_clean(start)


async def test_wrong_content_types_get_and_batches(http: httpx.AsyncClient, graph: GraphClient,
                                                   hostile: Hostile) -> None:
    h = hostile
    start = len(STATS.problems)
    token = h.tokens[h.r]["staff"]
    good = json.dumps({"query": "{ viewer { tenantId } }"})
    for content_type, body in [
        ("text/plain", good), ("application/xml", "<query>{ viewer { tenantId } }</query>"),
        ("application/graphql", "{ viewer { tenantId } }"), ("", good),
        ("application/x-www-form-urlencoded", "query=%7B+viewer+%7B+tenantId+%7D+%7D"),
        ("multipart/form-data; boundary=xyz", "--xyz\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n"
                                              + good + "\r\n--xyz--\r\n"),
        ("multipart/form-data", "garbage"), ("application/json; charset=utf-16", good),
        ("application/json", good.encode("utf-16").decode("latin-1")),
    ]:
        headers = {"Content-Type": content_type} if content_type else {}
        await send(http, "content type", f"{content_type}: {body[:30]}", content=body.encode("latin-1"),
                   headers=headers, token=token)
    queries = [
        {"query": "{ viewer { tenantId } }"}, {"query": "mutation { registerMember(input: {displayName: \"x\"}) { __typename } }"},
        {"query": "{ viewer { tenantId } }", "variables": "{bad json"}, {}, {"query": "{ viewer { tenantId "},
        {"query": "{ viewer { tenantId } }", "operationName": "missing"},
        {"query": "{ member(id: \"' OR 1=1 //\") { id } }"}, {"query": "{ " + "viewer { tenantId } " * 2000 + "}"},
        {"extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}})},
    ]
    for params in queries:
        outcome = await send(http, "GET", str(params)[:80], method="GET", params=params, token=token)
        if params.get("query", "").startswith("mutation"):
            assert outcome.rejected, outcome.body
        if params == queries[0]:  # a plain query over GET answers
            assert outcome.body == {"data": {"viewer": {"tenantId": h.r}}, "extensions": outcome.body.get("extensions")}, \
                outcome.body
    for n in (2, 50):
        await send(http, "batch", f"batch of {n}", json_body=[{"query": "{ viewer { tenantId } }"}] * n, token=token)
    await send(http, "batch", "batch with a mutation", json_body=[
        {"query": "{ viewer { tenantId } }"},
        {"query": "mutation { registerMember(input: {displayName: \"batched\"}) { __typename } }"}],
        token=h.tokens[h.w]["staff"])
    await send(http, "batch", "empty batch", json_body=[], token=token)
    for method in ("PUT", "DELETE", "PATCH"):
        await send(http, "GET", method, method=method, content=good, headers={"Content-Type": "application/json"},
                   token=token)
    await assert_graph_kept(graph, h)
    assert_clean(start)


async def test_persisted_query_abuse(http: httpx.AsyncClient, graph: GraphClient, hostile: Hostile) -> None:
    h = hostile
    start = len(STATS.problems)
    token = h.tokens[h.r]["staff"]
    import hashlib

    q = "{ viewer { tenantId } }"
    for label, body in {
        "unknown hash": {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "f" * 64}}},
        "wrong hash": {"query": q, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
        "short hash": {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "abc"}}},
        "version 2": {"query": q, "extensions": {"persistedQuery": {"version": 2,
                                                                    "sha256Hash": hashlib.sha256(q.encode()).hexdigest()}}},
        "hash not a string": {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": ["a"] * 64}}},
        "lone surrogate query with a hash": {"query": "{ viewer { tenantId } } #\ud800",
                                             "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "a" * 64}}},
        "non-hex hash": {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "z" * 64}}},
        "injection hash": {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": ("' OR 1=1 //" * 6)[:64]}}},
    }.items():
        await send(http, "persisted query", label, json_body=body, token=token)
    await assert_graph_kept(graph, h)
    assert_clean(start)


# --- 6. raw bytes over a real server, and websocket frames --------------------------------------


async def _raw(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        chunks = []
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(65_536), timeout)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), None)
                    if length is not None and len(rest) >= length:
                        break
        except TimeoutError:
            pass
        return b"".join(chunks)
    finally:
        writer.close()


def _http(method: str, body: bytes, headers: dict[str, str], target: str = "/graphql") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if "Transfer-Encoding" not in headers and "Content-Length" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _parse_raw(answer: bytes) -> tuple[int, str, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n")[0].decode("latin-1")
    status = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
    content_type = next((line.split(b":", 1)[1].strip().decode("latin-1") for line in head.split(b"\r\n")
                         if line.lower().startswith(b"content-type:")), "")
    return status, body.decode("utf-8", "replace"), content_type


async def test_raw_bytes_over_a_real_server(ws_url: str, graph: GraphClient, hostile: Hostile) -> None:
    h = hostile
    start = len(STATS.problems)
    port = int(ws_url.rsplit(":", 1)[1].split("/")[0])
    auth = {"Authorization": f"Bearer {h.tokens[h.r]['staff']}", "Content-Type": "application/json"}
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in [b'{"query": "{ viewer { tenantId } }", "x": "'] +
                       [b"z" * 60_000] * 20 + [b'"}']) + b"0\r\n\r\n"
    cases = {
        "invalid UTF-8 in a string": _http("POST", b'{"query": "{ viewer { tenantId } }", "variables": {"a": "\xff\xfe"}}', auth),
        "invalid UTF-8 in the query": _http("POST", b'{"query": "{ viewer { tenant\xc3\x28Id } }"}', auth),
        "lone surrogate escape": _http("POST", b'{"query": "{ member(id: \\"\\udc00\\") { id } }"}', auth),
        "NUL bytes": _http("POST", b'{"query": "{ viewer { tenantId } }\x00\x00"}', auth),
        "UTF-16 body": _http("POST", '{"query": "{ viewer { tenantId } }"}'.encode("utf-16"), auth),
        "chunked 1.2 MB": _http("POST", chunked, {**auth, "Transfer-Encoding": "chunked"}),
        "declared 2 GB": _http("POST", b"{}", {**auth, "Content-Length": str(2**31)}),
        "GET 60 KB query string": _http("GET", b"", auth, "/graphql?query=" + "%7B" * 20_000),
        "Authorization with bytes": _http("POST", b'{"query": "{ viewer { tenantId } }"}',
                                          {"Authorization": "Bearer \xff\xfe\xfd", "Content-Type": "application/json"}),
        "X-Request-Id injection": _http("POST", b'{"query": "{ viewer { tenantId } }"}',
                                        {**auth, "X-Request-Id": "x" * 5000 + "\"}) DETACH DELETE n"}),
    }
    for label, request in cases.items():
        answer = await _raw(port, request)
        if label == "declared 2 GB" and not answer:
            continue  # the server waited for a body that never came; we hung up: nothing to judge
        status, text, content_type = _parse_raw(answer)
        judge("raw HTTP", label, status, text, content_type)
    await assert_graph_kept(graph, h)
    assert_clean(start)


async def test_hostile_websocket_frames(ws_url: str, graph: GraphClient, hostile: Hostile) -> None:
    h = hostile
    start = len(STATS.problems)
    token = h.tokens[h.r]["staff"]
    frames: dict[str, list[Any]] = {
        "not JSON": ["{not json"],
        "binary frame": [b"\xff\xfe\x00"],
        "unknown type": [{"type": "hello"}],
        "subscribe without id": [{"type": "subscribe", "payload": {"query": "subscription { purchaseRecorded { id } }"}}],
        "subscribe without payload": [{"id": "1", "type": "subscribe"}],
        "deep subscription": [{"id": "1", "type": "subscribe", "payload": {
            "query": f'subscription {{ memberJoined(communityId: "{h.ids[h.r]["community"]}") '
                     f'{{ member {{ {_followers(30)} }} }} }}'}}],
        "injection in scope": [{"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($s: String!) { kolRankingChanged(scope: $s) { id } }",
            "variables": {"s": INJECTIONS[1]}}}],
        "lone surrogate in variables": [{"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($c: ID!) { memberJoined(communityId: $c) { id } }", "variables": {"c": "\ud800"}}}],
        "bad cursor": [{"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($a: String) { purchaseRecorded(after: $a) { id } }",
            "variables": {"a": "99999999999999-0' OR 1=1"}}}],
        "alias bomb": [{"id": "1", "type": "subscribe", "payload": {
            "query": "subscription { " + " ".join(f"a{i}: purchaseRecorded {{ id }}" for i in range(40)) + " }"}}],
        "query over the socket with 1,000 aliases": [{"id": "1", "type": "subscribe", "payload": {
            "query": "{ " + " ".join(f"a{i}: viewer {{ tenantId }}" for i in range(1000)) + " }"}}],
    }
    for label, messages in frames.items():
        try:
            answers, close_code = await asyncio.wait_for(_ws_exchange(ws_url, token, messages), 20)
        except TimeoutError:
            answers, close_code = [], None
            STATS.problems.append(f"[websocket] {label}: no answer and no close within 20 s")
        STATS.inputs["websocket"] += 1
        rejected = close_code is not None or any(a.get("type") == "error" or (a.get("payload") or {}).get("errors")
                                                 for a in answers if isinstance(a, dict))
        if rejected:
            STATS.rejected["websocket"] += 1
        if "INTERNAL" in json.dumps(answers):
            STATS.internal["websocket"] += 1
        if close_code in (1011, 1006):
            STATS.server_errors["websocket"] += 1
            STATS.problems.append(f"[websocket] {label}: closed with {close_code}")
        for a in answers:
            errors = a.get("payload") if a.get("type") == "error" else (a.get("payload") or {}).get("errors")
            if errors:
                STATS.problems += [f"[websocket] {label}: {p}" for p in _error_problems(errors)]
    await assert_graph_kept(graph, h)
    assert_clean(start)


async def _ws_exchange(ws_url: str, token: str, messages: list[Any]) -> tuple[list[dict[str, Any]], int | None]:
    """Send *messages* after connection_init; the answers within a second, and the close code if it closed."""
    answers: list[dict[str, Any]] = []
    ws = await websockets.connect(ws_url, subprotocols=["graphql-transport-ws"], close_timeout=2)  # type: ignore[list-item]
    try:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert ack["type"] == "connection_ack", ack
        for m in messages:
            await ws.send(m if isinstance(m, (str, bytes)) else json.dumps(m))
        deadline = asyncio.get_running_loop().time() + 0.6  # the server pings: read for a while, not per message
        try:
            while len(answers) < 3 and (left := deadline - asyncio.get_running_loop().time()) > 0:
                raw = json.loads(await asyncio.wait_for(ws.recv(), left))
                if raw.get("type") not in ("ping", "pong"):
                    answers.append(raw)
        except TimeoutError:
            pass
    except websockets.ConnectionClosed as closed:
        return answers, closed.rcvd.code if closed.rcvd else 1006
    finally:
        await ws.close()
    return answers, None


# --- the summary ---------------------------------------------------------------------------------


#: the categories of a full run: the results file is written only when every one was sent
CATEGORIES = frozenset({"injection", "invalid unicode", "over-long string", "generated query", "generated mutation",
                        "wrong variable type", "deep nesting", "alias bomb", "huge list", "malformed request",
                        "content type", "GET", "batch", "persisted query", "raw HTTP", "websocket"})


def write_summary() -> None:
    total = sum(STATS.inputs.values())
    if not total:
        return
    rejected = sum(STATS.rejected.values())
    errors5xx = sum(STATS.server_errors.values())
    internal = sum(STATS.internal.values())
    plain = sum(STATS.plain.values())
    clear = rejected - errors5xx - internal - plain
    took = time.monotonic() - STATS.started
    line = (f"hostile inputs: {total} sent, {total - rejected} answered, {rejected} rejected: {clear} with a clear "
            f"error (a code, never INTERNAL), {internal} INTERNAL, {plain} without a code, {errors5xx} 5xx; "
            f"{len(STATS.problems)} problem(s), {took:.0f} s")
    print("\n" + line)
    rows = "\n".join(f"| {c} | {STATS.inputs[c]:,} | {STATS.rejected[c]:,} | {STATS.internal[c]:,} | "
                     f"{STATS.plain[c]:,} | {STATS.server_errors[c]:,} |" for c in sorted(STATS.inputs))
    codes = ", ".join(f"{c} {n:,}" for c, n in STATS.codes.most_common())
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = f"""# Hostile input suite ({when}, {platform.machine()}, `tests/test_hostile.py`)

Every input went through the real app (ASGI, and a real uvicorn for raw bytes and websockets) as
principals of a dedicated tenant; afterwards the graph outside the write tenant was unchanged, and
each refused mutation left the write tenant unchanged.

**{total:,} inputs: {total - rejected:,} answered, {rejected:,} rejected, of which {clear:,} with a clear error
(a code, never INTERNAL), {internal} with an INTERNAL error, {plain} without a code; {errors5xx} 5xx.
{len(STATS.problems)} problem(s).**

| category | inputs | rejected | INTERNAL | no code | 5xx |
|---|---:|---:|---:|---:|---:|
{rows}
| **total** | **{total:,}** | **{rejected:,}** | **{internal}** | **{plain}** | **{errors5xx}** |

Error codes seen: {codes}.
"""
    if STATS.problems:
        text += "\nProblems:\n\n" + "\n".join(f"- {p[:300]}" for p in STATS.problems[:50]) + "\n"
    if CATEGORIES <= set(STATS.inputs):  # a partial run (-k) does not overwrite the figures of a full one
        RESULTS.write_text(text)
