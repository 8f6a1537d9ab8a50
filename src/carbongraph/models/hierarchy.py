"""The account hierarchy: enterprise → community (nesting) → household → individual.

Enterprises, communities and households carry a materialised ``path`` ("e1/c4/c9/h31/") so that
"is X inside Y's subtree" is a prefix test, both in Python and in SQL (``LIKE 'e1/c4/%'``). The
hierarchy above individuals never re-parents, so paths never change once written. Individuals
have no path: they belong to households through dated memberships, and to enterprises through
dated employments, so a move never rewrites history.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field

from carbongraph.models.base import TableModel, timestamp_column, utcnow


def _prefix_index(table: str) -> sa.Index:
    # Subtree tests are ``path LIKE 'prefix%'``; PostgreSQL needs pattern ops for that to use an
    # index under a non-C collation. (SQLite uses the unique index on ``path``.)
    return sa.Index(
        f"ix_{table}_path_prefix", "path", postgresql_ops={"path": "varchar_pattern_ops"}
    )


class Enterprise(TableModel, table=True):
    __tablename__ = "enterprise"
    __table_args__ = (_prefix_index("enterprise"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    path: str = Field(max_length=512, unique=True)
    external_ref: str | None = Field(default=None, max_length=128, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    archived_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class Community(TableModel, table=True):
    __tablename__ = "community"
    __table_args__ = (_prefix_index("community"),)

    id: int | None = Field(default=None, primary_key=True)
    enterprise_id: int | None = Field(default=None, foreign_key="enterprise.id", index=True)
    parent_id: int | None = Field(default=None, foreign_key="community.id", index=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    region_code: str = Field(max_length=16)
    timezone: str = Field(max_length=64)
    path: str = Field(max_length=512, unique=True)
    external_ref: str | None = Field(default=None, max_length=128, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    archived_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class Household(TableModel, table=True):
    __tablename__ = "household"
    __table_args__ = (_prefix_index("household"),)

    id: int | None = Field(default=None, primary_key=True)
    community_id: int = Field(foreign_key="community.id", index=True)
    name: str = Field(max_length=200)
    dwelling_type: str = Field(max_length=32)
    has_rooftop_solar: bool = Field(default=False)
    path: str = Field(max_length=512, unique=True)
    external_ref: str | None = Field(default=None, max_length=128, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    archived_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class Individual(TableModel, table=True):
    __tablename__ = "individual"

    id: int | None = Field(default=None, primary_key=True)
    display_name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320)
    # The login principal (JWT ``sub``) that owns this account, if the person has logged in.
    subject: str | None = Field(default=None, max_length=256, unique=True)
    external_ref: str | None = Field(default=None, max_length=128, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    archived_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class HouseholdMembership(TableModel, table=True):
    """A person lives in a household from ``valid_from`` (inclusive) to ``valid_to`` (exclusive).

    Dates are local days of the household's community. Periods of one individual never overlap.
    """

    __tablename__ = "household_membership"
    __table_args__ = (
        sa.Index("ix_household_membership_individual_period", "individual_id", "valid_from"),
        sa.Index("ix_household_membership_household_period", "household_id", "valid_from"),
        sa.CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="period_order"),
    )

    id: int | None = Field(default=None, primary_key=True)
    individual_id: int = Field(foreign_key="individual.id")
    household_id: int = Field(foreign_key="household.id")
    valid_from: date
    valid_to: date | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Employment(TableModel, table=True):
    """An individual works for an enterprise: the second roll-up path (Scope 3 cat. 7 commuting)."""

    __tablename__ = "employment"
    __table_args__ = (
        sa.Index("ix_employment_enterprise_period", "enterprise_id", "valid_from"),
        sa.Index("ix_employment_individual_period", "individual_id", "valid_from"),
        sa.CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="period_order"),
    )

    id: int | None = Field(default=None, primary_key=True)
    individual_id: int = Field(foreign_key="individual.id")
    enterprise_id: int = Field(foreign_key="enterprise.id")
    valid_from: date
    valid_to: date | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
