"""SQLModel tables. Every table registers on ``SQLModel.metadata``, which Alembic reads."""

from sqlmodel import SQLModel

from carbongraph.models.access import RoleGrant
from carbongraph.models.accounting import (
    ActivityRecord,
    EmissionFactor,
    FootprintTotal,
    PopulationChange,
)
from carbongraph.models.actions import ActionRecord as ActionRecordRow
from carbongraph.models.actions import (
    ActionType,
    Campaign,
    CreditEntry,
    CreditPolicy,
    Evidence,
    Redemption,
    Reward,
)
from carbongraph.models.hierarchy import (
    Community,
    Employment,
    Enterprise,
    Household,
    HouseholdMembership,
    Individual,
)
from carbongraph.models.security import ApiKey, ApiKeyScope, AuditEvent

metadata = SQLModel.metadata

__all__ = [
    "ActionRecordRow",
    "ActionType",
    "ActivityRecord",
    "ApiKey",
    "ApiKeyScope",
    "AuditEvent",
    "Campaign",
    "Community",
    "CreditEntry",
    "CreditPolicy",
    "EmissionFactor",
    "Employment",
    "Enterprise",
    "Evidence",
    "FootprintTotal",
    "Household",
    "HouseholdMembership",
    "Individual",
    "PopulationChange",
    "Redemption",
    "Reward",
    "RoleGrant",
    "metadata",
]
