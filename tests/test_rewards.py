"""Rewards: atomic redemption, idempotency, no overdraft, no oversell under concurrency."""

from __future__ import annotations

import asyncio
from datetime import date

import sqlalchemy as sa

from carbongraph.actions.record import ActionInput
from carbongraph.authz import Role
from carbongraph.models import CreditEntry, Reward
from tests.test_actions import _partner_post
from tests.world import build_world, gid, grant

CREATE = """mutation($o: ID!, $stock: Int!) { createReward(input: {ownerId: $o,
  name: "Bamboo cup", costCredits: 500, stock: $stock, validFrom: "2025-01-01"}) {
  reward { id stock } userErrors { code } } }"""
REDEEM = """mutation($r: ID!, $k: String!) { redeemReward(input: {rewardId: $r,
  idempotencyKey: $k}) { redemption { id } balance userErrors { code } } }"""


async def _trips(engine, people, per_person):
    inputs = [
        ActionInput(pk, "SUBWAY_TRIP", 1, date(2025, 1, 1 + d), f"t-{pk}-{d}")
        for pk in people
        for d in range(per_person)
    ]
    result = await _partner_post(engine, inputs)
    assert result.errors == []


async def test_redeem_is_idempotent_and_never_overdraws(engine, api):
    world = await build_world(engine)
    me = world.a.members[world.a.households[world.a.communities[0]][0]][0]
    await _trips(engine, [me], 2)  # 1,108 credits
    body = await api.gql(
        CREATE, {"o": gid("Community", world.a.communities[0]), "stock": 5}, subject="cm-a0"
    )
    reward = body["data"]["createReward"]["reward"]["id"]
    first = (await api.gql(REDEEM, {"r": reward, "k": "k1"}, subject="resident-a"))["data"]
    assert first["redeemReward"]["balance"] == 608
    replay = (await api.gql(REDEEM, {"r": reward, "k": "k1"}, subject="resident-a"))["data"]
    assert replay["redeemReward"]["redemption"] == first["redeemReward"]["redemption"]
    assert replay["redeemReward"]["balance"] == 608  # no double spend
    second = (await api.gql(REDEEM, {"r": reward, "k": "k2"}, subject="resident-a"))["data"]
    assert second["redeemReward"]["balance"] == 108
    broke = (await api.gql(REDEEM, {"r": reward, "k": "k3"}, subject="resident-a"))["data"]
    assert broke["redeemReward"]["userErrors"] == [{"code": "INSUFFICIENT_CREDITS"}]
    other = (await api.gql(REDEEM, {"r": reward, "k": "k4"}, subject="cm-a0"))["data"]
    assert other["redeemReward"]["userErrors"] == [{"code": "FORBIDDEN"}]
    # The ledger explains the balance.
    body = await api.gql(
        """query($i: ID!) { individual(id: $i) { credits { balance
      ledger { kind amount } } } }""",
        {"i": gid("Individual", me)},
        subject="resident-a",
    )
    credits = body["data"]["individual"]["credits"]
    assert credits["balance"] == sum(e["amount"] for e in credits["ledger"]) == 108
    assert [e["kind"] for e in credits["ledger"]] == ["REDEMPTION", "REDEMPTION", "GRANT", "GRANT"]
    body = await api.gql(
        "query($o: ID!) { rewards(ownerId: $o) { totalCount edges { node { stock } } } }",
        {"o": gid("Community", world.a.communities[0])},
        subject="resident-a",
    )
    assert body["data"]["rewards"] == {"totalCount": 1, "edges": [{"node": {"stock": 3}}]}


async def test_100_concurrent_redemptions_neither_oversell_nor_overdraw(engine, api):
    world = await build_world(engine, communities=5, households=10, members=2)
    people = world.a.all_members  # 100 people
    for pk in people:
        await grant(engine, f"r{pk}", Role.RESIDENT, "Individual", pk)
    await _trips(engine, people, 3)  # 1,662 credits each
    body = await api.gql(
        CREATE, {"o": gid("Enterprise", world.a.enterprise), "stock": 30}, subject="org-a"
    )
    reward = body["data"]["createReward"]["reward"]["id"]
    # 100 people at once for 30 cups; one of them also tries 19 more times at once.
    calls = [api.gql(REDEEM, {"r": reward, "k": f"{pk}-a"}, subject=f"r{pk}") for pk in people]
    calls += [
        api.gql(REDEEM, {"r": reward, "k": f"{people[0]}-{n}"}, subject=f"r{people[0]}")
        for n in range(19)
    ]
    results = [r["data"]["redeemReward"] for r in await asyncio.gather(*calls)]
    ok = [r for r in results if r["redemption"]]
    codes = sorted({e["code"] for r in results for e in r["userErrors"]})
    assert len(ok) == 30
    assert set(codes) <= {"OUT_OF_STOCK", "INSUFFICIENT_CREDITS"}
    async with engine.connect() as conn:
        stock = await conn.scalar(sa.select(Reward.__table__.c.stock))
        balances = dict(
            list(
                await conn.execute(
                    sa.select(
                        CreditEntry.__table__.c.individual_id,
                        sa.func.sum(CreditEntry.__table__.c.amount),
                    ).group_by(CreditEntry.__table__.c.individual_id)
                )
            )
        )
    assert stock == 0
    assert min(balances.values()) >= 0
    assert balances[people[0]] >= 1662 - 3 * 500  # at most three cups for the eager one
