"""The tables that recording, campaigns and review share, as SQLAlchemy Table handles.

Their own module so that ``record`` may import ``campaigns`` (a record's campaign bonuses)
while ``campaigns`` reads the records' table: no import cycle."""

from __future__ import annotations

from carbongraph.models import ActionRecordRow, CreditEntry, Evidence, Household, Individual

AR = ActionRecordRow.__table__
CE = CreditEntry.__table__
I = Individual.__table__  # noqa: E741
H = Household.__table__
EV = Evidence.__table__
