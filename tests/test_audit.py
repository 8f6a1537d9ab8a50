"""The audit log: every mutation and grant change, append-only, read by platform admins only."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from carbongraph import audit
from carbongraph.audit import A
from carbongraph.resolvers.dataloaders import C
from tests.world import build_world, gid

CREATE_COMMUNITY = """
mutation($input: CreateCommunityInput!) {
  createCommunity(input: $input) { community { id } userErrors { code } }
}
"""
EVENTS = """
query($first: Int, $after: String, $actor: String, $operation: String, $targetId: ID,
      $since: DateTime, $until: DateTime) {
  auditEvents(first: $first, after: $after, actor: $actor, operation: $operation,
              targetId: $targetId, since: $since, until: $until) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id occurredAt actor actorKind apiKeyId requestId operation outcome
                   targetIds inputSummary } }
  }
}
"""


def community_input(enterprise: str, name: str = "Riverside") -> dict:
    return {
        "name": name,
        "kind": "VILLAGE",
        "regionCode": "CN-GD",
        "timezone": "Asia/Shanghai",
        "enterpriseId": enterprise,
    }


async def events(api, **variables) -> list[dict]:
    body = await api.gql(EVENTS, variables, subject="admin")
    return [e["node"] for e in body["data"]["auditEvents"]["edges"]]


async def test_successful_and_refused_mutations_are_recorded(engine, api):
    world = await build_world(engine)
    enterprise_a = gid("Enterprise", world.a.enterprise)
    ok = await api.gql(
        CREATE_COMMUNITY,
        {"input": community_input(enterprise_a)},
        subject="org-a",
    )
    created = ok["data"]["createCommunity"]["community"]["id"]
    refused = await api.gql(
        CREATE_COMMUNITY, {"input": community_input(enterprise_a, "Intruders")}, subject="org-b"
    )
    assert refused["data"]["createCommunity"]["userErrors"][0]["code"] == "NOT_FOUND"
    invalid = await api.gql(
        CREATE_COMMUNITY, {"input": {**community_input(enterprise_a), "name": " "}}, subject="org-a"
    )
    assert invalid["data"]["createCommunity"]["userErrors"][0]["code"] == "REQUIRED"

    newest_first = await events(api, operation="createCommunity")
    assert [(e["actor"], e["outcome"]) for e in newest_first] == [
        ("org-a", "USER_ERROR"),
        ("org-b", "NOT_FOUND"),
        ("org-a", "OK"),
    ]
    success = newest_first[-1]
    assert success["actorKind"] == "USER" and success["apiKeyId"] is None
    assert set(success["targetIds"]) == {enterprise_a, created}
    assert json.loads(success["inputSummary"])["input"]["name"] == "Riverside"
    assert success["requestId"]
    assert [e["outcome"] for e in await events(api, targetId=created)] == ["OK"]
    assert [e["actor"] for e in await events(api, actor="org-b")] == ["org-b"]


async def test_grant_changes_are_recorded_with_what_was_revoked(engine, api):
    world = await build_world(engine)
    community = gid("Community", world.a.communities[0])
    granted = await api.gql(
        """mutation($n: ID!) { grantRole(input: {principal: "new-cm", role: COMMUNITY_MANAGER,
           nodeId: $n}) { grant { id } userErrors { code } } }""",
        {"n": community},
        subject="org-a",
    )
    grant_id = granted["data"]["grantRole"]["grant"]["id"]
    await api.gql(
        "mutation($id: ID!) { revokeRole(input: {grantId: $id}) { userErrors { code } } }",
        {"id": grant_id},
        subject="org-a",
    )
    denied = await api.gql(
        """mutation { grantRole(input: {principal: "me", role: PLATFORM_ADMIN}) {
           userErrors { code } } }""",
        subject="org-a",
    )
    assert denied["data"]["grantRole"]["userErrors"][0]["code"] == "FORBIDDEN"

    grant_events = await events(api, operation="grantRole")
    assert [e["outcome"] for e in grant_events] == ["FORBIDDEN", "OK"]
    assert set(grant_events[1]["targetIds"]) == {community, grant_id}
    summary = json.loads(grant_events[1]["inputSummary"])["input"]
    assert summary == {"principal": "new-cm", "role": "COMMUNITY_MANAGER", "nodeId": community}
    (revoked,) = await events(api, operation="revokeRole")
    assert revoked["outcome"] == "OK" and grant_id in revoked["targetIds"]
    assert json.loads(revoked["inputSummary"])["recorded"] == {
        "principal": "new-cm",
        "role": "COMMUNITY_MANAGER",
        "nodeType": "Community",
        "nodeId": world.a.communities[0],
    }


async def test_api_key_actors_and_no_secrets_in_summaries(engine, api):
    world = await build_world(engine)
    a0 = gid("Community", world.a.communities[0])
    created = await api.gql(
        """mutation($n: ID!) { createApiKey(input: {name: "feed",
           scopes: [{role: PARTNER_SERVICE, nodeId: $n}]}) { secret apiKey { id } } }""",
        {"n": a0},
        subject="org-a",
    )
    secret = created["data"]["createApiKey"]["secret"]
    key_id = created["data"]["createApiKey"]["apiKey"]["id"]
    token = api.token("someone")
    # A key tries to grant; a user pastes a token where a principal goes.
    by_key = await api.post(
        "mutation($p: String!, $n: ID!) { grantRole(input: {principal: $p, role: RESIDENT,"
        " nodeId: $n}) { userErrors { code } } }",
        {"p": token, "n": gid("Individual", world.a.all_members[0])},
        token=secret,
    )
    assert by_key.json()["data"]["grantRole"]["userErrors"][0]["code"] == "FORBIDDEN"

    everything = await events(api, first=10)
    assert [e["operation"] for e in everything] == ["grantRole", "createApiKey"]
    key_event, create_event = everything
    assert key_event["actorKind"] == "API_KEY" and key_event["apiKeyId"] == key_id
    assert key_event["actor"] == f"apikey:{secret.split('_')[1]}"
    assert json.loads(key_event["inputSummary"])["input"]["principal"] == "[redacted]"
    assert key_id in create_event["targetIds"]
    async with engine.connect() as conn:
        stored = " ".join(r.summary for r in await conn.execute(sa.select(A.c.summary)))
    assert secret.split("_", 2)[2] not in stored and token not in stored


async def test_a_change_whose_event_cannot_be_written_is_undone(engine, api, monkeypatch):
    world = await build_world(engine)
    real_write = audit._write

    async def failing_write(info, kwargs, outcome, payload):
        if outcome == audit.Outcome.OK:
            raise RuntimeError("audit storage unavailable")
        await real_write(info, kwargs, outcome, payload)

    monkeypatch.setattr(audit, "_write", failing_write)
    body = await api.gql(
        CREATE_COMMUNITY,
        {"input": community_input(gid("Enterprise", world.a.enterprise), "Ghost town")},
        subject="org-a",
        allow_errors=True,
    )
    assert body["data"] is None or body["data"]["createCommunity"] is None
    monkeypatch.setattr(audit, "_write", real_write)
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).where(C.c.name == "Ghost town")) == 0
        outcomes = [r.outcome for r in await conn.execute(sa.select(A.c.outcome))]
    assert outcomes == ["ERROR"]  # the failure is recorded; no OK event, no community


async def test_the_log_is_append_only_at_the_database(engine, api, backend):
    world = await build_world(engine)
    await api.gql(
        CREATE_COMMUNITY,
        {"input": community_input(gid("Enterprise", world.a.enterprise))},
        subject="org-a",
    )
    statements = [
        sa.update(A).values(outcome="FORBIDDEN"),
        sa.delete(A),
    ]
    if backend == "postgresql":
        statements.append(sa.text("TRUNCATE audit_event"))
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(statement)
    async with engine.connect() as conn:
        assert [r.outcome for r in await conn.execute(sa.select(A.c.outcome))] == ["OK"]


async def test_only_platform_admins_read_the_log_and_it_pages_newest_first(engine, api):
    world = await build_world(engine)
    for n in range(3):
        await api.gql(
            CREATE_COMMUNITY,
            {"input": community_input(gid("Enterprise", world.a.enterprise), f"C{n}")},
            subject="org-a",
        )
    for subject in ("org-a", "esg-a", "partner-a", "resident-a"):
        body = await api.gql(EVENTS, {}, subject=subject, allow_errors=True)
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    first = (await api.gql(EVENTS, {"first": 2}, subject="admin"))["data"]["auditEvents"]
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"]
    names = [json.loads(e["node"]["inputSummary"])["input"]["name"] for e in first["edges"]]
    assert names == ["C2", "C1"]
    rest = (
        await api.gql(
            EVENTS, {"first": 2, "after": first["pageInfo"]["endCursor"]}, subject="admin"
        )
    )["data"]["auditEvents"]
    assert [json.loads(e["node"]["inputSummary"])["input"]["name"] for e in rest["edges"]] == ["C0"]
    assert not rest["pageInfo"]["hasNextPage"]
    newest = first["edges"][0]["node"]["occurredAt"]
    assert len(await events(api, since=newest)) == 1
    assert len(await events(api, until=newest)) == 2
    by_id = await api.gql(
        "query($id: ID!) { node(id: $id) { ... on AuditEvent { operation } } }",
        {"id": first["edges"][0]["node"]["id"]},
        subject="org-a",
        allow_errors=True,
    )
    assert by_id["data"]["node"] is None


def test_summaries_leave_out_secrets_files_and_bulk():
    class Upload:
        filename = "plate.jpg"

        def read(self) -> bytes:
            return b"\xff\xd8"

    arguments = {
        "input": {
            "file": Upload(),
            "clientSecret": "hunter2",
            "note": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
            "apiKey": "cgk_0123456789ab_abc",
            "records": [{"quantity": n} for n in range(25)],
            "label": "x" * 500,
        }
    }
    summary = json.loads(audit.summary_json(arguments))["input"]
    assert summary["file"] == "[file]"
    assert summary["clientSecret"] == summary["note"] == summary["apiKey"] == "[redacted]"
    assert len(summary["records"]) == 21 and summary["records"][-1] == "… 5 more"
    assert len(summary["label"]) == 201
    bulk = {"input": {"records": [{"externalId": "x" * 199, "n": n} for n in range(1000)]}}
    assert json.loads(audit.summary_json(bulk)) == {
        "truncated": True,
        "input": {"input": {"records": "1000 items"}},
    }


CREATE_INDIVIDUAL = """mutation($input: CreateIndividualInput!) {
  createIndividual(input: $input) { individual { id displayName } userErrors { code } } }"""
UPDATE_INDIVIDUAL = """mutation($input: UpdateIndividualInput!) {
  updateIndividual(input: $input) { individual { id } userErrors { code } } }"""


async def _all_audit_text(engine) -> str:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(A))).all()
    return "\n".join(" ".join(str(v) for v in row) for row in rows)


@pytest.mark.parametrize("key", [None, "operator-audit-key"])
async def test_personal_input_is_never_stored_in_clear(engine, app_engine, settings, key):
    import httpx

    from carbongraph.app import create_app
    from carbongraph.authz import mint_token
    from carbongraph.config import Settings

    world = await build_world(engine)
    keyed = Settings.from_env(database_url=settings.database_url, audit_key=key)
    app = create_app(keyed, engine=app_engine)
    headers = {"Authorization": f"Bearer {mint_token(keyed, 'admin')}"}
    home = gid("Household", world.a.all_households[0])
    name, email = "Zhang Wei-Ling", "wei-ling.zhang@example.org"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:

        async def post(query: str, variables: dict) -> dict:
            response = await client.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
            return response.json()

        body = await post(
            CREATE_INDIVIDUAL,
            {"input": {"displayName": name, "email": email, "householdId": home}},
        )
        assert body["data"]["createIndividual"]["individual"]["displayName"] == name
        person = body["data"]["createIndividual"]["individual"]["id"]
        # A refused one (blank e-mail) and an update are logged the same way.
        await post(CREATE_INDIVIDUAL, {"input": {"displayName": name, "email": " "}})
        await post(UPDATE_INDIVIDUAL, {"input": {"id": person, "email": email}})
        bulk = await post(
            "mutation($input: CreateIndividualsInput!) { createIndividuals(input: $input) "
            "{ individuals { id } userErrors { code } } }",
            {"input": {"items": [{"displayName": name, "email": email, "householdId": home}]}},
        )
        assert bulk["data"]["createIndividuals"]["userErrors"] == [], bulk
    text = await _all_audit_text(engine)
    for clear in (name, email, "Zhang", "wei-ling", "example.org"):
        assert clear not in text
    async with engine.connect() as conn:
        summaries = [
            json.loads(s)
            for s in (
                await conn.execute(
                    sa.select(A.c.summary)
                    .where(
                        A.c.operation.in_(
                            ["createIndividual", "updateIndividual", "createIndividuals"]
                        )
                    )
                    .order_by(A.c.id)
                )
            ).scalars()
        ]
    assert len(summaries) == 4
    created, refused, updated, bulk_input = (s["input"] for s in summaries)
    assert bulk_input["items"][0]["email"] == created["email"]
    assert created["householdId"] == home  # not personal: kept
    if key is None:
        assert created["displayName"] == created["email"] == audit.REDACTED
    else:
        assert created["displayName"].startswith("hmac:") and len(created["displayName"]) == 37
        # Equal values correlate (same key), different ones do not.
        assert created["email"] == updated["email"] == audit.protect(email, key)
        assert created["displayName"] == refused["displayName"] != created["email"]


def test_personal_inputs_come_from_one_declaration():
    """Every input field that sets a field the schema tags personal is declared personal
    (``personal_input()``), so the audit log protects it without a list in audit.py."""
    from carbongraph.schema.schema import schema

    gql = schema._schema
    checked = []
    for type_name in ("Individual", "Household"):
        tagged = {
            name
            for name, field in gql.type_map[type_name].fields.items()  # type: ignore[union-attr]
            if any(
                type(d).__name__ == "Tag" and d.name == "personal"
                for d in field.extensions["strawberry-definition"].directives
            )
        }
        for prefix in ("Create", "Update"):
            input_type = gql.type_map[f"{prefix}{type_name}Input"]
            for name, field in input_type.fields.items():  # type: ignore[union-attr]
                if name in tagged:
                    checked.append(f"{input_type.name}.{name}")
                    assert audit.is_personal(field.extensions["strawberry-definition"]), name
    assert set(checked) >= {
        "CreateIndividualInput.displayName",
        "CreateIndividualInput.email",
        "UpdateIndividualInput.email",
        "CreateHouseholdInput.name",
    }
