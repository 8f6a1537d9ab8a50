"""The partner's own database: SQLAlchemy 2 Core tables on async SQLite (aiosqlite).

The database URL is ``METRO_DATABASE_URL``, by default ``examples/metro_partner/metro.db``.
Every read the schema needs is one function here, and each one is ONE SQL statement.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_DATABASE_PATH = Path(__file__).resolve().parents[1] / "metro.db"
DEFAULT_DATABASE_URL = f"sqlite+aiosqlite:///{DEFAULT_DATABASE_PATH}"

metadata = sa.MetaData()

stations = sa.Table(
    "metro_stations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("line", sa.String(100), nullable=False),
    # carbongraph's Community global ID (base64 of "Community:<pk>"), stored as-is.
    sa.Column("community_id", sa.String(64), nullable=False),
)

trips = sa.Table(
    "metro_trips",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    # carbongraph's Individual global ID (base64 of "Individual:<pk>"), stored as-is: no call
    # back to carbongraph is ever needed to resolve Individual.metroTrips.
    sa.Column("individual_id", sa.String(64), nullable=False),
    sa.Column("origin_id", sa.ForeignKey("metro_stations.id"), nullable=False),
    sa.Column("destination_id", sa.ForeignKey("metro_stations.id"), nullable=False),
    # UTC, stored naive (SQLite has no time zones).
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("distance_km", sa.Float, nullable=False),
    # Keyset pagination of one person's trips: WHERE individual_id = ? AND id > ? ORDER BY id.
    sa.Index("ix_metro_trips_individual_id_id", "individual_id", "id"),
)


def database_url() -> str:
    return os.environ.get("METRO_DATABASE_URL") or DEFAULT_DATABASE_URL


def create_engine(url: str | None = None) -> AsyncEngine:
    return create_async_engine(url or database_url())


async def create_tables(engine: AsyncEngine) -> None:
    """Create the tables if they do not exist (the example has no migrations)."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


async def all_stations(engine: AsyncEngine) -> Sequence[sa.Row[Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(sa.select(stations).order_by(stations.c.id))
        return result.all()


async def stations_by_id(engine: AsyncEngine, ids: Iterable[int]) -> dict[int, sa.Row[Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(sa.select(stations).where(stations.c.id.in_(list(ids))))
        return {row.id: row for row in result}


def trip_pages_statement(
    individual_ids: Sequence[str], after_id: int, limit: int
) -> sa.Select[Any]:
    """One statement for the trip pages of many people.

    Per person (``PARTITION BY individual_id``, ordered by trip id) it returns the first
    ``limit`` trips with ``id > after_id`` plus the person's first trip overall (``seq = 1``),
    so that every person with any trip yields at least one row carrying ``total``, the
    person's total trip count. Callers drop rows with ``id <= after_id``.
    """
    by_person: dict[str, Any] = {"partition_by": trips.c.individual_id}
    ordered = {**by_person, "order_by": trips.c.id}
    after = sa.case((trips.c.id > after_id, 1), else_=0)
    inner = (
        sa.select(
            trips,
            sa.func.row_number().over(**ordered).label("seq"),
            sa.func.sum(after).over(**ordered).label("pos"),  # rank among trips after the cursor
            sa.func.count().over(**by_person).label("total"),
        )
        .where(trips.c.individual_id.in_(list(individual_ids)))
        .subquery()
    )
    return (
        sa.select(inner)
        .where(sa.or_(sa.and_(inner.c.id > after_id, inner.c.pos <= limit), inner.c.seq == 1))
        .order_by(inner.c.individual_id, inner.c.id)
    )


async def trip_pages(
    engine: AsyncEngine, individual_ids: Sequence[str], after_id: int, limit: int
) -> dict[str, tuple[int, list[sa.Row[Any]]]]:
    """``{individual_id: (total, up to `limit` trips with id > after_id)}``; people without
    trips are absent."""
    pages: dict[str, tuple[int, list[sa.Row[Any]]]] = {}
    async with engine.connect() as conn:
        result = await conn.execute(trip_pages_statement(individual_ids, after_id, limit))
        for row in result:
            _, rows = pages.setdefault(row.individual_id, (row.total, []))
            if row.id > after_id:
                rows.append(row)
    return pages
