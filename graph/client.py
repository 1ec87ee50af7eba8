"""One Bolt driver per process, and the only place that runs Cypher.

Reads run as auto-commit queries routed to readers (one round trip each; on the
embedded server about 0.6 ms against 1.4 ms for a managed read transaction). Writes run
in managed transactions (``execute_write``) whose work functions are pure and safe to
retry. Driver exceptions are translated into the domain's error tree here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString, TypeVar

import neo4j
import neo4j.time
from neo4j import READ_ACCESS, AsyncDriver, AsyncGraphDatabase, AsyncManagedTransaction
from neo4j.exceptions import (
    ConstraintError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
)

from domain.errors import AlreadyExists, GraphUnavailable

__all__ = ["GraphClient", "Tx", "to_datetime", "to_micros", "from_micros", "now"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Tx = AsyncManagedTransaction
Record = Mapping[str, Any]


def to_datetime(value: Any) -> datetime:
    """A driver temporal value as an aware UTC :class:`datetime`."""
    if isinstance(value, neo4j.time.DateTime):
        native = value.to_native()
    elif isinstance(value, datetime):
        native = value
    else:
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if native.tzinfo is None:
        return native.replace(tzinfo=UTC)
    return native.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(value: datetime) -> int:
    """Exact integer microseconds since the epoch (cursors compare timestamps exactly)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def now() -> datetime:
    """The current time as written to the graph (microsecond precision, UTC).

    Writes pass times as parameters instead of calling Cypher's ``datetime()``, whose
    nanoseconds a microsecond cursor could not compare exactly.
    """
    return datetime.now(UTC)


class GraphClient:
    """Runs constant Cypher statements against one database of one driver.

    ``round_trips`` counts every statement sent (tests use it to prove that a nested
    GraphQL list does not make round trips grow with the number of rows); ``executed``
    holds the text of every statement that ran, so a test can check each registered
    statement ran on the real server.
    """

    def __init__(self, driver: AsyncDriver, *, database: str | None) -> None:
        self.driver = driver
        self.database = database
        self.round_trips = 0
        self.executed: set[str] = set()

    @classmethod
    def connect(cls, uri: str, *, user: str, password: str, database: str | None) -> GraphClient:
        driver = AsyncGraphDatabase.driver(
            uri,
            auth=(user, password),
            connection_timeout=2.0,
            connection_acquisition_timeout=2.0,
            max_transaction_retry_time=5.0,
            max_connection_pool_size=64,
            keep_alive=True,
        )
        return cls(driver, database=database)

    async def close(self) -> None:
        await self.driver.close()

    async def ping(self) -> None:
        """Raise :class:`GraphUnavailable` unless the server answers a trivial query."""
        await self.read("RETURN 1 AS ok")

    def _count(self, query: str) -> None:
        self.round_trips += 1
        self.executed.add(query)

    async def read(self, query: LiteralString, **params: Any) -> list[Record]:
        """Run a read-only statement in an auto-commit transaction; return all records."""
        self._count(query)
        try:
            async with self.driver.session(database=self.database, default_access_mode=READ_ACCESS) as s:
                result = await s.run(query, params)
                return [record async for record in result]
        except (ServiceUnavailable, SessionExpired, OSError) as exc:
            raise GraphUnavailable(f"the graph server is unavailable: {exc}") from exc
        except DriverError as exc:
            raise GraphUnavailable(f"the graph driver failed: {exc}") from exc

    async def read_one(self, query: LiteralString, **params: Any) -> Record | None:
        rows = await self.read(query, **params)
        return rows[0] if rows else None

    async def write(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """Run *work* in a managed write transaction (retried on transient errors)."""
        try:
            async with self.driver.session(database=self.database) as s:
                return await s.execute_write(work)
        except ConstraintError as exc:
            raise AlreadyExists(_constraint_message(exc)) from exc
        except (ServiceUnavailable, SessionExpired, OSError) as exc:
            raise GraphUnavailable(f"the graph server is unavailable: {exc}") from exc
        except DriverError as exc:
            raise GraphUnavailable(f"the graph driver failed: {exc}") from exc

    async def run(self, tx: Tx, query: LiteralString, **params: Any) -> list[Record]:
        """Run one statement inside a write transaction and return its records."""
        self._count(query)
        result = await tx.run(query, params)
        return [record async for record in result]

    async def run_one(self, tx: Tx, query: LiteralString, **params: Any) -> Record | None:
        rows = await self.run(tx, query, **params)
        return rows[0] if rows else None

    async def execute_schema(self, query: str) -> None:
        """Run one schema statement (migrations only: their text comes from versioned files)."""
        self._count(query)
        try:
            async with self.driver.session(database=self.database) as s:
                result = await s.run(query)  # type: ignore[arg-type]
                await result.consume()
        except (ServiceUnavailable, SessionExpired, OSError) as exc:
            raise GraphUnavailable(f"the graph server is unavailable: {exc}") from exc


def _constraint_message(exc: Neo4jError) -> str:
    return f"a unique key is already taken ({exc.message or exc})"
