"""`carbongraph seed --scale small|city`: deterministic benchmark datasets.

`city` models the pilot at full size: 1,492 organisations (40 enterprises and 1,452
communities, campuses nesting dorm buildings whose rooms are households), ~50,000 households,
~150,000 people, ~20 % of them employees of the enterprises, and 30 days of activity — daily
electricity for every household, weekly water and gas for homes, daily rooftop solar for ~10 %
— about 2 million records. `small` is 1/50 of it. Activity loads through the product's own bulk
path (`ingest` with COPY on PostgreSQL), so it exercises emission computation and roll-ups.

The hierarchy is written with explicit ids in bulk (it is a fresh database), because a
per-row path would take longer than the activity itself.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.accounting.factors import FactorLibrary
from carbongraph.accounting.importer import COLUMNS, refresh_statistics
from carbongraph.accounting.ingest import ActivityInput, ingest
from carbongraph.accounting.rollup import PopulationDelta
from carbongraph.models.base import utcnow
from carbongraph.resolvers.dataloaders import EM, C, E, H, I, M

# The benchmark month: fixed, so that every run generates the same data.
FIRST_DAY = date(2026, 10, 1)
DAYS = 30
SCALES = {"city": 1.0, "small": 1 / 50}
REGIONS = ["CN-GD", "CN-ZJ", "CN-YN", "CN-SC", "CN-BJ", "CN-SH", "CN-FJ", "CN-HE"]


@dataclass
class Plan:
    enterprises: int
    campuses: int
    buildings_per_campus: int
    rooms_per_building: int
    communities: int  # villages and compounds (besides campuses and buildings)
    homes_per_community: int


def plan(scale: str) -> Plan:
    f = SCALES[scale]
    if scale == "city":
        return Plan(40, 12, 8, 100, 1_344, 30)
    # Two buildings of 50 rooms keep a community big enough for the nested-query benchmark.
    return Plan(max(2, round(40 * f)), 1, 2, 50, max(4, round(1_344 * f)), 30)


async def _bulk(conn: Any, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 10_000):
        await conn.execute(sa.insert(table), rows[start : start + 10_000])


async def seed_scale(
    engine: AsyncEngine,
    scale: str,
    *,
    seed: int = 2026,
    activity_file: Path | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Load the dataset; with ``activity_file``, write the activity there as CSV for
    `carbongraph import activities` instead of loading it."""
    if scale not in SCALES:
        raise ValueError(f"scale is one of {', '.join(SCALES)}")
    p = plan(scale)
    rng = random.Random(seed)
    now = utcnow()

    def stamp(**values: Any) -> dict[str, Any]:
        return {**values, "created_at": now, "updated_at": now, "archived_at": None}

    async with engine.begin() as conn:
        if await conn.scalar(sa.select(sa.func.count()).select_from(I)):
            raise RuntimeError("seed --scale needs an empty database (after `migrate`)")
        enterprises = [
            stamp(
                id=n,
                name=f"Enterprise {n}",
                kind=rng.choice(["COMPANY", "PROPERTY_MANAGER", "CITY_PROGRAMME", "UNIVERSITY"]),
                path=f"e{n}/",
                external_ref=f"bench:e{n}",
            )
            for n in range(1, p.enterprises + 1)
        ]
        communities: list[dict[str, Any]] = []
        households: list[dict[str, Any]] = []

        def community(
            parent: dict[str, Any] | None, enterprise: dict[str, Any] | None, kind: str
        ) -> dict[str, Any]:
            pk = len(communities) + 1
            region = parent["region_code"] if parent else rng.choice(REGIONS)
            prefix = parent["path"] if parent else (enterprise["path"] if enterprise else "")
            row = stamp(
                id=pk,
                name=f"{kind.title()} {pk}",
                kind=kind,
                region_code=region,
                timezone="Asia/Shanghai",
                path=f"{prefix}c{pk}/",
                enterprise_id=enterprise["id"] if enterprise else None,
                parent_id=parent["id"] if parent else None,
                external_ref=f"bench:c{pk}",
            )
            communities.append(row)
            return row

        def household(com: dict[str, Any], dwelling: str, solar: bool) -> dict[str, Any]:
            pk = len(households) + 1
            row = stamp(
                id=pk,
                community_id=com["id"],
                name=f"Home {pk}",
                dwelling_type=dwelling,
                has_rooftop_solar=solar,
                path=f"{com['path']}h{pk}/",
                external_ref=f"bench:h{pk}",
            )
            households.append(row)
            return row

        universities = [e for e in enterprises if e["kind"] == "UNIVERSITY"] or enterprises[:1]
        for n in range(p.campuses):
            campus = community(None, universities[n % len(universities)], "CAMPUS")
            for _ in range(p.buildings_per_campus):
                building = community(campus, universities[n % len(universities)], "BUILDING")
                for _ in range(p.rooms_per_building):
                    household(building, "DORM_ROOM", False)
        for _ in range(p.communities):
            owner = rng.choice(enterprises) if rng.random() < 0.6 else None
            village = community(None, owner, rng.choice(["VILLAGE", "RESIDENTIAL_COMPOUND"]))
            for _ in range(p.homes_per_community):
                household(village, rng.choice(["HOUSE", "APARTMENT"]), rng.random() < 0.1)

        people: list[dict[str, Any]] = []
        memberships: list[dict[str, Any]] = []
        employments: list[dict[str, Any]] = []
        population = PopulationDelta()
        since = FIRST_DAY - timedelta(days=365)
        for home in households:
            size = 4 if home["dwelling_type"] == "DORM_ROOM" else rng.choice([1, 2, 2, 3, 3, 4, 5])
            for _ in range(size):
                pk = len(people) + 1
                people.append(
                    stamp(
                        id=pk,
                        display_name=f"Person {pk}",
                        email=None,
                        subject=None,
                        external_ref=f"bench:p{pk}",
                    )
                )
                memberships.append(
                    {
                        "id": pk,
                        "individual_id": pk,
                        "household_id": home["id"],
                        "valid_from": since,
                        "valid_to": None,
                        "created_at": now,
                    }
                )
                population.membership(home["path"], since, None)
                if rng.random() < 0.2:
                    employer = rng.choice(enterprises)["id"]
                    employments.append(
                        {
                            "individual_id": pk,
                            "enterprise_id": employer,
                            "valid_from": since,
                            "valid_to": None,
                            "created_at": now,
                        }
                    )
                    population.employment(employer, since, None)
        for table, rows in (
            (E, enterprises),
            (C, communities),
            (H, households),
            (I, people),
            (M, memberships),
            (EM, employments),
        ):
            await _bulk(conn, table, rows)
        await population.flush(conn)
        if conn.dialect.name == "postgresql":
            for table in (E, C, H, I, M):  # explicit ids: move the sequences past them
                await conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"(SELECT max(id) FROM {table.name}))"
                    )
                )

    inputs = list(_activity(households, rng))
    total = len(inputs)
    if activity_file is not None:
        write_activity_csv(inputs, activity_file)
        return {
            **_counts(enterprises, communities, households, people, employments),
            "records": total,
        }
    if on_progress:
        on_progress("activity", 0, total)
    async with engine.connect() as conn:
        library = await FactorLibrary.load(conn)
        await conn.rollback()
    loaded = 0
    for start in range(0, total, 20_000):
        batch = inputs[start : start + 20_000]
        async with engine.begin() as conn:
            result = await ingest(
                conn,
                batch,
                today=FIRST_DAY + timedelta(days=DAYS + 1),
                recorded_by="bench",
                library=library,
                use_copy=True,
            )
            if result.errors:
                raise RuntimeError(f"generated data refused: {result.errors[:3]}")
        loaded += len(batch)
        if loaded == len(batch) or loaded % 200_000 < len(batch):
            await refresh_statistics(engine)
        if on_progress:
            on_progress("activity", loaded, total)
    return {**_counts(enterprises, communities, households, people, employments), "records": total}


def _counts(
    enterprises: list[Any],
    communities: list[Any],
    households: list[Any],
    people: list[Any],
    employments: list[Any],
) -> dict[str, int]:
    return {
        "enterprises": len(enterprises),
        "communities": len(communities),
        "organisations": len(enterprises) + len(communities),
        "households": len(households),
        "individuals": len(people),
        "employees": len(employments),
    }


def write_activity_csv(inputs: list[ActivityInput], path: Path) -> None:
    """The activity as a file for `carbongraph import activities` (benchmark B1)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        # The importer's columns but data_quality: every reading here is metered, its default.
        writer.writerow([c for c in COLUMNS if c != "data_quality"])
        for i in inputs:
            writer.writerow(
                [
                    f"{i.account_type}:{i.account_id}",
                    i.activity_type,
                    i.quantity,
                    i.unit,
                    i.period_start,
                    i.period_end,
                    i.external_id,
                    i.source,
                    i.meter_ref,
                ]
            )


def _activity(households: list[dict[str, Any]], rng: random.Random) -> Any:
    days = [FIRST_DAY + timedelta(days=n) for n in range(DAYS)]
    weeks = [(days[n], days[min(n + 6, DAYS - 1)]) for n in range(0, DAYS, 7)]
    for home in households:
        ref = home["external_ref"]
        dorm = home["dwelling_type"] == "DORM_ROOM"
        for day in days:
            yield ActivityInput(
                "Household",
                home["id"],
                "ELECTRICITY",
                f"{rng.uniform(1.5 if dorm else 3, 7.5 if dorm else 14):.2f}",
                "kWh",
                day,
                day,
                "METER",
                f"{ref}:e:{day}",
                "main",
            )
            if home["has_rooftop_solar"]:
                yield ActivityInput(
                    "Household",
                    home["id"],
                    "ROOFTOP_SOLAR",
                    f"{rng.uniform(2, 7):.2f}",
                    "kWh",
                    day,
                    day,
                    "METER",
                    f"{ref}:pv:{day}",
                    "pv",
                )
        if dorm:
            continue
        for start, end in weeks:
            span = (end - start).days + 1
            yield ActivityInput(
                "Household",
                home["id"],
                "WATER",
                f"{rng.uniform(0.2, 0.7) * span:.3f}",
                "m3",
                start,
                end,
                "METER",
                f"{ref}:w:{start}",
                "water",
            )
            yield ActivityInput(
                "Household",
                home["id"],
                "NATURAL_GAS",
                f"{rng.uniform(0.1, 1.1) * span:.3f}",
                "m3",
                start,
                end,
                "METER",
                f"{ref}:g:{start}",
                "gas",
            )
