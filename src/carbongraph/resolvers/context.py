"""The per-request context every resolver receives as ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
import strawberry

from carbongraph.authz import (
    ANONYMOUS,
    GRANTS_STATEMENT,
    SCOPED_GRANTS_STATEMENT,
    Principal,
    Viewer,
    resolve_grants,
)
from carbongraph.authz.api_keys import KEY_STATEMENT, ApiKeyPrincipal, KeyUse, verify_key_rows
from carbongraph.caller import Caller
from carbongraph.clock import LocalDays
from carbongraph.config import Settings
from carbongraph.db import RequestDB, StatementLog
from carbongraph.observability import request_state
from carbongraph.observability.request_context import sane_request_id
from carbongraph.schema.accounting.loaders import AccountingLoaders
from carbongraph.schema.actions.loaders import ActionLoaders
from carbongraph.schema.hierarchy.loaders import HierarchyLoaders


class Loaders(HierarchyLoaders, AccountingLoaders, ActionLoaders):
    """Created once per request: every domain's DataLoaders (schema/<domain>/loaders.py)."""


@dataclass
class Context:
    settings: Settings
    db: RequestDB
    viewer: Viewer
    loaders: Loaders
    # The UTC date of the request's instant: current memberships and grants (docs/methodology.md
    # "Local days"). What day it is for an account is ``days.on(its community's timezone)``.
    today: date
    request: Any = None
    response: Any = None
    statements: StatementLog | None = None
    # API keys and the audit log
    api_key: KeyUse | None = None
    request_id: str | None = None
    audit_notes: dict[str, Any] = field(default_factory=dict)
    # The request's instant, as the local day in every time zone.
    days: LocalDays = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.days is None:
            self.days = LocalDays(self.settings.clock.now())

    @property
    def caller(self) -> Caller:
        """What the domain services are given (never this context). Built afresh: it carries
        the current mutation's ``audit_notes`` (``audit.AuditedMutation`` starts a new dict)."""
        return Caller(self.db, self.viewer, self.today, self.days, self.loaders, self.audit_notes)


def caller_for(db: RequestDB, viewer: Viewer, now: datetime) -> Caller:
    """A ``Caller`` outside a GraphQL request (the command line): the viewer's day at ``now``,
    with row caches of its own."""
    days = LocalDays(now)
    return Caller(db, viewer, days.utc, days, Loaders(db, viewer, days.utc))


async def load_viewer(db: RequestDB, principal: Principal | None, today: date) -> Viewer:
    """The viewer's grants, in one statement. On PostgreSQL the same statement sets the
    transaction's row-level security scope; RequestDB keeps one transaction per request, so the
    scope holds for every later statement of the request. Anonymous requests set none: nothing
    personal is visible to them."""
    if principal is None:
        return ANONYMOUS
    statement = SCOPED_GRANTS_STATEMENT if db.dialect == "postgresql" else GRANTS_STATEMENT
    rows = await db.execute(statement, {"subject": principal.subject, "today": today})
    return Viewer(principal, resolve_grants(rows))


async def load_key_viewer(
    settings: Settings, db: RequestDB, principal: ApiKeyPrincipal
) -> tuple[Viewer, KeyUse]:
    """A key's viewer holds exactly the key's scopes, never its creator's grants; InvalidToken
    (HTTP 401) for an unknown, revoked or expired key."""
    rows = list(await db.execute(KEY_STATEMENT, {"prefix": principal.prefix}))
    grants, use = verify_key_rows(
        principal, rows, datetime.now(UTC), timedelta(seconds=settings.api_key_last_used_seconds)
    )
    viewer = Viewer(principal, grants)
    if db.dialect == "postgresql":
        # The row-level security scope of the key's tenants (keys hold no platform or resident
        # grants), set only once the secret has been verified: one statement more than a token.
        tenants = ",".join(sorted(f"{t}/%" for t in viewer.tenants))
        await db.execute(KEY_SCOPE_STATEMENT, {"paths": "{" + tenants + "}"})
    return viewer, use


KEY_SCOPE_STATEMENT = sa.text(
    "SELECT set_config('carbongraph.unrestricted', '', true), "
    "set_config('carbongraph.paths', :paths, true), "
    "set_config('carbongraph.individuals', '{}', true)"
)


async def build_context(
    settings: Settings,
    db: RequestDB,
    principal: Principal | None,
    *,
    request: Any = None,
    now: datetime | None = None,
) -> Context:
    days = LocalDays(now or settings.clock.now())
    today = days.utc
    statements = None
    if settings.report_sql_statements:
        # Entered for the rest of this request's task; the task ends with the request.
        statements = StatementLog().__enter__()
    api_key = None
    if isinstance(principal, ApiKeyPrincipal):
        viewer, api_key = await load_key_viewer(settings, db, principal)
    else:
        viewer = await load_viewer(db, principal, today)
    return Context(
        settings=settings,
        db=db,
        viewer=viewer,
        loaders=Loaders(db, viewer, today),
        today=today,
        request=request,
        statements=statements,
        api_key=api_key,
        request_id=request_id_of(request),
        days=days,
    )


def request_id_of(request: Any) -> str:
    """The request's id (observability/request_context.py: the caller's sane X-Request-Id, a
    gateway's trace id, else a new one), which its logs carry too."""
    state = request_state.current()
    if state is not None:
        return state.request_id
    headers = getattr(request, "headers", None)
    return sane_request_id(headers.get("x-request-id") if headers is not None else None)


class HasContext(Protocol):
    """What a helper that reads only ``info.context`` accepts: a resolver's Info, or a stand-in
    holding a request's Context (a subscription's checks, schema/live.py)."""

    @property
    def context(self) -> Context: ...


# What every resolver takes as ``info``: typed, so ``info.context`` is checked as a Context.
Info = strawberry.Info[Context, None]
