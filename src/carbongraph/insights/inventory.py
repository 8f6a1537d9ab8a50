"""The GHG inventory of an enterprise or a community for a calendar year, as data, CSV and JSON.

Scope figures come from the same pre-aggregated totals as ``footprint(period: {year})``, so an
inventory reconciles with the footprint to the gram by construction (tests pin it). The factor
table and the data-quality mix read the raw records, grouped by each record's start day like
``footprint.explain``; see docs/esg-exports.md for what that means for records that straddle
New Year.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from carbongraph.accounting import reads
from carbongraph.accounting.activities import ACTIVITY_TYPES
from carbongraph.accounting.reads import FootprintData, Period

R = reads.R
FORMATS = ("csv", "json")
DATA_QUALITIES = ("METERED", "ESTIMATED", "SELF_REPORTED")
FORMAT_VERSION = "carbongraph-ghg-inventory/1"


@dataclass(frozen=True)
class FactorUse:
    activity_type: str
    scope: str
    category: int
    record_count: int
    quantity_milli: int
    unit: str
    location_g: int
    market_g: int
    offset_g: int
    factor: Any  # emission_factor row
    market_factor: Any | None


@dataclass(frozen=True)
class QualityShare:
    data_quality: str
    record_count: int
    gross_g: int  # location-based emissions of these records (clean energy counts 0)


@dataclass
class Inventory:
    node_type: str  # "Enterprise" or "Community"
    node_id: int
    global_id: str
    name: str
    via: str  # "communities" or "employees"; "" for a community
    year: int
    period: Period
    data: FootprintData
    factors: list[FactorUse] = field(default_factory=list)
    quality: list[QualityShare] = field(default_factory=list)

    # -- figures ---------------------------------------------------------------------------
    @property
    def scope3_plus(self) -> int:
        return self.data.reductions.get("3+", 0)

    def figures(self) -> dict[str, int]:
        d = self.data
        return {
            "scope_1": d.scope1,
            "scope_2_location_based": d.scope2_location,
            "scope_2_market_based": d.scope2_market,
            "scope_3": d.scope3,
            "gross": d.gross,
            "clean_energy_offset": d.offset,
            "net": d.net,
        }

    def per_capita(self, grams: int) -> int | None:
        """Grams per member at the year's end, half-even (as ``Footprint.perCapita``)."""
        return reads.per_capita(grams, self.data.member_count)

    def quality_share(self, share: QualityShare) -> str:
        total = sum(q.gross_g for q in self.quality)
        if total <= 0:
            return "0"
        return f"{Decimal(share.gross_g) / total:.4f}"

    # -- renderings ------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        d = self.data
        return {
            "format": FORMAT_VERSION,
            "node": {"type": self.node_type, "id": self.global_id, "name": self.name},
            "via": self.via or None,
            "year": self.year,
            "period": {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()},
            "unit": "gCO2e",
            **self.figures(),
            "scope_3_categories": [
                {
                    "category": c,
                    "name": reads.SCOPE3_CATEGORIES.get(c, "Other"),
                    "grams": g,
                    "per_capita": self.per_capita(g),
                }
                for c, g in sorted(d.scope3_by_category.items())
            ],
            "scope_3_plus": self.scope3_plus,
            "reported_apart": {
                "scope_3_plus": self.scope3_plus,
                "reductions_within_scopes": {s: d.reductions.get(s, 0) for s in ("1", "2", "3")},
            },
            "record_count": d.record_count,
            "member_count": d.member_count,
            "per_capita": {
                **{k: self.per_capita(v) for k, v in self.figures().items()},
                # Reported apart, like the totals they divide.
                "scope_3_plus": self.per_capita(self.scope3_plus),
                "reductions_within_scopes": self.per_capita(d.reductions_within_scopes),
            },
            "factors": [
                {
                    "activity_type": f.activity_type,
                    "scope": f.scope,
                    "category": f.category,
                    "record_count": f.record_count,
                    "quantity": _decimal(f.quantity_milli, 3),
                    "unit": f.unit,
                    "location_based": f.location_g,
                    "market_based": f.market_g,
                    "clean_energy_offset": f.offset_g,
                    "factor": _factor(f.factor),
                    "market_factor": _factor(f.market_factor) if f.market_factor else None,
                }
                for f in self.factors
            ],
            "data_quality": [
                {
                    "data_quality": q.data_quality,
                    "record_count": q.record_count,
                    "gross": q.gross_g,
                    "share_of_gross": self.quality_share(q),
                }
                for q in self.quality
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1, ensure_ascii=False) + "\n"

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        head = [self.global_id, self.name, self.via, self.year]

        def row(section: str, item: str, **values: Any) -> None:
            writer.writerow(head + [section, item] + [values.get(c, "") for c in CSV_COLUMNS[6:]])

        d = self.data
        for item, grams in self.figures().items():
            scope = {"scope_1": "1", "scope_3": "3"}.get(item, "2" if "scope_2" in item else "")
            row("total", item, scope=scope, grams=grams, per_capita_grams=self.per_capita(grams))
        for category, grams in sorted(d.scope3_by_category.items()):
            row(
                "scope_3_category",
                reads.SCOPE3_CATEGORIES.get(category, "Other"),
                scope="3",
                category=category,
                grams=grams,
                per_capita_grams=self.per_capita(grams),
            )
        row(
            "reported_apart",
            "scope_3_plus",
            scope="3+",
            grams=self.scope3_plus,
            per_capita_grams=self.per_capita(self.scope3_plus),
        )
        for scope in ("1", "2", "3"):
            grams = d.reductions.get(scope, 0)
            row(
                "reported_apart",
                f"reductions_scope_{scope}",
                scope=scope,
                grams=grams,
                per_capita_grams=self.per_capita(grams),
            )
        row("population", "member_count", record_count=d.member_count)
        row("population", "record_count", record_count=d.record_count)
        for f in self.factors:
            for basis, factor, grams in (
                ("location", f.factor, f.location_g or f.offset_g),
                ("residual", f.market_factor, f.market_g),
            ):
                if factor is None:
                    continue
                row(
                    "factor",
                    f.activity_type,
                    scope=f.scope,
                    category=f.category or "",
                    grams=grams,
                    record_count=f.record_count,
                    quantity=_decimal(f.quantity_milli, 3),
                    unit=f.unit,
                    factor_key=factor.factor_key,
                    factor_basis=basis,
                    factor_region=factor.region_code,
                    factor_valid_from=factor.valid_from.isoformat(),
                    factor_version=factor.version,
                    kg_co2e_per_unit=_decimal(factor.ug_per_unit, 9),
                    factor_source=factor.source,
                )
        for q in self.quality:
            row(
                "data_quality",
                q.data_quality,
                grams=q.gross_g,
                record_count=q.record_count,
                share=self.quality_share(q),
            )
        return out.getvalue()


CSV_COLUMNS = [
    "node_id",
    "node_name",
    "via",
    "year",
    "section",
    "item",
    "scope",
    "category",
    "grams",
    "per_capita_grams",
    "record_count",
    "quantity",
    "unit",
    "factor_key",
    "factor_basis",
    "factor_region",
    "factor_valid_from",
    "factor_version",
    "kg_co2e_per_unit",
    "factor_source",
    "share",
]


def _decimal(value: int, places: int) -> str:
    return f"{(Decimal(value).scaleb(-places)).normalize():f}"


def _factor(row: Any) -> dict[str, Any]:
    return {
        "factor_key": row.factor_key,
        "basis": row.basis,
        "region_code": row.region_code,
        "valid_from": row.valid_from.isoformat(),
        "version": row.version,
        "kg_co2e_per_unit": _decimal(row.ug_per_unit, 9),
        "source": row.source,
    }


def year_period(year: int) -> Period:
    if not 1900 <= year <= 9999:
        raise ValueError("the year is between 1900 and 9999")
    return Period(date(year, 1, 1), date(year, 12, 31))


async def data_quality_mix(
    db: Any, key: reads.NodeKey, path: str | None, period: Period
) -> list[QualityShare]:
    """Records under ``key`` starting in ``period`` by data quality, in one statement."""
    rows = await db.execute(
        sa.select(R.c.data_quality, sa.func.count(), sa.func.sum(R.c.location_g))
        .where(
            reads.record_filter(key, path),
            R.c.period_start >= period.start,
            R.c.period_start <= period.end,
        )
        .group_by(R.c.data_quality)
    )
    found = {quality: (int(n), int(g or 0)) for quality, n, g in rows}
    order = [q for q in DATA_QUALITIES if q in found] + sorted(set(found) - set(DATA_QUALITIES))
    return [QualityShare(q, *found[q]) for q in order]


Progress = Callable[[str], None]


async def build_inventory(
    db: Any,
    *,
    node_type: str,
    node_id: int,
    global_id: str,
    name: str,
    path: str,
    year: int,
    via: str = "communities",
    on_step: Progress | None = None,
) -> Inventory:
    """Four reads: totals and population, factors (raw records), data quality (raw records).

    ``on_step`` is told after each step (the CLI's progress bar); an enterprise's raw-record
    reads dominate."""
    step = on_step or (lambda _label: None)
    period = year_period(year)
    key: reads.NodeKey = ("E", node_id, via) if node_type == "Enterprise" else ("C", node_id, "")
    data = (await reads.load_footprints(db, [key], period))[key]
    step("totals")
    explained = await reads.explain(db, key, period)
    factors = [
        FactorUse(
            activity_type=r.activity_type,
            scope=ACTIVITY_TYPES[r.activity_type].scope,
            category=ACTIVITY_TYPES[r.activity_type].category,
            record_count=r.record_count,
            quantity_milli=r.quantity_milli,
            unit=ACTIVITY_TYPES[r.activity_type].unit,
            location_g=r.location_g,
            market_g=r.market_g,
            offset_g=r.offset_g,
            factor=r.factor,
            market_factor=r.market_factor,
        )
        for r in explained
    ]
    step("factors")
    quality = await data_quality_mix(db, key, path, period)
    step("data quality")
    return Inventory(
        node_type=node_type,
        node_id=node_id,
        global_id=global_id,
        name=name,
        via=via if node_type == "Enterprise" else "",
        year=year,
        period=period,
        data=data,
        factors=factors,
        quality=quality,
    )


INVENTORY_STEPS = 3


def render(inventory: Inventory, fmt: str) -> str:
    if fmt == "csv":
        return inventory.to_csv()
    if fmt == "json":
        return inventory.to_json()
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
