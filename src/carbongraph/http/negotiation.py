"""Response media types from ``Accept`` (GraphQL over HTTP), and ``Vary: Accept``.

Negotiation picks one of two response media types:

* ``application/graphql-response+json``: a request error (syntax, validation, variable
  coercion: nothing was executed) is 400; anything that executed is 200.
* ``application/json``: every well-formed request is 200, errors or not.

When the client leaves the choice to us (no ``Accept``, or only ``*/*`` / ``application/*``
ranges that rank both types equally), a response from execution uses ``application/json`` and a
request error uses ``application/graphql-response+json`` with 400. An ``Accept`` that allows
neither is 406 (``ContentTypes``, after authentication).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from carbongraph.asgi import HttpMiddleware
from carbongraph.http.state import GRAPHQL_MEDIA, state

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"


def negotiate(accept: str | None) -> tuple[str, str] | None:
    """The response media types ``(after execution, for a request error)`` for an ``Accept``
    header, or ``None`` when it allows neither (406).

    Each type takes the quality of its most specific matching range (RFC 9110 §12.5.1); a range
    with a charset other than UTF-8 matches nothing. The higher quality wins, then the more
    specific match, then (both named explicitly) the one listed first. Equal by all three, only
    a wildcard matched both, and the choice is ours."""
    ours = (GRAPHQL_RESPONSE_JSON, JSON)
    if accept is None or not accept.strip():
        return JSON, GRAPHQL_RESPONSE_JSON
    # candidate -> (specificity, quality, position) of its most specific matching range
    best: dict[str, tuple[int, float, int]] = {}
    for position, item in enumerate(accept.split(",")):
        mime, *params = (part.strip() for part in item.split(";"))
        mime = mime.lower()
        quality = 1.0
        acceptable_charset = True
        for param in params:
            name, _, value = param.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"').lower()
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = -1.0
            elif name == "charset":
                acceptable_charset = value in ("utf-8", "utf8")
        if not acceptable_charset or not 0.0 <= quality <= 1.0:
            continue
        for candidate in ours:
            if mime == candidate:
                specificity = 2
            elif mime in ("application/*", "*/*"):
                specificity = 1 if mime == "application/*" else 0
            else:
                continue
            current = best.get(candidate)
            if current is None or specificity > current[0]:
                best[candidate] = (specificity, quality, position)
            elif specificity == current[0] and quality > current[1]:
                best[candidate] = (specificity, quality, current[2])
    acceptable = {c: v for c, v in best.items() if v[1] > 0}
    if not acceptable:
        return None
    if len(acceptable) == 1:
        (only,) = acceptable
        return only, only
    (gr_spec, gr_q, gr_pos) = acceptable[GRAPHQL_RESPONSE_JSON]
    (js_spec, js_q, js_pos) = acceptable[JSON]
    if gr_q != js_q:
        winner = GRAPHQL_RESPONSE_JSON if gr_q > js_q else JSON
    elif gr_spec != js_spec:
        winner = GRAPHQL_RESPONSE_JSON if gr_spec > js_spec else JSON
    elif gr_spec == 2:
        winner = GRAPHQL_RESPONSE_JSON if gr_pos < js_pos else JSON
    else:
        return JSON, GRAPHQL_RESPONSE_JSON
    return winner, winner


def error_media(scope: Scope) -> str:
    """The media type of this request's errors (``application/json`` when Accept allows neither,
    or before negotiation)."""
    media = state(scope).get(GRAPHQL_MEDIA)
    return media[1] if media else JSON


def with_vary_accept(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Starlette's ``add_vary_header("Accept")``: joined onto an existing ``Vary`` (kept where
    the first one stood), or appended."""
    values = [value for name, value in headers if name == b"vary"]
    vary = (b"vary", b", ".join([*values, b"Accept"]))
    if not values:
        return [*headers, vary]
    first = next(i for i, (name, _) in enumerate(headers) if name == b"vary")
    rest = [h for i, h in enumerate(headers) if h[0] != b"vary" or i == first]
    return [vary if name == b"vary" else (name, value) for name, value in rest]


class Negotiation(HttpMiddleware):
    """Records the response media types in the request state; every response varies by
    ``Accept`` (its media type and status depend on it)."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        state(scope)[GRAPHQL_MEDIA] = negotiate(Headers(scope=scope).get("accept"))

        async def send_varying(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: Any = message.get("headers", [])
                message = {**message, "headers": with_vary_accept(list(headers))}
            await send(message)

        await self.app(scope, receive, send_varying)
