"""The receipt of one call: the cloud's stream shown, spliced into the context, recorded.

A :class:`CallReceipt` asks the driver for the cloud's items
(:class:`CallCloud`) and takes them as they come. Cloud text is shown as it
streams, cut where the answer's room ends, and tokenized on its own as plain
text (:class:`edge.core.splice.Splice`): its settled tokens are evaluated while
the stream still arrives, the rest when it ends (mask 0), so the SLM resumes at
once and its context holds exactly the text's own tokens. It is never scanned
for commands. Budget cuts and clouds a chain passed over become events. At the
end the call's :class:`CallRecord` joins the answer's record, and
:meth:`CallReceipt.receive` says whether the call ended the answer: ``stop``
with text does; ``length``, a ``stop`` with no text (or only whitespace) or a
fallback hands back to the SLM, unless the room is used up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from edge.core.cloud import CloudBudget, CloudEnd, CloudRequest, CloudSkip, CloudText
from edge.core.context import AnswerContext
from edge.core.local_model import TextCodec, common_prefix
from edge.core.record import CallRecord
from edge.core.splice import Splice
from edge.core.steps import CallCloud, Step, Steps
from protocol.events import (
    BudgetEvent,
    CallFinished,
    CloudSkipped,
    FallbackEvent,
    TextEvent,
)
from protocol.wire import FinishReason

__all__ = ["CATCH_UP", "CallReceipt"]

CATCH_UP = 16
"""Settled cloud tokens evaluated at once when pieces arrive faster than the SLM reads."""
_CUT = "cut where the answer's token limit ends"


class CallReceipt:
    """One call's reply on its way into the answer (``exact``: a seeded answer's)."""

    def __init__(self, context: AnswerContext, codec: TextCodec, *, exact: bool) -> None:
        self.context = context
        self.splice = Splice(codec, room=context.left, exact=exact)
        self._spliced = 0  # the call's tokens evaluated so far
        self._counted = 0  # the call's tokens the text events have given so far

    def receive(
        self, request: CloudRequest, requested: int
    ) -> Generator[Step, Any, FinishReason | None]:
        """The whole call: its reply received and spliced, then recorded; how it ends the
        answer (``None``: the SLM goes on)."""
        started = time.monotonic()
        end = yield from self._stream(request)
        tokens = self.splice.final()  # the context holds exactly the text's own tokens
        yield from self._settle(common_prefix(self.splice.tokens, tokens), tokens)
        self.context.record.text += self.splice.text
        call = CallRecord(request.call_id, requested, request.max_tokens, len(tokens),
                          end.outcome, end.finish_reason if end.outcome == "ok" else None,
                          end.prompt_tokens, end.completion_tokens, end.cost_usd,
                          (time.monotonic() - started) * 1000, end.cloud)  # fmt: skip
        self.context.add_call(call)
        if end.outcome == "fallback":
            yield FallbackEvent(call_id=call.call_id, reason=end.reason, kept_tokens=call.tokens)
        note = "" if call.outcome != "ok" else _CUT if self.splice.full else end.reason
        yield CallFinished(call_id=call.call_id, outcome=call.outcome, tokens=call.tokens,
                           finish_reason=call.finish_reason, latency_ms=call.latency_ms,
                           cost_usd=call.cost_usd, note=note, cloud=call.cloud,
                           requested=requested, granted=call.granted)  # fmt: skip
        if call.finish_reason == "stop" and self.splice.text.strip():  # a bare stop ends nothing
            return "stop"
        return "length" if self.splice.full else None

    def _stream(self, request: CloudRequest) -> Generator[Step, Any, CloudEnd]:
        """Stream the cloud's answer to the user, as far as the room allows."""
        end = CloudEnd(outcome="fallback", reason="the cloud ended without a result")
        items: Iterator[Any] = yield CallCloud(request)
        more_ready = getattr(items, "ready", lambda: True)  # a list has everything at once
        try:
            for item in items:
                if isinstance(item, CloudText):
                    yield from self._text(item.text, more_ready)
                    if self.splice.full:
                        return CloudEnd(outcome="ok", finish_reason="length", cloud=item.cloud)
                elif isinstance(item, CloudBudget):
                    yield BudgetEvent(call_id=request.call_id, requested=item.requested,
                                      granted=item.granted, reason=item.reason)  # fmt: skip
                elif isinstance(item, CloudSkip):
                    yield CloudSkipped(call_id=request.call_id, cloud=item.cloud,
                                       reason=item.reason)  # fmt: skip
                else:
                    end = item
        finally:
            getattr(items, "close", lambda: None)()
        return end

    def _text(self, text: str, more_ready: Callable[[], bool]) -> Steps:
        """Show what fits of one piece. Its tokens are evaluated whenever no piece is waiting
        (or a backlog grows), so little is left to evaluate when the stream ends."""
        splice = self.splice
        shown = splice.add(text)
        standing = splice.advance()
        if shown:
            self.context.record.shown += shown
            held = len(splice.final() if splice.full else splice.tokens)
            yield TextEvent(source="llm", text=shown, n_tokens=max(0, held - self._counted))
            self._counted = max(self._counted, held)
        ahead = splice.evaluable()
        if not more_ready() or len(ahead) - self._spliced >= CATCH_UP:
            yield from self._settle(standing, ahead)
        else:
            yield from self._settle(standing, ahead[: self._spliced])

    def _settle(self, standing: int, target: list[int]) -> Steps:
        """Make the call's part of the context ``target``, whose first ``standing`` tokens
        match what was evaluated: drop what changed, evaluate the rest (one by one when exact)."""
        if self._spliced > standing:
            yield from self.context.rewind(self._spliced - standing)
            self._spliced = standing
        new = target[self._spliced :]
        for batch in [[t] for t in new] if self.splice.exact else [new]:
            yield from self.context.append(batch, local=False)
        self._spliced += len(new)
