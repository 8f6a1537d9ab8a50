"""Bearer JWTs: verification (PyJWT) and development minting.

HS256 with a shared secret in development; RS256 with a PEM public key or a JWKS file in
production. Issuer, audience, expiry and subject are always required.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from carbongraph.config import ConfigError, Settings


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired or not ours."""


@dataclass(frozen=True)
class Principal:
    subject: str
    claims: dict[str, Any] = field(default_factory=dict, compare=False)


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._secret = settings.effective_jwt_secret
        self._public_key: str | None = None
        self._jwks: jwt.PyJWKSet | None = None
        self._verified: dict[str, tuple[Principal, float]] = {}
        if settings.jwt_public_key_file:
            self._public_key = settings.jwt_public_key_file.read_text()
        if settings.jwt_jwks_file:
            self._jwks = jwt.PyJWKSet.from_dict(json.loads(settings.jwt_jwks_file.read_text()))
        if not (self._secret or self._public_key or self._jwks):
            raise ConfigError("no JWT verification key is configured")

    def _key_for(self, token: str) -> tuple[Any, list[str]]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        alg = header.get("alg")
        if alg == "HS256" and self._secret:
            return self._secret, ["HS256"]
        if alg == "RS256" and self._jwks is not None:
            kid = header.get("kid")
            for key in self._jwks.keys:
                if kid is None or key.key_id == kid:
                    return key.key, ["RS256"]
            raise InvalidToken("unknown signing key")
        if alg == "RS256" and self._public_key:
            return self._public_key, ["RS256"]
        raise InvalidToken(f"signing algorithm {alg!r} is not accepted")

    # Verified tokens, until they expire: a client sends the same token with every request,
    # and PyJWT's checks cost ~0.35 ms a request (about a tenth of a planned read's time).
    # Sound because a token's verdict depends only on the token, this verifier's keys and
    # settings (fixed for the process) and the time: only successes are kept, and only until
    # the moment verification would start failing (``exp`` + leeway); ``nbf`` / ``iat`` once
    # passed stay passed. Grants are still read with every request.
    CACHE_SIZE = 10_000
    LEEWAY_SECONDS = 30

    def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            principal, until = cached
            if time.time() < until:
                return principal
            del self._verified[token]
        principal = self._verify(token)
        exp = principal.claims.get("exp")
        if isinstance(exp, int | float):
            if len(self._verified) >= self.CACHE_SIZE:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[token] = (principal, exp + self.LEEWAY_SECONDS)
        return principal

    def _verify(self, token: str) -> Principal:
        key, algorithms = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=self.LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token has expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("token has no subject")
        return Principal(subject=subject, claims=claims)


def mint_token(
    settings: Settings,
    subject: str,
    *,
    roles: list[str] | None = None,
    ttl: timedelta = timedelta(hours=24),
) -> str:
    """A signed token for ``subject``. The ``scope`` claim lists roles for the gateway's
    ``@requiresScopes``; what a principal may do is decided by its stored grants, not by it."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl,
    }
    if roles:
        claims["scope"] = " ".join(sorted(set(roles)))
    if settings.jwt_private_key_file:
        return jwt.encode(claims, settings.jwt_private_key_file.read_text(), algorithm="RS256")
    secret = settings.effective_jwt_secret
    if not secret:
        raise ConfigError(
            "minting needs CARBONGRAPH_JWT_SECRET or CARBONGRAPH_JWT_PRIVATE_KEY_FILE"
        )
    return jwt.encode(claims, secret, algorithm="HS256")
