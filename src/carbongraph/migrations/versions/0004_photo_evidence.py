"""photo evidence

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 14:09:04.176947
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evidence",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("individual_id", sa.Integer(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["individual_id"], ["individual.id"], name=op.f("fk_evidence_individual_id_individual")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence")),
        sa.UniqueConstraint("sha256", name=op.f("uq_evidence_sha256")),
    )
    with op.batch_alter_table("action_record", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("action_record", schema=None) as batch_op:
        batch_op.drop_column("evidence_id")

    op.drop_table("evidence")
