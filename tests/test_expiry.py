"""Credit expiry per programme: oldest first, appended entries, safe to repeat."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from carbongraph.actions.expiry import expire_credits, months_before
from carbongraph.actions.record import ActionInput
from carbongraph.models import CreditEntry
from carbongraph.models.base import utcnow
from tests.test_actions import _partner_post
from tests.world import build_world, gid

POLICY = """mutation($p: ID!, $m: Int) { setCreditPolicy(input: {programmeId: $p,
  expiryMonths: $m}) { policy { expiryMonths } userErrors { code } } }"""


def test_months_before():
    assert months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert months_before(date(2026, 1, 15), 12) == date(2025, 1, 15)


async def test_expiry_is_per_programme_and_repeatable(engine, api):
    world = await build_world(engine)
    person = world.a.all_members[0]
    other = world.b.all_members[0]
    body = await api.gql(
        POLICY, {"p": gid("Enterprise", world.a.enterprise), "m": 12}, subject="org-a"
    )
    assert body["data"]["setCreditPolicy"] == {"policy": {"expiryMonths": 12}, "userErrors": []}
    body = await api.gql(
        POLICY, {"p": gid("Community", world.a.communities[0]), "m": 12}, subject="org-a"
    )
    assert body["data"]["setCreditPolicy"]["userErrors"] == [{"code": "INVALID"}]
    await _partner_post(engine, [ActionInput(person, "SUBWAY_TRIP", 3, date(2025, 1, 1), "e1")])
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(CreditEntry.__table__).values(
                individual_id=other,
                kind="GRANT",
                amount=100,
                note="B has no policy",
                created_at=utcnow(),
            )
        )
    # Nothing is due a year minus a day later; everything unspent is due after that.
    async with engine.begin() as conn:
        assert await expire_credits(conn, date.today()) == {"people": 0, "credits": 0}
    async with engine.begin() as conn:
        assert await expire_credits(conn, date(2099, 1, 1)) == {"people": 1, "credits": 1662}
    async with engine.begin() as conn:
        assert await expire_credits(conn, date(2099, 1, 1)) == {"people": 0, "credits": 0}
    body = await api.gql(
        """query($i: ID!) { individual(id: $i) { credits { balance
      ledger(first: 1) { kind amount } } } }""",
        {"i": gid("Individual", person)},
        subject="admin",
    )
    assert body["data"]["individual"]["credits"] == {
        "balance": 0,
        "ledger": [{"kind": "EXPIRY", "amount": -1662}],
    }
