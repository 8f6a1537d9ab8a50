"""API keys for partner services, and the audit log (platform admins)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
import strawberry
from strawberry import relay

from carbongraph.audit import A
from carbongraph.audit import Outcome as OutcomeValue
from carbongraph.authz import Role as RoleValue
from carbongraph.authz.api_keys import aware
from carbongraph.errors import Forbidden, NotFound
from carbongraph.resolvers.context import Info
from carbongraph.resolvers.hierarchy import root_count, root_page
from carbongraph.resolvers.pagination import Page
from carbongraph.schema.common import sized_field
from carbongraph.schema.relay import Connection, build_connection, page_args, to_global_id
from carbongraph.schema.security.access import Role
from carbongraph.services import api_keys as service

# Scopes of one API key: a partner's few nodes.
API_KEY_SCOPES = 10


@strawberry.type(description="A role an API key acts with, on a node and its subtree.")
class ApiKeyScope:
    role: Role
    node_id: strawberry.ID


@strawberry.type(
    name="ApiKey",
    description="A partner service's credential. The secret is shown once, when the key is "
    "created or rotated, and never again.",
)
class ApiKeyNode(relay.Node):
    pk: relay.NodeID[int]
    name: str
    prefix: str = strawberry.field(
        description="The public start of the key (`cgk_<prefix>_…`), to tell keys apart."
    )
    scopes: list[ApiKeyScope] = sized_field(API_KEY_SCOPES)
    created_by: str = strawberry.field(description="The subject who created the key.")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = strawberry.field(
        description="The last authenticated request, to within a minute."
    )
    revoked_at: datetime | None = strawberry.field(
        description="When the key stops (or stopped) working; in the future while a rotation's "
        "grace period runs."
    )
    rotated_from_id: strawberry.ID | None = strawberry.field(
        description="The key this one replaced."
    )
    active: bool = strawberry.field(description="Whether the key authenticates now.")

    @classmethod
    def from_row(cls, row: Any, scopes: list[Any]) -> ApiKeyNode:
        now = datetime.now(UTC)
        revoked, expires = aware(row.revoked_at), aware(row.expires_at)
        return cls(
            pk=row.id,
            name=row.name,
            prefix=row.prefix,
            scopes=[
                ApiKeyScope(
                    role=RoleValue(s.role),
                    node_id=strawberry.ID(to_global_id(s.node_type, s.node_id)),
                )
                for s in scopes
            ],
            created_by=row.created_by,
            created_at=aware(row.created_at),  # type: ignore[arg-type]
            expires_at=expires,
            last_used_at=aware(row.last_used_at),
            revoked_at=revoked,
            rotated_from_id=(
                strawberry.ID(to_global_id("ApiKey", row.rotated_from_id))
                if row.rotated_from_id
                else None
            ),
            active=(revoked is None or revoked > now) and (expires is None or expires > now),
        )

    @classmethod
    def from_record(cls, record: service.KeyRecord) -> ApiKeyNode:
        return cls.from_row(record.row, record.scopes)

    @classmethod
    async def fetch(cls, info: Info, pk: int) -> ApiKeyNode:
        record = await service.fetch_key(info.context.caller, pk)
        if record is None:
            raise NotFound()
        return cls.from_record(record)


@strawberry.enum(description="Who acted.")
class AuditActorKind(StrEnum):
    USER = "USER"
    API_KEY = "API_KEY"
    CLI = "CLI"


@strawberry.enum(description="How a mutation ended.")
class AuditOutcome(StrEnum):
    OK = OutcomeValue.OK
    USER_ERROR = OutcomeValue.USER_ERROR
    FORBIDDEN = OutcomeValue.FORBIDDEN
    NOT_FOUND = OutcomeValue.NOT_FOUND
    REFUSED = OutcomeValue.REFUSED
    ERROR = OutcomeValue.ERROR


@strawberry.type(name="AuditEvent", description="One mutation or grant change: who, what, when.")
class AuditEventNode(relay.Node):
    pk: relay.NodeID[int]
    occurred_at: datetime
    actor: str | None = strawberry.field(
        description="The JWT subject, `apikey:<prefix>` or `cli:<user>`."
    )
    actor_kind: AuditActorKind
    api_key_id: strawberry.ID | None
    request_id: str | None
    operation: str = strawberry.field(description="The mutation (or command) name.")
    outcome: AuditOutcome
    target_ids: list[strawberry.ID] = strawberry.field(
        description="Global IDs the operation named or produced."
    )
    input_summary: str = strawberry.field(
        description="The input as JSON, without secrets, tokens or file contents; long values cut."
    )

    @classmethod
    def from_row(cls, row: Any) -> AuditEventNode:
        return cls(
            pk=row.id,
            occurred_at=aware(row.occurred_at),  # type: ignore[arg-type]
            actor=row.actor_subject,
            actor_kind=AuditActorKind(row.actor_kind),
            api_key_id=(
                strawberry.ID(to_global_id("ApiKey", row.api_key_id)) if row.api_key_id else None
            ),
            request_id=row.request_id,
            operation=row.operation,
            outcome=AuditOutcome(row.outcome),
            target_ids=[strawberry.ID(t) for t in row.target_ids.split()],
            input_summary=row.summary,
        )

    @classmethod
    async def fetch(cls, info: Info, pk: int) -> AuditEventNode:
        if not info.context.viewer.is_platform_admin:
            raise NotFound()
        row = (await info.context.db.execute(sa.select(A).where(A.c.id == pk))).first()
        if row is None:
            raise NotFound()
        return cls.from_row(row)


# -- queries ---------------------------------------------------------------------------------


async def api_keys(
    info: Info,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    include_inactive: bool,
) -> Connection[ApiKeyNode]:
    args = page_args(info, first, after, last, before)
    ctx = info.context
    select = service.visible_keys(ctx.viewer, include_inactive, datetime.now(UTC))
    page = await root_page(ctx.db, select, args)
    scopes = await service.scopes_of(ctx.caller, [r.id for r in page.rows])
    return build_connection(
        page, lambda r: ApiKeyNode.from_row(r, scopes[r.id]), lambda: root_count(ctx.db, select)
    )


async def audit_events(
    info: Info,
    first: int | None,
    after: str | None,
    actor: str | None,
    operation: str | None,
    target_id: strawberry.ID | None,
    since: datetime | None,
    until: datetime | None,
) -> Connection[AuditEventNode]:
    if not info.context.viewer.is_platform_admin:
        raise Forbidden("Only platform admins read the audit log.")
    args = page_args(info, first, after, None, None)
    select = sa.select(A)
    if actor is not None:
        select = select.where(A.c.actor_subject == actor)
    if operation is not None:
        select = select.where(A.c.operation == operation)
    if target_id is not None:
        select = select.where(A.c.target_ids.contains(f" {target_id} ", autoescape=True))
    if since is not None:
        select = select.where(A.c.occurred_at >= since)
    if until is not None:
        select = select.where(A.c.occurred_at < until)
    db = info.context.db
    # Newest first: the keyset runs down the ids, so `after` means "older than".
    paged = select.order_by(A.c.id.desc()).limit(args.limit + 1)
    if args.after is not None:
        paged = paged.where(A.c.id < args.after)
    rows = list(await db.execute(paged))
    page = Page(rows[: args.limit], len(rows) > args.limit, args.after is not None)
    return build_connection(page, AuditEventNode.from_row, lambda: root_count(db, select))


SECURITY_NODE_TYPES = {"ApiKey": ApiKeyNode.fetch, "AuditEvent": AuditEventNode.fetch}

__all__ = [
    "SECURITY_NODE_TYPES",
    "ApiKeyNode",
    "AuditEventNode",
    "api_keys",
    "audit_events",
]
