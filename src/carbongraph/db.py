"""Engines, per-request connections and statement counting.

A request uses one connection for all its statements (lazily opened, one transaction), so that
the row-level security scope set by the request's first statement (``set_config``, local to the
transaction) holds for all of them, and so that a request reads one consistent snapshot.
DataLoaders of one request run concurrently under asyncio, but a connection runs one statement
at a time, hence the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable

from carbongraph.config import Settings
from carbongraph.live.hub import hub_for

_STATEMENT_LISTENERS: contextvars.ContextVar[list[Callable[[str], None]] | None] = (
    contextvars.ContextVar("carbongraph_statement_listeners", default=None)
)
_CONTROL_PREFIXES = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA", "SET ")

# Rows of any width: SQLAlchemy 2.1 types a Result by its columns (a TypeVarTuple).
AnyResult = Result[*tuple[Any, ...]]


def _on_cursor_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    note_statement(statement)


def note_statement(statement: str) -> None:
    """Tell the StatementLogs of the current context about ``statement`` (SQLAlchemy's run
    through the engine's event; the query planner's own connections call it themselves)."""
    listeners = _STATEMENT_LISTENERS.get()
    if not listeners:
        return
    if statement.lstrip().upper().startswith(_CONTROL_PREFIXES) or statement == SYSTEM_SCOPE_SQL:
        return
    for listener in listeners:
        listener(statement)


@contextlib.contextmanager
def unobserved() -> Iterator[None]:
    """Statements run inside (and in tasks started inside) reach no ``StatementLog``: the
    planner's shadow run of the reference executor (carbongraph.planner.shadow) is not part of
    the request's statements."""
    token = _STATEMENT_LISTENERS.set(None)
    try:
        yield
    finally:
        _STATEMENT_LISTENERS.reset(token)


class StatementLog:
    """Collects the data statements (not BEGIN/COMMIT/SAVEPOINT) run in the current context."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)

    def __enter__(self) -> StatementLog:
        listeners = list(_STATEMENT_LISTENERS.get() or [])
        listeners.append(self.statements.append)
        self._token = _STATEMENT_LISTENERS.set(listeners)
        return self

    def __exit__(self, *exc: object) -> None:
        _STATEMENT_LISTENERS.reset(self._token)


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; take it over (SQLAlchemy's recipe).
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Any) -> None:
        # Writers take the lock up front: a deferred transaction that upgrades from read to
        # write fails at once with SQLITE_BUSY instead of waiting its turn. The flag is taken
        # off, since the info dict outlives the checkout with its pooled DBAPI connection.
        write = conn.info.pop("sqlite_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# Row-level security (migration 0009): the scope of trusted system jobs, which see every row.
SYSTEM_SCOPE_SQL = "SELECT set_config('carbongraph.unrestricted', 'on', true)"


def _configure_system_scope(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Any) -> None:
        # Transaction-local, so it is set again at the start of every transaction.
        conn.exec_driver_sql(SYSTEM_SCOPE_SQL)


def server_settings(settings: Settings) -> dict[str, str]:
    """The session settings of every PostgreSQL connection (the engine's and the planner's)."""
    return {
        # The request timeout, enforced by PostgreSQL too, at no cost per request.
        "statement_timeout": str(settings.request_timeout_seconds * 1000),
        # Row-level security's sub-selects inflate cost estimates past the JIT threshold:
        # compiling then takes ~0.6 s for a statement that runs in milliseconds. Short OLTP
        # statements never gain from JIT.
        "jit": "off",
        # Timestamps are compared with instants computed in Python (local midnights in UTC,
        # carbongraph.clock), never with the server's zone.
        "TimeZone": "UTC",
    }


def asyncpg_dsn(url: str | sa.URL) -> str:
    """A SQLAlchemy URL (``postgresql+asyncpg://…``) as the DSN asyncpg itself takes."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(
    settings: Settings, *, system: bool = False, url: str | None = None
) -> AsyncEngine:
    """The engine of ``settings.database_url`` (or ``url``). ``system``: for trusted jobs (the
    CLI's seed, import, expiry, grants; migrations): every transaction sees every row despite
    row-level security. The server's engine is never a system engine: each request sets the
    viewer's own scope (resolvers/context.py)."""
    url = url or settings.database_url
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
    else:
        engine = create_async_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
            pool_pre_ping=True,
            connect_args={"server_settings": server_settings(settings)},
        )
    if system and engine.dialect.name == "postgresql":
        _configure_system_scope(engine)
    event.listen(engine.sync_engine, "before_cursor_execute", _on_cursor_execute)
    return engine


def mark_writer(conn: AsyncConnection) -> None:
    """The next transaction begun on ``conn`` writes: on SQLite it takes the database's write
    lock at BEGIN (``BEGIN IMMEDIATE``) and waits its turn behind other writers, instead of
    failing with "database is locked" when it first writes. PostgreSQL needs nothing."""
    if conn.dialect.name == "sqlite":
        conn.sync_connection.info["sqlite_write"] = True  # type: ignore[union-attr]


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """``engine.begin()`` for a job that writes (the CLI's imports, expiry, grants)."""
    async with engine.connect() as conn:
        mark_writer(conn)
        async with conn.begin():
            yield conn


class RequestFinished(RuntimeError):
    """A statement was attempted after its request's transaction ended."""


class RequestDB:
    """One request's database access: a lazily opened connection inside one transaction."""

    def __init__(self, engine: AsyncEngine, *, write: bool = False, snapshot: bool = False) -> None:
        self.engine = engine
        self.write = write
        # PostgreSQL: REPEATABLE READ, READ ONLY: every statement of the request reads the
        # snapshot of its first, whatever commits meanwhile (the planner's shadow mode compares
        # two executions of one read, which must see the same rows).
        self.snapshot = snapshot and not write and self.dialect == "postgresql"
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        # Live updates waiting for the commit (SQLite only: see live/publish.py).
        self.live_pending: list[tuple[list[str], Any]] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def _connection(self) -> AsyncConnection:
        if self._closed:
            # A resolver left running after its request ended (GraphQL stops waiting for
            # siblings once an error nulls their parent): it must not open a new transaction.
            raise RequestFinished("the request this statement belonged to has finished")
        if self._conn is None:
            conn = await self.engine.connect()
            if self.write:
                mark_writer(conn)
            if self.snapshot:
                # Reset when the connection goes back to the pool (SQLAlchemy does it).
                await conn.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            await conn.begin()
            self._conn = conn
        return self._conn

    async def execute(self, statement: Executable, params: Any = None) -> AnyResult:
        async def run() -> AnyResult:
            conn = await self._connection()
            # AsyncConnection buffers the rows, so the lock may go before the caller iterates.
            return await conn.execute(statement, params)

        return await self._locked(run)

    async def execute_driver_sql(self, sql: str, params: tuple[Any, ...]) -> Result[Any]:
        """A statement written in the driver's own dialect (``$1`` parameters): the query
        planner's, which SQLAlchemy need not compile. Counted like any other."""

        async def run() -> Result[Any]:
            conn = await self._connection()
            return await conn.exec_driver_sql(sql, params)

        return await self._locked(run)

    async def _locked(self, run: Callable[[], Any]) -> Result[Any]:
        async with self._lock:
            task = asyncio.ensure_future(run())
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                # GraphQL cancels the sibling resolvers of a field whose error nulls their
                # parent. Cancelling a statement mid-flight would invalidate the connection and
                # lose the request's transaction (a mutation already answered as done), so the
                # statement finishes, holding the lock, before the cancellation goes on.
                await asyncio.wait([task])
                raise

    async def scalar(self, statement: Executable, params: Any = None) -> Any:
        return (await self.execute(statement, params)).scalar()

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """All statements inside either land together or not at all (a mutation's unit)."""
        conn = await self._connection()
        async with self._lock:
            nested = await conn.begin_nested()
        announced = len(self.live_pending)
        try:
            yield
        except BaseException:
            async with self._lock:
                await nested.rollback()
            del self.live_pending[announced:]
            raise
        else:
            async with self._lock:
                await nested.commit()

    async def close(self, *, commit: bool) -> None:
        # Under the lock: a statement still running for a left-over resolver finishes first,
        # instead of having its connection closed underneath it.
        async with self._lock:
            self._closed = True
            if self._conn is None:
                return
            conn, self._conn = self._conn, None
            try:
                transaction = conn.get_transaction()
                intact = transaction is not None and transaction.is_valid and not conn.invalidated
                # A read whose abandoned loads were cancelled mid-statement has nothing to keep;
                # a write whose transaction broke must fail loudly, never be reported as done.
                if commit and (intact or self.write):
                    await conn.commit()
                else:
                    await conn.rollback()
            finally:
                await conn.close()
        pending, self.live_pending = self.live_pending, []
        if commit and pending:
            hub = hub_for(self.engine.url.render_as_string(hide_password=False))
            for channels, changed_at in pending:
                hub.dispatch(channels, changed_at)


@asynccontextmanager
async def request_db(
    engine: AsyncEngine, *, write: bool = False, snapshot: bool = False
) -> AsyncIterator[RequestDB]:
    db = RequestDB(engine, write=write, snapshot=snapshot)
    try:
        yield db
    except BaseException:
        await db.close(commit=False)
        raise
    else:
        await db.close(commit=True)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))


# SQLSTATE class 08 (connection exception), the server going away or not yet accepting
# connections (admin/crash shutdown, "cannot connect now"), and its connection slots all taken
# (too_many_connections: a new connection is refused until others close).
_UNAVAILABLE_SQLSTATES = ("57P01", "57P02", "57P03", "53300")


def is_database_unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) means the database cannot be reached right now,
    rather than that a statement was wrong: a lost or refused connection, or a server shutting
    down or starting up. Such a request is answered 503 and the pool reconnects by itself."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, ConnectionError):
            return True
        sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if isinstance(sqlstate, str) and (
            sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES
        ):
            return True
        if type(exc).__name__ in {"ConnectionDoesNotExistError", "InterfaceError"} and (
            "connection" in str(exc).lower() and "closed" in str(exc).lower()
        ):
            return True
        orig = getattr(exc, "orig", None)
        exc = orig if isinstance(orig, BaseException) else (exc.__cause__ or exc.__context__)
        seen += 1
    return False
