"""What the ``/graphql`` middlewares leave for the layers inside them, in the ASGI scope's
``state`` (the dict behind Starlette's ``request.state``; per request)."""

from __future__ import annotations

from typing import Any

from starlette.types import Scope

# (media type after execution, media type of a request error), or None when Accept allows neither
GRAPHQL_MEDIA = "graphql_media"
PRINCIPAL = "principal"  # carbongraph.authz.Principal or ApiKeyPrincipal
BODY = "body"  # a POST's whole body, read once by BodyLimit
TIMEOUT = "timeout"  # seconds the execution may take (bulk requests get longer)


def state(scope: Scope) -> dict[str, Any]:
    return scope.setdefault("state", {})
