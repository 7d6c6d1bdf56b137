"""relayllm's shared language: the call grammar, wire models, events and errors.

Pure: needs only pydantic and does no I/O.
"""

from protocol import errors
from protocol.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "protocol.calls": [
            "CALL_CLOSE",
            "CALL_OPEN",
            "CallCommand",
            "CallScanner",
            "cloud_view",
            "format_call",
            "parse_calls",
            "split_calls",
            "strip_calls",
        ],
        "protocol.errors": errors.__all__,  # the whole error tree
        "protocol.events": ["RelayEvent", "parse_event"],
        "protocol.sampling": ["SamplingParams"],
    },
)
