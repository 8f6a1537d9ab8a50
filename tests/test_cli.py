"""The command line: migrate, seed, token, export-schema, serve's refusal of an old database."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys

import jwt
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from carbongraph.cli import app
from carbongraph.config import Settings
from carbongraph.db import create_engine
from carbongraph.demo.seed import demo_tokens
from carbongraph.migrate import DatabaseNotMigrated, ensure_migrated

runner = CliRunner()


@pytest.fixture
def sqlite_env(tmp_path, monkeypatch):
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CARBONGRAPH_DATABASE_URL", url)
    return url


def test_export_schema_is_a_federation_v2_subgraph():
    result = runner.invoke(app, ["export-schema"])
    assert result.exit_code == 0
    sdl = result.stdout
    assert '@link(url: "https://specs.apollo.dev/federation/v2' in sdl
    for entity in ("Enterprise", "Community", "Household", "Individual"):
        assert f'type {entity} implements Node @key(fields: "id")' in sdl


def test_migrate_seed_token_on_a_fresh_sqlite_file(sqlite_env):
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert "is at migration" in result.stdout
    first = runner.invoke(app, ["seed", "--demo"])
    assert first.exit_code == 0, first.output
    assert "individuals 1089" in first.stdout  # 589 villagers, 400 students, 100 in Binhai
    tokens = demo_tokens(first.stdout)
    assert len(tokens) == 6
    claims = jwt.decode(tokens["ORG_ADMIN"], options={"verify_signature": False})
    assert claims["sub"] == "demo-org-admin"
    # Idempotent: a second run adds nothing.
    second = runner.invoke(app, ["seed", "--demo"])
    assert second.exit_code == 0
    counts = [line for line in second.stdout.splitlines() if line.startswith("demo data")]
    assert counts and counts[0].startswith("demo data: activity_records_added 0,")
    assert counts[0].split(", ", 1)[1] in first.stdout  # same hierarchy counts

    result = runner.invoke(
        app,
        [
            "token",
            "--sub",
            "ops",
            "--role",
            "COMMUNITY_MANAGER",
            "--node",
            "Community:1",
            "--hours",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert jwt.decode(result.stdout.strip(), options={"verify_signature": False})["sub"] == "ops"

    async def grants() -> list[tuple[str, str]]:
        engine = create_engine(Settings.from_env())
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    sa.text("SELECT role, node_type FROM role_grant WHERE principal = 'ops'")
                )
                return [tuple(r) for r in rows]
        finally:
            await engine.dispose()

    assert asyncio.run(grants()) == [("COMMUNITY_MANAGER", "Community")]

    async def audited() -> list[tuple[str, str, str]]:
        engine = create_engine(Settings.from_env())
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    sa.text("SELECT actor_kind, operation, target_ids FROM audit_event")
                )
                return [tuple(r) for r in rows]
        finally:
            await engine.dispose()

    # Grant changes made from the command line are audited too.
    assert asyncio.run(audited()) == [("CLI", "token --role", " Q29tbXVuaXR5OjE= ")]
    bad = runner.invoke(
        app, ["token", "--sub", "x", "--role", "ORG_ADMIN", "--node", "Community:1"]
    )
    assert bad.exit_code == 2

    created = runner.invoke(
        app,
        ["apikey", "create", "--name", "metro", "--scope", "PARTNER_SERVICE@Enterprise:1"],
    )
    assert created.exit_code == 0, created.output
    presented = created.stdout.strip()
    _, prefix, secret = presented.split("_", 2)

    async def stored_key() -> tuple[str, list[tuple[str, str]]]:
        engine = create_engine(Settings.from_env())
        try:
            async with engine.connect() as conn:
                digest = await conn.scalar(
                    sa.text("SELECT secret_sha256 FROM api_key WHERE prefix = :p"), {"p": prefix}
                )
                events = await conn.execute(
                    sa.text("SELECT actor_kind, operation FROM audit_event ORDER BY id")
                )
                return digest, [tuple(r) for r in events]
        finally:
            await engine.dispose()

    digest, events = asyncio.run(stored_key())
    assert digest == hashlib.sha256(secret.encode()).hexdigest()
    assert events[-1] == ("CLI", "apikey create")
    for scope, code in (("ORG_ADMIN@Enterprise:1", 1), ("PARTNER_SERVICE", 2)):
        refused = runner.invoke(app, ["apikey", "create", "--name", "x", "--scope", scope])
        assert refused.exit_code == code, refused.output


def test_server_refuses_an_unmigrated_database(sqlite_env):
    async def check() -> None:
        engine = create_engine(Settings.from_env())
        try:
            await ensure_migrated(engine, Settings.from_env())
        finally:
            await engine.dispose()

    with pytest.raises(DatabaseNotMigrated, match="carbongraph migrate"):
        asyncio.run(check())
    # The real command exits non-zero with the message, before binding a port.
    result = subprocess.run(
        [sys.executable, "-m", "carbongraph.cli", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert result.returncode == 1
    assert "carbongraph migrate" in result.stderr


def test_token_grants_go_through_the_grant_service(sqlite_env):
    """The node must exist (the service's check), and a grant already held is neither stored
    nor audited again."""
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    missing = runner.invoke(
        app, ["token", "--sub", "ops", "--role", "COMMUNITY_MANAGER", "--node", "Community:999"]
    )
    assert missing.exit_code == 1 and "No such Community" in missing.output
    for _ in range(2):
        result = runner.invoke(app, ["token", "--sub", "root", "--role", "PLATFORM_ADMIN"])
        assert result.exit_code == 0, result.output

    async def stored() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        engine = create_engine(Settings.from_env())
        try:
            async with engine.connect() as conn:
                grants = await conn.execute(sa.text("SELECT principal, role FROM role_grant"))
                events = await conn.execute(sa.text("SELECT actor_kind, summary FROM audit_event"))
                return [tuple(r) for r in grants], [tuple(r) for r in events]
        finally:
            await engine.dispose()

    grants, events = asyncio.run(stored())
    assert grants == [("root", "PLATFORM_ADMIN")]
    assert [kind for kind, _ in events] == ["CLI"] and '"principal":"root"' in events[0][1]
