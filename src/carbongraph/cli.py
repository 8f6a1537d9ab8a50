"""The ``carbongraph`` command line."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from carbongraph.config import ConfigError, Settings

app = typer.Typer(
    help="carbongraph: federated GraphQL for personal, household, community and enterprise "
    "carbon accounts. Configure with CARBONGRAPH_* environment variables (see README).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


async def _in_transaction(settings: Settings, work: Any) -> Any:
    """Run ``work(connection)`` in one transaction on a short-lived engine."""
    from carbongraph.db import create_engine

    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


def _progress() -> Any:
    """The progress bar of long commands (on stderr, so stdout stays machine-readable)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


@app.command()
def migrate() -> None:
    """Apply all database migrations (creates the SQLite file if needed) and load the shipped
    emission factors that are missing."""
    from carbongraph import migrate as migrations
    from carbongraph.app import redact
    from carbongraph.db import create_engine

    settings = _settings()

    from carbongraph.accounting.factors import ensure_default_factors
    from carbongraph.actions.catalog import ensure_default_action_types

    async def run() -> tuple[str | None, int]:
        engine = create_engine(settings)
        try:
            await migrations.upgrade(engine)
            async with engine.begin() as conn:
                added = await ensure_default_factors(conn)
                await ensure_default_action_types(conn)
            return await migrations.current_revision(engine), added
        finally:
            await engine.dispose()

    revision, added = asyncio.run(run())
    console.print(f"database {redact(settings.database_url)} is at migration {revision}")
    if added:
        console.print(f"loaded {added} default emission factors")


@app.command()
def seed(
    demo: Annotated[bool, typer.Option("--demo", help="Load the demo pilots' data.")] = False,
    scale: Annotated[
        str | None,
        typer.Option(help="Benchmark dataset into an empty database: small or city."),
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
    from carbongraph.seed import DEMO_PRINCIPALS, seed_demo

    if demo == (scale is not None):
        err.print("pass exactly one of --demo or --scale small|city")
        raise typer.Exit(2)
    settings = _settings()
    if scale is not None:
        _seed_scale(settings, scale, activity_file)
        return

    async def run() -> dict[str, int]:
        engine = create_engine(settings)
        try:
            from carbongraph.app import ensure_migrated

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


def _seed_scale(settings: Settings, scale: str, activity_file: Path | None) -> None:
    from carbongraph.app import ensure_migrated
    from carbongraph.db import create_engine
    from carbongraph.scale import SCALES, seed_scale

    if scale not in SCALES:
        err.print(f"--scale is one of {', '.join(SCALES)}")
        raise typer.Exit(2)

    async def run() -> dict[str, int]:
        engine = create_engine(settings)
        try:
            await ensure_migrated(engine, settings)
            with _progress() as progress:
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


@app.command()
def token(
    sub: Annotated[str, typer.Option(help="Subject (principal) the token is for.")],
    role: Annotated[
        list[str] | None,
        typer.Option(help="Also store this role grant (repeat for several), on --node."),
    ] = None,
    node: Annotated[
        str | None,
        typer.Option(help="Node for --role: a global ID or Type:id, e.g. Enterprise:1."),
    ] = None,
    hours: Annotated[float, typer.Option(help="Lifetime in hours.")] = 24.0,
) -> None:
    """Mint a development token. With --role, the grant is stored too (what a principal may do
    is decided by stored grants, not by the token)."""
    from carbongraph.authz import GRANTABLE_ON, PLATFORM, Role, mint_token

    settings = _settings()
    roles = [r.upper() for r in role or []]
    for r in roles:
        if r not in Role.__members__:
            err.print(f"unknown role {r}; one of {', '.join(Role.__members__)}")
            raise typer.Exit(2)
    if roles:
        node_type, node_id = _parse_node(node)
        for r in roles:
            if node_type not in GRANTABLE_ON[Role(r)]:
                where = ", ".join(sorted(GRANTABLE_ON[Role(r)]))
                err.print(
                    f"{r} is granted on: {where}" + (" (omit --node)" if PLATFORM in where else "")
                )
                raise typer.Exit(2)
        asyncio.run(_store_grants(settings, sub, roles, node_type, node_id))
    sys.stdout.write(mint_token(settings, sub, roles=roles, ttl=timedelta(hours=hours)) + "\n")


def _parse_node(node: str | None) -> tuple[str, int]:
    from carbongraph.authz import PLATFORM
    from carbongraph.schema.relay import decode_global_id

    if node is None:
        return PLATFORM, 0
    if ":" in node:
        type_name, _, raw = node.partition(":")
        if raw.isdigit():
            return type_name, int(raw)
    try:
        return decode_global_id(node)
    except Exception as exc:
        err.print(f"--node {node!r} is neither a global ID nor Type:id")
        raise typer.Exit(2) from exc


async def _store_grants(
    settings: Settings, sub: str, roles: list[str], node_type: str, node_id: int
) -> None:
    import sqlalchemy as sa

    from carbongraph.app import ensure_migrated
    from carbongraph.db import create_engine
    from carbongraph.models.base import utcnow
    from carbongraph.services.access import G

    engine = create_engine(settings)
    try:
        await ensure_migrated(engine, settings)
        async with engine.begin() as conn:
            for r in roles:
                exists = await conn.scalar(
                    sa.select(G.c.id).where(
                        G.c.principal == sub,
                        G.c.role == r,
                        G.c.node_type == node_type,
                        G.c.node_id == node_id,
                    )
                )
                if exists is None:
                    await conn.execute(
                        sa.insert(G).values(
                            principal=sub,
                            role=r,
                            node_type=node_type,
                            node_id=node_id,
                            created_at=utcnow(),
                            created_by="cli",
                        )
                    )
    finally:
        await engine.dispose()


import_app = typer.Typer(help="Bulk loads.", no_args_is_help=True)
app.add_typer(import_app, name="import")
factors_app = typer.Typer(help="The emission factor library.", no_args_is_help=True)
app.add_typer(factors_app, name="factors")


credits_app = typer.Typer(help="Credits.", no_args_is_help=True)
app.add_typer(credits_app, name="credits")


@credits_app.command("expire")
def credits_expire(
    on: Annotated[
        str | None, typer.Option("--date", help="As of this day (default today).")
    ] = None,
) -> None:
    """Expire due credits in every programme with an expiry policy (safe to repeat; run it
    daily from cron or a scheduler)."""
    from datetime import UTC, date, datetime

    from carbongraph.actions.expiry import expire_credits

    settings = _settings()
    try:
        today = date.fromisoformat(on) if on else datetime.now(UTC).date()
    except ValueError as exc:
        err.print("--date is YYYY-MM-DD")
        raise typer.Exit(2) from exc

    result = asyncio.run(_in_transaction(settings, lambda conn: expire_credits(conn, today)))
    sys.stdout.write(f"expired {result['credits']} credits of {result['people']} people\n")


@import_app.command("activities")
def import_activities(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV (with a header) or JSONL (.jsonl).",
        ),
    ],
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Rows per all-or-nothing batch.")
    ] = 5000,
    report: Annotated[Path | None, typer.Option(help="Write every row error to this CSV.")] = None,
) -> None:
    """Import activity records: each batch commits whole or not at all; re-importing a file
    changes nothing (rows are idempotent by external_id), so an interrupted import resumes by
    running it again. Columns: account (Individual:12,
    Household:3, a global ID, or Individual/ref:EXTERNAL_REF), activity_type, quantity, unit,
    period_start, period_end, external_id, and optionally source, meter_ref, data_quality."""
    import csv

    from carbongraph.accounting.importer import count_rows
    from carbongraph.accounting.importer import import_activities as run_import
    from carbongraph.db import create_engine

    settings = _settings()
    total = count_rows(file)

    async def run() -> Any:
        engine = create_engine(settings)
        try:
            from carbongraph.app import ensure_migrated

            await ensure_migrated(engine, settings)
            with _progress() as progress:
                task = progress.add_task(f"importing {file.name}", total=total)
                return await run_import(
                    engine,
                    file,
                    batch_size=batch_size,
                    on_progress=lambda n: progress.advance(task, n),
                )
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except RuntimeError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if result.errors:
        table = Table(title=f"{len(result.errors)} row errors (their batches were not written)")
        for column in ("line", "field", "code", "message"):
            table.add_column(column)
        for line, field_name, code, message in result.errors[:50]:
            table.add_row(str(line), field_name, code, message)
        err.print(table)
        if len(result.errors) > 50:
            err.print(
                f"… and {len(result.errors) - 50} more"
                + ("" if report else "; use --report FILE for all of them")
            )
        if report:
            with report.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["line", "field", "code", "message"])
                writer.writerows(result.errors)
    sys.stdout.write(
        f"rows {result.rows}: created {result.created}, unchanged {result.unchanged}; "
        f"batches committed {result.batches_committed}, failed {result.batches_failed}\n"
    )
    if result.batches_failed:
        raise typer.Exit(1)


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

    settings = _settings()
    try:
        rows = read_factor_file(file)
    except (FactorFileError, ValueError) as exc:
        err.print(f"[red]{file}: {exc}[/red]")
        raise typer.Exit(1) from exc

    def run() -> Any:
        return _in_transaction(settings, lambda conn: import_factors(conn, rows))

    try:
        added, present = asyncio.run(run())
    except FactorFileError as exc:
        err.print(f"[red]{exc}; nothing was imported[/red]")
        raise typer.Exit(1) from exc
    sys.stdout.write(f"factors: added {added}, already present {present}\n")


@app.command("export-schema")
def export_schema() -> None:
    """Print the subgraph SDL (what the gateway composes)."""
    from carbongraph.schema.schema import schema

    sys.stdout.write(schema.as_str() + "\n")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve /graphql, /healthz and /readyz with uvicorn. Refuses an unmigrated database."""
    import uvicorn

    from carbongraph.app import DatabaseNotMigrated, ensure_migrated
    from carbongraph.db import create_engine

    settings = _settings()

    async def check() -> None:
        engine = create_engine(settings)
        try:
            await ensure_migrated(engine, settings)
        finally:
            await engine.dispose()

    try:
        asyncio.run(check())
    except DatabaseNotMigrated as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"carbongraph serving http://{host}:{port}/graphql ({settings.env})")
    uvicorn.run(
        "carbongraph.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_graceful_shutdown=10,
        log_level="info",
    )


if __name__ == "__main__":  # pragma: no cover
    app()
