"""Differential test: the set-based import (accounting/bulk.py, PostgreSQL) against the
per-record reference path (ingest.py), on hypothesis-generated files.

Each example imports two files through each path into the same world — mixed activity types
and units (odd spellings too), regions with and without factors, dates across factor versions
and before anyone's membership, multi-day periods, rows overlapping others of the same meter,
replays and conflicting reuses of externalIds, and bad rows — and requires identical
records, identical ``footprint_total`` rows to the gram, and the same row errors and counts.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from carbongraph.accounting.factors import import_factors
from carbongraph.accounting.importer import import_activities
from carbongraph.models import (
    ActivityRecord,
    Community,
    FootprintTotal,
    HouseholdMembership,
    Individual,
)
from carbongraph.schema.relay import to_global_id
from tests.conftest import _wipe
from tests.test_import import _write_csv
from tests.world import build_world

pytestmark = pytest.mark.postgresql_only

EXAMPLES = int(os.environ.get("CARBONGRAPH_DIFFERENTIAL_EXAMPLES", "50"))
R = ActivityRecord.__table__
T = FootprintTotal.__table__
TODAY = datetime.now(UTC).date()

# Units each activity type accepts (several spellings), and ones it does not.
UNITS = {
    "ELECTRICITY": ["kWh", "Wh", "MWh", "kwh"],
    "HEAT": ["GJ", "MJ", "kWh", "MWh"],
    "NATURAL_GAS": ["m3", "L", "m³", "mL"],
    "GASOLINE": ["L", "mL", "litre"],
    "DIESEL": ["L", "ml", "m3"],
    "WATER": ["m3", "L", "cubic_metre"],
    "WASTEWATER": ["m3", "L"],
    "ROOFTOP_SOLAR": ["kWh", "Wh"],
    "COMMUNITY_SOLAR": ["kWh", "MWh"],
    "COMMUNITY_WIND": ["kWh"],
    "GREEN_CERTIFICATE": ["kWh", "MWh"],
}
BAD_UNITS = ["barrels", "number", "kg", "GJ ", "m3/h"]
# Around the factors' versions (2021, 2022, 2023, a correction and an end date below), before
# the world's memberships (2024-01-01) and at the edge of today.
ANCHORS = [
    date(2020, 12, 30),
    date(2021, 12, 29),
    date(2022, 6, 1),
    date(2022, 12, 31),
    date(2023, 3, 10),
    date(2023, 12, 30),
    date(2024, 1, 1),
    date(2024, 6, 29),
    date(2025, 2, 27),
    TODAY - timedelta(days=3),
]
QUANTITIES = st.one_of(
    st.decimals("0", "5000", places=3).map(str),
    st.decimals("0", "3", places=4).map(str),  # rounds half-even to thousandths
    st.sampled_from(
        [
            "0.0005",
            "0.0015",
            "0.0025",
            "2.5",
            "1e3",
            "1E-3",
            "1_000",
            "+4.5",
            ".5",
            "3.",
            "0",
            "-0.0004",
            "12345678901234.5",
            "0.00049999",
        ]
    ),
)
BAD_QUANTITIES = ["-1", "abc", "NaN", "inf", "1..2", "-0.5"]
CORRUPTIONS = [
    "account",
    "activity",
    "unit",
    "quantity",
    "backwards",
    "year",
    "future",
    "date",
    "source",
    "quality",
    "external_id",
]


@st.composite
def rows(draw, accounts, bad_accounts):
    activity = draw(st.sampled_from(list(UNITS)))
    start = min(draw(st.sampled_from(ANCHORS)) + timedelta(days=draw(st.integers(0, 4))), TODAY)
    length = draw(st.sampled_from([0, 0, 0, 0, 1, 2, 6, 30]))
    row = {
        "account": draw(st.sampled_from(accounts)),
        "activity_type": activity,
        "quantity": draw(QUANTITIES),
        "unit": draw(st.sampled_from(UNITS[activity])),
        "period_start": start.isoformat(),
        "period_end": min(start + timedelta(days=length), TODAY).isoformat(),
        "external_id": "x",  # numbered by files()
        "source": draw(st.sampled_from(["", "", "", "METER", "APP"])),
        "meter_ref": draw(st.sampled_from(["", "", "m1", "m2"])),
        "data_quality": draw(st.sampled_from(["", "", "ESTIMATED"])),
    }
    # About one row in twelve is bad, in one of many ways.
    # (Hypothesis favours boundary values: the residue of a wide integer spreads evenly.)
    if draw(st.integers(0, 2**32)) % 12 == 5:
        corruption = draw(st.sampled_from(CORRUPTIONS))
        if corruption == "account":
            row["account"] = draw(st.sampled_from(bad_accounts))
        elif corruption == "activity":
            row["activity_type"] = "PLUTONIUM"
        elif corruption == "unit":
            row["unit"] = draw(st.sampled_from(BAD_UNITS))
        elif corruption == "quantity":
            row["quantity"] = draw(st.sampled_from(BAD_QUANTITIES))
        elif corruption == "backwards":
            row["period_end"] = (start - timedelta(days=2)).isoformat()
        elif corruption == "year":
            row["period_end"] = (start + timedelta(days=400)).isoformat()
        elif corruption == "future":
            row["period_end"] = (TODAY + timedelta(days=1)).isoformat()
        elif corruption == "date":
            row["period_start"] = "2024-13-01"
        elif corruption == "source":
            row["source"] = "nope"
        elif corruption == "quality":
            row["data_quality"] = "bad"
        else:
            row["external_id"] = ""
    return row


@st.composite
def files(draw, accounts, bad_accounts):
    first = draw(st.lists(rows(accounts, bad_accounts), min_size=1, max_size=30))
    second = draw(st.lists(rows(accounts, bad_accounts), max_size=15))
    # externalIds: unique, except a few reused by another row (a conflict, or a repeat in
    # one batch) — unless that row had lost its externalId.
    every = first + second
    for n, row in enumerate(every):
        if n and draw(st.integers(0, 2**32)) % 5 == 2:  # near an earlier reading of one meter
            other = every[draw(st.integers(0, n - 1))]
            start = date.fromisoformat(other["period_start"][:10].replace("-13-", "-12-"))
            start = min(start + timedelta(days=draw(st.integers(-2, 3))), TODAY)
            end = min(start + timedelta(days=draw(st.sampled_from([0, 0, 1, 4]))), TODAY)
            row.update(
                {k: other[k] for k in ("account", "activity_type", "unit", "meter_ref")},
                period_start=start.isoformat(),
                period_end=end.isoformat(),
            )
        if row["external_id"]:
            row["external_id"] = f"x{n}"
            if n and draw(st.integers(0, 2**32)) % 16 == 5:
                row["external_id"] = every[draw(st.integers(0, n - 1))]["external_id"] or "x0"
    # The second file also replays rows of the first (the same values: unchanged).
    second += [dict(r) for r in first if draw(st.integers(0, 2**32)) % 3 == 1]
    second = draw(st.permutations(second)) if second else second
    batch = draw(st.sampled_from([3, 5, 8, 50]))
    return first, second, batch


async def _world(engine):
    await _wipe(engine)
    world = await build_world(engine, communities=1, households=2, members=2)
    a_home = world.a.all_households[0]
    async with engine.begin() as conn:
        # Regions: A's on its own factor series (with a correction), B's on its grid's with a
        # residual series, the standalone village's with no electricity factor at all.
        communities = world.a.communities + world.b.communities + [world.root_community]
        for community_id, region in zip(communities, ["CN-GD", "CN-ZJ", "XX-QQ"], strict=True):
            await conn.execute(
                sa.update(Community.__table__)
                .where(Community.__table__.c.id == community_id)
                .values(region_code=region)
            )
        base = {"gas_breakdown": None, "gwp_set": "AR5", "source": "test", "citation": "test"}
        await import_factors(
            conn,
            [
                {**base, "factor_key": "electricity", "basis": "location",
                 "region_code": "CN-GD", "unit": "kWh", "valid_from": date(2023, 1, 1),
                 "valid_to": None, "ug_per_unit": 512_345, "version": 1},
                {**base, "factor_key": "electricity", "basis": "location",
                 "region_code": "CN-GD", "unit": "kWh", "valid_from": date(2023, 1, 1),
                 "valid_to": None, "ug_per_unit": 498_765, "version": 2},
                {**base, "factor_key": "electricity", "basis": "residual",
                 "region_code": "CN-ZJ", "unit": "kWh", "valid_from": date(2022, 1, 1),
                 "valid_to": date(2024, 7, 2), "ug_per_unit": 611_111, "version": 1},
                {**base, "factor_key": "water_supply", "basis": "location",
                 "region_code": "CN", "unit": "m3", "valid_from": date(2021, 1, 1),
                 "valid_to": date(2023, 1, 1), "ug_per_unit": 170_001, "version": 1},
            ],
        )  # fmt: skip
        people = world.a.all_members + world.b.all_members
        # A move: the first person leaves home on 2024-07-01 for another household.
        M = HouseholdMembership.__table__
        await conn.execute(
            sa.update(M).where(M.c.individual_id == people[0]).values(valid_to=date(2024, 7, 1))
        )
        await conn.execute(
            sa.insert(M).values(
                individual_id=people[0],
                household_id=world.b.all_households[0],
                valid_from=date(2024, 7, 1),
                valid_to=None,
                created_at=datetime.now(UTC),
            )
        )
        I = Individual.__table__  # noqa: E741
        await conn.execute(
            sa.update(I).where(I.c.id == people[-1]).values(archived_at=datetime.now(UTC))
        )
        refs = dict(
            list(await conn.execute(sa.select(I.c.id, I.c.external_ref).where(I.c.id.in_(people))))
        )
    accounts = [f"Individual:{p}" for p in people[:-1]]
    accounts += [to_global_id("Individual", people[1]), f"Individual/ref:{refs[people[2]]}"]
    accounts += [f"Household:{h}" for h in world.a.all_households[:2] + world.b.all_households]
    accounts += [f"Household:{a_home}"]
    # The archived person, and the standalone village's (no electricity factor there).
    bad = [
        f"Individual:{people[-1]}",
        f"Individual:{world.employees_a[1]}",
        "Individual:999999",
        "Household:999999",
        "Bogus:1",
        "Individual/ref:nope",
    ]
    bad += ["Household/ref:nope", "Enterprise/ref:x", "not-an-id"]
    return accounts, bad


async def _state(engine):
    columns = [c for c in R.columns if c.name not in {"id", "recorded_at"}]
    async with engine.connect() as conn:
        records = [
            tuple(r) for r in await conn.execute(sa.select(*columns).order_by(R.c.external_id))
        ]
        totals = [tuple(r) for r in await conn.execute(sa.select(T).order_by(*T.primary_key))]
    return records, totals


async def _clear(engine):
    async with engine.begin() as conn:
        await conn.execute(sa.text("TRUNCATE activity_record, footprint_total RESTART IDENTITY"))


async def _run(engine, tmp_path, first, second, batch, set_based):
    await _clear(engine)
    reports = []
    for n, content in enumerate((first, second)):
        if not content:
            continue
        path = tmp_path / f"f{n}.{'jsonl' if n else 'csv'}"
        if n:
            path.write_text("".join(json.dumps(r) + "\n" for r in content))
        else:
            _write_csv(path, content)
        report = await import_activities(engine, path, batch_size=batch, set_based=set_based)
        reports.append(
            (
                sorted(report.warnings),
                report.rows,
                report.created,
                report.unchanged,
                report.batches_committed,
                report.batches_failed,
                sorted(report.errors),
            )
        )
    return reports, await _state(engine)


@pytest.fixture
async def accounts(migrated_engine):
    return await _world(migrated_engine)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_set_based_import_equals_the_per_record_path(
    migrated_engine, accounts, tmp_path_factory, data
):
    first, second, batch = data.draw(files(*accounts))
    tmp_path = tmp_path_factory.mktemp("diff")
    reference = await _run(migrated_engine, tmp_path, first, second, batch, set_based=False)
    bulk = await _run(migrated_engine, tmp_path, first, second, batch, set_based=True)
    for report in reference[0]:
        event(f"created records: {bool(report[2])}")
        event(f"replays: {bool(report[3])}")
        event(f"failed batches: {bool(report[5])}")
        event(f"NOT_ATTRIBUTED warnings: {bool(report[0])}")
        for code in {e[2] for e in report[6]}:
            event(f"error {code}")
    assert bulk[0] == reference[0]  # counts and row errors
    assert bulk[1][0] == reference[1][0]  # records
    assert bulk[1][1] == reference[1][1]  # footprint_total, to the gram


async def test_the_generator_reaches_every_outcome(migrated_engine, accounts, tmp_path):
    accounts = accounts[0]
    """The differential test is only as good as its inputs: one fixed file built from the same
    pieces commits records of every scope and fails batches with each phase's errors."""
    good = [
        {"account": accounts[1], "activity_type": t, "quantity": q, "unit": u,
         "period_start": s, "period_end": e, "external_id": f"g{n}", "meter_ref": m}
        for n, (t, q, u, s, e, m) in enumerate([
            ("ELECTRICITY", "10.0005", "kWh", "2023-03-10", "2023-03-16", ""),
            ("COMMUNITY_WIND", "3", "MWh", "2024-07-01", "2024-07-03", ""),
            ("ROOFTOP_SOLAR", "1e3", "Wh", "2021-12-29", "2022-01-02", ""),
            ("WATER", "1_000", "L", "2022-12-31", "2022-12-31", "m1"),
            ("HEAT", "0.0025", "MJ", "2024-01-01", "2024-01-01", ""),
            # 74.5 g and 223.5 g: grams round half to even (PostgreSQL's round() would not).
            ("WATER", "0.5", "m3", "2024-07-01", "2024-07-01", "m2"),
            ("WATER", "1.5", "m3", "2024-07-02", "2024-07-02", "m2"),
        ])
    ]  # fmt: skip
    bad = [
        dict(good[0], external_id="b1"),  # overlaps g0 (recorded)
        dict(good[0], external_id="g1"),  # conflicts with g1
        dict(good[1], quantity="-1", external_id="b3"),
        dict(good[1], account="Individual/ref:nope", external_id="b4"),
    ]
    reference = await _run(migrated_engine, tmp_path, good, bad, 1, set_based=False)
    bulk = await _run(migrated_engine, tmp_path, good, bad, 1, set_based=True)
    assert bulk == reference
    (_, _, created, *_), (_, _, _, _, _, failed, errors) = bulk[0]
    assert created == 7 and failed == 4
    location = R.c.keys().index("location_g") - 1
    assert [r[location] for r in bulk[1][0] if r[0] == "Individual" and r[3] == "WATER"][-2:] == [
        74,
        224,
    ]
    assert {code for _, _, code, _ in errors} == {
        "OVERLAPPING_PERIOD",
        "EXTERNAL_ID_CONFLICT",
        "NEGATIVE_QUANTITY",
        "NOT_FOUND",
    }
    scopes = {r[R.c.keys().index("scope") - 1] for r in bulk[1][0]}
    assert scopes == {"2", "3", "CLEAN"}
