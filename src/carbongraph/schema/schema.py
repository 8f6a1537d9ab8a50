"""The assembled Apollo Federation v2 subgraph schema."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig

from carbongraph.audit import audit_mutations
from carbongraph.cost import CostLimitExtension
from carbongraph.errors import ErrorCode
from carbongraph.observability import tracing
from carbongraph.observability.operations import OperationObserver
from carbongraph.schema import policy
from carbongraph.schema.accounting.mutations import AccountingMutations
from carbongraph.schema.accounting.queries import AccountingQueries
from carbongraph.schema.accounting.types import (
    GRAMS_SCALAR,
    Grams,
)
from carbongraph.schema.actions.mutations import (
    ActionMutations,
    CampaignMutations,
    CatalogMutations,
    CreditPolicyMutations,
    RewardMutations,
)
from carbongraph.schema.actions.queries import ActionQueries
from carbongraph.schema.common import DECIMAL_SCALAR
from carbongraph.schema.hierarchy.mutations import HierarchyMutations
from carbongraph.schema.hierarchy.queries import HierarchyQueries
from carbongraph.schema.hierarchy.types import (
    CommunityNode,
    EnterpriseNode,
    HouseholdNode,
    IndividualNode,
)
from carbongraph.schema.insights.queries import InsightsQueries
from carbongraph.schema.live.subscriptions import Subscription
from carbongraph.schema.security.mutations import ApiKeyMutations, RoleMutations
from carbongraph.schema.security.queries import SecurityQueries


@strawberry.type
class Query(SecurityQueries, HierarchyQueries, AccountingQueries, InsightsQueries, ActionQueries):
    """The root query: each domain's fields (schema/<domain>/queries.py)."""


@strawberry.type
class Mutation(
    HierarchyMutations,
    AccountingMutations,
    ActionMutations,
    RewardMutations,
    CampaignMutations,
    CreditPolicyMutations,
    CatalogMutations,
    ApiKeyMutations,
    RoleMutations,
):
    """The root mutation: each domain's mutations (schema/<domain>/mutations.py)."""


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
            # A GraphQL error inside is a deliberate message about the request (a variable a
            # scalar refused: "Variable '$q' got invalid value …"), not a crash to hide.
            unexpected = error.original_error is not None and not isinstance(
                error.original_error, GraphQLError
            )
            if not (error.extensions or {}).get("code") and unexpected:
                request_id = uuid.uuid4().hex
                log.error("request %s failed", request_id, exc_info=error.original_error)
                cleaned.append(
                    GraphQLError(
                        "Internal server error.",
                        nodes=error.nodes,
                        path=error.path,
                        extensions={
                            "code": ErrorCode.INTERNAL_SERVER_ERROR,
                            "requestId": request_id,
                        },
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
        config=StrawberryConfig(scalar_map={Grams: GRAMS_SCALAR, Decimal: DECIMAL_SCALAR}),
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
