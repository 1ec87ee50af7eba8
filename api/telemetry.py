"""Telemetry: Prometheus metrics, request ids and structured (JSON) logs.

Metrics (``GET /metrics``, the Prometheus text format)
------------------------------------------------------
``quanzi_http_requests_total{route, method, status}``
    HTTP requests answered, by route (``/graphql``, ``/readyz``, …; ``other`` for paths
    no route serves). Request rate: ``sum(rate(quanzi_http_requests_total[5m]))``.
``quanzi_http_request_duration_seconds{route}``
    Histogram of HTTP request latency (buckets 1 ms .. 10 s).
``quanzi_graphql_operations_total{operation, type, outcome}``
    GraphQL operations by operation name (``anonymous`` when unnamed), type (``query``,
    ``mutation``, ``subscription``, ``unknown`` when the document did not parse) and outcome
    (``ok``, or ``error`` when the response carried any error).
``quanzi_graphql_operation_duration_seconds{operation, type}``
    Histogram of operation latency (parse, validation and execution; buckets 1 ms .. 10 s).
    p95 per operation: ``histogram_quantile(0.95, sum by (operation, le)
    (rate(quanzi_graphql_operation_duration_seconds_bucket[5m])))``. Subscriptions are counted
    but not timed (they last as long as the client stays).
``quanzi_graphql_errors_total{operation, type, code}``
    GraphQL errors by their final ``extensions.code`` (``INTERNAL`` for masked ones).
``quanzi_bolt_round_trips_total``
    Statements sent to the graph server (``GraphClient.round_trips``: one round trip each).
``quanzi_cache_requests_total{cache, result}``
    Redis-first reads (``graph.cache_stats``) by cache and ``hit``/``miss``. Hit ratio:
    ``sum by (cache) (rate(quanzi_cache_requests_total{result="hit"}[5m])) /
    sum by (cache) (rate(quanzi_cache_requests_total[5m]))``.

Plus the standard ``process_*`` and ``python_gc_*`` collectors. Each app has its own
:class:`~prometheus_client.CollectorRegistry` (several apps in one process, as in tests,
do not collide); the cache counters are per process. Operation names are chosen by
clients, so at most :data:`MAX_OPERATION_NAMES` distinct names get their own label value;
later new names are counted as ``other``. Each worker process has its own counters: with
``--workers N`` a scrape reads whichever worker answers, so run one worker per container
(or process) where metrics matter.

``/metrics`` is open in development; elsewhere it needs ``Authorization: Bearer
<QUANZI_METRICS_TOKEN>`` and is closed (403) when no token is set.

Request ids and logs
--------------------
:class:`ObserveRequests` (the outermost middleware) takes the client's ``X-Request-Id``
when it is a plain token of at most 64 characters (else makes one), stores it in the
scope (``quanzi.request_id``, which the GraphQL context and error masking use) and in a
context variable, so every log line written while the request runs carries it, and
returns it as ``X-Request-Id`` on every response. Each ``/graphql`` request writes one
access line (logger ``quanzi.access``: method, path, status, duration, operation name and
type, error codes). :func:`configure_logging` writes one JSON object per line (``ts``,
``level``, ``logger``, ``message``, ``request_id``, ``exc_info`` as text, and any
``extra`` fields) or, with ``QUANZI_LOG_FORMAT=text`` (the development default),
readable lines.
"""

from __future__ import annotations

import hmac
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from api.settings import Settings
from domain.errors import QuanziError
from graph.cache_stats import CACHE_STATS, CacheStats

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = [
    "BUCKETS", "MAX_OPERATION_NAMES", "JsonFormatter", "ObserveRequests", "OperationMetrics", "RequestIdFilter",
    "Telemetry", "configure_logging", "current_request_id",
]

access_log = logging.getLogger("quanzi.access")
log = logging.getLogger("quanzi.telemetry")

#: latency buckets (seconds): 1 ms .. 10 s
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: distinct operation names that get their own label value (client-chosen: bounded)
MAX_OPERATION_NAMES = 500

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_GRAPHQL_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,99}")
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})


# --------------------------------------------------------------------------------------
# The current request
# --------------------------------------------------------------------------------------


@dataclass
class OperationRecord:
    name: str
    type: str
    seconds: float
    codes: list[str]


@dataclass
class RequestInfo:
    """What is known about the request (or websocket connection) the current task serves."""

    request_id: str
    http: bool
    operations: list[OperationRecord] = field(default_factory=list)


_CURRENT: ContextVar[RequestInfo | None] = ContextVar("quanzi_request", default=None)


def current_request_id() -> str | None:
    """The id of the request being served by the current task, if any."""
    info = _CURRENT.get()
    return info.request_id if info is not None else None


def _request_id(scope: Scope) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"x-request-id":
            candidate = str(value.decode("latin-1")).strip()
            if _REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


# --------------------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------------------

#: attributes every LogRecord has; anything else on a record came from ``extra=``
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "request_id", "taskName",
}


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, exc_info, extras."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or current_request_id()
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None if request_id in (None, "-") else request_id,
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = value
        return orjson.dumps(entry, default=str).decode("utf-8")


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def log_handler(fmt: Literal["json", "text"], stream: Any = None) -> logging.Handler:
    """A stream handler (stderr by default) writing *fmt* lines with request ids."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    return handler


def configure_logging(fmt: Literal["json", "text"], *, level: int = logging.INFO) -> None:
    """Route every logger (uvicorn's too) through one stderr handler writing *fmt* lines."""
    logging.basicConfig(level=level, handlers=[log_handler(fmt)], force=True)


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


class _DerivedCounters:
    """Counters kept elsewhere, read at scrape time: Bolt round trips and cache hits/misses."""

    def __init__(self, round_trips: Callable[[], int | None], cache: CacheStats) -> None:
        self._round_trips = round_trips
        self._cache = cache

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily]:
        return (
            CounterMetricFamily("quanzi_bolt_round_trips", "Statements sent to the graph server over Bolt"),
            CounterMetricFamily("quanzi_cache_requests", "Redis-first reads by cache and hit/miss",
                                labels=["cache", "result"]),
        )

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        trips, cache = self._families()
        value = self._round_trips()
        if value is not None:
            trips.add_metric([], value)
        for (name, result), count in sorted(self._cache.snapshot().items()):
            cache.add_metric([name, result], count)
        return trips, cache


class Telemetry:
    """One app's metrics registry, GraphQL extension, middleware and ``/metrics`` endpoint."""

    def __init__(self, settings: Settings, *, cache: CacheStats = CACHE_STATS,
                 max_operation_names: int = MAX_OPERATION_NAMES) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.max_operation_names = max_operation_names
        self._names: set[str] = set()
        self._app: Starlette | None = None
        self._paths: frozenset[str] | None = None
        r = self.registry
        self.http_requests = Counter("quanzi_http_requests", "HTTP requests answered",
                                     ["route", "method", "status"], registry=r)
        self.http_duration = Histogram("quanzi_http_request_duration_seconds", "HTTP request latency",
                                       ["route"], buckets=BUCKETS, registry=r)
        self.operations = Counter("quanzi_graphql_operations", "GraphQL operations",
                                  ["operation", "type", "outcome"], registry=r)
        self.operation_duration = Histogram("quanzi_graphql_operation_duration_seconds",
                                            "GraphQL operation latency (parse, validate, execute)",
                                            ["operation", "type"], buckets=BUCKETS, registry=r)
        self.errors = Counter("quanzi_graphql_errors", "GraphQL errors by extensions.code",
                              ["operation", "type", "code"], registry=r)
        r.register(_DerivedCounters(self._round_trips, cache))
        ProcessCollector(registry=r)
        GCCollector(registry=r)

    # -- wiring ------------------------------------------------------------------------

    def extension(self) -> OperationMetrics:
        """A fresh :class:`OperationMetrics` (pass the bound method as an extension factory)."""
        return OperationMetrics(self)

    def install(self, app: Starlette) -> None:
        """Add ``/metrics`` and the request middleware to *app* (call before it starts)."""
        self._app = app
        app.state.telemetry = self
        app.add_route("/metrics", self.metrics, methods=["GET"])
        app.add_middleware(ObserveRequests, telemetry=self)

    def _round_trips(self) -> int | None:
        resources = getattr(self._app.state, "resources", None) if self._app is not None else None
        return int(resources.graph.round_trips) if resources is not None else None

    def route(self, path: str) -> str:
        if self._paths is None:
            routes = self._app.routes if self._app is not None else []
            self._paths = frozenset(str(getattr(r, "path", "")) for r in routes)
        return path if path in self._paths else "other"

    # -- observations ------------------------------------------------------------------

    def operation_label(self, name: str | None, *, known: bool) -> str:
        """*name* as a label value: bounded in length, charset and number of distinct values."""
        if name is None:
            return "anonymous"
        if not isinstance(name, str) or not _GRAPHQL_NAME.fullmatch(name):
            return "invalid"
        if name in self._names:
            return name
        if not known or len(self._names) >= self.max_operation_names:
            return "other"
        self._names.add(name)
        return name

    def observe_operation(self, name: str, type_: str, seconds: float | None, codes: Iterable[str],
                          *, errored: bool) -> None:
        if seconds is not None:
            self.operation_duration.labels(name, type_).observe(seconds)
        self.operations.labels(name, type_, "error" if errored else "ok").inc()
        self.count_errors(name, type_, codes)

    def count_errors(self, name: str, type_: str, codes: Iterable[str]) -> None:
        for code in codes:
            self.errors.labels(name, type_, code).inc()

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method if method in _METHODS else "OTHER", str(status)).inc()
        self.http_duration.labels(route).observe(seconds)

    # -- the endpoint ------------------------------------------------------------------

    def _refusal(self, request: Request) -> Response | None:
        if self.settings.development:
            return None
        token = self.settings.metrics_token
        if token is None:
            return JSONResponse({"error": "metrics are closed: set QUANZI_METRICS_TOKEN"}, status_code=403)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            return JSONResponse({"error": "metrics need the metrics bearer token"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return None

    async def metrics(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _code(error: Any) -> str:
    code = (getattr(error, "extensions", None) or {}).get("code")
    if isinstance(code, str) and _CODE.fullmatch(code):
        return code
    return "UNKNOWN" if code is None else "OTHER"


def _codes(result: Any) -> list[str]:
    return [_code(e) for e in (getattr(result, "errors", None) or ())]


def _exception_code(exc: BaseException) -> str:
    if isinstance(exc, QuanziError):
        return exc.code.value
    if isinstance(exc, (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)):
        return "BAD_REQUEST"
    code = _code(exc)
    return "INTERNAL" if code == "UNKNOWN" else code


class OperationMetrics(SchemaExtension):
    """Times each GraphQL operation and counts its errors by their final code.

    It must be the first extension: hooks unwind in reverse order, so the first one
    sees the whole operation and the codes :class:`~api.errors.ErrorPolicy` sets.
    """

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self._streamed: list[str] | None = None

    def _labels(self) -> tuple[str, str]:
        ctx = self.execution_context
        try:
            name = ctx.operation_name
            type_ = ctx.operation_type.value
        except RuntimeError:  # no document, or no operation of that name in it
            return self.telemetry.operation_label(ctx.operation_name, known=False), "unknown"
        return self.telemetry.operation_label(name, known=True), type_

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        failure: list[str] | None = None
        try:
            yield
        except Exception as exc:
            failure = [_exception_code(exc)]
            raise
        finally:  # also when a client ends a subscription (the task is cancelled)
            seconds = time.perf_counter() - started
            if failure is not None:
                self._finish(seconds, failure)
            elif self._streamed is not None:
                self._finish(seconds, self._streamed, counted=True)
            else:
                self._finish(seconds, _codes(self.execution_context.result))

    def on_stream_result(self, result: Any) -> Iterator[None]:
        yield  # after the other extensions (ErrorPolicy) have rewritten the errors
        codes = _codes(result)
        if self._streamed is None:
            self._streamed = []
        self._streamed.extend(codes)
        self.telemetry.count_errors(*self._labels(), codes)

    def _finish(self, seconds: float, codes: list[str], *, counted: bool = False) -> None:
        name, type_ = self._labels()
        timed = None if type_ == "subscription" else seconds
        self.telemetry.observe_operation(name, type_, timed, () if counted else codes, errored=bool(codes))
        info = _CURRENT.get()
        record = OperationRecord(name=name, type=type_, seconds=seconds, codes=list(codes))
        if info is not None and info.http:
            info.operations.append(record)
        else:  # websocket operations: one line each (the connection has no single response)
            access_log.info(
                "websocket %s %s %.1f ms errors=%s", type_, name, seconds * 1000, ",".join(codes) or "-",
                extra={"transport": "websocket", "operation": name, "operation_type": type_,
                       "duration_ms": round(seconds * 1000, 3), "error_codes": list(codes)},
            )


# --------------------------------------------------------------------------------------
# The middleware
# --------------------------------------------------------------------------------------


class ObserveRequests:
    """Request ids, ``X-Request-Id``, HTTP metrics and the access log (outermost middleware)."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope["quanzi.request_id"] = request_id
        header = (b"x-request-id", request_id.encode("latin-1"))
        info = RequestInfo(request_id=request_id, http=scope["type"] == "http")
        token = _CURRENT.set(info)
        try:
            if scope["type"] == "websocket":
                async def send_ws(message: Message) -> None:
                    if message["type"] == "websocket.accept":
                        message = {**message, "headers": [*message.get("headers", ()), header]}
                    await send(message)

                await self.app(scope, receive, send_ws)
            else:
                await self._http(scope, receive, send, info, header)
        finally:
            _CURRENT.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, info: RequestInfo,
                    header: tuple[bytes, bytes]) -> None:
        status = 0
        started = time.perf_counter()

        async def send_http(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", ()))
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_http)
        except Exception:
            if status:  # the response has started: nothing more can be sent
                raise
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            body = {"errors": [{"message": "Internal server error",
                                "extensions": {"code": "INTERNAL", "requestId": info.request_id}}]}
            await JSONResponse(body, status_code=500)(scope, receive, send_http)
        finally:
            seconds = time.perf_counter() - started
            method = str(scope.get("method", "GET"))
            path = str(scope.get("path", ""))
            route = self.telemetry.route(path)
            final = status or 499  # no response: the client went away
            self.telemetry.observe_http(route, method, final, seconds)
            if route == "/graphql":
                self._access(method, path, final, seconds, info)

    @staticmethod
    def _access(method: str, path: str, status: int, seconds: float, info: RequestInfo) -> None:
        ops = info.operations
        codes = [c for op in ops for c in op.codes]
        name = ",".join(op.name for op in ops) or None
        type_ = ",".join(op.type for op in ops) or None
        access_log.log(
            logging.WARNING if status >= 500 else logging.INFO,
            "%s %s %d %.1f ms %s %s errors=%s", method, path, status, seconds * 1000, type_ or "-", name or "-",
            ",".join(codes) or "-",
            extra={"method": method, "path": path, "status": status, "duration_ms": round(seconds * 1000, 3),
                   "operation": name, "operation_type": type_, "error_codes": codes},
        )
