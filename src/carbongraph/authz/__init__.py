"""Authorization: principals from bearer tokens, stored role grants, and the policy that every
resolver and loader asks."""

from carbongraph.authz.policy import (
    ANONYMOUS,
    GRANTS_STATEMENT,
    SCOPED_GRANTS_STATEMENT,
    ResolvedGrant,
    Target,
    Viewer,
    individual_path,
    resolve_grants,
)
from carbongraph.authz.roles import GRANTABLE_ON, PLATFORM, Access, Role
from carbongraph.authz.tokens import InvalidToken, Principal, TokenVerifier, mint_token

__all__ = [
    "ANONYMOUS",
    "GRANTABLE_ON",
    "GRANTS_STATEMENT",
    "PLATFORM",
    "SCOPED_GRANTS_STATEMENT",
    "Access",
    "InvalidToken",
    "Principal",
    "ResolvedGrant",
    "Role",
    "Target",
    "TokenVerifier",
    "Viewer",
    "individual_path",
    "mint_token",
    "resolve_grants",
]
