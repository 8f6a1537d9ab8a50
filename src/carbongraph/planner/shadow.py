"""Shadow mode (``CARBONGRAPH_PLANNER=shadow``): every read the planner answers is executed by
the reference executor (Strawberry) too, and the two answers are compared (docs/operations.md).

A rollout check in the manner of GitHub's Scientist, and the test suite's differential oracle
(tests/conftest.py runs every PostgreSQL app in this mode). Both executions run in the request's
transaction, which the app opens as ``REPEATABLE READ, READ ONLY`` in this mode
(``RequestDB.snapshot``): they read one snapshot, so concurrent writes cannot make them differ.
The reference run gets fresh DataLoaders (nothing cached by the planned run, which uses none),
its statements are kept out of the request's ``StatementLog`` (``extensions.sqlStatements``
and the statement-count pins count the planned request alone), and a trace shows it as one
span (``tracing.shadow_execution``), not as a second operation.

Compared: ``data`` (key order aside; JSON numbers by value, booleans apart) and ``errors``
(message, path, ``extensions.code``). When they agree the planned answer is sent. When they
differ the mismatch is logged and counted, and the answer is an error with the code
``PLANNER_MISMATCH`` in development (so the test that sent the read fails), the reference
executor's answer in production (users keep getting the answer of record)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from carbongraph.db import unobserved
from carbongraph.errors import ErrorCode
from carbongraph.observability import metrics, request_state, tracing
from carbongraph.planner.execute import Outcome
from carbongraph.resolvers.context import Loaders

log = logging.getLogger("carbongraph.planner.shadow")

Reference = Callable[[Any], Awaitable[ExecutionResult]]

MISMATCH_MESSAGE = (
    "The query planner's answer differed from the reference executor's (shadow mode); the "
    "server log has both."
)


async def answer(outcome: Outcome, context: Any, reference: Reference) -> ExecutionResult:
    """The response to a request in shadow mode. ``reference(context)`` runs the reference
    executor with the given context (the app's ``execute_single``)."""
    if outcome.result is None:
        result = await reference(context)
        if outcome.considered:
            _record(context.settings, "fell_back", outcome.reason)
        return result
    shadow = dataclasses.replace(
        context,
        loaders=Loaders(context.db, context.viewer, context.today),
        statements=None,  # no extensions.sqlStatements of its own
        audit_notes={},
    )
    state = request_state.current()
    observed = (state.operation, state.graphql_errors) if state is not None else None
    with unobserved(), tracing.shadow_execution():
        expected = await reference(shadow)
    if state is not None and observed is not None:  # the metrics describe the planned answer
        state.operation, state.graphql_errors = observed
    planned = _comparable(outcome.result)
    reference_answer = _comparable(expected)
    difference = first_difference(planned, reference_answer)
    if difference is None:
        _record(context.settings, "equal", None)
        return outcome.result
    _record(context.settings, "mismatch", difference)
    operation = getattr(state, "operation", None) if state is not None else None
    if context.settings.is_production:
        # Personal data stays out of production logs: where they differ, not what.
        log.error("planner shadow mismatch in operation %r at %s", operation, difference)
        return expected
    log.error(
        "planner shadow mismatch in operation %r at %s\nplanned:   %s\nreference: %s",
        operation,
        difference,
        orjson.dumps(planned).decode(),
        orjson.dumps(reference_answer).decode(),
    )
    return ExecutionResult(
        data=None,
        errors=[
            GraphQLError(
                MISMATCH_MESSAGE,
                extensions={"code": str(ErrorCode.PLANNER_MISMATCH), "at": difference},
            )
        ],
    )


def _comparable(result: ExecutionResult) -> dict[str, Any]:
    """``data`` and ``errors`` as the client would decode them."""
    # Planned: JSON text built by PostgreSQL (a str subclass, which orjson refuses); the
    # reference executor's: encoded by orjson, as the app does.
    data = result.data
    decoded = orjson.loads(str(data) if isinstance(data, str) else orjson.dumps(data))
    errors = sorted(
        (
            {
                "message": error.message,
                "path": list(error.path or []),
                "code": (error.extensions or {}).get("code"),
            }
            for error in result.errors or ()
        ),
        key=lambda e: (str(e["path"]), e["message"]),
    )
    return {"data": decoded, "errors": errors}


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first path where two decoded JSON values differ, or None when they are equal: object
    keys in any order, numbers by value (JSON has one number type), booleans never equal to
    numbers (which Python's ``True == 1`` would allow)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path or '.'} (keys {sorted(a.keys() ^ b.keys())})"
        for key in a:
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path or '.'} (lengths {len(a)}, {len(b)})"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    numbers = (int, float)
    if (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return None if a == b else path or "."
    if type(a) is not type(b) or a != b:
        return path or "."
    return None


def _record(settings: Any, result: str, detail: str | None) -> None:
    metrics.PLANNER_SHADOW_READS.labels(result).inc()
    report = settings.planner_shadow_report
    if report is not None:
        # One short append per read: the test suite's workers and servers share nothing else.
        line = orjson.dumps({"result": result, "detail": detail}) + b"\n"
        with open(report, "ab") as f:
            f.write(line)
