"""OpenTelemetry traces, off unless configured by the standard variables.

Tracing is on when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp`` or ``console``) or, with
that unset, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set
(OTLP over HTTP/protobuf); ``OTEL_SDK_DISABLED=true`` turns it off. The SDK and the exporter read
the other ``OTEL_*`` variables themselves (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_*``, ...).

A request's trace: the HTTP server span (a child of the caller's ``traceparent``), the GraphQL
operation span (Strawberry's OpenTelemetry extension) and under it one span per SQL statement
(SQLAlchemy's instrumentation); resolver spans only with ``CARBONGRAPH_TRACE_RESOLVERS=1``
(there can be thousands per request)."""

from __future__ import annotations

import contextlib
import contextvars
import os
import weakref
from collections.abc import Generator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware import Middleware
from strawberry.extensions import LifecycleStep, SchemaExtension
from strawberry.extensions.tracing import OpenTelemetryExtension

_provider: TracerProvider | None = None
_trace_resolvers = False
# Inside the planner's shadow run (shadow_execution): no operation span.
_muted: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "carbongraph_tracing_muted", default=False
)


class ConfigurationError(RuntimeError):
    pass


def exporter_from_env(environ: Any = os.environ) -> SpanExporter | None:
    """The span exporter the ``OTEL_*`` variables ask for, or None (tracing off)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not names:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        names = "otlp" if endpoint else "none"
    chosen = [n.strip() for n in names.split(",") if n.strip() and n.strip() != "none"]
    if not chosen:
        return None
    if len(chosen) > 1:
        raise ConfigurationError("OTEL_TRACES_EXPORTER: name one exporter (otlp or console)")
    if chosen[0] == "console":
        return ConsoleSpanExporter()
    if chosen[0] != "otlp":
        raise ConfigurationError(f"OTEL_TRACES_EXPORTER={chosen[0]!r}: use otlp or console")
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol != "http/protobuf":
        raise ConfigurationError(f"OTLP protocol {protocol!r}: only http/protobuf is installed")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


_configured = False
_engines: weakref.WeakSet[Any] = weakref.WeakSet()


def configure(provider: TracerProvider | None, *, trace_resolvers: bool = False) -> None:
    """Use ``provider`` for this process's traces (None: tracing off)."""
    global _provider, _trace_resolvers, _configured
    _provider, _trace_resolvers, _configured = provider, trace_resolvers, True
    _instrument_engines()


def configure_from_env(*, trace_resolvers: bool = False) -> None:
    """Tracing as the environment describes, once per process (the app factory calls it; a
    test that configured a provider of its own keeps it)."""
    if _configured:
        return
    exporter = exporter_from_env()
    if exporter is None:
        configure(None)
        return
    resource = Resource.create({SERVICE_NAME: "carbongraph"})  # OTEL_SERVICE_NAME overrides
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(exporter))
    configure(provider, trace_resolvers=trace_resolvers)


def reset() -> None:
    """Back to unconfigured (tests)."""
    global _configured
    configure(None)
    _configured = False


def enabled() -> bool:
    return _provider is not None


@contextlib.contextmanager
def planned_operation(name: str | None) -> Generator[None, None, None]:
    """The operation span of a query the planner answers (``carbongraph.planner``), named and
    placed as Strawberry's: its SQL statement's span is its child."""
    if _provider is None:
        yield
        return
    tracer = _provider.get_tracer("carbongraph.planner")
    title = f"GraphQL Query: {name}" if name else "GraphQL Query"
    with tracer.start_as_current_span(title) as span:
        span.set_attribute("graphql.operation.type", "query")
        if name:
            span.set_attribute("graphql.operation.name", name)
        span.set_attribute("carbongraph.planned", True)
        yield


@contextlib.contextmanager
def statement(sql: str, database: str | None) -> Generator[None, None, None]:
    """A SQL statement's CLIENT span for a connection outside SQLAlchemy (the query planner's
    own), named and described as the SQLAlchemy instrumentation names its spans."""
    if _provider is None or _muted.get():
        yield
        return
    tracer = _provider.get_tracer("carbongraph.planner")
    verb = sql.split(maxsplit=1)[0] if sql.strip() else "SQL"
    title = f"{verb} {database}" if database else verb
    with tracer.start_as_current_span(title, kind=trace.SpanKind.CLIENT) as span:
        span.set_attribute("db.system", "postgresql")
        span.set_attribute("db.statement", sql)
        if database:
            span.set_attribute("db.name", database)
        yield


@contextlib.contextmanager
def shadow_execution() -> Generator[None, None, None]:
    """The planner's shadow run of the reference executor (``carbongraph.planner.shadow``): one
    span of its own, and nothing traced inside it: a trace shows the request's one operation and
    its SQL, plus what the shadow check cost."""
    if _provider is None:
        yield
        return
    tracer = _provider.get_tracer("carbongraph.planner")
    with tracer.start_as_current_span("planner shadow: reference executor"):
        token = _muted.set(True)
        try:
            with suppress_instrumentation():  # SQLAlchemy's statement spans
                yield
        finally:
            _muted.reset(token)


def shutdown() -> None:
    """Flush what is buffered (the app's shutdown)."""
    if _provider is not None:
        _provider.force_flush()


def instrument_engine(engine: AsyncEngine) -> None:
    """SQL statement spans for the engine (while tracing is on)."""
    _engines.add(engine.sync_engine)
    _instrument_engines()


def _instrument_engines() -> None:
    # The instrumentor is one per process and takes every engine at once.
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    if _provider is not None:
        # Its declared range stops below SQLAlchemy 2.1, whose engine events it uses unchanged
        # (tests/test_observability.py checks the statement spans).
        instrumentor.instrument(
            tracer_provider=_provider, engines=list(_engines), skip_dep_check=True
        )


def middleware() -> list[Middleware]:
    """The HTTP server span of each request, a child of the caller's ``traceparent`` (W3C
    trace context; ``OTEL_PROPAGATORS`` may add others): none while tracing is off."""
    if _provider is None:
        return []
    return [
        Middleware(
            OpenTelemetryMiddleware,
            tracer_provider=_provider,
            excluded_urls="/metrics,/healthz,/readyz",
            exclude_spans=["receive", "send"],
        )
    ]


class OperationTracing(OpenTelemetryExtension):
    """Strawberry's extension, with the operation span current while the operation runs (so
    that SQL statement spans are its children), without resolver spans."""

    # Not a resolve hook at all (Strawberry then wraps no resolver): no cost per field.
    resolve = SchemaExtension.resolve  # type: ignore[assignment]

    def __init__(self, *, execution_context: Any = None) -> None:
        super().__init__(execution_context=execution_context, tracer_provider=_provider)

    def on_operation(self) -> Generator[None, None, None]:
        steps = super().on_operation()
        next(steps)  # the operation span is started
        span = self._span_holder[LifecycleStep.OPERATION]
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            otel_context.detach(token)
            context = self.execution_context
            if context.operation_type is not None:
                span.set_attribute("graphql.operation.type", context.operation_type.value)
            if context.operation_name:
                span.set_attribute("graphql.operation.name", context.operation_name)
            result = context.result
            if result is not None and getattr(result, "errors", None):
                span.set_status(trace.StatusCode.ERROR)
            for _ in steps:  # ends the span
                pass


class ResolverTracing(OperationTracing):
    """With CARBONGRAPH_TRACE_RESOLVERS=1: a span for every field with its own resolver."""

    resolve = OpenTelemetryExtension.resolve


def schema_extension() -> SchemaExtension:
    """The schema's tracing extension for one operation: a no-op (without resolve hooks, so it
    costs nothing per field) unless tracing is on."""
    if _provider is None or _muted.get():
        return SchemaExtension()
    return ResolverTracing() if _trace_resolvers else OperationTracing()
