"""Onboarding in bulk: nodes identified by ``externalRef``, created once.

``ensure_*`` create a node through the validated writers of ``services.hierarchy`` unless a
node with the same ``externalRef`` exists already. An existing node the viewer may manage, with
the same values, is answered as it is (nothing is written: a re-run changes nothing); one with
other values, or one the viewer may not manage, is a ``DUPLICATE`` error, never silently
updated. ``run_items`` runs a batch item by item, each in its own savepoint, collects every
item's errors under ``["input", "items", index, …]`` and raises them together, so the caller's
savepoint drops the whole batch (all or nothing). ``createHouseholds``/``createIndividuals`` and
``carbongraph import hierarchy`` are built on these.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from carbongraph.caller import Caller
from carbongraph.errors import MutationFailed, UserErrorCode, UserErrorData
from carbongraph.resolvers.dataloaders import EM, M
from carbongraph.services import hierarchy as service

MAX_ITEMS = 1000

T = TypeVar("T")


def _strip(value: str | None) -> str | None:
    value = value.strip() if value is not None else None
    return value or None


async def _existing(caller: Caller, type_name: str, ref: str | None) -> Any:
    """The node holding ``ref``, if any and if the viewer may manage it; DUPLICATE when it is
    taken by a node the viewer may not change (the single create answers the same)."""
    ref = _strip(ref)
    if ref is None or len(ref) > 128:
        return None  # the writer reports a missing or too long ref
    table = service.TABLES[type_name]
    pk = await caller.db.scalar(sa.select(table.c.id).where(table.c.external_ref == ref))
    if pk is None:
        return None
    row = await caller.loaders.by_type(type_name).load(pk)
    target = service._target(row) if row is not None else None
    if target is None or not caller.viewer.sees(target) or not caller.viewer.can_manage(target):
        raise MutationFailed.single(
            ["input", "externalRef"], UserErrorCode.DUPLICATE, "externalRef is already in use."
        )
    return row


def _conflict(type_name: str, names: Sequence[str]) -> MutationFailed:
    return MutationFailed.single(
        ["input", "externalRef"],
        UserErrorCode.DUPLICATE,
        f"externalRef belongs to an existing {type_name} with a different "
        f"{', '.join(names)}; change it with update{type_name}, or use another externalRef.",
    )


def _differences(row: Any, wanted: dict[str, Any]) -> list[str]:
    return [name for name, value in wanted.items() if getattr(row, name) != value]


async def ensure_enterprise(
    caller: Caller, *, name: str, kind: str, external_ref: str | None
) -> tuple[Any, bool]:
    row = await _existing(caller, "Enterprise", external_ref)
    if row is not None:
        if diff := _differences(row, {"name": _strip(name), "kind": kind}):
            raise _conflict("Enterprise", diff)
        return row, False
    return await service.create_enterprise(
        caller, name=name, kind=kind, external_ref=external_ref
    ), True


async def ensure_community(
    caller: Caller,
    *,
    name: str,
    kind: str,
    region_code: str | None,
    timezone: str | None,
    enterprise_id: int | None,
    parent_id: int | None,
    external_ref: str | None,
) -> tuple[Any, bool]:
    row = await _existing(caller, "Community", external_ref)
    if row is not None:
        wanted: dict[str, Any] = {"name": _strip(name), "kind": kind, "parent_id": parent_id}
        if enterprise_id is not None:
            wanted["enterprise_id"] = enterprise_id
        if diff := _differences(row, wanted):
            raise _conflict("Community", diff)
        return row, False
    return await service.create_community(
        caller,
        name=name,
        kind=kind,
        region_code=region_code,
        timezone=timezone,
        enterprise_id=enterprise_id,
        parent_id=parent_id,
        external_ref=external_ref,
    ), True


async def ensure_household(
    caller: Caller,
    *,
    community_id: int,
    name: str,
    dwelling_type: str,
    has_rooftop_solar: bool,
    external_ref: str | None,
) -> tuple[Any, bool]:
    row = await _existing(caller, "Household", external_ref)
    if row is not None:
        wanted = {
            "community_id": community_id,
            "name": _strip(name),
            "dwelling_type": dwelling_type,
            "has_rooftop_solar": has_rooftop_solar,
        }
        if diff := _differences(row, wanted):
            raise _conflict("Household", diff)
        return row, False
    return await service.create_household(
        caller,
        community_id=community_id,
        name=name,
        dwelling_type=dwelling_type,
        has_rooftop_solar=has_rooftop_solar,
        external_ref=external_ref,
    ), True


async def _has_period(
    caller: Caller,
    table: sa.Table,
    individual_id: int,
    column: sa.Column[Any],
    node_id: int,
    start: date | None,
) -> bool:
    statement = sa.select(table.c.id).where(
        table.c.individual_id == individual_id, column == node_id
    )
    if start is not None:
        statement = statement.where(table.c.valid_from == start)
    return (await caller.db.execute(statement.limit(1))).first() is not None


async def ensure_individual(
    caller: Caller,
    *,
    display_name: str,
    email: str | None,
    subject: str | None,
    household_id: int | None,
    member_from: date | None,
    employer_id: int | None,
    employed_from: date | None,
    external_ref: str | None,
    reload: bool = True,
) -> tuple[Any, bool]:
    """(person, created); ``reload`` False answers a new person with their id only."""
    row = await _existing(caller, "Individual", external_ref)
    if row is not None:
        diff = _differences(row, {"display_name": _strip(display_name), "email": _strip(email)})
        if subject is not None and row.subject != _strip(subject):
            diff.append("subject")
        # The first household and employer, as created; later moves are the person's history.
        if household_id is not None and not await _has_period(
            caller, M, row.id, M.c.household_id, household_id, member_from
        ):
            diff.append("household")
        if employer_id is not None and not await _has_period(
            caller, EM, row.id, EM.c.enterprise_id, employer_id, employed_from
        ):
            diff.append("employer")
        if diff:
            raise _conflict("Individual", diff)
        return row, False
    return await service.create_individual(
        caller,
        reload=reload,
        display_name=display_name,
        email=email,
        subject=subject,
        household_id=household_id,
        member_from=member_from,
        employer_id=employer_id,
        employed_from=employed_from,
        external_ref=external_ref,
    ), True


async def ensure_membership(
    caller: Caller, individual_id: int, household_id: int, valid_from: date
) -> tuple[Any, bool]:
    """The person lives in the household from ``valid_from`` (a dated move); already so → as is."""
    if await _has_period(caller, M, individual_id, M.c.household_id, household_id, valid_from):
        return await service.reload_individual(caller, individual_id), False
    return await service.move_individual(caller, individual_id, household_id, valid_from), True


async def ensure_employment(
    caller: Caller, individual_id: int, enterprise_id: int, valid_from: date
) -> tuple[Any, bool]:
    if await _has_period(caller, EM, individual_id, EM.c.enterprise_id, enterprise_id, valid_from):
        return await service.reload_individual(caller, individual_id), False
    return await service.set_employment(
        caller, individual_id, enterprise_id, valid_from, employed=True
    ), True


# -- batches ----------------------------------------------------------------------------------
@dataclass
class BatchResult:
    rows: list[Any] = field(default_factory=list)
    created: int = 0
    unchanged: int = 0


def at_item(prefix: list[str], errors: Sequence[UserErrorData]) -> list[UserErrorData]:
    """Re-root errors of a single-item writer (``["input", "name"]``) under ``prefix``."""
    out = []
    for e in errors:
        rest = e.field[1:] if e.field and e.field[0] == "input" else e.field
        out.append(UserErrorData([*prefix, *rest], e.message, e.code))
    return out


async def run_one(
    caller: Caller, prefix: list[str], one: Callable[[], Awaitable[tuple[T, bool]]]
) -> tuple[T | None, bool, list[UserErrorData], bool]:
    """One item: (row, created, errors under ``prefix``, whether later items may still run).

    No savepoint per item (two statements each): the writers check everything before they
    write, so a refused item has written nothing. Only a uniqueness the checks passed (a
    concurrent writer, or under row-level security a value taken in a tenant the viewer cannot
    see) fails in the database; PostgreSQL then aborts the transaction, so the batch stops
    there, reported at that item, and the caller rolls back."""
    try:
        row, created = await one()
        return row, created, [], True
    except MutationFailed as failed:
        return None, False, at_item(prefix, failed.errors), True
    except IntegrityError:
        data = UserErrorData(
            prefix, "Conflicts with an existing or concurrent change.", UserErrorCode.DUPLICATE
        )
        return None, False, [data], False


async def run_items(
    caller: Caller,
    items: Sequence[Any],
    one: Callable[[Any], Awaitable[tuple[Any, bool]]],
    *,
    refs: Callable[[Any], str | None],
) -> BatchResult:
    """All items or none (see the module's docstring); every bad item is reported."""
    if not 1 <= len(items) <= MAX_ITEMS:
        raise MutationFailed.single(
            ["input", "items"], UserErrorCode.INVALID, f"Give 1 to {MAX_ITEMS:,} items."
        )
    errors: list[UserErrorData] = []
    seen: dict[str, int] = {}
    repeated: set[int] = set()
    for n, item in enumerate(items):
        ref = _strip(refs(item))
        if ref is not None and ref in seen:
            errors.append(
                UserErrorData(
                    ["input", "items", str(n), "externalRef"],
                    f"externalRef is also given to item {seen[ref]}.",
                    UserErrorCode.DUPLICATE,
                )
            )
            repeated.add(n)
        elif ref is not None:
            seen[ref] = n
    result = BatchResult()
    for n, item in enumerate(items):
        if n in repeated:
            continue
        row, created, item_errors, go_on = await run_one(
            caller, ["input", "items", str(n)], functools.partial(one, item)
        )
        errors += item_errors
        if not go_on:
            break
        if row is not None:
            result.rows.append(row)
            result.created += created
            result.unchanged += not created
    if errors:
        raise MutationFailed(errors)
    # New people come back as ids (see ensure_individual): load them all in one batch.
    ids = [(n, row) for n, row in enumerate(result.rows) if isinstance(row, int)]
    if ids:
        loaded = await caller.loaders.individual.load_many([pk for _, pk in ids])
        for (n, _), record in zip(ids, loaded, strict=True):
            result.rows[n] = record
    return result
