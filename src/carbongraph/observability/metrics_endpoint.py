"""``GET /metrics``: the Prometheus text exposition.

Metrics name operations and volumes, nothing personal, but they are operational detail: in
production they are served only to a scraper holding ``CARBONGRAPH_METRICS_TOKEN`` (a bearer
secret; without one configured, ``/metrics`` is 404 in production). In development they are open
unless a token is set."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from carbongraph.config import Settings
from carbongraph.observability import metrics


class MetricsEndpoint:
    def __init__(self, settings: Settings) -> None:
        self.token = settings.metrics_token
        self.enabled = bool(self.token) or not settings.is_production

    async def handle(self, request: Request) -> Response:
        if not self.enabled:
            return PlainTextResponse("Not Found", status_code=404)
        if self.token:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                return PlainTextResponse(
                    "Unauthorized",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)
