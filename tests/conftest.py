"""Fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL: ``CARBONGRAPH_TEST_POSTGRES_URL`` (default the local server, database ``test``, trust
auth). The suite creates a fresh database for the run and drops it at the end. When
``CARBONGRAPH_REQUIRE_POSTGRES=1`` (as ``.ci/run`` sets), an unreachable server fails the run
instead of skipping the PostgreSQL half.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import random
import re
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph import migrate
from carbongraph.accounting.factors import ensure_default_factors
from carbongraph.actions.catalog import ensure_default_action_types
from carbongraph.app import create_app
from carbongraph.authz import mint_token
from carbongraph.config import Settings
from carbongraph.db import asyncpg_dsn, create_engine
from carbongraph.models import metadata
from carbongraph.models.security import clear_audit_events_for_tests

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", "postgresql"]

# The planner's shadow mode (carbongraph.planner.shadow) is the suite's differential oracle: every
# read a PostgreSQL app answers with the planner is executed by the reference executor too, and a
# different answer is an error (PLANNER_MISMATCH). CARBONGRAPH_PLANNER=on|off in the environment
# runs the suite without it (.ci/run's planner-off pass). Each process appends one line per read
# to its own file in SHADOW_DIR (servers a test starts inherit its worker's file); the test that
# sent a mismatching read fails (``_no_planner_mismatch``) and the run ends with the totals.
SHADOW_DIR = "CARBONGRAPH_TEST_SHADOW_DIR"
SHADOW_REPORT = "CARBONGRAPH_PLANNER_SHADOW_REPORT"
_OWN_SHADOW_DIR = pytest.StashKey[Path]()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_SHADOW_DIR in config.stash:  # after the summary; a directory given is the giver's
        shutil.rmtree(config.stash[_OWN_SHADOW_DIR], ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("CARBONGRAPH_PLANNER", "shadow")
    if os.environ["CARBONGRAPH_PLANNER"] != "shadow":
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None and not os.environ.get(SHADOW_DIR):
        # The controller (or the only process): its workers inherit the directory.
        os.environ[SHADOW_DIR] = tempfile.mkdtemp(prefix="carbongraph-shadow-")
        config.stash[_OWN_SHADOW_DIR] = Path(os.environ[SHADOW_DIR])
    os.environ[SHADOW_REPORT] = str(Path(os.environ[SHADOW_DIR]) / f"{worker or 'main'}.jsonl")


def _shadow_lines(path: Path, offset: int = 0) -> list[dict[str, Any]]:
    with open(path, "rb") as f:
        f.seek(offset)
        return [json.loads(line) for line in f.read().splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _no_planner_mismatch() -> Iterator[None]:
    report = os.environ.get(SHADOW_REPORT)
    if os.environ.get("CARBONGRAPH_PLANNER") != "shadow" or not report:
        yield
        return
    path = Path(report)
    start = path.stat().st_size if path.exists() else 0
    yield
    if path.exists() and path.stat().st_size > start:
        mismatches = [r for r in _shadow_lines(path, start) if r["result"] == "mismatch"]
        if mismatches:
            pytest.fail(
                f"the query planner answered {len(mismatches)} read(s) of this test unlike the "
                f"reference executor (shadow mode; the log has both answers): {mismatches[:3]}"
            )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The shadow differential's totals over every process of the run (the controller's, under
    pytest-xdist), for the planner's closing note."""
    if os.environ.get("PYTEST_XDIST_WORKER") or not os.environ.get(SHADOW_DIR):
        return
    if os.environ.get("CARBONGRAPH_PLANNER") != "shadow":
        return
    records = [r for p in Path(os.environ[SHADOW_DIR]).glob("*.jsonl") for r in _shadow_lines(p)]
    counts = Counter(r["result"] for r in records)
    total = len(records)
    planned = counts["equal"] + counts["mismatch"]
    reporter = terminalreporter
    # Every read recorded in the directory: `make test` gives both its phases the same one.
    reporter.write_sep("-", f"query planner shadow differential ({os.environ[SHADOW_DIR]})")
    reporter.write_line(
        f"{total} reads the planner considered on PostgreSQL: {planned} planned "
        f"({planned / max(total, 1):.1%}) and compared with the reference executor "
        f"({counts['equal']} equal, {counts['mismatch']} mismatches), {counts['fell_back']} "
        f"fell back ({counts['fell_back'] / max(total, 1):.1%})"
    )
    reasons = Counter(r["detail"] for r in records if r["result"] == "fell_back")
    for reason, n in reasons.most_common(8):
        reporter.write_line(f"  fell back {n:>6}: {reason}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test of a PostgreSQL-only feature runs on PostgreSQL alone: its SQLite twin is
    deselected rather than skipped (.ci/run refuses skipped database tests). Every SQLite test
    has its PostgreSQL twin (.ci/run checks), so tests of SQLite's locking run on both."""
    keep, drop = [], []
    for item in items:
        pg_only = item.get_closest_marker("postgresql_only") is not None
        (drop if pg_only and _backend_of(item) == "sqlite" else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# Modules whose tests share a costly module-scoped fixture: under pytest-xdist (`make test`)
# each runs on one worker per backend, so the fixture is built once per backend, not once per
# worker that happens to get one of its tests.
SHARED_FIXTURE_MODULES = {
    "test_leak_matrix",  # the leak world
    "test_federation_e2e",  # the stack: demo database, both subgraphs, the gateway
    "test_concurrency_processes",  # a two-process server
    "test_metro_partner",  # the metro world
    "test_cost",  # the gateway's costs (node)
}
# Modules whose tests must all run in one process: test_planner_differential's last test reads
# the counts its other tests gathered.
WHOLE_MODULES = {"test_planner_differential"}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``--dist loadgroup`` (make test): one work unit per test, except the modules above,
    one unit per backend. (Our own grouping: pytest-xdist's ``xdist_group`` renames node ids,
    which pytest 9 no longer allows.) Largest units are handed out first."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path, _, test = nodeid.partition("::")
            if Path(path).stem in WHOLE_MODULES:
                return path
            if Path(path).stem not in SHARED_FIXTURE_MODULES:
                return nodeid
            backend = next((b for b in BACKENDS if re.search(rf"[\[-]{b}[\]-]", test)), "")
            return f"{path}::{backend}"

    return SharedFixtureScheduling(config, log)


def _backend_of(item: pytest.Item) -> str | None:
    """The database backend a test runs on: its ``migrated_engine`` parameter, or a module's own
    backend parameter (test_fuzz.py's server)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    backend = params.get("migrated_engine")
    if backend is None:
        backend = next((p for p in params.values() if p in BACKENDS), None)
    return backend


def _pg_url() -> str:
    return os.environ.get("CARBONGRAPH_TEST_POSTGRES_URL", DEFAULT_PG)


def _run_outside_loop(coro: Any) -> Any:
    # Session set-up runs inside pytest-asyncio's loop; admin statements get a loop of their own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _admin(base: str, statement: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(base), timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def fresh_postgres_database() -> Iterator[str]:
    """Create a PostgreSQL database, yield its SQLAlchemy URL, drop it afterwards. Skips (or,
    under CARBONGRAPH_REQUIRE_POSTGRES=1, fails) when the server is unusable."""
    base = _pg_url()
    name = f"carbongraph_test_{uuid.uuid4().hex[:12]}"
    try:
        _run_outside_loop(_admin(base, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL at {make_url(base).render_as_string()} is unusable: {exc}"
        if os.environ.get("CARBONGRAPH_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    _run_outside_loop(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this run; yields its SQLAlchemy URL."""
    yield from fresh_postgres_database()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("db") / "carbongraph-test.db"
    return f"sqlite+aiosqlite:///{path}"


# The application's login role on PostgreSQL (docs/security.md): not a superuser, no BYPASSRLS,
# owns nothing. The API under test connects as it, so every PostgreSQL test runs under
# row-level security; fixtures write as the owner (the superuser of the test server).
APP_ROLE = "carbongraph_app"
# Cluster-wide and shared by concurrent test runs (created if missing, never dropped).
_CREATE_APP_ROLE = migrate.create_app_role_sql(APP_ROLE)


def app_role_url(owner_url: str) -> str:
    """The same database, as the application role (which the test server trusts)."""
    return make_url(owner_url).set(username=APP_ROLE, password=None).render_as_string()


def create_app_role() -> None:
    _run_outside_loop(_admin(_pg_url(), _CREATE_APP_ROLE))


@pytest.fixture(scope="session", params=BACKENDS)
async def migrated_engine(
    request: pytest.FixtureRequest, sqlite_url: str
) -> AsyncIterator[AsyncEngine]:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_database")
    engine = create_engine(Settings.from_env(database_url=url))
    await migrate.upgrade(engine)
    if engine.dialect.name == "postgresql":
        create_app_role()
        await migrate.grant_app_role(engine, APP_ROLE)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def app_engine(migrated_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The engine the API uses: on PostgreSQL connected as the application role."""
    if migrated_engine.dialect.name != "postgresql":
        yield migrated_engine
        return
    owner_url = migrated_engine.url.render_as_string(hide_password=False)
    engine = create_engine(Settings.from_env(database_url=app_role_url(owner_url)))
    yield engine
    await engine.dispose()


async def _wipe(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        # audit_event is append-only at the database; emptying it takes a test-only detour.
        tables = [t for t in metadata.sorted_tables if t.name != "audit_event"]
        if engine.dialect.name == "postgresql":
            names = ", ".join(t.name for t in tables)
            await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                await conn.execute(table.delete())
        await clear_audit_events_for_tests(conn)
        await ensure_default_factors(conn)
        await ensure_default_action_types(conn)


@pytest.fixture
async def engine(migrated_engine: AsyncEngine) -> AsyncEngine:
    """A migrated, empty database of the current backend."""
    await _wipe(migrated_engine)
    return migrated_engine


@pytest.fixture
def backend(engine: AsyncEngine) -> str:
    return engine.dialect.name


@pytest.fixture
def settings(engine: AsyncEngine) -> Settings:
    return Settings.from_env(database_url=engine.url.render_as_string(hide_password=False))


@dataclass
class Api:
    """A GraphQL client for the app, in-process over ASGI."""

    client: httpx.AsyncClient
    settings: Settings
    app_engine: AsyncEngine | None = None  # the engine the app connects with

    def token(self, subject: str, ttl: timedelta = timedelta(hours=1)) -> str:
        return mint_token(self.settings, subject, ttl=ttl)

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        subject: str | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if token is None and subject is not None:
            token = self.token(subject)
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        return await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=all_headers
        )

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        subject: str,
        allow_errors: bool = False,
    ) -> dict[str, Any]:
        response = await self.post(query, variables, subject=subject)
        body = response.json()
        if not allow_errors:
            assert response.status_code == 200, body
            assert "errors" not in body, body["errors"]
        return body


@pytest.fixture
async def api(
    engine: AsyncEngine, app_engine: AsyncEngine, settings: Settings
) -> AsyncIterator[Api]:
    app = create_app(settings, engine=app_engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Api(client, settings, app_engine)


@pytest.fixture
def rng() -> random.Random:
    return random.Random(7)


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
async def production(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in production mode (tokens from ``api.token`` are valid for it), over ASGI."""
    prod = Settings.from_env(
        database_url=settings.database_url,
        env="production",
        jwt_secret=settings.effective_jwt_secret,
        gateway_secret="gateway-shared-secret",
    )
    app = create_app(prod, engine=engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        yield client
