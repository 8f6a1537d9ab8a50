"""carbongraph export-schema: the subgraph SDL."""

from __future__ import annotations

import sys

from carbongraph.cli.common import app


@app.command("export-schema")
def export_schema() -> None:
    """Print the subgraph SDL (what the gateway composes)."""
    from carbongraph.schema.schema import schema

    sys.stdout.write(schema.as_str() + "\n")
