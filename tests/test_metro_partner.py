"""The example partner subgraph (examples/metro_partner), in-process over ASGI on its own SQLite
file: federation surface, batched entity resolution, pagination, errors and authentication."""

from __future__ import annotations

import base64
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

METRO = Path(__file__).resolve().parents[1] / "examples" / "metro_partner"
# Behind the gateway (which verifies JWTs) the partner only requires that a token is present.
TOKEN = "any-bearer-token"


def gid(type_name: str, pk: int) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


@dataclass
class Metro:
    engine: AsyncEngine
    client: httpx.AsyncClient
    app_module: ModuleType
    seed_module: ModuleType
    trips: dict[str, list[dict[str, Any]]]  # the seeded trips of each Individual, by id

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = TOKEN
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.post(query, variables)
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        return body["data"]

    @contextmanager
    def statements(self) -> Iterator[list[str]]:
        """The SQL statements run inside the block."""
        seen: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            seen.append(statement)

        sync_engine = self.engine.sync_engine
        sa.event.listen(sync_engine, "before_cursor_execute", record)
        try:
            yield seen
        finally:
            sa.event.remove(sync_engine, "before_cursor_execute", record)


@pytest.fixture(scope="module")
async def metro(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Metro]:
    if str(METRO) not in sys.path:
        sys.path.insert(0, str(METRO))
    from metro_partner import app, db, seed

    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('metro') / 'metro.db'}"
    engine = db.create_engine(url)
    added = await seed.seed(engine)
    assert added["stations"] == 6 and added["trips"] > 100
    assert await seed.seed(engine) == {"stations": 0, "trips": 0}  # idempotent
    trips: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in seed.trip_rows():
        trips[row["individual_id"]].append(row)
    transport = httpx.ASGITransport(app=app.create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://metro") as client:
        yield Metro(engine, client, app, seed, trips)
    await engine.dispose()


async def test_sdl_extends_individual_by_key_on_federation_2_9(metro):
    sdl = (await metro.gql("{ _service { sdl } }"))["_service"]["sdl"]
    assert '@link(url: "https://specs.apollo.dev/federation/v2.9"' in sdl
    assert 'type Individual @key(fields: "id") {' in sdl
    assert "metroTrips(first: Int = 10, after: String = null): MetroTripConnection" in sdl
    assert 'type Community @key(fields: "id", resolvable: false) {' in sdl
    assert "type PageInfo" not in sdl  # carbongraph owns PageInfo


ENTITIES = """query($r: [_Any!]!) { _entities(representations: $r) { ... on Individual {
  id metroTrips(first: 3) { totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id startedAt distanceKm avoidedGramsCo2e } } } } } }"""


async def test_entities_of_20_individuals_cost_one_statement(metro):
    ids = [gid("Individual", n) for n in range(1, 21)]
    with metro.statements() as statements:
        data = await metro.gql(
            ENTITIES, {"r": [{"__typename": "Individual", "id": i} for i in ids]}
        )
    assert len(statements) == 1, statements
    assert "metro_trips" in statements[0]
    entities = data["_entities"]
    assert [e["id"] for e in entities] == ids
    for entity in entities:
        seeded = metro.trips[entity["id"]]
        trips = entity["metroTrips"]
        assert trips["totalCount"] == len(seeded)
        assert trips["pageInfo"]["hasNextPage"] == (len(seeded) > 3)
        nodes = [e["node"] for e in trips["edges"]]
        assert [n["id"] for n in nodes] == [gid("MetroTrip", t["id"]) for t in seeded[:3]]
        for node, trip in zip(nodes, seeded, strict=False):
            assert node["distanceKm"] == trip["distance_km"]
            # distance × (0.2 − 0.04) kg/km, in grams
            assert node["avoidedGramsCo2e"] == round(trip["distance_km"] * 160) > 0
            started = datetime.fromisoformat(node["startedAt"])
            assert timedelta(0) < datetime.now(UTC) - started < timedelta(days=29)
    assert any(e["metroTrips"]["totalCount"] == 0 for e in entities)  # e.g. Individual 5


async def test_stations_of_many_trips_cost_one_more_statement(metro):
    query = """query($r: [_Any!]!) { _entities(representations: $r) { ... on Individual {
      metroTrips(first: 100) { edges { node { origin { name } destination { name line
        community { id } } } } } } } }"""
    representations = [{"__typename": "Individual", "id": gid("Individual", n)} for n in (1, 2, 3)]
    with metro.statements() as statements:
        data = await metro.gql(query, {"r": representations})
    assert len(statements) == 2, statements  # trips, then the stations they reference
    nodes = [e["node"] for i in data["_entities"] for e in i["metroTrips"]["edges"]]
    assert len(nodes) == 3 + 4 + 5
    assert all(n["origin"]["name"] != n["destination"]["name"] for n in nodes)
    assert {n["destination"]["community"]["id"] for n in nodes} <= {
        gid("Community", c) for c in (1, 2, 3)
    }


async def test_keyset_pagination_with_first_and_after(metro):
    query = """query($r: [_Any!]!, $after: String) { _entities(representations: $r) {
      ... on Individual { metroTrips(first: 4, after: $after) { totalCount
        pageInfo { hasNextPage endCursor } edges { cursor node { id } } } } } }"""
    person = gid("Individual", 4)
    expected = [gid("MetroTrip", t["id"]) for t in metro.trips[person]]
    assert len(expected) == 6
    seen: list[str] = []
    after = None
    for has_next in (True, False):
        variables = {"r": [{"__typename": "Individual", "id": person}], "after": after}
        page = (await metro.gql(query, variables))["_entities"][0]["metroTrips"]
        assert page["totalCount"] == 6
        assert page["pageInfo"]["hasNextPage"] is has_next
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        seen += [e["node"]["id"] for e in page["edges"]]
        after = page["pageInfo"]["endCursor"]
    assert seen == expected
    last = await metro.gql(
        query, {"r": [{"__typename": "Individual", "id": person}], "after": after}
    )
    assert last["_entities"][0]["metroTrips"] == {
        "totalCount": 6,
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "edges": [],
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [("first: 1000", "between 0 and 100"), ('after: "bm90LWEtY3Vyc29y"', "cursor")],
)
async def test_bad_page_arguments_are_bad_user_input(metro, arguments, message):
    query = f"""query($r: [_Any!]!) {{ _entities(representations: $r) {{
      ... on Individual {{ metroTrips({arguments}) {{ totalCount }} }} }} }}"""
    response = await metro.post(
        query, {"r": [{"__typename": "Individual", "id": gid("Individual", 1)}]}
    )
    body = response.json()
    assert body["data"]["_entities"] == [{"metroTrips": None}]
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == ["_entities", 0, "metroTrips"]
    assert message in error["message"]


async def test_stations_reference_carbongraph_communities(metro):
    data = await metro.gql("{ stations { id name line community { id } } }")
    stations = data["stations"]
    assert len(stations) == 6
    assert {s["community"]["id"] for s in stations} == {
        "Q29tbXVuaXR5OjE=",
        "Q29tbXVuaXR5OjI=",
        "Q29tbXVuaXR5OjM=",
    }
    one = await metro.gql(
        "query($id: ID!) { station(id: $id) { name } }", {"id": stations[0]["id"]}
    )
    assert one["station"]["name"] == stations[0]["name"]
    missing = await metro.gql('{ station(id: "U3RhdGlvbjo5OTk=") { name } }')  # Station:999
    assert missing["station"] is None


async def test_a_missing_or_malformed_authorization_header_is_401(metro):
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        response = await metro.client.post(
            "/graphql", json={"query": "{ stations { id } }"}, headers=headers
        )
        assert response.status_code == 401
        [error] = response.json()["errors"]
        assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    get = await metro.client.get("/graphql", params={"query": "{ stations { id } }"})
    assert get.status_code == 401
    assert (await metro.client.get("/healthz")).json() == {"status": "ok"}


async def test_tokens_are_verified_when_a_secret_is_set(metro):
    secret = "metro-test-secret-at-least-32-bytes-long"
    app = metro.app_module.create_app(metro.engine, jwt_secret=secret)
    now = datetime.now(UTC)
    claims = {"sub": "demo", "iss": "carbongraph", "aud": "carbongraph", "exp": now + timedelta(1)}
    good = jwt.encode(claims, secret, algorithm="HS256")
    forged = jwt.encode(claims, "another-secret-that-is-32-bytes-long!", algorithm="HS256")
    wrong_audience = jwt.encode({**claims, "aud": "someone-else"}, secret, algorithm="HS256")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://metro"
    ) as client:

        async def status(token: str) -> int:
            response = await client.post(
                "/graphql",
                json={"query": "{ stations { id } }"},
                headers={"Authorization": f"Bearer {token}"},
            )
            return response.status_code

        assert await status(good) == 200
        assert await status(forged) == 401
        assert await status(wrong_audience) == 401
        assert await status(TOKEN) == 401
