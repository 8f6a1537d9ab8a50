"""The request body limit (413): ``CARBONGRAPH_MAX_BODY_BYTES``; a JSON POST of a bulk mutation
(``limits.BULK_FIELDS``) gets ``CARBONGRAPH_MAX_BULK_BODY_BYTES`` and the bulk timeout; a
multipart upload room for one evidence photo.

A POST's body is read here once, never past the largest limit, and handed on: to the layers
inside in the request state, and to the endpoint through a replaying ``receive``."""

from __future__ import annotations

import orjson
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carbongraph import limits
from carbongraph.asgi import HttpMiddleware
from carbongraph.config import Settings
from carbongraph.errors import ErrorCode
from carbongraph.http.errors import error_response
from carbongraph.http.negotiation import error_media
from carbongraph.http.state import BODY, TIMEOUT, state

MAX_UPLOAD_BYTES = 6 * 1024 * 1024
# One photo and the operation around it.
MAX_MULTIPART_BYTES = MAX_UPLOAD_BYTES + 64 * 1024


async def read_body(receive: Receive, cap: int) -> bytes:
    """The body, or its first ``cap + 1`` bytes when it is longer (then it is refused)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > cap or not message.get("more_body", False):
            return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` as one message, then waits on the client (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class BodyLimit(HttpMiddleware):
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        super().__init__(app)
        self.settings = settings

    def _is_bulk(self, body: bytes, declared: str | None) -> bool:
        """A JSON POST of a bulk mutation within the bulk body limit: it gets that limit and
        the bulk timeout. Anything else keeps the ordinary ones."""
        bulk_limit = self.settings.max_bulk_body_bytes
        if declared and declared.isdigit() and int(declared) > bulk_limit:
            return False
        if len(body) > bulk_limit or not any(name.encode() in body for name in limits.BULK_FIELDS):
            return False
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        query = data.get("query") if isinstance(data, dict) else None
        name = data.get("operationName") if isinstance(data, dict) else None
        if not isinstance(query, str) or len(query) > self.settings.max_query_characters:
            return False
        return limits.is_bulk(query, name if isinstance(name, str) else None)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.settings
        headers = Headers(scope=scope)
        content_type = (headers.get("content-type") or "").lower()
        declared = headers.get("content-length")
        post = scope["method"] == "POST"
        multipart = content_type.startswith("multipart/form-data")
        limit, timeout = settings.max_body_bytes, settings.request_timeout_seconds
        # The most any body may be: past it, no limit below lets it through.
        cap = MAX_MULTIPART_BYTES if multipart else max(limit, settings.max_bulk_body_bytes)
        body = b""
        if post and not (declared and declared.isdigit() and int(declared) > cap):
            body = await read_body(receive, cap)
        if multipart:
            limit = MAX_MULTIPART_BYTES
        elif (
            post
            and content_type.startswith("application/json")
            and len(body) <= cap
            and self._is_bulk(body, declared)
        ):
            limit = settings.max_bulk_body_bytes
            timeout = settings.bulk_request_timeout_seconds
        if (declared and declared.isdigit() and int(declared) > limit) or (
            post and len(body) > limit
        ):
            response = error_response(
                413,
                f"The request body is larger than {limit} bytes.",
                ErrorCode.REQUEST_TOO_LARGE,
                media_type=error_media(scope),
            )
            await response(scope, receive, send)
            return
        request_state = state(scope)
        request_state[TIMEOUT] = timeout
        if post:
            request_state[BODY] = body
            receive = replaying(body, receive)
        await self.app(scope, receive, send)
