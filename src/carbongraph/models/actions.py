"""Low-carbon actions and the credits ledger."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field

from carbongraph.models.accounting import BIGINT
from carbongraph.models.base import TableModel, partial_unique_index, timestamp_column, utcnow


class ActionType(TableModel, table=True):
    """A kind of low-carbon action, versioned by methodology."""

    __tablename__ = "action_type"
    __table_args__ = (sa.UniqueConstraint("code", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64)
    version: int = Field(default=1)
    methodology: str = Field(max_length=64)
    name: str = Field(max_length=200)
    unit: str = Field(max_length=32)
    credits_per_unit: int
    avoided_g_per_unit: int
    # Where the avoided emissions are reported: "1", "2", "3" (with a category) or "3+"; and
    # how they map when the person rolls up through an employer (commuting → "3", 7).
    scope: str = Field(max_length=4)
    category: int = Field(default=0)
    employer_scope: str = Field(max_length=4)
    employer_category: int = Field(default=0)
    daily_cap: int  # units per person per day
    evidence: str = Field(max_length=16)  # NONE, PHOTO or PARTNER
    self_report_cap: int = Field(default=0)  # PARTNER actions a person may self-report per day
    valid_from: date
    valid_to: date | None = None
    citation: str = Field(max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class ActionRecord(TableModel, table=True):
    __tablename__ = "action_record"
    __table_args__ = (
        sa.Index("ix_action_record_individual_day", "individual_id", "occurred_on"),
        sa.Index("ix_action_record_status", "status", "occurred_on"),
    )

    id: int | None = Field(
        default=None, sa_column=sa.Column(BIGINT, primary_key=True, autoincrement=True)
    )
    individual_id: int = Field(foreign_key="individual.id")
    action_type_id: int = Field(foreign_key="action_type.id")
    units: int
    occurred_on: date
    status: str = Field(max_length=12)  # PENDING, APPROVED, REJECTED, REVERSED
    source: str = Field(max_length=12)  # SELF or PARTNER
    external_id: str | None = Field(default=None, max_length=200, unique=True)
    credits: int
    avoided_g: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    household_id: int | None = None
    evidence_id: int | None = Field(default=None)
    reason: str | None = Field(default=None, max_length=500)
    decided_by: str | None = Field(default=None, max_length=256)
    decided_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    recorded_by: str | None = Field(default=None, max_length=256)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class CreditEntry(TableModel, table=True):
    """Append-only: a balance is the sum of entries; a correction is a reversal, never an
    update."""

    __tablename__ = "credit_entry"
    __table_args__ = (
        sa.Index("ix_credit_entry_individual", "individual_id", "id"),
        # The last line of defence behind the lock discipline (locks.py): an action grants
        # once, gets each campaign's bonus once, and is reversed once.
        partial_unique_index(
            "ux_credit_entry_one_grant",
            "action_record_id",
            where="kind = 'GRANT' AND campaign_id IS NULL",
        ),
        partial_unique_index(
            "ux_credit_entry_one_bonus",
            "action_record_id",
            "campaign_id",
            where="kind = 'GRANT' AND campaign_id IS NOT NULL",
        ),
        partial_unique_index(
            "ux_credit_entry_one_reversal", "action_record_id", where="kind = 'REVERSAL'"
        ),
    )

    id: int | None = Field(
        default=None, sa_column=sa.Column(BIGINT, primary_key=True, autoincrement=True)
    )
    individual_id: int = Field(foreign_key="individual.id")
    kind: str = Field(max_length=12)  # GRANT, REVERSAL, REDEMPTION, EXPIRY
    amount: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    action_record_id: int | None = Field(default=None)
    # A campaign's bonus GRANT names its campaign (one bonus per action and campaign).
    campaign_id: int | None = Field(default=None, foreign_key="campaign.id")
    note: str | None = Field(default=None, max_length=500)
    created_by: str | None = Field(default=None, max_length=256)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Evidence(TableModel, table=True):
    """An uploaded photo. Its SHA-256 is unique: the same photo never earns twice."""

    __tablename__ = "evidence"

    id: int | None = Field(
        default=None, sa_column=sa.Column(BIGINT, primary_key=True, autoincrement=True)
    )
    sha256: str = Field(max_length=64, unique=True)
    content_type: str = Field(max_length=32)
    size_bytes: int
    storage_key: str = Field(max_length=200)
    captured_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    individual_id: int = Field(foreign_key="individual.id")
    uploaded_by: str | None = Field(default=None, max_length=256)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Reward(TableModel, table=True):
    """Something a community or enterprise offers for credits, while stock lasts."""

    __tablename__ = "reward"

    id: int | None = Field(default=None, primary_key=True)
    owner_type: str = Field(max_length=16)  # Community or Enterprise
    owner_id: int
    owner_path: str = Field(max_length=512, index=True)
    name: str = Field(max_length=200)
    cost_credits: int
    stock: int
    valid_from: date
    valid_to: date | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    __table_args__ = (
        sa.CheckConstraint("stock >= 0", name="stock_not_negative"),
        sa.CheckConstraint("cost_credits > 0", name="cost_positive"),
    )


class Redemption(TableModel, table=True):
    __tablename__ = "redemption"

    id: int | None = Field(
        default=None, sa_column=sa.Column(BIGINT, primary_key=True, autoincrement=True)
    )
    reward_id: int = Field(foreign_key="reward.id")
    individual_id: int = Field(foreign_key="individual.id")
    idempotency_key: str = Field(max_length=200, unique=True)
    credit_entry_id: int
    created_by: str | None = Field(default=None, max_length=256)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Campaign(TableModel, table=True):
    """A community's or enterprise's campaign: eligible actions in a window, a goal, and an
    optional credits multiplier for the actions it covers."""

    __tablename__ = "campaign"

    id: int | None = Field(default=None, primary_key=True)
    owner_type: str = Field(max_length=16)
    owner_id: int
    owner_path: str = Field(max_length=512, index=True)
    name: str = Field(max_length=200)
    starts_on: date
    ends_on: date  # inclusive
    action_types: str = Field(max_length=1000)  # comma-separated codes
    goal_kind: str = Field(max_length=16)  # KG_CO2E or PARTICIPANTS
    goal_value: int
    bonus_percent: int = Field(default=100)  # 150 = credits × 1.5
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class CreditPolicy(TableModel, table=True):
    """A programme's rules for credits: the programme is a top-level enterprise or a community
    standing directly under the platform."""

    __tablename__ = "credit_policy"
    __table_args__ = (sa.UniqueConstraint("owner_type", "owner_id"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_type: str = Field(max_length=16)
    owner_id: int
    owner_path: str = Field(max_length=512)
    # Credits expire this many months after they were granted, oldest first; null: never.
    expiry_months: int | None = None
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
