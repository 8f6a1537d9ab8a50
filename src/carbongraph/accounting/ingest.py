"""Recording activity data: validation, idempotency, emissions, roll-up — all or nothing.

One code path serves the GraphQL mutations and ``carbongraph import activities``. A batch is
checked completely before anything is written; any row error means nothing of the batch is.
The batch's accounts are locked (locks.py) before the checks that read earlier records.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from carbongraph.accounting.activities import ACTIVITY_TYPES, UnitError, to_canonical_milli
from carbongraph.accounting.compute import NoFactor, compute
from carbongraph.accounting.factors import FactorLibrary
from carbongraph.accounting.rollup import Attribution, TotalsDelta
from carbongraph.authz import Target, Viewer, individual_path
from carbongraph.clock import Days, as_days
from carbongraph.errors import ErrorCode
from carbongraph.locks import lock_accounts
from carbongraph.models.base import utcnow
from carbongraph.models.tables import C, H, I, R

SOURCES = ("METER", "APP", "PARTNER", "IMPORT")
DATA_QUALITIES = ("METERED", "ESTIMATED", "SELF_REPORTED")


# A record's errors are the API's error codes (``ErrorCode``): one list.
RecordErrorCode = ErrorCode


@dataclass
class ActivityInput:
    account_type: str  # "Individual" or "Household"
    account_id: int
    activity_type: str
    quantity: str
    unit: str
    period_start: date
    period_end: date
    source: str = "APP"
    external_id: str | None = None
    meter_ref: str | None = None
    data_quality: str = "METERED"


@dataclass(frozen=True)
class RowError:
    index: int
    field: str
    code: RecordErrorCode
    message: str


NOT_ATTRIBUTED = "NOT_ATTRIBUTED"


@dataclass(frozen=True)
class RowWarning:
    """Accepted, but worth telling: e.g. ``NOT_ATTRIBUTED``, a person's record dated where they
    have no household membership counts for the person only, not for a household or above."""

    index: int
    field: str
    code: str
    message: str


def not_attributed(index: int, field_name: str, day: date) -> RowWarning:
    return RowWarning(
        index,
        field_name,
        NOT_ATTRIBUTED,
        f"the person has no household on {day.isoformat()}: counted for the person, not for "
        "any household or community (memberFrom is later, or they had moved out)",
    )


@dataclass
class IngestResult:
    created: list[int] = field(default_factory=list)  # ids (empty when written by COPY)
    created_count: int = 0
    unchanged: list[int] = field(default_factory=list)  # replays of known externalIds
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowWarning] = field(default_factory=list)
    total_cells: int = 0


@dataclass
class _Row:
    index: int
    data: ActivityInput
    quantity_milli: int = 0
    household_id: int | None = None
    values: dict[str, Any] = field(default_factory=dict)


def _same(existing: Any, row: _Row) -> bool:
    d = row.data
    return (
        existing.account_type == d.account_type
        and existing.account_id == d.account_id
        and existing.activity_type == d.activity_type
        and existing.quantity_milli == row.quantity_milli
        and existing.period_start == d.period_start
        and existing.period_end == d.period_end
        and existing.meter_ref == d.meter_ref
    )


async def ingest(
    db: Any,
    inputs: list[ActivityInput],
    *,
    today: date | Days,
    viewer: Viewer | None = None,
    recorded_by: str | None = None,
    library: FactorLibrary | None = None,
    use_copy: bool = False,
) -> IngestResult:
    """Validate and, if every row is valid, write ``inputs`` with their emissions and totals.

    ``viewer`` None means a trusted operator (the CLI); otherwise each row is authorised.
    With errors, nothing is written and ``result.errors`` says why, row by row. ``use_copy``
    writes the records with COPY on PostgreSQL (the bulk path; no ids come back). ``today``:
    the request's local days (a period must have ended on the account's local day; see
    Attribution.zone_of), or one day for every account."""
    local_days = as_days(today)
    result = IngestResult()
    rows = [_Row(i, d) for i, d in enumerate(inputs)]

    def fail(row: _Row, field_name: str, code: RecordErrorCode, message: str) -> None:
        result.errors.append(RowError(row.index, field_name, code, message))

    # 1. Each row on its own.
    for row in rows:
        d = row.data
        activity = ACTIVITY_TYPES.get(d.activity_type)
        if d.account_type not in {"Individual", "Household"}:
            fail(
                row,
                "accountId",
                RecordErrorCode.NOT_FOUND,
                "accountId must be an Individual or a Household",
            )
        if activity is None:
            fail(
                row,
                "activityType",
                RecordErrorCode.UNKNOWN_ACTIVITY_TYPE,
                f"unknown activity type {d.activity_type!r}; one of {', '.join(ACTIVITY_TYPES)}",
            )
        else:
            try:
                row.quantity_milli = to_canonical_milli(d.quantity, d.unit, activity)
                if row.quantity_milli < 0:
                    fail(
                        row,
                        "quantity",
                        RecordErrorCode.NEGATIVE_QUANTITY,
                        "quantity must not be negative",
                    )
            except UnitError as exc:
                code = (
                    RecordErrorCode.INVALID_QUANTITY
                    if "number" in str(exc)
                    else RecordErrorCode.UNKNOWN_UNIT
                )
                fail(
                    row,
                    "quantity" if code is RecordErrorCode.INVALID_QUANTITY else "unit",
                    code,
                    str(exc),
                )
        if d.period_end < d.period_start:
            fail(
                row, "periodEnd", RecordErrorCode.INVALID_PERIOD, "periodEnd is before periodStart"
            )
        elif (d.period_end - d.period_start).days > 366:
            fail(
                row, "periodEnd", RecordErrorCode.INVALID_PERIOD, "a record covers at most one year"
            )
        # Later than the latest local day anywhere: in the future whoever's account it is (the
        # account's own local day is checked once the account is known, below).
        if d.period_end > local_days.latest:
            fail(
                row,
                "periodEnd",
                RecordErrorCode.FUTURE_PERIOD,
                "the period has not ended yet: record it when it has",
            )
        if d.source not in SOURCES:
            fail(row, "source", RecordErrorCode.INVALID, f"source is one of {', '.join(SOURCES)}")
        if d.data_quality not in DATA_QUALITIES:
            fail(
                row,
                "dataQuality",
                RecordErrorCode.INVALID,
                f"dataQuality is one of {', '.join(DATA_QUALITIES)}",
            )
    if result.errors:
        return result

    # 2. Idempotency: rows whose externalId is known are replays (or conflicts).
    external = [r.data.external_id for r in rows if r.data.external_id]
    if len(set(external)) != len(external):
        seen: set[str] = set()
        for row in rows:
            if row.data.external_id in seen:
                fail(
                    row,
                    "externalId",
                    RecordErrorCode.EXTERNAL_ID_CONFLICT,
                    "externalId appears twice in this batch",
                )
            seen.add(row.data.external_id or "")
        return result
    # What is read from here on (known externalIds, recorded periods of each meter) decides
    # what is written: writers of one account take turns (locks.py), never check-then-insert.
    await lock_accounts(
        db,
        (r.data.account_id for r in rows if r.data.account_type == "Individual"),
        (r.data.account_id for r in rows if r.data.account_type == "Household"),
    )
    known: dict[str, Any] = {}
    for start in range(0, len(external), 1000):
        chunk = external[start : start + 1000]
        for existing in await db.execute(sa.select(R).where(R.c.external_id.in_(chunk))):
            known[existing.external_id] = existing

    # 3. Accounts, authorization, attribution — for replays too: a replay answers with the
    # stored record, so it needs the right to record it, and it is judged before the
    # externalId is compared, so someone else's externalId answers like an unknown account.
    individual_ids = {r.data.account_id for r in rows if r.data.account_type == "Individual"}
    household_ids = {r.data.account_id for r in rows if r.data.account_type == "Household"}
    individuals = {}
    if individual_ids:
        individuals = {
            row.id: row
            for row in await db.execute(
                sa.select(I.c.id, I.c.archived_at).where(I.c.id.in_(individual_ids))
            )
        }
    attribution = await Attribution.load(db, individual_ids, household_ids)
    all_households = set(household_ids) | {
        h for periods in attribution.memberships.values() for _, _, h in periods
    }
    households = {}
    if all_households:
        households = {
            row.id: row
            for row in await db.execute(
                sa.select(H.c.id, H.c.path, H.c.archived_at, C.c.region_code)
                .select_from(H.join(C, C.c.id == H.c.community_id))
                .where(H.c.id.in_(all_households))
            )
        }
    if any(r.data.external_id not in known for r in rows):
        library = library or await FactorLibrary.load(db)

    fresh: list[_Row] = []
    for row in rows:
        d = row.data
        if d.account_type == "Individual":
            account = individuals.get(d.account_id)
            row.household_id = attribution.household_on(d.account_id, d.period_start)
        else:
            account = households.get(d.account_id)
            row.household_id = d.account_id
        if account is None:
            fail(row, "accountId", RecordErrorCode.NOT_FOUND, "no such account")
            continue
        if viewer is not None and not viewer.can_record_activity(
            _target(d, row.household_id, households, attribution)
        ):
            known_tenant = viewer.may_know_exists(
                _target(d, row.household_id, households, attribution)
            )
            fail(
                row,
                "accountId",
                RecordErrorCode.FORBIDDEN if known_tenant else RecordErrorCode.NOT_FOUND,
                "you may not record activity for this account"
                if known_tenant
                else "no such account",
            )
            continue
        if d.account_type == "Individual" and row.household_id is None:
            result.warnings.append(not_attributed(row.index, "periodStart", d.period_start))
        existing = known.get(d.external_id or "")
        if existing is not None:
            if _same(existing, row):
                result.unchanged.append(existing.id)
            else:
                fail(
                    row,
                    "externalId",
                    RecordErrorCode.EXTERNAL_ID_CONFLICT,
                    "externalId was recorded before with different values",
                )
            continue
        if d.period_end > local_days.on(
            attribution.zone_of(d.account_type, d.account_id, d.period_end)
        ):
            fail(
                row,
                "periodEnd",
                RecordErrorCode.FUTURE_PERIOD,
                "the period has not ended yet where the account lives: record it when it has",
            )
            continue
        if account.archived_at is not None:
            fail(row, "accountId", RecordErrorCode.ARCHIVED_ACCOUNT, "the account is archived")
            continue
        # Without a household on that day, the factor region falls back to the country.
        region = households[row.household_id].region_code if row.household_id else "CN"
        activity = ACTIVITY_TYPES[d.activity_type]
        try:
            assert library is not None  # loaded above whenever a row is not a replay
            emissions = compute(activity, row.quantity_milli, region, d.period_start, library)
        except NoFactor as exc:
            fail(row, "activityType", RecordErrorCode.NO_EMISSION_FACTOR, str(exc))
            continue
        row.values = {
            "account_type": d.account_type,
            "account_id": d.account_id,
            "household_id": row.household_id,
            "activity_type": d.activity_type,
            "quantity_milli": row.quantity_milli,
            "entered_quantity": str(d.quantity)[:40],
            "entered_unit": d.unit,
            "period_start": d.period_start,
            "period_end": d.period_end,
            "meter_ref": d.meter_ref,
            "source": d.source,
            "external_id": d.external_id,
            "data_quality": d.data_quality,
            "scope": emissions.scope,
            "category": emissions.category,
            "location_g": emissions.location_g,
            "market_g": emissions.market_g,
            "offset_g": emissions.offset_g,
            "factor_id": emissions.factor.id,
            "market_factor_id": emissions.market_factor.id if emissions.market_factor else None,
            "recorded_by": recorded_by,
            "recorded_at": utcnow(),
        }
        fresh.append(row)
    if result.errors or not fresh:
        return result

    # 4. Overlaps with the same meter, in the batch and in the database.
    await _check_overlaps(db, fresh, fail)
    if result.errors:
        return result

    # 5. Write records and totals.
    delta = TotalsDelta()
    for row in fresh:
        record = _RecordView(row.values)
        delta.add_record(
            attribution.targets(
                row.data.account_type, row.data.account_id, row.data.period_start, row.household_id
            ),
            record,
        )
    values = [row.values for row in fresh]
    if use_copy and _dialect(db) == "postgresql":
        await _copy_records(db, values)
    else:
        for start in range(0, len(values), 5000):
            ids = await db.execute(sa.insert(R).returning(R.c.id), values[start : start + 5000])
            result.created.extend(ids.scalars().all())
    result.created_count = len(values)
    result.total_cells = await delta.flush(db)
    return result


def _dialect(db: Any) -> str:
    return db.dialect if isinstance(db.dialect, str) else db.dialect.name


_COPY_COLUMNS = [c.name for c in R.columns if c.name != "id"]


async def _copy_records(conn: Any, values: list[dict[str, Any]]) -> None:
    """COPY … FROM STDIN through asyncpg, inside the caller's transaction. PostgreSQL refuses
    COPY FROM into a table under row-level security (unless the role bypasses it), so the rows
    go to a temporary table first and on with one INSERT … SELECT, which the policies check."""
    raw = (await conn.get_raw_connection()).driver_connection
    staging = f"staging_{R.name}"
    columns = ", ".join(_COPY_COLUMNS)
    # Same columns, no id (and so no draw on the id sequence), no constraints.
    await raw.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS "
        f"AS SELECT {columns} FROM {R.name} WITH NO DATA"
    )
    await raw.copy_records_to_table(
        staging,
        records=[tuple(v[c] for c in _COPY_COLUMNS) for v in values],
        columns=_COPY_COLUMNS,
    )
    await raw.execute(f"INSERT INTO {R.name} ({columns}) SELECT {columns} FROM {staging}")
    await raw.execute(f"TRUNCATE {staging}")


class _RecordView:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _target(
    d: ActivityInput, household_id: int | None, households: dict[int, Any], attribution: Attribution
) -> Target:
    if d.account_type == "Household":
        return Target((households[d.account_id].path,))
    paths = []
    # Someone without a household that day (e.g. archived) is judged by their last household.
    household_id = household_id or attribution.last_household(d.account_id)
    if household_id is not None:
        paths.append(individual_path(households[household_id].path, d.account_id))
    return Target(tuple(paths), individual_id=d.account_id)


async def _check_overlaps(db: Any, rows: list[_Row], fail: Any) -> None:
    def meter(d: ActivityInput) -> tuple[str, int, str, str | None]:
        return (d.account_type, d.account_id, d.activity_type, d.meter_ref)

    by_meter: dict[tuple[str, int, str, str | None], list[_Row]] = defaultdict(list)
    for row in rows:
        by_meter[meter(row.data)].append(row)
    # In the batch: sort each meter's rows and compare neighbours.
    for group in by_meter.values():
        group.sort(key=lambda r: r.data.period_start)
        for before, after in itertools.pairwise(group):
            if after.data.period_start <= before.data.period_end:
                fail(
                    after,
                    "periodStart",
                    RecordErrorCode.OVERLAPPING_PERIOD,
                    f"overlaps row {before.index} of the same meter",
                )
    # In the database: one statement per batch over the accounts and dates involved.
    low = min(r.data.period_start for r in rows)
    high = max(r.data.period_end for r in rows)
    for account_type in ("Individual", "Household"):
        ids = sorted({r.data.account_id for r in rows if r.data.account_type == account_type})
        if not ids:
            continue
        existing = await db.execute(
            sa.select(
                R.c.account_id, R.c.activity_type, R.c.meter_ref, R.c.period_start, R.c.period_end
            ).where(
                R.c.account_type == account_type,
                R.c.account_id.in_(ids),
                R.c.period_start <= high,
                R.c.period_end >= low,
            )
        )
        for account_id, activity_type, meter_ref, start, end in existing:
            for row in by_meter.get((account_type, account_id, activity_type, meter_ref), ()):
                if row.data.period_start <= end and row.data.period_end >= start:
                    fail(
                        row,
                        "periodStart",
                        RecordErrorCode.OVERLAPPING_PERIOD,
                        f"overlaps a recorded period {start}..{end} of the same meter",
                    )
