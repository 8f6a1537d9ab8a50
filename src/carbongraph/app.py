"""The Starlette application: ``/graphql``, ``/healthz``, ``/readyz``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse

try:  # strawberry >= 0.28x moved it into cross_web
    from cross_web import HTTPException
except ImportError:  # pragma: no cover
    from strawberry.http.exceptions import HTTPException  # type: ignore[no-redef]

from carbongraph import migrate
from carbongraph.authz import InvalidToken, Principal, TokenVerifier
from carbongraph.config import Settings
from carbongraph.db import create_engine, ping, request_db
from carbongraph.errors import ErrorCode
from carbongraph.resolvers.context import build_context
from carbongraph.schema.schema import schema as default_schema

log = logging.getLogger("carbongraph")


class DatabaseNotMigrated(RuntimeError):
    pass


def _error_response(status: int, message: str, code: str, **headers: str) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


class GraphQLEndpoint(GraphQL):
    """Strawberry's ASGI view with our authentication, per-request transaction and status codes."""

    def __init__(self, settings: Settings, engine_ref: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(
            default_schema,
            graphql_ide="graphiql" if not settings.is_production else None,
            allow_queries_via_get=True,
            **kwargs,
        )
        self.settings = settings
        self._engine_ref = engine_ref
        self.verifier = TokenVerifier(settings)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def _authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if not header:
            raise InvalidToken("missing bearer token")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("the Authorization header must be 'Bearer <token>'")
        return self.verifier.verify(token.strip())

    def _wants_ide(self, request: Request) -> bool:
        return (
            request.method == "GET"
            and "query" not in request.query_params
            and "text/html" in request.headers.get("accept", "")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        if self._wants_ide(request):
            if self.graphql_ide:
                return await self.render_graphql_ide(request)
            return _error_response(404, "Not found.", ErrorCode.NOT_FOUND)
        try:
            principal = self._authenticate(request)
        except InvalidToken as exc:
            return _error_response(
                401,
                f"Unauthenticated: {exc}.",
                ErrorCode.UNAUTHENTICATED,
                **{"WWW-Authenticate": 'Bearer realm="carbongraph"'},
            )
        # SQLite: a request that may write takes the write lock at BEGIN, so it waits its turn
        # rather than failing on upgrade. A false positive only costs a little concurrency.
        write = request.method == "POST" and b"mutation" in await request.body()
        try:
            async with request_db(self._engine_ref["engine"], write=write) as db:
                context = await build_context(self.settings, db, principal, request=request)
                return await self.run(request, context=context)
        except HTTPException as exc:
            if request.method == "GET" and "mutation" in exc.reason.lower():
                # GraphQL over HTTP: a mutation over GET is 405, and is never executed.
                return _error_response(405, exc.reason, ErrorCode.BAD_USER_INPUT, Allow="POST")
            return _error_response(exc.status_code, exc.reason, ErrorCode.BAD_USER_INPUT)

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        # A request that never reached execution (syntax or validation errors) is a 400.
        if isinstance(response_data, dict) and response_data.get("data") is None:
            errors = response_data.get("errors") or []
            if errors and all("path" not in e for e in errors):
                response.status_code = 400
        return response


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

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if engine_ref["engine"] is None:
            engine_ref["engine"] = create_engine(settings)
        if check_migrations:
            await ensure_migrated(engine_ref["engine"], settings)
        try:
            yield
        finally:
            if owns_engine:
                await engine_ref["engine"].dispose()

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
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
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
