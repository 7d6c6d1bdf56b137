"""The upstream engine: forwards to any OpenAI-compatible server (vLLM, llama.cpp, hosted APIs).

This is the path past one machine: ``relay-cloud`` keeps auth and validation
and hands generation to a bigger server. Errors are mapped once, here: an
upstream error status becomes :class:`UpstreamError` with that status, and a
transport failure or timeout becomes :class:`CloudUnavailable`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import openai

from cloud.engine import Delta, Generation
from protocol.errors import CloudUnavailable, UpstreamError
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
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "unused",
            timeout=timeout_s,
            max_retries=0,
        )
        self._upstream_model = upstream_model
        self._model_id = model_id
        self.model_id = model_id or upstream_model or "upstream"

    async def start(self) -> None:
        """Learn the upstream's model when none was named (its first listed one)."""
        if self._upstream_model is not None:
            return
        try:
            models = await self._client.models.list()
        except openai.APIError as exc:
            raise CloudUnavailable(
                f"could not list the upstream's models ({exc}); name one with --upstream-model"
            ) from exc
        if not models.data:
            raise CloudUnavailable("the upstream server lists no models; use --upstream-model")
        self._upstream_model = models.data[0].id
        self.model_id = self._model_id or self._upstream_model

    def complete(self, prompt: str, generation: Generation) -> AsyncIterator[Delta]:
        async def start(model: str) -> Any:
            return await self._client.completions.create(
                model=model, prompt=prompt, **_sampling_args(generation)
            )

        return self._stream(start, lambda choice: choice.text)

    def chat(
        self, messages: Sequence[ChatMessage], generation: Generation, *, continue_final: bool
    ) -> AsyncIterator[Delta]:
        extra = {"continue_final_message": True, "add_generation_prompt": False}

        async def start(model: str) -> Any:
            return await self._client.chat.completions.create(
                model=model,
                messages=[m.model_dump() for m in messages],  # type: ignore[misc]
                extra_body=extra if continue_final else None,
                **_sampling_args(generation),
            )

        return self._stream(start, lambda choice: choice.delta.content)

    async def aclose(self) -> None:
        await self._client.close()

    async def _model(self) -> str:
        if self._upstream_model is None:
            await self.start()
        assert self._upstream_model is not None
        return self._upstream_model

    async def _stream(
        self, start: Callable[[str], Awaitable[Any]], text_of: Callable[[Any], str | None]
    ) -> AsyncIterator[Delta]:
        try:
            stream = await start(await self._model())
            yield Delta()
            finish, usage, pieces = None, None, 0
            async with stream:
                async for chunk in stream:
                    usage = chunk.usage or usage
                    for choice in chunk.choices:
                        text = text_of(choice)
                        if text:
                            pieces += 1
                            yield Delta(text=text)
                        finish = choice.finish_reason or finish
        except openai.APIStatusError as exc:
            raise UpstreamError(_message(exc), status_code=exc.status_code) from exc
        except (openai.APIConnectionError, openai.APIError) as exc:
            raise CloudUnavailable(f"upstream server failed: {exc}") from exc
        yield Delta(finish_reason=_finish(finish), usage=_usage(usage, pieces))


def _sampling_args(generation: Generation) -> dict[str, Any]:
    args: dict[str, Any] = {
        "temperature": generation.sampling.temperature,
        "top_p": generation.sampling.top_p,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if generation.max_tokens is not None:
        args["max_tokens"] = generation.max_tokens
    if generation.sampling.seed is not None:
        args["seed"] = generation.sampling.seed
    if generation.stop:
        args["stop"] = list(generation.stop)
    return args


def _finish(reason: str | None) -> Any:
    return "stop" if reason in (None, "stop", "eos") else "length"


def _usage(usage: Any, pieces: int) -> Usage:
    """The upstream's usage; servers that omit it get one token per streamed piece."""
    if usage is None:
        return Usage.of(0, pieces)
    details = getattr(usage, "prompt_tokens_details", None)
    cached = (details.cached_tokens or 0) if details is not None else 0
    return Usage.of(usage.prompt_tokens, usage.completion_tokens, cached)


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return f"upstream: {error['message']}"
    return f"upstream answered {exc.status_code}"
