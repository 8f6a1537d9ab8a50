"""GraphiQL for a browser's GET, before authentication (development only; 404 in production)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from carbongraph.errors import ErrorCode
from carbongraph.http.errors import error_response


def wants_ide(request: Request) -> bool:
    return (
        request.method == "GET"
        and "query" not in request.query_params
        and "text/html" in request.headers.get("accept", "")
    )


class GraphiQL:
    """A browser opening ``/graphql`` gets the IDE (``render``), or 404 when it is off."""

    def __init__(
        self, app: ASGIApp, render: Callable[[Request], Awaitable[Response]] | None
    ) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not wants_ide(request := Request(scope, receive)):
            await self.app(scope, receive, send)
            return
        if self.render is not None:
            response = await self.render(request)
        else:
            response = error_response(404, "Not found.", ErrorCode.NOT_FOUND)
        await response(scope, receive, send)
