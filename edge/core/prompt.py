"""Prompts for the relay: what the small model reads, and what may leave the device.

The relay loop works on tokens only. A :class:`ChatFormat` (llama.cpp's in
:mod:`edge.llama.chat`, transformers' in :mod:`training.hf_text`) renders and
tokenizes messages; :func:`build_prompt` turns a conversation into a
:class:`RelayPrompt`:

* ``tokens``: the SLM's prompt, earlier answers with their commands as written;
* ``cloud_text`` / ``cloud_messages``: the same conversation with every command
  in every message replaced (:func:`protocol.calls.cloud_view`), for raw and
  chat cloud calls. A default system prompt the template adds on its own
  (SmolLM2's "You are a helpful AI assistant named SmolLM…") is the SLM's, not
  the user's: it never leaves the device (the cloud's text is rendered with an
  empty system message instead);
* ``stops``: the template's turn markers, so a cloud continuation never runs
  into a new turn.

A conversation that no longer fits loses its oldest turns (system messages are
kept) and says how many messages it dropped; a prompt that cannot fit even
alone is a :class:`ContextOverflow` naming the numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from protocol.calls import cloud_view
from protocol.errors import ContextOverflow
from protocol.wire import ChatMessage

__all__ = ["ChatFormat", "RelayPrompt", "build_prompt"]

Message = Mapping[str, str]


class ChatFormat(Protocol):
    """A model's chat template and tokenizer."""

    def render(self, messages: Sequence[Message], *, continue_final: bool = False) -> str:
        """The prompt text (generation prompt added unless ``continue_final``)."""
        ...

    def encode(self, prompt: str) -> list[int]:
        """Tokens of rendered prompt text (special tokens parsed, BOS as the model wants)."""
        ...

    def markers(self) -> tuple[str, ...]:
        """Texts that mark a turn boundary in this template."""
        ...


@dataclass(frozen=True)
class RelayPrompt:
    """One answer's prompt: for the SLM (tokens) and for the cloud (commands replaced)."""

    tokens: tuple[int, ...]
    cloud_text: str
    cloud_messages: tuple[ChatMessage, ...]
    stops: tuple[str, ...] = ()
    dropped: int = 0
    continues: bool = False


def build_prompt(
    chat: ChatFormat,
    messages: Sequence[Message],
    *,
    n_ctx: int,
    reserve: int = 1,
    continue_final: bool = False,
) -> RelayPrompt:
    """The prompt for ``messages``, leaving at least ``reserve`` tokens for the answer.

    With ``continue_final`` (and a final assistant message) the answer continues
    that message instead of starting a new turn.
    """
    continue_final = continue_final and messages[-1:] != [] and messages[-1]["role"] == "assistant"
    if not messages:
        raise ValueError("a prompt needs at least one message")
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = list(messages[len(system) :])
    dropped = 0
    while True:
        kept = [*system, *turns]
        tokens = chat.encode(chat.render(kept, continue_final=continue_final))
        if len(tokens) + reserve <= n_ctx:
            break
        if len(turns) <= 1:
            raise ContextOverflow(len(tokens), n_ctx, reserve=reserve)
        cut = 1
        while cut < len(turns) - 1 and turns[cut]["role"] != "user":
            cut += 1
        turns, dropped = turns[cut:], dropped + cut
    cleaned = [{"role": m["role"], "content": cloud_view(m["content"])} for m in kept]
    rendered = cleaned
    if not system and _adds_system_prompt(chat):
        rendered = [{"role": "system", "content": ""}, *cleaned]
    return RelayPrompt(
        tokens=tuple(tokens),
        cloud_text=chat.render(rendered, continue_final=continue_final),
        cloud_messages=tuple(ChatMessage.model_validate(m) for m in cleaned),
        stops=chat.markers(),
        dropped=dropped,
        continues=continue_final,
    )


def _adds_system_prompt(chat: ChatFormat) -> bool:
    """Whether the template writes a system prompt of its own when the conversation has none:
    its rendering without one is then longer than with an empty one."""
    user = {"role": "user", "content": "?"}
    alone = chat.render([user])
    return len(alone) > len(chat.render([{"role": "system", "content": ""}, user]))
