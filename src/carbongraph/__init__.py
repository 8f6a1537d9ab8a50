"""carbongraph: federated GraphQL for personal, household, community and enterprise accounts."""

__version__ = "0.1.0"
