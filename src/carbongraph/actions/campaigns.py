"""Campaigns: progress, participants and rankings computed in SQL; credit bonuses on grant."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from carbongraph.actions.catalog import A
from carbongraph.actions.tables import AR, H
from carbongraph.errors import MutationFailed, UserErrorCode, UserErrorData
from carbongraph.models.base import insert_row, utcnow
from carbongraph.models.tables import CP

GOAL_KINDS = ("KG_CO2E", "PARTICIPANTS")


async def create_campaign(
    db: Any,
    *,
    owner_type: str,
    owner_id: int,
    owner_path: str,
    name: str,
    starts_on: date,
    ends_on: date,
    action_types: list[str],
    goal_kind: str,
    goal_value: int,
    bonus_percent: int,
) -> Any:
    errors = []
    known = set((await db.execute(sa.select(A.c.code))).scalars())
    unknown = sorted(set(action_types) - known)
    if not action_types or unknown:
        errors.append(
            (
                "actionTypes",
                UserErrorCode.ACTION_NOT_ALLOWED,
                f"unknown or missing action types: {', '.join(unknown) or 'none given'}",
            )
        )
    if ends_on < starts_on:
        errors.append(("endsOn", UserErrorCode.INVALID_DATE, "endsOn is before startsOn"))
    if goal_kind not in GOAL_KINDS or goal_value <= 0:
        errors.append(("goalValue", UserErrorCode.INVALID, "goal must be positive"))
    if not 100 <= bonus_percent <= 1000:
        errors.append(
            (
                "bonusPercent",
                UserErrorCode.INVALID,
                "bonusPercent is between 100 (no bonus) and 1000",
            )
        )
    if not name.strip():
        errors.append(("name", UserErrorCode.REQUIRED, "name must not be blank"))
    if errors:
        raise MutationFailed([UserErrorData(["input", f], m, c) for f, c, m in errors])
    return await insert_row(
        db,
        CP,
        owner_type=owner_type,
        owner_id=owner_id,
        owner_path=owner_path,
        name=name.strip(),
        starts_on=starts_on,
        ends_on=ends_on,
        action_types=",".join(sorted(set(action_types))),
        goal_kind=goal_kind,
        goal_value=goal_value,
        bonus_percent=bonus_percent,
        created_at=utcnow(),
    )


def _eligible(campaign: Any, under: str | None = None) -> sa.ColumnElement[bool]:
    """Approved actions of eligible types, in the window, of people living under the owner
    (or under ``under``)."""
    return sa.and_(
        AR.c.status == "APPROVED",
        AR.c.occurred_on >= campaign.starts_on,
        AR.c.occurred_on <= campaign.ends_on,
        A.c.code.in_(campaign.action_types.split(",")),
        H.c.path.startswith(under or campaign.owner_path, autoescape=False),
    )


def _joined() -> Any:
    return AR.join(A, A.c.id == AR.c.action_type_id).join(H, H.c.id == AR.c.household_id)


@dataclass
class Progress:
    avoided_g: int
    participants: int
    percent_of_goal: float


async def progress(db: Any, campaign: Any) -> Progress:
    return (await progress_many(db, [campaign]))[0]


def _index(k: int) -> Any:
    # Inlined: PostgreSQL cannot type a bound parameter in a UNION branch.
    return sa.literal_column(str(int(k))).label("k")


async def progress_many(db: Any, campaigns: Sequence[Any]) -> list[Progress]:
    """Progress of many campaigns in one statement (one branch per campaign)."""
    if not campaigns:
        return []
    branches = [
        sa.select(
            _index(k),
            sa.func.coalesce(sa.func.sum(AR.c.avoided_g), 0).label("avoided"),
            sa.func.count(sa.distinct(AR.c.individual_id)).label("people"),
        )
        .select_from(_joined())
        .where(_eligible(campaign))
        for k, campaign in enumerate(campaigns)
    ]
    statement = branches[0] if len(branches) == 1 else sa.union_all(*branches)
    found = {r.k: (int(r.avoided), int(r.people)) for r in await db.execute(statement)}
    out = []
    for k, campaign in enumerate(campaigns):
        avoided, people = found.get(k, (0, 0))
        reached = avoided / 1000 if campaign.goal_kind == "KG_CO2E" else people
        out.append(Progress(avoided, people, round(100 * reached / campaign.goal_value, 2)))
    return out


async def participation(db: Any, campaign: Any) -> tuple[str, dict[str, set[int]]]:
    """For small-cell suppression (docs/privacy.md): the top-most owner path of a campaign
    with the same window and action types among this one's owner and its ancestors (whose
    progress, minus this one's, would tell about the rest), and the participants there, by
    the household they acted in."""
    segments = campaign.owner_path.rstrip("/").split("/")
    owners = ["/".join(segments[: i + 1]) + "/" for i in range(len(segments))]
    root = (
        await db.execute(
            sa.select(CP.c.owner_path)
            .where(
                CP.c.owner_path.in_(owners),
                CP.c.starts_on == campaign.starts_on,
                CP.c.ends_on == campaign.ends_on,
                CP.c.action_types == campaign.action_types,
            )
            .order_by(sa.func.length(CP.c.owner_path))
            .limit(1)
        )
    ).scalar_one_or_none() or campaign.owner_path
    rows = await db.execute(
        sa.select(H.c.path, AR.c.individual_id)
        .distinct()
        .select_from(_joined())
        .where(_eligible(campaign, root))
    )
    people: dict[str, set[int]] = {}
    for path, individual_id in rows:
        people.setdefault(path, set()).add(individual_id)
    return root, people


@dataclass
class Standing:
    rank: int
    individual_id: int
    avoided_g: int


async def top_participants(db: Any, campaign: Any, first: int) -> list[Standing]:
    return (await top_participants_many(db, [campaign], first))[0]


async def top_participants_many(
    db: Any, campaigns: Sequence[Any], first: int
) -> list[list[Standing]]:
    """Each campaign's first ``first`` standings, ranked in SQL (ties share a rank, then by
    person), in one statement."""
    if not campaigns:
        return []
    total = sa.func.sum(AR.c.avoided_g)
    branches = []
    for k, campaign in enumerate(campaigns):
        ranked = (
            sa.select(
                AR.c.individual_id.label("individual_id"),
                total.label("avoided"),
                sa.func.rank().over(order_by=total.desc()).label("rank"),
                # The order of the board: rank, then person (rank follows the total).
                sa.func.row_number()
                .over(order_by=(total.desc(), AR.c.individual_id))
                .label("place"),
            )
            .select_from(_joined())
            .where(_eligible(campaign))
            .group_by(AR.c.individual_id)
            .subquery()
        )
        branches.append(
            sa.select(
                _index(k), ranked.c.individual_id, ranked.c.avoided, ranked.c.rank, ranked.c.place
            ).where(ranked.c.place <= first)
        )
    union = (branches[0] if len(branches) == 1 else sa.union_all(*branches)).subquery()
    rows = await db.execute(sa.select(union).order_by(union.c.k, union.c.place))
    out: list[list[Standing]] = [[] for _ in campaigns]
    for r in rows:
        out[r.k].append(Standing(int(r.rank), r.individual_id, int(r.avoided)))
    return out


def pseudonym(campaign_id: int, individual_id: int) -> str:
    """Stable per board, unlinkable across boards."""
    digest = hashlib.sha256(f"campaign:{campaign_id}:{individual_id}".encode()).hexdigest()
    return f"Participant {digest[:6].upper()}"


async def bonus_entries(
    db: Any, approved: list[tuple[dict[str, Any], Any]], by: str | None
) -> list[dict[str, Any]]:
    """Extra GRANT entries for approved actions that active campaigns multiply."""
    if not approved:
        return []
    days = [v["occurred_on"] for v, _ in approved]
    campaigns = list(
        await db.execute(
            sa.select(CP).where(
                CP.c.bonus_percent > 100, CP.c.starts_on <= max(days), CP.c.ends_on >= min(days)
            )
        )
    )
    if not campaigns:
        return []
    homes = {v["household_id"] for v, _ in approved if v["household_id"] is not None}
    paths = dict(list(await db.execute(sa.select(H.c.id, H.c.path).where(H.c.id.in_(homes)))))
    entries = []
    for values, action in approved:
        path = paths.get(values["household_id"])
        for campaign in campaigns:
            if (
                path
                and path.startswith(campaign.owner_path)
                and campaign.starts_on <= values["occurred_on"] <= campaign.ends_on
                and action.code in campaign.action_types.split(",")
            ):
                extra = values["credits"] * (campaign.bonus_percent - 100) // 100
                if extra:
                    entries.append(
                        {
                            "individual_id": values["individual_id"],
                            "kind": "GRANT",
                            "amount": extra,
                            "action_record_id": values["id"],
                            "campaign_id": campaign.id,
                            "note": f"campaign {campaign.id} bonus",
                            "created_by": by,
                            "created_at": utcnow(),
                        }
                    )
    return entries
