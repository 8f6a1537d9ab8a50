"""API keys for partner services, and the append-only audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from carbongraph.models.base import TableModel, timestamp_column, utcnow


class ApiKey(TableModel, table=True):
    """A partner service's credential. Only a digest of the secret is stored."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    # Public, unique part of the presented key; finds the row without scanning digests.
    prefix: str = Field(max_length=16, unique=True)
    # SHA-256 of the secret part, hex.
    secret_sha256: str = Field(max_length=64)
    name: str = Field(max_length=120)
    created_by: str = Field(max_length=256)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    expires_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    last_used_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    # When the key stops working; in the future during a rotation's grace period.
    revoked_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    rotated_from_id: int | None = Field(default=None, foreign_key="api_key.id")


class ApiKeyScope(TableModel, table=True):
    """One (role, node) a key acts with. The node's path is copied here (nodes never re-parent),
    so authenticating a key is one statement without joins to the hierarchy."""

    __tablename__ = "api_key_scope"
    __table_args__ = (sa.UniqueConstraint("api_key_id", "role", "node_type", "node_id"),)

    id: int | None = Field(default=None, primary_key=True)
    api_key_id: int = Field(foreign_key="api_key.id", index=True)
    role: str = Field(max_length=32)
    node_type: str = Field(max_length=32)
    node_id: int
    node_path: str = Field(max_length=512)


class AuditEvent(TableModel, table=True):
    """Who did what, when, with what outcome. Rows are never updated or deleted (triggers)."""

    __tablename__ = "audit_event"
    __table_args__ = (sa.Index("ix_audit_event_actor_subject_id", "actor_subject", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    actor_subject: str | None = Field(default=None, max_length=256)
    # USER (a JWT subject), API_KEY, CLI.
    actor_kind: str = Field(max_length=16)
    api_key_id: int | None = Field(default=None)
    request_id: str | None = Field(default=None, max_length=64)
    operation: str = Field(max_length=64, index=True)
    outcome: str = Field(max_length=16)
    # Global IDs the operation named or produced, space-separated with a leading and trailing
    # space, so that "mentions X" is a LIKE '% X %'.
    target_ids: str = Field(default=" ", max_length=4000)
    summary: str = Field(default="{}", sa_column=sa.Column(sa.Text(), nullable=False))


# Append-only at the database, whoever connects. The migration carries a frozen copy.
POSTGRES_APPEND_ONLY = [
    """
    CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_event is append-only (% refused)', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    """
    CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()
    """,
    """
    CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()
    """,
]
SQLITE_APPEND_ONLY = [
    """
    CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only (UPDATE refused)'); END
    """,
    """
    CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only (DELETE refused)'); END
    """,
]


async def clear_audit_events_for_tests(conn: Any) -> None:
    """Empty ``audit_event`` on a throw-away test database. PostgreSQL: needs a superuser
    (``session_replication_role`` skips ordinary triggers); SQLite: the triggers are dropped and
    recreated around the DELETE. Never used by the application."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        await conn.execute(sa.text("TRUNCATE audit_event RESTART IDENTITY"))
        await conn.execute(sa.text("SET LOCAL session_replication_role = origin"))
        return
    await conn.execute(sa.text("DROP TRIGGER IF EXISTS audit_event_no_update"))
    await conn.execute(sa.text("DROP TRIGGER IF EXISTS audit_event_no_delete"))
    await conn.execute(sa.text("DELETE FROM audit_event"))
    for statement in SQLITE_APPEND_ONLY:
        await conn.execute(sa.text(statement))
