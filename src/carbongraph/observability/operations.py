"""The schema extension that tells the request's metrics which operation ran and whether its
response carried errors."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from carbongraph.observability import request_state


class OperationObserver(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        state = request_state.current()
        if state is None:  # not an HTTP request (a subscription, a test calling the schema)
            return
        context = self.execution_context
        name = context.operation_name
        if name is None and context.graphql_document is not None:
            name = ""  # an anonymous operation
        state.operation = name
        result = context.result
        state.graphql_errors = bool(result is not None and getattr(result, "errors", None))
