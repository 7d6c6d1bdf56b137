"""The cloud client over HTTP: streams from any OpenAI-compatible endpoint.

SSE parsing, connection pooling and retries with backoff (before the response
starts, never mid-stream) come from the ``openai`` SDK. Its errors, and the
total-time limit, are mapped once, here, to :class:`CloudUnavailable`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai

from edge.cloud import CloudEnd, CloudItem, CloudRequest, CloudText, ContextMode
from protocol.errors import CloudUnavailable, UpstreamError

__all__ = ["HttpCloud"]


class HttpCloud:
    """Calls ``base_url`` in raw (``/completions``) or chat (``/chat/completions``) mode."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        mode: ContextMode = "raw",
        temperature: float = 0.7,
        stop: tuple[str, ...] = (),
        connect_timeout_s: float = 3.0,
        first_token_timeout_s: float = 20.0,
        total_timeout_s: float = 60.0,
        retries: int = 2,
    ) -> None:
        timeout = openai.Timeout(
            connect=connect_timeout_s, read=first_token_timeout_s, write=10.0, pool=10.0
        )
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "none", timeout=timeout, max_retries=retries
        )
        self.base_url = base_url
        self.model = model
        self.mode = mode
        self.temperature = temperature
        self.stop = stop
        self.total_timeout_s = total_timeout_s

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        deadline = time.monotonic() + self.total_timeout_s
        try:
            stream = self._start(request)
            finish, usage, pieces = None, None, 0
            with stream:
                for chunk in stream:
                    usage = chunk.usage or usage
                    for choice in chunk.choices:
                        text = choice.text if self.mode == "raw" else choice.delta.content
                        if text:
                            pieces += 1
                            yield CloudText(text)
                        finish = choice.finish_reason or finish
                    if time.monotonic() > deadline:
                        raise CloudUnavailable(
                            f"the cloud call took longer than {self.total_timeout_s:g} s"
                        )
        except openai.APIStatusError as exc:
            status = exc.status_code
            raise UpstreamError(f"cloud answered {status}", status_code=status) from exc
        except openai.APIError as exc:  # connection refused, timeouts, broken streams
            raise CloudUnavailable(f"cloud unreachable: {exc}") from exc
        details = getattr(usage, "prompt_tokens_details", None)
        yield CloudEnd(
            outcome="ok",
            finish_reason="stop" if finish in (None, "stop") else "length",
            completion_tokens=usage.completion_tokens if usage else pieces,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            cached_tokens=(details.cached_tokens or 0) if details else 0,
        )

    def _start(self, request: CloudRequest) -> Any:
        model = self.model or self._first_model()
        common: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens,
            "temperature": self.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.stop:
            common["stop"] = list(self.stop)
        if self.mode == "raw":
            return self._client.completions.create(prompt=request.prompt, **common)
        return self._client.chat.completions.create(
            messages=[m.model_dump() for m in request.messages],  # type: ignore[misc]
            extra_body={"continue_final_message": True, "add_generation_prompt": False},
            **common,
        )

    def _first_model(self) -> str:
        models = self._client.models.list().data
        if not models:
            raise CloudUnavailable("the cloud endpoint lists no models")
        self.model = models[0].id
        return self.model

    def close(self) -> None:
        self._client.close()
