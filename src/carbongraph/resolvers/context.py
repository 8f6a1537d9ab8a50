"""The per-request context every resolver receives as ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from carbongraph.authz import (
    ANONYMOUS,
    GRANTS_STATEMENT,
    SCOPED_GRANTS_STATEMENT,
    Principal,
    Viewer,
    resolve_grants,
)
from carbongraph.config import Settings
from carbongraph.db import RequestDB, StatementLog
from carbongraph.resolvers.dataloaders import Loaders

if TYPE_CHECKING:
    from strawberry.types import Info as _Info


@dataclass
class Context:
    settings: Settings
    db: RequestDB
    viewer: Viewer
    loaders: Loaders
    today: date
    request: Any = None
    response: Any = None
    statements: StatementLog | None = None


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


async def build_context(
    settings: Settings,
    db: RequestDB,
    principal: Principal | None,
    *,
    request: Any = None,
    today: date | None = None,
) -> Context:
    today = today or datetime.now(UTC).date()
    statements = None
    if settings.report_sql_statements:
        # Entered for the rest of this request's task; the task ends with the request.
        statements = StatementLog().__enter__()
    viewer = await load_viewer(db, principal, today)
    return Context(
        settings=settings,
        db=db,
        viewer=viewer,
        loaders=Loaders(db, viewer, today),
        today=today,
        request=request,
        statements=statements,
    )


if TYPE_CHECKING:
    Info = _Info[Context, None]
else:
    from strawberry.types import Info as _RuntimeInfo

    Info = _RuntimeInfo
