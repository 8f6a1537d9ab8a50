"""Root query fields: gHG inventories."""

from __future__ import annotations

import strawberry
from strawberry.federation.schema_directives import Cost

from carbongraph.errors import BadUserInput
from carbongraph.resolvers.context import Info
from carbongraph.schema import policy
from carbongraph.schema.accounting.types import (
    RollupPath,
)
from carbongraph.schema.hierarchy.types import (
    NODE_TYPES,
)
from carbongraph.schema.insights.types import GhgInventory, inventory_of
from carbongraph.schema.node import fetch_row, row_target
from carbongraph.schema.relay import decode_global_id


@strawberry.type
class InsightsQueries:
    @strawberry.federation.field(
        description="The GHG inventory of an enterprise or community for a calendar year (org "
        "admins, ESG analysts, community managers); as `Enterprise.inventory`.",
        directives=[Cost(weight=50)],
    )
    async def ghg_inventory(
        self,
        info: Info,
        node_id: strawberry.ID,
        year: int,
        via: RollupPath = RollupPath.COMMUNITIES,
    ) -> GhgInventory | None:
        type_name, pk = decode_global_id(node_id, list(NODE_TYPES))
        if type_name not in {"Enterprise", "Community"}:
            raise BadUserInput(
                "An inventory is reported for an enterprise or a community.", argument="nodeId"
            )
        row = await fetch_row(info, type_name, pk)
        # The same data as `Enterprise.inventory` / `Community.inventory`: their declaration.
        policy.require_field(info, type_name, "inventory", row_target(row))
        return await inventory_of(info, type_name, pk, row.name, row.path, year, via)
