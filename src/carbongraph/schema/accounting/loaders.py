"""The accounting DataLoaders: footprints, their series and explanations, and the sibling
groups small-cell suppression reads (carbongraph.privacy)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from strawberry.dataloader import DataLoader

from carbongraph.accounting.reads import (
    FootprintData,
    Period,
    explain_many,
    load_footprints,
    load_series_many,
)
from carbongraph.accounting.rollup import NodeKey
from carbongraph.authz import Viewer
from carbongraph.db import RequestDB
from carbongraph.privacy import GroupLoader
from carbongraph.resolvers.dataloaders import LoaderBase


class AccountingLoaders(LoaderBase):
    def __init__(self, db: RequestDB, viewer: Viewer, today: date) -> None:
        super().__init__(db, viewer, today)
        # Keyed by ((node, id, via), Period): one statement per distinct period.
        self.footprint = DataLoader(load_fn=self._footprints)
        # Sibling groups with populations, for small-cell suppression (carbongraph.privacy).
        self.cell_groups = GroupLoader(db)
        # Batching only, no cache: a mutation earlier in the request may have changed what
        # these read (recalculated records).
        # Keyed by (node key, Period, granularity) / (node key, Period): one batch per shape.
        self.series = DataLoader(load_fn=self._series, cache=False)
        self.explain = DataLoader(load_fn=self._explain, cache=False)

    async def _footprints(self, keys: list[tuple[NodeKey, Period]]) -> list[FootprintData]:
        return await self._per_period(keys, load_footprints)

    async def _series(self, keys: list[tuple[NodeKey, Period, str]]) -> list[Any]:
        groups: dict[tuple[Period, str], list[NodeKey]] = defaultdict(list)
        for node_key, period, granularity in keys:
            groups[(period, granularity)].append(node_key)
        found: dict[tuple[NodeKey, Period, str], Any] = {}
        for (period, granularity), node_keys in groups.items():
            series = await load_series_many(self.db, node_keys, period, granularity)
            for node_key, points in series.items():
                found[(node_key, period, granularity)] = points
        return [found[key] for key in keys]

    async def _explain(self, keys: list[tuple[NodeKey, Period]]) -> list[Any]:
        return await self._per_period(keys, explain_many)

    async def _per_period(self, keys: list[tuple[NodeKey, Period]], load: Any) -> list[Any]:
        """One ``load(db, node keys, period)`` per distinct period of ``keys``."""
        by_period: dict[Period, list[NodeKey]] = defaultdict(list)
        for node_key, period in keys:
            by_period[period].append(node_key)
        found: dict[tuple[NodeKey, Period], Any] = {}
        for period, node_keys in by_period.items():
            for node_key, value in (await load(self.db, node_keys, period)).items():
                found[(node_key, period)] = value
        return [found[key] for key in keys]
