"""Static limits in every mode, and production hardening (issue 7, first part)."""

from __future__ import annotations

import httpx
import pytest

from carbongraph.app import create_app
from carbongraph.config import Settings


def _code(response: httpx.Response) -> str:
    return response.json()["errors"][0]["extensions"]["code"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ me " + "{ individual " * 20 + "{ id }" + " }" * 21, "QUERY_TOO_DEEP"),
        ("{ " + " ".join(f"a{n}: me {{ subject }}" for n in range(101)) + " }", "TOO_MANY_ALIASES"),
        ("{ me { " + "subject " * 1200 + "} }", "TOO_MANY_TOKENS"),
        ("{ me { subject } }" + " " * 20_000, "QUERY_TOO_LARGE"),
        ("{ me { subject " + "@include(if: true) " * 60 + "} }", "TOO_MANY_DIRECTIVES"),
    ],
)
async def test_limits_refuse_before_execution(api, query, code):
    response = await api.post(query, subject="anyone")
    assert response.status_code == 400, response.text
    assert _code(response) == code


async def test_relay_wrappers_do_not_count_towards_depth(api):
    query = """{ enterprises(first: 5) { edges { node { communities(first: 5) { edges { node {
      households(first: 5) { edges { node { members(first: 5) { edges { node { id } } } } } }
      } } } } } } }"""
    response = await api.post(query, subject="anyone")
    assert response.status_code == 200 and "errors" not in response.json()


async def test_static_cost_limit(api):
    unbounded = """{ enterprises { edges { node { communities { edges { node {
      households { edges { node { id } } } } } } } } } }"""
    response = await api.post(unbounded, subject="anyone")
    assert response.status_code == 400 and _code(response) == "COST_LIMIT_EXCEEDED"


async def test_rate_limit_by_cost_per_principal(engine, settings):
    limited = Settings.from_env(database_url=settings.database_url, rate_limit_per_minute=57)
    app = create_app(limited, engine=engine)
    from carbongraph.authz import mint_token

    headers = {"Authorization": f"Bearer {mint_token(limited, 'busy')}"}
    query = {"query": "{ communities(first: 9) { edges { node { id } } } }"}  # cost 19
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        statuses = [
            (await client.post("/graphql", json=query, headers=headers)).status_code
            for _ in range(4)
        ]
        assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
        refused = await client.post("/graphql", json=query, headers=headers)
        assert int(refused.headers["retry-after"]) >= 1
        assert _code(refused) == "RATE_LIMITED"


async def test_rate_limit_is_shared_through_redis(engine, settings):
    """Two app instances (as two processes would) share one budget in Redis."""
    import uuid

    url = "redis://127.0.0.1:6379/15"
    limited = Settings.from_env(
        database_url=settings.database_url, rate_limit_per_minute=38, redis_url=url
    )
    from carbongraph.authz import mint_token

    headers = {"Authorization": f"Bearer {mint_token(limited, f'shared-{uuid.uuid4().hex}')}"}
    query = {"query": "{ communities(first: 9) { edges { node { id } } } }"}  # cost 19
    apps = [create_app(limited, engine=engine) for _ in range(2)]
    client_ip = f"127.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.9"  # its own IP budget
    statuses = []
    for app in apps + apps:
        transport = httpx.ASGITransport(app=app, client=(client_ip, 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            statuses.append(
                (await client.post("/graphql", json=query, headers=headers)).status_code
            )
    assert statuses.count(200) == 2 and statuses.count(429) == 2


async def test_large_bodies_and_batches_are_refused(api):
    response = await api.post("{ me { subject } }", {"pad": "x" * 1_100_000}, subject="anyone")
    assert response.status_code == 413 and _code(response) == "REQUEST_TOO_LARGE"
    response = await api.client.post(
        "/graphql",
        json=[{"query": "{ me { subject } }"}] * 10,
        headers={"Authorization": f"Bearer {api.token('anyone')}"},
    )
    assert response.status_code == 400


async def test_production_hardening(api, production, monkeypatch):
    headers = {"Authorization": f"Bearer {api.token('anyone')}"}

    async def post(query: str, extra: dict[str, str] | None = None) -> httpx.Response:
        return await production.post(
            "/graphql", json={"query": query}, headers={**headers, **(extra or {})}
        )

    response = await post("{ __schema { types { name } } }")
    assert response.status_code == 400 and _code(response) == "INTROSPECTION_DISABLED"
    response = await post("{ me { subjec } }")
    assert "Did you mean" not in response.text
    response = await post("{ _service { sdl } }")
    assert response.status_code == 403 and _code(response) == "FORBIDDEN"
    response = await post(
        "{ _service { sdl } }", {"X-Carbongraph-Gateway-Secret": "gateway-shared-secret"}
    )
    assert (
        response.status_code == 200
        and "type Community" in response.json()["data"]["_service"]["sdl"]
    )
    assert (await production.get("/graphql", headers={"accept": "text/html"})).status_code == 404

    from carbongraph.resolvers import hierarchy

    def broken(*_args: object) -> object:
        raise RuntimeError("SELECT secret FROM somewhere failed")

    monkeypatch.setattr(hierarchy, "visible_enterprises", broken)
    response = await post("{ enterprises { totalCount } }")
    error = response.json()["errors"][0]
    assert error["message"] == "Internal server error."
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert len(error["extensions"]["requestId"]) == 32
    assert "SELECT" not in response.text


async def test_security_headers_and_cors(engine, settings, api):
    response = await api.post("{ me { subject } }", subject="anyone")
    for header in (
        "x-content-type-options",
        "referrer-policy",
        "x-frame-options",
        "content-security-policy",
        "cache-control",
    ):
        assert header in response.headers
    configured = Settings.from_env(
        database_url=settings.database_url, cors_origins=("https://app.example",)
    )
    app = create_app(configured, engine=engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        ok = await client.options(
            "/graphql", headers={"Origin": "https://app.example", **preflight}
        )
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        refused = await client.options(
            "/graphql", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("how", ["literal", "variable"])
async def test_text_no_database_can_store_is_refused(api, engine, how):
    """Found by the fuzzer: a NUL in a name was a 500 on PostgreSQL (text cannot hold it)."""
    import sqlalchemy as sa

    from carbongraph.authz import PLATFORM, Role
    from carbongraph.models import Enterprise
    from tests.world import grant

    await grant(engine, "admin", Role.PLATFORM_ADMIN, PLATFORM, 0)
    if how == "literal":
        query = (
            'mutation { createEnterprise(input: {name: "A\\u0000B", kind: COMPANY}) '
            "{ userErrors { code } } }"
        )
        response = await api.post(query, subject="admin")
    else:
        query = """mutation($name: String!) { createEnterprise(input: {name: $name, kind: COMPANY})
          { userErrors { code } } }"""
        response = await api.post(query, {"name": "A\x00B"}, subject="admin")
    assert response.status_code == 400, response.text
    assert _code(response) == "BAD_USER_INPUT"
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(Enterprise)) == 0
