"""Stop sequences over streamed text: never emit text that may be part of one."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["StopMatcher"]


class StopMatcher:
    """Feed text pieces; get back what is safe to show and whether a stop was hit.

    Text that could be the start of a stop sequence is held back until it is
    decided. On a hit, the text before the stop sequence is returned and the
    stop sequence itself is dropped, as in the OpenAI API.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """Return ``(text to emit, stop hit)`` after adding ``piece``."""
        if not self._stops:
            return piece, False
        buffer = self._held + piece
        hits = [i for i in (buffer.find(s) for s in self._stops) if i != -1]
        if hits:
            self._held = ""
            return buffer[: min(hits)], True
        keep = max((_overlap(buffer, s) for s in self._stops), default=0)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        """The end of the stream: release what was held back."""
        held, self._held = self._held, ""
        return held


def _overlap(text: str, stop: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``stop``."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-size:]):
            return size
    return 0
