"""Answer a query operation with its compiled statement, or say why the reference executor
must (``Outcome.reason``). Called before Strawberry executes an HTTP request's operation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    specified_rules,
)
from graphql.execution.values import VariableValues, get_variable_values
from graphql.language import ListTypeNode, NamedTypeNode, NonNullTypeNode
from graphql.utilities import get_operation_ast
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionResult

from carbongraph.authz import Principal
from carbongraph.authz.api_keys import ApiKeyPrincipal
from carbongraph.clock import LocalDays
from carbongraph.cost import rule_for, variable_sizes
from carbongraph.db import StatementLog
from carbongraph.observability import metrics, request_state, tracing
from carbongraph.planner.cache import LRU
from carbongraph.planner.compile import Plan, Unplannable, compile_operation
from carbongraph.planner.pool import fetch, pool_for, set_scope
from carbongraph.planner.render import Grants, Renderer


class RawJSON(str):
    """A response's ``data`` as JSON text, built by PostgreSQL: sent as is (``encode``)."""

    __slots__ = ()


@dataclass
class Outcome:
    result: ExecutionResult | None  # the planned answer; None: the reference executor answers
    reason: str | None = None  # why not planned
    # A valid query operation the planner considered (PostgreSQL, planner on): its response says
    # so in development. Others (mutations, request errors, SQLite) are left as they were.
    considered: bool = False

    @property
    def planned(self) -> bool:
        return self.result is not None


_documents: LRU[DocumentNode | None] = LRU(1024)
_validations: LRU[bool] = LRU(1024)
_plans: LRU[Plan | str] = LRU(1024)


def _parse(query: str, max_tokens: int) -> DocumentNode | None:
    try:
        return parse(query, max_tokens=max_tokens)
    except GraphQLError:
        return None  # the reference executor reports it


def _plan(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> Plan | str:
    try:
        return compile_operation(schema, document, operation)
    except Unplannable as exc:
        return str(exc)


# A request repeated as it was (a dashboard's polling, a partner's page of the same shape):
# what ``prepare`` found for its query and variables, and, per viewer's scope on the planner's
# connections, the statement it rendered (B2: ~0.1 ms of Python per read). Only small variables
# are keys (a 1,000-ID list is cheaper to decode than to serialise for a key).
_prepared: LRU[Prepared | Outcome] = LRU(1024)
_statements: LRU[tuple[str, list[Any]]] = LRU(1024)
_SMALL_VARIABLES = 2048


def _request_key(
    schema: GraphQLSchema,
    settings: Any,
    dialect: str,
    query: str | None,
    variables: dict[str, Any] | None,
    operation_name: str | None,
) -> tuple[Any, ...] | None:
    """What ``prepare``'s answer depends on, or None (not cached). Variables as canonical JSON:
    ``allow_nan=False`` keeps NaN from looking like null; True and 1 print differently."""
    if not isinstance(query, str) or not isinstance(operation_name, str | None):
        return None
    if any(isinstance(v, list) and len(v) > 64 for v in (variables or {}).values()):
        return None  # a long list: not worth serialising for a key it would not fit
    try:
        text = json.dumps(variables or {}, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None
    if len(text) > _SMALL_VARIABLES:
        return None
    return (
        id(schema),
        dialect,
        settings.planner,
        settings.max_tokens,
        settings.max_cost,
        settings.max_page_size,
        query,
        operation_name,
        text,
    )


def clear_caches() -> None:
    for cache in (_documents, _validations, _plans, _prepared, _statements):
        cache.clear()


@dataclass
class Prepared:
    """A query operation the planner can compile, with its variables coerced."""

    plan: Plan
    variables: VariableValues
    key: tuple[Any, ...] | None = None  # the request's _request_key, when it is cached


def prepare(
    schema: GraphQLSchema,
    settings: Any,
    dialect: str,
    query: str | None,
    variables: dict[str, Any] | None,
    operation_name: str | None,
) -> Prepared | Outcome:
    """Everything that needs no database: parsing, validation, the plan (all cached) and the
    variables. An Outcome says why the reference executor answers instead."""
    key = _request_key(schema, settings, dialect, query, variables, operation_name)
    if key is None:
        return _prepare(schema, settings, dialect, query, variables, operation_name, None)
    return _prepared.get(
        key, lambda: _prepare(schema, settings, dialect, query, variables, operation_name, key)
    )


def _prepare(
    schema: GraphQLSchema,
    settings: Any,
    dialect: str,
    query: str | None,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    key: tuple[Any, ...] | None,
) -> Prepared | Outcome:
    if not settings.planner:
        return Outcome(None, "the planner is off (CARBONGRAPH_PLANNER=off)")
    if dialect != "postgresql":
        return Outcome(None, "not PostgreSQL")
    if not isinstance(query, str):
        return Outcome(None, "no query")
    document = _documents.get(query, lambda: _parse(query, settings.max_tokens))
    if document is None:
        return Outcome(None, "syntax error")
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return Outcome(None, "no operation to run")
    if operation.operation is not OperationType.QUERY:
        return Outcome(None, f"a {operation.operation.value}")
    sizes = tuple(sorted(variable_sizes(variables).items()))
    valid = _validations.get(
        (query, settings.max_cost, settings.max_page_size, sizes),
        lambda: (
            not validate_document(
                schema,
                document,
                (*specified_rules, rule_for(settings.max_cost, settings.max_page_size, variables)),
            )
        ),
    )
    if not valid:
        return Outcome(None, "invalid document")
    plan = _plans.get((query, operation_name), lambda: _plan(schema, document, operation))
    if isinstance(plan, str):
        return Outcome(None, plan, considered=True)
    definitions = plan.variable_definitions or ()
    coerced = plain_variables(definitions, variables or {}) or get_variable_values(
        schema, definitions, variables or {}
    )
    if isinstance(coerced, list):
        return Outcome(None, "variable errors")
    return Prepared(plan, coerced, key)


_INT32 = 2**31
_STRINGS = frozenset({"ID", "String"})


def _plain_value(type_node: Any, value: Any) -> bool:
    """``value`` is what graphql-core's coercion of ``type_node`` would return unchanged: a
    string for ID / String, a 32-bit int for Int, a bool for Boolean, a list of those."""
    non_null = isinstance(type_node, NonNullTypeNode)
    if non_null:
        type_node = type_node.type
    if value is None:
        return not non_null
    if isinstance(type_node, ListTypeNode):
        item = type_node.type
        if type(value) is not list:
            return False
        if (
            isinstance(item, NonNullTypeNode)
            and isinstance(item.type, NamedTypeNode)
            and item.type.name.value in _STRINGS
        ):
            try:
                "".join(value)  # every item a string, checked in C (1,000 IDs: ~10 µs)
            except TypeError:
                return False
            return True
        return all(_plain_value(item, v) for v in value)
    name = type_node.name.value
    if name in _STRINGS:
        return type(value) is str
    if name == "Int":
        return type(value) is int and -_INT32 <= value < _INT32
    if name == "Boolean":
        return type(value) is bool
    return False


def plain_variables(definitions: Any, inputs: dict[str, Any]) -> VariableValues | None:
    """The coerced variables when every one given is plain (``_plain_value``) and every one
    left out is optional without a default: they coerce to themselves, without graphql-core's
    per-value walk (1,000 IDs: ~3 ms). None: graphql-core coerces them (defaults, input
    objects, enums, custom scalars, errors). Only ``coerced`` is filled: the renderer reads
    nothing else."""
    coerced: dict[str, Any] = {}
    for definition in definitions:
        name = definition.variable.name.value
        if name not in inputs:
            optional = not isinstance(definition.type, NonNullTypeNode)
            if optional and definition.default_value is None:
                continue  # left out, no default: absent, as graphql-core leaves it
            return None
        if not _plain_value(definition.type, inputs[name]):
            return None
        value = inputs[name]
        coerced[name] = list(value) if type(value) is list else value
    return VariableValues(sources={}, coerced=coerced)


def _renderer(prepared: Prepared, viewer: Any, settings: Any, today: date) -> Renderer | Outcome:
    grants = Grants.of(viewer, prepared.plan.guard_level(settings.small_cell_k))
    if grants.empty:
        return Outcome(None, "the viewer holds no grant at the level the fields need", True)
    return Renderer(prepared.plan, prepared.variables, grants, settings, today)


def _answer(plan: Plan, data: str, statements: Any) -> Outcome:
    extensions: dict[str, Any] = {}
    if statements is not None:
        extensions["sqlStatements"] = statements.count
    state = request_state.current()
    if state is not None:  # what OperationObserver records for the reference executor
        state.operation = plan.operation_name or ""
        state.graphql_errors = False
    result = ExecutionResult(
        data=RawJSON(data),  # type: ignore[arg-type]  # JSON text, sent as is
        errors=None,
        extensions=extensions or None,
    )
    return Outcome(result, considered=True)


_REFUSABLE = "a field could be refused or suppressed for this viewer"


async def try_plan(
    schema: GraphQLSchema,
    context: Any,
    query: str | None,
    variables: dict[str, Any] | None,
    operation_name: str | None,
) -> Outcome:
    """Answer inside a request's transaction (its RequestDB, its viewer, its scope)."""
    settings = context.settings
    prepared = prepare(schema, settings, context.db.dialect, query, variables, operation_name)
    if isinstance(prepared, Outcome):
        return prepared
    renderer = _renderer(prepared, context.viewer, settings, context.today)
    if isinstance(renderer, Outcome):
        return renderer
    try:
        sql = renderer.statement()
    except Unplannable as exc:
        return Outcome(None, str(exc), considered=True)
    with tracing.planned_operation(prepared.plan.operation_name):
        row = (await context.db.execute_driver_sql(sql, tuple(renderer.params))).one()
    if not row[0]:
        return Outcome(None, _REFUSABLE, True)
    return _answer(prepared.plan, row[1], context.statements)


async def try_plan_pooled(
    schema: GraphQLSchema,
    settings: Any,
    engine: AsyncEngine,
    principal: Principal | None,
    query: str | None,
    variables: dict[str, Any] | None,
    operation_name: str | None,
) -> Outcome:
    """Answer on the planner's own connections (planner/pool.py), before any transaction of
    the request: one statement when the connection holds this viewer's scope already, else the
    scope statement first. Token principals only: an API key's secret is verified, and its
    scope set, in the request's transaction, and ``try_plan`` answers there."""
    prepared = prepare(schema, settings, engine.dialect.name, query, variables, operation_name)
    if isinstance(prepared, Outcome):
        return prepared
    if principal is None or isinstance(principal, ApiKeyPrincipal):
        # Anonymous: nothing is plannable; a key: see try_plan (its secret is verified first).
        return Outcome(None, "an anonymous request or an API key", True)
    today = LocalDays(settings.clock.now()).utc
    statements = StatementLog().__enter__() if settings.report_sql_statements else None
    try:
        pool = await pool_for(engine, settings)
        async with pool.acquire() as connection:
            with metrics.connection_in_use():
                scope = connection.remembered_scope()
                for _attempt in range(2):
                    if scope is None or (scope.subject, scope.today) != (principal.subject, today):
                        scope = await set_scope(connection, principal, today)
                    rendered = _render_pooled(prepared, scope, settings, today)
                    if isinstance(rendered, Outcome):
                        return rendered
                    with tracing.planned_operation(prepared.plan.operation_name):
                        row = await fetch(connection, *rendered)
                    if row[2]:
                        break
                    # The grants changed since the scope was set: set it again, once.
                    scope = None
                else:
                    return Outcome(None, "the viewer's grants changed while planning", True)
    finally:
        if statements is not None:
            statements.__exit__(None, None, None)
    if not row[0]:
        return Outcome(None, _REFUSABLE, True)
    return _answer(prepared.plan, row[1], statements)


def _render_pooled(
    prepared: Prepared,
    scope: Any,
    settings: Any,
    today: date,
) -> tuple[str, list[Any]] | Outcome:
    """The statement and its parameters for ``scope`` (a planner connection's viewer), from
    the cache when the same request was rendered for the same scope (its grant rows' fingerprint
    included: a changed grant is another key)."""
    statement_key = prepared.key and (
        prepared.key,
        today,
        scope.subject,
        scope.fingerprint,
        scope.settings,
        settings.default_page_size,
        settings.small_cell_k,
    )
    if statement_key:
        cached = _statements.peek(statement_key)
        if cached is not None:
            return cached
    renderer = _renderer(prepared, scope.viewer, settings, today)
    if isinstance(renderer, Outcome):
        return renderer
    try:
        sql = renderer.statement(renderer.fresh(scope.subject, scope.fingerprint, scope.settings))
    except Unplannable as exc:
        return Outcome(None, str(exc), considered=True)
    if statement_key:
        _statements.put(statement_key, (sql, renderer.params))
    return sql, renderer.params


def annotate(result: Any, outcome: Outcome, settings: Any) -> Any:
    """Development responses say whether the planner answered, and why not."""
    if settings.is_production or not outcome.considered or not hasattr(result, "extensions"):
        return result
    note = {"planned": outcome.planned, "reason": outcome.reason}
    result.extensions = {**(result.extensions or {}), "planner": note}
    return result


def encode(response: Any, dumps: Any) -> bytes:
    """A response body: planned ``data`` is spliced in as the text PostgreSQL built."""
    if isinstance(response, dict) and isinstance(response.get("data"), RawJSON):
        rest = {k: v for k, v in response.items() if k != "data"}
        body = b'{"data":' + response["data"].encode()
        if rest:
            body += b"," + dumps(rest)[1:-1]
        return body + b"}"
    return dumps(response)
