"""Small-cell suppression: the rules on their own, then through the API on both backends."""

from __future__ import annotations

import dataclasses
import random
from datetime import date

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from carbongraph.app import create_app
from carbongraph.authz import Role
from carbongraph.privacy import Cell, SuppressionReason, decide, decide_group, parent_paths
from carbongraph.resolvers.dataloaders import C, E, H
from carbongraph.seed import HierarchyWriter
from tests.conftest import Api
from tests.world import gid, grant

K = 10
SMALL = SuppressionReason.SMALL_CELL
COMPLEMENT = SuppressionReason.COMPLEMENTARY


# -- the rules ---------------------------------------------------------------------------------
def test_parent_paths() -> None:
    assert parent_paths("e1/") == [""]
    assert parent_paths("e1/c4/c9/h31/") == ["", "e1/", "e1/c4/", "e1/c4/c9/"]


def test_one_small_cell_takes_the_next_smallest_with_it() -> None:
    cells = [Cell("h1/", 3), Cell("h2/", 40), Cell("h3/", 12)]
    assert decide_group(cells, K) == {"h1/": SMALL, "h3/": COMPLEMENT}


def test_two_small_cells_together_below_k_take_a_third() -> None:
    cells = [Cell("a/", 2), Cell("b/", 3), Cell("c/", 50), Cell("d/", 20)]
    assert decide_group(cells, K) == {"a/": SMALL, "b/": SMALL, "d/": COMPLEMENT}


def test_small_cells_covering_k_together_need_nothing_more() -> None:
    cells = [Cell("a/", 6), Cell("b/", 7), Cell("c/", 50)]
    assert decide_group(cells, K) == {"a/": SMALL, "b/": SMALL}


def test_no_small_cell_no_suppression_unless_forced() -> None:
    cells = [Cell("a/", 30), Cell("b/", 12)]
    assert decide_group(cells, K) == {}
    assert decide_group(cells, K, force_one=True) == {"b/": COMPLEMENT, "a/": COMPLEMENT}


def test_a_complement_with_only_large_children_hides_one_of_them() -> None:
    groups = {
        "": [Cell("e1/", 100)],
        "e1/": [Cell("e1/c1/", 4), Cell("e1/c2/", 30), Cell("e1/c3/", 66)],
        "e1/c2/": [Cell("e1/c2/h1/", 15), Cell("e1/c2/h2/", 15)],
    }
    assert decide("e1/c1/", groups, K) is SMALL
    assert decide("e1/c2/", groups, K) is COMPLEMENT
    assert decide("e1/c3/", groups, K) is None
    # c2's households would add up to c2: both are withheld (the first forced, then its pair).
    assert decide("e1/c2/h1/", groups, K) is COMPLEMENT
    assert decide("e1/c2/h2/", groups, K) is COMPLEMENT


@st.composite
def trees(draw: st.DrawFn) -> dict[str, list[Cell]]:
    """A random enterprise → communities → households tree with populations."""
    groups: dict[str, list[Cell]] = {"": [], "e1/": []}
    total = 0
    for c in range(draw(st.integers(1, 6))):
        path = f"e1/c{c}/"
        homes = draw(st.lists(st.integers(0, 14), min_size=1, max_size=6))
        groups[path] = [Cell(f"{path}h{h}/", n) for h, n in enumerate(homes)]
        groups["e1/"].append(Cell(path, sum(homes)))
        total += sum(homes)
    groups[""].append(Cell("e1/", total))
    return groups


@settings(max_examples=300, deadline=None)
@given(trees(), st.integers(2, 12))
def test_no_withheld_cell_is_the_difference_of_shown_ones(
    groups: dict[str, list[Cell]], k: int
) -> None:
    shown = {
        cell.path: decide(cell.path, groups, k) is None
        for cells in groups.values()
        for cell in cells
    }
    for parent, cells in groups.items():
        if not parent or not cells:
            continue
        hidden = [c for c in cells if not shown[c.path]]
        # Every cell covering fewer than k people is hidden.
        assert all(not shown[c.path] for c in cells if c.population < k)
        if shown[parent] and hidden:
            # parent − shown siblings gives only the sum of the hidden ones: at least two cells
            # covering at least k people together.
            assert len(hidden) >= 2
            assert sum(c.population for c in hidden) >= k
        if not shown[parent] and decide(parent, groups, k) is COMPLEMENT:
            # A parent hidden as a complement is not the sum of shown children.
            assert hidden


# -- through the API ---------------------------------------------------------------------------
FOOTPRINTS = """
query ($ids: [ID!]!) {
  nodes(ids: $ids) {
    id
    ... on Enterprise {
      footprint(period: {year: 2024}) { ...F }
      reductions(period: {year: 2024}) { suppressed scope3Plus }
    }
    ... on Community { footprint(period: {year: 2024}) { ...F } }
    ... on Household { footprint(period: {year: 2024}) { ...F } }
    ... on Individual { footprint(period: {year: 2024}) { ...F } }
  }
}
fragment F on Footprint {
  suppressed suppressionReason net memberCount series(granularity: YEAR) { net }
}
"""


async def _build(engine, sizes: list[list[int]]) -> dict[str, object]:
    """One enterprise whose communities hold households of the given sizes."""
    async with engine.begin() as conn:
        w = HierarchyWriter(conn, random.Random(5))
        ent = await w.node(E, "p:e", "", "e", name="Privacy Co", kind="COMPANY")
        communities, households, people = [], [], []
        for c, homes in enumerate(sizes):
            com = await w.node(
                C,
                f"p:c{c}",
                ent.path,
                "c",
                name=f"Community {c}",
                kind="VILLAGE",
                region_code="CN-GD",
                timezone="Asia/Shanghai",
                enterprise_id=ent.id,
                parent_id=None,
            )
            communities.append(com.id)
            for h, n in enumerate(homes):
                home = await w.node(
                    H,
                    f"p:c{c}:h{h}",
                    com.path,
                    "h",
                    name=f"Home {c}-{h}",
                    community_id=com.id,
                    dwelling_type="HOUSE",
                    has_rooftop_solar=False,
                )
                households.append(home.id)
                people += await w.people(home, n, f"p:c{c}:h{h}", date(2024, 1, 1))
    await grant(engine, "esg", Role.ESG_ANALYST, "Enterprise", ent.id)
    await grant(engine, "org", Role.ORG_ADMIN, "Enterprise", ent.id)
    return {
        "enterprise": ent.id,
        "communities": communities,
        "households": households,
        "people": people,
    }


def _ids(world: dict[str, object]) -> list[str]:
    return (
        [gid("Enterprise", world["enterprise"])]
        + [gid("Community", pk) for pk in world["communities"]]
        + [gid("Household", pk) for pk in world["households"]]
        + [gid("Individual", pk) for pk in world["people"][:3]]
    )


async def test_aggregate_viewers_get_small_cells_withheld_with_complements(engine, api) -> None:
    # Community sizes 12 (one dorm of 12), 30 (three homes of 10) and 4 (two homes of 2).
    world = await _build(engine, [[12], [10, 10, 10], [2, 2]])
    ids = _ids(world)
    body = await api.gql(FOOTPRINTS, {"ids": ids}, subject="esg")
    by_id = {n["id"]: n for n in body["data"]["nodes"]}
    enterprise, (c_dorm, c_big, c_small) = ids[0], ids[1:4]
    homes = ids[4:10]
    reasons = {i: by_id[i]["footprint"]["suppressionReason"] for i in ids}

    assert reasons[enterprise] is None and by_id[enterprise]["footprint"]["memberCount"] == 46
    assert by_id[enterprise]["reductions"] == {"suppressed": False, "scope3Plus": 0}
    assert reasons[c_small] == "SMALL_CELL"
    # Enterprise − the 30-person community would give the small one: the dorm goes too, and
    # the dorm's only household with it (it would equal the dorm).
    assert reasons[c_dorm] == "COMPLEMENTARY"
    assert reasons[c_big] is None
    assert reasons[homes[0]] == "COMPLEMENTARY"
    assert [reasons[h] for h in homes[1:4]] == [None, None, None]
    assert [reasons[h] for h in homes[4:6]] == ["SMALL_CELL", "SMALL_CELL"]
    for i in ids[10:]:
        assert reasons[i] == "SMALL_CELL"  # one person
    for i in ids:
        footprint = by_id[i]["footprint"]
        if footprint["suppressed"]:
            assert footprint["net"] is None and footprint["memberCount"] is None
            assert footprint["series"] is None
        else:
            assert footprint["net"] == 0 and footprint["series"] is not None

    # Managers see their own people: nothing is withheld.
    body = await api.gql(FOOTPRINTS, {"ids": ids}, subject="org")
    assert not any(n["footprint"]["suppressed"] for n in body["data"]["nodes"])


async def test_k_is_configurable(engine, api) -> None:
    world = await _build(engine, [[2, 2], [3]])
    app = create_app(dataclasses.replace(api.settings, small_cell_k=1), engine=engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        body = await Api(client, api.settings).gql(FOOTPRINTS, {"ids": _ids(world)}, subject="esg")
    assert not any(n["footprint"]["suppressed"] for n in body["data"]["nodes"])
    body = await api.gql(FOOTPRINTS, {"ids": _ids(world)}, subject="esg")
    # 7 people in all: with k = 10 even the enterprise is withheld.
    assert all(n["footprint"]["suppressed"] for n in body["data"]["nodes"])
