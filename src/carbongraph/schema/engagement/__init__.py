"""Statements and leaderboards."""
