"""Personalised, rule-based suggestions from an account's own activity data.

The rules' numbers (thresholds, yields, shares, prices) and their sources live in
``data/suggestion_rules.json``; what each rule computes is below. Avoided emissions are priced
with the same emission factor library as the footprint (``FactorLibrary.select`` for the
account's region, today) and rounded to whole grams by the footprint's own ``grams``.

Usage is read from the raw activity records of the trailing window (365 days) and annualised
from the days the records of each activity type cover (first start to last end): 28 days of
readings count as 28/365 of a year. Gaps inside that span count as zero use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from importlib import resources
from typing import Any

import sqlalchemy as sa

from carbongraph.accounting.compute import grams
from carbongraph.accounting.factors import Factor, FactorLibrary
from carbongraph.accounting.regions import region_chain
from carbongraph.models.tables import M, R

CENT = Decimal("0.01")


@cache
def rule_book() -> dict[str, Any]:
    text = resources.files("carbongraph").joinpath("data/suggestion_rules.json").read_text()
    return json.loads(text)


@dataclass(frozen=True)
class Account:
    """What the rules may know about an account besides its records."""

    account_type: str  # "Household" or "Individual"
    account_id: int
    region_code: str  # of the (current) household's community; "CN" without one
    dwelling_type: str | None  # None: an individual without a household today
    has_rooftop_solar: bool
    members: int  # people living in the household today (1 for an individual)


@dataclass
class Usage:
    """One activity type's records in the window: thousandths of its canonical unit."""

    quantity_milli: int = 0
    night_milli: int = 0  # electricity on a time-of-use meter's night register
    first: date | None = None
    last: date | None = None

    @property
    def days(self) -> int:
        if self.first is None or self.last is None:
            return 0
        return (self.last - self.first).days + 1

    def annual_milli(self, quantity_milli: int | None = None) -> int:
        """Scaled to 365 days, rounded half-even to a thousandth of a unit."""
        value = Decimal(self.quantity_milli if quantity_milli is None else quantity_milli)
        return int((value * 365 / self.days).to_integral_value(ROUND_HALF_EVEN))


@dataclass
class Evidence:
    label: str
    value: str
    unit: str


@dataclass
class Suggestion:
    code: str
    version: str
    title: str
    description: str
    why: str
    annual_co2e_g: int
    annual_money: Decimal
    currency: str
    evidence: list[Evidence]
    assumptions: list[str]
    sources: list[str]
    observed_from: date
    observed_to: date
    days_observed: int


@dataclass
class _Inputs:
    """Everything a rule function needs."""

    account: Account
    usage: dict[str, Usage]
    library: FactorLibrary
    today: date
    book: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> Decimal:
        param = self.params[name]
        by_region = param.get("by_region") or {}
        for region in region_chain(self.account.region_code):
            if region in by_region:
                return Decimal(by_region[region])
        return Decimal(param["value"])

    def factor(self, factor_key: str) -> Factor | None:
        return self.library.select(factor_key, self.account.region_code, self.today)

    def enough(self, activity: str) -> Usage | None:
        usage = self.usage.get(activity)
        if usage is None or usage.days < int(self.book["min_days_observed"]):
            return None
        return usage

    def heavy(self, activity: str, threshold: str) -> tuple[Usage, Decimal, Decimal] | None:
        """(usage, annual use in the activity's unit, the rule's ``threshold`` parameter)
        when there is enough data and the annual use reaches the threshold."""
        usage = self.enough(activity)
        if usage is None:
            return None
        annual, minimum = _units(usage.annual_milli()), self.value(threshold)
        return (usage, annual, minimum) if annual >= minimum else None


def _milli(value: Decimal) -> int:
    return int((value * 1000).to_integral_value(ROUND_HALF_EVEN))


def _units(milli: int) -> Decimal:
    return Decimal(milli) / 1000


def _fmt(value: Decimal | int, places: int = 0) -> str:
    quantum = Decimal(1).scaleb(-places)
    return f"{Decimal(value).quantize(quantum, ROUND_HALF_EVEN):,f}"


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_EVEN)


def _observed(usage: Usage) -> str:
    return f"annualised from {usage.days} days of records, {usage.first} to {usage.last}"


Result = tuple[int, Decimal, str, list[Evidence], Usage] | None


def _rooftop_solar(x: _Inputs) -> Result:
    if x.account.has_rooftop_solar:
        return None
    heavy = x.heavy("ELECTRICITY", "min_annual_electricity_kwh")
    factor = x.factor("electricity")
    if heavy is None or factor is None:
        return None
    usage, use_kwh, annual = heavy
    generation = x.value("system_kwp") * x.value("specific_yield_kwh_per_kwp")
    self_used = min(generation * x.value("self_consumption_share"), use_kwh)
    exported = generation - self_used
    saved_g = grams(_milli(generation), factor)
    money = _money(self_used * x.value("electricity_tariff") + exported * x.value("feed_in_tariff"))
    why = (
        f"Your home used about {_fmt(use_kwh)} kWh of grid electricity a year "
        f"({_observed(usage)}), above the {_fmt(annual)} kWh we count as high, and it is a "
        f"house with a roof of its own and no rooftop solar yet. A {_fmt(x.value('system_kwp'))} "
        f"kWp system would generate about {_fmt(generation)} kWh a year, valued at "
        f"{_fmt(_units(factor.ug_per_unit) / 1_000_000, 4)} kgCO2e/kWh for {factor.region_code} "
        f"(factor version {factor.version})."
    )
    evidence = [
        Evidence("grid electricity per year", _fmt(use_kwh), "kWh"),
        Evidence("expected generation per year", _fmt(generation), "kWh"),
        Evidence("used at home / exported", f"{_fmt(self_used)} / {_fmt(exported)}", "kWh"),
    ]
    return saved_g, money, why, evidence, usage


def _rainwater(x: _Inputs) -> Result:
    usage = x.enough("WATER")
    factor = x.factor("water_supply")
    if usage is None or factor is None or x.account.members < 1:
        return None
    use_m3 = _units(usage.annual_milli())
    per_person_litres = use_m3 * 1000 / 365 / x.account.members
    threshold = x.value("min_daily_water_litres_per_person")
    if per_person_litres < threshold:
        return None
    collectable = (
        x.value("roof_area_m2")
        * x.value("annual_rainfall_mm")
        / 1000
        * x.value("collection_efficiency")
    )
    replaced = min(collectable, use_m3 * x.value("non_potable_share"))
    saved_g = grams(_milli(replaced), factor)
    money = _money(replaced * x.value("water_tariff"))
    why = (
        f"Your household of {x.account.members} used about {_fmt(use_m3)} m3 of tap water a year "
        f"({_observed(usage)}): {_fmt(per_person_litres)} L per person and day, above the "
        f"{_fmt(threshold)} L we count as high. Rain on your roof could replace about "
        f"{_fmt(replaced, 1)} m3 a year of it for flushing, cleaning and watering."
    )
    evidence = [
        Evidence("tap water per year", _fmt(use_m3, 1), "m3"),
        Evidence("per person and day", _fmt(per_person_litres), "L"),
        Evidence("tap water replaced per year", _fmt(replaced, 1), "m3"),
    ]
    return saved_g, money, why, evidence, usage


def _night_baseload(x: _Inputs) -> Result:
    usage = x.enough("ELECTRICITY")
    factor = x.factor("electricity")
    if usage is None or factor is None or usage.night_milli == 0 or usage.quantity_milli == 0:
        return None
    share = Decimal(usage.night_milli) / Decimal(usage.quantity_milli)
    threshold = x.value("min_night_share")
    if share < threshold:
        return None
    night_kwh = _units(usage.annual_milli(usage.night_milli))
    cut = night_kwh * x.value("reducible_night_share")
    saved_g = grams(_milli(cut), factor)
    money = _money(cut * x.value("electricity_tariff"))
    why = (
        f"{_fmt(share * 100)} % of your room's electricity was used at night (the meter's "
        f"night register, {_observed(usage)}), above the {_fmt(threshold * 100)} % we count as "
        f"high: about {_fmt(night_kwh)} kWh a year. Switching standby devices off could save "
        f"about {_fmt(cut)} kWh a year."
    )
    evidence = [
        Evidence("night share of electricity", _fmt(share * 100, 1), "%"),
        Evidence("night electricity per year", _fmt(night_kwh), "kWh"),
        Evidence("electricity saved per year", _fmt(cut), "kWh"),
    ]
    return saved_g, money, why, evidence, usage


def _subway(x: _Inputs) -> Result:
    heavy = x.heavy("GASOLINE", "min_annual_petrol_litres")
    petrol = x.factor("gasoline")
    electricity = x.factor("electricity")
    if heavy is None or petrol is None or electricity is None:
        return None
    usage, litres, threshold = heavy
    replaced_l = litres * x.value("replaceable_share")
    km = replaced_l * 100 / x.value("car_litres_per_100km")
    metro_kwh = km * x.value("metro_kwh_per_passenger_km")
    trips = (km / x.value("average_trip_km")).to_integral_value(ROUND_HALF_EVEN)
    saved_g = grams(_milli(replaced_l), petrol) - grams(_milli(metro_kwh), electricity)
    money = _money(replaced_l * x.value("petrol_price") - trips * x.value("metro_fare_per_trip"))
    why = (
        f"You bought about {_fmt(litres)} L of petrol a year ({_observed(usage)}), above the "
        f"{_fmt(threshold)} L of a frequent driver. Taking the metro for "
        f"{_fmt(x.value('replaceable_share') * 100)} % of that driving (about {_fmt(km)} km, "
        f"{_fmt(trips)} trips) saves {_fmt(replaced_l)} L of petrol and adds about "
        f"{_fmt(metro_kwh)} kWh of metro electricity."
    )
    evidence = [
        Evidence("petrol per year", _fmt(litres), "L"),
        Evidence("car kilometres replaced per year", _fmt(km), "km"),
        Evidence("metro trips per year", _fmt(trips), "trips"),
    ]
    return saved_g, money, why, evidence, usage


def _heat_pump(x: _Inputs) -> Result:
    heavy = x.heavy("NATURAL_GAS", "min_annual_gas_m3")
    gas = x.factor("natural_gas")
    electricity = x.factor("electricity")
    if heavy is None or gas is None or electricity is None:
        return None
    usage, m3, threshold = heavy
    replaced_m3 = m3 * x.value("water_heating_share")
    heat_mj = replaced_m3 * x.value("gas_mj_per_m3") * x.value("gas_heater_efficiency")
    kwh = heat_mj / Decimal("3.6") / x.value("heat_pump_cop")
    saved_g = grams(_milli(replaced_m3), gas) - grams(_milli(kwh), electricity)
    money = _money(replaced_m3 * x.value("gas_price") - kwh * x.value("electricity_tariff"))
    why = (
        f"Your home burned about {_fmt(m3)} m3 of natural gas a year ({_observed(usage)}), "
        f"above the {_fmt(threshold)} m3 we count as heavy. A heat-pump water heater would "
        f"replace about {_fmt(replaced_m3)} m3 of gas with about {_fmt(kwh)} kWh of electricity "
        f"a year."
    )
    evidence = [
        Evidence("natural gas per year", _fmt(m3), "m3"),
        Evidence("gas replaced per year", _fmt(replaced_m3), "m3"),
        Evidence("electricity added per year", _fmt(kwh), "kWh"),
    ]
    return saved_g, money, why, evidence, usage


RULES = {
    "ROOFTOP_SOLAR": _rooftop_solar,
    "RAINWATER_HARVESTING": _rainwater,
    "NIGHT_BASELOAD": _night_baseload,
    "SUBWAY_COMMUTE": _subway,
    "HEAT_PUMP_WATER_HEATER": _heat_pump,
}


def evaluate(
    account: Account,
    usage: dict[str, Usage],
    library: FactorLibrary,
    today: date,
    book: dict[str, Any] | None = None,
) -> list[Suggestion]:
    """Every rule that applies and saves something, largest saving first."""
    book = book or rule_book()
    out = []
    for rule in book["rules"]:
        if account.account_type not in rule["applies_to"]:
            continue
        dwellings = rule.get("dwelling_types")
        if dwellings is not None and account.dwelling_type not in dwellings:
            continue
        inputs = _Inputs(account, usage, library, today, book, rule["parameters"])
        result = RULES[rule["code"]](inputs)
        if result is None:
            continue
        saved_g, money, why, evidence, basis = result
        if saved_g <= 0:
            continue  # e.g. a heat pump on a coal-heavy grid: not worth suggesting
        assumptions = [rule["dwelling_types_basis"]] if rule.get("dwelling_types_basis") else []
        assumptions += [
            f"{name} = {inputs.value(name)} {p['unit']}".rstrip() + f": {p['basis']}"
            for name, p in rule["parameters"].items()
            if p.get("assumption")
        ]
        sources = list(rule["sources"]) + [
            f"{name} = {inputs.value(name)} {p['unit']}".rstrip() + f": {p['basis']}"
            for name, p in rule["parameters"].items()
            if not p.get("assumption")
        ]
        assert basis.first is not None and basis.last is not None
        out.append(
            Suggestion(
                code=rule["code"],
                version=f"{book['version']}/{rule['version']}",
                title=rule["title"],
                description=rule["description"],
                why=why,
                annual_co2e_g=saved_g,
                annual_money=money,
                currency=book["currency"],
                evidence=evidence,
                assumptions=assumptions,
                sources=sources,
                observed_from=basis.first,
                observed_to=basis.last,
                days_observed=basis.days,
            )
        )
    out.sort(key=lambda s: (-s.annual_co2e_g, s.code))
    return out


def _account_column(account_type: str) -> sa.ColumnElement[int]:
    # A household: its own meters and its members' records made while they lived there,
    # exactly as its footprint counts them; a person: their own records.
    return R.c.household_id if account_type == "Household" else R.c.account_id


async def load_usage(
    db: Any,
    account_type: str,
    account_ids: list[int],
    today: date,
    book: dict[str, Any] | None = None,
) -> dict[int, dict[str, Usage]]:
    """The window's records of many accounts of one type, by activity type, in one statement."""
    book = book or rule_book()
    start = today - timedelta(days=int(book["window_days"]))
    night = R.c.meter_ref.in_(book["night_register_meter_refs"])
    account = _account_column(account_type)
    condition: sa.ColumnElement[bool] = account.in_(account_ids)
    if account_type == "Individual":
        condition = sa.and_(R.c.account_type == "Individual", condition)
    rows = await db.execute(
        sa.select(
            account,
            R.c.activity_type,
            sa.func.sum(R.c.quantity_milli),
            sa.func.sum(sa.case((night, R.c.quantity_milli), else_=0)),
            sa.func.min(R.c.period_start),
            sa.func.max(R.c.period_end),
        )
        .where(condition, R.c.period_start >= start)
        .group_by(account, R.c.activity_type)
    )
    out: dict[int, dict[str, Usage]] = {pk: {} for pk in account_ids}
    for pk, activity, quantity, night_q, first, last in rows:
        out[pk][activity] = Usage(int(quantity or 0), int(night_q or 0), first, last)
    return out


async def household_members(db: Any, household_ids: list[int], today: date) -> dict[int, int]:
    """People living in each household today, in one statement."""
    rows = await db.execute(
        sa.select(M.c.household_id, sa.func.count())
        .where(
            M.c.household_id.in_(household_ids),
            M.c.valid_from <= today,
            sa.or_(M.c.valid_to.is_(None), M.c.valid_to > today),
        )
        .group_by(M.c.household_id)
    )
    counts = {pk: 0 for pk in household_ids}
    counts.update({pk: int(n) for pk, n in rows})
    return counts
