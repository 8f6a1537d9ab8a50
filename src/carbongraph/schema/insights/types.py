"""Suggestions for households and people, and GHG inventory exports of organisations."""

from __future__ import annotations

import weakref
from datetime import date
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader

from carbongraph.accounting import reads
from carbongraph.accounting.activities import ACTIVITY_TYPES
from carbongraph.accounting.factors import FactorLibrary
from carbongraph.authz import Target
from carbongraph.errors import BadUserInput, Forbidden
from carbongraph.insights import inventory as inv
from carbongraph.insights import suggestions as sg
from carbongraph.resolvers.context import Info
from carbongraph.resolvers.dataloaders import node_target
from carbongraph.schema import policy
from carbongraph.schema.accounting.types import (
    DataQuality,
    EmissionFactor,
    FootprintSource,
    Grams,
    PeriodRange,
    RollupPath,
    Scope3Category,
    require_shown,
)
from carbongraph.schema.common import SCOPE3_CATEGORIES, sized_field
from carbongraph.schema.relay import to_global_id

# Evidence lines a suggestion cites: a few readings.
SUGGESTION_EVIDENCE = 10
# Suggestions per account: at most one per rule.
SUGGESTIONS = 10
# DataQuality's values (metered, estimated, self-reported).
DATA_QUALITY_LEVELS = 3


@strawberry.type(description="A fact from the account's own data that a suggestion rests on.")
class SuggestionEvidence:
    label: str
    value: str
    unit: str


@strawberry.type(
    description="A personalised way to cut emissions, computed by a cited rule from the "
    "account's own records of the last year (annualised), with the footprint's emission factors."
)
class Suggestion:
    code: str = strawberry.field(description="The rule, e.g. ROOFTOP_SOLAR.")
    rule_version: str = strawberry.field(description="Rule book version / rule version.")
    title: str
    description: str
    why: str = strawberry.field(description="Why this account, citing its data.")
    annual_co2e_saved: Grams = strawberry.field(description="Estimated CO2e avoided a year.")
    annual_kg_co2e_saved: Decimal = strawberry.field(description="The same in kg.")
    annual_money_saved: Decimal = strawberry.field(
        description="Estimated money saved a year (in `currency`), running costs only."
    )
    currency: str
    evidence: list[SuggestionEvidence] = sized_field(SUGGESTION_EVIDENCE)
    assumptions: list[str] = strawberry.field(description="Our own estimates the number uses.")
    sources: list[str]
    observed_from: date = strawberry.field(description="First day of the records used.")
    observed_to: date = strawberry.field(description="Last day of the records used.")
    days_observed: int

    @classmethod
    def build(cls, s: sg.Suggestion) -> Suggestion:
        return cls(
            code=s.code,
            rule_version=s.version,
            title=s.title,
            description=s.description,
            why=s.why,
            annual_co2e_saved=Grams(s.annual_co2e_g),
            annual_kg_co2e_saved=Decimal(s.annual_co2e_g).scaleb(-3),
            annual_money_saved=Decimal(s.annual_money),
            currency=s.currency,
            evidence=[
                SuggestionEvidence(label=e.label, value=e.value, unit=e.unit) for e in s.evidence
            ],
            assumptions=s.assumptions,
            sources=s.sources,
            observed_from=s.observed_from,
            observed_to=s.observed_to,
            days_observed=s.days_observed,
        )


class _SuggestionLoaders:
    """Per request: the factor library once, and usage and member counts batched over every
    account in the response, so a page of households with suggestions costs a fixed number of
    statements."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.library = DataLoader(load_fn=self._library)
        self.members = DataLoader(load_fn=self._members)
        self.usage = {
            account_type: DataLoader(load_fn=self._usage_of(account_type))
            for account_type in ("Household", "Individual")
        }

    async def _library(self, keys: list[int]) -> list[FactorLibrary]:
        library = await FactorLibrary.load(self.ctx.db)
        return [library for _ in keys]

    async def _members(self, keys: list[int]) -> list[int]:
        counts = await sg.household_members(self.ctx.db, keys, self.ctx.today)
        return [counts[k] for k in keys]

    def _usage_of(self, account_type: str) -> Any:
        async def load(keys: list[int]) -> list[dict[str, sg.Usage]]:
            usage = await sg.load_usage(self.ctx.db, account_type, keys, self.ctx.today)
            return [usage[k] for k in keys]

        return load


# Keyed by the request's loaders object, which lives exactly as long as the request.
_LOADERS: weakref.WeakKeyDictionary[Any, _SuggestionLoaders] = weakref.WeakKeyDictionary()


def _loaders(ctx: Any) -> _SuggestionLoaders:
    loaders = _LOADERS.get(ctx.loaders)
    if loaders is None:
        loaders = _LOADERS[ctx.loaders] = _SuggestionLoaders(ctx)
    return loaders


async def _suggestions(ctx: Any, account: sg.Account) -> list[Suggestion]:
    loaders = _loaders(ctx)
    usage = await loaders.usage[account.account_type].load(account.account_id)
    if not usage:
        return []
    library = await loaders.library.load(0)
    return [Suggestion.build(s) for s in sg.evaluate(account, usage, library, ctx.today)]


async def household_suggestions(info: Info, household: Any) -> list[Suggestion]:
    """``household`` is a HouseholdNode (the field policy has checked PERSONAL access)."""
    ctx = info.context
    community = await ctx.loaders.community.load(household.community_id)
    account = sg.Account(
        account_type="Household",
        account_id=household.pk,
        region_code=community.region_code,
        dwelling_type=household.dwelling_type.value,
        has_rooftop_solar=household.has_rooftop_solar,
        members=await _loaders(ctx).members.load(household.pk),
    )
    return await _suggestions(ctx, account)


async def individual_suggestions(info: Info, individual: Any) -> list[Suggestion]:
    """``individual`` is an IndividualNode (the field policy has checked PERSONAL access)."""
    ctx = info.context
    home = await ctx.loaders.current_household.load(individual.pk)
    region, dwelling, solar = "CN", None, False
    # The home's facts shape the advice, so they are used only where the viewer may see the
    # home (an employer's admin may see an employee who lives in another tenant).
    if home is not None and policy.visible(info, "Household", node_target(home)):
        community = await ctx.loaders.community.load(home.community_id)
        region, dwelling, solar = community.region_code, home.dwelling_type, home.has_rooftop_solar
    account = sg.Account("Individual", individual.pk, region, dwelling, solar, 1)
    return await _suggestions(ctx, account)


@strawberry.type(description="Per-member figures of an inventory (members at the year's end).")
class InventoryPerCapita:
    scope1: Grams
    scope2_location_based: Grams
    scope2_market_based: Grams
    scope3: Grams
    gross: Grams
    clean_energy_offset: Grams
    net: Grams
    scope3_plus: Grams = strawberry.field(description="Reported apart; never netted.")
    reductions_within_scopes: Grams = strawberry.field(description="Reported apart.")


@strawberry.type(description="Records of one data quality in an inventory.")
class DataQualityShare:
    data_quality: DataQuality
    record_count: int
    gross: Grams = strawberry.field(description="Their location-based emissions.")
    share_of_gross: Decimal = strawberry.field(description="A fraction, to 4 places.")


@strawberry.type(
    description="The GHG inventory of an enterprise or community for a calendar year: Scopes 1-3 "
    "(Scope 3 by category; Scope 2 location- and market-based), Scope 3+ reported apart, "
    "per-capita figures, the emission factor versions used and the data-quality mix. The scope "
    "figures equal `footprint(period: {year})` to the gram."
)
class GhgInventory:
    node_id: strawberry.ID
    node_name: str
    via: RollupPath | None = strawberry.field(description="Enterprises: the roll-up path.")
    year: int
    period: PeriodRange
    scope1: Grams
    scope2_location_based: Grams
    scope2_market_based: Grams
    scope3: Grams
    scope3_categories: list[Scope3Category] = sized_field(SCOPE3_CATEGORIES)
    gross: Grams
    clean_energy_offset: Grams
    net: Grams
    scope3_plus: Grams = strawberry.field(description="Reported apart; never netted.")
    reductions_within_scopes: Grams = strawberry.field(
        description="Avoided emissions of low-carbon actions in Scopes 1-3; reported apart."
    )
    record_count: int
    member_count: int
    per_capita: InventoryPerCapita | None = strawberry.field(description="Null without members.")
    factors: list[FootprintSource] = sized_field(
        len(ACTIVITY_TYPES),
        description="Emission factor versions used, by activity type (records by start day).",
    )
    data_quality: list[DataQualityShare] = sized_field(
        DATA_QUALITY_LEVELS,
        description="Records by data quality (by start day); empty when there are none.",
    )
    data: strawberry.Private[inv.Inventory]

    @strawberry.field(description="The inventory as CSV (docs/esg-exports.md).")
    def csv(self) -> str:
        return self.data.to_csv()

    @strawberry.field(description="The inventory as a JSON document (docs/esg-exports.md).")
    def json(self) -> str:
        return self.data.to_json()

    @classmethod
    def build(cls, i: inv.Inventory) -> GhgInventory:
        d = i.data
        per_capita = None
        if d.member_count > 0:
            f = {k: Grams(i.per_capita(v) or 0) for k, v in i.figures().items()}
            per_capita = InventoryPerCapita(
                scope1=f["scope_1"],
                scope2_location_based=f["scope_2_location_based"],
                scope2_market_based=f["scope_2_market_based"],
                scope3=f["scope_3"],
                gross=f["gross"],
                clean_energy_offset=f["clean_energy_offset"],
                net=f["net"],
                scope3_plus=Grams(i.per_capita(i.scope3_plus) or 0),
                reductions_within_scopes=Grams(i.per_capita(d.reductions_within_scopes) or 0),
            )
        return cls(
            node_id=strawberry.ID(i.global_id),
            node_name=i.name,
            via=RollupPath(i.via) if i.via else None,
            year=i.year,
            period=PeriodRange(from_=i.period.start, to=i.period.end),
            scope1=Grams(d.scope1),
            scope2_location_based=Grams(d.scope2_location),
            scope2_market_based=Grams(d.scope2_market),
            scope3=Grams(d.scope3),
            scope3_categories=[
                Scope3Category(
                    category=c, name=reads.SCOPE3_CATEGORIES.get(c, "Other"), grams=Grams(g)
                )
                for c, g in sorted(d.scope3_by_category.items())
            ],
            gross=Grams(d.gross),
            clean_energy_offset=Grams(d.offset),
            net=Grams(d.net),
            scope3_plus=Grams(i.scope3_plus),
            reductions_within_scopes=Grams(d.reductions_within_scopes),
            record_count=d.record_count,
            member_count=d.member_count,
            per_capita=per_capita,
            factors=[
                FootprintSource(
                    activity_type=f.activity_type,
                    record_count=f.record_count,
                    quantity=(Decimal(f.quantity_milli) / 1000).normalize(),
                    unit=ACTIVITY_TYPES[f.activity_type].unit,
                    location_based=Grams(f.location_g),
                    market_based=Grams(f.market_g),
                    clean_energy_offset=Grams(f.offset_g),
                    factor=EmissionFactor.from_row(f.factor),
                    market_factor=EmissionFactor.from_row(f.market_factor)
                    if f.market_factor
                    else None,
                )
                for f in i.factors
            ],
            data_quality=[
                DataQualityShare(
                    data_quality=DataQuality(q.data_quality),
                    record_count=q.record_count,
                    gross=Grams(q.gross_g),
                    share_of_gross=Decimal(i.quality_share(q)),
                )
                for q in i.quality
            ],
            data=i,
        )


async def inventory_of(
    info: Info,
    node_type: str,
    pk: int,
    name: str,
    path: str,
    year: int,
    via: RollupPath = RollupPath.COMMUNITIES,
) -> GhgInventory:
    """An enterprise or community whose ``inventory`` field the viewer passed (the field
    policy); reporting roles only."""
    target = Target((path,))
    if not info.context.viewer.can_report(target):
        raise Forbidden("GHG inventories are for org admins, ESG analysts and community managers.")
    try:
        inv.year_period(year)
    except ValueError as exc:
        raise BadUserInput(f"Invalid year: {exc}.", argument="year") from exc
    # Small cells are withheld whole (typed fields, csv and json alike): an inventory is one
    # record to file, so it is refused with SUPPRESSED rather than returned half empty.
    enterprise = node_type == "Enterprise"
    key = ("E" if enterprise else "C", pk, via.value if enterprise else "")
    await require_shown(info, key, target, inv.year_period(year))
    inventory = await inv.build_inventory(
        info.context.db,
        node_type=node_type,
        node_id=pk,
        global_id=to_global_id(node_type, pk),
        name=name,
        path=path,
        year=year,
        via=via.value,
    )
    return GhgInventory.build(inventory)
