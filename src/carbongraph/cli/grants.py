"""carbongraph token: development tokens, and the role grants behind them."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Annotated

import typer

from carbongraph.cli.common import (
    app,
    err,
    load_settings,
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
        asyncio.run(_store_grants(settings, sub, roles, node_type, node_id))
    sys.stdout.write(mint_token(settings, sub, roles=roles, ttl=timedelta(hours=hours)) + "\n")


async def _store_grants(
    settings: Settings, sub: str, roles: list[str], node_type: str, node_id: int
) -> None:
    import sqlalchemy as sa

    from carbongraph import audit
    from carbongraph.app import ensure_migrated
    from carbongraph.authz import PLATFORM
    from carbongraph.db import create_engine, write_transaction
    from carbongraph.models.base import utcnow
    from carbongraph.schema.relay import to_global_id as gid
    from carbongraph.services.access import G

    engine = create_engine(settings, system=True)
    try:
        await ensure_migrated(engine, settings)
        async with write_transaction(engine) as conn:
            for r in roles:
                exists = await conn.scalar(
                    sa.select(G.c.id).where(
                        G.c.principal == sub,
                        G.c.role == r,
                        G.c.node_type == node_type,
                        G.c.node_id == node_id,
                    )
                )
                if exists is None:
                    await conn.execute(
                        sa.insert(G).values(
                            principal=sub,
                            role=r,
                            node_type=node_type,
                            node_id=node_id,
                            created_at=utcnow(),
                            created_by="cli",
                        )
                    )
                    # Grant changes are audited whichever way they are made.
                    await conn.execute(
                        sa.insert(audit.A).values(
                            **audit.event_values(
                                actor_subject=audit.cli_actor(),
                                actor_kind="CLI",
                                operation="token --role",
                                outcome=audit.Outcome.OK,
                                targets=[] if node_type == PLATFORM else [gid(node_type, node_id)],
                                summary=audit.summary_json(
                                    {"principal": sub, "role": r, "nodeType": node_type}
                                ),
                            )
                        )
                    )
    finally:
        await engine.dispose()
