"""The interface every cloud engine implements, and the values it speaks in.

An engine turns a prompt (raw text or chat messages) into a stream of
:class:`Delta`. Its contract:

* the first delta is empty and means "the prompt is accepted": any error about
  the request itself (context too long, upstream refusal) is raised by the first
  ``anext()``, before a byte of the response is sent;
* the last delta carries ``finish_reason`` and ``usage``, and nothing follows it;
* closing the iterator early stops the generation;
* once ``time.monotonic()`` passes ``Generation.deadline`` the answer ends with
  ``finish_reason = "length"``, as if its token limit had been reached.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from protocol.sampling import SamplingParams
from protocol.wire import ChatMessage, FinishReason, Usage

__all__ = ["Delta", "Engine", "Generation"]


@dataclass(frozen=True)
class Generation:
    """What to generate: sampling, a token limit (``None``: up to the context), stops, and
    the ``time.monotonic()`` at which to stop regardless (``None``: no deadline)."""

    sampling: SamplingParams
    max_tokens: int | None
    stop: tuple[str, ...] = ()
    deadline: float | None = None

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.deadline is not None and time.monotonic() >= self.deadline


@dataclass(frozen=True)
class Delta:
    """New text; the final delta has ``finish_reason`` and ``usage`` set."""

    text: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


class Engine(Protocol):
    """A model that continues prompts, served under ``model_id``."""

    model_id: str

    def complete(self, prompt: str, generation: Generation) -> AsyncIterator[Delta]:
        """Continue raw prompt text."""
        ...

    def chat(
        self, messages: Sequence[ChatMessage], generation: Generation, *, continue_final: bool
    ) -> AsyncIterator[Delta]:
        """Answer (or, with ``continue_final``, continue the last message of) a chat."""
        ...

    async def start(self) -> None:
        """Get ready to serve (called once, before the first request)."""
        ...

    async def aclose(self) -> None:
        """Free the engine's resources."""
        ...
