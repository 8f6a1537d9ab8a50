"""API keys: format, digests, and turning a presented key into a viewer with exactly its scopes.

A key reads ``cgk_<prefix>_<secret>``: the prefix (12 hex characters) is public and finds the
row; the secret (32 random bytes, URL-safe base64) is stored only as its SHA-256. A plain,
unsalted digest is enough here: salts and slow hashes protect guessable passwords, while a
256-bit random secret cannot be guessed or looked up in a table, so a fast digest costs an
attacker with the database as much as the secret itself would.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from carbongraph.authz.policy import ResolvedGrant
from carbongraph.authz.roles import Role
from carbongraph.authz.tokens import InvalidToken, Principal
from carbongraph.models import ApiKey, ApiKeyScope

KEY_PREFIX = "cgk_"
SUBJECT_PREFIX = "apikey:"
# Roles a key may carry: machine clients read aggregates and post data, they do not manage.
KEY_ROLES = frozenset({Role.PARTNER_SERVICE, Role.ESG_ANALYST})

K = ApiKey.__table__
S = ApiKeyScope.__table__


@dataclass(frozen=True)
class NewSecret:
    prefix: str
    secret: str
    digest: str

    @property
    def presented(self) -> str:
        """What the client sends: shown once, never stored."""
        return f"{KEY_PREFIX}{self.prefix}_{self.secret}"


def new_secret() -> NewSecret:
    secret = secrets.token_urlsafe(32)
    return NewSecret(secrets.token_hex(6), secret, digest(secret))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


@dataclass(frozen=True)
class ApiKeyPrincipal(Principal):
    """A key as presented, before the database has vouched for it (see ``load_key_viewer``).
    The subject, ``apikey:<prefix>``, is what rate limits and the audit log see."""

    # Kept out of repr() so that a logged principal never shows it.
    secret: str = field(default="", repr=False, compare=False)

    @classmethod
    def parse(cls, token: str) -> ApiKeyPrincipal:
        _, prefix, secret = [*token.split("_", 2), "", ""][:3]
        if len(prefix) != 12 or not secret or any(c not in "0123456789abcdef" for c in prefix):
            raise InvalidToken("malformed API key")
        return cls(subject=f"{SUBJECT_PREFIX}{prefix}", secret=secret)

    @property
    def prefix(self) -> str:
        return self.subject[len(SUBJECT_PREFIX) :]


@dataclass(frozen=True)
class KeyUse:
    """A verified key of this request; ``touch`` when its last use should be written."""

    key_id: int
    touch: bool


# One statement per key-authenticated request, the counterpart of GRANTS_STATEMENT.
KEY_STATEMENT = (
    sa.select(
        K.c.id,
        K.c.secret_sha256,
        K.c.expires_at,
        K.c.revoked_at,
        K.c.last_used_at,
        S.c.role,
        S.c.node_type,
        S.c.node_id,
        S.c.node_path,
    )
    .select_from(K.join(S, S.c.api_key_id == K.c.id))
    .where(K.c.prefix == sa.bindparam("prefix", type_=sa.String()))
    .order_by(S.c.id)
)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def verify_key_rows(
    principal: ApiKeyPrincipal,
    rows: Sequence[Any],
    now: datetime,
    touch_interval: timedelta,
) -> tuple[list[ResolvedGrant], KeyUse]:
    """The key's scopes as grants, or InvalidToken (unknown, wrong secret, revoked, expired).
    All failures read the same to the client."""
    if not rows:
        raise InvalidToken("unknown or revoked API key")
    first = rows[0]
    if not hmac.compare_digest(first.secret_sha256, digest(principal.secret)):
        raise InvalidToken("unknown or revoked API key")
    revoked_at, expires_at = aware(first.revoked_at), aware(first.expires_at)
    if (revoked_at is not None and revoked_at <= now) or (
        expires_at is not None and expires_at <= now
    ):
        raise InvalidToken("unknown or revoked API key")
    last_used = aware(first.last_used_at)
    grants = [
        ResolvedGrant(Role(str(r.role)), str(r.node_type), int(r.node_id), str(r.node_path))
        for r in rows
    ]
    touch = last_used is None or now - last_used >= touch_interval
    return grants, KeyUse(int(first.id), touch)


def touch_statement(key_id: int, now: datetime, touch_interval: timedelta) -> sa.Update:
    """Record a use; the condition makes concurrent touches from several processes a no-op."""
    return (
        sa.update(K)
        .where(
            K.c.id == key_id,
            sa.or_(K.c.last_used_at.is_(None), K.c.last_used_at <= now - touch_interval),
        )
        .values(last_used_at=now)
    )
