"""credit policies

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 14:21:02.097961
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_type", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("owner_path", sa.String(length=512), nullable=False),
        sa.Column("expiry_months", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_policy")),
        sa.UniqueConstraint(
            "owner_type", "owner_id", name=op.f("uq_credit_policy_owner_type_owner_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("credit_policy")
