"""Authentication: a JWT or an API key in ``Authorization: Bearer``, or 401. Comes before every
other refusal (docs/compliance.md)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from carbongraph.asgi import HttpMiddleware
from carbongraph.authz import InvalidToken, Principal, TokenVerifier
from carbongraph.authz.api_keys import ApiKeyPrincipal, looks_like_key
from carbongraph.errors import ErrorCode
from carbongraph.http.errors import error_response
from carbongraph.http.negotiation import error_media
from carbongraph.http.state import PRINCIPAL, state


def authenticate(headers: Headers, verifier: TokenVerifier) -> Principal:
    header = headers.get("authorization")
    if not header:
        raise InvalidToken("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("the Authorization header must be 'Bearer <token>'")
    if looks_like_key(token.strip()):
        # Checked against the database with the viewer's scopes (build_context).
        return ApiKeyPrincipal.parse(token.strip())
    return verifier.verify(token.strip())


def unauthenticated(exc: InvalidToken, media_type: str) -> Response:
    return error_response(
        401,
        f"Unauthenticated: {exc}.",
        ErrorCode.UNAUTHENTICATED,
        media_type=media_type,
        **{"WWW-Authenticate": 'Bearer realm="carbongraph"'},
    )


class Authentication(HttpMiddleware):
    """Puts the principal in the request state, or answers 401. An API key's principal is only
    parsed here: the endpoint checks it against the database in the request's transaction."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier) -> None:
        super().__init__(app)
        self.verifier = verifier

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            state(scope)[PRINCIPAL] = authenticate(Headers(scope=scope), self.verifier)
        except InvalidToken as exc:
            await unauthenticated(exc, error_media(scope))(scope, receive, send)
            return
        await self.app(scope, receive, send)
