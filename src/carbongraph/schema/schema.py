"""The assembled Apollo Federation v2 subgraph schema."""

from __future__ import annotations

import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.federation.schema_directives import Cost
from strawberry.schema.config import StrawberryConfig

from carbongraph.accounting.activities import ACTIVITY_TYPES
from carbongraph.accounting.factors import F as FACTORS
from carbongraph.audit import audit_mutations
from carbongraph.cost import CostLimitExtension
from carbongraph.errors import BadUserInput, CodedError, Forbidden
from carbongraph.observability import tracing
from carbongraph.observability.operations import OperationObserver
from carbongraph.resolvers import hierarchy as roots
from carbongraph.schema import access, actions, policy, security
from carbongraph.schema.accounting import (
    GRAMS_SCALAR,
    ActivityTypeInfo,
    EmissionFactor,
    Footprint,
    Grams,
    PeriodInput,
    Reductions,
    RollupPath,
    activity_types,
    footprint_of,
    reductions_of,
)
from carbongraph.schema.accounting_mutations import AccountingMutations
from carbongraph.schema.actions import (
    ActionMutations,
    ActionTypeInfo,
    CampaignMutations,
    CatalogMutations,
    CreditPolicyMutations,
    RewardMutations,
)
from carbongraph.schema.common import CONNECTION_SIZE, MAX_PAGE, list_size, sized_field
from carbongraph.schema.hierarchy import (
    NODE_TYPES,
    CommunityNode,
    EnterpriseNode,
    HouseholdNode,
    IndividualNode,
    row_target,
)
from carbongraph.schema.hierarchy_mutations import HierarchyMutations
from carbongraph.schema.insights import GhgInventory, inventory_of
from carbongraph.schema.live import Subscription
from carbongraph.schema.relay import Connection, build_connection, decode_global_id, page_args

MAX_NODES = 1000
# Campaigns or rewards of one owner (assumed: these lists are not paginated yet).
OWNED_LISTS = 20
EMISSION_FACTORS = 500
PAGE = "Keyset pagination: `first`/`after` forwards, `last`/`before` backwards."


@strawberry.type
class Query:
    me: access.Viewer | None = strawberry.field(
        resolver=access.resolve_me, description="The authenticated principal."
    )

    @strawberry.field(description="Any object by its global ID.")
    async def node(self, info: strawberry.Info, id: strawberry.ID) -> relay.Node | None:
        type_name, pk = decode_global_id(id, [*NODE_TYPES, *security.SECURITY_NODE_TYPES])
        if type_name in security.SECURITY_NODE_TYPES:
            return await security.SECURITY_NODE_TYPES[type_name](info, pk)
        return await NODE_TYPES[type_name].fetch(info, pk)

    # Sized by the length of `ids` (the server's rule); the gateway assumes the most.
    @sized_field(
        MAX_NODES,
        "Objects by global ID, in order; null where an ID is unknown or not visible.",
    )
    async def nodes(
        self, info: strawberry.Info, ids: list[strawberry.ID]
    ) -> list[relay.Node | None]:
        if len(ids) > MAX_NODES:
            raise BadUserInput(f"At most {MAX_NODES} ids per request.", argument="ids")
        # One batched load per type, no task per id: this field serves bulk look-ups.
        parsed: list[tuple[str, int] | None] = []
        security_nodes: dict[tuple[str, int], relay.Node | None] = {}
        for raw in ids:
            try:
                parsed.append(decode_global_id(raw, [*NODE_TYPES, *security.SECURITY_NODE_TYPES]))
            except CodedError:
                parsed.append(None)
        wanted: dict[str, list[int]] = defaultdict(list)
        for item in parsed:
            if item is not None and item[0] in security.SECURITY_NODE_TYPES:
                # API keys and audit events: rare here, so one look-up each, authorised as node().
                try:
                    security_nodes[item] = await security.SECURITY_NODE_TYPES[item[0]](
                        info, item[1]
                    )
                except CodedError:
                    security_nodes[item] = None
            elif item is not None:
                wanted[item[0]].append(item[1])
        loaded: dict[tuple[str, int], Any] = {}
        for type_name, pks in wanted.items():
            rows = await info.context.loaders.by_type(type_name).load_many(pks)
            loaded.update(((type_name, pk), row) for pk, row in zip(pks, rows, strict=True))
        out: list[relay.Node | None] = []
        for item in parsed:
            if item in security_nodes:
                out.append(security_nodes[item])
                continue
            row = loaded.get(item) if item is not None else None
            if row is None or not policy.visible(info, item[0], row_target(row)):
                out.append(None)  # unknown or not visible: null in place, as Relay specifies
            else:
                out.append(NODE_TYPES[item[0]].from_row(row))
        return out

    @strawberry.field
    async def enterprise(self, info: strawberry.Info, id: strawberry.ID) -> EnterpriseNode | None:
        return await EnterpriseNode.fetch(info, decode_global_id(id, ["Enterprise"])[1])

    @strawberry.field
    async def community(self, info: strawberry.Info, id: strawberry.ID) -> CommunityNode | None:
        return await CommunityNode.fetch(info, decode_global_id(id, ["Community"])[1])

    @strawberry.field
    async def household(self, info: strawberry.Info, id: strawberry.ID) -> HouseholdNode | None:
        return await HouseholdNode.fetch(info, decode_global_id(id, ["Household"])[1])

    @strawberry.field
    async def individual(self, info: strawberry.Info, id: strawberry.ID) -> IndividualNode | None:
        return await IndividualNode.fetch(info, decode_global_id(id, ["Individual"])[1])

    @strawberry.federation.field(
        description="Enterprises the viewer can see. " + PAGE, directives=[CONNECTION_SIZE]
    )
    async def enterprises(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[EnterpriseNode]:
        args = page_args(info, first, after, last, before)
        db = info.context.db
        select = roots.visible_enterprises(info.context.viewer)
        page = await roots.root_page(db, select, args)
        return build_connection(page, EnterpriseNode.from_row, lambda: roots.root_count(db, select))

    @strawberry.federation.field(
        description="Communities the viewer can see, at any depth, optionally of one enterprise. "
        + PAGE,
        directives=[CONNECTION_SIZE],
    )
    async def communities(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        enterprise_id: strawberry.ID | None = None,
    ) -> Connection[CommunityNode]:
        args = page_args(info, first, after, last, before)
        enterprise_pk = (
            decode_global_id(enterprise_id, ["Enterprise"])[1] if enterprise_id else None
        )
        db = info.context.db
        select = roots.visible_communities(info.context.viewer, enterprise_pk)
        page = await roots.root_page(db, select, args)
        return build_connection(page, CommunityNode.from_row, lambda: roots.root_count(db, select))

    @strawberry.federation.field(
        description="Everything on the platform (platform admins).",
        requires_scopes=[["PLATFORM_ADMIN"]],
        directives=[Cost(weight=5)],
    )
    async def platform_footprint(self, info: strawberry.Info, period: PeriodInput) -> Footprint:
        _require_platform(info)
        return await footprint_of(info, ("P", 0, ""), period, None)

    @strawberry.federation.field(
        description="Reductions across the platform (platform admins).",
        requires_scopes=[["PLATFORM_ADMIN"]],
        directives=[Cost(weight=5)],
    )
    async def platform_reductions(self, info: strawberry.Info, period: PeriodInput) -> Reductions:
        _require_platform(info)
        return await reductions_of(info, ("P", 0, ""), period, None)

    @strawberry.federation.field(
        description="The GHG inventory of an enterprise or community for a calendar year (org "
        "admins, ESG analysts, community managers); as `Enterprise.inventory`.",
        directives=[Cost(weight=50)],
    )
    async def ghg_inventory(
        self,
        info: strawberry.Info,
        node_id: strawberry.ID,
        year: int,
        via: RollupPath = RollupPath.COMMUNITIES,
    ) -> GhgInventory | None:
        type_name, pk = decode_global_id(node_id, list(NODE_TYPES))
        if type_name not in {"Enterprise", "Community"}:
            raise BadUserInput(
                "An inventory is reported for an enterprise or a community.", argument="nodeId"
            )
        node = await NODE_TYPES[type_name].fetch(info, pk)
        # The same data as `Enterprise.inventory` / `Community.inventory`: their declaration.
        policy.require_field(info, type_name, "inventory", node.policy_target())
        return await inventory_of(
            info,
            type_name,
            pk,
            node.name,
            node.path,
            year,
            via,  # type: ignore[attr-defined]
        )

    @sized_field(MAX_PAGE, "The low-carbon actions that earn credits.")
    async def action_types(self, info: strawberry.Info) -> list[ActionTypeInfo]:
        return await actions.action_types(info)

    @sized_field(
        MAX_PAGE, "Actions of a community awaiting (or past) a decision.", slicing=("first",)
    )
    async def action_review_queue(
        self,
        info: strawberry.Info,
        community_id: strawberry.ID,
        status: str = "PENDING",
        action_type: str | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> list[actions.ActionRecord]:
        return await actions.review_queue(info, community_id, status, action_type, first, after)

    # Not paginated yet: a community runs a few campaigns at a time.
    @sized_field(OWNED_LISTS, "Campaigns run by a community or an enterprise.")
    async def campaigns(
        self, info: strawberry.Info, owner_id: strawberry.ID
    ) -> list[actions.CampaignInfo]:
        return await actions.campaigns_of(info, owner_id)

    @sized_field(OWNED_LISTS, "Rewards offered by a community or an enterprise.")
    async def rewards(
        self, info: strawberry.Info, owner_id: strawberry.ID
    ) -> list[actions.RewardInfo]:
        return await actions.rewards_of(info, owner_id)

    @sized_field(len(ACTIVITY_TYPES), "The activity types that can be recorded.")
    def activity_types(self) -> list[ActivityTypeInfo]:
        return activity_types()

    # The library: a few hundred versions; filtered by key, a few.
    @sized_field(EMISSION_FACTORS, "The emission factor library, newest first.")
    async def emission_factors(
        self,
        info: strawberry.Info,
        factor_key: str | None = None,
        region_code: str | None = None,
        valid_on: date | None = None,
        basis: str | None = None,
    ) -> list[EmissionFactor]:
        select = sa.select(FACTORS)
        if factor_key:
            select = select.where(FACTORS.c.factor_key == factor_key)
        if region_code:
            select = select.where(FACTORS.c.region_code == region_code)
        if basis:
            select = select.where(FACTORS.c.basis == basis)
        if valid_on:
            select = select.where(
                FACTORS.c.valid_from <= valid_on,
                sa.or_(FACTORS.c.valid_to.is_(None), FACTORS.c.valid_to > valid_on),
            )
        select = select.order_by(
            FACTORS.c.factor_key,
            FACTORS.c.region_code,
            FACTORS.c.valid_from.desc(),
            FACTORS.c.version.desc(),
        )
        return [EmissionFactor.from_row(r) for r in await info.context.db.execute(select)]

    @strawberry.federation.field(
        description="API keys the viewer manages (every scope's node in their subtree). " + PAGE,
        directives=[CONNECTION_SIZE],
    )
    async def api_keys(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        include_inactive: bool = False,
    ) -> Connection[security.ApiKeyNode]:
        return await security.api_keys(info, first, after, last, before, include_inactive)

    @strawberry.federation.field(
        description="The audit log, newest first (platform admins). `after` pages to older "
        "events; `since` inclusive, `until` exclusive.",
        requires_scopes=[["PLATFORM_ADMIN"]],
        directives=[list_size(MAX_PAGE, slicing=("first",), sized=("edges",))],
    )
    async def audit_events(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        actor: str | None = None,
        operation: str | None = None,
        target_id: strawberry.ID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Connection[security.AuditEventNode]:
        return await security.audit_events(
            info, first, after, actor, operation, target_id, since, until
        )


def _require_platform(info: strawberry.Info) -> None:
    if not info.context.viewer.is_platform_admin:
        raise Forbidden("Only platform admins read platform totals.")


@strawberry.type
class Mutation(
    HierarchyMutations,
    AccountingMutations,
    ActionMutations,
    RewardMutations,
    CampaignMutations,
    CreditPolicyMutations,
    CatalogMutations,
    security.ApiKeyMutations,
):
    grant_role = strawberry.mutation(
        resolver=access.grant_role, description="Give a principal a role on a node."
    )
    revoke_role = strawberry.mutation(resolver=access.revoke_role, description="Take a role back.")


class ProductionErrors(SchemaExtension):
    """In production: unexpected errors become "Internal server error." with a request ID that
    is logged with the real error, and validation messages lose their "Did you mean …?" hints
    (they would reveal the schema when introspection is off)."""

    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context.context
        result = self.execution_context.result
        settings = getattr(context, "settings", None)
        if result is None or not result.errors or settings is None or not settings.is_production:
            return
        cleaned = []
        for error in result.errors:
            if not (error.extensions or {}).get("code") and error.original_error is not None:
                request_id = uuid.uuid4().hex
                log.error("request %s failed", request_id, exc_info=error.original_error)
                cleaned.append(
                    GraphQLError(
                        "Internal server error.",
                        nodes=error.nodes,
                        path=error.path,
                        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
                        # Kept (never shown) so that the HTTP layer can tell an outage (503).
                        original_error=error.original_error,
                    )
                )
            else:
                message = SUGGESTION.sub("", error.message)
                cleaned.append(
                    GraphQLError(
                        message, nodes=error.nodes, path=error.path, extensions=error.extensions
                    )
                )
        result.errors = cleaned


SUGGESTION = re.compile(r"\s*Did you mean .*?\?$")
log = logging.getLogger("carbongraph")


class SqlStatementsExtension(SchemaExtension):
    """With CARBONGRAPH_REPORT_SQL_STATEMENTS=1: extensions.sqlStatements, the data statements
    this request ran (the viewer's grants included)."""

    def get_results(self) -> dict[str, object]:
        statements = getattr(self.execution_context.context, "statements", None)
        return {} if statements is None else {"sqlStatements": statements.count}


def build_schema() -> strawberry.federation.Schema:
    """The schema, with every field's declared policy attached (schema/policy.py); fails,
    naming them, when a field has no declaration."""
    audit_mutations(Mutation)  # every mutation, present and future, writes an audit event
    # The first build enumerates every reachable field, the policy is attached to them, and
    # the second build (about 30 ms each) converts them with it.
    policy.apply(_assemble())
    return _assemble()


def _assemble() -> strawberry.federation.Schema:
    return strawberry.federation.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[EnterpriseNode, CommunityNode, HouseholdNode, IndividualNode],
        # 2.9: the newest version both Strawberry and the gateway's composer know; it has
        # @authenticated/@requiresScopes (2.5) and @cost/@listSize (2.9).
        federation_version="2.9",
        config=StrawberryConfig(scalar_map={Grams: GRAMS_SCALAR}),
        # Parsing and validating the same documents again costs several ms per request.
        extensions=[
            lambda: ParserCache(maxsize=1024),
            CostLimitExtension,  # before the cache: its rule is part of the cache key
            lambda: ValidationCache(maxsize=1024),
            ProductionErrors,
            SqlStatementsExtension,
            OperationObserver,  # metrics by operation name (observability/)
            tracing.schema_extension,  # OpenTelemetry spans, when tracing is configured
        ],
    )


schema = build_schema()
