"""Local days: "today", "in the future", day buckets and credit expiry follow the community's
time zone (docs/methodology.md, "Local days"), with the clock set rather than patched.

The clock stands at 16:30 UTC on 30 November 2026: 00:30 on 1 December in Asia/Shanghai (a new
day and a new month there), 08:30 on 30 November in America/Los_Angeles, and 30 November in UTC.
"""

from __future__ import annotations

import csv
import dataclasses
from datetime import UTC, date, datetime

import httpx
import pytest
import sqlalchemy as sa

from carbongraph.accounting.importer import import_activities
from carbongraph.actions.expiry import expire_credits
from carbongraph.app import create_app
from carbongraph.clock import FixedClock, LocalDays, local_midnight
from carbongraph.db import create_engine
from carbongraph.models import Community, CreditEntry, Individual
from carbongraph.models.base import utcnow
from tests.conftest import Api
from tests.world import build_world, gid

NOW = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)
LA = "America/Los_Angeles"

ACTIVITY = """mutation($input: RecordActivityInput!) { recordActivity(input: $input) {
  createdCount userErrors { field code } } }"""
ACTION = """mutation($input: RecordActionInput!) { recordAction(input: $input) {
  createdCount userErrors { field code } } }"""
MONTHS = """query($id: ID!) { node(id: $id) { ... on Household {
  nov: footprint(period: {month: "2026-11"}) { gross }
  dec: footprint(period: {month: "2026-12"}) { gross }
  novR: reductions(period: {month: "2026-11"}) { scope3Plus }
  decR: reductions(period: {month: "2026-12"}) { scope3Plus } } } }"""
POLICY = """mutation($p: ID!) { setCreditPolicy(input: {programmeId: $p, expiryMonths: 1}) {
  userErrors { code } } }"""


def test_local_days_at_half_past_midnight_in_shanghai():
    days = LocalDays(NOW)
    assert days.on("Asia/Shanghai") == date(2026, 12, 1)
    assert days.on(LA) == date(2026, 11, 30)
    assert days.on(None) == days.utc == date(2026, 11, 30)
    assert days.latest == date(2026, 12, 1)
    assert local_midnight(date(2026, 12, 1), "Asia/Shanghai") == datetime(
        2026, 11, 30, 16, tzinfo=UTC
    )


@pytest.fixture
async def clocked(engine, app_engine, settings):
    """The API with a clock the test sets, and the world: tenant A in Asia/Shanghai, tenant B
    in America/Los_Angeles, and one person who never belonged to a household."""
    world = await build_world(engine)
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(Community.__table__)
            .where(Community.__table__.c.id.in_(world.b.communities))
            .values(timezone=LA)
        )
        homeless = (
            await conn.execute(
                sa.insert(Individual.__table__)
                .values(display_name="Nomad", created_at=utcnow(), updated_at=utcnow())
                .returning(Individual.__table__.c.id)
            )
        ).scalar_one()
    clock = FixedClock(NOW)
    app = create_app(dataclasses.replace(settings, clock=clock), engine=app_engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Api(client, settings), clock, world, homeless


def _reading(account: str, day: str, ref: str) -> dict:
    return {
        "accountId": account,
        "activityType": "ELECTRICITY",
        "quantity": "10",
        "unit": "kWh",
        "periodStart": day,
        "periodEnd": day,
        "externalId": ref,
    }


def _trip(person: str, day: str) -> dict:
    return {"individualId": person, "actionType": "SUBWAY_TRIP", "units": 1, "occurredOn": day}


async def test_a_reading_of_the_local_today_is_accepted_and_lands_in_the_local_month(clocked):
    api, clock, world, _ = clocked
    shanghai_home = world.a.all_households[0]
    la_home = gid("Household", world.b.all_households[0])
    resident = gid("Individual", world.a.members[shanghai_home][0])

    async def record(account, day, ref):
        body = await api.gql(ACTIVITY, {"input": _reading(account, day, ref)}, subject="admin")
        result = body["data"]["recordActivity"]
        return [e["code"] for e in result["userErrors"]] or result["createdCount"]

    # 1 December has begun in Shanghai (before the fix: FUTURE_PERIOD until 08:00 there).
    assert await record(gid("Household", shanghai_home), "2026-12-01", "sh-1") == 1
    assert await record(resident, "2026-12-01", "sh-2") == 1
    assert await record(gid("Household", shanghai_home), "2026-12-02", "sh-3") == ["FUTURE_PERIOD"]
    # ...but not in Los Angeles.
    assert await record(la_home, "2026-12-01", "la-1") == ["FUTURE_PERIOD"]
    assert await record(la_home, "2026-11-30", "la-2") == 1
    clock.set(datetime(2026, 12, 1, 8, tzinfo=UTC))  # midnight in Los Angeles
    assert await record(la_home, "2026-12-01", "la-1") == 1

    body = await api.gql(MONTHS, {"id": gid("Household", shanghai_home)}, subject="admin")
    months = body["data"]["node"]
    assert months["nov"]["gross"] == 0 and months["dec"]["gross"] > 0


async def test_an_action_of_the_local_today_counts_in_the_local_month(clocked):
    api, clock, world, homeless = clocked
    shanghai_home = world.a.all_households[0]
    shanghai = gid("Individual", world.a.members[shanghai_home][0])
    angeleno = gid("Individual", world.b.all_members[0])
    nomad = gid("Individual", homeless)

    async def record(person, day):
        body = await api.gql(ACTION, {"input": _trip(person, day)}, subject="admin")
        result = body["data"]["recordAction"]
        return [e["code"] for e in result["userErrors"]] or result["createdCount"]

    assert await record(shanghai, "2026-12-01") == 1
    assert await record(shanghai, "2026-12-02") == ["INVALID_DATE"]
    assert await record(angeleno, "2026-12-01") == ["INVALID_DATE"]
    assert await record(angeleno, "2026-11-30") == 1
    # A person who never belonged to a household lives by UTC.
    assert await record(nomad, "2026-12-01") == ["INVALID_DATE"]
    assert await record(nomad, "2026-11-30") == 1
    clock.set(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    assert await record(nomad, "2026-12-01") == 1

    body = await api.gql(MONTHS, {"id": gid("Household", shanghai_home)}, subject="admin")
    months = body["data"]["node"]
    assert (months["novR"]["scope3Plus"], months["decR"]["scope3Plus"]) == (0, 554)


async def test_credits_expire_at_local_midnight(clocked, engine):
    api, _, world, _ = clocked
    for subject, tenant in (("org-a", world.a), ("org-b", world.b)):
        body = await api.gql(POLICY, {"p": gid("Enterprise", tenant.enterprise)}, subject=subject)
        assert body["data"]["setCreditPolicy"]["userErrors"] == []
    shanghai = world.a.all_members[0]
    angeleno = world.b.all_members[0]
    # On 1 December in Shanghai, credits granted before 1 November (local) expire: the grant
    # at 23:59 on 31 October there, not the one at 00:01 on 1 November. In Los Angeles it is
    # 30 November: what was granted before 30 October (local) expires.
    grants = [
        (shanghai, 100, datetime(2026, 10, 31, 15, 59, tzinfo=UTC)),
        (shanghai, 10, datetime(2026, 10, 31, 16, 1, tzinfo=UTC)),
        (angeleno, 200, datetime(2026, 10, 30, 6, 59, tzinfo=UTC)),  # 23:59 on 29 Oct, PDT
        (angeleno, 20, datetime(2026, 10, 30, 7, 1, tzinfo=UTC)),
    ]
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(CreditEntry.__table__),
            [
                {"individual_id": pk, "kind": "GRANT", "amount": amount, "created_at": at}
                for pk, amount, at in grants
            ],
        )
    async with engine.begin() as conn:
        assert await expire_credits(conn, LocalDays(NOW)) == {"people": 2, "credits": 300}
    async with engine.begin() as conn:
        assert await expire_credits(conn, LocalDays(NOW)) == {"people": 0, "credits": 0}
        rows = await conn.execute(
            sa.select(CreditEntry.__table__.c.individual_id, CreditEntry.__table__.c.note).where(
                CreditEntry.__table__.c.kind == "EXPIRY"
            )
        )
        notes = {pk: note for pk, note in rows}
    assert notes == {
        shanghai: "credits granted before 2026-11-01 expired",
        angeleno: "credits granted before 2026-10-30 expired",
    }


async def test_the_import_reads_today_where_the_account_lives(engine, tmp_path):
    world = await build_world(engine)
    home = world.a.all_households[0]
    path = tmp_path / "readings.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(
            handle,
            fieldnames=[
                "account",
                "activity_type",
                "quantity",
                "unit",
                "period_start",
                "period_end",
                "external_id",
            ],
        )
        writer.writeheader()
        writer.writerow(
            {
                "account": f"Household:{home}",
                "activity_type": "ELECTRICITY",
                "quantity": "3",
                "unit": "kWh",
                "period_start": "2026-12-01",
                "period_end": "2026-12-01",
                "external_id": "import-dec-1",
            }
        )
    report = await import_activities(engine, path, clock=FixedClock(NOW))
    assert (report.created, report.batches_failed, report.errors) == (1, 0, [])


@pytest.mark.postgresql_only
async def test_postgresql_sessions_run_in_utc(engine, settings):
    own = create_engine(settings)
    try:
        async with own.connect() as conn:
            assert await conn.scalar(sa.text("SHOW TimeZone")) == "UTC"
    finally:
        await own.dispose()


CREATE_PERSON = """mutation($h: ID!) { createIndividual(input: {displayName: "Newcomer",
  householdId: $h}) { individual { householdHistory { validFrom } } userErrors { code } } }"""
CREATE_REWARD = """mutation($o: ID!) { createReward(input: {ownerId: $o, name: "Bamboo cup",
  costCredits: 100, stock: 5, validFrom: "2026-12-01"}) { reward { id } userErrors { code } } }"""
REDEEM = """mutation($r: ID!) { redeemReward(input: {rewardId: $r, idempotencyKey: "k1"}) {
  balance userErrors { code } } }"""


async def test_a_new_member_joins_on_the_earlier_of_the_local_and_the_utc_day(clocked):
    """00:30 on 1 Dec in Shanghai is 16:30 on 30 Nov in UTC (and 08:30 on 30 Nov in Los
    Angeles): a new member joins on 30 Nov in both, so a reading of Shanghai's 1 Dec counts for
    the home, and the person is current where authorization looks (the UTC date): their own
    manager reads them at once. Joining on the local 1 Dec hid them from a community manager
    until midnight UTC (NOT_FOUND on their name)."""
    api, _, world, _ = clocked
    community = world.a.communities[0]
    cases = (
        (world.a.households[community][0], "cm-a0"),
        (world.b.all_households[0], "admin"),
    )
    for home, subject in cases:
        body = await api.gql(
            CREATE_PERSON.replace("individual {", "individual { displayName"),
            {"h": gid("Household", home)},
            subject=subject,
        )
        assert "errors" not in body, body
        created = body["data"]["createIndividual"]
        assert created["userErrors"] == []
        assert created["individual"]["displayName"] == "Newcomer"
        assert created["individual"]["householdHistory"] == [{"validFrom": "2026-11-30"}]


async def test_a_reward_is_on_offer_from_its_first_local_day(clocked, engine):
    api, _, world, _ = clocked
    community = world.a.communities[0]
    me = world.a.members[world.a.households[community][0]][0]  # resident-a
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(CreditEntry.__table__).values(
                individual_id=me, kind="GRANT", amount=300, created_at=utcnow()
            )
        )
    body = await api.gql(CREATE_REWARD, {"o": gid("Community", community)}, subject="cm-a0")
    reward = body["data"]["createReward"]["reward"]["id"]
    body = await api.gql(REDEEM, {"r": reward}, subject="resident-a")
    assert body["data"]["redeemReward"] == {"balance": 200, "userErrors": []}
