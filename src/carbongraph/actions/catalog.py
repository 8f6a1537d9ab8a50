"""The action catalog: shipped defaults (data/action_types.json) and look-ups."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

import sqlalchemy as sa

from carbongraph.models import ActionType
from carbongraph.models.base import utcnow

A = ActionType.__table__


def default_action_types() -> tuple[str, list[dict[str, Any]]]:
    text = resources.files("carbongraph").joinpath("data/action_types.json").read_text()
    data = json.loads(text)
    rows = []
    for item in data["action_types"]:
        rows.append(
            {
                **item,
                "version": int(item.get("version", 1)),
                "methodology": data["methodology"],
                "valid_from": date.fromisoformat(item["valid_from"]),
                "valid_to": date.fromisoformat(item["valid_to"]) if item.get("valid_to") else None,
            }
        )
    return data["methodology"], rows


async def ensure_default_action_types(conn: Any) -> int:
    """Insert the shipped action types that are missing (by code and version)."""
    _, rows = default_action_types()
    added = 0
    for row in rows:
        exists = await conn.scalar(
            sa.select(A.c.id).where(A.c.code == row["code"], A.c.version == row["version"])
        )
        if exists is None:
            await conn.execute(sa.insert(A).values(**row, created_at=utcnow()))
            added += 1
    return added


@dataclass(frozen=True)
class Catalog:
    by_code: dict[str, list[Any]]  # newest version first

    @classmethod
    async def load(cls, db: Any) -> Catalog:
        by_code: dict[str, list[Any]] = {}
        for row in await db.execute(sa.select(A).order_by(A.c.code, A.c.version.desc())):
            by_code.setdefault(row.code, []).append(row)
        return cls(by_code)

    def valid_on(self, code: str, day: date) -> Any | None:
        """The newest version of ``code`` valid on ``day``."""
        for row in self.by_code.get(code, ()):
            if row.valid_from <= day and (row.valid_to is None or row.valid_to > day):
                return row
        return None
