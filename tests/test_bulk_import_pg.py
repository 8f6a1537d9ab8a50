"""The set-based import (PostgreSQL) as the application role under row-level security, and
its lock discipline under concurrent writers of one meter."""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa

from carbongraph.accounting.importer import import_activities
from carbongraph.config import Settings
from carbongraph.db import create_engine
from carbongraph.models import ActivityRecord, FootprintTotal
from tests.conftest import APP_ROLE
from tests.test_import import _gas_rows
from tests.world import build_world

pytestmark = pytest.mark.postgresql_only
R = ActivityRecord.__table__
T = FootprintTotal.__table__


@pytest.fixture
async def system_app_engine(engine, app_engine):
    """The CLI's engine (system scope) connected as the application role."""
    url = app_engine.url.render_as_string(hide_password=False)
    system = create_engine(Settings.from_env(database_url=url), system=True)
    yield system
    await system.dispose()


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def _count(engine):
    async with engine.connect() as conn:
        return await conn.scalar(sa.select(sa.func.count()).select_from(R))


async def test_runs_as_the_application_role_under_row_level_security(
    engine, app_engine, system_app_engine, tmp_path
):
    async with system_app_engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT current_user")) == APP_ROLE
    world = await build_world(engine, communities=1, households=2, members=2)
    path = _jsonl(tmp_path / "gas.jsonl", _gas_rows(world.a.all_members, 5))
    # Without a scope the policies hide every person: each row is an unknown account.
    hidden = await import_activities(app_engine, path, batch_size=100, set_based=True)
    assert hidden.created == 0 and {code for _, _, code, _ in hidden.errors} == {"NOT_FOUND"}
    assert await _count(engine) == 0
    report = await import_activities(system_app_engine, path, batch_size=100, set_based=True)
    assert (report.created, report.batches_failed) == (20, 0)
    assert await _count(engine) == 20


async def test_concurrent_overlapping_readings_of_one_meter_accept_one(
    engine, system_app_engine, tmp_path
):
    """50 imports at once, each one reading of the same meter over overlapping days: the
    accounts' lock makes the overlap check and the insert one step (exactly one wins)."""
    world = await build_world(engine, communities=1, households=1, members=1)
    person = world.a.all_members[0]
    paths = [
        _jsonl(
            tmp_path / f"r{n}.jsonl",
            [
                {
                    "account": f"Individual:{person}",
                    "activity_type": "ELECTRICITY",
                    "quantity": "3",
                    "unit": "kWh",
                    "period_start": f"2024-03-{1 + n % 5:02d}",
                    "period_end": "2024-03-08",
                    "external_id": f"reading-{n}",
                    "meter_ref": "main",
                }
            ],
        )
        for n in range(50)
    ]
    reports = await asyncio.gather(
        *(import_activities(system_app_engine, p, set_based=True) for p in paths)
    )
    assert sum(r.created for r in reports) == 1
    assert {code for r in reports for _, _, code, _ in r.errors} == {"OVERLAPPING_PERIOD"}
    assert await _count(engine) == 1
    async with engine.connect() as conn:
        counted = await conn.scalar(
            sa.select(sa.func.sum(T.c.record_count)).where(T.c.node == "I", T.c.node_id == person)
        )
    assert counted == 1


async def test_the_importer_refreshes_statistics_as_the_application_role(
    engine, system_app_engine, tmp_path
):
    """Only a table's owner may ANALYZE it: the importers' refresh goes through
    ``carbongraph_analyze`` (migration 0013), which analyses the tables bulk loads fill and no
    other."""
    from carbongraph.accounting.importer import refresh_statistics

    world = await build_world(engine, communities=1, households=2, members=2)
    async with engine.begin() as conn:  # statistics of the empty table
        await conn.execute(sa.text("ANALYZE activity_record"))
    path = tmp_path / "gas.jsonl"
    _jsonl(path, _gas_rows(world.a.all_members, 30))
    report = await import_activities(system_app_engine, path, batch_size=1000)
    assert report.errors == [] and report.created == 4 * 30
    await refresh_statistics(system_app_engine)
    async with engine.connect() as conn:
        tuples = await conn.scalar(
            sa.text("SELECT reltuples FROM pg_class WHERE oid = 'activity_record'::regclass")
        )
    assert tuples == 4 * 30
    async with system_app_engine.connect() as conn:
        with pytest.raises(sa.exc.DBAPIError, match="not a table bulk loads fill"):
            await conn.execute(
                sa.text("SELECT carbongraph_analyze(:t)"), {"t": ["activity_record", "role_grant"]}
            )
