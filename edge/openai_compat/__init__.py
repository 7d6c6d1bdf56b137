"""OpenAI-compatible HTTP, both sides: requests to a server, and what both servers share.

Used by the edge (its cloud client and ``relay serve``) and by ``relay-cloud``
(its upstream engine and app), so each concern has one home: the client helpers
(``client``), errors and streams (``server``), the serving core (``serving``:
admission, output limits, deadlines), chat replies (``replies``), the servers'
command-line flags made from their settings (``flags``), logs, metrics, tracing.
Its names load on first use: a relay that only traces
(:mod:`edge.openai_compat.tracing`) never imports httpx.
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
