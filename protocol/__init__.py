"""relayllm's shared language: the call grammar, wire models, events and errors.

Pure: needs only pydantic and does no I/O.
"""

from protocol.calls import (
    CALL_CLOSE,
    CALL_OPEN,
    CallCommand,
    CallScanner,
    cloud_view,
    format_call,
    parse_calls,
    split_calls,
    strip_calls,
)
from protocol.errors import (
    AuthenticationFailed,
    CloudError,
    CloudUnavailable,
    ContextOverflow,
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    PayloadTooLarge,
    RelayError,
    RequestError,
    UpstreamError,
)
from protocol.events import RelayEvent, parse_event
from protocol.sampling import SamplingParams

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "AuthenticationFailed",
    "CallCommand",
    "CallScanner",
    "CloudError",
    "CloudUnavailable",
    "ContextOverflow",
    "InvalidRequest",
    "ModelNotFound",
    "ModelUnavailable",
    "PayloadTooLarge",
    "RelayError",
    "RelayEvent",
    "RequestError",
    "SamplingParams",
    "UpstreamError",
    "cloud_view",
    "format_call",
    "parse_calls",
    "parse_event",
    "split_calls",
    "strip_calls",
]
