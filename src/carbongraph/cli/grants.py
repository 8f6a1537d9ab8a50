"""carbongraph token: development tokens, and the role grants behind them."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Annotated

import typer

from carbongraph.cli.common import (
    CommandRefused,
    app,
    err,
    load_settings,
    operator_session,
    parse_node,
)
from carbongraph.config import Settings


@app.command()
def token(
    sub: Annotated[str, typer.Option(help="Subject (principal) the token is for.")],
    role: Annotated[
        list[str] | None,
        typer.Option(help="Also store this role grant (repeat for several), on --node."),
    ] = None,
    node: Annotated[
        str | None,
        typer.Option(help="Node for --role: a global ID or Type:id, e.g. Enterprise:1."),
    ] = None,
    hours: Annotated[float, typer.Option(help="Lifetime in hours.")] = 24.0,
) -> None:
    """Mint a development token. With --role, the grant is stored too (what a principal may do
    is decided by stored grants, not by the token)."""
    from carbongraph.authz import GRANTABLE_ON, PLATFORM, Role, mint_token

    settings = load_settings()
    roles = [r.upper() for r in role or []]
    for r in roles:
        if r not in Role.__members__:
            err.print(f"unknown role {r}; one of {', '.join(Role.__members__)}")
            raise typer.Exit(2)
    if roles:
        node_type, node_id = parse_node(node)
        for r in roles:
            if node_type not in GRANTABLE_ON[Role(r)]:
                where = ", ".join(sorted(GRANTABLE_ON[Role(r)]))
                err.print(
                    f"{r} is granted on: {where}" + (" (omit --node)" if PLATFORM in where else "")
                )
                raise typer.Exit(2)
        try:
            asyncio.run(_store_grants(settings, sub, roles, node_type, node_id))
        except CommandRefused as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
    sys.stdout.write(mint_token(settings, sub, roles=roles, ttl=timedelta(hours=hours)) + "\n")


async def _store_grants(
    settings: Settings, sub: str, roles: list[str], node_type: str, node_id: int
) -> None:
    """Through the service ``grantRole`` uses (its checks: the node must exist); a new grant
    is audited, one already held changes nothing."""
    from carbongraph import audit
    from carbongraph.authz import PLATFORM, Role
    from carbongraph.schema.relay import to_global_id as gid
    from carbongraph.services.access import grant_role, grants_of

    async with operator_session(settings) as caller:
        held = {grant.id for grant in await grants_of(caller, sub)}
        for r in roles:
            grant = await grant_role(
                caller, principal=sub, role=Role(r), node_type=node_type, node_id=node_id
            )
            if grant.id in held:
                continue
            # Grant changes are audited whichever way they are made.
            await audit.record(
                caller.db,
                actor_subject=caller.viewer.subject,
                actor_kind="CLI",
                operation="token --role",
                outcome=audit.Outcome.OK,
                targets=[] if node_type == PLATFORM else [gid(node_type, node_id)],
                summary=audit.summary_json({"principal": sub, "role": r, "nodeType": node_type}),
            )
