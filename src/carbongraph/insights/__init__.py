"""Insights from the accounts: suggestions for people and homes, GHG inventory exports."""
