"""The planner's shortcuts for large inputs, checked against the slow ways they replace on
generated inputs: ``nodes(ids:)`` decoded in bulk (planner/render.py ``plain_node_ids``) against
one ID at a time (``canonical_id``), and plain variables taken as they are
(planner/execute.py ``plain_variables``) against graphql-core's coercion."""

from __future__ import annotations

import base64

from graphql import parse
from graphql.execution.values import get_variable_values
from hypothesis import given, settings
from hypothesis import strategies as st

from carbongraph.planner.compile import NODE_TYPES
from carbongraph.planner.execute import plain_variables
from carbongraph.planner.render import INT4_END, canonical_id, plain_node_ids
from carbongraph.schema.schema import schema

TYPES = [*NODE_TYPES, "Foo", "household", "ApiKey", "", "Household\n"]
KEYS = st.one_of(
    st.integers(min_value=0, max_value=2**31 + 5).map(str),
    st.sampled_from(["", "-3", "007", "1e3", " 1", "1\n", "99999999999", "١٢"]),
)


@st.composite
def raw_ids(draw: st.DrawFn) -> str | int | None:
    kind = draw(st.integers(0, 9))
    if kind <= 5:  # the plain form, of a node type or not
        text = f"{draw(st.sampled_from(TYPES))}:{draw(KEYS)}"
        raw = base64.b64encode(text.encode()).decode()
        if kind == 5:  # one character changed, dropped or added
            at = draw(st.integers(0, len(raw)))
            raw = raw[:at] + draw(st.sampled_from(["", "=", "\n", "!", "A", " "])) + raw[at + 1 :]
        return raw
    if kind == 6:
        return draw(st.sampled_from([None, 7]))
    if kind == 7:  # two plain IDs run together with a comma (the bulk form's separator)
        one, two = (f"{draw(st.sampled_from(TYPES))}:{draw(KEYS)}" for _ in range(2))
        return ",".join(base64.b64encode(text.encode()).decode() for text in (one, two))
    return draw(st.text(alphabet="ABCSGhk0129+/=\n :,", max_size=24))


@settings(max_examples=400, deadline=None)
@given(st.lists(raw_ids(), max_size=6))
def test_bulk_decoding_of_ids_agrees_with_one_at_a_time(ids):
    got = plain_node_ids(ids)
    one_by_one = [canonical_id(raw) for raw in ids]
    plain = all(
        found is not None and found[0] in NODE_TYPES and found[1] < INT4_END for found in one_by_one
    )
    if got is None:
        # Only IDs that are not all plain go the per-ID way (never a plain batch).
        assert not plain or not ids
        return
    assert plain
    assert got.pairs() == one_by_one
    assert got.present == {type_name for type_name, _ in one_by_one}


def test_a_thousand_plain_ids_decode_in_bulk():
    ids = [base64.b64encode(f"Household:{i}".encode()).decode() for i in range(1, 1001)]
    got = plain_node_ids(ids)
    assert got is not None
    assert got.pairs() == [("Household", i) for i in range(1, 1001)]
    assert got.keys == ",".join(str(i) for i in range(1, 1001))


OPERATION = parse(
    'query($ids: [ID!]!, $id: ID, $s: String!, $n: Int, $b: Boolean!, $m: [Int], $x: ID = "d")'
    " { __typename }"
)
DEFINITIONS = OPERATION.definitions[0].variable_definitions
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**32), max_value=2**32),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.lists(st.one_of(st.text(max_size=3), st.integers(-3, 3), st.none()), max_size=4),
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["ids", "id", "s", "n", "b", "m", "x", "y"]), VALUES))
def test_plain_variables_are_coerced_as_graphql_core_coerces_them(inputs):
    fast = plain_variables(DEFINITIONS, inputs)
    if fast is None:
        return  # graphql-core coerces them
    reference = get_variable_values(schema._schema, DEFINITIONS, inputs)
    assert not isinstance(reference, list), reference
    assert fast.coerced == reference.coerced
    assert {k: type(v) for k, v in fast.coerced.items()} == {
        k: type(v) for k, v in reference.coerced.items()
    }


def test_a_thousand_ids_are_taken_as_they_are():
    ids = [f"id{i}" for i in range(1000)]
    inputs = {"ids": ids, "s": "x", "b": True, "x": "y"}
    fast = plain_variables(DEFINITIONS, inputs)
    assert fast is not None and fast.coerced == {"ids": ids, "s": "x", "b": True, "x": "y"}
