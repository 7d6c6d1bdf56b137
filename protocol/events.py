"""The relay event stream: what an answer is made of, step by step.

Every event has a ``type``; :data:`RelayEvent` is their tagged union and
:func:`parse_event` reads one back from JSON. ``source`` says who produced a
piece of text: the small local model (``slm``) or the cloud model (``llm``).
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from protocol.wire import FinishReason

__all__ = [
    "BudgetEvent",
    "CallFinished",
    "CallOutcome",
    "CallSkipped",
    "CallStarted",
    "CloudSkipped",
    "DoneEvent",
    "FallbackEvent",
    "RelayEvent",
    "SkipReason",
    "Source",
    "TextEvent",
    "parse_event",
]

Source = Literal["slm", "llm"]
CallOutcome = Literal["ok", "fallback", "refused"]
SkipReason = Literal["zero", "empty", "policy", "limit", "no room"]
"""Why a command led to no call: ``<call>0</call>``, ``<call></call>``, the policy
does not call, the answer's call limit was reached, or no token is left."""


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextEvent(_Event):
    """Answer text, from the local model or the cloud."""

    type: Literal["text"] = "text"
    source: Source
    text: str
    n_tokens: int = Field(
        0, ge=0,
        description="The SLM's tokens that wrote the text; for cloud text, the SLM-context "
        "tokens it added as tokenized so far (exact when pieces end on tokens; the call's "
        "call_finished event has the exact count).",
    )  # fmt: skip


class CallStarted(_Event):
    """The local model asked for ``requested`` tokens; ``granted`` were asked of the cloud."""

    type: Literal["call_started"] = "call_started"
    call_id: str
    requested: int = Field(ge=0)
    granted: int = Field(ge=0)
    context_tokens: int = Field(0, ge=0)


class CallSkipped(_Event):
    """A command (or a policy's wish to call) that led to no call, and why."""

    type: Literal["call_skipped"] = "call_skipped"
    requested: int = Field(ge=0)
    reason: SkipReason
    raw: str = Field("", description="The command as the SLM wrote it ('' for a policy).")


class CallFinished(_Event):
    """A call ended; ``tokens`` is the cloud text's length in SLM tokens, as spliced.

    ``note`` explains anything unusual about the ending (a missing finish
    reason read as ``length``, text cut at the answer's token limit).
    """

    type: Literal["call_finished"] = "call_finished"
    call_id: str
    outcome: CallOutcome
    tokens: int = Field(ge=0)
    finish_reason: FinishReason | None = None
    latency_ms: float = Field(0.0, ge=0)
    cost_usd: float = Field(0.0, ge=0)
    note: str = ""
    cloud: str = Field("", description="The cloud that answered (or failed last).")
    requested: int = Field(0, ge=0, description="N the call asked for (as when it started).")
    granted: int = Field(0, ge=0, description="N the cloud was asked for (as when it started).")


class CloudSkipped(_Event):
    """A call passed over ``cloud`` before it sent any text (the next cloud was asked)."""

    type: Literal["cloud_skipped"] = "cloud_skipped"
    call_id: str
    cloud: str
    reason: str


class FallbackEvent(_Event):
    """The cloud failed; the local model goes on. Tokens already received are kept."""

    type: Literal["fallback"] = "fallback"
    call_id: str
    reason: str
    kept_tokens: int = Field(0, ge=0)


class BudgetEvent(_Event):
    """A cost cap shrank or refused a call."""

    type: Literal["budget"] = "budget"
    call_id: str
    requested: int = Field(ge=0)
    granted: int = Field(ge=0)
    reason: str


class DoneEvent(_Event):
    """The answer is complete; the summary of the whole answer."""

    type: Literal["done"] = "done"
    finish_reason: FinishReason
    prompt_tokens: int = Field(0, ge=0, description="The SLM's prompt, in SLM tokens.")
    slm_tokens: int = Field(ge=0)
    llm_tokens: int = Field(ge=0)
    calls: int = Field(ge=0)
    call_ratio: float = Field(0.0, ge=0, le=1, description="Cloud tokens / all answer tokens.")
    cost_usd: float = Field(0.0, ge=0)
    wall_s: float = Field(0.0, ge=0)
    note: str = Field("", description="Why the answer ended early, when it did.")

    @model_validator(mode="before")
    @classmethod
    def _fill_call_ratio(cls, data: Any) -> Any:
        if isinstance(data, dict) and "call_ratio" not in data:
            total = data.get("slm_tokens", 0) + data.get("llm_tokens", 0)
            data = {**data, "call_ratio": data.get("llm_tokens", 0) / total if total else 0.0}
        return data


RelayEvent = Annotated[
    TextEvent
    | CallStarted
    | CallSkipped
    | CloudSkipped
    | CallFinished
    | FallbackEvent
    | BudgetEvent
    | DoneEvent,
    Field(discriminator="type"),
]


@cache
def _adapter() -> TypeAdapter[RelayEvent]:
    return TypeAdapter(RelayEvent)  # built on first use: it costs startup time


def parse_event(data: str | bytes) -> RelayEvent:
    """Read one event back from its JSON form."""
    return _adapter().validate_json(data)
