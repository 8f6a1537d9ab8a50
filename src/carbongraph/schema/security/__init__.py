"""The viewer, role grants, API keys and the audit log."""
