"""The query planner's own connections: an asyncpg pool beside the engine's, so that a planned
read costs one round trip.

A request through SQLAlchemy pays a pre-ping, BEGIN, the grants statement (which sets the
transaction's row-level security scope), the statement and COMMIT: five round trips and the
ORM's per-statement work for a read that PostgreSQL answers in one. Here a connection holds one
viewer's scope for its session (``set_config(…, false)``) and remembers whose it is; a planned
statement re-checks, in the same statement, that the viewer's grants still have the fingerprint
the scope was derived from (planner/execute.py), so a changed grant is never answered under an
old scope. Only the planner uses these connections: a session scope left on them cannot leak
into any other statement. asyncpg's pool is used as it is, except that releasing a connection
does not reset its session (which would cost a round trip and drop the scope).
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.authz import Principal, Viewer
from carbongraph.authz.policy import resolve_grants, scoped_grants_sql
from carbongraph.config import Settings
from carbongraph.db import asyncpg_dsn, note_statement, server_settings
from carbongraph.observability import metrics, tracing


@dataclass(frozen=True)
class Scope:
    """The viewer whose row-level security scope a planner connection holds for its session."""

    subject: str
    today: date
    fingerprint: str  # of the grant rows the scope was derived from
    settings: tuple[str, str, str]  # the three settings' values, as the statement set them
    viewer: Viewer


class PlannerConnection(asyncpg.Connection):
    """A connection that remembers the scope its session holds (None: not set yet)."""

    planner_scope: Scope | None = None
    database: str | None = None  # for its statements' spans

    def remember_scope(self, scope: Scope | None) -> None:
        self.planner_scope = scope

    def remembered_scope(self) -> Scope | None:
        return self.planner_scope


async def _keep_session(connection: Any) -> None:
    """Releasing a planner connection keeps its session: it holds only a scope, re-checked by
    every statement (no transactions, cursors, locks or listeners are left on it)."""


_pools: weakref.WeakKeyDictionary[AsyncEngine, dict[int, asyncpg.Pool]] = (
    weakref.WeakKeyDictionary()
)
_lock = asyncio.Lock()
# Every planner connection of an engine, to forget their scopes (``forget_scopes``).
_connections: weakref.WeakKeyDictionary[AsyncEngine, weakref.WeakSet[PlannerConnection]] = (
    weakref.WeakKeyDictionary()
)


def planner_pool_size(settings: Settings) -> int:
    """Half the engine's pool size: a planned read holds its connection for one statement of a
    few milliseconds, and every connection counts against PostgreSQL's ``max_connections``."""
    return max(1, settings.db_pool_size // 2)


def _terminate_on_dispose(engine: AsyncEngine) -> None:
    def terminate(_engine: Any) -> None:
        for pool in (_pools.pop(engine, None) or {}).values():
            pool.terminate()
            metrics.pool_closed(pool.get_max_size())

    event.listen(engine.sync_engine, "engine_disposed", terminate)


async def pool_for(engine: AsyncEngine, settings: Settings) -> asyncpg.Pool:
    """The planner's pool for ``engine`` in the running event loop (asyncpg connections belong
    to one loop), created on first use, terminated when the engine is disposed."""
    loop = id(asyncio.get_running_loop())
    pools = _pools.get(engine)
    if pools is not None and loop in pools:
        return pools[loop]
    async with _lock:
        if engine not in _pools:
            _pools[engine] = {}
            _terminate_on_dispose(engine)
        pools = _pools[engine]
        connections = _connections.setdefault(engine, weakref.WeakSet())

        async def register(connection: PlannerConnection) -> None:
            connection.database = engine.url.database
            connections.add(connection)

        if loop not in pools:
            pools[loop] = await asyncpg.create_pool(
                asyncpg_dsn(engine.url),
                min_size=0,
                max_size=planner_pool_size(settings),
                server_settings=server_settings(settings),
                connection_class=PlannerConnection,
                reset=_keep_session,
                init=register,
            )
            metrics.pool_opened(planner_pool_size(settings))
        return pools[loop]


def forget_scopes(engine: AsyncEngine) -> None:
    """The next planned read on each of ``engine``'s planner connections sets its scope again
    (tests pin the statements of a first read this way)."""
    for connection in list(_connections.get(engine, ())):
        connection.remember_scope(None)


# The viewer's grants and, for the connection's session, the scope they imply; $1 subject,
# $2 today. Each row ends with the grants' fingerprint (authz.policy).
SCOPE_SQL = scoped_grants_sql("$1::text", "$2::date", local=False)


async def fetch(connection: Any, sql: str, params: tuple[Any, ...] | list[Any]) -> Any:
    """One statement on a planner connection, counted like every other (db.StatementLog)."""
    note_statement(sql)
    with tracing.statement(sql, connection.database):
        return await connection.fetchrow(sql, *params)


async def set_scope(connection: Any, principal: Principal, today: date) -> Scope:
    """Scope ``connection``'s session to ``principal`` (one statement) and remember it."""
    connection.remember_scope(None)  # until the statement has succeeded
    note_statement(SCOPE_SQL)
    with tracing.statement(SCOPE_SQL, connection.database):
        rows = await connection.fetch(SCOPE_SQL, principal.subject, today)
    first = rows[0]
    scope = Scope(
        principal.subject,
        today,
        first["fingerprint"],
        (first["unrestricted"], first["paths"], first["individuals"]),
        Viewer(principal, resolve_grants(rows)),
    )
    connection.remember_scope(scope)
    return scope
