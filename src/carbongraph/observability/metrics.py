"""The Prometheus metrics (prometheus-client).

With several worker processes (``carbongraph serve --workers N``) every process writes its values
to files in ``PROMETHEUS_MULTIPROC_DIR`` (``serve`` creates one when it is unset) and ``/metrics``
answers for all of them, whichever worker the scrape reaches. The variable must be set before
this module is first imported (prometheus-client decides then).

Operation names come from clients: at most ``max_operations`` distinct names become label values
(the rest count as ``__other__``), so no client can grow the registry without bound."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.observability import request_state

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Each process writes its values there from the first metric on.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

ANONYMOUS = "__anonymous__"  # an operation without a name
UNKNOWN = "__unknown__"  # a GraphQL request refused or malformed before its operation was known
OTHER = "__other__"  # past the limit of distinct operation names

REQUESTS = Counter(
    "carbongraph_requests",
    "HTTP requests served, by GraphQL operation name (or route) and outcome.",
    ["operation", "outcome"],
)
REQUEST_DURATION = Histogram(
    "carbongraph_request_duration_seconds",
    "Time to answer a request, by GraphQL operation name (or route) and outcome.",
    ["operation", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
STATEMENTS = Histogram(
    "carbongraph_sql_statements_per_request",
    "Data statements (not BEGIN/COMMIT/SAVEPOINT) one request ran, by operation.",
    ["operation"],
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144),
)
REFUSALS = Counter(
    "carbongraph_refusals",
    "Requests and subscriptions refused before running: rate_limited, cost_limit_exceeded, "
    "or the static limit's code (max_depth_exceeded, ...).",
    ["reason"],
)
PLANNER_SHADOW_READS = Counter(
    "carbongraph_planner_shadow_reads",
    "Shadow mode (CARBONGRAPH_PLANNER=shadow): reads the query planner considered, by result: "
    "equal, mismatch, fell_back.",
    ["result"],
)
POOL_IN_USE = Gauge(
    "carbongraph_db_connections_in_use",
    "Database connections checked out of the pool.",
    multiprocess_mode="livesum",
)
POOL_CAPACITY = Gauge(
    "carbongraph_db_pool_max_connections",
    "Most connections the pool hands out (PostgreSQL: pool size plus overflow).",
    multiprocess_mode="livesum",
)
OPEN_SUBSCRIPTIONS = Gauge(
    "carbongraph_open_subscriptions",
    "GraphQL subscriptions running over WebSocket.",
    multiprocess_mode="livesum",
)


class OperationNames:
    """The label value of an operation name, from a bounded set."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def label(self, name: str | None) -> str:
        if name is None:
            return UNKNOWN
        if name == "":
            return ANONYMOUS
        if name in self._seen:
            return name
        with self._lock:
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(name)
        return name


def refused(reason: str) -> None:
    """A request (or subscription) refused by the rate limiter or a static limit."""
    reason = reason.lower()
    REFUSALS.labels(reason).inc()
    state = request_state.current()
    if state is not None:
        state.refusal = reason


_OBSERVED_ENGINES: weakref.WeakSet[Any] = weakref.WeakSet()


def observe_pool(engine: AsyncEngine) -> None:
    """Count the engine's checked-out connections (once per engine, however many apps use it)."""
    sync_engine = engine.sync_engine
    if sync_engine in _OBSERVED_ENGINES:
        return
    _OBSERVED_ENGINES.add(sync_engine)

    # Checkout and checkin come in pairs, also for a connection invalidated while out.
    @event.listens_for(sync_engine, "checkout")
    def on_checkout(*_args: Any) -> None:
        POOL_IN_USE.inc()

    @event.listens_for(sync_engine, "checkin")
    def on_checkin(*_args: Any) -> None:
        POOL_IN_USE.dec()


@contextmanager
def connection_in_use() -> Iterator[None]:
    """A connection of a pool other than the engine's (the query planner's) is checked out."""
    POOL_IN_USE.inc()
    try:
        yield
    finally:
        POOL_IN_USE.dec()


def pool_opened(max_connections: int) -> None:
    POOL_CAPACITY.inc(max_connections)


def pool_closed(max_connections: int) -> None:
    POOL_CAPACITY.dec(max_connections)


def write_import_metrics(path: str, report: Any, seconds: float) -> None:
    """An import's throughput as a Prometheus text file (node_exporter's textfile collector
    picks it up: a batch job is gone before any scrape)."""
    from prometheus_client import write_to_textfile

    registry = CollectorRegistry()
    rows = Gauge(
        "carbongraph_import_rows",
        "Rows of the last import, by result.",
        ["result"],
        registry=registry,
    )
    rows.labels("created").set(report.created)
    rows.labels("unchanged").set(report.unchanged)
    rows.labels("failed").set(report.rows - report.created - report.unchanged)
    batches = Gauge(
        "carbongraph_import_batches", "Batches of the last import.", ["result"], registry=registry
    )
    batches.labels("committed").set(report.batches_committed)
    batches.labels("failed").set(report.batches_failed)
    Gauge(
        "carbongraph_import_duration_seconds", "How long the last import took.", registry=registry
    ).set(seconds)
    Gauge(
        "carbongraph_import_rows_per_second", "Throughput of the last import.", registry=registry
    ).set(report.rows / seconds if seconds > 0 else 0)
    Gauge(
        "carbongraph_import_last_run_timestamp_seconds",
        "When the last import finished.",
        registry=registry,
    ).set_to_current_time()
    write_to_textfile(path, registry)  # written aside and renamed: never read half-written


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric (of every worker process in multiprocess mode)."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def process_exited() -> None:
    """A worker's live gauges stop counting once it has stopped (multiprocess mode)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())
