"""carbongraph migrate"""

from __future__ import annotations

import asyncio

from carbongraph.cli.common import app, application_role, console, load_settings


@app.command()
def migrate() -> None:
    """Apply all database migrations (creates the SQLite file if needed) and load the shipped
    emission factors that are missing."""
    from carbongraph import migrate as migrations
    from carbongraph.db import create_engine
    from carbongraph.migrate import redact

    settings = load_settings()

    from carbongraph.accounting.factors import ensure_default_factors
    from carbongraph.actions.catalog import ensure_default_action_types

    async def run() -> tuple[str | None, int]:
        engine = create_engine(settings, system=True, url=settings.migration_url)
        try:
            await migrations.upgrade(engine)
            app_role = application_role(settings)
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
    if (app_role := application_role(settings)) is not None:
        console.print(f"granted the application role {app_role!r} its privileges")
    if added:
        console.print(f"loaded {added} default emission factors")
