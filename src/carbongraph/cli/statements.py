"""carbongraph statement-link: links to printable household statements."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from carbongraph.cli.common import app, err, load_settings
from carbongraph.config import Settings


async def household_id(settings: Settings, ref: str) -> int | None:
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


def statement_url(
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
    settings = load_settings()
    pk = asyncio.run(household_id(settings, household))
    if pk is None:
        err.print(f"no household {household!r}")
        raise typer.Exit(1)
    sys.stdout.write(statement_url(settings, sub, pk, period, base_url) + "\n")
