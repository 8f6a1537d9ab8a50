"""account hierarchy and role grants

Revision ID: 0001
Revises:
Create Date: 2026-11-28 12:31:45.506263
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "enterprise",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("external_ref", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enterprise")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_enterprise_external_ref")),
        sa.UniqueConstraint("path", name=op.f("uq_enterprise_path")),
    )
    with op.batch_alter_table("enterprise", schema=None) as batch_op:
        batch_op.create_index(
            "ix_enterprise_path_prefix",
            ["path"],
            unique=False,
            postgresql_ops={"path": "varchar_pattern_ops"},
        )

    op.create_table(
        "individual",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.String(length=256), nullable=True),
        sa.Column("external_ref", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_individual")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_individual_external_ref")),
        sa.UniqueConstraint("subject", name=op.f("uq_individual_subject")),
    )
    op.create_table(
        "role_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("principal", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("node_type", sa.String(length=32), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_grant")),
        sa.UniqueConstraint(
            "principal",
            "role",
            "node_type",
            "node_id",
            name=op.f("uq_role_grant_principal_role_node_type_node_id"),
        ),
    )
    with op.batch_alter_table("role_grant", schema=None) as batch_op:
        batch_op.create_index("ix_role_grant_node", ["node_type", "node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_role_grant_principal"), ["principal"], unique=False)

    op.create_table(
        "community",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("region_code", sa.String(length=16), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("external_ref", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["enterprise_id"], ["enterprise.id"], name=op.f("fk_community_enterprise_id_enterprise")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["community.id"], name=op.f("fk_community_parent_id_community")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_community")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_community_external_ref")),
        sa.UniqueConstraint("path", name=op.f("uq_community_path")),
    )
    with op.batch_alter_table("community", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_community_enterprise_id"), ["enterprise_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_community_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(
            "ix_community_path_prefix",
            ["path"],
            unique=False,
            postgresql_ops={"path": "varchar_pattern_ops"},
        )

    op.create_table(
        "employment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("individual_id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from", name=op.f("ck_employment_period_order")
        ),
        sa.ForeignKeyConstraint(
            ["enterprise_id"],
            ["enterprise.id"],
            name=op.f("fk_employment_enterprise_id_enterprise"),
        ),
        sa.ForeignKeyConstraint(
            ["individual_id"],
            ["individual.id"],
            name=op.f("fk_employment_individual_id_individual"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_employment")),
    )
    with op.batch_alter_table("employment", schema=None) as batch_op:
        batch_op.create_index(
            "ix_employment_enterprise_period", ["enterprise_id", "valid_from"], unique=False
        )
        batch_op.create_index(
            "ix_employment_individual_period", ["individual_id", "valid_from"], unique=False
        )

    op.create_table(
        "household",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("dwelling_type", sa.String(length=32), nullable=False),
        sa.Column("has_rooftop_solar", sa.Boolean(), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("external_ref", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["community_id"], ["community.id"], name=op.f("fk_household_community_id_community")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_household_external_ref")),
        sa.UniqueConstraint("path", name=op.f("uq_household_path")),
    )
    with op.batch_alter_table("household", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_household_community_id"), ["community_id"], unique=False
        )
        batch_op.create_index(
            "ix_household_path_prefix",
            ["path"],
            unique=False,
            postgresql_ops={"path": "varchar_pattern_ops"},
        )

    op.create_table(
        "household_membership",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("individual_id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from",
            name=op.f("ck_household_membership_period_order"),
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["household.id"],
            name=op.f("fk_household_membership_household_id_household"),
        ),
        sa.ForeignKeyConstraint(
            ["individual_id"],
            ["individual.id"],
            name=op.f("fk_household_membership_individual_id_individual"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household_membership")),
    )
    with op.batch_alter_table("household_membership", schema=None) as batch_op:
        batch_op.create_index(
            "ix_household_membership_household_period", ["household_id", "valid_from"], unique=False
        )
        batch_op.create_index(
            "ix_household_membership_individual_period",
            ["individual_id", "valid_from"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("household_membership", schema=None) as batch_op:
        batch_op.drop_index("ix_household_membership_individual_period")
        batch_op.drop_index("ix_household_membership_household_period")

    op.drop_table("household_membership")
    with op.batch_alter_table("household", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_household_path_prefix", postgresql_ops={"path": "varchar_pattern_ops"}
        )
        batch_op.drop_index(batch_op.f("ix_household_community_id"))

    op.drop_table("household")
    with op.batch_alter_table("employment", schema=None) as batch_op:
        batch_op.drop_index("ix_employment_individual_period")
        batch_op.drop_index("ix_employment_enterprise_period")

    op.drop_table("employment")
    with op.batch_alter_table("community", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_community_path_prefix", postgresql_ops={"path": "varchar_pattern_ops"}
        )
        batch_op.drop_index(batch_op.f("ix_community_parent_id"))
        batch_op.drop_index(batch_op.f("ix_community_enterprise_id"))

    op.drop_table("community")
    with op.batch_alter_table("role_grant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_role_grant_principal"))
        batch_op.drop_index("ix_role_grant_node")

    op.drop_table("role_grant")
    op.drop_table("individual")
    with op.batch_alter_table("enterprise", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_enterprise_path_prefix", postgresql_ops={"path": "varchar_pattern_ops"}
        )

    op.drop_table("enterprise")
