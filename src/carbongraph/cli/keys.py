"""carbongraph apikey create: API keys for partner services."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Annotated, Any

import typer

from carbongraph.cli.common import (
    CommandRefused,
    command_group,
    err,
    load_settings,
    operator_session,
    parse_node,
)
from carbongraph.config import Settings

apikey_app = command_group("apikey", "API keys for partner services.")


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. the partner's service.")],
    scope: Annotated[
        list[str],
        typer.Option(help="ROLE@NODE, e.g. PARTNER_SERVICE@Enterprise:1 (repeat for several)."),
    ],
    days: Annotated[
        int | None, typer.Option(help="Expire after this many days (default: never).")
    ] = None,
) -> None:
    """Issue an API key as the platform operator (bootstrapping a partner); prints the key once.
    Scopes are PARTNER_SERVICE or ESG_ANALYST on enterprises or communities. Audited as CLI."""
    from carbongraph.authz import Role

    settings = load_settings()
    parsed: list[tuple[Role, str, int]] = []
    for item in scope:
        role, _, node = item.partition("@")
        if role.upper() not in Role.__members__ or not node:
            err.print(f"--scope {item!r} is not ROLE@NODE (e.g. PARTNER_SERVICE@Enterprise:1)")
            raise typer.Exit(2)
        parsed.append((Role(role.upper()), *parse_node(node)))
    try:
        presented = asyncio.run(_create_key(settings, name, parsed, days))
    except CommandRefused as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    sys.stdout.write(presented + "\n")


async def _create_key(
    settings: Settings, name: str, scopes: list[tuple[Any, str, int]], days: int | None
) -> str:
    from datetime import UTC, datetime

    from carbongraph import audit
    from carbongraph.schema.relay import to_global_id
    from carbongraph.services import api_keys

    async with operator_session(settings) as caller:
        requests = [
            api_keys.ScopeRequest(role, node_type, node_id, ["scope", str(i)])
            for i, (role, node_type, node_id) in enumerate(scopes)
        ]
        expires = datetime.now(UTC) + timedelta(days=days) if days else None
        issued = await api_keys.create_key(caller, name=name, scopes=requests, expires_at=expires)
        targets = [to_global_id("ApiKey", issued.key.row.id)] + [
            to_global_id(node_type, node_id) for _, node_type, node_id in scopes
        ]
        summary = {"name": name, "scope": [f"{r.value}@{t}:{n}" for r, t, n in scopes]}
        await audit.record(
            caller.db,
            actor_subject=caller.viewer.subject,
            actor_kind="CLI",
            operation="apikey create",
            outcome=audit.Outcome.OK,
            targets=targets,
            summary=audit.summary_json({**summary, "expiresInDays": days}),
        )
        return issued.presented
