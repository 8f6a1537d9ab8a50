"""`carbongraph import actions`: verified actions in bulk, set-based on PostgreSQL, checked
against the per-record reference (record_actions) on generated batches."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbongraph.actions.importer import import_actions, write_batch
from carbongraph.actions.record import ActionInput
from carbongraph.config import Settings
from carbongraph.db import create_engine
from carbongraph.models import ActionRecordRow, ActionType, Campaign, CreditEntry, FootprintTotal
from carbongraph.models.base import utcnow
from tests.ledger_invariant import assert_ledger_invariant
from tests.world import build_world

AR = ActionRecordRow.__table__
CE = CreditEntry.__table__
T = FootprintTotal.__table__
AT = ActionType.__table__
CP = Campaign.__table__
TODAY = date(2024, 3, 10)
FIRST_DAY = date(2023, 12, 20)  # before everyone's membership (2024-01-01): NOT_ATTRIBUTED
CODES = ["SUBWAY_TRIP", "BUS_TRIP", "CYCLING_KM", "CLEAN_PLATE", "PAPERLESS_BILL", "NO_SUCH"]


async def _state(engine) -> tuple[list, list, list]:
    async with engine.connect() as conn:
        records = sorted(
            tuple(r)
            for r in await conn.execute(
                sa.select(
                    AR.c.external_id,
                    AR.c.individual_id,
                    AR.c.action_type_id,
                    AR.c.units,
                    AR.c.occurred_on,
                    AR.c.status,
                    AR.c.source,
                    AR.c.credits,
                    AR.c.avoided_g,
                    AR.c.household_id,
                    AR.c.evidence_id,
                    AR.c.recorded_by,
                    AR.c.decided_by,
                )
            )
        )
        ledger = sorted(
            tuple(r)
            for r in await conn.execute(
                sa.select(
                    AR.c.external_id,
                    CE.c.individual_id,
                    CE.c.kind,
                    CE.c.amount,
                    CE.c.campaign_id,
                    CE.c.note,
                    CE.c.created_by,
                ).select_from(CE.join(AR, AR.c.id == CE.c.action_record_id))
            )
        )
        totals = sorted(tuple(r) for r in await conn.execute(sa.select(T)))
    return records, ledger, totals


async def _wipe_actions(engine) -> None:
    async with engine.begin() as conn:
        for table in (CE, AR, T):
            await conn.execute(table.delete())


async def _run(engine, batches: list[list[ActionInput]], *, per_record: bool) -> list:
    outcomes = []
    for inputs in batches:
        async with engine.connect() as conn:
            transaction = await conn.begin()
            result = await write_batch(
                conn, inputs, today=TODAY, recorded_by="import", per_record=per_record
            )
            if result.errors:
                await transaction.rollback()
            else:
                await transaction.commit()
        outcomes.append(
            (
                len(result.created),
                len(result.unchanged),
                [(e.index, e.field, e.code) for e in result.errors],
                [(w.index, w.field, w.code) for w in result.warnings],
            )
        )
    return outcomes


@pytest.fixture
async def action_world(engine):
    # The set-based path is PostgreSQL's (SQLite has the reference path only): the tests that
    # use this world are marked postgresql_only, so their SQLite twins are not collected.
    world = await build_world(engine)
    async with engine.begin() as conn:
        old = (await conn.execute(sa.select(AT).where(AT.c.code == "BUS_TRIP"))).one()
        # A second version from 10 February: other credits and cap (versions are per day).
        values = {c.name: getattr(old, c.name) for c in AT.c if c.name not in {"id", "version"}}
        values.update(
            version=2,
            valid_from=date(2024, 2, 10),
            credits_per_unit=old.credits_per_unit + 100,
            avoided_g_per_unit=old.avoided_g_per_unit + 100,
            daily_cap=3,
            created_at=utcnow(),
        )
        await conn.execute(sa.insert(AT).values(**values))
        path = await conn.scalar(
            sa.text("SELECT path FROM community WHERE id = :id"), {"id": world.a.communities[0]}
        )
        await conn.execute(
            sa.insert(CP).values(
                owner_type="Community",
                owner_id=world.a.communities[0],
                owner_path=path,
                name="Commute week",
                starts_on=date(2024, 1, 15),
                ends_on=date(2024, 2, 20),
                action_types="SUBWAY_TRIP,BUS_TRIP",
                goal_kind="PARTICIPANTS",
                goal_value=10,
                bonus_percent=150,
                created_at=utcnow(),
            )
        )
    # People of both tenants, employees (a second roll-up path) and one who does not exist.
    people = world.a.all_members[:4] + world.employees_a + world.b.all_members[:1] + [999_999]
    return world, people


def _items(people: list[int]):
    return st.lists(
        st.builds(
            ActionInput,
            individual_id=st.sampled_from(people),
            action_type=st.sampled_from(CODES),
            units=st.integers(0, 5),
            occurred_on=st.integers(0, (TODAY - FIRST_DAY).days + 1).map(
                lambda d: FIRST_DAY + timedelta(days=d)
            ),
            external_id=st.integers(0, 80).map(lambda n: f"x{n}"),
        ),
        min_size=1,
        max_size=30,
    )


def _clean(items: list[ActionInput], bad_rows: bool) -> list[ActionInput]:
    """Mostly batches that pass, so that writes are compared too; some with bad rows."""
    if bad_rows:
        return items
    seen: set[str] = set()
    out = []
    for item in items:
        if item.external_id in seen or item.action_type == "NO_SUCH" or item.units == 0:
            continue
        if item.individual_id == 999_999 or item.occurred_on > TODAY:
            continue
        seen.add(item.external_id or "")
        out.append(item)
    return out or items[:1]


@pytest.mark.postgresql_only
async def test_set_based_and_per_record_leave_identical_records_ledger_and_totals(
    engine, action_world
):
    _, people = action_world

    # Derandomized: the same examples every run, so the last assertion (enough of them wrote
    # something) is a property of the generator, not of the day's luck (it failed at random:
    # 11 of 25).
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        batches=st.lists(
            st.tuples(_items(people), st.sampled_from([False, False, False, True])),
            min_size=1,
            max_size=4,
        )
    )
    def check(batches) -> None:
        runs = [_clean(items, bad) for items, bad in batches]
        portal.append(runs)

    portal: list = []
    check()
    compared = 0
    for runs in portal:
        await _wipe_actions(engine)
        fast = await _run(engine, runs, per_record=False)
        fast_state = await _state(engine)
        await _wipe_actions(engine)
        slow = await _run(engine, runs, per_record=True)
        slow_state = await _state(engine)
        assert fast == slow, runs
        assert fast_state == slow_state, runs
        compared += bool(slow_state[0])
    assert compared >= len(portal) // 2  # most examples wrote something


def _write(path, rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


async def test_import_actions_grants_credits_rolls_up_and_a_rerun_changes_nothing(engine, tmp_path):
    world = await build_world(engine, communities=2, households=5, members=2)
    people = world.a.all_members
    rows = [
        {
            "individual": f"Individual:{pk}",
            "action_type": "SUBWAY_TRIP",
            "units": "2",
            "occurred_on": (date(2023, 12, 30) + timedelta(days=d)).isoformat(),
            "external_id": f"metro-{pk}-{d}",
        }
        for pk in people
        for d in range(5)
    ]
    path = tmp_path / "rides.csv"
    _write(path, rows)
    report = await import_actions(engine, path, batch_size=15)
    assert report.errors == [] and report.created == len(rows)
    # 30 and 31 December come before everyone's membership (2024-01-01).
    assert len(report.warnings) == 2 * len(people)
    assert {w[2] for w in report.warnings} == {"NOT_ATTRIBUTED"}
    before = await _state(engine)
    records, ledger, totals = before
    assert sum(r[7] for r in records) == sum(e[3] for e in ledger) > 0
    platform = sum(t[7] for t in totals if t[0] == "P" and t[4] == "reduction")
    assert platform == sum(r[8] for r in records)
    again = await import_actions(engine, path, batch_size=15)
    assert again.created == 0 and again.unchanged == len(rows)
    assert await _state(engine) == before
    # Over the daily cap (6 rides): the batch is refused by line, nothing of it written.
    bad = tmp_path / "bad.csv"
    _write(bad, [{**rows[0], "units": "5", "external_id": "more-1"}])
    failed = await import_actions(engine, bad)
    assert [(e[0], e[1], e[2]) for e in failed.errors] == [(2, "units", "DAILY_CAP_REACHED")]
    assert await _state(engine) == before


def test_the_actions_command_reports_by_line(tmp_path):
    env = dict(os.environ, CARBONGRAPH_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    cli = [sys.executable, "-m", "carbongraph.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    path = tmp_path / "a.csv"
    _write(
        path,
        [
            {
                "individual": "Individual:999",
                "action_type": "SUBWAY_TRIP",
                "units": "1",
                "occurred_on": "2024-01-01",
                "external_id": "m1",
            }
        ],
    )
    result = subprocess.run(
        [*cli, "import", "actions", str(path), "--report", str(tmp_path / "r.csv")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "NOT_FOUND" in result.stderr
    assert "2,individual,NOT_FOUND" in (tmp_path / "r.csv").read_text()


def _rides(people: list[int], days: int) -> list[dict[str, str]]:
    """Six trips a person a day (the cap): each later trip of a day is judged against the
    earlier ones, across batches."""
    return [
        {
            "individual": f"Individual:{pk}",
            "action_type": "SUBWAY_TRIP",
            "units": "1",
            "occurred_on": (date(2024, 1, 2) + timedelta(days=d)).isoformat(),
            "external_id": f"ride-{pk}-{d}-{k}",
        }
        for d in range(days)
        for k in range(6)
        for pk in people
    ]


@pytest.mark.postgresql_only
async def test_parallel_workers_leave_what_one_worker_leaves(engine, tmp_path):
    world = await build_world(engine, communities=2, households=4, members=2)
    path = tmp_path / "rides.csv"
    rows = _rides(world.a.all_members + world.b.all_members, 3)
    _write(path, rows)
    one = await import_actions(engine, path, batch_size=20)
    # The report (--report FILE.json) says which path wrote the batches.
    assert (one.method, one.jobs) == ("set-based", 1)
    expected = await _state(engine)
    await _wipe_actions(engine)
    two = await import_actions(engine, path, batch_size=20, jobs=2)
    assert (two.created, two.batches_failed, two.errors, two.jobs) == (len(rows), 0, [], 2)
    assert one.created == len(rows)
    assert await _state(engine) == expected
    again = await import_actions(engine, path, batch_size=20, jobs=2)
    assert (again.created, again.unchanged) == (0, len(rows))
    assert await _state(engine) == expected
    # One ride more than the cap, on a day already full: that batch is refused by line.
    over = tmp_path / "over.csv"
    _write(over, [{**rows[0], "external_id": "one-too-many"}])
    refused = await import_actions(engine, over, jobs=2, per_record=True)
    assert [(e[0], e[2]) for e in refused.errors] == [(2, "DAILY_CAP_REACHED")]
    assert refused.method == "per-record"
    assert await _state(engine) == expected


# -- the set-based writer under concurrency (PostgreSQL) ----------------------------------------


async def _fifty_writers(engine, batches: list[list[ActionInput]]) -> list:
    """Each batch through the set-based writer in its own transaction, all at once (as 50
    workers, or 50 imports, would): committed when it has no row errors."""
    from carbongraph.accounting.importer import run_batch

    url = engine.url.render_as_string(hide_password=False)
    writers = create_engine(Settings.from_env(database_url=url, db_pool_size=len(batches)))
    try:
        return await asyncio.gather(
            *(
                run_batch(
                    writers,
                    lambda conn, b=batch: write_batch(
                        conn, b, today=TODAY, recorded_by="import", per_record=False
                    ),
                    lambda result: not result.errors,
                )
                for batch in batches
            )
        )
    finally:
        await writers.dispose()


@pytest.mark.postgresql_only
async def test_50_concurrent_set_based_batches_meet_the_daily_cap(engine):
    world = await build_world(engine)
    me = world.a.all_members[0]
    results = await _fifty_writers(
        engine,
        [
            [ActionInput(me, "SUBWAY_TRIP", 1, date(2024, 2, 1), external_id=f"metro-{n}")]
            for n in range(50)
        ],
    )
    answers = Counter(r.errors[0].code if r.errors else "ok" for r in results)
    assert answers == Counter({"ok": 6, "DAILY_CAP_REACHED": 44}), answers  # the cap: 6
    records, ledger, totals = await _state(engine)
    assert len(records) == len(ledger) == 6
    platform = sum(t[7] for t in totals if t[0] == "P" and t[4] == "reduction")
    assert platform == sum(r[8] for r in records)
    await assert_ledger_invariant(engine)


@pytest.mark.postgresql_only
async def test_50_concurrent_set_based_replays_of_one_batch_create_it_once(engine):
    world = await build_world(engine)
    batch = [
        ActionInput(pk, "SUBWAY_TRIP", 1, date(2024, 2, day), external_id=f"metro-{pk}-{day}")
        for pk in world.a.all_members[:4]
        for day in (1, 2)
    ]
    results = await _fifty_writers(engine, [list(batch) for _ in range(50)])
    answers = Counter(
        (len(r.created), len(r.unchanged), tuple(e.code for e in r.errors)) for r in results
    )
    assert answers == Counter({(len(batch), 0, ()): 1, (0, len(batch), ()): 49}), answers
    records, ledger, _ = await _state(engine)
    assert len(records) == len(ledger) == len(batch)
    await assert_ledger_invariant(engine)
