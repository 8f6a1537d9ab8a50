"""Headers every response carries."""

from __future__ import annotations

from typing import Any

from starlette.types import Receive, Scope, Send

from carbongraph.asgi import HttpMiddleware


class SecurityHeaders(HttpMiddleware):
    """Headers every response carries (pure ASGI: no buffering of bodies)."""

    def __init__(self, app: Any, production: bool) -> None:
        super().__init__(app)
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cache-control", b"no-store"),
        ]
        if production:
            self.headers.append((b"strict-transport-security", b"max-age=63072000"))

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:

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
