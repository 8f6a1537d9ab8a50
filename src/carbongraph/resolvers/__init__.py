"""Query and mutation resolvers, per-request DataLoaders and keyset pagination."""
