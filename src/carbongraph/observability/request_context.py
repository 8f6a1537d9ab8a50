"""Middleware: every HTTP request gets a request id (the caller's sane ``X-Request-Id``, else a
new one), echoed in the response, and the W3C trace context it came with (``traceparent`` from
the gateway), so that logs and metrics of the request can name both."""

from __future__ import annotations

import uuid
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from starlette.types import Receive, Scope, Send

from carbongraph.asgi import HttpMiddleware
from carbongraph.observability import request_state


def sane_request_id(given: str | None) -> str:
    if given and len(given) <= 64 and given.isascii() and given.isprintable():
        return given
    return uuid.uuid4().hex


class RequestContext(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        # With tracing on, the tracing middleware has already started the server span as a
        # child of the caller's context; with it off, the caller's context is still attached so
        # that logs carry the gateway's trace id.
        attached = None
        if not trace.get_current_span().get_span_context().is_valid:
            attached = otel_context.attach(propagate.extract(headers))
        span_context = trace.get_current_span().get_span_context()
        state = request_state.RequestState(
            request_id=sane_request_id(headers.get("x-request-id")),
            trace_id=format(span_context.trace_id, "032x") if span_context.is_valid else None,
        )
        token = request_state.enter(state)
        request_id = state.request_id.encode()

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", request_id)],
                }
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_state.leave(token)
            if attached is not None:
                otel_context.detach(attached)
