"""The error body of a request that never reached execution."""

from __future__ import annotations

import orjson
from starlette.responses import Response


def error_response(
    status: int,
    message: str,
    code: str,
    *,
    media_type: str = "application/json",
    **headers: str,
) -> Response:
    """A GraphQL-shaped error body (``{"errors": [...]}``, no ``data``) for a request that never
    reached execution, in ``media_type`` (always UTF-8)."""
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=f"{media_type}; charset=utf-8",
        headers=headers,
    )
