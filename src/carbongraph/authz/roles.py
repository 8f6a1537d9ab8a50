"""Roles, the node types each may be granted on, and what each lets its holder see and do."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Role(StrEnum):
    PLATFORM_ADMIN = "PLATFORM_ADMIN"
    ORG_ADMIN = "ORG_ADMIN"
    ESG_ANALYST = "ESG_ANALYST"
    COMMUNITY_MANAGER = "COMMUNITY_MANAGER"
    RESIDENT = "RESIDENT"
    PARTNER_SERVICE = "PARTNER_SERVICE"


class Access(IntEnum):
    """How much of one node a viewer may read. Ordered: a higher level includes the lower ones."""

    NONE = 0
    # The node's public facts (an organisation's name, region): it contains the viewer's own grant.
    PUBLIC = 1
    # Structure and aggregates of the node, but nothing that identifies a person.
    AGGREGATE = 2
    # Everything, personal data (names, e-mail) included.
    PERSONAL = 3


PLATFORM = "Platform"

# Which node types a role may be granted on.
GRANTABLE_ON: dict[Role, frozenset[str]] = {
    Role.PLATFORM_ADMIN: frozenset({PLATFORM}),
    Role.ORG_ADMIN: frozenset({"Enterprise"}),
    Role.ESG_ANALYST: frozenset({"Enterprise", "Community"}),
    Role.COMMUNITY_MANAGER: frozenset({"Community"}),
    Role.RESIDENT: frozenset({"Individual"}),
    Role.PARTNER_SERVICE: frozenset({"Enterprise", "Community"}),
}

# What a subtree grant gives on every node below (and including) its node.
SUBTREE_ACCESS: dict[Role, Access] = {
    Role.ORG_ADMIN: Access.PERSONAL,
    Role.COMMUNITY_MANAGER: Access.PERSONAL,
    Role.ESG_ANALYST: Access.AGGREGATE,
    Role.PARTNER_SERVICE: Access.AGGREGATE,
}

# Roles whose holders manage (create, update, archive, move, grant) inside their subtree.
MANAGING_ROLES = frozenset({Role.ORG_ADMIN, Role.COMMUNITY_MANAGER})

# Which roles a holder of a role may grant to others, inside its own subtree.
MAY_GRANT: dict[Role, frozenset[Role]] = {
    Role.PLATFORM_ADMIN: frozenset(Role),
    Role.ORG_ADMIN: frozenset(
        {
            Role.ORG_ADMIN,
            Role.ESG_ANALYST,
            Role.COMMUNITY_MANAGER,
            Role.RESIDENT,
            Role.PARTNER_SERVICE,
        }
    ),
    Role.COMMUNITY_MANAGER: frozenset({Role.COMMUNITY_MANAGER, Role.RESIDENT}),
}

# Roles whose holders may export a GHG inventory of their subtree (aggregates only).
REPORTING_ROLES = frozenset({Role.ORG_ADMIN, Role.ESG_ANALYST, Role.COMMUNITY_MANAGER})
