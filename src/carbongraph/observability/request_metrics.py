"""Middleware: counts requests and their latency by GraphQL operation name (or route) and
outcome, and the data statements each request ran. Sits inside RequestContext."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from carbongraph.db import StatementLog
from carbongraph.observability import metrics, request_state

# Requests that are not GraphQL operations, by route (a bounded set: never the raw path).
ROUTES = {"/healthz": "healthz", "/readyz": "readyz", "/graphql": metrics.UNKNOWN}


def route_label(path: str) -> str:
    if path.startswith("/statements/"):
        return "statement_page"
    return ROUTES.get(path, "other")


def outcome(status: int, state: request_state.RequestState) -> str:
    """ok, error (a GraphQL response with errors), refused (rate or static limits),
    client_error (another 4xx) or server_error (5xx)."""
    if state.refusal is not None or status == 429:
        return "refused"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "error" if state.graphql_errors else "ok"


class RequestMetrics:
    def __init__(self, app: ASGIApp, operation_names: metrics.OperationNames) -> None:
        self.app = app
        self.names = operation_names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = request_state.current()
        if scope["type"] != "http" or state is None or scope["path"] == "/metrics":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts

        async def send_watching(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with StatementLog() as statements:
            try:
                await self.app(scope, receive, send_watching)
            finally:
                if state.operation is None:
                    label = route_label(scope["path"])
                else:
                    label = self.names.label(state.operation)
                result = outcome(status, state)
                metrics.REQUESTS.labels(label, result).inc()
                metrics.REQUEST_DURATION.labels(label, result).observe(
                    time.perf_counter() - started
                )
                metrics.STATEMENTS.labels(label).observe(statements.count)
