"""What the per-request DataLoaders share: the hierarchy's tables, a person's record, parent →
children relations and their pagination (``LoaderBase``). Each domain's loaders live in its
schema package (``schema/<domain>/loaders.py``); every relation in the graph loads through one,
so a nested query costs one statement per level, whatever the number of rows.

Each loader applies the viewer's visibility filter in SQL (see ``authz.policy``); nothing is
fetched and then thrown away in Python, so page sizes and counts are exact.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from strawberry.dataloader import DataLoader

from carbongraph.authz import Target, Viewer, individual_path
from carbongraph.db import RequestDB

# Re-exported: services, tests and the demo import the hierarchy's tables from here.
from carbongraph.models.tables import EM, C, E, H, I, M
from carbongraph.resolvers.pagination import (
    Page,
    PageArgs,
    partitioned_page_statement,
    split_pages,
)


def current(table: sa.FromClause, on: date) -> ColumnElement[bool]:
    """The dated row (membership, employment) is in force on ``on``."""
    return sa.and_(
        table.c.valid_from <= on, sa.or_(table.c.valid_to.is_(None), table.c.valid_to > on)
    )


@dataclass
class IndividualRecord:
    id: int
    display_name: str
    email: str | None
    subject: str | None
    external_ref: str | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    # Paths through which the person is reached: current household, current employers.
    paths: tuple[str, ...] = field(default=())

    @property
    def target(self) -> Target:
        return Target(self.paths, individual_id=self.id)

    @classmethod
    def from_row(cls, row: Any, paths: Sequence[str]) -> IndividualRecord:
        return cls(
            id=row.id,
            display_name=row.display_name,
            email=row.email,
            subject=row.subject,
            external_ref=row.external_ref,
            created_at=row.created_at,
            updated_at=row.updated_at,
            archived_at=row.archived_at,
            paths=tuple(paths),
        )


def node_target(row: Any) -> Target:
    """Target of an enterprise, community or household row (they carry ``path``)."""
    return Target((row.path,))


@dataclass(frozen=True)
class Relation:
    """A parent → children list: the statement for a set of parents, and how rows become
    records. ``partition`` and ``order_id`` are columns of ``build``'s select."""

    build: Callable[[Sequence[Any], Viewer, date], sa.Select[Any]]
    partition: ColumnElement[Any]
    order_id: ColumnElement[int]
    to_record: Callable[[Any], Any] = lambda row: row


def visible(select: sa.Select[Any], clause: ColumnElement[bool] | None) -> sa.Select[Any]:
    return select if clause is None else select.where(clause)


def member_record(row: Any) -> IndividualRecord:
    return IndividualRecord.from_row(row, [individual_path(row.container_path, row.id)])


class LoaderBase:
    """What every domain's loaders share: the request's database, viewer and day, and the
    paginated children of a ``Relation`` (one statement per level). The request's loaders are
    the domains' together (``carbongraph.resolvers.context.Loaders``)."""

    def __init__(self, db: RequestDB, viewer: Viewer, today: date) -> None:
        self.db = db
        self.viewer = viewer
        self.today = today
        self._pages: dict[Relation, DataLoader[tuple[Any, PageArgs], Page]] = {}
        self._counts: dict[Relation, DataLoader[Any, int]] = {}

    @staticmethod
    def forget(loader: DataLoader[Any, Any], key: Any) -> None:
        """Drop a cached value so later loads in this request see a write."""
        with contextlib.suppress(KeyError):  # strawberry's clear() raises for unknown keys
            loader.clear(key)

    def page(self, relation: Relation) -> DataLoader[tuple[Any, PageArgs], Page]:
        loader = self._pages.get(relation)
        if loader is None:
            loader = DataLoader(load_fn=lambda keys: self._load_pages(relation, keys))
            self._pages[relation] = loader
        return loader

    def count(self, relation: Relation) -> DataLoader[Any, int]:
        loader = self._counts.get(relation)
        if loader is None:
            loader = DataLoader(load_fn=lambda keys: self._load_counts(relation, keys))
            self._counts[relation] = loader
        return loader

    async def _load_pages(
        self, relation: Relation, keys: Sequence[tuple[Hashable, PageArgs]]
    ) -> list[Page]:
        # Usually every parent asks for the same page; one statement per distinct PageArgs.
        by_args: dict[PageArgs, list[Hashable]] = defaultdict(list)
        for parent, args in keys:
            by_args[args].append(parent)
        pages: dict[tuple[Hashable, PageArgs], Page] = {}
        for args, parents in by_args.items():
            statement = partitioned_page_statement(
                relation.build(parents, self.viewer, self.today),
                partition_col=relation.partition,
                id_col=relation.order_id,
                args=args,
            )
            rows = list(await self.db.execute(statement))
            for parent, page in split_pages(rows, parents, args).items():
                page.rows[:] = [relation.to_record(row) for row in page.rows]
                pages[(parent, args)] = page
        return [pages[key] for key in keys]

    async def _load_counts(self, relation: Relation, keys: Sequence[Hashable]) -> list[int]:
        statement = (
            relation.build(keys, self.viewer, self.today)
            .with_only_columns(relation.partition, sa.func.count(), maintain_column_froms=True)
            .group_by(relation.partition)
        )
        counts = {parent: n for parent, n in await self.db.execute(statement)}
        return [counts.get(key, 0) for key in keys]


class NodeRows(LoaderBase):
    """Rows of the hierarchy's nodes by id and a person's households: read by the schema and,
    through ``Caller.loaders``, by the domain services that write them (and forget them)."""

    def __init__(self, db: RequestDB, viewer: Viewer, today: date) -> None:
        super().__init__(db, viewer, today)
        self.enterprise = DataLoader(load_fn=self._by_id(E))
        self.community = DataLoader(load_fn=self._by_id(C))
        self.household = DataLoader(load_fn=self._by_id(H))
        self.individual = DataLoader(load_fn=self._individuals)
        self.current_household = DataLoader(load_fn=self._current_households)
        self.membership_history = DataLoader(load_fn=self._membership_history)

    def by_type(self, type_name: str) -> DataLoader[int, Any]:
        """The by-primary-key loader of a node type."""
        return {
            "Enterprise": self.enterprise,
            "Community": self.community,
            "Household": self.household,
            "Individual": self.individual,
        }[type_name]

    def _by_id(self, table: sa.Table) -> Callable[[list[int]], Any]:
        async def load(keys: list[int]) -> list[Any]:
            rows = await self.db.execute(sa.select(table).where(table.c.id.in_(keys)))
            by_id = {row.id: row for row in rows}
            return [by_id.get(key) for key in keys]

        return load

    async def _individuals(self, keys: list[int]) -> list[IndividualRecord | None]:
        hh = H.alias("home")
        em = EM.alias("em")
        ee = E.alias("employer")
        statement = (
            sa.select(I, hh.c.path.label("home_path"), ee.c.path.label("employer_path"))
            .select_from(
                I.outerjoin(M, sa.and_(M.c.individual_id == I.c.id, current(M, self.today)))
                .outerjoin(hh, hh.c.id == M.c.household_id)
                .outerjoin(em, sa.and_(em.c.individual_id == I.c.id, current(em, self.today)))
                .outerjoin(ee, ee.c.id == em.c.enterprise_id)
            )
            .where(I.c.id.in_(keys))
        )
        rows = await self.db.execute(statement)
        first: dict[int, Any] = {}
        paths: dict[int, list[str]] = defaultdict(list)
        for row in rows:
            first.setdefault(row.id, row)
            for container in (row.home_path, row.employer_path):
                if container:
                    path = individual_path(container, row.id)
                    if path not in paths[row.id]:
                        paths[row.id].append(path)
        return [
            IndividualRecord.from_row(first[key], paths[key]) if key in first else None
            for key in keys
        ]

    async def _current_households(self, keys: list[int]) -> list[Any]:
        statement = (
            sa.select(H, M.c.individual_id.label("_individual"))
            .select_from(M.join(H, H.c.id == M.c.household_id))
            .where(M.c.individual_id.in_(keys), current(M, self.today))
        )
        rows = await self.db.execute(statement)
        by_individual = {row._individual: row for row in rows}
        return [by_individual.get(key) for key in keys]

    async def _membership_history(self, keys: list[int]) -> list[list[Any]]:
        statement = sa.select(M).where(M.c.individual_id.in_(keys)).order_by(M.c.valid_from, M.c.id)
        history: dict[int, list[Any]] = defaultdict(list)
        for row in await self.db.execute(statement):
            history[row.individual_id].append(row)
        return [history[key] for key in keys]
