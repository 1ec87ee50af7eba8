"""Summarise a py-spy ``--format raw`` recording (collapsed stacks) into top frames."""

from __future__ import annotations

import re
import sys
from collections import Counter

__all__ = ["top_frames"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
# kinds of work by the top-level package of a frame's file (py-spy names files relative to
# their sys.path entry: "neo4j/_codec/...", "api/app.py", "asyncio/streams.py")
_BUCKETS = [
    ("neo4j driver (Bolt I/O, packstream, records)", ("neo4j", "neo4j_rust_ext")),
    ("redis client", ("redis",)),
    ("JSON encode/decode", ("json", "orjson")),
    ("GraphQL parse/validate", ("graphql/language", "graphql/validation")),
    ("graphql-core execution", ("graphql",)),
    ("Strawberry (fields, types, dataloaders, extensions)", ("strawberry", "cross_web")),
    ("pydantic", ("pydantic", "pydantic_core")),
    ("HTTP: Starlette/uvicorn", ("starlette", "uvicorn", "httptools", "h11")),
    ("JWT", ("jwt",)),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("our code: api/", ("api",)),
    ("our code: resolvers/", ("resolvers",)),
    ("our code: graph/", ("graph",)),
    ("our code: domain/", ("domain",)),
]


def _parse(line: str) -> tuple[list[tuple[str, str]], int]:
    stack, _, count = line.rpartition(" ")
    frames = []
    for part in stack.split(";"):
        m = _FRAME.match(part.strip())
        frames.append((m.group("func"), m.group("file")) if m else (part.strip(), ""))
    return frames, int(count)


def top_frames(raw: str, n: int = 12) -> str:
    """Markdown: share of samples by kind of work (innermost frame), top self and inclusive frames."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            frames, count = _parse(line)
        except ValueError:
            continue
        frames = [f for f in frames if not f[0].startswith("process ") and not f[0].startswith("thread ")]
        if not frames:
            continue
        total += count
        func, file = frames[-1]
        own[f"{func} ({_short(file)})"] += count
        for name in {f"{fn} ({_short(fl)})" for fn, fl in frames}:
            incl[name] += count
        kinds[_kind(frames)] += count
    if not total:
        return "no samples"
    out = [f"{total} samples. By kind of work (the innermost frame outside the standard library):", "",
           "| kind | share |", "|---|---:|"]
    out += [f"| {k} | {c / total:.0%} |" for k, c in kinds.most_common()]
    out += ["", "Top self time:", "", "| frame | share |", "|---|---:|"]
    out += [f"| `{k}` | {c / total:.1%} |" for k, c in own.most_common(n)]
    ours = [(k, c) for k, c in incl.most_common()
            if k.split("(")[-1].startswith(("api/", "resolvers/", "graph/", "domain/")) and "(api/cli.py)" not in k]
    out += ["", "Top inclusive time in our code:", "", "| frame | share |", "|---|---:|"]
    out += [f"| `{k}` | {c / total:.1%} |" for k, c in ours[:n]]
    return "\n".join(out)


def _kind(frames: list[tuple[str, str]]) -> str:
    """The kind of work of a stack: its innermost frame of a known package, where standard
    library frames (asyncio streams, enum, dataclass-generated code ...) count for their
    caller; JSON counts as itself."""
    for _func, file in reversed(frames):
        top = file.split("/")[0].removesuffix(".py")
        if top == "json":
            return "JSON encode/decode"
        if not file or file.startswith("<") or top in sys.stdlib_module_names:
            continue
        for kind, prefixes in _BUCKETS:
            if any(file == p or file.startswith(p + "/") or top == p for p in prefixes):
                return kind
        return "other: " + top
    return "event loop (uvloop/asyncio scheduling)"


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


if __name__ == "__main__":  # summarise recordings: python benchmarks/peer/profile.py FILE...
    for name in sys.argv[1:]:
        with open(name, encoding="utf-8") as fh:
            print(f"## {name}\n\n{top_frames(fh.read())}\n")
