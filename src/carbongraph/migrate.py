"""Apply and inspect Alembic migrations programmatically (used by the CLI, the app and tests)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.config import Settings
from carbongraph.db import SYSTEM_SCOPE_SQL

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration, which this version of the code needs. Every command checks it, and
# Alembic (with Mako and Pygments: half a second of every command's start) is loaded only to
# migrate; tests/test_migrations.py checks that this is Alembic's head.
HEAD_REVISION = "0013"


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def head_revision() -> str | None:
    """Alembic's head, read from the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(conn: Connection) -> str | None:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
        if len(versions) > 1:  # as Alembic's MigrationContext: one branch only
            raise RuntimeError(f"the database is at several migrations: {sorted(versions)}")
        return versions[0] if versions else None

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    def run(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            # A migration that moves personal rows must see them all (row-level security).
            conn.exec_driver_sql(SYSTEM_SCOPE_SQL)
        from alembic import command

        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def is_up_to_date(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == HEAD_REVISION


# The credits ledger and the audit log are append-only: a correction is a reversal entry, never
# an UPDATE; audit events are never changed (the triggers of migration 0008 say so as well).
APPEND_ONLY_TABLES = ("credit_entry", "audit_event")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def grant_app_role(engine: AsyncEngine, role: str) -> None:
    """Give the application's login role what it needs on PostgreSQL and nothing more: data
    statements on the tables (no UPDATE or DELETE on append-only ones, no DDL, no TRUNCATE, no
    ownership), the sequences, and read access to the migration revision. Idempotent; run by
    ``carbongraph migrate`` as the owner after every upgrade, so new tables are covered."""
    if engine.dialect.name != "postgresql":
        return
    q = _quote(role)
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {q}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {q}",
        f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {q}",
        *(f"REVOKE UPDATE, DELETE ON {t} FROM {q}" for t in APPEND_ONLY_TABLES),
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {q}",
        # The statistics of the tables bulk loads fill (migration 0013).
        f"GRANT EXECUTE ON FUNCTION carbongraph_analyze(text[]) TO {q}",
    ]
    async with engine.begin() as conn:
        for statement in statements:
            await conn.exec_driver_sql(statement)


def create_app_role_sql(role: str) -> str:
    """SQL creating the application's login role if it is missing: no superuser, no BYPASSRLS,
    owns nothing. Cluster-wide, so it tolerates another session creating the same role at the
    same moment (parallel test runs). A password, if any, is set separately by the operator."""
    literal = role.replace("'", "''")
    return f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{literal}') THEN
    CREATE ROLE {_quote(role)} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$
"""


class DatabaseNotMigrated(RuntimeError):
    pass


# Here, not in app.py: the command line checks it without loading the GraphQL app.
async def ensure_migrated(engine: AsyncEngine, settings: Settings) -> None:
    current = await current_revision(engine)
    head = HEAD_REVISION
    if current != head:
        raise DatabaseNotMigrated(
            f"The database at {redact(settings.database_url)} is at migration "
            f"{current or 'none'}, but this version needs {head}. "
            "Run `carbongraph migrate` first."
        )


def redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
