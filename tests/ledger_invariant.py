"""The ledger invariant every concurrency case ends with (issue 12).

For every person: the balance is the sum of their entries and never below zero, except after a
reversal of credits already spent (the documented reversal-after-spend); every action record has
at most one GRANT and at most one REVERSAL (campaign bonuses are extra GRANT entries of their own
and are not counted); and the reductions in the roll-up (``footprint_total``, kind "reduction") of
the person and of each ancestor (household, communities, enterprise, platform) are exactly what
the GRANT and REVERSAL entries imply: the action's avoided grams moved once per entry.

Read as the database owner (every row, whatever row-level security shows a viewer).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.accounting.rollup import PLATFORM_KEY, VIA_EMPLOYEES, chain_from_path
from carbongraph.models import ActionRecordRow, CreditEntry, FootprintTotal, Household

AR = ActionRecordRow.__table__
CE = CreditEntry.__table__
FT = FootprintTotal.__table__
H = Household.__table__

BONUS_NOTE = "campaign %"  # campaigns.bonus_entries: "campaign {id} bonus"


@dataclass
class Ledger:
    """What the invariant found, for the cases' own assertions and failure messages."""

    balances: dict[int, int] = field(default_factory=dict)
    grants: Counter[int] = field(default_factory=Counter)  # action record → GRANT entries
    reversals: Counter[int] = field(default_factory=Counter)  # action record → REVERSAL entries
    reductions: dict[tuple[str, int, str], int] = field(default_factory=dict)
    expected_reductions: dict[tuple[str, int, str], int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


async def read_ledger(engine: AsyncEngine) -> Ledger:
    ledger = Ledger()
    async with engine.connect() as conn:
        ledger.balances = {
            pk: int(total)
            for pk, total in await conn.execute(
                sa.select(CE.c.individual_id, sa.func.sum(CE.c.amount)).group_by(CE.c.individual_id)
            )
        }
        reversed_people = set(
            (
                await conn.execute(
                    sa.select(CE.c.individual_id).where(CE.c.kind == "REVERSAL").distinct()
                )
            ).scalars()
        )
        for action_id, kind, count in await conn.execute(
            sa.select(CE.c.action_record_id, CE.c.kind, sa.func.count())
            .where(
                CE.c.action_record_id.is_not(None),
                CE.c.kind.in_(["GRANT", "REVERSAL"]),
                sa.not_(sa.func.coalesce(CE.c.note, "").like(BONUS_NOTE)),
            )
            .group_by(CE.c.action_record_id, CE.c.kind)
        ):
            (ledger.grants if kind == "GRANT" else ledger.reversals)[action_id] = int(count)
        actions = list(
            await conn.execute(
                sa.select(AR.c.id, AR.c.individual_id, AR.c.avoided_g, H.c.path).outerjoin(
                    H, H.c.id == AR.c.household_id
                )
            )
        )
        for node, node_id, via, grams in await conn.execute(
            sa.select(FT.c.node, FT.c.node_id, FT.c.via, sa.func.sum(FT.c.location_g))
            .where(FT.c.kind == "reduction", FT.c.via != VIA_EMPLOYEES)
            .group_by(FT.c.node, FT.c.node_id, FT.c.via)
        ):
            if grams:
                ledger.reductions[(node, node_id, via)] = int(grams)

    expected: dict[tuple[str, int, str], int] = defaultdict(int)
    for action_id, individual_id, avoided_g, path in actions:
        moved = ledger.grants[action_id] - ledger.reversals[action_id]
        if not moved:
            continue
        keys = [PLATFORM_KEY, ("I", individual_id, "")]
        if path is not None:
            keys += chain_from_path(path)
        for key in keys:
            expected[key] += moved * int(avoided_g)
    ledger.expected_reductions = {k: v for k, v in expected.items() if v}

    for action_id, count in sorted(ledger.grants.items()):
        if count > 1:
            ledger.problems.append(f"action {action_id}: {count} GRANT entries")
    for action_id, count in sorted(ledger.reversals.items()):
        if count > 1:
            ledger.problems.append(f"action {action_id}: {count} REVERSAL entries")
    for pk, total in sorted(ledger.balances.items()):
        if total < 0 and pk not in reversed_people:
            ledger.problems.append(f"person {pk}: balance {total} (overdrawn)")
    if ledger.reductions != ledger.expected_reductions:
        for key in sorted(set(ledger.reductions) | set(ledger.expected_reductions)):
            got, want = ledger.reductions.get(key, 0), ledger.expected_reductions.get(key, 0)
            if got != want:
                ledger.problems.append(
                    f"reductions of {key[0]}{key[1]}: {got} g in the roll-up, "
                    f"{want} g implied by the ledger"
                )
    return ledger


async def assert_ledger_invariant(engine: AsyncEngine) -> Ledger:
    ledger = await read_ledger(engine)
    assert ledger.problems == [], "ledger invariant broken:\n" + "\n".join(ledger.problems)
    return ledger
