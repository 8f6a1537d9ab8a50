"""Reductions per capita: the campus headline "3.94 kg CO2 reduced per person in 30 days".

`Reductions.memberCount` and `perCapita` divide by the people in the node at the period's end
(the footprint's member count), rounded half-even to whole grams, and are withheld with the
rest of the figures for small cells.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta

import sqlalchemy as sa

from carbongraph.accounting.reads import per_capita
from carbongraph.actions.catalog import Catalog
from carbongraph.actions.record import ActionInput, record_actions
from carbongraph.authz import PLATFORM, Role
from carbongraph.demo.seed import HierarchyWriter
from carbongraph.resolvers.dataloaders import C, E, H
from tests.world import gid, grant

START = date(2026, 9, 1)
DAYS = 30
END = START + timedelta(days=DAYS - 1)
STUDENTS = 100
PLATES = 1970  # clean plates eaten up by the whole campus in the 30 days

REDUCTIONS = """query($id: ID!, $from: Date!, $to: Date!) { node(id: $id) {
  ... on Community { reductions(period: {from: $from, to: $to}) { ...R } }
  ... on Enterprise { reductions(period: {from: $from, to: $to}) { ...R } }
  ... on Household { reductions(period: {from: $from, to: $to}) { ...R } } } }
fragment R on Reductions { suppressed total scope3Plus memberCount
  perCapita { scope1 scope2 scope3 scope3Plus totalWithinScopes total } }"""
INVENTORY = """query($id: ID!) { ghgInventory(nodeId: $id, year: 2026) {
  scope3Plus memberCount perCapita { scope3Plus reductionsWithinScopes net } csv json } }"""


def test_per_capita_rounds_half_even_like_the_footprint():
    assert per_capita(394_000, 100) == 3_940
    assert per_capita(394_050, 100) == 3_940  # 3940.5 → even
    assert per_capita(394_150, 100) == 3_942  # 3941.5 → even
    assert per_capita(-5, 2) == -2
    assert per_capita(7, 3) == 2
    assert per_capita(1_000, 0) is None


async def _campus(engine) -> tuple[int, int, list[int], list[int]]:
    """A university with one campus of 5 dorm buildings × 20 rooms × 1 student."""
    async with engine.begin() as conn:
        w = HierarchyWriter(conn, random.Random(7))
        uni = await w.node(E, "pc:uni", "", "e", name="Academy", kind="UNIVERSITY")
        campus = await w.node(
            C,
            "pc:campus",
            uni.path,
            "c",
            name="Campus",
            kind="CAMPUS",
            region_code="CN-ZJ",
            timezone="Asia/Shanghai",
            enterprise_id=uni.id,
            parent_id=None,
        )
        rooms, students = [], []
        for b in range(5):
            building = await w.node(
                C,
                f"pc:b{b}",
                campus.path,
                "c",
                name=f"Building {b}",
                kind="BUILDING",
                region_code="CN-ZJ",
                timezone="Asia/Shanghai",
                enterprise_id=uni.id,
                parent_id=campus.id,
            )
            for r in range(20):
                room = await w.node(
                    H,
                    f"pc:b{b}:r{r}",
                    building.path,
                    "h",
                    name=f"Room {b}{r:02d}",
                    community_id=building.id,
                    dwelling_type="DORM_ROOM",
                    has_rooftop_solar=False,
                )
                rooms.append(room.id)
                students += await w.people(room, 1, f"pc:b{b}:r{r}", date(2025, 9, 1))
    return uni.id, campus.id, rooms, students


async def test_a_campus_of_100_students_reducing_394_kg_in_30_days(engine, api):
    uni, campus, rooms, students = await _campus(engine)
    assert len(students) == STUDENTS
    # Partner-verified clean plates, one a day per student, spread unevenly over the campus.
    per_student = [PLATES // STUDENTS + (1 if n < PLATES % STUDENTS else 0) for n in range(100)]
    inputs = [
        ActionInput(pk, "CLEAN_PLATE", 1, START + timedelta(days=d), f"plate-{pk}-{d}")
        for pk, plates in zip(students, per_student, strict=True)
        for d in range(plates)
    ]
    async with engine.begin() as conn:
        catalog = await Catalog.load(conn)
        result = await record_actions(conn, inputs, today=END, viewer=None, recorded_by="test")
    assert result.errors == [] and len(result.created) == PLATES
    avoided = PLATES * catalog.valid_on("CLEAN_PLATE", START).avoided_g_per_unit
    assert avoided == 394_000

    await grant(engine, "esg-uni", Role.ESG_ANALYST, "Enterprise", uni)
    await grant(engine, "admin-pc", Role.PLATFORM_ADMIN, PLATFORM, 0)
    span = {"from": START.isoformat(), "to": END.isoformat()}
    for node in (gid("Community", campus), gid("Enterprise", uni)):
        for subject in ("admin-pc", "esg-uni"):
            body = await api.gql(REDUCTIONS, {"id": node, **span}, subject=subject)
            reductions = body["data"]["node"]["reductions"]
            assert reductions == {
                "suppressed": False,
                "total": 394_000,
                "scope3Plus": 394_000,
                "memberCount": 100,
                "perCapita": {
                    "scope1": 0,
                    "scope2": 0,
                    "scope3": 0,
                    "scope3Plus": 3_940,
                    "totalWithinScopes": 0,
                    "total": 3_940,
                },
            }, (node, subject)

    # One student's room: the analyst may not see one person's figures, the admin may.
    room = gid("Household", rooms[0])
    body = await api.gql(REDUCTIONS, {"id": room, **span}, subject="esg-uni")
    withheld = body["data"]["node"]["reductions"]
    assert withheld["suppressed"] is True
    assert withheld["memberCount"] is None and withheld["perCapita"] is None
    body = await api.gql(REDUCTIONS, {"id": room, **span}, subject="admin-pc")
    shown = body["data"]["node"]["reductions"]
    assert shown["memberCount"] == 1
    assert shown["perCapita"]["total"] == shown["total"] == per_student[0] * 200

    # The year's inventory: the same per-capita reductions, typed, in CSV and in JSON.
    body = await api.gql(INVENTORY, {"id": gid("Community", campus)}, subject="esg-uni")
    inventory = body["data"]["ghgInventory"]
    assert inventory["memberCount"] == 100 and inventory["scope3Plus"] == 394_000
    assert inventory["perCapita"]["scope3Plus"] == 3_940
    assert inventory["perCapita"]["reductionsWithinScopes"] == 0
    document = json.loads(inventory["json"])
    assert document["per_capita"]["scope_3_plus"] == 3_940
    assert document["per_capita"]["reductions_within_scopes"] == 0
    rows = [line.split(",") for line in inventory["csv"].splitlines()]
    header = rows[0]
    apart = {
        r[header.index("item")]: r[header.index("per_capita_grams")]
        for r in rows[1:]
        if r[header.index("section")] == "reported_apart"
    }
    assert apart == {
        "scope_3_plus": "3940",
        "reductions_scope_1": "0",
        "reductions_scope_2": "0",
        "reductions_scope_3": "0",
    }


async def test_no_members_no_per_capita(engine, api):
    """A community nobody lives in yet: reductions are 0 and there is no per-capita figure."""
    async with engine.begin() as conn:
        w = HierarchyWriter(conn, random.Random(3))
        empty = await w.node(
            C,
            "pc:empty",
            "",
            "c",
            name="Empty",
            kind="VILLAGE",
            region_code="CN-ZJ",
            timezone="Asia/Shanghai",
            enterprise_id=None,
            parent_id=None,
        )
        count = await conn.scalar(sa.select(sa.func.count()).select_from(H))
    assert count == 0
    await grant(engine, "admin-pc", Role.PLATFORM_ADMIN, PLATFORM, 0)
    span = {"from": START.isoformat(), "to": END.isoformat()}
    body = await api.gql(REDUCTIONS, {"id": gid("Community", empty.id), **span}, subject="admin-pc")
    reductions = body["data"]["node"]["reductions"]
    assert reductions["memberCount"] == 0 and reductions["perCapita"] is None
    assert reductions["total"] == 0
