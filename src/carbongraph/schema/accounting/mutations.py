"""Recording activity data and recalculating footprints."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
import strawberry

from carbongraph.accounting import reads
from carbongraph.accounting.ingest import ActivityInput, ingest
from carbongraph.errors import MutationFailed, UserErrorCode, UserErrorData
from carbongraph.models.accounting import ActivityRecord as ActivityRecordModel
from carbongraph.resolvers.context import Info
from carbongraph.schema.accounting.types import (
    ActivityRecord,
    ActivitySource,
    DataQuality,
    Footprint,
    PeriodInput,
    RollupPath,
)
from carbongraph.schema.common import (
    MAX_PAGE,
    UserError,
    UserWarning,
    sized_field,
    user_errors_field,
    warnings_of,
)
from carbongraph.schema.mutation_support import run_mutation
from carbongraph.schema.relay import decode_global_id

R = ActivityRecordModel.__table__
MAX_BATCH = 1000


@strawberry.input(description="One reading for an individual or a household's own meter.")
class RecordActivityInput:
    account_id: strawberry.ID = strawberry.field(description="An Individual or a Household.")
    activity_type: str = strawberry.field(description="See `activityTypes`, e.g. ELECTRICITY.")
    quantity: Decimal = strawberry.field(description='Not negative, e.g. "300".')
    unit: str = strawberry.field(description="kWh, MWh, m3, L, GJ, …")
    period_start: date
    period_end: date = strawberry.field(description="Inclusive; local days.")
    source: ActivitySource = ActivitySource.APP
    external_id: str | None = strawberry.field(
        default=None, description="Your idempotency key: replaying it changes nothing."
    )
    meter_ref: str | None = strawberry.field(
        default=None,
        description="Which meter or register; periods of one meter never overlap. `night` (or "
        "`valley`) is a time-of-use meter's night register, read by suggestions; record the "
        "other register (e.g. `day`) apart so that the two add up to the total.",
    )
    data_quality: DataQuality = DataQuality.METERED


@strawberry.input
class RecordActivitiesInput:
    records: list[RecordActivityInput]


@strawberry.type
class RecordActivitiesPayload:
    # One per input record (up to MAX_BATCH); priced as a page: the input is the work.
    records: list[ActivityRecord] = sized_field(
        MAX_PAGE, description="The records, in input order (replays return the stored record)."
    )
    created_count: int
    unchanged_count: int
    warnings: list[UserWarning] = sized_field(
        MAX_PAGE, description="Accepted records worth a second look (e.g. NOT_ATTRIBUTED)."
    )
    user_errors: list[UserError] = user_errors_field()


@strawberry.input
class RecalculateFootprintInput:
    node_id: strawberry.ID | None = strawberry.field(
        description="An Enterprise, Community, Household or Individual; null for the platform."
    )
    period: PeriodInput
    via: RollupPath = RollupPath.COMMUNITIES


@strawberry.type
class RecalculateFootprintPayload:
    examined_count: int
    changed_count: int
    footprint: Footprint | None
    user_errors: list[UserError] = user_errors_field()


NODE_LETTER = {"Enterprise": "E", "Community": "C", "Household": "H", "Individual": "I"}


def _to_activity(item: RecordActivityInput, index: int) -> ActivityInput:
    try:
        type_name, pk = decode_global_id(item.account_id, ["Individual", "Household"])
    except Exception as exc:
        raise MutationFailed.single(
            ["input", "records", str(index), "accountId"],
            UserErrorCode.NOT_FOUND,
            "accountId is not the ID of an Individual or Household.",
        ) from exc
    return ActivityInput(
        account_type=type_name,
        account_id=pk,
        activity_type=item.activity_type,
        quantity=f"{item.quantity:f}",
        unit=item.unit,
        period_start=item.period_start,
        period_end=item.period_end,
        source=item.source.value,
        external_id=item.external_id,
        meter_ref=item.meter_ref,
        data_quality=item.data_quality.value,
    )


async def _record(info: Info, items: list[RecordActivityInput]) -> RecordActivitiesPayload:
    ctx = info.context
    counts: dict[str, Any] = {"created": 0, "unchanged": 0, "warnings": []}

    async def action() -> list[Any]:
        if not items:
            raise MutationFailed.single(
                ["input", "records"], UserErrorCode.REQUIRED, "Give at least one record."
            )
        if len(items) > MAX_BATCH:
            raise MutationFailed.single(
                ["input", "records"],
                UserErrorCode.INVALID,
                f"At most {MAX_BATCH} records per call; use "
                "`carbongraph import activities` for bulk loads.",
            )
        inputs = [_to_activity(item, i) for i, item in enumerate(items)]
        result = await ingest(
            ctx.db, inputs, today=ctx.days, viewer=ctx.viewer, recorded_by=ctx.viewer.subject
        )
        if result.errors:
            raise MutationFailed(
                [
                    UserErrorData(
                        ["input", "records", str(e.index), e.field],
                        e.message,
                        UserErrorCode(e.code.value),
                    )
                    for e in result.errors
                ]
            )
        counts["created"], counts["unchanged"] = len(result.created), len(result.unchanged)
        counts["warnings"] = warnings_of(["input", "records"], result.warnings)
        ids = result.created + result.unchanged
        rows = {r.id: r for r in await ctx.db.execute(sa.select(R).where(R.c.id.in_(ids)))}
        # Input order: replays are matched back by externalId.
        by_external = {r.external_id: r for r in rows.values() if r.external_id}
        created = iter(result.created)
        ordered = []
        for item in inputs:
            known = by_external.get(item.external_id) if item.external_id else None
            ordered.append(known if known is not None else rows[next(created)])
        return ordered

    rows, errors = await run_mutation(info, action)
    return RecordActivitiesPayload(
        records=[ActivityRecord.from_row(r) for r in rows or []],
        created_count=counts["created"] if rows else 0,
        unchanged_count=counts["unchanged"] if rows else 0,
        warnings=counts["warnings"] if rows else [],
        user_errors=errors,
    )


async def _recalculate(info: Info, input: RecalculateFootprintInput) -> RecalculateFootprintPayload:
    ctx = info.context
    span = input.period.to_period()
    counts = {"examined": 0, "changed": 0}

    async def action() -> tuple[str, int, str]:
        if input.node_id is None:
            if not ctx.viewer.is_platform_admin:
                raise MutationFailed.single(
                    ["input", "nodeId"],
                    UserErrorCode.FORBIDDEN,
                    "Only platform admins recalculate the platform.",
                )
            key: tuple[str, int, str] = ("P", 0, "")
        else:
            try:
                type_name, pk = decode_global_id(input.node_id, list(NODE_LETTER))
            except Exception as exc:
                raise MutationFailed.single(
                    ["input", "nodeId"], UserErrorCode.NOT_FOUND, "nodeId is not a node ID."
                ) from exc
            from carbongraph.services.hierarchy import load_target

            await load_target(ctx.caller, type_name, pk, ["input", "nodeId"])
            via = input.via.value if type_name == "Enterprise" else ""
            key = (NODE_LETTER[type_name], pk, via)
        counts["examined"], counts["changed"] = await reads.recalculate(ctx.db, key, span)
        ctx.loaders.footprint.clear_all()
        return key

    key, errors = await run_mutation(info, action)
    footprint = None
    if key is not None:
        data = await ctx.loaders.footprint.load((key, span))
        footprint = Footprint.build(key, span, data)
    return RecalculateFootprintPayload(
        examined_count=counts["examined"],
        changed_count=counts["changed"],
        footprint=footprint,
        user_errors=errors,
    )


@strawberry.type
class AccountingMutations:
    @strawberry.mutation(description="Record one activity (consumption or clean energy).")
    async def record_activity(
        self, info: Info, input: RecordActivityInput
    ) -> RecordActivitiesPayload:
        return await _record(info, [input])

    @strawberry.mutation(
        description=f"Record up to {MAX_BATCH} activities at once, all or nothing."
    )
    async def record_activities(
        self, info: Info, input: RecordActivitiesInput
    ) -> RecordActivitiesPayload:
        return await _record(info, input.records)

    @strawberry.mutation(
        description="Recompute the records under a node in a period with today's factor "
        "selection (e.g. after a new factor version), moving the totals by the difference."
    )
    async def recalculate_footprint(
        self, info: Info, input: RecalculateFootprintInput
    ) -> RecalculateFootprintPayload:
        return await _recalculate(info, input)
