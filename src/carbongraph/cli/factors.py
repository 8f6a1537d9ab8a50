"""carbongraph factors import: the emission factor library."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from carbongraph.cli.common import command_group, err, in_transaction, load_settings

factors_app = command_group("factors", "The emission factor library.")


@factors_app.command("import")
def factors_import(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="JSON as shipped, or CSV with the same columns.",
        ),
    ],
) -> None:
    """Add emission factors (new series, years or versions). A changed value must come as a
    new version; existing rows are never overwritten. Run `recalculate` afterwards to apply
    them to recorded activity."""
    from carbongraph.accounting.factors import FactorFileError, import_factors, read_factor_file

    settings = load_settings()
    try:
        rows = read_factor_file(file)
    except (FactorFileError, ValueError) as exc:
        err.print(f"[red]{file}: {exc}[/red]")
        raise typer.Exit(1) from exc

    def run() -> Any:
        return in_transaction(settings, lambda conn: import_factors(conn, rows))

    try:
        added, present = asyncio.run(run())
    except FactorFileError as exc:
        err.print(f"[red]{exc}; nothing was imported[/red]")
        raise typer.Exit(1) from exc
    sys.stdout.write(f"factors: added {added}, already present {present}\n")
