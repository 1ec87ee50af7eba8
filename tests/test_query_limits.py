"""Query limits: depth, aliases, tokens, body size and static cost, refused before anything runs."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse

from api.limits import DEFAULT_LIST_SIZE, analyse
from resolvers.schema import build_schema
from tests.conftest import Api

SCHEMA = build_schema()._schema


def cost(query: str, variables: dict[str, Any] | None = None) -> int:
    return analyse(SCHEMA, parse(query), variables=variables).cost


# -- the pure analysis -----------------------------------------------------------------------

def test_cost_multiplies_by_first_through_connections() -> None:
    query = "{ members(first: 50) { edges { node { followers(first: 10) { edges { node { id } } } } } } }"
    # members: 1 + 50 × (edges 1 + 1 × (node 1 + (followers 1 + 10 × (edges 1 + 1 × node 1))))
    assert cost(query) == 1 + 50 * (1 + (1 + (1 + 10 * (1 + 1))))


def test_cost_uses_variables_then_declared_defaults() -> None:
    query = "query($n: Int) { members(first: $n) { edges { node { id } } } }"
    assert cost(query, {"n": 7}) == 1 + 7 * 2
    assert cost(query, {}) == 1 + 20 * 2  # the schema's default page size
    assert cost("{ members { edges { node { id } } } }") == 1 + 20 * 2


def test_scalars_are_free_and_plain_lists_get_an_assumed_size() -> None:
    assert cost("{ webhooks { id url } }") == 1
    assert cost("{ webhooks { id deliveries: id } }") == 1
    assert DEFAULT_LIST_SIZE == 10
    assert cost("{ referralUpline(memberId: \"x\") { member { id } } }") == 1 + DEFAULT_LIST_SIZE * 1


def test_mutations_cost_more_than_reads() -> None:
    read = analyse(SCHEMA, parse('{ member(id: "mem_nope") { id } }')).cost
    write = analyse(SCHEMA, parse('mutation { followMember(memberId: "x") { __typename } }'), mutation_cost=10).cost
    assert read == 1
    assert write == 10 + 1


def test_depth_counts_fields_through_fragments_and_skips_introspection() -> None:
    query = """
    query { member(id: "mem_nope") { ...F } }
    fragment F on Member { followers { edges { node { id } } } }
    """
    assert analyse(SCHEMA, parse(query)).depth == 5
    assert analyse(SCHEMA, parse("{ __schema { types { fields { type { ofType { ofType { name } } } } } } }")).depth == 0


def test_aliases_are_counted_everywhere() -> None:
    query = 'query { a: member(id: "1") { id } b: member(id: "2") { x: id } ...F } fragment F on Query { c: viewer { __typename } }'
    assert analyse(SCHEMA, parse(query)).aliases == 4


def test_nested_fragments_are_priced_once_each() -> None:
    # 30 fragments, each spreading the next twice: 2**30 paths; without memoisation this never ends
    lines = ["query { members(first: 1) { edges { node { ...F0 } } } }"]
    for i in range(30):
        lines.append(f"fragment F{i} on Member {{ id ...F{i + 1} ...F{i + 1} }}")
    lines.append("fragment F30 on Member { followers(first: 2) { edges { node { id } } } }")
    result = analyse(SCHEMA, parse("\n".join(lines)))
    assert result.cost == 1 + 1 * (1 + 1 * (1 + 2**30 * (1 + 2 * 2)))  # duplicated spreads priced as written
    assert result.depth == 7


def test_unknown_fields_and_operations_do_not_break_the_analysis() -> None:
    assert analyse(SCHEMA, parse("{ nope { deeper } }")).cost == 1
    assert analyse(SCHEMA, parse("query A { viewer { __typename } } query B { viewer { __typename } }")).cost == 0


# -- through the API: refused with a code, nothing runs ------------------------------------

def nested_followers(levels: int) -> str:
    inner = "id"
    for _ in range(levels):
        inner = f"followers(first: 1) {{ edges {{ node {{ {inner} }} }} }}"
    return f'{{ member(id: "mem_nope") {{ {inner} }} }}'


async def rejected(api: Any, query: str, code: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    round_trips = api.graph.round_trips
    body = await api(query, variables, token=api.token("operator"))
    assert body.get("data") is None, body
    assert [e["extensions"]["code"] for e in body["errors"]] == [code], body
    assert api.graph.round_trips == round_trips, "a refused query must not reach the graph"
    error: dict[str, Any] = body["errors"][0]
    return error


@pytest.fixture
def guarded(api: Api, app_graph: Any) -> Api:
    api.graph = app_graph  # type: ignore[attr-defined]
    return api


async def test_too_deep(guarded: Api) -> None:
    error = await rejected(guarded, nested_followers(4), "QUERY_TOO_DEEP")
    assert error["extensions"]["limit"] == 10 and error["extensions"]["actual"] == 14
    assert "14 levels deep" in error["message"]
    body = await guarded(nested_followers(3), token=guarded.token("operator"))  # depth 11? no: 1 + 3×3 + 1 = 11
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_DEEP"
    ok = await guarded('{ member(id: "mem_nope") { followers(first: 1) { edges { node { followers(first: 1) '
                       '{ edges { node { id } } } } } } } }', token=guarded.token("operator"))
    assert ok == {"data": {"member": None}, "extensions": ok["extensions"]}


async def test_alias_bomb(guarded: Api) -> None:
    query = "{ " + " ".join(f'a{i}: member(id: "mem_nope") {{ id }}' for i in range(16)) + " }"
    error = await rejected(guarded, query, "TOO_MANY_ALIASES")
    assert error["extensions"] == {"code": "TOO_MANY_ALIASES", "limit": 15, "actual": 16}
    fifteen = "{ " + " ".join(f'a{i}: member(id: "mem_nope") {{ id }}' for i in range(15)) + " }"
    body = await guarded(fifteen, token=guarded.token("operator"))
    assert "errors" not in body and len(body["data"]) == 15


async def test_token_limit(guarded: Api) -> None:
    query = "{ viewer { " + " ".join(["__typename"] * 2_100) + " } }"
    error = await rejected(guarded, query, "TOO_MANY_TOKENS")
    assert error["message"] == "the query has more than 2000 tokens"


async def test_cost_limit_and_cost_in_extensions(guarded: Api) -> None:
    costly = "{ members(first: 100) { edges { node { followers(first: 100) { edges { node { id } } } } } } }"
    error = await rejected(guarded, costly, "QUERY_TOO_COSTLY")
    assert error["extensions"]["actual"] == 1 + 100 * (1 + (1 + (1 + 100 * 2)))
    assert error["extensions"]["limit"] == 10_000
    body = await guarded("{ members(first: 5) { edges { node { id } } } }", token=guarded.token("operator"))
    assert "errors" not in body
    assert body["extensions"]["cost"] == {"requested": 11, "maximum": 10_000}


async def test_cost_limit_prices_variables(guarded: Api) -> None:
    query = "query($n: Int) { members(first: $n) { edges { node { followers(first: $n) { edges { node { id } } } } } } }"
    await rejected(guarded, query, "QUERY_TOO_COSTLY", {"n": 80})
    body = await guarded(query, {"n": 3}, token=guarded.token("operator"))
    assert "errors" not in body


async def test_page_size_is_capped(guarded: Api) -> None:
    body = await guarded("{ members(first: 101) { edges { node { id } } } }", token=guarded.token("operator"))
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
    assert "between 0 and 100" in body["errors"][0]["message"]


async def test_body_limit(guarded: Api) -> None:
    padding = "#" + "x" * 1_100_000 + "\n"
    response = await guarded.http.post("/graphql", json={"query": padding + "{ viewer { __typename } }"},
                                       headers={"Authorization": f"Bearer {guarded.token('operator')}"})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"] == {"code": "REQUEST_TOO_LARGE", "limit": 1_048_576}


async def test_body_limit_without_content_length(guarded: Api) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * 60_000
        yield b'{"query": "{ viewer { __typename } }"}'

    response = await guarded.http.post("/graphql", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    small = await guarded.http.post("/graphql", content=b" " * 1000 + b'{"query": "{ viewer { __typename } }"}',
                                    headers={"Content-Type": "application/json"})
    assert small.status_code == 200 and small.json()["data"] == {"viewer": None}


async def test_syntax_errors_keep_a_code(guarded: Api) -> None:
    body = await guarded("{ viewer { ", token=guarded.token("operator"))
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert body["errors"][0]["message"].startswith("Syntax Error")


async def test_no_field_suggestions_outside_development(guarded: Api) -> None:
    body = await guarded("{ viewer { __typenam } member(id: \"mem_nope\") { displayNam } }", token=guarded.token("operator"))
    messages = [e["message"] for e in body["errors"]]
    assert messages == ["Cannot query field '__typenam' on type 'Viewer'.",
                        "Cannot query field 'displayNam' on type 'Member'."]
    coerced = await guarded("query($k: RankingKind!) { kolRanking(kind: $k) { computedAt } }", {"k": "KOLL"},
                            token=guarded.token("operator"))
    assert "Did you mean" not in coerced["errors"][0]["message"]
    assert "KOLL" in coerced["errors"][0]["message"]


async def test_suggestions_are_kept_in_development(stack: Any) -> None:
    from api.auth import issue_token
    from api.settings import Settings
    from tests.conftest import own_app

    settings = Settings(env="development", demo_members=0, relay_interval=3600, scheduler_interval=0)
    token = issue_token(settings, tenant="ten_dev", roles=["operator"])
    async with own_app(stack, settings) as client:
        response = await client.post("/graphql", json={"query": '{ member(id: "mem_x") { displayNam } }'},
                                     headers={"Authorization": f"Bearer {token}"})
    assert "Did you mean 'displayName'?" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(("declared", "value"), [("Int", "x"), ("RankingKind!", "KOLL"), ("DateTime", "yesterday"),
                                                 ("ID!", None), ("Int", 2**40)])
async def test_variables_of_the_wrong_type_are_the_callers_error(guarded: Api, declared: str, value: Any) -> None:
    uses = {"Int": "members(first: $v) { totalCount }", "RankingKind!": "kolRanking(kind: $v) { computedAt }",
            "DateTime": "members(filter: {joinedFrom: $v}) { totalCount }", "ID!": "member(id: $v) { id }",
            }[declared]
    query = f"query($v: {declared}) {{ {uses} }}"
    body = await guarded(query, {"v": value}, token=guarded.token("operator"))
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", error
    assert error["message"].startswith("Variable '$v'")


def test_only_short_documents_are_cached() -> None:
    from api.limits import _parse, _parse_cached

    _parse_cached.cache_clear()
    short = "{ viewer { __typename } }"
    assert _parse(short, 2_000) is _parse(short, 2_000)
    long = "{ viewer { __typename } }" + "#" * 30_000
    assert _parse(long, 2_000) is not _parse(long, 2_000)  # parsed each time, never held
    assert _parse_cached.cache_info().currsize == 1
