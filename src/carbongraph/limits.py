"""Static limits on GraphQL documents, checked before anything executes (graphql-armor's
defaults): depth, aliases, directives, tokens and characters; and, in production, no
introspection.

Depth does not count Relay's wrapper fields (``edges``, ``node``, ``pageInfo``): they add two
levels per connection without fetching anything, so counting them would refuse ordinary nested
queries while adding no protection. Every other field counts, through fragments too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    Visitor,
    get_operation_ast,
    parse,
    visit,
)

from carbongraph.errors import ErrorCode

# NUL and lone surrogates: valid in a JSON or GraphQL string, but no database can store them
# (PostgreSQL refuses NUL in text, UTF-8 has no surrogates), so they are refused up front.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "Text must not contain NUL characters or unpaired surrogates."

RELAY_WRAPPERS = frozenset({"edges", "node", "pageInfo"})
INTROSPECTION = frozenset({"__schema", "__type"})


@dataclass(frozen=True)
class Limits:
    """The document limits, from the settings of the same names (their defaults are in
    config.Settings; ``max_characters`` is ``max_query_characters``)."""

    max_depth: int
    max_aliases: int
    max_directives: int
    max_tokens: int
    max_characters: int
    # The same field (response key) written more often than this in one selection set: a
    # cheap way to make the server do needless work (graphql-cop's "field duplication").
    max_field_repeats: int


class LimitExceeded(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@lru_cache(maxsize=1024)
def parse_cached(query: str, max_tokens: int) -> DocumentNode | None:
    try:
        return parse(query, max_tokens=max_tokens)
    except GraphQLSyntaxError as exc:
        if "tokens" in exc.message:
            raise LimitExceeded(ErrorCode.TOO_MANY_TOKENS, exc.message) from exc
        return None  # a plain syntax error: the executor reports it as usual


def is_mutation(query: str, operation_name: str | None, limits: Limits) -> bool:
    """Whether the operation a request runs is a mutation, decided from the parsed document
    (bytes of the body are no guide: a JSON-escaped keyword spells "mutation" without them).
    A document that cannot run (syntax error, unknown operation) is not one."""
    try:
        document = parse_cached(query, limits.max_tokens)
    except LimitExceeded:
        return False
    if document is None:
        return False
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation is OperationType.MUTATION


def check(query: str, limits: Limits, *, allow_introspection: bool) -> None:
    """Raise LimitExceeded with a stable code for the first limit the document breaks."""
    # The verdict depends on the text and the limits only: a repeated document is not walked
    # again (it costs about as much as a planned query's statement).
    found = _verdict(query, limits, allow_introspection)
    if found is not None:
        raise LimitExceeded(*found)


@lru_cache(maxsize=1024)
def _verdict(query: str, limits: Limits, allow_introspection: bool) -> tuple[str, str] | None:
    try:
        _check(query, limits, allow_introspection=allow_introspection)
    except LimitExceeded as exc:
        return exc.code, str(exc)
    return None


def _check(query: str, limits: Limits, *, allow_introspection: bool) -> None:
    if len(query) > limits.max_characters:
        raise LimitExceeded(
            ErrorCode.QUERY_TOO_LARGE,
            f"The document has more than {limits.max_characters} characters.",
        )
    document = parse_cached(query, limits.max_tokens)
    if document is None:
        return
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    aliases = directives = 0
    for definition in document.definitions:
        for node in _walk(definition):
            directives += len(getattr(node, "directives", None) or ())
            _check_repeats(node, limits.max_field_repeats)
            if isinstance(node, FieldNode):
                if node.alias is not None:
                    aliases += 1
                if not allow_introspection and node.name.value in INTROSPECTION:
                    raise LimitExceeded(
                        ErrorCode.INTROSPECTION_DISABLED, "Introspection is disabled in production."
                    )
    if aliases > limits.max_aliases:
        raise LimitExceeded(
            ErrorCode.TOO_MANY_ALIASES,
            f"The document uses {aliases} aliases; at most {limits.max_aliases} are allowed.",
        )
    if directives > limits.max_directives:
        raise LimitExceeded(
            ErrorCode.TOO_MANY_DIRECTIVES,
            f"The document uses {directives} directives; at most "
            f"{limits.max_directives} are allowed.",
        )
    visit(document, _UnstorableStrings())
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            depth = _depth(definition.selection_set, fragments, set())
            if depth > limits.max_depth:
                raise LimitExceeded(
                    ErrorCode.QUERY_TOO_DEEP,
                    f"The operation is {depth} levels deep; at most "
                    f"{limits.max_depth} are allowed (Relay's edges/node "
                    "are not counted).",
                )


class _UnstorableStrings(Visitor):
    def enter_string_value(self, node: StringValueNode, *_args: object) -> None:
        if UNSTORABLE.search(node.value):
            raise LimitExceeded(ErrorCode.BAD_USER_INPUT, UNSTORABLE_MESSAGE)


# What a JSON body must contain for a decoded string to hold NUL or a lone surrogate: a
# ``\u0000`` or ``\uD800``–``\uDFFF`` escape, a NUL byte, or a UTF-8-encoded surrogate (which
# ``json.loads`` lets through with ``surrogatepass``). A body without any of these needs no
# walk over its values (10,000 verified actions: ~0.1 s); one with them is walked.
_MAYBE_UNSTORABLE = re.compile(rb"\x00|\xed[\xa0-\xbf]|\\u(?:0000|[dD][89a-fA-F])")


def may_hold_unstorable_text(body: bytes) -> bool:
    """False when no string decoded from the JSON ``body`` can hold unstorable text."""
    return _MAYBE_UNSTORABLE.search(body) is not None


def has_unstorable_text(value: Any) -> bool:
    """Whether a JSON value (variables) holds a string no database can store."""
    if isinstance(value, str):
        return UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(has_unstorable_text(k) or has_unstorable_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_unstorable_text(v) for v in value)
    return False


def _check_repeats(node: object, most: int) -> None:
    selection_set = getattr(node, "selection_set", None)
    if selection_set is None:
        return
    counts: dict[str, int] = {}
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            key = (selection.alias or selection.name).value
            counts[key] = counts.get(key, 0) + 1
            if counts[key] > most:
                raise LimitExceeded(
                    ErrorCode.TOO_MANY_DUPLICATE_FIELDS,
                    f"The field {key!r} is selected more than {most} times in one selection set.",
                )


def _walk(node: object):  # type: ignore[no-untyped-def]
    yield node
    selection_set = getattr(node, "selection_set", None)
    if selection_set is not None:
        for selection in selection_set.selections:
            yield from _walk(selection)


def _depth(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    seen: set[str],
) -> int:
    if selection_set is None:
        return 0
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            below = _depth(selection.selection_set, fragments, seen)
            own = 0 if selection.name.value in RELAY_WRAPPERS else 1
            deepest = max(deepest, own + below if selection.selection_set else own)
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, _depth(selection.selection_set, fragments, seen))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:  # cycles are a validation error anyway
                deepest = max(
                    deepest, _depth(fragments[name].selection_set, fragments, seen | {name})
                )
    return deepest


# Mutations that take up to 1,000 (createHouseholds, createIndividuals) or 10,000
# (recordVerifiedActions) items: a request whose only fields are these gets the bulk body limit
# and timeout (Settings.max_bulk_body_bytes, bulk_request_timeout_seconds).
BULK_FIELDS = frozenset({"recordVerifiedActions", "createHouseholds", "createIndividuals"})


def is_bulk(query: str, operation_name: str | None) -> bool:
    """Whether the operation to run is a mutation of bulk fields only (unparsable: no)."""
    try:
        document = parse(query, no_location=True)
    except GraphQLError:
        return False
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation is not OperationType.MUTATION:
        return False
    selections = operations[0].selection_set.selections
    return bool(selections) and all(
        isinstance(s, FieldNode) and s.name.value in BULK_FIELDS for s in selections
    )
