"""Who may verify an action (issue 12): verification is a property of the grant, not of the
caller. An action is partner-verified only when the caller's PARTNER_SERVICE grant (or API-key
scope) covers the person's node on the action's date; anything else is a self-report (photo
evidence, self-report caps). ``recordVerifiedActions`` from a caller without such a grant
answers FORBIDDEN (NOT_FOUND where the caller may not know the person exists) per action and
writes nothing. Both backends."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from carbongraph.authz import Role
from carbongraph.models import ActionRecordRow, CreditEntry
from tests.ledger_invariant import assert_ledger_invariant
from tests.test_api_keys import create_key
from tests.world import build_world, gid, grant

AR = ActionRecordRow.__table__
CE = CreditEntry.__table__

RECORD = """mutation($a: RecordActionInput!) { recordAction(input: $a) {
  actions { actionType units status source } userErrors { field code } } }"""
RECORD_VERIFIED = """mutation($a: [RecordActionInput!]!) {
  recordVerifiedActions(input: {actions: $a}) { actions { actionType units status source }
  createdCount unchangedCount userErrors { field code } } }"""
MOVE = """mutation($p: ID!, $h: ID!, $on: Date!) { moveIndividual(input: {individualId: $p,
  householdId: $h, effectiveFrom: $on}) { userErrors { code } } }"""


def trip(person: int, day: str = "2025-06-01", units: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "individualId": gid("Individual", person),
        "actionType": "SUBWAY_TRIP",
        "units": units,
        "occurredOn": day,
        **extra,
    }


async def record(api, subject: str, action: dict[str, Any]) -> dict[str, Any]:
    return (await api.gql(RECORD, {"a": action}, subject=subject))["data"]["recordAction"]


async def verified(api, actions: list[dict[str, Any]], **who: Any) -> dict[str, Any]:
    if "token" in who:
        response = await api.post(RECORD_VERIFIED, {"a": actions}, token=who["token"])
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
    else:
        body = await api.gql(RECORD_VERIFIED, {"a": actions}, subject=who["subject"])
    return body["data"]["recordVerifiedActions"]


def error_codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


async def rows(engine) -> tuple[int, int]:
    async with engine.connect() as conn:
        return (
            int(await conn.scalar(sa.select(sa.func.count()).select_from(AR))),
            int(await conn.scalar(sa.select(sa.func.count()).select_from(CE))),
        )


def member(tenant, community: int = 0, home: int = 0, n: int = 0) -> int:
    return tenant.members[tenant.households[tenant.communities[community]][home]][n]


async def test_a_partner_grant_elsewhere_does_not_verify_your_own_actions(engine, api):
    """A student (resident-a) who also holds a PARTNER_SERVICE grant on a village in another
    tenant: their own actions are self-reports (main: APPROVED / PARTNER at once)."""
    world = await build_world(engine)
    student = member(world.a)
    await grant(engine, "resident-a", Role.PARTNER_SERVICE, "Community", world.b.communities[0])

    plate = await record(
        api,
        "resident-a",
        {
            "individualId": gid("Individual", student),
            "actionType": "CLEAN_PLATE",
            "occurredOn": "2025-06-01",
        },
    )
    assert error_codes(plate) == ["EVIDENCE_REQUIRED"], plate
    answers = [await record(api, "resident-a", trip(student)) for _ in range(3)]
    assert [error_codes(a) for a in answers] == [[], [], ["DAILY_CAP_REACHED"]], answers
    assert [a["actions"][0]["source"] for a in answers[:2]] == ["SELF", "SELF"]
    assert await rows(engine) == (2, 2)
    # Nor may they post their own actions as verified.
    payload = await verified(api, [trip(student, "2025-06-02")], subject="resident-a")
    assert error_codes(payload) == ["FORBIDDEN"], payload
    assert await rows(engine) == (2, 2)
    # The grant does verify where it reaches: a person in that village.
    payload = await verified(api, [trip(member(world.b), units=3)], subject="resident-a")
    assert payload["userErrors"] == [] and payload["actions"][0]["source"] == "PARTNER"
    await assert_ledger_invariant(engine)


async def test_a_resident_calling_record_verified_actions_is_refused_per_action(engine, api):
    world = await build_world(engine)
    me = member(world.a)
    payload = await verified(
        api,
        [trip(me, "2025-06-01"), trip(me, "2025-06-02", externalId="x-2")],
        subject="resident-a",
    )
    assert error_codes(payload) == ["FORBIDDEN", "FORBIDDEN"], payload
    assert [e["field"][:3] for e in payload["userErrors"]] == [
        ["input", "actions", "0"],
        ["input", "actions", "1"],
    ]
    assert payload["actions"] == [] and payload["createdCount"] == 0
    assert await rows(engine) == (0, 0)
    # recordAction is how a resident reports: a self-report within the cap.
    answer = await record(api, "resident-a", trip(me))
    assert answer["userErrors"] == [] and answer["actions"][0]["source"] == "SELF"


async def test_a_partner_grant_on_one_community_does_not_verify_another(engine, api):
    world = await build_world(engine)
    await grant(engine, "partner-c0", Role.PARTNER_SERVICE, "Community", world.a.communities[0])
    # Mixed: manages community 1 and verifies for community 0.
    await grant(engine, "cm-c1", Role.COMMUNITY_MANAGER, "Community", world.a.communities[1])
    await grant(engine, "cm-c1", Role.PARTNER_SERVICE, "Community", world.a.communities[0])
    in_c0, in_c1, in_b = member(world.a, 0), member(world.a, 1), member(world.b)

    # Where the grant reaches: verified, over the self-report cap.
    payload = await verified(api, [trip(in_c0, units=3)], subject="partner-c0")
    assert payload["userErrors"] == [] and payload["actions"][0]["source"] == "PARTNER"
    # Community 1 of the same tenant: FORBIDDEN; another tenant: NOT_FOUND (like a missing ID).
    before = await rows(engine)
    payload = await verified(api, [trip(in_c1, units=3)], subject="partner-c0")
    assert error_codes(payload) == ["FORBIDDEN"], payload
    payload = await verified(api, [trip(in_b, units=3)], subject="partner-c0")
    assert error_codes(payload) == ["NOT_FOUND"], payload
    # The manager of community 1 may record there, but their partner grant on community 0
    # does not make it verified: a self-report, capped; and recordVerifiedActions is refused.
    payload = await verified(api, [trip(in_c1, units=3)], subject="cm-c1")
    assert error_codes(payload) == ["FORBIDDEN"], payload
    assert await rows(engine) == before
    answer = await record(api, "cm-c1", trip(in_c1, units=3))
    assert error_codes(answer) == ["DAILY_CAP_REACHED"], answer
    answer = await record(api, "cm-c1", trip(in_c1, units=2))
    assert answer["userErrors"] == [] and answer["actions"][0]["source"] == "SELF"
    await assert_ledger_invariant(engine)


async def test_verification_follows_the_household_on_the_actions_date(engine, api):
    """A person who moved into community 0 on 2025-06-01: its partner verifies their trips from
    that day on, not before."""
    world = await build_world(engine)
    await grant(engine, "partner-c0", Role.PARTNER_SERVICE, "Community", world.a.communities[0])
    mover = member(world.a, 1)
    home = world.a.households[world.a.communities[0]][1]
    body = await api.gql(
        MOVE,
        {"p": gid("Individual", mover), "h": gid("Household", home), "on": "2025-06-01"},
        subject="org-a",
    )
    assert body["data"]["moveIndividual"]["userErrors"] == []
    payload = await verified(api, [trip(mover, "2025-06-10", units=3)], subject="partner-c0")
    assert payload["userErrors"] == [] and payload["actions"][0]["source"] == "PARTNER"
    payload = await verified(api, [trip(mover, "2025-05-10", units=3)], subject="partner-c0")
    assert error_codes(payload) == ["FORBIDDEN"], payload
    assert (await rows(engine))[0] == 1
    await assert_ledger_invariant(engine)


async def test_an_api_key_verifies_only_within_its_scope(engine, api):
    world = await build_world(engine)
    created = await create_key(
        api, "org-a", "PARTNER_SERVICE", gid("Community", world.a.communities[0])
    )
    assert created["userErrors"] == [], created
    key = created["secret"]
    payload = await verified(api, [trip(member(world.a, 0), units=3)], token=key)
    assert payload["userErrors"] == [] and payload["actions"][0]["source"] == "PARTNER"
    payload = await verified(api, [trip(member(world.a, 1), units=3)], token=key)
    assert error_codes(payload) == ["FORBIDDEN"], payload
    payload = await verified(api, [trip(member(world.b), units=3)], token=key)
    assert error_codes(payload) == ["NOT_FOUND"], payload
    assert (await rows(engine))[0] == 1
    await assert_ledger_invariant(engine)
