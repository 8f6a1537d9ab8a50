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

from carbongraph import limits, migrate, planner
from carbongraph.authz import InvalidToken, Principal, TokenVerifier
from carbongraph.authz.api_keys import ApiKeyPrincipal, looks_like_key, touch_statement
from carbongraph.config import Settings
from carbongraph.cost import query_cost
from carbongraph.db import create_engine, is_database_unavailable, ping, request_db
from carbongraph.engagement.page import StatementPage
from carbongraph.errors import ErrorCode
from carbongraph.live import postgres as live_postgres
from carbongraph.live.endpoint import LiveEndpoint
from carbongraph.observability import metrics, tracing
from carbongraph.observability.metrics_endpoint import MetricsEndpoint
from carbongraph.observability.request_context import RequestContext
from carbongraph.observability.request_metrics import RequestMetrics
from carbongraph.ratelimit import RateLimiter
from carbongraph.resolvers.context import build_context
from carbongraph.schema.schema import schema as default_schema

log = logging.getLogger("carbongraph")


class DatabaseNotMigrated(RuntimeError):
    pass


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached while answering this request (503)."""


PREFLIGHT_HEADERS = ("x-carbongraph-preflight", "apollo-require-preflight")
MAX_UPLOAD_BYTES = 6 * 1024 * 1024


def _error_response(
    status: int,
    message: str,
    code: str,
    *,
    media_type: str = "application/json",
    **headers: str,
) -> Response:
    """A GraphQL-shaped error body (``{"errors": [...]}``, no ``data``) for a request that never
    reached execution, in ``media_type`` (always UTF-8)."""
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=f"{media_type}; charset=utf-8",
        headers=headers,
    )


class UploadAwareRequestAdapter(StarletteRequestAdapter):
    """Starlette caps a multipart part at 1 MB; evidence photos may be 5 MB (checked later)."""

    async def get_form_data(self) -> FormData:
        form = await self._request.form(max_part_size=MAX_UPLOAD_BYTES + 1024)
        return FormData(files=form, form=form)


class GraphQLEndpoint(GraphQL):
    """Strawberry's ASGI view with our authentication, per-request transaction and the
    GraphQL-over-HTTP rules (media types, content negotiation, status codes).

    Negotiation (``Accept``) picks one of two response media types:

    * ``application/graphql-response+json``: a request error (syntax, validation, variable
      coercion: nothing was executed) is 400; anything that executed is 200.
    * ``application/json``: every well-formed request is 200, errors or not.

    When the client leaves the choice to us (no ``Accept``, or only ``*/*`` / ``application/*``
    ranges that rank both types equally), a response from execution uses ``application/json``
    and a request error uses ``application/graphql-response+json`` with 400. A malformed HTTP
    request (bad JSON, missing or mistyped parameters) is 400 in any media type; an unsupported
    request ``Content-Type`` is 415, an ``Accept`` that allows neither media type is 406, a
    mutation over GET is 405 with ``Allow: POST``. A request error never carries ``data``.
    """

    GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
    JSON = "application/json"

    request_adapter_class = UploadAwareRequestAdapter

    def __init__(self, settings: Settings, engine_ref: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(
            default_schema,
            graphql_ide="graphiql" if not settings.is_production else None,
            allow_queries_via_get=True,
            multipart_uploads_enabled=True,  # only with the preflight header (see _handle)
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

    async def execute_single(self, *args: Any, **kwargs: Any) -> Any:
        """A query operation over the hierarchy on PostgreSQL is answered by one compiled
        statement (carbongraph.planner); anything else, and anything the planner declines, by
        Strawberry."""
        data, context = kwargs["request_data"], kwargs["context"]
        outcome = await planner.try_plan(
            self.schema._schema, context, data.query, data.variables, data.operation_name
        )
        result = outcome.result or await super().execute_single(*args, **kwargs)
        return planner.annotate(result, outcome, self.settings)

    def _authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if not header:
            raise InvalidToken("missing bearer token")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("the Authorization header must be 'Bearer <token>'")
        if looks_like_key(token.strip()):
            # Checked against the database with the viewer's scopes (build_context).
            return ApiKeyPrincipal.parse(token.strip())
        return self.verifier.verify(token.strip())

    @staticmethod
    def _unauthenticated(exc: InvalidToken, media_type: str) -> Response:
        return _error_response(
            401,
            f"Unauthenticated: {exc}.",
            ErrorCode.UNAUTHENTICATED,
            media_type=media_type,
            **{"WWW-Authenticate": 'Bearer realm="carbongraph"'},
        )

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

    def _wants_ide(self, request: Request) -> bool:
        return (
            request.method == "GET"
            and "query" not in request.query_params
            and "text/html" in request.headers.get("accept", "")
        )

    # -- content negotiation ----------------------------------------------------------------

    @classmethod
    def negotiate(cls, accept: str | None) -> tuple[str, str] | None:
        """The response media types ``(after execution, for a request error)`` for an
        ``Accept`` header, or ``None`` when it allows neither (406).

        Each type takes the quality of its most specific matching range (RFC 9110 §12.5.1); a
        range with a charset other than UTF-8 matches nothing. The higher quality wins, then
        the more specific match, then (both named explicitly) the one listed first. Equal by
        all three, only a wildcard matched both, and the choice is ours."""
        ours = (cls.GRAPHQL_RESPONSE_JSON, cls.JSON)
        if accept is None or not accept.strip():
            return cls.JSON, cls.GRAPHQL_RESPONSE_JSON
        # candidate -> (specificity, quality, position) of its most specific matching range
        best: dict[str, tuple[int, float, int]] = {}
        for position, item in enumerate(accept.split(",")):
            mime, *params = (part.strip() for part in item.split(";"))
            mime = mime.lower()
            quality = 1.0
            acceptable_charset = True
            for param in params:
                name, _, value = param.partition("=")
                name, value = name.strip().lower(), value.strip().strip('"').lower()
                if name == "q":
                    try:
                        quality = float(value)
                    except ValueError:
                        quality = -1.0
                elif name == "charset":
                    acceptable_charset = value in ("utf-8", "utf8")
            if not acceptable_charset or not 0.0 <= quality <= 1.0:
                continue
            for candidate in ours:
                if mime == candidate:
                    specificity = 2
                elif mime in ("application/*", "*/*"):
                    specificity = 1 if mime == "application/*" else 0
                else:
                    continue
                current = best.get(candidate)
                if current is None or specificity > current[0]:
                    best[candidate] = (specificity, quality, position)
                elif specificity == current[0] and quality > current[1]:
                    best[candidate] = (specificity, quality, current[2])
        acceptable = {c: v for c, v in best.items() if v[1] > 0}
        if not acceptable:
            return None
        if len(acceptable) == 1:
            (only,) = acceptable
            return only, only
        (gr_spec, gr_q, gr_pos) = acceptable[cls.GRAPHQL_RESPONSE_JSON]
        (js_spec, js_q, js_pos) = acceptable[cls.JSON]
        if gr_q != js_q:
            winner = cls.GRAPHQL_RESPONSE_JSON if gr_q > js_q else cls.JSON
        elif gr_spec != js_spec:
            winner = cls.GRAPHQL_RESPONSE_JSON if gr_spec > js_spec else cls.JSON
        elif gr_spec == 2:
            winner = cls.GRAPHQL_RESPONSE_JSON if gr_pos < js_pos else cls.JSON
        else:
            return cls.JSON, cls.GRAPHQL_RESPONSE_JSON
        return winner, winner

    @classmethod
    def _unsupported_content_type(cls, content_type: str | None) -> str | None:
        """Why a POST body's ``Content-Type`` is not accepted (415), or ``None``."""
        if not content_type or not content_type.strip():
            return "A POST request needs 'Content-Type: application/json'."
        mime, *params = (part.strip() for part in content_type.split(";"))
        if mime.lower() != cls.JSON:
            return f"Unsupported Content-Type {mime!r}: send the request as application/json."
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
                "utf-8",
                "utf8",
            ):
                return "Unsupported charset: send the request body as UTF-8."
        return None

    # -- request handling ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        response.headers.add_vary_header("Accept")  # the media type and status depend on it
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        if self._wants_ide(request):
            if self.graphql_ide:
                return await self.render_graphql_ide(request)
            return _error_response(404, "Not found.", ErrorCode.NOT_FOUND)
        media = self.negotiate(request.headers.get("accept"))
        error_media = media[1] if media else self.JSON
        try:
            principal = self._authenticate(request)
        except InvalidToken as exc:
            return self._unauthenticated(exc, error_media)
        if media is None:
            return _error_response(
                406,
                f"Not acceptable: this endpoint responds with {self.GRAPHQL_RESPONSE_JSON} "
                f"or {self.JSON}.",
                ErrorCode.BAD_USER_INPUT,
            )
        content_type = request.headers.get("content-type") or ""
        if request.method == "POST" and content_type.lower().startswith("multipart/form-data"):
            # File uploads (GraphQL multipart request spec). A browser cannot send a custom
            # header cross-site without a CORS preflight, so requiring one stops CSRF.
            if not any(request.headers.get(h) for h in PREFLIGHT_HEADERS):
                return _error_response(
                    400,
                    "Multipart requests need the 'X-Carbongraph-Preflight: 1' header.",
                    ErrorCode.BAD_USER_INPUT,
                    media_type=error_media,
                )
        elif request.method == "POST" and (
            problem := self._unsupported_content_type(request.headers.get("content-type"))
        ):
            return _error_response(415, problem, ErrorCode.BAD_USER_INPUT, media_type=error_media)
        request.state.graphql_media = media
        limit = self.settings.max_body_bytes
        timeout = self.settings.request_timeout_seconds
        if content_type.lower().startswith("multipart/form-data"):
            limit = MAX_UPLOAD_BYTES + 64 * 1024  # one photo and the operation around it
        elif await self._is_bulk(request, content_type):
            limit = self.settings.max_bulk_body_bytes
            timeout = self.settings.bulk_request_timeout_seconds
        declared = request.headers.get("content-length")
        if (declared and declared.isdigit() and int(declared) > limit) or (
            request.method == "POST" and len(await request.body()) > limit
        ):
            return _error_response(
                413,
                f"The request body is larger than {limit} bytes.",
                "REQUEST_TOO_LARGE",
                media_type=error_media,
            )
        if self.rate_limiter is not None:
            decision = await self.rate_limiter.check(
                [f"p:{principal.subject}", f"ip:{request.client.host if request.client else '-'}"],
                await self._request_cost(request, content_type),
            )
            if not decision.allowed:
                metrics.refused("rate_limited")
                return _error_response(
                    429,
                    "Too many requests; retry later.",
                    "RATE_LIMITED",
                    media_type=error_media,
                    **{"Retry-After": str(decision.retry_after)},
                )
        write = request.method == "POST" and await self._runs_mutation(request, content_type)
        try:
            async with request_db(self._engine_ref["engine"], write=write) as db:
                context = await build_context(self.settings, db, principal, request=request)
                async with asyncio.timeout(timeout):
                    response = await self.run(request, context=context)
            if context.api_key is not None and context.api_key.touch:
                tasks = BackgroundTasks()
                if response.background is not None:
                    tasks.tasks.append(response.background)  # type: ignore[arg-type]
                tasks.add_task(self._touch_key, context.api_key.key_id)
                response.background = tasks
            return response
        except InvalidToken as exc:  # an unknown, revoked or expired API key
            return self._unauthenticated(exc, error_media)
        except TimeoutError:
            return _error_response(
                504, "The request took too long and was stopped.", "TIMEOUT", media_type=error_media
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
                "SERVICE_UNAVAILABLE",
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
        # Decided in _handle (browsers only, before authentication); a GET without a query that
        # gets this far is an API request without a query: 400.
        return False

    async def _is_bulk(self, request: Request, content_type: str) -> bool:
        """A JSON POST of a bulk mutation (limits.BULK_FIELDS) within the bulk body limit: it
        gets that limit and the bulk timeout. Anything else keeps the ordinary ones."""
        if request.method != "POST" or not content_type.lower().startswith("application/json"):
            return False
        declared = request.headers.get("content-length")
        bulk_limit = self.settings.max_bulk_body_bytes
        if declared and declared.isdigit() and int(declared) > bulk_limit:
            return False
        body = await request.body()
        if len(body) > bulk_limit or not any(name.encode() in body for name in limits.BULK_FIELDS):
            return False
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        query = data.get("query") if isinstance(data, dict) else None
        name = data.get("operationName") if isinstance(data, dict) else None
        if not isinstance(query, str) or len(query) > self.settings.max_query_characters:
            return False
        return limits.is_bulk(query, name if isinstance(name, str) else None)

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

    async def _request_cost(self, request: Request, content_type: str) -> int:
        """The static cost the rate limiter spends (1 when the query cannot be read here)."""
        query: Any = request.query_params.get("query")
        variables: Any = None
        if request.method == "POST" and content_type.lower().startswith("application/json"):
            try:
                body = orjson.loads(await request.body())
                query = body.get("query") if isinstance(body, dict) else None
                variables = body.get("variables") if isinstance(body, dict) else None
            except orjson.JSONDecodeError:
                query = None
        elif isinstance(vars_text := request.query_params.get("variables"), str):
            with contextlib.suppress(orjson.JSONDecodeError):
                variables = orjson.loads(vars_text)
        if not isinstance(query, str):
            return 1
        try:
            # The number the validation rule (carbongraph.cost) checks for this request.
            estimated = query_cost(
                self.schema._schema,
                query,
                variables if isinstance(variables, dict) else None,
                max_tokens=self.limits.max_tokens,
                default_list_size=self.settings.max_page_size,
            )
        except limits.LimitExceeded:
            return 1
        # An over-cost request is refused before it runs; it spends only 1.
        return 1 if estimated > self.settings.max_cost else max(1, estimated)

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
        ``Content-Type`` was checked in ``_handle``; batching is not enabled."""
        if request.method == "GET":
            data: Any = self.parse_query_params(request.query_params)
            for name in ("variables", "extensions"):
                if data.get(name) == "":
                    data[name] = None
        elif (request.content_type or "").startswith("multipart/form-data"):
            data = await self.parse_multipart(request)  # uploads: preflight checked in _handle
        else:
            data = self.parse_json(await request.get_body())  # 400 when not JSON
            if not isinstance(data, dict):
                error = HTTPException(
                    400, "The request body must be one JSON object: batching is not supported."
                )
                error.graphql_code = "BATCHING_NOT_SUPPORTED"  # type: ignore[attr-defined]
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
        if limits.has_unstorable_text(data.get("variables")):
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
            response_data["errors"] = [_with_request_error_code(e) for e in response_data["errors"]]
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
        code = "GRAPHQL_PARSE_FAILED"
    elif message.startswith("Variable '$"):
        code = ErrorCode.BAD_USER_INPUT
    else:
        code = "GRAPHQL_VALIDATION_FAILED"
    return {**error, "extensions": {**(error.get("extensions") or {}), "code": str(code)}}


class SecurityHeaders:
    """Headers every response carries (pure ASGI: no buffering of bodies)."""

    def __init__(self, app: Any, production: bool) -> None:
        self.app = app
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cache-control", b"no-store"),
        ]
        if production:
            self.headers.append((b"strict-transport-security", b"max-age=63072000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = dict(headers).get(b"content-type", b"")
                headers += self.headers
                if not content_type.startswith(b"text/html"):  # GraphiQL loads its scripts
                    headers.append(
                        (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
                    )
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
            Route("/graphql", graphql, methods=["GET", "POST"]),
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


async def ensure_migrated(engine: AsyncEngine, settings: Settings) -> None:
    current = await migrate.current_revision(engine)
    head = migrate.head_revision()
    if current != head:
        raise DatabaseNotMigrated(
            f"The database at {redact(settings.database_url)} is at migration "
            f"{current or 'none'}, but this version needs {head}. "
            "Run `carbongraph migrate` first."
        )


def redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
