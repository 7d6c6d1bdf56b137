"""The call grammar: how the small model asks the cloud model for tokens.

The small model writes the plain-text command ``<call>N</call>`` to ask the cloud
for the next ``N`` tokens; ``<call>0</call>`` means "no call". This module is the
only place that knows the grammar.

Rules (each one tested):

* ``N`` is ASCII digits (``0-9`` only) with optional ASCII whitespace around
  them: ``<call> 32 </call>``.
* An empty body, ``<call></call>``, is a failed request: a command with ``n == 0``.
* ``N`` above ``max_n`` is capped to ``max_n``; a body longer than
  :data:`MAX_BODY_CHARS` characters is not a command.
* Anything else that starts like a tag (``<call>abc</call>``, ``<call>`` never
  closed, ``<cal`` at the end of the stream) is plain text, shown as written.

What leaves the device never holds a command: :func:`cloud_view` replaces each
one by a single space, merged with the whitespace beside it (``is<call>8</call>the``
becomes ``is the``; a line break next to a command is kept as written; a command
at the very start of the text leaves nothing).

:class:`CallScanner` applies these rules to text that arrives one decoded piece
at a time: it holds back any suffix that could still become a command, so a
partial tag is never shown as text, and reports a command the moment its closing
``</call>`` arrives, however the tag was split across pieces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "DEFAULT_MAX_CALL_TOKENS",
    "MAX_BODY_CHARS",
    "CallCommand",
    "CallScanner",
    "Segment",
    "cloud_view",
    "format_call",
    "malformed_commands",
    "parse_calls",
    "split_after_commands",
    "split_calls",
    "strip_calls",
]

CALL_OPEN = "<call>"
CALL_CLOSE = "</call>"
DEFAULT_MAX_CALL_TOKENS = 8192
MAX_BODY_CHARS = 16

_MAX_TAG_CHARS = len(CALL_OPEN) + MAX_BODY_CHARS + len(CALL_CLOSE)
_COMPLETE = re.compile(r"<call>(\s*)(\d*)(\s*)</call>", re.ASCII)
_CLOSE_PREFIXES = "|".join(re.escape(CALL_CLOSE[:i]) for i in range(1, len(CALL_CLOSE)))
_UNFINISHED = re.compile(rf"<call>\s*\d*\s*(?:{_CLOSE_PREFIXES})?\Z", re.ASCII)
_TAGGED = re.compile(r"<call>[^<]*</call>")


@dataclass(frozen=True)
class CallCommand:
    """One complete command: ``n`` tokens asked for (0 means no call).

    ``requested`` is the number as written (``None`` for an empty body) and
    ``raw`` the exact text of the tag, so nothing the model wrote is lost.
    """

    n: int
    requested: int | None
    raw: str

    @property
    def is_call(self) -> bool:
        """True when the command really asks the cloud for tokens."""
        return self.n > 0


Segment = str | CallCommand
"""A scanner output: plain text or a command, in the order they were written."""


def format_call(n: int) -> str:
    """The canonical text of a command asking for ``n`` tokens."""
    if n < 0:
        raise ValueError(f"a call asks for a non-negative number of tokens, not {n}")
    return f"{CALL_OPEN}{n}{CALL_CLOSE}"


def _could_become_command(tail: str) -> bool:
    """Whether ``tail`` (starting with ``<``) may still grow into a command."""
    if len(tail) <= len(CALL_OPEN):
        return CALL_OPEN.startswith(tail)
    return len(tail) < _MAX_TAG_CHARS and _UNFINISHED.match(tail) is not None


class CallScanner:
    """Finds commands in text fed one piece at a time.

    ``feed`` returns the segments that are settled; text that may still be the
    start of a command stays inside until a later piece or :meth:`flush`
    decides it. Concatenating every returned text with every command's ``raw``
    gives back exactly the text fed in.
    """

    def __init__(self, max_n: int = DEFAULT_MAX_CALL_TOKENS) -> None:
        if max_n < 0:
            raise ValueError(f"max_n must be >= 0, not {max_n}")
        self.max_n = max_n
        self._pending = ""

    @property
    def pending(self) -> str:
        """Text held back because it may be the start of a command."""
        return self._pending

    def feed(self, piece: str) -> list[Segment]:
        """Add one decoded piece; return the segments it settles."""
        buffer = self._pending + piece
        segments: list[Segment] = []
        text_start = 0
        search_from = 0
        while (lt := buffer.find("<", search_from)) != -1:
            match = _COMPLETE.match(buffer, lt)
            if match is not None and len(match.group(0)) <= _MAX_TAG_CHARS:
                if lt > text_start:
                    segments.append(buffer[text_start:lt])
                segments.append(self._command(match))
                text_start = search_from = match.end()
            elif _could_become_command(buffer[lt:]):
                break
            else:
                search_from = lt + 1
        else:
            lt = len(buffer)
        if lt > text_start:
            segments.append(buffer[text_start:lt])
        self._pending = buffer[lt:]
        return segments

    def flush(self) -> str:
        """End of stream: release whatever was held back as plain text."""
        rest, self._pending = self._pending, ""
        return rest

    def _command(self, match: re.Match[str]) -> CallCommand:
        digits = match.group(2)
        requested = int(digits) if digits else None
        n = min(requested or 0, self.max_n)
        return CallCommand(n=n, requested=requested, raw=match.group(0))


def split_calls(text: str, max_n: int = DEFAULT_MAX_CALL_TOKENS) -> list[Segment]:
    """Split complete text into plain-text segments and commands."""
    scanner = CallScanner(max_n)
    segments = scanner.feed(text)
    rest = scanner.flush()
    if rest and segments and isinstance(segments[-1], str):
        segments[-1] += rest
    elif rest:
        segments.append(rest)
    return segments


def parse_calls(text: str, max_n: int = DEFAULT_MAX_CALL_TOKENS) -> list[CallCommand]:
    """Every command in ``text``, in order (including ``n == 0`` ones)."""
    return [s for s in split_calls(text, max_n) if isinstance(s, CallCommand)]


def malformed_commands(text: str) -> int:
    """How many ``<call>…</call>`` spans in ``text`` are not commands (``<call>284.</call>``):
    each is plain text, shown as written, and calls nothing."""
    return sum(len(_TAGGED.findall(s)) for s in split_calls(text) if isinstance(s, str))


def strip_calls(text: str, replacement: str = "") -> str:
    """``text`` with every command replaced by ``replacement``."""
    return "".join(s if isinstance(s, str) else replacement for s in split_calls(text))


def cloud_view(text: str) -> str:
    """``text`` as it may leave the device: every command replaced (see the module docstring)."""
    parts: list[str] = []
    seam = False
    for segment in split_calls(text):
        if isinstance(segment, CallCommand):
            seam = True
            continue
        if seam:
            parts = [_join_at_seam("".join(parts), segment)]
            seam = False
        else:
            parts.append(segment)
    done = "".join(parts)
    return _join_at_seam(done, "") if seam else done


def _join_at_seam(left: str, right: str) -> str:
    """``left`` and ``right`` joined where a command stood between them."""
    kept_left, kept_right = left.rstrip(), right.lstrip()
    spaces = left[len(kept_left) :] + right[: len(right) - len(kept_right)]
    if not kept_left:
        return left + right
    return kept_left + (spaces if "\n" in spaces else " ") + kept_right


def split_after_commands(text: str) -> list[str]:
    """``text`` cut right after each ``</call>``, so every command ends its own part."""
    parts, start = [], 0
    while (end := text.find(CALL_CLOSE, start)) != -1:
        parts.append(text[start : end + len(CALL_CLOSE)])
        start = end + len(CALL_CLOSE)
    return [*parts, text[start:]] if text[start:] else parts
