"""Activity types, their canonical units, and how each maps to a scope and a GHG category."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum


class ActivityKind(StrEnum):
    CONSUMPTION = "CONSUMPTION"
    CLEAN_ENERGY = "CLEAN_ENERGY"


@dataclass(frozen=True)
class ActivityType:
    code: str
    kind: ActivityKind
    unit: str  # canonical unit; quantities are stored in thousandths of it
    factor_key: str  # which emission factor prices one unit
    scope: str  # "1", "2", "3" or "CLEAN"
    category: int = 0  # GHG Protocol Scope 3 category
    # Clean energy only: whether it is a contractual instrument that lowers market-based Scope 2
    # (certificates, allocations from community plants) rather than on-site self-consumption.
    market_instrument: bool = False
    description: str = ""


ACTIVITY_TYPES: dict[str, ActivityType] = {
    t.code: t
    for t in (
        ActivityType(
            "ELECTRICITY",
            ActivityKind.CONSUMPTION,
            "kWh",
            "electricity",
            "2",
            description="Grid electricity consumed (Scope 2).",
        ),
        ActivityType(
            "HEAT",
            ActivityKind.CONSUMPTION,
            "GJ",
            "heat",
            "2",
            description="Purchased district heat or steam (Scope 2).",
        ),
        ActivityType(
            "NATURAL_GAS",
            ActivityKind.CONSUMPTION,
            "m3",
            "natural_gas",
            "1",
            description="Natural gas burned at home (Scope 1).",
        ),
        ActivityType(
            "GASOLINE",
            ActivityKind.CONSUMPTION,
            "L",
            "gasoline",
            "1",
            description="Petrol burned in one's own vehicle (Scope 1).",
        ),
        ActivityType(
            "DIESEL",
            ActivityKind.CONSUMPTION,
            "L",
            "diesel",
            "1",
            description="Diesel burned in one's own vehicle (Scope 1).",
        ),
        ActivityType(
            "WATER",
            ActivityKind.CONSUMPTION,
            "m3",
            "water_supply",
            "3",
            1,
            description="Tap water supplied: Scope 3 cat. 1, purchased goods.",
        ),
        ActivityType(
            "WASTEWATER",
            ActivityKind.CONSUMPTION,
            "m3",
            "wastewater_treatment",
            "3",
            5,
            description="Wastewater treated: Scope 3 cat. 5, waste.",
        ),
        ActivityType(
            "ROOFTOP_SOLAR",
            ActivityKind.CLEAN_ENERGY,
            "kWh",
            "electricity",
            "CLEAN",
            description="Rooftop solar generated and self-consumed.",
        ),
        ActivityType(
            "COMMUNITY_SOLAR",
            ActivityKind.CLEAN_ENERGY,
            "kWh",
            "electricity",
            "CLEAN",
            market_instrument=True,
            description="Allocation from a community solar plant.",
        ),
        ActivityType(
            "COMMUNITY_WIND",
            ActivityKind.CLEAN_ENERGY,
            "kWh",
            "electricity",
            "CLEAN",
            market_instrument=True,
            description="Allocation from a community wind farm.",
        ),
        ActivityType(
            "GREEN_CERTIFICATE",
            ActivityKind.CLEAN_ENERGY,
            "kWh",
            "electricity",
            "CLEAN",
            market_instrument=True,
            description="Green electricity certificates (GEC) retired, in kWh.",
        ),
    )
}

# Accepted units → (canonical unit, how many canonical units one is). Exact decimals.
UNIT_CONVERSIONS: dict[str, tuple[str, Decimal]] = {
    "kWh": ("kWh", Decimal(1)),
    "Wh": ("kWh", Decimal("0.001")),
    "MWh": ("kWh", Decimal(1000)),
    "GJ": ("GJ", Decimal(1)),
    "MJ": ("GJ", Decimal("0.001")),
    "m3": ("m3", Decimal(1)),
    "L": ("L", Decimal(1)),
    "mL": ("L", Decimal("0.001")),
}
# Volumes convert between litres and cubic metres whichever the canonical unit is.
_VOLUME = {"m3": Decimal(1000), "L": Decimal(1), "mL": Decimal("0.001")}
_ENERGY_GJ_PER_KWH = Decimal("0.0036")
UNIT_ALIASES = {
    "m³": "m3",
    "kwh": "kWh",
    "mwh": "MWh",
    "wh": "Wh",
    "gj": "GJ",
    "mj": "MJ",
    "l": "L",
    "litre": "L",
    "liter": "L",
    "ml": "mL",
    "cubic_metre": "m3",
}


class UnitError(ValueError):
    pass


def normalise_unit(unit: str) -> str:
    unit = unit.strip()
    return UNIT_ALIASES.get(unit, UNIT_ALIASES.get(unit.lower(), unit))


def to_canonical_milli(
    quantity: str | Decimal | int | float, unit: str, activity: ActivityType
) -> int:
    """Thousandths of the activity's canonical unit, exactly (rounded half-even below that)."""
    try:
        value = Decimal(str(quantity))
    except InvalidOperation as exc:
        raise UnitError(f"{quantity!r} is not a number") from exc
    if not value.is_finite():
        raise UnitError(f"{quantity!r} is not a finite number")
    unit = normalise_unit(unit)
    factor = conversion_factor(unit, activity)
    if factor is None:
        raise UnitError(f"unit {unit!r} does not measure {activity.code} (in {activity.unit})")
    return int((value * factor * 1000).to_integral_value())


def conversion_factor(unit: str, activity: ActivityType) -> Decimal | None:
    """How many of ``activity``'s canonical unit one ``unit`` (normalised) is; None if it does
    not measure it. The set-based importer joins a table of these (accounting/bulk.py)."""
    target = activity.unit
    if unit in _VOLUME and target in _VOLUME:
        return _VOLUME[unit] / _VOLUME[target]
    if unit in {"kWh", "Wh", "MWh"} and target == "GJ":
        return UNIT_CONVERSIONS[unit][1] * _ENERGY_GJ_PER_KWH
    if unit in UNIT_CONVERSIONS and UNIT_CONVERSIONS[unit][0] == target:
        return UNIT_CONVERSIONS[unit][1]
    return None


def known_units() -> list[str]:
    """Every normalised unit some activity type accepts."""
    return sorted(set(UNIT_CONVERSIONS) | set(_VOLUME))
