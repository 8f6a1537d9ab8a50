"""``carbongraph import hierarchy``: a whole programme from one CSV or JSONL file.

Each line is one of: ``enterprise``, ``community`` (under an ``enterprise`` and/or a ``parent``
community), ``household`` (in a ``community``), ``individual`` (optionally in a ``household``
from ``member_from`` and working for an ``employer`` from ``employed_from``), ``membership``
(an ``individual`` lives in a ``household`` from ``valid_from``: a dated move) and
``employment`` (an ``individual`` works for an ``employer`` from ``valid_from``). Nodes are
named by their ``external_ref``; references name nodes of earlier lines or already stored ones.

Every line goes through the same validated writers as the GraphQL mutations
(``services.onboarding``), in its own savepoint, so every bad line is reported; the file is
written whole or not at all, and a re-run changes nothing (idempotent by ``external_ref``).
``dry_run`` validates everything the same way and rolls back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph import audit
from carbongraph.accounting.importer import FileRow, read_rows
from carbongraph.caller import Caller, operator
from carbongraph.clock import LocalDays
from carbongraph.config import Settings
from carbongraph.db import RequestDB
from carbongraph.errors import MutationFailed, UserErrorCode, UserErrorData
from carbongraph.resolvers.dataloaders import NodeRows
from carbongraph.services import hierarchy as service
from carbongraph.services import onboarding

KINDS = ("enterprise", "community", "household", "individual", "membership", "employment")
ENTERPRISE_KINDS = ("COMPANY", "UNIVERSITY", "PROPERTY_MANAGER", "CITY_PROGRAMME", "OTHER")
COMMUNITY_KINDS = (
    "VILLAGE",
    "CAMPUS",
    "BUILDING",
    "RESIDENTIAL_COMPOUND",
    "OFFICE_PARK",
    "DISTRICT",
    "OTHER",
)
DWELLING_TYPES = ("HOUSE", "APARTMENT", "DORM_ROOM")
# The writers' (GraphQL) field names, as the file's columns name them.
COLUMN_OF = {
    "displayName": "name",
    "externalRef": "external_ref",
    "regionCode": "region_code",
    "enterpriseId": "enterprise",
    "parentId": "parent",
    "communityId": "community",
    "householdId": "household",
    "memberFrom": "member_from",
    "employerId": "employer",
    "employedFrom": "employed_from",
    "individualId": "individual",
    "effectiveFrom": "valid_from",
}
# Which table a reference column names.
REF_TYPE = {
    "enterprise": "Enterprise",
    "employer": "Enterprise",
    "parent": "Community",
    "community": "Community",
    "household": "Household",
    "individual": "Individual",
}


@dataclass
class LineError:
    line: int
    field: str
    code: str
    message: str


@dataclass
class HierarchyReport:
    file: str
    dry_run: bool
    rows: int = 0
    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    unchanged: int = 0
    committed: bool = False
    errors: list[LineError] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["dryRun"] = data.pop("dry_run")
        return data


class _Stop(Exception):
    """The database refused a line (see ``onboarding.run_one``): the import stops there."""

    def __init__(self, errors: list[UserErrorData]) -> None:
        self.errors = errors


class _Bad(Exception):
    def __init__(self, column: str, code: UserErrorCode, message: str) -> None:
        self.error = UserErrorData(["input", column], message, code)


def _text(d: dict[str, Any], name: str) -> str | None:
    value = d.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _required(d: dict[str, Any], name: str) -> str:
    value = _text(d, name)
    if value is None:
        raise _Bad(name, UserErrorCode.REQUIRED, f"{name} is required.")
    return value


def _choice(d: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None) -> str:
    value = (_text(d, name) or default or "").upper()
    if value not in allowed:
        raise _Bad(name, UserErrorCode.INVALID, f"{name} is one of {', '.join(allowed)}.")
    return value


def _day(d: dict[str, Any], name: str, *, required: bool = False) -> date | None:
    value = _text(d, name)
    if value is None:
        if required:
            raise _Bad(name, UserErrorCode.REQUIRED, f"{name} is required (YYYY-MM-DD).")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise _Bad(name, UserErrorCode.INVALID_DATE, f"{name} is YYYY-MM-DD.") from exc


def _flag(d: dict[str, Any], name: str) -> bool:
    value = d.get(name)
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in {"", "0", "false", "no", "n"}:
        return False
    if text in {"1", "true", "yes", "y"}:
        return True
    raise _Bad(name, UserErrorCode.INVALID, f"{name} is true or false.")


class _Refs:
    """externalRef → id, for nodes of earlier lines and stored ones."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.known: dict[tuple[str, str], int] = {}

    async def id(self, d: dict[str, Any], column: str, *, required: bool = False) -> int | None:
        ref = _required(d, column) if required else _text(d, column)
        if ref is None:
            return None
        type_name = REF_TYPE[column]
        key = (type_name, ref)
        if key not in self.known:
            table = service.TABLES[type_name]
            pk = await self.caller.db.scalar(
                sa.select(table.c.id).where(table.c.external_ref == ref)
            )
            if pk is None:
                raise _Bad(
                    column,
                    UserErrorCode.NOT_FOUND,
                    f"no {type_name} with external_ref {ref!r} (define it on an earlier line)",
                )
            self.known[key] = pk
        return self.known[key]

    def remember(self, type_name: str, ref: str | None, pk: int) -> None:
        if ref:
            self.known[(type_name, ref)] = pk


async def _line(caller: Caller, refs: _Refs, kind: str, d: dict[str, Any]) -> tuple[Any, bool]:
    """Write one line through the validated writers; (row, created)."""
    if kind in {"enterprise", "community", "household", "individual"}:
        _required(d, "external_ref")  # what makes a re-run safe
    ref = _text(d, "external_ref")
    if kind == "enterprise":
        row, created = await onboarding.ensure_enterprise(
            caller,
            name=_required(d, "name"),
            kind=_choice(d, "kind", ENTERPRISE_KINDS, "OTHER"),
            external_ref=ref,
        )
        refs.remember("Enterprise", ref, row.id)
    elif kind == "community":
        row, created = await onboarding.ensure_community(
            caller,
            name=_required(d, "name"),
            kind=_choice(d, "kind", COMMUNITY_KINDS, "OTHER"),
            region_code=_text(d, "region_code"),
            timezone=_text(d, "timezone"),
            enterprise_id=await refs.id(d, "enterprise"),
            parent_id=await refs.id(d, "parent"),
            external_ref=ref,
        )
        refs.remember("Community", ref, row.id)
    elif kind == "household":
        row, created = await onboarding.ensure_household(
            caller,
            community_id=await refs.id(d, "community", required=True),  # type: ignore[arg-type]
            name=_required(d, "name"),
            dwelling_type=_choice(d, "dwelling_type", DWELLING_TYPES, "HOUSE"),
            has_rooftop_solar=_flag(d, "has_rooftop_solar"),
            external_ref=ref,
        )
        refs.remember("Household", ref, row.id)
    elif kind == "individual":
        row, created = await onboarding.ensure_individual(
            caller,
            display_name=_required(d, "name"),
            email=_text(d, "email"),
            subject=_text(d, "subject"),
            household_id=await refs.id(d, "household"),
            member_from=_day(d, "member_from"),
            employer_id=await refs.id(d, "employer"),
            employed_from=_day(d, "employed_from"),
            external_ref=ref,
            reload=False,
        )
        refs.remember("Individual", ref, row if isinstance(row, int) else row.id)
    elif kind == "membership":
        row, created = await onboarding.ensure_membership(
            caller,
            await refs.id(d, "individual", required=True),  # type: ignore[arg-type]
            await refs.id(d, "household", required=True),  # type: ignore[arg-type]
            _day(d, "valid_from", required=True),  # type: ignore[arg-type]
        )
    else:
        row, created = await onboarding.ensure_employment(
            caller,
            await refs.id(d, "individual", required=True),  # type: ignore[arg-type]
            await refs.id(d, "employer", required=True),  # type: ignore[arg-type]
            _day(d, "valid_from", required=True),  # type: ignore[arg-type]
        )
    return row, created


def operator_caller(settings: Settings, db: RequestDB, today: date) -> Caller:
    """The CLI acts as the platform operator (it holds the database credentials anyway)."""
    viewer = operator(audit.cli_actor())
    days = LocalDays(settings.clock.now())
    return Caller(db, viewer, today, days, NodeRows(db, viewer, today))


async def import_hierarchy(
    engine: AsyncEngine,
    settings: Settings,
    path: Path,
    *,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
    today: date | None = None,
) -> HierarchyReport:
    report = HierarchyReport(file=str(path), dry_run=dry_run)
    today = today or datetime.now(UTC).date()
    db = RequestDB(engine, write=True)
    committed = False
    try:
        caller = operator_caller(settings, db, today)
        refs = _Refs(caller)
        for row in read_rows(path):
            report.rows += 1
            try:
                report.errors += await _run_line(caller, refs, row, report)
            except _Stop as stop:
                report.errors += [
                    LineError(row.line, "external_ref", e.code.value, e.message)
                    for e in stop.errors
                ]
                break
            if on_progress:
                on_progress(1)
            if report.rows % 500 == 0:
                await asyncio.sleep(0)
        committed = not dry_run and not report.errors
        if committed:
            await audit.record(
                db,
                actor_subject=caller.viewer.subject,
                actor_kind="CLI",
                operation="import hierarchy",
                outcome=audit.Outcome.OK,
                summary=audit.summary_json(
                    {"file": path.name, "created": report.created, "unchanged": report.unchanged}
                ),
            )
    finally:
        await db.close(commit=committed)
    report.committed = committed
    return report


async def _run_line(
    caller: Caller, refs: _Refs, row: FileRow, report: HierarchyReport
) -> list[LineError]:
    d = row.data
    if "_error" in d:
        return [LineError(row.line, "line", UserErrorCode.INVALID.value, d["_error"])]
    kind = (_text(d, "type") or "").lower()
    if kind not in KINDS:
        return [
            LineError(
                row.line, "type", UserErrorCode.INVALID.value, f"type is one of {', '.join(KINDS)}"
            )
        ]

    async def one() -> tuple[Any, bool]:
        try:
            return await _line(caller, refs, kind, d)
        except _Bad as bad:
            raise MutationFailed([bad.error]) from None

    _, created, errors, go_on = await onboarding.run_one(caller, ["input"], one)
    if not go_on:
        raise _Stop(errors)
    if errors:
        return [
            LineError(
                row.line,
                COLUMN_OF.get(e.field[1], e.field[1]) if len(e.field) > 1 else "line",
                e.code.value,
                e.message,
            )
            for e in errors
        ]
    if created:
        report.created[kind] += 1
    else:
        report.unchanged += 1
    return []
