"""The cloud client interface: what the relay loop asks of the cloud, and what comes back.

A :class:`CloudClient` turns a :class:`CloudRequest` into a stream of
:class:`CloudText` pieces ending with exactly one :class:`CloudEnd`; a budget
wrapper may put a :class:`CloudBudget` first, and a chain of clouds a
:class:`CloudSkip` for each cloud it passed over. Wrappers (fallback, chain,
circuit breaker, budget) implement the same protocol around the HTTP client, so
the loop itself never branches on failures or providers: a failed call simply
ends with ``outcome="fallback"`` and the tokens received so far.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from protocol.events import CallOutcome
from protocol.wire import ChatMessage, FinishReason

__all__ = [
    "CloudBudget",
    "CloudClient",
    "CloudEnd",
    "CloudItem",
    "CloudRequest",
    "CloudSkip",
    "CloudText",
]


@dataclass(frozen=True)
class CloudRequest:
    """One call: the context as raw prompt text and as chat messages, and a token limit.

    ``prompt`` is the SLM's chat-formatted prompt plus the answer so far with
    every command replaced (for raw completions); ``messages`` is the same
    conversation ending with that partial answer as an assistant message, which
    each API family says in its own way. ``stop`` holds the SLM template's turn
    markers; ``seed`` is derived from the answer's seed. ``temperature``
    replaces the cloud's own (a probe asks for 0); ``retries`` caps its retries
    before the first token (a chain gives 0 to every cloud but its last).
    """

    call_id: str
    answer_id: str
    prompt: str
    messages: Sequence[ChatMessage]
    max_tokens: int
    context_tokens: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    temperature: float | None = None
    retries: int | None = None


@dataclass(frozen=True)
class CloudText:
    """Cloud text as it arrives, from the cloud named ``cloud``."""

    text: str
    cloud: str = ""


@dataclass(frozen=True)
class CloudBudget:
    """A cost cap cut the call from ``requested`` to ``granted`` tokens (0: refused)."""

    requested: int
    granted: int
    reason: str


@dataclass(frozen=True)
class CloudSkip:
    """A chain passed over ``cloud`` before it produced any text, and why."""

    cloud: str
    reason: str


@dataclass(frozen=True)
class CloudEnd:
    """The call is over. ``finish_reason`` is the cloud's when it finished normally.

    ``reason`` says why a call fell back or was refused, or notes anything
    unusual about a normal end (a missing finish reason read as ``length``).
    Token counts are the provider's: ``prompt_tokens`` is the whole prompt,
    ``cached_tokens`` the part read from its cache, ``cache_write_tokens`` the
    part written to it; ``completion_tokens`` includes hidden reasoning. ``cloud``
    names the cloud that answered.
    """

    outcome: CallOutcome
    finish_reason: FinishReason | None = None
    completion_tokens: int = 0
    prompt_tokens: int = 0
    reason: str = ""
    cost_usd: float = 0.0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cloud: str = ""


CloudItem = CloudText | CloudBudget | CloudSkip | CloudEnd


class CloudClient(Protocol):
    """Streams a call. Implementations raise ``CloudError`` on failure (wrappers may not)."""

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        """Yield text pieces, then one :class:`CloudEnd`."""
        ...
