"""Who is acting, on which database, on what day: the one value a domain service is given.

The GraphQL layer builds it from its request context (``info.context.caller``), the command
line for the platform operator (``operator``); services never see the GraphQL context, so both
call the same services with the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from carbongraph.authz import PLATFORM, Principal, ResolvedGrant, Role, Viewer
from carbongraph.clock import LocalDays
from carbongraph.db import RequestDB


class RowLoaders(Protocol):
    """The request's node-row caches that services read through and forget after a write
    (``resolvers.dataloaders.NodeRows``; described here so that the domain does not import it)."""

    individual: Any
    current_household: Any
    membership_history: Any

    def by_type(self, type_name: str) -> Any: ...

    def forget(self, loader: Any, key: Any) -> None: ...


@dataclass(frozen=True)
class Caller:
    db: RequestDB
    viewer: Viewer
    # The UTC date of the caller's instant: current memberships and grants
    # (docs/methodology.md "Local days"); an account's own day is ``days.on(its timezone)``.
    today: date
    days: LocalDays
    loaders: RowLoaders
    # Facts for the audit event that the input does not carry (``audit.note``).
    audit_notes: dict[str, Any] = field(default_factory=dict)


def operator(subject: str) -> Viewer:
    """The platform operator: the command line acts as one (it holds the database credentials
    anyway)."""
    return Viewer(Principal(subject), [ResolvedGrant(Role.PLATFORM_ADMIN, PLATFORM, 0, None)])
