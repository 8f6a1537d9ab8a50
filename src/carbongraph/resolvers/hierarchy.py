"""Root-level lists of the hierarchy (the children lists go through ``dataloaders``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from carbongraph.authz import Viewer
from carbongraph.db import RequestDB
from carbongraph.resolvers.dataloaders import C, E
from carbongraph.resolvers.pagination import Page, PageArgs, single_page, single_page_statement


def _visible_roots(table: sa.Table, viewer: Viewer) -> sa.Select[Any]:
    select = sa.select(table).where(table.c.archived_at.is_(None))
    clause = viewer.node_filter(table.c.path)
    return select if clause is None else select.where(clause)


def visible_enterprises(viewer: Viewer) -> sa.Select[Any]:
    return _visible_roots(E, viewer)


def visible_communities(viewer: Viewer, enterprise_id: int | None = None) -> sa.Select[Any]:
    select = _visible_roots(C, viewer)
    if enterprise_id is not None:
        select = select.where(C.c.enterprise_id == enterprise_id)
    return select


async def root_page(db: RequestDB, select: sa.Select[Any], args: PageArgs) -> Page:
    table_id = select.selected_columns.id
    rows = await db.execute(single_page_statement(select, id_col=table_id, args=args))
    return single_page(list(rows), args)


async def root_count(db: RequestDB, select: sa.Select[Any]) -> int:
    return int(await db.scalar(sa.select(sa.func.count()).select_from(select.subquery())))
