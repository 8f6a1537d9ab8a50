"""``carbongraph import activities``: CSV or JSONL files in batches, each all or nothing."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.accounting import bulk
from carbongraph.accounting.factors import FactorLibrary
from carbongraph.accounting.ingest import ActivityInput, RecordErrorCode, RowError, ingest
from carbongraph.clock import Clock, LocalDays
from carbongraph.db import mark_writer
from carbongraph.errors import CodedError
from carbongraph.globalids import decode_global_id
from carbongraph.models import Household, Individual
from carbongraph.models.base import utcnow

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
T = TypeVar("T")
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
    method: str = "per-record"  # or "set-based"
    jobs: int = 1

    def as_json(self) -> dict[str, Any]:
        """The machine-readable report (``--report FILE.json``)."""
        return {
            "rows": self.rows,
            "created": self.created,
            "unchanged": self.unchanged,
            "batches_committed": self.batches_committed,
            "batches_failed": self.batches_failed,
            "method": self.method,
            "jobs": self.jobs,
            "errors": [
                {"line": line, "field": name, "code": code, "message": message}
                for line, name, code, message in self.errors
            ],
            "warnings": [
                {"line": line, "field": name, "code": code, "message": message}
                for line, name, code, message in self.warnings
            ],
        }


async def refresh_statistics(engine: AsyncEngine, tables: str = "activity_record") -> None:
    """A bulk load into fresh tables outgrows the planner's statistics (it would keep choosing
    sequential scans for the idempotency and overlap look-ups); refresh them as the load grows.
    Through ``carbongraph_analyze`` (migration 0013): only a table's owner may ANALYZE it, and
    the importers run as the application role. Not ``footprint_total``: a load writes it only
    through its primary key (``ON CONFLICT``), whatever its statistics, and it is the largest
    table to sample."""
    if engine.dialect.name != "postgresql":
        return
    names = [t.strip() for t in tables.split(",")]
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT carbongraph_analyze(:tables)"), {"tables": names})
        await conn.commit()


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
            yield from _csv_rows(handle)


def _csv_rows(handle: Any) -> Iterator[FileRow]:
    """``csv.DictReader``'s rows, numbered as ``enumerate(DictReader(…), start=2)``: the same
    dicts (blank lines skipped, missing fields None, extra ones in a list under None), built
    with ``zip`` in the common case of a full row (DictReader costs ~4x as much per row)."""
    reader = csv.reader(handle)
    try:
        names = next(reader)
    except StopIteration:
        return
    width = len(names)
    n = 2
    for row in reader:
        if not row:
            continue
        item: dict[Any, Any] = dict(zip(names, row, strict=False))
        if len(row) > width:
            item[None] = row[width:]
        elif len(row) < width:
            for name in names[len(row) :]:
                item[name] = None
        yield FileRow(n, item)
        n += 1


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


async def run_batch(
    engine: AsyncEngine,
    write: Callable[[Any], Awaitable[T]],
    keep: Callable[[T], bool],
) -> T:
    """``write(conn)`` in a transaction of its own, committed when ``keep`` says so of what it
    returned, else rolled back. A deadlock, a serialization failure or a unique violation rolls
    it back and runs it again (twice): it then sees what the other writer committed."""
    for attempt in range(3):
        async with engine.connect() as conn:
            mark_writer(conn)  # SQLite: wait for the write lock at BEGIN, never fail on it
            transaction = await conn.begin()
            try:
                outcome = await write(conn)
            except sa.exc.DBAPIError as exc:
                with contextlib.suppress(Exception):  # a lost connection cannot roll back
                    await transaction.rollback()
                if attempt < 2 and retryable(exc):
                    continue
                raise
            if keep(outcome):
                await transaction.commit()
            else:
                await transaction.rollback()
            return outcome
    raise AssertionError("unreachable: the last attempt returns or raises")


def deal(row: FileRow, column: str, jobs: int) -> int:
    """The worker of a row: by its account (``column`` as written), so that each worker writes
    its own accounts, and an account's rows keep their order in the file."""
    if jobs == 1:
        return 0
    # crc32, not hash(): the same file is dealt the same way in every run (and so batched the
    # same way: a rerun reports the same batches).
    return zlib.crc32(str(row.data.get(column) or "").strip().encode()) % jobs


class Workers:
    """``jobs`` writers, each taking its lane's batches in order from a queue of one: reading
    runs at most a batch ahead of each (memory: about three batches a worker, whatever the
    file's size). The first worker's exception ends the import."""

    def __init__(self, jobs: int, write: Callable[[Any], Awaitable[None]]) -> None:
        self._queues: list[asyncio.Queue[Any]] = [asyncio.Queue(maxsize=1) for _ in range(jobs)]
        self._tasks = [asyncio.ensure_future(self._work(q, write)) for q in self._queues]

    @staticmethod
    async def _work(queue: asyncio.Queue[Any], write: Callable[[Any], Awaitable[None]]) -> None:
        while (item := await queue.get()) is not None:
            await write(item)

    async def hand(self, lane: int, item: Any) -> None:
        put = asyncio.ensure_future(self._queues[lane].put(item))
        await asyncio.wait({put, self._tasks[lane]}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():  # the worker failed: its exception ends the import
            put.cancel()
            self._tasks[lane].result()

    async def finish(self) -> None:
        for lane in range(len(self._queues)):
            await self.hand(lane, None)
        await asyncio.gather(*self._tasks)

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()


# Deadlock, serialization failure, unique violation (an externalId written meanwhile by another
# writer): the batch is rolled back whole and tried again, and then sees what the other wrote.
_RETRY_SQLSTATES = {"40P01", "40001", "23505"}


def retryable(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )
    return sqlstate in _RETRY_SQLSTATES


async def import_activities(
    engine: AsyncEngine,
    path: Path,
    *,
    batch_size: int = 5000,
    on_progress: Callable[[int], None] | None = None,
    recorded_by: str = "import",
    jobs: int = 1,
    set_based: bool | None = None,
    clock: Clock | None = None,
) -> ImportReport:
    """Import ``path`` in batches of ``batch_size`` rows, each all or nothing.

    ``set_based`` (the default on PostgreSQL) validates, prices and writes each batch in SQL
    (accounting/bulk.py); otherwise each record goes through ``ingest`` (the reference, and
    SQLite's path). ``jobs`` > 1 runs that many workers, each on its own accounts (rows are
    dealt by account), with at most a few batches per worker in memory. A period must have
    ended on its account's local day when its batch is written."""
    if set_based is None:
        set_based = engine.dialect.name == "postgresql"
    if set_based and engine.dialect.name != "postgresql":
        raise ValueError("the set-based import needs PostgreSQL")
    if engine.dialect.name != "postgresql":
        jobs = 1  # SQLite has one writer at a time
    report = ImportReport()
    report.method = "set-based" if set_based else "per-record"
    report.jobs = jobs
    clock = clock or Clock()
    library = None
    caches = bulk.StageCaches()

    async def per_record(conn: Any, batch: list[FileRow]) -> tuple[list[Any], int, int, list[Any]]:
        nonlocal library
        if library is None:
            library = await FactorLibrary.load(conn)
        refs = await _resolve_refs(conn, batch)
        parsed = [_parse(row, refs) for row in batch]
        refused = [p for p in parsed if isinstance(p, RowError)]
        if refused:
            return [(e.index, e.field, e.code.value, e.message) for e in refused], 0, 0, []
        inputs = [p for p in parsed if isinstance(p, ActivityInput)]
        result = await ingest(
            conn,
            inputs,
            today=LocalDays(clock.now()),
            recorded_by=recorded_by,
            library=library,
            use_copy=True,
        )
        errors = [(batch[e.index].line, e.field, e.code.value, e.message) for e in result.errors]
        warnings = [(batch[w.index].line, w.field, w.code, w.message) for w in result.warnings]
        return errors, result.created_count, len(result.unchanged), warnings

    async def set_wise(conn: Any, staged: list[Any]) -> tuple[list[Any], int, int, list[Any]]:
        result = await bulk.ingest_batch(
            conn, staged, now=clock.now(), recorded_by=recorded_by, recorded_at=utcnow()
        )
        return result.errors, result.created_count, result.unchanged_count, result.warnings

    write = set_wise if set_based else per_record

    async def flush(batch: list[Any]) -> None:
        if not batch:
            return
        errors, created, unchanged, warnings = await run_batch(
            engine, lambda conn: write(conn, batch), lambda outcome: not outcome[0]
        )
        if errors:
            report.batches_failed += 1
            report.errors += errors
        else:
            report.batches_committed += 1
            report.created += created
            report.unchanged += unchanged
            report.warnings += warnings
            if report.batches_committed % 20 == 1:
                await refresh_statistics(engine)
        report.rows += len(batch)
        if on_progress:
            on_progress(len(batch))

    if not set_based:  # one writer, reading between batches (SQLite's path, the reference)
        batch: list[FileRow] = []
        for row in read_rows(path):
            batch.append(row)
            if len(batch) >= batch_size:
                await flush(batch)
                batch = []
        await flush(batch)
        return report

    # Workers on disjoint accounts, reading overlapped with writing. Rows are staged as they
    # are read (compact tuples, not the parsed dicts).
    workers = Workers(jobs, flush)
    try:
        lanes: list[list[Any]] = [[] for _ in range(jobs)]
        for n, row in enumerate(read_rows(path), start=1):
            lane = deal(row, "account", jobs)
            staged = lanes[lane]
            staged.append(bulk.stage_row(len(staged), row.line, row.data, caches))
            if n % 1000 == 0:
                await asyncio.sleep(0)  # let the workers send their next statements
            if len(staged) >= batch_size:
                await workers.hand(lane, lanes[lane])
                lanes[lane] = []
        for lane in range(jobs):
            if lanes[lane]:
                await workers.hand(lane, lanes[lane])
        await workers.finish()
    finally:
        workers.cancel()
    report.errors.sort(key=lambda e: e[0])
    report.warnings.sort(key=lambda e: e[0])
    return report
