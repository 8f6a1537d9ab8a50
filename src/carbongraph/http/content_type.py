"""The media types a ``/graphql`` request may use: an ``Accept`` that allows one of ours (else
406), a POST body in JSON (else 415), or multipart uploads with the preflight header (else 400)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from carbongraph.asgi import HttpMiddleware
from carbongraph.errors import ErrorCode
from carbongraph.http.errors import error_response
from carbongraph.http.negotiation import GRAPHQL_RESPONSE_JSON, JSON, error_media
from carbongraph.http.state import GRAPHQL_MEDIA, state

PREFLIGHT_HEADERS = ("x-carbongraph-preflight", "apollo-require-preflight")


def unsupported_content_type(content_type: str | None) -> str | None:
    """Why a POST body's ``Content-Type`` is not accepted (415), or ``None``."""
    if not content_type or not content_type.strip():
        return "A POST request needs 'Content-Type: application/json'."
    mime, *params = (part.strip() for part in content_type.split(";"))
    if mime.lower() != JSON:
        return f"Unsupported Content-Type {mime!r}: send the request as application/json."
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return "Unsupported charset: send the request body as UTF-8."
    return None


class ContentTypes(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        content_type = headers.get("content-type") or ""
        post = scope["method"] == "POST"
        if state(scope).get(GRAPHQL_MEDIA) is None:
            response = error_response(
                406,
                f"Not acceptable: this endpoint responds with {GRAPHQL_RESPONSE_JSON} or {JSON}.",
                ErrorCode.BAD_USER_INPUT,
            )
        elif post and content_type.lower().startswith("multipart/form-data"):
            # File uploads (GraphQL multipart request spec). A browser cannot send a custom
            # header cross-site without a CORS preflight, so requiring one stops CSRF.
            if any(headers.get(h) for h in PREFLIGHT_HEADERS):
                await self.app(scope, receive, send)
                return
            response = error_response(
                400,
                "Multipart requests need the 'X-Carbongraph-Preflight: 1' header.",
                ErrorCode.BAD_USER_INPUT,
                media_type=error_media(scope),
            )
        elif post and (problem := unsupported_content_type(headers.get("content-type"))):
            response = error_response(
                415, problem, ErrorCode.BAD_USER_INPUT, media_type=error_media(scope)
            )
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
