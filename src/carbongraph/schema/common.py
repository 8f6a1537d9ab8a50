"""Shared object types: user errors on mutation payloads, and the authz checks fields make."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from carbongraph.authz import Access, Target
from carbongraph.errors import Forbidden, NotFound, UserErrorCode, UserErrorData

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


def require(info: Any, target: Target, level: Access) -> None:
    """Raise FORBIDDEN (or NOT_FOUND, outside the viewer's tenants) unless the viewer has
    ``level`` on ``target``."""
    viewer = info.context.viewer
    if viewer.access(target) >= level:
        return
    if viewer.may_know_exists(target):
        raise Forbidden()
    raise NotFound()
