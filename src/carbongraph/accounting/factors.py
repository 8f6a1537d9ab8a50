"""The versioned emission factor library: the shipped defaults, imports, and selection.

Selection rule, for an activity on a day in a region: among factors valid on that day
(``valid_from <= day`` and ``valid_to`` null or after it), take the most specific region of
``region_chain`` that has one; within it the latest ``valid_from`` (a newer year supersedes an
older one that is still open-ended); then the highest ``version`` (a correction).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from carbongraph.accounting.regions import region_chain
from carbongraph.models.accounting import EmissionFactor
from carbongraph.models.base import utcnow

F = EmissionFactor.__table__
UG_PER_KG = Decimal(1_000_000_000)


@dataclass(frozen=True)
class Factor:
    id: int
    factor_key: str
    basis: str
    region_code: str
    unit: str
    valid_from: date
    valid_to: date | None
    ug_per_unit: int
    version: int

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or self.valid_to > day)


class FactorLibrary:
    """All factors in memory (the table is small): one statement, then pure lookups."""

    def __init__(self, factors: list[Factor]) -> None:
        self._by_series: dict[tuple[str, str, str], list[Factor]] = defaultdict(list)
        for factor in factors:
            self._by_series[(factor.factor_key, factor.basis, factor.region_code)].append(factor)
        for series in self._by_series.values():
            series.sort(key=lambda f: (f.valid_from, f.version), reverse=True)
        self._selected: dict[tuple[str, str, date, str], Factor | None] = {}

    @classmethod
    async def load(cls, db: Any) -> FactorLibrary:
        rows = await db.execute(
            sa.select(
                F.c.id,
                F.c.factor_key,
                F.c.basis,
                F.c.region_code,
                F.c.unit,
                F.c.valid_from,
                F.c.valid_to,
                F.c.ug_per_unit,
                F.c.version,
            )
        )
        return cls([Factor(*row) for row in rows])

    def select(
        self, factor_key: str, region_code: str, day: date, basis: str = "location"
    ) -> Factor | None:
        for region in region_chain(region_code):
            for factor in self._by_series.get((factor_key, basis, region), ()):
                if factor.valid_on(day):
                    return factor
        return None


class FactorFileError(ValueError):
    pass


_FIELDS = (
    "factor_key",
    "basis",
    "region_code",
    "unit",
    "valid_from",
    "valid_to",
    "kg_co2e_per_unit",
    "gas_breakdown",
    "gwp_set",
    "source",
    "citation",
    "version",
)


def parse_factor_file(text: str, name: str = "") -> list[dict[str, Any]]:
    """Rows of a factor file (JSON as shipped, or CSV with the same column names)."""
    if name.endswith(".csv") or not text.lstrip().startswith("{"):
        raw = list(csv.DictReader(io.StringIO(text)))
    else:
        raw = json.loads(text).get("factors", [])
    rows = []
    for number, item in enumerate(raw, start=1):
        try:
            kg = Decimal(str(item["kg_co2e_per_unit"]))
            ug = kg * UG_PER_KG
            if kg < 0 or ug != ug.to_integral_value():
                raise FactorFileError(
                    f"row {number}: kg_co2e_per_unit must be ≥ 0 with at most 9 decimals"
                )
            gases = item.get("gas_breakdown")
            rows.append(
                {
                    "factor_key": str(item["factor_key"]),
                    "basis": str(item.get("basis") or "location"),
                    "region_code": str(item["region_code"]),
                    "unit": str(item["unit"]),
                    "valid_from": date.fromisoformat(str(item["valid_from"])),
                    "valid_to": date.fromisoformat(str(item["valid_to"]))
                    if item.get("valid_to")
                    else None,
                    "ug_per_unit": int(ug),
                    "gas_breakdown": json.dumps(gases)
                    if isinstance(gases, dict)
                    else gases or None,
                    "gwp_set": str(item.get("gwp_set") or "AR5"),
                    "source": str(item["source"]),
                    "citation": str(item["citation"]),
                    "version": int(item.get("version") or 1),
                }
            )
        except (KeyError, ValueError, InvalidOperation) as exc:
            if isinstance(exc, FactorFileError):
                raise
            raise FactorFileError(f"row {number}: {exc!r} (columns: {', '.join(_FIELDS)})") from exc
    return rows


async def import_factors(conn: Any, rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Insert factors that are not there yet (same series, valid_from and version). Returns
    (added, already present). A changed value needs a new ``version``, never an overwrite."""
    added = present = 0
    for row in rows:
        key = sa.and_(
            F.c.factor_key == row["factor_key"],
            F.c.basis == row["basis"],
            F.c.region_code == row["region_code"],
            F.c.valid_from == row["valid_from"],
            F.c.version == row["version"],
        )
        existing = (await conn.execute(sa.select(F.c.ug_per_unit).where(key))).first()
        if existing is not None:
            if existing.ug_per_unit != row["ug_per_unit"]:
                raise FactorFileError(
                    f"{row['factor_key']}/{row['region_code']} from {row['valid_from']} version "
                    f"{row['version']} exists with another value: add it as a new version"
                )
            present += 1
            continue
        await conn.execute(sa.insert(F).values(**row, created_at=utcnow()))
        added += 1
    return added, present


def default_factor_rows() -> list[dict[str, Any]]:
    text = resources.files("carbongraph").joinpath("data/emission_factors.json").read_text()
    return parse_factor_file(text, "emission_factors.json")


async def ensure_default_factors(conn: Any) -> int:
    added, _ = await import_factors(conn, default_factor_rows())
    return added


def read_factor_file(path: Path) -> list[dict[str, Any]]:
    return parse_factor_file(path.read_text(encoding="utf-8"), path.name)
