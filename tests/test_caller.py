"""Domain services take a ``Caller`` (carbongraph.caller), never the GraphQL context."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

from carbongraph.authz import Principal
from carbongraph.caller import operator
from carbongraph.db import RequestDB
from carbongraph.resolvers.context import build_context, caller_for

SRC = Path(__file__).resolve().parents[1] / "src" / "carbongraph"
DOMAIN = ["services", "actions", "caller.py"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_domain_modules_never_import_the_graphql_context():
    files = [
        p
        for part in DOMAIN
        for p in ([SRC / part] if part.endswith(".py") else (SRC / part).rglob("*.py"))
    ]
    assert len(files) > 10
    offenders = {
        str(path.relative_to(SRC)): sorted(
            name for name in _imports(path) if name == "carbongraph.resolvers.context"
        )
        for path in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


async def test_the_graphql_context_hands_services_its_request_and_current_audit_notes(
    engine, settings
):
    now = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    db = RequestDB(engine)
    try:
        ctx = await build_context(settings, db, Principal("someone"), now=now)
        caller = ctx.caller
        assert (caller.db, caller.viewer, caller.today, caller.days, caller.loaders) == (
            ctx.db,
            ctx.viewer,
            ctx.today,
            ctx.days,
            ctx.loaders,
        )
        # AuditedMutation starts a fresh dict per mutation: a caller taken then writes into it.
        ctx.audit_notes = {}
        ctx.caller.audit_notes["grant"] = 1
        assert ctx.audit_notes == {"grant": 1}
    finally:
        await db.close(commit=False)


def test_the_operator_is_a_platform_admin_on_the_callers_day():
    viewer = operator("cli:someone")
    assert viewer.subject == "cli:someone" and viewer.is_platform_admin
    caller = caller_for(None, viewer, datetime(2026, 3, 1, 23, 30, tzinfo=UTC))  # type: ignore[arg-type]
    assert caller.today.isoformat() == "2026-03-01"
    assert caller.days.on("Asia/Shanghai").isoformat() == "2026-03-02"
