"""Footprints, reductions, emission factors and activity records in the graph."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, NewType, TypeAlias

import strawberry
from strawberry.federation.schema_directives import Cost

from carbongraph import privacy
from carbongraph.accounting import reads
from carbongraph.accounting.activities import ACTIVITY_TYPES, ActivityKind
from carbongraph.accounting.reads import FootprintData, Period
from carbongraph.authz import Target
from carbongraph.errors import BadUserInput, Suppressed
from carbongraph.resolvers.context import Info
from carbongraph.schema import policy
from carbongraph.schema.common import SCOPE3_CATEGORIES, described_enum, list_size, sized_field
from carbongraph.schema.relay import to_global_id

if TYPE_CHECKING:
    # A plain int to the type checker: the NewType only names the GraphQL scalar (scalar_map).
    Grams: TypeAlias = int
else:
    Grams = NewType("Grams", int)
GRAMS_SCALAR = strawberry.scalar(
    name="Grams",
    serialize=int,
    parse_value=int,
    description="A mass of CO2e in grams, as a JSON integer (exact up to 9 million tonnes).",
)


@strawberry.enum(description="Bucket size of a time series.")
class Granularity(Enum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    YEAR = "YEAR"


# -- closed sets: GraphQL enums whose Python values are the stored values (mapped here, at the
# schema's edge; the database keeps "1", "3+", "location", ...).


_SCOPE_1 = "Direct emissions (fuel burned)."
_SCOPE_2 = "Purchased electricity, heat and steam."
_SCOPE_3 = "Other indirect emissions, in a GHG Protocol category (1–15)."


class GhgScope(Enum):
    SCOPE_1 = "1"
    SCOPE_2 = "2"
    SCOPE_3 = "3"
    SCOPE_3_PLUS = "3+"


described_enum(
    GhgScope,
    "Where avoided emissions are reported under the GHG Protocol.",
    {
        GhgScope.SCOPE_1: _SCOPE_1,
        GhgScope.SCOPE_2: _SCOPE_2,
        GhgScope.SCOPE_3: _SCOPE_3,
        GhgScope.SCOPE_3_PLUS: "Facilitated among ecosystem participants; kept apart from the "
        "inventory (docs/methodology.md).",
    },
)


class ActivityScope(Enum):
    SCOPE_1 = "1"
    SCOPE_2 = "2"
    SCOPE_3 = "3"
    CLEAN_ENERGY = "CLEAN"


described_enum(
    ActivityScope,
    "Where an activity's emissions are reported.",
    {
        ActivityScope.SCOPE_1: _SCOPE_1,
        ActivityScope.SCOPE_2: _SCOPE_2,
        ActivityScope.SCOPE_3: _SCOPE_3,
        ActivityScope.CLEAN_ENERGY: "Not an emission: clean energy generated or bought, which "
        "offsets (`cleanEnergyOffset`).",
    },
)

described_enum(
    ActivityKind,
    "Whether an activity emits or offsets.",
    {
        ActivityKind.CONSUMPTION: "Energy or fuel consumed: emissions.",
        ActivityKind.CLEAN_ENERGY: "Clean energy generated or bought: an offset.",
    },
)


class FactorBasis(Enum):
    LOCATION = "location"
    RESIDUAL = "residual"


described_enum(
    FactorBasis,
    "Which emission factor series prices an activity.",
    {
        FactorBasis.LOCATION: "The grid (or fuel) average: location-based figures.",
        FactorBasis.RESIDUAL: "The residual mix after contractual instruments: market-based "
        "Scope 2.",
    },
)


class ActivitySource(Enum):
    METER = "METER"
    APP = "APP"
    PARTNER = "PARTNER"
    IMPORT = "IMPORT"


described_enum(
    ActivitySource,
    "Where an activity record came from.",
    {
        ActivitySource.METER: "Read from a meter or a utility's feed.",
        ActivitySource.APP: "Entered in an app by the person.",
        ActivitySource.PARTNER: "Sent by a partner service.",
        ActivitySource.IMPORT: "A bulk import (`carbongraph import activities`).",
    },
)


class DataQuality(Enum):
    METERED = "METERED"
    ESTIMATED = "ESTIMATED"
    SELF_REPORTED = "SELF_REPORTED"


described_enum(
    DataQuality,
    "How an activity's quantity was obtained.",
    {
        DataQuality.METERED: "Measured by a meter.",
        DataQuality.ESTIMATED: "Estimated (e.g. from a bill).",
        DataQuality.SELF_REPORTED: "Reported by the person, unverified.",
    },
)


@strawberry.enum(description="How an enterprise's total is gathered; the two are never mixed.")
class RollupPath(Enum):
    COMMUNITIES = "communities"
    EMPLOYEES = "employees"


@strawberry.input(
    description='A period of local days: exactly one of `month` ("2023-05"), `year`, or '
    "`from` with `to` (inclusive)."
)
class PeriodInput:
    # Explicit names: Strawberry otherwise camel-cases every field name on every conversion,
    # and this input is converted once per footprint in a list.
    month: str | None = strawberry.field(default=None, name="month")
    year: int | None = strawberry.field(default=None, name="year")
    from_: date | None = strawberry.field(default=None, name="from")
    to: date | None = strawberry.field(default=None, name="to")

    def to_period(self) -> Period:
        forms = [
            self.month is not None,
            self.year is not None,
            self.from_ is not None or self.to is not None,
        ]
        if sum(forms) != 1:
            raise BadUserInput(
                "Give exactly one of `month`, `year`, or `from` and `to`.", argument="period"
            )
        try:
            if self.month is not None:
                start = date.fromisoformat(f"{self.month}-01")
                return Period(start, reads.bucket_end(start, "MONTH"))
            if self.year is not None:
                start = date(self.year, 1, 1)
                return Period(start, date(self.year, 12, 31))
            if self.from_ is None or self.to is None:
                raise ValueError("`from` and `to` go together")
            if (self.to - self.from_).days > 366 * 10:
                raise ValueError("a period spans at most ten years")
            return Period(self.from_, self.to)
        except ValueError as exc:
            raise BadUserInput(f"Invalid period: {exc}.", argument="period") from exc


@strawberry.type
class PeriodRange:
    from_: date = strawberry.field(name="from")
    to: date


@strawberry.type(description="Scope 3 emissions of one GHG Protocol category.")
class Scope3Category:
    category: int
    name: str
    grams: Grams


def _figures(data: FootprintData) -> dict[str, Any]:
    return {
        "scope1": data.scope1,
        "scope2_location_based": data.scope2_location,
        "scope2_market_based": data.scope2_market,
        "scope3": data.scope3,
        "gross": data.gross,
        "clean_energy_offset": data.offset,
        "net": data.net,
    }


@strawberry.type(description="One bucket of a footprint's time series.")
class FootprintPoint:
    from_: date = strawberry.field(name="from")
    to: date
    scope1: Grams
    scope2_location_based: Grams
    scope2_market_based: Grams
    scope3: Grams
    gross: Grams
    clean_energy_offset: Grams
    net: Grams


@strawberry.type(description="A published emission factor (kgCO2e per unit).")
class EmissionFactor:
    id: strawberry.ID
    factor_key: str
    basis: FactorBasis
    region_code: str
    unit: str
    valid_from: date
    valid_to: date | None
    kg_co2e_per_unit: Decimal
    gas_breakdown: strawberry.scalars.JSON | None
    gwp_set: str
    source: str
    citation: str
    version: int

    @classmethod
    def from_row(cls, row: Any) -> EmissionFactor:
        kg = (Decimal(row.ug_per_unit) / Decimal(1_000_000_000)).normalize()
        return cls(
            id=strawberry.ID(to_global_id("EmissionFactor", row.id)),
            factor_key=row.factor_key,
            basis=FactorBasis(row.basis),
            region_code=row.region_code,
            unit=row.unit,
            valid_from=row.valid_from,
            valid_to=row.valid_to,
            kg_co2e_per_unit=kg,
            gas_breakdown=json.loads(row.gas_breakdown) if row.gas_breakdown else None,
            gwp_set=row.gwp_set,
            source=row.source,
            citation=row.citation,
            version=row.version,
        )


@strawberry.type(description="Records of one activity type priced by one factor version.")
class FootprintSource:
    activity_type: str
    record_count: int
    quantity: Decimal = strawberry.field(description="Sum, in the activity's canonical unit.")
    unit: str
    location_based: Grams
    market_based: Grams
    clean_energy_offset: Grams
    factor: EmissionFactor
    market_factor: EmissionFactor | None


# The rule's own enum, exposed as is (strawberry.enum registers the class in place).
strawberry.enum(
    privacy.SuppressionReason, description="Why an aggregate is withheld (docs/privacy.md)."
)
SuppressionReason = privacy.SuppressionReason


SUPPRESSED_NOTE = " Null when `suppressed`."


@strawberry.type(
    description="Emissions of a node over a period, split by scope. Net = gross − clean-energy "
    "offset; Scope 3+ reductions are reported apart and never netted. Viewers who may not see "
    "the node's people individually get null figures with `suppressed: true` when the node "
    "covers too few people (small-cell rule, docs/privacy.md)."
)
class Footprint:
    period: PeriodRange
    suppressed: bool = strawberry.field(
        description="The figures are withheld to protect a small group of people."
    )
    suppression_reason: SuppressionReason | None
    scope1: Grams | None
    scope2_location_based: Grams | None
    scope2_market_based: Grams | None
    scope3: Grams | None
    scope3_categories: list[Scope3Category] | None = sized_field(SCOPE3_CATEGORIES)
    scope3_plus: Grams | None = strawberry.field(
        description="Reductions facilitated outside Scopes 1–3 (never netted)." + SUPPRESSED_NOTE
    )
    gross: Grams | None
    clean_energy_offset: Grams | None
    net: Grams | None
    record_count: int | None
    member_count: int | None = strawberry.field(
        description="People in the node at the period's end." + SUPPRESSED_NOTE
    )
    per_capita: Grams | None = strawberry.field(description="Net per member; null without members.")
    key: strawberry.Private[tuple[str, int, str]]
    span: strawberry.Private[Period]

    @classmethod
    def build(cls, key: tuple[str, int, str], period: Period, data: FootprintData) -> Footprint:
        per_capita = reads.per_capita(data.net, data.member_count)
        return cls(
            period=PeriodRange(from_=period.start, to=period.end),
            suppressed=False,
            suppression_reason=None,
            scope3_categories=[
                Scope3Category(category=c, name=reads.SCOPE3_CATEGORIES.get(c, "Other"), grams=g)
                for c, g in sorted(data.scope3_by_category.items())
            ],
            scope3_plus=data.reductions.get("3+", 0),
            record_count=data.record_count,
            member_count=data.member_count,
            per_capita=per_capita,
            key=key,
            span=period,
            **_figures(data),
        )

    @classmethod
    def withheld(
        cls, key: tuple[str, int, str], period: Period, reason: SuppressionReason
    ) -> Footprint:
        return cls(
            period=PeriodRange(from_=period.start, to=period.end),
            suppressed=True,
            suppression_reason=reason,
            scope1=None,
            scope2_location_based=None,
            scope2_market_based=None,
            scope3=None,
            scope3_categories=None,
            scope3_plus=None,
            gross=None,
            clean_energy_offset=None,
            net=None,
            record_count=None,
            member_count=None,
            per_capita=None,
            key=key,
            span=period,
        )

    @strawberry.federation.field(
        description="The same figures bucketed by day, week, month or year.",
        # One read per footprint; priced per point, assumed a year by month.
        directives=[list_size(12)],
    )
    async def series(self, info: Info, granularity: Granularity) -> list[FootprintPoint] | None:
        if self.suppressed:
            return None
        points = await info.context.loaders.series.load((self.key, self.span, granularity.value))
        return [FootprintPoint(from_=p.start, to=p.end, **_figures(p.data)) for p in points]

    @strawberry.federation.field(
        description="The factor versions and record counts behind this footprint: records that "
        "start in the period, grouped by activity type and factor. Reads raw records.",
        # Reads raw records: priced per source, about one per activity type.
        directives=[Cost(weight=4), list_size(len(ACTIVITY_TYPES))],
    )
    async def explain(self, info: Info) -> list[FootprintSource] | None:
        if self.suppressed:
            return None
        rows = await info.context.loaders.explain.load((self.key, self.span))
        return [
            FootprintSource(
                activity_type=r.activity_type,
                record_count=r.record_count,
                quantity=(Decimal(r.quantity_milli) / 1000).normalize(),
                unit=ACTIVITY_TYPES[r.activity_type].unit,
                location_based=r.location_g,
                market_based=r.market_g,
                clean_energy_offset=r.offset_g,
                factor=EmissionFactor.from_row(r.factor),
                market_factor=EmissionFactor.from_row(r.market_factor) if r.market_factor else None,
            )
            for r in rows
        ]


@strawberry.type(
    description="Reductions per member of the node at the period's end: whole grams, rounded "
    "half-even like `Footprint.perCapita`."
)
class ReductionsPerCapita:
    scope1: Grams
    scope2: Grams
    scope3: Grams
    scope3_plus: Grams
    total_within_scopes: Grams
    total: Grams = strawberry.field(description="Scopes 1–3 and Scope 3+.")


@strawberry.type(
    description="Avoided emissions of low-carbon actions, by scope; withheld like a footprint "
    "for too few people."
)
class Reductions:
    period: PeriodRange
    suppressed: bool
    suppression_reason: SuppressionReason | None
    scope1: Grams | None
    scope2: Grams | None
    scope3: Grams | None
    scope3_plus: Grams | None = strawberry.field(
        description="Facilitated among ecosystem participants; kept apart from the inventory."
    )
    total_within_scopes: Grams | None = strawberry.field(description="Scopes 1–3 only.")
    total: Grams | None = strawberry.field(
        description="Every avoided gram: Scopes 1–3 and Scope 3+ (never netted against a "
        "footprint)." + SUPPRESSED_NOTE
    )
    member_count: int | None = strawberry.field(
        description="People in the node at the period's end (as `Footprint.memberCount`)."
        + SUPPRESSED_NOTE
    )
    per_capita: ReductionsPerCapita | None = strawberry.field(
        description="Per member at the period's end, e.g. `total` for \"kg CO2 reduced per person "
        'in 30 days". Not `Footprint.perCapita`, which is net emissions. Null without members.'
        + SUPPRESSED_NOTE
    )

    @classmethod
    def build(cls, period: Period, data: FootprintData) -> Reductions:
        r = data.reductions
        figures = {
            "scope1": r.get("1", 0),
            "scope2": r.get("2", 0),
            "scope3": r.get("3", 0),
            "scope3_plus": r.get("3+", 0),
            "total_within_scopes": data.reductions_within_scopes,
            "total": data.reductions_total,
        }
        members = data.member_count
        per_capita = None
        if members > 0:
            per_capita = ReductionsPerCapita(
                **{k: Grams(reads.per_capita(v, members) or 0) for k, v in figures.items()}
            )
        return cls(
            period=PeriodRange(from_=period.start, to=period.end),
            suppressed=False,
            suppression_reason=None,
            member_count=data.member_count,
            per_capita=per_capita,
            **figures,
        )

    @classmethod
    def withheld(cls, period: Period, reason: SuppressionReason) -> Reductions:
        return cls(
            period=PeriodRange(from_=period.start, to=period.end),
            suppressed=True,
            suppression_reason=reason,
            scope1=None,
            scope2=None,
            scope3=None,
            scope3_plus=None,
            total_within_scopes=None,
            total=None,
            member_count=None,
            per_capita=None,
        )


async def suppression(
    info: Info, key: tuple[str, int, str], target: Target | None, span: Period
) -> SuppressionReason | None:
    """The small-cell decision for this viewer (docs/privacy.md); None: show the figures."""
    if target is None:
        return None  # the platform's own figures
    ctx = info.context
    # Enterprises above a community count their people through their communities.
    return await privacy.node_cell(
        ctx.loaders.cell_groups,
        policy.level(info, target),
        ctx.settings.small_cell_k,
        target.paths[0],
        span.end,
        via=key[2] if key[0] == "E" else "communities",
        person=key[0] == "I",
    )


async def require_shown(
    info: Info, key: tuple[str, int, str], target: Target, span: Period
) -> None:
    """For aggregates served whole (an inventory, a statement): SUPPRESSED rather than a
    record with its figures missing."""
    reason = await suppression(info, key, target, span)
    if reason is not None:
        raise Suppressed(reason.value)


async def footprint_of(
    info: Info, key: tuple[str, int, str], period: PeriodInput, target: Target | None
) -> Footprint:
    span = period.to_period()
    reason = await suppression(info, key, target, span)
    if reason is not None:
        return Footprint.withheld(key, span, reason)
    data = await info.context.loaders.footprint.load((key, span))
    return Footprint.build(key, span, data)


async def reductions_of(
    info: Info, key: tuple[str, int, str], period: PeriodInput, target: Target | None
) -> Reductions:
    span = period.to_period()
    reason = await suppression(info, key, target, span)
    if reason is not None:
        return Reductions.withheld(span, reason)
    data = await info.context.loaders.footprint.load((key, span))
    return Reductions.build(span, data)


@strawberry.type(description="A kind of activity that can be recorded.")
class ActivityTypeInfo:
    code: str
    kind: ActivityKind
    unit: str
    scope: ActivityScope
    category: int
    description: str


def activity_types() -> list[ActivityTypeInfo]:
    return [
        ActivityTypeInfo(
            code=t.code,
            kind=t.kind,
            unit=t.unit,
            scope=ActivityScope(t.scope),
            category=t.category,
            description=t.description,
        )
        for t in ACTIVITY_TYPES.values()
    ]


@strawberry.type(description="One recorded consumption or clean-energy reading.")
class ActivityRecord:
    id: strawberry.ID
    activity_type: str
    quantity: Decimal = strawberry.field(description="In the activity type's canonical unit.")
    unit: str
    period_start: date
    period_end: date
    source: ActivitySource
    external_id: str | None
    data_quality: DataQuality
    scope: ActivityScope
    category: int
    location_based: Grams
    market_based: Grams
    clean_energy_offset: Grams
    recorded_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> ActivityRecord:
        return cls(
            id=strawberry.ID(to_global_id("ActivityRecord", row.id)),
            activity_type=row.activity_type,
            quantity=(Decimal(row.quantity_milli) / 1000).normalize(),
            unit=ACTIVITY_TYPES[row.activity_type].unit,
            period_start=row.period_start,
            period_end=row.period_end,
            source=ActivitySource(row.source),
            external_id=row.external_id,
            data_quality=DataQuality(row.data_quality),
            scope=ActivityScope(row.scope),
            category=row.category,
            location_based=row.location_g,
            market_based=row.market_g,
            clean_energy_offset=row.offset_g,
            recorded_at=row.recorded_at,
        )
