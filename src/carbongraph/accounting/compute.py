"""From one activity record to integer grams of CO2e, with the factors that priced it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from carbongraph.accounting.activities import ActivityKind, ActivityType
from carbongraph.accounting.factors import Factor, FactorLibrary


class NoFactor(LookupError):
    pass


@dataclass(frozen=True)
class Emissions:
    scope: str
    category: int
    location_g: int  # gross emissions (location-based for Scope 2)
    market_g: int  # market-based (differs from location_g for Scope 2 only)
    offset_g: int  # clean energy, valued at the location-based grid factor
    factor: Factor
    market_factor: Factor | None


def grams(quantity_milli: int, factor: Factor) -> int:
    """quantity (thousandths of a unit) × µg per unit → grams, rounded half-even per record.

    Integer arithmetic throughout (exact, and several times faster than Decimal): the product
    is in nanograms."""
    whole, rest = divmod(quantity_milli * factor.ug_per_unit, 1_000_000_000)
    if rest > 500_000_000 or (rest == 500_000_000 and whole % 2):
        whole += 1
    return whole


def compute(
    activity: ActivityType, quantity_milli: int, region_code: str, day: date, library: FactorLibrary
) -> Emissions:
    factor = library.select(activity.factor_key, region_code, day)
    if factor is None:
        raise NoFactor(f"no {activity.factor_key} factor for {region_code} on {day}")
    residual = None
    if activity.factor_key == "electricity":
        residual = library.select("electricity", region_code, day, basis="residual")
    if activity.kind is ActivityKind.CLEAN_ENERGY:
        offset = grams(quantity_milli, factor)
        # Contractual instruments lower market-based Scope 2 at the residual factor; on-site
        # self-consumption never reached the grid meter, so it changes nothing there.
        market = -grams(quantity_milli, residual or factor) if activity.market_instrument else 0
        return Emissions(
            "CLEAN",
            0,
            0,
            market,
            offset,
            factor,
            (residual or factor) if activity.market_instrument else None,
        )
    location = grams(quantity_milli, factor)
    if activity.scope == "2" and residual is not None:
        return Emissions("2", 0, location, grams(quantity_milli, residual), 0, factor, residual)
    return Emissions(activity.scope, activity.category, location, location, 0, factor, None)


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def apportion(total: int, parts: int) -> list[int]:
    """Split integer grams over ``parts`` days so that they sum exactly to ``total``."""
    sign = -1 if total < 0 else 1
    base, extra = divmod(abs(total), parts)
    return [sign * (base + (1 if n < extra else 0)) for n in range(parts)]
