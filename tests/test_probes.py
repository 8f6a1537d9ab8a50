"""graphql-cop style probes against the app in production mode, over HTTP (ASGI transport).

One table: each probe is an HTTP request an attacker (or a scanner) would send, with the status
and ``extensions.code`` production must answer. Every probe is refused before anything runs;
the mutation probes also prove that no row was written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from carbongraph.authz import PLATFORM, Role
from carbongraph.models import Enterprise
from tests.world import grant

PROBER = "prober"  # a platform admin: every refusal below is the server's, not authorisation's
CREATE = (
    'mutation { createEnterprise(input: {name: "Probe Ltd", kind: COMPANY}) '
    "{ userErrors { code } } }"
)


def _deep(levels: int) -> str:
    return "{ me " + "{ individual " * (levels - 1) + "{ id }" + " }" * levels


CIRCULAR_INTROSPECTION = (
    "{ __schema { types { fields { type { fields { type { fields { type { fields { name }"
    " } } } } } } } } }"
)


@dataclass(frozen=True)
class Probe:
    name: str
    method: str
    status: int
    code: str
    json: Any = None  # a JSON body
    params: dict[str, str] | None = None  # GET query parameters
    data: str | None = None  # a raw body
    headers: dict[str, str] = field(default_factory=dict)
    writes: bool = False  # a mutation: afterwards there must be no new enterprise


PROBES = [
    Probe(
        "101 aliases",
        "POST",
        400,
        "TOO_MANY_ALIASES",
        json={"query": "{ " + " ".join(f"a{n}: me {{ subject }}" for n in range(101)) + " }"},
    ),
    Probe(
        "batch of 10 operations",
        "POST",
        400,
        "BATCHING_NOT_SUPPORTED",
        json=[{"query": CREATE}] * 10,
        writes=True,
    ),
    Probe(
        "500 duplicated fields",
        "POST",
        400,
        "TOO_MANY_DUPLICATE_FIELDS",
        json={"query": "{ " + "__typename " * 500 + "}"},
    ),
    Probe(
        "10 duplicated directives",
        "POST",
        400,
        "GRAPHQL_VALIDATION_FAILED",
        json={"query": "{ me { subject " + "@include(if: true) " * 10 + "} }"},
    ),
    Probe(
        "circular introspection",
        "POST",
        400,
        "INTROSPECTION_DISABLED",
        json={"query": CIRCULAR_INTROSPECTION},
    ),
    Probe(
        "introspection",
        "POST",
        400,
        "INTROSPECTION_DISABLED",
        json={"query": '{ __type(name: "Enterprise") { fields { name } } }'},
    ),
    Probe(
        "field suggestions",
        "POST",
        400,
        "GRAPHQL_VALIDATION_FAILED",
        json={"query": "{ enterprize(id: 1) { nam } }"},
    ),
    Probe("GraphiQL IDE", "GET", 404, "NOT_FOUND", headers={"Accept": "text/html"}),
    Probe(
        "mutation over GET",
        "GET",
        405,
        "BAD_USER_INPUT",
        params={"query": CREATE},
        writes=True,
    ),
    Probe(
        "mutation over urlencoded POST",
        "POST",
        415,
        "BAD_USER_INPUT",
        data="query=" + CREATE,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        writes=True,
    ),
    Probe("depth 20", "POST", 400, "QUERY_TOO_DEEP", json={"query": _deep(20)}),
    Probe(
        "first: 100000 (cost)",
        "POST",
        400,
        "COST_LIMIT_EXCEEDED",
        json={"query": "{ enterprises(first: 100000) { edges { node { id } } } }"},
    ),
    Probe(
        "first: 100000 (page size)",
        "POST",
        200,
        "BAD_USER_INPUT",
        json={"query": "{ enterprises(first: 100000) { totalCount } }"},
    ),
    Probe(
        "1 MB query",
        "POST",
        413,
        "REQUEST_TOO_LARGE",
        json={"query": "{ me { subject } }" + " " * (1024 * 1024)},
    ),
]


async def _enterprises(engine) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(sa.select(sa.func.count()).select_from(Enterprise))


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
async def test_probe_is_refused_in_production(probe: Probe, production, api, engine):
    await grant(engine, PROBER, Role.PLATFORM_ADMIN, PLATFORM, 0)
    headers = {"Authorization": f"Bearer {api.token(PROBER)}", **probe.headers}
    before = await _enterprises(engine)
    kwargs: dict[str, Any] = {"headers": headers, "params": probe.params}
    if probe.json is not None:
        kwargs["content"] = json.dumps(probe.json)
        headers.setdefault("Content-Type", "application/json")
    elif probe.data is not None:
        kwargs["content"] = probe.data
    response = await production.request(probe.method, "/graphql", **kwargs)

    assert response.status_code == probe.status, response.text[:500]
    body = response.json()
    assert {e["extensions"]["code"] for e in body["errors"]} == {probe.code}, body
    assert body.get("data") is None  # nothing was resolved
    assert "Did you mean" not in response.text
    assert "__schema" not in response.text and "<html" not in response.text.lower()
    if probe.writes:
        assert await _enterprises(engine) == before


async def test_the_mutation_probes_would_write(production, api, engine):
    """The control for the probes above: the same mutation, sent properly, creates a row."""
    await grant(engine, PROBER, Role.PLATFORM_ADMIN, PLATFORM, 0)
    before = await _enterprises(engine)
    response = await production.post(
        "/graphql",
        json={"query": CREATE},
        headers={"Authorization": f"Bearer {api.token(PROBER)}"},
    )
    assert response.json() == {"data": {"createEnterprise": {"userErrors": []}}}
    assert await _enterprises(engine) == before + 1
