"""Cloud text on its way into the SLM's context: evaluated as it streams, cut where the room ends.

A :class:`Splice` takes the cloud's text pieces as they arrive and

* says which part of each may be shown: all of it while the text's tokens
  (tokenized on their own, as plain text) fit the room left, then the longest
  part that ends on a token and character boundary;
* keeps ``tokens``, its best tokenization of the text so far, to be evaluated
  while the stream still arrives (:meth:`evaluable`). The last token may still
  merge with bytes to come: each :meth:`advance` re-reads the text from the
  start of that token and says how many tokens held before are still right
  (usually all), so a token that changed is dropped and its replacement
  evaluated. A seeded answer (``exact``) evaluates only settled tokens, one at a
  time, so its context never depends on when bytes arrived;
* at the end, :meth:`final` gives the tokens of the whole text tokenized at
  once, which is what the context must hold.

What is shown, counted and kept in the context is then the same text, and the
SLM resumes about one token's time after the cloud's last byte.
"""

from __future__ import annotations

from edge.core.local_model import TextCodec, common_prefix

__all__ = ["Splice"]


class Splice:
    """The accepted cloud text of one call; ``full`` once the room is used up."""

    def __init__(self, codec: TextCodec, room: int, *, exact: bool = False) -> None:
        self.codec = codec
        self.room = room
        self.exact = exact
        self.text = ""
        self.full = room <= 0
        self.tokens: list[int] = []
        self._settled = 0  # leading tokens no later byte can change ...
        self._settled_chars = 0  # ... and the text they cover
        self._cut: list[int] | None = None
        self._bytes = 0

    def add(self, piece: str) -> str:
        """Accept ``piece`` or the part of it that fits; return what may be shown."""
        if self.full:
            return ""
        size = self._bytes + len(piece.encode("utf-8"))
        if size < self.room:  # every token holds at least one byte: it fits
            self.text, self._bytes = self.text + piece, size
            return piece
        tokens = self.codec.tokenize(self.text + piece)
        if len(tokens) <= self.room:
            self.text, self._bytes = self.text + piece, size
            return piece
        self.full = True
        kept, kept_tokens = self._fitting(tokens[: self.room])
        if len(kept) < len(self.text):  # the new piece changed how earlier text tokenizes
            return ""
        shown, self.text, self._cut = kept[len(self.text) :], kept, kept_tokens
        return shown

    def advance(self) -> int:
        """Re-read the unsettled text into ``tokens``; return how many earlier tokens stand."""
        if self.full or not self.text[self._settled_chars :]:
            return len(self.tokens)
        rest = self.text[self._settled_chars :]
        fresh = self.codec.tokenize(rest)
        standing = self._settled + common_prefix(self.tokens[self._settled :], fresh)
        self.tokens = [*self.tokens[: self._settled], *fresh]
        if len(fresh) > 1:  # all but the last token are settled, if they end on a character
            try:
                covered = self.codec.detokenize(fresh[:-1]).decode("utf-8")
            except UnicodeDecodeError:
                covered = ""
            if covered and rest.startswith(covered):
                self._settled += len(fresh) - 1
                self._settled_chars += len(covered)
        return standing

    def evaluable(self) -> list[int]:
        """The tokens to evaluate now: all of them, or only the settled ones when ``exact``
        (a seeded answer never evaluates a token it may have to take back)."""
        return self.tokens[: self._settled] if self.exact else self.tokens

    def final(self) -> list[int]:
        """The tokens the context must hold: the whole text tokenized at once."""
        return self._cut if self._cut is not None else self.codec.tokenize(self.text)

    def _fitting(self, tokens: list[int]) -> tuple[str, list[int]]:
        """The longest prefix of ``tokens`` that ends on a whole character, and its text."""
        while tokens:
            try:
                return self.codec.detokenize(tokens).decode("utf-8"), tokens
            except UnicodeDecodeError:
                tokens = tokens[:-1]
        return "", []
