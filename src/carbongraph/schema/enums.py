"""Enums of the account hierarchy."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(description="What kind of partner organisation an enterprise is.")
class EnterpriseKind(Enum):
    COMPANY = "COMPANY"
    UNIVERSITY = "UNIVERSITY"
    PROPERTY_MANAGER = "PROPERTY_MANAGER"
    CITY_PROGRAMME = "CITY_PROGRAMME"
    OTHER = "OTHER"


@strawberry.enum(description="What kind of place a community is. Communities nest.")
class CommunityKind(Enum):
    VILLAGE = "VILLAGE"
    CAMPUS = "CAMPUS"
    BUILDING = "BUILDING"
    RESIDENTIAL_COMPOUND = "RESIDENTIAL_COMPOUND"
    OFFICE_PARK = "OFFICE_PARK"
    DISTRICT = "DISTRICT"
    OTHER = "OTHER"


@strawberry.enum(description="The dwelling a household lives in.")
class DwellingType(Enum):
    HOUSE = "HOUSE"
    APARTMENT = "APARTMENT"
    DORM_ROOM = "DORM_ROOM"


@strawberry.enum(description="What a leaderboard ranks by.")
class LeaderboardMetric(Enum):
    REDUCTIONS = "REDUCTIONS"
    NET_EMISSIONS_PER_CAPITA = "NET_EMISSIONS_PER_CAPITA"
