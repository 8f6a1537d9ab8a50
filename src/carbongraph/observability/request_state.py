"""What the middlewares, the GraphQL endpoint and the schema's extension know about the request
being served, shared through a context variable (one object per HTTP request)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass
class RequestState:
    request_id: str
    trace_id: str | None = None
    # Set by the GraphQL layer: the executed operation's name ("" when anonymous), whether the
    # response carried GraphQL errors, and why a request was refused before it ran.
    operation: str | None = None
    graphql_errors: bool = False
    refusal: str | None = None


_CURRENT: contextvars.ContextVar[RequestState | None] = contextvars.ContextVar(
    "carbongraph_request_state", default=None
)


def current() -> RequestState | None:
    return _CURRENT.get()


def enter(state: RequestState) -> contextvars.Token[RequestState | None]:
    return _CURRENT.set(state)


def leave(token: contextvars.Token[RequestState | None]) -> None:
    _CURRENT.reset(token)
