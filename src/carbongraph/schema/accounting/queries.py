"""Root query fields: platform totals and the reference data of the accounting core."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
import strawberry
from strawberry.federation.schema_directives import Cost

from carbongraph.accounting.activities import ACTIVITY_TYPES
from carbongraph.accounting.factors import F as FACTORS
from carbongraph.errors import Forbidden
from carbongraph.resolvers.context import Info
from carbongraph.schema.accounting.types import (
    ActivityTypeInfo,
    EmissionFactor,
    FactorBasis,
    Footprint,
    PeriodInput,
    Reductions,
    activity_types,
    footprint_of,
    reductions_of,
)
from carbongraph.schema.common import sized_field

EMISSION_FACTORS = 500


@strawberry.type
class AccountingQueries:
    @strawberry.federation.field(
        description="Everything on the platform (platform admins).",
        requires_scopes=[["PLATFORM_ADMIN"]],
        directives=[Cost(weight=5)],
    )
    async def platform_footprint(self, info: Info, period: PeriodInput) -> Footprint:
        _require_platform(info)
        return await footprint_of(info, ("P", 0, ""), period, None)

    @strawberry.federation.field(
        description="Reductions across the platform (platform admins).",
        requires_scopes=[["PLATFORM_ADMIN"]],
        directives=[Cost(weight=5)],
    )
    async def platform_reductions(self, info: Info, period: PeriodInput) -> Reductions:
        _require_platform(info)
        return await reductions_of(info, ("P", 0, ""), period, None)

    @sized_field(len(ACTIVITY_TYPES), "The activity types that can be recorded.")
    def activity_types(self) -> list[ActivityTypeInfo]:
        return activity_types()

    # The library: a few hundred versions; filtered by key, a few.
    @sized_field(EMISSION_FACTORS, "The emission factor library, newest first.")
    async def emission_factors(
        self,
        info: Info,
        factor_key: str | None = None,
        region_code: str | None = None,
        valid_on: date | None = None,
        basis: FactorBasis | None = None,
    ) -> list[EmissionFactor]:
        select = sa.select(FACTORS)
        if factor_key:
            select = select.where(FACTORS.c.factor_key == factor_key)
        if region_code:
            select = select.where(FACTORS.c.region_code == region_code)
        if basis is not None:
            select = select.where(FACTORS.c.basis == basis.value)
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


def _require_platform(info: Info) -> None:
    if not info.context.viewer.is_platform_admin:
        raise Forbidden("Only platform admins read platform totals.")
