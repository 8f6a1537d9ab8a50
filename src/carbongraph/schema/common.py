"""Shared object types: user errors on mutation payloads, and the authz checks fields make."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from strawberry.federation.schema_directives import Cost, ListSize

from carbongraph.errors import UserErrorCode, UserErrorData

UserErrorCodeEnum = strawberry.enum(UserErrorCode, name="UserErrorCode")


@strawberry.federation.type(
    shareable=True, description="Why a mutation did not apply. Nothing was written."
)
class UserError:
    field: list[str] | None = strawberry.field(
        description="Path to the input field at fault, e.g. ['input', 'timezone']."
    )
    message: str
    code: UserErrorCodeEnum  # type: ignore[valid-type]

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
