"""GraphQL subscriptions over WebSocket (``graphql-transport-ws``) at ``/graphql``.

Strawberry's implementation of the protocol (message order, ``connection_init`` timeout, ids,
ping/pong, close codes) with our rules on top:

* authentication in ``connection_init``: ``{"Authorization": "Bearer <jwt>"}`` (or
  ``authorization``, or ``token`` as Apollo Router sends it) in its payload, else the upgrade
  request's ``Authorization`` header; a missing or invalid token closes the socket with 4403
  and says why; the socket closes (4403) when the token expires;
* only subscriptions: queries and mutations go over HTTP, where transactions, limits and rate
  limits are applied per request;
* every subscribe passes the document limits, the cost limit and the rate limiter of HTTP
  requests first (an ``error`` message with the same codes), introspection is refused in
  production and validation messages lose their "Did you mean" hints there;
* browsers' cross-origin handshakes are refused unless the origin is in CORS_ORIGINS.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from datetime import timedelta
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError, parse
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    # Strawberry has no public way to run an operation with subscribe() rather than stream()
    # (which would also run queries and mutations here); run_operation below copies its
    # handler's, and this is the signal its result stream uses when it closed the socket.
    _OperationStreamClosed,  # noqa: PLC2701
)
from strawberry.utils.aio import aclosing

from carbongraph import limits
from carbongraph.authz import InvalidToken, TokenVerifier
from carbongraph.config import Settings
from carbongraph.cost import query_cost
from carbongraph.errors import ErrorCode
from carbongraph.observability import metrics
from carbongraph.ratelimit import RateLimiter
from carbongraph.schema.live.subscriptions import LiveContext
from carbongraph.schema.schema import SUGGESTION
from carbongraph.schema.schema import schema as default_schema

# WebSocket close reasons are limited to 123 bytes.
MAX_REASON = 120


def _error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


class LiveProtocolHandler(BaseGraphQLTransportWSHandler[LiveContext, None]):
    view: LiveEndpoint
    context: LiveContext

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._expiry: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: Any) -> None:
        if not self.connection_init_received:
            payload = message.get("payload")
            try:
                self.context.principal = self.view.authenticate(
                    payload if isinstance(payload, dict) else {}, self.context.request
                )
            except InvalidToken as exc:
                if self.connection_init_timeout_task:
                    self.connection_init_timeout_task.cancel()
                self.connection_init_received = True
                await self.websocket.close(4403, f"Unauthenticated: {exc}."[:MAX_REASON])
                return
            expires = self.context.principal.claims.get("exp")
            if isinstance(expires, int | float):
                self._expiry = asyncio.create_task(self._close_when_expired(float(expires)))
        await super().handle_connection_init(message)

    async def _close_when_expired(self, expires: float) -> None:
        await asyncio.sleep(max(0.0, expires - time.time()))
        with suppress(Exception):
            await self.websocket.close(4403, "Unauthenticated: token has expired.")

    async def shutdown(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with suppress(asyncio.CancelledError):
                await self._expiry
        await super().shutdown()

    async def run_operation(self, operation: Any) -> None:
        metrics.OPEN_SUBSCRIPTIONS.inc()
        try:
            await self._run_subscription(operation)
        finally:
            metrics.OPEN_SUBSCRIPTIONS.dec()

    async def _run_subscription(self, operation: Any) -> None:
        try:
            refusal = await self.view.refuse(
                operation.query, self.context, getattr(operation, "variables", None)
            )
            if refusal is not None:
                code = (refusal.extensions or {}).get("code")
                if code != ErrorCode.BAD_USER_INPUT:  # the rate limit, the static limits
                    metrics.refused(str(code))
                await operation.send_initial_errors([refusal])
                return
            # subscribe(), not stream(): queries and mutations are refused here.
            result_source = await self.schema.subscribe(
                operation.query,
                variable_values=operation.variables,
                context_value=self.context,
                root_value=self.root_value,
                operation_name=operation.operation_name,
            )
            async with aclosing(result_source):
                await self._send_result_stream(operation, result_source)
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except _OperationStreamClosed:
            return
        except Exception as error:
            await self.handle_task_exception(error)
            with suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise

    async def send_message(self, message: Any) -> None:
        if self.view.settings.is_production and message.get("type") in ("next", "error"):
            payload = message.get("payload")
            errors = payload if message["type"] == "error" else (payload or {}).get("errors")
            for error in errors or []:
                if isinstance(error, dict) and isinstance(error.get("message"), str):
                    error["message"] = SUGGESTION.sub("", error["message"])
        await super().send_message(message)


class LiveEndpoint(GraphQL[LiveContext, None]):
    graphql_transport_ws_handler_class = LiveProtocolHandler

    def __init__(
        self,
        settings: Settings,
        engine_ref: dict[str, Any],
        *,
        document_limits: limits.Limits,
        rate_limiter: RateLimiter | None,
        verifier: TokenVerifier,
    ) -> None:
        super().__init__(
            default_schema,
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=settings.live_max_subscriptions_per_connection,
            allowed_origins=settings.cors_origins,
        )
        self.settings = settings
        self._engine_ref = engine_ref
        self.document_limits = document_limits
        self.rate_limiter = rate_limiter
        self.verifier = verifier

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":  # the route only routes WebSockets here
            raise RuntimeError("LiveEndpoint serves WebSocket connections only")
        await super().__call__(scope, receive, send)

    async def get_context(self, request: Any, response: Any) -> LiveContext:
        return LiveContext(settings=self.settings, engine_ref=self._engine_ref, request=request)

    def authenticate(self, payload: dict[str, Any], websocket: Any) -> Any:
        # `token`: what Apollo Router puts there (the client's Authorization header).
        header = next(
            (payload[k] for k in ("Authorization", "authorization", "token") if k in payload), None
        )
        if header is None and websocket is not None:
            header = websocket.headers.get("authorization")
        if not header:
            raise InvalidToken("missing bearer token")
        if not isinstance(header, str):
            raise InvalidToken("the Authorization value must be 'Bearer <token>'")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("the Authorization value must be 'Bearer <token>'")
        return self.verifier.verify(token.strip())

    async def refuse(
        self, query: Any, ctx: LiveContext, variables: Any = None
    ) -> GraphQLError | None:
        """Why a subscribe is refused before it runs (the HTTP endpoint's rules), or None."""
        settings = self.settings
        if not isinstance(query, str):
            return _error("The subscription's `query` must be a string.", ErrorCode.BAD_USER_INPUT)
        try:
            parse(query, max_tokens=self.document_limits.max_tokens)
        except GraphQLSyntaxError as exc:
            # Answered for this operation only: the connection may carry others (a gateway
            # multiplexes a user's subscriptions over one).
            return GraphQLError(
                exc.message,
                source=exc.source,
                positions=exc.positions,
                extensions={"code": ErrorCode.BAD_USER_INPUT},
            )
        except GraphQLError:
            pass  # too many tokens: the limits below say so with their code
        try:
            limits.check(
                query, self.document_limits, allow_introspection=not settings.is_production
            )
            estimated = query_cost(
                self.schema._schema,  # type: ignore[attr-defined]  # BaseSchema does not declare it
                query,
                variables if isinstance(variables, dict) else None,
                max_tokens=self.document_limits.max_tokens,
                default_list_size=settings.max_page_size,
            )
        except limits.LimitExceeded as exc:
            return _error(str(exc), exc.code)
        if estimated > settings.max_cost:
            return _error(
                f"The operation's estimated cost {estimated} exceeds {settings.max_cost}.",
                ErrorCode.COST_LIMIT_EXCEEDED,
            )
        if self.rate_limiter is not None and ctx.principal is not None:
            client = ctx.request.client if ctx.request is not None else None
            decision = await self.rate_limiter.check(
                [f"p:{ctx.principal.subject}", f"ip:{client.host if client else '-'}"],
                max(1, estimated),
            )
            if not decision.allowed:
                return _error("Too many requests; retry later.", ErrorCode.RATE_LIMITED)
        return None
