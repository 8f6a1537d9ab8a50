"""one GRANT, one campaign bonus and one REVERSAL per action

The lock discipline (carbongraph/locks.py) keeps concurrent writers of a person's credits in
turn; these unique indexes are the last line of defence behind it. A campaign's bonus entry
now names its campaign (``credit_entry.campaign_id``), filled in for existing bonuses from the
note they were written with ("campaign N bonus").

A database in which the race already wrote duplicates cannot take the indexes: the upgrade
stops and names the actions, whose ledgers an operator corrects first.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 14:40:00
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BONUS_NOTE = re.compile(r"^campaign (\d+) bonus$")


def upgrade() -> None:
    with op.batch_alter_table("credit_entry") as batch:
        batch.add_column(sa.Column("campaign_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_credit_entry_campaign_id_campaign"), "campaign", ["campaign_id"], ["id"]
        )
    conn = op.get_bind()
    bonuses = conn.execute(
        sa.text("SELECT id, note FROM credit_entry WHERE kind = 'GRANT' AND note LIKE 'campaign %'")
    ).all()
    for pk, note in bonuses:
        found = _BONUS_NOTE.match(note or "")
        if found:
            conn.execute(
                sa.text("UPDATE credit_entry SET campaign_id = :c WHERE id = :id"),
                {"c": int(found.group(1)), "id": pk},
            )
    duplicates = conn.execute(
        sa.text(
            """
            SELECT action_record_id, kind, count(*) FROM credit_entry
            WHERE action_record_id IS NOT NULL AND kind IN ('GRANT', 'REVERSAL')
            GROUP BY action_record_id, kind, campaign_id HAVING count(*) > 1
            ORDER BY action_record_id LIMIT 20
            """
        )
    ).all()
    if duplicates:
        listed = ", ".join(f"action {a}: {n} {k}" for a, k, n in duplicates)
        raise RuntimeError(
            "credit_entry holds more than one GRANT or REVERSAL for some actions (written by "
            f"concurrent requests before this fix): {listed}. Correct these ledgers, then run "
            "the migration again."
        )
    for name, columns, where in (
        (
            "ux_credit_entry_one_grant",
            ["action_record_id"],
            "kind = 'GRANT' AND campaign_id IS NULL",
        ),
        (
            "ux_credit_entry_one_bonus",
            ["action_record_id", "campaign_id"],
            "kind = 'GRANT' AND campaign_id IS NOT NULL",
        ),
        ("ux_credit_entry_one_reversal", ["action_record_id"], "kind = 'REVERSAL'"),
    ):
        op.create_index(
            name,
            "credit_entry",
            columns,
            unique=True,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    for name in (
        "ux_credit_entry_one_reversal",
        "ux_credit_entry_one_bonus",
        "ux_credit_entry_one_grant",
    ):
        op.drop_index(name, table_name="credit_entry")
    with op.batch_alter_table("credit_entry") as batch:
        batch.drop_constraint(op.f("fk_credit_entry_campaign_id_campaign"), type_="foreignkey")
        batch.drop_column("campaign_id")
