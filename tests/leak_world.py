"""The leak matrix's world: two enterprises with every kind of object the API exposes, built
once per backend, and a small client that posts as any viewer."""

from __future__ import annotations

import hashlib
import io
import json
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.authz import PLATFORM, Role, mint_token
from carbongraph.config import Settings
from carbongraph.demo.seed import HierarchyWriter
from carbongraph.models import metadata
from carbongraph.models.security import AuditEvent
from carbongraph.resolvers.dataloaders import C, E, H, I
from carbongraph.services import periods
from tests.leak_oracle import PLACES, VIEWERS, chain
from tests.world import SINCE, gid, grant

MISSING_PK = 987_654_321
AUDIT = AuditEvent.__table__


def photo(seed: int) -> bytes:
    """A distinct image per seed (evidence is deduplicated by SHA-256)."""
    image = Image.new("RGB", (8, 8), (seed % 256, (seed // 256) % 256, 77))
    out = io.BytesIO()
    image.save(out, "PNG")  # lossless, so every seed gives different bytes
    return out.getvalue()


@dataclass
class Client:
    http: httpx.AsyncClient
    settings: Settings
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request
    keys: dict[str, str] = field(default_factory=dict)  # viewer -> API key, sent instead of a JWT

    def bearer(self, subject: str) -> str:
        return self.keys.get(subject) or mint_token(self.settings, subject)

    async def post(
        self,
        subject: str | None,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        headers = dict(self.headers if headers is None else headers)
        if subject is not None:
            headers["Authorization"] = f"Bearer {self.bearer(subject)}"
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        return response.status_code, response.json()

    async def upload(
        self, subject: str | None, query: str, variables: dict[str, Any], data: bytes
    ) -> tuple[int, dict[str, Any]]:
        """A GraphQL multipart request with one file at ``variables.input.file``."""
        headers = {"X-Carbongraph-Preflight": "1"}
        if subject is not None:
            headers["Authorization"] = f"Bearer {self.bearer(subject)}"
        response = await self.http.post(
            "/graphql",
            headers=headers,
            data={
                "operations": json.dumps({"query": query, "variables": variables}),
                "map": json.dumps({"0": ["variables.input.file"]}),
            },
            files={"0": ("photo.png", data, "image/png")},
        )
        return response.status_code, response.json()

    async def ok(self, subject: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        status, body = await self.post(subject, query, variables)
        assert status == 200 and "errors" not in body, body
        payload = next(iter(body["data"].values()))
        assert payload.get("userErrors", []) == [], payload
        return payload


@dataclass
class LeakWorld:
    client: Client
    engine: AsyncEngine
    today: date
    gateway: Client | None = None  # a production app, with the gateway's secret
    unsuppressed: Client | None = None  # small-cell suppression off (k = 1)
    complementary: Client | None = None  # k = 2: small cells and complements
    app_engine: AsyncEngine | None = None  # the apps' (PostgreSQL: the application role)
    pk: dict[str, int] = field(default_factory=dict)  # place name -> primary key
    names: dict[str, str] = field(default_factory=dict)  # person -> display name
    activity: dict[str, dict[str, Any]] = field(default_factory=dict)  # person -> seeded record
    approved: dict[str, str] = field(default_factory=dict)  # person -> approved ActionRecord ID
    approved_input: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)  # person -> pending ActionRecord ID
    rewards: dict[str, str] = field(default_factory=dict)  # owner place -> Reward ID
    campaigns: dict[str, str] = field(default_factory=dict)  # owner place -> Campaign ID
    participants: dict[str, set[str]] = field(default_factory=dict)  # campaign owner -> people
    revocable: dict[tuple[str, str], str] = field(default_factory=dict)  # (viewer, rel) -> grant
    actors: dict[str, str] = field(default_factory=dict)  # viewer -> the audit log's actor
    # (viewer, rel, "active"/"revoked") -> an ApiKey with PARTNER_SERVICE on a1 / a2 / b1
    keys: dict[tuple[str, str, str], str] = field(default_factory=dict)
    key_scope: dict[str, str] = field(default_factory=dict)  # ApiKey ID -> its scope's place
    audit_event: str = ""  # an AuditEvent ID

    def gid(self, name: str) -> str:
        return gid(PLACES[name].kind, self.pk[name])

    def place_of(self, global_id: str) -> str:
        for name, pk in self.pk.items():
            if gid(PLACES[name].kind, pk) == global_id:
                return name
        raise KeyError(global_id)

    def actor(self, subject: str) -> str:
        return self.actors.get(subject, subject)

    async def fingerprint(self) -> str:
        """A digest of every row of every table but the audit log (checked apart, see
        ``audit_since``): refused mutations must leave it unchanged."""
        digest = hashlib.sha256()
        async with self.engine.connect() as conn:
            for table in metadata.sorted_tables:
                if table.name == AUDIT.name:
                    continue
                # An API key's lastUsedAt is written on authentication (once a minute), not
                # by the mutation.
                columns = [c for c in table.columns if c.name != "last_used_at"]
                rows = await conn.execute(sa.select(*columns).order_by(*table.primary_key.columns))
                digest.update(table.name.encode())
                for row in rows:
                    digest.update(repr(tuple(row)).encode())
        return digest.hexdigest()

    async def audit_mark(self) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(sa.func.max(AUDIT.c.id)))).scalar() or 0

    async def audit_since(self, mark: int) -> list[Any]:
        """The audit events written after ``audit_mark`` returned ``mark``."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(AUDIT).where(AUDIT.c.id > mark).order_by(AUDIT.c.id)
            )
            return list(rows)


RECORD_ACTIVITY = """mutation($input: RecordActivityInput!) { recordActivity(input: $input) {
  records { id } userErrors { code message } } }"""
RECORD_ACTION = """mutation($input: RecordActionInput!) { recordAction(input: $input) {
  actions { id status } userErrors { code message } } }"""
UPLOAD = """mutation($input: UploadEvidenceInput!) { uploadEvidence(input: $input) {
  evidence { id } userErrors { code message } } }"""


async def build_leak_world(engine: AsyncEngine, client: Client, today: date) -> LeakWorld:
    world = LeakWorld(client, engine, today)
    async with engine.begin() as conn:
        writer = HierarchyWriter(conn, random.Random(11))
        rows: dict[str, Any] = {}
        for place in PLACES.values():  # parents are declared before their children
            ref = f"leak:{place.name}"
            if place.kind == "Enterprise":
                rows[place.name] = await writer.node(
                    E, ref, "", "e", name=f"Enterprise {place.name}", kind="COMPANY"
                )
            elif place.kind == "Community":
                parent = rows[place.parent or ""]
                rows[place.name] = await writer.node(
                    C,
                    ref,
                    parent.path,
                    "c",
                    name=f"Community {place.name}",
                    kind="VILLAGE",
                    region_code="CN-GD",
                    timezone="Asia/Shanghai",
                    enterprise_id=parent.id,
                    parent_id=None,
                )
            elif place.kind == "Household":
                rows[place.name] = await writer.node(
                    H,
                    ref,
                    rows[place.parent or ""].path,
                    "h",
                    name=f"Home {place.name}",
                    community_id=rows[place.parent or ""].id,
                    dwelling_type="APARTMENT",
                    has_rooftop_solar=False,
                )
            else:
                continue
            world.pk[place.name] = rows[place.name].id
        for place in PLACES.values():
            if place.kind != "Individual":
                continue
            [pk] = await writer.people(rows[place.parent or ""], 1, f"leak:{place.name}", SINCE)
            name = f"Person {place.name}"
            await conn.execute(
                sa.update(I)
                .where(I.c.id == pk)
                .values(display_name=name, email=f"{place.name}@example.org")
            )
            for employer in place.employers:
                await periods.open_employment(conn, pk, world.pk[employer], SINCE)
            world.pk[place.name] = pk
            world.names[place.name] = name
    for viewer in VIEWERS:
        if viewer.api_key:
            continue  # its scopes are an API key's (``_seed_keys``), not grants
        for role, anchor in viewer.grants:
            if anchor is None:
                await grant(engine, viewer.subject, Role(role), PLATFORM, 0)
            else:
                await grant(
                    engine, viewer.subject, Role(role), PLACES[anchor].kind, world.pk[anchor]
                )
    await _seed_records(world)
    await _seed_keys(world)
    return world


CREATE_KEY = """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
  apiKey { id prefix } secret userErrors { code } } }"""
REVOKE_KEY = """mutation($input: RevokeApiKeyInput!) { revokeApiKey(input: $input) {
  apiKey { id } userErrors { code } } }"""


async def _seed_keys(world: LeakWorld) -> None:
    """The API-key viewers' keys, and per viewer and relation one active and one revoked key
    with PARTNER_SERVICE on a1 / a2 / b1 (to read, list, rotate and revoke)."""
    client = world.client
    for viewer in VIEWERS:
        if not viewer.api_key:
            continue
        scopes = [
            {"role": role, "nodeId": world.gid(anchor or "")} for role, anchor in viewer.grants
        ]
        payload = await client.ok(
            "admin", CREATE_KEY, {"input": {"name": viewer.subject, "scopes": scopes}}
        )
        client.keys[viewer.subject] = payload["secret"]
        world.actors[viewer.subject] = f"apikey:{payload['apiKey']['prefix']}"
        world.key_scope[payload["apiKey"]["id"]] = viewer.grants[0][1] or ""
    for viewer in VIEWERS:
        for rel, community in (("own", "a1"), ("sibling", "a2"), ("foreign", "b1")):
            for state in ("active", "revoked"):
                payload = await client.ok(
                    "admin",
                    CREATE_KEY,
                    {
                        "input": {
                            "name": f"leak {viewer.subject} {rel} {state}",
                            "scopes": [{"role": "PARTNER_SERVICE", "nodeId": world.gid(community)}],
                        }
                    },
                )
                key_id = payload["apiKey"]["id"]
                if state == "revoked":
                    await client.ok("admin", REVOKE_KEY, {"input": {"apiKeyId": key_id}})
                world.keys[(viewer.subject, rel, state)] = key_id
                world.key_scope[key_id] = community
    _status, body = await client.post(
        "admin", "{ auditEvents(first: 1) { edges { node { id } } } }"
    )
    world.audit_event = body["data"]["auditEvents"]["edges"][0]["node"]["id"]


async def _seed_records(world: LeakWorld) -> None:
    """Activity, actions (approved and pending with a photo), credits, rewards, campaigns, and
    one revocable grant per viewer and relation — all through the API as the platform admin."""
    client, today = world.client, world.today
    day = (today - timedelta(days=2)).isoformat()
    for owner in ("a", "a1", "a2", "b", "b1"):
        reward = await client.ok(
            "admin",
            """mutation($input: CreateRewardInput!) { createReward(input: $input) {
              reward { id } userErrors { code } } }""",
            {
                "input": {
                    "ownerId": world.gid(owner),
                    "name": f"Tote bag {owner}",
                    "costCredits": 1,
                    "stock": 100,
                    "validFrom": (today - timedelta(days=30)).isoformat(),
                }
            },
        )
        world.rewards[owner] = reward["reward"]["id"]
        campaign = await client.ok(
            "admin",
            """mutation($input: CreateCampaignInput!) { createCampaign(input: $input) {
              campaign { id } userErrors { code } } }""",
            {
                "input": {
                    "ownerId": world.gid(owner),
                    "name": f"Ride the subway {owner}",
                    "startsOn": (today - timedelta(days=30)).isoformat(),
                    "endsOn": (today + timedelta(days=30)).isoformat(),
                    "actionTypes": ["SUBWAY_TRIP"],
                }
            },
        )
        world.campaigns[owner] = campaign["campaign"]["id"]
    people = [p.name for p in PLACES.values() if p.kind == "Individual"]
    for n, person in enumerate(people):
        record = {
            "accountId": world.gid(person),
            "activityType": "ELECTRICITY",
            "quantity": "12",
            "unit": "kWh",
            "periodStart": day,
            "periodEnd": day,
            "externalId": f"leak-seed-activity:{person}",
        }
        payload = await client.ok("admin", RECORD_ACTIVITY, {"input": record})
        world.activity[person] = {**record, "id": payload["records"][0]["id"]}
        action = {
            "individualId": world.gid(person),
            "actionType": "SUBWAY_TRIP",
            "units": 2,
            "occurredOn": day,
            "externalId": f"leak-seed-action:{person}",
        }
        payload = await client.ok("admin", RECORD_ACTION, {"input": action})
        world.approved[person] = payload["actions"][0]["id"]
        world.approved_input[person] = action
        _status, body = await client.upload(
            "admin",
            UPLOAD,
            {"input": {"individualId": world.gid(person), "file": None}},
            photo(1000 + n),
        )
        evidence = body["data"]["uploadEvidence"]
        assert evidence["userErrors"] == [], body
        pending = {
            "individualId": world.gid(person),
            "actionType": "CLEAN_PLATE",
            "occurredOn": day,
            "evidenceId": evidence["evidence"]["id"],
        }
        payload = await client.ok("admin", RECORD_ACTION, {"input": pending})
        assert payload["actions"][0]["status"] == "PENDING"
        world.pending[person] = payload["actions"][0]["id"]
    for owner in world.campaigns:
        # Campaigns count the actions of people living under their owner.
        world.participants[owner] = {p for p in people if owner in chain(PLACES[p].parent or "")}
    for viewer in VIEWERS:
        for rel, community in (("own", "a1"), ("sibling", "a2"), ("foreign", "b1")):
            payload = await client.ok(
                "admin",
                """mutation($input: GrantRoleInput!) { grantRole(input: $input) {
                  grant { id } userErrors { code } } }""",
                {
                    "input": {
                        "principal": f"leak-revocable:{viewer.subject}:{rel}",
                        "role": "COMMUNITY_MANAGER",
                        "nodeId": world.gid(community),
                    }
                },
            )
            world.revocable[(viewer.subject, rel)] = payload["grant"]["id"]
