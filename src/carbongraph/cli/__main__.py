"""``python -m carbongraph.cli``."""

from carbongraph.cli import app

app()
