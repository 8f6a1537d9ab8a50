"""Announcing changes from the writers, delivered only if their transaction commits.

PostgreSQL: ``pg_notify`` inside the writer's transaction. PostgreSQL delivers a notification
when (and only if) the transaction commits, drops it with a rolled-back savepoint, and folds
identical ones of one transaction together, so a mutation that fails with ``userErrors``
announces nothing. Every server process LISTENs (``live.postgres``), whichever wrote.

SQLite: the change is kept on the request's ``RequestDB`` (trimmed with its savepoints) and
handed to this process's hub after the commit. A write on a connection that is not a
``RequestDB`` (the CLI) has no subscribers in its process and announces nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from carbongraph.live.hub import credits_channel, leaderboard_channel

PG_CHANNEL = "carbongraph_live"
# PostgreSQL refuses payloads of 8000 bytes or more; stay well below.
MAX_PAYLOAD_BYTES = 7000

# Values of the schema's LeaderboardMetric (schema/enums.py), without importing the schema here.
REDUCTIONS = "REDUCTIONS"
NET_EMISSIONS_PER_CAPITA = "NET_EMISSIONS_PER_CAPITA"

_NOTIFY = sa.text(
    f"SELECT pg_notify('{PG_CHANNEL}', p) FROM unnest(CAST(:payloads AS text[])) AS p"
)


def _dialect(db: Any) -> str:
    return db.dialect if isinstance(db.dialect, str) else db.dialect.name


def encode(channels: list[str], changed_at: datetime) -> list[str]:
    """Notification payloads of at most MAX_PAYLOAD_BYTES each, covering ``channels``."""
    stamp = int(changed_at.timestamp() * 1_000_000)
    payloads: list[str] = []
    chunk: list[str] = []
    size = 0
    for channel in channels:
        if chunk and size + len(channel) + 3 > MAX_PAYLOAD_BYTES - 40:
            payloads.append(orjson.dumps({"t": stamp, "c": chunk}).decode())
            chunk, size = [], 0
        chunk.append(channel)
        size += len(channel) + 3
    if chunk:
        payloads.append(orjson.dumps({"t": stamp, "c": chunk}).decode())
    return payloads


def decode(payload: str) -> tuple[list[str], datetime]:
    data = orjson.loads(payload)
    return [str(c) for c in data["c"]], datetime.fromtimestamp(data["t"] / 1_000_000, UTC)


async def publish(db: Any, channels: Iterable[str]) -> None:
    wanted = sorted(set(channels))
    if not wanted:
        return
    changed_at = datetime.now(UTC)
    if _dialect(db) == "postgresql":
        await db.execute(_NOTIFY, {"payloads": encode(wanted, changed_at)})
        return
    pending = getattr(db, "live_pending", None)
    if pending is not None:
        pending.append((wanted, changed_at))


async def credits_changed(db: Any, individual_ids: Iterable[int]) -> None:
    """Any ledger entry of these people (grant, bonus, reversal, redemption, expiry)."""
    await publish(db, (credits_channel(pk) for pk in individual_ids))


async def rankings_changed(db: Any, metric: str, community_ids: Iterable[int]) -> None:
    """The inputs of these communities' leaderboards by ``metric`` changed."""
    await publish(db, (leaderboard_channel(pk, metric) for pk in community_ids))
