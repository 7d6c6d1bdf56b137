"""The emulators' model: continues the texts it knows, word piece by word piece.

A partial answer that is the start of a known text is continued with the rest
of that text; any other partial answer with :data:`GOES_ON`; a conversation
with no partial answer (or a prefill it was not allowed to see) is answered
anew with :data:`NEW_TURN`. A chat model asked to continue can be made to
repeat the last words of the answer (``echo_words``) or to leave out the space
before its first word (``leading_space=False``), as chat models do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge.clouds.probe import PROBE_ANSWER

__all__ = [
    "GOES_ON",
    "KNOWN",
    "NEW_TURN",
    "Script",
    "cut_at_stop",
    "pieces",
    "shared_prefix",
    "sse",
    "text_of",
    "token_count",
]

COUNT = ", ".join(str(n) for n in range(1, 21)) + "."
SKY = (
    "The sky is blue because sunlight is scattered by the molecules of the air, and blue "
    "light is scattered the most."
)
CIEL = (
    "Le ciel est bleu : la lumière du soleil est diffusée par l'air. 天空是蓝色的\uff0c因为散射。"
)
KNOWN = (COUNT, SKY, CIEL)
assert COUNT.startswith(PROBE_ANSWER)
GOES_ON = " and so the answer goes on, one word after another."
NEW_TURN = "Sure! Here is a fresh answer: 1, 2, 3."


def pieces(text: str) -> list[str]:
    """``text`` as a model streams it: pieces of up to four characters after any spaces."""
    return re.findall(r"\s*\S{1,4}|\s+", text)


def token_count(text: str) -> int:
    """What the emulators bill for ``text``: words and punctuation marks."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def text_of(message: dict[str, Any]) -> str:
    """A chat message's text, whether its content is a string or a list of text parts."""
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def cut_at_stop(text: str, stop: str | list[str] | None) -> str:
    """``text`` up to its first stop sequence (the sequence left out)."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    found = [i for s in stops if s and (i := text.find(s)) >= 0]
    return text[: min(found)] if found else text


def shared_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    """How many leading items ``a`` and ``b`` share (a prompt cache's hit)."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def sse(data: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``data`` as JSON."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@dataclass
class Script:
    """How the emulated model behaves; see the module docstring."""

    texts: Sequence[str] = KNOWN
    echo_words: int = 0
    leading_space: bool = True

    def after(self, partial: str) -> str:
        """What follows ``partial``: the rest of a known text, else :data:`GOES_ON`."""
        if not partial.strip():
            return NEW_TURN
        for text in self.texts:
            if text.startswith(partial):
                return text[len(partial) :]
        return GOES_ON

    def asked_to_continue(self, partial: str) -> str:
        """A chat model's reply to "continue your cut-off message"."""
        rest = self.after(partial)
        if self.echo_words:
            gap = " " if partial[-1:].isspace() and not rest[:1].isspace() else ""
            rest = " ".join(partial.split()[-self.echo_words :]) + gap + rest
        return rest if self.leading_space else rest.lstrip()
