"""The planner's shadow mode (carbongraph.planner.shadow): a planned read is executed by the
reference executor too, in the same snapshot and unseen by the request's statement count, and a
different answer is an error (development) or the reference answer (production)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph import planner
from carbongraph.app import create_app
from carbongraph.authz import mint_token
from carbongraph.config import ConfigError, Settings
from carbongraph.db import StatementLog
from carbongraph.models.hierarchy import Enterprise
from carbongraph.planner.execute import RawJSON
from carbongraph.planner.shadow import first_difference
from tests.world import build_world, gid

QUERY = "query($id: ID!) { enterprise(id: $id) { id name } }"


def shadow_settings(settings: Settings, **changes: Any) -> Settings:
    return replace(
        settings, planner=True, planner_shadow=True, planner_shadow_report=None, **changes
    )


@pytest.fixture
async def world_id(engine: AsyncEngine) -> str:
    world = await build_world(engine, communities=1, households=1, members=1)
    return gid("Enterprise", world.a.enterprise)


async def post(
    settings: Settings, app_engine: AsyncEngine, variables: dict[str, Any], **headers: str
) -> dict[str, Any]:
    app = create_app(settings, engine=app_engine)
    token = mint_token(settings, "org-a")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.post(
            "/graphql",
            json={"query": QUERY, "variables": variables},
            headers={"Authorization": f"Bearer {token}", **headers},
        )
    body: dict[str, Any] = response.json()
    return body


def after_planning(monkeypatch: pytest.MonkeyPatch, then: Callable[[Any], Any]) -> None:
    """Run ``then(outcome)`` (a coroutine function) once the planner has answered, in the
    request's transaction (shadow mode) or on its own connections (the planner on)."""
    for name in ("try_plan", "try_plan_pooled"):
        real = getattr(planner, name)

        async def wrapped(*args: Any, _real: Any = real) -> Any:
            outcome = await _real(*args)
            await then(outcome)
            return outcome

        monkeypatch.setattr(planner, name, wrapped)


@pytest.mark.postgresql_only
async def test_a_wrong_planned_answer_is_a_planner_mismatch(
    engine: AsyncEngine, app_engine: AsyncEngine, settings: Settings, world_id: str, monkeypatch
) -> None:
    shadow = shadow_settings(settings)
    ok = await post(shadow, app_engine, {"id": world_id})
    assert ok["extensions"]["planner"] == {"planned": True, "reason": None}, ok
    name = ok["data"]["enterprise"]["name"]

    async def corrupt(outcome: Any) -> None:  # a planner defect: a wrong value
        assert outcome.planned
        data = orjson.loads(str(outcome.result.data))
        data["enterprise"]["name"] = name + " (wrong)"
        outcome.result.data = RawJSON(orjson.dumps(data).decode())

    after_planning(monkeypatch, corrupt)
    body = await post(shadow, app_engine, {"id": world_id})
    assert body.get("data") is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "PLANNER_MISMATCH"
    assert error["extensions"]["at"] == ".data.enterprise.name"

    # The planner on, without its shadow, sends the wrong answer: only the shadow caught it.
    plain = await post(replace(shadow, planner_shadow=False), app_engine, {"id": world_id})
    assert plain["data"]["enterprise"]["name"] == name + " (wrong)"

    # Production answers with the reference executor's answer, the one of record.
    production = shadow_settings(settings, env="production", jwt_secret="s" * 32)
    answered = await post(production, app_engine, {"id": world_id})
    assert answered == {"data": {"enterprise": {"id": world_id, "name": name}}}


@pytest.mark.postgresql_only
async def test_a_write_between_the_two_executions_makes_no_mismatch(
    engine: AsyncEngine, app_engine: AsyncEngine, settings: Settings, world_id: str, monkeypatch
) -> None:
    """The planned statement and the reference resolvers read one snapshot (REPEATABLE READ),
    whatever commits in between; under READ COMMITTED the reference would see the new name."""

    async def rename(_outcome: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(sa.update(Enterprise.__table__).values(name="Renamed meanwhile"))

    after_planning(monkeypatch, rename)
    body = await post(shadow_settings(settings), app_engine, {"id": world_id})
    assert "errors" not in body, body
    assert body["data"]["enterprise"]["name"] != "Renamed meanwhile"
    assert body["extensions"]["planner"]["planned"] is True


@pytest.mark.postgresql_only
async def test_the_shadow_run_is_not_counted_in_the_requests_statements(
    engine: AsyncEngine, app_engine: AsyncEngine, settings: Settings, world_id: str
) -> None:
    shadow = shadow_settings(settings, report_sql_statements=True)
    with StatementLog() as log:
        body = await post(shadow, app_engine, {"id": world_id})
    assert body["extensions"]["planner"]["planned"] is True
    # The grants and the plan: the reference executor's enterprise load is not counted.
    assert body["extensions"]["sqlStatements"] == 2
    assert log.count == 2, log.statements


def test_first_difference_ignores_key_order_and_number_types_only() -> None:
    assert first_difference({"a": 1, "b": [1.0, "x"]}, {"b": [1, "x"], "a": 1}) is None
    assert first_difference({"a": True}, {"a": 1}) == ".a"
    assert first_difference({"a": [1, 2]}, {"a": [1]}) == ".a (lengths 2, 1)"
    assert first_difference({"a": None}, {"a": 0}) == ".a"
    assert first_difference({"a": {"b": "x"}}, {"a": {"c": "x"}}) == ".a (keys ['b', 'c'])"


def test_planner_modes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    modes = {"on": (True, False), "shadow": (True, True), "off": (False, False)}
    for value, (on, shadow) in modes.items():
        monkeypatch.setenv("CARBONGRAPH_PLANNER", value)
        settings = Settings.from_env()
        assert (settings.planner, settings.planner_shadow) == (on, shadow)
    monkeypatch.setenv("CARBONGRAPH_PLANNER", "shdow")
    with pytest.raises(ConfigError):
        Settings.from_env()
