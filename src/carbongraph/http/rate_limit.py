"""Rate limiting by cost (carbongraph.ratelimit): each request spends its static cost, per
principal and per client IP; over the budget, 429 with ``Retry-After``."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from graphql import GraphQLSchema
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from carbongraph import limits
from carbongraph.asgi import HttpMiddleware
from carbongraph.config import Settings
from carbongraph.cost import query_cost
from carbongraph.errors import ErrorCode
from carbongraph.http.errors import error_response
from carbongraph.http.negotiation import error_media
from carbongraph.http.state import BODY, PRINCIPAL, state
from carbongraph.observability import metrics
from carbongraph.ratelimit import RateLimiter


def request_cost(
    schema: GraphQLSchema, settings: Settings, max_tokens: int, scope: Scope, body: bytes
) -> int:
    """The static cost the rate limiter spends (1 when the query cannot be read here)."""
    params = QueryParams(scope.get("query_string", b""))
    content_type = Headers(scope=scope).get("content-type") or ""
    query: Any = params.get("query")
    variables: Any = None
    if scope["method"] == "POST" and content_type.lower().startswith("application/json"):
        try:
            data = orjson.loads(body)
            query = data.get("query") if isinstance(data, dict) else None
            variables = data.get("variables") if isinstance(data, dict) else None
        except orjson.JSONDecodeError:
            query = None
    elif isinstance(vars_text := params.get("variables"), str):
        with contextlib.suppress(orjson.JSONDecodeError):
            variables = orjson.loads(vars_text)
    if not isinstance(query, str):
        return 1
    try:
        # The number the validation rule (carbongraph.cost) checks for this request.
        estimated = query_cost(
            schema,
            query,
            variables if isinstance(variables, dict) else None,
            max_tokens=max_tokens,
            default_list_size=settings.max_page_size,
        )
    except limits.LimitExceeded:
        return 1
    # An over-cost request is refused before it runs; it spends only 1.
    return 1 if estimated > settings.max_cost else max(1, estimated)


class RateLimit(HttpMiddleware):
    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        schema: GraphQLSchema,
        settings: Settings,
        max_tokens: int,
    ) -> None:
        super().__init__(app)
        self.limiter = limiter
        self.schema = schema
        self.settings = settings
        self.max_tokens = max_tokens

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_state = state(scope)
        client = scope.get("client")
        decision = await self.limiter.check(
            [f"p:{request_state[PRINCIPAL].subject}", f"ip:{client[0] if client else '-'}"],
            request_cost(
                self.schema,
                self.settings,
                self.max_tokens,
                scope,
                request_state.get(BODY, b""),
            ),
        )
        if decision.allowed:
            await self.app(scope, receive, send)
            return
        metrics.refused("rate_limited")
        response = error_response(
            429,
            "Too many requests; retry later.",
            ErrorCode.RATE_LIMITED,
            media_type=error_media(scope),
            **{"Retry-After": str(decision.retry_after)},
        )
        await response(scope, receive, send)
