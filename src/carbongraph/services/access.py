"""Granting and revoking roles."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from carbongraph import audit
from carbongraph.authz import GRANTABLE_ON, PLATFORM, Role, Target
from carbongraph.caller import Caller
from carbongraph.errors import MutationFailed, UserErrorCode
from carbongraph.models import RoleGrant
from carbongraph.models.base import utcnow
from carbongraph.services.hierarchy import load_target
from carbongraph.services.validation import Checker

G = RoleGrant.__table__


async def _grant_target(caller: Caller, node_type: str, node_id: int) -> Target | None:
    if node_type == PLATFORM:
        return None
    row = await load_target(caller, node_type, node_id, ["input", "nodeId"], manage=False)
    return row.target if node_type == "Individual" else Target((row.path,))


def _may_grant(caller: Caller, role: Role, target: Target | None) -> bool:
    if target is None:
        return caller.viewer.is_platform_admin
    return caller.viewer.can_grant(role, target)


async def grant_role(
    caller: Caller, *, principal: str, role: Role, node_type: str, node_id: int
) -> Any:
    check = Checker()
    principal = check.text("principal", principal, max_length=256)  # type: ignore[assignment]
    if node_type not in GRANTABLE_ON[role]:
        allowed = ", ".join(sorted(GRANTABLE_ON[role]))
        raise MutationFailed.single(
            ["input", "nodeId"], UserErrorCode.NOT_GRANTABLE, f"{role} is granted on: {allowed}."
        )
    target = await _grant_target(caller, node_type, node_id)
    if not _may_grant(caller, role, target):
        raise MutationFailed.single(
            ["input", "role"], UserErrorCode.FORBIDDEN, f"You may not grant {role} here."
        )
    if not check.ok:
        raise MutationFailed(check.errors)
    existing = (
        await caller.db.execute(
            sa.select(G).where(
                G.c.principal == principal,
                G.c.role == role.value,
                G.c.node_type == node_type,
                G.c.node_id == node_id,
            )
        )
    ).first()
    if existing is not None:
        return existing  # granting twice is a no-op, not an error
    pk = (
        await caller.db.execute(
            sa.insert(G)
            .values(
                principal=principal,
                role=role.value,
                node_type=node_type,
                node_id=node_id,
                created_at=utcnow(),
                created_by=caller.viewer.subject,
            )
            .returning(G.c.id)
        )
    ).scalar_one()
    return (await caller.db.execute(sa.select(G).where(G.c.id == pk))).one()


async def revoke_role(caller: Caller, grant_id: int) -> Any:
    row = (await caller.db.execute(sa.select(G).where(G.c.id == grant_id))).first()
    target = None
    if row is not None and row.node_type != PLATFORM:
        try:
            target = await _grant_target(caller, row.node_type, row.node_id)
        except MutationFailed:
            row = None  # on a node the viewer cannot see: answered like a grant that is not there
    elif row is not None and not caller.viewer.is_platform_admin:
        row = None  # platform grants are for platform admins to see
    if row is None:
        raise MutationFailed.single(["input", "grantId"], UserErrorCode.NOT_FOUND, "No such grant.")
    if not _may_grant(caller, Role(row.role), target):
        raise MutationFailed.single(
            ["input", "grantId"], UserErrorCode.FORBIDDEN, "You may not revoke this grant."
        )
    await caller.db.execute(sa.delete(G).where(G.c.id == grant_id))
    # The input names only the grant's ID, which is gone now: the audit event keeps what it was.
    audit.note(caller, principal=row.principal, role=row.role, nodeType=row.node_type)
    audit.note(caller, nodeId=row.node_id)
    return row


async def grants_of(caller: Caller, principal: str) -> list[Any]:
    return list(
        await caller.db.execute(sa.select(G).where(G.c.principal == principal).order_by(G.c.id))
    )
