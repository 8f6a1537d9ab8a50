"""Campaigns: bonus credits, progress, participants and a pseudonymised board."""

from __future__ import annotations

from datetime import date

from carbongraph.actions.record import ActionInput
from tests.test_actions import _partner_post
from tests.world import build_world, gid

CREATE = """mutation($o: ID!) { createCampaign(input: {ownerId: $o, name: "Green June",
  startsOn: "2025-06-01", endsOn: "2025-06-30", actionTypes: ["SUBWAY_TRIP"],
  goalKind: PARTICIPANTS, goalValue: 4, bonusPercent: 150}) {
  campaign { id } userErrors { field code } } }"""
BOARD = """query($o: ID!) { campaigns(ownerId: $o) { totalCount edges { node { name goalKind
  progress { suppressed avoidedGrams participants percentOfGoal } topParticipants(first: 5) {
  rank name individualId avoidedGrams suppressed } } } } }"""


def _campaigns(body: dict) -> list[dict]:
    return [edge["node"] for edge in body["data"]["campaigns"]["edges"]]


async def test_campaign_bonus_progress_and_board(engine, api):
    world = await build_world(engine)
    community = world.a.communities[0]
    body = await api.gql(CREATE, {"o": gid("Community", community)}, subject="cm-a0")
    assert body["data"]["createCampaign"]["userErrors"] == []
    homes = world.a.households[community]
    a, b = world.a.members[homes[0]]
    c = world.a.members[homes[1]][0]
    outside = world.a.members[world.a.households[world.a.communities[1]][0]][0]
    june = date(2025, 6, 3)
    await _partner_post(
        engine,
        [
            ActionInput(a, "SUBWAY_TRIP", 2, june, "c1"),
            ActionInput(b, "SUBWAY_TRIP", 2, june, "c2"),
            ActionInput(c, "SUBWAY_TRIP", 1, june, "c3"),
            ActionInput(a, "SUBWAY_TRIP", 1, date(2025, 7, 1), "c4"),  # after the campaign
            ActionInput(outside, "SUBWAY_TRIP", 3, june, "c5"),  # another community
        ],
    )
    body = await api.gql(BOARD, {"o": gid("Community", community)}, subject="cm-a0")
    assert body["data"]["campaigns"]["totalCount"] == 1
    campaign = _campaigns(body)[0]
    assert campaign["goalKind"] == "PARTICIPANTS"
    assert campaign["progress"] == {
        "suppressed": False,
        "avoidedGrams": 5 * 554,
        "participants": 3,
        "percentOfGoal": 75.0,
    }
    board = campaign["topParticipants"]
    assert [(s["rank"], s["avoidedGrams"]) for s in board] == [(1, 1108), (1, 1108), (3, 554)]
    assert all(s["individualId"] for s in board)  # the manager sees who
    # A resident sees pseudonyms, stable between reads.
    seen = await api.gql(BOARD, {"o": gid("Community", community)}, subject="resident-a")
    names = [s["name"] for s in _campaigns(seen)[0]["topParticipants"]]
    assert all(n.startswith("Participant ") for n in names)
    again = await api.gql(BOARD, {"o": gid("Community", community)}, subject="resident-a")
    assert [s["name"] for s in _campaigns(again)[0]["topParticipants"]] == names
    assert all(s["individualId"] is None for s in _campaigns(seen)[0]["topParticipants"])
    # Seen from outside, three participants are a small cell: only the resident's own figure.
    outside_view = _campaigns(seen)[0]
    assert outside_view["progress"] == {
        "suppressed": True,
        "avoidedGrams": None,
        "participants": None,
        "percentOfGoal": None,
    }
    own = [(s["avoidedGrams"], s["suppressed"]) for s in outside_view["topParticipants"]]
    assert sorted(own, key=str) == [(1108, False), (None, True), (None, True)]
    # The multiplier: 2 trips in June earn 1,108 + 554 bonus; July earns no bonus.
    body = await api.gql(
        """query($i: ID!) { individual(id: $i) { credits { balance } } }""",
        {"i": gid("Individual", a)},
        subject="admin",
    )
    assert body["data"]["individual"]["credits"]["balance"] == 1108 + 554 + 554


async def test_campaign_input_is_validated(engine, api):
    world = await build_world(engine)
    bad = """mutation($o: ID!) { createCampaign(input: {ownerId: $o, name: "x",
      startsOn: "2025-06-30", endsOn: "2025-06-01", actionTypes: ["TELEPORT"],
      bonusPercent: 50}) { campaign { id } userErrors { field code } } }"""
    body = await api.gql(bad, {"o": gid("Community", world.a.communities[0])}, subject="cm-a0")
    codes = {e["code"] for e in body["data"]["createCampaign"]["userErrors"]}
    assert codes == {"ACTION_NOT_ALLOWED", "INVALID_DATE", "INVALID"}
    # The enterprise above is visible to its community manager, but not theirs to run.
    body = await api.gql(CREATE, {"o": gid("Enterprise", world.a.enterprise)}, subject="cm-a0")
    assert body["data"]["createCampaign"]["userErrors"][0]["code"] == "FORBIDDEN"
    body = await api.gql(CREATE, {"o": gid("Community", world.a.communities[1])}, subject="cm-a0")
    assert body["data"]["createCampaign"]["userErrors"][0]["code"] == "NOT_FOUND"
