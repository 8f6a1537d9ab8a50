"""Small-cell suppression: the rules on their own, then through the API on both backends."""

from __future__ import annotations

import dataclasses
import random
from datetime import date

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from carbongraph.accounting.ingest import ActivityInput, ingest
from carbongraph.actions.record import ActionInput, record_actions
from carbongraph.app import create_app
from carbongraph.authz import Role
from carbongraph.db import request_db
from carbongraph.demo.seed import HierarchyWriter
from carbongraph.privacy import (
    Cell,
    SuppressionReason,
    decide,
    decide_group,
    decide_people,
    parent_paths,
)
from carbongraph.resolvers.dataloaders import C, E, H
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


@st.composite
def participations(draw: st.DrawFn) -> dict[str, set[int]]:
    """Campaign participants by household: e1 → communities → households, people numbered."""
    people: dict[str, set[int]] = {}
    person = 0
    for c in range(draw(st.integers(1, 5))):
        for h in range(draw(st.integers(1, 5))):
            n = draw(st.integers(0, 8))
            people[f"e1/c{c}/h{h}/"] = set(range(person, person + n))
            person += n
    return people


@settings(max_examples=300, deadline=None)
@given(participations(), st.integers(2, 12))
def test_no_withheld_campaign_is_the_difference_of_shown_ones(
    people: dict[str, set[int]], k: int
) -> None:
    """Campaigns run with the same window by the enterprise and by every community: for every
    shown campaign, the withheld campaigns below it are none, or at least two covering k."""
    communities = sorted({path.rsplit("/", 2)[0] + "/" for path in people})
    decided = {c: decide_people(c, "e1/", people, k) for c in communities}

    def count(path: str) -> int:
        return len({p for leaf, who in people.items() if leaf.startswith(path) for p in who})

    for c in communities:
        if count(c) < k:
            assert decided[c] is SMALL
    if decide_people("e1/", "e1/", people, k) is None:
        hidden = [c for c in communities if decided[c] is not None and count(c) > 0]
        if hidden:
            assert len(hidden) >= 2 and sum(count(c) for c in hidden) >= k


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


async def _build(engine, sizes: list[list[int | tuple[int, str]]]) -> dict[str, object]:
    """One enterprise whose communities hold households of the given sizes (and dwelling
    types, HOUSE unless given)."""
    async with engine.begin() as conn:
        w = HierarchyWriter(conn, random.Random(5))
        ent = await w.node(E, "p:e", "", "e", name="Privacy Co", kind="COMPANY")
        communities, households, people = [], [], []
        members: dict[int, list[int]] = {}
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
            for h, size in enumerate(homes):
                n, dwelling = size if isinstance(size, tuple) else (size, "HOUSE")
                home = await w.node(
                    H,
                    f"p:c{c}:h{h}",
                    com.path,
                    "h",
                    name=f"Home {c}-{h}",
                    community_id=com.id,
                    dwelling_type=dwelling,
                    has_rooftop_solar=False,
                )
                households.append(home.id)
                members[home.id] = await w.people(home, n, f"p:c{c}:h{h}", date(2024, 1, 1))
                people += members[home.id]
    await grant(engine, "esg", Role.ESG_ANALYST, "Enterprise", ent.id)
    await grant(engine, "org", Role.ORG_ADMIN, "Enterprise", ent.id)
    return {
        "enterprise": ent.id,
        "communities": communities,
        "households": households,
        "people": people,
        "members": members,
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


# -- statements, leaderboards and campaigns: the same cells (docs/privacy.md) ------------------
MARCH = {"month": "2024-03"}


async def _readings(engine, world: dict[str, object]) -> None:
    """Every household uses a different amount of electricity on 2024-03-05."""
    inputs = [
        ActivityInput(
            "Household",
            pk,
            "ELECTRICITY",
            str(7 + 3 * n),
            "kWh",
            date(2024, 3, 5),
            date(2024, 3, 5),
            source="METER",
            external_id=f"p:{pk}:kwh",
        )
        for n, pk in enumerate(world["households"])
    ]
    async with engine.begin() as conn:
        result = await ingest(conn, inputs, today=date(2024, 4, 1), recorded_by="test")
    assert not result.errors, result.errors[:3]


async def _figures(api, type_name: str, pk: int, subject: str) -> dict:
    field = type_name[0].lower() + type_name[1:]
    body = await api.gql(
        f"""query($id: ID!) {{ {field}(id: $id) {{ footprint(period: {{month: "2024-03"}}) {{
          net memberCount suppressionReason }} }} }}""",
        {"id": gid(type_name, pk)},
        subject=subject,
    )
    return body["data"][field]["footprint"]


RANKING = """query($id: ID!) { household(id: $id) { statement(period: {month: "2024-03"}) {
  ranking { peers peerCount peerAverageNet suppressed suppressionReason } } } }"""


async def test_statement_peers_are_withheld_with_their_community(engine, api) -> None:
    # Communities of 12 (one home), 30 (three homes of 10) and 4 (two homes of 2): the
    # 4-person community is a small cell, the 12-person one its complement.
    world = await _build(engine, [[12], [10, 10, 10], [2, 2]])
    await _readings(engine, world)
    c_dorm, c_big, c_small = world["communities"]
    home = world["households"][0]
    await grant(engine, "resident", Role.RESIDENT, "Individual", world["members"][home][0])
    body = await api.gql(RANKING, {"id": gid("Household", home)}, subject="resident")
    ranking = body["data"]["household"]["statement"]["ranking"]
    # The differencing attempt: an analyst's totals minus the resident's peers (average × count
    # = the 12-person community's net) must not give the 4-person community back.
    total = await _figures(api, "Enterprise", world["enterprise"], "esg")
    big = await _figures(api, "Community", c_big, "esg")
    small = await _figures(api, "Community", c_small, "org")
    assert total["suppressionReason"] is None and big["suppressionReason"] is None
    assert small["net"] > 0
    assert ranking["peerAverageNet"] is None, (
        total["net"] - big["net"] - ranking["peerAverageNet"] * ranking["peerCount"],
        small["net"],
    )
    assert ranking["suppressed"] is True and ranking["suppressionReason"] == "COMPLEMENTARY"
    assert (await _figures(api, "Community", c_dorm, "esg"))["suppressionReason"] == (
        "COMPLEMENTARY"
    )
    # Its manager sees the averages.
    body = await api.gql(RANKING, {"id": gid("Household", home)}, subject="org")
    assert body["data"]["household"]["statement"]["ranking"]["suppressed"] is False


async def test_statement_peers_are_withheld_when_the_rest_of_the_community_is_small(
    engine, api
) -> None:
    # One community: homes of 10 and 11 people, and a dorm room of 3, who are not their peers.
    world = await _build(engine, [[10, 11, (3, "DORM_ROOM")]])
    await _readings(engine, world)
    _big_home, other_home, dorm = world["households"]
    await grant(engine, "resident", Role.RESIDENT, "Individual", world["members"][other_home][0])
    body = await api.gql(RANKING, {"id": gid("Household", other_home)}, subject="resident")
    ranking = body["data"]["household"]["statement"]["ranking"]
    community = await _figures(api, "Community", world["communities"][0], "esg")
    room = await _figures(api, "Household", dorm, "org")
    assert community["suppressionReason"] is None and community["memberCount"] == 24
    # The peers are 21 people, but the community's net minus theirs is the dorm room's.
    assert ranking["peerCount"] == 2
    assert ranking["peerAverageNet"] is None, (
        community["net"] - ranking["peerAverageNet"] * 2,
        room["net"],
    )
    assert ranking["suppressionReason"] == "COMPLEMENTARY"
    assert (await _figures(api, "Household", dorm, "esg"))["suppressionReason"] == "SMALL_CELL"


BOARDS = """query($e: ID!, $c: ID!, $d: DwellingType) {
  enterprise(id: $e) { leaderboard(metric: NET_EMISSIONS_PER_CAPITA, period: {month: "2024-03"})
    { ...B } }
  community(id: $c) { leaderboard(metric: NET_EMISSIONS_PER_CAPITA, dwellingType: $d,
    period: {month: "2024-03"}) { ...B } } }
fragment B on Leaderboard { totalCount population suppressed suppressionReason
  edges { node { value memberCount suppressed suppressionReason } } }"""


async def test_leaderboards_withhold_entries_and_whole_boards_like_footprints(engine, api) -> None:
    world = await _build(engine, [[12], [10, 10, 10], [2, 2]])
    await _readings(engine, world)
    c_dorm, _c_big, _c_small = world["communities"]
    variables = {"e": gid("Enterprise", world["enterprise"]), "c": gid("Community", c_dorm)}
    body = await api.gql(BOARDS, variables, subject="esg")
    enterprise, community = body["data"]["enterprise"], body["data"]["community"]
    # The enterprise's board: its communities decided as their footprints are.
    board = enterprise["leaderboard"]
    assert board["suppressed"] is False and board["population"] == 46
    reasons = sorted(str(e["node"]["suppressionReason"]) for e in board["edges"])
    assert reasons == ["COMPLEMENTARY", "None", "SMALL_CELL"]
    shown = [e["node"] for e in board["edges"] if not e["node"]["suppressed"]]
    assert [(n["memberCount"], n["value"] is not None) for n in shown] == [(30, True)]
    # The 12-person community's own board is withheld whole, as its footprint is: its head count
    # (12) would otherwise give the small community's people back (46 − 30 − 12 = 4).
    whole = community["leaderboard"]
    assert whole["population"] is None, 46 - 30 - whole["population"]
    assert whole == {
        "totalCount": 0,
        "population": None,
        "suppressed": True,
        "suppressionReason": "COMPLEMENTARY",
        "edges": [],
    }
    # Managers see everything.
    body = await api.gql(BOARDS, variables, subject="org")
    assert body["data"]["community"]["leaderboard"]["population"] == 12
    assert not any(
        e["node"]["suppressed"] for e in body["data"]["enterprise"]["leaderboard"]["edges"]
    )


async def test_a_board_over_part_of_a_community_withholds_its_head_count(engine, api) -> None:
    world = await _build(engine, [[10, 11, (3, "DORM_ROOM")]])
    await _readings(engine, world)
    community = world["communities"][0]
    variables = {
        "e": gid("Enterprise", world["enterprise"]),
        "c": gid("Community", community),
        "d": "HOUSE",
    }
    body = await api.gql(BOARDS, variables, subject="esg")
    board = body["data"]["community"]["leaderboard"]
    # The houses' entries are cells of their own (the 10-person one the dorm room's
    # complement); the board's head count (21) is withheld: 24 − 21 would be the dorm room's.
    assert board["suppressed"] is False and board["totalCount"] == 2
    assert board["population"] is None
    assert sorted(str(e["node"]["suppressionReason"]) for e in board["edges"]) == [
        "COMPLEMENTARY",
        "None",
    ]
    body = await api.gql(BOARDS, variables, subject="org")
    assert body["data"]["community"]["leaderboard"]["population"] == 21


CAMPAIGN = """mutation($o: ID!, $name: String!, $ends: Date!) { createCampaign(input: {
  ownerId: $o, name: $name, startsOn: "2024-03-01", endsOn: $ends,
  actionTypes: ["SUBWAY_TRIP"], goalValue: 100}) { campaign { id } userErrors { code } } }"""
PROGRESS = """query($o: ID!) { campaigns(ownerId: $o) { edges { node { name progress {
  suppressed suppressionReason avoidedGrams participants } } } } }"""


async def test_campaign_progress_is_withheld_with_complements(engine, api) -> None:
    world = await _build(engine, [[12], [10, 10, 10], [2, 2]])
    _c_dorm, c_big, _c_small = world["communities"]
    members = world["members"]
    big_homes = world["households"][1:4]
    small_homes = world["households"][4:6]
    # 10 participants in the 30-person community, 2 in the 4-person one.
    actors = members[big_homes[0]][:4] + members[big_homes[1]][:3] + members[big_homes[2]][:3]
    actors += [members[small_homes[0]][0], members[small_homes[1]][0]]
    async with request_db(engine, write=True) as db:
        result = await record_actions(
            db,
            [
                ActionInput(person, "SUBWAY_TRIP", 1 + n % 3, date(2024, 3, 10), f"p:a{n}")
                for n, person in enumerate(actors)
            ],
            today=date(2024, 4, 1),
            viewer=None,
            recorded_by="test",
        )
    assert not result.errors, result.errors
    owners = {
        "Enterprise": gid("Enterprise", world["enterprise"]),
        "Community": gid("Community", c_big),
    }
    for name, ends in (
        ("Enterprise", "2024-03-31"),
        ("Community", "2024-03-31"),
        ("Community", "2024-03-30"),
    ):
        body = await api.gql(
            CAMPAIGN, {"o": owners[name], "name": f"{name} {ends}", "ends": ends}, subject="org"
        )
        assert body["data"]["createCampaign"]["userErrors"] == []
    await grant(engine, "resident", Role.RESIDENT, "Individual", actors[0])

    async def progress(owner: str, subject: str) -> dict[str, dict]:
        body = await api.gql(PROGRESS, {"o": owner}, subject=subject)
        edges = body["data"]["campaigns"]["edges"]
        return {e["node"]["name"]: e["node"]["progress"] for e in edges}

    everything = await progress(owners["Enterprise"], "org")
    everything |= await progress(owners["Community"], "org")
    assert everything["Enterprise 2024-03-31"]["participants"] == 12
    assert everything["Community 2024-03-31"]["participants"] == 10
    for viewer in ("resident", "esg"):
        whole = await progress(owners["Enterprise"], viewer)
        part = await progress(owners["Community"], viewer)
        # The enterprise's 12 participants are shown; the community's 10 would be too by
        # size, but the enterprise's progress minus theirs would give the 2 participants of
        # the small community: withheld as their complement.
        shown = whole["Enterprise 2024-03-31"]
        assert shown["suppressed"] is False and shown["avoidedGrams"] > 0
        withheld = part["Community 2024-03-31"]
        assert withheld["avoidedGrams"] is None, (
            shown["avoidedGrams"] - withheld["avoidedGrams"],
            everything["Enterprise 2024-03-31"]["avoidedGrams"]
            - everything["Community 2024-03-31"]["avoidedGrams"],
        )
        assert withheld == {
            "suppressed": True,
            "suppressionReason": "COMPLEMENTARY",
            "avoidedGrams": None,
            "participants": None,
        }
    # A campaign with another window is not nested in the enterprise's: its own size decides
    # (differencing over time is a known limit, docs/privacy.md).
    assert part["Community 2024-03-30"]["suppressed"] is False
    # The manager sees both.
    assert everything["Community 2024-03-31"]["suppressed"] is False
