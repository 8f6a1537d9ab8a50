"""Who is acting, on which database, on what day: the one value a domain service is given.

The GraphQL layer builds it from its request context (``info.context.caller``), the command
line from the platform operator (``operator``); services never see the GraphQL context, so both
call the same services with the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from carbongraph.authz import PLATFORM, Principal, ResolvedGrant, Role, Viewer
from carbongraph.clock import LocalDays
from carbongraph.db import RequestDB
from carbongraph.resolvers.dataloaders import Loaders


@dataclass(frozen=True)
class Caller:
    db: RequestDB
    viewer: Viewer
    # The UTC date of the caller's instant: current memberships and grants
    # (docs/methodology.md "Local days"); an account's own day is ``days.on(its timezone)``.
    today: date
    days: LocalDays
    # Per-request row caches: a service reads rows through them and forgets what it wrote.
    loaders: Loaders
    # Facts for the audit event that the input does not carry (``audit.note``).
    audit_notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, db: RequestDB, viewer: Viewer, now: datetime, today: date | None = None) -> Caller:
        days = LocalDays(now)
        today = today or days.utc
        return cls(db, viewer, today, days, Loaders(db, viewer, today))


def operator(subject: str) -> Viewer:
    """The platform operator: the command line acts as one (it holds the database credentials
    anyway)."""
    return Viewer(Principal(subject), [ResolvedGrant(Role.PLATFORM_ADMIN, PLATFORM, 0, None)])
