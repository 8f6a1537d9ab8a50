"""API keys: shown once, stored as digests, scoped, rotatable, revocable, with a last use."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from carbongraph.authz.api_keys import K
from tests.world import build_world, gid

CREATE = """
mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) {
    secret
    apiKey { id name prefix active createdBy scopes { role nodeId } lastUsedAt revokedAt }
    userErrors { field code message }
  }
}
"""
ROTATE = """
mutation($input: RotateApiKeyInput!) {
  rotateApiKey(input: $input) {
    secret apiKey { id rotatedFromId active } replacedApiKey { id active revokedAt }
    userErrors { field code }
  }
}
"""
REVOKE = """
mutation($id: ID!) {
  revokeApiKey(input: {apiKeyId: $id}) { apiKey { id active revokedAt } userErrors { code } }
}
"""
LIST = """
query($all: Boolean!) {
  apiKeys(first: 10, includeInactive: $all) {
    totalCount edges { node { id name prefix active scopes { role nodeId } } }
  }
}
"""
COMMUNITY = "query($id: ID!) { community(id: $id) { id name households(first: 5) { totalCount } } }"


async def create_key(api, subject: str, role: str, node_id: str, **extra) -> dict:
    scopes = [{"role": role, "nodeId": node_id}]
    body = await api.gql(
        CREATE, {"input": {"name": "metro feed", "scopes": scopes, **extra}}, subject=subject
    )
    return body["data"]["createApiKey"]


async def with_key(api, key: str, query: str, variables: dict | None = None):
    return await api.post(query, variables, token=key)


async def test_the_secret_is_shown_once_and_only_its_digest_is_stored(engine, api):
    world = await build_world(engine)
    community = gid("Community", world.a.communities[0])
    created = await create_key(api, "org-a", "PARTNER_SERVICE", community)
    assert created["userErrors"] == []
    secret = created["secret"]
    key = created["apiKey"]
    assert secret.startswith(f"cgk_{key['prefix']}_")
    assert key["active"] and key["createdBy"] == "org-a" and key["lastUsedAt"] is None
    assert key["scopes"] == [{"role": "PARTNER_SERVICE", "nodeId": community}]

    listed = await api.post(LIST, {"all": True}, subject="org-a")
    assert listed.json()["data"]["apiKeys"]["edges"][0]["node"]["id"] == key["id"]
    assert secret not in listed.text and secret.split("_", 2)[2] not in listed.text
    by_id = await api.gql(
        "query($id: ID!) { node(id: $id) { id } }", {"id": key["id"]}, subject="org-a"
    )
    assert by_id["data"]["node"]["id"] == key["id"]

    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(K))).one()
    raw_secret = secret.split("_", 2)[2]
    assert row.secret_sha256 == hashlib.sha256(raw_secret.encode()).hexdigest()
    assert raw_secret not in " ".join(str(v) for v in row)


async def test_a_key_reads_with_exactly_its_scopes(engine, api):
    world = await build_world(engine)
    inside = gid("Community", world.a.communities[0])
    sibling = gid("Community", world.a.communities[1])  # the creator's, not the key's
    secret = (await create_key(api, "org-a", "PARTNER_SERVICE", inside))["secret"]

    ok = await with_key(api, secret, COMMUNITY, {"id": inside})
    assert ok.status_code == 200
    assert ok.json()["data"]["community"]["households"]["totalCount"] == 3

    for other in (sibling, gid("Community", world.b.communities[0])):
        refused = (await with_key(api, secret, COMMUNITY, {"id": other})).json()
        assert refused["data"]["community"] is None
        assert refused["errors"][0]["extensions"]["code"] in {"FORBIDDEN", "NOT_FOUND"}
    # Aggregates only: a partner service never sees names of people.
    people = await with_key(
        api,
        secret,
        "query($id: ID!) { household(id: $id) { members(first: 2) { edges { node {"
        " displayName } } } } }",
        {"id": gid("Household", world.a.households[world.a.communities[0]][0])},
    )
    assert people.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    listed = (await with_key(api, secret, "{ communities(first: 10) { totalCount } }")).json()
    assert listed["data"]["communities"]["totalCount"] == 1
    # A key holds no managing role, so it cannot mint keys either.
    minted = (
        await with_key(
            api,
            secret,
            CREATE,
            {"input": {"name": "x", "scopes": [{"role": "PARTNER_SERVICE", "nodeId": inside}]}},
        )
    ).json()["data"]["createApiKey"]
    assert minted["secret"] is None and minted["userErrors"][0]["code"] == "FORBIDDEN"


async def test_nobody_mints_a_key_beyond_their_own_rights(engine, api):
    world = await build_world(engine)
    a0 = gid("Community", world.a.communities[0])
    cases = [
        ("cm-a0", "PARTNER_SERVICE", a0, "FORBIDDEN"),  # managers of a community grant residents
        ("esg-a", "ESG_ANALYST", a0, "FORBIDDEN"),
        ("org-a", "PARTNER_SERVICE", gid("Community", world.b.communities[0]), "NOT_FOUND"),
        ("org-a", "ORG_ADMIN", gid("Enterprise", world.a.enterprise), "NOT_GRANTABLE"),
        ("org-a", "PARTNER_SERVICE", gid("Household", world.a.all_households[0]), "NOT_GRANTABLE"),
    ]
    for subject, role, node, code in cases:
        created = await create_key(api, subject, role, node)
        assert created["secret"] is None and created["apiKey"] is None
        assert created["userErrors"][0]["code"] == code, (subject, role, created)
    past = await create_key(api, "org-a", "ESG_ANALYST", a0, expiresAt="2020-01-01T00:00:00Z")
    assert past["userErrors"][0]["code"] == "INVALID_DATE"
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(K)) == 0
    admin = await create_key(api, "admin", "ESG_ANALYST", gid("Enterprise", world.b.enterprise))
    assert admin["userErrors"] == []


async def test_revoked_expired_rotated_and_forged_keys_get_401(engine, api):
    world = await build_world(engine)
    a0 = gid("Community", world.a.communities[0])
    first = await create_key(api, "org-a", "PARTNER_SERVICE", a0)
    old_secret, old_id = first["secret"], first["apiKey"]["id"]
    assert (await with_key(api, old_secret, COMMUNITY, {"id": a0})).status_code == 200

    rotated = (await api.gql(ROTATE, {"input": {"apiKeyId": old_id}}, subject="org-a"))["data"][
        "rotateApiKey"
    ]
    assert rotated["userErrors"] == []
    assert rotated["apiKey"]["rotatedFromId"] == old_id and rotated["apiKey"]["active"]
    assert rotated["replacedApiKey"]["active"] is False
    new_secret = rotated["secret"]
    refused = await with_key(api, old_secret, COMMUNITY, {"id": a0})
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await with_key(api, new_secret, COMMUNITY, {"id": a0})).status_code == 200

    # With a grace period the old key keeps working until it runs out.
    graced = (
        await api.gql(
            ROTATE,
            {"input": {"apiKeyId": rotated["apiKey"]["id"], "graceMinutes": 10}},
            subject="org-a",
        )
    )["data"]["rotateApiKey"]
    assert graced["replacedApiKey"]["active"] is True
    assert (await with_key(api, new_secret, COMMUNITY, {"id": a0})).status_code == 200
    again = await api.gql(ROTATE, {"input": {"apiKeyId": rotated["apiKey"]["id"]}}, subject="org-a")
    assert again["data"]["rotateApiKey"]["userErrors"][0]["code"] == "INVALID"

    revoked = await api.gql(REVOKE, {"id": rotated["apiKey"]["id"]}, subject="org-a")
    assert revoked["data"]["revokeApiKey"]["apiKey"]["active"] is False
    assert (await with_key(api, new_secret, COMMUNITY, {"id": a0})).status_code == 401
    newest = graced["secret"]
    assert (await with_key(api, newest, COMMUNITY, {"id": a0})).status_code == 200
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(K)
            .where(K.c.prefix == newest.split("_")[1])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert (await with_key(api, newest, COMMUNITY, {"id": a0})).status_code == 401

    live = (await create_key(api, "org-a", "PARTNER_SERVICE", a0))["secret"]
    prefix = live.split("_")[1]
    for forged in (
        f"cgk_{prefix}_{'A' * 43}",  # right prefix, wrong secret
        f"cgk_{'0' * 12}_{live.split('_', 2)[2]}",  # unknown prefix
        "cgk_nothex_x",
        "cgk_",
    ):
        response = await with_key(api, forged, COMMUNITY, {"id": a0})
        assert response.status_code == 401, forged
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_last_use_is_written_at_most_once_a_minute(engine, api):
    world = await build_world(engine)
    a0 = gid("Community", world.a.communities[0])
    secret = (await create_key(api, "org-a", "PARTNER_SERVICE", a0))["secret"]

    async def last_used() -> datetime | None:
        async with engine.connect() as conn:
            return await conn.scalar(sa.select(K.c.last_used_at))

    assert await last_used() is None
    await with_key(api, secret, COMMUNITY, {"id": a0})
    first = await last_used()
    assert first is not None
    await with_key(api, secret, COMMUNITY, {"id": a0})
    assert await last_used() == first  # within the minute: no write
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(K).values(last_used_at=datetime.now(UTC) - timedelta(minutes=2))
        )
    stale = await last_used()
    await with_key(api, secret, COMMUNITY, {"id": a0})
    assert await last_used() != stale
    listed = await api.gql("{ apiKeys { edges { node { lastUsedAt } } } }", subject="org-a")
    assert listed["data"]["apiKeys"]["edges"][0]["node"]["lastUsedAt"] is not None


async def test_keys_are_listed_and_revoked_by_the_managers_of_their_nodes(engine, api):
    world = await build_world(engine)
    a0 = gid("Community", world.a.communities[0])
    key = (await create_key(api, "org-a", "PARTNER_SERVICE", a0))["apiKey"]
    whole_a = (
        await create_key(api, "org-a", "ESG_ANALYST", gid("Enterprise", world.a.enterprise))
    )["apiKey"]

    async def listed(subject: str) -> set[str]:
        body = await api.gql(LIST, {"all": False}, subject=subject)
        return {e["node"]["id"] for e in body["data"]["apiKeys"]["edges"]}

    assert await listed("org-a") == {key["id"], whole_a["id"]}
    assert await listed("admin") == {key["id"], whole_a["id"]}
    assert await listed("cm-a0") == {key["id"]}  # manages a0, not the whole enterprise
    assert await listed("org-b") == set()
    assert await listed("esg-a") == set()  # analysts do not manage
    stranger = await api.gql(
        "query($id: ID!) { node(id: $id) { id } }",
        {"id": key["id"]},
        subject="org-b",
        allow_errors=True,
    )
    assert stranger["data"]["node"] is None
    assert stranger["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    for subject in ("org-b", "esg-a"):
        refused = await api.gql(REVOKE, {"id": key["id"]}, subject=subject)
        assert refused["data"]["revokeApiKey"]["userErrors"][0]["code"] == "NOT_FOUND"
    # A community manager may cut a key off in their community, but not mint a new secret.
    rotate = await api.gql(ROTATE, {"input": {"apiKeyId": key["id"]}}, subject="cm-a0")
    assert rotate["data"]["rotateApiKey"]["userErrors"][0]["code"] == "FORBIDDEN"
    revoked = await api.gql(REVOKE, {"id": key["id"]}, subject="cm-a0")
    assert revoked["data"]["revokeApiKey"]["userErrors"] == []
    assert await listed("org-a") == {whole_a["id"]}
    everything = await api.gql(LIST, {"all": True}, subject="org-a")
    assert everything["data"]["apiKeys"]["totalCount"] == 2
