"""SQL statements per request are bounded by the query's depth, not its row count.

Pinned as Saleor pins its benchmark queries: if a change adds a statement, the count changes
here on purpose or the change is wrong. The grants lookup of the viewer is one statement.
"""

from __future__ import annotations

from carbongraph.db import StatementLog
from tests.world import build_world, gid

NESTED = """
query($id: ID!) {
  enterprise(id: $id) {
    name
    communities(first: 20) {
      edges { node { name households(first: 20) {
        edges { node { name members(first: 10) { edges { node { id displayName } } } } }
      } } }
    }
  }
}
"""


async def test_enterprise_20_communities_20_households_members_in_5_statements(engine, api):
    world = await build_world(engine, communities=20, households=20, members=2)
    with StatementLog() as log:
        body = await api.gql(NESTED, {"id": gid("Enterprise", world.a.enterprise)}, subject="org-a")
    communities = body["data"]["enterprise"]["communities"]["edges"]
    assert len(communities) == 20
    households = [h for c in communities for h in c["node"]["households"]["edges"]]
    assert len(households) == 400
    assert all(len(h["node"]["members"]["edges"]) == 2 for h in households)
    # grants, enterprise, communities, households, members
    assert log.count == 5, log.statements


async def test_statement_count_does_not_grow_with_rows(engine, api):
    world = await build_world(engine, communities=3, households=2, members=1)
    with StatementLog() as log:
        await api.gql(NESTED, {"id": gid("Enterprise", world.a.enterprise)}, subject="org-a")
    assert log.count == 5


async def test_total_counts_cost_one_statement_per_level(engine, api):
    world = await build_world(engine, communities=4, households=3, members=2)
    query = """
    query($id: ID!) { enterprise(id: $id) {
      communities(first: 10) { totalCount edges { node { households(first: 10) { totalCount
        edges { node { members { totalCount } } } } } } } } }
    """
    with StatementLog() as log:
        body = await api.gql(query, {"id": gid("Enterprise", world.a.enterprise)}, subject="org-a")
    enterprise = body["data"]["enterprise"]
    assert enterprise["communities"]["totalCount"] == 4
    for edge in enterprise["communities"]["edges"]:
        households = edge["node"]["households"]
        assert households["totalCount"] == 3
        assert all(h["node"]["members"]["totalCount"] == 2 for h in households["edges"])
    # grants, enterprise, 3 pages + 3 counts
    assert log.count == 8, log.statements


async def test_entities_with_100_representations_cost_one_statement_per_type(engine, api):
    world = await build_world(engine, communities=5, households=10, members=2)
    households = world.a.all_households[:50]
    members = world.a.all_members[:50]
    representations = [{"__typename": "Household", "id": gid("Household", h)} for h in households]
    representations += [{"__typename": "Individual", "id": gid("Individual", i)} for i in members]
    query = """
    query($r: [_Any!]!) { _entities(representations: $r) {
      ... on Household { id dwellingType }
      ... on Individual { id displayName }
    } }
    """
    with StatementLog() as log:
        body = await api.gql(query, {"r": representations}, subject="org-a")
    entities = body["data"]["_entities"]
    assert len(entities) == 100 and all(e is not None for e in entities)
    # grants, households, individuals
    assert log.count == 3, log.statements


async def test_community_members_across_the_subtree_is_one_statement(engine, api):
    world = await build_world(engine, communities=6, households=4, members=3)
    query = """
    query { communities(first: 50) { edges { node { members(first: 50) { edges { node { id } } } }
    } } }
    """
    with StatementLog() as log:
        body = await api.gql(query, subject="org-a")
    edges = body["data"]["communities"]["edges"]
    assert len(edges) == 6
    assert all(len(e["node"]["members"]["edges"]) == 12 for e in edges)
    assert world.a.enterprise
    # grants, communities, members
    assert log.count == 3, log.statements


async def test_a_page_of_households_with_suggestions_costs_a_fixed_number_of_statements(
    engine, api
):
    from datetime import UTC, datetime, timedelta

    from carbongraph.accounting.ingest import ActivityInput, ingest

    world = await build_world(engine, communities=1, households=12, members=2)
    homes = world.a.all_households
    today = datetime.now(UTC).date()
    async with engine.begin() as conn:
        inputs = [
            ActivityInput(
                "Household",
                home,
                "ELECTRICITY",
                "300",
                "kWh",
                today - timedelta(days=30),
                today - timedelta(days=1),
                "METER",
                f"sc:{home}",
            )
            for home in homes
        ]
        assert not (await ingest(conn, inputs, today=today)).errors
    query = """
    query($id: ID!) { community(id: $id) { households(first: 20) { edges { node {
      suggestions { code annualCo2eSaved } } } } } }
    """
    with StatementLog() as log:
        body = await api.gql(
            query, {"id": gid("Community", world.a.communities[0])}, subject="org-a"
        )
    edges = body["data"]["community"]["households"]["edges"]
    assert len(edges) == 12
    assert all(e["node"]["suggestions"][0]["code"] == "ROOFTOP_SOLAR" for e in edges)
    # grants, community, households, members today, usage, factor library
    assert log.count == 6, log.statements


PARTNER_NESTED = """
query($id: ID!) {
  enterprise(id: $id) {
    name
    communities(first: 20) {
      edges { node { name households(first: 20) {
        edges { node { id members(first: 10) { edges { node { id } } } } }
      } } }
    }
  }
}
"""


async def test_an_api_key_costs_what_a_token_costs(engine, api):
    """The key and its scopes are one statement, like a token's grants. The first use in a
    minute adds one UPDATE of the key's last use, after the response."""
    world = await build_world(engine, communities=5, households=4, members=2)
    enterprise = gid("Enterprise", world.a.enterprise)
    created = await api.gql(
        """mutation($n: ID!) { createApiKey(input: {name: "feed",
           scopes: [{role: PARTNER_SERVICE, nodeId: $n}]}) { secret } }""",
        {"n": enterprise},
        subject="org-a",
    )
    key = created["data"]["createApiKey"]["secret"]
    with StatementLog() as token_log:
        by_token = await api.gql(PARTNER_NESTED, {"id": enterprise}, subject="partner-a")
    with StatementLog() as first_log:
        first = (await api.post(PARTNER_NESTED, {"id": enterprise}, token=key)).json()
    with StatementLog() as key_log:
        again = (await api.post(PARTNER_NESTED, {"id": enterprise}, token=key)).json()
    assert first == again == by_token
    # key and scopes, enterprise, communities, households, members; on PostgreSQL the key's
    # row-level security scope is set once the secret is verified (a token's grants statement
    # sets it itself)
    scope = 1 if engine.dialect.name == "postgresql" else 0
    assert token_log.count == 5, token_log.statements
    assert key_log.count == 5 + scope, key_log.statements
    assert first_log.count == 6 + scope
    assert first_log.statements[-1].lstrip().upper().startswith("UPDATE")


async def test_statement_and_leaderboard_page_statements(engine, api):
    from tests.engagement_world import PERIOD, build_campus

    campus = await build_campus(engine)
    statement = """query($id: ID!, $p: PeriodInput) { household(id: $id) { statement(period: $p) {
      weeks { net usage { activityType quantity } } net previousNet creditsEarned
      ranking { rank percentile peerCount peerAverageNet } } } }"""
    with StatementLog() as log:
        body = await api.gql(
            statement, {"id": gid("Household", campus.rooms["r1"]), "p": PERIOD}, subject="admin"
        )
    assert body["data"]["household"]["statement"]["ranking"]["peerCount"] == 6
    # grants, household, usage by day, totals by day ∪ population, credits, the household's
    # communities (to find its campus), the ranked board cut to this room and the top row
    assert log.count == 7, log.statements
    # The electricity ranking only when asked for: one more ranked statement.
    with StatementLog() as log:
        body = await api.gql(
            statement.replace("peerAverageNet }", "peerAverageNet } electricityRanking { rank }"),
            {"id": gid("Household", campus.rooms["r1"]), "p": PERIOD},
            subject="admin",
        )
    assert body["data"]["household"]["statement"]["electricityRanking"]["rank"] == 3
    assert log.count == 8, log.statements
    board = """query($id: ID!, $p: PeriodInput) { community(id: $id) {
      leaderboard(metric: NET_EMISSIONS_PER_CAPITA, period: $p, first: 3) {
        totalCount population edges { node { rank name value } } } } }"""
    with StatementLog() as log:
        body = await api.gql(
            board, {"id": gid("Community", campus.campus), "p": PERIOD}, subject="admin"
        )
    assert body["data"]["community"]["leaderboard"]["totalCount"] == 7
    # grants, community, one ranked page (totals, population and windows in one statement)
    assert log.count == 3, log.statements
