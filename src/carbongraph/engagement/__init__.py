"""Engagement: printable statements and leaderboards, computed from the pre-aggregated totals."""
