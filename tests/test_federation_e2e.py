"""The supergraph for real: carbongraph (2 workers, PostgreSQL) + the metro partner subgraph
behind Hive Gateway, all as separate processes on loopback ports."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from carbongraph.demo.seed import demo_tokens
from tests.conftest import REPO, app_role_url, create_app_role, fresh_postgres_database
from tests.processes import Processes, free_port
from tests.world import gid

GATEWAY = REPO / "gateway"
METRO = REPO / "examples" / "metro_partner"
HIVE = GATEWAY / "node_modules" / ".bin" / "hive-gateway"


class Stack:
    def __init__(
        self, processes: Processes, tokens: dict[str, str], ports: dict[str, int], supergraph: Path
    ) -> None:
        self.processes = processes
        self.tokens = tokens
        self.ports = ports
        self.supergraph = supergraph

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/graphql"

    def post(
        self,
        query: str,
        variables: dict | None = None,
        *,
        role: str | None = None,
        token: str | None = None,
        target: str = "gateway",
    ) -> httpx.Response:
        headers = {}
        if role or token:
            headers["Authorization"] = f"Bearer {token or self.tokens[role]}"
        return httpx.post(
            self.url(target),
            json={"query": query, "variables": variables or {}},
            headers=headers,
            timeout=60,
        )


def _compose(out: Path, subgraphs: dict[str, tuple[str, str]]) -> None:
    args = ["node", str(GATEWAY / "compose.mjs"), "--out", str(out)]
    for name, (sdl, url) in subgraphs.items():
        path = out.parent / f"{name}.graphql"
        path.write_text(sdl)
        args.append(f"{name}={path}@{url}")
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    if not HIVE.exists():
        pytest.fail("gateway/node_modules is missing: run `make test` (it runs npm ci)")
    tmp = tmp_path_factory.mktemp("federation")
    database = fresh_postgres_database()
    pg_url = next(database)
    # Deployed as docs/security.md says: migrations as the owner, everything else (seed and
    # the server) as the application role, under row-level security.
    create_app_role()
    cg_env = {
        "CARBONGRAPH_MIGRATION_DATABASE_URL": pg_url,
        "CARBONGRAPH_DATABASE_URL": app_role_url(pg_url),
        "CARBONGRAPH_REPORT_SQL_STATEMENTS": "1",
        "CARBONGRAPH_LOG_FORMAT": "json",
        # The 200-request test checks that totals reconcile, not latency: on CI the two cores
        # are shared with another test worker, and 100 writes queued behind 100 shadow-mode
        # reads (each executed twice) can pass the 10 s production budget.
        "CARBONGRAPH_REQUEST_TIMEOUT_SECONDS": "60",
    }
    metro_env = {
        "PYTHONPATH": str(METRO),
        "METRO_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'metro.db'}",
    }
    cli = [sys.executable, "-m", "carbongraph.cli"]
    run = dict(check=True, capture_output=True, text=True, timeout=300)
    subprocess.run([*cli, "migrate"], env={**os.environ, **cg_env}, **run)
    seeded = subprocess.run([*cli, "seed", "--demo"], env={**os.environ, **cg_env}, **run)
    tokens = demo_tokens(seeded.stdout)
    metro = [sys.executable, "-m", "metro_partner"]
    subprocess.run([*metro, "seed"], env={**os.environ, **metro_env}, **run)
    ports = {"carbongraph": free_port(), "metro": free_port(), "gateway": free_port()}
    sdl = {
        "carbongraph": subprocess.run([*cli, "export-schema"], **run).stdout,
        "metro": subprocess.run(
            [*metro, "export-schema"], env={**os.environ, **metro_env}, **run
        ).stdout,
    }
    supergraph = tmp / "supergraph.graphql"
    _compose(
        supergraph, {name: (sdl[name], f"http://127.0.0.1:{ports[name]}/graphql") for name in sdl}
    )
    processes = Processes(tmp)
    try:
        processes.start(
            "carbongraph",
            [*cli, "serve", "--port", str(ports["carbongraph"]), "--workers", "2"],
            env=cg_env,
            health=f"http://127.0.0.1:{ports['carbongraph']}/readyz",
        )
        processes.start(
            "metro",
            [*metro, "serve", "--port", str(ports["metro"])],
            env=metro_env,
            health=f"http://127.0.0.1:{ports['metro']}/healthz",
        )
        processes.start(
            "gateway",
            [
                str(HIVE),
                "supergraph",
                str(supergraph),
                "-c",
                "gateway.config.mjs",
                "--port",
                str(ports["gateway"]),
                "--host",
                "127.0.0.1",
            ],
            cwd=GATEWAY,
            health=f"http://127.0.0.1:{ports['gateway']}/healthcheck",
        )
        yield Stack(processes, tokens, ports, supergraph)
    finally:
        processes.stop_all()
        next(database, None)


PERIOD = {
    "from": (datetime.now(UTC).date() - timedelta(days=28)).isoformat(),
    "to": (datetime.now(UTC).date() - timedelta(days=1)).isoformat(),
}
VILLAGE = gid("Community", 1)
CROSS = """
query($c: ID!, $p: PeriodInput!) { community(id: $c) { name households(first: 5) { edges { node {
  id footprint(period: $p) { gross net }
  members { edges { node { id displayName
    metroTrips(first: 3) { totalCount edges { node { distanceKm avoidedGramsCo2e } } }
  } } } } } } } }
"""


def test_one_request_joins_carbongraph_and_partner_data(stack):
    response = stack.post(CROSS, {"c": VILLAGE, "p": PERIOD}, role="COMMUNITY_MANAGER")
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    households = body["data"]["community"]["households"]["edges"]
    assert len(households) == 5
    assert all(h["node"]["footprint"]["gross"] > 0 for h in households)
    members = [m["node"] for h in households for m in h["node"]["members"]["edges"]]
    assert all(m["displayName"] for m in members)
    assert sum(m["metroTrips"]["totalCount"] for m in members) > 0
    assert any(t["node"]["avoidedGramsCo2e"] > 0 for m in members for t in m["metroTrips"]["edges"])


def test_the_trace_context_and_request_id_pass_the_gateway(stack):
    trace_id = secrets.token_hex(16)
    headers = {
        "Authorization": f"Bearer {stack.tokens['COMMUNITY_MANAGER']}",
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
        "X-Request-Id": f"e2e-{trace_id[:8]}",
    }
    query = "query TracedThroughTheGateway { me { subject } }"
    response = httpx.post(stack.url("gateway"), json={"query": query}, headers=headers, timeout=60)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    # carbongraph's log line of that request (JSON) names the caller's trace and request id.
    deadline = time.monotonic() + 10
    lines: list[dict] = []
    while time.monotonic() < deadline and not lines:
        log = (stack.processes.logs / "carbongraph.log").read_text(errors="replace")
        lines = [
            json.loads(line)
            for line in log.splitlines()
            if line.startswith("{") and trace_id in line
        ]
        time.sleep(0.2)
    assert lines, "no log line of carbongraph carries the trace id"
    assert all(line["request_id"] == headers["X-Request-Id"] for line in lines)
    # And its metrics count the operation (the subgraph's own /metrics, open in development).
    metrics = httpx.get(f"http://127.0.0.1:{stack.ports['carbongraph']}/metrics", timeout=30)
    assert 'operation="TracedThroughTheGateway",outcome="ok"' in metrics.text


def test_entities_cost_one_statement_per_type(stack):
    representations = [
        {"__typename": "Individual", "id": gid("Individual", n)} for n in range(1, 101)
    ]
    representations += [
        {"__typename": "Household", "id": gid("Household", n)} for n in range(1, 101)
    ]
    query = """query($r: [_Any!]!) { _entities(representations: $r) {
      ... on Individual { id displayName } ... on Household { id dwellingType } } }"""
    response = stack.post(
        query, {"r": representations}, role="PLATFORM_ADMIN", target="carbongraph"
    )
    body = response.json()
    assert len(body["data"]["_entities"]) == 200 and all(body["data"]["_entities"])
    assert body["extensions"]["sqlStatements"] == 3  # grants, individuals, households


def test_authorization_holds_through_the_gateway(stack):
    own = stack.post("{ me { subject individual { household { id } } } }", role="RESIDENT")
    home = own.json()["data"]["me"]["individual"]["household"]["id"]
    assert own.json()["data"]["me"]["subject"] == "demo-resident"  # the header reached us
    other = gid("Household", 2)
    assert other != home
    body = stack.post(
        "query($h: ID!) { household(id: $h) { members { edges { node { displayName } } } } }",
        {"h": other},
        role="RESIDENT",
    ).json()
    assert body["data"]["household"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # An ESG analyst reads no names through the gateway either.
    body = stack.post(
        "query($i: ID!) { individual(id: $i) { displayName } }",
        {"i": gid("Individual", 700)},
        role="ESG_ANALYST",
    ).json()
    assert body["data"]["individual"] == {"displayName": None}


LIVE_CREDITS = """subscription($i: ID!) { creditsChanged(individualId: $i) { balance } }"""
SUBWAY = """mutation($a: RecordActionInput!) { recordAction(input: $a) {
  actions { status credits } userErrors { code } } }"""


async def _sse_events(
    url: str, token: str, query: str, variables: dict, out: asyncio.Queue
) -> None:
    """GraphQL over SSE (distinct connections) to the gateway: each `next` payload into out."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    body = {"query": query, "variables": variables}
    async with (
        httpx.AsyncClient(timeout=None) as client,
        client.stream("POST", url, json=body, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        event = None
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "next":
                await out.put(json.loads(line.split(":", 1)[1]))


async def test_subscriptions_pass_the_gateway(stack):
    """Client → gateway over SSE and over graphql-ws; gateway → carbongraph over
    graphql-transport-ws with the token in connection_init (gateway.config.mjs)."""
    from tests.live_client import RemoteSocket

    token = stack.tokens["RESIDENT"]
    me = stack.post("{ me { individual { id } } }", role="RESIDENT").json()
    person = me["data"]["me"]["individual"]["id"]
    events: asyncio.Queue = asyncio.Queue()
    reader = asyncio.create_task(
        _sse_events(stack.url("gateway"), token, LIVE_CREDITS, {"i": person}, events)
    )
    try:
        start = (await asyncio.wait_for(events.get(), 30))["data"]["creditsChanged"]["balance"]
        gateway_ws = stack.url("gateway").replace("http://", "ws://")
        async with RemoteSocket(gateway_ws) as ws:
            # Lower case: the gateway forwards `authorization` to carbongraph.
            assert (await ws.init(authorization=f"Bearer {token}"))["type"] == "connection_ack"
            await ws.subscribe("1", LIVE_CREDITS, {"i": person})
            assert (await ws.receive(timeout=30))["payload"]["data"]["creditsChanged"] == {
                "balance": start
            }
            day = datetime.now(UTC).date().isoformat()
            body = stack.post(
                SUBWAY,
                {"a": {"individualId": person, "actionType": "SUBWAY_TRIP", "occurredOn": day}},
                role="RESIDENT",
            ).json()
            assert body["data"]["recordAction"]["userErrors"] == [], body
            earned = body["data"]["recordAction"]["actions"][0]["credits"]
            over_sse = await asyncio.wait_for(events.get(), 5)
            assert over_sse["data"]["creditsChanged"]["balance"] == start + earned
            over_ws = await ws.receive(timeout=5)
            assert over_ws["payload"]["data"]["creditsChanged"]["balance"] == start + earned
            # Someone else's credits: refused by carbongraph, through the gateway.
            await ws.subscribe("2", LIVE_CREDITS, {"i": gid("Individual", 700)})
            refused = await ws.receive(timeout=30)
            # The gateway delivers the refusal as a result with the error, then completes
            # (gateway.config.mjs, subscriptionRefusals).
            assert refused["id"] == "2" and refused["type"] == "next", refused
            error = refused["payload"]["errors"][0]
            assert error["extensions"]["code"] == "NOT_FOUND", refused  # another tenant
            assert error["message"] == "No such object."
            assert await ws.receive(timeout=5) == {"id": "2", "type": "complete"}
    finally:
        reader.cancel()


def test_the_gateway_refuses_bad_tokens_scopes_and_expensive_queries(stack):
    assert stack.post("{ me { subject } }").status_code == 401
    assert stack.post("{ me { subject } }", token="not-a-jwt").status_code == 401
    assert stack.post("{ me { subject } }", token="a.b.c").status_code == 401
    body = stack.post(
        "{ platformFootprint(period: {year: 2026}) { gross } }", role="ORG_ADMIN"
    ).json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHORIZED_FIELD_OR_TYPE"
    expensive = """{ communities(first: 100) { edges { node { households(first: 100) {
      edges { node { members(first: 100) { edges { node { id } } } } } } } } } }"""
    body = stack.post(expensive, role="PLATFORM_ADMIN").json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "COST_ESTIMATED_TOO_EXPENSIVE"


def test_a_contract_without_personal_data(stack, tmp_path):
    contract = tmp_path / "contract.graphql"
    with stack.supergraph.open() as source, contract.open("w") as out:
        subprocess.run(
            ["node", str(GATEWAY / "contract.mjs"), "--exclude", "personal"],
            stdin=source,
            stdout=out,
            check=True,
            timeout=60,
        )
    port = free_port()
    stack.processes.start(
        "contract-gateway",
        [
            str(HIVE),
            "supergraph",
            str(contract),
            "-c",
            "gateway.config.mjs",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        cwd=GATEWAY,
        health=f"http://127.0.0.1:{port}/healthcheck",
    )
    try:
        url = f"http://127.0.0.1:{port}/graphql"
        headers = {"Authorization": f"Bearer {stack.tokens['PLATFORM_ADMIN']}"}
        ok = httpx.post(url, json={"query": "{ enterprises { totalCount } }"}, headers=headers)
        assert ok.json()["data"]["enterprises"]["totalCount"] == 3
        refused = httpx.post(
            url,
            json={
                "query": "{ enterprises { edges { node { employees {"
                " edges { node { displayName } } } } } } }"
            },
            headers=headers,
        )
        assert "displayName" in refused.json()["errors"][0]["message"]
    finally:
        stack.processes.stop("contract-gateway")


async def test_200_concurrent_reads_and_writes_on_2_workers_reconcile(stack):
    platform = "query($p: PeriodInput!) { platformFootprint(period: $p) { gross recordCount } }"
    period = {"year": 2024}
    headers = {"Authorization": f"Bearer {stack.tokens['PLATFORM_ADMIN']}"}
    url = stack.url("gateway")
    write = """mutation($r: RecordActivityInput!) { recordActivity(input: $r) {
      records { locationBased } userErrors { code message } } }"""
    read = """query($c: ID!, $p: PeriodInput!) { community(id: $c) { footprint(period: $p) {
      gross } households(first: 10) { edges { node { footprint(period: $p) { gross } } } } } }"""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as client:
        before = (
            await client.post(url, json={"query": platform, "variables": {"p": period}})
        ).json()
        requests = []
        for n in range(200):
            if n % 2 == 0:  # writes: gas readings of 100 villagers on 2024-03-01
                variables = {
                    "r": {
                        "accountId": gid("Individual", n // 2 + 1),
                        "activityType": "NATURAL_GAS",
                        "quantity": f"{n % 7 + 1}",
                        "unit": "m3",
                        "periodStart": "2024-03-01",
                        "periodEnd": "2024-03-01",
                        "externalId": f"e2e-{n}",
                    }
                }
                requests.append(client.post(url, json={"query": write, "variables": variables}))
            else:
                requests.append(
                    client.post(
                        url,
                        json={
                            "query": read,
                            "variables": {"c": VILLAGE, "p": {"month": "2024-03"}},
                        },
                    )
                )
        responses = await asyncio.gather(*requests)
        after = (
            await client.post(url, json={"query": platform, "variables": {"p": period}})
        ).json()
    bodies = [r.json() for r in responses]
    assert all(r.status_code == 200 for r in responses)
    assert all("errors" not in b for b in bodies), [b for b in bodies if "errors" in b][:2]
    written = [b["data"]["recordActivity"] for b in bodies[::2]]
    assert all(w["userErrors"] == [] for w in written)
    grams = sum(w["records"][0]["locationBased"] for w in written)
    assert grams == sum(round((n % 7 + 1) * 21622 / 10) for n in range(0, 200, 2))  # per record
    start = before["data"]["platformFootprint"]
    end = after["data"]["platformFootprint"]
    assert end["gross"] - start["gross"] == grams
    assert end["recordCount"] - start["recordCount"] == 100
    # The village equals the sum of its households, exactly.
    village_query = """query($c: ID!, $p: PeriodInput!) { community(id: $c) {
      footprint(period: $p) { gross } households(first: 100) { totalCount } } }"""
    village = stack.post(
        village_query, {"c": VILLAGE, "p": {"month": "2024-03"}}, role="PLATFORM_ADMIN"
    ).json()["data"]["community"]
    assert village["households"]["totalCount"] == 200
    assert village["footprint"]["gross"] == grams


PARTNER = REPO / "examples" / "partner_client"
MANIFEST = PARTNER / "src" / "gql" / "persisted-documents.json"
TSC = str(PARTNER / "node_modules" / ".bin" / "tsc")


def test_the_partner_clients_persisted_documents_through_the_gateway(stack, tmp_path):
    """A gateway in persisted-documents mode with the partner client's generated manifest
    answers its documents by hash (Hive's documentId and Apollo's sha256Hash), exactly as the
    open gateway answers their text, and refuses unknown hashes and any document text; the
    compiled TypeScript client gets a typed statement through it."""
    manifest = json.loads(MANIFEST.read_text())
    by_name = {text.split("(")[0].split()[1]: key for key, text in manifest.items()}
    port = free_port()
    stack.processes.start(
        "persisted-gateway",
        [
            str(HIVE),
            "supergraph",
            str(stack.supergraph),
            "-c",
            "gateway.config.mjs",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        cwd=GATEWAY,
        env={"GATEWAY_PERSISTED_DOCUMENTS": str(MANIFEST)},
        health=f"http://127.0.0.1:{port}/healthcheck",
    )
    url = f"http://127.0.0.1:{port}/graphql"

    def send(body: dict, role: str) -> dict:
        headers = {"Authorization": f"Bearer {stack.tokens[role]}"}
        return httpx.post(url, json=body, headers=headers, timeout=60).json()

    def codes(body: dict) -> list[str]:
        return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]

    try:
        me = stack.post("{ me { individual { household { id } } } }", role="RESIDENT").json()
        home = me["data"]["me"]["individual"]["household"]["id"]
        enterprise = stack.post(
            "{ enterprises(first: 1) { edges { node { id } } } }", role="ORG_ADMIN"
        )
        enterprise_id = enterprise.json()["data"]["enterprises"]["edges"][0]["node"]["id"]
        year = datetime.now(UTC).year
        cases = {
            "HouseholdStatement": ({"id": home}, "RESIDENT"),
            "CommunityPage": ({"id": VILLAGE, "period": PERIOD}, "COMMUNITY_MANAGER"),
            "EsgInventory": ({"nodeId": enterprise_id, "year": year}, "ORG_ADMIN"),
        }
        for name, (variables, role) in cases.items():
            key = by_name[name]
            by_id = send({"documentId": key, "variables": variables}, role)
            assert "errors" not in by_id and by_id["data"], (name, by_id)
            apollo = send(
                {
                    "variables": variables,
                    "extensions": {"persistedQuery": {"version": 1, "sha256Hash": key}},
                },
                role,
            )
            # The same answer as the document's text through the open gateway.
            text = stack.post(manifest[key], variables, role=role).json()
            assert by_id == apollo == text, name
        statement = send(
            {"documentId": by_name["HouseholdStatement"], "variables": {"id": home}}, "RESIDENT"
        )["data"]["household"]["statement"]
        assert len(statement["days"]) == 28 and statement["weeks"]
        # Not in the manifest: refused, nothing executed.
        unknown = send({"documentId": "0" * 64, "variables": {"id": home}}, "RESIDENT")
        assert codes(unknown) == ["PERSISTED_QUERY_NOT_IN_LIST"] and not unknown.get("data")
        # Any document text is refused, even the text of a persisted one.
        arbitrary = send({"query": manifest[by_name["HouseholdStatement"]]}, "RESIDENT")
        assert codes(arbitrary) == ["CANNOT_SEND_PQ_ID_AND_BODY"] and not arbitrary.get("data")
        # The typed client itself, compiled, against the persisted-documents gateway.
        dist = tmp_path / "dist"
        tsc = subprocess.run(
            [TSC, "--noEmit", "false", "--outDir", str(dist), "-p", str(PARTNER)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert tsc.returncode == 0, tsc.stdout
        (dist / "package.json").write_text('{"type": "module"}')
        run = subprocess.run(
            ["node", str(dist / "src" / "main.js"), url, stack.tokens["RESIDENT"], home],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        shown = json.loads(run.stdout)
        assert shown["errors"] == []
        assert [d["date"] for d in shown["days"]] == [d["date"] for d in statement["days"]]
        kwh = [
            float(
                next((u["quantity"] for u in d["usage"] if u["activityType"] == "ELECTRICITY"), 0)
            )
            for d in statement["days"]
        ]
        assert [d["kWh"] for d in shown["days"]] == kwh
    finally:
        stack.processes.stop("persisted-gateway")


def test_graphql_http_audit_through_the_gateway(stack):
    result = subprocess.run(
        [
            "node",
            str(GATEWAY / "audit.mjs"),
            "--url",
            stack.url("gateway"),
            "--token",
            stack.tokens["PLATFORM_ADMIN"],
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = json.loads(result.stdout)
    assert summary["total"] >= 50
    assert summary["ok"] == summary["total"], summary["failures"]


def test_a_subgraph_that_is_down_fails_only_its_fields(stack):
    stack.processes.stop("metro")
    response = stack.post(CROSS, {"c": VILLAGE, "p": PERIOD}, role="COMMUNITY_MANAGER")
    body = response.json()
    households = body["data"]["community"]["households"]["edges"]
    assert len(households) == 5 and households[0]["node"]["footprint"]["gross"] > 0
    members = [m["node"] for h in households for m in h["node"]["members"]["edges"]]
    assert all(m["displayName"] for m in members)
    assert all(m["metroTrips"] is None for m in members)
    assert body["errors"] and all("metroTrips" in e.get("path", []) for e in body["errors"])
    assert json.dumps(body["errors"]).count("metro") >= 1
