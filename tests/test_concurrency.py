"""Writers under concurrency (issue 12): one lock discipline for credits, caps, idempotency keys,
meter periods and action-type versions.

PostgreSQL cases drive the real app in-process (httpx over ASGI, the application role under
row-level security) with 50 requests fired at once; each ends with the ledger invariant
(tests/ledger_invariant.py). SQLite cases check that the write mode of a request comes from the
parsed operation and that the CLI's writers take the write lock up front.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from carbongraph.actions.expiry import expire_credits
from carbongraph.actions.record import ActionInput
from carbongraph.authz import Role
from carbongraph.config import Settings
from carbongraph.db import create_engine
from carbongraph.models import ActionRecordRow, CreditEntry
from carbongraph.models.accounting import ActivityRecord
from carbongraph.schema.relay import decode_global_id
from tests.accounting_world import RECORD as RECORD_ACTIVITIES
from tests.accounting_world import activity, build_village
from tests.conftest import REPO
from tests.ledger_invariant import assert_ledger_invariant, read_ledger
from tests.test_actions import _partner_post
from tests.test_live import REVIEW, pending_clean_plate
from tests.world import build_world, gid, grant

N = 50
AR = ActionRecordRow.__table__
CE = CreditEntry.__table__

REVERSE = """mutation($id: ID!) { reverseAction(input: {actionId: $id, decision: APPROVE,
  reason: "found to be false"}) { action { status } userErrors { code message } } }"""
RECORD = """mutation($a: RecordActionInput!) { recordAction(input: $a) {
  actions { id status units source } createdCount unchangedCount
  userErrors { field code message } } }"""
RECORD_VERIFIED = """mutation($a: [RecordActionInput!]!) {
  recordVerifiedActions(input: {actions: $a}) { actions { id status source } createdCount
  unchangedCount userErrors { field code message } } }"""
CREATE_REWARD = """mutation($o: ID!, $stock: Int!) { createReward(input: {ownerId: $o,
  name: "Bamboo cup", costCredits: 500, stock: $stock, validFrom: "2025-01-01"}) {
  reward { id } userErrors { code } } }"""
REDEEM = """mutation($r: ID!, $k: String!) { redeemReward(input: {rewardId: $r,
  idempotencyKey: $k}) { redemption { id } balance userErrors { code } } }"""
POLICY = """mutation($p: ID!) { setCreditPolicy(input: {programmeId: $p, expiryMonths: 12}) {
  userErrors { code } } }"""
PUBLISH = """mutation($code: String!, $c: Int!) { publishActionType(input: {code: $code,
  methodology: "carbongraph-2027.1", name: "Subway trip", unit: "trip", creditsPerUnit: $c,
  avoidedGramsPerUnit: $c, scope: SCOPE_3_PLUS, employerScope: SCOPE_3, employerCategory: 7,
  dailyCap: 6, evidence: PARTNER, selfReportCap: 2, validFrom: "2027-01-01",
  citation: "revision"}) {
  actionType { code version creditsPerUnit } userErrors { code message } } }"""

# The code the lead adds for a decision on an action that is no longer in the state asked for.
ALREADY_DECIDED = "ALREADY_DECIDED"

pg = pytest.mark.postgresql_only


@pytest.fixture(autouse=True)
def evidence_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CARBONGRAPH_EVIDENCE_DIR", str(tmp_path / "evidence"))


async def fire(calls: list[Any]) -> list[dict[str, Any]]:
    """Fire every request at once; each answer's JSON (a 500 fails the case)."""
    responses = await asyncio.gather(*calls)
    bodies = []
    for response in responses:
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        bodies.append(body)
    return bodies


def codes(payloads: list[dict[str, Any]]) -> Counter[str]:
    """How many answers were ok, and how many carried each userError code (first one)."""
    return Counter(p["userErrors"][0]["code"] if p["userErrors"] else "ok" for p in payloads)


def first_member(world) -> int:
    return world.a.members[world.a.households[world.a.communities[0]][0]][0]


async def count(engine, statement) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(statement) or 0)


# 1. Two managers approve one pending photo action 50 times at once.
async def approve_concurrently(api, engine, person: int, managers: list[str]) -> None:
    """One pending photo action of ``person``, approved 50 times at once by ``managers``."""
    action = await pending_clean_plate(api, "resident-a", gid("Individual", person))
    pk = decode_global_id(action, ["ActionRecord"])[1]
    tokens = [api.token(s) for s in managers]
    bodies = await fire(
        [api.post(REVIEW, {"id": action}, token=tokens[n % len(tokens)]) for n in range(N)]
    )
    answers = codes([b["data"]["reviewAction"] for b in bodies])
    ledger = await read_ledger(engine)
    grants = ledger.grants[pk]
    assert grants == 1, f"{grants} GRANT entries for one approved action; answers {answers}"
    assert answers == Counter({"ok": 1, ALREADY_DECIDED: N - 1}), answers
    await assert_ledger_invariant(engine)


@pg
async def test_two_managers_approving_one_action_50_times_grant_once(engine, api):
    world = await build_world(engine)
    await grant(engine, "cm-a0-second", Role.COMMUNITY_MANAGER, "Community", world.a.communities[0])
    await approve_concurrently(api, engine, first_member(world), ["cm-a0", "cm-a0-second"])
    assert (await read_ledger(engine)).balances == {first_member(world): 200}


# 2. 50 reversals of one approved action at once.
@pg
async def test_50_concurrent_reversals_reverse_once(engine, api):
    world = await build_world(engine)
    await grant(engine, "cm-a0-second", Role.COMMUNITY_MANAGER, "Community", world.a.communities[0])
    student = gid("Individual", first_member(world))
    action = await pending_clean_plate(api, "resident-a", student)
    body = await api.gql(REVIEW, {"id": action}, subject="cm-a0")
    assert body["data"]["reviewAction"]["userErrors"] == []
    tokens = [api.token("cm-a0"), api.token("cm-a0-second")]
    bodies = await fire([api.post(REVERSE, {"id": action}, token=tokens[n % 2]) for n in range(N)])
    answers = codes([b["data"]["reverseAction"] for b in bodies])
    ledger = await read_ledger(engine)
    reversals = sum(ledger.reversals.values())
    assert reversals == 1, f"{reversals} REVERSAL entries for one action; answers {answers}"
    assert answers == Counter({"ok": 1, ALREADY_DECIDED: N - 1}), answers
    await assert_ledger_invariant(engine)
    assert ledger.balances == {first_member(world): 0}


# 3. Caps: 50 self-reports of one person and day; 50 verified posts over the daily cap.
async def self_report_concurrently(api, engine, person: int, day: str) -> None:
    """50 self-reported subway trips of ``person`` (resident-a) on ``day`` at once."""
    token = api.token("resident-a")
    trip = {
        "individualId": gid("Individual", person),
        "actionType": "SUBWAY_TRIP",
        "units": 1,
        "occurredOn": day,
    }
    bodies = await fire([api.post(RECORD, {"a": trip}, token=token) for _ in range(N)])
    answers = codes([b["data"]["recordAction"] for b in bodies])
    trips = await count(
        engine,
        sa.select(sa.func.sum(AR.c.units)).where(
            AR.c.individual_id == person, AR.c.occurred_on == date.fromisoformat(day)
        ),
    )
    cap = 2  # SUBWAY_TRIP's self-report cap a day
    assert trips == cap, f"{trips} self-reported trips accepted (cap {cap}); answers {answers}"
    assert answers == Counter({"ok": cap, "DAILY_CAP_REACHED": N - cap}), answers
    await assert_ledger_invariant(engine)


@pg
async def test_50_concurrent_self_reports_meet_the_self_report_cap(engine, api):
    world = await build_world(engine)
    await self_report_concurrently(api, engine, first_member(world), "2025-06-01")


@pg
async def test_50_concurrent_verified_posts_meet_the_daily_cap(engine, api):
    world = await build_world(engine)
    me = gid("Individual", first_member(world))
    token = api.token("partner-a")
    bodies = await fire(
        [
            api.post(
                RECORD_VERIFIED,
                {
                    "a": [
                        {
                            "individualId": me,
                            "actionType": "SUBWAY_TRIP",
                            "occurredOn": "2025-06-01",
                            "externalId": f"metro-{n}",
                        }
                    ]
                },
                token=token,
            )
            for n in range(N)
        ]
    )
    answers = codes([b["data"]["recordVerifiedActions"] for b in bodies])
    trips = await count(engine, sa.select(sa.func.sum(AR.c.units)))
    cap = 6  # SUBWAY_TRIP's daily cap
    assert trips == cap, f"{trips} verified trips accepted (daily cap {cap}); answers {answers}"
    assert answers == Counter({"ok": cap, "DAILY_CAP_REACHED": N - cap}), answers
    await assert_ledger_invariant(engine)


# 4. 50 replays of one verified batch at once.
@pg
async def test_50_concurrent_replays_of_one_batch_create_it_once(engine, api):
    world = await build_world(engine)
    people = world.a.members[world.a.households[world.a.communities[0]][0]]
    batch = [
        {
            "individualId": gid("Individual", pk),
            "actionType": "SUBWAY_TRIP",
            "occurredOn": f"2025-06-0{day}",
            "externalId": f"metro-{pk}-{day}",
        }
        for pk in people
        for day in (1, 2)
    ]
    token = api.token("partner-a")
    bodies = await fire([api.post(RECORD_VERIFIED, {"a": batch}, token=token) for _ in range(N)])
    payloads = [b["data"]["recordVerifiedActions"] for b in bodies]
    answers = Counter(
        (p["createdCount"], p["unchangedCount"], tuple(e["code"] for e in p["userErrors"]))
        for p in payloads
    )
    rows = await count(engine, sa.select(sa.func.count()).select_from(AR))
    assert rows == len(batch)
    assert answers == Counter({(len(batch), 0, ()): 1, (0, len(batch), ()): N - 1}), answers
    ids = {tuple(sorted(a["id"] for a in p["actions"])) for p in payloads}
    assert len(ids) == 1  # every answer lists the same stored actions
    await assert_ledger_invariant(engine)


# 5. Credit expiry while 50 redemptions run.
@pg
async def test_credit_expiry_during_50_redemptions_never_overdraws(engine, api, settings):
    world = await build_world(engine, communities=5, households=5, members=2)
    people = world.a.all_members  # 50 people
    assert len(people) == N
    for pk in people:
        await grant(engine, f"r{pk}", Role.RESIDENT, "Individual", pk)
    await _partner_post(
        engine,
        [ActionInput(pk, "SUBWAY_TRIP", 2, date(2025, 1, 1), f"t-{pk}") for pk in people],
    )  # 1,108 credits each
    body = await api.gql(POLICY, {"p": gid("Enterprise", world.a.enterprise)}, subject="org-a")
    assert body["data"]["setCreditPolicy"]["userErrors"] == []
    body = await api.gql(
        CREATE_REWARD, {"o": gid("Enterprise", world.a.enterprise), "stock": 2 * N}, subject="org-a"
    )
    reward = body["data"]["createReward"]["reward"]["id"]

    # The job as the CLI runs it: a system engine of its own, one transaction per run, as of a
    # day when every grant is due. It runs again and again while the redemptions land.
    job = create_engine(settings, system=True)
    stop = asyncio.Event()
    runs: list[dict[str, int]] = []

    async def expiry_job() -> None:
        while not stop.is_set():
            async with job.begin() as conn:
                runs.append(await expire_credits(conn, date(2099, 1, 1)))
            await asyncio.sleep(0)

    async def redemptions() -> list[dict[str, Any]]:
        await asyncio.sleep(0.01)
        try:
            keys = [(pk, f"{pk}-{n}") for n in range(2) for pk in people][:N] + [
                (pk, f"{pk}-x") for pk in people[: N // 2]
            ]
            return await fire(
                [
                    api.post(REDEEM, {"r": reward, "k": key}, token=api.token(f"r{pk}"))
                    for pk, key in keys
                ]
            )
        finally:
            stop.set()

    try:
        _, bodies = await asyncio.gather(expiry_job(), redemptions())
    finally:
        await job.dispose()
    answers = codes([b["data"]["redeemReward"] for b in bodies])
    assert set(answers) <= {"ok", "INSUFFICIENT_CREDITS"}, answers
    ledger = await read_ledger(engine)
    overdrawn = sorted(v for v in ledger.balances.values() if v < 0)
    assert overdrawn == [], f"{len(overdrawn)} balances below zero: {overdrawn}; runs {len(runs)}"
    await assert_ledger_invariant(engine)


# 6. Overlapping readings of one meter at once.
@pg
async def test_concurrent_overlapping_meter_readings_accept_one(engine, api):
    village = await build_village(engine)
    home = gid("Household", village.household)
    token = api.token("manager")
    readings = [
        activity(
            home,
            "ELECTRICITY",
            str(100 + n),
            "kWh",
            "2023-05-01",
            f"2023-05-{10 + n % 20:02d}",
            meterRef="meter-1",
            externalId=f"reading-{n}",
        )
        for n in range(N)
    ]
    bodies = await fire(
        [api.post(RECORD_ACTIVITIES, {"records": [reading]}, token=token) for reading in readings]
    )
    answers = codes([b["data"]["recordActivities"] for b in bodies])
    stored = await count(engine, sa.select(sa.func.count()).select_from(ActivityRecord.__table__))
    assert stored == 1, f"{stored} overlapping readings of one meter accepted; answers {answers}"
    assert answers == Counter({"ok": 1, "OVERLAPPING_PERIOD": N - 1}), answers
    body = await api.gql(
        """query($h: ID!) { household(id: $h) { footprint(period: {month: "2023-05"}) {
          recordCount } } }""",
        {"h": home},
        subject="manager",
    )
    assert body["data"]["household"]["footprint"]["recordCount"] == 1
    await assert_ledger_invariant(engine)


# 7. Concurrent publishes of one action type code.
@pg
async def test_concurrent_publishes_of_one_code_each_get_a_version(engine, api):
    await build_world(engine)
    token = api.token("admin")
    bodies = await fire(
        [api.post(PUBLISH, {"code": "SUBWAY_TRIP", "c": 600 + n}, token=token) for n in range(N)]
    )
    payloads = [b["data"]["publishActionType"] for b in bodies]
    answers = codes(payloads)
    assert answers == Counter({"ok": N}), answers
    published = {p["actionType"]["creditsPerUnit"]: p["actionType"]["version"] for p in payloads}
    assert sorted(published) == [600 + n for n in range(N)]
    assert sorted(published.values()) == list(range(2, N + 2))
    body = await api.gql("{ actionTypes { code version } }", subject="admin")
    versions = [t["version"] for t in body["data"]["actionTypes"] if t["code"] == "SUBWAY_TRIP"]
    assert sorted(versions) == list(range(1, N + 2))
    await assert_ledger_invariant(engine)


async def test_a_code_with_spaces_is_versioned_like_the_stripped_code(engine, api):
    """The version was read for the code as sent and written for the stripped code."""
    await build_world(engine)
    body = await api.gql(PUBLISH, {"code": " SUBWAY_TRIP ", "c": 600}, subject="admin")
    payload = body["data"]["publishActionType"]
    assert payload["userErrors"] == []
    assert payload["actionType"] == {"code": "SUBWAY_TRIP", "version": 2, "creditsPerUnit": 600}


# SQLite: the write mode of a request comes from the parsed operation.
def escaped_mutation(query: str, variables: dict[str, Any]) -> bytes:
    """The JSON body with the keyword spelled ``\\u006dutation``: the same operation."""
    body = json.dumps({"query": query, "variables": variables})
    escaped = body.replace("mutation", "\\u006dutation")
    assert "mutation" not in escaped and json.loads(escaped) == json.loads(body)
    return escaped.encode()


async def test_an_escaped_mutation_keyword_still_runs_as_a_write(engine, api):
    """``\\u006dutation`` in the JSON body is the keyword ``mutation``: the request writes, so on
    SQLite it must take the write lock at BEGIN like any other mutation, and it must succeed
    while other writers run (a read transaction upgraded to a write fails with 'database is
    locked' as soon as another writer has committed since it began)."""
    world = await build_world(engine, communities=5, households=5, members=2)
    people = world.a.all_members
    for pk in people:
        await grant(engine, f"r{pk}", Role.RESIDENT, "Individual", pk)

    def post(pk: int, escaped: bool):
        variables = {
            "a": {
                "individualId": gid("Individual", pk),
                "actionType": "CYCLING_KM",
                "units": 1,
                "occurredOn": "2025-06-01",
            }
        }
        if not escaped:
            return api.post(RECORD, variables, token=api.token(f"r{pk}"))
        return api.client.post(
            "/graphql",
            content=escaped_mutation(RECORD, variables),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {api.token(f'r{pk}')}",
            },
        )

    responses = await asyncio.gather(*[post(pk, n % 2 == 0) for n, pk in enumerate(people)])
    failures = [r.text[:300] for r in responses if r.status_code != 200 or "errors" in r.json()]
    assert failures == [], f"{len(failures)} of {len(people)} failed: {failures[:3]}"
    payloads = [r.json()["data"]["recordAction"] for r in responses]
    assert codes(payloads) == Counter({"ok": len(people)})
    assert await count(engine, sa.select(sa.func.count()).select_from(AR)) == len(people)
    await assert_ledger_invariant(engine)


# SQLite: the CLI's writers take the write lock up front and succeed while requests write.
def cli(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "carbongraph.cli", *args],
        cwd=REPO,
        env={**os.environ, "CARBONGRAPH_DATABASE_URL": settings.database_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def burst(api, people: list[int], day: int) -> int:
    """One self-report per person for ``day`` days after 2024-01-01, all at once."""
    bodies = await fire(
        [
            api.post(
                RECORD,
                {
                    "a": {
                        "individualId": gid("Individual", pk),
                        "actionType": "CYCLING_KM",
                        "units": 1,
                        "occurredOn": date.fromordinal(
                            date(2024, 1, 1).toordinal() + day
                        ).isoformat(),
                    }
                },
                token=api.token(f"r{pk}"),
            )
            for pk in people
        ]
    )
    assert all(b["data"]["recordAction"]["userErrors"] == [] for b in bodies)
    return len(bodies)


# Few enough that none of them waits out SQLite's busy timeout on a loaded machine, enough that
# a commit lands during the CLI's transaction.
WRITERS = 4


async def burst_until_done(api, people: list[int], process: subprocess.Popen[bytes]) -> int:
    """Writers without a pause until the CLI process exits: one per person, each recording a
    new day after the other, so that some request commits while the CLI's transaction runs."""
    sent = 0

    async def writer(pk: int) -> None:
        nonlocal sent
        token = api.token(f"r{pk}")
        for day in range(100, 400):
            if process.poll() is not None:
                return
            on = date.fromordinal(date(2024, 1, 1).toordinal() + day).isoformat()
            action = {"individualId": gid("Individual", pk), "actionType": "CYCLING_KM"}
            (body,) = await fire(
                [api.post(RECORD, {"a": {**action, "occurredOn": on}}, token=token)]
            )
            assert body["data"]["recordAction"]["userErrors"] == [], body
            sent += 1

    await asyncio.gather(*(writer(pk) for pk in people))
    return sent


def failure(sent: int, process: subprocess.Popen[bytes], out: bytes, err: bytes) -> str:
    lines = (out + err).decode(errors="replace").splitlines()
    errors = [line[:200] for line in lines if "Error" in line][:3] or lines[-3:]
    return f"exit {process.returncode} after {sent} concurrent requests: {errors}"


async def test_credits_expire_succeeds_during_a_burst_of_writes(engine, api, settings):
    world = await build_world(engine, communities=1, households=5, members=2)
    people = world.a.all_members
    for pk in people:
        await grant(engine, f"r{pk}", Role.RESIDENT, "Individual", pk)
    body = await api.gql(POLICY, {"p": gid("Enterprise", world.a.enterprise)}, subject="org-a")
    assert body["data"]["setCreditPolicy"]["userErrors"] == []
    for day in range(3):  # something to expire
        await burst(api, people, day)
    process = cli(settings, "credits", "expire", "--date", "2099-01-01")
    sent = await burst_until_done(api, people[:WRITERS], process)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, failure(sent, process, out, err)
    assert out.decode().startswith("expired ")
    await assert_ledger_invariant(engine)


async def test_import_activities_succeeds_during_a_burst_of_writes(engine, api, settings, tmp_path):
    world = await build_world(engine, communities=1, households=5, members=2)
    people = world.a.all_members
    for pk in people:
        await grant(engine, f"r{pk}", Role.RESIDENT, "Individual", pk)
    homes = world.a.all_households
    rows = ["account,activity_type,quantity,unit,period_start,period_end,external_id"]
    for n, home in enumerate(homes):
        for month in range(1, 13):
            rows.append(
                f"Household:{home},ELECTRICITY,{100 + n},kWh,2024-{month:02d}-01,"
                f"2024-{month:02d}-28,imp-{home}-{month}"
            )
    csv = tmp_path / "activities.csv"
    csv.write_text("\n".join(rows) + "\n")
    process = cli(settings, "import", "activities", str(csv), "--batch-size", "10")
    sent = await burst_until_done(api, people[:WRITERS], process)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, failure(sent, process, out, err)
    stored = await count(engine, sa.select(sa.func.count()).select_from(ActivityRecord.__table__))
    assert stored == len(rows) - 1
    await assert_ledger_invariant(engine)
