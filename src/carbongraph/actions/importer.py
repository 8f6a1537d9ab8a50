"""``carbongraph import actions``: partner-verified actions from CSV or JSONL, in batches each
all or nothing, with the rules of ``recordVerifiedActions`` (types and their versions, daily
caps, idempotency by external_id, ledger GRANT entries, Scope 3+ roll-ups). The operator's
import counts as verified. On PostgreSQL each batch is written set-based (actions/bulk.py);
``per_record`` (and SQLite) uses ``record_actions``, the reference path."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.accounting.importer import (
    FileRow,
    ImportReport,
    Workers,
    deal,
    read_rows,
    refresh_statistics,
    run_batch,
)
from carbongraph.actions.bulk import record_verified_set_based
from carbongraph.actions.record import ActionError, ActionInput, record_actions
from carbongraph.errors import CodedError
from carbongraph.globalids import decode_global_id
from carbongraph.models import Individual

I = Individual.__table__  # noqa: E741
COLUMNS = ("individual", "action_type", "units", "occurred_on", "external_id")


_REQUIRED = ("individual", "action_type", "occurred_on", "external_id")


@functools.lru_cache(maxsize=4096)
def _day(text: str) -> date:
    """``date.fromisoformat``, once per distinct day of a file (a ValueError is not kept)."""
    return date.fromisoformat(text)


def _parse(row: FileRow, refs: dict[str, int]) -> ActionInput | ActionError:
    d = row.data
    if "_error" in d:
        return ActionError(row.line, "line", "INVALID", d["_error"])
    who, action_type, occurred_on, external_id = values = [
        str(d.get(name) or "").strip() for name in _REQUIRED
    ]
    if not all(values):
        name = _REQUIRED[values.index("")]
        message = f"{name} is required (external_id makes re-imports safe)"
        return ActionError(row.line, name, "INVALID", message)
    pk: int | None = None
    if who.startswith("Individual/ref:"):
        pk = refs.get(who[15:])
    elif who.startswith("Individual:") and who[11:].isdigit():
        pk = int(who[11:])
    else:
        try:
            type_name, decoded = decode_global_id(who)
            pk = decoded if type_name == "Individual" else None
        except CodedError:
            pk = None
    if pk is None:
        return ActionError(
            row.line,
            "individual",
            "NOT_FOUND",
            "individual is Individual:ID, a global ID or Individual/ref:EXTERNAL_REF of a person",
        )
    try:
        units = int(str(d.get("units") or "1").strip())
    except ValueError:
        return ActionError(row.line, "units", "INVALID", "units is a whole number")
    try:
        day = _day(occurred_on)
    except ValueError:
        return ActionError(row.line, "occurred_on", "INVALID_DATE", "occurred_on is YYYY-MM-DD")
    return ActionInput(pk, action_type, units, day, external_id)


async def _refs(conn: Any, rows: list[FileRow]) -> dict[str, int]:
    wanted = {
        str(r.data.get("individual") or "").strip().removeprefix("Individual/ref:")
        for r in rows
        if str(r.data.get("individual") or "").strip().startswith("Individual/ref:")
    }
    if not wanted:
        return {}
    statement = sa.select(I.c.external_ref, I.c.id).where(I.c.external_ref.in_(sorted(wanted)))
    return {ref: pk for ref, pk in await conn.execute(statement)}


# Field names of the service (GraphQL) → the file's columns, for the report.
_COLUMN = {
    "individualId": "individual",
    "actionType": "action_type",
    "occurredOn": "occurred_on",
    "externalId": "external_id",
}


async def write_batch(
    conn: Any, inputs: list[ActionInput], *, today: date, recorded_by: str, per_record: bool
) -> Any:
    if per_record or conn.dialect.name != "postgresql":
        return await record_actions(conn, inputs, today=today, viewer=None, recorded_by=recorded_by)
    return await record_verified_set_based(conn, inputs, today=today, recorded_by=recorded_by)


async def import_actions(
    engine: AsyncEngine,
    path: Path,
    *,
    batch_size: int = 10_000,
    on_progress: Callable[[int], None] | None = None,
    recorded_by: str = "import",
    per_record: bool = False,
    today: date | None = None,
    jobs: int = 1,
) -> ImportReport:
    """Import ``path`` in batches of ``batch_size`` rows, each all or nothing. ``jobs`` > 1
    (PostgreSQL) runs that many workers, rows dealt by person as written in the file: each
    person's rows stay in file order (the daily caps decide in that order), and workers write
    concurrently as any writers of credits do (the per-person lock; deadlocks and unique
    violations roll the batch back and try it again)."""
    report = ImportReport()
    today = today or datetime.now(UTC).date()
    if engine.dialect.name != "postgresql":
        jobs = 1  # SQLite has one writer at a time
    set_based = engine.dialect.name == "postgresql" and not per_record
    report.method = "set-based" if set_based else "per-record"
    report.jobs = jobs

    async def flush(item: tuple[list[FileRow], list[ActionInput | ActionError | None]]) -> None:
        batch, parsed = item
        errors, result = await run_batch(
            engine,
            lambda conn: _write(conn, batch, parsed, today, recorded_by, per_record),
            lambda outcome: not outcome[0] and outcome[1] is not None,
        )
        if errors or result is None:
            report.batches_failed += 1
            report.errors += [(e.index, e.field, e.code, e.message) for e in errors]
        else:
            report.batches_committed += 1
            if report.batches_committed % 20 == 1:
                await refresh_statistics(engine, "action_record, credit_entry")
            report.created += len(result.created)
            report.unchanged += len(result.unchanged)
            report.warnings += [
                (batch[w.index].line, _COLUMN.get(w.field, w.field), w.code, w.message)
                for w in result.warnings
            ]
        report.rows += len(batch)
        if on_progress:
            on_progress(len(batch))

    # Reading overlaps writing: each worker writes a batch while its next one is read.
    workers = Workers(jobs, flush)
    try:
        lanes: list[tuple[list[FileRow], list[ActionInput | ActionError | None]]] = [
            ([], []) for _ in range(jobs)
        ]
        for n, row in enumerate(read_rows(path), start=1):
            lane = deal(row, "individual", jobs)
            batch, parsed = lanes[lane]
            batch.append(row)
            parsed.append(None if _by_ref(row) else _parse(row, {}))
            if n % 1000 == 0:
                await asyncio.sleep(0)  # let the workers send their next statements
            if len(batch) >= batch_size:
                await workers.hand(lane, lanes[lane])
                lanes[lane] = ([], [])
        for lane in range(jobs):
            if lanes[lane][0]:
                await workers.hand(lane, lanes[lane])
        await workers.finish()
    finally:
        workers.cancel()
    report.errors.sort(key=lambda e: e[0])
    report.warnings.sort(key=lambda e: e[0])
    return report


async def _write(
    conn: Any,
    batch: list[FileRow],
    parsed: list[ActionInput | ActionError | None],
    today: date,
    recorded_by: str,
    per_record: bool,
) -> tuple[list[ActionError], Any]:
    """One batch in ``conn``'s transaction: its row errors (by line), and the service's result
    when there were none in the file's rows."""
    # Rows naming their person by externalRef are parsed once the refs are read.
    by_ref = [n for n, p in enumerate(parsed) if p is None]
    if by_ref:
        refs = await _refs(conn, [batch[n] for n in by_ref])
        for n in by_ref:
            parsed[n] = _parse(batch[n], refs)
    errors = [p for p in parsed if isinstance(p, ActionError)]
    if errors:
        return errors, None
    inputs = [p for p in parsed if isinstance(p, ActionInput)]
    result = await write_batch(
        conn, inputs, today=today, recorded_by=recorded_by, per_record=per_record
    )
    errors = [
        ActionError(batch[e.index].line, _COLUMN.get(e.field, e.field), e.code, e.message)
        for e in result.errors
    ]
    return errors, result


def _by_ref(row: FileRow) -> bool:
    return str(row.data.get("individual") or "").strip().startswith("Individual/ref:")
