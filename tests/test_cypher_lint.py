"""Every Cypher statement of the code base is valid Neo4j 5 Cypher, by Neo4j's own linter.

The statements are the ones registered through :func:`graph.cypher.cypher` plus every statement
of every ``migrations/*.cypher`` file. ``tests/cypher_lint/lint.mjs`` lints them all in one
Node.js process with ``@neo4j-cypher/language-support`` (Neo4j's parser and semantic analysis);
install it with ``npm ci --prefix tests/cypher_lint``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import TypedDict

import pytest

from graph.cypher import all_statements
from graph.migrations import split_statements

ROOT = Path(__file__).resolve().parent.parent
LINT_DIR = ROOT / "tests" / "cypher_lint"
MIGRATIONS = ROOT / "migrations"
INSTALL_COMMAND = "npm ci --prefix tests/cypher_lint"


class Diagnostic(TypedDict):
    severity: str  # "error" | "warning"
    message: str
    line: int  # 1-based, within the statement
    column: int  # 1-based


def lint(statements: list[str]) -> list[list[Diagnostic]]:
    """Lint *statements* as Neo4j 5 Cypher; one list of diagnostics per statement, in order."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js (`node`) is not on PATH; the Cypher linter needs Node.js 20 or later")
    if not (LINT_DIR / "node_modules" / "@neo4j-cypher" / "language-support").is_dir():
        pytest.fail(
            f"the Cypher linter is not installed in {LINT_DIR / 'node_modules'}: "
            f"run `{INSTALL_COMMAND}` from the repository root"
        )
    proc = subprocess.run(
        [node, "lint.mjs"],
        cwd=LINT_DIR,
        input=json.dumps(statements),
        capture_output=True,
        encoding="utf-8",
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"tests/cypher_lint/lint.mjs exited with {proc.returncode}:\n{proc.stderr}")
    results: list[list[Diagnostic]] = json.loads(proc.stdout)
    assert len(results) == len(statements), "lint.mjs must answer once per statement"
    return results


def errors(diagnostics: list[Diagnostic]) -> list[tuple[str, int, int]]:
    return [(d["message"], d["line"], d["column"]) for d in diagnostics if d["severity"] == "error"]


def collect() -> list[tuple[str, str]]:
    """(origin, statement) for every registered statement and every migration statement."""
    found = [(st.module, st.text) for st in all_statements()]
    for path in sorted(MIGRATIONS.glob("*.cypher")):
        origin = f"migrations/{path.name}"
        found.extend((origin, text) for text in split_statements(path.read_text("utf-8")))
    return found


def annotate(text: str, found: list[tuple[str, int, int]]) -> str:
    """*text* with numbered lines and a caret under each error."""
    lines = text.split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    out = []
    for number, line in enumerate(lines, start=1):
        out.append(f"    {number:3d} | {line.rstrip()}")
        out.extend(f"        | {' ' * (col - 1)}^ {msg}" for msg, at, col in found if at == number)
    out.extend(
        f"        ^ line {at}, column {col}: {msg}" for msg, at, col in found if at > len(lines)
    )
    return "\n".join(out)


def test_every_statement_is_valid_neo4j5_cypher() -> None:
    statements = collect()
    assert statements, "no Cypher statement was collected: graph.cypher registered none"
    results = lint([text for _, text in statements])
    problems = [
        f"{origin}:\n{annotate(text, found)}"
        for (origin, text), diagnostics in zip(statements, results, strict=True)
        if (found := errors(diagnostics))
    ]
    if problems:
        pytest.fail(
            f"{len(problems)} of {len(statements)} Cypher statements are not valid Neo4j 5 Cypher "
            "(Neo4j's linter, tests/cypher_lint/lint.mjs):\n\n" + "\n\n".join(problems),
            pytrace=False,
        )


NOT_PRESENT = (
    " is not present in the database. Make sure you didn't misspell it or that it is available"
    " when you run this statement in your application"
)

# Statement -> the exact errors (message, line, column) the pinned linter reports.
INVALID: dict[str, list[tuple[str, int, int]]] = {
    # syntax error
    "MATCH (n RETURN n": [
        (
            (
                "Invalid input 'RETURN': expected a graph pattern, a parameter, ')', ':', 'IS', "
                "'WHERE' or '{'"
            ),
            1,
            10,
        )
    ],
    # semantic error: undefined variable (positions are per line within the statement)
    "MATCH (n:Member)\nRETURN n.id AS id,\n       m.name AS name": [
        ("Variable `m` not defined", 3, 8)
    ],
    # row-value (tuple) comparison: accepted by some engines, not by Neo4j
    "MATCH (a:Member)\nWHERE (a.x, a.y) > ($p, $q)\nRETURN a": [
        ("Invalid input ',': expected an expression or ')'", 2, 11)
    ],
    # not a Neo4j function
    "RETURN foo(1)": [("Function foo" + NOT_PRESENT, 1, 8)],
    # a plugin procedure (APOC is not part of Neo4j)
    "CALL apoc.create.uuid()": [("Procedure apoc.create.uuid" + NOT_PRESENT, 1, 6)],
    # an aggregation hides the variables it does not project
    "MATCH (n) RETURN count(n) AS c ORDER BY n.b": [
        (
            (
                "In a WITH/RETURN with DISTINCT or an aggregation, it is not possible to access "
                "variables declared before the WITH/RETURN: n"
            ),
            1,
            41,
        )
    ],
    # Neo4j runs one statement per query
    "MATCH (n) RETURN n; MATCH (m) RETURN m": [
        ("Expected exactly one statement per query but got: 2", 1, 1)
    ],
}

VALID = [
    # parameters are declared and labels, types and keys unknown to the linter are fine
    "MATCH (m:Member {id: $id}) RETURN m",
    (
        "MATCH (a:Member {id: $a})-[r:FOLLOWS]->(b:Member) WHERE r.since < $cursor "
        "RETURN b ORDER BY r.since DESC LIMIT $first"
    ),
    "CREATE CONSTRAINT member_id IF NOT EXISTS FOR (n:Member) REQUIRE n.id IS UNIQUE",
    "MATCH (n) RETURN n;",
]


def test_linter_rejects_invalid_cypher() -> None:
    deprecated = "MATCH (n) RETURN id(n)"  # warnings only: reported, but not errors
    statements = [*INVALID, *VALID, deprecated]
    results = dict(zip(statements, lint(statements), strict=True))
    for statement, expected in INVALID.items():
        assert errors(results[statement]) == expected, statement
    for statement in VALID:
        assert results[statement] == [], statement
    assert results[deprecated], "the deprecated id() function must be warned about"
    assert {d["severity"] for d in results[deprecated]} == {"warning"}


# ArcadeDB's planner, given a tenant filter next to an id lookup, scans the tenant instead of
# using the unique id index: `MATCH (m:Member {id: $id}) WHERE m.tenantId = $tenant` took
# 60–360 ms on 10,000 members, and a follower count through it over a second, against 2–5 ms
# with the filter after `WITH *` (benchmarks/results/id_lookup_bench.md). OPTIONAL MATCH is
# not affected (and `WITH *` would change its meaning there).
_SLOW_ID_LOOKUP = re.compile(
    r"^\s*MATCH\b[^\n]*\{(?:id: [^,}]+, tenantId: \$tenant|tenantId: \$tenant, id: [^,}]+)\}"
    r"|^\s*MATCH\b(?:(?!WHERE)[^\n])*\{id: [^}]+\}(?:(?!WHERE)[^\n])*\) WHERE [a-z]+\.tenantId = \$tenant",
    re.MULTILINE,
)


def test_id_lookups_filter_the_tenant_after_with() -> None:
    slow = [f"{s.module}: {line.strip()}" for s in all_statements() for line in s.text.splitlines()
            if _SLOW_ID_LOOKUP.search(line)]
    assert not slow, "filter the tenant after `WITH *` (see the comment above):\n" + "\n".join(slow)


def test_the_slow_id_lookup_shape_is_recognised() -> None:
    assert _SLOW_ID_LOOKUP.search("MATCH (m:Member {id: $id}) WHERE m.tenantId = $tenant")
    assert _SLOW_ID_LOOKUP.search("MATCH (a)-[:F]->(m:Member {id: $id}) WHERE m.tenantId = $tenant AND a.x = 1")
    assert _SLOW_ID_LOOKUP.search("MATCH (:Community {id: $c, tenantId: $tenant})<-[:IN]-(x)")
    assert not _SLOW_ID_LOOKUP.search("MATCH (m:Member {id: $id}) WITH * WHERE m.tenantId = $tenant")
    assert not _SLOW_ID_LOOKUP.search("OPTIONAL MATCH (m:Member {id: $id}) WHERE m.tenantId = $tenant")
