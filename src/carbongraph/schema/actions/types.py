"""Low-carbon actions and credits in the graph."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa
import strawberry

from carbongraph import privacy
from carbongraph.actions import campaigns, review, rewards
from carbongraph.actions import record as service
from carbongraph.actions.catalog import A as ACTION_TYPES
from carbongraph.authz import Access, Target
from carbongraph.errors import Forbidden
from carbongraph.resolvers.context import Info
from carbongraph.resolvers.hierarchy import root_count, root_page
from carbongraph.schema import policy
from carbongraph.schema.accounting.types import GhgScope, SuppressionReason
from carbongraph.schema.common import (
    MAX_PAGE,
    described_enum,
    sized_field,
)
from carbongraph.schema.node import fetch_row
from carbongraph.schema.relay import (
    Connection,
    build_connection,
    decode_global_id,
    page_args,
    to_global_id,
)

# -- closed sets: GraphQL enums whose Python values are the stored values (mapped here, at the
# schema's edge).


class ActionStatus(Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    REVERSED = "REVERSED"


described_enum(
    ActionStatus,
    "Where a recorded action stands.",
    {
        ActionStatus.PENDING: "Awaiting a community manager's decision (a photo to check).",
        ActionStatus.APPROVED: "Credited.",
        ActionStatus.REJECTED: "Turned down; nothing credited.",
        ActionStatus.REVERSED: "Approved, then undone: its credits and reductions reversed.",
    },
)


class ActionSource(Enum):
    SELF = "SELF"
    PARTNER = "PARTNER"


described_enum(
    ActionSource,
    "Who reported an action.",
    {
        ActionSource.SELF: "The person (`recordAction`).",
        ActionSource.PARTNER: "A partner service, verified (`recordVerifiedActions`).",
    },
)


class EvidenceKind(Enum):
    NONE = "NONE"
    PHOTO = "PHOTO"
    PARTNER = "PARTNER"


described_enum(
    EvidenceKind,
    "What an action type needs before it earns.",
    {
        EvidenceKind.NONE: "Nothing: self-reported.",
        EvidenceKind.PHOTO: "A photo (`uploadEvidence`), checked by a community manager.",
        EvidenceKind.PARTNER: "A partner's verification; self-reports only up to "
        "`selfReportCap` a day.",
    },
)


class EvidenceContentType(Enum):
    JPEG = "image/jpeg"
    PNG = "image/png"
    WEBP = "image/webp"


described_enum(
    EvidenceContentType,
    "The image format of uploaded evidence (from its bytes, whatever the client said).",
    {member: member.value for member in EvidenceContentType},
)


class CampaignGoalKind(Enum):
    KG_CO2E = "KG_CO2E"
    PARTICIPANTS = "PARTICIPANTS"


described_enum(
    CampaignGoalKind,
    "What a campaign's goal counts.",
    {
        CampaignGoalKind.KG_CO2E: "Kilograms of CO2e avoided.",
        CampaignGoalKind.PARTICIPANTS: "People who took an eligible action.",
    },
)


class CreditEntryKind(Enum):
    GRANT = "GRANT"
    REVERSAL = "REVERSAL"
    REDEMPTION = "REDEMPTION"
    EXPIRY = "EXPIRY"


described_enum(
    CreditEntryKind,
    "What a credits ledger entry records.",
    {
        CreditEntryKind.GRANT: "Credits earned by an action (or a campaign's bonus on it).",
        CreditEntryKind.REVERSAL: "The credits of a reversed action taken back.",
        CreditEntryKind.REDEMPTION: "Credits spent on a reward.",
        CreditEntryKind.EXPIRY: "Credits expired under the programme's credit policy.",
    },
)


@strawberry.type(description="A kind of low-carbon action and what it earns.")
class ActionTypeInfo:
    code: str
    version: int
    methodology: str
    name: str
    unit: str
    credits_per_unit: int
    avoided_grams_per_unit: int
    scope: GhgScope
    category: int
    employer_scope: GhgScope = strawberry.field(description="Reported this way via an employer.")
    employer_category: int
    daily_cap: int
    evidence: EvidenceKind
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
            scope=GhgScope(r.scope),
            category=r.category,
            employer_scope=GhgScope(r.employer_scope),
            employer_category=r.employer_category,
            daily_cap=r.daily_cap,
            evidence=EvidenceKind(r.evidence),
            self_report_cap=r.self_report_cap,
            valid_from=r.valid_from,
            valid_to=r.valid_to,
            citation=r.citation,
        )


async def action_types(info: Info) -> list[ActionTypeInfo]:
    rows = await info.context.db.execute(
        sa.select(ACTION_TYPES).order_by(ACTION_TYPES.c.code, ACTION_TYPES.c.version.desc())
    )
    return [ActionTypeInfo.from_row(r) for r in rows]


@strawberry.type(description="An uploaded photo.")
class EvidenceInfo:
    id: strawberry.ID
    sha256: str
    content_type: EvidenceContentType
    captured_at: datetime | None = strawberry.field(description="EXIF capture time, if any.")


@strawberry.type(description="A recorded low-carbon action.")
class ActionRecord:
    id: strawberry.ID
    individual_id: strawberry.ID
    action_type: str
    units: int
    occurred_on: date
    status: ActionStatus
    source: ActionSource
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
                content_type=EvidenceContentType(r.content_type),
                captured_at=r.captured_at,
            )
        return cls(
            id=strawberry.ID(to_global_id("ActionRecord", r.id)),
            individual_id=strawberry.ID(to_global_id("Individual", r.individual_id)),
            action_type=r.code,
            units=r.units,
            occurred_on=r.occurred_on,
            status=ActionStatus(r.status),
            source=ActionSource(r.source),
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
    kind: CreditEntryKind
    amount: int
    note: str | None
    created_at: datetime


@strawberry.type(description="A person's credits: the balance is the sum of the ledger.")
class Credits:
    balance: int
    individual_id: strawberry.Private[int]

    @sized_field(MAX_PAGE, "Newest first; `after` is an entry ID's cursor.", slicing=("first",))
    async def ledger(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> list[CreditEntry]:
        first = max(0, min(first, info.context.settings.max_page_size))
        before = decode_global_id(after, ["CreditEntry"])[1] if after else None
        rows = await info.context.loaders.credit_ledger.load((self.individual_id, first, before))
        return [
            CreditEntry(
                id=strawberry.ID(to_global_id("CreditEntry", r.id)),
                kind=CreditEntryKind(r.kind),
                amount=r.amount,
                note=r.note,
                created_at=r.created_at,
            )
            for r in rows
        ]


async def credits_of(info: Info, individual_id: int) -> Credits:
    return Credits(
        balance=await info.context.loaders.credit_balance.load(individual_id),
        individual_id=individual_id,
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


# Relay's Connection types its items as Nodes (its TypeVar's bound, for typing only): these
# lists' items carry global IDs but are not Nodes (no `node(id:)`), hence the ignores.
async def review_queue(
    info: Info,
    community_id: strawberry.ID,
    status: ActionStatus,
    action_type: str | None,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[ActionRecord]:  # type: ignore[type-var]
    community = await fetch_row(info, "Community", decode_global_id(community_id, ["Community"])[1])
    if not info.context.viewer.can_manage(Target((community.path,))):
        raise Forbidden("Only the community's managers see its review queue.")
    args = page_args(info, first, after, last, before)
    db = info.context.db
    select = review.queue_select(community.path, status.value, action_type)
    page = await root_page(db, select, args)
    return build_connection(  # type: ignore[type-var]
        page, ActionRecord.from_row, lambda: root_count(db, select)
    )


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


@strawberry.type
class Redemption:
    id: strawberry.ID
    reward_id: strawberry.ID
    created_at: datetime


async def _owned_page(
    info: Info,
    owner_id: strawberry.ID,
    table: sa.Table,
    to_node: Any,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[Any]:
    """A page of the rows of ``table`` owned by a Community or Enterprise the viewer can see."""
    type_name, pk = decode_global_id(owner_id, ["Community", "Enterprise"])
    await fetch_row(info, type_name, pk)  # NOT_FOUND / FORBIDDEN for strangers
    args = page_args(info, first, after, last, before)
    db = info.context.db
    select = sa.select(table).where(table.c.owner_type == type_name, table.c.owner_id == pk)
    page = await root_page(db, select, args)
    return build_connection(page, to_node, lambda: root_count(db, select))


async def rewards_of(
    info: Info,
    owner_id: strawberry.ID,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[RewardInfo]:  # type: ignore[type-var]
    return await _owned_page(
        info, owner_id, rewards.RW, RewardInfo.from_row, first, after, last, before
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
    goal_kind: CampaignGoalKind
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
            goal_kind=CampaignGoalKind(r.goal_kind),
            goal_value=r.goal_value,
            bonus_percent=r.bonus_percent,
            row=r,
        )

    @strawberry.field
    async def progress(self, info: Info) -> CampaignProgress:
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
    async def top_participants(self, info: Info, first: int = 10) -> list[CampaignStanding]:
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

    def _manages(self, info: Info) -> bool:
        return policy.level(info, Target((self.row.owner_path,))) >= Access.PERSONAL

    @staticmethod
    def _shown(info: Info, manages: bool, individual_id: int) -> bool:
        return (
            manages
            or info.context.settings.small_cell_k <= 1
            or individual_id in info.context.viewer.resident_individual_ids
        )


async def campaigns_of(
    info: Info,
    owner_id: strawberry.ID,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[CampaignInfo]:  # type: ignore[type-var]
    return await _owned_page(
        info, owner_id, campaigns.CP, CampaignInfo.from_row, first, after, last, before
    )


@strawberry.type
class CreditPolicyInfo:
    programme_id: strawberry.ID
    expiry_months: int | None
