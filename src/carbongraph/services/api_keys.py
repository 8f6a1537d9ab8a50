"""Creating, rotating, revoking and listing API keys.

Who may do what:
- create (and rotate, which mints a new secret): whoever may grant every one of the key's
  (role, node) scopes (``Viewer.can_grant``), so nobody mints a key beyond their own rights;
- see, list and revoke: the managers of every scope's node (ORG_ADMIN, COMMUNITY_MANAGER in
  their subtree) and platform admins. A key outside that is answered like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from carbongraph import audit
from carbongraph.authz import GRANTABLE_ON, Role, Target, Viewer
from carbongraph.authz.api_keys import KEY_ROLES, K, S, aware, new_secret
from carbongraph.authz.roles import MANAGING_ROLES
from carbongraph.caller import Caller
from carbongraph.errors import MutationFailed, UserErrorCode, UserErrorData
from carbongraph.services.hierarchy import load_target
from carbongraph.services.validation import Checker

MAX_SCOPES = 20
MAX_GRACE_MINUTES = 24 * 60


@dataclass(frozen=True)
class ScopeRequest:
    role: Role
    node_type: str
    node_id: int
    field: list[str]


@dataclass(frozen=True)
class KeyRecord:
    row: Any
    scopes: list[Any]


@dataclass(frozen=True)
class IssuedKey:
    key: KeyRecord
    presented: str  # the whole key, returned once


async def create_key(
    caller: Caller, *, name: str, scopes: list[ScopeRequest], expires_at: datetime | None
) -> IssuedKey:
    check = Checker()
    clean_name = check.text("name", name, max_length=120)
    now = datetime.now(UTC)
    if expires_at is not None and (aware(expires_at) or now) <= now:
        check.fail("expiresAt", UserErrorCode.INVALID_DATE, "expiresAt must be in the future.")
    if not scopes:
        check.fail("scopes", UserErrorCode.REQUIRED, "A key needs at least one scope.")
    if len(scopes) > MAX_SCOPES:
        check.fail("scopes", UserErrorCode.INVALID, f"A key has at most {MAX_SCOPES} scopes.")
    if not check.ok:
        raise MutationFailed(check.errors)
    resolved: list[dict[str, Any]] = []
    seen: set[tuple[str, str, int]] = set()
    for scope in scopes:
        if scope.role not in KEY_ROLES:
            allowed = ", ".join(sorted(KEY_ROLES))
            raise MutationFailed.single(
                [*scope.field[:-1], "role"],
                UserErrorCode.NOT_GRANTABLE,
                f"API keys carry only {allowed}.",
            )
        if scope.node_type not in GRANTABLE_ON[scope.role]:
            where = ", ".join(sorted(GRANTABLE_ON[scope.role]))
            raise MutationFailed.single(
                scope.field, UserErrorCode.NOT_GRANTABLE, f"{scope.role} is granted on: {where}."
            )
        node = await load_target(caller, scope.node_type, scope.node_id, scope.field, manage=False)
        if not caller.viewer.can_grant(scope.role, Target((node.path,))):
            raise MutationFailed.single(
                scope.field, UserErrorCode.FORBIDDEN, f"You may not grant {scope.role} here."
            )
        if node.archived_at is not None:
            raise MutationFailed.single(
                scope.field, UserErrorCode.ARCHIVED, f"This {scope.node_type} is archived."
            )
        key = (scope.role.value, scope.node_type, scope.node_id)
        if key in seen:
            continue
        seen.add(key)
        resolved.append(
            {
                "role": scope.role.value,
                "node_type": scope.node_type,
                "node_id": scope.node_id,
                "node_path": node.path,
            }
        )
    return await _insert_key(caller, clean_name or "", resolved, aware(expires_at), None)


async def _insert_key(
    caller: Caller,
    name: str,
    scopes: list[dict[str, Any]],
    expires_at: datetime | None,
    rotated_from_id: int | None,
) -> IssuedKey:
    secret = new_secret()
    key_id = (
        await caller.db.execute(
            sa.insert(K)
            .values(
                prefix=secret.prefix,
                secret_sha256=secret.digest,
                name=name,
                created_by=caller.viewer.subject or "",
                created_at=datetime.now(UTC),
                expires_at=expires_at,
                rotated_from_id=rotated_from_id,
            )
            .returning(K.c.id)
        )
    ).scalar_one()
    await caller.db.execute(sa.insert(S), [{"api_key_id": key_id, **s} for s in scopes])
    record = await _load(caller, key_id)
    assert record is not None
    audit.note(caller, apiKeyPrefix=secret.prefix, scopes=_scope_summary(record.scopes))
    return IssuedKey(record, secret.presented)


def _scope_summary(scopes: list[Any]) -> list[str]:
    return [f"{s.role}@{s.node_type}:{s.node_id}" for s in scopes]


async def _load(caller: Caller, key_id: int) -> KeyRecord | None:
    rows = list(
        await caller.db.execute(
            sa.select(K, S.c.role, S.c.node_type, S.c.node_id, S.c.node_path)
            .select_from(K.join(S, S.c.api_key_id == K.c.id))
            .where(K.c.id == key_id)
            .order_by(S.c.id)
        )
    )
    if not rows:
        return None
    return KeyRecord(rows[0], rows)


def may_see(viewer: Viewer, record: KeyRecord) -> bool:
    return all(viewer.can_manage(Target((s.node_path,))) for s in record.scopes)


async def _managed(caller: Caller, key_id: int, field: list[str]) -> KeyRecord:
    record = await _load(caller, key_id)
    if record is None or not may_see(caller.viewer, record):
        raise MutationFailed.single(field, UserErrorCode.NOT_FOUND, "No such API key.")
    return record


def _active(row: Any, now: datetime) -> bool:
    revoked, expires = aware(row.revoked_at), aware(row.expires_at)
    return (revoked is None or revoked > now) and (expires is None or expires > now)


async def rotate_key(caller: Caller, key_id: int, grace_minutes: int) -> tuple[IssuedKey, Any]:
    """A new secret with the same name, scopes and expiry; the old key stops working now, or
    after ``grace_minutes`` (at most a day) so that a fleet can switch over."""
    field = ["input", "apiKeyId"]
    if not 0 <= grace_minutes <= MAX_GRACE_MINUTES:
        raise MutationFailed.single(
            ["input", "graceMinutes"],
            UserErrorCode.INVALID,
            f"graceMinutes must be between 0 and {MAX_GRACE_MINUTES}.",
        )
    old = await _managed(caller, key_id, field)
    now = datetime.now(UTC)
    if not _active(old.row, now) or old.row.revoked_at is not None:
        raise MutationFailed.single(
            field,
            UserErrorCode.INVALID,
            "Only an active key that is not already being replaced can be rotated.",
        )
    errors = [
        UserErrorData(field, f"You may not grant {s.role} here.", UserErrorCode.FORBIDDEN)
        for s in old.scopes
        if not caller.viewer.can_grant(Role(s.role), Target((s.node_path,)))
    ]
    if errors:
        raise MutationFailed(errors[:1])
    await caller.db.execute(
        sa.update(K)
        .where(K.c.id == key_id)
        .values(revoked_at=now + timedelta(minutes=grace_minutes))
    )
    scopes = [
        {"role": s.role, "node_type": s.node_type, "node_id": s.node_id, "node_path": s.node_path}
        for s in old.scopes
    ]
    issued = await _insert_key(caller, old.row.name, scopes, aware(old.row.expires_at), key_id)
    return issued, await _load(caller, key_id)


async def revoke_key(caller: Caller, key_id: int) -> KeyRecord:
    """Stops the key at once (also one in a rotation's grace period); revoking twice is a no-op."""
    record = await _managed(caller, key_id, ["input", "apiKeyId"])
    now = datetime.now(UTC)
    revoked = aware(record.row.revoked_at)
    if revoked is None or revoked > now:
        await caller.db.execute(sa.update(K).where(K.c.id == key_id).values(revoked_at=now))
        record = await _load(caller, key_id) or record
    audit.note(caller, apiKeyPrefix=record.row.prefix, scopes=_scope_summary(record.scopes))
    return record


# -- lists -------------------------------------------------------------------------------------


def visible_keys(viewer: Viewer, include_inactive: bool, now: datetime) -> sa.Select[Any]:
    """Keys every scope of which lies where the viewer manages."""
    select = sa.select(K)
    if not include_inactive:
        select = select.where(
            sa.or_(K.c.revoked_at.is_(None), K.c.revoked_at > now),
            sa.or_(K.c.expires_at.is_(None), K.c.expires_at > now),
        )
    if viewer.is_platform_admin:
        return select
    paths = [g.path for g in viewer.grants if g.role in MANAGING_ROLES and g.path]
    if not paths:
        return select.where(sa.false())
    inside: ColumnElement[bool] = sa.or_(
        *(S.c.node_path.startswith(p, autoescape=False) for p in paths)
    )
    outside = sa.select(S.c.id).where(S.c.api_key_id == K.c.id, sa.not_(inside))
    return select.where(~outside.exists())


async def scopes_of(caller: Caller, key_ids: list[int]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {k: [] for k in key_ids}
    if not key_ids:
        return out
    rows = await caller.db.execute(sa.select(S).where(S.c.api_key_id.in_(key_ids)).order_by(S.c.id))
    for row in rows:
        out[row.api_key_id].append(row)
    return out


async def fetch_key(caller: Caller, key_id: int) -> KeyRecord | None:
    record = await _load(caller, key_id)
    return record if record is not None and may_see(caller.viewer, record) else None
