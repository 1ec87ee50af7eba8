"""Versioned schema and data migrations from ``migrations/*.cypher``.

A file is named ``V<number>__<description>.cypher``; its statements end with ``;`` at
the end of a line, and lines starting with ``//`` are comments. ``quanzi migrate``
applies pending files in version order, one statement at a time (schema statements
cannot share a transaction with data writes on Neo4j), then records the file as a
``(:Migration {version, name, checksum, appliedAt})`` node. Before anything runs, every
applied file's checksum is compared with the file on disk: an edited migration stops
the run with ``MIGRATION_CHECKSUM_MISMATCH``. A second run with nothing pending is a no-op.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from domain.errors import ErrorCode, MigrationError
from graph.client import GraphClient
from graph.cypher import cypher

__all__ = ["MigrationFile", "MigrationReport", "discover", "split_statements", "migrate", "MIGRATIONS_DIR"]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_NAME = re.compile(r"^V(\d{3,})__([a-z0-9_]+)\.cypher$")

APPLIED = cypher(
    "MATCH (m:Migration) RETURN m.version AS version, m.name AS name, m.checksum AS checksum ORDER BY m.version"
)
RECORD = cypher(
    "CREATE (m:Migration {id: $id, version: $version, name: $name, checksum: $checksum, appliedAt: datetime()})"
)


@dataclass(frozen=True, slots=True)
class MigrationFile:
    version: int
    name: str
    path: Path
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def statements(self) -> list[str]:
        return split_statements(self.text)


@dataclass(frozen=True, slots=True)
class MigrationReport:
    applied: tuple[int, ...]
    already: tuple[int, ...]


def split_statements(text: str) -> list[str]:
    """Split a migration file into statements (``;`` at line end; ``//`` comment lines)."""
    statements: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("//"):
            continue
        if stripped.endswith(";"):
            current.append(stripped[:-1])
            statements.append(" ".join(current).strip())
            current = []
        else:
            current.append(stripped)
    if current:
        statements.append(" ".join(current).strip())
    return [s for s in statements if s]


def discover(directory: Path = MIGRATIONS_DIR) -> list[MigrationFile]:
    files: list[MigrationFile] = []
    for path in sorted(directory.glob("*.cypher")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(
                f"migration file name {path.name!r} must look like V001__description.cypher",
                code=ErrorCode.MIGRATION_FAILED,
            )
        files.append(MigrationFile(int(match.group(1)), match.group(2), path, path.read_text("utf-8")))
    versions = [f.version for f in files]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number", code=ErrorCode.MIGRATION_FAILED)
    return sorted(files, key=lambda f: f.version)


async def migrate(graph: GraphClient, directory: Path = MIGRATIONS_DIR) -> MigrationReport:
    """Apply pending migrations in order; refuse to run when an applied file was edited."""
    files = discover(directory)
    rows = await graph.read(APPLIED)
    applied = {int(r["version"]): str(r["checksum"]) for r in rows}
    by_version = {f.version: f for f in files}
    for version, checksum in applied.items():
        file = by_version.get(version)
        if file is None:
            raise MigrationError(
                f"migration V{version:03d} is recorded in the graph but its file is missing",
                code=ErrorCode.MIGRATION_FAILED,
            )
        if file.checksum != checksum:
            raise MigrationError(
                f"migration {file.path.name} was edited after it was applied "
                f"(checksum {checksum[:12]}… in the graph, {file.checksum[:12]}… on disk); "
                "add a new migration instead of editing an applied one",
                code=ErrorCode.MIGRATION_CHECKSUM_MISMATCH,
            )
    done: list[int] = []
    for file in files:
        if file.version in applied:
            continue
        for statement in file.statements:
            try:
                await graph.execute_schema(statement)
            except Exception as exc:
                raise MigrationError(
                    f"migration {file.path.name} failed at: {statement[:120]}: {exc}",
                    code=ErrorCode.MIGRATION_FAILED,
                ) from exc
        checksum = file.checksum
        version, name = file.version, file.name

        async def record(tx: object, version: int = version, name: str = name, checksum: str = checksum) -> None:
            await graph.run(tx, RECORD, id=f"V{version:03d}", version=version, name=name, checksum=checksum)  # type: ignore[arg-type]

        await graph.write(record)
        done.append(file.version)
    return MigrationReport(applied=tuple(done), already=tuple(sorted(applied)))
