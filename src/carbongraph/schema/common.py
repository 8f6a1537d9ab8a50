"""Shared schema types: the error codes, user errors on mutation payloads, the Decimal scalar,
and the ``@cost``/``@listSize`` declarations of list fields."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, TypeVar

import strawberry
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.federation.schema_directives import Cost, ListSize

from carbongraph.errors import ErrorCode, UserErrorData

# What each code means, shown in the schema. Every code has one (checked when this module loads):
# a new code in errors.py is documented here or the server does not start.
ERROR_CODES: Mapping[ErrorCode, str] = {
    ErrorCode.UNAUTHENTICATED: "No valid credentials (HTTP 401).",
    ErrorCode.FORBIDDEN: "You may not read or change this.",
    ErrorCode.NOT_FOUND: "No such object (or it is in a tenant you cannot see).",
    ErrorCode.BAD_USER_INPUT: "An argument or variable is malformed (a cursor, a period, a page "
    "size); also text with NUL or unpaired surrogates.",
    ErrorCode.SUPPRESSED: "An aggregate withheld: it covers too few people for you "
    "(docs/privacy.md).",
    ErrorCode.INTERNAL_SERVER_ERROR: "Unexpected; the error's `requestId` is logged with it.",
    ErrorCode.GRAPHQL_PARSE_FAILED: "The document is not valid GraphQL syntax.",
    ErrorCode.GRAPHQL_VALIDATION_FAILED: "The document does not validate against the schema.",
    ErrorCode.QUERY_TOO_DEEP: "Deeper than the depth limit (docs/security.md).",
    ErrorCode.QUERY_TOO_LARGE: "More characters than the document limit.",
    ErrorCode.TOO_MANY_ALIASES: "More aliases than the limit.",
    ErrorCode.TOO_MANY_DIRECTIVES: "More directives than the limit.",
    ErrorCode.TOO_MANY_DUPLICATE_FIELDS: "The same field too often in one selection set.",
    ErrorCode.TOO_MANY_TOKENS: "More tokens than the limit.",
    ErrorCode.INTROSPECTION_DISABLED: "Introspection is off in production.",
    ErrorCode.COST_LIMIT_EXCEEDED: "The operation's static cost (`@cost`/`@listSize`) is over "
    "the limit.",
    ErrorCode.REQUEST_TOO_LARGE: "The request body is over the size limit (HTTP 413).",
    ErrorCode.BATCHING_NOT_SUPPORTED: "One operation per request.",
    ErrorCode.RATE_LIMITED: "Over the cost budget per minute (HTTP 429, `Retry-After`).",
    ErrorCode.TIMEOUT: "The request ran out of time and was stopped (HTTP 504).",
    ErrorCode.SERVICE_UNAVAILABLE: "The database cannot be reached; nothing was kept, retry "
    "(HTTP 503, `Retry-After`).",
    ErrorCode.UNAVAILABLE: "Live updates are unavailable right now; subscribe again later.",
    ErrorCode.PLANNER_MISMATCH: "Development, planner shadow mode: the compiled read's answer "
    "differed from the reference executor's (a defect; the server log has both).",
    ErrorCode.INVALID: "The input value is not acceptable (the message says why).",
    ErrorCode.REQUIRED: "A required input is missing or blank.",
    ErrorCode.TOO_LONG: "Longer than the field allows.",
    ErrorCode.DUPLICATE: "Already exists (e.g. an `externalRef`), or conflicts with a "
    "concurrent change.",
    ErrorCode.ARCHIVED: "The object is archived.",
    ErrorCode.INVALID_TIMEZONE: "Not an IANA time zone.",
    ErrorCode.INVALID_REGION: "Not an ISO 3166-2 region code we know.",
    ErrorCode.INVALID_DATE: "A date malformed, out of range or out of order.",
    ErrorCode.OVERLAPPING_MEMBERSHIP: "The membership overlaps another of the same person.",
    ErrorCode.HAS_ACTIVE_CHILDREN: "Archive what is below it first.",
    ErrorCode.NOT_GRANTABLE: "This role cannot be granted on this node.",
    ErrorCode.NEGATIVE_QUANTITY: "A quantity below zero.",
    ErrorCode.INVALID_QUANTITY: "Not a decimal quantity.",
    ErrorCode.UNKNOWN_UNIT: "A unit that does not convert to the activity's unit.",
    ErrorCode.UNKNOWN_ACTIVITY_TYPE: "Not one of `activityTypes`.",
    ErrorCode.INVALID_PERIOD: "The period ends before it starts, or spans more than a year.",
    ErrorCode.FUTURE_PERIOD: "The period ends after today (the account's local day).",
    ErrorCode.OVERLAPPING_PERIOD: "Overlaps a recorded period of the same meter.",
    ErrorCode.ARCHIVED_ACCOUNT: "The account is archived.",
    ErrorCode.EXTERNAL_ID_CONFLICT: "The `externalId` was recorded before with other values.",
    ErrorCode.NO_EMISSION_FACTOR: "No emission factor covers the region and day.",
    ErrorCode.DAILY_CAP_REACHED: "Over the action type's units per person per day.",
    ErrorCode.EVIDENCE_REQUIRED: "The action type needs a photo.",
    ErrorCode.ACTION_NOT_ALLOWED: "Not a known action type, or not valid on that day.",
    ErrorCode.INVALID_EVIDENCE: "Not an uploaded photo of this person, or not a JPEG, PNG or "
    "WebP image.",
    ErrorCode.DUPLICATE_EVIDENCE: "The photo has been used before.",
    ErrorCode.INSUFFICIENT_CREDITS: "The balance does not cover the reward.",
    ErrorCode.OUT_OF_STOCK: "The reward has none left.",
    ErrorCode.ALREADY_DECIDED: "Another decision on the action came first.",
    ErrorCode.EVIDENCE_NOT_STORED: "The photo was fine but could not be kept; retry later.",
}


E = TypeVar("E", bound=Enum)


def described_enum(
    cls: type[E], description: str, values: Mapping[E, str], *, name: str | None = None
) -> type[E]:
    """Expose an enum with a description on every value (raises on one without). Its Python
    values stay what the domain stores ("3+", "location"); GraphQL shows the members' names."""
    missing = [member.name for member in cls if member not in values]
    if missing:
        raise TypeError(f"{name or cls.__name__}: no description for {', '.join(missing)}")
    exposed = strawberry.enum(cls, name=name, description=description)
    for value in getattr(exposed, "__strawberry_definition__").values:  # noqa: B009
        value.description = values[cls[value.name]]
    return exposed


described_enum(
    ErrorCode,
    "Why something failed: the `code` of a `UserError` on a mutation's payload, and the "
    "`extensions.code` of a GraphQL error. One list for both; a client can rely on it.",
    ERROR_CODES,
)


def _decimal_text(value: Any) -> str:
    # Positional notation, never an exponent: 1E-7 is "0.0000001", 3E+2 is "300". The digits
    # after the point are the resolver's: a share to 4 places stays "0.2500".
    return f"{Decimal(value):f}"


def _parse_decimal(value: Any) -> Decimal:
    # A GraphQL error (as Strawberry's own scalars raise), not a plain exception: graphql-core
    # reports it as the client's mistake (BAD_USER_INPUT for a variable, a validation error for
    # a literal), where a ValueError would be masked as an internal error in production.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise StrawberryInputCoercionError(
            f'Value cannot represent a Decimal: {value!r}. Expected a string such as "12.5".'
        )
    try:
        parsed = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        parsed = None
    if parsed is None or not parsed.is_finite():
        raise StrawberryInputCoercionError(
            f"Value cannot represent a Decimal: {value!r}. Expected a finite decimal number."
        )
    return parsed


DECIMAL_SCALAR = strawberry.scalar(
    name="Decimal",
    serialize=_decimal_text,
    parse_value=_parse_decimal,
    description="An exact decimal number as a JSON string in positional notation, e.g. "
    '"0.5703" or "300": never a binary float, so no digit is lost on the way. Inputs also '
    "take a JSON integer.",
)


@strawberry.federation.type(
    shareable=True, description="Why a mutation did not apply. Nothing was written."
)
class UserError:
    field: list[str] | None = strawberry.field(
        description="Path to the input field at fault, e.g. ['input', 'timezone']."
    )
    message: str
    code: ErrorCode

    @classmethod
    def from_data(cls, data: UserErrorData) -> UserError:
        return cls(field=data.field, message=data.message, code=data.code)


@strawberry.enum(description="Why an accepted input deserves a second look.")
class WarningCode(Enum):
    NOT_ATTRIBUTED = strawberry.enum_value(
        "NOT_ATTRIBUTED",
        description="Dated where the person has no household membership: counted for the "
        "person, not for any household or community (see `CreateIndividualInput.memberFrom`).",
    )


@strawberry.type(description="Something accepted and written that deserves a second look.")
class UserWarning:
    field: list[str] = strawberry.field(
        description="Path to the input field, e.g. ['input', 'actions', '3', 'occurredOn']."
    )
    message: str
    code: WarningCode


def warnings_of(prefix: list[str], items: Any) -> list[UserWarning]:
    """Schema warnings from a service's (index, field, code, message) warnings."""
    return [
        UserWarning(
            field=[*prefix, str(w.index), w.field], message=w.message, code=WarningCode(w.code)
        )
        for w in items
    ]


# Demand control (IBM cost spec): every list field declares its size, so that the server's cost
# rule (carbongraph.cost) and the gateway price it; tests/test_cost.py fails on an undeclared one.
def list_size(
    assumed: int, *, slicing: tuple[str, ...] = (), sized: tuple[str, ...] = ()
) -> ListSize:
    """``@listSize``: ``assumed`` items unless a slicing argument (``first``/``last``) says how
    many; with ``sized``, the size applies to those fields of the result (a connection's
    ``edges``)."""
    # UNSET leaves an argument out of the SDL: the gateway reads a present
    # `slicingArguments` as "sized by its arguments", even when null.
    return ListSize(
        assumed_size=assumed,
        slicing_arguments=list(slicing) or strawberry.UNSET,
        sized_fields=list(sized) or strawberry.UNSET,
        require_one_slicing_argument=False if slicing else strawberry.UNSET,
    )


def sized_field(
    assumed: int,
    description: str | None = None,
    *,
    slicing: tuple[str, ...] = (),
    sized: tuple[str, ...] = (),
    weight: int | None = None,
    **kwargs: Any,
) -> Any:
    """A list field with its ``@listSize`` (and ``@cost`` when it reads more than a row)."""
    directives: list[Any] = [list_size(assumed, slicing=slicing, sized=sized)]
    if weight is not None:
        directives.insert(0, Cost(weight=weight))
    return strawberry.federation.field(description=description, directives=directives, **kwargs)


# The GHG Protocol's 15 Scope 3 categories.
SCOPE3_CATEGORIES = 15
# A mutation's user errors: one per input field at fault, rarely more than a handful.
USER_ERRORS = 10


def user_errors_field() -> Any:
    return sized_field(USER_ERRORS)


# The largest page (CARBONGRAPH_MAX_PAGE_SIZE's default): a list's worst case without `first`.
MAX_PAGE = 100
# Demand control (IBM cost spec): a connection's page size (`first`/`last`, else a full page)
# multiplies its edges.
CONNECTION_SIZE = list_size(MAX_PAGE, slicing=("first", "last"), sized=("edges",))
