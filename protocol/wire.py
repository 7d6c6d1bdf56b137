"""Pydantic models of what crosses HTTP between edge and cloud.

The shapes are the OpenAI completions and chat completions API (the subset the
relay uses), so any OpenAI-compatible server can stand on either side. Every
model shares :class:`WireModel`; unknown fields from other servers are ignored.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from protocol.errors import InvalidRequest, RelayError

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

MAX_STOP_SEQUENCES = 16

FinishReason = Literal["stop", "length"]
Role = Literal["system", "user", "assistant"]


def new_id(prefix: str) -> str:
    """A fresh OpenAI-style object id such as ``cmpl-3f2a...``."""
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


SSE_DONE = b"data: [DONE]\n\n"
"""The last server-sent event of an OpenAI stream."""


def encode_sse(payload: BaseModel) -> bytes:
    """One server-sent event carrying ``payload`` as JSON (``None`` fields left out)."""
    return b"data: " + payload.model_dump_json(exclude_none=True).encode() + b"\n\n"


class WireModel(BaseModel):
    """Base of every wire model: ignore unknown fields, never mutate."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class PromptTokensDetails(WireModel):
    """How many prompt tokens were served from the engine's cache."""

    cached_tokens: int = Field(0, ge=0)


class RelayDetails(WireModel):
    """relayllm extension to usage: who wrote the completion's tokens, what the calls cost."""

    slm_tokens: int = Field(0, ge=0)
    llm_tokens: int = Field(0, ge=0)
    calls: int = Field(0, ge=0)
    cost_usd: float = Field(0.0, ge=0)


class Usage(WireModel):
    """Token counts of one request; adds with ``+``."""

    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    total_tokens: int = Field(0, ge=0)
    prompt_tokens_details: PromptTokensDetails | None = None
    relay: RelayDetails | None = Field(None, description="relayllm extension (relay serve).")

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> Usage:
        """Build a usage record with the total filled in."""
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached_tokens),
        )

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens the engine did not have to evaluate again."""
        return self.prompt_tokens_details.cached_tokens if self.prompt_tokens_details else 0

    def __add__(self, other: Usage) -> Usage:
        return Usage.of(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
        )


class StreamOptions(WireModel):
    include_usage: bool = False


StopField = Annotated[str | list[str] | None, Field(None, description="Stop sequences.")]


def _valid_unicode(value: object) -> object:
    """Refuse a string holding a lone surrogate (JSON allows ``"\\ud800"``; UTF-8 does not)."""
    for text in value if isinstance(value, list) else [value]:
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(
                    f"not valid Unicode: a lone surrogate at character {exc.start}"
                ) from None
    return value


class _SamplingRequest(WireModel):
    """Fields common to both request kinds."""

    _unicode = field_validator("*")(_valid_unicode)

    model: str | None = Field(None, description="Served model id; omitted means the default.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Alias of max_tokens.")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="Default: the server's.")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Default: the server's.")
    user: str | None = Field(None, description="Who asks (accepted, not used).")
    seed: int | None = Field(None, ge=0, lt=2**32)
    stop: StopField = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1, description="Only one choice per request is supported.")

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return value

    @property
    def stop_sequences(self) -> tuple[str, ...]:
        """``stop`` as a tuple, whatever form it was sent in."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def token_limit(self) -> int | None:
        """``max_completion_tokens`` or ``max_tokens``, whichever is given (the first wins)."""
        return self.max_completion_tokens or self.max_tokens

    def token_limit_within(self, cap: int) -> int | None:
        """:attr:`token_limit`, refused (:class:`InvalidRequest`, naming ``cap``) above ``cap``."""
        asked = self.token_limit
        if asked is not None and asked > cap:
            field = "max_completion_tokens" if self.max_completion_tokens else "max_tokens"
            raise InvalidRequest(
                f"{field} is {asked} but this server answers at most {cap} tokens "
                "(its --max-output-tokens)",
                param=field,
            )
        return asked


class CompletionRequest(_SamplingRequest):
    """``POST /v1/completions``: continue a raw prompt."""

    prompt: str | list[str] = Field(..., description="The text to continue (one prompt).")
    max_tokens: int | None = Field(16, ge=1, description="Most tokens to generate.")

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt per request is supported")
        return value

    @property
    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class ChatMessage(WireModel):
    role: Role
    content: str

    _unicode = field_validator("content")(_valid_unicode)


class ChatCompletionRequest(_SamplingRequest):
    """``POST /v1/chat/completions``.

    When the last message is from the assistant it is continued rather than
    answered (set ``continue_final_message`` to false to answer it instead).
    """

    messages: list[ChatMessage] = Field(..., min_length=1)
    continue_final_message: bool | None = None

    @property
    def continues_final_message(self) -> bool:
        if self.continue_final_message is not None:
            return self.continue_final_message and self.messages[-1].role == "assistant"
        return self.messages[-1].role == "assistant"


class CompletionChoice(WireModel):
    index: int = 0
    text: str
    finish_reason: FinishReason | None = None
    logprobs: None = None


class _Response(WireModel):
    id: str
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    usage: Usage | None = None


class Completion(_Response):
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]


class CompletionChunk(_Response):
    """One SSE event of a streamed completion."""

    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]


class ChatChoice(WireModel):
    index: int = 0
    message: ChatMessage
    finish_reason: FinishReason | None = None


class ChatCompletion(_Response):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]


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


class ChatCompletionChunk(_Response):
    """One SSE event of a streamed chat completion."""

    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatChunkChoice]


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


class ErrorDetail(WireModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None
    request_id: str | None = Field(
        None, description="relayllm: the request's id, as in X-Request-ID and the server log."
    )


class ErrorBody(WireModel):
    """The OpenAI error envelope: ``{"error": {...}}``."""

    error: ErrorDetail

    @classmethod
    def of(cls, exc: RelayError, request_id: str | None = None) -> ErrorBody:
        """The envelope for one of relayllm's errors (of the request ``request_id``)."""
        detail = ErrorDetail(message=exc.message, type=exc.error_type, param=exc.param,
                             code=type(exc).__name__, request_id=request_id)  # fmt: skip
        return cls(error=detail)
