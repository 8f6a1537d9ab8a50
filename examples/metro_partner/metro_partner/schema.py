"""The partner's Apollo Federation v2.9 subgraph schema.

Federation surface:

- owns ``Station`` and ``MetroTrip`` (plus ``MetroTripConnection``/``MetroTripEdge``/
  ``MetroPageInfo``, prefixed so they never clash with carbongraph's ``PageInfo`` and
  ``*Connection`` types);
- extends carbongraph's ``Individual`` entity by key with ``metroTrips``; trips are stored by
  carbongraph's Individual global ID, so ``resolve_reference`` just keeps the id;
- references carbongraph's ``Community`` entity (``@key(fields: "id", resolvable: false)``)
  from ``Station.community``: the gateway fetches the community's fields from carbongraph.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader
from strawberry.federation.schema_directives import Key, ListSize

from . import db

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10

# ASSUMPTION (illustrative factors, not a methodology): every metro trip replaces a car trip of
# the same distance. A car emits 0.2 kg CO2e per passenger-km, the metro 0.04 kg, so a trip
# avoids distance × (0.2 − 0.04) kg = distance × 160 g CO2e.
CAR_GRAMS_PER_KM = 200
METRO_GRAMS_PER_KM = 40


def avoided_grams_co2e(distance_km: float) -> int:
    return round(distance_km * (CAR_GRAMS_PER_KM - METRO_GRAMS_PER_KM))


class BadUserInput(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT"})


# Relay-style global IDs, the same convention as carbongraph: base64 of "TypeName:pk".
def global_id(type_name: str, pk: int | str) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def global_id_pk(value: str, type_name: str, what: str = "ID") -> int:
    try:
        prefix, _, pk = base64.b64decode(value, validate=True).decode().partition(":")
        if prefix == type_name and pk.isascii() and pk.isdigit() and len(pk) <= 18:
            return int(pk)
    except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII input
        pass
    raise BadUserInput(f"Not a valid {type_name} {what}: {value!r}.")


# Cursors are opaque to clients; ours wrap the trip's primary key (keyset pagination by id).
def trip_cursor(pk: int) -> str:
    return global_id("MetroTripCursor", pk)


# ---------------------------------------------------------------------------------------------
# Per-request context: DataLoaders, so that N entities cost one SQL statement per kind of read.


TripPage = tuple[int, list[sa.Row[Any]]]  # (total count, rows of the requested page + 1)


@dataclass
class MetroContext:
    engine: AsyncEngine
    claims: dict[str, Any] | None = None  # verified JWT claims when METRO_JWT_SECRET is set
    stations: DataLoader[int, sa.Row[Any] | None] = field(init=False)
    _trip_loaders: dict[tuple[int, int], DataLoader[str, TripPage]] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        async def load_stations(ids: list[int]) -> list[sa.Row[Any] | None]:
            found = await db.stations_by_id(self.engine, ids)
            return [found.get(pk) for pk in ids]

        self.stations = DataLoader(load_fn=load_stations)

    def trip_pages(self, after_id: int, limit: int) -> DataLoader[str, TripPage]:
        """One loader per distinct (after, first) in the request: all the Individuals of an
        ``_entities`` call ask with the same arguments, so they share one SQL statement."""
        key = (after_id, limit)
        if key not in self._trip_loaders:

            async def load(individual_ids: list[str]) -> list[TripPage]:
                pages = await db.trip_pages(self.engine, individual_ids, after_id, limit)
                return [pages.get(i, (0, [])) for i in individual_ids]

            self._trip_loaders[key] = DataLoader(load_fn=load)
        return self._trip_loaders[key]


Info = strawberry.Info[MetroContext, None]


# ---------------------------------------------------------------------------------------------
# carbongraph's entities


@strawberry.federation.type(
    keys=[Key(fields="id", resolvable=False)],
    description="carbongraph's Community (a reference: carbongraph resolves its fields).",
)
class Community:
    id: strawberry.ID


@strawberry.type(description="Whether more trips follow, and where to continue.")
class MetroPageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.federation.type(authenticated=True, description="A station of the metro network.")
class Station:
    id: strawberry.ID
    pk: strawberry.Private[int]
    name: str
    line: str = strawberry.field(description="The metro line, e.g. 'Line 1 (Luobao)'.")
    community_id: strawberry.Private[str]

    @strawberry.field(description="The carbongraph community the station serves.")
    def community(self) -> Community:
        return Community(id=strawberry.ID(self.community_id))

    @classmethod
    def from_row(cls, row: sa.Row[Any]) -> Station:
        return cls(
            id=strawberry.ID(global_id("Station", row.id)),
            pk=row.id,
            name=row.name,
            line=row.line,
            community_id=row.community_id,
        )


async def _station(info: Info, pk: int) -> Station:
    row = await info.context.stations.load(pk)
    if row is None:  # a trip always references an existing station (foreign key)
        raise GraphQLError(f"Station {pk} is missing.")
    return Station.from_row(row)


@strawberry.federation.type(authenticated=True, description="One metro journey of a person.")
class MetroTrip:
    id: strawberry.ID
    pk: strawberry.Private[int]
    origin_id: strawberry.Private[int]
    destination_id: strawberry.Private[int]
    started_at: datetime = strawberry.field(description="When the trip started (UTC).")
    distance_km: float = strawberry.field(description="Network distance travelled, in km.")

    @strawberry.field(
        description="Grams CO2e avoided against driving the same distance: "
        "distance × (0.2 − 0.04) kg/km (assumed car and metro factors)."
    )
    def avoided_grams_co2e(self) -> int:
        return avoided_grams_co2e(self.distance_km)

    @strawberry.field
    async def origin(self, info: Info) -> Station:
        return await _station(info, self.origin_id)

    @strawberry.field
    async def destination(self, info: Info) -> Station:
        return await _station(info, self.destination_id)

    @classmethod
    def from_row(cls, row: sa.Row[Any]) -> MetroTrip:
        return cls(
            id=strawberry.ID(global_id("MetroTrip", row.id)),
            pk=row.id,
            origin_id=row.origin_id,
            destination_id=row.destination_id,
            started_at=row.started_at.replace(tzinfo=UTC),
            distance_km=row.distance_km,
        )


@strawberry.type
class MetroTripEdge:
    cursor: str
    node: MetroTrip


@strawberry.type(description="A page of metro trips, oldest first.")
class MetroTripConnection:
    edges: list[MetroTripEdge]
    page_info: MetroPageInfo
    total_count: int = strawberry.field(description="All trips of the person, on every page.")


@strawberry.federation.type(
    keys=["id"], description="carbongraph's Individual (a person), extended with metro trips."
)
class Individual:
    id: strawberry.ID  # carbongraph's global ID, e.g. "SW5kaXZpZHVhbDox" for Individual 1

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Individual:
        return cls(id=id)  # nothing to look up: trips are stored by this very id

    # Nullable on purpose: if this subgraph is down, the gateway nulls only this field.
    @strawberry.federation.field(
        description=f"The person's metro trips, oldest first. Keyset pagination: `first` "
        f"(at most {MAX_PAGE_SIZE}) and `after` (an `endCursor`).",
        directives=[
            ListSize(
                assumed_size=DEFAULT_PAGE_SIZE,
                slicing_arguments=["first"],
                sized_fields=["edges"],
                require_one_slicing_argument=False,
            )
        ],
    )
    async def metro_trips(
        self, info: Info, first: int | None = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> MetroTripConnection | None:
        if first is None:
            first = DEFAULT_PAGE_SIZE
        if not 0 <= first <= MAX_PAGE_SIZE:
            raise BadUserInput(f"`first` must be between 0 and {MAX_PAGE_SIZE}, not {first}.")
        after_id = global_id_pk(after, "MetroTripCursor", "cursor") if after else 0
        total, rows = await info.context.trip_pages(after_id, first + 1).load(str(self.id))
        edges = [
            MetroTripEdge(cursor=trip_cursor(row.id), node=MetroTrip.from_row(row))
            for row in rows[:first]
        ]
        return MetroTripConnection(
            edges=edges,
            page_info=MetroPageInfo(
                has_next_page=len(rows) > first,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            total_count=total,
        )


@strawberry.type
class Query:
    @strawberry.field(description="Every station, by id.")
    async def stations(self, info: Info) -> list[Station]:
        return [Station.from_row(row) for row in await db.all_stations(info.context.engine)]

    @strawberry.field(description="A station by its global ID; null when unknown.")
    async def station(self, info: Info, id: strawberry.ID) -> Station | None:
        row = await info.context.stations.load(global_id_pk(id, "Station"))
        return None if row is None else Station.from_row(row)


schema = strawberry.federation.Schema(
    query=Query,
    types=[Individual],
    # 2.9 exactly: carbongraph's version, and the newest the gateway's composer accepts.
    federation_version="2.9",
)
