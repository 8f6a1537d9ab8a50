"""Server-side keys of the engagement features: statement links and leaderboard pseudonyms.

Both derive from one secret (``CARBONGRAPH_ENGAGEMENT_SECRET``, else the HS256 JWT secret) with
a purpose label, so a key for one use never verifies or names anything in the other.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from carbongraph.config import ConfigError, Settings

LINK_AUDIENCE = "carbongraph:statement"


def _key(settings: Settings, purpose: str) -> bytes:
    base = settings.engagement_secret or settings.effective_jwt_secret
    if not base:
        raise ConfigError(
            "statement links and leaderboard pseudonyms need CARBONGRAPH_ENGAGEMENT_SECRET "
            "(or CARBONGRAPH_JWT_SECRET)"
        )
    return hmac.new(base.encode(), purpose.encode(), hashlib.sha256).digest()


def pseudonym(settings: Settings, board_key: str, member: str, label: str) -> str:
    """Stable for one member on one board, unlinkable across boards, not reversible without the
    server's key (member ids are small integers: a plain hash would be guessed)."""
    digest = hmac.new(
        _key(settings, "leaderboard-pseudonym"),
        f"{board_key}|{member}".encode(),
        hashlib.sha256,
    ).hexdigest()
    return f"{label} {digest[:8].upper()}"


@dataclass(frozen=True)
class StatementLink:
    subject: str
    household_id: int
    expires_at: datetime


def mint_statement_link(
    settings: Settings, subject: str, household_id: int, now: datetime | None = None
) -> tuple[str, datetime]:
    """A short-lived token that lets ``subject`` open one household's statement page."""
    now = now or datetime.now(UTC)
    expires = now + timedelta(minutes=settings.statement_link_minutes)
    claims = {
        "sub": subject,
        "aud": LINK_AUDIENCE,
        "hh": household_id,
        "iat": now,
        "exp": expires,
    }
    token = jwt.encode(claims, _key(settings, "statement-link"), algorithm="HS256")
    return token, expires


def verify_statement_link(settings: Settings, token: str) -> StatementLink:
    """Raises ``jwt.PyJWTError`` when the token is forged, expired or not a statement link."""
    claims = jwt.decode(
        token,
        _key(settings, "statement-link"),
        algorithms=["HS256"],
        audience=LINK_AUDIENCE,
        options={"require": ["exp", "aud", "sub", "hh"]},
    )
    if not isinstance(claims["sub"], str) or not isinstance(claims["hh"], int):
        raise jwt.InvalidTokenError("malformed statement link")
    return StatementLink(claims["sub"], claims["hh"], datetime.fromtimestamp(claims["exp"], tz=UTC))
