"""Where a cloud reply meets the partial answer it continues: nothing lost, nothing doubled.

A raw continuation joins as it is. Other API families need the start of the
reply looked at before it may be shown, so a :class:`Seam` holds the first
pieces back until it can decide, then passes everything through:

* :meth:`Seam.after_stripped`: the answer was sent without its trailing
  whitespace (Anthropic refuses a prefill that ends in it); the reply's leading
  whitespace that the answer already holds is dropped.
* :meth:`Seam.after_prefix`: the reply starts by repeating the whole prefix it
  was given (Mistral's ``prefix`` does); that copy is dropped.
* :meth:`Seam.after_answer`: a chat model asked to continue may repeat the end
  of the answer (``sky is blue`` + ``blue because``), or the whole of it, or
  leave out the space between the answer's last word and its own first; the
  repeated words are trimmed (whole words only) and a space is put where one is
  missing after a word or punctuation mark. A reply that finishes a word the
  answer stopped inside of gets a space too: which of the two a model meant
  cannot be told from the text.

A :class:`ReplyText` then watches the joined text for the call's stop strings
(the SLM template's turn markers): a cloud that does not honour them is cut at
one, and text that may be the start of one is held back until it is decided. A
reply that ends by length on such a start (``<|im_``) ends without it: it is
never shown nor spliced, and the call's note says so.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence

from protocol.stops import StopMatcher
from protocol.wire import FinishReason

__all__ = ["ReplyText", "Seam"]

Join = Callable[[str, bool], "str | None"]
"""Given the held start of the reply and whether the reply has ended: the text to show
for it, or ``None`` to hold it longer."""

_NO_SPACE_AFTER = set("([{<\"'\u201c\u2018\u00ab-\u2013\u2014/\\@#$")
"""After these an answer's next word follows without a space (opening brackets, quotes,
dashes, slashes)."""
_OPENING = "([\"'\u201c\u2018\u00ab"


class Seam:
    """Joins a streamed reply to the answer before it; see the module docstring."""

    def __init__(self, join: Join | None = None) -> None:
        self._join = join
        self._held = ""

    @classmethod
    def after_stripped(cls, stripped: str) -> Seam:
        """The answer's trailing whitespace ``stripped`` was not sent; the reply's is dropped."""

        def join(held: str, final: bool) -> str | None:
            n = 0
            while n < min(len(held), len(stripped)) and held[n] == stripped[n]:
                n += 1
            if n < len(held) or n == len(stripped) or final:
                return held[n:]
            return None

        return cls(join if stripped else None)

    @classmethod
    def after_prefix(cls, prefix: str) -> Seam:
        """The reply repeats ``prefix`` whole before its continuation (a reply that ends, or
        breaks off, inside that copy added nothing)."""

        def join(held: str, final: bool) -> str | None:
            if held.startswith(prefix):
                return held[len(prefix) :]
            if prefix.startswith(held):
                return "" if final else None
            return held

        return cls(join if prefix else None)

    @classmethod
    def after_answer(cls, answer: str) -> Seam:
        """A chat model's reply to "continue this": repeated words trimmed, a missing space put."""
        words = answer.rstrip()
        tails = [words[i:] for i in range(len(words)) if _word_start(words, i)]

        def join(held: str, final: bool) -> str | None:
            body = held.lstrip()
            if not body and not final:
                return None
            if not final and any(t.startswith(body) for t in tails):
                return None  # the reply could still be repeating the answer: wait
            repeated = max((t for t in tails if _repeats(body, t, final)), key=len, default="")
            rest = body[len(repeated) :] if repeated else held
            return _spaced(answer, rest)

        return cls(join if words else None)

    def feed(self, piece: str) -> str:
        """Take the next piece of the reply; return the text that may be shown now."""
        if self._join is None:
            return piece
        self._held += piece
        shown = self._join(self._held, False)
        if shown is None:
            return ""
        self._join, self._held = None, ""
        return shown

    def flush(self) -> str:
        """The reply has ended (or broken off): what is still held, decided now."""
        if self._join is None:
            return ""
        shown = self._join(self._held, True) or ""
        self._join, self._held = None, ""
        return shown


def _word_start(text: str, i: int) -> bool:
    return not text[i].isspace() and (i == 0 or text[i - 1].isspace())


def _repeats(body: str, tail: str, final: bool) -> bool:
    """``body`` starts with the whole words of ``tail``."""
    if not body.startswith(tail):
        return False
    if len(body) == len(tail):
        return final
    return not body[len(tail)].isalnum()


def _spaced(answer: str, rest: str) -> str:
    """``rest`` as it follows ``answer``: one space between words, never two."""
    if not answer or not rest:
        return rest
    if answer[-1].isspace():
        return rest.lstrip(" \t")
    first, last = rest[0], answer[-1]
    if first.isspace() or last in _NO_SPACE_AFTER or _unspaced_script(last, first):
        return rest
    if first.isalnum() or first in _OPENING:
        return " " + rest
    return rest


def _unspaced_script(*chars: str) -> bool:
    """Scripts written without spaces between words (Chinese, Japanese, Thai, ...)."""
    for char in chars:
        if unicodedata.east_asian_width(char) in ("W", "F"):
            return True
        if "\u0e00" <= char <= "\u0eff" or "\u1000" <= char <= "\u109f":  # Thai, Lao, Myanmar
            return True
        if "\u1780" <= char <= "\u17ff":  # Khmer
            return True
    return False


class ReplyText:
    """A reply on its way into the answer: joined at ``seam``, cut at a stop string."""

    def __init__(self, seam: Seam, stops: Sequence[str]) -> None:
        self.seam = seam
        self.stopped = False
        self._stops = StopMatcher(stops)

    def feed(self, piece: str) -> str:
        """The text of ``piece`` that may be shown now (none once a stop string was met)."""
        if self.stopped:
            return ""
        shown, self.stopped = self._stops.feed(self.seam.feed(piece))
        return shown

    def end(self, finish: FinishReason | None) -> tuple[str, str]:
        """The reply has ended (``None``: broken off): the last text to show, and a note on
        what was held back and dropped (the start of a stop string, when it ended by length
        or broke off)."""
        shown = self.feed(self.seam.flush())
        held = self._stops.flush()
        if self.stopped or not held or finish == "stop":
            return shown + ("" if self.stopped else held), ""
        return shown, f"{held!r} at its end may begin a stop marker; it was not spliced"
