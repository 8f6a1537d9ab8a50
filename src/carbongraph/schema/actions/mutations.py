"""Mutations of actions, rewards, campaigns, credit policies and the action catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import Enum
from typing import Any

import sqlalchemy as sa
import strawberry
from strawberry.file_uploads import Upload
from strawberry.types.base import get_object_definition

from carbongraph import evidence as photos
from carbongraph.actions import campaigns, catalog, review, rewards
from carbongraph.actions import record as service
from carbongraph.actions.catalog import A as ACTION_TYPES
from carbongraph.authz import Target
from carbongraph.errors import MutationFailed, UserErrorCode, UserErrorData
from carbongraph.resolvers.context import Info
from carbongraph.schema.accounting.types import GhgScope
from carbongraph.schema.actions.types import (
    ActionRecord,
    ActionTypeInfo,
    CampaignGoalKind,
    CampaignInfo,
    CreditPolicyInfo,
    EvidenceContentType,
    EvidenceInfo,
    EvidenceKind,
    Redemption,
    RewardInfo,
    _action_row,
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
from carbongraph.schema.relay import decode_global_id, to_global_id
from carbongraph.services import zones

MAX_BATCH = 10_000


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


def _record_action_from_input(cls: type, value: Mapping[str, Any], context: Any) -> Any:
    """Strawberry's hook for building an input value (``from_input``): every field is a
    scalar graphql-core has already coerced (and a default it published filled in), so it
    maps names only. Strawberry's generic conversion resolved each field's type again for
    every item: ~40% of a 10,000-action recordVerifiedActions request."""
    return cls(
        individual_id=value["individualId"],
        action_type=value["actionType"],
        units=value.get("units", 1),
        occurred_on=value["occurredOn"],
        external_id=value.get("externalId"),
        evidence_id=value.get("evidenceId"),
    )


get_object_definition(RecordActionInput, strict=True).from_input = _record_action_from_input


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
    info: Info, items: list[RecordActionInput], *, verified_only: bool = False
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


async def _decide(info: Info, input: ReviewActionInput, decide: Any) -> ReviewActionPayload:
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


@strawberry.type
class ActionMutations:
    @strawberry.mutation(
        description="Upload a photo of an action (GraphQL multipart request; send the "
        "'X-Carbongraph-Preflight: 1' header). The same photo is accepted once, ever."
    )
    async def upload_evidence(
        self, info: Info, input: UploadEvidenceInput
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
                ctx.caller, "Individual", pk, ["input", "individualId"], manage=False
            )
            # A Starlette UploadFile at run time; strawberry types Upload as bytes.
            data = await input.file.read(photos.MAX_BYTES + 1)  # type: ignore[attr-defined]
            store = photos.store_from_env()
            return await review.upload_evidence(ctx.db, ctx.viewer, person.target, pk, data, store)

        row, errors = await run_mutation(info, action)
        evidence = None
        if row is not None:
            evidence = EvidenceInfo(
                id=strawberry.ID(to_global_id("Evidence", row.id)),
                sha256=row.sha256,
                content_type=EvidenceContentType(row.content_type),
                captured_at=row.captured_at,
            )
        return UploadEvidencePayload(evidence=evidence, user_errors=errors)

    @strawberry.mutation(
        description="Reverse an approved action (e.g. found to be false): its credits come back "
        "out as a REVERSAL entry and its reductions leave the roll-up."
    )
    async def reverse_action(self, info: Info, input: ReviewActionInput) -> ReviewActionPayload:
        return await _decide(
            info, input, lambda db, viewer, pk: review.reverse_action(db, viewer, pk, input.reason)
        )

    @strawberry.mutation(description="A community manager approves or rejects a pending action.")
    async def review_action(self, info: Info, input: ReviewActionInput) -> ReviewActionPayload:
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
    async def record_action(self, info: Info, input: RecordActionInput) -> RecordActionsPayload:
        return await _record(info, [input])

    @strawberry.mutation(
        description=f"Partner services post verified actions in bulk (up to {MAX_BATCH}), all "
        "or nothing, idempotent by externalId. Only for people a PARTNER_SERVICE grant (or API "
        "key) of the caller covers; any other action is refused with FORBIDDEN. Lists the "
        "actions when at most 1,000."
    )
    async def record_verified_actions(
        self, info: Info, input: RecordActionsInput
    ) -> RecordActionsPayload:
        return await _record(info, input.actions, verified_only=True)


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
class RedeemRewardPayload:
    redemption: Redemption | None
    balance: int | None
    user_errors: list[UserError] = user_errors_field()


async def _owner(
    info: Info, owner_id: strawberry.ID, field: str, managed_for: str | None = None
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
    row = await load_target(info.context.caller, type_name, pk, ["input", field], manage=False)
    if managed_for and not info.context.viewer.can_manage(Target((row.path,))):
        raise MutationFailed.single(
            ["input", field], UserErrorCode.FORBIDDEN, f"Only its managers {managed_for} here."
        )
    return type_name, pk, row


@strawberry.type
class RewardMutations:
    @strawberry.mutation(description="Offer a reward (managers of the community or enterprise).")
    async def create_reward(self, info: Info, input: CreateRewardInput) -> CreateRewardPayload:
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
    async def redeem_reward(self, info: Info, input: RedeemRewardInput) -> RedeemRewardPayload:
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


@strawberry.input
class CreateCampaignInput:
    owner_id: strawberry.ID = strawberry.field(description="A Community or an Enterprise.")
    name: str
    starts_on: date
    ends_on: date
    action_types: list[str]
    goal_kind: CampaignGoalKind = CampaignGoalKind.KG_CO2E
    goal_value: int = 100
    bonus_percent: int = 100


@strawberry.type
class CreateCampaignPayload:
    campaign: CampaignInfo | None
    user_errors: list[UserError] = user_errors_field()


@strawberry.type
class CampaignMutations:
    @strawberry.mutation(description="Start a campaign (managers of the community/enterprise).")
    async def create_campaign(
        self, info: Info, input: CreateCampaignInput
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
                goal_kind=input.goal_kind.value,
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
class SetCreditPolicyPayload:
    policy: CreditPolicyInfo | None
    user_errors: list[UserError] = user_errors_field()


@strawberry.type
class CreditPolicyMutations:
    @strawberry.mutation(description="Set a programme's credit expiry (its managers).")
    async def set_credit_policy(
        self, info: Info, input: SetCreditPolicyInput
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
    scope: GhgScope
    category: int = 0
    employer_scope: GhgScope = GhgScope.SCOPE_3_PLUS
    employer_category: int = 0
    daily_cap: int = 1
    evidence: EvidenceKind = EvidenceKind.NONE
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
        self, info: Info, input: PublishActionTypeInput
    ) -> PublishActionTypePayload:
        async def action() -> Any:
            if not info.context.viewer.is_platform_admin:
                raise MutationFailed.single(
                    ["input"], UserErrorCode.FORBIDDEN, "Only platform admins publish action types."
                )
            problems = []
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
                    "scope": input.scope.value,
                    "category": input.category,
                    "employer_scope": input.employer_scope.value,
                    "employer_category": input.employer_category,
                    "daily_cap": input.daily_cap,
                    "evidence": input.evidence.value,
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
