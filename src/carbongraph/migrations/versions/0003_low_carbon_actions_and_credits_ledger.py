"""low-carbon actions and credits ledger

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 14:04:37.778534
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "action_type",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("methodology", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("credits_per_unit", sa.Integer(), nullable=False),
        sa.Column("avoided_g_per_unit", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=4), nullable=False),
        sa.Column("category", sa.Integer(), nullable=False),
        sa.Column("employer_scope", sa.String(length=4), nullable=False),
        sa.Column("employer_category", sa.Integer(), nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.String(length=16), nullable=False),
        sa.Column("self_report_cap", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("citation", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_type")),
        sa.UniqueConstraint("code", "version", name=op.f("uq_action_type_code_version")),
    )
    op.create_table(
        "action_record",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("individual_id", sa.Integer(), nullable=False),
        sa.Column("action_type_id", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("avoided_g", sa.BigInteger(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("decided_by", sa.String(length=256), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_by", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_type_id"],
            ["action_type.id"],
            name=op.f("fk_action_record_action_type_id_action_type"),
        ),
        sa.ForeignKeyConstraint(
            ["individual_id"],
            ["individual.id"],
            name=op.f("fk_action_record_individual_id_individual"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_record")),
        sa.UniqueConstraint("external_id", name=op.f("uq_action_record_external_id")),
    )
    with op.batch_alter_table("action_record", schema=None) as batch_op:
        batch_op.create_index(
            "ix_action_record_individual_day", ["individual_id", "occurred_on"], unique=False
        )
        batch_op.create_index("ix_action_record_status", ["status", "occurred_on"], unique=False)

    op.create_table(
        "credit_entry",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("individual_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("action_record_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["individual_id"],
            ["individual.id"],
            name=op.f("fk_credit_entry_individual_id_individual"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_entry")),
    )
    with op.batch_alter_table("credit_entry", schema=None) as batch_op:
        batch_op.create_index("ix_credit_entry_individual", ["individual_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("credit_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_entry_individual")

    op.drop_table("credit_entry")
    with op.batch_alter_table("action_record", schema=None) as batch_op:
        batch_op.drop_index("ix_action_record_status")
        batch_op.drop_index("ix_action_record_individual_day")

    op.drop_table("action_record")
    op.drop_table("action_type")
