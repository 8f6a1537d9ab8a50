"""The ``carbongraph`` command line: one module per command or command group (``app`` is the
console script, pyproject.toml). Importing a module registers its commands on ``app``, so they
are imported here in the order ``--help`` lists them."""

from carbongraph.cli.common import app

# isort: off
from carbongraph.cli import migrate, seed, grants, statements, export_schema, serve  # noqa: F401
from carbongraph.cli import imports, factors, credits, reports, keys  # noqa: F401

# isort: on

__all__ = ["app"]
