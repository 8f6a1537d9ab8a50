"""Root query fields: the viewer, API keys and the audit log."""

from __future__ import annotations

from datetime import datetime

import strawberry

from carbongraph.resolvers.context import Info
from carbongraph.schema.common import CONNECTION_SIZE, MAX_PAGE, list_size
from carbongraph.schema.relay import Connection
from carbongraph.schema.security import access
from carbongraph.schema.security import types as security

PAGE = "Keyset pagination: `first`/`after` forwards, `last`/`before` backwards."


@strawberry.type
class SecurityQueries:
    me: access.Viewer | None = strawberry.field(
        resolver=access.resolve_me, description="The authenticated principal."
    )

    @strawberry.federation.field(
        description="API keys the viewer manages (every scope's node in their subtree). " + PAGE,
        directives=[CONNECTION_SIZE],
    )
    async def api_keys(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        include_inactive: bool = False,
    ) -> Connection[security.ApiKeyNode]:
        return await security.api_keys(info, first, after, last, before, include_inactive)

    @strawberry.federation.field(
        description="The audit log, newest first (platform admins). `after` pages to older "
        "events; `since` inclusive, `until` exclusive.",
        requires_scopes=[["PLATFORM_ADMIN"]],
        directives=[list_size(MAX_PAGE, slicing=("first",), sized=("edges",))],
    )
    async def audit_events(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        actor: str | None = None,
        operation: str | None = None,
        target_id: strawberry.ID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Connection[security.AuditEventNode]:
        return await security.audit_events(
            info, first, after, actor, operation, target_id, since, until
        )
