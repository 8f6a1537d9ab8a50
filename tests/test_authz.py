"""Who sees what: tenants, residents, ESG analysts, partner services."""

from __future__ import annotations

from tests.world import build_world, gid

HOUSEHOLD_MEMBERS = """
query($id: ID!) { household(id: $id) { id members { edges { node { id displayName } } } } }
"""


def _codes(body: dict) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def test_resident_reads_own_household_members(engine, api):
    world = await build_world(engine)
    home = world.a.households[world.a.communities[0]][0]
    body = await api.gql(HOUSEHOLD_MEMBERS, {"id": gid("Household", home)}, subject="resident-a")
    names = [e["node"]["displayName"] for e in body["data"]["household"]["members"]["edges"]]
    assert len(names) == 2 and all(names)


async def test_resident_cannot_read_another_households_members(engine, api):
    world = await build_world(engine)
    neighbour = world.a.households[world.a.communities[0]][1]
    body = await api.gql(
        HOUSEHOLD_MEMBERS,
        {"id": gid("Household", neighbour)},
        subject="resident-a",
        allow_errors=True,
    )
    assert body["data"]["household"] is None
    assert _codes(body) == ["FORBIDDEN"]
    # Nor through the community's lists, nor by asking for a neighbour directly.
    query = """query($id: ID!) { community(id: $id) {
      households { totalCount edges { node { id } } }
      members { totalCount edges { node { id displayName } } } } }"""
    body = await api.gql(
        query, {"id": gid("Community", world.a.communities[0])}, subject="resident-a"
    )
    community = body["data"]["community"]
    own = world.a.households[world.a.communities[0]][0]
    assert [e["node"]["id"] for e in community["households"]["edges"]] == [gid("Household", own)]
    assert community["households"]["totalCount"] == 1
    assert {e["node"]["id"] for e in community["members"]["edges"]} == {
        gid("Individual", i) for i in world.a.members[own]
    }
    stranger = world.a.members[neighbour][0]
    body = await api.gql(
        "query($id: ID!) { individual(id: $id) { displayName } }",
        {"id": gid("Individual", stranger)},
        subject="resident-a",
        allow_errors=True,
    )
    assert body["data"]["individual"] is None and _codes(body) == ["FORBIDDEN"]


async def test_esg_analyst_reads_no_names(engine, api):
    world = await build_world(engine)
    query = """query($id: ID!) { enterprise(id: $id) { name communities(first: 10) { edges {
      node { name members(first: 50) { totalCount edges { node { id displayName email } } } }
    } } } }"""
    body = await api.gql(
        query, {"id": gid("Enterprise", world.a.enterprise)}, subject="esg-a", allow_errors=True
    )
    enterprise = body["data"]["enterprise"]
    assert enterprise["name"] == "Enterprise A"  # organisations are not personal data
    members = [
        e["node"] for c in enterprise["communities"]["edges"] for e in c["node"]["members"]["edges"]
    ]
    assert len(members) == len(world.a.all_members)
    assert all(m["displayName"] is None and m["email"] is None for m in members)
    assert set(_codes(body)) == {"FORBIDDEN"}
    # Directly, through node(), and household labels too.
    pk = world.a.all_members[0]
    for q in (
        "query($id: ID!) { individual(id: $id) { displayName } }",
        "query($id: ID!) { node(id: $id) { ... on Individual { displayName } } }",
    ):
        body = await api.gql(q, {"id": gid("Individual", pk)}, subject="esg-a", allow_errors=True)
        assert "displayName" not in str(body["data"]).replace("'displayName': None", "")
        assert _codes(body) == ["FORBIDDEN"]
    body = await api.gql(
        "query($id: ID!) { household(id: $id) { name dwellingType } }",
        {"id": gid("Household", world.a.all_households[0])},
        subject="esg-a",
        allow_errors=True,
    )
    assert body["data"]["household"] == {"name": None, "dwellingType": "HOUSE"}


async def test_partner_service_reads_nothing_personal(engine, api):
    world = await build_world(engine)
    body = await api.gql(
        "query($id: ID!) { individual(id: $id) { id externalRef displayName } }",
        {"id": gid("Individual", world.a.all_members[0])},
        subject="partner-a",
        allow_errors=True,
    )
    assert body["data"]["individual"]["displayName"] is None
    assert body["data"]["individual"]["externalRef"]
    assert _codes(body) == ["FORBIDDEN"]


async def test_tenant_a_sees_nothing_of_tenant_b(engine, api):
    world = await build_world(engine)
    body = await api.gql(
        "{ enterprises { totalCount edges { node { id } } } "
        "communities { totalCount edges { node { id } } } }",
        subject="org-a",
    )
    assert [e["node"]["id"] for e in body["data"]["enterprises"]["edges"]] == [
        gid("Enterprise", world.a.enterprise)
    ]
    assert {e["node"]["id"] for e in body["data"]["communities"]["edges"]} == {
        gid("Community", c) for c in world.a.communities
    }
    assert body["data"]["communities"]["totalCount"] == len(world.a.communities)
    # Every kind of B's node, by typed field, node, nodes and _entities: NOT_FOUND, never data,
    # and the same answer as for an ID that does not exist at all.
    b_nodes = [
        ("Enterprise", world.b.enterprise),
        ("Community", world.b.communities[0]),
        ("Household", world.b.all_households[0]),
        ("Individual", world.b.all_members[1]),
    ]
    for type_name, pk in [*b_nodes, ("Community", 999999)]:
        field = type_name[0].lower() + type_name[1:]
        body = await api.gql(
            f"query($id: ID!) {{ {field}(id: $id) {{ id }} }}",
            {"id": gid(type_name, pk)},
            subject="org-a",
            allow_errors=True,
        )
        assert body["data"][field] is None and _codes(body) == ["NOT_FOUND"], body
        body = await api.gql(
            "query($id: ID!) { node(id: $id) { id } }",
            {"id": gid(type_name, pk)},
            subject="org-a",
            allow_errors=True,
        )
        assert body["data"]["node"] is None and _codes(body) == ["NOT_FOUND"]
    body = await api.gql(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        {"ids": [gid(t, pk) for t, pk in b_nodes]},
        subject="org-a",
    )
    assert body["data"]["nodes"] == [None] * len(b_nodes)
    reps = [{"__typename": t, "id": gid(t, pk)} for t, pk in b_nodes]
    body = await api.gql(
        "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }",
        {"r": reps},
        subject="org-a",
        allow_errors=True,
    )
    assert body["data"]["_entities"] == [None] * len(b_nodes)


async def test_employee_living_in_another_tenant(engine, backend, api):
    """A's admin sees A's employees (second roll-up path), but not the home in B they live in."""
    world = await build_world(engine)
    query = """query($id: ID!) { enterprise(id: $id) { employees { totalCount edges { node {
      id displayName household { id } } } } } }"""
    body = await api.gql(
        query, {"id": gid("Enterprise", world.a.enterprise)}, subject="org-a", allow_errors=True
    )
    employees = body["data"]["enterprise"]["employees"]
    assert employees["totalCount"] == 2
    assert {e["node"]["id"] for e in employees["edges"]} == {
        gid("Individual", i) for i in world.employees_a
    }
    assert all(e["node"]["displayName"] for e in employees["edges"])
    assert all(e["node"]["household"] is None for e in employees["edges"])
    if backend == "postgresql":
        # Row-level security hides B's membership rows from A's admin: the home in B is not
        # even known to exist, as for a person without a household.
        assert "errors" not in body
    else:
        assert set(_codes(body)) <= {"NOT_FOUND", "FORBIDDEN"} and body.get("errors")


async def test_community_manager_sees_only_their_community(engine, api):
    world = await build_world(engine)
    body = await api.gql(
        "{ communities { edges { node { id name } } } enterprises { edges { node { id name } } } }",
        subject="cm-a0",
    )
    assert [e["node"]["id"] for e in body["data"]["communities"]["edges"]] == [
        gid("Community", world.a.communities[0])
    ]
    # Their enterprise is visible by name (it contains their grant), its other communities not.
    query = """query($id: ID!) { enterprise(id: $id) { name communities { totalCount } } }"""
    body = await api.gql(query, {"id": gid("Enterprise", world.a.enterprise)}, subject="cm-a0")
    assert body["data"]["enterprise"] == {"name": "Enterprise A", "communities": {"totalCount": 1}}
    body = await api.gql(
        "query($id: ID!) { community(id: $id) { name } }",
        {"id": gid("Community", world.a.communities[1])},
        subject="cm-a0",
        allow_errors=True,
    )
    assert body["data"]["community"] is None and _codes(body) == ["FORBIDDEN"]


async def test_principal_without_grants_sees_nothing(engine, api):
    await build_world(engine)
    body = await api.gql(
        "{ me { subject grants { role } individual { id } } "
        "enterprises { totalCount } communities { totalCount } }",
        subject="nobody",
    )
    assert body["data"] == {
        "me": {"subject": "nobody", "grants": [], "individual": None},
        "enterprises": {"totalCount": 0},
        "communities": {"totalCount": 0},
    }


async def test_me_for_a_resident(engine, api):
    world = await build_world(engine)
    body = await api.gql(
        "{ me { grants { role } individual { id displayName household { id } } } }",
        subject="resident-a",
    )
    me = body["data"]["me"]
    home = world.a.households[world.a.communities[0]][0]
    assert me["grants"] == [{"role": "RESIDENT"}]
    assert me["individual"]["household"]["id"] == gid("Household", home)
