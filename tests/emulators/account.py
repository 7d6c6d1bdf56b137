"""One emulated account of a hosted API: what every emulator keeps the same way.

Its key, its models, its script, what it was sent, and the rate limit a test sets:
the next ``rate_limited`` requests are refused with a 429 whose ``Retry-After`` is
``retry_after_s``. Each emulator answers in its own provider's words; this holds only
the state they share. :class:`ChatCompletionsAccount` adds what the OpenAI-style
Chat Completions APIs (OpenAI, DeepSeek, Mistral) share: a ``Bearer`` key, a model
list, earlier prompts for a prompt cache, and the chunks of a stream.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.emulators.scripted import Script, shared_prefix, sse

__all__ = ["Account", "ChatCompletionsAccount", "chunk_stream"]

Chunk = Callable[[list[dict[str, Any]]], dict[str, Any]]
"""A stream chunk (``chat.completion.chunk``) holding the given choices."""


class Account:
    """One emulated account: its key, models, script, and what it was sent (``requests``)."""

    def __init__(self, *, key: str, script: Script | None, models: tuple[str, ...]) -> None:
        self.key = key
        self.script = script or Script()
        self.models = models
        self.requests: list[dict[str, Any]] = []
        self.rate_limited = 0  # the next this many requests get a 429
        self.retry_after_s = 1.0

    def _rate_limit(self) -> dict[str, str] | None:
        """The 429's ``Retry-After`` header when this request is one of the next
        ``rate_limited`` (it counts one off), else None."""
        if self.rate_limited <= 0:
            return None
        self.rate_limited -= 1
        return {"retry-after": f"{self.retry_after_s:g}"}


class ChatCompletionsAccount(Account, ABC):
    """An account of an OpenAI-style Chat Completions API, which remembers its prompts."""

    def __init__(self, *, key: str, script: Script | None, models: tuple[str, ...]) -> None:
        super().__init__(key=key, script=script, models=models)
        self._prompts: list[list[str]] = []

    @abstractmethod
    def _auth(self, request: Request) -> Response | None:
        """The provider's 401 unless ``request`` carries the key as a ``Bearer`` token."""

    def _app(self, card: Callable[[str], dict[str, Any]], *model_paths: str) -> FastAPI:
        """An app whose ``GET`` on each of ``model_paths`` lists the account's models, each
        as ``card`` writes it, once the key is right."""

        async def models(request: Request) -> Response:
            if (refused := self._auth(request)) is not None:
                return refused
            return JSONResponse({"object": "list", "data": [card(m) for m in self.models]})

        app = FastAPI()
        for path in model_paths:
            app.add_api_route(path, models, methods=["GET"])
        return app

    def _shared_words(self, texts: Iterable[str]) -> tuple[int, int]:
        """How many words a prompt of ``texts`` has, and the most it shares from its start
        with any earlier prompt; the prompt is remembered."""
        words = [w for text in texts for w in text.split()]
        shared = max((shared_prefix(words, earlier) for earlier in self._prompts), default=0)
        self._prompts.append(words)
        return len(words), shared


async def chunk_stream(
    chunk: Chunk,
    deltas: Iterable[dict[str, Any]],
    last: dict[str, Any],
    finish: str,
    usage: dict[str, Any] | None,
) -> AsyncIterator[bytes]:
    """A stream as OpenAI and DeepSeek send it: the role, each of ``deltas``, ``last`` with
    the ``finish_reason``, then (when asked for) a chunk with ``choices: []`` and the
    usage, then ``data: [DONE]``."""

    def delta(content: dict[str, Any], reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": content, "logprobs": None, "finish_reason": reason}
        return sse(chunk([choice]) | {"usage": None})

    yield delta({"role": "assistant", "content": ""})
    for content in deltas:
        yield delta(content)
    yield delta(last, finish)
    if usage is not None:
        yield sse(chunk([]) | {"usage": usage})
    yield b"data: [DONE]\n\n"
