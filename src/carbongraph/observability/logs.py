"""Log records carry the request id and the trace id of the request they were written for
(``request_id``, ``trace_id``, ``span_id``); ``CARBONGRAPH_LOG_FORMAT=json`` (the production
default) writes one JSON object a line (python-json-logger), ``text`` a readable line."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace

from carbongraph.observability import request_state

JSON_FIELDS = (
    "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(trace_id)s %(span_id)s"
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(trace_id)s] %(message)s"


class RequestIds(logging.Filter):
    """Adds the current request's ids to every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        state = request_state.current()
        span = trace.get_current_span()
        span_context = span.get_span_context()
        record.request_id = state.request_id if state is not None else None
        record.trace_id = state.trace_id if state is not None else None
        record.span_id = None
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            if span.is_recording():  # with tracing off it would be the caller's span
                record.span_id = format(span_context.span_id, "016x")
        return True


def log_config(log_format: str, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server (uvicorn applies it in every worker)."""
    if log_format == "json":
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    else:
        formatter = {"format": TEXT_FORMAT}
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "filters": ["request_ids"],
        "stream": "ext://sys.stderr",
    }
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_ids": {"()": RequestIds}},
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            # uvicorn's own loggers write through the root handler (and so carry the ids too).
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": level, "propagate": True},
        },
    }
