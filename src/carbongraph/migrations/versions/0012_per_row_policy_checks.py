"""row-level security: WITH CHECK written for one row at a time (PostgreSQL only)

0011 used one condition for USING and WITH CHECK. Checking written rows, PostgreSQL plans the
membership rule's join per row and, unable to estimate ``path LIKE ANY (setting)``, starts from
the households: every row written for a person scanned the tenant's households (measured:
0.8 ms a row at 910 households; a partner's 10,000 verified actions spent most of their time
there). The same rule, driven from the person's memberships by index and each household by its
key (``personal.person_in_scope(per_row=True)``), is now the WITH CHECK of every registered
table, and the USING of the tables whose writes check each row against USING too
(``checked_per_row``: INSERT … RETURNING and ON CONFLICT DO UPDATE): ``footprint_total``
(10,000 verified actions: 2,721 people's cells took 4.6 s, 1.7 ms a row), ``action_record`` and
``activity_record`` (a person's rows dated before their membership: 2.5 ms a row). Other USING
clauses (reads, where the join is hashed once a statement) are unchanged.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 18:00:00
"""

from collections.abc import Sequence

from alembic import op

from carbongraph.models.personal import REGISTRY, policy_statements

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _recreate(per_row_check: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for entry in REGISTRY:
        for name in ("personal", "read", "update", "delete", "create"):
            op.execute(f"DROP POLICY IF EXISTS {entry.table}_{name} ON {entry.table}")
        for statement in policy_statements(entry, per_row_check=per_row_check):
            op.execute(statement)


def upgrade() -> None:
    _recreate(per_row_check=True)


def downgrade() -> None:
    _recreate(per_row_check=False)
