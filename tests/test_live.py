"""Live updates: creditsChanged and leaderboardChanged over graphql-transport-ws, in-process on
both backends (SQLite: the committing request feeds the hub; PostgreSQL: NOTIFY → LISTEN)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from carbongraph.app import create_app
from carbongraph.db import request_db
from carbongraph.live import postgres
from carbongraph.live.hub import credits_channel, hub_for
from carbongraph.live.publish import publish
from tests.live_client import AsgiSocket, Closed
from tests.test_evidence import jpeg, upload
from tests.world import build_world, gid

# Alone: events must arrive within 1-2 s of the mutation that causes them.
pytestmark = pytest.mark.serial

CREDITS = """subscription($i: ID!) { creditsChanged(individualId: $i) {
  individualId balance changedAt } }"""
BOARD = """subscription($c: ID!, $m: LeaderboardMetric!) {
  leaderboardChanged(communityId: $c, metric: $m) { communityId metric changedAt } }"""
RECORD = """mutation($a: RecordActionInput!) { recordAction(input: $a) {
  actions { id status } userErrors { code message } } }"""
REVIEW = """mutation($id: ID!) { reviewAction(input: {actionId: $id, decision: APPROVE}) {
  action { status credits } userErrors { code } } }"""


class Live:
    """The app with its lifespan running (the PostgreSQL listener), plus an HTTP client."""

    def __init__(self, app, api) -> None:
        self.app = app
        self.api = api

    def socket(self, headers: dict[str, str] | None = None) -> AsgiSocket:
        return AsgiSocket(self.app, headers)


@pytest.fixture(autouse=True)
def evidence_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CARBONGRAPH_EVIDENCE_DIR", str(tmp_path / "evidence"))


@pytest.fixture
async def live(engine, settings, api) -> AsyncIterator[Live]:
    settings = replace(settings, live_leaderboard_interval_ms=3000)
    app = create_app(settings, engine=engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            api.client = client
            api.settings = settings
            yield Live(app, api)


async def pending_clean_plate(api, subject: str, individual: str) -> str:
    """A photo action awaiting a manager's decision; its ID."""
    photo = jpeg((random.randrange(256), random.randrange(256), random.randrange(256)))
    evidence = (await upload(api, subject, individual, photo)).json()["data"]["uploadEvidence"]
    assert evidence["userErrors"] == [], evidence
    body = await api.gql(
        RECORD,
        {
            "a": {
                "individualId": individual,
                "actionType": "CLEAN_PLATE",
                "occurredOn": "2025-06-01",
                "evidenceId": evidence["evidence"]["id"],
            }
        },
        subject=subject,
    )
    action = body["data"]["recordAction"]["actions"][0]
    assert action["status"] == "PENDING"
    return action["id"]


async def test_credits_changed_within_a_second_of_an_approval(engine, live):
    world = await build_world(engine)
    home = world.a.households[world.a.communities[0]][0]
    student = gid("Individual", world.a.members[home][0])
    action = await pending_clean_plate(live.api, "resident-a", student)
    async with live.socket() as ws:
        assert await ws.init(live.api.token("resident-a")) == {"type": "connection_ack"}
        await ws.subscribe("1", CREDITS, {"i": student})
        first = await ws.receive()
        assert first["type"] == "next" and first["id"] == "1"
        assert first["payload"]["data"]["creditsChanged"]["balance"] == 0
        assert first["payload"]["data"]["creditsChanged"]["individualId"] == student

        approved_at = datetime.now(UTC)
        started = time.monotonic()
        body = await live.api.gql(REVIEW, {"id": action}, subject="cm-a0")
        assert body["data"]["reviewAction"]["action"] == {"status": "APPROVED", "credits": 200}
        event = await ws.receive(timeout=1.0)
        assert time.monotonic() - started < 1.0 + 1.0  # the mutation's own time, then < 1 s
        change = event["payload"]["data"]["creditsChanged"]
        assert event["type"] == "next" and change["balance"] == 200
        assert datetime.fromisoformat(change["changedAt"]) >= approved_at
        # One transaction, one event.
        assert await ws.quiet(0.3) == []


async def test_only_committed_changes_are_announced(engine, live):
    hub = hub_for(engine.url.render_as_string(hide_password=False))
    kept, dropped = hub.watch(credits_channel(901)), hub.watch(credits_channel(902))
    try:
        async with request_db(engine, write=True) as db:
            await db.execute(sa.text("SELECT 1"))
            with pytest.raises(RuntimeError):
                async with db.savepoint():
                    await publish(db, [credits_channel(902)])
                    raise RuntimeError("the mutation fails: its announcements go with it")
            await publish(db, [credits_channel(901)])
            assert not kept._wake.is_set()  # nothing before the commit
        await asyncio.wait_for(kept.wait(), 2)
        assert await asyncio.wait_for(asyncio.shield(_never(dropped)), 0.5) is None
        with pytest.raises(RuntimeError):
            async with request_db(engine, write=True) as db:
                await publish(db, [credits_channel(902)])
                raise RuntimeError("rolled back whole")
        assert await asyncio.wait_for(asyncio.shield(_never(dropped)), 0.5) is None
    finally:
        kept.close()
        dropped.close()


async def _never(watch) -> None:
    """None when the watch stays quiet for the caller's timeout."""
    try:
        await asyncio.wait_for(watch.wait(), 0.45)
    except TimeoutError:
        return None
    raise AssertionError(f"{watch.channel} fired")


async def test_subscriptions_without_permission_get_an_error_and_no_events(engine, live):
    world = await build_world(engine)
    homes = world.a.households[world.a.communities[0]]
    own = gid("Individual", world.a.members[homes[0]][0])
    neighbour = gid("Individual", world.a.members[homes[1]][0])
    foreign = gid("Individual", world.b.all_members[-1])  # [0] works for A
    async with live.socket() as ws:
        await ws.init(live.api.token("resident-a"))
        await ws.subscribe("n", CREDITS, {"i": neighbour})
        refused = await ws.receive()
        assert refused["type"] == "error" and refused["id"] == "n"
        assert refused["payload"][0]["extensions"]["code"] == "FORBIDDEN"
        await ws.subscribe("f", CREDITS, {"i": foreign})
        refused = await ws.receive()
        assert refused["type"] == "error" and refused["id"] == "f"
        assert refused["payload"][0]["extensions"]["code"] == "NOT_FOUND"  # like a missing one
        # A resident watches their own community's board, not a sibling community's.
        await ws.subscribe(
            "own", BOARD, {"c": gid("Community", world.a.communities[0]), "m": "REDUCTIONS"}
        )
        first = await ws.receive()
        assert first["type"] == "next" and first["id"] == "own"
        await ws.subscribe(
            "b", BOARD, {"c": gid("Community", world.a.communities[1]), "m": "REDUCTIONS"}
        )
        refused = await ws.receive()
        assert refused["type"] == "error" and refused["id"] == "b"
        assert refused["payload"][0]["extensions"]["code"] == "FORBIDDEN"
        # The neighbour's credits change: nothing reaches the refused subscriber.
        action = await pending_clean_plate(live.api, "cm-a0", neighbour)
        await live.api.gql(REVIEW, {"id": action}, subject="cm-a0")
        assert await ws.quiet(0.5) == []
        await ws.send({"type": "ping"})
        assert await ws.receive() == {"type": "pong"}
    # An analyst may watch the leaderboard but reads no one's credits.
    async with live.socket() as ws:
        await ws.init(live.api.token("esg-a"))
        await ws.subscribe("c", CREDITS, {"i": own})
        refused = await ws.receive()
        assert refused["payload"][0]["extensions"]["code"] == "FORBIDDEN"
        await ws.subscribe(
            "b", BOARD, {"c": gid("Community", world.a.communities[0]), "m": "REDUCTIONS"}
        )
        assert (await ws.receive())["type"] == "next"


async def test_connection_rules(engine, live):
    world = await build_world(engine)
    own = gid("Individual", world.a.members[world.a.households[world.a.communities[0]][0]][0])
    async with live.socket() as ws:  # no token
        await ws.send({"type": "connection_init", "payload": {}})
        with pytest.raises(Closed) as closed:
            await ws.receive()
        assert closed.value.code == 4403 and "missing bearer token" in closed.value.reason
    async with live.socket() as ws:
        await ws.send({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}})
        with pytest.raises(Closed) as closed:
            await ws.receive()
        assert closed.value.code == 4403 and closed.value.reason.startswith("Unauthenticated")
    async with live.socket() as ws:  # the key Apollo Router uses
        token = live.api.token("resident-a")
        assert await ws.init(token=f"Bearer {token}") == {"type": "connection_ack"}
    # The upgrade request's Authorization header does as well as the payload.
    headers = {"Authorization": f"Bearer {live.api.token('resident-a')}"}
    async with live.socket(headers) as ws:
        assert await ws.init() == {"type": "connection_ack"}
        # Queries and mutations belong to HTTP.
        await ws.subscribe("q", "{ me { subject } }")
        refused = await ws.receive()
        assert refused["type"] == "error" and refused["id"] == "q"
        # The document limits of HTTP requests apply.
        deep = 'subscription { creditsChanged(individualId: "x") { ' + "a { " * 10 + "}" * 12
        await ws.subscribe("d", deep)
        refused = await ws.receive()
        assert refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "QUERY_TOO_DEEP"
        await ws.subscribe("x", "subscription { creditsChanged(")
        refused = await ws.receive()
        assert refused["type"] == "error" and refused["id"] == "x"
        assert refused["payload"][0]["message"].startswith("Syntax Error")
        assert refused["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        await ws.subscribe("s", CREDITS, {"i": own})
        assert (await ws.receive())["type"] == "next"
        await ws.send({"type": "complete", "id": "s"})
        assert await ws.quiet(0.2) == []
    hub = hub_for(engine.url.render_as_string(hide_password=False))
    assert hub.watch_count == 0  # completed and disconnected subscriptions leave nothing


async def test_the_socket_closes_when_the_token_expires(engine, live):
    from datetime import timedelta

    await build_world(engine)
    async with live.socket() as ws:
        token = live.api.token("resident-a", ttl=timedelta(seconds=1))
        assert await ws.init(token) == {"type": "connection_ack"}
        with pytest.raises(Closed) as closed:
            await ws.receive(timeout=5)
        assert closed.value.code == 4403 and "expired" in closed.value.reason


async def test_leaderboard_changes_are_coalesced(engine, live):
    world = await build_world(engine)
    community = gid("Community", world.a.communities[0])
    home = world.a.households[world.a.communities[0]][0]
    people = [gid("Individual", pk) for pk in world.a.members[home]]
    async with live.socket() as ws:
        await ws.init(live.api.token("cm-a0"))
        await ws.subscribe("r", BOARD, {"c": community, "m": "REDUCTIONS"})
        await ws.subscribe("n", BOARD, {"c": community, "m": "NET_EMISSIONS_PER_CAPITA"})
        initial = {(m := await ws.receive())["id"]: m for _ in range(2)}
        assert initial["r"]["payload"]["data"]["leaderboardChanged"]["metric"] == "REDUCTIONS"
        # Three approved actions in three transactions, within the 3-second interval.
        for n, person in enumerate(people + people[:1]):
            body = await live.api.gql(
                RECORD,
                {
                    "a": {
                        "individualId": person,
                        "actionType": "SUBWAY_TRIP",
                        "occurredOn": "2025-06-0" + str(n + 1),
                    }
                },
                subject="cm-a0",
            )
            assert body["data"]["recordAction"]["userErrors"] == []
        last_write = datetime.now(UTC)
        events = await ws.quiet(4.5)
        assert [e["id"] for e in events] == ["r"]  # reductions only, and once
        change = events[0]["payload"]["data"]["leaderboardChanged"]
        assert change == {
            "communityId": community,
            "metric": "REDUCTIONS",
            "changedAt": change["changedAt"],
        }
        assert datetime.fromisoformat(change["changedAt"]) <= last_write
        # Activity data moves net emissions.
        record = """mutation($r: RecordActivityInput!) { recordActivity(input: $r) {
          userErrors { code } } }"""
        body = await live.api.gql(
            record,
            {
                "r": {
                    "accountId": people[0],
                    "activityType": "NATURAL_GAS",
                    "quantity": "3",
                    "unit": "m3",
                    "periodStart": "2025-06-01",
                    "periodEnd": "2025-06-01",
                }
            },
            subject="cm-a0",
        )
        assert body["data"]["recordActivity"]["userErrors"] == []
        events = await ws.quiet(4.5)
        assert [e["id"] for e in events] == ["n"]


@pytest.mark.postgresql_only
async def test_the_listener_reconnects_and_wakes_every_subscription(engine, live):
    world = await build_world(engine)
    home = world.a.households[world.a.communities[0]][0]
    student = gid("Individual", world.a.members[home][0])
    relay = postgres.relay_for(engine)
    assert relay is not None and relay.listening.is_set()
    connections = relay.connections
    async with live.socket() as ws:
        await ws.init(live.api.token("resident-a"))
        await ws.subscribe("1", CREDITS, {"i": student})
        assert (await ws.receive())["payload"]["data"]["creditsChanged"]["balance"] == 0
        async with engine.connect() as conn:
            killed = await conn.scalar(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": postgres.APPLICATION_NAME},
            )
        assert killed == 1
        # Back within the backoff; changes may have been missed, so everyone hears once.
        resync = await ws.receive(timeout=10)
        assert resync["payload"]["data"]["creditsChanged"]["balance"] == 0
        assert relay.connections == connections + 1
        action = await pending_clean_plate(live.api, "resident-a", student)
        await live.api.gql(REVIEW, {"id": action}, subject="cm-a0")
        event = await ws.receive(timeout=1.0)
        assert event["payload"]["data"]["creditsChanged"]["balance"] == 200


async def test_production_rules_apply_to_subscriptions(engine, settings, api):
    production = replace(
        settings, env="production", jwt_secret="live-test-secret-of-at-least-32-bytes"
    )
    app = create_app(production, engine=engine)
    api.settings = production
    await build_world(engine)
    async with AsgiSocket(app) as ws:
        assert await ws.init(api.token("resident-a")) == {"type": "connection_ack"}
        await ws.subscribe("t", 'subscription { creditsChange(individualId: "x") { balance } }')
        refused = await ws.receive()
        assert refused["type"] == "error"
        message = refused["payload"][0]["message"]
        assert "creditsChange" in message and "Did you mean" not in message
        introspection = "subscription { __schema { queryType { name } } }"
        await ws.subscribe("i", introspection)
        refused = await ws.receive()
        assert refused["payload"][0]["extensions"]["code"] == "INTROSPECTION_DISABLED"


async def test_every_kind_of_ledger_entry_is_announced(engine, live):
    from datetime import date

    from carbongraph.actions.expiry import expire_credits

    world = await build_world(engine)
    home = world.a.households[world.a.communities[0]][0]
    person = gid("Individual", world.a.members[home][0])

    def subway(day: str) -> dict:
        return {"a": {"individualId": person, "actionType": "SUBWAY_TRIP", "occurredOn": day}}

    async with live.socket() as ws:
        await ws.init(live.api.token("resident-a"))
        await ws.subscribe("1", CREDITS, {"i": person})

        async def balance() -> int:
            event = await ws.receive(timeout=2)
            return event["payload"]["data"]["creditsChanged"]["balance"]

        assert await balance() == 0
        body = await live.api.gql(RECORD, subway("2025-06-01"), subject="resident-a")
        action = body["data"]["recordAction"]["actions"][0]
        assert await balance() == 554  # GRANT
        reverse = """mutation($id: ID!) { reverseAction(input: {actionId: $id, decision: APPROVE,
          reason: "no such trip"}) { userErrors { code } } }"""
        body = await live.api.gql(reverse, {"id": action["id"]}, subject="cm-a0")
        assert body["data"]["reverseAction"]["userErrors"] == []
        assert await balance() == 0  # REVERSAL
        await live.api.gql(RECORD, subway("2025-06-02"), subject="resident-a")
        assert await balance() == 554
        body = await live.api.gql(
            """mutation($o: ID!) { createReward(input: {ownerId: $o, name: "Tea", costCredits: 100,
              stock: 1, validFrom: "2025-01-01"}) { reward { id } userErrors { code } } }""",
            {"o": gid("Community", world.a.communities[0])},
            subject="cm-a0",
        )
        reward = body["data"]["createReward"]["reward"]["id"]
        assert await ws.quiet(0.2) == []  # a new reward is nobody's ledger
        body = await live.api.gql(
            """mutation($r: ID!) { redeemReward(input: {rewardId: $r, idempotencyKey: "k1"}) {
              balance userErrors { code } } }""",
            {"r": reward},
            subject="resident-a",
        )
        assert body["data"]["redeemReward"] == {"balance": 454, "userErrors": []}
        assert await balance() == 454  # REDEMPTION
        policy = """mutation($p: ID!) { setCreditPolicy(input: {programmeId: $p, expiryMonths: 12})
          { userErrors { code } } }"""
        await live.api.gql(policy, {"p": gid("Enterprise", world.a.enterprise)}, subject="org-a")
        async with request_db(engine, write=True) as db:  # as a server-side job would
            assert (await expire_credits(db, date(2099, 1, 1)))["people"] >= 1
        assert await balance() == 0  # EXPIRY


async def test_a_revoked_grant_ends_the_subscription(engine, live):
    from carbongraph.models import RoleGrant

    world = await build_world(engine)
    home = world.a.households[world.a.communities[0]][0]
    person = gid("Individual", world.a.members[home][0])
    async with live.socket() as ws:
        await ws.init(live.api.token("cm-a0"))
        await ws.subscribe("1", CREDITS, {"i": person})
        assert (await ws.receive())["payload"]["data"]["creditsChanged"]["balance"] == 0
        async with engine.begin() as conn:
            table = RoleGrant.__table__
            await conn.execute(table.delete().where(table.c.principal == "cm-a0"))
        body = await live.api.gql(
            RECORD,
            {
                "a": {
                    "individualId": person,
                    "actionType": "SUBWAY_TRIP",
                    "occurredOn": "2025-06-01",
                }
            },
            subject="resident-a",
        )
        assert body["data"]["recordAction"]["userErrors"] == []
        last = await ws.receive(timeout=2)
        assert last["type"] == "next" and last["payload"]["data"] is None
        assert last["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert await ws.receive() == {"id": "1", "type": "complete"}


async def test_unexpected_failures_are_masked(engine, live, monkeypatch):
    import carbongraph.schema.live.subscriptions as live_schema

    async def broken(_db, _pk):
        raise RuntimeError("password=hunter2 in a driver message")

    monkeypatch.setattr(live_schema, "balance", broken)
    world = await build_world(engine)
    person = gid("Individual", world.a.members[world.a.households[world.a.communities[0]][0]][0])
    async with live.socket() as ws:
        await ws.init(live.api.token("resident-a"))
        await ws.subscribe("1", CREDITS, {"i": person})
        failed = await ws.receive()
        error = failed["payload"]["errors"][0]
        assert error["message"] == "Internal server error."
        assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        assert len(error["extensions"]["requestId"]) == 32
        assert "hunter2" not in str(failed)
        assert await ws.receive() == {"id": "1", "type": "complete"}
