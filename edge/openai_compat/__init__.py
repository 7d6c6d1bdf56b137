"""OpenAI-compatible HTTP, both sides: requests to a server, and serving errors and streams.

Used by the edge (its cloud client and ``relay serve``) and by ``relay-cloud``
(its upstream engine and app), so each concern has one home. Its names load on
first use: a relay that only traces (:mod:`edge.openai_compat.tracing`) never
imports httpx.
"""

from protocol.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "edge.openai_compat.client": [
            "endpoint",
            "error_for_response",
            "request_body",
            "transport_errors",
        ],
    },
)
