"""The answer part of the SLM's context, edited as steps and kept in step with the record.

Both writers of an answer go through an :class:`AnswerContext`: the SLM's turn
(:mod:`edge.core.turn`: its own tokens, mask 1) and the receipt of a call
(:mod:`edge.core.receipt`: the cloud's tokens, mask 0). Each edit is a step
for the driver (:class:`Extend`, :class:`Rewind`) and the same edit of the
record's ``tokens`` and ``mask``, so the two never disagree.
"""

from __future__ import annotations

from edge.core.record import AnswerRecord, CallRecord
from edge.core.steps import Extend, Rewind, Steps

__all__ = ["AnswerContext"]


class AnswerContext:
    """The answer's tokens, at most ``room`` of them, as the model's context holds them."""

    def __init__(self, record: AnswerRecord, room: int) -> None:
        self.record = record
        self.room = room
        self._call_end = 0  # where the latest call's tokens end

    @property
    def left(self) -> int:
        """Tokens the answer may still add."""
        return self.room - len(self.record.tokens)

    @property
    def since_call(self) -> int:
        """The SLM's tokens since the latest call (since the start before the first)."""
        return len(self.record.tokens) - self._call_end

    def append(self, tokens: list[int], *, local: bool) -> Steps:
        """Add ``tokens``: the SLM's own (``local``) or the cloud's."""
        if not tokens:
            return
        yield Extend(tokens)
        self.record.tokens += tokens
        self.record.mask += [int(local)] * len(tokens)

    def rewind(self, n: int) -> Steps:
        """Take the last ``n`` tokens back (none: nothing happens)."""
        if n <= 0:
            return
        yield Rewind(n)
        del self.record.tokens[-n:], self.record.mask[-n:]

    def add_call(self, call: CallRecord) -> None:
        """A call is over: keep its record; the SLM's count since a call starts again."""
        self.record.calls.append(call)
        self._call_end = len(self.record.tokens)
