"""One turn of the SLM: its tokens read as text, commands found, the turn cut at ``</call>``.

An :class:`SlmTurn` takes the SLM's sampled tokens one at a time
(:meth:`SlmTurn.take`). Their bytes are decoded as UTF-8 (a character may span
tokens) and scanned by a :class:`CallScanner`, so commands are never shown: text
goes out as ``TextEvent`` s, a complete command is put to ``ask`` (the relay's
policy and limits). A command that becomes a call ends the turn at ``</call>``:
the context keeps exactly the text up to it (a token such as ``>.`` is replaced
by the tokens of ``>``; the rest is discarded), and :meth:`take` returns the
:class:`CallAsked`. A token that makes the answer repeat itself (the repetition
guard, :mod:`edge.core.repetition`) ends the answer. :meth:`finish` ends it and
releases what the scanner and decoder still hold.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from edge.core.context import AnswerContext
from edge.core.local_model import TextCodec
from edge.core.repetition import repeating
from edge.core.steps import Step, Steps
from protocol.calls import CallCommand, CallScanner
from protocol.events import TextEvent
from protocol.wire import FinishReason

__all__ = ["AskCall", "CallAsked", "SlmTurn"]

AskCall = Callable[[CallCommand], Generator[Step, Any, int]]
"""Whether a complete command becomes a call: the tokens it is granted (0: skipped)."""


@dataclass(frozen=True)
class CallAsked:
    """The turn ended at a command's ``</call>``: N as it asked, and the tokens granted."""

    requested: int
    granted: int


class SlmTurn:
    """The SLM's text since its latest call (or the answer's start)."""

    def __init__(
        self, context: AnswerContext, codec: TextCodec, *, max_call_tokens: int, repeat_guard: int
    ) -> None:
        self.context, self.codec, self.repeat_guard = context, codec, repeat_guard
        self._scanner = CallScanner(max_call_tokens)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._unsettled: list[int] = []  # tokens of a character still incomplete ...
        self._unsettled_text = ""  # ... and the text they decoded to so far

    @property
    def mid_character(self) -> bool:
        """Whether the latest token left a character incomplete."""
        return bool(self._decoder.getstate()[0])

    def take(self, token: int, ask: AskCall) -> Generator[Step, Any, CallAsked | None]:
        """One SLM token: show its text, act on a command it completes."""
        piece = self._decoder.decode(self.codec.detokenize([token]))
        consumed = -len(self._scanner.pending)
        first = True
        for segment in self._scanner.feed(piece):
            if isinstance(segment, str):
                consumed += len(segment)
                yield from self.show(segment, n_tokens=int(first))
                first = False
                continue
            consumed += len(segment.raw)
            self.context.record.text += segment.raw
            granted = yield from ask(segment)
            if granted:
                yield from self._cut(token, piece, consumed)
                return CallAsked(segment.n, granted)
        yield from self.context.append([token], local=True)
        guard, record = self.repeat_guard, self.context.record
        if guard and (period := repeating(record.tokens, guard)):
            record.note = f"stopped: the same {period} tokens repeated {guard} times"
            yield from self.finish("length")
            return None
        if self.mid_character:
            self._unsettled.append(token)
            self._unsettled_text += piece
        else:
            self._unsettled, self._unsettled_text = [], ""
        return None

    def flush(self) -> Steps:
        """Show the start of a command the scanner holds: a call cuts in before it is done."""
        yield from self.show(self._scanner.flush())

    def show(self, text: str, n_tokens: int = 0) -> Steps:
        """SLM text: into the answer and out to the user."""
        if text:
            self.context.record.text += text
            self.context.record.shown += text
            yield TextEvent(source="slm", text=text, n_tokens=n_tokens)

    def finish(self, reason: FinishReason) -> Steps:
        """Release what the scanner still holds, and end the answer. A character the last
        tokens left unfinished is dropped from the context (never shown as U+FFFD)."""
        if self.mid_character:
            yield from self.context.rewind(len(self._unsettled))
            yield from self.context.append(self.codec.tokenize(self._unsettled_text), local=True)
            self._decoder.reset()
        held = "".join(s if isinstance(s, str) else s.raw for s in self._scanner.feed(""))
        yield from self.show(held + self._scanner.flush())
        self.context.record.finish_reason = reason

    def _cut(self, token: int, piece: str, consumed: int) -> Steps:
        """The context keeps exactly the text up to ``</call>``; the rest of the token goes."""
        if consumed == len(piece) and not self.mid_character and not self._unsettled:
            yield from self.context.append([token], local=True)
            return
        if self._unsettled:
            yield from self.context.rewind(len(self._unsettled))
        kept = self._unsettled_text + piece[:consumed]
        yield from self.context.append(self.codec.tokenize(kept), local=True)
