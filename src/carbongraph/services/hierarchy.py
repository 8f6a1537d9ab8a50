"""Writes to the account hierarchy: create, update, archive, move, employ.

Every function checks authorization through ``authz`` and input through ``Checker``, and raises
``MutationFailed`` before writing anything if either fails. The caller runs it inside a
savepoint, so a failure part-way leaves nothing behind.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from carbongraph.accounting.attribution import reattribute
from carbongraph.authz import Target
from carbongraph.caller import Caller
from carbongraph.errors import MutationFailed, UserErrorCode
from carbongraph.models.base import utcnow
from carbongraph.resolvers.dataloaders import EM, C, E, H, I, IndividualRecord, M, current
from carbongraph.services import periods, zones
from carbongraph.services.validation import Checker, placeholder_path

TABLES = {"Enterprise": E, "Community": C, "Household": H, "Individual": I}


async def load_target(
    caller: Caller, type_name: str, pk: int, field: list[str], *, manage: bool = True
) -> Any:
    """The row to act on, or MutationFailed: NOT_FOUND if the viewer cannot see it at all,
    FORBIDDEN if they see it but may not change it."""
    row = await caller.loaders.by_type(type_name).load(pk)
    target = _target(row) if row is not None else None
    if row is None or not caller.viewer.sees(target):  # type: ignore[arg-type]
        raise MutationFailed.single(field, UserErrorCode.NOT_FOUND, f"No such {type_name}.")
    if manage and not caller.viewer.can_manage(target):  # type: ignore[arg-type]
        raise MutationFailed.single(
            field, UserErrorCode.FORBIDDEN, f"You may not change this {type_name}."
        )
    return row


def _target(row: Any) -> Target:
    return row.target if isinstance(row, IndividualRecord) else Target((row.path,))


def _require_active(row: Any, field: list[str], type_name: str) -> None:
    if row.archived_at is not None:
        raise MutationFailed.single(field, UserErrorCode.ARCHIVED, f"This {type_name} is archived.")


async def _fresh(caller: Caller, table: sa.Table, pk: int) -> Any:
    row = (await caller.db.execute(sa.select(table).where(table.c.id == pk))).one()
    return row


def _forget(caller: Caller, type_name: str, pk: int) -> None:
    """Drop a cached row so later reads in this request see the write."""
    caller.loaders.forget(caller.loaders.by_type(type_name), pk)


async def _external_ref_free(
    caller: Caller, table: sa.Table, ref: str | None, check: Checker
) -> None:
    if ref is None:
        return
    taken = await caller.db.scalar(sa.select(table.c.id).where(table.c.external_ref == ref))
    if taken is not None:
        check.fail("externalRef", UserErrorCode.DUPLICATE, "externalRef is already in use.")


async def _insert_with_path(
    caller: Caller, table: sa.Table, values: dict[str, Any], parent_path: str, prefix: str
) -> Any:
    now = utcnow()
    values = {**values, "created_at": now, "updated_at": now}
    if caller.db.dialect == "postgresql":
        # The id first, so the row is written with its real path: row-level security checks a
        # household's path on INSERT (migration 0011), and a placeholder is in no tenant.
        pk = await caller.db.scalar(sa.select(sa.func.nextval(f"{table.name}_id_seq")))
        path = f"{parent_path}{prefix}{pk}/"
        await caller.db.execute(sa.insert(table).values(id=pk, path=path, **values))
        return await _fresh(caller, table, pk)
    values["path"] = placeholder_path()
    result = await caller.db.execute(sa.insert(table).values(**values).returning(table.c.id))
    pk = result.scalar_one()
    await caller.db.execute(
        sa.update(table).where(table.c.id == pk).values(path=f"{parent_path}{prefix}{pk}/")
    )
    return await _fresh(caller, table, pk)


def _raise(check: Checker) -> None:
    if not check.ok:
        raise MutationFailed(check.errors)


# -- enterprises ------------------------------------------------------------------------------
async def create_enterprise(
    caller: Caller, *, name: str, kind: str, external_ref: str | None
) -> Any:
    if not caller.viewer.can_create_root():
        raise MutationFailed.single(
            ["input"], UserErrorCode.FORBIDDEN, "Only platform admins create enterprises."
        )
    check = Checker()
    name = check.text("name", name)  # type: ignore[assignment]
    external_ref = check.text("externalRef", external_ref, max_length=128, required=False)
    await _external_ref_free(caller, E, external_ref, check)
    _raise(check)
    return await _insert_with_path(
        caller, E, {"name": name, "kind": kind, "external_ref": external_ref}, "", "e"
    )


async def update_node(
    caller: Caller, type_name: str, pk: int, changes: dict[str, Any], check: Checker
) -> Any:
    table = TABLES[type_name]
    row = await load_target(caller, type_name, pk, ["input", "id"])
    _require_active(row, ["input", "id"], type_name)
    _raise(check)
    changes = {k: v for k, v in changes.items() if v is not None}
    if changes:
        changes["updated_at"] = utcnow()
        await caller.db.execute(sa.update(table).where(table.c.id == pk).values(**changes))
        _forget(caller, type_name, pk)
    return await _fresh(caller, table, pk)


async def archive_node(caller: Caller, type_name: str, pk: int) -> Any:
    """Archive a node with no active children. Archived nodes leave lists but keep history."""
    table = TABLES[type_name]
    row = await load_target(caller, type_name, pk, ["input", "id"])
    _require_active(row, ["input", "id"], type_name)
    if await _has_active_children(caller, type_name, row):
        raise MutationFailed.single(
            ["input", "id"],
            UserErrorCode.HAS_ACTIVE_CHILDREN,
            f"Archive or move what is inside this {type_name} first.",
        )
    now = utcnow()
    await caller.db.execute(
        sa.update(table).where(table.c.id == pk).values(archived_at=now, updated_at=now)
    )
    _forget(caller, type_name, pk)
    return await _fresh(caller, table, pk)


async def _has_active_children(caller: Caller, type_name: str, row: Any) -> bool:
    statement: sa.GenerativeSelect
    if type_name == "Household":
        statement = sa.select(M.c.id).where(M.c.household_id == row.id, current(M, caller.today))
    elif type_name == "Community":
        statement = sa.union_all(
            sa.select(C.c.id).where(C.c.parent_id == row.id, C.c.archived_at.is_(None)),
            sa.select(H.c.id).where(H.c.community_id == row.id, H.c.archived_at.is_(None)),
        )
    else:
        statement = sa.select(C.c.id).where(C.c.enterprise_id == row.id, C.c.archived_at.is_(None))
    return (
        await caller.db.execute(
            statement.limit(1)
            if type_name != "Community"
            else sa.select(statement.subquery()).limit(1)
        )
    ).first() is not None


# -- communities ------------------------------------------------------------------------------
async def create_community(
    caller: Caller,
    *,
    name: str,
    kind: str,
    region_code: str | None,
    timezone: str | None,
    enterprise_id: int | None,
    parent_id: int | None,
    external_ref: str | None,
) -> Any:
    check = Checker()
    name = check.text("name", name)  # type: ignore[assignment]
    region_code = check.region("regionCode", region_code)
    timezone = check.timezone("timezone", timezone)
    external_ref = check.text("externalRef", external_ref, max_length=128, required=False)
    if parent_id is not None:
        parent = await load_target(caller, "Community", parent_id, ["input", "parentId"])
        _require_active(parent, ["input", "parentId"], "Community")
        if enterprise_id is not None and enterprise_id != parent.enterprise_id:
            check.fail(
                "enterpriseId",
                UserErrorCode.INVALID,
                "A sub-community belongs to its parent's enterprise.",
            )
        enterprise_id = parent.enterprise_id
        parent_path = parent.path
        region_code = region_code or parent.region_code
        timezone = timezone or parent.timezone
    elif enterprise_id is not None:
        enterprise = await load_target(
            caller, "Enterprise", enterprise_id, ["input", "enterpriseId"]
        )
        _require_active(enterprise, ["input", "enterpriseId"], "Enterprise")
        parent_path = enterprise.path
    else:
        if not caller.viewer.can_create_root():
            raise MutationFailed.single(
                ["input", "enterpriseId"],
                UserErrorCode.FORBIDDEN,
                "Only platform admins create communities outside an enterprise.",
            )
        parent_path = ""
    if region_code is None:
        check.fail("regionCode", UserErrorCode.REQUIRED, "regionCode is required.")
    if timezone is None:
        check.fail("timezone", UserErrorCode.REQUIRED, "timezone is required.")
    await _external_ref_free(caller, C, external_ref, check)
    _raise(check)
    return await _insert_with_path(
        caller,
        C,
        {
            "name": name,
            "kind": kind,
            "region_code": region_code,
            "timezone": timezone,
            "enterprise_id": enterprise_id,
            "parent_id": parent_id,
            "external_ref": external_ref,
        },
        parent_path,
        "c",
    )


# -- households -------------------------------------------------------------------------------
async def create_household(
    caller: Caller,
    *,
    community_id: int,
    name: str,
    dwelling_type: str,
    has_rooftop_solar: bool,
    external_ref: str | None,
) -> Any:
    check = Checker()
    name = check.text("name", name)  # type: ignore[assignment]
    external_ref = check.text("externalRef", external_ref, max_length=128, required=False)
    community = await load_target(caller, "Community", community_id, ["input", "communityId"])
    _require_active(community, ["input", "communityId"], "Community")
    await _external_ref_free(caller, H, external_ref, check)
    _raise(check)
    return await _insert_with_path(
        caller,
        H,
        {
            "community_id": community_id,
            "name": name,
            "dwelling_type": dwelling_type,
            "has_rooftop_solar": has_rooftop_solar,
            "external_ref": external_ref,
        },
        community.path,
        "h",
    )


# -- individuals ------------------------------------------------------------------------------
async def create_individual(
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
) -> Any:
    """The new person (``reload`` False: only their id, for batches that load all at once)."""
    check = Checker()
    display_name = check.text("displayName", display_name)  # type: ignore[assignment]
    email = check.email("email", email)
    subject = check.text("subject", subject, max_length=256, required=False)
    external_ref = check.text("externalRef", external_ref, max_length=128, required=False)
    check.not_future("memberFrom", member_from, caller.today)
    check.not_future("employedFrom", employed_from, caller.today)
    if household_id is None and employer_id is None and not caller.viewer.is_platform_admin:
        check.fail(
            "householdId",
            UserErrorCode.REQUIRED,
            "A new person joins a household or an employer you manage.",
        )
    if household_id is not None:
        household = await load_target(caller, "Household", household_id, ["input", "householdId"])
        _require_active(household, ["input", "householdId"], "Household")
    if employer_id is not None:
        employer = await load_target(caller, "Enterprise", employer_id, ["input", "employerId"])
        _require_active(employer, ["input", "employerId"], "Enterprise")
    await _external_ref_free(caller, I, external_ref, check)
    if subject is not None:
        taken = await caller.db.scalar(sa.select(I.c.id).where(I.c.subject == subject))
        if taken is not None:
            check.fail("subject", UserErrorCode.DUPLICATE, "subject already owns an account.")
    _raise(check)
    now = utcnow()
    values = {
        "display_name": display_name,
        "email": email,
        "subject": subject,
        "external_ref": external_ref,
        "created_at": now,
        "updated_at": now,
    }
    if caller.db.dialect == "postgresql":
        # Row-level security: the new person is visible only once they join the household or
        # employer below, and INSERT … RETURNING would have to read them before; take the id
        # from the sequence first.
        pk = await caller.db.scalar(sa.select(sa.func.nextval("individual_id_seq")))
        await caller.db.execute(sa.insert(I).values(id=pk, **values))
    else:
        pk = (await caller.db.execute(sa.insert(I).values(**values).returning(I.c.id))).scalar_one()
    if household_id is not None:
        # By default from today: the earlier of the household's local day and the UTC day. A
        # record of the local today is then attributed to the home, and the person is current
        # for authorization, which still reads memberships by the UTC date (east of UTC the
        # local day runs ahead: a later start hid the new person from their own manager).
        local_today = caller.days.on(await zones.zone_of_path(caller.db, household.path))
        joined = member_from or min(local_today, caller.today)
        await periods.open_membership(caller.db, pk, household_id, joined, household.path)
    if employer_id is not None:
        await periods.open_employment(caller.db, pk, employer_id, employed_from or caller.today)
    return await reload_individual(caller, pk) if reload else pk


async def reload_individual(caller: Caller, pk: int) -> IndividualRecord:
    for loader in (
        caller.loaders.individual,
        caller.loaders.current_household,
        caller.loaders.membership_history,
    ):
        caller.loaders.forget(loader, pk)
    record = await caller.loaders.individual.load(pk)
    assert record is not None
    return record


async def update_individual(
    caller: Caller, pk: int, *, display_name: str | None, email: str | None
) -> IndividualRecord:
    check = Checker()
    if display_name is not None:
        display_name = check.text("displayName", display_name)
    email = check.email("email", email)
    row = await load_target(caller, "Individual", pk, ["input", "id"], manage=False)
    if not caller.viewer.can_edit_profile(row.target):
        raise MutationFailed.single(
            ["input", "id"], UserErrorCode.FORBIDDEN, "You may not change this person's profile."
        )
    _require_active(row, ["input", "id"], "Individual")
    _raise(check)
    changes = {
        k: v for k, v in {"display_name": display_name, "email": email}.items() if v is not None
    }
    if changes:
        await caller.db.execute(
            sa.update(I).where(I.c.id == pk).values(**changes, updated_at=utcnow())
        )
    return await reload_individual(caller, pk)


async def _latest_start(
    caller: Caller, table: sa.Table, individual_id: int, extra: sa.ColumnElement[bool] | None = None
) -> date | None:
    statement = sa.select(sa.func.max(table.c.valid_from)).where(
        table.c.individual_id == individual_id
    )
    if extra is not None:
        statement = statement.where(extra)
    return await caller.db.scalar(statement)


async def archive_individual(
    caller: Caller, pk: int, effective_on: date | None
) -> IndividualRecord:
    row = await load_target(caller, "Individual", pk, ["input", "id"])
    _require_active(row, ["input", "id"], "Individual")
    on = effective_on or caller.today
    for table in (M, EM):
        latest = await _latest_start(caller, table, pk)
        if latest is not None and latest >= on:
            raise MutationFailed.single(
                ["input", "effectiveOn"],
                UserErrorCode.INVALID_DATE,
                "effectiveOn must come after the start of the current household or employment.",
            )

    async def close() -> None:
        for table in (M, EM):
            await periods.close_open_periods(caller.db, table, pk, on)

    await reattribute(caller.db, pk, on, close)
    now = utcnow()
    await caller.db.execute(
        sa.update(I).where(I.c.id == pk).values(archived_at=now, updated_at=now)
    )
    return await reload_individual(caller, pk)


async def move_individual(
    caller: Caller, individual_id: int, household_id: int | None, effective_from: date
) -> IndividualRecord:
    """End the current membership on ``effective_from`` (ends are exclusive) and start the new
    one that day; ``household_id`` None moves the person out. Past
    periods are never rewritten, so history keeps rolling up to the old household."""
    check = Checker()
    check.not_future("effectiveFrom", effective_from, caller.today)
    person = await load_target(caller, "Individual", individual_id, ["input", "individualId"])
    _require_active(person, ["input", "individualId"], "Individual")
    if household_id is not None:
        household = await load_target(caller, "Household", household_id, ["input", "householdId"])
        _require_active(household, ["input", "householdId"], "Household")
    latest = await _latest_start(caller, M, individual_id)
    if latest is not None and latest >= effective_from:
        check.fail(
            "effectiveFrom",
            UserErrorCode.OVERLAPPING_MEMBERSHIP,
            f"effectiveFrom must be after {latest.isoformat()}, the start of the latest "
            "household period; history is not rewritten.",
        )
    _raise(check)

    async def move() -> None:
        await periods.close_open_periods(caller.db, M, individual_id, effective_from)
        if household_id is not None:
            await periods.open_membership(caller.db, individual_id, household_id, effective_from)

    await reattribute(caller.db, individual_id, effective_from, move)
    return await reload_individual(caller, individual_id)


async def set_employment(
    caller: Caller, individual_id: int, enterprise_id: int, on: date, *, employed: bool
) -> IndividualRecord:
    check = Checker()
    check.not_future("effectiveFrom", on, caller.today)
    await load_target(caller, "Individual", individual_id, ["input", "individualId"], manage=False)
    enterprise = await load_target(caller, "Enterprise", enterprise_id, ["input", "enterpriseId"])
    _require_active(enterprise, ["input", "enterpriseId"], "Enterprise")
    mine = EM.c.enterprise_id == enterprise_id
    open_period = (
        await caller.db.execute(
            sa.select(EM).where(EM.c.individual_id == individual_id, mine, EM.c.valid_to.is_(None))
        )
    ).first()
    if employed:
        if open_period is not None:
            check.fail("individualId", UserErrorCode.DUPLICATE, "Already employed there.")
        latest = await _latest_start(caller, EM, individual_id, mine)
        ended = await caller.db.scalar(
            sa.select(sa.func.max(EM.c.valid_to)).where(EM.c.individual_id == individual_id, mine)
        )
        if (latest and latest >= on) or (ended and ended > on):
            check.fail(
                "effectiveFrom",
                UserErrorCode.OVERLAPPING_MEMBERSHIP,
                "effectiveFrom overlaps an earlier employment there.",
            )
        _raise(check)
        await reattribute(
            caller.db,
            individual_id,
            on,
            lambda: periods.open_employment(caller.db, individual_id, enterprise_id, on),
        )
    else:
        if open_period is None:
            check.fail("individualId", UserErrorCode.NOT_FOUND, "Not employed there.")
        elif open_period.valid_from >= on:
            check.fail(
                "effectiveFrom",
                UserErrorCode.INVALID_DATE,
                "effectiveFrom must come after the employment started.",
            )
        _raise(check)
        await reattribute(
            caller.db,
            individual_id,
            on,
            lambda: periods.close_open_periods(
                caller.db, EM, individual_id, on, only=EM.c.enterprise_id == enterprise_id
            ),
        )
    return await reload_individual(caller, individual_id)
