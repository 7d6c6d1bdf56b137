"""What a GGUF file says about relaying: metadata keys under ``relayllm.``.

``relay-train export`` writes them into the SLM it trained; the edge reads them
to tell an SLM trained to write ``<call>N</call>`` from one that never saw the
grammar (``policy = "auto"``: ``learned`` for the first, ``entropy`` otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from protocol.calls import CALL_CLOSE, CALL_OPEN

__all__ = ["CALL_GRAMMAR", "GRAMMAR_VERSION", "PREFIX", "TrainedCard", "trained_card"]

PREFIX = "relayllm."
CALL_GRAMMAR = f"{CALL_OPEN}N{CALL_CLOSE}"
GRAMMAR_VERSION = 1
"""Raised when the grammar changes in a way an SLM trained on the old one would get wrong."""


@dataclass(frozen=True)
class TrainedCard:
    """How an SLM was trained to call: the grammar, the prompt it saw, where it came from."""

    call_grammar: str = CALL_GRAMMAR
    grammar_version: int = GRAMMAR_VERSION
    chat_template: str = ""
    system_prompt: str = ""
    base_model: str = ""
    trained_on: str = ""  # ISO date (UTC)

    def metadata(self) -> dict[str, str | int]:
        """The GGUF key-value pairs of this card."""
        return {f"{PREFIX}{name}": value for name, value in vars(self).items()}


def trained_card(metadata: Mapping[str, str]) -> TrainedCard | None:
    """The card of a GGUF's metadata, or ``None`` when it was not trained to call (or was
    trained on a grammar version this release does not speak)."""
    grammar = metadata.get(f"{PREFIX}call_grammar")
    try:
        version = int(metadata.get(f"{PREFIX}grammar_version", "0"))
    except ValueError:
        return None
    if grammar != CALL_GRAMMAR or version != GRAMMAR_VERSION:
        return None
    fields = ("chat_template", "system_prompt", "base_model", "trained_on")
    return TrainedCard(**{name: str(metadata.get(f"{PREFIX}{name}", "")) for name in fields})
