"""Enterprise → Community → Household → Individual as federation entities and Relay nodes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Self

import strawberry
from strawberry import relay
from strawberry.federation.schema_directives import Cost

from carbongraph import audit
from carbongraph.authz import Target
from carbongraph.resolvers.context import Info
from carbongraph.resolvers.dataloaders import IndividualRecord, node_target
from carbongraph.schema.accounting.types import (
    Footprint,
    PeriodInput,
    Reductions,
    RollupPath,
    footprint_of,
    reductions_of,
)
from carbongraph.schema.actions.types import Credits, credits_of
from carbongraph.schema.common import CONNECTION_SIZE, list_size
from carbongraph.schema.engagement.types import (
    Leaderboard,
    LeaderboardMembers,
    Statement,
    StatementLink,
    board_field,
    community_board,
    enterprise_board,
    statement_link_of,
    statement_of,
)
from carbongraph.schema.enums import CommunityKind, DwellingType, EnterpriseKind, LeaderboardMetric
from carbongraph.schema.hierarchy import loaders as dl
from carbongraph.schema.insights.types import (
    SUGGESTIONS,
    GhgInventory,
    Suggestion,
    household_suggestions,
    individual_suggestions,
    inventory_of,
)
from carbongraph.schema.node import fetch_row
from carbongraph.schema.policy import require_visible
from carbongraph.schema.relay import (  # Connection: named in children()'s annotation
    Connection,  # noqa: F401
    child_connection,
    decode_global_id,
)

PAGE_ARGS_DOC = "Keyset pagination: `first`/`after` forwards, `last`/`before` backwards."


def connection_field(description: str, **kwargs: Any) -> Any:
    """A connection: its page size (`first`/`last`, else a full page) sizes its `edges`."""
    return strawberry.federation.field(
        description=f"{description} {PAGE_ARGS_DOC}", directives=[CONNECTION_SIZE], **kwargs
    )


def aggregate_field(description: str, **kwargs: Any) -> Any:
    """A roll-up read: one indexed range scan, priced above a plain field."""
    return strawberry.federation.field(
        description=description, directives=[Cost(weight=5)], **kwargs
    )


def children(relation: Any, node: str, description: str) -> Any:
    """A connection to a node's children through one DataLoader relation: written once for
    every node type. ``node`` names the child's class (resolved when the schema is built)."""

    async def resolve(
        self: Any,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Any:
        to_node = globals()[node].from_row
        return await child_connection(info, relation, self.pk, to_node, first, after, last, before)

    resolve.__annotations__["return"] = f"Connection[{node}]"
    return connection_field(description, resolver=resolve)


def footprint_field(kind: str, description: str) -> Any:
    """``footprint(period)`` of a node whose roll-up key is (kind, id, "")."""

    async def resolve(self: Any, info: Info, period: PeriodInput) -> Footprint:
        return await footprint_of(info, (kind, self.pk, ""), period, self.policy_target())

    return aggregate_field(description, resolver=resolve)


def reductions_field(kind: str, description: str) -> Any:
    """``reductions(period)`` of a node whose roll-up key is (kind, id, "")."""

    async def resolve(self: Any, info: Info, period: PeriodInput) -> Reductions:
        return await reductions_of(info, (kind, self.pk, ""), period, self.policy_target())

    return aggregate_field(description, resolver=resolve)


def personal_input(default: Any = strawberry.UNSET, description: str = "") -> Any:
    """An input field carrying personal data: never stored in clear in the audit log (keyed
    hash or redacted, carbongraph.audit). Use it for every input that sets a personal field."""
    kwargs: dict[str, Any] = {} if default is strawberry.UNSET else {"default": default}
    return strawberry.field(
        description=f"{description} Personal data.".strip(),
        metadata={audit.PERSONAL: True},
        **kwargs,
    )


def personal_field(description: str, size: int | None = None) -> Any:
    """Personal data (declared PERSONAL in the field policy, which tags it so that a partner
    contract can leave it out); ``size``: a list's assumed size (``@listSize``)."""
    return strawberry.federation.field(
        description=f"{description} Personal data.".strip(),
        directives=[] if size is None else [list_size(size)],
    )


class _Entity(relay.Node):
    """Shared behaviour: built from a database row; looked up by global ID. (Each concrete type
    declares its own ``pk: relay.NodeID[int]``: a plain base class contributes no fields.)"""

    pk: int

    @classmethod
    def from_row(cls, row: Any) -> Self:
        raise NotImplementedError

    @classmethod
    async def fetch(cls, info: Info, pk: int) -> Self:
        return cls.from_row(await fetch_row(info, cls._graphql_name(), pk))

    def policy_target(self) -> Target:
        """Where the node sits, for the field policy's checks (schema/policy.py)."""
        return Target((self.path,))  # type: ignore[attr-defined]

    @classmethod
    def _graphql_name(cls) -> str:
        return cls.__strawberry_definition__.name  # type: ignore[attr-defined]

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Self:
        _, pk = decode_global_id(id, [cls._graphql_name()])
        return await cls.fetch(info, pk)


@strawberry.federation.type(
    name="Enterprise",
    keys=["id"],
    authenticated=True,
    description="A partner organisation: company, university, property manager, city programme.",
)
class EnterpriseNode(_Entity):
    pk: relay.NodeID[int]
    name: str
    kind: EnterpriseKind
    external_ref: str | None = strawberry.field(description="The partner's own identifier.")
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    path: strawberry.Private[str]

    @classmethod
    def from_row(cls, row: Any) -> EnterpriseNode:
        return cls(
            pk=row.id,
            name=row.name,
            kind=EnterpriseKind(row.kind),
            external_ref=row.external_ref,
            created_at=row.created_at,
            updated_at=row.updated_at,
            archived_at=row.archived_at,
            path=row.path,
        )

    @aggregate_field("Emissions over a period, gathered via its communities or its employees.")
    async def footprint(
        self, info: Info, period: PeriodInput, via: RollupPath = RollupPath.COMMUNITIES
    ) -> Footprint:
        return await footprint_of(info, ("E", self.pk, via.value), period, self.policy_target())

    @aggregate_field("Avoided emissions over a period, by scope.")
    async def reductions(
        self, info: Info, period: PeriodInput, via: RollupPath = RollupPath.COMMUNITIES
    ) -> Reductions:
        return await reductions_of(info, ("E", self.pk, via.value), period, self.policy_target())

    @strawberry.federation.field(
        description="The GHG inventory of a calendar year, with CSV and JSON renderings (org "
        "admins, ESG analysts, community managers). Reads raw records for factors and data "
        "quality.",
        directives=[Cost(weight=50)],
    )
    async def inventory(
        self, info: Info, year: int, via: RollupPath = RollupPath.COMMUNITIES
    ) -> GhgInventory | None:
        return await inventory_of(info, "Enterprise", self.pk, self.name, self.path, year, via)

    @board_field(
        "Its top-level communities ranked by a metric over a period (default: the last four weeks)."
    )
    async def leaderboard(
        self,
        info: Info,
        metric: LeaderboardMetric,
        period: PeriodInput | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Leaderboard | None:
        return await enterprise_board(info, self.pk, self.path, metric, period, first, after)

    communities = children(
        dl.ENTERPRISE_COMMUNITIES, "CommunityNode", "Top-level communities of this enterprise. "
    )

    employees = children(
        dl.ENTERPRISE_EMPLOYEES, "IndividualNode", "People currently employed by this enterprise. "
    )


@strawberry.federation.type(
    name="Community",
    keys=["id"],
    authenticated=True,
    description="A village, campus, building, residential compound or office park. Communities "
    "nest (campus → dorm building) and may stand directly under the platform.",
)
class CommunityNode(_Entity):
    pk: relay.NodeID[int]
    name: str
    kind: CommunityKind
    region_code: str = strawberry.field(
        description="ISO 3166-2 subdivision (e.g. CN-GD); selects regional emission factors."
    )
    timezone: str = strawberry.field(description="IANA time zone; days are local days here.")
    external_ref: str | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    enterprise_id: strawberry.Private[int | None]
    parent_id: strawberry.Private[int | None]
    path: strawberry.Private[str]

    @classmethod
    def from_row(cls, row: Any) -> CommunityNode:
        return cls(
            pk=row.id,
            name=row.name,
            kind=CommunityKind(row.kind),
            region_code=row.region_code,
            timezone=row.timezone,
            external_ref=row.external_ref,
            created_at=row.created_at,
            updated_at=row.updated_at,
            archived_at=row.archived_at,
            enterprise_id=row.enterprise_id,
            parent_id=row.parent_id,
            path=row.path,
        )

    footprint = footprint_field("C", "Emissions over a period, split by scope.")

    reductions = reductions_field("C", "Avoided emissions over a period, by scope.")

    @strawberry.federation.field(
        description="The GHG inventory of a calendar year, with CSV and JSON renderings (org "
        "admins, ESG analysts, community managers). Reads raw records for factors and data "
        "quality.",
        directives=[Cost(weight=50)],
    )
    async def inventory(self, info: Info, year: int) -> GhgInventory | None:
        return await inventory_of(info, "Community", self.pk, self.name, self.path, year)

    @board_field(
        "Its households (or the people living in them), sub-communities included, "
        "ranked by a metric over a period (default: the last four weeks)."
    )
    async def leaderboard(
        self,
        info: Info,
        metric: LeaderboardMetric,
        members: LeaderboardMembers = LeaderboardMembers.HOUSEHOLDS,
        dwelling_type: DwellingType | None = None,
        period: PeriodInput | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Leaderboard | None:
        return await community_board(
            info,
            self.path,
            members,
            metric,
            dwelling_type.value if dwelling_type else None,
            period,
            first,
            after,
        )

    @strawberry.field(description="The enterprise that runs this community, if any.")
    async def enterprise(self, info: Info) -> EnterpriseNode | None:
        if self.enterprise_id is None:
            return None
        return await EnterpriseNode.fetch(info, self.enterprise_id)

    @strawberry.field(description="The community this one is part of, if any.")
    async def parent(self, info: Info) -> CommunityNode | None:
        if self.parent_id is None:
            return None
        return await CommunityNode.fetch(info, self.parent_id)

    sub_communities = children(
        dl.SUB_COMMUNITIES, "CommunityNode", "Communities directly inside this one. "
    )

    households = children(
        dl.COMMUNITY_HOUSEHOLDS, "HouseholdNode", "Households directly in this community. "
    )

    members = children(
        dl.COMMUNITY_MEMBERS,
        "IndividualNode",
        "People currently living anywhere in this community, sub-communities included.",
    )


@strawberry.federation.type(
    name="Household",
    keys=["id"],
    authenticated=True,
    description="A home or a dorm room. Its account sums its members and its own meters.",
)
class HouseholdNode(_Entity):
    pk: relay.NodeID[int]
    dwelling_type: DwellingType
    has_rooftop_solar: bool
    external_ref: str | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    community_id: strawberry.Private[int]
    path: strawberry.Private[str]
    name_value: strawberry.Private[str]

    @classmethod
    def from_row(cls, row: Any) -> HouseholdNode:
        return cls(
            pk=row.id,
            name_value=row.name,
            dwelling_type=DwellingType(row.dwelling_type),
            has_rooftop_solar=row.has_rooftop_solar,
            external_ref=row.external_ref,
            created_at=row.created_at,
            updated_at=row.updated_at,
            archived_at=row.archived_at,
            community_id=row.community_id,
            path=row.path,
        )

    footprint = footprint_field("H", "Emissions over a period, split by scope.")

    reductions = reductions_field("H", "Avoided emissions over a period, by scope.")

    @strawberry.federation.field(
        description="Personalised ways to cut emissions, from this home's records of the last "
        "year. Personal data.",
        directives=[Cost(weight=20), list_size(SUGGESTIONS)],
    )
    async def suggestions(self, info: Info) -> list[Suggestion] | None:
        return await household_suggestions(info, self)

    @aggregate_field(
        "Weekly use, emissions, credits and the standing among peers over a "
        "period (default: the last four weeks)."
    )
    async def statement(self, info: Info, period: PeriodInput | None = None) -> Statement | None:
        return await statement_of(
            info, "H", self.pk, period, (self.pk, self.path, self.dwelling_type.value)
        )

    @strawberry.field(description="A short-lived link to this household's printable statement.")
    def statement_link(self, info: Info, period: PeriodInput | None = None) -> StatementLink | None:
        return statement_link_of(info, self.pk, period)

    @personal_field("The household's label.")
    def name(self, info: Info) -> str | None:
        return self.name_value

    @strawberry.field
    async def community(self, info: Info) -> CommunityNode | None:
        return await CommunityNode.fetch(info, self.community_id)

    @strawberry.federation.field(
        inaccessible=True,
        shareable=True,
        description="The factor region of the household's community, for subgraphs that "
        "`@requires` it (e.g. to price avoided trips); not part of the client API.",
    )
    async def region_code(self, info: Info) -> str:
        row = await info.context.loaders.community.load(self.community_id)
        return str(row.region_code)

    members = children(dl.HOUSEHOLD_MEMBERS, "IndividualNode", "People living here today. ")


@strawberry.type(description="A dated period during which a person lived in a household.")
class HouseholdMembershipPeriod:
    valid_from: date
    valid_to: date | None = strawberry.field(description="Exclusive end; null while current.")
    household_id: strawberry.Private[int]

    @strawberry.field
    async def household(self, info: Info) -> HouseholdNode | None:
        return await HouseholdNode.fetch(info, self.household_id)


@strawberry.federation.type(
    name="Individual",
    keys=["id"],
    authenticated=True,
    description="A person's carbon account. Belongs to at most one household at a time.",
)
class IndividualNode(_Entity):
    pk: relay.NodeID[int]
    external_ref: str | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    record: strawberry.Private[IndividualRecord]

    @classmethod
    def from_row(cls, row: IndividualRecord) -> IndividualNode:
        return cls(
            pk=row.id,
            external_ref=row.external_ref,
            created_at=row.created_at,
            updated_at=row.updated_at,
            archived_at=row.archived_at,
            record=row,
        )

    def policy_target(self) -> Target:
        return self.record.target

    footprint = footprint_field("I", "Emissions over a period, split by scope.")

    reductions = reductions_field("I", "Avoided emissions over a period, by scope.")

    @strawberry.federation.field(
        description="Personalised ways to cut emissions, from this person's records of the last "
        "year. Personal data.",
        directives=[Cost(weight=20), list_size(SUGGESTIONS)],
    )
    async def suggestions(self, info: Info) -> list[Suggestion] | None:
        return await individual_suggestions(info, self)

    @strawberry.federation.field(
        description="Own use, emissions, credits and the standing among the people of peer "
        "households over a period (default: the last four weeks). Personal data.",
        directives=[Cost(weight=5)],
    )
    async def statement(self, info: Info, period: PeriodInput | None = None) -> Statement | None:
        return await statement_of(info, "I", self.pk, period)

    @personal_field("")
    def display_name(self, info: Info) -> str | None:
        return self.record.display_name

    @personal_field("")
    def email(self, info: Info) -> str | None:
        return self.record.email

    @strawberry.field(description="The household this person lives in today.")
    async def household(self, info: Info) -> HouseholdNode | None:
        row = await info.context.loaders.current_household.load(self.pk)
        if row is None:
            return None
        require_visible(info, "Household", node_target(row))
        return HouseholdNode.from_row(row)

    @personal_field("Credits earned by low-carbon actions, and the ledger behind them.")
    async def credits(self, info: Info) -> Credits | None:
        return await credits_of(info, self.pk)

    # Nullable like every field above its type's level: a refusal (FORBIDDEN) nulls the field,
    # not the whole person.
    @personal_field(
        "Every household this person has lived in, oldest first; null without personal access.",
        size=10,
    )
    async def household_history(self, info: Info) -> list[HouseholdMembershipPeriod] | None:
        rows = await info.context.loaders.membership_history.load(self.pk)
        return [
            HouseholdMembershipPeriod(
                valid_from=r.valid_from, valid_to=r.valid_to, household_id=r.household_id
            )
            for r in rows
        ]


NODE_TYPES: dict[str, type[_Entity]] = {
    "Enterprise": EnterpriseNode,
    "Community": CommunityNode,
    "Household": HouseholdNode,
    "Individual": IndividualNode,
}
