"""The layout's import direction (ARCHITECTURE.md) and the committed schema.graphql."""

from __future__ import annotations

import ast
from pathlib import Path

from resolvers.schema import build_schema
from tests.conftest import ROOT

#: package -> first-party packages it may import
ALLOWED = {
    "api": {"api", "resolvers", "graph", "domain"},
    "resolvers": {"resolvers", "domain"},
    "graph": {"graph", "domain"},
    "domain": {"domain"},
}
#: third-party modules that mean I/O and must stay out of the pure domain
DOMAIN_FORBIDDEN = {"neo4j", "redis", "strawberry", "starlette", "httpx", "uvicorn", "socket", "subprocess"}
FIRST_PARTY = set(ALLOWED)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def violations(root: Path = ROOT) -> list[str]:
    problems = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            imported = imports_of(path)
            for bad in sorted((imported & FIRST_PARTY) - allowed):
                problems.append(f"{path.relative_to(root)} imports {bad}")
            if package == "domain":
                for bad in sorted(imported & DOMAIN_FORBIDDEN):
                    problems.append(f"{path.relative_to(root)} imports {bad} (domain is pure)")
    return problems


def test_import_direction():
    assert violations() == []


def test_the_check_catches_a_wrong_import(tmp_path):
    (tmp_path / "domain").mkdir()
    (tmp_path / "domain" / "bad.py").write_text("from graph.client import GraphClient\nimport neo4j\n")
    for package in ("api", "resolvers", "graph"):
        (tmp_path / package).mkdir()
    assert violations(tmp_path) == ["domain/bad.py imports graph", "domain/bad.py imports neo4j (domain is pure)"]


def test_schema_graphql_is_current():
    committed = (ROOT / "schema.graphql").read_text("utf-8")
    assert committed == str(build_schema()) + "\n", "schema.graphql is stale: run `.venv/bin/python -m api.export_schema`"
