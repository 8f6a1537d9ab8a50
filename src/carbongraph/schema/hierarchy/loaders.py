"""The hierarchy's DataLoaders: nodes by id, a person's households, and the parent → children
relations of the connections (``children()`` in types.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from typing import Any

import sqlalchemy as sa
from strawberry.dataloader import DataLoader

from carbongraph.authz import Viewer, individual_path
from carbongraph.db import RequestDB
from carbongraph.resolvers.dataloaders import (
    EM,
    C,
    E,
    H,
    I,
    IndividualRecord,
    LoaderBase,
    M,
    Relation,
    current,
    member_record,
    visible,
)

ENTERPRISE_COMMUNITIES = Relation(
    build=lambda keys, viewer, _on: visible(
        sa.select(C).where(
            C.c.enterprise_id.in_(keys), C.c.parent_id.is_(None), C.c.archived_at.is_(None)
        ),
        viewer.node_filter(C.c.path),
    ),
    partition=C.c.enterprise_id,
    order_id=C.c.id,
)

SUB_COMMUNITIES = Relation(
    build=lambda keys, viewer, _on: visible(
        sa.select(C).where(C.c.parent_id.in_(keys), C.c.archived_at.is_(None)),
        viewer.node_filter(C.c.path),
    ),
    partition=C.c.parent_id,
    order_id=C.c.id,
)

COMMUNITY_HOUSEHOLDS = Relation(
    build=lambda keys, viewer, _on: visible(
        sa.select(H).where(H.c.community_id.in_(keys), H.c.archived_at.is_(None)),
        viewer.node_filter(H.c.path),
    ),
    partition=H.c.community_id,
    order_id=H.c.id,
)

HOUSEHOLD_MEMBERS = Relation(
    build=lambda keys, viewer, on: visible(
        sa.select(I, H.c.path.label("container_path"))
        .select_from(M.join(I, I.c.id == M.c.individual_id).join(H, H.c.id == M.c.household_id))
        .where(M.c.household_id.in_(keys), current(M, on), I.c.archived_at.is_(None)),
        viewer.member_filter(I.c.id, H.c.path),
    ),
    partition=M.c.household_id,
    order_id=I.c.id,
    to_record=member_record,
)

_SUBTREE = C.alias("subtree_root")
COMMUNITY_MEMBERS = Relation(
    build=lambda keys, viewer, on: visible(
        sa.select(I, H.c.path.label("container_path"))
        .select_from(
            M.join(I, I.c.id == M.c.individual_id)
            .join(H, H.c.id == M.c.household_id)
            .join(_SUBTREE, H.c.path.startswith(_SUBTREE.c.path, autoescape=False))
        )
        .where(_SUBTREE.c.id.in_(keys), current(M, on), I.c.archived_at.is_(None)),
        viewer.member_filter(I.c.id, H.c.path),
    ),
    partition=_SUBTREE.c.id,
    order_id=I.c.id,
    to_record=member_record,
)

ENTERPRISE_EMPLOYEES = Relation(
    build=lambda keys, viewer, on: visible(
        sa.select(I, E.c.path.label("container_path"))
        .select_from(EM.join(I, I.c.id == EM.c.individual_id).join(E, E.c.id == EM.c.enterprise_id))
        .where(EM.c.enterprise_id.in_(keys), current(EM, on), I.c.archived_at.is_(None)),
        viewer.member_filter(I.c.id, E.c.path),
    ),
    partition=EM.c.enterprise_id,
    order_id=I.c.id,
    to_record=member_record,
)


class HierarchyLoaders(LoaderBase):
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
