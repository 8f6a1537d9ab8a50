"""Leaderboards ranked in SQL over the pre-aggregated totals.

A board ranks the members of a scope (households or people of a community, top-level
communities of an enterprise) by one metric over a period. One statement computes it: the
members, their summed ``footprint_total`` rows and populations, then RANK / PERCENT_RANK /
ROW_NUMBER windows, cut to one page with ``LIMIT``; nothing is sorted in Python.

Only members with data in the period are on a board (a household without readings is not
"zero emissions"); per-capita boards also leave out members without people at the period end.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import sqlalchemy as sa

from carbongraph.accounting.reads import Period
from carbongraph.errors import BadUserInput
from carbongraph.models.tables import POP, C, H, I, M, R, T

REDUCTIONS = "REDUCTIONS"
NET_EMISSIONS_PER_CAPITA = "NET_EMISSIONS_PER_CAPITA"
# Statements only (not a LeaderboardMetric: its value is kWh, not grams): metered
# electricity per person, from the records that start in the period (as a statement's usage).
ELECTRICITY_PER_CAPITA = "ELECTRICITY_PER_CAPITA"
ELECTRICITY = "ELECTRICITY"

# Member levels: households, individuals, communities (the node letters of footprint_total).
HOUSEHOLDS, INDIVIDUALS, COMMUNITIES = "H", "I", "C"


@dataclass(frozen=True)
class Board:
    level: str
    metric: str
    period: Period
    # Members live under this path (a community's or an enterprise's).
    scope_path: str
    # For COMMUNITIES: the enterprise whose top-level communities compete.
    enterprise_id: int | None = None
    # Households (or their people) of one dwelling type only, or of every type but one.
    dwelling_type: str | None = None
    exclude_dwelling_type: str | None = None

    @property
    def shape(self) -> tuple[str, str, str]:
        """What the statement's text depends on; the rest are bound parameters."""
        dwelling = "only" if self.dwelling_type else "except" if self.exclude_dwelling_type else ""
        return self.level, self.metric, dwelling

    def params(self) -> dict[str, Any]:
        return {
            "scope_path": self.scope_path,
            "enterprise_id": self.enterprise_id,
            "dwelling": self.dwelling_type or self.exclude_dwelling_type,
            "start": self.period.start,
            "end": self.period.end,
        }

    @property
    def key(self) -> str:
        """What pseudonyms are stable for: the same members ranked the same way (periods
        change, the board does not)."""
        dwelling = self.dwelling_type or (
            f"not-{self.exclude_dwelling_type}" if self.exclude_dwelling_type else "all"
        )
        return f"{self.level}|{self.scope_path}|{self.metric}|{dwelling}"


@dataclass
class Entry:
    position: int
    member_id: int
    path: str
    name: str
    rank: int
    percent_rank: float
    net_g: int
    reduced_g: int
    population: int
    # Board-wide, from window aggregates (the same on every row).
    entry_count: int
    board_population: int
    board_net_g: int
    # ELECTRICITY_PER_CAPITA boards: thousandths of a kWh (0 on the others).
    quantity_milli: int = 0
    board_quantity_milli: int = 0

    @property
    def percentile(self) -> float:
        """Share of the board this entry ranks at or above: 100 for the best, 0 for the worst."""
        return round(100 * (1 - self.percent_rank), 2)

    @property
    def per_capita_g(self) -> int | None:
        if self.population <= 0:
            return None
        return int(
            (Decimal(self.net_g) / self.population).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
        )

    def value(self, metric: str) -> int | None:
        return self.reduced_g if metric == REDUCTIONS else self.per_capita_g


START = sa.bindparam("start", type_=sa.Date())
END = sa.bindparam("end", type_=sa.Date())


def _members(level: str, dwelling_mode: str) -> sa.Select[Any]:
    """(id, path, name) of the members; ``path`` is what authorization tests."""
    if level == COMMUNITIES:
        return sa.select(C.c.id, C.c.path, C.c.name).where(
            C.c.enterprise_id == sa.bindparam("enterprise_id", type_=sa.Integer()),
            C.c.parent_id.is_(None),
            C.c.archived_at.is_(None),
        )
    homes = [
        H.c.path.startswith(sa.bindparam("scope_path", type_=sa.String()), autoescape=False),
        H.c.archived_at.is_(None),
    ]
    dwelling = sa.bindparam("dwelling", type_=sa.String())
    if dwelling_mode == "only":
        homes.append(H.c.dwelling_type == dwelling)
    elif dwelling_mode == "except":
        homes.append(H.c.dwelling_type != dwelling)
    if level == HOUSEHOLDS:
        return sa.select(H.c.id, H.c.path, H.c.name).where(*homes)
    # People who live in such a household at the end of the period.
    end = END
    return (
        sa.select(I.c.id, H.c.path, I.c.display_name.label("name"))
        .select_from(M.join(H, H.c.id == M.c.household_id).join(I, I.c.id == M.c.individual_id))
        .where(
            *homes,
            M.c.valid_from <= end,
            sa.or_(M.c.valid_to.is_(None), M.c.valid_to > end),
            I.c.archived_at.is_(None),
        )
    )


@functools.cache
def ranked(shape: tuple[str, str, str]) -> Any:
    """The whole board of this shape as a subquery with rank, percent_rank and position
    windows; built once per shape (building it costs more than running it), bound per board."""
    level, metric, dwelling_mode = shape
    members = _members(level, dwelling_mode).cte("board_members")
    start, end = START, END
    net = sa.func.sum(
        sa.case(
            (T.c.kind == "emission", T.c.location_g),
            (T.c.kind == "offset", -T.c.location_g),
            else_=0,
        )
    )
    reduced = sa.func.sum(sa.case((T.c.kind == "reduction", T.c.location_g), else_=0))
    inventory_rows = sa.func.sum(sa.case((T.c.kind.in_(("emission", "offset")), 1), else_=0))
    reduction_rows = sa.func.sum(sa.case((T.c.kind == "reduction", 1), else_=0))
    if metric == ELECTRICITY_PER_CAPITA:
        # Quantities are not in the totals: the records themselves, by start day (indexed by
        # household and day, or by account and day), as in a statement's usage.
        owner = R.c.household_id if level == HOUSEHOLDS else R.c.account_id
        kind = [] if level == HOUSEHOLDS else [R.c.account_type == "Individual"]
        totals = (
            sa.select(
                owner.label("member_id"),
                sa.literal(0).label("net"),
                sa.literal(0).label("reduced"),
                sa.func.sum(R.c.quantity_milli).label("quantity"),
                sa.func.count().label("inventory_rows"),
            )
            .where(
                *kind,
                R.c.activity_type == ELECTRICITY,
                R.c.period_start >= start,
                R.c.period_start <= end,
                owner.in_(sa.select(members.c.id)),
            )
            .group_by(owner)
            .subquery("board_totals")
        )
    else:
        totals = (
            sa.select(
                T.c.node_id.label("member_id"),
                net.label("net"),
                reduced.label("reduced"),
                sa.literal(0).label("quantity"),
                inventory_rows.label("inventory_rows"),
                reduction_rows.label("reduction_rows"),
            )
            .where(
                T.c.node == level,
                T.c.via == "",
                T.c.day >= start,
                T.c.day <= end,
                T.c.node_id.in_(sa.select(members.c.id)),
            )
            .group_by(T.c.node_id)
            .subquery("board_totals")
        )
    if level == INDIVIDUALS:
        population: Any = sa.literal(1)
        source = members.join(totals, totals.c.member_id == members.c.id)
    else:
        people = (
            sa.select(POP.c.node_id.label("member_id"), sa.func.sum(POP.c.delta).label("people"))
            .where(
                POP.c.node == level,
                POP.c.via == "",
                POP.c.day <= end,
                POP.c.node_id.in_(sa.select(members.c.id)),
            )
            .group_by(POP.c.node_id)
            .subquery("board_people")
        )
        population = sa.func.coalesce(people.c.people, 0)
        source = members.join(totals, totals.c.member_id == members.c.id).outerjoin(
            people, people.c.member_id == members.c.id
        )
    if metric == REDUCTIONS:
        value: Any = totals.c.reduced
        has_data = totals.c.reduction_rows > 0
    elif metric == ELECTRICITY_PER_CAPITA:
        value = sa.cast(totals.c.quantity, sa.Float) / population
        has_data = sa.and_(totals.c.inventory_rows > 0, population > 0)
    else:
        # Exact ratios compare exactly: equal fractions give the same double, so ties tie.
        value = sa.cast(totals.c.net, sa.Float) / population
        has_data = sa.and_(totals.c.inventory_rows > 0, population > 0)
    board_rows = (
        sa.select(
            members.c.id.label("member_id"),
            members.c.path,
            members.c.name,
            totals.c.net,
            totals.c.reduced,
            totals.c.quantity,
            population.label("population"),
            value.label("value"),
        )
        .select_from(source)
        .where(has_data)
        .subquery("board_rows")
    )
    b = board_rows
    order = b.c.value.desc() if metric == REDUCTIONS else b.c.value.asc()
    return sa.select(
        b.c.member_id,
        b.c.path,
        b.c.name,
        b.c.net,
        b.c.reduced,
        b.c.quantity,
        b.c.population,
        sa.func.rank().over(order_by=order).label("rank"),
        sa.func.percent_rank().over(order_by=order).label("percent_rank"),
        sa.func.row_number().over(order_by=(order, b.c.member_id)).label("position"),
        sa.func.count().over().label("entry_count"),
        sa.func.sum(b.c.population).over().label("board_population"),
        sa.func.sum(b.c.net).over().label("board_net"),
        sa.func.sum(b.c.quantity).over().label("board_quantity"),
    ).subquery("ranked_board")


def _entry(row: Any) -> Entry:
    return Entry(
        position=int(row.position),
        member_id=int(row.member_id),
        path=row.path,
        name=row.name,
        rank=int(row.rank),
        percent_rank=float(row.percent_rank),
        net_g=int(row.net or 0),
        reduced_g=int(row.reduced or 0),
        population=int(row.population or 0),
        entry_count=int(row.entry_count),
        board_population=int(row.board_population or 0),
        board_net_g=int(row.board_net or 0),
        quantity_milli=int(row.quantity or 0),
        board_quantity_milli=int(row.board_quantity or 0),
    )


@functools.cache
def _page_statement(shape: tuple[str, str, str]) -> Any:
    r = ranked(shape)
    return (
        sa.select(r)
        .where(r.c.position > sa.bindparam("after", type_=sa.Integer()))
        .order_by(r.c.position)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )


@functools.cache
def _standing_statement(shape: tuple[str, str, str]) -> Any:
    r = ranked(shape)
    return sa.select(r).where(
        sa.or_(r.c.member_id == sa.bindparam("member", type_=sa.Integer()), r.c.position == 1)
    )


@dataclass
class BoardPage:
    entries: list[Entry]
    has_next_page: bool
    entry_count: int
    population: int


async def page(db: Any, board: Board, first: int, after: int) -> BoardPage:
    """Entries after position ``after`` (0: from the top), at most ``first``; one statement,
    plus one for the board's size only when the page is empty but the board may not be."""
    r = ranked(board.shape)
    rows = list(
        await db.execute(
            _page_statement(board.shape), {**board.params(), "after": after, "limit": first + 1}
        )
    )
    entries = [_entry(row) for row in rows[:first]]
    if rows:
        return BoardPage(
            entries, len(rows) > first, int(rows[0].entry_count), int(rows[0].board_population)
        )
    if after == 0 and first > 0:
        return BoardPage([], False, 0, 0)
    count, population = (
        await db.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(r.c.population), 0)),
            board.params(),
        )
    ).one()
    return BoardPage([], False, int(count), int(population))


async def standing(db: Any, board: Board, member_id: int) -> tuple[Entry | None, Entry | None]:
    """(the member's entry or None, the top entry for board-wide figures or None): one
    statement."""
    rows = [
        _entry(row)
        for row in await db.execute(
            _standing_statement(board.shape), {**board.params(), "member": member_id}
        )
    ]
    mine = next((e for e in rows if e.member_id == member_id), None)
    top = next((e for e in rows if e.position == 1), None)
    return mine, top


_CURSOR = "board:"


def encode_cursor(position: int) -> str:
    return base64.b64encode(f"{_CURSOR}{position}".encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        raw = base64.b64decode(cursor.encode(), validate=True).decode()
        if not raw.startswith(_CURSOR):
            raise ValueError(raw)
        position = int(raw[len(_CURSOR) :])
        if position < 0:
            raise ValueError(raw)
        return position
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadUserInput("`after` is not a valid cursor.", argument="after") from exc


def default_period(today: date) -> Period:
    """The last four weeks: the 28 days up to yesterday."""
    return Period(today - timedelta(days=28), today - timedelta(days=1))
