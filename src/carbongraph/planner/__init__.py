"""The query planner: read operations over the hierarchy compiled into one PostgreSQL
statement that builds the response's ``data`` (docs/architecture.md).

``try_plan`` answers an operation or says why the reference executor (Strawberry) must;
``annotate`` adds ``extensions.planner`` in development; ``encode`` writes a response whose
``data`` PostgreSQL built as text."""

from carbongraph.planner.execute import (
    Outcome,
    RawJSON,
    annotate,
    clear_caches,
    encode,
    try_plan,
    try_plan_pooled,
)

__all__ = [
    "Outcome",
    "RawJSON",
    "annotate",
    "clear_caches",
    "encode",
    "try_plan",
    "try_plan_pooled",
]
