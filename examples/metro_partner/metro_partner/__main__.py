"""``python -m metro_partner serve|seed|export-schema`` (with ``examples/metro_partner`` on
``PYTHONPATH``)."""

from __future__ import annotations

import argparse
import asyncio
import sys


def _seed() -> None:
    from . import db
    from .seed import seed

    async def run() -> dict[str, int]:
        engine = db.create_engine()
        try:
            return await seed(engine)
        finally:
            await engine.dispose()

    added = asyncio.run(run())
    print(f"seeded {db.database_url()}: {added['stations']} stations, {added['trips']} trips added")


def _serve(host: str, port: int) -> None:
    import uvicorn

    from .app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info")


def _export_schema() -> None:
    from .schema import schema

    sys.stdout.write(schema.as_str() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m metro_partner", description="The metro partner subgraph."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve http://HOST:PORT/graphql and /healthz")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4002)
    commands.add_parser("seed", help="create the tables and add the demo data (idempotent)")
    commands.add_parser("export-schema", help="print the subgraph SDL")
    args = parser.parse_args(argv)
    if args.command == "serve":
        _serve(args.host, args.port)
    elif args.command == "seed":
        _seed()
    else:
        _export_schema()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
