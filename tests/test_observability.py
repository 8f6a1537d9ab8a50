"""Operations (issue 16): Prometheus metrics at /metrics, OpenTelemetry traces with the
operation span and its SQL statement spans, the request id and trace id in logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from carbongraph.app import create_app
from carbongraph.authz import mint_token
from carbongraph.config import Settings
from carbongraph.db import StatementLog
from carbongraph.observability import metrics, tracing
from carbongraph.planner.pool import forget_scopes
from tests.processes import Processes, free_port
from tests.test_statement_counts import NESTED
from tests.world import build_world, gid

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def scrape(client: httpx.AsyncClient, **headers: str) -> dict[tuple[str, tuple], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_requests_latency_and_statements_by_operation(engine, app_engine, api):
    world = await build_world(engine, communities=2, households=2, members=1)
    client = api.client
    forget_scopes(app_engine)  # the planner's connections set the viewer's scope afresh
    before = await scrape(client)
    query = "query EnterpriseTree" + NESTED.strip().removeprefix("query")
    counted = []
    for _ in range(3):
        with StatementLog() as log:
            await api.gql(query, {"id": gid("Enterprise", world.a.enterprise)}, subject="org-a")
        counted.append(log.count)
    await api.post("query Who { me { subject } }")  # no token: 401
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"operation": "EnterpriseTree", "outcome": "ok"}
    assert delta("carbongraph_requests_total", **ok) == 3
    assert delta("carbongraph_request_duration_seconds_count", **ok) == 3
    assert delta("carbongraph_request_duration_seconds_sum", **ok) > 0
    assert delta("carbongraph_request_duration_seconds_bucket", le="+Inf", **ok) == 3
    statements = {"operation": "EnterpriseTree"}
    assert delta("carbongraph_sql_statements_per_request_count", **statements) == 3
    # The histogram saw what the statement log of each request saw (the pinned count: 5 by
    # the reference executor; when the query planner answers on PostgreSQL, the scope and the
    # plan, then the plan alone on the connection that holds the viewer's scope).
    planned = engine.dialect.name == "postgresql" and api.settings.planner
    assert delta("carbongraph_sql_statements_per_request_sum", **statements) == sum(counted)
    if not planned:
        assert counted == [5] * 3
    elif api.settings.planner_shadow:  # planned in the request's transaction: grants, plan
        assert counted == [2] * 3
    else:
        assert counted == [2, 1, 1]
    assert delta("carbongraph_sql_statements_per_request_bucket", le="5.0", **statements) == 3
    below = delta("carbongraph_sql_statements_per_request_bucket", le="3.0", **statements)
    assert below == (3 if planned else 0)
    # Refused before its operation was known: counted by route, as a client error.
    assert delta("carbongraph_requests_total", operation="__unknown__", outcome="client_error") == 1
    # No connection is left checked out; one taken out shows.
    in_use = value(after, "carbongraph_db_connections_in_use")
    assert ("carbongraph_db_connections_in_use", ()) in after
    async with app_engine.connect():
        during = await scrape(client)
    assert value(during, "carbongraph_db_connections_in_use") == in_use + 1
    assert value(await scrape(client), "carbongraph_db_connections_in_use") == in_use


async def test_refusals_are_counted_by_reason(engine, app_engine, settings):
    strict = Settings.from_env(
        database_url=settings.database_url, max_cost=50, rate_limit_per_minute=120
    )
    app = create_app(strict, engine=app_engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        headers = {"Authorization": f"Bearer {mint_token(strict, 'greedy')}"}
        before = await scrape(client)
        expensive = "query Big { enterprises(first: 100) { edges { node { id } } } }"
        response = await client.post("/graphql", json={"query": expensive}, headers=headers)
        assert response.json()["errors"][0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
        statuses = []
        for _ in range(200):
            response = await client.post(
                "/graphql", json={"query": "query Cheap { me { subject } }"}, headers=headers
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        assert statuses[-1] == 429
        after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("carbongraph_refusals_total", reason="cost_limit_exceeded") == 1
    assert delta("carbongraph_refusals_total", reason="rate_limited") == 1
    # The rate limiter refuses before the document is read; the cost rule runs in validation,
    # when the operation's name is known.
    assert delta("carbongraph_requests_total", operation="__unknown__", outcome="refused") == 1
    assert delta("carbongraph_requests_total", operation="Big", outcome="refused") == 1
    assert delta("carbongraph_requests_total", operation="Cheap", outcome="ok") == len(statuses) - 1


def test_operation_names_are_a_bounded_label_set():
    names = metrics.OperationNames(limit=2)
    assert [names.label(n) for n in ("A", "B", "A", "C", "", None)] == [
        "A",
        "B",
        "A",
        metrics.OTHER,
        metrics.ANONYMOUS,
        metrics.UNKNOWN,
    ]


async def test_metrics_need_the_token_in_production(engine, settings):
    def app_for(**overrides: object):
        return create_app(
            Settings.from_env(
                database_url=settings.database_url,
                env="production",
                jwt_secret="a-production-secret-of-enough-length-32",
                **overrides,
            ),
            engine=engine,
        )

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for()), base_url="http://test"
    ) as client:
        assert (await client.get("/metrics")).status_code == 404
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(metrics_token="scrape-secret")),
        base_url="http://test",
    ) as client:
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        samples = await scrape(client, Authorization="Bearer scrape-secret")
        assert ("carbongraph_db_connections_in_use", ()) in samples


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure(provider)
    try:
        yield exporter
    finally:
        tracing.reset()
        provider.shutdown()


async def test_traces_have_the_operation_span_with_its_sql_spans(
    engine, app_engine, settings, spans
):
    world = await build_world(engine, communities=3, households=2, members=1)
    app = create_app(settings, engine=app_engine)
    query = "query EnterpriseTree" + NESTED.strip().removeprefix("query")
    forget_scopes(app_engine)  # a first read: the scope statement, then the plan
    spans.clear()  # building the world was traced too (the same engine on SQLite)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        with StatementLog() as log:
            response = await client.post(
                "/graphql",
                json={"query": query, "variables": {"id": gid("Enterprise", world.a.enterprise)}},
                headers={
                    "Authorization": f"Bearer {mint_token(settings, 'org-a')}",
                    "traceparent": TRACEPARENT,
                },
            )
    assert response.status_code == 200 and "errors" not in response.json()
    # On PostgreSQL the query planner answers: the grants (and the scope) and one statement.
    planned = engine.dialect.name == "postgresql" and settings.planner
    assert log.count == (2 if planned else 5)  # tracing adds no statement
    finished = spans.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in finished} == {TRACE_ID}
    (operation,) = [s for s in finished if s.name == "GraphQL Query: EnterpriseTree"]
    assert operation.attributes["graphql.operation.name"] == "EnterpriseTree"
    assert operation.attributes["graphql.operation.type"] == "query"
    (server,) = [s for s in finished if s.kind.name == "SERVER" and s is not operation]
    assert server.parent.span_id == int(TRACEPARENT.split("-")[2], 16)  # the gateway's span
    assert operation.parent.span_id == server.context.span_id
    sql = [
        s for s in finished if s.attributes.get("db.system") or s.attributes.get("db.system.name")
    ]
    children = [s for s in sql if s.parent.span_id == operation.context.span_id]
    # The grants lookup runs before the operation (under the server span); the 4 levels of the
    # nested query (or the planned statement) run inside it.
    assert len(children) == (1 if planned else 4), [s.name for s in sql]
    assert all(s.kind.name == "CLIENT" for s in children)
    # Besides the 5 data statements: the connection's checkout and its BEGIN (COMMIT, too, on
    # PostgreSQL), which the statement log leaves out.
    data = [s for s in sql if s.name.split()[0] not in {"connect", "BEGIN", "COMMIT"}]
    assert len(data) == (2 if planned else 5), [s.name for s in sql]


def test_served_with_workers_metrics_add_up_and_logs_are_json(tmp_path):
    """`carbongraph serve --workers 2`: every worker's requests in /metrics, whichever worker
    answers the scrape; each log line one JSON object with the request id and trace id."""
    env = {
        "CARBONGRAPH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'served.db'}",
        "CARBONGRAPH_LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    full_env = {**os.environ, **env}
    subprocess.run(
        [sys.executable, "-m", "carbongraph.cli", "migrate"],
        env=full_env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    processes = Processes(tmp_path)
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "carbongraph.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    try:
        processes.start("server", command, health=f"{base}/healthz", env=env)
        token = mint_token(Settings.from_env(database_url=env["CARBONGRAPH_DATABASE_URL"]), "w")
        sent = []
        with httpx.Client(base_url=base, timeout=30) as client:
            for i in range(12):
                request_id = f"req-{i}"
                response = client.post(
                    "/graphql",
                    json={"query": "query Served { me { subject } }"},
                    headers={
                        "Authorization": f"Bearer {token}",
                        "traceparent": TRACEPARENT,
                        "X-Request-Id": request_id,
                    },
                )
                assert response.status_code == 200, response.text
                assert response.headers["x-request-id"] == request_id
                sent.append(request_id)
            scraped = set()
            for _ in range(6):
                text = client.get("/metrics").text
                samples = {
                    (s.name, tuple(sorted(s.labels.items()))): s.value
                    for f in text_string_to_metric_families(text)
                    for s in f.samples
                }
                scraped.add(
                    value(samples, "carbongraph_requests_total", operation="Served", outcome="ok")
                )
        assert scraped == {12.0}  # the same sum from either worker
    finally:
        processes.stop_all()
    records = []
    for line in (tmp_path / "server.log").read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    served = [r for r in records if r.get("request_id") in sent]
    assert {r["request_id"] for r in served} == set(sent), records[-5:]
    assert all(r["trace_id"] == TRACE_ID for r in served)
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in served)
    # Everything the server wrote to its log is JSON (the banner goes to stdout: not a log).
    assert len(records) >= len(sent)
