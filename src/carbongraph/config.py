"""Settings read from the environment (``CARBONGRAPH_*``); one frozen object per process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from carbongraph.clock import Clock

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./carbongraph.db"
# Only ever used when CARBONGRAPH_ENV is "development": production refuses to start without a key.
DEV_JWT_SECRET = "carbongraph-development-secret-do-not-use-in-production"


class ConfigError(RuntimeError):
    """The environment does not describe a runnable configuration."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    env: str = "development"
    jwt_secret: str | None = None
    # HMAC key for personal input in the audit log (unset: such input is stored redacted).
    audit_key: str | None = None
    jwt_public_key_file: Path | None = None
    jwt_jwks_file: Path | None = None
    jwt_private_key_file: Path | None = None
    jwt_issuer: str = "carbongraph"
    jwt_audience: str = "carbongraph"
    db_pool_size: int = 10
    max_page_size: int = 100
    default_page_size: int = 20
    # Adds extensions.sqlStatements to every response (benchmarks, end-to-end tests).
    report_sql_statements: bool = False
    # Read queries over the hierarchy compiled into one SQL statement on PostgreSQL
    # (carbongraph.planner, docs/architecture.md); CARBONGRAPH_PLANNER=off: Strawberry alone.
    planner: bool = True
    # CARBONGRAPH_PLANNER=shadow: the planner answers, and every read it answers is executed by
    # Strawberry too and compared (carbongraph.planner.shadow; docs/operations.md). A rollout
    # check: it costs the reference executor's time on top of the planner's.
    planner_shadow: bool = False
    # Shadow mode: append one JSON line per read (planned and equal, mismatch, fell back) to this
    # file (the test suite's summary of the differential; tests/conftest.py).
    planner_shadow_report: Path | None = None
    # Limits on documents and requests (docs/security.md).
    max_depth: int = 6
    max_aliases: int = 15
    max_directives: int = 50
    max_tokens: int = 1000
    max_query_characters: int = 15_000
    max_body_bytes: int = 1_000_000
    request_timeout_seconds: int = 10
    # Bulk mutations (limits.BULK_FIELDS): a larger body and more time, for them alone.
    max_bulk_body_bytes: int = 4_000_000
    bulk_request_timeout_seconds: int = 60
    # In production, `_service` and `_entities` answer only requests carrying this secret in
    # the X-Carbongraph-Gateway-Secret header (the gateway adds it).
    gateway_secret: str | None = None
    max_cost: int = 5000
    # Cost units per principal and per client IP per minute; 0 disables rate limiting.
    rate_limit_per_minute: int = 60_000
    redis_url: str | None = None
    # Browser origins allowed to call the API (CORS); none by default.
    cors_origins: tuple[str, ...] = ()
    # Aggregates covering fewer people are withheld from viewers who may not see them
    # individually (docs/privacy.md); 1 turns suppression off.
    small_cell_k: int = 10
    # Row-level security on PostgreSQL (docs/security.md): the table owner's URL, used by
    # `carbongraph migrate` only; the server and the other commands use database_url. When its
    # user differs, migrate grants that user (the app role) what it needs. Unset: database_url
    # does both (one role: the policies still apply unless it is a superuser).
    migration_database_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # API keys: a key's last use is written at most once per this many seconds.
    api_key_last_used_seconds: int = 60
    # Live updates (docs/live-updates.md): at most one leaderboardChanged per subscription per
    # this many milliseconds (changes in between are coalesced); subscriptions per connection.
    live_leaderboard_interval_ms: int = 1000
    live_max_subscriptions_per_connection: int = 100
    # Engagement: the key for statement links and leaderboard pseudonyms (falls back to the JWT
    # secret), and how long a statement link lasts.
    engagement_secret: str | None = None
    statement_link_minutes: int = 15
    # Attack suites (issue 7): the same field at most this often in one selection set.
    max_field_repeats: int = 20
    # Operations (docs/operations.md): the bearer secret of /metrics (in production /metrics is
    # served only with one), distinct operation names as metric labels, logs (json or text).
    metrics_token: str | None = None
    metrics_max_operations: int = 200
    log_format: str = "text"
    log_level: str = "info"
    trace_resolvers: bool = False
    # Where the time comes from (carbongraph.clock): the system clock; tests set a FixedClock.
    clock: Clock = field(default_factory=Clock, compare=False, repr=False)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ.get("CARBONGRAPH_ENV", "development").strip().lower()
        if env not in {"development", "production"}:
            raise ConfigError("CARBONGRAPH_ENV must be 'development' or 'production'")

        def path(name: str) -> Path | None:
            raw = os.environ.get(name)
            return Path(raw) if raw else None

        planner_mode = os.environ.get("CARBONGRAPH_PLANNER", "on").strip().lower()
        if planner_mode not in ("on", "shadow", "off", "1", "0", "true", "false", "yes", "no"):
            raise ConfigError("CARBONGRAPH_PLANNER must be 'on', 'off' or 'shadow'")
        values: dict[str, object] = {
            "database_url": os.environ.get("CARBONGRAPH_DATABASE_URL") or DEFAULT_DATABASE_URL,
            "env": env,
            "jwt_secret": os.environ.get("CARBONGRAPH_JWT_SECRET") or None,
            "audit_key": os.environ.get("CARBONGRAPH_AUDIT_KEY") or None,
            "jwt_public_key_file": path("CARBONGRAPH_JWT_PUBLIC_KEY_FILE"),
            "jwt_jwks_file": path("CARBONGRAPH_JWT_JWKS_FILE"),
            "jwt_private_key_file": path("CARBONGRAPH_JWT_PRIVATE_KEY_FILE"),
            "jwt_issuer": os.environ.get("CARBONGRAPH_JWT_ISSUER", "carbongraph"),
            "jwt_audience": os.environ.get("CARBONGRAPH_JWT_AUDIENCE", "carbongraph"),
            "db_pool_size": _int("CARBONGRAPH_DB_POOL_SIZE", 10),
            "max_page_size": _int("CARBONGRAPH_MAX_PAGE_SIZE", 100),
            "default_page_size": _int("CARBONGRAPH_DEFAULT_PAGE_SIZE", 20),
            "report_sql_statements": os.environ.get("CARBONGRAPH_REPORT_SQL_STATEMENTS") == "1",
            "planner": planner_mode not in ("off", "0", "false", "no"),
            "planner_shadow": planner_mode == "shadow",
            "planner_shadow_report": path("CARBONGRAPH_PLANNER_SHADOW_REPORT"),
            "max_depth": _int("CARBONGRAPH_MAX_DEPTH", 6),
            "max_aliases": _int("CARBONGRAPH_MAX_ALIASES", 15),
            "max_directives": _int("CARBONGRAPH_MAX_DIRECTIVES", 50),
            "max_tokens": _int("CARBONGRAPH_MAX_TOKENS", 1000),
            "max_query_characters": _int("CARBONGRAPH_MAX_QUERY_CHARACTERS", 15_000),
            "max_body_bytes": _int("CARBONGRAPH_MAX_BODY_BYTES", 1_000_000),
            "request_timeout_seconds": _int("CARBONGRAPH_REQUEST_TIMEOUT_SECONDS", 10),
            "max_bulk_body_bytes": _int("CARBONGRAPH_MAX_BULK_BODY_BYTES", 4_000_000),
            "bulk_request_timeout_seconds": _int("CARBONGRAPH_BULK_REQUEST_TIMEOUT_SECONDS", 60),
            "gateway_secret": os.environ.get("CARBONGRAPH_GATEWAY_SECRET") or None,
            "max_cost": _int("CARBONGRAPH_MAX_COST", 5000),
            "rate_limit_per_minute": _int("CARBONGRAPH_RATE_LIMIT_PER_MINUTE", 60_000),
            "redis_url": os.environ.get("CARBONGRAPH_REDIS_URL") or None,
            "cors_origins": tuple(
                o.strip()
                for o in os.environ.get("CARBONGRAPH_CORS_ORIGINS", "").split(",")
                if o.strip()
            ),
            "small_cell_k": _int("CARBONGRAPH_SMALL_CELL_K", 10),
            # API keys
            "api_key_last_used_seconds": _int("CARBONGRAPH_API_KEY_LAST_USED_SECONDS", 60),
            "live_leaderboard_interval_ms": _int("CARBONGRAPH_LIVE_LEADERBOARD_INTERVAL_MS", 1000),
            "live_max_subscriptions_per_connection": _int(
                "CARBONGRAPH_LIVE_MAX_SUBSCRIPTIONS_PER_CONNECTION", 100
            ),
            "engagement_secret": os.environ.get("CARBONGRAPH_ENGAGEMENT_SECRET") or None,
            "statement_link_minutes": _int("CARBONGRAPH_STATEMENT_LINK_MINUTES", 15),
            "migration_database_url": os.environ.get("CARBONGRAPH_MIGRATION_DATABASE_URL") or None,
            # Attack suites (issue 7)
            "max_field_repeats": _int("CARBONGRAPH_MAX_FIELD_REPEATS", 20),
            # Operations
            "metrics_token": os.environ.get("CARBONGRAPH_METRICS_TOKEN") or None,
            "metrics_max_operations": _int("CARBONGRAPH_METRICS_MAX_OPERATIONS", 200),
            "log_format": (
                os.environ.get("CARBONGRAPH_LOG_FORMAT")
                or ("json" if env == "production" else "text")
            )
            .strip()
            .lower(),
            "log_level": (os.environ.get("CARBONGRAPH_LOG_LEVEL") or "info").strip().lower(),
            "trace_resolvers": os.environ.get("CARBONGRAPH_TRACE_RESOLVERS") == "1",
        }
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        has_key = bool(self.jwt_secret or self.jwt_public_key_file or self.jwt_jwks_file)
        if self.is_production and not has_key:
            raise ConfigError(
                "production needs CARBONGRAPH_JWT_PUBLIC_KEY_FILE, CARBONGRAPH_JWT_JWKS_FILE "
                "or CARBONGRAPH_JWT_SECRET"
            )
        if self.planner_shadow and not self.planner:
            raise ConfigError("the planner's shadow mode needs the planner (CARBONGRAPH_PLANNER)")
        if self.small_cell_k < 1:
            raise ConfigError("CARBONGRAPH_SMALL_CELL_K must be at least 1")
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise ConfigError("CARBONGRAPH_DEFAULT_PAGE_SIZE must be between 1 and the maximum")
        if self.log_format not in {"json", "text"}:
            raise ConfigError("CARBONGRAPH_LOG_FORMAT must be 'json' or 'text'")
        if self.log_level not in {"debug", "info", "warning", "error", "critical"}:
            raise ConfigError(
                "CARBONGRAPH_LOG_LEVEL must be debug, info, warning, error or critical"
            )
        if self.metrics_max_operations < 1:
            raise ConfigError("CARBONGRAPH_METRICS_MAX_OPERATIONS must be at least 1")
        if not 1 <= self.statement_link_minutes <= 24 * 60:
            raise ConfigError("CARBONGRAPH_STATEMENT_LINK_MINUTES must be between 1 and 1440")

    @property
    def migration_url(self) -> str:
        return self.migration_database_url or self.database_url

    @property
    def effective_jwt_secret(self) -> str | None:
        if self.jwt_secret:
            return self.jwt_secret
        if not self.is_production and not (self.jwt_public_key_file or self.jwt_jwks_file):
            return DEV_JWT_SECRET
        return None
