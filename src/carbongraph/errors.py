"""Error codes that clients can rely on.

Query-side failures are GraphQL errors whose ``extensions.code`` is one of ``ErrorCode``;
mutation-side failures are ``userErrors`` on the payload whose ``code`` is one of the same
``ErrorCode`` (``UserErrorCode`` is another name for it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from graphql import GraphQLError


class ErrorCode(StrEnum):
    """Every code a client can meet: a GraphQL error's ``extensions.code`` and a mutation's
    ``UserError.code`` take their values from this one list (exposed once in the schema, as
    the ``ErrorCode`` enum, with a description per value: ``schema/common.py``)."""

    # -- GraphQL errors (``extensions.code``) --------------------------------------------------
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    # An aggregate withheld under the small-cell rule (docs/privacy.md).
    SUPPRESSED = "SUPPRESSED"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    # The request limits (docs/security.md), checked before anything runs.
    QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
    QUERY_TOO_LARGE = "QUERY_TOO_LARGE"
    TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
    TOO_MANY_DIRECTIVES = "TOO_MANY_DIRECTIVES"
    TOO_MANY_DUPLICATE_FIELDS = "TOO_MANY_DUPLICATE_FIELDS"
    TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
    INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"
    COST_LIMIT_EXCEEDED = "COST_LIMIT_EXCEEDED"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    BATCHING_NOT_SUPPORTED = "BATCHING_NOT_SUPPORTED"
    RATE_LIMITED = "RATE_LIMITED"
    TIMEOUT = "TIMEOUT"
    # The database cannot be reached: retry (503, Retry-After).
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    # Live updates (the event bus) are down: retry the subscription later.
    UNAVAILABLE = "UNAVAILABLE"
    # The planner's shadow mode (docs/operations.md): the planned answer differed from the
    # reference executor's. Never met with the planner on or off.
    PLANNER_MISMATCH = "PLANNER_MISMATCH"
    # -- user errors (``UserError.code``; NOT_FOUND and FORBIDDEN above too) -------------------
    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    TOO_LONG = "TOO_LONG"
    DUPLICATE = "DUPLICATE"
    ARCHIVED = "ARCHIVED"
    INVALID_TIMEZONE = "INVALID_TIMEZONE"
    INVALID_REGION = "INVALID_REGION"
    INVALID_DATE = "INVALID_DATE"
    OVERLAPPING_MEMBERSHIP = "OVERLAPPING_MEMBERSHIP"
    HAS_ACTIVE_CHILDREN = "HAS_ACTIVE_CHILDREN"
    NOT_GRANTABLE = "NOT_GRANTABLE"
    # Activity records
    NEGATIVE_QUANTITY = "NEGATIVE_QUANTITY"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    UNKNOWN_UNIT = "UNKNOWN_UNIT"
    UNKNOWN_ACTIVITY_TYPE = "UNKNOWN_ACTIVITY_TYPE"
    INVALID_PERIOD = "INVALID_PERIOD"
    FUTURE_PERIOD = "FUTURE_PERIOD"
    OVERLAPPING_PERIOD = "OVERLAPPING_PERIOD"
    ARCHIVED_ACCOUNT = "ARCHIVED_ACCOUNT"
    EXTERNAL_ID_CONFLICT = "EXTERNAL_ID_CONFLICT"
    NO_EMISSION_FACTOR = "NO_EMISSION_FACTOR"
    # Actions and credits
    DAILY_CAP_REACHED = "DAILY_CAP_REACHED"
    EVIDENCE_REQUIRED = "EVIDENCE_REQUIRED"
    ACTION_NOT_ALLOWED = "ACTION_NOT_ALLOWED"
    INVALID_EVIDENCE = "INVALID_EVIDENCE"
    DUPLICATE_EVIDENCE = "DUPLICATE_EVIDENCE"
    INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    # A manager's decision (approve, reject, reverse) that another decision got to first.
    ALREADY_DECIDED = "ALREADY_DECIDED"
    # The photo was fine but could not be kept (e.g. the store is full): retry later.
    EVIDENCE_NOT_STORED = "EVIDENCE_NOT_STORED"


# The same enum under the name the domain services use for a mutation's errors: one list.
UserErrorCode = ErrorCode


class CodedError(GraphQLError):
    code: ErrorCode = ErrorCode.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, **extensions: object) -> None:
        super().__init__(message, extensions={"code": str(self.code), **extensions})


class Forbidden(CodedError):
    code = ErrorCode.FORBIDDEN

    def __init__(self, message: str = "You are not allowed to read this.") -> None:
        super().__init__(message)


class NotFound(CodedError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, message: str = "No such object.") -> None:
        super().__init__(message)


class BadUserInput(CodedError):
    code = ErrorCode.BAD_USER_INPUT


class Suppressed(CodedError):
    code = ErrorCode.SUPPRESSED

    def __init__(self, reason: str) -> None:
        super().__init__(
            "Withheld: the figures cover too few people for this viewer (docs/privacy.md).",
            reason=reason,
        )


@dataclass(frozen=True)
class UserErrorData:
    field: list[str]
    message: str
    code: UserErrorCode


@dataclass
class MutationFailed(Exception):
    """Raised by a domain service: the mutation's savepoint rolls back and the payload carries
    these errors."""

    errors: list[UserErrorData] = field(default_factory=list)

    @classmethod
    def single(cls, field_path: list[str], code: UserErrorCode, message: str) -> MutationFailed:
        return cls([UserErrorData(field_path, message, code)])
