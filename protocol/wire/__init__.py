"""Pydantic models of what crosses HTTP between edge and cloud.

The shapes are the OpenAI completions and chat completions API (the subset the
relay uses), so any OpenAI-compatible server can stand on either side. Every
model shares :class:`~protocol.wire.base.WireModel`; unknown fields from other
servers are ignored. The models live by what they carry: :mod:`~protocol.wire.request`
(the two request bodies), :mod:`~protocol.wire.response` (answers, stream chunks and
their server-sent events, the model list), :mod:`~protocol.wire.usage` (token counts)
and :mod:`~protocol.wire.error_body` (the error envelope).
"""

from protocol.wire import error_body, request, response, usage
from protocol.wire.base import FinishReason, new_id
from protocol.wire.error_body import *  # noqa: F403
from protocol.wire.request import *  # noqa: F403
from protocol.wire.response import *  # noqa: F403
from protocol.wire.usage import *  # noqa: F403

__all__ = [
    "FinishReason", "new_id",
    *error_body.__all__, *request.__all__, *response.__all__, *usage.__all__,
]  # fmt: skip
