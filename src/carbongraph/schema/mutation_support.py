"""Running a mutation: one savepoint, ``userErrors`` instead of exceptions for bad input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError

from carbongraph.errors import CodedError, MutationFailed, UserErrorCode, UserErrorData
from carbongraph.resolvers.context import Info
from carbongraph.schema.common import UserError
from carbongraph.schema.relay import decode_global_id

T = TypeVar("T")


async def run_mutation(
    info: Info, action: Callable[[], Awaitable[T]]
) -> tuple[T | None, list[UserError]]:
    db = info.context.db
    try:
        async with db.savepoint():
            return await action(), []
    except MutationFailed as failed:
        return None, [UserError.from_data(e) for e in failed.errors]
    except IntegrityError:
        # A uniqueness our own checks had passed: a concurrent writer won the race, or (row-level
        # security on PostgreSQL) the value is taken in a tenant the viewer cannot see.
        data = UserErrorData(
            ["input"], "Conflicts with an existing or concurrent change.", UserErrorCode.DUPLICATE
        )
        return None, [UserError.from_data(data)]


def input_id(value: Any, type_name: str, field: str) -> int:
    """The primary key behind a global ID in mutation input, or a NOT_FOUND user error."""
    try:
        return decode_global_id(value, [type_name])[1]
    except CodedError as exc:
        raise MutationFailed.single(
            ["input", field], UserErrorCode.NOT_FOUND, f"{field} is not the ID of a {type_name}."
        ) from exc


def optional_input_id(value: Any, type_name: str, field: str) -> int | None:
    return None if value is None else input_id(value, type_name, field)
