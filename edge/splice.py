"""Cloud text on its way into the SLM's context, cut where the answer's room ends.

A :class:`Splice` takes the cloud's text pieces as they arrive and says which
part of each may be shown: all of it while the text's tokens (tokenized on
their own, as plain text) fit the room left, then the longest part that ends
on a token and character boundary. What is shown, counted and kept in the
context is then the same text.
"""

from __future__ import annotations

from edge.local_model import TextCodec

__all__ = ["Splice"]


class Splice:
    """The accepted cloud text of one call; ``full`` once the room is used up."""

    def __init__(self, codec: TextCodec, room: int) -> None:
        self.codec = codec
        self.room = room
        self.text = ""
        self.full = room <= 0
        self._tokens: list[int] | None = None
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
        shown, self.text, self._tokens = kept[len(self.text) :], kept, kept_tokens
        return shown

    def tokens(self) -> list[int]:
        """The accepted text's tokens, as they go into the context."""
        return self._tokens if self._tokens is not None else self.codec.tokenize(self.text)

    def _fitting(self, tokens: list[int]) -> tuple[str, list[int]]:
        """The longest prefix of ``tokens`` that ends on a whole character, and its text."""
        while tokens:
            try:
                return self.codec.detokenize(tokens).decode("utf-8"), tokens
            except UnicodeDecodeError:
                tokens = tokens[:-1]
        return "", []
