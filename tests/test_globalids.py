"""carbongraph.globalids encodes as strawberry's relay.GlobalID does, without importing it."""

import subprocess
import sys

import pytest
from strawberry import relay

from carbongraph.errors import NotFound
from carbongraph.globalids import decode_global_id, to_global_id


@pytest.mark.parametrize(
    ("type_name", "pk"), [("Individual", 1), ("Household", 12345), ("Community", 0)]
)
def test_encoding_is_relays(type_name: str, pk: int) -> None:
    assert to_global_id(type_name, pk) == str(relay.GlobalID(type_name, str(pk)))
    assert decode_global_id(to_global_id(type_name, pk)) == (type_name, pk)
    assert decode_global_id(relay.GlobalID(type_name, str(pk))) == (type_name, pk)


def test_malformed_and_foreign_ids_are_not_found() -> None:
    with pytest.raises(NotFound):
        decode_global_id("not base64 at all!")
    with pytest.raises(NotFound):
        decode_global_id(to_global_id("Household", 3), ["Individual"])


def test_importing_does_not_import_strawberry() -> None:
    # The import commands load this module; strawberry is ~0.3 s of their start.
    code = "import sys, carbongraph.globalids; print('strawberry' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
