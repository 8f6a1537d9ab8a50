"""A Guangdong village household of three, for hand-checked accounting tests."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.authz import PLATFORM, Role
from carbongraph.demo.seed import HierarchyWriter
from carbongraph.resolvers.dataloaders import C, E, H
from tests.world import gid, grant


@dataclass
class Village:
    enterprise: int
    community: int
    household: int
    members: list[int]
    other_household: int


async def build_village(engine: AsyncEngine) -> Village:
    async with engine.begin() as conn:
        w = HierarchyWriter(conn, random.Random(3))
        ent = await w.node(E, "v:e", "", "e", name="Bao'an Programme", kind="CITY_PROGRAMME")
        com = await w.node(
            C,
            "v:c",
            ent.path,
            "c",
            name="Xinqiao",
            kind="VILLAGE",
            region_code="CN-GD",
            timezone="Asia/Shanghai",
            enterprise_id=ent.id,
            parent_id=None,
        )
        home = await w.node(
            H,
            "v:h1",
            com.path,
            "h",
            name="No. 1",
            community_id=com.id,
            dwelling_type="HOUSE",
            has_rooftop_solar=True,
        )
        members = await w.people(home, 3, "v:h1", date(2023, 1, 1))
        other = await w.node(
            H,
            "v:h2",
            com.path,
            "h",
            name="No. 2",
            community_id=com.id,
            dwelling_type="HOUSE",
            has_rooftop_solar=False,
        )
        await w.people(other, 1, "v:h2", date(2023, 1, 1))
    await grant(engine, "admin", Role.PLATFORM_ADMIN, PLATFORM, 0)
    await grant(engine, "manager", Role.COMMUNITY_MANAGER, "Community", com.id)
    return Village(ent.id, com.id, home.id, members, other.id)


RECORD = """
mutation($records: [RecordActivityInput!]!) { recordActivities(input: {records: $records}) {
  records { id activityType scope category locationBased marketBased cleanEnergyOffset }
  createdCount unchangedCount userErrors { field code message } } }
"""


def activity(
    account: str, activity_type: str, quantity: str, unit: str, start: str, end: str, **extra: str
) -> dict[str, str]:
    return {
        "accountId": account,
        "activityType": activity_type,
        "quantity": quantity,
        "unit": unit,
        "periodStart": start,
        "periodEnd": end,
        **extra,
    }


def may_2023(village: Village) -> list[dict[str, str]]:
    """The acceptance example: 300 kWh, 12 m³ gas, 9 m³ water, 120 kWh rooftop solar."""
    home = gid("Household", village.household)
    people = [gid("Individual", i) for i in village.members]
    start, end = "2023-05-01", "2023-05-31"
    return [
        activity(home, "ELECTRICITY", "300", "kWh", start, end, externalId="h1-elec-2023-05"),
        activity(home, "ROOFTOP_SOLAR", "120", "kWh", start, end, externalId="h1-pv-2023-05"),
        *[
            activity(p, "NATURAL_GAS", q, "m3", start, end, externalId=f"gas-{n}")
            for n, (p, q) in enumerate(zip(people, ["5", "4", "3"], strict=True))
        ],
        *[
            activity(p, "WATER", "3000", "L", start, end, externalId=f"water-{n}")
            for n, p in enumerate(people)
        ],
    ]
