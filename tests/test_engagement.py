"""Statements and leaderboards: numbers against independent reads (footprints), ranks with ties,
SQL paging, pseudonyms, small-cell suppression, authorization, bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import httpx
import pytest

from carbongraph.app import create_app
from carbongraph.authz import Role
from carbongraph.config import Settings
from tests.conftest import Api
from tests.engagement_world import PERIOD, build_campus
from tests.world import gid, grant

STATEMENT = """query($id: ID!, $period: PeriodInput) { household(id: $id) {
  statement(period: $period) {
    period { from to } previousPeriod { from to }
    weeks { from to gross cleanEnergyOffset net usage { activityType unit quantity emissions } }
    usage { activityType unit quantity emissions cleanEnergyOffset }
    gross cleanEnergyOffset net memberCount perCapita previousNet netChange netChangePercent
    creditsEarned
    ranking { peers rank percentile peerCount peerAverageNet peerAveragePerCapita
              suppressed suppressionReason } } } }"""

FOOTPRINT = """query($id: ID!, $period: PeriodInput!) { household(id: $id) {
  footprint(period: $period) { gross cleanEnergyOffset net perCapita memberCount } } }"""

BOARD = """query($id: ID!, $metric: LeaderboardMetric!, $members: LeaderboardMembers!,
  $dwelling: DwellingType, $period: PeriodInput, $first: Int, $after: String) {
  community(id: $id) { leaderboard(metric: $metric, members: $members, dwellingType: $dwelling,
    period: $period, first: $first, after: $after) {
    metric period { from to } totalCount population suppressed suppressionReason
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { rank percentile name pseudonymous memberId value memberCount
                          suppressed suppressionReason } } } } }"""


def _settings(engine, **overrides) -> Settings:
    return Settings.from_env(
        database_url=engine.url.render_as_string(hide_password=False), **overrides
    )


@pytest.fixture
async def api_k3(engine) -> AsyncIterator[Api]:
    """The app with a small-cell threshold of 3 (the default 10 suppresses every household)."""
    settings = _settings(engine, small_cell_k=3)
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        yield Api(client, settings)


async def _footprint(api: Api, household: int, period: dict, subject: str = "admin") -> dict:
    body = await api.gql(
        FOOTPRINT, {"id": gid("Household", household), "period": period}, subject=subject
    )
    return body["data"]["household"]["footprint"]


async def _board(api: Api, community: int, subject: str, **variables) -> dict:
    variables.setdefault("metric", "NET_EMISSIONS_PER_CAPITA")
    variables.setdefault("members", "HOUSEHOLDS")
    variables.setdefault("period", PERIOD)
    body = await api.gql(BOARD, {"id": gid("Community", community), **variables}, subject=subject)
    return body["data"]["community"]["leaderboard"]


async def test_dorm_statement_matches_footprints_and_the_board(engine, api):
    world = await build_campus(engine)
    room = world.rooms["r1"]
    body = await api.gql(
        STATEMENT, {"id": gid("Household", room), "period": PERIOD}, subject="student"
    )
    s = body["data"]["household"]["statement"]
    assert s["period"] == PERIOD
    assert s["previousPeriod"] == {"from": "2026-09-07", "to": "2026-10-04"}
    # Four seven-day weeks from the period's first day, each with its electricity and water.
    assert [w["from"] for w in s["weeks"]] == [
        "2026-10-05",
        "2026-10-12",
        "2026-10-19",
        "2026-10-26",
    ]
    for week in s["weeks"]:
        usage = {u["activityType"]: (u["quantity"], u["unit"]) for u in week["usage"]}
        assert usage["ELECTRICITY"] == ("42", "kWh")  # 7 days × 6 kWh
        assert usage["WATER"] == ("2.1", "m3")  # 7 days × 0.3 m³
    # The first week also has the gasoline one student bought (it counts in the household).
    assert {u["activityType"] for u in s["weeks"][0]["usage"]} == {
        "ELECTRICITY",
        "GASOLINE",
        "WATER",
    }
    totals = {u["activityType"]: u["quantity"] for u in s["usage"]}
    assert totals == {"ELECTRICITY": "168", "GASOLINE": "2", "WATER": "8.4"}
    # Emissions agree with the footprint read, week by week and in total.
    footprint = await _footprint(api, room, PERIOD)
    assert s["gross"] == footprint["gross"] == sum(w["gross"] for w in s["weeks"])
    assert s["net"] == footprint["net"] == sum(w["net"] for w in s["weeks"])
    assert s["perCapita"] == footprint["perCapita"] and s["memberCount"] == 3
    for week in s["weeks"]:
        one = await _footprint(api, room, {"from": week["from"], "to": week["to"]})
        assert week["net"] == one["net"] and week["gross"] == one["gross"]
    previous = await _footprint(api, room, {"from": "2026-09-07", "to": "2026-10-04"})
    assert previous["net"] > 0
    assert s["previousNet"] == previous["net"]
    assert s["netChange"] == s["net"] - previous["net"] < 0  # 6 kWh a day instead of 7
    assert s["netChangePercent"] == round(100 * s["netChange"] / previous["net"], 1)
    assert s["creditsEarned"] == 800  # 5 km cycled by a roommate
    # Rank among the six dorm rooms of the campus (not the apartment): r6, r3, then r1 = r2.
    ranking = s["ranking"]
    assert ranking["peers"] == "dorm rooms of Lakeside Campus"
    assert (ranking["rank"], ranking["peerCount"]) == (3, 6)
    assert ranking["percentile"] == 60.0  # 100 × (1 − (3 − 1) / (6 − 1))
    board = await _board(api, world.campus, "admin", dwelling="DORM_ROOM")
    nets = []
    for room_key in ("r1", "r2", "r3", "r5", "r6", "r7"):
        nets.append((await _footprint(api, world.rooms[room_key], PERIOD))["net"])
    # 18 students ≥ k = 10, but the campus is withheld as the complement of the 6-person
    # village (docs/privacy.md): the university's total minus the dorm rooms' (average × count)
    # would give the village and the apartment, 8 people. The student sees no averages...
    assert ranking["suppressed"] is True and ranking["suppressionReason"] == "COMPLEMENTARY"
    assert ranking["peerAverageNet"] is None and ranking["peerAveragePerCapita"] is None
    # ... a manager of the campus does.
    body = await api.gql(
        STATEMENT, {"id": gid("Household", room), "period": PERIOD}, subject="manager"
    )
    ranking = body["data"]["household"]["statement"]["ranking"]
    assert ranking["suppressed"] is False
    assert ranking["peerAverageNet"] == round(sum(nets) / 6)
    assert ranking["peerAveragePerCapita"] == round(sum(nets) / 18)
    mine = next(
        e["node"] for e in board["edges"] if e["node"]["memberId"] == gid("Household", room)
    )
    assert (mine["rank"], mine["percentile"]) == (ranking["rank"], ranking["percentile"])


async def test_home_statement_compares_homes_of_its_community_after_clean_energy(engine, api):
    world = await build_campus(engine)
    body = await api.gql(
        STATEMENT, {"id": gid("Household", world.homes["v1"]), "period": PERIOD}, subject="admin"
    )
    s = body["data"]["household"]["statement"]
    footprint = await _footprint(api, world.homes["v1"], PERIOD)
    assert s["cleanEnergyOffset"] == footprint["cleanEnergyOffset"] > 0
    assert s["net"] == s["gross"] - s["cleanEnergyOffset"] == footprint["net"]
    solar = next(u for u in s["usage"] if u["activityType"] == "ROOFTOP_SOLAR")
    assert solar["quantity"] == "56" and solar["cleanEnergyOffset"] == s["cleanEnergyOffset"]
    ranking = s["ranking"]
    # v3 has no readings, so two homes are ranked; 5 people < k: averages withheld, except
    # for viewers with personal access (the platform admin here).
    assert ranking["peers"] == "homes of Staff Village" and ranking["peerCount"] == 2
    assert ranking["suppressed"] is False and ranking["peerAverageNet"] is not None
    # The home's own figures are its footprint's: withheld whole from an analyst (3 people).
    analyst = await api.gql(
        STATEMENT,
        {"id": gid("Household", world.homes["v1"]), "period": PERIOD},
        subject="analyst",
        allow_errors=True,
    )
    assert analyst["data"]["household"]["statement"] is None
    assert [e["extensions"] for e in analyst["errors"]] == [
        {"code": "SUPPRESSED", "reason": "SMALL_CELL"}
    ]
    # A resident sees their home's figures, but not the averages of the other homes.
    await grant(engine, "villager", Role.RESIDENT, "Individual", world.people["v1"][0])
    villager = await api.gql(
        STATEMENT, {"id": gid("Household", world.homes["v1"]), "period": PERIOD}, subject="villager"
    )
    withheld = villager["data"]["household"]["statement"]["ranking"]
    assert withheld["suppressed"] is True
    assert withheld["peerAverageNet"] is None and withheld["peerAveragePerCapita"] is None
    assert withheld["suppressionReason"] == "SMALL_CELL"
    assert withheld["rank"] == ranking["rank"]


async def test_board_ranks_in_sql_with_ties_and_pages(engine, api):
    world = await build_campus(engine)
    board = await _board(api, world.campus, "manager", dwelling="DORM_ROOM")
    order = [(e["node"]["name"], e["node"]["rank"]) for e in board["edges"]]
    assert order == [
        ("Room r6", 1),
        ("Room r3", 2),
        ("Room r1", 3),
        ("Room r2", 3),  # identical readings: the tie shares rank 3
        ("Room r7", 5),
        ("Room r5", 6),
    ]
    assert board["totalCount"] == 6 and board["population"] == 18
    for key in ("r1", "r6"):
        footprint = await _footprint(api, world.rooms[key], PERIOD)
        entry = next(e["node"] for e in board["edges"] if e["node"]["name"] == f"Room {key}")
        assert entry["value"] == footprint["perCapita"]
        assert entry["memberCount"] == footprint["memberCount"]
    # Pages of two follow the same order; cursors continue where the last page ended.
    seen, after = [], None
    while True:
        page = await _board(
            api, world.campus, "manager", dwelling="DORM_ROOM", first=2, after=after
        )
        seen += [e["node"]["name"] for e in page["edges"]]
        assert page["totalCount"] == 6
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [name for name, _ in order]
    # Without the dwelling filter the apartment competes too.
    everyone = await _board(api, world.campus, "manager")
    assert everyone["totalCount"] == 7 and everyone["population"] == 20


async def test_reductions_boards_for_people_households_and_communities(engine, api):
    world = await build_campus(engine)
    people = await _board(api, world.campus, "manager", metric="REDUCTIONS", members="INDIVIDUALS")
    ranks = [(e["node"]["rank"], e["node"]["value"]) for e in people["edges"]]
    assert ranks == [(1, 800), (1, 800), (3, 554)]
    assert people["population"] == 3
    homes = await _board(api, world.campus, "manager", metric="REDUCTIONS")
    assert [(e["node"]["name"], e["node"]["value"]) for e in homes["edges"]] == [
        ("Room r1", 800),
        ("Room r5", 800),
        ("Room r6", 554),
    ]
    assert [e["node"]["rank"] for e in homes["edges"]] == [1, 1, 3]
    body = await api.gql(
        """query($id: ID!, $p: PeriodInput) { enterprise(id: $id) {
          leaderboard(metric: NET_EMISSIONS_PER_CAPITA, period: $p) { totalCount edges { node {
            name rank value memberCount suppressed suppressionReason } } } } }""",
        {"id": gid("Enterprise", world.enterprise), "p": PERIOD},
        subject="analyst",
    )
    communities = body["data"]["enterprise"]["leaderboard"]
    # The university (26 people) is withheld from an analyst as the complement of the other
    # tenant's 3-person home (the platform's enterprises are a sibling group, docs/privacy.md):
    # its board goes whole, like its footprint, or the board's head count would be its
    # memberCount.
    assert communities == {"totalCount": 0, "edges": []}
    body = await api.gql(
        """query($id: ID!, $p: PeriodInput!) { enterprise(id: $id) {
          footprint(period: $p) { suppressionReason }
          leaderboard(metric: NET_EMISSIONS_PER_CAPITA, period: $p) {
            population suppressed suppressionReason } } }""",
        {"id": gid("Enterprise", world.enterprise), "p": PERIOD},
        subject="analyst",
    )
    assert body["data"]["enterprise"] == {
        "footprint": {"suppressionReason": "COMPLEMENTARY"},
        "leaderboard": {
            "population": None,
            "suppressed": True,
            "suppressionReason": "COMPLEMENTARY",
        },
    }


async def test_pseudonyms_are_stable_per_board_and_unlinkable(engine, api_k3):
    world = await build_campus(engine)
    analyst = await _board(api_k3, world.campus, "analyst", dwelling="DORM_ROOM")
    assert all(e["node"]["pseudonymous"] for e in analyst["edges"])
    assert all(e["node"]["memberId"] is None for e in analyst["edges"])
    names = [e["node"]["name"] for e in analyst["edges"]]
    assert len(set(names)) == 6 and all(n.startswith("Home ") for n in names)
    assert not any("Room" in n for n in names)
    # Keyed (HMAC with the server's secret): the same member under another key is unrelated.
    from carbongraph.engagement.keys import pseudonym

    board_key = "H|e1/c2/|NET_EMISSIONS_PER_CAPITA|DORM_ROOM"
    mine = pseudonym(api_k3.settings, board_key, "Household:1", "Home")
    assert mine == pseudonym(api_k3.settings, board_key, "Household:1", "Home")
    assert mine != pseudonym(
        _settings(engine, engagement_secret="another"), board_key, "Household:1", "Home"
    )
    # The same board next request, and over another period: the same pseudonyms.
    again = await _board(api_k3, world.campus, "analyst", dwelling="DORM_ROOM")
    assert [e["node"]["name"] for e in again["edges"]] == names
    later = await _board(
        api_k3,
        world.campus,
        "analyst",
        dwelling="DORM_ROOM",
        period={"from": "2026-10-12", "to": "2026-10-18"},
    )
    assert sorted(e["node"]["name"] for e in later["edges"]) == sorted(names)
    # Another board (reductions) gives the same rooms other pseudonyms.
    other = await _board(api_k3, world.campus, "analyst", metric="REDUCTIONS", dwelling="DORM_ROOM")
    assert not set(e["node"]["name"] for e in other["edges"]) & set(names)
    # Values: rooms of 3 or 4 people are shown with k = 3; r3 (2 people) is withheld, and
    # with it its building's apartment r4 (2 people, not on this board): together they are
    # two cells of 4 people, so nothing else goes (docs/privacy.md).
    r3 = next(e["node"] for e in analyst["edges"] if e["node"]["rank"] == 2)
    assert r3["suppressed"] is True and r3["value"] is None and r3["memberCount"] is None
    assert r3["suppressionReason"] == "SMALL_CELL"
    others = [e["node"] for e in analyst["edges"] if e["node"]["rank"] != 2]
    assert all(not n["suppressed"] and n["value"] is not None for n in others)
    # The board stands (18 people, the campus shown), but its head count is withheld: the
    # campus's memberCount minus it would give the 2 people of the apartment left off it.
    assert analyst["suppressed"] is False and analyst["population"] is None
    # A resident sees the real name of their own room only, and its value.
    student = await _board(api_k3, world.campus, "student", dwelling="DORM_ROOM")
    named = [e["node"] for e in student["edges"] if not e["node"]["pseudonymous"]]
    assert [(n["name"], n["memberId"]) for n in named] == [
        ("Room r1", gid("Household", world.rooms["r1"]))
    ]
    assert named[0]["value"] is not None


async def test_small_cell_suppression_of_entries_and_whole_boards(engine, api):
    world = await build_campus(engine)
    analyst = await _board(api, world.campus, "analyst", dwelling="DORM_ROOM")
    # k = 10: the board covers 18 people, but the campus (20) is withheld as the complement of
    # the 6-person village, so its board goes whole like its footprint (docs/privacy.md).
    assert analyst["suppressed"] is True and analyst["suppressionReason"] == "COMPLEMENTARY"
    assert analyst["edges"] == [] and analyst["population"] is None
    # The village's board is a small cell of its own.
    village = await _board(api, world.village, "analyst")
    assert village["suppressed"] is True and village["suppressionReason"] == "SMALL_CELL"
    # The people board covers 3 people: withheld whole from the analyst...
    people = await _board(api, world.campus, "analyst", metric="REDUCTIONS", members="INDIVIDUALS")
    assert people["suppressed"] is True and people["edges"] == [] and people["population"] is None
    assert people["suppressionReason"] == "SMALL_CELL"
    # ... and shown to the campus manager, who has personal access to everyone on it.
    manager = await _board(api, world.campus, "manager", metric="REDUCTIONS", members="INDIVIDUALS")
    assert manager["suppressed"] is False and len(manager["edges"]) == 3
    assert not any(e["node"]["suppressed"] for e in manager["edges"])


async def test_periods_without_data_are_empty_not_errors(engine, api):
    world = await build_campus(engine)
    empty = {"from": "2020-01-01", "to": "2020-01-28"}
    body = await api.gql(
        STATEMENT, {"id": gid("Household", world.rooms["r1"]), "period": empty}, subject="admin"
    )
    s = body["data"]["household"]["statement"]
    assert s["weeks"] == [] and s["usage"] == [] and s["ranking"] is None
    assert (s["net"], s["creditsEarned"], s["netChangePercent"]) == (0, 0, None)
    board = await _board(api, world.campus, "manager", period=empty)
    assert board["edges"] == [] and board["totalCount"] == 0 and board["suppressed"] is False
    # The default period is the 28 days up to yesterday (no readings there in this world).
    default = await api.gql(STATEMENT, {"id": gid("Household", world.rooms["r1"])}, subject="admin")
    period = default["data"]["household"]["statement"]["period"]
    span = date.fromisoformat(period["to"]) - date.fromisoformat(period["from"])
    assert span.days == 27


async def test_bad_input_is_a_validation_error(engine, api):
    world = await build_campus(engine)
    response = await api.post(
        BOARD,
        {"id": gid("Community", world.campus), "metric": "LOUDEST", "members": "HOUSEHOLDS"},
        subject="admin",
    )
    body = response.json()
    assert "data" not in body
    assert "LOUDEST" in body["errors"][0]["message"]
    response = await api.post(
        """query($id: ID!) { community(id: $id) {
          leaderboard(metric: NET_EMISSIONS_PER_CAPITA, members: ROOMS) { totalCount } } }""",
        {"id": gid("Community", world.campus)},
        subject="admin",
    )
    assert "data" not in response.json()
    bad_cursor = await api.gql(
        BOARD,
        {
            "id": gid("Community", world.campus),
            "metric": "REDUCTIONS",
            "members": "HOUSEHOLDS",
            "after": "bm90IGEgY3Vyc29y",
        },
        subject="admin",
        allow_errors=True,
    )
    assert bad_cursor["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    too_many = await api.gql(
        BOARD,
        {
            "id": gid("Community", world.campus),
            "metric": "REDUCTIONS",
            "members": "HOUSEHOLDS",
            "first": 1000,
        },
        subject="admin",
        allow_errors=True,
    )
    assert too_many["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_authorization_of_statements_and_boards(engine, api):
    world = await build_campus(engine)
    foreign = await api.gql(
        STATEMENT,
        {"id": gid("Household", world.rooms["r1"]), "period": PERIOD},
        subject="other-admin",
        allow_errors=True,
    )
    missing = await api.gql(
        STATEMENT,
        {"id": gid("Household", 999_999), "period": PERIOD},
        subject="other-admin",
        allow_errors=True,
    )
    assert foreign["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert foreign["errors"][0]["message"] == missing["errors"][0]["message"]
    board = await api.gql(
        BOARD,
        {"id": gid("Community", world.campus), "metric": "REDUCTIONS", "members": "HOUSEHOLDS"},
        subject="other-admin",
        allow_errors=True,
    )
    assert board["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    # A person's statement is personal: the analyst may not read it; the student reads theirs.
    query = """query($id: ID!, $p: PeriodInput) { individual(id: $id) { statement(period: $p) {
      net creditsEarned ranking { peers rank peerCount } } } }"""
    me = gid("Individual", world.people["r1"][0])
    denied = await api.gql(query, {"id": me, "p": PERIOD}, subject="analyst", allow_errors=True)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    mine = (await api.gql(query, {"id": me, "p": PERIOD}, subject="student"))["data"]
    statement = mine["individual"]["statement"]
    # r1p1, r2p1 (2 L each) and r6p1 (1 L) have their own emissions: r6p1 first, then a tie.
    assert statement["ranking"] == {
        "peers": "dorm rooms of Lakeside Campus",
        "rank": 2,
        "peerCount": 3,
    }
    assert statement["creditsEarned"] == 0  # the cycling was a roommate's
    assert statement["net"] > 0


async def test_bad_input_beside_other_fields_nulls_only_the_field(engine, api):
    # Statement and leaderboard fields are nullable: a bad argument nulls them alone, and the
    # sibling fields' loads finish inside the request's transaction.
    world = await build_campus(engine)
    body = await api.gql(
        """query($id: ID!) { household(id: $id) { community { name
          leaderboard(metric: REDUCTIONS, after: "xx") { totalCount } }
          statement(period: {month: "2026-13"}) { net } } }""",
        {"id": gid("Household", world.rooms["r1"])},
        subject="admin",
        allow_errors=True,
    )
    household = body["data"]["household"]
    assert household["community"] == {"name": "Building 1", "leaderboard": None}
    assert household["statement"] is None
    assert sorted(e["extensions"]["argument"] for e in body["errors"]) == ["after", "period"]


DAILY = """query($id: ID!, $period: PeriodInput) { household(id: $id) {
  statement(period: $period) {
    weeks { from to gross net }
    days { date gross cleanEnergyOffset net usage { activityType unit quantity } }
    usage { activityType quantity } memberCount
    ranking { peerCommunity }
    electricityRanking { activityType unit peers peerCommunity rank percentile peerCount
                         perCapita peerAveragePerCapita suppressed suppressionReason } } } }"""


def _decimal(value: Fraction) -> str:
    """Thousandths, half-even, without trailing zeros (as the API writes quantities)."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return f"{exact.quantize(Decimal('0.001'), rounding=ROUND_HALF_EVEN).normalize():f}"


def _rank(values: dict[str, Fraction], key: str) -> int:
    """Competition ranking, lowest first: 1 + the members strictly below."""
    return 1 + sum(1 for v in values.values() if v < values[key])


async def test_statement_days_add_up_to_weeks_and_footprints(engine, api):
    world = await build_campus(engine)
    room = world.rooms["r7"]  # 10 kWh and 0.4 m³ a day, 4 students
    body = await api.gql(DAILY, {"id": gid("Household", room), "period": PERIOD}, subject="admin")
    s = body["data"]["household"]["statement"]
    days = s["days"]
    assert [d["date"] for d in days] == [
        (date(2026, 10, 5) + timedelta(days=n)).isoformat() for n in range(28)
    ]
    for day in days:
        usage = {u["activityType"]: (u["quantity"], u["unit"]) for u in day["usage"]}
        assert usage == {"ELECTRICITY": ("10", "kWh"), "WATER": ("0.4", "m3")}
        assert day["net"] == day["gross"] - day["cleanEnergyOffset"] > 0
    # A day is the footprint of that day; seven days are their week.
    for day in (days[0], days[13], days[27]):
        one = await _footprint(api, room, {"from": day["date"], "to": day["date"]})
        assert (day["gross"], day["net"]) == (one["gross"], one["net"])
    for n, week in enumerate(s["weeks"]):
        seven = days[7 * n : 7 * n + 7]
        assert week["from"] == seven[0]["date"] and week["to"] == seven[-1]["date"]
        assert week["gross"] == sum(d["gross"] for d in seven)
        assert week["net"] == sum(d["net"] for d in seven)
    # A period without data has no days either.
    empty = await api.gql(
        DAILY,
        {"id": gid("Household", room), "period": {"from": "2020-01-01", "to": "2020-01-07"}},
        subject="admin",
    )
    assert empty["data"]["household"]["statement"]["days"] == []


async def test_electricity_ranking_per_person_among_the_same_peers(engine, api):
    world = await build_campus(engine)
    # The expected board, from each statement's own electricity total and member count.
    statements = {}
    for key, pk in {**world.rooms, **world.homes}.items():
        body = await api.gql(DAILY, {"id": gid("Household", pk), "period": PERIOD}, subject="admin")
        statements[key] = body["data"]["household"]["statement"]
    kwh = {
        key: Fraction(next(u["quantity"] for u in s["usage"] if u["activityType"] == "ELECTRICITY"))
        for key, s in statements.items()
        if s["usage"]
    }
    people = {key: s["memberCount"] for key, s in statements.items()}
    dorms = {k: kwh[k] / people[k] for k in ("r1", "r2", "r3", "r5", "r6", "r7")}
    average = sum(kwh[k] for k in dorms) / sum(people[k] for k in dorms)  # 1036 kWh / 18
    assert _decimal(average) == "57.556"
    for key, per_person in dorms.items():
        ranking = statements[key]["electricityRanking"]
        rank = _rank(dorms, key)
        assert ranking == {
            "activityType": "ELECTRICITY",
            "unit": "kWh",
            "peers": "dorm rooms of Lakeside Campus",
            "peerCommunity": "Lakeside Campus",
            "rank": rank,
            "percentile": round(100 * (1 - (rank - 1) / (len(dorms) - 1)), 2),
            "peerCount": 6,
            "perCapita": _decimal(per_person),
            "peerAveragePerCapita": _decimal(average),
            "suppressed": False,
            "suppressionReason": None,
        }, key
        assert statements[key]["ranking"]["peerCommunity"] == "Lakeside Campus"
    # r6 uses least per person, r5 most; r1 and r2 tie; the electricity order is not the
    # net-emissions order (gasoline counts in net, not in electricity).
    assert statements["r6"]["electricityRanking"]["rank"] == 1
    assert statements["r5"]["electricityRanking"]["rank"] == 6
    assert statements["r1"]["electricityRanking"]["rank"] == 3
    assert statements["r2"]["electricityRanking"]["rank"] == 3
    # The apartment and the village homes are compared with the homes of their community.
    village = statements["v1"]["electricityRanking"]
    assert (village["peers"], village["rank"], village["peerCount"]) == (
        "homes of Staff Village",
        1,
        2,
    )
    assert village["perCapita"] == "93.333"  # 280 kWh / 3 people
    assert statements["v3"]["electricityRanking"] is None  # no readings, no ranking
    assert statements["r4"]["electricityRanking"]["peers"] == "homes of Building 1"


async def test_electricity_ranking_average_is_withheld_like_the_net_one(engine):
    """k = 19 > the campus's 18 students: the student sees the rank, not the averages; the
    campus manager (personal access to every room) sees both."""
    world = await build_campus(engine)
    settings = _settings(engine, small_cell_k=19)
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        api19 = Api(client, settings)
        variables = {"id": gid("Household", world.rooms["r1"]), "period": PERIOD}
        student = (await api19.gql(DAILY, variables, subject="student"))["data"]
        manager = (await api19.gql(DAILY, variables, subject="manager"))["data"]
    hidden = student["household"]["statement"]["electricityRanking"]
    assert hidden["suppressed"] is True and hidden["suppressionReason"] == "SMALL_CELL"
    assert hidden["peerAveragePerCapita"] is None
    assert (hidden["rank"], hidden["peerCount"], hidden["perCapita"]) == (3, 6, "56")
    shown = manager["household"]["statement"]["electricityRanking"]
    assert shown["suppressed"] is False and shown["peerAveragePerCapita"] == "57.556"


async def test_a_person_without_own_meter_readings_has_no_electricity_ranking(engine, api):
    world = await build_campus(engine)
    query = """query($id: ID!, $p: PeriodInput) { individual(id: $id) { statement(period: $p) {
      days { date } ranking { rank } electricityRanking { rank } } } }"""
    me = gid("Individual", world.people["r1"][0])
    statement = (await api.gql(query, {"id": me, "p": PERIOD}, subject="student"))["data"][
        "individual"
    ]["statement"]
    # The room's meter is the household's, not the student's: ranked by net, not by kWh.
    assert statement["ranking"]["rank"] == 2 and statement["electricityRanking"] is None
    assert len(statement["days"]) == 28
