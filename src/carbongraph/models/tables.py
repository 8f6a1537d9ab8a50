"""Short names of the tables for SQLAlchemy Core queries, each defined once.

``from carbongraph.models.tables import H, M`` instead of ``H = Household.__table__`` in every
module; a module that names a table otherwise says so where it does.
"""

from carbongraph.models import (
    ActionRecordRow,
    ActivityRecord,
    Campaign,
    Community,
    CreditEntry,
    CreditPolicy,
    EmissionFactor,
    Employment,
    Enterprise,
    FootprintTotal,
    Household,
    HouseholdMembership,
    Individual,
    PopulationChange,
    Redemption,
    Reward,
)

# The hierarchy
E = Enterprise.__table__
C = Community.__table__
H = Household.__table__
I = Individual.__table__  # noqa: E741
M = HouseholdMembership.__table__
EM = Employment.__table__
# Accounting
R = ActivityRecord.__table__
F = EmissionFactor.__table__
T = FootprintTotal.__table__
POP = PopulationChange.__table__
# Actions and credits
AR = ActionRecordRow.__table__
CE = CreditEntry.__table__
CP = Campaign.__table__
CPY = CreditPolicy.__table__
RW = Reward.__table__
RD = Redemption.__table__
