"""Keeping totals right when people move or change employers.

A record counts toward the household and employers of its account *on the record's day*. A
move or an employment dated in the past changes that for the records from that day on, so they
are taken out of the totals of their old ancestors and put into the new ones (with emissions
recomputed, since a new household may be in another factor region), all in the caller's
transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import date
from typing import Any

import sqlalchemy as sa

from carbongraph.accounting.activities import ACTIVITY_TYPES
from carbongraph.accounting.compute import compute
from carbongraph.accounting.factors import FactorLibrary
from carbongraph.accounting.rollup import Attribution, TotalsDelta
from carbongraph.models.tables import C, H, R


async def household_regions(db: Any, household_ids: Collection[int]) -> dict[int | None, str]:
    """Household id → its community's region code, the region its records' factors are
    selected for when they are computed again. Keyed for ``get`` with a record's household id,
    which may be None (callers default to "CN")."""
    if not household_ids:
        return {}
    rows = await db.execute(
        sa.select(H.c.id, C.c.region_code)
        .select_from(H.join(C, C.c.id == H.c.community_id))
        .where(H.c.id.in_(household_ids))
    )
    return dict(list(rows))


async def reattribute(
    db: Any, individual_id: int, from_day: date, change: Callable[[], Awaitable[Any]]
) -> Any:
    """Run ``change`` (which alters memberships or employments from ``from_day``) and move the
    affected records' totals accordingly. Returns what ``change`` returned."""
    records = list(
        await db.execute(
            sa.select(R).where(
                R.c.account_type == "Individual",
                R.c.account_id == individual_id,
                R.c.period_start >= from_day,
            )
        )
    )
    if not records:
        return await change()
    delta = TotalsDelta()
    before = await Attribution.load(db, [individual_id], [])
    for record in records:
        delta.add_record(
            before.targets("Individual", individual_id, record.period_start, record.household_id),
            record,
            sign=-1,
        )
    outcome = await change()
    after = await Attribution.load(db, [individual_id], [])
    library = await FactorLibrary.load(db)
    households = {
        h
        for h in (after.household_on(individual_id, r.period_start) for r in records)
        if h is not None
    }
    regions = await household_regions(db, households)
    for record in records:
        household_id = after.household_on(individual_id, record.period_start)
        new = compute(
            ACTIVITY_TYPES[record.activity_type],
            record.quantity_milli,
            regions.get(household_id, "CN"),
            record.period_start,
            library,
        )
        values = {
            "household_id": household_id,
            "location_g": new.location_g,
            "market_g": new.market_g,
            "offset_g": new.offset_g,
            "factor_id": new.factor.id,
            "market_factor_id": new.market_factor.id if new.market_factor else None,
        }
        await db.execute(sa.update(R).where(R.c.id == record.id).values(**values))
        view = _View({**record._mapping, **values})
        delta.add_record(
            after.targets("Individual", individual_id, record.period_start, household_id), view
        )
    await delta.flush(db)
    return outcome


class _View:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
