"""The one place that decides who may read or change what.

A viewer's stored grants are loaded once per request (one statement) and resolved to
materialised paths. Every decision after that is a prefix test on paths, in Python for single
nodes and as a SQL ``WHERE`` for lists, so authorization never costs a statement per row.

Rules, for a grant on node G and a target node T:
- PLATFORM_ADMIN: everything.
- subtree roles (ORG_ADMIN, COMMUNITY_MANAGER, ESG_ANALYST, PARTNER_SERVICE): T inside G's
  subtree gets the role's level (``SUBTREE_ACCESS``); T an ancestor of G gets ``PUBLIC``.
- RESIDENT on individual I: I itself and I's current household with its members get
  ``PERSONAL``; the household's ancestors get ``PUBLIC``.
- managing (create, update, archive, move, grant): ORG_ADMIN and COMMUNITY_MANAGER inside
  their subtree; a resident may update their own profile.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from carbongraph.authz.roles import (
    MANAGING_ROLES,
    MAY_GRANT,
    PLATFORM,
    REPORTING_ROLES,
    SUBTREE_ACCESS,
    Access,
    Role,
)
from carbongraph.authz.tokens import Principal
from carbongraph.models import Community, Enterprise, Household, HouseholdMembership, RoleGrant


@dataclass(frozen=True)
class ResolvedGrant:
    role: Role
    node_type: str
    node_id: int
    # The subtree the grant covers; for RESIDENT, the current household's path (or None).
    path: str | None


@dataclass(frozen=True)
class Target:
    """What policy needs to know about a node: where it sits and, for people, who they are."""

    paths: tuple[str, ...]
    individual_id: int | None = None


def individual_path(household_path: str, individual_id: int) -> str:
    return f"{household_path}i{individual_id}/"


def tenant_of(path: str) -> str:
    return path.split("/", 1)[0]


class Viewer:
    def __init__(self, principal: Principal | None, grants: Sequence[ResolvedGrant]) -> None:
        self.principal = principal
        self.grants = tuple(grants)
        self.is_platform_admin = any(g.role is Role.PLATFORM_ADMIN for g in self.grants)
        self.resident_individual_ids = frozenset(
            g.node_id for g in self.grants if g.role is Role.RESIDENT
        )
        self._paths = [g.path for g in self.grants if g.path]
        self.tenants = frozenset(tenant_of(p) for p in self._paths)

    @property
    def subject(self) -> str | None:
        return self.principal.subject if self.principal else None

    # -- single nodes ---------------------------------------------------------------------
    def access(self, target: Target) -> Access:
        if self.is_platform_admin:
            return Access.PERSONAL
        best = Access.NONE
        for grant in self.grants:
            best = max(best, self._grant_access(grant, target))
            if best is Access.PERSONAL:
                break
        return best

    def _grant_access(self, grant: ResolvedGrant, target: Target) -> Access:
        if grant.role is Role.RESIDENT:
            if target.individual_id is not None and target.individual_id == grant.node_id:
                return Access.PERSONAL
            level = Access.PERSONAL
        else:
            level = SUBTREE_ACCESS.get(grant.role, Access.NONE)
        if grant.path is None:
            return Access.NONE
        for path in target.paths:
            if path.startswith(grant.path):
                return level
        if target.individual_id is None and any(grant.path.startswith(p) for p in target.paths):
            return Access.PUBLIC
        return Access.NONE

    def sees(self, target: Target) -> bool:
        """Whether the node is visible at all (any access): services answer NOT_FOUND
        otherwise."""
        return self.access(target) > Access.NONE

    def may_know_exists(self, target: Target) -> bool:
        """Whether a refusal may say FORBIDDEN (same tenant) rather than NOT_FOUND."""
        return self.is_platform_admin or any(tenant_of(p) in self.tenants for p in target.paths)

    def can_manage(self, target: Target) -> bool:
        if self.is_platform_admin:
            return True
        for grant in self.grants:
            in_subtree = grant.path and any(p.startswith(grant.path) for p in target.paths)
            if grant.role in MANAGING_ROLES and in_subtree:
                return True
        return False

    def can_edit_profile(self, target: Target) -> bool:
        return self.can_manage(target) or (
            target.individual_id is not None
            and target.individual_id in self.resident_individual_ids
        )

    def can_record_activity(self, target: Target) -> bool:
        """Activity data: managers and partner services in their subtree, residents for
        themselves and their own household's meters."""
        if self.can_manage(target):
            return True
        for grant in self.grants:
            in_subtree = grant.path and any(p.startswith(grant.path) for p in target.paths)
            if grant.role is Role.PARTNER_SERVICE and in_subtree:
                return True
            if grant.role is Role.RESIDENT:
                if target.individual_id is not None and target.individual_id == grant.node_id:
                    return True
                if target.individual_id is None and grant.path and grant.path in target.paths:
                    return True
        return False

    def can_verify_actions(self, target: Target) -> bool:
        """Partner verification is a property of the grant, not of the caller: an action is
        verified only when a PARTNER_SERVICE grant (or an API key's scope) of the caller holds
        the person, placed by their household on the action's date. A partner grant elsewhere,
        or any other role, records a self-report under the self-report rules."""
        return any(
            grant.role is Role.PARTNER_SERVICE
            and grant.path
            and any(p.startswith(grant.path) for p in target.paths)
            for grant in self.grants
        )

    def can_report(self, target: Target) -> bool:
        """GHG inventory exports: ORG_ADMIN, ESG_ANALYST and COMMUNITY_MANAGER in their subtree
        (partner services and residents read footprints, not inventories)."""
        if self.is_platform_admin:
            return True
        return any(
            grant.role in REPORTING_ROLES
            and grant.path
            and any(p.startswith(grant.path) for p in target.paths)
            for grant in self.grants
        )

    def can_create_root(self) -> bool:
        """Enterprises and communities without an enterprise hang off the platform itself."""
        return self.is_platform_admin

    def can_grant(self, role: Role, target: Target) -> bool:
        if self.is_platform_admin:
            return True
        for grant in self.grants:
            allowed = MAY_GRANT.get(grant.role, frozenset())
            in_subtree = grant.path and any(p.startswith(grant.path) for p in target.paths)
            if role in allowed and in_subtree:
                return True
        return False

    # -- lists (SQL) ------------------------------------------------------------------------
    def node_filter(self, path_col: ColumnElement[str]) -> ColumnElement[bool] | None:
        """Rows of enterprise, community or household with at least PUBLIC access.

        None means "no restriction" (platform admin)."""
        if self.is_platform_admin:
            return None
        clauses: list[ColumnElement[bool]] = []
        for grant in self.grants:
            if grant.path is None:
                continue
            clauses.append(path_col.startswith(grant.path, autoescape=False))
            clauses.append(sa.literal(grant.path).startswith(path_col))
        return sa.or_(*clauses) if clauses else sa.false()

    def member_filter(
        self, individual_id_col: ColumnElement[int], container_path_col: ColumnElement[str]
    ) -> ColumnElement[bool] | None:
        """Individuals with at least AGGREGATE access, reached through a household or an
        enterprise whose path is ``container_path_col``."""
        if self.is_platform_admin:
            return None
        clauses: list[ColumnElement[bool]] = []
        for grant in self.grants:
            if grant.role is Role.RESIDENT:
                clauses.append(individual_id_col == grant.node_id)
            if grant.path is not None:
                clauses.append(container_path_col.startswith(grant.path, autoescape=False))
        return sa.or_(*clauses) if clauses else sa.false()


ANONYMOUS = Viewer(None, ())


def _grants_statement() -> sa.Select[tuple[object, ...]]:
    g = RoleGrant.__table__
    e = Enterprise.__table__.alias("e")
    c = Community.__table__.alias("c")
    m = HouseholdMembership.__table__.alias("m")
    mh = Household.__table__.alias("mh")
    today = sa.bindparam("today", type_=sa.Date())
    return (
        sa.select(g.c.role, g.c.node_type, g.c.node_id, e.c.path, c.c.path, mh.c.path)
        .select_from(g)
        .outerjoin(e, sa.and_(g.c.node_type == "Enterprise", e.c.id == g.c.node_id))
        .outerjoin(c, sa.and_(g.c.node_type == "Community", c.c.id == g.c.node_id))
        .outerjoin(
            m,
            sa.and_(
                g.c.node_type == "Individual",
                m.c.individual_id == g.c.node_id,
                m.c.valid_from <= today,
                sa.or_(m.c.valid_to.is_(None), m.c.valid_to > today),
            ),
        )
        .outerjoin(mh, mh.c.id == m.c.household_id)
        .where(g.c.principal == sa.bindparam("subject", type_=sa.String()))
        .order_by(g.c.id)
    )


# Built once: it runs on every request, and constructing it costs more than executing it.
GRANTS_STATEMENT = _grants_statement()

# PostgreSQL: the same grants, and in the same statement the scope that the row-level security
# policies read (migration 0009, docs/security.md): the tenants of the grants' paths (as
# resolve_grants derives them, then tenant_of), the people of RESIDENT grants, and the platform
# flag. The database keeps tenants apart; who may see what inside a tenant (and whether a
# refusal says FORBIDDEN or NOT_FOUND) stays with Viewer. The scope row always exists, so the
# settings are made even for a principal without grants (an empty scope: nothing personal is
# visible). A row of NULLs stands for "no grants".
#
# Written once with ``{subject}`` / ``{today}`` placeholders: SQLAlchemy binds ``:subject``
# (a request's transaction), asyncpg ``$1`` (the query planner's connections, planner/pool.py).
_GRANT_ROWS = """
      SELECT g.id, g.role, g.node_type, g.node_id, e.path AS e_path, c.path AS c_path,
             CASE WHEN g.node_type = 'Individual'
                  THEN carbongraph_current_household_path(g.node_id, {today}) END AS h_path
      FROM role_grant g
      LEFT JOIN enterprise e ON g.node_type = 'Enterprise' AND e.id = g.node_id
      LEFT JOIN community c ON g.node_type = 'Community' AND c.id = g.node_id
      WHERE g.principal = {subject}"""

# The settings the row-level security policies read, in the order the statement returns them.
SCOPE_SETTINGS = ("carbongraph.unrestricted", "carbongraph.paths", "carbongraph.individuals")

# What the scope is derived from, as one value: equal fingerprints, equal grants and scope.
_FINGERPRINT = (
    "md5(coalesce(string_agg(concat_ws('|', id, role, node_type, node_id, e_path, c_path, "
    "h_path), ';' ORDER BY id), ''))"
)


def grants_fingerprint_sql(subject: str, today: str) -> str:
    """A scalar sub-select: the fingerprint of ``subject``'s grants today, as
    ``scoped_grants_sql`` returns it."""
    rows = _GRANT_ROWS.format(subject=subject, today=today)
    return f"(SELECT {_FINGERPRINT} FROM ({rows}) AS fg)"


def scoped_grants_sql(subject: str, today: str, *, local: bool) -> str:
    """The grants and, in the same statement, the row-level security scope they imply:
    transaction-local (``local``: a request's transaction) or for the session (a connection of
    the query planner's own pool, which holds one viewer's scope between statements)."""
    is_local = "true" if local else "false"
    rows = _GRANT_ROWS.format(subject=subject, today=today)
    return f"""
    WITH g AS MATERIALIZED ({rows}
    ), s AS MATERIALIZED (
      SELECT
        set_config('carbongraph.unrestricted',
                   CASE WHEN bool_or(role = 'PLATFORM_ADMIN') THEN 'on' ELSE '' END,
                   {is_local}) AS a,
        set_config('carbongraph.paths',
                   coalesce(array_agg(DISTINCT
                                      split_part(coalesce(e_path, c_path, h_path), '/', 1) || '/%')
                              FILTER (WHERE coalesce(e_path, c_path, h_path) IS NOT NULL),
                            '{{}}')::text, {is_local}) AS p,
        set_config('carbongraph.individuals',
                   coalesce(array_agg(node_id) FILTER (WHERE role = 'RESIDENT'), '{{}}')::text,
                   {is_local}) AS i,
        {_FINGERPRINT} AS fingerprint
      FROM g
    )
    SELECT g.role, g.node_type, g.node_id, g.e_path, g.c_path, g.h_path,
           s.fingerprint, s.a AS unrestricted, s.p AS paths, s.i AS individuals
    FROM s LEFT JOIN g ON true
    ORDER BY g.id
    """


SCOPED_GRANTS_STATEMENT = sa.text(scoped_grants_sql(":subject", ":today", local=True)).bindparams(
    sa.bindparam("subject", type_=sa.String()), sa.bindparam("today", type_=sa.Date())
)


def resolve_grants(rows: Iterable[Sequence[Any]]) -> list[ResolvedGrant]:
    grants = []
    for role, node_type, node_id, e_path, c_path, home_path, *_scope in rows:
        if role is None:  # SCOPED_GRANTS_STATEMENT's row for "no grants"
            continue
        path = {"Enterprise": e_path, "Community": c_path, "Individual": home_path}.get(
            str(node_type)
        )
        if node_type == PLATFORM:
            path = None
        grants.append(ResolvedGrant(Role(str(role)), str(node_type), int(node_id), path))
    return grants
