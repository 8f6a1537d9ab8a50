"""Evidence uploads and the community manager's decisions on pending actions."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from carbongraph import evidence as photos
from carbongraph.accounting.rollup import Attribution, TotalsDelta
from carbongraph.actions.catalog import A
from carbongraph.actions.record import grant, targets_with_scope
from carbongraph.actions.tables import AR, CE, EV, H
from carbongraph.authz import Target, Viewer
from carbongraph.errors import MutationFailed, UserErrorCode
from carbongraph.live import publish as live
from carbongraph.locks import lock_people
from carbongraph.models.base import utcnow


async def upload_evidence(
    db: Any,
    viewer: Viewer,
    target: Target,
    individual_id: int,
    data: bytes,
    store: photos.EvidenceStore,
) -> Any:
    """Check, dedupe and store a photo for ``individual_id``; the row, or MutationFailed."""
    if not viewer.can_record_activity(target):
        raise MutationFailed.single(
            ["input", "individualId"],
            UserErrorCode.FORBIDDEN,
            "You may not upload evidence for this person.",
        )
    try:
        checked = photos.check(data)
    except photos.EvidenceError as exc:
        raise MutationFailed.single(
            ["input", "file"], UserErrorCode.INVALID_EVIDENCE, str(exc)
        ) from exc
    if await db.scalar(sa.select(EV.c.id).where(EV.c.sha256 == checked.sha256)) is not None:
        raise MutationFailed.single(
            ["input", "file"],
            UserErrorCode.DUPLICATE_EVIDENCE,
            "This photo has been submitted before.",
        )
    key = f"{checked.sha256}.{checked.content_type.split('/')[1]}"
    try:
        await store.put(key, data, checked.content_type)
    except OSError as exc:  # e.g. a full disk: nothing is recorded, nothing earns
        raise MutationFailed.single(
            ["input", "file"],
            UserErrorCode.EVIDENCE_NOT_STORED,
            "The photo could not be stored; try again later.",
        ) from exc
    # The hash is unique across all people, but row-level security (PostgreSQL) shows only
    # the viewer's tenants to the check above: a photo first sent in another tenant is caught
    # here, by the unique index, which sees every row.
    insert = (
        postgresql.insert(EV) if db.dialect == "postgresql" else sqlite.insert(EV)
    ).on_conflict_do_nothing(index_elements=[EV.c.sha256])
    pk = (
        await db.execute(
            insert.values(
                sha256=checked.sha256,
                content_type=checked.content_type,
                size_bytes=checked.size,
                storage_key=key,
                captured_at=checked.captured_at,
                individual_id=individual_id,
                uploaded_by=viewer.subject,
                created_at=utcnow(),
            ).returning(EV.c.id)
        )
    ).scalar()
    if pk is None:
        raise MutationFailed.single(
            ["input", "file"],
            UserErrorCode.DUPLICATE_EVIDENCE,
            "This photo has been submitted before.",
        )
    return (await db.execute(sa.select(EV).where(EV.c.id == pk))).one()


async def _managed_action(db: Any, viewer: Viewer, action_id: int) -> Any:
    """The action, if the viewer manages the community of the person's household that day:
    NOT_FOUND when they cannot see it, FORBIDDEN when they see but do not manage it."""
    row = (await db.execute(sa.select(AR).where(AR.c.id == action_id))).first()
    path = None
    if row is not None and row.household_id is not None:
        path = await db.scalar(sa.select(H.c.path).where(H.c.id == row.household_id))
    target = Target((path,)) if path else Target(())
    if row is None or not viewer.sees(target):
        raise MutationFailed.single(
            ["input", "actionId"], UserErrorCode.NOT_FOUND, "No such action."
        )
    if not viewer.can_manage(target):
        raise MutationFailed.single(
            ["input", "actionId"],
            UserErrorCode.FORBIDDEN,
            "Only the community's managers decide on this action.",
        )
    return row


def _already_decided(status: str) -> MutationFailed:
    return MutationFailed.single(
        ["input", "actionId"],
        UserErrorCode.ALREADY_DECIDED,
        f"The action is already {status.lower()}.",
    )


async def review_action(
    db: Any, viewer: Viewer, action_id: int, approve: bool, reason: str | None
) -> Any:
    row = await _managed_action(db, viewer, action_id)
    if row.status != "PENDING":
        raise _already_decided(row.status)
    reason = (reason or "").strip() or None
    if not approve and reason is None:
        raise MutationFailed.single(
            ["input", "reason"], UserErrorCode.REQUIRED, "Say why the action is rejected."
        )
    # The person's credits change: take their lock (locks.py), then decide with a conditional
    # UPDATE; of concurrent decisions exactly one gets the row back.
    await lock_people(db, [row.individual_id])
    decided = (
        await db.execute(
            sa.update(AR)
            .where(AR.c.id == action_id, AR.c.status == "PENDING")
            .values(
                status="APPROVED" if approve else "REJECTED",
                reason=reason,
                decided_by=viewer.subject,
                decided_at=utcnow(),
            )
            .returning(*AR.c)
        )
    ).first()
    if decided is None:
        raise _already_decided(await db.scalar(sa.select(AR.c.status).where(AR.c.id == action_id)))
    if approve:
        action = (await db.execute(sa.select(A).where(A.c.id == row.action_type_id))).one()
        attribution = await Attribution.load(db, [row.individual_id], [])
        await grant(db, [(dict(decided._mapping), action)], attribution, viewer.subject)
    return decided


def queue_select(community_path: str, status: str, action_type: str | None) -> sa.Select[Any]:
    """A community's actions in one status (of one type), unpaged: the caller pages it by id."""
    select = (
        sa.select(AR, A.c.code, EV.c.sha256, EV.c.content_type, EV.c.captured_at)
        .join(A, A.c.id == AR.c.action_type_id)
        .join(H, H.c.id == AR.c.household_id)
        .outerjoin(EV, EV.c.id == AR.c.evidence_id)
        .where(H.c.path.startswith(community_path, autoescape=False), AR.c.status == status)
    )
    if action_type:
        select = select.where(A.c.code == action_type)
    return select


async def reverse_action(db: Any, viewer: Viewer, action_id: int, reason: str | None) -> Any:
    """Undo an approved action: a REVERSAL entry for its credits (and campaign bonuses) and the
    negative of its reductions. Nothing is updated in the ledger; the action is marked."""
    row = await _managed_action(db, viewer, action_id)
    if row.status == "REVERSED":
        raise _already_decided(row.status)
    if row.status != "APPROVED":
        raise MutationFailed.single(
            ["input", "actionId"], UserErrorCode.INVALID, "Only approved actions can be reversed."
        )
    reason = (reason or "").strip()
    if not reason:
        raise MutationFailed.single(
            ["input", "reason"], UserErrorCode.REQUIRED, "Say why the action is reversed."
        )
    await lock_people(db, [row.individual_id])
    now = utcnow()
    reversed_ = (
        await db.execute(
            sa.update(AR)
            .where(AR.c.id == action_id, AR.c.status == "APPROVED")
            .values(status="REVERSED", reason=reason, decided_by=viewer.subject, decided_at=now)
            .returning(*AR.c)
        )
    ).first()
    if reversed_ is None:
        raise _already_decided(await db.scalar(sa.select(AR.c.status).where(AR.c.id == action_id)))
    # Read under the lock: what this action granted (with campaign bonuses) goes back out once.
    granted = await db.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(CE.c.amount), 0)).where(
            CE.c.action_record_id == action_id
        )
    )
    if granted:
        await db.execute(
            sa.insert(CE).values(
                individual_id=row.individual_id,
                kind="REVERSAL",
                amount=-int(granted),
                action_record_id=action_id,
                note=f"reversal: {reason}",
                created_by=viewer.subject,
                created_at=now,
            )
        )
        await live.credits_changed(db, [row.individual_id])
    action = (await db.execute(sa.select(A).where(A.c.id == row.action_type_id))).one()
    attribution = await Attribution.load(db, [row.individual_id], [])
    delta = TotalsDelta()
    for targets, scope, category in targets_with_scope(
        attribution, row.individual_id, row.occurred_on, row.household_id, action
    ):
        delta.add_reduction(targets, row.occurred_on, scope, category, row.avoided_g, sign=-1)
    await delta.flush(db)
    return reversed_
