"""Statements: a household's or a person's period at a glance, for the API and the printable page.

Weeks are seven-day buckets counted from the period's first day (the default period, the 28
days up to yesterday, is exactly four weeks); days are the same figures day by day. Usage comes
from the activity records that start in each day; emissions, clean-energy offset and net come
from the totals, like footprints. The rankings are the positions on the peers' net-per-capita
and electricity-per-capita boards (see ``leaderboards``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import sqlalchemy as sa

from carbongraph.accounting.activities import ACTIVITY_TYPES
from carbongraph.accounting.reads import Period
from carbongraph.engagement import leaderboards as lb
from carbongraph.models.tables import AR, CE, POP, C, H, M, R, T

DORM_ROOM = "DORM_ROOM"
CAMPUS = "CAMPUS"


@dataclass
class Usage:
    activity_type: str
    unit: str
    quantity_milli: int = 0
    emissions_g: int = 0  # location-based
    offset_g: int = 0


@dataclass(kw_only=True)
class Figures:
    """Use by utility and emissions over one week or one day of a statement."""

    usage: dict[str, Usage] = field(default_factory=dict)
    gross_g: int = 0
    offset_g: int = 0

    @property
    def net_g(self) -> int:
        return self.gross_g - self.offset_g


@dataclass
class Week(Figures):
    start: date
    end: date


@dataclass
class Day(Figures):
    day: date


@dataclass
class Standing:
    """Where an account stands on its peers' board, and who the peers are: what the net and
    the electricity ranking share."""

    peers: str  # "dorm rooms of Xiangshan Campus"
    peer_community: str  # "Xiangshan Campus"
    peer_scope_path: str
    rank: int | None
    percentile: float | None
    entry_count: int
    population: int

    @classmethod
    def on(
        cls, board: lb.Board, peers: str, community: str, mine: lb.Entry | None, top: lb.Entry
    ) -> Standing:
        """From what ``lb.standing`` returns: the account's entry (None without data) and
        the board's top entry."""
        return cls(
            peers=peers,
            peer_community=community,
            peer_scope_path=board.scope_path,
            rank=mine.rank if mine else None,
            percentile=mine.percentile if mine else None,
            entry_count=top.entry_count,
            population=top.board_population,
        )


@dataclass
class Ranking:
    standing: Standing
    average_net_g: int | None
    average_per_capita_g: int | None


@dataclass
class UsageRanking:
    """The standing on the peers' board of one utility's use per person (lowest first)."""

    activity_type: str
    unit: str
    standing: Standing
    per_capita_milli: int | None  # this account's, in thousandths of `unit`
    average_per_capita_milli: int | None  # the peers' use per person


@dataclass
class StatementData:
    period: Period
    previous: Period
    weeks: list[Week]
    days: list[Day]
    usage: list[Usage]
    gross_g: int
    offset_g: int
    net_g: int
    previous_net_g: int
    credits: int
    member_count: int
    ranking: Ranking | None
    # Who is ranked and among whom (board, description, community name): the electricity
    # ranking is computed from these only when it is asked for.
    subject: Subject | None = None
    peers: tuple[lb.Board, str, str] | None = None

    @property
    def net_change_g(self) -> int:
        return self.net_g - self.previous_net_g

    @property
    def net_change_percent(self) -> float | None:
        if self.previous_net_g == 0:
            return None
        return round(100 * self.net_change_g / abs(self.previous_net_g), 1)

    @property
    def per_capita_g(self) -> int | None:
        return _divide(self.net_g, self.member_count)


def _divide(grams: int, people: int) -> int | None:
    if people <= 0:
        return None
    return int((Decimal(grams) / people).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def previous_period(period: Period) -> Period:
    length = (period.end - period.start).days + 1
    return Period(period.start - timedelta(days=length), period.start - timedelta(days=1))


def _weeks(period: Period) -> list[Week]:
    weeks, start = [], period.start
    while start <= period.end:
        weeks.append(Week(start, min(start + timedelta(days=6), period.end)))
        start += timedelta(days=7)
    return weeks


def _week_index(period: Period, day: date) -> int:
    return (day - period.start).days // 7


def _days(period: Period) -> list[Day]:
    return [
        Day(period.start + timedelta(days=n)) for n in range((period.end - period.start).days + 1)
    ]


@dataclass(frozen=True)
class Subject:
    """Whose statement: a household ("H") or an individual ("I"), and where they live."""

    node: str
    node_id: int
    household_id: int | None
    household_path: str | None
    dwelling_type: str | None


async def household_of(db: Any, individual_id: int, on: date) -> Any:
    """The household (id, path, dwelling_type) a person lived in on ``on``, or None."""
    return (
        await db.execute(
            sa.select(H.c.id, H.c.path, H.c.dwelling_type)
            .select_from(M.join(H, H.c.id == M.c.household_id))
            .where(
                M.c.individual_id == individual_id,
                M.c.valid_from <= on,
                sa.or_(M.c.valid_to.is_(None), M.c.valid_to > on),
            )
        )
    ).first()


async def peer_board(
    db: Any, subject: Subject, period: Period, metric: str = lb.NET_EMISSIONS_PER_CAPITA
) -> tuple[lb.Board, str, str] | None:
    """Dorm rooms are compared with the dorm rooms of their campus; other homes with the
    homes of their community. People are compared with the people of those peers.
    (board, description, the peer community's name)."""
    if subject.household_path is None:
        return None
    community_ids = [
        int(s[1:]) for s in subject.household_path.strip("/").split("/") if s.startswith("c")
    ]
    rows = list(
        await db.execute(
            sa.select(C.c.id, C.c.path, C.c.name, C.c.kind).where(C.c.id.in_(community_ids))
        )
    )
    by_id = {r.id: r for r in rows}
    level = lb.INDIVIDUALS if subject.node == "I" else lb.HOUSEHOLDS
    if subject.dwelling_type == DORM_ROOM:
        campuses = [by_id[c] for c in community_ids if c in by_id and by_id[c].kind == CAMPUS]
        scope = campuses[0] if campuses else by_id[community_ids[-1]]
        board = lb.Board(level, metric, period, scope.path, dwelling_type=DORM_ROOM)
        return board, f"dorm rooms of {scope.name}", scope.name
    scope = by_id[community_ids[-1]]
    board = lb.Board(level, metric, period, scope.path, exclude_dwelling_type=DORM_ROOM)
    return board, f"homes of {scope.name}", scope.name


async def build(db: Any, subject: Subject, period: Period) -> StatementData:
    previous = previous_period(period)
    weeks = _weeks(period)
    days = _days(period)

    # Usage by start day and activity type (bounded by days × types, not by records).
    account = (
        R.c.household_id == subject.node_id
        if subject.node == "H"
        else sa.and_(R.c.account_type == "Individual", R.c.account_id == subject.node_id)
    )
    usage_rows = await db.execute(
        sa.select(
            R.c.period_start,
            R.c.activity_type,
            sa.func.sum(R.c.quantity_milli),
            sa.func.sum(R.c.location_g),
            sa.func.sum(R.c.offset_g),
        )
        .where(account, R.c.period_start >= period.start, R.c.period_start <= period.end)
        .group_by(R.c.period_start, R.c.activity_type)
    )
    totals_usage: dict[str, Usage] = {}
    has_data = False
    for day, activity, quantity, location, offset in usage_rows:
        has_data = True
        unit = ACTIVITY_TYPES[activity].unit if activity in ACTIVITY_TYPES else ""
        buckets = (
            weeks[_week_index(period, day)].usage,
            days[(day - period.start).days].usage,
            totals_usage,
        )
        for bucket in buckets:
            usage = bucket.setdefault(activity, Usage(activity, unit))
            usage.quantity_milli += int(quantity or 0)
            usage.emissions_g += int(location or 0)
            usage.offset_g += int(offset or 0)

    # Emissions per day of this and the previous period, and the population at the end.
    key = (T.c.node == subject.node, T.c.node_id == subject.node_id, T.c.via == "")
    inventory = (
        sa.select(T.c.day, T.c.kind, sa.func.sum(T.c.location_g))
        .where(
            *key,
            T.c.day >= previous.start,
            T.c.day <= period.end,
            T.c.kind.in_(("emission", "offset")),
        )
        .group_by(T.c.day, T.c.kind)
    )
    people = sa.select(
        sa.literal(None, sa.Date()), sa.literal("population"), sa.func.sum(POP.c.delta)
    ).where(
        POP.c.node == subject.node,
        POP.c.node_id == subject.node_id,
        POP.c.via == "",
        POP.c.day <= period.end,
    )
    previous_net = 0
    member_count = 1 if subject.node == "I" else 0
    for day, kind, grams in await db.execute(sa.union_all(inventory, people)):
        grams = int(grams or 0)
        if kind == "population":
            if subject.node != "I":
                member_count = grams
            continue
        signed = grams if kind == "emission" else -grams
        if day < period.start:
            previous_net += signed
            continue
        has_data = True
        for bucket in (weeks[_week_index(period, day)], days[(day - period.start).days]):
            if kind == "emission":
                bucket.gross_g += grams
            else:
                bucket.offset_g += grams

    credits_filter = (
        AR.c.household_id == subject.node_id
        if subject.node == "H"
        else CE.c.individual_id == subject.node_id
    )
    credits = await db.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(CE.c.amount), 0))
        .select_from(CE.join(AR, AR.c.id == CE.c.action_record_id))
        .where(
            credits_filter,
            CE.c.kind.in_(("GRANT", "REVERSAL")),
            AR.c.occurred_on >= period.start,
            AR.c.occurred_on <= period.end,
        )
    )

    ranking = None
    peers = await peer_board(db, subject, period) if has_data else None
    if peers is not None:
        board, description, community = peers
        mine, top = await lb.standing(db, board, subject.node_id)
        if top is not None:
            ranking = Ranking(
                standing=Standing.on(board, description, community, mine, top),
                average_net_g=_divide(top.board_net_g, top.entry_count),
                average_per_capita_g=_divide(top.board_net_g, top.board_population),
            )

    gross = sum(w.gross_g for w in weeks)
    offset = sum(w.offset_g for w in weeks)
    return StatementData(
        period=period,
        previous=previous,
        weeks=weeks if has_data else [],
        days=days if has_data else [],
        usage=sorted(totals_usage.values(), key=lambda u: u.activity_type),
        gross_g=gross,
        offset_g=offset,
        net_g=gross - offset,
        previous_net_g=previous_net,
        credits=int(credits or 0),
        member_count=member_count,
        ranking=ranking,
        subject=subject,
        peers=peers,
    )


async def electricity_ranking(db: Any, data: StatementData) -> UsageRanking | None:
    """The campus-wide electricity ranking of the seed's dorm bill: the statement's peers by
    electricity per person (one ranked statement)."""
    if data.peers is None or data.subject is None:
        return None
    net_board, description, community = data.peers
    board = lb.Board(
        net_board.level,
        lb.ELECTRICITY_PER_CAPITA,
        net_board.period,
        net_board.scope_path,
        dwelling_type=net_board.dwelling_type,
        exclude_dwelling_type=net_board.exclude_dwelling_type,
    )
    mine, top = await lb.standing(db, board, data.subject.node_id)
    if top is None:
        return None
    return UsageRanking(
        activity_type=lb.ELECTRICITY,
        unit=ACTIVITY_TYPES[lb.ELECTRICITY].unit,
        standing=Standing.on(board, description, community, mine, top),
        per_capita_milli=_divide(mine.quantity_milli, mine.population) if mine else None,
        average_per_capita_milli=_divide(top.board_quantity_milli, top.board_population),
    )
