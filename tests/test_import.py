"""Bulk import: batches all or nothing, idempotent re-imports, a per-row report."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import date, timedelta

import sqlalchemy as sa

from carbongraph.accounting.importer import import_activities
from carbongraph.models import ActivityRecord, FootprintTotal
from tests.world import build_world


def _write_csv(path, rows):
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _gas_rows(people, days):
    start = date(2024, 1, 1)
    return [
        {
            "account": f"Individual:{pk}",
            "activity_type": "NATURAL_GAS",
            "quantity": f"{(n % 7) / 10 + 0.1:.1f}",
            "unit": "m3",
            "period_start": (start + timedelta(days=d)).isoformat(),
            "period_end": (start + timedelta(days=d)).isoformat(),
            "external_id": f"gas-{pk}-{d}",
            "meter_ref": "gas",
        }
        for n, pk in enumerate(people)
        for d in range(days)
    ]


async def _state(engine):
    T = FootprintTotal.__table__
    async with engine.connect() as conn:
        return (
            await conn.scalar(sa.select(sa.func.count()).select_from(ActivityRecord)),
            await conn.scalar(
                sa.select(
                    sa.func.sum(T.c.location_g),
                ).where(T.c.node == "P")
            ),
            await conn.scalar(sa.select(sa.func.count()).select_from(T)),
        )


async def test_reimporting_10000_rows_changes_nothing(engine, tmp_path):
    world = await build_world(engine, communities=5, households=5, members=2)
    people = world.a.all_members  # 50 people × 200 days
    rows = _gas_rows(people, 200)
    assert len(rows) == 10_000
    path = tmp_path / "gas.csv"
    _write_csv(path, rows)
    report = await import_activities(engine, path, batch_size=2500)
    assert (report.created, report.unchanged, report.batches_committed) == (10_000, 0, 4)
    first = await _state(engine)
    expected_grams = sum(round(float(r["quantity"]) * 2162.2) for r in rows)
    assert first[0] == 10_000 and first[1] == expected_grams
    again = await import_activities(engine, path, batch_size=2500)
    assert (again.created, again.unchanged, again.batches_failed) == (0, 10_000, 0)
    assert await _state(engine) == first


async def test_a_bad_row_fails_only_its_batch_and_a_rerun_completes(engine, tmp_path):
    world = await build_world(engine, communities=1, households=2, members=2)
    rows = _gas_rows(world.a.all_members, 10)  # 40 rows
    rows[25]["quantity"] = "-3"
    rows[26]["unit"] = "barrels"
    path = tmp_path / "gas.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = await import_activities(engine, path, batch_size=10)
    assert (report.batches_committed, report.batches_failed, report.created) == (3, 1, 30)
    assert [(line, code) for line, _, code, _ in report.errors] == [
        (26, "NEGATIVE_QUANTITY"),
        (27, "UNKNOWN_UNIT"),
    ]
    rows[25]["quantity"] = "3"
    rows[26]["unit"] = "m3"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rerun = await import_activities(engine, path, batch_size=10)
    assert (rerun.created, rerun.unchanged, rerun.batches_failed) == (10, 30, 0)
    assert (await _state(engine))[0] == 40


def test_the_command_prints_a_report_and_fails(tmp_path):
    env = dict(os.environ, CARBONGRAPH_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'i.db'}")
    cli = [sys.executable, "-m", "carbongraph.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    path = tmp_path / "bad.csv"
    _write_csv(
        path,
        [
            {
                "account": "Individual:999",
                "activity_type": "ELECTRICITY",
                "quantity": "1",
                "unit": "kWh",
                "period_start": "2024-01-01",
                "period_end": "2024-01-01",
                "external_id": "x1",
            }
        ],
    )
    metrics_file = tmp_path / "import.prom"
    result = subprocess.run(
        [
            *cli,
            "import",
            "activities",
            str(path),
            "--report",
            str(tmp_path / "report.csv"),
            "--metrics-file",
            str(metrics_file),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr
    assert "batches committed 0, failed 1" in result.stdout
    assert "NOT_FOUND" in (tmp_path / "report.csv").read_text()
    # The throughput for node_exporter's textfile collector (issue 16).
    from prometheus_client.parser import text_string_to_metric_families

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics_file.read_text())
        for s in family.samples
    }
    assert samples[("carbongraph_import_rows", (("result", "failed"),))] == 1
    assert samples[("carbongraph_import_rows", (("result", "created"),))] == 0
    assert samples[("carbongraph_import_batches", (("result", "failed"),))] == 1
    assert samples[("carbongraph_import_duration_seconds", ())] > 0
    result = subprocess.run(
        [*cli, "import", "activities", str(path), "--report", str(tmp_path / "report.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    outcome = json.loads((tmp_path / "report.json").read_text())
    assert outcome["batches_failed"] == 1 and outcome["method"] == "per-record"
    assert outcome["errors"] == [
        {"line": 2, "field": "accountId", "code": "NOT_FOUND", "message": "no such account"}
    ]


async def _totals(engine):
    T = FootprintTotal.__table__
    R = ActivityRecord.__table__
    columns = [c for c in R.columns if c.name not in {"id", "recorded_at"}]
    async with engine.connect() as conn:
        return (
            [tuple(r) for r in await conn.execute(sa.select(*columns).order_by(R.c.external_id))],
            [tuple(r) for r in await conn.execute(sa.select(T).order_by(*T.primary_key))],
        )


async def test_parallel_workers_write_what_one_worker_writes(engine, tmp_path):
    world = await build_world(engine, communities=2, households=3, members=2)
    rows = _gas_rows(world.a.all_members + world.b.all_members, 30)
    for n, row in enumerate(rows[::7]):  # some households' own meters too, over several days
        row.update(
            account=f"Household:{world.b.all_households[n % 6]}",
            activity_type="ELECTRICITY",
            unit="kWh",
            period_end=(date.fromisoformat(row["period_start"]) + timedelta(days=2)).isoformat(),
            meter_ref=f"e{n}",
        )
    path = tmp_path / "mixed.csv"
    _write_csv(path, rows)
    one = await import_activities(engine, path, batch_size=100, set_based=False)
    expected = await _totals(engine)
    async with engine.begin() as conn:
        await conn.execute(ActivityRecord.__table__.delete())
        await conn.execute(FootprintTotal.__table__.delete())
    two = await import_activities(engine, path, batch_size=100, jobs=2)
    assert (two.created, two.batches_failed, two.errors) == (len(rows), 0, [])
    assert one.created == len(rows)
    assert await _totals(engine) == expected
    again = await import_activities(engine, path, batch_size=100, jobs=2)
    assert (again.created, again.unchanged) == (0, len(rows))
    assert await _totals(engine) == expected
