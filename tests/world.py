"""A small two-tenant world for tests, written directly (not through GraphQL)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.authz import PLATFORM, Role
from carbongraph.demo.seed import HierarchyWriter
from carbongraph.models.base import utcnow
from carbongraph.resolvers.dataloaders import C, E, H
from carbongraph.schema.relay import to_global_id
from carbongraph.services import periods
from carbongraph.services.access import G

SINCE = date(2024, 1, 1)


@dataclass
class Tenant:
    enterprise: int
    communities: list[int] = field(default_factory=list)
    households: dict[int, list[int]] = field(default_factory=dict)  # community -> households
    members: dict[int, list[int]] = field(default_factory=dict)  # household -> individuals

    @property
    def all_households(self) -> list[int]:
        return [h for hs in self.households.values() for h in hs]

    @property
    def all_members(self) -> list[int]:
        return [i for ids in self.members.values() for i in ids]


@dataclass
class World:
    a: Tenant
    b: Tenant
    root_community: int
    employees_a: list[int]


def gid(type_name: str, pk: int) -> str:
    return to_global_id(type_name, pk)


async def grant(
    engine: AsyncEngine, principal: str, role: Role, node_type: str, node_id: int
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(G).values(
                principal=principal,
                role=role.value,
                node_type=node_type,
                node_id=node_id,
                created_at=utcnow(),
                created_by="test",
            )
        )


async def build_world(
    engine: AsyncEngine, *, communities: int = 2, households: int = 3, members: int = 2
) -> World:
    tenants = []
    async with engine.begin() as conn:
        w = HierarchyWriter(conn, random.Random(1))
        for letter in "ab":
            ent = await w.node(
                E, f"t:{letter}", "", "e", name=f"Enterprise {letter.upper()}", kind="COMPANY"
            )
            tenant = Tenant(ent.id)
            for c in range(communities):
                com = await w.node(
                    C,
                    f"t:{letter}:c{c}",
                    ent.path,
                    "c",
                    name=f"{letter.upper()} community {c}",
                    kind="VILLAGE",
                    region_code="CN-GD",
                    timezone="Asia/Shanghai",
                    enterprise_id=ent.id,
                    parent_id=None,
                )
                tenant.communities.append(com.id)
                tenant.households[com.id] = []
                for h in range(households):
                    ref = f"t:{letter}:c{c}:h{h}"
                    home = await w.node(
                        H,
                        ref,
                        com.path,
                        "h",
                        name=f"Home {letter}{c}-{h}",
                        community_id=com.id,
                        dwelling_type="HOUSE",
                        has_rooftop_solar=False,
                    )
                    tenant.households[com.id].append(home.id)
                    tenant.members[home.id] = await w.people(home, members, ref, SINCE)
            tenants.append(tenant)
        root = await w.node(
            C,
            "t:root",
            "",
            "c",
            name="Standalone village",
            kind="VILLAGE",
            region_code="CN-ZJ",
            timezone="Asia/Shanghai",
            enterprise_id=None,
            parent_id=None,
        )
        root_home = await w.node(
            H,
            "t:root:h0",
            root.path,
            "h",
            name="Root home",
            community_id=root.id,
            dwelling_type="HOUSE",
            has_rooftop_solar=True,
        )
        root_people = await w.people(root_home, 2, "t:root:h0", SINCE)
        # Employees of A: one person living in B's tenant, one in the standalone village.
        employees = [tenants[1].all_members[0], root_people[0]]
        for pk in employees:
            await periods.open_employment(conn, pk, tenants[0].enterprise, SINCE)
    a, b = tenants
    await grant(engine, "admin", Role.PLATFORM_ADMIN, PLATFORM, 0)
    await grant(engine, "org-a", Role.ORG_ADMIN, "Enterprise", a.enterprise)
    await grant(engine, "org-b", Role.ORG_ADMIN, "Enterprise", b.enterprise)
    await grant(engine, "esg-a", Role.ESG_ANALYST, "Enterprise", a.enterprise)
    await grant(engine, "cm-a0", Role.COMMUNITY_MANAGER, "Community", a.communities[0])
    first_home = a.households[a.communities[0]][0]
    await grant(engine, "resident-a", Role.RESIDENT, "Individual", a.members[first_home][0])
    await grant(engine, "partner-a", Role.PARTNER_SERVICE, "Enterprise", a.enterprise)
    return World(a=a, b=b, root_community=root.id, employees_a=employees)
