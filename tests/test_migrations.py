"""Migrations are the schema: applying them yields exactly what the models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from carbongraph import migrate
from carbongraph.models import metadata


async def test_migrations_match_the_models(engine):
    assert await migrate.is_up_to_date(engine)

    def diff(conn):
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


def test_the_head_the_code_needs_is_alembics_head():
    """Commands check ``HEAD_REVISION`` without loading Alembic: it must name the newest
    migration script."""
    assert migrate.head_revision() == migrate.HEAD_REVISION


def test_the_import_commands_start_without_alembic():
    """Alembic (with Mako and Pygments) costs every command half a second to load; only
    `carbongraph migrate` needs it."""
    import subprocess
    import sys

    probe = (
        "import sys, carbongraph.cli, carbongraph.migrate, carbongraph.accounting.importer, "
        "carbongraph.actions.importer; print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
