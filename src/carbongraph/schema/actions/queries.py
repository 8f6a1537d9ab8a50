"""Root query fields: the action catalogue, the review queue, campaigns and rewards."""

from __future__ import annotations

from typing import Any

import strawberry

from carbongraph.resolvers.context import Info
from carbongraph.schema.actions import types as actions
from carbongraph.schema.actions.types import ActionStatus, ActionTypeInfo
from carbongraph.schema.common import CONNECTION_SIZE, MAX_PAGE, sized_field
from carbongraph.schema.relay import Connection

PAGE = "Keyset pagination: `first`/`after` forwards, `last`/`before` backwards."


def owned_list(type_name: str, description: str, page_of: Any) -> Any:
    """A connection of what a community or an enterprise owns (campaigns, rewards): one
    ``page_of(info, owner_id, first, after, last, before)``."""

    async def resolve(
        self: Any,
        info: Info,
        owner_id: strawberry.ID,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Any:
        return await page_of(info, owner_id, first, after, last, before)

    resolve.__annotations__["return"] = f"Connection[actions.{type_name}]"
    return strawberry.federation.field(
        resolver=resolve,
        description=f"{description}, oldest first. {PAGE}",
        directives=[CONNECTION_SIZE],
    )


@strawberry.type
class ActionQueries:
    @sized_field(MAX_PAGE, "The low-carbon actions that earn credits.")
    async def action_types(self, info: Info) -> list[ActionTypeInfo]:
        return await actions.action_types(info)

    @strawberry.federation.field(
        description="Actions of a community awaiting (or past) a decision, oldest first "
        "(the community's managers). " + PAGE,
        directives=[CONNECTION_SIZE],
    )
    async def action_review_queue(
        self,
        info: Info,
        community_id: strawberry.ID,
        status: ActionStatus = ActionStatus.PENDING,
        action_type: str | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[actions.ActionRecord]:  # type: ignore[type-var]
        return await actions.review_queue(
            info, community_id, status, action_type, first, after, last, before
        )

    campaigns = owned_list(
        "CampaignInfo", "Campaigns run by a community or an enterprise", actions.campaigns_of
    )
    rewards = owned_list(
        "RewardInfo", "Rewards offered by a community or an enterprise", actions.rewards_of
    )
