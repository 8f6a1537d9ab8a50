"""The time zone an account's days are read in (docs/methodology.md, "Local days")."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from carbongraph.models import Community

C = Community.__table__


async def zone_of_path(db: Any, path: str | None) -> str | None:
    """The time zone of the community a household's path ("e1/c4/c9/h31/") lies in, i.e. the
    deepest community on it; None (UTC) for no path or a path without a community."""
    communities = [s for s in (path or "").strip("/").split("/") if s.startswith("c")]
    if not communities:
        return None
    return await db.scalar(sa.select(C.c.timezone).where(C.c.id == int(communities[-1][1:])))
