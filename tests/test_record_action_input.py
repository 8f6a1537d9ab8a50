"""RecordActionInput's ``from_input`` hook builds what Strawberry's own conversion builds."""

from datetime import date

import pytest
from strawberry.types.arguments import convert_argument
from strawberry.types.base import get_object_definition

from carbongraph.schema.actions import mutations
from carbongraph.schema.schema import schema

ITEMS = [
    {"individualId": "SW5kaXZpZHVhbDox", "actionType": "SUBWAY_TRIP", "units": 1,
     "occurredOn": date(2026, 1, 1), "externalId": "x1", "evidenceId": None},
    {"individualId": "SW5kaXZpZHVhbDoy", "actionType": "BIKE_TRIP", "units": 3,
     "occurredOn": date(2026, 2, 28), "externalId": None, "evidenceId": "RXZpZGVuY2U6Nw=="},
]  # fmt: skip


def convert() -> object:
    return convert_argument(
        {"actions": ITEMS},
        mutations.RecordActionsInput,
        schema.schema_converter.scalar_registry,
        schema.config,
    )


def test_from_input_is_strawberrys_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    definition = get_object_definition(mutations.RecordActionInput, strict=True)
    assert definition.from_input is not None
    fast = convert()
    monkeypatch.setattr(definition, "from_input", None)
    assert fast == convert()
