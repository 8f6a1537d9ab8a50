"""The ``carbongraph`` command line."""

from __future__ import annotations

import asyncio
import sys
import time
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


async def _in_transaction(settings: Settings, work: Any, *, write: bool = True) -> Any:
    """Run ``work(connection)`` in one transaction on a short-lived engine."""
    from carbongraph.db import create_engine, write_transaction

    engine = create_engine(settings, system=True)
    try:
        async with write_transaction(engine) if write else engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


def _app_role(settings: Settings) -> str | None:
    """The application's PostgreSQL role, when migrations run as another one (the owner)."""
    from sqlalchemy.engine import make_url

    if settings.migration_database_url is None or settings.is_sqlite:
        return None
    app_user = make_url(settings.database_url).username
    owner = make_url(settings.migration_database_url).username
    return app_user if app_user and app_user != owner else None


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
        engine = create_engine(settings, system=True, url=settings.migration_url)
        try:
            await migrations.upgrade(engine)
            app_role = _app_role(settings)
            if app_role is not None:
                await migrations.grant_app_role(engine, app_role)
            async with engine.begin() as conn:
                added = await ensure_default_factors(conn)
                await ensure_default_action_types(conn)
            return await migrations.current_revision(engine), added
        finally:
            await engine.dispose()

    revision, added = asyncio.run(run())
    console.print(f"database {redact(settings.migration_url)} is at migration {revision}")
    if (app_role := _app_role(settings)) is not None:
        console.print(f"granted the application role {app_role!r} its privileges")
    if added:
        console.print(f"loaded {added} default emission factors")


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
    settings = _settings()
    if scale is not None:
        _seed_scale(settings, scale, activity_file)
        return

    async def run() -> dict[str, int]:
        engine = create_engine(settings, system=True)
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
    _print_demo_statement(settings)


def _seed_scale(settings: Settings, scale: str, activity_file: Path | None) -> None:
    from carbongraph.app import ensure_migrated
    from carbongraph.db import create_engine
    from carbongraph.demo.scale import SCALES, seed_scale

    if scale not in SCALES:
        err.print(f"--scale is one of {', '.join(SCALES)}")
        raise typer.Exit(2)

    async def run() -> dict[str, int]:
        engine = create_engine(settings, system=True)
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


def _print_demo_statement(settings: Settings) -> None:
    """Where the campus demo's dorm statement page is, and how to open it (engagement)."""
    from carbongraph.demo.seed import DEMO_STUDENT, DEMO_STUDENT_ROOM

    household = asyncio.run(_household_id(settings, DEMO_STUDENT_ROOM))
    if household is None:
        return
    sys.stdout.write(
        f"dorm statement page ({DEMO_STUDENT}), valid {settings.statement_link_minutes} minutes: "
        f"{_statement_url(settings, DEMO_STUDENT, household, None, 'http://127.0.0.1:8000')}\n"
        f"a fresh link: carbongraph statement-link --sub {DEMO_STUDENT} "
        f"--household {DEMO_STUDENT_ROOM}\n"
    )


async def _household_id(settings: Settings, ref: str) -> int | None:
    """A household by global ID, Household:N, or external reference."""
    import sqlalchemy as sa

    from carbongraph.db import create_engine
    from carbongraph.models import Household

    if ref.startswith("Household:") and ref[10:].isdigit():
        return int(ref[10:])
    from carbongraph.errors import CodedError
    from carbongraph.schema.relay import decode_global_id

    try:
        return decode_global_id(ref, ["Household"])[1]
    except CodedError:  # not a global ID: an external reference then
        pass
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            h = Household.__table__
            return await conn.scalar(sa.select(h.c.id).where(h.c.external_ref == ref))
    finally:
        await engine.dispose()


def _statement_url(
    settings: Settings, sub: str, household: int, period: str | None, base_url: str
) -> str:
    from urllib.parse import quote, urlencode

    from carbongraph.engagement.keys import mint_statement_link
    from carbongraph.schema.relay import to_global_id

    token, _ = mint_statement_link(settings, sub, household)
    query = {"token": token, **({"period": period} if period else {})}
    path = quote(to_global_id("Household", household), safe="")
    return f"{base_url.rstrip('/')}/statements/{path}?{urlencode(query)}"


@app.command("statement-link")
def statement_link(
    sub: Annotated[str, typer.Option(help="Subject (principal) who will read the statement.")],
    household: Annotated[
        str, typer.Option(help="A global ID, Household:N, or the household's external ref.")
    ],
    period: Annotated[
        str | None, typer.Option(help="2026-10, 2026, or 2026-10-01..2026-10-28.")
    ] = None,
    base_url: Annotated[str, typer.Option(help="Where the API is served.")] = (
        "http://127.0.0.1:8000"
    ),
) -> None:
    """Print a short-lived link to a household's printable statement page. The page still
    checks the subject's stored grants; the link only stands in for a bearer token."""
    settings = _settings()
    pk = asyncio.run(_household_id(settings, household))
    if pk is None:
        err.print(f"no household {household!r}")
        raise typer.Exit(1)
    sys.stdout.write(_statement_url(settings, sub, pk, period, base_url) + "\n")


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

    from carbongraph import audit
    from carbongraph.app import ensure_migrated
    from carbongraph.authz import PLATFORM
    from carbongraph.db import create_engine, write_transaction
    from carbongraph.models.base import utcnow
    from carbongraph.schema.relay import to_global_id as gid
    from carbongraph.services.access import G

    engine = create_engine(settings, system=True)
    try:
        await ensure_migrated(engine, settings)
        async with write_transaction(engine) as conn:
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
                    # Grant changes are audited whichever way they are made.
                    await conn.execute(
                        sa.insert(audit.A).values(
                            **audit.event_values(
                                actor_subject=audit.cli_actor(),
                                actor_kind="CLI",
                                operation="token --role",
                                outcome=audit.Outcome.OK,
                                targets=[] if node_type == PLATFORM else [gid(node_type, node_id)],
                                summary=audit.summary_json(
                                    {"principal": sub, "role": r, "nodeType": node_type}
                                ),
                            )
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
        str | None,
        typer.Option(
            "--date",
            help="As of this day in every community (default: today, each community's local day).",
        ),
    ] = None,
) -> None:
    """Expire due credits in every programme with an expiry policy (safe to repeat; run it
    daily from cron or a scheduler, e.g. hourly so each time zone's midnight is met soon)."""
    from datetime import date

    from carbongraph.actions.expiry import expire_credits
    from carbongraph.clock import Days, FixedDay, LocalDays

    settings = _settings()
    try:
        today: Days = FixedDay(date.fromisoformat(on)) if on else LocalDays(settings.clock.now())
    except ValueError as exc:
        err.print("--date is YYYY-MM-DD")
        raise typer.Exit(2) from exc

    result = asyncio.run(_in_transaction(settings, lambda conn: expire_credits(conn, today)))
    sys.stdout.write(f"expired {result['credits']} credits of {result['people']} people\n")


async def _import(settings: Settings, file: Path, work: Any) -> Any:
    """A bulk import's frame: a system engine at the latest migration and a progress bar over
    the file's rows; ``work(engine, on_progress)`` does the importing."""
    from carbongraph.accounting.importer import count_rows
    from carbongraph.app import ensure_migrated
    from carbongraph.db import create_engine

    total = count_rows(file)
    engine = create_engine(settings, system=True)
    try:
        await ensure_migrated(engine, settings)
        with _progress() as progress:
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

    settings = _settings()

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
    (default 1), occurred_on (YYYY-MM-DD), external_id. Set-based on PostgreSQL."""

    from carbongraph.actions.importer import import_actions as run_import

    settings = _settings()

    def run() -> Any:
        return _import(
            settings,
            file,
            lambda engine, on_progress: run_import(
                engine, file, batch_size=batch_size, on_progress=on_progress, per_record=per_record
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

    settings = _settings()
    total = count_rows(file)

    async def run() -> Any:
        engine = create_engine(settings, system=True)
        try:
            from carbongraph.app import ensure_migrated

            await ensure_migrated(engine, settings)
            with _progress() as progress:
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


report_app = typer.Typer(help="Reports and ESG exports.", no_args_is_help=True)
app.add_typer(report_app, name="report")


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
    settings = _settings()

    async def work(conn: Any) -> Any:
        node_type, row = await _find_organisation(conn, node)
        with _progress() as progress:
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
        inventory = asyncio.run(_in_transaction(settings, work, write=False))
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


@app.command("export-schema")
def export_schema() -> None:
    """Print the subgraph SDL (what the gateway composes)."""
    from carbongraph.schema.schema import schema

    sys.stdout.write(schema.as_str() + "\n")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes. With more than one, /metrics adds up all of them "
            "(Prometheus multiprocess mode, in PROMETHEUS_MULTIPROC_DIR or a fresh temporary "
            "directory).",
        ),
    ] = 1,
) -> None:
    """Serve /graphql, /healthz, /readyz and /metrics with uvicorn. Refuses an unmigrated
    database. Logs go to stderr (CARBONGRAPH_LOG_FORMAT: json or text, with the request id and
    trace id); traces are exported when the OTEL_* variables configure an exporter
    (docs/operations.md)."""
    import os
    import tempfile

    settings = _settings()
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Before prometheus-client is imported anywhere: the workers inherit it.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="carbongraph-metrics-")
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir:
        # A previous run's files would count as this run's (prometheus-client's rule).
        os.makedirs(multiproc_dir, exist_ok=True)
        for name in os.listdir(multiproc_dir):
            if name.endswith(".db"):
                os.remove(os.path.join(multiproc_dir, name))

    import uvicorn

    from carbongraph.app import DatabaseNotMigrated, ensure_migrated
    from carbongraph.db import create_engine
    from carbongraph.observability.logs import log_config

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
        log_config=log_config(settings.log_format, settings.log_level),
        log_level=settings.log_level,
    )


apikey_app = typer.Typer(help="API keys for partner services.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. the partner's service.")],
    scope: Annotated[
        list[str],
        typer.Option(help="ROLE@NODE, e.g. PARTNER_SERVICE@Enterprise:1 (repeat for several)."),
    ],
    days: Annotated[
        int | None, typer.Option(help="Expire after this many days (default: never).")
    ] = None,
) -> None:
    """Issue an API key as the platform operator (bootstrapping a partner); prints the key once.
    Scopes are PARTNER_SERVICE or ESG_ANALYST on enterprises or communities. Audited as CLI."""
    from carbongraph.authz import Role

    settings = _settings()
    parsed: list[tuple[Role, str, int]] = []
    for item in scope:
        role, _, node = item.partition("@")
        if role.upper() not in Role.__members__ or not node:
            err.print(f"--scope {item!r} is not ROLE@NODE (e.g. PARTNER_SERVICE@Enterprise:1)")
            raise typer.Exit(2)
        parsed.append((Role(role.upper()), *_parse_node(node)))
    try:
        presented = asyncio.run(_create_key(settings, name, parsed, days))
    except _CommandRefused as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    sys.stdout.write(presented + "\n")


class _CommandRefused(Exception):
    pass


async def _create_key(
    settings: Settings, name: str, scopes: list[tuple[Any, str, int]], days: int | None
) -> str:
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from carbongraph import audit
    from carbongraph.app import ensure_migrated
    from carbongraph.authz import PLATFORM, Principal, ResolvedGrant, Role, Viewer
    from carbongraph.db import create_engine, request_db
    from carbongraph.errors import MutationFailed
    from carbongraph.resolvers.context import Context
    from carbongraph.resolvers.dataloaders import Loaders
    from carbongraph.schema.relay import to_global_id
    from carbongraph.services import api_keys

    engine = create_engine(settings)
    operator = Viewer(
        Principal(audit.cli_actor()), [ResolvedGrant(Role.PLATFORM_ADMIN, PLATFORM, 0, None)]
    )
    today = datetime.now(UTC).date()
    try:
        await ensure_migrated(engine, settings)
        async with request_db(engine, write=True) as db:
            ctx = Context(settings, db, operator, Loaders(db, operator, today), today)
            requests = [
                api_keys.ScopeRequest(role, node_type, node_id, ["scope", str(i)])
                for i, (role, node_type, node_id) in enumerate(scopes)
            ]
            expires = datetime.now(UTC) + timedelta(days=days) if days else None
            try:
                issued = await api_keys.create_key(
                    ctx, name=name, scopes=requests, expires_at=expires
                )
            except MutationFailed as exc:
                raise _CommandRefused("; ".join(e.message for e in exc.errors)) from exc
            targets = [to_global_id("ApiKey", issued.key.row.id)] + [
                to_global_id(node_type, node_id) for _, node_type, node_id in scopes
            ]
            summary = {"name": name, "scope": [f"{r.value}@{t}:{n}" for r, t, n in scopes]}
            await db.execute(
                sa.insert(audit.A).values(
                    **audit.event_values(
                        actor_subject=operator.subject,
                        actor_kind="CLI",
                        operation="apikey create",
                        outcome=audit.Outcome.OK,
                        targets=targets,
                        summary=audit.summary_json({**summary, "expiresInDays": days}),
                    )
                )
            )
            return issued.presented
    finally:
        await engine.dispose()


if __name__ == "__main__":  # pragma: no cover
    app()
