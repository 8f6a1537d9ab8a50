"""Root query fields: the action catalogue, the review queue, campaigns and rewards."""

from __future__ import annotations

import strawberry

from carbongraph.schema.actions import types as actions
from carbongraph.schema.actions.types import (
    ActionTypeInfo,
)
from carbongraph.schema.common import MAX_PAGE, sized_field

# Campaigns or rewards of one owner (assumed: these lists are not paginated yet).
OWNED_LISTS = 20


@strawberry.type
class ActionQueries:
    @sized_field(MAX_PAGE, "The low-carbon actions that earn credits.")
    async def action_types(self, info: strawberry.Info) -> list[ActionTypeInfo]:
        return await actions.action_types(info)

    @sized_field(
        MAX_PAGE, "Actions of a community awaiting (or past) a decision.", slicing=("first",)
    )
    async def action_review_queue(
        self,
        info: strawberry.Info,
        community_id: strawberry.ID,
        status: str = "PENDING",
        action_type: str | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> list[actions.ActionRecord]:
        return await actions.review_queue(info, community_id, status, action_type, first, after)

    # Not paginated yet: a community runs a few campaigns at a time.
    @sized_field(OWNED_LISTS, "Campaigns run by a community or an enterprise.")
    async def campaigns(
        self, info: strawberry.Info, owner_id: strawberry.ID
    ) -> list[actions.CampaignInfo]:
        return await actions.campaigns_of(info, owner_id)

    @sized_field(OWNED_LISTS, "Rewards offered by a community or an enterprise.")
    async def rewards(
        self, info: strawberry.Info, owner_id: strawberry.ID
    ) -> list[actions.RewardInfo]:
        return await actions.rewards_of(info, owner_id)
