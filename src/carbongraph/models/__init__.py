"""SQLModel tables. Every table registers on ``SQLModel.metadata``, which Alembic reads."""

from sqlmodel import SQLModel

from carbongraph.models.access import RoleGrant
from carbongraph.models.accounting import (
    ActivityRecord,
    EmissionFactor,
    FootprintTotal,
    PopulationChange,
)
from carbongraph.models.hierarchy import (
    Community,
    Employment,
    Enterprise,
    Household,
    HouseholdMembership,
    Individual,
)

metadata = SQLModel.metadata

__all__ = [
    "ActivityRecord",
    "Community",
    "EmissionFactor",
    "Employment",
    "Enterprise",
    "FootprintTotal",
    "Household",
    "HouseholdMembership",
    "Individual",
    "PopulationChange",
    "RoleGrant",
    "metadata",
]
