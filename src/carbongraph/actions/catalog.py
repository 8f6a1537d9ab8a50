"""The action catalog: shipped defaults (data/action_types.json) and look-ups."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

import sqlalchemy as sa

from carbongraph.locks import lock_action_type_code
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


async def publish_action_type(db: Any, values: dict[str, Any]) -> Any:
    """Insert the next version of ``values["code"]`` (stripped) and return its row.

    Publishers of one code take its lock (locks.py) before reading the newest version, so each
    of concurrent publishes gets its own version number; (code, version) is unique besides."""
    code = values["code"].strip()
    await lock_action_type_code(db, code)
    latest = await db.scalar(sa.select(sa.func.max(A.c.version)).where(A.c.code == code))
    pk = (
        await db.execute(
            sa.insert(A)
            .values(**{**values, "code": code}, version=(latest or 0) + 1, created_at=utcnow())
            .returning(A.c.id)
        )
    ).scalar_one()
    return (await db.execute(sa.select(A).where(A.c.id == pk))).one()
