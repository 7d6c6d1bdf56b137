"""``chat``: any chat API without prefill (OpenAI, Gemini's OpenAI endpoint, Groq, OpenRouter,
LiteLLM proxies).

The conversation is sent, then the partial answer as the assistant's message
and a short instruction to continue it from exactly where it stops
(:data:`CONTINUE_INSTRUCTION`); the seam trims words the reply repeats and puts
a missing space back. Only documented OpenAI fields are sent: at most 4
``stop`` strings, ``reasoning_effort`` as low as the model accepts (``none``
first; a model that refuses it is taught the next one by its 400), and a
``prompt_cache_key`` per conversation so that its calls land on one cache. A
field a model refuses (``max_tokens`` on reasoning models, a non-default
``temperature``, ``stop``) is learned from the 400 and left out from then on
(:class:`edge.clouds.apis.quirks.Quirks`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from edge.clouds.apis.base import (
    CONTINUE_INSTRUCTION,
    ApiCall,
    CloudApi,
    Conversation,
    OpenAIStyle,
    Target,
    chat_body,
)
from edge.clouds.seam import Seam
from edge.core.cloud import CloudRequest

__all__ = ["Chat", "cache_key", "instructed"]

MAX_STOPS = 4
"""OpenAI takes at most four stop sequences."""


class Chat(OpenAIStyle):
    name: CloudApi = "chat"

    def call(self, request: CloudRequest, target: Target) -> ApiCall:
        talk = Conversation.of(request.messages)
        body = chat_body(request, target, instructed(talk), max_stops=MAX_STOPS,
                         reasoning_effort="none", prompt_cache_key=cache_key(talk))  # fmt: skip
        return self.openai_call(target, "chat", body, lambda: Seam.after_answer(talk.partial))


def instructed(talk: Conversation, *, system_role: bool = True) -> list[dict[str, Any]]:
    """The conversation, then the partial answer and the instruction to continue it."""
    messages = talk.openai_messages(system_role=system_role)
    if talk.partial.strip():
        messages.append({"role": "assistant", "content": talk.partial})
        messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})
    return messages


def cache_key(talk: Conversation) -> str:
    """One key per conversation: its system text and first turn, hashed."""
    first = talk.turns[0].content if talk.turns else ""
    return hashlib.sha256(f"{talk.system}\x00{first}".encode()).hexdigest()[:32]
