"""Low-carbon actions and credits in the graph."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa
import strawberry
from strawberry.file_uploads import Upload

from carbongraph import evidence as photos
from carbongraph import privacy
from carbongraph.actions import campaigns, catalog, review, rewards
from carbongraph.actions import record as service
from carbongraph.actions.catalog import A as ACTION_TYPES
from carbongraph.authz import Access, Target
from carbongraph.errors import Forbidden, MutationFailed, UserErrorCode, UserErrorData
from carbongraph.schema import policy
from carbongraph.schema.accounting import SuppressionReason
from carbongraph.schema.common import (
    MAX_PAGE,
    UserError,
    UserWarning,
    sized_field,
    user_errors_field,
    warnings_of,
)
from carbongraph.schema.mutation_support import run_mutation
from carbongraph.schema.relay import decode_global_id, to_global_id
from carbongraph.services import zones

MAX_BATCH = 10_000


@strawberry.type(description="A kind of low-carbon action and what it earns.")
class ActionTypeInfo:
    code: str
    version: int
    methodology: str
    name: str
    unit: str
    credits_per_unit: int
    avoided_grams_per_unit: int
    scope: str = strawberry.field(description="1, 2, 3 or 3+.")
    category: int
    employer_scope: str = strawberry.field(description="Reported this way via an employer.")
    employer_category: int
    daily_cap: int
    evidence: str = strawberry.field(description="NONE, PHOTO or PARTNER.")
    self_report_cap: int
    valid_from: date
    valid_to: date | None
    citation: str

    @classmethod
    def from_row(cls, r: Any) -> ActionTypeInfo:
        return cls(
            code=r.code,
            version=r.version,
            methodology=r.methodology,
            name=r.name,
            unit=r.unit,
            credits_per_unit=r.credits_per_unit,
            avoided_grams_per_unit=r.avoided_g_per_unit,
            scope=r.scope,
            category=r.category,
            employer_scope=r.employer_scope,
            employer_category=r.employer_category,
            daily_cap=r.daily_cap,
            evidence=r.evidence,
            self_report_cap=r.self_report_cap,
            valid_from=r.valid_from,
            valid_to=r.valid_to,
            citation=r.citation,
        )


async def action_types(info: strawberry.Info) -> list[ActionTypeInfo]:
    rows = await info.context.db.execute(
        sa.select(ACTION_TYPES).order_by(ACTION_TYPES.c.code, ACTION_TYPES.c.version.desc())
    )
    return [ActionTypeInfo.from_row(r) for r in rows]


@strawberry.type(description="An uploaded photo.")
class EvidenceInfo:
    id: strawberry.ID
    sha256: str
    content_type: str
    captured_at: datetime | None = strawberry.field(description="EXIF capture time, if any.")


@strawberry.type(description="A recorded low-carbon action.")
class ActionRecord:
    id: strawberry.ID
    individual_id: strawberry.ID
    action_type: str
    units: int
    occurred_on: date
    status: str
    source: str
    credits: int
    avoided_grams: int
    external_id: str | None
    reason: str | None
    created_at: datetime
    evidence: EvidenceInfo | None = None

    @classmethod
    def from_row(cls, r: Any) -> ActionRecord:
        photo = None
        if getattr(r, "sha256", None):
            photo = EvidenceInfo(
                id=strawberry.ID(to_global_id("Evidence", r.evidence_id)),
                sha256=r.sha256,
                content_type=r.content_type,
                captured_at=r.captured_at,
            )
        return cls(
            id=strawberry.ID(to_global_id("ActionRecord", r.id)),
            individual_id=strawberry.ID(to_global_id("Individual", r.individual_id)),
            action_type=r.code,
            units=r.units,
            occurred_on=r.occurred_on,
            status=r.status,
            source=r.source,
            credits=r.credits,
            avoided_grams=r.avoided_g,
            external_id=r.external_id,
            reason=r.reason,
            created_at=r.created_at,
            evidence=photo,
        )


@strawberry.type(description="One append-only entry of a credits ledger.")
class CreditEntry:
    id: strawberry.ID
    kind: str = strawberry.field(description="GRANT, REVERSAL, REDEMPTION or EXPIRY.")
    amount: int
    note: str | None
    created_at: datetime


@strawberry.type(description="A person's credits: the balance is the sum of the ledger.")
class Credits:
    balance: int
    individual_id: strawberry.Private[int]

    @sized_field(MAX_PAGE, "Newest first; `after` is an entry ID's cursor.", slicing=("first",))
    async def ledger(
        self, info: strawberry.Info, first: int = 20, after: str | None = None
    ) -> list[CreditEntry]:
        first = max(0, min(first, info.context.settings.max_page_size))
        before = decode_global_id(after, ["CreditEntry"])[1] if after else None
        rows = await info.context.loaders.credit_ledger.load((self.individual_id, first, before))
        return [
            CreditEntry(
                id=strawberry.ID(to_global_id("CreditEntry", r.id)),
                kind=r.kind,
                amount=r.amount,
                note=r.note,
                created_at=r.created_at,
            )
            for r in rows
        ]


async def credits_of(info: Any, individual_id: int) -> Credits:
    return Credits(
        balance=await info.context.loaders.credit_balance.load(individual_id),
        individual_id=individual_id,
    )


@strawberry.input
class RecordActionInput:
    individual_id: strawberry.ID
    action_type: str = strawberry.field(description="A code from `actionTypes`.")
    units: int = 1
    occurred_on: date
    external_id: str | None = strawberry.field(
        default=None, description="Idempotency key: a replay changes nothing."
    )
    evidence_id: strawberry.ID | None = strawberry.field(
        default=None, description="An uploaded photo, for actions that need one."
    )


@strawberry.input
class RecordActionsInput:
    actions: list[RecordActionInput]


@strawberry.type
class RecordActionsPayload:
    # One per input action (up to MAX_BATCH); priced as a page: the input is the work.
    actions: list[ActionRecord] = sized_field(MAX_PAGE)
    created_count: int
    unchanged_count: int
    warnings: list[UserWarning] = sized_field(
        MAX_PAGE, description="Accepted actions worth a second look (e.g. NOT_ATTRIBUTED)."
    )
    user_errors: list[UserError] = user_errors_field()


def _evidence_pk(value: strawberry.ID | None, index: int) -> int | None:
    if value is None:
        return None
    try:
        return decode_global_id(value, ["Evidence"])[1]
    except Exception as exc:
        raise MutationFailed.single(
            ["input", "actions", str(index), "evidenceId"],
            UserErrorCode.INVALID_EVIDENCE,
            "evidenceId is not an Evidence ID.",
        ) from exc


async def _record(
    info: Any, items: list[RecordActionInput], *, verified_only: bool = False
) -> RecordActionsPayload:
    ctx = info.context
    outcome: dict[str, Any] = {}

    async def action() -> list[Any]:
        if not items or len(items) > MAX_BATCH:
            raise MutationFailed.single(
                ["input", "actions"], UserErrorCode.INVALID, f"Give 1 to {MAX_BATCH} actions."
            )
        inputs = []
        for n, item in enumerate(items):
            try:
                _, pk = decode_global_id(item.individual_id, ["Individual"])
            except Exception as exc:
                raise MutationFailed.single(
                    ["input", "actions", str(n), "individualId"],
                    UserErrorCode.NOT_FOUND,
                    "individualId is not an Individual ID.",
                ) from exc
            inputs.append(
                service.ActionInput(
                    pk,
                    item.action_type,
                    item.units,
                    item.occurred_on,
                    item.external_id,
                    _evidence_pk(item.evidence_id, n),
                )
            )
        result = await service.record_actions(
            ctx.db,
            inputs,
            today=ctx.days,
            viewer=ctx.viewer,
            recorded_by=ctx.viewer.subject,
            verified_only=verified_only,
        )
        if result.errors:
            raise MutationFailed(
                [
                    UserErrorData(
                        ["input", "actions", str(e.index), e.field],
                        e.message,
                        UserErrorCode(e.code),
                    )
                    for e in result.errors
                ]
            )
        outcome["created"], outcome["unchanged"] = len(result.created), len(result.unchanged)
        outcome["warnings"] = warnings_of(["input", "actions"], result.warnings)
        ids = result.created + result.unchanged
        rows = (
            list(
                await ctx.db.execute(
                    sa.select(
                        service.AR,
                        ACTION_TYPES.c.code,
                        service.EV.c.sha256,
                        service.EV.c.content_type,
                        service.EV.c.captured_at,
                    )
                    .join(ACTION_TYPES, ACTION_TYPES.c.id == service.AR.c.action_type_id)
                    .outerjoin(service.EV, service.EV.c.id == service.AR.c.evidence_id)
                    .where(service.AR.c.id.in_(ids))
                    .order_by(service.AR.c.id)
                )
            )
            if len(ids) <= 1000
            else []
        )
        return rows

    rows, errors = await run_mutation(info, action)
    return RecordActionsPayload(
        actions=[ActionRecord.from_row(r) for r in rows or []],
        created_count=outcome.get("created", 0),
        unchanged_count=outcome.get("unchanged", 0),
        warnings=outcome.get("warnings", []) if not errors else [],
        user_errors=errors,
    )


@strawberry.input
class UploadEvidenceInput:
    individual_id: strawberry.ID
    file: Upload = strawberry.field(description="JPEG, PNG or WebP, at most 5 MB.")


@strawberry.type
class UploadEvidencePayload:
    evidence: EvidenceInfo | None
    user_errors: list[UserError] = user_errors_field()


@strawberry.enum
class ReviewDecision(Enum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"


@strawberry.input
class ReviewActionInput:
    action_id: strawberry.ID
    decision: ReviewDecision
    reason: str | None = strawberry.field(default=None, description="Required to reject.")


@strawberry.type
class ReviewActionPayload:
    action: ActionRecord | None
    user_errors: list[UserError] = user_errors_field()


async def _decide(info: Any, input: ReviewActionInput, decide: Any) -> ReviewActionPayload:
    """Run a manager's decision on one action; the payload shows the action afterwards."""
    ctx = info.context

    async def action() -> Any:
        try:
            _, pk = decode_global_id(input.action_id, ["ActionRecord"])
        except Exception as exc:
            raise MutationFailed.single(
                ["input", "actionId"],
                UserErrorCode.NOT_FOUND,
                "actionId is not an ActionRecord ID.",
            ) from exc
        await decide(ctx.db, ctx.viewer, pk)
        return await _action_row(ctx.db, pk)

    row, errors = await run_mutation(info, action)
    return ReviewActionPayload(
        action=ActionRecord.from_row(row) if row else None, user_errors=errors
    )


async def _action_row(db: Any, pk: int) -> Any:
    return (
        await db.execute(
            sa.select(
                service.AR,
                ACTION_TYPES.c.code,
                service.EV.c.sha256,
                service.EV.c.content_type,
                service.EV.c.captured_at,
            )
            .join(ACTION_TYPES, ACTION_TYPES.c.id == service.AR.c.action_type_id)
            .outerjoin(service.EV, service.EV.c.id == service.AR.c.evidence_id)
            .where(service.AR.c.id == pk)
        )
    ).one()


async def review_queue(
    info: Any,
    community_id: strawberry.ID,
    status: str,
    action_type: str | None,
    first: int,
    after: str | None,
) -> list[ActionRecord]:
    from carbongraph.schema.hierarchy import CommunityNode

    community = await CommunityNode.fetch(info, decode_global_id(community_id, ["Community"])[1])
    if not info.context.viewer.can_manage(Target((community.path,))):
        raise Forbidden("Only the community's managers see its review queue.")
    after_pk = decode_global_id(after, ["ActionRecord"])[1] if after else None
    first = max(0, min(first, info.context.settings.max_page_size))
    rows = await info.context.db.execute(
        review.queue_statement(community.path, status, action_type, after_pk, first)
    )
    return [ActionRecord.from_row(r) for r in rows]


@strawberry.type
class ActionMutations:
    @strawberry.mutation(
        description="Upload a photo of an action (GraphQL multipart request; send the "
        "'X-Carbongraph-Preflight: 1' header). The same photo is accepted once, ever."
    )
    async def upload_evidence(
        self, info: strawberry.Info, input: UploadEvidenceInput
    ) -> UploadEvidencePayload:
        ctx = info.context

        async def action() -> Any:
            try:
                _, pk = decode_global_id(input.individual_id, ["Individual"])
            except Exception as exc:
                raise MutationFailed.single(
                    ["input", "individualId"],
                    UserErrorCode.NOT_FOUND,
                    "individualId is not an Individual ID.",
                ) from exc
            from carbongraph.services.hierarchy import load_target

            person = await load_target(
                ctx, "Individual", pk, ["input", "individualId"], manage=False
            )
            data = await input.file.read(photos.MAX_BYTES + 1)
            store = photos.store_from_env()
            return await review.upload_evidence(ctx.db, ctx.viewer, person.target, pk, data, store)

        row, errors = await run_mutation(info, action)
        evidence = None
        if row is not None:
            evidence = EvidenceInfo(
                id=strawberry.ID(to_global_id("Evidence", row.id)),
                sha256=row.sha256,
                content_type=row.content_type,
                captured_at=row.captured_at,
            )
        return UploadEvidencePayload(evidence=evidence, user_errors=errors)

    @strawberry.mutation(
        description="Reverse an approved action (e.g. found to be false): its credits come back "
        "out as a REVERSAL entry and its reductions leave the roll-up."
    )
    async def reverse_action(
        self, info: strawberry.Info, input: ReviewActionInput
    ) -> ReviewActionPayload:
        return await _decide(
            info, input, lambda db, viewer, pk: review.reverse_action(db, viewer, pk, input.reason)
        )

    @strawberry.mutation(description="A community manager approves or rejects a pending action.")
    async def review_action(
        self, info: strawberry.Info, input: ReviewActionInput
    ) -> ReviewActionPayload:
        approve = input.decision is ReviewDecision.APPROVE
        return await _decide(
            info,
            input,
            lambda db, viewer, pk: review.review_action(db, viewer, pk, approve, input.reason),
        )

    @strawberry.mutation(
        description="Record a low-carbon action for yourself (or, for managers and partner "
        "services, for someone in their subtree). Approved actions earn credits at once."
    )
    async def record_action(
        self, info: strawberry.Info, input: RecordActionInput
    ) -> RecordActionsPayload:
        return await _record(info, [input])

    @strawberry.mutation(
        description=f"Partner services post verified actions in bulk (up to {MAX_BATCH}), all "
        "or nothing, idempotent by externalId. Only for people a PARTNER_SERVICE grant (or API "
        "key) of the caller covers; any other action is refused with FORBIDDEN. Lists the "
        "actions when at most 1,000."
    )
    async def record_verified_actions(
        self, info: strawberry.Info, input: RecordActionsInput
    ) -> RecordActionsPayload:
        return await _record(info, input.actions, verified_only=True)


@strawberry.type(description="Something a community or enterprise offers for credits.")
class RewardInfo:
    id: strawberry.ID
    name: str
    cost_credits: int
    stock: int
    valid_from: date
    valid_to: date | None

    @classmethod
    def from_row(cls, r: Any) -> RewardInfo:
        return cls(
            id=strawberry.ID(to_global_id("Reward", r.id)),
            name=r.name,
            cost_credits=r.cost_credits,
            stock=r.stock,
            valid_from=r.valid_from,
            valid_to=r.valid_to,
        )


@strawberry.input
class CreateRewardInput:
    owner_id: strawberry.ID = strawberry.field(description="A Community or an Enterprise.")
    name: str
    cost_credits: int
    stock: int
    valid_from: date
    valid_to: date | None = None


@strawberry.type
class CreateRewardPayload:
    reward: RewardInfo | None
    user_errors: list[UserError] = user_errors_field()


@strawberry.input
class RedeemRewardInput:
    reward_id: strawberry.ID
    idempotency_key: str = strawberry.field(
        description="Chosen by the client; retrying with it never spends twice."
    )


@strawberry.type
class Redemption:
    id: strawberry.ID
    reward_id: strawberry.ID
    created_at: datetime


@strawberry.type
class RedeemRewardPayload:
    redemption: Redemption | None
    balance: int | None
    user_errors: list[UserError] = user_errors_field()


async def _owner(
    info: Any, owner_id: strawberry.ID, field: str, managed_for: str | None = None
) -> tuple[str, int, Any]:
    """A Community or Enterprise from mutation input; with ``managed_for``, the viewer must
    manage it (FORBIDDEN otherwise: "Only its managers {managed_for} here.")."""
    from carbongraph.services.hierarchy import load_target

    try:
        type_name, pk = decode_global_id(owner_id, ["Community", "Enterprise"])
    except Exception as exc:
        raise MutationFailed.single(
            ["input", field],
            UserErrorCode.NOT_FOUND,
            f"{field} is not a Community or Enterprise ID.",
        ) from exc
    row = await load_target(info.context, type_name, pk, ["input", field], manage=False)
    if managed_for and not info.context.viewer.can_manage(Target((row.path,))):
        raise MutationFailed.single(
            ["input", field], UserErrorCode.FORBIDDEN, f"Only its managers {managed_for} here."
        )
    return type_name, pk, row


async def _owned_rows(info: Any, owner_id: strawberry.ID, table: sa.Table) -> list[Any]:
    """Rows of ``table`` owned by a Community or Enterprise the viewer can see."""
    from carbongraph.schema.hierarchy import NODE_TYPES

    type_name, pk = decode_global_id(owner_id, ["Community", "Enterprise"])
    await NODE_TYPES[type_name].fetch(info, pk)  # NOT_FOUND / FORBIDDEN for strangers
    return list(
        await info.context.db.execute(
            sa.select(table)
            .where(table.c.owner_type == type_name, table.c.owner_id == pk)
            .order_by(table.c.id)
        )
    )


async def rewards_of(info: Any, owner_id: strawberry.ID) -> list[RewardInfo]:
    return [RewardInfo.from_row(r) for r in await _owned_rows(info, owner_id, rewards.RW)]


@strawberry.type
class RewardMutations:
    @strawberry.mutation(description="Offer a reward (managers of the community or enterprise).")
    async def create_reward(
        self, info: strawberry.Info, input: CreateRewardInput
    ) -> CreateRewardPayload:
        async def action() -> Any:
            type_name, pk, row = await _owner(info, input.owner_id, "ownerId", "offer rewards")
            return await rewards.create_reward(
                info.context.db,
                owner_type=type_name,
                owner_id=pk,
                owner_path=row.path,
                name=input.name,
                cost_credits=input.cost_credits,
                stock=input.stock,
                valid_from=input.valid_from,
                valid_to=input.valid_to,
            )

        row, errors = await run_mutation(info, action)
        return CreateRewardPayload(
            reward=RewardInfo.from_row(row) if row else None, user_errors=errors
        )

    @strawberry.mutation(
        description="Spend your own credits on a reward: atomic, never overdrawn, never "
        "oversold; the same idempotencyKey returns the same redemption."
    )
    async def redeem_reward(
        self, info: strawberry.Info, input: RedeemRewardInput
    ) -> RedeemRewardPayload:
        ctx = info.context
        viewer = ctx.viewer
        holder: dict[str, int] = {}

        async def action() -> Any:
            residents = [g for g in viewer.grants if g.role.value == "RESIDENT"]
            if len(residents) != 1:
                raise MutationFailed.single(
                    ["input"],
                    UserErrorCode.FORBIDDEN,
                    "Only the account holder redeems their credits.",
                )
            try:
                _, reward_pk = decode_global_id(input.reward_id, ["Reward"])
            except Exception as exc:
                raise MutationFailed.single(
                    ["input", "rewardId"], UserErrorCode.NOT_FOUND, "rewardId is not a Reward ID."
                ) from exc
            holder["id"] = residents[0].node_id
            return await rewards.redeem(
                ctx.db,
                individual_id=residents[0].node_id,
                reward_id=reward_pk,
                idempotency_key=input.idempotency_key,
                home_path=residents[0].path,
                # On offer by the calendar of the redeemer's community.
                today=ctx.days.on(await zones.zone_of_path(ctx.db, residents[0].path)),
                by=viewer.subject,
            )

        row, errors = await run_mutation(info, action)
        if row is None:
            return RedeemRewardPayload(redemption=None, balance=None, user_errors=errors)
        return RedeemRewardPayload(
            redemption=Redemption(
                id=strawberry.ID(to_global_id("Redemption", row.id)),
                reward_id=strawberry.ID(to_global_id("Reward", row.reward_id)),
                created_at=row.created_at,
            ),
            balance=await service.balance(ctx.db, holder["id"]),
            user_errors=[],
        )


@strawberry.type(
    description="Withheld (nulls, `suppressed: true`) from viewers outside the owner's "
    "management when fewer than k people took part, or as the complement of such a group "
    "(docs/privacy.md)."
)
class CampaignProgress:
    suppressed: bool
    suppression_reason: SuppressionReason | None
    avoided_grams: int | None
    participants: int | None
    percent_of_goal: float | None


@strawberry.type(description="One place on a campaign's board; ties share a rank.")
class CampaignStanding:
    rank: int
    name: str = strawberry.field(description="A pseudonym unless you may see people's names.")
    individual_id: strawberry.ID | None = strawberry.field(
        description="Null when the viewer may not see who it is."
    )
    avoided_grams: int | None = strawberry.field(
        description="Null (`suppressed`) unless the viewer may see this person: one person is "
        "always a small cell."
    )
    suppressed: bool


@strawberry.type(description="A time-boxed push for eligible actions towards a goal.")
class CampaignInfo:
    id: strawberry.ID
    name: str
    starts_on: date
    ends_on: date
    action_types: list[str]
    goal_kind: str = strawberry.field(description="KG_CO2E or PARTICIPANTS.")
    goal_value: int
    bonus_percent: int = strawberry.field(description="Credits multiplier; 100 is none.")
    row: strawberry.Private[Any]

    @classmethod
    def from_row(cls, r: Any) -> CampaignInfo:
        return cls(
            id=strawberry.ID(to_global_id("Campaign", r.id)),
            name=r.name,
            starts_on=r.starts_on,
            ends_on=r.ends_on,
            action_types=r.action_types.split(","),
            goal_kind=r.goal_kind,
            goal_value=r.goal_value,
            bonus_percent=r.bonus_percent,
            row=r,
        )

    @strawberry.field
    async def progress(self, info: strawberry.Info) -> CampaignProgress:
        ctx = info.context
        p = await ctx.loaders.campaign_progress.load(self.row)
        access = policy.level(info, Target((self.row.owner_path,)))
        reason = None
        if not privacy.exempt(access, ctx.settings.small_cell_k):
            # The participants are cells like a footprint's people: small cells, and the
            # complements that would give one back from a campaign of the same window and
            # action types higher up (docs/privacy.md).
            root, people = await campaigns.participation(ctx.db, self.row)
            reason = privacy.people_cell(
                access, ctx.settings.small_cell_k, self.row.owner_path, root, people
            )
        if reason is not None:
            return CampaignProgress(
                suppressed=True,
                suppression_reason=reason,
                avoided_grams=None,
                participants=None,
                percent_of_goal=None,
            )
        return CampaignProgress(
            suppressed=False,
            suppression_reason=None,
            avoided_grams=p.avoided_g,
            participants=p.participants,
            percent_of_goal=p.percent_of_goal,
        )

    @sized_field(MAX_PAGE, slicing=("first",))
    async def top_participants(
        self, info: strawberry.Info, first: int = 10
    ) -> list[CampaignStanding]:
        first = max(0, min(first, info.context.settings.max_page_size))
        standings = await info.context.loaders.campaign_standings.load((self.row, first))
        names: dict[int, Any] = {}
        manages = self._manages(info)
        # Names only for viewers with personal access to the whole board's owner.
        if manages:
            rows = await info.context.loaders.individual.load_many(
                [s.individual_id for s in standings]
            )
            names = {r.id: r for r in rows if r is not None}
        return [
            CampaignStanding(
                rank=s.rank,
                name=names[s.individual_id].display_name
                if s.individual_id in names
                else campaigns.pseudonym(self.row.id, s.individual_id),
                individual_id=strawberry.ID(to_global_id("Individual", s.individual_id))
                if s.individual_id in names
                else None,
                # A resident still sees their own figure; one person is always a small cell.
                avoided_grams=s.avoided_g if self._shown(info, manages, s.individual_id) else None,
                suppressed=not self._shown(info, manages, s.individual_id),
            )
            for s in standings
        ]

    def _manages(self, info: strawberry.Info) -> bool:
        return policy.level(info, Target((self.row.owner_path,))) >= Access.PERSONAL

    @staticmethod
    def _shown(info: strawberry.Info, manages: bool, individual_id: int) -> bool:
        return (
            manages
            or info.context.settings.small_cell_k <= 1
            or individual_id in info.context.viewer.resident_individual_ids
        )


@strawberry.input
class CreateCampaignInput:
    owner_id: strawberry.ID = strawberry.field(description="A Community or an Enterprise.")
    name: str
    starts_on: date
    ends_on: date
    action_types: list[str]
    goal_kind: str = "KG_CO2E"
    goal_value: int = 100
    bonus_percent: int = 100


@strawberry.type
class CreateCampaignPayload:
    campaign: CampaignInfo | None
    user_errors: list[UserError] = user_errors_field()


async def campaigns_of(info: Any, owner_id: strawberry.ID) -> list[CampaignInfo]:
    rows = await _owned_rows(info, owner_id, campaigns.CP)
    return [CampaignInfo.from_row(r) for r in rows]


@strawberry.type
class CampaignMutations:
    @strawberry.mutation(description="Start a campaign (managers of the community/enterprise).")
    async def create_campaign(
        self, info: strawberry.Info, input: CreateCampaignInput
    ) -> CreateCampaignPayload:
        async def action() -> Any:
            type_name, pk, row = await _owner(info, input.owner_id, "ownerId", "run campaigns")
            return await campaigns.create_campaign(
                info.context.db,
                owner_type=type_name,
                owner_id=pk,
                owner_path=row.path,
                name=input.name,
                starts_on=input.starts_on,
                ends_on=input.ends_on,
                action_types=input.action_types,
                goal_kind=input.goal_kind,
                goal_value=input.goal_value,
                bonus_percent=input.bonus_percent,
            )

        row, errors = await run_mutation(info, action)
        return CreateCampaignPayload(
            campaign=CampaignInfo.from_row(row) if row else None, user_errors=errors
        )


@strawberry.input
class SetCreditPolicyInput:
    programme_id: strawberry.ID = strawberry.field(
        description="A top-level Enterprise, or a Community directly under the platform."
    )
    expiry_months: int | None = strawberry.field(
        default=None, description="Credits expire this long after they were granted; null: never."
    )


@strawberry.type
class CreditPolicyInfo:
    programme_id: strawberry.ID
    expiry_months: int | None


@strawberry.type
class SetCreditPolicyPayload:
    policy: CreditPolicyInfo | None
    user_errors: list[UserError] = user_errors_field()


@strawberry.type
class CreditPolicyMutations:
    @strawberry.mutation(description="Set a programme's credit expiry (its managers).")
    async def set_credit_policy(
        self, info: strawberry.Info, input: SetCreditPolicyInput
    ) -> SetCreditPolicyPayload:
        async def action() -> Any:
            type_name, pk, row = await _owner(info, input.programme_id, "programmeId")
            if type_name == "Community" and (row.enterprise_id or row.parent_id):
                raise MutationFailed.single(
                    ["input", "programmeId"],
                    UserErrorCode.INVALID,
                    "A programme is an enterprise or a community directly under the platform.",
                )
            if not info.context.viewer.can_manage(Target((row.path,))):
                raise MutationFailed.single(
                    ["input", "programmeId"],
                    UserErrorCode.FORBIDDEN,
                    "Only the programme's managers set its policy.",
                )
            if input.expiry_months is not None and not 1 <= input.expiry_months <= 120:
                raise MutationFailed.single(
                    ["input", "expiryMonths"],
                    UserErrorCode.INVALID,
                    "expiryMonths is between 1 and 120, or null.",
                )
            await rewards.set_credit_policy(
                info.context.db, type_name, pk, row.path, input.expiry_months
            )
            return CreditPolicyInfo(
                programme_id=input.programme_id, expiry_months=input.expiry_months
            )

        policy, errors = await run_mutation(info, action)
        return SetCreditPolicyPayload(policy=policy, user_errors=errors)


@strawberry.input(description="A new version of an action type (platform admins).")
class PublishActionTypeInput:
    code: str
    methodology: str
    name: str
    unit: str
    credits_per_unit: int
    avoided_grams_per_unit: int
    scope: str = strawberry.field(description="1, 2, 3 or 3+.")
    category: int = 0
    employer_scope: str = "3+"
    employer_category: int = 0
    daily_cap: int = 1
    evidence: str = strawberry.field(default="NONE", description="NONE, PHOTO or PARTNER.")
    self_report_cap: int = 0
    valid_from: date
    valid_to: date | None = None
    citation: str


@strawberry.type
class PublishActionTypePayload:
    action_type: ActionTypeInfo | None
    user_errors: list[UserError] = user_errors_field()


@strawberry.type
class CatalogMutations:
    @strawberry.mutation(
        description="Publish a new version of an action type (or a new type). Earlier versions "
        "stay for the actions recorded under them."
    )
    async def publish_action_type(
        self, info: strawberry.Info, input: PublishActionTypeInput
    ) -> PublishActionTypePayload:
        async def action() -> Any:
            if not info.context.viewer.is_platform_admin:
                raise MutationFailed.single(
                    ["input"], UserErrorCode.FORBIDDEN, "Only platform admins publish action types."
                )
            problems = []
            if input.scope not in {"1", "2", "3", "3+"}:
                problems.append(("scope", "scope is 1, 2, 3 or 3+"))
            if input.employer_scope not in {"1", "2", "3", "3+"}:
                problems.append(("employerScope", "employerScope is 1, 2, 3 or 3+"))
            if input.evidence not in {"NONE", "PHOTO", "PARTNER"}:
                problems.append(("evidence", "evidence is NONE, PHOTO or PARTNER"))
            for name in ("credits_per_unit", "avoided_grams_per_unit", "daily_cap"):
                if getattr(input, name) < 0 or (name == "daily_cap" and input.daily_cap == 0):
                    problems.append((name, f"{name} must be positive"))
            if not input.code.strip() or not input.citation.strip():
                problems.append(("citation", "code and citation are required"))
            if input.valid_to is not None and input.valid_to <= input.valid_from:
                problems.append(("validTo", "validTo must come after validFrom"))
            if problems:
                raise MutationFailed(
                    [UserErrorData(["input", f], m, UserErrorCode.INVALID) for f, m in problems]
                )
            return await catalog.publish_action_type(
                info.context.db,
                {
                    "code": input.code,
                    "methodology": input.methodology,
                    "name": input.name,
                    "unit": input.unit,
                    "credits_per_unit": input.credits_per_unit,
                    "avoided_g_per_unit": input.avoided_grams_per_unit,
                    "scope": input.scope,
                    "category": input.category,
                    "employer_scope": input.employer_scope,
                    "employer_category": input.employer_category,
                    "daily_cap": input.daily_cap,
                    "evidence": input.evidence,
                    "self_report_cap": input.self_report_cap,
                    "valid_from": input.valid_from,
                    "valid_to": input.valid_to,
                    "citation": input.citation,
                },
            )

        row, errors = await run_mutation(info, action)
        return PublishActionTypePayload(
            action_type=ActionTypeInfo.from_row(row) if row else None, user_errors=errors
        )
