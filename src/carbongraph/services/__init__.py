"""Domain services: validated writes, each inside the calling mutation's savepoint."""
