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
