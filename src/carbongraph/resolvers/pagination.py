"""Keyset pagination over integer primary keys, batched across parents.

A cursor is an opaque base64 of the row's id. A page of children for many parents is one
statement: ``row_number() OVER (PARTITION BY parent ORDER BY id)`` cut at ``first + 1`` (the
extra row tells whether a next page exists).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from carbongraph.errors import BadUserInput

_CURSOR_PREFIX = "cursor:"


def encode_cursor(row_id: int) -> str:
    return base64.b64encode(f"{_CURSOR_PREFIX}{row_id}".encode()).decode()


def decode_cursor(cursor: str, argument: str) -> int:
    try:
        raw = base64.b64decode(cursor.encode(), validate=True).decode()
        if not raw.startswith(_CURSOR_PREFIX):
            raise ValueError(raw)
        return int(raw[len(_CURSOR_PREFIX) :])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadUserInput(f"`{argument}` is not a valid cursor.", argument=argument) from exc


@dataclass(frozen=True)
class PageArgs:
    limit: int
    backward: bool = False
    after: int | None = None
    before: int | None = None

    @classmethod
    def parse(
        cls,
        *,
        first: int | None,
        after: str | None,
        last: int | None,
        before: str | None,
        default_size: int,
        max_size: int,
    ) -> PageArgs:
        if first is not None and last is not None:
            raise BadUserInput("Pass either `first` or `last`, not both.")
        for name, value in (("first", first), ("last", last)):
            if value is not None and not 0 <= value <= max_size:
                raise BadUserInput(
                    f"`{name}` must be between 0 and {max_size}.", argument=name, maximum=max_size
                )
        backward = last is not None
        return cls(
            limit=(last if backward else first)
            if (first is not None or last is not None)
            else default_size,  # type: ignore[arg-type]
            backward=backward,
            after=decode_cursor(after, "after") if after else None,
            before=decode_cursor(before, "before") if before else None,
        )


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    has_next_page: bool
    has_previous_page: bool


EMPTY_PAGE = Page([], False, False)


def _window_bounds(
    select: sa.Select[Any], id_col: ColumnElement[int], args: PageArgs
) -> sa.Select[Any]:
    if args.after is not None:
        select = select.where(id_col > args.after)
    if args.before is not None:
        select = select.where(id_col < args.before)
    return select


def _to_page(rows: list[Any], args: PageArgs) -> Page:
    more = len(rows) > args.limit
    rows = rows[: args.limit]
    if args.backward:
        rows.reverse()
        return Page(rows, has_next_page=args.before is not None, has_previous_page=more)
    return Page(rows, has_next_page=more, has_previous_page=args.after is not None)


def partitioned_page_statement(
    select: sa.Select[Any],
    *,
    partition_col: ColumnElement[Any],
    id_col: ColumnElement[int],
    args: PageArgs,
) -> sa.Select[Any]:
    """``select`` already filters to the wanted parents; it must expose ``partition_col`` and
    ``id_col``. The result has the columns of ``select`` plus ``cg_parent``, ordered per parent."""
    select = _window_bounds(select, id_col, args)
    order = id_col.desc() if args.backward else id_col.asc()
    rn = sa.func.row_number().over(partition_by=partition_col, order_by=order)
    sub = select.add_columns(partition_col.label("cg_parent"), rn.label("cg_rn")).subquery()
    return (
        sa.select(sub).where(sub.c.cg_rn <= args.limit + 1).order_by(sub.c.cg_parent, sub.c.cg_rn)
    )


def split_pages(rows: Sequence[Any], keys: Sequence[Hashable], args: PageArgs) -> dict[Any, Page]:
    grouped: dict[Any, list[Any]] = {key: [] for key in keys}
    for row in rows:
        grouped.setdefault(row.cg_parent, []).append(row)
    return {key: _to_page(group, args) for key, group in grouped.items()}


def single_page_statement(
    select: sa.Select[Any], *, id_col: ColumnElement[int], args: PageArgs
) -> sa.Select[Any]:
    select = _window_bounds(select, id_col, args)
    order = id_col.desc() if args.backward else id_col.asc()
    return select.order_by(order).limit(args.limit + 1)


def single_page(rows: Sequence[Any], args: PageArgs) -> Page:
    return _to_page(list(rows), args)
