"""Suggestions and GHG inventories."""
