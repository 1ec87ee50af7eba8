"""The registry of every Cypher statement the application sends.

Every statement is a module-level constant declared through :func:`cypher`, so

* the text is constant (a ``LiteralString``: no f-strings, ``.format``, ``%`` or ``+``),
* the Neo4j linter test (``tests/test_cypher_lint.py``) can find and lint all of them, and
* the integration tests can check that each one also ran on the embedded server.

Identifiers that vary (labels, relationship types, sort keys) are never spliced into text:
a closed enum maps to one constant statement per value instead.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import LiteralString

__all__ = ["Statement", "cypher", "all_statements"]


@dataclass(frozen=True, slots=True)
class Statement:
    """One registered statement and where it was declared."""

    text: str
    module: str


_REGISTRY: list[Statement] = []


def cypher(text: LiteralString) -> LiteralString:
    """Register *text* as a statement of the application and return it unchanged."""
    import inspect

    frame = inspect.currentframe()
    caller = frame.f_back if frame is not None else None
    module = caller.f_globals.get("__name__", "?") if caller is not None else "?"
    _REGISTRY.append(Statement(text=text, module=str(module)))
    return text


def all_statements() -> list[Statement]:
    """Import every module of the ``graph`` package and return all registered statements."""
    import graph

    for info in pkgutil.walk_packages(graph.__path__, prefix="graph."):
        importlib.import_module(info.name)
    seen: set[str] = set()
    unique: list[Statement] = []
    for st in _REGISTRY:
        if st.text not in seen:
            seen.add(st.text)
            unique.append(st)
    return unique
