"""The body pre-check of unstorable text (limits.may_hold_unstorable_text) against the walk over
the decoded values it lets the server skip (limits.has_unstorable_text), on generated JSON
bodies however they are encoded: a body it calls clean never decodes to a NUL or a lone
surrogate."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from carbongraph import limits

# Strings with the characters that matter (NUL, surrogates, backslashes, "u", hex digits)
# often, among any others.
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\\", "u", "d", "D", "8"]),
        st.characters(codec=None),
    ),
    max_size=12,
)
VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


def _bodies(value: object) -> list[bytes]:
    ascii_body = json.dumps({"query": "{ __typename }", "variables": value})
    raw_body = json.dumps({"query": "{ __typename }", "variables": value}, ensure_ascii=False)
    return [ascii_body.encode(), raw_body.encode("utf-8", "surrogatepass")]


@settings(max_examples=1500, deadline=None)
@given(st.dictionaries(TEXT, VALUES, max_size=4))
def test_a_body_called_clean_decodes_to_storable_text(variables):
    for body in _bodies(variables):
        decoded = json.loads(body)["variables"]
        assert decoded == variables or decoded != decoded  # NaN-free: the same value back
        if not limits.may_hold_unstorable_text(body):
            assert not limits.has_unstorable_text(decoded)


def test_escaped_and_raw_forms_are_caught():
    for text in ("A\x00B", "\ud83d", "x\udfffy"):
        for body in _bodies({"name": text}):
            assert limits.may_hold_unstorable_text(body)
    assert not limits.may_hold_unstorable_text(json.dumps({"name": "\u4e2d\ud7ff"}).encode())
