"""What every command shares: the Typer app, the consoles, settings, a transaction on a
short-lived engine, the platform operator's session for domain services, the progress bar, node
arguments."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from carbongraph.config import ConfigError, Settings

if TYPE_CHECKING:
    from carbongraph.caller import Caller

app = typer.Typer(
    help="carbongraph: federated GraphQL for personal, household, community and enterprise "
    "carbon accounts. Configure with CARBONGRAPH_* environment variables (see README).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def command_group(name: str, help: str) -> typer.Typer:
    """A group of subcommands (``carbongraph <name> …``), registered on the main app."""
    group = typer.Typer(help=help, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


async def in_transaction(settings: Settings, work: Any, *, write: bool = True) -> Any:
    """Run ``work(connection)`` in one transaction on a short-lived engine."""
    from carbongraph.db import create_engine, write_transaction

    engine = create_engine(settings, system=True)
    try:
        async with write_transaction(engine) if write else engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


class CommandRefused(Exception):
    """A domain service refused the command (its user errors, joined): exit 1."""


@contextlib.asynccontextmanager
async def operator_session(settings: Settings) -> AsyncIterator[Caller]:
    """The platform operator (``cli:<user>``) as the domain services' caller, on a migrated
    database, in one transaction committed when the block ends without an exception. A
    refusal (``MutationFailed``) rolls back everything and becomes ``CommandRefused``."""
    from carbongraph import audit
    from carbongraph.caller import operator
    from carbongraph.db import create_engine, request_db
    from carbongraph.errors import MutationFailed
    from carbongraph.migrate import ensure_migrated
    from carbongraph.resolvers.context import caller_for

    engine = create_engine(settings, system=True)
    try:
        await ensure_migrated(engine, settings)
        async with request_db(engine, write=True) as db:
            try:
                yield caller_for(db, operator(audit.cli_actor()), settings.clock.now())
            except MutationFailed as exc:
                raise CommandRefused("; ".join(e.message for e in exc.errors)) from exc
    finally:
        await engine.dispose()


def application_role(settings: Settings) -> str | None:
    """The application's PostgreSQL role, when migrations run as another one (the owner)."""
    from sqlalchemy.engine import make_url

    if settings.migration_database_url is None or settings.is_sqlite:
        return None
    app_user = make_url(settings.database_url).username
    owner = make_url(settings.migration_database_url).username
    return app_user if app_user and app_user != owner else None


def progress_bar() -> Any:
    """The progress bar of long commands (on stderr, so stdout stays machine-readable)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


def parse_node(node: str | None) -> tuple[str, int]:
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
