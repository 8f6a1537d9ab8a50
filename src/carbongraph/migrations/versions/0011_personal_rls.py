"""row-level security on every table of the personal-data registry (PostgreSQL only)

The policies are built from ``carbongraph.models.personal.REGISTRY``: the eight tables of 0009,
now also ``household`` (its name) and a person's own totals (rows of ``footprint_total`` whose
node is an individual). The membership rule stays 0009's, now stated in the registry: any
membership or employment in the tenant, past or present (the Python policy decides by the
current ones inside that boundary). The scope's settings are read through scalar sub-selects,
evaluated once per statement instead of once per row.

Revision ID: 0011
Revises: 0010 (written on 0009; re-chained onto main's 0010 when merging main)
Create Date: 2026-12-01 15:00:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

from carbongraph.models.personal import REGISTRY, policy_statements

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_0009_POLICIES = ("in_scope", "read", "update", "delete", "create")


def _drop_policies(tables: Sequence[str], names: Sequence[str]) -> None:
    for table in tables:
        for name in names:
            op.execute(f"DROP POLICY IF EXISTS {table}_{name} ON {table}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    tables = [entry.table for entry in REGISTRY]
    _drop_policies(tables, _0009_POLICIES)
    for entry in REGISTRY:
        for statement in policy_statements(entry, per_row_check=False):
            op.execute(statement)


def _revision_0009() -> object:
    path = Path(__file__).with_name("0009_row_level_security.py")
    spec = importlib.util.spec_from_file_location("carbongraph_migration_0009", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    tables = [entry.table for entry in REGISTRY]
    _drop_policies(tables, ("personal", "read", "update", "delete", "create"))
    before = _revision_0009()
    for table in tables:
        if table not in before.PERSONAL_TABLES:  # type: ignore[attr-defined]
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    # 0009's policies as they were (it enables row-level security again, which is harmless).
    before.upgrade()  # type: ignore[attr-defined]
