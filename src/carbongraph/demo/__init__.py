"""Demo and benchmark data generators (``carbongraph seed``, bench/): never on the server's or
an importer's import path. Only the CLI's seed commands import them, lazily; the contracts in
pyproject.toml ([tool.importlinter]) keep the app, the schema and the importers from them."""
