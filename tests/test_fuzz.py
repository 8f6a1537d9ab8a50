"""Schemathesis GraphQL fuzzing against a real server (uvicorn, production mode, demo data).

Queries and mutations generated from the schema, sent with valid tokens (ORG_ADMIN and
PLATFORM_ADMIN) and IDs that exist (mixed with garbage), must never get a 5xx nor an unexpected
error (``INTERNAL_SERVER_ERROR``): every bad input gets a coded error or ``userErrors``.

``CARBONGRAPH_FUZZ_OPERATIONS`` (default 1000) requests are really sent on SQLite, half of
that on PostgreSQL (the seed is fixed, so every run sends the same operations: raise both to
explore further);
``CARBONGRAPH_FUZZ_SEED`` (default 7) makes the run repeatable. Both are printed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import graphql
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes
from schemathesis.specs.graphql.scalars import CUSTOM_SCALARS

from carbongraph.demo.seed import demo_tokens
from carbongraph.schema.schema import schema as app_schema
from tests.conftest import fresh_postgres_database
from tests.processes import Processes, free_port

OPERATIONS = int(os.environ.get("CARBONGRAPH_FUZZ_OPERATIONS", "1000"))
SEED = int(os.environ.get("CARBONGRAPH_FUZZ_SEED", "7"))
ROLES = ("ORG_ADMIN", "PLATFORM_ADMIN")
SECRET = "fuzzing-secret-not-the-development-one-0123456789"

# Global IDs of the demo data, read as the platform admin, so that generated operations reach
# real objects instead of failing at the first NOT_FOUND.
ID_QUERIES = [
    "{ enterprises(first: 10) { edges { node { id communities(first: 10) { edges { node { id } } }"
    " employees(first: 20) { edges { node { id } } } } } } }",
    "{ communities(first: 30) { edges { node { id households(first: 10) { edges { node { id"
    " members(first: 4) { edges { node { id } } } } } } } } } }",
]


class Server:
    def __init__(self, url: str, tokens: dict[str, str], operations: int, log: Path) -> None:
        self.log = log
        self.url = url
        self.tokens = tokens
        self.operations = operations


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    database = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}"
    else:
        database = fresh_postgres_database()
        url = next(database)
    env = {
        "CARBONGRAPH_DATABASE_URL": url,
        "CARBONGRAPH_ENV": "production",
        "CARBONGRAPH_JWT_SECRET": SECRET,
        # The fuzzer is one busy client: rate limiting would turn most of the run into 429s.
        "CARBONGRAPH_RATE_LIMIT_PER_MINUTE": "0",
        "CARBONGRAPH_EVIDENCE_DIR": str(tmp / "evidence"),
    }
    cli = [sys.executable, "-m", "carbongraph.cli"]
    run = {"check": True, "capture_output": True, "text": True, "timeout": 300}
    full_env = {**os.environ, **env}
    subprocess.run([*cli, "migrate"], env=full_env, **run)
    tokens = demo_tokens(subprocess.run([*cli, "seed", "--demo"], env=full_env, **run).stdout)
    port = free_port()
    processes = Processes(tmp)
    try:
        processes.start(
            "carbongraph",
            [*cli, "serve", "--port", str(port)],
            env=env,
            health=f"http://127.0.0.1:{port}/readyz",
        )
        # PostgreSQL gets half the budget: the whole suite must stay within minutes.
        operations = OPERATIONS if request.param == "sqlite" else OPERATIONS // 2
        yield Server(
            f"http://127.0.0.1:{port}/graphql", tokens, operations, tmp / "carbongraph.log"
        )
    finally:
        processes.stop_all()
        print(processes.tail("carbongraph", 20))
        if database is not None:
            next(database, None)


def _demo_ids(server: Server) -> list[str]:
    ids: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "id" and isinstance(item, str):
                    ids.append(item)
                else:
                    collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for query in ID_QUERIES:
        response = requests.post(
            server.url,
            json={"query": query},
            headers={"Authorization": f"Bearer {server.tokens['PLATFORM_ADMIN']}"},
            timeout=30,
        )
        assert "errors" not in response.json(), response.text
        collect(response.json()["data"])
    return sorted(set(ids))


def _register_scalars(ids: list[str]) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    strings = st.text(max_size=30).map(nodes.String)
    scalars = {
        # Mostly real objects, sometimes garbage and other types' IDs.
        "ID": st.one_of(st.sampled_from(ids).map(nodes.String), strings),
        "Grams": st.integers(-(2**53), 2**53).map(nodes.Int),
        # Exact decimals as strings (and integers), sometimes not a number at all.
        "Decimal": st.one_of(
            st.decimals(allow_nan=False, allow_infinity=False, places=4).map(
                lambda d: nodes.String(str(d))
            ),
            st.integers(-(10**9), 10**9).map(nodes.Int),
            strings,
        ),
        "JSON": strings,
        "Upload": st.just(nodes.Null),  # uploads are multipart; a JSON request sends null
        "_Any": strings,
    }
    saved = dict(CUSTOM_SCALARS)
    for name, strategy in scalars.items():
        schemathesis.graphql.scalar(name, strategy)
    return saved


def test_fuzzing_finds_no_server_errors(server: Server) -> None:
    introspection = graphql.introspection_from_schema(app_schema._schema)
    ids = _demo_ids(server)
    assert len(ids) > 50, ids
    # Schemathesis reads its scalar registry while drawing: registered for this test only.
    saved = _register_scalars(ids)
    try:
        _fuzz(server, schemathesis.graphql.from_dict(introspection).as_strategy())
    finally:
        CUSTOM_SCALARS.clear()
        CUSTOM_SCALARS.update(saved)


def _fuzz(server: Server, strategy: st.SearchStrategy[schemathesis.Case]) -> None:
    session = requests.Session()
    sent: Counter[str] = Counter()
    failures: list[str] = []
    started = time.monotonic()

    def send(case: schemathesis.Case, role: str) -> None:
        response = session.post(
            server.url,
            json=case.body if isinstance(case.body, dict) else {"query": case.body},
            headers={"Authorization": f"Bearer {server.tokens[role]}"},
            timeout=60,
        )
        kind = "mutation" if case.operation.definition.is_mutation else "query"
        sent[kind] += 1
        sent[str(response.status_code)] += 1
        codes = set()
        if response.headers.get("content-type", "").startswith("application/"):
            body = response.json()
            codes = {(e.get("extensions") or {}).get("code") for e in body.get("errors") or []}
        if response.status_code >= 500 or "INTERNAL_SERVER_ERROR" in codes or None in codes:
            failures.append(f"{response.status_code} {codes}\n{case.body}\n{response.text[:300]}")

    attempt = 0
    wanted = server.operations
    while sent["query"] + sent["mutation"] < wanted and attempt < 5:
        missing = wanted - sent["query"] - sent["mutation"]

        # Failures are collected, not raised: Hypothesis would otherwise spend the budget
        # shrinking the first one.
        @seed(SEED + attempt)
        @settings(
            max_examples=missing,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy, role=st.sampled_from(ROLES))
        def fuzz(case: schemathesis.Case, role: str) -> None:
            send(case, role)

        fuzz()
        attempt += 1
    total = sent["query"] + sent["mutation"]
    print(
        f"\nfuzzing: seed {SEED}, {total} operations sent ({sent['query']} queries, "
        f"{sent['mutation']} mutations) in {time.monotonic() - started:.0f} s; statuses "
        + ", ".join(f"{k}: {v}" for k, v in sorted(sent.items()) if k.isdigit())
    )
    assert total >= wanted
    assert sent["mutation"] >= wanted // 10 and sent["query"] >= wanted // 10
    if failures:
        log = server.log.read_text(errors="replace").splitlines()
        clues = [line for line in log if "INFO:" not in line][-60:]
        failures.append("server log (without access lines):\n" + "\n".join(clues))
    assert not failures, f"{len(failures) - 1} failures; the first:\n" + "\n\n".join(
        failures[:3] + failures[-1:]
    )
