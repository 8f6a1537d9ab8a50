"""carbongraph import activities|actions|hierarchy: bulk loads."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from carbongraph.cli.common import command_group, err, load_settings, progress_bar
from carbongraph.config import Settings

import_app = command_group("import", "Bulk loads.")


async def _import(settings: Settings, file: Path, work: Any) -> Any:
    """A bulk import's frame: a system engine at the latest migration and a progress bar over
    the file's rows; ``work(engine, on_progress)`` does the importing."""
    from carbongraph.accounting.importer import count_rows
    from carbongraph.db import create_engine
    from carbongraph.migrate import ensure_migrated

    total = count_rows(file)
    engine = create_engine(settings, system=True)
    try:
        await ensure_migrated(engine, settings)
        with progress_bar() as progress:
            task = progress.add_task(f"importing {file.name}", total=total)
            return await work(engine, lambda n: progress.advance(task, n))
    finally:
        await engine.dispose()


def _finish_import(result: Any, report: Path | None, noun: str) -> None:
    """The end of every bulk import: row errors (the first 50) and warnings on stderr, the
    report file (JSON for a .json name, else CSV), the counts on stdout, exit 1 when a batch
    failed."""
    import csv
    import json

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
    if result.warnings:
        err.print(
            f"{len(result.warnings)} {noun} written with a warning: NOT_ATTRIBUTED (the person "
            "had no household that day: counted for the person only)"
            + ("" if report else "; use --report FILE to list them")
        )
    if report and report.suffix.lower() == ".json":
        report.write_text(json.dumps(result.as_json(), indent=1) + "\n", encoding="utf-8")
    elif report and (result.errors or result.warnings):
        with report.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["line", "field", "code", "message"])
            writer.writerows(result.errors)
            writer.writerows(result.warnings)
    sys.stdout.write(
        f"rows {result.rows}: created {result.created}, unchanged {result.unchanged}; "
        f"batches committed {result.batches_committed}, failed {result.batches_failed}\n"
    )
    if result.batches_failed:
        raise typer.Exit(1)


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
    report: Annotated[
        Path | None,
        typer.Option(
            help="Write every row error and warning (NOT_ATTRIBUTED) to this file: CSV (line, "
            "field, code, message), or, for a name ending in .json, the whole outcome (counts, "
            "method, errors, warnings) as JSON."
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            max=16,
            help="Parallel workers, each on its own accounts (rows are dealt by account).",
        ),
    ] = 1,
    per_record: Annotated[
        bool,
        typer.Option(
            "--per-record",
            help="On PostgreSQL, price and write each record in Python (the reference path) "
            "instead of in SQL. SQLite always does.",
        ),
    ] = False,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            help="Write the import's throughput (rows by result, batches, seconds, rows per "
            "second) here as Prometheus text, for node_exporter's textfile collector."
        ),
    ] = None,
) -> None:
    """Import activity records: each batch commits whole or not at all; re-importing a file
    changes nothing (rows are idempotent by external_id), so an interrupted import resumes by
    running it again. The file is streamed: memory stays bounded whatever its size. On
    PostgreSQL each batch is validated, priced and rolled up in SQL (set-based), with the same
    results and row errors as the per-record path. Columns: account (Individual:12,
    Household:3, a global ID, or Individual/ref:EXTERNAL_REF), activity_type, quantity, unit,
    period_start, period_end, external_id, and optionally source, meter_ref, data_quality."""

    from carbongraph.accounting.importer import import_activities as run_import

    settings = load_settings()

    def run() -> Any:
        return _import(
            settings,
            file,
            lambda engine, on_progress: run_import(
                engine,
                file,
                batch_size=batch_size,
                on_progress=on_progress,
                jobs=jobs,
                set_based=False if per_record else None,
                clock=settings.clock,
            ),
        )

    started = time.monotonic()
    try:
        result = asyncio.run(run())
    except RuntimeError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except Exception as exc:
        from carbongraph.db import is_database_unavailable

        if not is_database_unavailable(exc):
            raise
        # The batch in flight rolled back whole; committed ones stay, and a rerun skips them.
        err.print(
            f"[red]the database became unavailable ({type(exc).__name__}): committed batches "
            "are kept; run the same command again to finish the import[/red]"
        )
        raise typer.Exit(3) from exc
    if metrics_file is not None:
        from carbongraph.observability.metrics import write_import_metrics

        write_import_metrics(str(metrics_file), result, time.monotonic() - started)
    _finish_import(result, report, "rows")


@import_app.command("actions")
def import_actions(
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
    ] = 10_000,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Write the report here: JSON (counts, every error and warning) for a .json "
            "name, else a CSV of the row errors and warnings (NOT_ATTRIBUTED)."
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            max=16,
            help="PostgreSQL: parallel workers, rows dealt by person as written in the file "
            "(each person's rows in file order, so the daily caps decide as in one job).",
        ),
    ] = 1,
    per_record: Annotated[
        bool,
        typer.Option(
            "--per-record", help="PostgreSQL: the per-record reference path, not set-based."
        ),
    ] = False,
) -> None:
    """Import partner-verified low-carbon actions with the rules of recordVerifiedActions
    (action types valid that day, daily caps, credits granted in the ledger, Scope 3+
    reductions rolled up to every level). Each batch commits whole or not at all; re-importing
    a file changes nothing (idempotent by external_id). Columns: individual (Individual:12, a
    global ID or Individual/ref:EXTERNAL_REF), action_type (a code of actionTypes), units
    (default 1), occurred_on (YYYY-MM-DD), external_id. Set-based on PostgreSQL. The file is
    streamed: batches commit in file order, the next one read while one is written (memory:
    about three batches a job); with --jobs N, each job commits its own people's batches in
    file order."""

    from carbongraph.actions.importer import import_actions as run_import

    settings = load_settings()

    def run() -> Any:
        return _import(
            settings,
            file,
            lambda engine, on_progress: run_import(
                engine,
                file,
                batch_size=batch_size,
                on_progress=on_progress,
                per_record=per_record,
                jobs=jobs,
            ),
        )

    try:
        result = asyncio.run(run())
    except RuntimeError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    _finish_import(result, report, "actions")


@import_app.command("hierarchy")
def import_hierarchy(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV (with a header) or JSONL (.jsonl).",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every line, report, write nothing.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write the report (counts, every error) as JSON here.")
    ] = None,
) -> None:
    """Onboard a programme: enterprises, communities, households, people, dated memberships
    and employments, one per line, written whole or not at all; re-running a file changes
    nothing (nodes are idempotent by external_ref). Column `type` is enterprise, community,
    household, individual, membership or employment; the others: external_ref, name, kind,
    enterprise, parent, region_code, timezone (communities), community, dwelling_type,
    has_rooftop_solar (households), household, member_from, employer, employed_from, email,
    subject (individuals), individual, household/employer, valid_from (memberships and
    employments). References are external_refs of earlier lines or stored nodes. Give people
    their real member_from: activity and actions dated before it count for the person only
    (NOT_ATTRIBUTED). Example: examples/onboarding/village.csv."""
    import json

    from carbongraph.accounting.importer import count_rows
    from carbongraph.db import create_engine
    from carbongraph.services.hierarchy_import import import_hierarchy as run_import

    settings = load_settings()
    total = count_rows(file)

    async def run() -> Any:
        engine = create_engine(settings, system=True)
        try:
            from carbongraph.migrate import ensure_migrated

            await ensure_migrated(engine, settings)
            with progress_bar() as progress:
                task = progress.add_task(
                    f"{'checking' if dry_run else 'importing'} {file.name}", total=total
                )
                return await run_import(
                    engine,
                    settings,
                    file,
                    dry_run=dry_run,
                    on_progress=lambda n: progress.advance(task, n),
                )
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except RuntimeError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if report:
        report.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
    if result.errors:
        table = Table(title=f"{len(result.errors)} line errors (nothing was written)")
        for column in ("line", "field", "code", "message"):
            table.add_column(column)
        for e in result.errors[:50]:
            table.add_row(str(e.line), e.field, e.code, e.message)
        err.print(table)
        if len(result.errors) > 50:
            err.print(
                f"… and {len(result.errors) - 50} more"
                + ("" if report else "; use --report FILE for all of them")
            )
    created = ", ".join(f"{kind} {n}" for kind, n in result.created.items())
    verb = "would create" if dry_run else ("created" if result.committed else "not written")
    sys.stdout.write(f"rows {result.rows}: {verb}: {created}; unchanged {result.unchanged}\n")
    if result.errors:
        raise typer.Exit(1)
