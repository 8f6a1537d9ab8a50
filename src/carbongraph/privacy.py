"""Small-cell suppression of aggregates (docs/privacy.md).

An aggregate shown to a viewer who may not see the people in it individually (anyone below
``Access.PERSONAL`` on the node: ESG analysts, partner services, residents looking at their
community) is withheld when it covers fewer than k people (CMS small-cell rule, k = 10 by
default). Withholding one cell is not enough: a parent total minus its visible children would
give it back, so cells are suppressed in sibling groups (the direct children of one node):

1. primary: a cell covering fewer than k people;
2. complementary: a group with suppressed cells gets more of its smallest cells suppressed until
   at least two are suppressed and together they cover at least k people (or all are);
3. downward: a cell suppressed by rule 2 whose own children would all be shown gets its smallest
   child suppressed too (rule 2 then applies in that group), so it cannot be summed back up.

Populations are the member counts at the end of the period, from ``population_change``. The
decision depends on the hierarchy and the period only, never on the viewer, so two viewers can't
combine their views into more than either may see. One statement per request loads every group
the answers need.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from strawberry.dataloader import DataLoader

from carbongraph.accounting.rollup import POP
from carbongraph.models import Community, Enterprise, Household

E = Enterprise.__table__
C = Community.__table__
H = Household.__table__


class SuppressionReason(StrEnum):
    SMALL_CELL = "SMALL_CELL"
    COMPLEMENTARY = "COMPLEMENTARY"


@dataclass(frozen=True)
class Cell:
    path: str
    population: int


def parent_paths(path: str) -> list[str]:
    """The paths of a node's ancestors, the platform ("") first: "e1/c4/" → ["", "e1/"]."""
    segments = path.rstrip("/").split("/")
    return ["/".join(segments[:i]) + "/" if i else "" for i in range(len(segments))]


def decide_group(
    cells: Sequence[Cell], k: int, *, force_one: bool = False
) -> dict[str, SuppressionReason]:
    """Rules 1 and 2 in one sibling group; ``force_one`` is rule 3 arriving from the parent."""
    order = sorted(cells, key=lambda c: (c.population, c.path))
    out = {c.path: SuppressionReason.SMALL_CELL for c in order if c.population < k}
    if force_one and not out and order:
        out[order[0].path] = SuppressionReason.COMPLEMENTARY
    if not out:
        return out
    covered = sum(c.population for c in order if c.path in out)
    for cell in order:
        if len(out) >= 2 and covered >= k:
            break
        if cell.path not in out:
            out[cell.path] = SuppressionReason.COMPLEMENTARY
            covered += cell.population
    return out


def decide(path: str, groups: dict[str, Sequence[Cell]], k: int) -> SuppressionReason | None:
    """Whether the node at ``path`` is suppressed, walking its ancestors' groups top-down."""
    force = False
    chain = parent_paths(path)
    for depth, parent in enumerate(chain):
        here = path if depth == len(chain) - 1 else chain[depth + 1]
        decisions = decide_group(groups.get(parent, ()), k, force_one=force)
        reason = decisions.get(here)
        if depth == len(chain) - 1:
            return reason
        if reason is SuppressionReason.SMALL_CELL:
            # Every descendant of a small cell is a small cell too.
            return SuppressionReason.SMALL_CELL
        force = reason is SuppressionReason.COMPLEMENTARY
    return None


def _parent_of(path: str) -> str:
    return parent_paths(path)[-1]


class GroupLoader:
    """Sibling groups with their populations on a day, one statement per (via, day) batch."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.loader: DataLoader[tuple[str, str, date], tuple[Cell, ...]] = DataLoader(
            load_fn=self._load
        )

    async def groups(self, paths: Iterable[str], via: str, day: date) -> dict[str, Sequence[Cell]]:
        parents = sorted({p for path in paths for p in parent_paths(path)})
        loaded = await self.loader.load_many([(p, via, day) for p in parents])
        return dict(zip(parents, loaded, strict=True))

    async def _load(self, keys: list[tuple[str, str, date]]) -> list[tuple[Cell, ...]]:
        batches: dict[tuple[str, date], set[str]] = defaultdict(set)
        for parent, via, day in keys:
            batches[(via, day)].add(parent)
        found: dict[tuple[str, str, date], list[Cell]] = defaultdict(list)
        for (via, day), parents in batches.items():
            for cell in await self._children(parents, via, day):
                found[(_parent_of(cell.path), via, day)].append(cell)
        return [tuple(found.get(key, ())) for key in keys]

    async def _children(self, parents: set[str], via: str, day: date) -> list[Cell]:
        enterprise_ids = [int(p.rstrip("/").rsplit("/", 1)[-1][1:]) for p in parents if _is(p, "e")]
        community_ids = [int(p.rstrip("/").rsplit("/", 1)[-1][1:]) for p in parents if _is(p, "c")]
        root = "" in parents
        top_level = sa.and_(C.c.enterprise_id.is_(None), C.c.parent_id.is_(None))
        parts: list[sa.Select[Any]] = [
            sa.select(sa.literal("C").label("node"), C.c.id, C.c.path).where(
                sa.or_(
                    C.c.parent_id.in_(community_ids),
                    sa.and_(C.c.enterprise_id.in_(enterprise_ids), C.c.parent_id.is_(None)),
                    top_level if root else sa.false(),
                )
            ),
            sa.select(sa.literal("H").label("node"), H.c.id, H.c.path).where(
                H.c.community_id.in_(community_ids)
            ),
        ]
        if root:
            parts.append(sa.select(sa.literal("E").label("node"), E.c.id, E.c.path))
        children = sa.union_all(*parts).cte("children")
        population = (
            sa.select(children.c.path, sa.func.coalesce(sa.func.sum(POP.c.delta), 0))
            .select_from(
                children.outerjoin(
                    POP,
                    sa.and_(
                        POP.c.node == children.c.node,
                        POP.c.node_id == children.c.id,
                        POP.c.via == sa.case((children.c.node == "E", via), else_=""),
                        POP.c.day <= day,
                    ),
                )
            )
            .group_by(children.c.path)
        )
        return [Cell(path, int(n)) for path, n in await self.db.execute(population)]


def _is(path: str, letter: str) -> bool:
    return bool(path) and path.rstrip("/").rsplit("/", 1)[-1].startswith(letter)
