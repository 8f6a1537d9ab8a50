"""Personal data, defined once: which tables and columns hold data about a person (or about a
household's own life), and how each row maps to the person or node it is about.

Read by the row-level security migration (0011), which puts every entry under a policy built
by ``condition``, and by tests/test_row_level_security.py, which checks from this registry
that each entry is covered on PostgreSQL and that a foreign tenant sees none of its rows.

The membership rule, explicit (docs/security.md, "The rule"): the database admits a person to
a tenant's scope when a RESIDENT grant names them, or when any of their memberships in a
household of the tenant, or employments with an enterprise of it, **past or present**, exists.
Inside that boundary the Python policy (authz/policy.py, docs/authorization.md) decides by the
**current** household and employers only, so a manager of the tenant a person left gets
NOT_FOUND for them. The database stays broader on purpose: a write that ends a person's last
membership or employment in the tenant (archiving them, moving them out, ending an
employment) must still update and return that person in the same request, and the tenant's
history (its households' memberships, records and totals) keeps referring to them. A person
who never belonged to a tenant is never visible to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OwnerKind = Literal["person", "resident", "household", "enterprise", "path"]


@dataclass(frozen=True)
class Owner:
    """One way a row belongs to someone; a row is in scope when any of its owners is.

    - ``person``: ``column`` holds an individual's id; in scope per the membership rule above;
    - ``resident``: ``column`` holds an individual's id named by a RESIDENT grant (the tables
      the membership rule itself reads use this, so that no policy refers back to itself);
    - ``household`` / ``enterprise``: ``column`` holds such a node's id, in scope by its path;
    - ``path``: the row's own materialised path column.

    ``when``: (column, value): the owner applies only to rows whose column holds the value.
    """

    kind: OwnerKind
    column: str
    when: tuple[str, str] | None = None


@dataclass(frozen=True)
class PersonalTable:
    table: str
    # The columns that say something about a person (the rest are keys and bookkeeping).
    columns: tuple[str, ...]
    owners: tuple[Owner, ...]
    # (column, value) selecting the personal rows; None: every row. Other rows (a platform's
    # or a household's total) are not about a person and pass the policy.
    rows: tuple[str, str] | None = None
    # A new row belongs to no tenant until something else links it (a person before their
    # membership or employment is written): any viewer with a tenant may insert it, unseen.
    open_insert: bool = False
    # Written with RETURNING or ON CONFLICT DO UPDATE: PostgreSQL then checks every written
    # row against USING as well, one row at a time, so USING is written for that too
    # (``person_in_scope``). Measured: 2.5 ms a row for actions dated before a person's
    # membership (their person check) at 910 households; the per-row form costs about 2 µs a
    # row when a read scans many rows instead of one hashed look-up a statement.
    checked_per_row: bool = False


REGISTRY: tuple[PersonalTable, ...] = (
    PersonalTable(
        "individual",
        ("display_name", "email", "subject", "external_ref"),
        (Owner("person", "id"),),
        open_insert=True,
    ),
    # A home's label (often the family's name) and who lives where; structure (path, kind)
    # rides along, so a foreign tenant does not see the row at all.
    PersonalTable(
        "household",
        ("name", "dwelling_type", "has_rooftop_solar", "external_ref"),
        (Owner("path", "path"),),
    ),
    PersonalTable(
        "household_membership",
        ("individual_id", "household_id", "valid_from", "valid_to"),
        (Owner("resident", "individual_id"), Owner("household", "household_id")),
    ),
    PersonalTable(
        "employment",
        ("individual_id", "enterprise_id", "valid_from", "valid_to"),
        (Owner("resident", "individual_id"), Owner("enterprise", "enterprise_id")),
    ),
    PersonalTable(
        "activity_record",
        (
            "account_id",
            "activity_type",
            "quantity_milli",
            "period_start",
            "period_end",
            "meter_ref",
        ),
        (
            Owner("household", "household_id"),
            Owner("household", "account_id", ("account_type", "Household")),
            Owner("person", "account_id", ("account_type", "Individual")),
        ),
        checked_per_row=True,
    ),
    PersonalTable(
        "action_record",
        ("individual_id", "action_type_id", "units", "occurred_on", "status", "avoided_g"),
        (Owner("household", "household_id"), Owner("person", "individual_id")),
        checked_per_row=True,
    ),
    PersonalTable(
        "credit_entry", ("individual_id", "kind", "amount"), (Owner("person", "individual_id"),)
    ),
    PersonalTable(
        "evidence", ("individual_id", "sha256", "storage_key"), (Owner("person", "individual_id"),)
    ),
    PersonalTable(
        "redemption", ("individual_id", "reward_id"), (Owner("person", "individual_id"),)
    ),
    # A person's own totals (emissions, reductions by day): the rows of node "I". Totals of
    # households and above are aggregates, withheld by the small-cell rules (docs/privacy.md)
    # rather than by tenant.
    PersonalTable(
        "footprint_total",
        ("location_g", "market_g", "record_count", "day"),
        (Owner("person", "node_id"),),
        rows=("node", "I"),
        checked_per_row=True,
    ),
)

BY_TABLE = {entry.table: entry for entry in REGISTRY}

# -- SQL for PostgreSQL's policies -------------------------------------------------------------
# The scope's settings are read through scalar sub-selects, which PostgreSQL evaluates once per
# statement (an InitPlan) rather than per row: parsing the array settings per row was most of
# the policies' cost.
ALL = "(SELECT carbongraph_scope_all())"
# The casts make ``= ANY (…)`` compare with the array, not with the sub-select's rows.
PATTERNS = "(SELECT carbongraph_scope_patterns())::text[]"
INDIVIDUALS = "(SELECT carbongraph_scope_individuals())::bigint[]"


def person_in_scope(individual: str, *, per_row: bool = False) -> str:
    """The membership rule for the individual id ``individual`` (a qualified column).

    ``per_row``: the same rule, written for checking one row at a time (WITH CHECK, i.e.
    every written row): the person's memberships by their index, then each one's household by
    its key. The join form lets the planner start from the households whose path matches (it
    cannot estimate ``LIKE ANY`` of a setting, guesses two rows, and scans them all for every
    row written: measured 0.8 ms a row at 910 households, growing with the tenant), which is
    right only for reads that check many rows at once (then it is hashed once a statement)."""
    if per_row:
        return (
            f"({individual} = ANY ({INDIVIDUALS})"
            f" OR EXISTS (SELECT 1 FROM household_membership m WHERE m.individual_id = {individual}"
            f" AND (SELECT h.path FROM household h WHERE h.id = m.household_id)"
            f" LIKE ANY ({PATTERNS}))"
            f" OR EXISTS (SELECT 1 FROM employment e WHERE e.individual_id = {individual}"
            f" AND (SELECT n.path FROM enterprise n WHERE n.id = e.enterprise_id)"
            f" LIKE ANY ({PATTERNS})))"
        )
    return (
        f"({individual} = ANY ({INDIVIDUALS})"
        " OR EXISTS (SELECT 1 FROM household_membership m JOIN household h"
        f" ON h.id = m.household_id WHERE m.individual_id = {individual}"
        f" AND h.path LIKE ANY ({PATTERNS}))"
        " OR EXISTS (SELECT 1 FROM employment e JOIN enterprise n ON n.id = e.enterprise_id"
        f" WHERE e.individual_id = {individual} AND n.path LIKE ANY ({PATTERNS})))"
    )


def _owner(table: str, owner: Owner, per_row: bool = False) -> str:
    column = f"{table}.{owner.column}"
    if owner.kind == "person":
        sql = person_in_scope(column, per_row=per_row)
    elif owner.kind == "resident":
        sql = f"{column} = ANY ({INDIVIDUALS})"
    elif owner.kind == "path":
        sql = f"{column} LIKE ANY ({PATTERNS})"
    else:
        node = owner.kind
        sql = (
            f"EXISTS (SELECT 1 FROM {node} x WHERE x.id = {column}"
            f" AND x.path LIKE ANY ({PATTERNS}))"
        )
    if owner.when:
        return f"({_equals(table, owner.when)} AND {sql})"
    return sql


def _equals(table: str, test: tuple[str, str]) -> str:
    # Qualified: inside a policy's sub-selects an unqualified name could bind to the inner table.
    column, value = test
    return f"{table}.{column} = '{value}'"


def condition(entry: PersonalTable, *, per_row: bool = False) -> str:
    """The policy's condition for a row of ``entry`` (USING; ``per_row``: the same condition
    written for WITH CHECK, see ``person_in_scope``): the platform flag first, so that system
    jobs pay one comparison a row, then rows that are not personal, then the owners."""
    parts = [ALL]
    if entry.rows:
        parts.append(f"NOT ({_equals(entry.table, entry.rows)})")
    parts += [_owner(entry.table, owner, per_row) for owner in entry.owners]
    return " OR ".join(f"({p})" for p in parts)


def policy_statements(entry: PersonalTable, *, per_row_check: bool = True) -> list[str]:
    """DDL putting ``entry``'s table under its policy (run by the migrations, as the owner).
    ``per_row_check`` False: WITH CHECK as USING (migration 0011 as first written); True: WITH
    CHECK, and USING of tables checked row by row, written for one row at a time (0012)."""
    table, using = entry.table, condition(entry, per_row=per_row_check and entry.checked_per_row)
    check = condition(entry, per_row=per_row_check)
    statements = [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        # FORCE: the owner is held to the policies too (unless it is a superuser).
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
    ]
    if not entry.open_insert:
        return [
            *statements,
            f"CREATE POLICY {table}_personal ON {table} USING ({using}) WITH CHECK ({check})",
        ]
    return [
        *statements,
        f"CREATE POLICY {table}_read ON {table} FOR SELECT USING ({using})",
        f"CREATE POLICY {table}_update ON {table} FOR UPDATE USING ({using}) WITH CHECK ({check})",
        f"CREATE POLICY {table}_delete ON {table} FOR DELETE USING ({using})",
        f"CREATE POLICY {table}_create ON {table} FOR INSERT WITH CHECK "
        f"({ALL} OR {PATTERNS} <> '{{}}')",
    ]
