"""The response bodies: completions and chat completions, whole or as stream chunks (with
relayllm's extensions: who wrote a piece, a call as it happens), the model list, and the
server-sent events that carry chunks."""

from __future__ import annotations

import time
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from protocol.wire.base import FinishReason, Role, WireModel
from protocol.wire.request import ChatMessage
from protocol.wire.usage import Usage

__all__ = [
    "SSE_DONE",
    "ChatChoice",
    "ChatChunkChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatDelta",
    "Completion",
    "CompletionChoice",
    "CompletionChunk",
    "ModelCard",
    "ModelList",
    "RelayCall",
    "encode_sse",
]

SSE_DONE = b"data: [DONE]\n\n"
"""The last server-sent event of an OpenAI stream."""


def encode_sse(payload: BaseModel) -> bytes:
    """One server-sent event carrying ``payload`` as JSON (``None`` fields left out)."""
    return b"data: " + payload.model_dump_json(exclude_none=True).encode() + b"\n\n"


class CompletionChoice(WireModel):
    index: int = 0
    text: str
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatChoice(WireModel):
    index: int = 0
    message: ChatMessage
    finish_reason: FinishReason | None = None


ChoiceT = TypeVar("ChoiceT", bound=WireModel)


class _Response(WireModel, Generic[ChoiceT]):
    """What every response body carries: its id, time, model, ``object`` kind, choices and
    usage."""

    id: str
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    usage: Usage | None = None
    object: str
    choices: list[ChoiceT]


class Completion(_Response[CompletionChoice]):
    object: Literal["text_completion"] = "text_completion"


class CompletionChunk(Completion):
    """One SSE event of a streamed completion."""


class ChatCompletion(_Response[ChatChoice]):
    object: Literal["chat.completion"] = "chat.completion"


class RelayCall(WireModel):
    """relayllm extension: a call began (``outcome`` unset), passed a cloud over
    (``cloud_skipped``), ended, or was skipped; ``cloud`` names the cloud concerned."""

    call_id: str = ""
    requested: int = Field(0, ge=0)
    granted: int = Field(0, ge=0)
    outcome: Literal["ok", "fallback", "refused", "skipped", "cloud_skipped"] | None = None
    tokens: int = Field(0, ge=0)
    reason: str = ""
    cloud: str = ""


class ChatDelta(WireModel):
    role: Role | None = None
    content: str | None = None
    relay_source: Literal["slm", "llm"] | None = Field(
        None, description="relayllm extension: which model wrote this text."
    )
    relay_call: RelayCall | None = Field(
        None, description="relayllm extension: a call of the relay, as it happens."
    )


class ChatChunkChoice(WireModel):
    index: int = 0
    delta: ChatDelta
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(_Response[ChatChunkChoice]):
    """One SSE event of a streamed chat completion."""

    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"


class ModelCard(WireModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "relayllm"
    relay: dict[str, str] | None = Field(
        None, description="relayllm extension: the SLM and cloud model a relay serves."
    )


class ModelList(WireModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
