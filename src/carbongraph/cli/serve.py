"""carbongraph serve: the API under uvicorn."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from carbongraph.cli.common import app, console, err, load_settings


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes. With more than one, /metrics adds up all of them "
            "(Prometheus multiprocess mode, in PROMETHEUS_MULTIPROC_DIR or a fresh temporary "
            "directory).",
        ),
    ] = 1,
) -> None:
    """Serve /graphql, /healthz, /readyz and /metrics with uvicorn. Refuses an unmigrated
    database. Logs go to stderr (CARBONGRAPH_LOG_FORMAT: json or text, with the request id and
    trace id); traces are exported when the OTEL_* variables configure an exporter
    (docs/operations.md)."""
    import os
    import tempfile

    settings = load_settings()
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Before prometheus-client is imported anywhere: the workers inherit it.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="carbongraph-metrics-")
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir:
        # A previous run's files would count as this run's (prometheus-client's rule).
        os.makedirs(multiproc_dir, exist_ok=True)
        for name in os.listdir(multiproc_dir):
            if name.endswith(".db"):
                os.remove(os.path.join(multiproc_dir, name))

    import uvicorn

    from carbongraph.db import create_engine
    from carbongraph.migrate import DatabaseNotMigrated, ensure_migrated
    from carbongraph.observability.logs import log_config

    async def check() -> None:
        engine = create_engine(settings)
        try:
            await ensure_migrated(engine, settings)
        finally:
            await engine.dispose()

    try:
        asyncio.run(check())
    except DatabaseNotMigrated as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"carbongraph serving http://{host}:{port}/graphql ({settings.env})")
    uvicorn.run(
        "carbongraph.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_graceful_shutdown=10,
        log_config=log_config(settings.log_format, settings.log_level),
        log_level=settings.log_level,
    )
