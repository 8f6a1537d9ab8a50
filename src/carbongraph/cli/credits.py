"""carbongraph credits expire."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from carbongraph.cli.common import command_group, err, in_transaction, load_settings

credits_app = command_group("credits", "Credits.")


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

    settings = load_settings()
    try:
        today: Days = FixedDay(date.fromisoformat(on)) if on else LocalDays(settings.clock.now())
    except ValueError as exc:
        err.print("--date is YYYY-MM-DD")
        raise typer.Exit(2) from exc

    result = asyncio.run(in_transaction(settings, lambda conn: expire_credits(conn, today)))
    sys.stdout.write(f"expired {result['credits']} credits of {result['people']} people\n")
