"""The actions DataLoaders: credit balances and ledgers, campaigns' progress and boards."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from strawberry.dataloader import DataLoader

from carbongraph.actions import campaigns
from carbongraph.actions import record as credits
from carbongraph.authz import Viewer
from carbongraph.db import RequestDB
from carbongraph.resolvers.dataloaders import LoaderBase


class ActionLoaders(LoaderBase):
    def __init__(self, db: RequestDB, viewer: Viewer, today: date) -> None:
        super().__init__(db, viewer, today)
        # Batching only, no cache: a mutation earlier in the request may have changed what
        # these read (credits, approved actions).
        # Credits: by individual id / (individual id, first, before entry id).
        self.credit_balance = DataLoader(load_fn=self._balances, cache=False)
        self.credit_ledger = DataLoader(load_fn=self._ledgers, cache=False)
        # Campaign rows: progress by row, standings by (row, first).
        self.campaign_progress = DataLoader(load_fn=self._campaign_progress, cache=False)
        self.campaign_standings = DataLoader(load_fn=self._campaign_standings, cache=False)

    async def _balances(self, keys: list[int]) -> list[int]:
        found = await credits.balances(self.db, keys)
        return [found[key] for key in keys]

    async def _ledgers(self, keys: list[tuple[int, int, int | None]]) -> list[list[Any]]:
        groups: dict[tuple[int, int | None], list[int]] = defaultdict(list)
        for individual_id, first, before_id in keys:
            groups[(first, before_id)].append(individual_id)
        found: dict[tuple[int, int, int | None], list[Any]] = {}
        for (first, before_id), ids in groups.items():
            for individual_id, rows in (
                await credits.ledgers(self.db, ids, first, before_id)
            ).items():
                found[(individual_id, first, before_id)] = rows
        return [found[key] for key in keys]

    async def _campaign_progress(self, rows: list[Any]) -> list[Any]:
        return await campaigns.progress_many(self.db, rows)

    async def _campaign_standings(self, keys: list[tuple[Any, int]]) -> list[Any]:
        by_first: dict[int, list[Any]] = defaultdict(list)
        for row, first in keys:
            by_first[first].append(row)
        found: dict[tuple[int, int], Any] = {}
        for first, rows in by_first.items():
            for row, standings in zip(
                rows, await campaigns.top_participants_many(self.db, rows, first), strict=True
            ):
                found[(row.id, first)] = standings
        return [found[(row.id, first)] for row, first in keys]
