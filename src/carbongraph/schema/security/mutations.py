"""API key mutations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay

from carbongraph.authz import Role as RoleValue
from carbongraph.errors import MutationFailed, UserErrorCode
from carbongraph.resolvers.context import Info
from carbongraph.schema.common import UserError, user_errors_field
from carbongraph.schema.mutation_support import run_mutation
from carbongraph.schema.security import access
from carbongraph.schema.security.access import Role
from carbongraph.schema.security.types import (
    ApiKeyNode,
)
from carbongraph.services import api_keys as service


@strawberry.input
class ApiKeyScopeInput:
    role: Role
    node_id: strawberry.ID = strawberry.field(description="An Enterprise or a Community.")


@strawberry.input
class CreateApiKeyInput:
    name: str = strawberry.field(description="What the key is for, e.g. the partner's service.")
    scopes: list[ApiKeyScopeInput] = strawberry.field(
        description="PARTNER_SERVICE or ESG_ANALYST on nodes where you may grant that role."
    )
    expires_at: datetime | None = None


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKeyNode | None
    secret: str | None = strawberry.field(
        description="The whole key, `cgk_<prefix>_<secret>`, for `Authorization: Bearer`. "
        "Shown this once only."
    )
    user_errors: list[UserError] = user_errors_field()


@strawberry.input
class RotateApiKeyInput:
    api_key_id: strawberry.ID
    grace_minutes: int = strawberry.field(
        default=0, description="How long the old key keeps working (at most 1440)."
    )


@strawberry.type
class RotateApiKeyPayload:
    api_key: ApiKeyNode | None = strawberry.field(description="The new key.")
    secret: str | None = strawberry.field(description="The new key, shown this once only.")
    replaced_api_key: ApiKeyNode | None
    user_errors: list[UserError] = user_errors_field()


@strawberry.input
class RevokeApiKeyInput:
    api_key_id: strawberry.ID


@strawberry.type
class RevokeApiKeyPayload:
    api_key: ApiKeyNode | None
    user_errors: list[UserError] = user_errors_field()


def _key_id(value: strawberry.ID) -> int:
    try:
        gid = relay.GlobalID.from_id(value)
        if gid.type_name == "ApiKey":
            return int(gid.node_id)
    except (ValueError, TypeError):
        pass
    raise MutationFailed.single(
        ["input", "apiKeyId"], UserErrorCode.NOT_FOUND, "apiKeyId is not an ApiKey ID."
    )


def _scope(value: ApiKeyScopeInput, index: int) -> service.ScopeRequest:
    field = ["input", "scopes", str(index), "nodeId"]
    try:
        gid = relay.GlobalID.from_id(value.node_id)
        node_id = int(gid.node_id)
    except (ValueError, TypeError) as exc:
        raise MutationFailed.single(
            field, UserErrorCode.NOT_FOUND, "nodeId is not a node ID."
        ) from exc
    if gid.type_name not in ("Enterprise", "Community"):
        raise MutationFailed.single(
            field, UserErrorCode.NOT_GRANTABLE, "API keys are scoped to enterprises or communities."
        )
    role = RoleValue(getattr(value.role, "value", value.role))
    return service.ScopeRequest(role, gid.type_name, node_id, field)


@strawberry.type
class ApiKeyMutations:
    @strawberry.mutation(
        description="Issue an API key for a partner service. The secret is in the payload once."
    )
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        async def action() -> service.IssuedKey:
            scopes = [_scope(s, i) for i, s in enumerate(input.scopes)]
            return await service.create_key(
                info.context.caller, name=input.name, scopes=scopes, expires_at=input.expires_at
            )

        issued, errors = await run_mutation(info, action)
        if issued is None:
            return CreateApiKeyPayload(api_key=None, secret=None, user_errors=errors)
        return CreateApiKeyPayload(
            api_key=ApiKeyNode.from_record(issued.key), secret=issued.presented, user_errors=[]
        )

    @strawberry.mutation(
        description="Replace a key's secret: a new key with the same scopes; the old one stops "
        "at once or after `graceMinutes`."
    )
    async def rotate_api_key(self, info: Info, input: RotateApiKeyInput) -> RotateApiKeyPayload:
        async def action() -> Any:
            return await service.rotate_key(
                info.context.caller, _key_id(input.api_key_id), input.grace_minutes
            )

        result, errors = await run_mutation(info, action)
        if result is None:
            return RotateApiKeyPayload(
                api_key=None, secret=None, replaced_api_key=None, user_errors=errors
            )
        issued, old = result
        return RotateApiKeyPayload(
            api_key=ApiKeyNode.from_record(issued.key),
            secret=issued.presented,
            replaced_api_key=ApiKeyNode.from_record(old),
            user_errors=[],
        )

    @strawberry.mutation(description="Stop a key at once. Revoking twice changes nothing.")
    async def revoke_api_key(self, info: Info, input: RevokeApiKeyInput) -> RevokeApiKeyPayload:
        async def action() -> service.KeyRecord:
            return await service.revoke_key(info.context.caller, _key_id(input.api_key_id))

        record, errors = await run_mutation(info, action)
        return RevokeApiKeyPayload(
            api_key=ApiKeyNode.from_record(record) if record else None, user_errors=errors
        )


@strawberry.type
class RoleMutations:
    grant_role = strawberry.mutation(
        resolver=access.grant_role, description="Give a principal a role on a node."
    )
    revoke_role = strawberry.mutation(resolver=access.revoke_role, description="Take a role back.")
