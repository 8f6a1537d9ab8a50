"""A campus and a village of one university, with hand-chosen readings, for statements and
leaderboards. Another tenant (one home of 3 people: with k = 3 not a small cell, so it does not
make the university a complementary cell) stands apart for isolation tests.

Campus (dorm rooms, daily kWh / people → kWh per person): r1 6/3 = 2, r2 6/3 = 2 (r1 and r2
are identical: a tie), r3 3/2 = 1.5, r5 9/3 = 3, r6 3/3 = 1, r7 10/4 = 2.5; an APARTMENT (r4)
in building 1 is not a dorm room. Every room also uses 0.1 m³ of water per person per day.
Students r1p1 and r2p1 buy 2 L of gasoline on one day, r6p1 1 L. Reductions: r1p2 and r5p2
cycle 5 km (800 g each, a tie), r6p2 takes one subway trip (554 g).
Village homes: v1 10 kWh/day with 2 kWh/day of rooftop solar (3 people), v2 8 kWh/day (2), v3
no readings (1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.accounting.ingest import ActivityInput, ingest
from carbongraph.actions.record import ActionInput, record_actions
from carbongraph.authz import PLATFORM, Role
from carbongraph.db import request_db
from carbongraph.demo.seed import HierarchyWriter
from carbongraph.resolvers.dataloaders import C, E, H
from tests.world import grant

START = date(2026, 10, 5)  # a Monday; the period is four weeks
END = date(2026, 11, 1)
PERIOD = {"from": START.isoformat(), "to": END.isoformat()}
PREVIOUS_START = date(2026, 9, 7)
TODAY = date(2026, 11, 20)

# room → (building, people, dwelling type, daily kWh, daily kWh in the previous period)
ROOMS = {
    "r1": (1, 3, "DORM_ROOM", "6", "7"),
    "r2": (1, 3, "DORM_ROOM", "6", None),
    "r3": (1, 2, "DORM_ROOM", "3", None),
    "r4": (1, 2, "APARTMENT", "4", None),
    "r5": (2, 3, "DORM_ROOM", "9", None),
    "r6": (2, 3, "DORM_ROOM", "3", None),
    "r7": (2, 4, "DORM_ROOM", "10", None),
}
HOMES = {"v1": (3, "10", "2"), "v2": (2, "8", None), "v3": (1, None, None)}


@dataclass
class Campus:
    enterprise: int
    campus: int
    buildings: list[int]
    village: int
    rooms: dict[str, int] = field(default_factory=dict)
    homes: dict[str, int] = field(default_factory=dict)
    people: dict[str, list[int]] = field(default_factory=dict)  # room/home → individuals
    other_enterprise: int = 0
    other_household: int = 0


def _days(start: date, count: int) -> list[date]:
    return [start + timedelta(days=n) for n in range(count)]


async def build_campus(engine: AsyncEngine) -> Campus:
    async with engine.begin() as conn:
        w = HierarchyWriter(conn, random.Random(11))
        uni = await w.node(E, "t:uni", "", "e", name="Test University", kind="UNIVERSITY")
        campus = await w.node(
            C,
            "t:campus",
            uni.path,
            "c",
            name="Lakeside Campus",
            kind="CAMPUS",
            region_code="CN-ZJ",
            timezone="Asia/Shanghai",
            enterprise_id=uni.id,
            parent_id=None,
        )
        buildings = []
        for b in (1, 2):
            buildings.append(
                await w.node(
                    C,
                    f"t:b{b}",
                    campus.path,
                    "c",
                    name=f"Building {b}",
                    kind="BUILDING",
                    region_code="CN-ZJ",
                    timezone="Asia/Shanghai",
                    enterprise_id=uni.id,
                    parent_id=campus.id,
                )
            )
        village = await w.node(
            C,
            "t:village",
            uni.path,
            "c",
            name="Staff Village",
            kind="VILLAGE",
            region_code="CN-ZJ",
            timezone="Asia/Shanghai",
            enterprise_id=uni.id,
            parent_id=None,
        )
        world = Campus(uni.id, campus.id, [b.id for b in buildings], village.id)
        for room, (b, people, dwelling, _, _) in ROOMS.items():
            building = buildings[b - 1]
            row = await w.node(
                H,
                f"t:{room}",
                building.path,
                "h",
                name=f"Room {room}",
                community_id=building.id,
                dwelling_type=dwelling,
                has_rooftop_solar=False,
            )
            world.rooms[room] = row.id
            world.people[room] = await w.people(row, people, f"t:{room}", date(2025, 9, 1))
        for home, (people, _, _) in HOMES.items():
            row = await w.node(
                H,
                f"t:{home}",
                village.path,
                "h",
                name=f"Home {home}",
                community_id=village.id,
                dwelling_type="HOUSE",
                has_rooftop_solar=home == "v1",
            )
            world.homes[home] = row.id
            world.people[home] = await w.people(row, people, f"t:{home}", date(2024, 1, 1))
        other = await w.node(E, "t:other", "", "e", name="Other Org", kind="COMPANY")
        other_c = await w.node(
            C,
            "t:other:c",
            other.path,
            "c",
            name="Elsewhere",
            kind="VILLAGE",
            region_code="CN-GD",
            timezone="Asia/Shanghai",
            enterprise_id=other.id,
            parent_id=None,
        )
        other_h = await w.node(
            H,
            "t:other:h",
            other_c.path,
            "h",
            name="Far away",
            community_id=other_c.id,
            dwelling_type="HOUSE",
            has_rooftop_solar=False,
        )
        await w.people(other_h, 3, "t:other:h", date(2024, 1, 1))
        world.other_enterprise, world.other_household = other.id, other_h.id

        inputs = []

        def reading(account: str, pk: int, activity: str, quantity: str, unit: str, day: date):
            inputs.append(
                ActivityInput(
                    account,
                    pk,
                    activity,
                    quantity,
                    unit,
                    day,
                    day,
                    source="METER" if account == "Household" else "APP",
                    external_id=f"t:{account}:{pk}:{activity}:{day}",
                )
            )

        for room, (_, people, _, kwh, previous_kwh) in ROOMS.items():
            pk = world.rooms[room]
            for day in _days(START, 28):
                reading("Household", pk, "ELECTRICITY", kwh, "kWh", day)
                reading("Household", pk, "WATER", f"{people / 10:.1f}", "m3", day)
            if previous_kwh:
                for day in _days(PREVIOUS_START, 28):
                    reading("Household", pk, "ELECTRICITY", previous_kwh, "kWh", day)
        for home, (_, kwh, solar) in HOMES.items():
            for day in _days(START, 28) if kwh else []:
                reading("Household", world.homes[home], "ELECTRICITY", kwh, "kWh", day)
                if solar:
                    reading("Household", world.homes[home], "ROOFTOP_SOLAR", solar, "kWh", day)
        fuel_day = START + timedelta(days=3)
        for room, litres in (("r1", "2"), ("r2", "2"), ("r6", "1")):
            reading("Individual", world.people[room][0], "GASOLINE", litres, "L", fuel_day)
        result = await ingest(conn, inputs, today=TODAY, recorded_by="test")
        assert not result.errors, result.errors[:3]

    async with request_db(engine, write=True) as db:
        day = START + timedelta(days=10)
        actions = [
            ActionInput(world.people["r1"][1], "CYCLING_KM", 5, day, "t:a1"),
            ActionInput(world.people["r5"][1], "CYCLING_KM", 5, day, "t:a2"),
            ActionInput(world.people["r6"][1], "SUBWAY_TRIP", 1, day, "t:a3"),
        ]
        result = await record_actions(db, actions, today=TODAY, viewer=None, recorded_by="test")
        assert not result.errors, result.errors

    await grant(engine, "admin", Role.PLATFORM_ADMIN, PLATFORM, 0)
    await grant(engine, "manager", Role.COMMUNITY_MANAGER, "Community", campus.id)
    await grant(engine, "analyst", Role.ESG_ANALYST, "Enterprise", uni.id)
    await grant(engine, "org-admin", Role.ORG_ADMIN, "Enterprise", uni.id)
    await grant(engine, "student", Role.RESIDENT, "Individual", world.people["r1"][0])
    await grant(engine, "other-admin", Role.ORG_ADMIN, "Enterprise", other.id)
    return world
