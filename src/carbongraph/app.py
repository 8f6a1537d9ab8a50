"""The Starlette application: ``/graphql`` (HTTP, and WebSocket for subscriptions), ``/healthz``,
``/readyz``, ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

# Strawberry's HTTP layer (cross_web ships with strawberry-graphql >= 0.340): public names only.
from cross_web import FormData, HTTPException, StarletteRequestAdapter
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.background import BackgroundTasks
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from carbongraph import limits, planner
from carbongraph.authz import InvalidToken, TokenVerifier
from carbongraph.authz.api_keys import ApiKeyPrincipal, touch_statement
from carbongraph.config import Settings
from carbongraph.db import RequestDB, create_engine, is_database_unavailable, ping, request_db
from carbongraph.engagement.page import StatementPage
from carbongraph.errors import ErrorCode
from carbongraph.http import negotiation
from carbongraph.http.authentication import Authentication, unauthenticated
from carbongraph.http.body_limit import MAX_UPLOAD_BYTES, BodyLimit
from carbongraph.http.content_type import PREFLIGHT_HEADERS, ContentTypes
from carbongraph.http.errors import error_response as _error_response
from carbongraph.http.graphiql import GraphiQL
from carbongraph.http.negotiation import Negotiation
from carbongraph.http.rate_limit import RateLimit
from carbongraph.http.security_headers import SecurityHeaders
from carbongraph.live import postgres as live_postgres
from carbongraph.live.endpoint import LiveEndpoint
from carbongraph.migrate import ensure_migrated
from carbongraph.observability import metrics, tracing
from carbongraph.observability.metrics_endpoint import MetricsEndpoint
from carbongraph.observability.request_context import RequestContext
from carbongraph.observability.request_metrics import RequestMetrics
from carbongraph.planner import shadow
from carbongraph.ratelimit import RateLimiter
from carbongraph.resolvers.context import Context, build_context
from carbongraph.schema.schema import schema as default_schema

log = logging.getLogger("carbongraph")


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached while answering this request (503)."""


class UploadAwareRequestAdapter(StarletteRequestAdapter):
    """Starlette caps a multipart part at 1 MB; evidence photos may be 5 MB (checked later)."""

    async def get_form_data(self) -> FormData:
        form = await self._request.form(max_part_size=MAX_UPLOAD_BYTES + 1024)
        return FormData(files=form, form=form)


class PendingContext:
    """A request's Context, built on first need (once, also for a batch's operations)."""

    def __init__(self, settings: Settings, db: RequestDB, principal: Any, request: Any) -> None:
        self.settings = settings
        self.db = db
        self.principal = principal
        self.request = request
        self.built: Context | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Context:
        async with self._lock:
            if self.built is None:
                self.built = await build_context(
                    self.settings, self.db, self.principal, request=self.request
                )
            return self.built


class GraphQLEndpoint(GraphQL[Context, None]):
    """Strawberry's ASGI view with our per-request transaction and the GraphQL-over-HTTP rules
    of execution (status codes and media types of its results). The checks before it
    (negotiation, authentication, media types, body size, rate limit) are the middlewares of
    ``carbongraph.http``, in front of it on the route (``http_checks``).

    A malformed HTTP request (bad JSON, missing or mistyped parameters) is 400 in any media
    type; a mutation over GET is 405 with ``Allow: POST``. A request error (nothing executed)
    never carries ``data``; it is 400 in ``application/graphql-response+json`` and 200 in
    ``application/json`` (``carbongraph.http.negotiation``).
    """

    GRAPHQL_RESPONSE_JSON = negotiation.GRAPHQL_RESPONSE_JSON
    JSON = negotiation.JSON

    request_adapter_class = UploadAwareRequestAdapter

    def __init__(self, settings: Settings, engine_ref: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(
            default_schema,
            graphql_ide="graphiql" if not settings.is_production else None,
            allow_queries_via_get=True,
            multipart_uploads_enabled=True,  # only with the preflight header (ContentTypes)
            **kwargs,
        )
        self.settings = settings
        self._engine_ref = engine_ref
        self.rate_limiter = (
            RateLimiter(settings.rate_limit_per_minute, settings.redis_url)
            if settings.rate_limit_per_minute > 0
            else None
        )
        self.limits = limits.Limits(
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            max_directives=settings.max_directives,
            max_tokens=settings.max_tokens,
            max_characters=settings.max_query_characters,
            max_field_repeats=settings.max_field_repeats,
        )
        self.verifier = TokenVerifier(settings)

    def encode_json(self, data: object) -> bytes:
        return planner.encode(data, orjson.dumps)  # planned `data` is JSON text already

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        """Batches and streamed operations get the request's context at once; a single
        operation over HTTP first tries the planner (``execute_single``)."""
        data, context = kwargs["request_data"], kwargs["context"]
        if isinstance(context, PendingContext) and (
            isinstance(data, list) or data.protocol != "http"
        ):
            kwargs["context"] = await context.get()
        return await super().execute_operation(*args, **kwargs)

    async def execute_single(self, *args: Any, **kwargs: Any) -> Any:
        """A query operation over the hierarchy on PostgreSQL is answered by one compiled
        statement (carbongraph.planner) on the planner's own connections, before the request
        has a transaction or a Context; anything else, and anything the planner declines, by
        Strawberry in the request's transaction."""
        data, context = kwargs["request_data"], kwargs["context"]
        schema = self.schema._schema  # type: ignore[attr-defined]  # BaseSchema lacks it
        if isinstance(context, PendingContext) and (
            self.settings.planner_shadow or isinstance(context.principal, ApiKeyPrincipal)
        ):
            # Shadow mode plans in the request's snapshot, where the reference executor checks
            # the answer; a key's secret is verified, and its scope set, in that transaction.
            context = kwargs["context"] = await context.get()
        if isinstance(context, PendingContext):
            outcome = await planner.try_plan_pooled(
                schema,
                self.settings,
                self._engine_ref["engine"],
                context.principal,
                data.query,
                data.variables,
                data.operation_name,
            )
            if outcome.result is None:
                kwargs["context"] = await context.get()
            result = outcome.result or await super().execute_single(*args, **kwargs)
        else:
            outcome = await planner.try_plan(
                schema, context, data.query, data.variables, data.operation_name
            )
            if self.settings.planner_shadow:  # the reference executor checks the planned answer
                reference = super().execute_single

                async def run_reference(ctx: Context) -> Any:
                    return await reference(*args, **{**kwargs, "context": ctx})

                result = await shadow.answer(outcome, context, run_reference)
            else:
                result = outcome.result or await super().execute_single(*args, **kwargs)
        return planner.annotate(result, outcome, self.settings)

    @staticmethod
    def _unauthenticated(exc: InvalidToken, media_type: str) -> Response:
        return unauthenticated(exc, media_type)

    async def _touch_key(self, key_id: int) -> None:
        """Write a key's last use after the response, in its own short transaction: the
        request's statements stay as they are, and a read-only request does not become a
        writer (on SQLite that would take the database's one write lock)."""
        interval = timedelta(seconds=self.settings.api_key_last_used_seconds)
        try:
            async with self._engine_ref["engine"].begin() as conn:
                await conn.execute(touch_statement(key_id, datetime.now(UTC), interval))
        except Exception:  # a lost "last used" must never fail or delay anything else
            log.warning("could not record the use of API key %s", key_id, exc_info=True)

    # -- request handling ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        """Runs a request that passed the checks in front of the endpoint (carbongraph.http)."""
        principal = request.state.principal
        error_media = request.state.graphql_media[1]
        content_type = request.headers.get("content-type") or ""
        timeout = request.state.timeout
        write = request.method == "POST" and await self._runs_mutation(request, content_type)
        try:
            # Shadow mode: one snapshot for the planned and the reference execution of a read.
            snapshot = self.settings.planner_shadow
            async with request_db(self._engine_ref["engine"], write=write, snapshot=snapshot) as db:
                # Built when the request needs it: a planned read never opens the request's
                # transaction (carbongraph.planner).
                pending = PendingContext(self.settings, db, principal, request)
                async with asyncio.timeout(timeout):
                    response = await self.run(request, context=pending)  # type: ignore[call-overload]
            context = pending.built
            if context is not None and context.api_key is not None and context.api_key.touch:
                tasks = BackgroundTasks()
                if response.background is not None:
                    tasks.tasks.append(response.background)
                tasks.add_task(self._touch_key, context.api_key.key_id)
                response.background = tasks
            return response
        except InvalidToken as exc:  # an unknown, revoked or expired API key
            return self._unauthenticated(exc, error_media)
        except TimeoutError:
            return _error_response(
                504,
                "The request took too long and was stopped.",
                ErrorCode.TIMEOUT,
                media_type=error_media,
            )
        except HTTPException as exc:
            cause = exc.__cause__
            if (
                isinstance(cause, InvalidOperationTypeError)
                and cause.operation_type is OperationType.MUTATION
                and request.method == "GET"
            ):
                # GraphQL over HTTP: a mutation over GET is 405, and is never executed.
                return _error_response(
                    405, exc.reason, ErrorCode.BAD_USER_INPUT, media_type=error_media, Allow="POST"
                )
            if isinstance(cause, CannotGetOperationTypeError):
                # No operation to run (unknown operationName, several anonymous ones): a
                # GraphQL request error, with the same status rules as a validation error.
                status = 400 if error_media == self.GRAPHQL_RESPONSE_JSON else 200
                return _error_response(
                    status, exc.reason, ErrorCode.BAD_USER_INPUT, media_type=error_media
                )
            extra = {"Allow": "GET, POST"} if exc.status_code == 405 else {}
            return _error_response(
                exc.status_code,
                exc.reason,
                getattr(exc, "graphql_code", ErrorCode.BAD_USER_INPUT),
                media_type=error_media,
                **extra,
            )
        except Exception as exc:
            if not (isinstance(exc, DatabaseUnavailable) or is_database_unavailable(exc)):
                raise
            # The transaction was rolled back (or died with its connection): nothing happened.
            # The pool pings connections before use, so a later request reconnects by itself.
            log.warning("database unavailable: %r", exc.__cause__ or exc)
            return _error_response(
                503,
                "The database is unavailable; retry shortly.",
                ErrorCode.SERVICE_UNAVAILABLE,
                media_type=error_media,
                **{"Retry-After": "1"},
            )

    async def process_result(self, request: Any, result: Any) -> GraphQLHTTPResponse:
        for error in result.errors or ():
            if is_database_unavailable(error.original_error):
                # Raised out of the transaction so that it rolls back and the client gets 503
                # rather than a partial answer with an internal error.
                raise DatabaseUnavailable(str(error.original_error)) from error.original_error
        return await super().process_result(request, result)

    def should_render_graphql_ide(self, request: Any) -> bool:
        # Decided by the GraphiQL middleware (browsers only, before authentication); a GET
        # without a query that gets this far is an API request without a query: 400.
        return False

    async def _runs_mutation(self, request: Request, content_type: str) -> bool:
        """Whether a POST runs a mutation. It opens its transaction as a writer (SQLite: the
        write lock at BEGIN), so it waits its turn rather than failing when it first writes."""
        if content_type.lower().startswith("multipart/form-data"):
            return True  # uploads are mutations; the parts are read by the executor
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return False
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return False
        name = body.get("operationName")
        return limits.is_mutation(
            body["query"], name if isinstance(name, str) else None, self.limits
        )

    def _check_limits(self, query: str, request: Any) -> None:
        """Static limits, introspection and the gateway-only fields, before execution (the
        cost is a validation rule: carbongraph.cost)."""
        settings = self.settings
        try:
            limits.check(query, self.limits, allow_introspection=not settings.is_production)
        except limits.LimitExceeded as exc:
            metrics.refused(str(exc.code))
            error = HTTPException(400, str(exc))
            error.graphql_code = exc.code  # type: ignore[attr-defined]
            raise error from exc
        if settings.is_production and ("_service" in query or "_entities" in query):
            secret = request.headers.get("x-carbongraph-gateway-secret")
            if not settings.gateway_secret or not secrets.compare_digest(
                secret or "", settings.gateway_secret
            ):
                error = HTTPException(403, "Federation fields are answered to the gateway only.")
                error.graphql_code = ErrorCode.FORBIDDEN  # type: ignore[attr-defined]
                raise error

    async def parse_http_body(self, request: Any) -> GraphQLRequestData:
        """The GraphQL-over-HTTP request parameters, type-checked (400 when malformed). The
        ``Content-Type`` was checked by ``ContentTypes``; batching is not enabled."""
        checked_body = False  # a JSON body that cannot hold unstorable text
        if request.method == "GET":
            data: Any = self.parse_query_params(request.query_params)
            for name in ("variables", "extensions"):
                if data.get(name) == "":
                    data[name] = None
        elif (request.content_type or "").startswith("multipart/form-data"):
            data = await self.parse_multipart(request)  # uploads: preflight checked by ContentTypes
        else:
            body = await request.get_body()
            data = self.parse_json(body)  # 400 when not JSON
            checked_body = not limits.may_hold_unstorable_text(body)
            if not isinstance(data, dict):
                error = HTTPException(
                    400, "The request body must be one JSON object: batching is not supported."
                )
                error.graphql_code = ErrorCode.BATCHING_NOT_SUPPORTED  # type: ignore[attr-defined]
                raise error
        query = data.get("query")
        if query is None:
            raise HTTPException(400, "No GraphQL query found in the request")
        if not isinstance(query, str):
            raise HTTPException(400, "The GraphQL operation's `query` must be a string.")
        self._check_limits(query, request)
        operation_name = data.get("operationName")
        if not isinstance(operation_name, str | None):
            raise HTTPException(
                400, "The GraphQL operation's `operationName` must be a string or null."
            )
        for name in ("variables", "extensions"):
            if not isinstance(data.get(name), dict | None):
                raise HTTPException(
                    400, f"The GraphQL operation's `{name}` must be an object or null."
                )
        if not checked_body and limits.has_unstorable_text(data.get("variables")):
            raise HTTPException(400, limits.UNSTORABLE_MESSAGE)
        return GraphQLRequestData(
            query=query,
            variables=data.get("variables"),
            operation_name=operation_name,
            extensions=data.get("extensions"),
        )

    async def get_sub_response(self, request: Any) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.graphql_media = getattr(  # type: ignore[attr-defined]
            request.state, "graphql_media", (self.JSON, self.JSON)
        )
        return sub_response

    @staticmethod
    def _is_request_error(response_data: GraphQLHTTPResponse) -> bool:
        """Nothing was executed: syntax, validation or variable coercion errors (an execution
        error always has a ``path``)."""
        errors = response_data.get("errors") or []
        return (
            response_data.get("data") is None
            and bool(errors)
            and all(isinstance(e, dict) and "path" not in e for e in errors)
        )

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        executed_media, error_media = getattr(sub_response, "graphql_media", (self.JSON, self.JSON))
        media_type, status = executed_media, 200
        if isinstance(response_data, dict) and self._is_request_error(response_data):
            # A request error has no `data` entry at all (GraphQL spec, "Response Format").
            response_data = {k: v for k, v in response_data.items() if k != "data"}  # type: ignore[assignment]
            errors = response_data["errors"] or []
            response_data["errors"] = [_with_request_error_code(e) for e in errors]
            media_type = error_media
            status = 400 if error_media == self.GRAPHQL_RESPONSE_JSON else 200
        response = Response(
            self.encode_json(response_data),
            status_code=status,
            media_type=f"{media_type}; charset=utf-8",
        )
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response


def _with_request_error_code(error: Any) -> Any:
    """A stable ``extensions.code`` for syntax, validation and variable errors, which
    graphql-core leaves without one (the names Apollo Server uses)."""
    if not isinstance(error, dict) or (error.get("extensions") or {}).get("code"):
        return error
    message = str(error.get("message", ""))
    if message.startswith("Syntax Error"):
        code = ErrorCode.GRAPHQL_PARSE_FAILED
    elif message.startswith("Variable '$"):
        code = ErrorCode.BAD_USER_INPUT
    else:
        code = ErrorCode.GRAPHQL_VALIDATION_FAILED
    return {**error, "extensions": {**(error.get("extensions") or {}), "code": str(code)}}


def http_checks(graphql: GraphQLEndpoint) -> list[Middleware]:
    """The checks a ``/graphql`` HTTP request passes before ``graphql`` runs it, outermost
    first (carbongraph.http)."""
    checks = [
        Middleware(Negotiation),
        Middleware(GraphiQL, render=graphql.render_graphql_ide if graphql.graphql_ide else None),
        Middleware(Authentication, verifier=graphql.verifier),
        Middleware(ContentTypes),
        Middleware(BodyLimit, settings=graphql.settings),
    ]
    if graphql.rate_limiter is not None:
        checks.append(
            Middleware(
                RateLimit,
                limiter=graphql.rate_limiter,
                schema=graphql.schema._schema,  # type: ignore[attr-defined]  # BaseSchema lacks it
                settings=graphql.settings,
                max_tokens=graphql.limits.max_tokens,
            )
        )
    return checks


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(
    settings: Settings | None = None,
    *,
    engine: AsyncEngine | None = None,
    check_migrations: bool = True,
) -> Starlette:
    settings = settings or Settings.from_env()
    engine_ref: dict[str, Any] = {"engine": engine}
    owns_engine = engine is None
    tracing.configure_from_env(trace_resolvers=settings.trace_resolvers)

    def observe(engine: AsyncEngine) -> None:
        metrics.observe_pool(engine)  # connections in use
        tracing.instrument_engine(engine)  # a span per SQL statement, when tracing is on

    if engine is not None:
        observe(engine)  # a caller's engine (tests: the app runs without its lifespan)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if engine_ref["engine"] is None:
            engine_ref["engine"] = create_engine(settings)
        if check_migrations:
            await ensure_migrated(engine_ref["engine"], settings)
        if owns_engine:
            observe(engine_ref["engine"])
        # Everything built so far (the schema above all) lives as long as the process: out of
        # the collector's generations, a full collection no longer walks it between requests.
        gc.collect()
        gc.freeze()
        # PostgreSQL: pool_size connections plus as many overflow (db.py); SQLite has no limit
        # worth alerting on.
        capacity = 2 * settings.db_pool_size if owns_engine and not settings.is_sqlite else 0
        metrics.pool_opened(capacity)
        # Live updates: this process LISTENs for changes committed by any process.
        listens = engine_ref["engine"].dialect.name == "postgresql"
        if listens:
            await live_postgres.acquire(engine_ref["engine"])
        try:
            yield
        finally:
            if listens:
                await live_postgres.release(engine_ref["engine"])
            if owns_engine:
                await engine_ref["engine"].dispose()
            metrics.pool_closed(capacity)
            tracing.shutdown()
            metrics.process_exited()

    async def readyz(_request: Request) -> Response:
        try:
            await ping(engine_ref["engine"])
        except Exception as exc:  # any failure to reach the database means "not ready"
            log.warning("readiness check failed: %s", exc)
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable"}, status_code=503
            )
        return JSONResponse({"status": "ok", "database": "reachable"})

    graphql = GraphQLEndpoint(settings, engine_ref)
    live = LiveEndpoint(
        settings,
        engine_ref,
        document_limits=graphql.limits,
        rate_limiter=graphql.rate_limiter,
        verifier=graphql.verifier,
    )
    middleware = [
        # Outermost first: the trace's server span (when tracing is on), the request id and
        # trace id every log line and metric of the request knows, the request metrics.
        *tracing.middleware(),
        Middleware(RequestContext),
        Middleware(
            RequestMetrics, operation_names=metrics.OperationNames(settings.metrics_max_operations)
        ),
        Middleware(SecurityHeaders, production=settings.is_production),
    ]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                max_age=600,
                allow_headers=["authorization", "content-type", "accept", *PREFLIGHT_HEADERS],
            )
        )
    return Starlette(
        middleware=middleware,
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"], middleware=http_checks(graphql)),
            WebSocketRoute("/graphql", live),  # subscriptions: docs/live-updates.md
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            # Prometheus (docs/operations.md); production: only with CARBONGRAPH_METRICS_TOKEN.
            Route("/metrics", MetricsEndpoint(settings).handle, methods=["GET"]),
            # Printable statements (engagement/page.py): same token auth, or a statement link.
            Route(
                "/statements/{household_id:path}",
                StatementPage(settings, engine_ref, default_schema, graphql.rate_limiter).handle,
                methods=["GET"],
            ),
        ],
        lifespan=lifespan,
    )
