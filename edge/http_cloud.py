"""The cloud client over HTTP: streams from any OpenAI-compatible endpoint.

Raw mode sends the context as a prompt to ``/completions``; chat mode sends
messages ending with the partial answer to ``/chat/completions`` (with
``continue_final_message``). Timeouts: connect, first byte (and any stall
mid-stream), and the whole call. Retries happen before the first byte only
(see :func:`edge.openai_compat.stream_completion`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

import httpx

from edge.client import CloudEnd, CloudItem, CloudRequest, CloudText, ContextMode
from edge.openai_compat import (
    endpoint,
    error_for_response,
    request_body,
    stream_completion,
    transport_errors,
)
from protocol.errors import CloudUnavailable

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
        timeout = httpx.Timeout(
            connect=connect_timeout_s, read=first_token_timeout_s, write=10.0, pool=10.0
        )
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self._closer = weakref.finalize(self, self._client.close)  # pooled sockets close with us
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.mode = mode
        self.temperature = temperature
        self.stop = stop
        self.total_timeout_s = total_timeout_s
        self.retries = retries

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        body = request_body(
            self.mode,
            model=self.model or self._first_model(),
            prompt=request.prompt,
            messages=request.messages,
            max_tokens=request.max_tokens,
            temperature=self.temperature,
            seed=request.seed,
            stop=tuple(dict.fromkeys([*request.stop, *self.stop])),
        )
        tally = None
        for item in stream_completion(
            self._client,
            endpoint(self.base_url, self.mode),
            body,
            self.mode,
            total_timeout_s=self.total_timeout_s,
            retries=self.retries,
        ):
            if isinstance(item, str):
                yield CloudText(item)
            else:
                tally = item
        assert tally is not None
        yield CloudEnd(
            outcome="ok",
            finish_reason=tally.finish_reason,
            completion_tokens=tally.completion_tokens,
            prompt_tokens=tally.usage.prompt_tokens if tally.usage else 0,
            reason=tally.note,
        )

    def _first_model(self) -> str:
        url = f"{self.base_url}/models"
        with transport_errors(url):
            response = self._client.get(url)
        if response.status_code >= 400:
            raise error_for_response(response, response.content)
        try:
            self.model = str(response.json()["data"][0]["id"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise CloudUnavailable(f"{url} lists no models; set the cloud model") from exc
        return self.model

    def close(self) -> None:
        self._closer()
