"""Rewards and atomic redemption.

A redemption takes the person's lock (locks.py: the account row, PostgreSQL ``FOR NO KEY
UPDATE``; SQLite serialises writers), checks the balance, takes one unit of stock with a
conditional ``UPDATE … WHERE stock > 0``, and appends a REDEMPTION entry — in one
transaction. Every redemption locks the person first and the reward second, so concurrent ones
cannot deadlock, the balance never goes negative and the stock never goes negative (a CHECK
constraint backs the latter). The same idempotency key returns the same redemption and never
spends twice.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from carbongraph.actions.record import balance
from carbongraph.actions.tables import CE
from carbongraph.errors import MutationFailed, UserErrorCode
from carbongraph.live import publish as live
from carbongraph.locks import dialect_name, lock_people
from carbongraph.models.base import insert_row, utcnow
from carbongraph.models.tables import CPY, RD, RW


async def create_reward(
    db: Any,
    *,
    owner_type: str,
    owner_id: int,
    owner_path: str,
    name: str,
    cost_credits: int,
    stock: int,
    valid_from: date,
    valid_to: date | None,
) -> Any:
    errors = []
    if cost_credits <= 0:
        errors.append((["input", "costCredits"], "costCredits must be positive"))
    if stock < 0:
        errors.append((["input", "stock"], "stock must not be negative"))
    if valid_to is not None and valid_to <= valid_from:
        errors.append((["input", "validTo"], "validTo must come after validFrom"))
    if not name.strip():
        errors.append((["input", "name"], "name must not be blank"))
    if errors:
        from carbongraph.errors import UserErrorData

        raise MutationFailed([UserErrorData(f, m, UserErrorCode.INVALID) for f, m in errors])
    return await insert_row(
        db,
        RW,
        owner_type=owner_type,
        owner_id=owner_id,
        owner_path=owner_path,
        name=name.strip(),
        cost_credits=cost_credits,
        stock=stock,
        valid_from=valid_from,
        valid_to=valid_to,
        created_at=utcnow(),
    )


async def redeem(
    db: Any,
    *,
    individual_id: int,
    reward_id: int,
    idempotency_key: str,
    home_path: str | None,
    today: date,
    by: str | None,
) -> Any:
    """The redemption row (new, or the earlier one with this key), or MutationFailed."""
    key = idempotency_key.strip()
    if not key or len(key) > 200:
        raise MutationFailed.single(
            ["input", "idempotencyKey"],
            UserErrorCode.INVALID,
            "idempotencyKey must be 1 to 200 characters.",
        )
    # Lock the account first: concurrent redemptions of one person run one after another.
    await lock_people(db, [individual_id])
    earlier = (await db.execute(sa.select(RD).where(RD.c.idempotency_key == key))).first()
    if earlier is not None:
        if (earlier.individual_id, earlier.reward_id) != (individual_id, reward_id):
            raise MutationFailed.single(
                ["input", "idempotencyKey"],
                UserErrorCode.DUPLICATE,
                "This idempotencyKey was used for another redemption.",
            )
        return earlier
    reward = (await db.execute(sa.select(RW).where(RW.c.id == reward_id))).first()
    if reward is None or home_path is None or not home_path.startswith(reward.owner_path):
        raise MutationFailed.single(
            ["input", "rewardId"], UserErrorCode.NOT_FOUND, "No such reward for you."
        )
    if reward.valid_from > today or (reward.valid_to is not None and reward.valid_to <= today):
        raise MutationFailed.single(
            ["input", "rewardId"],
            UserErrorCode.ACTION_NOT_ALLOWED,
            "The reward is not on offer today.",
        )
    if await balance(db, individual_id) < reward.cost_credits:
        raise MutationFailed.single(
            ["input", "rewardId"],
            UserErrorCode.INSUFFICIENT_CREDITS,
            f"The reward costs {reward.cost_credits} credits.",
        )
    taken = (
        await db.execute(
            sa.update(RW)
            .where(RW.c.id == reward_id, RW.c.stock > 0)
            .values(stock=RW.c.stock - 1)
            .returning(RW.c.stock)
        )
    ).first()
    if taken is None:
        raise MutationFailed.single(
            ["input", "rewardId"], UserErrorCode.OUT_OF_STOCK, "The reward is out of stock."
        )
    entry = (
        await db.execute(
            sa.insert(CE)
            .values(
                individual_id=individual_id,
                kind="REDEMPTION",
                amount=-reward.cost_credits,
                note=f"reward {reward.id}: {reward.name}",
                created_by=by,
                created_at=utcnow(),
            )
            .returning(CE.c.id)
        )
    ).scalar_one()
    await live.credits_changed(db, [individual_id])
    # The key is unique across people: one taken meanwhile by someone else's redemption (which
    # this person's lock does not cover) refuses this one, and the savepoint undoes the rest.
    insert = (postgresql.insert if dialect_name(db) == "postgresql" else sqlite.insert)(RD)
    pk = (
        await db.execute(
            insert.on_conflict_do_nothing(index_elements=[RD.c.idempotency_key])
            .values(
                reward_id=reward_id,
                individual_id=individual_id,
                idempotency_key=key,
                credit_entry_id=entry,
                created_by=by,
                created_at=utcnow(),
            )
            .returning(RD.c.id)
        )
    ).scalar()
    if pk is None:
        raise MutationFailed.single(
            ["input", "idempotencyKey"],
            UserErrorCode.DUPLICATE,
            "This idempotencyKey was used for another redemption.",
        )
    return (await db.execute(sa.select(RD).where(RD.c.id == pk))).one()


async def set_credit_policy(
    db: Any, owner_type: str, owner_id: int, owner_path: str, expiry_months: int | None
) -> None:
    """One policy per programme: an upsert, so concurrent first settings cannot collide."""
    insert = (postgresql.insert if dialect_name(db) == "postgresql" else sqlite.insert)(CPY)
    await db.execute(
        insert.values(
            owner_type=owner_type,
            owner_id=owner_id,
            owner_path=owner_path,
            expiry_months=expiry_months,
            updated_at=utcnow(),
        ).on_conflict_do_update(
            index_elements=[CPY.c.owner_type, CPY.c.owner_id],
            set_={"expiry_months": expiry_months, "updated_at": utcnow()},
        )
    )
