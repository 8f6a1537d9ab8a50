"""Global IDs (Relay's ``base64("Type:pk")``): the API's object IDs, which importers and the
CLI read and write too, so they live below the schema (schema/relay.py re-exports them)."""

from __future__ import annotations

from collections.abc import Sequence

from strawberry import relay

from carbongraph.errors import NotFound


def decode_global_id(
    value: str | relay.GlobalID, expected: Sequence[str] | None = None
) -> tuple[str, int]:
    """(type name, primary key) of a global ID; NOT_FOUND if it is malformed or of another type."""
    try:
        gid = value if isinstance(value, relay.GlobalID) else relay.GlobalID.from_id(value)
        pk = int(gid.node_id)
    except (ValueError, TypeError) as exc:
        raise NotFound("No object has this ID.") from exc
    if expected is not None and gid.type_name not in expected:
        raise NotFound(f"This ID is not the ID of a {' or '.join(expected)}.")
    return gid.type_name, pk


def to_global_id(type_name: str, pk: int) -> str:
    return str(relay.GlobalID(type_name, str(pk)))
