"""Low-carbon actions: credits, caps, idempotent partner posts, reductions roll-up."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from carbongraph.actions.record import ActionInput, record_actions
from carbongraph.authz import Principal
from carbongraph.config import Settings
from carbongraph.db import request_db
from carbongraph.models import ActionRecordRow, CreditEntry, FootprintTotal
from carbongraph.resolvers.context import build_context
from tests.world import build_world, gid

SUBWAY = 554


async def _partner_post(engine, inputs):
    settings = Settings.from_env(database_url=engine.url.render_as_string(hide_password=False))
    async with request_db(engine, write=True) as db:
        ctx = await build_context(settings, db, Principal("partner-a"))
        async with db.savepoint():
            return await record_actions(
                db, inputs, today=ctx.today, viewer=ctx.viewer, recorded_by="partner-a"
            )


async def _state(engine):
    T = FootprintTotal.__table__
    async with engine.connect() as conn:
        return (
            await conn.scalar(sa.select(sa.func.count()).select_from(ActionRecordRow)),
            await conn.scalar(sa.select(sa.func.count()).select_from(CreditEntry)),
            await conn.scalar(
                sa.select(sa.func.sum(T.c.location_g)).where(
                    T.c.kind == "reduction", T.c.node == "P"
                )
            ),
        )


async def test_partner_bulk_post_of_10000_subway_trips_is_idempotent(engine, api):
    world = await build_world(engine, communities=5, households=10, members=2)
    people = world.a.all_members  # 100 people × 100 days
    start = date(2025, 1, 1)
    inputs = [
        ActionInput(pk, "SUBWAY_TRIP", 1, start + timedelta(days=d), f"metro-{pk}-{d}")
        for pk in people
        for d in range(100)
    ]
    assert len(inputs) == 10_000
    first = await _partner_post(engine, inputs)
    assert first.errors == [] and len(first.created) == 10_000
    state = await _state(engine)
    assert state == (10_000, 10_000, 10_000 * SUBWAY)
    replay = await _partner_post(engine, inputs)
    assert replay.errors == [] and replay.created == [] and len(replay.unchanged) == 10_000
    assert await _state(engine) == state
    # Reductions reach every level, reported as Scope 3+ and never netted.
    query = """query($c: ID!, $e: ID!, $i: ID!) {
      community(id: $c) { reductions(period: {year: 2025}) { scope3Plus totalWithinScopes }
        footprint(period: {year: 2025}) { gross net scope3Plus } }
      enterprise(id: $e) { reductions(period: {year: 2025}) { scope3Plus } }
      individual(id: $i) { credits { balance ledger(first: 2) { kind amount note } } } }"""
    body = await api.gql(
        query,
        {
            "c": gid("Community", world.a.communities[0]),
            "e": gid("Enterprise", world.a.enterprise),
            "i": gid("Individual", people[0]),
        },
        subject="org-a",
    )
    data = body["data"]
    per_community = 20 * 100 * SUBWAY  # 10 homes × 2 people × 100 days
    assert data["community"]["reductions"] == {"scope3Plus": per_community, "totalWithinScopes": 0}
    assert data["community"]["footprint"] == {"gross": 0, "net": 0, "scope3Plus": per_community}
    assert data["enterprise"]["reductions"]["scope3Plus"] == 10_000 * SUBWAY
    credits = data["individual"]["credits"]
    assert credits["balance"] == 100 * SUBWAY
    assert credits["ledger"] == [{"kind": "GRANT", "amount": SUBWAY, "note": "SUBWAY_TRIP"}] * 2


async def test_a_partner_cannot_post_for_another_tenant(engine):
    world = await build_world(engine)
    outsider = world.b.all_members[0]
    result = await _partner_post(
        engine, [ActionInput(outsider, "SUBWAY_TRIP", 1, date(2025, 1, 1), "x-1")]
    )
    assert [e.code for e in result.errors] == ["NOT_FOUND"]
    assert (await _state(engine))[0] == 0


RECORD = """mutation($a: RecordActionInput!) { recordAction(input: $a) {
  actions { actionType units status credits avoidedGrams source }
  userErrors { field code message } } }"""


async def test_self_reported_actions_caps_and_evidence(engine, api):
    world = await build_world(engine)
    me = gid("Individual", world.a.members[world.a.households[world.a.communities[0]][0]][0])
    day = "2025-06-01"

    async def record(action, units, subject="resident-a", who=me):
        body = await api.gql(
            RECORD,
            {"a": {"individualId": who, "actionType": action, "units": units, "occurredOn": day}},
            subject=subject,
        )
        return body["data"]["recordAction"]

    ok = await record("CYCLING_KM", 5)
    assert ok["userErrors"] == []
    assert ok["actions"] == [
        {
            "actionType": "CYCLING_KM",
            "units": 5,
            "status": "APPROVED",
            "credits": 800,
            "avoidedGrams": 800,
            "source": "SELF",
        }
    ]
    capped = await record("CYCLING_KM", 6)  # self-report cap is 10 km a day
    assert [e["code"] for e in capped["userErrors"]] == ["DAILY_CAP_REACHED"]
    photo = await record("CLEAN_PLATE", 1)
    assert [e["code"] for e in photo["userErrors"]] == ["EVIDENCE_REQUIRED"]
    unknown = await record("TELEPORT", 1)
    assert [e["code"] for e in unknown["userErrors"]] == ["ACTION_NOT_ALLOWED"]
    other = gid("Individual", world.a.members[world.a.households[world.a.communities[0]][1]][0])
    forbidden = await record("CYCLING_KM", 1, who=other)
    assert [e["code"] for e in forbidden["userErrors"]] == ["FORBIDDEN"]
    body = await api.gql(
        "query($i: ID!) { individual(id: $i) { credits { balance } } }",
        {"i": me},
        subject="resident-a",
    )
    assert body["data"]["individual"]["credits"]["balance"] == 800
    # Credits are personal: an ESG analyst does not see them.
    body = await api.gql(
        "query($i: ID!) { individual(id: $i) { credits { balance } } }",
        {"i": me},
        subject="esg-a",
        allow_errors=True,
    )
    assert body["data"]["individual"]["credits"] is None


async def test_commuting_is_scope_3_category_7_through_the_employer(engine, api):
    world = await build_world(engine)
    employee = world.employees_a[0]  # works for A, lives in B's tenant
    body = await api.gql(
        RECORD,
        {
            "a": {
                "individualId": gid("Individual", employee),
                "actionType": "SUBWAY_TRIP",
                "units": 2,
                "occurredOn": "2025-06-01",
            }
        },
        subject="admin",
    )
    assert body["data"]["recordAction"]["userErrors"] == []
    query = """query($a: ID!, $b: ID!) {
      a: enterprise(id: $a) { via: reductions(period: {year: 2025}, via: EMPLOYEES) {
        scope3 scope3Plus } own: reductions(period: {year: 2025}) { scope3 scope3Plus } }
      b: enterprise(id: $b) { reductions(period: {year: 2025}) { scope3 scope3Plus } } }"""
    body = await api.gql(
        query,
        {"a": gid("Enterprise", world.a.enterprise), "b": gid("Enterprise", world.b.enterprise)},
        subject="admin",
    )
    data = body["data"]
    assert data["a"]["via"] == {"scope3": 2 * SUBWAY, "scope3Plus": 0}
    assert data["a"]["own"] == {"scope3": 0, "scope3Plus": 0}
    assert data["b"]["reductions"] == {"scope3": 0, "scope3Plus": 2 * SUBWAY}


async def test_platform_admins_publish_new_action_type_versions(engine, api):
    await build_world(engine)
    publish = """mutation($c: Int!) { publishActionType(input: {code: "SUBWAY_TRIP",
      methodology: "carbongraph-2027.1", name: "Subway trip", unit: "trip",
      creditsPerUnit: $c, avoidedGramsPerUnit: $c, scope: SCOPE_3_PLUS, employerScope: SCOPE_3,
      employerCategory: 7, dailyCap: 6, evidence: PARTNER, selfReportCap: 2,
      validFrom: "2027-01-01", citation: "revised per-trip factor"}) {
      actionType { code version creditsPerUnit } userErrors { code } } }"""
    body = await api.gql(publish, {"c": 600}, subject="org-a")
    assert body["data"]["publishActionType"]["userErrors"] == [{"code": "FORBIDDEN"}]
    body = await api.gql(publish, {"c": 600}, subject="admin")
    assert body["data"]["publishActionType"]["actionType"] == {
        "code": "SUBWAY_TRIP",
        "version": 2,
        "creditsPerUnit": 600,
    }
    body = await api.gql("{ actionTypes { code version } }", subject="org-a")
    versions = [t["version"] for t in body["data"]["actionTypes"] if t["code"] == "SUBWAY_TRIP"]
    assert versions == [2, 1]
