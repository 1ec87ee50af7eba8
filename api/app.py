"""The ASGI application: GraphQL over HTTP, health endpoints, and the resources' lifespan.

The graph driver and the Redis client are opened once per process in the lifespan and
closed on shutdown. The app always receives server addresses; starting the embedded
servers is the CLI's job (``quanzi serve``), so several workers share one graph server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from graphql.validation import NoSchemaIntrospectionCustomRule
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.asgi import GraphQL
from graphql import GraphQLError, parse, validate
from strawberry.extensions import AddValidationRules, SchemaExtension
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult
from strawberry.http.typevars import RootValue
from cross_web import HTTPException
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.types.unset import UNSET, UnsetType
from strawberry.types.graphql import OperationType
from starlette.websockets import WebSocket

from api.auth import principal_from_header
from api.errors import ErrorPolicy
from api.limits import BodyLimit, Limits, QueryGuard
from api.persisted import PersistedQueries, load_manifest
from api.ratelimit import Bucket, RateLimiter
from api.settings import Settings
from api.telemetry import Telemetry
from domain.auth import ANONYMOUS, Principal
from domain.errors import ErrorCode, GraphUnavailable, NotAuthenticated, RequestRejected, StartupError
from domain.ports import Repositories
from graph.campaigns import GraphCampaigns
from graph.client import GraphClient
from graph.commerce import GraphCommerceRepository
from graph.communities import GraphCommunityRepository
from graph.content import GraphContentRepository
from graph.coupons import GraphCoupons
from graph.group_buys import GraphGroupBuys
from graph.points import GraphPoints
from graph.events import EventRelay, watch_events
from graph.growth import GrowthConsumer, GrowthService, KolScheduler
from graph.rewards_sweep import sweep_campaigns
from graph.health import HealthService
from graph.kol import KolStore
from graph.recommendations import GraphRecommender
from graph.referral_stats import ReferralStatsStore
from graph.referrals import GraphReferrals
from graph.segmentation import GraphSegmentation, SegmentationScheduler
from graph.segments import GraphSegments
from graph.streams import StreamHub, StreamPublisher
from graph.webhooks import GraphWebhooks, WebhookDispatcher, WebhookOutbox, WebhookService
from graph.members import GraphMemberRepository
from resolvers.context import Context
from resolvers.schema import build_schema

__all__ = ["create_app", "Resources", "repositories", "resources"]

log = logging.getLogger("quanzi.api")


@dataclass
class Resources:
    graph: GraphClient
    redis: aioredis.Redis
    repos: Repositories
    relay: EventRelay
    scheduler: KolScheduler
    #: None when rate limiting is off
    limiter: RateLimiter | None = None
    #: recomputes segmentation and interest circles (graph.segmentation)
    segmentation_scheduler: SegmentationScheduler | None = None


def repositories(graph: GraphClient, redis: aioredis.Redis, settings: Settings) -> Repositories:
    from graph.privacy import GraphPrivacy

    allow_private = settings.webhook_allow_private or settings.development
    webhooks = GraphWebhooks(graph, allow_private=allow_private)
    return Repositories(
        members=GraphMemberRepository(graph),
        communities=GraphCommunityRepository(graph),
        content=GraphContentRepository(graph),
        commerce=GraphCommerceRepository(graph, max_commission_levels=settings.max_commission_levels),
        growth=GrowthService(graph, redis, KolStore(redis), ReferralStatsStore(redis), GraphReferrals(graph)),
        recommendations=GraphRecommender(graph, redis, ttl_seconds=settings.recommendation_ttl_seconds),
        campaigns=GraphCampaigns(graph),
        events=StreamHub(redis, buffer=settings.subscription_buffer),
        webhooks=WebhookService(webhooks, WebhookOutbox(redis, webhooks), WebhookDispatcher(redis, allow_private=allow_private)),
        privacy=GraphPrivacy(graph, redis),
        group_buys=GraphGroupBuys(graph),
        coupons=GraphCoupons(graph),
        points=GraphPoints(graph),
        health=HealthService(graph, redis, fresh_seconds=settings.health_fresh_seconds,
                             max_age_seconds=settings.health_max_age_seconds),
        segments=GraphSegments(graph),
        segmentation=GraphSegmentation(graph),
    )


def resources(graph: GraphClient, redis: aioredis.Redis, settings: Settings) -> Resources:
    """Everything one process holds: ports, the event relay, the KOL scheduler and the rate limiter."""
    repos = repositories(graph, redis, settings)
    limiter = RateLimiter(
        redis,
        principal=Bucket(settings.rate_limit_principal_burst, settings.rate_limit_principal_per_second),
        ip=Bucket(settings.rate_limit_ip_burst, settings.rate_limit_ip_per_second),
    ) if settings.rate_limit else None
    consumer = GrowthConsumer(redis, ReferralStatsStore(redis), repos.recommendations)  # type: ignore[arg-type]
    return Resources(
        graph=graph, redis=redis, repos=repos,
        relay=EventRelay(graph, redis, [consumer, StreamPublisher(redis), repos.webhooks.outbox]),  # type: ignore[attr-defined]
        scheduler=KolScheduler(
            graph, redis, changes=settings.kol_recompute_changes,
            max_age=timedelta(seconds=settings.kol_recompute_seconds), interval=settings.scheduler_interval or 30.0,
        ),
        limiter=limiter,
        segmentation_scheduler=SegmentationScheduler(
            graph, redis, changes=settings.segmentation_recompute_changes,
            max_age=timedelta(seconds=settings.segmentation_recompute_seconds),
            interval=settings.scheduler_interval or 30.0,
        ),
    )


class RelayAfterMutations(SchemaExtension):
    """After a mutation, relay its events before answering (read-your-writes for derived data).

    Bounded: when Redis is down the answer is not held up; the background relay catches up.
    A mutation that recorded only events no read depends on at once (graph.events.DEFERRABLE,
    e.g. a post) just wakes the background relay instead (issue 7: create post).
    """

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        recorded = watch_events()
        yield
        context = self.execution_context
        if context.graphql_document is None:
            return
        if context.operation_type is OperationType.MUTATION and isinstance(context.context, Context):
            settle = context.context.settle_events
            flush = context.context.after_mutation
            if settle is not None:
                await settle(recorded)
            elif flush is not None:
                await flush()


class PingingTransportWS(BaseGraphQLTransportWSHandler[Context, RootValue]):
    """graphql-transport-ws with server pings: Strawberry only pings in the legacy protocol.

    Once the connection is acknowledged the server sends ``{"type": "ping"}`` every
    ``ws_ping_seconds`` (clients answer ``pong``), so idle connections stay open through
    proxies and dead ones are noticed.
    """

    async def handle_subscribe(self, message: Any) -> None:
        """Persisted-query rules apply to websocket operations too."""
        payload = message.get("payload") or {}
        if self.connection_acknowledged:
            try:
                query = await self.view.persisted.resolve(payload.get("query"), payload.get("extensions"))  # type: ignore[attr-defined]
            except RequestRejected as exc:
                error = GraphQLError(exc.message, extensions={"code": exc.code.value})
                await self.send_message({"id": message["id"], "type": "error", "payload": [error.formatted]})
                return
            if not isinstance(query, str):
                error = GraphQLError("subscribe needs a query (payload.query)",
                                     extensions={"code": "GRAPHQL_VALIDATION_FAILED"})
                await self.send_message({"id": message["id"], "type": "error", "payload": [error.formatted]})
                return
            message = {**message, "payload": {**payload, "query": query}}
        await super().handle_subscribe(message)

    async def handle(self) -> None:
        pinger = asyncio.create_task(self._ping())
        try:
            await super().handle()
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger

    async def _ping(self) -> None:
        interval = float(self.view.settings.ws_ping_seconds)  # type: ignore[attr-defined]
        while True:
            await asyncio.sleep(interval)
            if self.connection_acknowledged:
                try:
                    await self.send_message({"type": "ping"})
                except Exception:  # the socket is closing; the handler ends on its own
                    return


_HTTP_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 415: "BAD_REQUEST"}


class QuanziGraphQL(GraphQL[Context, RootValue]):
    graphql_transport_ws_handler_class = PingingTransportWS
    def __init__(self, settings: Settings, persisted: PersistedQueries, telemetry: Telemetry | None = None,
                 **kwargs: Any) -> None:
        # Factories: a fresh extension per request; the parse/validate LRU caches are module-level.
        # QueryGuard comes after ErrorPolicy, so its error codes are set before the policy runs.
        limits = Limits(max_depth=settings.max_query_depth, max_aliases=settings.max_aliases,
                        max_tokens=settings.max_tokens, max_cost=settings.max_query_cost,
                        mutation_cost=settings.mutation_cost, hide_suggestions=not settings.development)
        extensions: list[Any] = [ErrorPolicy, lambda: QueryGuard(limits),
                                 RelayAfterMutations]
        if not settings.development:
            extensions.append(lambda: AddValidationRules([NoSchemaIntrospectionCustomRule]))
        if telemetry is not None:  # first: it times the whole operation and sees the codes ErrorPolicy sets
            extensions.insert(0, telemetry.extension)
        super().__init__(
            build_schema(extensions),
            graphql_ide="graphiql" if settings.development else None,
            allow_queries_via_get=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
            **kwargs,
        )
        self.settings = settings
        self.persisted = persisted

    async def execute_single(self, request: Any, request_adapter: Any, sub_response: Any, context: Context,
                             root_value: Any, request_data: GraphQLRequestData) -> ExecutionResult:
        """Resolves persisted queries (APQ hashes, the safelist) before the operation runs."""
        try:
            query = await self.persisted.resolve(request_data.query, request_data.extensions)
        except RequestRejected as exc:
            return ExecutionResult(data=None, errors=[GraphQLError(exc.message, extensions={"code": exc.code.value})])
        # Subscriptions need the websocket: over plain HTTP they would resolve to null.
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        try:
            return await self.schema.execute(
                query, root_value=root_value, variable_values=request_data.variables, context_value=context,
                operation_name=request_data.operation_name, allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as e:
            raise HTTPException(400, e.as_http_error_reason()) from e
        except InvalidOperationTypeError as e:
            reason = e.as_http_error_reason(request_adapter.method)
            if e.operation_type is OperationType.SUBSCRIPTION:
                reason = "subscriptions need a websocket (graphql-transport-ws on /graphql)"
            raise HTTPException(400, reason) from e
        except MissingQueryError as e:
            raise HTTPException(400, "No GraphQL query found in the request") from e

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refusals of the HTTP layer (bad JSON, wrong method…) are GraphQL errors with a code too."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as e:
            code = _HTTP_CODES.get(e.status_code, "BAD_REQUEST")
            response = JSONResponse({"errors": [{"message": e.reason, "extensions": {"code": code}}]},
                                    status_code=e.status_code)
        await response(scope, receive, send)

    def decode_json(self, data: str | bytes) -> object:
        # orjson refuses what json.loads lets through to crash later: invalid UTF-8, lone
        # surrogates, integers beyond 64 bits and nesting beyond 1,024 (all JSONDecodeError)
        return orjson.loads(data)

    async def parse_http_body(self, request: Any) -> Any:
        try:
            data = await super().parse_http_body(request)
        except (AttributeError, TypeError) as exc:  # `null`, `42`, `"text"`: Strawberry calls data.get
            raise HTTPException(400, "The request body must be a JSON object (or a list of them)") from exc
        for item in data if isinstance(data, list) else [data]:
            name = item.operation_name
            if name is not None and not isinstance(name, str):
                raise HTTPException(400, "The GraphQL operation's `operationName` must be a string or null, if provided.")
        return data

    def should_render_graphql_ide(self, request: Any) -> bool:
        """A GET with only a persisted-query hash is an operation, not a browser asking for GraphiQL."""
        return super().should_render_graphql_ide(request) and request.query_params.get("extensions") is None

    def create_response(self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
                        sub_response: Response) -> Response:
        """A rate-limited request answers 429 with ``Retry-After`` (whole seconds, rounded up)."""
        response = super().create_response(response_data, sub_response)
        results = response_data if isinstance(response_data, list) else [response_data]
        for result in results:
            for error in result.get("errors") or ():
                extensions = error.get("extensions") or {}
                if extensions.get("code") == ErrorCode.RATE_LIMITED.value:
                    response.status_code = 429
                    response.headers["Retry-After"] = str(max(1, math.ceil(float(extensions.get("retryAfter", 1)))))
                    return response
        return response

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """The token comes in ``connection_init``: ``{"authorization": "Bearer <token>"}`` (or ``token``).

        A missing or bad token closes the socket with 4403 (the protocol's Forbidden).
        """
        params = context.connection_params or {}
        header = params.get("authorization") or params.get("Authorization")
        if header is None and params.get("token"):
            header = f"Bearer {params['token']}"
        if header is None and context.principal.tenant_id is not None:
            return UNSET  # authenticated by the upgrade request's Authorization header
        try:
            principal = principal_from_header(self.settings, str(header) if header is not None else None)
        except NotAuthenticated as exc:
            raise ConnectionRejectionError({"message": exc.message}) from exc
        if principal.tenant_id is None:
            raise ConnectionRejectionError({"message": "connection_init needs a token"})
        context.principal = principal
        context.reset_loaders()
        return UNSET

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        resources: Resources = request.app.state.resources
        principal: Principal = request.scope.get("quanzi.principal", ANONYMOUS)
        context = Context(principal=principal, repos=resources.repos, request_id=request.scope.get("quanzi.request_id", "-"),
                          after_mutation=lambda: resources.relay.flush(timeout=1.0),
                          settle_events=lambda recorded: resources.relay.after_mutation(recorded, timeout=1.0))
        limiter = resources.limiter
        if limiter is not None:
            ip = request.client.host if request.client is not None else "unknown"
            # reads the context's principal when charged: a websocket authenticates after connecting
            context.admit = lambda cost: limiter.admit(context.principal, ip, cost)
        return context


class Authenticate:
    """Resolves the bearer token before GraphQL runs; a bad token is an HTTP 401."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id = scope.get("quanzi.request_id") or headers.get("x-request-id") or uuid.uuid4().hex
        scope["quanzi.request_id"] = request_id[:64]
        try:
            scope["quanzi.principal"] = principal_from_header(self.settings, headers.get("authorization"))
        except NotAuthenticated as exc:
            if scope["type"] == "http":
                body = {"errors": [{"message": exc.message, "extensions": {"code": exc.code.value}}]}
                response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer", "X-Request-Id": request_id})
                await response(scope, receive, send)
                return
            scope["quanzi.principal"] = ANONYMOUS
        await self.app(scope, receive, send)


def _checked_manifest(path: Any) -> dict[str, str]:
    """The safelist, each operation parsed and validated against the schema at startup."""
    manifest = load_manifest(path)
    schema = build_schema()._schema
    for digest, body in manifest.items():
        try:
            errors = validate(schema, parse(body))
        except GraphQLError as exc:
            errors = [exc]
        if errors:
            raise StartupError(f"safelist manifest {path}: operation {digest[:12]} is invalid: {errors[0].message}")
    return manifest


def create_app(settings: Settings, *, graph_uri: str, redis_url: str, graph_user: str, graph_password: str,
               graph_database: str | None) -> Starlette:
    """Build the app for servers at *graph_uri* and *redis_url*."""
    settings.check()
    persisted = PersistedQueries(
        settings.persisted_queries, ttl_seconds=settings.apq_ttl_seconds,
        manifest=_checked_manifest(settings.safelist_path) if settings.persisted_queries == "safelist" else None,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        graph = GraphClient.connect(graph_uri, user=graph_user, password=graph_password, database=graph_database)
        # Redis holds derived data only: fail fast (one retry) and fall back to the graph.
        redis = aioredis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0,
                                        retry=Retry(NoBackoff(), 1))
        try:
            try:
                await graph.ping()
            except GraphUnavailable as exc:
                raise StartupError(f"cannot reach the graph server at {graph_uri}: {exc.__cause__ or exc.message}") from exc
            app.state.resources = res = resources(graph, redis, settings)
            persisted.redis = redis
            stop = asyncio.Event()
            tasks = [asyncio.create_task(res.relay.run(stop, interval=settings.relay_interval))]
            if settings.scheduler_interval > 0:
                tasks.append(asyncio.create_task(res.scheduler.run(stop)))
                if res.segmentation_scheduler is not None:
                    tasks.append(asyncio.create_task(res.segmentation_scheduler.run(stop)))
                tasks.append(asyncio.create_task(sweep_campaigns(res.repos, stop, interval=settings.scheduler_interval)))
            dispatcher: WebhookDispatcher = res.repos.webhooks.dispatcher  # type: ignore[attr-defined]
            tasks.append(asyncio.create_task(dispatcher.run(stop, interval=settings.webhook_interval)))
            try:
                yield
            finally:
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                await dispatcher.aclose()
        finally:
            await graph.close()
            await redis.aclose()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        resources: Resources = request.app.state.resources
        checks: dict[str, str] = {}
        try:
            await resources.graph.ping()
            checks["graph"] = "ok"
        except GraphUnavailable as exc:
            checks["graph"] = f"unavailable: {exc.message[:200]}"
        try:
            await resources.redis.ping()
            checks["redis"] = "ok"
        except (aioredis.RedisError, OSError) as exc:
            checks["redis"] = f"unavailable: {str(exc)[:200]}"
        ready = checks["graph"] == "ok"
        body = {"status": "ready" if ready else "unavailable", "checks": checks}
        if ready and checks["redis"] != "ok":
            body["status"] = "degraded"
        return JSONResponse(body, status_code=200 if ready else 503)

    telemetry = Telemetry(settings)
    graphql_app = BodyLimit(Authenticate(QuanziGraphQL(settings, persisted, telemetry=telemetry), settings), settings.max_body_bytes)
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/graphql", graphql_app, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql_app),
        ],
        lifespan=lifespan,
    )
    telemetry.install(app)  # /metrics, and the outermost middleware: request ids, HTTP metrics, access log
    return app
