"""Recording actions: validation, caps, idempotency, credits and reductions — all or nothing.

Evidence rules: NONE → approved; PARTNER → approved when verified (a PARTNER_SERVICE grant of
the caller holds the person: ``Viewer.can_verify_actions``), or self-reported up to the
action's ``self_report_cap`` per day; PHOTO → a self-report needs an uploaded photo and a
manager's review.

Concurrency: the batch's people are locked (locks.py) before anything is read that decides what
is written — known externalIds, units used against the caps — so concurrent requests for one
person run one after another. The insert itself is ``ON CONFLICT DO NOTHING`` on the externalId
(a conflict with a row this request could not see is an EXTERNAL_ID_CONFLICT, never a 500).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from carbongraph.accounting.rollup import VIA_EMPLOYEES, Attribution, TotalsDelta
from carbongraph.actions.campaigns import bonus_entries
from carbongraph.actions.catalog import Catalog
from carbongraph.actions.tables import AR, CE, EV, I
from carbongraph.authz import Target, Viewer, individual_path
from carbongraph.clock import Days, as_days
from carbongraph.live import publish as live
from carbongraph.locks import dialect_name, lock_people
from carbongraph.models.base import utcnow


@dataclass
class ActionInput:
    individual_id: int
    action_type: str
    units: int
    occurred_on: date
    external_id: str | None = None
    evidence_id: int | None = None


@dataclass(frozen=True)
class ActionError:
    index: int
    field: str
    code: str
    message: str


@dataclass
class ActionResult:
    created: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    errors: list[ActionError] = field(default_factory=list)
    # NOT_ATTRIBUTED: dated where the person has no household (counted for the person only).
    warnings: list[ActionError] = field(default_factory=list)


def targets_with_scope(
    attribution: Attribution, individual_id: int, day: date, household_id: int | None, action: Any
) -> list[tuple[list[tuple[str, int, str]], str, int]]:
    """Reductions roll up like the person's records; through an employer they are reported
    with the action's employer mapping (commuting → Scope 3 category 7)."""
    targets = attribution.targets("Individual", individual_id, day, household_id)
    own = [t for t in targets if t[2] != VIA_EMPLOYEES]
    employers = [t for t in targets if t[2] == VIA_EMPLOYEES]
    groups = [(own, action.scope, action.category)]
    if employers:
        groups.append((employers, action.employer_scope, action.employer_category))
    return groups


async def record_actions(
    db: Any,
    inputs: list[ActionInput],
    *,
    today: date | Days,
    viewer: Viewer | None,
    recorded_by: str | None,
    verified_only: bool = False,
) -> ActionResult:
    """``viewer`` None is a trusted operator (the CLI): its actions count as verified.
    ``verified_only`` (recordVerifiedActions): an action the caller may not verify is refused
    (FORBIDDEN) instead of being recorded as a self-report.
    ``today``: the request's local days (an action happens on the local day of the person's
    community, Attribution.zone_of), or one day for everyone."""
    local_days = as_days(today)
    result = ActionResult()
    catalog = await Catalog.load(db)

    def fail(index: int, name: str, code: str, message: str) -> None:
        result.errors.append(ActionError(index, name, code, message))

    actions: list[Any] = []
    for n, item in enumerate(inputs):
        action = catalog.valid_on(item.action_type, item.occurred_on)
        actions.append(action)
        if item.action_type not in catalog.by_code:
            fail(n, "actionType", "ACTION_NOT_ALLOWED", f"unknown action type {item.action_type!r}")
        elif action is None:
            fail(n, "occurredOn", "ACTION_NOT_ALLOWED", "the action type is not valid that day")
        if item.units <= 0:
            fail(n, "units", "INVALID", "units must be positive")
        if item.occurred_on > local_days.latest:  # in the future everywhere; see also below
            fail(n, "occurredOn", "INVALID_DATE", "the action has not happened yet")
    if result.errors:
        return result

    # Idempotency by externalId.
    known = {}
    external = [i.external_id for i in inputs if i.external_id]
    if len(set(external)) != len(external):
        fail(0, "externalId", "EXTERNAL_ID_CONFLICT", "an externalId appears twice in the batch")
        return result
    # Everything read from here on decides what is written: one person's writers take turns.
    await lock_people(db, (item.individual_id for item in inputs))
    if dialect_name(db) == "postgresql" and external:
        # One probe of the unique index per externalId. As ``external_id IN (…)`` the planner
        # scanned the table instead, checking each row against the viewer's row-level security
        # policy first (measured: 0.7 s per 1,000 ids at 10,000 stored actions).
        for row in await db.execute(
            sa.text(
                "SELECT ar.* FROM unnest(CAST(:ids AS text[])) AS k(external_id)"
                " CROSS JOIN LATERAL (SELECT * FROM action_record a"
                " WHERE a.external_id = k.external_id OFFSET 0) ar"
            ),
            {"ids": external},
        ):
            known[row.external_id] = row
    else:
        for start in range(0, len(external), 1000):
            for row in await db.execute(
                sa.select(AR).where(AR.c.external_id.in_(external[start : start + 1000]))
            ):
                known[row.external_id] = row
    # Replays are authorised like new actions (they answer with the stored action), before
    # the externalId is compared, so someone else's externalId answers like an unknown person.
    fresh = [n for n, item in enumerate(inputs) if (item.external_id or "") not in known]
    people = sorted({item.individual_id for item in inputs})
    accounts = {
        r.id: r
        for r in await db.execute(sa.select(I.c.id, I.c.archived_at).where(I.c.id.in_(people)))
    }
    attribution = await Attribution.load(db, people, [])
    # Units already recorded per person, action type and day count against the daily cap.
    days = {inputs[n].occurred_on for n in fresh}
    used: dict[tuple[int, int, date], int] = defaultdict(int)
    self_used: dict[tuple[int, int, date], int] = defaultdict(int)
    for row in await db.execute(
        sa.select(
            AR.c.individual_id,
            AR.c.action_type_id,
            AR.c.occurred_on,
            AR.c.source,
            sa.func.sum(AR.c.units),
        )
        .where(
            AR.c.individual_id.in_(people),
            AR.c.occurred_on.in_(sorted(days)),
            AR.c.status != "REJECTED",
        )
        .group_by(AR.c.individual_id, AR.c.action_type_id, AR.c.occurred_on, AR.c.source)
    ):
        used[(row[0], row[1], row[2])] += int(row[4])
        if row[3] == "SELF":
            self_used[(row[0], row[1], row[2])] += int(row[4])

    evidence_ids = [inputs[n].evidence_id for n in fresh if inputs[n].evidence_id is not None]
    evidence: dict[int, Any] = {}
    used_evidence: set[int] = set()
    if evidence_ids:
        evidence = {
            r.id: r
            for r in await db.execute(
                sa.select(EV.c.id, EV.c.individual_id).where(EV.c.id.in_(evidence_ids))
            )
        }
        used_evidence = set(
            (
                await db.execute(
                    sa.select(AR.c.evidence_id).where(AR.c.evidence_id.in_(evidence_ids))
                )
            ).scalars()
        )

    # The viewer's decisions depend on the person and their home only: taken once per pair
    # (a partner's batch of 10,000 actions names a few thousand people).
    decided: dict[tuple[int, str | None], tuple[bool, bool, bool]] = {}

    def decide(individual_id: int, path: str | None) -> tuple[bool, bool, bool]:
        """(may record, may know the person exists, may verify) for this viewer."""
        key = (individual_id, path)
        if key not in decided:
            target = Target(
                (individual_path(path, individual_id),) if path else (),
                individual_id=individual_id,
            )
            decided[key] = (
                viewer is None or viewer.can_record_activity(target),
                viewer is not None and viewer.may_know_exists(target),
                viewer is None or viewer.can_verify_actions(target),
            )
        return decided[key]

    rows = []
    for n in range(len(inputs)):
        item, action = inputs[n], actions[n]
        account = accounts.get(item.individual_id)
        household_id = attribution.household_on(
            item.individual_id, item.occurred_on
        ) or attribution.last_household(item.individual_id)
        path = attribution.household_paths.get(household_id) if household_id else None
        may_record, may_know, may_verify = decide(item.individual_id, path)
        if account is None or not may_record:
            known_tenant = viewer is not None and account is not None and may_know
            fail(
                n,
                "individualId",
                "FORBIDDEN" if known_tenant else "NOT_FOUND",
                "you may not record actions for this person" if known_tenant else "no such person",
            )
            continue
        verified = may_verify
        if verified_only and not verified:
            fail(
                n,
                "individualId",
                "FORBIDDEN",
                "only a partner service whose grant covers this person posts verified actions",
            )
            continue
        if item.occurred_on > local_days.on(
            attribution.zone_of("Individual", item.individual_id, item.occurred_on)
        ):
            fail(n, "occurredOn", "INVALID_DATE", "the action has not happened yet")
            continue
        if attribution.household_on(item.individual_id, item.occurred_on) is None:
            result.warnings.append(
                ActionError(
                    n,
                    "occurredOn",
                    "NOT_ATTRIBUTED",
                    f"the person has no household on {item.occurred_on.isoformat()}: counted "
                    "for the person, not for any household or community",
                )
            )
        existing = known.get(item.external_id or "")
        if existing is not None:
            if (
                existing.individual_id,
                existing.action_type_id,
                existing.units,
                existing.occurred_on,
            ) == (item.individual_id, action.id, item.units, item.occurred_on):
                result.unchanged.append(existing.id)
            else:
                fail(
                    n,
                    "externalId",
                    "EXTERNAL_ID_CONFLICT",
                    "externalId was recorded before with different values",
                )
            continue
        if account.archived_at is not None:
            fail(n, "individualId", "ARCHIVED_ACCOUNT", "the account is archived")
            continue
        key = (item.individual_id, action.id, item.occurred_on)
        source = "PARTNER" if verified else "SELF"
        status = "APPROVED"
        if action.evidence == "PHOTO" and source == "SELF":
            photo = evidence.get(item.evidence_id) if item.evidence_id is not None else None
            if item.evidence_id is None:
                fail(n, "evidenceId", "EVIDENCE_REQUIRED", f"{action.code} needs a photo")
                continue
            if photo is None or photo.individual_id != item.individual_id:
                fail(
                    n,
                    "evidenceId",
                    "INVALID_EVIDENCE",
                    "no such photo was uploaded for this person",
                )
                continue
            if item.evidence_id in used_evidence:
                fail(n, "evidenceId", "DUPLICATE_EVIDENCE", "this photo has already been used")
                continue
            used_evidence.add(item.evidence_id)
            status = "PENDING"  # a community manager decides
        if (
            action.evidence == "PARTNER"
            and source == "SELF"
            and (self_used[key] + item.units > action.self_report_cap)
        ):
            fail(
                n,
                "units",
                "DAILY_CAP_REACHED",
                f"at most {action.self_report_cap} self-reported {action.unit} a day; "
                "more must come verified from a partner",
            )
            continue
        if used[key] + item.units > action.daily_cap:
            fail(
                n,
                "units",
                "DAILY_CAP_REACHED",
                f"at most {action.daily_cap} {action.unit} of {action.code} a day",
            )
            continue
        used[key] += item.units
        if source == "SELF":
            self_used[key] += item.units
        rows.append(
            (
                n,
                {
                    "individual_id": item.individual_id,
                    "action_type_id": action.id,
                    "units": item.units,
                    "occurred_on": item.occurred_on,
                    "status": status,
                    "source": source,
                    "external_id": item.external_id,
                    "credits": item.units * action.credits_per_unit,
                    "avoided_g": item.units * action.avoided_g_per_unit,
                    "household_id": attribution.household_on(item.individual_id, item.occurred_on),
                    "evidence_id": item.evidence_id if status == "PENDING" else None,
                    "recorded_by": recorded_by,
                    "decided_by": "auto" if status == "APPROVED" else None,
                    "decided_at": utcnow() if status == "APPROVED" else None,
                    "created_at": utcnow(),
                },
            )
        )
    if result.errors or not rows:
        return result

    ids = await _insert_actions(db, [values for _, values in rows])
    if None in ids:
        # Taken since the lock by a row this request cannot see (another person's, or another
        # tenant's under row-level security): the batch is refused, nothing is written.
        for (n, _), pk in zip(rows, ids, strict=True):
            if pk is None:
                fail(n, "externalId", "EXTERNAL_ID_CONFLICT", "externalId is already in use")
        return result
    result.created.extend(pk for pk in ids if pk is not None)
    approved = [
        ({**values, "id": pk}, actions[n])
        for (n, values), pk in zip(rows, ids, strict=True)
        if values["status"] == "APPROVED"
    ]
    await grant(db, approved, attribution, recorded_by)
    return result


async def _insert_actions(db: Any, values: list[dict[str, Any]]) -> list[int | None]:
    """Insert the rows; their ids in order, None where the externalId was taken."""
    keyed = [v for v in values if v["external_id"] is not None]
    plain = [v for v in values if v["external_id"] is None]
    by_external: dict[str, int] = {}
    if dialect_name(db) == "postgresql" and keyed and not plain:
        # Partners' batches (every action keyed): one statement over arrays. An executemany
        # of thousands of rows is compiled by SQLAlchemy and planned by PostgreSQL in pages.
        inserted = await db.execute(
            unnest_insert(
                AR, keyed, "ON CONFLICT (external_id) DO NOTHING RETURNING id, external_id"
            ),
            unnest_params(AR, keyed),
        )
        by_external = {external_id: pk for pk, external_id in inserted}
        return [by_external.get(v["external_id"]) for v in values]
    insert = (postgresql.insert if dialect_name(db) == "postgresql" else sqlite.insert)(AR)
    idempotent = insert.on_conflict_do_nothing(index_elements=[AR.c.external_id]).returning(
        AR.c.id, AR.c.external_id
    )
    for start in range(0, len(keyed), 5000):
        for pk, external_id in await db.execute(idempotent, keyed[start : start + 5000]):
            by_external[external_id] = pk
    plain_ids: list[int] = []
    for start in range(0, len(plain), 5000):
        inserted = await db.execute(
            sa.insert(AR).returning(AR.c.id, sort_by_parameter_order=True),
            plain[start : start + 5000],
        )
        plain_ids.extend(inserted.scalars().all())
    next_plain = iter(plain_ids)
    return [
        by_external.get(v["external_id"]) if v["external_id"] is not None else next(next_plain)
        for v in values
    ]


async def grant(
    db: Any, approved: list[tuple[dict[str, Any], Any]], attribution: Attribution, by: str | None
) -> None:
    """Credits and reductions of approved actions: ledger entries, then the roll-up."""
    delta = TotalsDelta()
    entries = []
    for values, action in approved:
        entries.append(
            {
                "individual_id": values["individual_id"],
                "kind": "GRANT",
                "amount": values["credits"],
                "action_record_id": values["id"],
                "campaign_id": None,
                "note": action.code,
                "created_by": by,
                "created_at": utcnow(),
            }
        )
        for targets, scope, category in targets_with_scope(
            attribution,
            values["individual_id"],
            values["occurred_on"],
            values["household_id"],
            action,
        ):
            delta.add_reduction(
                targets, values["occurred_on"], scope, category, values["avoided_g"]
            )
    entries += await bonus_entries(db, approved, by)
    await insert_entries(db, entries)
    await live.credits_changed(db, {e["individual_id"] for e in entries})
    await delta.flush(db)


def unnest_insert(table: sa.Table, rows: list[dict[str, Any]], tail: str = "") -> Any:
    """PostgreSQL: ``INSERT INTO table (…) SELECT … FROM unnest(arrays) … tail``, the rows in
    their order (ordinality), with ``unnest_params``: one statement whatever the row count,
    compiled once (SQLAlchemy's multi-row VALUES compiles every value: 4.7 s for 10,000
    ledger entries)."""
    columns = list(rows[0])
    dialect = postgresql.dialect()
    arrays = ", ".join(
        f"CAST(:{c} AS {table.c[c].type.compile(dialect=dialect)}[])" for c in columns
    )
    names = ", ".join(columns)
    return sa.text(
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM unnest({arrays})"
        f" WITH ORDINALITY AS s({names}, ord) ORDER BY ord {tail}"
    )


def unnest_params(table: sa.Table, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {c: [r[c] for r in rows] for c in rows[0]}


async def insert_entries(db: Any, entries: list[dict[str, Any]]) -> None:
    """Ledger entries: on PostgreSQL one INSERT over arrays; elsewhere multi-row INSERTs of
    1,000. Never an executemany: on PostgreSQL each row of one is checked against the
    row-level security policy by a plan of its own (measured: 10,000 entries of a partner
    took 175 s at 2,721 people)."""
    if not entries:
        return
    if dialect_name(db) == "postgresql":
        await db.execute(unnest_insert(CE, entries), unnest_params(CE, entries))
        return
    for start in range(0, len(entries), 1000):
        await db.execute(sa.insert(CE).values(entries[start : start + 1000]))


async def balance(db: Any, individual_id: int) -> int:
    total = await db.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(CE.c.amount), 0)).where(
            CE.c.individual_id == individual_id
        )
    )
    return int(total or 0)


async def balances(db: Any, individual_ids: Sequence[int]) -> dict[int, int]:
    """Balances of many people in one statement (0 for a person without entries)."""
    rows = await db.execute(
        sa.select(CE.c.individual_id, sa.func.sum(CE.c.amount))
        .where(CE.c.individual_id.in_(set(individual_ids)))
        .group_by(CE.c.individual_id)
    )
    found = {individual_id: int(total or 0) for individual_id, total in rows}
    return {i: found.get(i, 0) for i in individual_ids}


async def ledgers(
    db: Any, individual_ids: Sequence[int], first: int, before_id: int | None
) -> dict[int, list[Any]]:
    """Each person's newest ``first`` ledger entries (older than ``before_id`` when given), in
    one statement."""
    out: dict[int, list[Any]] = {i: [] for i in individual_ids}
    if first <= 0:
        return out
    place = (
        sa.func.row_number()
        .over(partition_by=CE.c.individual_id, order_by=CE.c.id.desc())
        .label("place")
    )
    inner = sa.select(CE, place).where(CE.c.individual_id.in_(set(individual_ids)))
    if before_id is not None:
        inner = inner.where(CE.c.id < before_id)
    ranked = inner.subquery()
    rows = await db.execute(
        sa.select(ranked)
        .where(ranked.c.place <= first)
        .order_by(ranked.c.individual_id, ranked.c.id.desc())
    )
    for row in rows:
        out[row.individual_id].append(row)
    return out
