"""creditsChanged across server processes on PostgreSQL: a person subscribes on process B, a
manager approves their action on process A, and B delivers the event within a second (the
commit's NOTIFY reaches B's LISTEN connection). Real uvicorn processes on loopback ports."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from carbongraph import migrate
from carbongraph.accounting.factors import ensure_default_factors
from carbongraph.actions.catalog import ensure_default_action_types
from carbongraph.config import Settings
from carbongraph.db import create_engine
from tests.conftest import Api, _run_outside_loop, fresh_postgres_database
from tests.live_client import RemoteSocket
from tests.processes import Processes, free_port
from tests.test_live import CREDITS, REVIEW, pending_clean_plate
from tests.world import World, build_world, gid

# Alone: the cross-process event must arrive within a second.
pytestmark = pytest.mark.serial


@dataclass
class Servers:
    settings: Settings
    world: World
    ports: dict[str, int]

    def http(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def ws(self, name: str) -> str:
        return f"ws://127.0.0.1:{self.ports[name]}/graphql"


async def _prepare(url: str) -> World:
    engine = create_engine(Settings.from_env(database_url=url))
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            await ensure_default_factors(conn)
            await ensure_default_action_types(conn)
        return await build_world(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    tmp = tmp_path_factory.mktemp("live-processes")
    database = fresh_postgres_database()
    url = next(database)
    world = _run_outside_loop(_prepare(url))
    env = {"CARBONGRAPH_DATABASE_URL": url, "CARBONGRAPH_EVIDENCE_DIR": str(tmp / "evidence")}
    processes = Processes(tmp)
    ports = {"a": free_port(), "b": free_port()}
    try:
        for name, port in ports.items():
            processes.start(
                name,
                [sys.executable, "-m", "carbongraph.cli", "serve", "--port", str(port)],
                env=env,
                health=f"http://127.0.0.1:{port}/readyz",
            )
        yield Servers(Settings.from_env(database_url=url), world, ports)
    finally:
        processes.stop_all()
        next(database, None)


async def test_an_approval_on_one_process_reaches_a_subscriber_on_another(servers):
    world = servers.world
    student = gid("Individual", world.a.members[world.a.households[world.a.communities[0]][0]][0])
    async with httpx.AsyncClient(base_url=servers.http("a"), timeout=30) as client:
        api = Api(client, servers.settings)
        action = await pending_clean_plate(api, "resident-a", student)
        async with RemoteSocket(servers.ws("b")) as ws:
            assert await ws.init(api.token("resident-a")) == {"type": "connection_ack"}
            await ws.subscribe("1", CREDITS, {"i": student})
            first = await ws.receive()
            assert first["payload"]["data"]["creditsChanged"]["balance"] == 0

            body = await api.gql(REVIEW, {"id": action}, subject="cm-a0")
            approved = time.monotonic()
            assert body["data"]["reviewAction"]["action"]["status"] == "APPROVED"
            event = await ws.receive(timeout=1.0)
            latency = time.monotonic() - approved
            assert event["payload"]["data"]["creditsChanged"]["balance"] == 200
            assert latency < 1.0
            print(f"creditsChanged on B {latency * 1000:.0f} ms after A answered the approval")
            assert await ws.quiet(0.3) == []
