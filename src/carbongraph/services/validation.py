"""Field checks shared by the mutations; each collects ``UserErrorData`` instead of raising."""

from __future__ import annotations

import re
import uuid
from datetime import date
from zoneinfo import available_timezones

from carbongraph.errors import UserErrorCode, UserErrorData

_REGION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TIMEZONES = frozenset(available_timezones())


class Checker:
    def __init__(self, prefix: str = "input") -> None:
        self.prefix = prefix
        self.errors: list[UserErrorData] = []

    def fail(self, field: str, code: UserErrorCode, message: str) -> None:
        self.errors.append(UserErrorData([self.prefix, field], message, code))

    def text(
        self, field: str, value: str | None, *, max_length: int = 200, required: bool = True
    ) -> str | None:
        if value is None:
            if required:
                self.fail(field, UserErrorCode.REQUIRED, f"{field} is required.")
            return None
        value = value.strip()
        if not value:
            self.fail(field, UserErrorCode.REQUIRED, f"{field} must not be blank.")
        elif len(value) > max_length:
            self.fail(field, UserErrorCode.TOO_LONG, f"{field} is longer than {max_length}.")
        return value

    def region(self, field: str, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().upper()
        if not _REGION.match(value):
            self.fail(
                field,
                UserErrorCode.INVALID_REGION,
                "regionCode must be an ISO 3166-2 code such as CN-GD.",
            )
        return value

    def timezone(self, field: str, value: str | None) -> str | None:
        if value is None:
            return None
        if value not in _TIMEZONES:
            self.fail(
                field,
                UserErrorCode.INVALID_TIMEZONE,
                f"{value!r} is not an IANA time zone such as Asia/Shanghai.",
            )
        return value

    def email(self, field: str, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if len(value) > 320 or not _EMAIL.match(value):
            self.fail(field, UserErrorCode.INVALID, "email is not a valid address.")
        return value

    def not_future(
        self, field: str, value: date | None, today: date, *, slack_days: int = 366
    ) -> None:
        if value is not None and (value - today).days > slack_days:
            self.fail(field, UserErrorCode.INVALID_DATE, f"{field} is too far in the future.")

    @property
    def ok(self) -> bool:
        return not self.errors


def placeholder_path() -> str:
    """A unique stand-in until the row's id (and so its real path) is known."""
    return f"pending/{uuid.uuid4().hex}/"
