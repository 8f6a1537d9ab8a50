"""Demo data modelled on the Energy Expert pilots (see ``shared/seed``). Idempotent: a second
run finds the demo rows by ``external_ref`` and adds nothing.

- Xinqiao Shiju heritage village (Shenzhen): 589 residents in 200 households, directly under
  the platform; some homes have rooftop solar.
- China Academy of Art: Xiangshan campus → 5 dorm buildings → 100 dorm rooms of 4 students.
- Two partner enterprises with employees: a property manager running a residential compound,
  and a tech company whose staff live in the village and the compound.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from carbongraph.authz import PLATFORM, Role
from carbongraph.models.base import utcnow
from carbongraph.resolvers.dataloaders import EM, C, E, H, I
from carbongraph.services import periods
from carbongraph.services.access import G

if TYPE_CHECKING:
    from carbongraph.accounting.ingest import ActivityInput

SURNAMES = [
    "Li",
    "Wang",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Huang",
    "Zhao",
    "Wu",
    "Zhou",
    "Xu",
    "Sun",
    "Ma",
    "Zhu",
    "Hu",
    "Guo",
    "He",
    "Lin",
    "Luo",
    "Gao",
]
GIVEN = [
    "Wei",
    "Fang",
    "Min",
    "Jing",
    "Li",
    "Qiang",
    "Lei",
    "Jun",
    "Yan",
    "Hui",
    "Xin",
    "Yu",
    "Ting",
    "Hao",
    "Chen",
    "Yi",
    "Jie",
    "Lan",
    "Ming",
    "Xiu",
    "Bo",
    "Na",
    "Tao",
    "Ying",
]


@dataclass(frozen=True)
class DemoPrincipal:
    subject: str
    role: Role
    node_type: str
    node_ref: str | None  # external_ref of the node, or None for the platform
    note: str


DEMO_PRINCIPALS = [
    DemoPrincipal("demo-platform-admin", Role.PLATFORM_ADMIN, PLATFORM, None, "everything"),
    DemoPrincipal(
        "demo-org-admin",
        Role.ORG_ADMIN,
        "Enterprise",
        "demo:pengcheng",
        "Pengcheng Property Services and its Binhai Garden compound",
    ),
    DemoPrincipal(
        "demo-esg-analyst",
        Role.ESG_ANALYST,
        "Enterprise",
        "demo:caa",
        "China Academy of Art aggregates, no personal data",
    ),
    DemoPrincipal(
        "demo-community-manager",
        Role.COMMUNITY_MANAGER,
        "Community",
        "demo:xinqiao",
        "Xinqiao Shiju heritage village",
    ),
    DemoPrincipal(
        "demo-resident",
        Role.RESIDENT,
        "Individual",
        "demo:xinqiao:h1:p1",
        "one villager: self and own household",
    ),
    DemoPrincipal(
        "demo-partner-service",
        Role.PARTNER_SERVICE,
        "Enterprise",
        "demo:qianhai",
        "machine client of Qianhai Green Tech, nothing personal",
    ),
]


def demo_tokens(seed_output: str) -> dict[str, str]:
    """Role → token, from the ``ROLE=token`` lines that ``carbongraph seed --demo`` prints."""
    roles = {p.role.value for p in DEMO_PRINCIPALS}
    pairs = (line.split("=", 1) for line in seed_output.splitlines() if "=" in line)
    return {role: token for role, token in pairs if role in roles}


class HierarchyWriter:
    """Direct inserts for demo and test data (no GraphQL, no per-row authz)."""

    def __init__(self, conn: AsyncConnection, rng: random.Random) -> None:
        self.conn = conn
        self.rng = rng
        self.now = utcnow()
        self.names = 0

    async def find(self, table: sa.Table, ref: str) -> Any:
        return (
            await self.conn.execute(sa.select(table).where(table.c.external_ref == ref))
        ).first()

    async def node(
        self, table: sa.Table, ref: str, parent_path: str, prefix: str, **values: Any
    ) -> Any:
        existing = await self.find(table, ref)
        if existing is not None:
            return existing
        pk = (
            await self.conn.execute(
                sa.insert(table)
                .values(
                    external_ref=ref,
                    path=f"pending/{ref}/",
                    created_at=self.now,
                    updated_at=self.now,
                    **values,
                )
                .returning(table.c.id)
            )
        ).scalar_one()
        await self.conn.execute(
            sa.update(table).where(table.c.id == pk).values(path=f"{parent_path}{prefix}{pk}/")
        )
        return (await self.conn.execute(sa.select(table).where(table.c.id == pk))).one()

    async def enterprise(self, ref: str, name: str, kind: str) -> Any:
        return await self.node(E, ref, "", "e", name=name, kind=kind)

    async def community(
        self,
        ref: str,
        name: str,
        kind: str,
        region_code: str,
        *,
        enterprise: Any = None,
        parent: Any = None,
    ) -> Any:
        """A community (in China's time zone) under ``parent`` if given, else at the top of
        ``enterprise`` or of the platform."""
        above = parent or enterprise
        return await self.node(
            C,
            ref,
            above.path if above is not None else "",
            "c",
            name=name,
            kind=kind,
            region_code=region_code,
            timezone="Asia/Shanghai",
            enterprise_id=enterprise.id if enterprise is not None else None,
            parent_id=parent.id if parent is not None else None,
        )

    async def household(
        self, ref: str, community: Any, name: str, dwelling_type: str, *, solar: bool = False
    ) -> Any:
        return await self.node(
            H,
            ref,
            community.path,
            "h",
            name=name,
            community_id=community.id,
            dwelling_type=dwelling_type,
            has_rooftop_solar=solar,
        )

    def person_name(self) -> str:
        self.names += 1
        return (
            f"{self.rng.choice(SURNAMES)} {self.rng.choice(GIVEN)}{self.rng.choice(GIVEN).lower()}"
        )

    async def people(
        self,
        household: Any,
        count: int,
        ref_prefix: str,
        since: date,
        subject_first: str | None = None,
    ) -> list[int]:
        ids = []
        for n in range(1, count + 1):
            ref = f"{ref_prefix}:p{n}"
            existing = await self.find(I, ref)
            if existing is not None:
                ids.append(existing.id)
                continue
            name = self.person_name()
            subject = subject_first if n == 1 and subject_first else None
            pk = (
                await self.conn.execute(
                    sa.insert(I)
                    .values(
                        display_name=name,
                        email=None,
                        subject=subject,
                        external_ref=ref,
                        created_at=self.now,
                        updated_at=self.now,
                    )
                    .returning(I.c.id)
                )
            ).scalar_one()
            await periods.open_membership(self.conn, pk, household.id, since, household.path)
            ids.append(pk)
        return ids

    async def employ(self, individual_ids: list[int], enterprise_id: int, since: date) -> None:
        for pk in individual_ids:
            exists = await self.conn.scalar(
                sa.select(EM.c.id).where(
                    EM.c.individual_id == pk, EM.c.enterprise_id == enterprise_id
                )
            )
            if exists is None:
                await periods.open_employment(self.conn, pk, enterprise_id, since)


# Daily readings per dwelling type: (activity, unit, low, high) per day.
DAILY_USE = {
    "HOUSE": [
        ("ELECTRICITY", "kWh", 4.0, 14.0),
        ("WATER", "m3", 0.25, 0.7),
        ("NATURAL_GAS", "m3", 0.2, 1.1),
    ],
    "APARTMENT": [
        ("ELECTRICITY", "kWh", 3.0, 10.0),
        ("WATER", "m3", 0.15, 0.5),
        ("NATURAL_GAS", "m3", 0.1, 0.8),
    ],
    "DORM_ROOM": [("ELECTRICITY", "kWh", 1.5, 7.5)],
}
DEMO_DAYS = 28


def demo_days(today: date) -> list[date]:
    """The DEMO_DAYS days up to yesterday."""
    first = today - timedelta(days=DEMO_DAYS)
    return [first + timedelta(days=offset) for offset in range(DEMO_DAYS)]


def meter_reading(
    home: Any, activity: str, quantity: str, unit: str, day: date, meter_ref: str
) -> ActivityInput:
    """One day's reading of a demo household's meter. Its key carries the date, so a later
    run adds only new days."""
    from carbongraph.accounting.ingest import ActivityInput

    return ActivityInput(
        "Household",
        home.id,
        activity,
        quantity,
        unit,
        day,
        day,
        source="METER",
        external_id=f"{home.external_ref}:{activity}:{day}",
        meter_ref=meter_ref,
    )


async def ingest_readings(
    conn: AsyncConnection, inputs: list[ActivityInput], today: date, what: str
) -> int:
    """Records added; any refused reading is a bug in the generator, so it stops the seed."""
    from carbongraph.accounting.ingest import ingest

    added = 0
    for start in range(0, len(inputs), 5000):
        result = await ingest(
            conn, inputs[start : start + 5000], today=today, recorded_by="seed", use_copy=True
        )
        if result.errors:
            raise RuntimeError(f"demo {what} refused: {result.errors[:3]}")
        added += result.created_count
    return added


async def grant(
    conn: AsyncConnection, subject: str, role: Role, node_type: str, node_id: int
) -> None:
    """Grant ``role`` on the node to ``subject``, unless a run before did."""
    exists = await conn.scalar(
        sa.select(G.c.id).where(
            G.c.principal == subject,
            G.c.role == role.value,
            G.c.node_type == node_type,
            G.c.node_id == node_id,
        )
    )
    if exists is None:
        await conn.execute(
            sa.insert(G).values(
                principal=subject,
                role=role.value,
                node_type=node_type,
                node_id=node_id,
                created_at=utcnow(),
                created_by="seed",
            )
        )


async def seed_activity(conn: AsyncConnection) -> int:
    """Daily meter readings for every demo household over the 28 days up to yesterday, and
    rooftop solar where homes have it."""
    today = datetime.now(UTC).date()
    homes = list(
        await conn.execute(
            sa.select(H.c.id, H.c.external_ref, H.c.dwelling_type, H.c.has_rooftop_solar)
            .where(H.c.external_ref.like("demo:%"))
            .order_by(H.c.id)
        )
    )
    inputs = []
    for home in homes:
        # Each home keeps its own habits: a per-home scale, stable across runs.
        scale = random.Random(home.external_ref).uniform(0.7, 1.3)
        for day in demo_days(today):
            daily = random.Random(f"{home.external_ref}:{day}")
            uses = list(DAILY_USE[home.dwelling_type])
            if home.has_rooftop_solar:
                uses.append(("ROOFTOP_SOLAR", "kWh", 2.0, 7.0))
            for activity, unit, low, high in uses:
                quantity = round(daily.uniform(low, high) * scale, 2)
                inputs.append(meter_reading(home, activity, str(quantity), unit, day, "main"))
    return await ingest_readings(conn, inputs, today, "activity")


async def seed_demo(engine: AsyncEngine) -> dict[str, Any]:
    """Create the demo hierarchy and grants; returns counts and the demo principals' nodes."""
    rng = random.Random(20231101)
    async with engine.begin() as conn:
        w = HierarchyWriter(conn, rng)
        village = await w.community(
            "demo:xinqiao", "Xinqiao Shiju Heritage Village", "VILLAGE", "CN-GD"
        )
        village_people: list[int] = []
        # 589 residents in 200 households: 189 homes of 3 and 11 of 2 (589 = 189*3 + 11*2).
        for n in range(1, 201):
            home = await w.household(
                f"demo:xinqiao:h{n}", village, f"Xinqiao No. {n}", "HOUSE", solar=n % 6 == 0
            )
            size = 3 if n <= 189 else 2
            village_people += await w.people(
                home,
                size,
                f"demo:xinqiao:h{n}",
                date(2023, 1, 1),
                subject_first="demo-resident" if n == 1 else None,
            )

        caa = await w.enterprise("demo:caa", "China Academy of Art", "UNIVERSITY")
        campus = await w.community(
            "demo:caa:xiangshan", "Xiangshan Campus", "CAMPUS", "CN-ZJ", enterprise=caa
        )
        students = 0
        for b in range(1, 6):
            building = await w.community(
                f"demo:caa:b{b}",
                f"Dorm Building {b}",
                "BUILDING",
                "CN-ZJ",
                enterprise=caa,
                parent=campus,
            )
            for r in range(1, 21):
                room = await w.household(
                    f"demo:caa:b{b}:r{r}", building, f"Room {b}{r:02d}", "DORM_ROOM"
                )
                students += len(await w.people(room, 4, f"demo:caa:b{b}:r{r}", date(2025, 9, 1)))

        pengcheng = await w.enterprise(
            "demo:pengcheng", "Pengcheng Property Services", "PROPERTY_MANAGER"
        )
        compound = await w.community(
            "demo:pengcheng:binhai",
            "Binhai Garden",
            "RESIDENTIAL_COMPOUND",
            "CN-GD",
            enterprise=pengcheng,
        )
        compound_people: list[int] = []
        for n in range(1, 41):
            flat = await w.household(
                f"demo:binhai:h{n}",
                compound,
                f"Binhai Garden {1 + (n - 1) // 8}-{n:02d}",
                "APARTMENT",
            )
            compound_people += await w.people(
                flat, 2 + n % 2, f"demo:binhai:h{n}", date(2024, 3, 1)
            )
        await w.employ(compound_people[:6] + village_people[10:16], pengcheng.id, date(2022, 5, 1))

        qianhai = await w.enterprise("demo:qianhai", "Qianhai Green Tech", "COMPANY")
        await w.community(
            "demo:qianhai:park", "Qianhai Office Park", "OFFICE_PARK", "CN-GD", enterprise=qianhai
        )
        await w.employ(
            village_people[100:120] + compound_people[20:30],
            qianhai.id,
            date(2024, 1, 1) + timedelta(days=0),
        )

        for principal in DEMO_PRINCIPALS:
            node_id = 0
            if principal.node_ref is not None:
                table = {"Enterprise": E, "Community": C, "Individual": I}[principal.node_type]
                node_id = (await w.find(table, principal.node_ref)).id
            await grant(conn, principal.subject, principal.role, principal.node_type, node_id)

        activity_added = await seed_activity(conn)
        activity_added += await seed_campus_statement_demo(conn)

        counts = {
            "activity_records_added": activity_added,
            "village_residents": len(village_people),
            "students": students,
            "compound_residents": len(compound_people),
        }
        for name, table in (
            ("enterprises", E),
            ("communities", C),
            ("households", H),
            ("individuals", I),
        ):
            counts[name] = await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0
        return counts


# -- Campus statement demo (engagement) ---------------------------------------------------------
# Kept apart from the pilots above: water readings for the dorm rooms (their electricity comes
# from seed_activity) and a student's login, so that `make serve` shows a dorm room's statement
# page with a real ranking among the campus's 100 rooms.

DEMO_STUDENT = "demo-student"
DEMO_STUDENT_ROOM = "demo:caa:b1:r1"


async def seed_campus_statement_demo(conn: AsyncConnection) -> int:
    """Daily water readings per dorm room over the demo days (deterministic per room and day;
    keys carry the date, so a later run adds only new days), and a RESIDENT grant for the first
    student of room 101 as ``demo-student``. Returns the records added."""
    today = datetime.now(UTC).date()
    rooms = list(
        await conn.execute(
            sa.select(H.c.id, H.c.external_ref)
            .where(H.c.external_ref.like("demo:caa:%"), H.c.dwelling_type == "DORM_ROOM")
            .order_by(H.c.id)
        )
    )
    inputs = []
    for room in rooms:
        scale = random.Random(f"{room.external_ref}:water").uniform(0.7, 1.4)
        for day in demo_days(today):
            # Four students, 60–160 litres each a day.
            litres = random.Random(f"{room.external_ref}:water:{day}").uniform(240, 640) * scale
            inputs.append(meter_reading(room, "WATER", f"{litres / 1000:.3f}", "m3", day, "water"))
    added = await ingest_readings(conn, inputs, today, "water readings")
    student = await conn.scalar(
        sa.select(I.c.id).where(I.c.external_ref == f"{DEMO_STUDENT_ROOM}:p1")
    )
    if student is not None:
        await grant(conn, DEMO_STUDENT, Role.RESIDENT, "Individual", student)
    return added
