"""Pydantic models of what crosses HTTP between edge and cloud.

The shapes are the OpenAI completions and chat completions API (the subset the
relay uses), so any OpenAI-compatible server can stand on either side. Every
model shares :class:`~protocol.wire.base.WireModel`; unknown fields from other
servers are ignored. The models live by what they carry: :mod:`~protocol.wire.request`
(the two request bodies), :mod:`~protocol.wire.response` (answers, stream chunks and
their server-sent events, the model list), :mod:`~protocol.wire.usage` (token counts)
and :mod:`~protocol.wire.error_body` (the error envelope).
"""

from protocol.wire.base import FinishReason, new_id
from protocol.wire.error_body import ErrorBody, ErrorDetail
from protocol.wire.request import (
    MAX_STOP_SEQUENCES,
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    StreamOptions,
)
from protocol.wire.response import (
    SSE_DONE,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    Completion,
    CompletionChoice,
    CompletionChunk,
    ModelCard,
    ModelList,
    RelayCall,
    encode_sse,
)
from protocol.wire.usage import PromptTokensDetails, RelayDetails, Usage

__all__ = [
    "MAX_STOP_SEQUENCES",
    "SSE_DONE",
    "ChatChoice",
    "ChatChunkChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatDelta",
    "ChatMessage",
    "Completion",
    "CompletionChoice",
    "CompletionChunk",
    "CompletionRequest",
    "ErrorBody",
    "ErrorDetail",
    "FinishReason",
    "ModelCard",
    "ModelList",
    "PromptTokensDetails",
    "RelayCall",
    "RelayDetails",
    "StreamOptions",
    "Usage",
    "encode_sse",
    "new_id",
]
