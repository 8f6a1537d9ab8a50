"""The Starlette application: ``/graphql`` (POST and GET) and ``/healthz``.

Authentication: this subgraph sits behind carbongraph's gateway, which verifies every JWT
(signature, issuer, audience, expiry) before calling any subgraph and forwards the caller's
``Authorization`` header. The partner therefore only requires that a bearer token is present
(HTTP 401 ``UNAUTHENTICATED`` otherwise). If ``METRO_JWT_SECRET`` is set it verifies the token
too (HS256, audience and issuer ``carbongraph``): do that whenever the subgraph is reachable
other than through the gateway.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import jwt
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL

from . import db
from .schema import MetroContext, schema

JWT_ISSUER = "carbongraph"
JWT_AUDIENCE = "carbongraph"


class Unauthenticated(Exception):
    pass


def authenticate(header: str | None, secret: str | None) -> dict[str, Any] | None:
    """The verified claims (with a secret), None (without one); Unauthenticated when the
    ``Authorization: Bearer <token>`` header is missing, malformed or (with a secret) invalid."""
    if not header:
        raise Unauthenticated("missing bearer token")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    if secret is None:
        return None  # the gateway has verified it
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=JWT_AUDIENCE,
            issuer=JWT_ISSUER,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"invalid token: {exc}") from exc


def unauthenticated(message: str) -> Response:
    error = {"message": f"Unauthenticated: {message}.", "extensions": {"code": "UNAUTHENTICATED"}}
    return JSONResponse(
        {"errors": [error]},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="metro_partner"'},
    )


class MetroGraphQL(GraphQL):
    """Strawberry's ASGI view, behind the bearer-token check, with a per-request context."""

    def __init__(self, engine: AsyncEngine, jwt_secret: str | None) -> None:
        super().__init__(schema, graphql_ide=None, allow_queries_via_get=True)
        self.engine = engine
        self.jwt_secret = jwt_secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            try:
                claims = authenticate(request.headers.get("authorization"), self.jwt_secret)
            except Unauthenticated as exc:
                await unauthenticated(str(exc))(scope, receive, send)
                return
            scope.setdefault("state", {})["claims"] = claims
        await super().__call__(scope, receive, send)

    async def get_context(self, request: Any, response: Any) -> MetroContext:
        return MetroContext(engine=self.engine, claims=getattr(request.state, "claims", None))


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(engine: AsyncEngine | None = None, *, jwt_secret: str | None = None) -> Starlette:
    """The app on ``engine`` (default: ``METRO_DATABASE_URL``); ``jwt_secret`` defaults to
    ``METRO_JWT_SECRET`` (unset: tokens are required but not verified)."""
    owns_engine = engine is None
    engine = engine or db.create_engine()
    secret = jwt_secret or os.environ.get("METRO_JWT_SECRET") or None

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await db.create_tables(engine)
        try:
            yield
        finally:
            if owns_engine:
                await engine.dispose()

    return Starlette(
        routes=[
            Route("/graphql", MetroGraphQL(engine, secret), methods=["GET", "POST"]),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )
