"""Leaks the leak matrix found, pinned one by one (tests/test_leak_matrix.py covers the rest)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from carbongraph.authz import PLATFORM, Role
from carbongraph.services.access import G
from tests.world import build_world, gid, grant

ACTIVITY = """mutation($input: RecordActivityInput!) { recordActivity(input: $input) {
  records { id } createdCount unchangedCount userErrors { field code message } } }"""
ACTION = """mutation($input: RecordActionInput!) { recordAction(input: $input) {
  actions { id } createdCount unchangedCount userErrors { field code message } } }"""
REVOKE = """mutation($g: ID!) { revokeRole(input: {grantId: $g}) {
  revokedGrantId userErrors { field code message } } }"""
MISSING_PERSON = gid("Individual", 987_654_321)


def _activity(person: str, external_id: str) -> dict:
    day = (date.today() - timedelta(days=3)).isoformat()
    return {
        "accountId": person,
        "activityType": "ELECTRICITY",
        "quantity": "5",
        "unit": "kWh",
        "periodStart": day,
        "periodEnd": day,
        "externalId": external_id,
    }


def _action(person: str, external_id: str) -> dict:
    return {
        "individualId": person,
        "actionType": "SUBWAY_TRIP",
        "units": 1,
        "occurredOn": (date.today() - timedelta(days=3)).isoformat(),
        "externalId": external_id,
    }


@pytest.mark.parametrize(
    ("document", "make", "field"),
    [(ACTIVITY, _activity, "recordActivity"), (ACTION, _action, "recordAction")],
    ids=["activity", "action"],
)
async def test_a_replay_is_authorised_like_a_new_record(engine, api, document, make, field):
    """Before: replaying another tenant's externalId with the same values answered
    ``unchangedCount: 1`` and the stored record, to anyone."""
    world = await build_world(engine)
    b_person = gid("Individual", world.b.all_members[0])
    stored = await api.gql(document, {"input": make(b_person, "meter-42")}, subject="org-b")
    assert stored["data"][field]["userErrors"] == [] and stored["data"][field]["createdCount"] == 1

    # The owner's tenant may replay it: the same record comes back.
    again = await api.gql(document, {"input": make(b_person, "meter-42")}, subject="org-b")
    assert again["data"][field]["unchangedCount"] == 1

    # Another tenant: refused exactly like a person that does not exist (same externalId).
    foreign = await api.gql(document, {"input": make(b_person, "meter-42")}, subject="org-a")
    missing = await api.gql(document, {"input": make(MISSING_PERSON, "meter-42")}, subject="org-a")
    assert foreign == missing
    payload = foreign["data"][field]
    assert [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"]
    assert payload["unchangedCount"] == 0 and not (payload.get("records") or payload.get("actions"))

    # Inside the tenant but without the right to record (an ESG analyst): FORBIDDEN.
    await grant(engine, "esg-b", Role.ESG_ANALYST, "Enterprise", world.b.enterprise)
    body = await api.gql(document, {"input": make(b_person, "meter-42")}, subject="esg-b")
    assert [e["code"] for e in body["data"][field]["userErrors"]] == ["FORBIDDEN"]


async def test_revoking_a_grant_on_an_unseen_node_answers_like_a_missing_grant(engine, api):
    """Before: a foreign grant's ID answered "No such Community." on ``nodeId``, a missing
    one "No such grant." on ``grantId`` — which told grant IDs of other tenants apart."""
    world = await build_world(engine)
    granted = await api.gql(
        """mutation($n: ID!) { grantRole(input: {principal: "someone", role: COMMUNITY_MANAGER,
          nodeId: $n}) { grant { id } } }""",
        {"n": gid("Community", world.b.communities[0])},
        subject="org-b",
    )
    foreign_grant = granted["data"]["grantRole"]["grant"]["id"]
    async with engine.connect() as conn:
        admin_pk = await conn.scalar(sa.select(G.c.id).where(G.c.node_type == PLATFORM))
    platform_grant = gid("RoleGrant", admin_pk)
    missing = await api.gql(REVOKE, {"g": gid("RoleGrant", 987_654_321)}, subject="org-a")
    assert missing["data"]["revokeRole"]["userErrors"][0]["code"] == "NOT_FOUND"
    for grant_id in (foreign_grant, platform_grant):
        body = await api.gql(REVOKE, {"g": grant_id}, subject="org-a")
        assert body == missing
    # Its own tenant's admin still revokes it.
    body = await api.gql(REVOKE, {"g": foreign_grant}, subject="org-b")
    assert body["data"]["revokeRole"] == {"revokedGrantId": foreign_grant, "userErrors": []}


STATEMENT = """query($h: ID!) { household(id: $h) {
  footprint(period: {year: %d}) { suppressed gross }
  statement { gross net memberCount weeks { net } } } }"""


async def test_a_small_households_statement_is_withheld_like_its_footprint(engine, api):
    """Before: an ESG analyst (or partner service, or such an API key) read a two-person
    household's ``statement`` — gross, net, members and every week — while its ``footprint``
    for the same days was withheld as a small cell (docs/privacy.md)."""
    world = await build_world(engine)
    home = world.a.all_households[0]
    [person, *_] = world.a.members[home]
    body = await api.gql(
        ACTIVITY,
        {"input": {**_activity(gid("Individual", person), "statement-leak"), "quantity": "7"}},
        subject="org-a",
    )
    assert body["data"]["recordActivity"]["userErrors"] == []
    query = STATEMENT % date.today().year
    variables = {"h": gid("Household", home)}

    body = await api.gql(query, variables, subject="esg-a", allow_errors=True)
    household = body["data"]["household"]
    assert household["footprint"] == {"suppressed": True, "gross": None}
    assert household["statement"] is None
    [error] = body["errors"]
    assert error["path"] == ["household", "statement"]
    assert error["extensions"] == {"code": "SUPPRESSED", "reason": "SMALL_CELL"}

    # Its managers still read the figures.
    body = await api.gql(query, variables, subject="org-a")
    assert body["data"]["household"]["statement"]["gross"] > 0
    assert body["data"]["household"]["statement"]["memberCount"] == 2

    # The printable page runs the same document: withheld too (403), shown to the manager.
    path = f"/statements/{gid('Household', home)}"
    page = await api.client.get(path, headers={"Authorization": f"Bearer {api.token('esg-a')}"})
    assert page.status_code == 403 and "gross" not in page.text.lower()
    page = await api.client.get(path, headers={"Authorization": f"Bearer {api.token('org-a')}"})
    assert page.status_code == 200


async def test_nodes_resolves_api_keys_and_audit_events_like_node(engine, api):
    """Before: ``nodes`` answered null for every ApiKey and AuditEvent ID, even to those
    ``node`` shows them to (no leak, but the two disagreed)."""
    world = await build_world(engine)
    created = await api.gql(
        """mutation($n: ID!) { createApiKey(input: {name: "metro",
          scopes: [{role: PARTNER_SERVICE, nodeId: $n}]}) { apiKey { id } } }""",
        {"n": gid("Enterprise", world.a.enterprise)},
        subject="org-a",
    )
    key = created["data"]["createApiKey"]["apiKey"]["id"]
    log = await api.gql("{ auditEvents(first: 1) { edges { node { id } } } }", subject="admin")
    event = log["data"]["auditEvents"]["edges"][0]["node"]["id"]
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    ids = {"ids": [key, event]}
    assert (await api.gql(query, ids, subject="admin"))["data"]["nodes"] == [
        {"id": key},
        {"id": event},
    ]
    assert (await api.gql(query, ids, subject="org-a"))["data"]["nodes"] == [{"id": key}, None]
    assert (await api.gql(query, ids, subject="org-b"))["data"]["nodes"] == [None, None]


async def test_an_employees_ranking_stays_in_the_tenant_they_live_in(engine, api):
    """Before: an enterprise's admin reading the statement of an employee who lives in another
    tenant got ``ranking.peers`` "homes of <that tenant's community>" (a name ``community()``
    refuses as NOT_FOUND), the rank and the number of its homes. PostgreSQL's row-level
    security hid it; SQLite did not."""
    world = await build_world(engine)
    person = world.b.all_members[0]
    await api.gql(
        """mutation($i: ID!, $e: ID!) { linkEmployee(input: {individualId: $i, enterpriseId: $e,
          effectiveFrom: "2024-01-01"}) { userErrors { code } } }""",
        {"i": gid("Individual", person), "e": gid("Enterprise", world.a.enterprise)},
        subject="admin",
    )
    body = await api.gql(
        ACTIVITY,
        {"input": {**_activity(gid("Individual", person), "employee-ranking")}},
        subject="org-b",
    )
    assert body["data"]["recordActivity"]["userErrors"] == []
    query = """query($i: ID!) { individual(id: $i) { statement { net ranking { peers rank
      peerCount } } } }"""
    variables = {"i": gid("Individual", person)}
    own = await api.gql(query, variables, subject="org-b")
    assert own["data"]["individual"]["statement"]["ranking"]["peers"].startswith("homes of ")
    employer = await api.gql(query, variables, subject="org-a")
    statement = employer["data"]["individual"]["statement"]
    assert statement["net"] > 0 and statement["ranking"] is None
