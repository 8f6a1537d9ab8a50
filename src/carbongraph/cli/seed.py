"""carbongraph seed: demo data and benchmark datasets."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from carbongraph.cli.common import app, console, err, load_settings, progress_bar
from carbongraph.config import Settings


@app.command()
def seed(
    demo: Annotated[bool, typer.Option("--demo", help="Load the demo pilots' data.")] = False,
    scale: Annotated[
        str | None,
        typer.Option(
            help="Benchmark dataset into an empty database: small or city (on PostgreSQL as "
            "the table owner: it sets the id sequences)."
        ),
    ] = None,
    activity_file: Annotated[
        Path | None,
        typer.Option(help="With --scale: write the activity to this CSV instead of loading it."),
    ] = None,
) -> None:
    """Load demo data (idempotent; prints one development token per role), or a deterministic
    benchmark dataset (--scale small|city)."""
    from carbongraph.authz import mint_token
    from carbongraph.db import create_engine
    from carbongraph.demo.seed import DEMO_PRINCIPALS, seed_demo

    if demo == (scale is not None):
        err.print("pass exactly one of --demo or --scale small|city")
        raise typer.Exit(2)
    settings = load_settings()
    if scale is not None:
        _seed_scale(settings, scale, activity_file)
        return

    async def run() -> dict[str, int]:
        engine = create_engine(settings, system=True)
        try:
            from carbongraph.migrate import ensure_migrated

            await ensure_migrated(engine, settings)
            return await seed_demo(engine)
        finally:
            await engine.dispose()

    try:
        counts = asyncio.run(run())
    except RuntimeError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    sys.stdout.write("demo data: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "\n")
    table = Table(title="Development tokens (valid 30 days; send as 'Authorization: Bearer …')")
    table.add_column("role")
    table.add_column("subject")
    table.add_column("scope")
    for p in DEMO_PRINCIPALS:
        table.add_row(p.role.value, p.subject, p.note)
    console.print(table)
    for p in DEMO_PRINCIPALS:
        token = mint_token(settings, p.subject, roles=[p.role.value], ttl=timedelta(days=30))
        # Printed plainly (no wrapping) so it can be copied whole.
        sys.stdout.write(f"{p.role.value}={token}\n")
    _print_demo_statement(settings)


def _seed_scale(settings: Settings, scale: str, activity_file: Path | None) -> None:
    from carbongraph.db import create_engine
    from carbongraph.demo.scale import SCALES, seed_scale
    from carbongraph.migrate import ensure_migrated

    if scale not in SCALES:
        err.print(f"--scale is one of {', '.join(SCALES)}")
        raise typer.Exit(2)

    async def run() -> dict[str, int]:
        engine = create_engine(settings, system=True)
        try:
            await ensure_migrated(engine, settings)
            with progress_bar() as progress:
                task = progress.add_task(f"{scale} dataset", total=None)

                def report(_stage: str, done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                return await seed_scale(
                    engine, scale, activity_file=activity_file, on_progress=report
                )
        finally:
            await engine.dispose()

    try:
        counts = asyncio.run(run())
    except RuntimeError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    sys.stdout.write(f"{scale} dataset: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "\n")


def _print_demo_statement(settings: Settings) -> None:
    """Where the campus demo's dorm statement page is, and how to open it (engagement)."""
    from carbongraph.cli.statements import household_id, statement_url
    from carbongraph.demo.seed import DEMO_STUDENT, DEMO_STUDENT_ROOM

    household = asyncio.run(household_id(settings, DEMO_STUDENT_ROOM))
    if household is None:
        return
    sys.stdout.write(
        f"dorm statement page ({DEMO_STUDENT}), valid {settings.statement_link_minutes} minutes: "
        f"{statement_url(settings, DEMO_STUDENT, household, None, 'http://127.0.0.1:8000')}\n"
        f"a fresh link: carbongraph statement-link --sub {DEMO_STUDENT} "
        f"--household {DEMO_STUDENT_ROOM}\n"
    )
