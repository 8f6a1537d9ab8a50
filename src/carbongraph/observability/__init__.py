"""Operations: Prometheus metrics (``/metrics``), OpenTelemetry traces and JSON logs that carry the
request id and the trace id. What to watch and what to do when an alert fires:
docs/operations.md.

Each middleware is a small pure-ASGI class in its own module (request_context, request_metrics,
metrics_endpoint); the metrics themselves are in metrics.py, tracing's setup in tracing.py."""
