"""Dated memberships and employments, written together with the population counts they change.

Shared by the mutations, the demo seed and the tests, so that no path writes a period without
its ``population_change`` rows.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from carbongraph.accounting.rollup import PopulationDelta
from carbongraph.models import Employment, Household, HouseholdMembership
from carbongraph.models.base import utcnow

M = HouseholdMembership.__table__
EM = Employment.__table__
H = Household.__table__


async def open_membership(
    db: Any, individual_id: int, household_id: int, start: date, household_path: str | None = None
) -> None:
    await db.execute(
        sa.insert(M).values(
            individual_id=individual_id,
            household_id=household_id,
            valid_from=start,
            valid_to=None,
            created_at=utcnow(),
        )
    )
    if household_path is None:
        household_path = await db.scalar(sa.select(H.c.path).where(H.c.id == household_id))
    population = PopulationDelta()
    population.membership(household_path, start, None)
    await population.flush(db)


async def open_employment(db: Any, individual_id: int, enterprise_id: int, start: date) -> None:
    await db.execute(
        sa.insert(EM).values(
            individual_id=individual_id,
            enterprise_id=enterprise_id,
            valid_from=start,
            valid_to=None,
            created_at=utcnow(),
        )
    )
    population = PopulationDelta()
    population.employment(enterprise_id, start, None)
    await population.flush(db)


async def close_open_periods(
    db: Any,
    table: sa.Table,
    individual_id: int,
    on: date,
    only: sa.ColumnElement[bool] | None = None,
) -> int:
    """End every open period of ``table`` (memberships or employments) on ``on``."""
    condition = sa.and_(
        table.c.individual_id == individual_id, table.c.valid_to.is_(None), table.c.valid_from < on
    )
    if only is not None:
        condition = sa.and_(condition, only)
    open_rows = list(await db.execute(sa.select(table).where(condition)))
    if not open_rows:
        return 0
    await db.execute(sa.update(table).where(condition).values(valid_to=on))
    population = PopulationDelta()
    for row in open_rows:
        if table is M:
            path = await db.scalar(sa.select(H.c.path).where(H.c.id == row.household_id))
            population.membership(path, on, None, sign=-1)
        else:
            population.employment(row.enterprise_id, on, None, sign=-1)
    await population.flush(db)
    return len(open_rows)
