"""The query planner's own connections (carbongraph/planner/pool.py) hold one viewer's row-level
security scope between requests. These tests change a viewer's grants between two reads on the
same connection: the second read must answer as the reference executor does under the new
grants, never under the scope the connection still holds. PostgreSQL only (SQLite is never
planned)."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
import sqlalchemy as sa

from carbongraph.app import create_app
from carbongraph.authz import Role
from carbongraph.db import StatementLog
from carbongraph.planner.pool import forget_scopes, pool_for
from carbongraph.services.access import G
from tests.conftest import Api
from tests.world import build_world, gid, grant

pytestmark = pytest.mark.postgresql_only

COMMUNITY = """query($id: ID!) { community(id: $id) { name
  households(first: 5) { totalCount edges { node { id name } } } } }"""


@pytest.fixture
async def api(api):
    """The app with the planner on, not in shadow mode (which plans in the request's own
    transaction, for the reference executor's check, not on the planner's connections)."""
    settings = replace(api.settings, planner=True, planner_shadow=False)
    app = create_app(settings, engine=api.app_engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Api(client, settings, api.app_engine)


@pytest.fixture
def pg(engine, api):
    assert engine.dialect.name == "postgresql"
    forget_scopes(api.app_engine)


@pytest.fixture
async def reference(api):
    """The same app with the planner off: the reference executor alone."""
    app = create_app(
        replace(api.settings, planner=False, planner_shadow=False), engine=api.app_engine
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Api(client, api.settings, api.app_engine)


async def _read(api, community: int, subject: str) -> tuple[dict, int]:
    with StatementLog() as log:
        body = await api.gql(
            COMMUNITY, {"id": gid("Community", community)}, subject=subject, allow_errors=True
        )
    # extensions.planner says, in development, whether the planner answered: not compared
    return {k: v for k, v in body.items() if k != "extensions"}, log.count


async def test_a_second_read_is_one_statement(engine, api, pg):
    world = await build_world(engine)
    community = world.a.communities[0]
    first, first_count = await _read(api, community, "org-a")
    second, second_count = await _read(api, community, "org-a")
    assert first == second and "errors" not in first
    assert first["data"]["community"]["households"]["totalCount"] == 3
    # the scope statement, then the plan; then the plan alone on the same connection
    assert (first_count, second_count) == (2, 1)


async def test_a_grant_revoked_between_reads_is_not_answered_under_the_old_scope(
    engine, api, pg, reference
):
    world = await build_world(engine)
    community = world.a.communities[0]
    before, _ = await _read(api, community, "cm-a0")
    assert before["data"]["community"]["name"]
    async with engine.begin() as conn:
        await conn.execute(sa.delete(G).where(G.c.principal == "cm-a0"))
    after, _ = await _read(api, community, "cm-a0")
    assert after == (await _read(reference, community, "cm-a0"))[0]
    assert after.get("errors"), after  # the community is no longer the viewer's


async def test_a_grant_added_between_reads_is_answered_under_the_new_scope(engine, api, pg):
    world = await build_world(engine)
    other = world.b.communities[0]  # another tenant: outside cm-a0's scope
    refused, _ = await _read(api, other, "cm-a0")
    assert refused.get("errors")
    await grant(engine, "cm-a0", Role.COMMUNITY_MANAGER, "Community", other)
    granted, count = await _read(api, other, "cm-a0")
    assert "errors" not in granted, granted
    assert granted["data"]["community"]["households"]["totalCount"] == 3
    # the stale plan, the scope statement, the plan again
    assert count == 3


async def test_a_session_scope_changed_behind_the_planner_is_set_again(engine, api, pg):
    """Whatever changes a planner connection's settings (a transaction-pooling proxy handing
    the session to someone else, say), the planned statement answers only under the scope it
    was derived from."""
    world = await build_world(engine)
    community = world.a.communities[0]
    before, _ = await _read(api, community, "org-a")
    pool = await pool_for(api.app_engine, api.settings)
    async with pool.acquire() as connection:  # the connection the read used (most recent)
        assert connection.remembered_scope().subject == "org-a"
        await connection.execute("SELECT set_config('carbongraph.paths', '{}', false)")
    after, count = await _read(api, community, "org-a")
    assert after == before and "errors" not in after
    assert count == 3  # the plan (not fresh), the scope statement, the plan


async def test_repeated_requests_are_answered_per_variables_and_viewer(engine, api, pg, reference):
    """A request repeated as it was reuses its rendered statement (planner/execute.py); the
    same query with other variables, or as another viewer, must not."""
    world = await build_world(engine)
    a0, a1, b0 = world.a.communities[0], world.a.communities[1], world.b.communities[0]
    sequence = [
        (a0, "org-a"),
        (a1, "org-a"),
        (a0, "org-a"),
        (b0, "org-a"),
        (a0, "org-b"),
        (b0, "org-b"),
        (a0, "cm-a0"),
        (a1, "cm-a0"),
        (a0, "org-a"),
        (b0, "org-b"),
    ]
    answers = []
    for community, subject in sequence:
        planned, _ = await _read(api, community, subject)
        assert planned == (await _read(reference, community, subject))[0], (community, subject)
        answers.append(planned)
    assert answers[0] == answers[2] == answers[8] and "errors" not in answers[0]
    assert answers[0] != answers[1]
    assert answers[3].get("errors") and answers[4].get("errors") and answers[7].get("errors")
    # repeated on one connection (the last read's, which held org-b's scope), the statement
    # alone the second time
    _, first = await _read(api, a0, "org-a")
    _, again = await _read(api, a0, "org-a")
    assert (first, again) == (2, 1)
