"""Reading footprints and reductions from the pre-aggregated totals, and tracing them back to
records and factors (``explain``) or recomputing them (``recalculate``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import sqlalchemy as sa

from carbongraph.accounting.activities import ACTIVITY_TYPES
from carbongraph.accounting.attribution import household_regions
from carbongraph.accounting.compute import compute
from carbongraph.accounting.factors import FactorLibrary
from carbongraph.accounting.rollup import Attribution, NodeKey, TotalsDelta
from carbongraph.models import Community, Enterprise
from carbongraph.models.tables import EM, POP, F, H, R, T

SCOPE3_CATEGORIES = {
    1: "Purchased goods and services",
    2: "Capital goods",
    3: "Fuel- and energy-related activities",
    4: "Upstream transportation and distribution",
    5: "Waste generated in operations",
    6: "Business travel",
    7: "Employee commuting",
    8: "Upstream leased assets",
    9: "Downstream transportation and distribution",
    10: "Processing of sold products",
    11: "Use of sold products",
    12: "End-of-life treatment of sold products",
    13: "Downstream leased assets",
    14: "Franchises",
    15: "Investments",
}


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("the period ends before it starts")


def per_capita(grams: int, members: int) -> int | None:
    """Grams per member, rounded half-even to whole grams; None without members. Every
    per-capita figure (footprints, reductions, inventories) is this one."""
    if members <= 0:
        return None
    return int((Decimal(grams) / members).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@dataclass
class FootprintData:
    scope1: int = 0
    scope2_location: int = 0
    scope2_market: int = 0
    scope3_by_category: dict[int, int] = field(default_factory=dict)
    offset: int = 0
    reductions: dict[str, int] = field(default_factory=dict)  # scope "1","2","3","3+" → grams
    record_count: int = 0
    member_count: int = 0

    @property
    def scope3(self) -> int:
        return sum(self.scope3_by_category.values())

    @property
    def gross(self) -> int:
        return self.scope1 + self.scope2_location + self.scope3

    @property
    def net(self) -> int:
        return self.gross - self.offset

    @property
    def reductions_within_scopes(self) -> int:
        return sum(self.reductions.get(s, 0) for s in ("1", "2", "3"))

    @property
    def reductions_total(self) -> int:
        """Every avoided gram, Scopes 1-3 and Scope 3+ (never netted against emissions)."""
        return self.reductions_within_scopes + self.reductions.get("3+", 0)

    def add(
        self, kind: str, scope: str, category: int, location: int, market: int, count: int
    ) -> None:
        if kind == "emission":
            self.record_count += count
            if scope == "1":
                self.scope1 += location
            elif scope == "2":
                self.scope2_location += location
                self.scope2_market += market
            elif scope == "3":
                self.scope3_by_category[category] = (
                    self.scope3_by_category.get(category, 0) + location
                )
        elif kind == "offset":
            self.record_count += count
            self.offset += location
        elif kind == "reduction":
            self.reductions[scope] = self.reductions.get(scope, 0) + location


def _key_filter(keys: Sequence[NodeKey], table: sa.Table) -> sa.ColumnElement[bool]:
    return sa.tuple_(table.c.node, table.c.node_id, table.c.via).in_(list(keys))


def _summed_totals(keys: Sequence[NodeKey], period: Period, *by: Any) -> sa.Select[Any]:
    """The totals rows of ``keys`` in ``period`` summed per node, ``by`` (e.g. the day), kind,
    scope and category: (node, node_id, via, *by, kind, scope, category, location, market,
    record count), the columns ``FootprintData.add`` takes."""
    group = (T.c.node, T.c.node_id, T.c.via, *by, T.c.kind, T.c.scope, T.c.category)
    return (
        sa.select(
            *group,
            sa.func.sum(T.c.location_g),
            sa.func.sum(T.c.market_g),
            sa.func.sum(T.c.record_count),
        )
        .where(_key_filter(keys, T), T.c.day >= period.start, T.c.day <= period.end)
        .group_by(*group)
    )


async def load_footprints(
    db: Any, keys: Sequence[NodeKey], period: Period
) -> dict[NodeKey, FootprintData]:
    """Footprints of many nodes for one period in one statement (totals ∪ population)."""
    totals = _summed_totals(keys, period)
    population = (
        sa.select(
            POP.c.node,
            POP.c.node_id,
            POP.c.via,
            sa.literal("population"),
            sa.literal(""),
            sa.literal(0),
            sa.func.sum(POP.c.delta),
            sa.literal(0),
            sa.literal(0),
        )
        .where(_key_filter(keys, POP), POP.c.day <= period.end)
        .group_by(POP.c.node, POP.c.node_id, POP.c.via)
    )
    out = {tuple(key): FootprintData() for key in keys}
    for node, node_id, via, kind, scope, category, location, market, count in await db.execute(
        sa.union_all(totals, population)
    ):
        data = out[(node, node_id, via)]
        if kind == "population":
            data.member_count = int(location or 0)
        else:
            data.add(
                kind, scope, int(category), int(location or 0), int(market or 0), int(count or 0)
            )
    for (node, _, _), data in out.items():
        if node == "I":
            data.member_count = 1
    return out  # type: ignore[return-value]


@dataclass
class SeriesPoint:
    start: date
    end: date
    data: FootprintData


def bucket_start(day: date, granularity: str) -> date:
    if granularity == "DAY":
        return day
    if granularity == "WEEK":
        return day - timedelta(days=day.weekday())
    if granularity == "MONTH":
        return day.replace(day=1)
    return day.replace(month=1, day=1)


def bucket_end(start: date, granularity: str) -> date:
    if granularity == "DAY":
        return start
    if granularity == "WEEK":
        return start + timedelta(days=6)
    if granularity == "MONTH":
        following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        return following - timedelta(days=1)
    return start.replace(month=12, day=31)


async def load_series(db: Any, key: NodeKey, period: Period, granularity: str) -> list[SeriesPoint]:
    return (await load_series_many(db, [key], period, granularity))[tuple(key)]  # type: ignore[index]


async def load_series_many(
    db: Any, keys: Sequence[NodeKey], period: Period, granularity: str
) -> dict[NodeKey, list[SeriesPoint]]:
    """Series of many nodes for one period and granularity in one statement."""
    rows = await db.execute(_summed_totals(keys, period, T.c.day))
    buckets: dict[NodeKey, dict[date, FootprintData]] = {
        tuple(key): defaultdict(FootprintData)  # type: ignore[misc]
        for key in keys
    }
    for node, node_id, via, day, kind, scope, category, location, market, count in rows:
        buckets[(node, node_id, via)][bucket_start(day, granularity)].add(
            kind, scope, int(category), int(location), int(market), int(count)
        )
    return {key: _points(found, period, granularity) for key, found in buckets.items()}


def _points(
    buckets: dict[date, FootprintData], period: Period, granularity: str
) -> list[SeriesPoint]:
    points = []
    start = bucket_start(period.start, granularity)
    while start <= period.end:
        end = bucket_end(start, granularity)
        points.append(
            SeriesPoint(
                max(start, period.start), min(end, period.end), buckets.get(start, FootprintData())
            )
        )
        start = end + timedelta(days=1)
    return points


def record_filter(key: NodeKey, path: str | None) -> sa.ColumnElement[bool]:
    """Activity records that roll up into ``key`` (by the record's start day)."""
    node, node_id, via = key
    if node == "P":
        return sa.true()
    if node == "I":
        return sa.and_(R.c.account_type == "Individual", R.c.account_id == node_id)
    if node == "H":
        return R.c.household_id == node_id
    if node == "E" and via == "employees":
        return sa.and_(
            R.c.account_type == "Individual",
            sa.exists().where(
                EM.c.individual_id == R.c.account_id,
                EM.c.enterprise_id == node_id,
                EM.c.valid_from <= R.c.period_start,
                sa.or_(EM.c.valid_to.is_(None), EM.c.valid_to > R.c.period_start),
            ),
        )
    assert path is not None
    return R.c.household_id.in_(
        sa.select(H.c.id).where(H.c.path.startswith(path, autoescape=False))
    )


async def node_path(db: Any, key: NodeKey) -> str | None:
    table = {"E": Enterprise.__table__, "C": Community.__table__}.get(key[0])
    if table is None:
        return None
    return await db.scalar(sa.select(table.c.path).where(table.c.id == key[1]))


@dataclass
class ExplainRow:
    activity_type: str
    record_count: int
    quantity_milli: int
    location_g: int
    market_g: int
    offset_g: int
    factor: Any
    market_factor: Any


async def explain(db: Any, key: NodeKey, period: Period) -> list[ExplainRow]:
    return (await explain_many(db, [key], period))[tuple(key)]  # type: ignore[index]


async def node_paths(db: Any, keys: Sequence[NodeKey]) -> dict[NodeKey, str | None]:
    """Paths of the enterprise and community keys (one statement when there are any)."""
    wanted = {
        node: sorted({k[1] for k in keys if k[0] == node})
        for node in ("E", "C")
        if any(k[0] == node for k in keys)
    }
    found: dict[tuple[str, int], str] = {}
    if wanted:
        tables = {"E": Enterprise.__table__, "C": Community.__table__}
        selects = [
            sa.select(
                # Inlined constants: PostgreSQL cannot type a bound parameter in a UNION.
                sa.literal_column(f"'{node}'").label("node"),
                tables[node].c.id,
                tables[node].c.path,
            ).where(tables[node].c.id.in_(ids))
            for node, ids in wanted.items()
        ]
        statement = selects[0] if len(selects) == 1 else sa.union_all(*selects)
        found = {(node, node_id): path for node, node_id, path in await db.execute(statement)}
    return {tuple(k): found.get((k[0], k[1])) for k in keys}  # type: ignore[misc]


async def explain_many(
    db: Any, keys: Sequence[NodeKey], period: Period
) -> dict[NodeKey, list[ExplainRow]]:
    """``explain`` of many nodes for one period: their paths, one statement for the records of
    all of them (one branch per node), one for the factors."""
    keys = list(dict.fromkeys(tuple(k) for k in keys))  # type: ignore[misc]
    paths = await node_paths(db, keys)
    branches = [
        sa.select(
            sa.literal_column(str(int(index))).label("k"),
            R.c.activity_type.label("activity_type"),
            R.c.factor_id.label("factor_id"),
            R.c.market_factor_id.label("market_factor_id"),
            sa.func.count().label("n"),
            sa.func.sum(R.c.quantity_milli).label("q"),
            sa.func.sum(R.c.location_g).label("loc"),
            sa.func.sum(R.c.market_g).label("mkt"),
            sa.func.sum(R.c.offset_g).label("off"),
        )
        .where(
            record_filter(key, paths[key]),
            R.c.period_start >= period.start,
            R.c.period_start <= period.end,
        )
        .group_by(R.c.activity_type, R.c.factor_id, R.c.market_factor_id)
        for index, key in enumerate(keys)
    ]
    union = (branches[0] if len(branches) == 1 else sa.union_all(*branches)).subquery()
    statement = sa.select(union).order_by(union.c.k, union.c.activity_type, union.c.factor_id)
    rows = list(await db.execute(statement))
    factor_ids = {r.factor_id for r in rows} | {
        r.market_factor_id for r in rows if r.market_factor_id is not None
    }
    factors = {}
    if factor_ids:
        factors = {f.id: f for f in await db.execute(sa.select(F).where(F.c.id.in_(factor_ids)))}
    out: dict[NodeKey, list[ExplainRow]] = {key: [] for key in keys}
    for k, activity, fid, mfid, n, q, loc, mkt, off in rows:
        out[keys[k]].append(
            ExplainRow(
                activity,
                int(n),
                int(q),
                int(loc),
                int(mkt),
                int(off),
                factors[fid],
                factors.get(mfid),
            )
        )
    return out


async def recalculate(db: Any, key: NodeKey, period: Period) -> tuple[int, int]:
    """Recompute the emissions of the records under ``key`` that start in ``period`` with the
    factors selected today, and move the totals by exactly the difference. Returns (records
    examined, records changed). Deterministic: running it twice changes nothing more."""
    path = await node_path(db, key)
    records = list(
        await db.execute(
            sa.select(R)
            .where(
                record_filter(key, path),
                R.c.period_start >= period.start,
                R.c.period_start <= period.end,
            )
            .order_by(R.c.id)
        )
    )
    if not records:
        return 0, 0
    library = await FactorLibrary.load(db)
    attribution = await Attribution.load(
        db,
        [r.account_id for r in records if r.account_type == "Individual"],
        [r.household_id for r in records if r.household_id is not None],
    )
    regions = await household_regions(
        db, {r.household_id for r in records if r.household_id is not None}
    )
    delta = TotalsDelta()
    changed = 0
    for record in records:
        region = regions.get(record.household_id, "CN")
        new = compute(
            ACTIVITY_TYPES[record.activity_type],
            record.quantity_milli,
            region,
            record.period_start,
            library,
        )
        market_factor_id = new.market_factor.id if new.market_factor else None
        if (new.location_g, new.market_g, new.offset_g, new.factor.id, market_factor_id) == (
            record.location_g,
            record.market_g,
            record.offset_g,
            record.factor_id,
            record.market_factor_id,
        ):
            continue
        changed += 1
        targets = attribution.targets(
            record.account_type, record.account_id, record.period_start, record.household_id
        )
        delta.add_record(targets, record, sign=-1)
        updated = {
            "location_g": new.location_g,
            "market_g": new.market_g,
            "offset_g": new.offset_g,
            "factor_id": new.factor.id,
            "market_factor_id": market_factor_id,
        }
        await db.execute(sa.update(R).where(R.c.id == record.id).values(**updated))
        delta.add_record(targets, _Updated(record, updated))
    await delta.flush(db)
    return len(records), changed


class _Updated:
    def __init__(self, record: Any, updated: dict[str, Any]) -> None:
        self.__dict__.update(record._mapping)
        self.__dict__.update(updated)
