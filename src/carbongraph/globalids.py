"""Global IDs (Relay's ``base64("Type:pk")``): the API's object IDs, which importers and the
CLI read and write too, so they live below the schema (schema/relay.py re-exports them)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING

from carbongraph.errors import NotFound

# Strawberry is imported when an ID is first decoded or encoded, not with this module: the
# import commands read plain Type:pk accounts mostly and start ~0.3 s sooner without it.
if TYPE_CHECKING:
    from strawberry import relay


def decode_global_id(
    value: str | relay.GlobalID, expected: Sequence[str] | None = None
) -> tuple[str, int]:
    """(type name, primary key) of a global ID; NOT_FOUND if it is malformed or of another type."""
    from strawberry import relay

    try:
        gid = value if isinstance(value, relay.GlobalID) else relay.GlobalID.from_id(value)
        pk = int(gid.node_id)
    except (ValueError, TypeError) as exc:
        raise NotFound("No object has this ID.") from exc
    if expected is not None and gid.type_name not in expected:
        raise NotFound(f"This ID is not the ID of a {' or '.join(expected)}.")
    return gid.type_name, pk


def to_global_id(type_name: str, pk: int) -> str:
    # relay.GlobalID's own encoding (tests/test_globalids.py holds them equal), without
    # importing strawberry here: the server encodes an ID per object it returns.
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()
