"""Carbon accounting tables: emission factors, activity records, and the pre-aggregated totals
that make a roll-up read cost the same for a household as for a 150,000-person enterprise.

All quantities of CO2e are integer grams, so every sum is exact. Activity quantities are integer
thousandths of the activity type's canonical unit (Wh for kWh, litres for m³, and so on).
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field

from carbongraph.models.base import TableModel, timestamp_column, utcnow

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class EmissionFactor(TableModel, table=True):
    """kgCO2e per unit of an activity, for a region and a validity period, versioned."""

    __tablename__ = "emission_factor"
    __table_args__ = (
        sa.UniqueConstraint("factor_key", "basis", "region_code", "valid_from", "version"),
        sa.Index("ix_emission_factor_lookup", "factor_key", "basis", "valid_from"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # What the factor measures, e.g. "electricity", "natural_gas", "water_supply".
    factor_key: str = Field(max_length=64)
    # "location" (grid average etc.) or "residual" (market-based Scope 2 after instruments).
    basis: str = Field(max_length=16, default="location")
    # ISO 3166-2 (CN-GD), a grid region (CN-SOUTHERN-GRID), a country (CN) or "*" (anywhere).
    region_code: str = Field(max_length=32)
    unit: str = Field(max_length=16)
    valid_from: date
    valid_to: date | None = None  # exclusive; null = until superseded
    # Micrograms CO2e per unit: an exact integer for factors published to 9 decimals of a kg.
    ug_per_unit: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    gas_breakdown: str | None = Field(default=None, max_length=1000)  # JSON, kg per unit by gas
    gwp_set: str = Field(max_length=8, default="AR5")
    source: str = Field(max_length=300)
    citation: str = Field(max_length=1000)
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class ActivityRecord(TableModel, table=True):
    """One consumption or clean-energy reading for an individual or a household's own meter,
    with the emissions computed from it and the factors that computed them."""

    __tablename__ = "activity_record"
    __table_args__ = (
        sa.Index("ix_activity_record_account", "account_type", "account_id", "period_start"),
        sa.Index("ix_activity_record_household_day", "household_id", "period_start"),
        sa.Index(
            "ix_activity_record_meter",
            "account_type",
            "account_id",
            "activity_type",
            "meter_ref",
            "period_start",
        ),
    )

    id: int | None = Field(
        default=None, sa_column=sa.Column(BIGINT, primary_key=True, autoincrement=True)
    )
    account_type: str = Field(max_length=16)  # "Individual" or "Household"
    account_id: int
    # The household the record rolls up through: the account itself, or the household the
    # individual belonged to on period_start (null if none then).
    household_id: int | None = Field(default=None)
    activity_type: str = Field(max_length=32)
    quantity_milli: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    entered_quantity: str = Field(max_length=40)
    entered_unit: str = Field(max_length=16)
    period_start: date
    period_end: date  # inclusive
    meter_ref: str | None = Field(default=None, max_length=128)
    source: str = Field(max_length=16)
    external_id: str | None = Field(default=None, max_length=200, unique=True)
    data_quality: str = Field(max_length=16, default="METERED")
    scope: str = Field(max_length=8)  # "1", "2", "3" or "CLEAN"
    category: int = Field(default=0)  # GHG Protocol Scope 3 category, 0 where none
    location_g: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    market_g: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    offset_g: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    factor_id: int | None = Field(default=None, foreign_key="emission_factor.id")
    market_factor_id: int | None = Field(default=None, foreign_key="emission_factor.id")
    recorded_by: str | None = Field(default=None, max_length=256)
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class FootprintTotal(TableModel, table=True):
    """Pre-aggregated grams per node × local day × scope × category, kept in the same
    transaction as every write, for every ancestor of the account written.

    ``node`` is "P" (platform), "E", "C", "H" or "I" with the node's id; enterprises have two
    independent roll-up paths, told apart by ``via``: "communities" or "employees".
    ``kind`` is "emission" (location/market grams), "offset" (clean energy) or "reduction"
    (avoided emissions of low-carbon actions, scope "1", "2", "3" or "3+").
    """

    __tablename__ = "footprint_total"

    node: str = Field(max_length=1, primary_key=True)
    node_id: int = Field(primary_key=True)
    via: str = Field(max_length=12, primary_key=True, default="")
    day: date = Field(primary_key=True)
    kind: str = Field(max_length=10, primary_key=True)
    scope: str = Field(max_length=8, primary_key=True)
    category: int = Field(primary_key=True, default=0)
    location_g: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    market_g: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    record_count: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))


class PopulationChange(TableModel, table=True):
    """+n / −n people joining or leaving a node's population on a day, for every ancestor, so
    that a member count at any date is a sum over a node's (few) change days."""

    __tablename__ = "population_change"

    node: str = Field(max_length=1, primary_key=True)
    node_id: int = Field(primary_key=True)
    via: str = Field(max_length=12, primary_key=True, default="")
    day: date = Field(primary_key=True)
    delta: int = Field(default=0)
