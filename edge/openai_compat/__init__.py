"""OpenAI-compatible HTTP, both sides: requests to a server, and serving errors and streams.

Used by the edge (its cloud client and ``relay serve``) and by ``relay-cloud``
(its upstream engine and app), so each concern has one home.
"""

from edge.openai_compat.client import (
    endpoint,
    error_for_response,
    request_body,
    transport_errors,
)

__all__ = [
    "endpoint",
    "error_for_response",
    "request_body",
    "transport_errors",
]
