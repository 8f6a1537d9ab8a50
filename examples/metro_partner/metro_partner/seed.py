"""Deterministic demo data: 6 stations and the metro trips of carbongraph Individuals 1..60.

Idempotent: rows have fixed primary keys and only missing ones are inserted, so running it
again adds nothing. Trip times are "the last 28 days" relative to the first run.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from . import db
from .schema import global_id

SEED = 2024
INDIVIDUALS = 60
DAYS = 28
MAX_TRIPS_PER_PERSON = 6

# (pk, name, line, carbongraph community pk)
STATIONS = [
    (1, "Luohu", "Line 1 (Luobao)", 1),
    (2, "Laojie", "Line 1 (Luobao)", 1),
    (3, "Futian", "Line 2 (Shekou)", 2),
    (4, "Shopping Park", "Line 1 (Luobao)", 2),
    (5, "Shenzhen University", "Line 1 (Luobao)", 3),
    (6, "Window of the World", "Line 2 (Shekou)", 3),
]


def station_rows() -> list[dict[str, object]]:
    return [
        {"id": pk, "name": name, "line": line, "community_id": global_id("Community", community)}
        for pk, name, line, community in STATIONS
    ]


def trip_rows(today: datetime | None = None) -> list[dict[str, object]]:
    """0–6 trips per Individual 1..60, on the 28 days before ``today`` (UTC), in order of id."""
    rng = random.Random(SEED)
    midnight = datetime.combine((today or datetime.now(UTC)).date(), time())  # naive UTC
    rows: list[dict[str, object]] = []
    for person in range(1, INDIVIDUALS + 1):
        for _ in range(rng.randint(0, MAX_TRIPS_PER_PERSON)):
            origin, destination = rng.sample(range(1, len(STATIONS) + 1), 2)
            day = midnight - timedelta(days=rng.randint(1, DAYS))
            started = day + timedelta(minutes=rng.randint(6 * 60, 23 * 60))  # 06:00–23:00
            rows.append(
                {
                    "id": len(rows) + 1,
                    "individual_id": global_id("Individual", person),
                    "origin_id": origin,
                    "destination_id": destination,
                    "started_at": started,
                    "distance_km": round(rng.uniform(1.5, 25.0), 1),
                }
            )
    return rows


async def seed(engine: AsyncEngine) -> dict[str, int]:
    """Create the tables and insert the demo rows that are missing; returns what was added."""
    await db.create_tables(engine)
    added = {}
    async with engine.begin() as conn:
        for name, table, rows in (
            ("stations", db.stations, station_rows()),
            ("trips", db.trips, trip_rows()),
        ):
            existing = set((await conn.execute(sa.select(table.c.id))).scalars())
            missing = [row for row in rows if row["id"] not in existing]
            if missing:
                await conn.execute(table.insert(), missing)
            added[name] = len(missing)
    return added
