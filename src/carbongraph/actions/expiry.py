"""Credit expiry per programme: oldest credits first, as appended EXPIRY entries.

For a person whose programme expires credits after N months, everything granted before the
cutoff that has not been spent, reversed or expired already expires now:
``expiring = max(0, grants before cutoff − everything debited so far)``. Running it again
expires nothing more, so the job is safe to repeat. It takes the lock of every person of a
programme before computing what is due (locks.py), so it never overdraws a balance that a
concurrent redemption is spending.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from carbongraph.actions.tables import CE, H
from carbongraph.clock import Days, as_days, local_midnight
from carbongraph.live import publish as live
from carbongraph.locks import lock_people
from carbongraph.models.base import utcnow
from carbongraph.models.tables import CPY, C, M


def months_before(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    last = [
        31,
        29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][month - 1]
    return date(year, month, min(day.day, last))


async def _policies_by_zone(db: Any) -> list[tuple[Any, str]]:
    """Each policy with every time zone of the communities of its programme."""
    policies = list(await db.execute(sa.select(CPY).where(CPY.c.expiry_months.is_not(None))))
    out = []
    for policy in policies:
        zones = await db.execute(
            sa.select(C.c.timezone)
            .where(C.c.path.startswith(policy.owner_path, autoescape=False))
            .distinct()
            .order_by(C.c.timezone)
        )
        out += [(policy, timezone) for timezone in zones.scalars()]
    return out


async def expire_credits(db: Any, today: date | Days, by: str = "expiry") -> dict[str, int]:
    """Expire due credits in every programme with a policy; returns people and credits.

    ``today``: local days (each person's credits expire by the calendar of their household's
    community: granted before local midnight of the cutoff day) or one day for every zone."""
    days = as_days(today)
    people = credits = 0
    plans = []
    for policy, timezone in await _policies_by_zone(db):
        local_today = days.on(timezone)
        cutoff_day = months_before(local_today, policy.expiry_months)
        # People whose current household is in the programme, in a community of this zone.
        members = (
            sa.select(M.c.individual_id)
            .join(H, H.c.id == M.c.household_id)
            .join(C, C.c.id == H.c.community_id)
            .where(
                H.c.path.startswith(policy.owner_path, autoescape=False),
                C.c.timezone == timezone,
                M.c.valid_from <= local_today,
                sa.or_(M.c.valid_to.is_(None), M.c.valid_to > local_today),
            )
        )
        plans.append((members, cutoff_day, local_midnight(cutoff_day, timezone)))
    # Redemptions, grants and reversals of these people wait until the expiry is written
    # (locks.py), so what is computed as due is still true when it is debited; everyone of every
    # zone at once, in the one ascending order.
    due_people: set[int] = set()
    for members, _, _ in plans:
        due_people.update((await db.execute(members)).scalars())
    await lock_people(db, due_people)
    for members, cutoff_day, cutoff in plans:
        old_grants = sa.func.coalesce(
            sa.func.sum(
                sa.case((sa.and_(CE.c.amount > 0, CE.c.created_at < cutoff), CE.c.amount), else_=0)
            ),
            0,
        )
        debits = sa.func.coalesce(sa.func.sum(sa.case((CE.c.amount < 0, -CE.c.amount), else_=0)), 0)
        rows = await db.execute(
            sa.select(CE.c.individual_id, old_grants - debits)
            .where(CE.c.individual_id.in_(members))
            .group_by(CE.c.individual_id)
        )
        entries = [
            {
                "individual_id": pk,
                "kind": "EXPIRY",
                "amount": -int(due),
                "note": f"credits granted before {cutoff_day} expired",
                "created_by": by,
                "created_at": utcnow(),
            }
            for pk, due in rows
            if due and due > 0
        ]
        if entries:
            await db.execute(sa.insert(CE), entries)
            await live.credits_changed(db, [e["individual_id"] for e in entries])
            people += len(entries)
            credits += sum(-e["amount"] for e in entries)
    return {"people": people, "credits": credits}
