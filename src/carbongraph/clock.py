"""The time now, and what day it is where an account lives.

Days are local days: a reading, an action or a credit belongs to the calendar day of the
community it belongs to (``Community.timezone``), not to the UTC date. The server asks one
``Clock`` (``Settings.clock``) for the time, so that tests set it instead of patching
``datetime``; a request sees one instant (``Context.days``) and derives every local "today"
from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

# The day furthest ahead anywhere (Line Islands, UTC+14): no local day has begun later.
_LATEST = ZoneInfo("Etc/GMT-14")


class Clock:
    """The system clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock(Clock):
    """A clock that stands still until it is set (tests, reproducible jobs)."""

    def __init__(self, at: datetime) -> None:
        self.set(at)

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("a FixedClock needs an aware datetime")
        self.at = at.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self.at += delta

    def now(self) -> datetime:
        return self.at


@lru_cache(maxsize=512)
def zone(name: str | None) -> ZoneInfo:
    """The IANA zone ``name``; None (an account in no community) is UTC."""
    return ZoneInfo(name or "UTC")


def local_midnight(day: date, timezone: str | None) -> datetime:
    """The instant (UTC) ``day`` begins in ``timezone``."""
    return datetime.combine(day, time(0), tzinfo=zone(timezone)).astimezone(UTC)


@dataclass(frozen=True)
class LocalDays:
    """What day it is in every time zone at one instant."""

    instant: datetime

    def on(self, timezone: str | None) -> date:
        """Today in ``timezone`` (None: UTC)."""
        return self.instant.astimezone(zone(timezone)).date()

    @property
    def utc(self) -> date:
        return self.instant.astimezone(UTC).date()

    @property
    def latest(self) -> date:
        """The latest day that has begun anywhere: a later day is in the future everywhere."""
        return self.instant.astimezone(_LATEST).date()


@dataclass(frozen=True)
class FixedDay:
    """One given day, the same in every time zone (a trusted caller's ``--date``, the seed)."""

    day: date

    def on(self, timezone: str | None) -> date:
        return self.day

    @property
    def utc(self) -> date:
        return self.day

    @property
    def latest(self) -> date:
        return self.day


Days = LocalDays | FixedDay


def as_days(today: date | Days) -> Days:
    """``today`` as local days: a plain date is that day everywhere."""
    if isinstance(today, LocalDays | FixedDay):
        return today
    return FixedDay(today)
