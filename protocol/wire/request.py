"""The two request bodies: ``POST /v1/completions`` and ``POST /v1/chat/completions``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from protocol.errors import InvalidRequest
from protocol.wire.base import Role, WireModel

__all__ = [
    "MAX_STOP_SEQUENCES",
    "ChatCompletionRequest",
    "ChatMessage",
    "CompletionRequest",
    "StreamOptions",
]

MAX_STOP_SEQUENCES = 16


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
