"""The record of one relay answer: its tokens as the SLM saw them, and its calls.

Plain data, read by the CLI, the servers, benchmarks, evaluation and training.
``tokens`` is the answer part of the SLM's context, in order; ``mask`` is 1
for tokens the SLM wrote (its own text and its commands) and 0 for spliced
cloud tokens: the training loss mask. ``text`` is the answer as the SLM's
context holds it, commands included, so ``detokenize(tokens) == text``;
``shown`` is what the user saw (commands left out). ``end_token`` is the
end-of-turn token when the SLM itself ended the answer (it is not part of
``tokens``: the context never holds it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.events import CallOutcome, DoneEvent
from protocol.wire import FinishReason

__all__ = ["AnswerRecord", "CallRecord"]


@dataclass(frozen=True)
class CallRecord:
    """One call: asked for, granted, spliced (SLM tokens) and billed (cloud tokens)."""

    call_id: str
    requested: int
    granted: int
    tokens: int
    outcome: CallOutcome
    finish_reason: FinishReason | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    cloud: str = ""


@dataclass
class AnswerRecord:
    """One answer in progress or done (``finish_reason`` set)."""

    answer_id: str
    prompt_tokens: int
    tokens: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    text: str = ""
    shown: str = ""
    calls: list[CallRecord] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    end_token: int | None = None
    note: str = ""
    wall_s: float = 0.0

    @property
    def slm_tokens(self) -> int:
        return sum(self.mask)

    @property
    def llm_tokens(self) -> int:
        return len(self.mask) - self.slm_tokens

    @property
    def call_ratio(self) -> float:
        """Cloud tokens / all answer tokens (the method's rho), 0 for an empty answer."""
        return self.llm_tokens / len(self.mask) if self.mask else 0.0

    @property
    def cost_usd(self) -> float:
        return sum(call.cost_usd for call in self.calls)

    def done_event(self) -> DoneEvent:
        """The summary event that ends the answer's stream."""
        return DoneEvent(
            finish_reason=self.finish_reason or "length",
            prompt_tokens=self.prompt_tokens,
            slm_tokens=self.slm_tokens,
            llm_tokens=self.llm_tokens,
            calls=len(self.calls),
            call_ratio=self.call_ratio,
            cost_usd=self.cost_usd,
            wall_s=self.wall_s,
            note=self.note,
        )
