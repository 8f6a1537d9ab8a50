"""carbongraph report inventory: reports and ESG exports."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from carbongraph.cli.common import command_group, err, in_transaction, load_settings, progress_bar

report_app = command_group("report", "Reports and ESG exports.")


@report_app.command("inventory")
def report_inventory(
    node: Annotated[
        str,
        typer.Option(
            help="Enterprise or community: a global ID, Enterprise:ID / Community:ID, or its "
            "path (e.g. e1/ or e1/c4/)."
        ),
    ],
    year: Annotated[int, typer.Option(help="Calendar year of local days, e.g. 2025.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[
        Path | None, typer.Option(help="Write to this file instead of standard output.")
    ] = None,
    via: Annotated[
        str, typer.Option(help="Enterprises: communities (default) or employees.")
    ] = "communities",
) -> None:
    """The GHG inventory of an enterprise or community for a year: Scopes 1-3 by category,
    Scope 2 location- and market-based, Scope 3+ apart, per-capita figures, factor versions and
    the data-quality mix. Columns and reconciliation: docs/esg-exports.md."""
    from carbongraph.insights import inventory as inv

    if fmt not in inv.FORMATS:
        err.print(f"--format is one of {', '.join(inv.FORMATS)}")
        raise typer.Exit(2)
    if via not in ("communities", "employees"):
        err.print("--via is communities or employees")
        raise typer.Exit(2)
    try:
        inv.year_period(year)
    except ValueError as exc:
        err.print(f"--year: {exc}")
        raise typer.Exit(2) from exc
    settings = load_settings()

    async def work(conn: Any) -> Any:
        node_type, row = await _find_organisation(conn, node)
        with progress_bar() as progress:
            task = progress.add_task(f"inventory {year} of {row.name}", total=inv.INVENTORY_STEPS)
            return await inv.build_inventory(
                conn,
                node_type=node_type,
                node_id=row.id,
                global_id=_global_id(node_type, row.id),
                name=row.name,
                path=row.path,
                year=year,
                via=via,
                on_step=lambda _label: progress.advance(task),
            )

    try:
        inventory = asyncio.run(in_transaction(settings, work, write=False))
    except LookupError as exc:
        err.print(f"[red]{exc.args[0]}[/red]")
        raise typer.Exit(1) from exc
    text = inv.render(inventory, fmt)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")


def _global_id(node_type: str, pk: int) -> str:
    from carbongraph.schema.relay import to_global_id

    return to_global_id(node_type, pk)


async def _find_organisation(conn: Any, node: str) -> tuple[str, Any]:
    """(type, row) of an enterprise or community named by global ID, Type:id or path;
    LookupError with a message otherwise."""
    import re

    import sqlalchemy as sa

    from carbongraph.models import Community, Enterprise

    tables = {"Enterprise": Enterprise.__table__, "Community": Community.__table__}
    path = node if node.endswith("/") else node + "/"
    if re.fullmatch(r"([ech]\d+/)+", path):
        kind = path.rstrip("/").split("/")[-1][0]
        if kind == "h":
            raise LookupError(
                f"--node {node!r} is a household: inventories are for enterprises and communities"
            )
        node_type = "Community" if kind == "c" else "Enterprise"
        table = tables[node_type]
        row = (await conn.execute(sa.select(table).where(table.c.path == path))).first()
    else:
        type_name, _, raw = node.partition(":")
        if raw.isdigit() and type_name in {"Enterprise", "Community", "Household", "Individual"}:
            node_type, pk = type_name, int(raw)
        else:
            from carbongraph.schema.relay import decode_global_id

            try:
                node_type, pk = decode_global_id(node)
            except Exception as exc:
                raise LookupError(f"--node {node!r}: no enterprise or community has it") from exc
        if node_type not in tables:
            raise LookupError(
                f"--node {node!r} is a {node_type}: inventories are for enterprises and communities"
            )
        table = tables[node_type]
        row = (await conn.execute(sa.select(table).where(table.c.id == pk))).first()
    if row is None:
        raise LookupError(f"--node {node!r}: no enterprise or community has it")
    return node_type, row
