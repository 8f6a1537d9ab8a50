"""Relay plumbing: global IDs and cursor connections with ``totalCount``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic

import strawberry
from strawberry import relay
from strawberry.relay.types import NodeType  # relay.Edge's TypeVar: a new one breaks resolution

# Re-exported: the schema's modules take global IDs from here.
from carbongraph.globalids import decode_global_id as decode_global_id
from carbongraph.globalids import to_global_id as to_global_id
from carbongraph.resolvers.context import Info
from carbongraph.resolvers.dataloaders import Relation
from carbongraph.resolvers.pagination import Page, PageArgs, encode_cursor


@strawberry.type(description="A page of a list, with cursors for the next and previous pages.")
class Connection(relay.Connection[NodeType], Generic[NodeType]):
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list has, across all pages.")
    async def total_count(self) -> int:
        return await self._count()


def build_connection(
    page: Page, to_node: Callable[[Any], NodeType], count: Callable[[], Awaitable[int]]
) -> Connection[NodeType]:
    edges = [relay.Edge(cursor=encode_cursor(row.id), node=to_node(row)) for row in page.rows]
    return Connection(
        page_info=relay.PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        edges=edges,
        _count=count,
    )


def page_args(
    info: Info, first: int | None, after: str | None, last: int | None, before: str | None
) -> PageArgs:
    settings = info.context.settings
    return PageArgs.parse(
        first=first,
        after=after,
        last=last,
        before=before,
        default_size=settings.default_page_size,
        max_size=settings.max_page_size,
    )


async def child_connection(
    info: Info,
    relation: Relation,
    parent_key: int,
    to_node: Callable[[Any], NodeType],
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[NodeType]:
    args = page_args(info, first, after, last, before)
    loaders = info.context.loaders
    page = await loaders.page(relation).load((parent_key, args))
    return build_connection(page, to_node, lambda: loaders.count(relation).load(parent_key))
