"""Mutations: payloads with userErrors, nothing written on failure, dated moves."""

from __future__ import annotations

import sqlalchemy as sa

from carbongraph.models import metadata
from tests.world import build_world, gid

CREATE_COMMUNITY = """
mutation($input: CreateCommunityInput!) { createCommunity(input: $input) {
  community { id name regionCode timezone enterprise { id } parent { id } }
  userErrors { field message code } } }
"""


async def _row_counts(engine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            t.name: await conn.scalar(sa.select(sa.func.count()).select_from(t))
            for t in metadata.sorted_tables
            # A refused mutation still leaves its audit event (tests/test_audit.py).
            if t.name != "audit_event"
        }


async def test_create_the_hierarchy_as_platform_admin(engine, api):
    await build_world(engine)
    body = await api.gql(
        """mutation { createEnterprise(input: {name: "Campus Co", kind: UNIVERSITY,
        externalRef: "cc-1"}) { enterprise { id name kind externalRef } userErrors { code } } }""",
        subject="admin",
    )
    payload = body["data"]["createEnterprise"]
    assert payload["userErrors"] == []
    enterprise_id = payload["enterprise"]["id"]
    body = await api.gql(
        CREATE_COMMUNITY,
        {
            "input": {
                "name": "North Campus",
                "kind": "CAMPUS",
                "regionCode": "cn-zj",
                "timezone": "Asia/Shanghai",
                "enterpriseId": enterprise_id,
            }
        },
        subject="admin",
    )
    campus = body["data"]["createCommunity"]["community"]
    assert campus["regionCode"] == "CN-ZJ" and campus["enterprise"]["id"] == enterprise_id
    body = await api.gql(
        CREATE_COMMUNITY,
        {"input": {"name": "Dorm 1", "kind": "BUILDING", "parentId": campus["id"]}},
        subject="admin",
    )
    dorm = body["data"]["createCommunity"]["community"]
    # Region and time zone come from the parent; so does the enterprise.
    assert dorm["timezone"] == "Asia/Shanghai" and dorm["parent"]["id"] == campus["id"]
    assert dorm["enterprise"]["id"] == enterprise_id
    body = await api.gql(
        """mutation($c: ID!) { createHousehold(input: {communityId: $c,
        name: "Room 101", dwellingType: DORM_ROOM}) { household { id community { id } }
        userErrors { code } } }""",
        {"c": dorm["id"]},
        subject="admin",
    )
    room = body["data"]["createHousehold"]["household"]
    body = await api.gql(
        """mutation($h: ID!) { createIndividual(input: {displayName: "Student",
        householdId: $h, memberFrom: "2025-09-01"}) { individual { id displayName
        household { id } householdHistory { validFrom validTo } } userErrors { code } } }""",
        {"h": room["id"]},
        subject="admin",
    )
    person = body["data"]["createIndividual"]["individual"]
    assert person["household"]["id"] == room["id"]
    assert person["householdHistory"] == [{"validFrom": "2025-09-01", "validTo": None}]


async def test_invalid_input_gives_user_errors_and_writes_nothing(engine, api):
    world = await build_world(engine)
    before = await _row_counts(engine)
    body = await api.gql(
        CREATE_COMMUNITY,
        {
            "input": {
                "name": "  ",
                "kind": "VILLAGE",
                "regionCode": "Guangdong",
                "timezone": "Mars/Olympus",
                "enterpriseId": gid("Enterprise", world.a.enterprise),
            }
        },
        subject="org-a",
    )
    payload = body["data"]["createCommunity"]
    assert payload["community"] is None
    assert {(tuple(e["field"]), e["code"]) for e in payload["userErrors"]} == {
        (("input", "name"), "REQUIRED"),
        (("input", "regionCode"), "INVALID_REGION"),
        (("input", "timezone"), "INVALID_TIMEZONE"),
    }
    body = await api.gql(
        CREATE_COMMUNITY,
        {
            "input": {
                "name": "Elsewhere",
                "kind": "VILLAGE",
                "regionCode": "CN-GD",
                "timezone": "Asia/Shanghai",
                "enterpriseId": "not-an-id",
            }
        },
        subject="org-a",
    )
    assert body["data"]["createCommunity"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert await _row_counts(engine) == before


async def test_foreign_and_forbidden_targets(engine, api):
    world = await build_world(engine)
    before = await _row_counts(engine)
    # Another tenant's enterprise: indistinguishable from a missing one.
    body = await api.gql(
        CREATE_COMMUNITY,
        {
            "input": {
                "name": "Intruder",
                "kind": "VILLAGE",
                "regionCode": "CN-GD",
                "timezone": "Asia/Shanghai",
                "enterpriseId": gid("Enterprise", world.b.enterprise),
            }
        },
        subject="org-a",
    )
    assert body["data"]["createCommunity"]["userErrors"] == [
        {"field": ["input", "enterpriseId"], "message": "No such Enterprise.", "code": "NOT_FOUND"}
    ]
    # An ESG analyst sees the enterprise but may not change it.
    body = await api.gql(
        CREATE_COMMUNITY,
        {
            "input": {
                "name": "Analyst's",
                "kind": "VILLAGE",
                "regionCode": "CN-GD",
                "timezone": "Asia/Shanghai",
                "enterpriseId": gid("Enterprise", world.a.enterprise),
            }
        },
        subject="esg-a",
    )
    assert body["data"]["createCommunity"]["userErrors"][0]["code"] == "FORBIDDEN"
    # Only platform admins create enterprises.
    body = await api.gql(
        """mutation { createEnterprise(input: {name: "X", kind: COMPANY}) {
        enterprise { id } userErrors { code } } }""",
        subject="org-a",
    )
    assert body["data"]["createEnterprise"] == {
        "enterprise": None,
        "userErrors": [{"code": "FORBIDDEN"}],
    }
    assert await _row_counts(engine) == before


async def test_move_is_dated_and_keeps_history(engine, api):
    world = await build_world(engine)
    homes = world.a.households[world.a.communities[0]]
    person = world.a.members[homes[0]][0]
    move = """mutation($p: ID!, $h: ID, $d: Date!) { moveIndividual(input: {individualId: $p,
      householdId: $h, effectiveFrom: $d}) { individual { household { id }
      householdHistory { validFrom validTo household { id } } } userErrors { field code } } }"""
    body = await api.gql(
        move,
        {"p": gid("Individual", person), "h": gid("Household", homes[1]), "d": "2025-03-01"},
        subject="cm-a0",
    )
    payload = body["data"]["moveIndividual"]
    assert payload["userErrors"] == []
    assert payload["individual"]["household"]["id"] == gid("Household", homes[1])
    assert payload["individual"]["householdHistory"] == [
        {
            "validFrom": "2024-01-01",
            "validTo": "2025-03-01",
            "household": {"id": gid("Household", homes[0])},
        },
        {
            "validFrom": "2025-03-01",
            "validTo": None,
            "household": {"id": gid("Household", homes[1])},
        },
    ]
    # The old household no longer lists them; the new one does.
    members = """query($id: ID!) { household(id: $id) { members { edges { node { id } } } } }"""
    old = await api.gql(members, {"id": gid("Household", homes[0])}, subject="cm-a0")
    new = await api.gql(members, {"id": gid("Household", homes[1])}, subject="cm-a0")
    assert gid("Individual", person) not in str(old["data"])
    assert gid("Individual", person) in str(new["data"])
    # History is never rewritten: a move dated before the latest period is refused.
    before = await _row_counts(engine)
    body = await api.gql(
        move,
        {"p": gid("Individual", person), "h": gid("Household", homes[2]), "d": "2025-01-01"},
        subject="cm-a0",
    )
    assert body["data"]["moveIndividual"]["userErrors"] == [
        {"field": ["input", "effectiveFrom"], "code": "OVERLAPPING_MEMBERSHIP"}
    ]
    assert await _row_counts(engine) == before


async def test_archive_requires_empty_nodes(engine, api):
    world = await build_world(engine)
    home = world.a.households[world.a.communities[0]][0]
    archive = """mutation($id: ID!) { archiveHousehold(input: {id: $id}) {
      household { archivedAt } userErrors { code } } }"""
    body = await api.gql(archive, {"id": gid("Household", home)}, subject="org-a")
    assert body["data"]["archiveHousehold"]["userErrors"] == [{"code": "HAS_ACTIVE_CHILDREN"}]
    for person in world.a.members[home]:
        body = await api.gql(
            """mutation($id: ID!) { archiveIndividual(input: {id: $id}) {
          userErrors { code } } }""",
            {"id": gid("Individual", person)},
            subject="org-a",
        )
        assert body["data"]["archiveIndividual"]["userErrors"] == []
    body = await api.gql(archive, {"id": gid("Household", home)}, subject="org-a")
    assert body["data"]["archiveHousehold"]["household"]["archivedAt"]
    body = await api.gql(
        """query($id: ID!) { community(id: $id) { households { totalCount } } }""",
        {"id": gid("Community", world.a.communities[0])},
        subject="org-a",
    )
    assert body["data"]["community"]["households"]["totalCount"] == 2


async def test_grant_and_revoke(engine, api):
    world = await build_world(engine)
    grant = """mutation($p: String!, $r: Role!, $n: ID) { grantRole(input: {principal: $p, role: $r,
      nodeId: $n}) { grant { id role nodeId principal } userErrors { field code } } }"""
    body = await api.gql(
        grant,
        {"p": "new-analyst", "r": "ESG_ANALYST", "n": gid("Enterprise", world.a.enterprise)},
        subject="org-a",
    )
    granted = body["data"]["grantRole"]["grant"]
    assert granted["role"] == "ESG_ANALYST"
    body = await api.gql("{ enterprises { totalCount } }", subject="new-analyst")
    assert body["data"]["enterprises"]["totalCount"] == 1
    # Not in another tenant, and not a role above one's own.
    body = await api.gql(
        grant,
        {"p": "x", "r": "ESG_ANALYST", "n": gid("Enterprise", world.b.enterprise)},
        subject="org-a",
    )
    assert body["data"]["grantRole"]["userErrors"][0]["code"] == "NOT_FOUND"
    body = await api.gql(grant, {"p": "x", "r": "PLATFORM_ADMIN", "n": None}, subject="org-a")
    assert body["data"]["grantRole"]["userErrors"][0]["code"] == "FORBIDDEN"
    body = await api.gql(
        grant,
        {"p": "x", "r": "ORG_ADMIN", "n": gid("Community", world.a.communities[0])},
        subject="org-a",
    )
    assert body["data"]["grantRole"]["userErrors"][0]["code"] == "NOT_GRANTABLE"
    body = await api.gql(
        """mutation($g: ID!) { revokeRole(input: {grantId: $g}) {
      revokedGrantId userErrors { code } } }""",
        {"g": granted["id"]},
        subject="org-a",
    )
    assert body["data"]["revokeRole"]["revokedGrantId"] == granted["id"]
    body = await api.gql("{ enterprises { totalCount } }", subject="new-analyst")
    assert body["data"]["enterprises"]["totalCount"] == 0


async def test_resident_edits_own_profile_only(engine, api):
    world = await build_world(engine)
    home = world.a.households[world.a.communities[0]][0]
    me, housemate = world.a.members[home]
    update = """mutation($id: ID!) { updateIndividual(input: {id: $id, displayName: "Renamed"}) {
      individual { displayName } userErrors { code } } }"""
    body = await api.gql(update, {"id": gid("Individual", me)}, subject="resident-a")
    assert body["data"]["updateIndividual"]["individual"]["displayName"] == "Renamed"
    body = await api.gql(update, {"id": gid("Individual", housemate)}, subject="resident-a")
    assert body["data"]["updateIndividual"]["userErrors"] == [{"code": "FORBIDDEN"}]
