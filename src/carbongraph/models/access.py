"""Stored role grants: (principal, role, node). Grants inherit down the hierarchy."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from carbongraph.models.base import TableModel, timestamp_column, utcnow


class RoleGrant(TableModel, table=True):
    __tablename__ = "role_grant"
    __table_args__ = (
        sa.UniqueConstraint("principal", "role", "node_type", "node_id"),
        sa.Index("ix_role_grant_node", "node_type", "node_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # The JWT ``sub`` of a person or a machine client.
    principal: str = Field(max_length=256, index=True)
    role: str = Field(max_length=32)
    # PLATFORM grants have node_type "Platform" and node_id 0.
    node_type: str = Field(max_length=32)
    node_id: int
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    created_by: str | None = Field(default=None, max_length=256)
