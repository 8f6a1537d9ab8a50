"""The checks a ``/graphql`` HTTP request passes before the GraphQL endpoint executes it, each a
small pure-ASGI middleware (no buffering of responses), outermost first:

``Negotiation`` (the response media types; ``Vary: Accept``) → ``GraphiQL`` (a browser's GET)
→ ``Authentication`` (401) → ``ContentTypes`` (406, 415, the multipart preflight) →
``BodyLimit`` (413; the bulk limit and timeout) → ``RateLimit`` (429) → the endpoint.

They hand their findings down in the request's state (``scope["state"]``, what Starlette's
``request.state`` reads): see ``carbongraph.http.state``.
"""
