"""Shared node plumbing: loading one node of the hierarchy for the viewer.

Kept apart from the node types (schema/hierarchy/types.py) so that every domain can look a node
up without importing the hierarchy's types (no import cycles between domains).
"""

from __future__ import annotations

from typing import Any

from carbongraph.authz import Target
from carbongraph.errors import NotFound
from carbongraph.resolvers.context import HasContext
from carbongraph.resolvers.dataloaders import IndividualRecord, node_target
from carbongraph.schema.policy import require_visible


async def fetch_row(info: HasContext, type_name: str, pk: int) -> Any:
    """Load one node by primary key for ``info.context.viewer``; NOT_FOUND / FORBIDDEN when it
    does not exist or may not be seen (the field policy's ``NODE_LEVEL``)."""
    row = await info.context.loaders.by_type(type_name).load(pk)
    if row is None:
        raise NotFound()
    require_visible(info, type_name, row_target(row))
    return row


def row_target(row: Any) -> Target:
    return row.target if isinstance(row, IndividualRecord) else node_target(row)
