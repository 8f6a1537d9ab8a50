"""Column and index helpers shared by the tables, and inserting a row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlmodel import SQLModel

# Constraint names are fixed so that Alembic migrations are identical on SQLite and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class TableModel(SQLModel):
    """The base of every table. SQLAlchemy sets ``__table__`` on each ``table=True`` class;
    it is declared here (for the type checker only) because SQLModel does not declare it."""

    if TYPE_CHECKING:
        __table__: ClassVar[sa.Table]


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamp_column(*, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable)


def partial_unique_index(name: str, *columns: str, where: str) -> sa.Index:
    """Unique over the rows that match ``where``; SQLite and PostgreSQL each take the
    predicate under their own keyword, so it is given to both."""
    predicate = sa.text(where)
    return sa.Index(name, *columns, unique=True, sqlite_where=predicate, postgresql_where=predicate)


async def insert_row(db: Any, table: sa.Table, **values: Any) -> Any:
    """Insert one row and return it as stored (with its id and server-side defaults)."""
    pk = (await db.execute(sa.insert(table).values(**values).returning(table.c.id))).scalar_one()
    return (await db.execute(sa.select(table).where(table.c.id == pk))).one()
