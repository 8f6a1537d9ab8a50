"""Subscriptions: live credit balances and leaderboard changes (docs/live-updates.md).

A subscription is authorized when it starts: a viewer who may not read the person's credits
(or the community's aggregates) gets an ``error`` message with FORBIDDEN or NOT_FOUND, exactly
as the same read over HTTP, and no events. The check runs again, with fresh grants, before
every event, so a revoked grant or a move ends the subscription with that error.

Each subscription first emits the state when it starts (so a client never misses a change
between its first read and the subscription), then one event per committed change. Events are
small: ids, the new balance, ``changedAt``; a client refetches what it shows.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.actions.record import balance
from carbongraph.authz import Principal
from carbongraph.config import Settings
from carbongraph.db import RequestDB, request_db
from carbongraph.errors import CodedError, ErrorCode
from carbongraph.live import postgres
from carbongraph.live.hub import credits_channel, hub_for, leaderboard_channel
from carbongraph.resolvers.context import Context, build_context
from carbongraph.schema import policy
from carbongraph.schema.enums import LeaderboardMetric
from carbongraph.schema.node import fetch_row, row_target
from carbongraph.schema.relay import decode_global_id, to_global_id

log = logging.getLogger("carbongraph.live")


@dataclass
class LiveContext:
    """``info.context`` of a subscription: one per WebSocket connection. It holds no database
    connection; every check and read opens a short transaction of its own."""

    settings: Settings
    engine_ref: dict[str, Any]
    principal: Principal | None = None
    request: Any = None
    connection_params: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> AsyncEngine:
        return self.engine_ref["engine"]


# A subscription resolver's ``info``: its context is the connection's, not a request's.
LiveInfo = strawberry.Info[LiveContext, None]


@dataclass
class _Probe:
    """What ``fetch_row`` and the policy read from ``info``: only ``context``."""

    context: Context


async def _authorized(
    ctx: LiveContext,
    type_name: str,
    pk: int,
    field: str,
    then: Callable[[RequestDB], Awaitable[Any]] | None = None,
) -> Any:
    """Load the viewer's grants and the node afresh and check the declaration of the node's
    ``field`` whose changes this streams (NOT_FOUND / FORBIDDEN as over HTTP); then
    ``then(db)`` in the same read transaction."""
    async with request_db(ctx.engine) as db:
        probe = _Probe(await build_context(ctx.settings, db, ctx.principal))
        row = await fetch_row(probe, type_name, pk)
        policy.require_field(probe, type_name, field, row_target(row))
        return await then(db) if then is not None else None


async def _listening(ctx: LiveContext) -> None:
    """On PostgreSQL, changes arrive only while this process LISTENs: wait for it briefly."""
    if ctx.engine.dialect.name != "postgresql":
        return
    relay = postgres.relay_for(ctx.engine)
    if relay is not None:
        try:
            await asyncio.wait_for(relay.listening.wait(), 5)
            return
        except TimeoutError:
            pass
    raise CodedError(
        "Live updates are unavailable right now; retry later.", code=ErrorCode.UNAVAILABLE
    )


def _hub(ctx: LiveContext) -> Any:
    return hub_for(ctx.engine.url.render_as_string(hide_password=False))


@asynccontextmanager
async def _reported() -> AsyncIterator[None]:
    """Coded errors pass as they are; anything else becomes INTERNAL_SERVER_ERROR."""
    try:
        yield
    except (CodedError, GraphQLError):
        raise
    except Exception as exc:
        raise _internal(exc) from exc


def _internal(exc: Exception) -> GraphQLError:
    """An unexpected failure, logged with an id; the client sees only the id."""
    request_id = uuid.uuid4().hex
    log.error("subscription %s failed", request_id, exc_info=exc)
    return GraphQLError(
        "Internal server error.",
        extensions={"code": ErrorCode.INTERNAL_SERVER_ERROR, "requestId": request_id},
    )


@strawberry.type(
    description="A person's credit balance, sent when a subscription starts and "
    "after every change to their ledger."
)
class CreditsChange:
    individual_id: strawberry.ID
    balance: int = strawberry.field(description="The balance after the change.")
    changed_at: datetime = strawberry.field(
        description="When the change was written; for the first event, when the subscription "
        "started."
    )


@strawberry.type(
    description="A community's leaderboard may have changed: refetch it. Sent when a "
    "subscription starts and, at most once per interval, after changes to its inputs."
)
class LeaderboardChange:
    community_id: strawberry.ID
    metric: LeaderboardMetric
    changed_at: datetime = strawberry.field(
        description="The latest change covered by this event; for the first event, when the "
        "subscription started."
    )


async def _credit_events(ctx: LiveContext, pk: int) -> AsyncGenerator[CreditsChange, None]:
    individual_id = strawberry.ID(to_global_id("Individual", pk))
    # Watching before the first balance is read: no change can fall in between. (Registered
    # here, not in the resolver, so that a stream that never starts leaves nothing behind.)
    watch = _hub(ctx).watch(credits_channel(pk))
    try:
        changed_at = datetime.now(UTC)
        while True:
            current = await _authorized(
                ctx, "Individual", pk, "credits", lambda db: balance(db, pk)
            )
            yield CreditsChange(individual_id=individual_id, balance=current, changed_at=changed_at)
            await watch.wait()
            changed_at = watch.take()
    except (CodedError, GraphQLError):
        raise
    except Exception as exc:
        raise _internal(exc) from exc
    finally:
        watch.close()


async def _leaderboard_events(
    ctx: LiveContext, pk: int, metric: LeaderboardMetric
) -> AsyncGenerator[LeaderboardChange, None]:
    community_id = strawberry.ID(to_global_id("Community", pk))
    interval = ctx.settings.live_leaderboard_interval_ms / 1000
    watch = _hub(ctx).watch(leaderboard_channel(pk, metric.value))
    try:
        # Authorized a moment ago by the resolver.
        yield LeaderboardChange(
            community_id=community_id, metric=metric, changed_at=datetime.now(UTC)
        )
        sent = time.monotonic()
        while True:
            await watch.wait()
            # Coalesce: everything that lands within the interval becomes one event.
            delay = sent + interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            changed_at = watch.take()
            await _authorized(ctx, "Community", pk, "leaderboard")
            sent = time.monotonic()
            yield LeaderboardChange(community_id=community_id, metric=metric, changed_at=changed_at)
    except (CodedError, GraphQLError):
        raise
    except Exception as exc:
        raise _internal(exc) from exc
    finally:
        watch.close()


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="A person's credit balance: now, then after every grant, reversal, "
        "redemption or expiry. Needs the right to read the person's credits."
    )
    async def credits_changed(
        self, info: LiveInfo, individual_id: strawberry.ID
    ) -> AsyncGenerator[CreditsChange, None]:
        ctx: LiveContext = info.context
        pk = decode_global_id(individual_id, ["Individual"])[1]
        async with _reported():
            await _authorized(ctx, "Individual", pk, "credits")
            await _listening(ctx)
        return _credit_events(ctx, pk)

    @strawberry.subscription(
        description="Tells when a community's leaderboard by `metric` may have changed (approved "
        "actions, activity records, people moving in or out): now, then at most once per "
        "interval. Needs the right to read the community's leaderboard (anyone who sees the "
        "community, its residents included)."
    )
    async def leaderboard_changed(
        self, info: LiveInfo, community_id: strawberry.ID, metric: LeaderboardMetric
    ) -> AsyncGenerator[LeaderboardChange, None]:
        ctx: LiveContext = info.context
        pk = decode_global_id(community_id, ["Community"])[1]
        async with _reported():
            await _authorized(ctx, "Community", pk, "leaderboard")
            await _listening(ctx)
        return _leaderboard_events(ctx, pk, metric)
