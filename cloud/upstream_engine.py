"""The upstream engine: forwards to any OpenAI-compatible server (vLLM, llama.cpp, hosted APIs).

This is the path past one machine: ``relay-cloud`` keeps auth and validation
and hands generation to a bigger server. Requests, errors and stream parsing
are :mod:`edge.openai_compat`'s (the same code as the edge's cloud client):
an upstream error status passes its reason on, a transport failure, timeout or
broken stream is :class:`CloudUnavailable`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx

from cloud.engine import Delta, Generation
from edge.openai_compat import endpoint, error_for_response, request_body, transport_errors
from edge.openai_compat.client import first_model, listed_models
from protocol.errors import CloudUnavailable
from protocol.sse import CompletionStream, StreamMode
from protocol.wire import ChatMessage, Usage

__all__ = ["UpstreamEngine"]


class UpstreamEngine:
    """Serves ``model_id`` by streaming from ``base_url``."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        upstream_model: str | None = None,
        model_id: str | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(timeout=timeout_s, headers=headers)
        self.base_url = base_url.rstrip("/")
        self._upstream_model = upstream_model
        self._model_id = model_id
        self.model_id = model_id or upstream_model or "upstream"

    async def start(self) -> None:
        """Learn the upstream's model when none was named (its first listed one)."""
        if self._upstream_model is not None:
            return
        url = f"{self.base_url}/models"
        with transport_errors(url):
            response = await self._client.get(url)
        hint = "name one with --upstream-model"
        self._upstream_model = first_model(listed_models(response, url, hint=hint), url, hint=hint)
        self.model_id = self._model_id or self._upstream_model

    def complete(self, prompt: str, generation: Generation) -> AsyncIterator[Delta]:
        return self._stream("raw", prompt=prompt, generation=generation)

    def chat(
        self, messages: Sequence[ChatMessage], generation: Generation, *, continue_final: bool
    ) -> AsyncIterator[Delta]:
        return self._stream(
            "chat", messages=messages, generation=generation, continue_final=continue_final
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _stream(
        self,
        mode: StreamMode,
        *,
        generation: Generation,
        prompt: str = "",
        messages: Sequence[ChatMessage] = (),
        continue_final: bool = False,
    ) -> AsyncIterator[Delta]:
        if self._upstream_model is None:
            await self.start()
        sampling = generation.sampling
        body = request_body(
            mode, model=str(self._upstream_model), prompt=prompt, messages=messages,
            max_tokens=generation.max_tokens, temperature=sampling.temperature,
            top_p=sampling.top_p, seed=sampling.seed, stop=generation.stop,
            continue_final=continue_final,
        )  # fmt: skip
        url = endpoint(self.base_url, mode)
        first_byte = [False]
        with transport_errors(url, first_byte=first_byte):
            async with self._client.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    raise error_for_response(response, await response.aread())
                yield Delta()
                tally = CompletionStream(mode)
                async for chunk in response.aiter_bytes():
                    first_byte[0] = True
                    for text in tally.texts(chunk):  # the text before a broken event is kept
                        yield Delta(text=text)
                    if tally.done or generation.expired:
                        break
                if not (tally.complete or generation.expired):
                    raise CloudUnavailable(f"the stream from {url} ended before it was complete")
        usage = tally.usage or Usage.of(0, tally.pieces)
        finish = "length" if generation.expired and not tally.done else tally.finish_reason
        yield Delta(finish_reason=finish, usage=usage)
