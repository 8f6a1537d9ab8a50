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

Every figure about people goes through here with the viewer's level from the policy
(``node_cells``, ``part_of_node``, ``people_cell``): footprints and reductions, leaderboard
entries, whole boards and statements' peers (figures over *part* of a node's people:
``decide_part``), and campaign progress (cells of participants: ``decide_people``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from strawberry.dataloader import DataLoader

from carbongraph.authz.roles import Access
from carbongraph.models.tables import POP, C, E, H


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


def decide(
    path: str, groups: Mapping[str, Sequence[Cell]], k: int, *, root: str = ""
) -> SuppressionReason | None:
    """Whether the node at ``path`` is suppressed, walking its ancestors' groups top-down from
    ``root`` (the platform by default; a campaign's top-most owner for its participants)."""
    force = False
    chain = [p for p in parent_paths(path) if p.startswith(root)]
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


def decide_part(
    scope: SuppressionReason | None, scope_population: int, part_population: int, k: int
) -> SuppressionReason | None:
    """Figures over part of a cell (a board's members with data, the homes of one dwelling
    type): the part is a cell of its own (rule 1), withheld with its scope (the scope's total
    would otherwise come back from the part and the rest), and withheld when the rest of the
    scope covers 1 to k − 1 people (the scope's total minus the part would give them: rule 2
    with the part and the rest as the sibling group)."""
    if part_population < k:
        return SuppressionReason.SMALL_CELL
    if scope is not None:
        return scope
    if 0 < scope_population - part_population < k:
        return SuppressionReason.COMPLEMENTARY
    return None


def groups_of_people(
    root: str, path: str, people: Mapping[str, Iterable[int]]
) -> dict[str, list[Cell]]:
    """Sibling groups from ``root`` down to ``path``'s parent, for figures over a set of people
    (a campaign's participants): ``people`` maps a leaf's path (a household's) to the people it
    contributes; a node's population is its distinct people. Nodes without any are not cells
    (there is nobody in them to protect)."""
    chain = [p for p in parent_paths(path) if p.startswith(root)]
    groups: dict[str, list[Cell]] = {}
    for parent in chain:
        members: dict[str, set[int]] = defaultdict(set)
        for leaf, who in people.items():
            if leaf.startswith(parent) and leaf != parent:
                child = parent + leaf[len(parent) :].split("/", 1)[0] + "/"
                members[child].update(who)
        groups[parent] = [Cell(child, len(who)) for child, who in sorted(members.items()) if who]
    return groups


def decide_people(
    path: str, root: str, people: Mapping[str, Iterable[int]], k: int
) -> SuppressionReason | None:
    """Rules 1–3 for figures over the people under ``path`` (see ``groups_of_people``), when
    the same figures are published for ``root`` and the nodes between."""
    mine = {p for leaf, who in people.items() if leaf.startswith(path) for p in who}
    if len(mine) < k:
        return SuppressionReason.SMALL_CELL
    return decide(path, groups_of_people(root, path, people), k, root=root)


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


# -- the decisions, for a viewer ---------------------------------------------------------------
# Every figure about people goes through one of these with the viewer's level on the node (from
# authz); the cell's decision itself never depends on the viewer.


def exempt(access: Access, k: int) -> bool:
    """Viewers who may see the node's people one by one, or suppression off (k = 1)."""
    return k <= 1 or access >= Access.PERSONAL


async def node_cells(
    loader: GroupLoader,
    k: int,
    cells: Sequence[tuple[str, Access, bool]],
    day: date,
    *,
    via: str = "communities",
) -> list[SuppressionReason | None]:
    """Nodes' own figures (footprints, reductions, leaderboard entries) at the end of ``day``,
    for (path, the viewer's level on it, whether it is one person); one statement for all.
    ``via`` is how an enterprise counts its people."""
    pending = [path for path, access, person in cells if not exempt(access, k) and not person]
    groups = await loader.groups(pending, via, day) if pending else {}
    return [
        None
        if exempt(access, k)
        else SuppressionReason.SMALL_CELL  # one person
        if person
        else decide(path, groups, k)
        for path, access, person in cells
    ]


async def node_cell(
    loader: GroupLoader,
    access: Access,
    k: int,
    path: str,
    day: date,
    *,
    via: str = "communities",
    person: bool = False,
) -> SuppressionReason | None:
    """One node's own figures: see ``node_cells``."""
    return (await node_cells(loader, k, [(path, access, person)], day, via=via))[0]


@dataclass(frozen=True)
class PartDecision:
    scope: SuppressionReason | None  # the scope node's own cell
    part: SuppressionReason | None  # the figures over the part (``decide_part``)


async def part_of_node(
    loader: GroupLoader,
    access: Access,
    k: int,
    scope_path: str,
    day: date,
    part_population: int,
    *,
    via: str = "communities",
) -> PartDecision:
    """Figures over part of a node's people (a leaderboard, a statement's peers): see
    ``decide_part``."""
    if exempt(access, k):
        return PartDecision(None, None)
    groups = await loader.groups([scope_path], via, day)
    scope = decide(scope_path, groups, k)
    siblings = groups.get(_parent_of(scope_path), ()) if scope_path else ()
    scope_population = next((c.population for c in siblings if c.path == scope_path), 0)
    return PartDecision(scope, decide_part(scope, scope_population, part_population, k))


def people_cell(
    access: Access, k: int, path: str, root: str, people: Mapping[str, Iterable[int]]
) -> SuppressionReason | None:
    """Figures over the people of a set under ``path`` (a campaign's participants), published
    for ``root`` too: see ``decide_people``."""
    if exempt(access, k):
        return None
    return decide_people(path, root, people, k)


def _is(path: str, letter: str) -> bool:
    return bool(path) and path.rstrip("/").rsplit("/", 1)[-1].startswith(letter)
