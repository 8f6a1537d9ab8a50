"""row-level security on the personal tables (PostgreSQL only)

Defence in depth under the resolvers' own checks: every transaction of a request carries the
viewer's scope in transaction-local settings (see docs/security.md, "Row-level security"):

- ``carbongraph.unrestricted`` = ``on``: platform admins and trusted system jobs see every row;
- ``carbongraph.paths``: a text array of LIKE patterns, one per tenant the viewer has a grant
  in ("e1/%", "c7/%"): the database keeps tenants apart, the resolvers decide within one;
- ``carbongraph.individuals``: a bigint array, the people a RESIDENT grant names.

An individual is in scope when the scope names them, or when any of their memberships (past or
present) is in a household, or any of their employments in an enterprise, of a tenant in scope. Rows of the other personal tables follow the person (or the household) they belong to.
Without settings nothing personal is visible: the policies fail closed. SQLite has no row-level
security; this migration does nothing there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 15:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table holding data about a person or a household's own meters.
PERSONAL_TABLES = (
    "individual",
    "household_membership",
    "employment",
    "activity_record",
    "action_record",
    "credit_entry",
    "evidence",
    "redemption",
)

_FUNCTIONS = [
    # Simple expressions over current_setting: the planner inlines them into the policies.
    """
    CREATE OR REPLACE FUNCTION carbongraph_scope_all() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('carbongraph.unrestricted', true), '') = 'on' $$
    """,
    """
    CREATE OR REPLACE FUNCTION carbongraph_scope_patterns() RETURNS text[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('carbongraph.paths', true), '')::text[] $$
    """,
    """
    CREATE OR REPLACE FUNCTION carbongraph_scope_individuals() RETURNS bigint[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('carbongraph.individuals', true), '')::bigint[] $$
    """,
    # The viewer's own grants are read before the scope exists (they define it): this one
    # look-up sees memberships whatever the scope; SET restores the flag when it returns.
    """
    CREATE OR REPLACE FUNCTION carbongraph_current_household_path(person bigint, day date)
    RETURNS text
    LANGUAGE sql STABLE SET carbongraph.unrestricted = 'on'
    AS $$
      SELECT h.path FROM household_membership m JOIN household h ON h.id = m.household_id
      WHERE m.individual_id = person AND m.valid_from <= day
        AND (m.valid_to IS NULL OR m.valid_to > day)
      ORDER BY m.valid_from DESC LIMIT 1
    $$
    """,
]


def _home(household: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM household h WHERE h.id = {household}"
        " AND h.path LIKE ANY (carbongraph_scope_patterns()))"
    )


def _person(individual: str) -> str:
    # Written out in each policy rather than called as a function: the planner then runs the
    # EXISTS as index probes or one hashed sub-select (about 3 µs a row on the small benchmark
    # dataset), where a plpgsql function call per row cost about 50 µs.
    # The membership and employment tables apply their own policies inside, which agree.
    return (
        f"({individual} = ANY (carbongraph_scope_individuals())"
        " OR EXISTS (SELECT 1 FROM household_membership m JOIN household h"
        f" ON h.id = m.household_id WHERE m.individual_id = {individual}"
        " AND h.path LIKE ANY (carbongraph_scope_patterns()))"
        " OR EXISTS (SELECT 1 FROM employment e JOIN enterprise n ON n.id = e.enterprise_id"
        f" WHERE e.individual_id = {individual}"
        " AND n.path LIKE ANY (carbongraph_scope_patterns())))"
    )


# The condition a row must meet to be read or written (besides the platform flag, tested
# first, so that system jobs pay one comparison per row). Columns are qualified with their
# table: inside the sub-selects an unqualified name could bind to the inner table.
_POLICIES = {
    "individual": _person("individual.id"),
    "household_membership": (
        "household_membership.individual_id = ANY (carbongraph_scope_individuals())"
        f" OR {_home('household_membership.household_id')}"
    ),
    "employment": (
        "employment.individual_id = ANY (carbongraph_scope_individuals())"
        " OR EXISTS (SELECT 1 FROM enterprise n WHERE n.id = employment.enterprise_id"
        " AND n.path LIKE ANY (carbongraph_scope_patterns()))"
    ),
    "activity_record": (
        f"{_home('activity_record.household_id')}"
        " OR (activity_record.account_type = 'Household'"
        f" AND {_home('activity_record.account_id')})"
        " OR (activity_record.account_type = 'Individual'"
        f" AND {_person('activity_record.account_id')})"
    ),
    "action_record": (
        f"{_home('action_record.household_id')} OR {_person('action_record.individual_id')}"
    ),
    "credit_entry": _person("credit_entry.individual_id"),
    "evidence": _person("evidence.individual_id"),
    "redemption": _person("redemption.individual_id"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _FUNCTIONS:
        op.execute(statement)
    for table in PERSONAL_TABLES:
        condition = f"carbongraph_scope_all() OR {_POLICIES[table]}"
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        # FORCE: the owner is held to the policies too (unless it is a superuser).
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        if table == "individual":
            # A new person belongs to no tenant until their membership or employment is written
            # (which its own policy checks); until then any viewer with a tenant may insert
            # them, without seeing them. Reading and changing people follows the scope.
            op.execute(
                f"CREATE POLICY individual_read ON individual FOR SELECT USING ({condition})"
            )
            op.execute(
                f"CREATE POLICY individual_update ON individual FOR UPDATE "
                f"USING ({condition}) WITH CHECK ({condition})"
            )
            op.execute(
                f"CREATE POLICY individual_delete ON individual FOR DELETE USING ({condition})"
            )
            op.execute(
                "CREATE POLICY individual_create ON individual FOR INSERT WITH CHECK "
                "(carbongraph_scope_all() OR carbongraph_scope_patterns() <> '{}')"
            )
            continue
        op.execute(
            f"CREATE POLICY {table}_in_scope ON {table} "
            f"USING ({condition}) WITH CHECK ({condition})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in ("read", "update", "delete", "create"):
        op.execute(f"DROP POLICY IF EXISTS individual_{name} ON individual")
    for table in PERSONAL_TABLES:
        op.execute(f"DROP POLICY IF EXISTS {table}_in_scope ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for name in (
        "carbongraph_current_household_path(bigint, date)",
        "carbongraph_scope_individuals()",
        "carbongraph_scope_patterns()",
        "carbongraph_scope_all()",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {name}")
