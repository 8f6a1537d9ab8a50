"""carbongraph_analyze: the tables a bulk load fills, analysed for the application role
(PostgreSQL only)

Only a table's owner may ANALYZE it, and the importers connect as the application role, so
their refresh of the planner's statistics during a load did nothing ("only table or database
owner can analyze it"): a load into fresh or purged tables ran on statistics of empty tables
until autovacuum came by, and the look-ups of later batches could be planned as scans. This
function, owned by the migration's role and run with its rights, analyses the named tables,
and only tables that bulk loads fill; ``carbongraph migrate`` grants the application role
EXECUTE on it (``migrate.grant_app_role``).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 05:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables `carbongraph import activities` and `import actions` fill.
BULK_TABLES = ("activity_record", "footprint_total", "action_record", "credit_entry")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    allowed = ", ".join(f"'{t}'" for t in BULK_TABLES)
    op.execute(f"""
CREATE OR REPLACE FUNCTION carbongraph_analyze(tables text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  name text;
BEGIN
  FOREACH name IN ARRAY tables LOOP
    IF name IS NULL OR name NOT IN ({allowed}) THEN
      RAISE EXCEPTION 'carbongraph_analyze: % is not a table bulk loads fill', name
        USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('ANALYZE public.%I', name);
  END LOOP;
END
$$
""")
    op.execute("REVOKE ALL ON FUNCTION carbongraph_analyze(text[]) FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS carbongraph_analyze(text[])")
