"""The field policy: who may read each field, how it is disclosed, as data.

Every field of every object type in the schema is declared here (``FIELD_POLICY``), and schema
build fails on a field that is not (fail closed: a new attribute on ``Individual`` is not
silently visible to every analyst). The declarations drive, from this one place:

- the check at resolve time: ``On.NODE`` fields above their type's visibility get a
  ``PolicyExtension`` that raises FORBIDDEN (NOT_FOUND outside the viewer's tenants);
- the ``@tag(name: "personal")`` of every field that needs ``PERSONAL`` (partner contracts);
- the query planner (``carbongraph.planner``), which compiles what it can and falls back
  otherwise;
- the leak matrix's guard (tests), which fails on a field its oracle does not classify.

Levels are those of docs/authorization.md (``carbongraph.authz.Access``). Costs and list sizes
are declared on the fields themselves as ``@cost``/``@listSize`` (``schema/common.py``): the
gateway reads them from the SDL and ``carbongraph.cost`` from the schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import strawberry
from graphql import GraphQLObjectType
from strawberry.extensions import FieldExtension
from strawberry.federation.schema_directives import Tag
from strawberry.types.field import StrawberryField

from carbongraph.authz import Access, Target
from carbongraph.errors import Forbidden, NotFound
from carbongraph.resolvers.context import HasContext

PERSONAL_TAG = "personal"


class On(StrEnum):
    """What the level is measured on."""

    # The parent object, a hierarchy node (Enterprise, Community, Household, Individual).
    NODE = "NODE"
    # A value inside a field that already decided (a footprint's scope 1): no check of its own.
    PARENT = "PARENT"
    # A root field: it finds its objects through the policy (a node lookup checks the type's
    # visibility, a list is filtered in SQL, a mutation applies the domain's managing rules).
    ROOT = "ROOT"
    # A root field whose answer the domain's managing rules decide (authz/policy.py:
    # can_manage, can_grant, ...): mutations, the API keys a viewer manages.
    MANAGE = "MANAGE"
    # Platform admins only.
    PLATFORM = "PLATFORM"


class Disclosure(StrEnum):
    """How a readable value is disclosed (docs/privacy.md)."""

    NONE = "NONE"
    # An aggregate over people: primary and complementary small-cell suppression (privacy.py)
    # below PERSONAL.
    SMALL_CELL = "SMALL_CELL"
    # Names of people in a ranking: pseudonyms below PERSONAL on the ranking's owner.
    PSEUDONYMOUS = "PSEUDONYMOUS"


@dataclass(frozen=True)
class FieldPolicy:
    access: Access
    on: On
    disclosure: Disclosure = Disclosure.NONE

    @property
    def personal(self) -> bool:
        """Personal data: tagged ``personal`` so that a partner contract can leave it out."""
        return self.access is Access.PERSONAL and self.on in (On.NODE, On.ROOT)


class UndeclaredField(LookupError):
    pass


# Seeing a node at all: organisations are public to those inside them; households and people
# need aggregate access (docs/authorization.md). Every node object the schema hands out has
# passed this (lookups through ``require_visible``, lists through the SQL visibility filter),
# so a field at its type's level needs no check of its own.
NODE_LEVEL: Mapping[str, Access] = {
    "Enterprise": Access.PUBLIC,
    "Community": Access.PUBLIC,
    "Household": Access.AGGREGATE,
    "Individual": Access.AGGREGATE,
}

P = Access.PUBLIC
A = Access.AGGREGATE
X = Access.PERSONAL
SMALL = Disclosure.SMALL_CELL


def manage(names: str) -> dict[str, FieldPolicy]:
    return {n: FieldPolicy(Access.NONE, On.MANAGE) for n in _names(names)}


def _names(names: str) -> list[str]:
    return names.split()


def node(level: Access, names: str, disclosure: Disclosure = Disclosure.NONE) -> dict[str, Any]:
    return {n: FieldPolicy(level, On.NODE, disclosure) for n in _names(names)}


def parent(names: str, disclosure: Disclosure = Disclosure.NONE) -> dict[str, FieldPolicy]:
    return {n: FieldPolicy(Access.NONE, On.PARENT, disclosure) for n in _names(names)}


def root(level: Access, names: str, disclosure: Disclosure = Disclosure.NONE) -> dict[str, Any]:
    return {n: FieldPolicy(level, On.ROOT, disclosure) for n in _names(names)}


_NODE_COMMON = "id externalRef createdAt updatedAt archivedAt"
_CONNECTION = "pageInfo edges totalCount"
_EDGE = "cursor node"
_PAYLOAD = "userErrors"
# The types listed through connections (`<Type>Connection`, `<Type>Edge`).
_CONNECTED = (
    "Enterprise",
    "Community",
    "Household",
    "Individual",
    "ApiKey",
    "AuditEvent",
    "ActionRecord",
    "CampaignInfo",
    "RewardInfo",
)

FIELD_POLICY: Mapping[str, Mapping[str, FieldPolicy]] = {
    # -- the hierarchy ----------------------------------------------------------------------
    "Enterprise": {
        **node(P, f"{_NODE_COMMON} name kind communities employees"),
        **node(A, "footprint reductions inventory", SMALL),
        **node(P, "leaderboard", SMALL),
    },
    "Community": {
        **node(P, f"{_NODE_COMMON} name kind regionCode timezone enterprise parent"),
        **node(P, "subCommunities households members"),
        **node(A, "footprint reductions inventory", SMALL),
        **node(P, "leaderboard", SMALL),
    },
    "Household": {
        **node(A, f"{_NODE_COMMON} dwellingType hasRooftopSolar community regionCode members"),
        **node(A, "statementLink"),
        **node(A, "footprint reductions statement", SMALL),
        **node(X, "name suggestions"),
    },
    "Individual": {
        **node(A, f"{_NODE_COMMON} household"),
        **node(A, "footprint reductions", SMALL),
        **node(X, "displayName email credits householdHistory suggestions"),
        **node(X, "statement", SMALL),
    },
    **{f"{t}Connection": parent(_CONNECTION) for t in _CONNECTED},
    **{f"{t}Edge": parent(_EDGE) for t in _CONNECTED},
    "PageInfo": parent("hasNextPage hasPreviousPage startCursor endCursor"),
    "HouseholdMembershipPeriod": parent("validFrom validTo household"),
    # -- accounting -------------------------------------------------------------------------
    "Footprint": parent(
        "period suppressed suppressionReason scope1 scope2LocationBased scope2MarketBased "
        "scope3 scope3Categories scope3Plus gross cleanEnergyOffset net recordCount "
        "memberCount perCapita series explain"
    ),
    "FootprintPoint": parent(
        "from to scope1 scope2LocationBased scope2MarketBased scope3 gross cleanEnergyOffset net"
    ),
    "FootprintSource": parent(
        "activityType recordCount quantity unit locationBased marketBased cleanEnergyOffset "
        "factor marketFactor"
    ),
    "Scope3Category": parent("category name grams"),
    "PeriodRange": parent("from to"),
    "Reductions": parent(
        "period suppressed suppressionReason scope1 scope2 scope3 scope3Plus "
        "totalWithinScopes total memberCount perCapita"
    ),
    "ReductionsPerCapita": parent("scope1 scope2 scope3 scope3Plus totalWithinScopes total"),
    "ActivityRecord": parent(
        "id activityType quantity unit periodStart periodEnd source externalId dataQuality "
        "scope category locationBased marketBased cleanEnergyOffset recordedAt"
    ),
    "ActivityTypeInfo": parent("code kind unit scope category description"),
    "EmissionFactor": parent(
        "id factorKey basis regionCode unit validFrom validTo kgCo2ePerUnit gasBreakdown gwpSet "
        "source citation version"
    ),
    "GhgInventory": parent(
        "nodeId nodeName via year period scope1 scope2LocationBased scope2MarketBased scope3 "
        "scope3Categories gross cleanEnergyOffset net scope3Plus reductionsWithinScopes "
        "recordCount memberCount perCapita factors dataQuality csv json"
    ),
    "InventoryPerCapita": parent(
        "scope1 scope2LocationBased scope2MarketBased scope3 gross cleanEnergyOffset net "
        "scope3Plus reductionsWithinScopes"
    ),
    "DataQualityShare": parent("dataQuality recordCount gross shareOfGross"),
    # -- actions and credits ----------------------------------------------------------------
    "Credits": parent("balance ledger"),
    "CreditEntry": parent("id kind amount note createdAt"),
    "CreditsChange": parent("individualId balance changedAt"),
    "ActionRecord": parent(
        "id individualId actionType units occurredOn status source credits avoidedGrams "
        "externalId reason createdAt evidence"
    ),
    "ActionTypeInfo": parent(
        "code version methodology name unit creditsPerUnit avoidedGramsPerUnit scope category "
        "employerScope employerCategory dailyCap evidence selfReportCap validFrom validTo "
        "citation"
    ),
    "EvidenceInfo": parent("id sha256 contentType capturedAt"),
    "CampaignInfo": {
        **parent("id name startsOn endsOn actionTypes goalKind goalValue bonusPercent"),
        **parent("progress", SMALL),
        **parent("topParticipants", Disclosure.PSEUDONYMOUS),
    },
    "CampaignProgress": parent(
        "suppressed suppressionReason avoidedGrams participants percentOfGoal"
    ),
    "CampaignStanding": parent("rank name individualId avoidedGrams suppressed"),
    "RewardInfo": parent("id name costCredits stock validFrom validTo"),
    "Redemption": parent("id rewardId createdAt"),
    "CreditPolicyInfo": parent("programmeId expiryMonths"),
    # -- engagement -------------------------------------------------------------------------
    "Statement": {
        **parent(
            "period previousPeriod weeks days usage gross cleanEnergyOffset net memberCount "
            "perCapita previousNet netChange netChangePercent creditsEarned"
        ),
        **parent("ranking electricityRanking", SMALL),
    },
    "StatementWeek": parent("from to usage gross cleanEnergyOffset net"),
    "StatementDay": parent("date usage gross cleanEnergyOffset net"),
    "StatementLink": parent("url expiresAt"),
    "UtilityUsage": parent("activityType unit quantity emissions cleanEnergyOffset"),
    "StatementRanking": parent(
        "peers peerCommunity rank percentile peerCount peerAverageNet peerAveragePerCapita "
        "suppressed suppressionReason"
    ),
    "StatementUsageRanking": parent(
        "activityType unit peers peerCommunity rank percentile peerCount perCapita "
        "peerAveragePerCapita suppressed suppressionReason"
    ),
    "Leaderboard": parent(
        "metric period totalCount population suppressed suppressionReason edges pageInfo"
    ),
    "LeaderboardEdge": parent(_EDGE),
    "LeaderboardEntry": {
        **parent("rank percentile pseudonymous memberId value memberCount suppressed"),
        **parent("suppressionReason"),
        **parent("name", Disclosure.PSEUDONYMOUS),
    },
    "LeaderboardChange": parent("communityId metric changedAt"),
    # -- insights ---------------------------------------------------------------------------
    "Suggestion": parent(
        "code ruleVersion title description why annualCo2eSaved annualKgCo2eSaved "
        "annualMoneySaved currency evidence assumptions sources observedFrom observedTo "
        "daysObserved"
    ),
    "SuggestionEvidence": parent("label value unit"),
    # -- security ---------------------------------------------------------------------------
    "Viewer": parent("subject grants individual"),
    "RoleGrant": parent("id principal role nodeId createdAt"),
    "ApiKey": parent(
        "id name prefix scopes createdBy createdAt expiresAt lastUsedAt revokedAt "
        "rotatedFromId active"
    ),
    "ApiKeyScope": parent("role nodeId"),
    "AuditEvent": parent(
        "id occurredAt actor actorKind apiKeyId requestId operation outcome targetIds inputSummary"
    ),
    # -- mutation payloads: what the mutation just wrote, for the caller who may write it ----
    "UserError": parent("field message code"),
    "UserWarning": parent("field message code"),
    "EnterprisePayload": parent(f"enterprise {_PAYLOAD}"),
    "CommunityPayload": parent(f"community {_PAYLOAD}"),
    "HouseholdPayload": parent(f"household {_PAYLOAD}"),
    "HouseholdsPayload": parent(f"households createdCount unchangedCount {_PAYLOAD}"),
    "IndividualPayload": parent(f"individual {_PAYLOAD}"),
    "IndividualsPayload": parent(f"individuals createdCount unchangedCount {_PAYLOAD}"),
    "RecordActivitiesPayload": parent(f"records createdCount unchangedCount warnings {_PAYLOAD}"),
    "RecordActionsPayload": parent(f"actions createdCount unchangedCount warnings {_PAYLOAD}"),
    "RecalculateFootprintPayload": parent(f"examinedCount changedCount footprint {_PAYLOAD}"),
    "UploadEvidencePayload": parent(f"evidence {_PAYLOAD}"),
    "ReviewActionPayload": parent(f"action {_PAYLOAD}"),
    "CreateRewardPayload": parent(f"reward {_PAYLOAD}"),
    "RedeemRewardPayload": parent(f"redemption balance {_PAYLOAD}"),
    "CreateCampaignPayload": parent(f"campaign {_PAYLOAD}"),
    "SetCreditPolicyPayload": parent(f"policy {_PAYLOAD}"),
    "PublishActionTypePayload": parent(f"actionType {_PAYLOAD}"),
    "CreateApiKeyPayload": parent(f"apiKey secret {_PAYLOAD}"),
    "RotateApiKeyPayload": parent(f"apiKey secret replacedApiKey {_PAYLOAD}"),
    "RevokeApiKeyPayload": parent(f"apiKey {_PAYLOAD}"),
    "GrantRolePayload": parent(f"grant {_PAYLOAD}"),
    "RevokeRolePayload": parent(f"revokedGrantId {_PAYLOAD}"),
    # -- roots ------------------------------------------------------------------------------
    "Query": {
        # Federation: each entity's reference resolver checks as `node` does.
        **root(Access.NONE, "_service _entities me"),
        **root(P, "node nodes enterprise community enterprises communities"),
        **root(A, "household individual ghgInventory actionReviewQueue campaigns"),
        **root(P, "actionTypes activityTypes emissionFactors rewards"),
        **{n: FieldPolicy(X, On.PLATFORM) for n in _names("platformFootprint platformReductions")},
        "auditEvents": FieldPolicy(X, On.PLATFORM),
        "apiKeys": FieldPolicy(A, On.MANAGE),
    },
    "Mutation": manage(
        "createEnterprise updateEnterprise archiveEnterprise createCommunity updateCommunity "
        "archiveCommunity createHousehold createHouseholds updateHousehold archiveHousehold "
        "createIndividual createIndividuals updateIndividual archiveIndividual moveIndividual "
        "linkEmployee endEmployment recordActivity recordActivities recalculateFootprint "
        "uploadEvidence reverseAction reviewAction recordAction recordVerifiedActions "
        "createReward redeemReward createCampaign setCreditPolicy publishActionType "
        "createApiKey rotateApiKey revokeApiKey grantRole revokeRole",
    ),
    # A leaderboard change says only that a board the viewer may read moved.
    "Subscription": {**root(X, "creditsChanged"), **root(P, "leaderboardChanged")},
    # Federation's own: the SDL.
    "_Service": parent("sdl"),
}


def policy_of(type_name: str, field_name: str) -> FieldPolicy:
    try:
        return FIELD_POLICY[type_name][field_name]
    except KeyError:
        raise UndeclaredField(f"{type_name}.{field_name}") from None


# -- decisions ------------------------------------------------------------------------------
# The only calls of ``Viewer.access`` above the authz package: everything in schema/ asks here.


def level(info: HasContext, target: Target) -> Access:
    """The viewer's level on a node: what privacy.py's disclosure rules take."""
    return info.context.viewer.access(target)


def require(info: HasContext, target: Target, needed: Access) -> None:
    """FORBIDDEN (or NOT_FOUND, outside the viewer's tenants) unless the viewer has ``needed``
    on ``target``."""
    viewer = info.context.viewer
    if viewer.access(target) >= needed:
        return
    if viewer.may_know_exists(target):
        raise Forbidden()
    raise NotFound()


def require_field(info: HasContext, type_name: str, field_name: str, target: Target) -> None:
    """The check a field's declaration makes, for another way to the same data (a root field,
    a subscription): e.g. ``Query.ghgInventory`` is ``Enterprise.inventory``."""
    require(info, target, policy_of(type_name, field_name).access)


def visible(info: HasContext, type_name: str, target: Target) -> bool:
    """Whether the viewer may see a node of this type at all (``NODE_LEVEL``)."""
    return info.context.viewer.access(target) >= NODE_LEVEL[type_name]


def require_visible(info: HasContext, type_name: str, target: Target) -> None:
    require(info, target, NODE_LEVEL[type_name])


# -- enforcement ----------------------------------------------------------------------------


class PolicyExtension(FieldExtension):
    """The resolve-time check of an ``On.NODE`` field: the viewer's level on the parent node."""

    def __init__(self, policy: FieldPolicy) -> None:
        self.policy = policy

    def resolve(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        require(info, source.policy_target(), self.policy.access)
        return next_(source, info, **kwargs)

    async def resolve_async(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        require(info, source.policy_target(), self.policy.access)
        result = next_(source, info, **kwargs)
        if hasattr(result, "__await__"):
            result = await result
        return result


def _fields(schema: strawberry.Schema) -> Iterator[tuple[str, str, StrawberryField | None]]:
    """(type, field, its Strawberry field) for every field of the schema's object types, by
    their GraphQL names (as the SDL and the planner see them)."""
    for type_name, gql_type in schema._schema.type_map.items():
        if isinstance(gql_type, GraphQLObjectType) and not type_name.startswith("__"):
            for field_name, gql_field in gql_type.fields.items():
                field = (gql_field.extensions or {}).get("strawberry-definition")
                yield type_name, field_name, field if isinstance(field, StrawberryField) else None


def undeclared(schema: strawberry.Schema) -> list[str]:
    """Fields of the schema's object types that ``FIELD_POLICY`` does not declare."""
    return [f"{t}.{f}" for t, f, _ in _fields(schema) if f not in FIELD_POLICY.get(t, {})]


def stale(schema: strawberry.Schema) -> list[str]:
    """Declarations of fields the schema does not have (a rename left behind)."""
    present = {f"{t}.{f}" for t, f, _ in _fields(schema)}
    declared = (f"{t}.{f}" for t, fields in FIELD_POLICY.items() for f in fields)
    return sorted(name for name in declared if name not in present)


def apply(schema: strawberry.Schema) -> None:
    """Attach the declared policy to the fields of a built schema's types, for the schema
    built next from the same classes: the resolve-time check and the personal tag. Raises
    ``UndeclaredField`` naming every undeclared field."""
    missing = undeclared(schema)
    if missing:
        raise UndeclaredField(
            "Fields without a declaration in carbongraph.schema.policy.FIELD_POLICY "
            f"(who may read them, how they are disclosed): {', '.join(missing)}"
        )
    mistagged = [
        f"{t}.{f}"
        for t, f, field in _fields(schema)
        if field is not None and _tagged(field) and not FIELD_POLICY[t][f].personal
    ]
    if mistagged:
        raise UndeclaredField(
            f"Tagged personal but not declared PERSONAL in FIELD_POLICY: {', '.join(mistagged)}"
        )
    for type_name, field_name, field in _fields(schema):
        if field is not None:
            _attach(type_name, field, FIELD_POLICY[type_name][field_name])


def _tagged(field: StrawberryField) -> bool:
    return any(isinstance(d, Tag) and d.name == PERSONAL_TAG for d in field.directives)


def _attach(type_name: str, field: StrawberryField, policy: FieldPolicy) -> None:
    if policy.personal and not _tagged(field):
        field.directives = [*field.directives, Tag(name=PERSONAL_TAG)]
    needs_check = policy.on is On.NODE and policy.access > NODE_LEVEL[type_name]
    if needs_check and not any(isinstance(e, PolicyExtension) for e in field.extensions):
        field.extensions = [*field.extensions, PolicyExtension(policy)]


def declared_fields() -> Iterable[tuple[str, str, FieldPolicy]]:
    for type_name, fields in FIELD_POLICY.items():
        for field_name, policy in fields.items():
            yield type_name, field_name, policy
