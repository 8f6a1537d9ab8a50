"""Rate limiting by cost, per principal and per client IP, in one-minute windows.

Each request spends its static cost (``cost.query_cost``: the number the cost rule checks; at
least 1). With ``CARBONGRAPH_REDIS_URL`` the counters live in Redis and are shared by every
process; without it they are per process. Over the budget: HTTP 429 with ``Retry-After``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any


class Decision:
    def __init__(self, allowed: bool, retry_after: int) -> None:
        self.allowed = allowed
        self.retry_after = retry_after


class MemoryCounters:
    def __init__(self) -> None:
        self.windows: dict[tuple[str, int], int] = defaultdict(int)

    async def spend(self, key: str, window: int, amount: int) -> int:
        if len(self.windows) > 100_000:  # forget old windows
            self.windows = defaultdict(
                int, {k: v for k, v in self.windows.items() if k[1] >= window}
            )
        self.windows[(key, window)] += amount
        return self.windows[(key, window)]


class RedisCounters:
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.client: Any = redis.from_url(url)

    async def spend(self, key: str, window: int, amount: int) -> int:
        name = f"carbongraph:rl:{key}:{window}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incrby(name, amount)
            pipe.expire(name, 120)
            spent, _ = await pipe.execute()
        return int(spent)


class RateLimiter:
    def __init__(self, per_minute: int, redis_url: str | None = None) -> None:
        self.per_minute = per_minute
        self.counters: MemoryCounters | RedisCounters = (
            RedisCounters(redis_url) if redis_url else MemoryCounters()
        )

    async def check(self, keys: list[str], cost: int) -> Decision:
        now = time.time()
        window = int(now // 60)
        retry_after = max(1, 60 - int(now % 60))
        allowed = True
        for key in keys:
            if await self.counters.spend(key, window, max(1, cost)) > self.per_minute:
                allowed = False
        return Decision(allowed, retry_after)
