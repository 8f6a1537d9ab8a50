"""Create, update, archive and move across the hierarchy. Each returns a payload with the node
and ``userErrors``; on any error nothing is written."""

from __future__ import annotations

from datetime import date
from typing import Any

import strawberry

from carbongraph.resolvers.context import Info
from carbongraph.schema.common import MAX_PAGE, UserError, sized_field, user_errors_field
from carbongraph.schema.enums import CommunityKind, DwellingType, EnterpriseKind
from carbongraph.schema.hierarchy.types import (
    CommunityNode,
    EnterpriseNode,
    HouseholdNode,
    IndividualNode,
    personal_input,
)
from carbongraph.schema.mutation_support import input_id, optional_input_id, run_mutation
from carbongraph.services import hierarchy as service
from carbongraph.services import onboarding
from carbongraph.services.validation import Checker


def _value(enum_value: Any) -> Any:
    return None if enum_value is None else enum_value.value


# -- payloads ---------------------------------------------------------------------------------
@strawberry.type
class EnterprisePayload:
    enterprise: EnterpriseNode | None
    user_errors: list[UserError] = user_errors_field()


@strawberry.type
class CommunityPayload:
    community: CommunityNode | None
    user_errors: list[UserError] = user_errors_field()


@strawberry.type
class HouseholdPayload:
    household: HouseholdNode | None
    user_errors: list[UserError] = user_errors_field()


@strawberry.type
class IndividualPayload:
    individual: IndividualNode | None
    user_errors: list[UserError] = user_errors_field()


@strawberry.type
class HouseholdsPayload:
    # One per input item (up to 1,000); priced as a page: the input is the work.
    households: list[HouseholdNode] = sized_field(
        MAX_PAGE, description="The households, in input order (existing ones as they are)."
    )
    created_count: int
    unchanged_count: int
    user_errors: list[UserError] = user_errors_field()


@strawberry.type
class IndividualsPayload:
    # One per input item (up to 1,000); priced as a page: the input is the work.
    individuals: list[IndividualNode] = sized_field(
        MAX_PAGE, description="The people, in input order (existing ones as they are)."
    )
    created_count: int
    unchanged_count: int
    user_errors: list[UserError] = user_errors_field()


# -- inputs -----------------------------------------------------------------------------------
@strawberry.input
class CreateEnterpriseInput:
    name: str
    kind: EnterpriseKind
    external_ref: str | None = None


@strawberry.input
class UpdateEnterpriseInput:
    id: strawberry.ID
    name: str | None = None
    kind: EnterpriseKind | None = None


@strawberry.input
class CreateCommunityInput:
    name: str
    kind: CommunityKind
    region_code: str | None = strawberry.field(
        default=None, description="ISO 3166-2, e.g. CN-GD. Defaults to the parent's."
    )
    timezone: str | None = strawberry.field(
        default=None, description="IANA time zone. Defaults to the parent's."
    )
    enterprise_id: strawberry.ID | None = None
    parent_id: strawberry.ID | None = None
    external_ref: str | None = None


@strawberry.input
class UpdateCommunityInput:
    id: strawberry.ID
    name: str | None = None
    kind: CommunityKind | None = None
    region_code: str | None = None
    timezone: str | None = None


@strawberry.input
class CreateHouseholdInput:
    community_id: strawberry.ID
    name: str = personal_input()
    dwelling_type: DwellingType
    has_rooftop_solar: bool = False
    external_ref: str | None = None


@strawberry.input
class UpdateHouseholdInput:
    id: strawberry.ID
    name: str | None = personal_input(None)
    dwelling_type: DwellingType | None = None
    has_rooftop_solar: bool | None = None


@strawberry.input
class CreateIndividualInput:
    display_name: str = personal_input()
    email: str | None = personal_input(None)
    subject: str | None = strawberry.field(
        default=None, description="Login subject (JWT sub) that owns this account."
    )
    household_id: strawberry.ID | None = None
    member_from: date | None = strawberry.field(
        default=None,
        description="First day in the household; defaults to today. Activities and actions "
        "dated before it count for the person only, for no household or community (they are "
        "answered with the warning NOT_ATTRIBUTED): give the real date when onboarding.",
    )
    employer_id: strawberry.ID | None = None
    employed_from: date | None = strawberry.field(default=None, description="Defaults to today.")
    external_ref: str | None = None


@strawberry.input
class CreateHouseholdsInput:
    items: list[CreateHouseholdInput] = strawberry.field(description="1 to 1,000 households.")


@strawberry.input
class CreateIndividualsInput:
    items: list[CreateIndividualInput] = strawberry.field(description="1 to 1,000 people.")


@strawberry.input
class UpdateIndividualInput:
    id: strawberry.ID
    display_name: str | None = personal_input(None)
    email: str | None = personal_input(None)


@strawberry.input
class ArchiveInput:
    id: strawberry.ID


@strawberry.input
class ArchiveIndividualInput:
    id: strawberry.ID
    effective_on: date | None = strawberry.field(
        default=None, description="Day the household and employments end. Defaults to today."
    )


@strawberry.input
class MoveIndividualInput:
    individual_id: strawberry.ID
    household_id: strawberry.ID | None = strawberry.field(
        description="The new household; null moves the person out of any household."
    )
    effective_from: date = strawberry.field(
        description="First day in the new household; earlier days keep rolling up to the old one."
    )


@strawberry.input
class EmploymentInput:
    individual_id: strawberry.ID
    enterprise_id: strawberry.ID
    effective_from: date


# -- resolvers --------------------------------------------------------------------------------
async def _enterprise(info: Info, action: Any) -> EnterprisePayload:
    row, errors = await run_mutation(info, action)
    return EnterprisePayload(
        enterprise=EnterpriseNode.from_row(row) if row else None, user_errors=errors
    )


async def _community(info: Info, action: Any) -> CommunityPayload:
    row, errors = await run_mutation(info, action)
    return CommunityPayload(
        community=CommunityNode.from_row(row) if row else None, user_errors=errors
    )


async def _household(info: Info, action: Any) -> HouseholdPayload:
    row, errors = await run_mutation(info, action)
    return HouseholdPayload(
        household=HouseholdNode.from_row(row) if row else None, user_errors=errors
    )


async def _individual(info: Info, action: Any) -> IndividualPayload:
    row, errors = await run_mutation(info, action)
    return IndividualPayload(
        individual=IndividualNode.from_row(row) if row else None, user_errors=errors
    )


async def _batch(info: Info, items: list[Any], one: Any) -> tuple[Any, list[UserError]]:
    return await run_mutation(
        info,
        lambda: onboarding.run_items(
            info.context.caller, items, one, refs=lambda item: item.external_ref
        ),
    )


def _household_values(item: CreateHouseholdInput) -> dict[str, Any]:
    """What createHousehold and each item of createHouseholds pass to the service."""
    return {
        "community_id": input_id(item.community_id, "Community", "communityId"),
        "name": item.name,
        "dwelling_type": item.dwelling_type.value,
        "has_rooftop_solar": item.has_rooftop_solar,
        "external_ref": item.external_ref,
    }


def _individual_values(item: CreateIndividualInput) -> dict[str, Any]:
    """What createIndividual and each item of createIndividuals pass to the service."""
    return {
        "display_name": item.display_name,
        "email": item.email,
        "subject": item.subject,
        "household_id": optional_input_id(item.household_id, "Household", "householdId"),
        "member_from": item.member_from,
        "employer_id": optional_input_id(item.employer_id, "Enterprise", "employerId"),
        "employed_from": item.employed_from,
        "external_ref": item.external_ref,
    }


def _household_item(info: Info, item: CreateHouseholdInput) -> Any:
    return onboarding.ensure_household(info.context.caller, **_household_values(item))


def _individual_item(info: Info, item: CreateIndividualInput) -> Any:
    return onboarding.ensure_individual(
        info.context.caller, **_individual_values(item), reload=False
    )


@strawberry.type
class HierarchyMutations:
    @strawberry.mutation(description="Create a partner enterprise (platform admins).")
    async def create_enterprise(
        self, info: Info, input: CreateEnterpriseInput
    ) -> EnterprisePayload:
        return await _enterprise(
            info,
            lambda: service.create_enterprise(
                info.context.caller,
                name=input.name,
                kind=input.kind.value,
                external_ref=input.external_ref,
            ),
        )

    @strawberry.mutation
    async def update_enterprise(
        self, info: Info, input: UpdateEnterpriseInput
    ) -> EnterprisePayload:
        async def action() -> Any:
            pk = input_id(input.id, "Enterprise", "id")
            check = Checker()
            name = check.text("name", input.name, required=False)
            return await service.update_node(
                info.context.caller,
                "Enterprise",
                pk,
                {"name": name, "kind": _value(input.kind)},
                check,
            )

        return await _enterprise(info, action)

    @strawberry.mutation(description="Archive an enterprise that has no active communities.")
    async def archive_enterprise(self, info: Info, input: ArchiveInput) -> EnterprisePayload:
        return await _enterprise(
            info,
            lambda: service.archive_node(
                info.context.caller, "Enterprise", input_id(input.id, "Enterprise", "id")
            ),
        )

    @strawberry.mutation(
        description="Create a community under an enterprise, under another community, or "
        "(platform admins) directly under the platform."
    )
    async def create_community(self, info: Info, input: CreateCommunityInput) -> CommunityPayload:
        async def action() -> Any:
            return await service.create_community(
                info.context.caller,
                name=input.name,
                kind=input.kind.value,
                region_code=input.region_code,
                timezone=input.timezone,
                enterprise_id=optional_input_id(input.enterprise_id, "Enterprise", "enterpriseId"),
                parent_id=optional_input_id(input.parent_id, "Community", "parentId"),
                external_ref=input.external_ref,
            )

        return await _community(info, action)

    @strawberry.mutation
    async def update_community(self, info: Info, input: UpdateCommunityInput) -> CommunityPayload:
        async def action() -> Any:
            pk = input_id(input.id, "Community", "id")
            check = Checker()
            changes = {
                "name": check.text("name", input.name, required=False),
                "kind": _value(input.kind),
                "region_code": check.region("regionCode", input.region_code),
                "timezone": check.timezone("timezone", input.timezone),
            }
            return await service.update_node(info.context.caller, "Community", pk, changes, check)

        return await _community(info, action)

    @strawberry.mutation(
        description="Archive a community with no active sub-communities or households."
    )
    async def archive_community(self, info: Info, input: ArchiveInput) -> CommunityPayload:
        return await _community(
            info,
            lambda: service.archive_node(
                info.context.caller, "Community", input_id(input.id, "Community", "id")
            ),
        )

    @strawberry.mutation
    async def create_household(self, info: Info, input: CreateHouseholdInput) -> HouseholdPayload:
        async def action() -> Any:
            return await service.create_household(info.context.caller, **_household_values(input))

        return await _household(info, action)

    @strawberry.mutation(
        description="Create up to 1,000 households, all or nothing, authorized like "
        "createHousehold. Idempotent by externalRef: an item whose externalRef names an existing "
        "household with the same values is answered with it and changes nothing."
    )
    async def create_households(
        self, info: Info, input: CreateHouseholdsInput
    ) -> HouseholdsPayload:
        result, errors = await _batch(info, input.items, lambda item: _household_item(info, item))
        return HouseholdsPayload(
            households=[HouseholdNode.from_row(r) for r in result.rows] if result else [],
            created_count=result.created if result else 0,
            unchanged_count=result.unchanged if result else 0,
            user_errors=errors,
        )

    @strawberry.mutation
    async def update_household(self, info: Info, input: UpdateHouseholdInput) -> HouseholdPayload:
        async def action() -> Any:
            pk = input_id(input.id, "Household", "id")
            check = Checker()
            changes = {
                "name": check.text("name", input.name, required=False),
                "dwelling_type": _value(input.dwelling_type),
                "has_rooftop_solar": input.has_rooftop_solar,
            }
            return await service.update_node(info.context.caller, "Household", pk, changes, check)

        return await _household(info, action)

    @strawberry.mutation(description="Archive a household nobody lives in any more.")
    async def archive_household(self, info: Info, input: ArchiveInput) -> HouseholdPayload:
        return await _household(
            info,
            lambda: service.archive_node(
                info.context.caller, "Household", input_id(input.id, "Household", "id")
            ),
        )

    @strawberry.mutation(description="Open a carbon account for a person.")
    async def create_individual(
        self, info: Info, input: CreateIndividualInput
    ) -> IndividualPayload:
        async def action() -> Any:
            return await service.create_individual(info.context.caller, **_individual_values(input))

        return await _individual(info, action)

    @strawberry.mutation(
        description="Open up to 1,000 accounts, all or nothing, authorized like "
        "createIndividual. Idempotent by externalRef: an item whose externalRef names an "
        "existing person with the same values is answered with them and changes nothing."
    )
    async def create_individuals(
        self, info: Info, input: CreateIndividualsInput
    ) -> IndividualsPayload:
        result, errors = await _batch(info, input.items, lambda item: _individual_item(info, item))
        return IndividualsPayload(
            individuals=[IndividualNode.from_row(r) for r in result.rows] if result else [],
            created_count=result.created if result else 0,
            unchanged_count=result.unchanged if result else 0,
            user_errors=errors,
        )

    @strawberry.mutation(description="Change a person's profile (managers, or the person).")
    async def update_individual(
        self, info: Info, input: UpdateIndividualInput
    ) -> IndividualPayload:
        return await _individual(
            info,
            lambda: service.update_individual(
                info.context.caller,
                input_id(input.id, "Individual", "id"),
                display_name=input.display_name,
                email=input.email,
            ),
        )

    @strawberry.mutation(description="Close a person's account; their history stays.")
    async def archive_individual(
        self, info: Info, input: ArchiveIndividualInput
    ) -> IndividualPayload:
        return await _individual(
            info,
            lambda: service.archive_individual(
                info.context.caller, input_id(input.id, "Individual", "id"), input.effective_on
            ),
        )

    @strawberry.mutation(description="Move a person to another household from a date on.")
    async def move_individual(self, info: Info, input: MoveIndividualInput) -> IndividualPayload:
        async def action() -> Any:
            return await service.move_individual(
                info.context.caller,
                input_id(input.individual_id, "Individual", "individualId"),
                optional_input_id(input.household_id, "Household", "householdId"),
                input.effective_from,
            )

        return await _individual(info, action)

    @strawberry.mutation(description="Record that a person works for an enterprise from a date.")
    async def link_employee(self, info: Info, input: EmploymentInput) -> IndividualPayload:
        return await _individual(
            info,
            lambda: service.set_employment(
                info.context.caller,
                input_id(input.individual_id, "Individual", "individualId"),
                input_id(input.enterprise_id, "Enterprise", "enterpriseId"),
                input.effective_from,
                employed=True,
            ),
        )

    @strawberry.mutation(description="End a person's employment at an enterprise on a date.")
    async def end_employment(self, info: Info, input: EmploymentInput) -> IndividualPayload:
        return await _individual(
            info,
            lambda: service.set_employment(
                info.context.caller,
                input_id(input.individual_id, "Individual", "individualId"),
                input_id(input.enterprise_id, "Enterprise", "enterpriseId"),
                input.effective_from,
                employed=False,
            ),
        )
