"""``carbongraph import activities``: CSV or JSONL files in batches, each all or nothing."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.accounting.factors import FactorLibrary
from carbongraph.accounting.ingest import ActivityInput, RecordErrorCode, RowError, ingest
from carbongraph.clock import Clock, LocalDays
from carbongraph.db import mark_writer
from carbongraph.errors import CodedError
from carbongraph.models import Household, Individual
from carbongraph.scale import refresh_statistics
from carbongraph.schema.relay import decode_global_id

COLUMNS = (
    "account",
    "activity_type",
    "quantity",
    "unit",
    "period_start",
    "period_end",
    "external_id",
    "source",
    "meter_ref",
    "data_quality",
)
REF_TABLES = {"Individual": Individual.__table__, "Household": Household.__table__}


@dataclass
class FileRow:
    line: int  # line number in the file, for the report
    data: dict[str, Any]


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    unchanged: int = 0
    batches_committed: int = 0
    batches_failed: int = 0
    errors: list[tuple[int, str, str, str]] = field(default_factory=list)  # line, field, code, msg
    # Of committed rows, e.g. NOT_ATTRIBUTED (counted for the person only); same columns.
    warnings: list[tuple[int, str, str, str]] = field(default_factory=list)


def read_rows(path: Path) -> Iterator[FileRow]:
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        item = json.loads(line)
                    except json.JSONDecodeError as exc:
                        item = {"_error": f"not JSON: {exc.msg}"}
                    yield FileRow(
                        line_no,
                        item
                        if isinstance(item, dict)
                        else {"_error": "each line must be a JSON object"},
                    )
    else:
        with path.open(encoding="utf-8", newline="") as handle:
            for n, item in enumerate(csv.DictReader(handle), start=2):
                yield FileRow(n, item)


def count_rows(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines if path.suffix.lower() in {".jsonl", ".ndjson"} else max(lines - 1, 0)


def _parse(row: FileRow, refs: dict[tuple[str, str], int]) -> ActivityInput | RowError:
    d = row.data

    def error(name: str, message: str, code: RecordErrorCode = RecordErrorCode.INVALID) -> RowError:
        return RowError(row.line, name, code, message)

    if "_error" in d:
        return error("line", d["_error"])
    for name in (
        "account",
        "activity_type",
        "quantity",
        "unit",
        "period_start",
        "period_end",
        "external_id",
    ):
        if not str(d.get(name) or "").strip():
            return error(name, f"{name} is required (external_id makes re-imports safe)")
    account = str(d["account"]).strip()
    try:
        if "/ref:" in account:  # Individual/ref:partner-42: by the account's externalRef
            type_name, ref = account.split("/ref:", 1)
            if (type_name, ref) not in refs:
                return error(
                    "account", f"no {type_name} with externalRef {ref!r}", RecordErrorCode.NOT_FOUND
                )
            pk = refs[(type_name, ref)]
        elif ":" in account and account.split(":", 1)[1].isdigit():
            type_name, raw = account.split(":", 1)
            pk = int(raw)
        else:
            type_name, pk = decode_global_id(account)
    except CodedError:
        type_name = ""
    if type_name not in REF_TABLES:
        return error(
            "account",
            "account is Individual:ID, Household:ID, a global ID or Type/ref:EXTERNAL_REF",
            RecordErrorCode.NOT_FOUND,
        )
    try:
        start = date.fromisoformat(str(d["period_start"]).strip())
        end = date.fromisoformat(str(d["period_end"]).strip())
    except ValueError as exc:
        return error("period", f"dates are YYYY-MM-DD: {exc}", RecordErrorCode.INVALID_PERIOD)
    return ActivityInput(
        account_type=type_name,
        account_id=pk,
        activity_type=str(d["activity_type"]).strip(),
        quantity=str(d["quantity"]).strip(),
        unit=str(d["unit"]).strip(),
        period_start=start,
        period_end=end,
        source=str(d.get("source") or "IMPORT").strip(),
        external_id=str(d["external_id"]).strip(),
        meter_ref=(str(d["meter_ref"]).strip() or None) if d.get("meter_ref") else None,
        data_quality=str(d.get("data_quality") or "METERED").strip(),
    )


async def _resolve_refs(conn: Any, rows: list[FileRow]) -> dict[tuple[str, str], int]:
    wanted: dict[str, set[str]] = {}
    for row in rows:
        account = str(row.data.get("account") or "")
        if "/ref:" in account:
            type_name, ref = account.split("/ref:", 1)
            if type_name in REF_TABLES:
                wanted.setdefault(type_name, set()).add(ref)
    refs = {}
    for type_name, values in wanted.items():
        table = REF_TABLES[type_name]
        for pk, ref in await conn.execute(
            sa.select(table.c.id, table.c.external_ref).where(
                table.c.external_ref.in_(sorted(values))
            )
        ):
            refs[(type_name, ref)] = pk
    return refs


async def import_activities(
    engine: AsyncEngine,
    path: Path,
    *,
    batch_size: int = 5000,
    on_progress: Callable[[int], None] | None = None,
    recorded_by: str = "import",
    clock: Clock | None = None,
) -> ImportReport:
    """A period must have ended on its account's local day when its batch is written."""
    report = ImportReport()
    clock = clock or Clock()
    batch: list[FileRow] = []
    library = None

    async def flush() -> None:
        nonlocal library
        if not batch:
            return
        async with engine.connect() as conn:
            mark_writer(conn)  # SQLite: wait for the write lock at BEGIN, never fail on it
            transaction = await conn.begin()
            if library is None:
                library = await FactorLibrary.load(conn)
            refs = await _resolve_refs(conn, batch)
            parsed = [_parse(row, refs) for row in batch]
            errors = [p for p in parsed if isinstance(p, RowError)]
            result = None
            if not errors:
                inputs = [p for p in parsed if isinstance(p, ActivityInput)]
                result = await ingest(
                    conn,
                    inputs,
                    today=LocalDays(clock.now()),
                    recorded_by=recorded_by,
                    library=library,
                    use_copy=True,
                )
                errors = [
                    RowError(batch[e.index].line, e.field, e.code, e.message) for e in result.errors
                ]
            if errors or result is None:
                await transaction.rollback()
                report.batches_failed += 1
                report.errors += [(e.index, e.field, e.code.value, e.message) for e in errors]
            else:
                await transaction.commit()
                report.batches_committed += 1
                if report.batches_committed % 20 == 1:
                    await refresh_statistics(engine)
                report.created += result.created_count
                report.unchanged += len(result.unchanged)
                report.warnings += [
                    (batch[w.index].line, w.field, w.code, w.message) for w in result.warnings
                ]
        report.rows += len(batch)
        if on_progress:
            on_progress(len(batch))
        batch.clear()

    for row in read_rows(path):
        batch.append(row)
        if len(batch) >= batch_size:
            await flush()
    await flush()
    return report
