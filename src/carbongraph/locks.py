"""The lock discipline of every writer that checks before it acts (docs/security.md).

A person's credits, caps and idempotency keys, and an account's meter readings, are decided by
reading rows and then writing new ones. Under PostgreSQL's READ COMMITTED two requests can both
read "not yet" and both write; so every such writer first takes the same lock:

- **per account**: ``SELECT … FOR NO KEY UPDATE`` on the ``individual`` rows of the people it
  writes for, then on the ``household`` rows of the households, each in ascending id order, in
  one statement per table. Every writer locks people before households and ids in ascending
  order, so two writers never wait on each other in a cycle. After the lock, each statement
  sees what the previous holder committed. ``NO KEY UPDATE`` (not ``UPDATE``) leaves foreign
  key checks (``FOR KEY SHARE``) of inserts that reference the person unblocked. Row locks,
  unlike advisory locks, take no slot in the shared lock table, so a batch of 10,000 people or
  an expiry run over a whole programme cannot exhaust it.
- **per action-type code**: a transaction-scoped advisory lock on the code's hash, so versions
  of one code are numbered one after another.

SQLite takes its one write lock at ``BEGIN IMMEDIATE`` (db.py), which serialises writers
whole; these functions do nothing there. The unique constraints of migration 0010 stay as the
last line of defence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from carbongraph.models import Household, Individual

I = Individual.__table__  # noqa: E741
H = Household.__table__

# Namespace of the two-key advisory locks (pg_advisory_xact_lock(int, int)).
_ACTION_TYPE_CODE = 1
_IDS = sa.bindparam("ids", type_=postgresql.ARRAY(sa.BigInteger()))


def dialect_name(db: Any) -> str:
    """``db`` is a RequestDB (dialect name) or an AsyncConnection (a Dialect)."""
    dialect = db.dialect
    return dialect if isinstance(dialect, str) else str(dialect.name)


def _lock_rows(table: sa.Table) -> sa.Select[Any]:
    return (
        sa.select(table.c.id)
        .where(table.c.id == sa.any_(_IDS))
        .order_by(table.c.id)
        .with_for_update(key_share=True)
    )


_LOCK_PEOPLE = _lock_rows(I)
_LOCK_HOUSEHOLDS = _lock_rows(H)


async def lock_accounts(
    db: Any, individual_ids: Iterable[int] = (), household_ids: Iterable[int] = ()
) -> None:
    """Lock these people's and households' accounts until the transaction ends."""
    if dialect_name(db) != "postgresql":
        return
    for statement, ids in ((_LOCK_PEOPLE, individual_ids), (_LOCK_HOUSEHOLDS, household_ids)):
        ordered = sorted({int(pk) for pk in ids})
        if ordered:
            await db.execute(statement, {"ids": ordered})


async def lock_people(db: Any, individual_ids: Iterable[int]) -> None:
    await lock_accounts(db, individual_ids)


async def lock_action_type_code(db: Any, code: str) -> None:
    """Serialise the publishers of one action-type code (its version numbers)."""
    if dialect_name(db) != "postgresql":
        return
    await db.execute(
        sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:code))"),
        {"ns": _ACTION_TYPE_CODE, "code": code},
    )
