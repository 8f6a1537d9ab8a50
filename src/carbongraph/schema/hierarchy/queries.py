"""Root query fields: enterprises, communities, households and people: by ID and as lists."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import strawberry
from strawberry import relay

from carbongraph.errors import BadUserInput, CodedError
from carbongraph.resolvers import hierarchy as roots
from carbongraph.resolvers.context import Info
from carbongraph.schema import policy
from carbongraph.schema.common import CONNECTION_SIZE, sized_field
from carbongraph.schema.hierarchy.types import (
    NODE_TYPES,
    CommunityNode,
    EnterpriseNode,
    HouseholdNode,  # noqa: F401  (named in node_by_id's annotation)
    IndividualNode,  # noqa: F401
)
from carbongraph.schema.node import row_target
from carbongraph.schema.relay import Connection, build_connection, decode_global_id, page_args
from carbongraph.schema.security import types as security

MAX_NODES = 1000
PAGE = "Keyset pagination: `first`/`after` forwards, `last`/`before` backwards."


def node_by_id(type_name: str) -> Any:
    """``enterprise(id)`` and its siblings: one node of a type by its global ID."""

    async def resolve(self: Any, info: Info, id: strawberry.ID) -> Any:
        node = NODE_TYPES[type_name]
        return await node.fetch(info, decode_global_id(id, [type_name])[1])

    # Named, not referenced, so that each root field has its own type (resolved at build).
    resolve.__annotations__["return"] = f"{type_name}Node | None"
    return strawberry.field(resolver=resolve)


@strawberry.type
class HierarchyQueries:
    @strawberry.field(description="Any object by its global ID.")
    async def node(self, info: Info, id: strawberry.ID) -> relay.Node | None:
        type_name, pk = decode_global_id(id, [*NODE_TYPES, *security.SECURITY_NODE_TYPES])
        if type_name in security.SECURITY_NODE_TYPES:
            return await security.SECURITY_NODE_TYPES[type_name](info, pk)
        return await NODE_TYPES[type_name].fetch(info, pk)

    # Sized by the length of `ids` (the server's rule); the gateway assumes the most.
    @sized_field(
        MAX_NODES,
        "Objects by global ID, in order; null where an ID is unknown or not visible.",
    )
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[relay.Node | None]:
        if len(ids) > MAX_NODES:
            raise BadUserInput(f"At most {MAX_NODES} ids per request.", argument="ids")
        # One batched load per type, no task per id: this field serves bulk look-ups.
        parsed: list[tuple[str, int] | None] = []
        security_nodes: dict[tuple[str, int], relay.Node | None] = {}
        for raw in ids:
            try:
                parsed.append(decode_global_id(raw, [*NODE_TYPES, *security.SECURITY_NODE_TYPES]))
            except CodedError:
                parsed.append(None)
        wanted: dict[str, list[int]] = defaultdict(list)
        for item in parsed:
            if item is not None and item[0] in security.SECURITY_NODE_TYPES:
                # API keys and audit events: rare here, so one look-up each, authorised as node().
                try:
                    security_nodes[item] = await security.SECURITY_NODE_TYPES[item[0]](
                        info, item[1]
                    )
                except CodedError:
                    security_nodes[item] = None
            elif item is not None:
                wanted[item[0]].append(item[1])
        loaded: dict[tuple[str, int], Any] = {}
        for type_name, pks in wanted.items():
            rows = await info.context.loaders.by_type(type_name).load_many(pks)
            loaded.update(((type_name, pk), row) for pk, row in zip(pks, rows, strict=True))
        out: list[relay.Node | None] = []
        for item in parsed:
            if item in security_nodes:
                out.append(security_nodes[item])
                continue
            row = loaded.get(item) if item is not None else None
            if item is None or row is None or not policy.visible(info, item[0], row_target(row)):
                out.append(None)  # unknown or not visible: null in place, as Relay specifies
            else:
                out.append(NODE_TYPES[item[0]].from_row(row))
        return out

    enterprise = node_by_id("Enterprise")
    community = node_by_id("Community")
    household = node_by_id("Household")
    individual = node_by_id("Individual")

    @strawberry.federation.field(
        description="Enterprises the viewer can see. " + PAGE, directives=[CONNECTION_SIZE]
    )
    async def enterprises(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[EnterpriseNode]:
        args = page_args(info, first, after, last, before)
        db = info.context.db
        select = roots.visible_enterprises(info.context.viewer)
        page = await roots.root_page(db, select, args)
        return build_connection(page, EnterpriseNode.from_row, lambda: roots.root_count(db, select))

    @strawberry.federation.field(
        description="Communities the viewer can see, at any depth, optionally of one enterprise. "
        + PAGE,
        directives=[CONNECTION_SIZE],
    )
    async def communities(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        enterprise_id: strawberry.ID | None = None,
    ) -> Connection[CommunityNode]:
        args = page_args(info, first, after, last, before)
        enterprise_pk = (
            decode_global_id(enterprise_id, ["Enterprise"])[1] if enterprise_id else None
        )
        db = info.context.db
        select = roots.visible_communities(info.context.viewer, enterprise_pk)
        page = await roots.root_page(db, select, args)
        return build_connection(page, CommunityNode.from_row, lambda: roots.root_count(db, select))
