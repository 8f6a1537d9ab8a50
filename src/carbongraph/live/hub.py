"""The per-process fan-out of live updates: channels → the subscriptions waiting on them.

One ``Hub`` per database per process. Changes reach it from the PostgreSQL listener
(``live.postgres``) or, on SQLite, straight from the committing request (``RequestDB.close``).
A subscription holds a ``Watch``: a "something changed at T" flag rather than a queue, so a
burst of changes wakes a slow subscriber once and memory stays bounded whatever the rate.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime


def credits_channel(individual_id: int) -> str:
    return f"credits:{individual_id}"


def leaderboard_channel(community_id: int, metric: str) -> str:
    return f"leaderboard:{community_id}:{metric}"


class Watch:
    """One subscription's view of one channel: the latest change not yet taken."""

    def __init__(self, hub: Hub, channel: str) -> None:
        self.hub = hub
        self.channel = channel
        self._pending: datetime | None = None
        self._wake = asyncio.Event()

    def notify(self, changed_at: datetime) -> None:
        if self._pending is None or changed_at > self._pending:
            self._pending = changed_at
        self._wake.set()

    async def wait(self) -> None:
        await self._wake.wait()

    def take(self) -> datetime:
        """The latest change since the last take (call after ``wait``)."""
        changed_at, self._pending = self._pending, None
        self._wake.clear()
        assert changed_at is not None
        return changed_at

    def close(self) -> None:
        self.hub.forget(self)


class Hub:
    def __init__(self) -> None:
        self._watches: dict[str, set[Watch]] = defaultdict(set)

    def watch(self, channel: str) -> Watch:
        watch = Watch(self, channel)
        self._watches[channel].add(watch)
        return watch

    def forget(self, watch: Watch) -> None:
        watches = self._watches.get(watch.channel)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._watches[watch.channel]

    def dispatch(self, channels: Iterable[str], changed_at: datetime) -> None:
        for channel in channels:
            for watch in self._watches.get(channel, ()):
                watch.notify(changed_at)

    def dispatch_everywhere(self, changed_at: datetime) -> None:
        """Wake every subscription: after the listener lost its connection, changes may have
        been missed, and subscribers refetch rather than trust their state."""
        self.dispatch(list(self._watches), changed_at)

    @property
    def watch_count(self) -> int:
        return sum(len(w) for w in self._watches.values())


_HUBS: dict[str, Hub] = {}


def hub_for(database_url: str) -> Hub:
    """The process's hub for one database (tests run several databases in one process)."""
    hub = _HUBS.get(database_url)
    if hub is None:
        hub = _HUBS[database_url] = Hub()
    return hub
