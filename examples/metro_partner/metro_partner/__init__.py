"""metro_partner: an example partner subgraph (a metro operator) for carbongraph's supergraph.

It owns ``Station`` and ``MetroTrip``, extends carbongraph's ``Individual`` entity with
``metroTrips`` and references carbongraph's ``Community`` entity from ``Station.community``.
"""

__version__ = "0.1.0"
