"""The cloud client interface: what the relay loop asks of the cloud, and what comes back.

A :class:`CloudClient` turns a :class:`CloudRequest` into a stream of
:class:`CloudText` pieces ending with exactly one :class:`CloudEnd`; a budget
wrapper may put a :class:`CloudBudget` first. Wrappers (fallback, circuit
breaker, budget, audit) implement the same protocol around the HTTP client, so
the loop itself never branches on failures: a failed call simply ends with
``outcome="fallback"`` and the tokens received so far.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from protocol.events import CallOutcome
from protocol.wire import ChatMessage, FinishReason

__all__ = [
    "CloudBudget",
    "CloudClient",
    "CloudEnd",
    "CloudItem",
    "CloudRequest",
    "CloudText",
    "ContextMode",
]

ContextMode = Literal["raw", "chat"]


@dataclass(frozen=True)
class CloudRequest:
    """One call: the context as raw prompt text and as chat messages, and a token limit.

    ``prompt`` is the SLM's chat-formatted prompt plus the answer so far with
    every command replaced (raw mode); ``messages`` ends with that partial
    answer as an assistant message to continue (chat mode). ``stop`` holds the
    SLM template's turn markers; ``seed`` is derived from the answer's seed.
    """

    call_id: str
    answer_id: str
    prompt: str
    messages: Sequence[ChatMessage]
    max_tokens: int
    context_tokens: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class CloudText:
    """Cloud text as it arrives."""

    text: str


@dataclass(frozen=True)
class CloudBudget:
    """A cost cap cut the call from ``requested`` to ``granted`` tokens (0: refused)."""

    requested: int
    granted: int
    reason: str


@dataclass(frozen=True)
class CloudEnd:
    """The call is over. ``finish_reason`` is the cloud's when it finished normally.

    ``reason`` says why a call fell back or was refused, or notes anything
    unusual about a normal end (a missing finish reason read as ``length``).
    """

    outcome: CallOutcome
    finish_reason: FinishReason | None = None
    completion_tokens: int = 0
    prompt_tokens: int = 0
    reason: str = ""
    cost_usd: float = 0.0


CloudItem = CloudText | CloudBudget | CloudEnd


class CloudClient(Protocol):
    """Streams a call. Implementations raise ``CloudError`` on failure (wrappers may not)."""

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        """Yield text pieces, then one :class:`CloudEnd`."""
        ...
