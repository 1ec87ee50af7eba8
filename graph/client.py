"""One Bolt driver per process, and the only place that runs Cypher.

Reads run as auto-commit queries routed to readers (one round trip each; on the
embedded server about 0.6 ms against 1.4 ms for a managed read transaction). Writes run
in transactions whose work functions are pure and safe to retry. Driver exceptions are
translated into the domain's error tree here.

Failures, and why writes use explicit transactions with our own retry policy rather than
``execute_write``: the driver's managed transactions retry *every* retryable error for
one budget (``max_transaction_retry_time``), so a stopped server held each write for that
whole budget (up to 7.7 s measured) before it failed. Here the two kinds are told apart:

* **server gone** (``ServiceUnavailable``, ``SessionExpired``, ``OSError``, and the server
  answers that mean the same: credentials suddenly refused, "... not expected in state"
  protocol errors, ``DatabaseUnavailable``, which is what ArcadeDB sends while it stops or
  starts): a call retries for at most :data:`UNAVAILABLE_RETRY_WINDOW` (a stale pooled
  connection after a restart fails once; a refused connection fails in milliseconds), then
  declares the server gone and raises :class:`~domain.errors.GraphUnavailable`
  (``GRAPH_UNAVAILABLE``). From then on every call fails at once, without touching the
  network, and ``available`` (which ``/readyz`` reads) is ``False``, while a background task
  pings the server every :data:`PROBE_INTERVAL`; its first answer makes the client usable
  again, with nothing to restart (the driver drops dead connections and opens new ones).
  Other ``DriverError``s (no pooled connection within :data:`ACQUISITION_TIMEOUT`: every
  connection busy) answer ``GRAPH_UNAVAILABLE`` too, without declaring the server gone.
* **lost commit** (``IncompleteCommit``: the connection died after COMMIT was sent): the
  write may or may not have happened, so it is never retried blindly; the caller gets
  ``GRAPH_UNAVAILABLE`` saying so, and retries with the same idempotency key.
* **conflict** (a retryable server error such as ArcadeDB's concurrent-modification
  ``TransientError``: writers that append edges to one hot vertex, a product many buy at
  once, conflict and all but one retry): retried with full-jitter exponential backoff for
  up to :data:`TRANSIENT_RETRY_TIME`, then ``GRAPH_UNAVAILABLE`` saying the graph is busy
  (nothing was written).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString, TypeVar

import neo4j
import neo4j.time
from neo4j import READ_ACCESS, AsyncDriver, AsyncGraphDatabase, AsyncTransaction
from neo4j.exceptions import (
    AuthError,
    ConstraintError,
    DatabaseUnavailable,
    DriverError,
    IncompleteCommit,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
)

from domain.errors import AlreadyExists, GraphUnavailable

__all__ = [
    "ACQUISITION_TIMEOUT",
    "CONNECTION_TIMEOUT",
    "PROBE_INTERVAL",
    "PROBE_TIMEOUT",
    "TRANSIENT_RETRY_TIME",
    "UNAVAILABLE_RETRY_WINDOW",
    "GraphClient",
    "Tx",
    "from_micros",
    "now",
    "to_datetime",
    "to_micros",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
#: the transaction a write's work function runs in (committed by :meth:`GraphClient.write`, never by the work)
Tx = AsyncTransaction
Record = Mapping[str, Any]

#: seconds to open a connection and finish the Bolt handshake. Not tighter: on a busy machine
#: 50 simultaneous handshakes took over 1.5 s, and a timed-out handshake makes the driver drop
#: the address's other connections too.
CONNECTION_TIMEOUT = 2.0
#: seconds a call waits for a pooled connection (includes opening one) before GRAPH_UNAVAILABLE
ACQUISITION_TIMEOUT = 3.0
#: seconds within which a call retries a lost connection before it declares the server gone
UNAVAILABLE_RETRY_WINDOW = 0.5
#: seconds between pings of a server believed gone (the most its return can go unnoticed)
PROBE_INTERVAL = 0.25
#: seconds one ping may take (a server still starting accepts connections but does not answer)
PROBE_TIMEOUT = 2.0
#: seconds a write retries server-side conflicts (retryable ``TransientError``s)
TRANSIENT_RETRY_TIME = 5.0

_GONE = (ServiceUnavailable, SessionExpired, OSError)
UNAVAILABLE_MESSAGE = "the graph database is unavailable; try again shortly"
BUSY_MESSAGE = "the graph database is busy with concurrent changes to the same records; try again shortly"
COMMIT_UNKNOWN_MESSAGE = (
    "the graph database went away while this write was committing, so it may or may not have been "
    "recorded; send it again (with the same idempotency key where it has one)"
)


def _backoff(base: float = 0.05, cap: float = 2.0) -> Iterator[float]:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**n)].

    Full jitter spreads writers that conflicted on the same record (ArcadeDB's optimistic
    concurrency on a hot member's edge list) instead of waking them together again.
    """
    n = 0
    while True:
        yield random.uniform(0.0, min(cap, base * 2**n))
        n += 1


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
    statement ran on the real server. ``available`` is ``False`` from a call that gave up
    on a gone server until a background ping (every :data:`PROBE_INTERVAL`) reaches it again;
    meanwhile every call fails at once with ``GRAPH_UNAVAILABLE``.
    """

    def __init__(self, driver: AsyncDriver, *, database: str | None) -> None:
        self.driver = driver
        self.database = database
        self.round_trips = 0
        self.executed: set[str] = set()
        self.available = True
        self._down_since = 0.0
        self._watcher: asyncio.Task[None] | None = None

    @classmethod
    def connect(cls, uri: str, *, user: str, password: str, database: str | None) -> GraphClient:
        driver = AsyncGraphDatabase.driver(
            uri,
            auth=(user, password),
            connection_timeout=CONNECTION_TIMEOUT,
            connection_acquisition_timeout=ACQUISITION_TIMEOUT,
            max_connection_pool_size=64,
            keep_alive=True,
        )
        return cls(driver, database=database)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.driver.close()

    async def ping(self) -> None:
        """Raise :class:`GraphUnavailable` unless the server answers a trivial query."""
        await self.read("RETURN 1 AS ok")

    def _count(self, query: str) -> None:
        self.round_trips += 1
        self.executed.add(query)

    def _gone(self, exc: BaseException) -> None:
        """Mark the server gone and start pinging it; calls fail at once until it answers."""
        if not self.available:
            return
        loop = asyncio.get_running_loop()
        self.available = False
        self._down_since = loop.time()
        log.warning("the graph server is unavailable: %s", exc)
        if self._watcher is None or self._watcher.done():
            self._watcher = loop.create_task(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.available:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    async with self.driver.session(database=self.database, default_access_mode=READ_ACCESS) as s:
                        result = await s.run("RETURN 1 AS ok")
                        await result.consume()
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"; the watcher must not die
                log.debug("the graph server does not answer yet: %r", exc)
                continue
            self.available = True
            log.warning("the graph server answers again (unavailable for %.1f s)", loop.time() - self._down_since)

    async def _attempt(self, once: Callable[[], Awaitable[T]], *, retry_conflicts: bool) -> T:
        """Run *once* under the retry policy of the module docstring; translate driver errors."""
        if not self.available:  # the watcher says when it is back
            raise GraphUnavailable(UNAVAILABLE_MESSAGE)
        loop = asyncio.get_running_loop()
        start = loop.time()
        delays = _backoff()
        while True:
            try:
                result = await once()
            except ConstraintError as exc:
                raise AlreadyExists(_constraint_message(exc)) from exc
            except IncompleteCommit as exc:
                raise GraphUnavailable(COMMIT_UNKNOWN_MESSAGE) from exc
            except _GONE as exc:
                # A stale pooled connection (say, after a restart) fails once; a gone server keeps failing.
                if self.available and loop.time() - start < UNAVAILABLE_RETRY_WINDOW:
                    await asyncio.sleep(next(delays))
                    continue
                self._gone(exc)
                raise GraphUnavailable(UNAVAILABLE_MESSAGE) from exc
            except Neo4jError as exc:
                if _not_serving(exc):  # a server stopping or starting: as good as gone
                    if self.available and loop.time() - start < UNAVAILABLE_RETRY_WINDOW:
                        await asyncio.sleep(next(delays))
                        continue
                    self._gone(exc)
                    raise GraphUnavailable(UNAVAILABLE_MESSAGE) from exc
                if not (retry_conflicts and exc.is_retryable()):
                    raise
                if loop.time() - start < TRANSIENT_RETRY_TIME:
                    log.debug("graph transaction conflict, retrying: %s", exc)
                    await asyncio.sleep(next(delays))
                    continue
                log.warning("graph transaction still conflicting after %.1f s: %s", loop.time() - start, exc)
                raise GraphUnavailable(BUSY_MESSAGE) from exc
            except DriverError as exc:
                # No pooled connection within ACQUISITION_TIMEOUT (every connection busy: overload
                # or a hung server), or a transaction left unusable by a lost connection. Not
                # proof that the server is gone, so `available` stays as it is.
                log.warning("graph driver error (%s): %s", type(exc).__name__, exc)
                raise GraphUnavailable(UNAVAILABLE_MESSAGE) from exc
            return result

    async def read(self, query: LiteralString, **params: Any) -> list[Record]:
        """Run a read-only statement in an auto-commit transaction; return all records."""
        self._count(query)

        async def once() -> list[Record]:
            async with self.driver.session(database=self.database, default_access_mode=READ_ACCESS) as s:
                result = await s.run(query, params)
                return [record async for record in result]

        return await self._attempt(once, retry_conflicts=True)

    async def read_one(self, query: LiteralString, **params: Any) -> Record | None:
        rows = await self.read(query, **params)
        return rows[0] if rows else None

    async def write(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """Run *work* in a write transaction and commit it (retried as the module docstring says).

        *work* must only run statements (``run``/``run_one``) and may run more than once.
        """

        async def once() -> T:
            # the transaction commits when the block ends normally and rolls back when it raises
            async with self.driver.session(database=self.database) as s, await s.begin_transaction() as tx:
                return await work(tx)

        return await self._attempt(once, retry_conflicts=True)

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

        async def once() -> None:
            async with self.driver.session(database=self.database) as s:
                result = await s.run(query)
                await result.consume()

        await self._attempt(once, retry_conflicts=False)


def _not_serving(exc: Neo4jError) -> bool:
    """Whether a server error means "not serving right now" rather than "bad statement".

    Seen from ArcadeDB while it stops or starts: connections it had authenticated get
    ``Security.Unauthorized`` ("The credentials of this connection are no longer valid"), and
    new ones get ``Request.Invalid`` ("RUN not expected in state: AUTHENTICATION"). A wrong
    password reads the same from here; the log (and ``quanzi serve``'s start-up error) says which.
    """
    if isinstance(exc, (AuthError, DatabaseUnavailable)):
        return True
    return exc.code == "Neo.ClientError.Request.Invalid" and "not expected in state" in (exc.message or "")


def _constraint_message(exc: Neo4jError) -> str:
    return f"a unique key is already taken ({exc.message or exc})"
