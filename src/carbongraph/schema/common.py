"""Shared object types: user errors on mutation payloads, and the authz checks fields make."""

from __future__ import annotations

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


def require(info: Any, target: Target, level: Access) -> None:
    """Raise FORBIDDEN (or NOT_FOUND, outside the viewer's tenants) unless the viewer has
    ``level`` on ``target``."""
    viewer = info.context.viewer
    if viewer.access(target) >= level:
        return
    if viewer.may_know_exists(target):
        raise Forbidden()
    raise NotFound()
