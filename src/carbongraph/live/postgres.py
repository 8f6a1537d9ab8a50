"""The PostgreSQL listener: one dedicated connection per process that LISTENs for changes.

It is not taken from the pool (a pooled connection is reset and reused, and a LISTEN would
leak to other requests or be lost). When the connection drops it reconnects with backoff and
then wakes every subscription of the process, since changes may have been missed meanwhile.
A periodic ``SELECT 1`` finds connections that died without a word (half-open TCP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.db import asyncpg_dsn
from carbongraph.live.hub import Hub, hub_for
from carbongraph.live.publish import PG_CHANNEL, decode

log = logging.getLogger("carbongraph.live")
APPLICATION_NAME = "carbongraph-live"


def engine_key(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=False)


class PostgresRelay:
    def __init__(self, dsn: str, hub: Hub, *, health_seconds: float = 30.0) -> None:
        self.dsn = dsn
        self.hub = hub
        self.health_seconds = health_seconds
        self.listening = asyncio.Event()
        self.connections = 0  # how many times it has connected (tests, logs)
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None

    async def start(self, wait_seconds: float = 10.0) -> None:
        self._task = asyncio.create_task(self._run(), name="carbongraph-live-listener")
        try:
            await asyncio.wait_for(self.listening.wait(), wait_seconds)
        except TimeoutError:
            log.warning("live updates: not listening yet; retrying in the background")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.listening.clear()

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            channels, changed_at = decode(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("live updates: ignored a malformed notification %r", payload[:200])
            return
        self.hub.dispatch(channels, changed_at)

    async def _run(self) -> None:
        backoff = 0.25
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(
                    self.dsn, timeout=10, server_settings={"application_name": APPLICATION_NAME}
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(PG_CHANNEL, self._on_notification)
                self._conn = conn
                self.connections += 1
                if self.connections > 1:
                    log.info("live updates: listening again; waking every subscription")
                    self.hub.dispatch_everywhere(datetime.now(UTC))
                self.listening.set()
                backoff = 0.25
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), self.health_seconds)
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=10)
                log.warning("live updates: the listening connection was closed; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the connection: reconnect, never give up
                log.warning("live updates: listener failed (%s); reconnecting", exc)
            finally:
                self.listening.clear()
                self._conn = None
                if conn is not None and not conn.is_closed():
                    try:
                        await asyncio.wait_for(conn.close(), 5)
                    except (Exception, asyncio.CancelledError):
                        conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


_RELAYS: dict[str, tuple[PostgresRelay, int]] = {}


async def acquire(engine: AsyncEngine) -> PostgresRelay:
    """Start (or share) this process's listener for the engine's database."""
    key = engine_key(engine)
    if key in _RELAYS:
        relay, users = _RELAYS[key]
        _RELAYS[key] = (relay, users + 1)
        return relay
    relay = PostgresRelay(asyncpg_dsn(key), hub_for(key))
    _RELAYS[key] = (relay, 1)
    await relay.start()
    return relay


async def release(engine: AsyncEngine) -> None:
    key = engine_key(engine)
    if key not in _RELAYS:
        return
    relay, users = _RELAYS[key]
    if users > 1:
        _RELAYS[key] = (relay, users - 1)
        return
    del _RELAYS[key]
    await relay.stop()


def relay_for(engine: AsyncEngine) -> PostgresRelay | None:
    entry = _RELAYS.get(engine_key(engine))
    return entry[0] if entry else None
