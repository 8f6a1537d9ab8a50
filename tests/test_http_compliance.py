"""GraphQL-over-HTTP compliance: graphql-http's ``auditServer`` against the real server.

Starts ``carbongraph serve`` on a fresh, migrated SQLite database and runs
``gateway/audit.mjs`` (every audit request carries a valid bearer token). Every audit must be
"ok": no warnings, notices or errors. See docs/compliance.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from carbongraph.authz import mint_token
from carbongraph.config import Settings
from tests.conftest import REPO
from tests.processes import Processes, free_port

GATEWAY = REPO / "gateway"
AUDIT = GATEWAY / "audit.mjs"


def test_graphql_over_http_audit_is_all_ok(tmp_path, monkeypatch):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the GraphQL-over-HTTP audit needs Node >= 20")
    if not (GATEWAY / "node_modules" / "graphql-http").is_dir():
        pytest.fail("gateway/node_modules/graphql-http is missing: run `npm ci` in gateway/")

    database_url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    monkeypatch.setenv("CARBONGRAPH_DATABASE_URL", database_url)
    env = {"CARBONGRAPH_DATABASE_URL": database_url}
    cli = [sys.executable, "-m", "carbongraph.cli"]
    subprocess.run(
        [*cli, "migrate"],
        check=True,
        timeout=60,
        capture_output=True,
        env={**os.environ, **env},
    )

    port = free_port()
    processes = Processes(tmp_path)
    try:
        processes.start(
            "carbongraph",
            [*cli, "serve", "--port", str(port)],
            health=f"http://127.0.0.1:{port}/healthz",
            env=env,
            timeout=30,
        )
        token = mint_token(Settings.from_env(), "auditor")
        audit = subprocess.run(
            [node, str(AUDIT), "--url", f"http://127.0.0.1:{port}/graphql", "--token", token],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=GATEWAY,
        )
    finally:
        processes.stop_all()

    assert audit.stdout.strip(), f"no summary from audit.mjs:\n{audit.stderr}"
    summary = json.loads(audit.stdout)
    report = json.dumps(summary["failures"], indent=2)
    assert audit.returncode == 0, f"audit.mjs exited {audit.returncode}:\n{report}\n{audit.stderr}"
    assert summary["total"] >= 50, summary
    assert summary["ok"] == summary["total"], report
    assert summary["warn"] == summary["error"] == summary["notice"] == 0, report
