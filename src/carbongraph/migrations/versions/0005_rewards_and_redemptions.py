"""rewards and redemptions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 14:14:14.052377
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reward",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_type", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("owner_path", sa.String(length=512), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("cost_credits", sa.Integer(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("cost_credits > 0", name=op.f("ck_reward_cost_positive")),
        sa.CheckConstraint("stock >= 0", name=op.f("ck_reward_stock_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward")),
    )
    with op.batch_alter_table("reward", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reward_owner_path"), ["owner_path"], unique=False)

    op.create_table(
        "redemption",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("reward_id", sa.Integer(), nullable=False),
        sa.Column("individual_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("credit_entry_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["individual_id"],
            ["individual.id"],
            name=op.f("fk_redemption_individual_id_individual"),
        ),
        sa.ForeignKeyConstraint(
            ["reward_id"], ["reward.id"], name=op.f("fk_redemption_reward_id_reward")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redemption")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_redemption_idempotency_key")),
    )


def downgrade() -> None:
    op.drop_table("redemption")
    with op.batch_alter_table("reward", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reward_owner_path"))

    op.drop_table("reward")
