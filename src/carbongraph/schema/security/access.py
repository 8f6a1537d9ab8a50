"""Role grants and the viewer (``me``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay

from carbongraph.authz import GRANTABLE_ON, PLATFORM
from carbongraph.authz import Role as RoleValue
from carbongraph.errors import MutationFailed, UserErrorCode
from carbongraph.resolvers.context import Info
from carbongraph.schema.common import UserError, sized_field, user_errors_field
from carbongraph.schema.hierarchy.types import NODE_TYPES, IndividualNode
from carbongraph.schema.mutation_support import run_mutation
from carbongraph.schema.relay import decode_global_id, to_global_id
from carbongraph.services import access as service

# The domain's enum, registered in place (strawberry.enum returns the same class).
strawberry.enum(RoleValue, description="Roles inherit down the hierarchy from their node.")
Role = RoleValue


# Role grants of one principal: a few roles on a few nodes.
GRANTS = 20


@strawberry.type(description="A role held by a principal on a node (or on the whole platform).")
class RoleGrant:
    id: strawberry.ID
    principal: str = strawberry.field(description="The JWT subject holding the role.")
    role: Role
    node_id: strawberry.ID | None = strawberry.field(
        description="Global ID of the node the role applies to; null for platform-wide roles."
    )
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> RoleGrant:
        node_id = None if row.node_type == PLATFORM else to_global_id(row.node_type, row.node_id)
        return cls(
            id=strawberry.ID(to_global_id("RoleGrant", row.id)),
            principal=row.principal,
            role=RoleValue(row.role),
            node_id=strawberry.ID(node_id) if node_id else None,
            created_at=row.created_at,
        )


@strawberry.type(description="Who is asking, and what they hold.")
class Viewer:
    subject: str
    individual_ids: strawberry.Private[list[int]]

    @sized_field(GRANTS)
    async def grants(self, info: Info) -> list[RoleGrant]:
        rows = await service.grants_of(info.context.caller, self.subject)
        return [RoleGrant.from_row(r) for r in rows]

    @strawberry.field(description="The viewer's own carbon account, if they are a resident.")
    async def individual(self, info: Info) -> IndividualNode | None:
        if not self.individual_ids:
            return None
        return await IndividualNode.fetch(info, self.individual_ids[0])


def resolve_me(info: Info) -> Viewer | None:
    viewer = info.context.viewer
    if viewer.subject is None:
        return None
    return Viewer(subject=viewer.subject, individual_ids=sorted(viewer.resident_individual_ids))


@strawberry.input
class GrantRoleInput:
    principal: str
    role: Role
    node_id: strawberry.ID | None = strawberry.field(
        default=None, description="Omit for PLATFORM_ADMIN."
    )


@strawberry.type
class GrantRolePayload:
    grant: RoleGrant | None
    user_errors: list[UserError] = user_errors_field()


@strawberry.input
class RevokeRoleInput:
    grant_id: strawberry.ID


@strawberry.type
class RevokeRolePayload:
    revoked_grant_id: strawberry.ID | None
    user_errors: list[UserError] = user_errors_field()


def _grant_node(node_id: strawberry.ID | None, role: RoleValue) -> tuple[str, int]:
    if node_id is None:
        if PLATFORM in GRANTABLE_ON[role]:
            return PLATFORM, 0
        raise MutationFailed.single(
            ["input", "nodeId"], UserErrorCode.REQUIRED, f"{role} needs a nodeId."
        )
    try:
        type_name, pk = decode_global_id(node_id, list(NODE_TYPES))
    except Exception as exc:
        raise MutationFailed.single(
            ["input", "nodeId"], UserErrorCode.NOT_FOUND, "nodeId is not a node ID."
        ) from exc
    return type_name, pk


async def grant_role(info: Info, input: GrantRoleInput) -> GrantRolePayload:
    async def action() -> Any:
        role = RoleValue(input.role.value if hasattr(input.role, "value") else input.role)
        node_type, node_id = _grant_node(input.node_id, role)
        return await service.grant_role(
            info.context.caller,
            principal=input.principal,
            role=role,
            node_type=node_type,
            node_id=node_id,
        )

    row, errors = await run_mutation(info, action)
    return GrantRolePayload(grant=RoleGrant.from_row(row) if row else None, user_errors=errors)


async def revoke_role(info: Info, input: RevokeRoleInput) -> RevokeRolePayload:
    async def action() -> Any:
        try:
            _, pk = decode_global_id(input.grant_id, ["RoleGrant"])
        except Exception as exc:
            raise MutationFailed.single(
                ["input", "grantId"], UserErrorCode.NOT_FOUND, "grantId is not a grant ID."
            ) from exc
        return await service.revoke_role(info.context.caller, pk)

    row, errors = await run_mutation(info, action)
    revoked = strawberry.ID(to_global_id("RoleGrant", row.id)) if row else None
    return RevokeRolePayload(revoked_grant_id=revoked, user_errors=errors)


__all__ = ["Role", "RoleGrant", "Viewer", "grant_role", "relay", "resolve_me", "revoke_role"]
