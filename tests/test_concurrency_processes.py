"""Concurrency cases of issue 12 against real server processes: ``carbongraph serve --workers 2``
on PostgreSQL (two uvicorn worker processes sharing the socket, each with its own pool), 50
requests fired at once over loopback HTTP. In-process runs share one event loop and one pool;
these show the lock discipline holds across processes too."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from carbongraph.authz import Role
from carbongraph.config import Settings
from carbongraph.db import create_engine
from tests.conftest import Api, _run_outside_loop, fresh_postgres_database
from tests.processes import Processes, free_port
from tests.test_concurrency import N, approve_concurrently, first_member, self_report_concurrently
from tests.test_live_processes import _prepare
from tests.world import World, grant


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, World]]:
    tmp = tmp_path_factory.mktemp("concurrency-processes")
    database = fresh_postgres_database()
    url = next(database)
    world = _run_outside_loop(_prepare(url))
    env = {
        "CARBONGRAPH_DATABASE_URL": url,
        "CARBONGRAPH_EVIDENCE_DIR": str(tmp / "evidence"),
    }
    processes = Processes(tmp)
    port = free_port()
    try:
        processes.start(
            "serve",
            [
                sys.executable,
                "-m",
                "carbongraph.cli",
                "serve",
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            env=env,
            health=f"http://127.0.0.1:{port}/readyz",
        )
        yield url, f"http://127.0.0.1:{port}", world
    finally:
        processes.stop_all()
        next(database, None)


@pytest.fixture
async def remote(server) -> AsyncIterator[tuple[Api, object, World]]:
    url, base, world = server
    settings = Settings.from_env(database_url=url)
    engine = create_engine(settings)
    limits = httpx.Limits(max_connections=N, max_keepalive_connections=N)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
            yield Api(client, settings), engine, world
    finally:
        await engine.dispose()


async def test_two_managers_approving_one_action_across_processes(remote):
    api, engine, world = remote
    await grant(engine, "cm-a0-second", Role.COMMUNITY_MANAGER, "Community", world.a.communities[0])
    await approve_concurrently(api, engine, first_member(world), ["cm-a0", "cm-a0-second"])


async def test_self_reports_across_processes_meet_the_cap(remote):
    api, engine, world = remote
    await self_report_concurrently(api, engine, first_member(world), "2025-06-02")
