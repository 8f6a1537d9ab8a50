"""carbon accounting core

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 12:52:58.865199
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "emission_factor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("factor_key", sa.String(length=64), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=False),
        sa.Column("region_code", sa.String(length=32), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("ug_per_unit", sa.BigInteger(), nullable=False),
        sa.Column("gas_breakdown", sa.String(length=1000), nullable=True),
        sa.Column("gwp_set", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("citation", sa.String(length=1000), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emission_factor")),
        sa.UniqueConstraint(
            "factor_key",
            "basis",
            "region_code",
            "valid_from",
            "version",
            name=op.f("uq_emission_factor_factor_key_basis_region_code_valid_from_version"),
        ),
    )
    with op.batch_alter_table("emission_factor", schema=None) as batch_op:
        batch_op.create_index(
            "ix_emission_factor_lookup", ["factor_key", "basis", "valid_from"], unique=False
        )

    op.create_table(
        "footprint_total",
        sa.Column("node", sa.String(length=1), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("via", sa.String(length=12), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("category", sa.Integer(), nullable=False),
        sa.Column("location_g", sa.BigInteger(), nullable=False),
        sa.Column("market_g", sa.BigInteger(), nullable=False),
        sa.Column("record_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "node",
            "node_id",
            "via",
            "day",
            "kind",
            "scope",
            "category",
            name=op.f("pk_footprint_total"),
        ),
    )
    op.create_table(
        "population_change",
        sa.Column("node", sa.String(length=1), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("via", sa.String(length=12), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("node", "node_id", "via", "day", name=op.f("pk_population_change")),
    )
    op.create_table(
        "activity_record",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_type", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("activity_type", sa.String(length=32), nullable=False),
        sa.Column("quantity_milli", sa.BigInteger(), nullable=False),
        sa.Column("entered_quantity", sa.String(length=40), nullable=False),
        sa.Column("entered_unit", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("meter_ref", sa.String(length=128), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("data_quality", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("category", sa.Integer(), nullable=False),
        sa.Column("location_g", sa.BigInteger(), nullable=False),
        sa.Column("market_g", sa.BigInteger(), nullable=False),
        sa.Column("offset_g", sa.BigInteger(), nullable=False),
        sa.Column("factor_id", sa.Integer(), nullable=True),
        sa.Column("market_factor_id", sa.Integer(), nullable=True),
        sa.Column("recorded_by", sa.String(length=256), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["factor_id"],
            ["emission_factor.id"],
            name=op.f("fk_activity_record_factor_id_emission_factor"),
        ),
        sa.ForeignKeyConstraint(
            ["market_factor_id"],
            ["emission_factor.id"],
            name=op.f("fk_activity_record_market_factor_id_emission_factor"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_record")),
        sa.UniqueConstraint("external_id", name=op.f("uq_activity_record_external_id")),
    )
    with op.batch_alter_table("activity_record", schema=None) as batch_op:
        batch_op.create_index(
            "ix_activity_record_account",
            ["account_type", "account_id", "period_start"],
            unique=False,
        )
        batch_op.create_index(
            "ix_activity_record_household_day", ["household_id", "period_start"], unique=False
        )
        batch_op.create_index(
            "ix_activity_record_meter",
            ["account_type", "account_id", "activity_type", "meter_ref", "period_start"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("activity_record", schema=None) as batch_op:
        batch_op.drop_index("ix_activity_record_meter")
        batch_op.drop_index("ix_activity_record_household_day")
        batch_op.drop_index("ix_activity_record_account")

    op.drop_table("activity_record")
    op.drop_table("population_change")
    op.drop_table("footprint_total")
    with op.batch_alter_table("emission_factor", schema=None) as batch_op:
        batch_op.drop_index("ix_emission_factor_lookup")

    op.drop_table("emission_factor")
