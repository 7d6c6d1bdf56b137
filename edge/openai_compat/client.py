"""Streaming completions from an OpenAI-compatible server, over httpx.

The one stream adapter of relayllm: :func:`request_body` builds the request,
:func:`transport_errors` maps httpx's errors once, :func:`error_for_response`
reads an error answer, and :class:`protocol.sse.CompletionStream` reads the
bytes. Two thin transports use them: :func:`stream_completion` (sync, with
retries before the first byte; the edge's cloud client) and the async
upstream engine of ``relay-cloud``.

Every failure is a :mod:`protocol.errors` error that names the server:
unreachable, no answer within the first-token timeout, a stall mid-stream, a
cut stream, a 429/5xx (all :class:`CloudUnavailable`), or a refused request
(:class:`UpstreamError` with the server's own reason).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import httpx

from protocol.errors import CloudError, CloudUnavailable
from protocol.sse import CompletionStream, StreamMode, error_for_status
from protocol.wire import ChatMessage

__all__ = [
    "error_for_response",
    "request_body",
    "stream_completion",
    "transport_errors",
]

_MAX_BACKOFF_S = 8.0


def request_body(
    mode: StreamMode,
    *,
    model: str,
    prompt: str = "",
    messages: Sequence[ChatMessage] = (),
    max_tokens: int | None,
    temperature: float,
    top_p: float | None = None,
    seed: int | None = None,
    stop: Sequence[str] = (),
    continue_final: bool = True,
) -> dict[str, Any]:
    """A streamed ``/completions`` (raw) or ``/chat/completions`` (chat) request body."""
    body: dict[str, Any] = {"model": model, "temperature": temperature, "stream": True,
                            "stream_options": {"include_usage": True}}  # fmt: skip
    if mode == "raw":
        body["prompt"] = prompt
    else:
        body["messages"] = [m.model_dump() for m in messages]
        if continue_final:
            body |= {"continue_final_message": True, "add_generation_prompt": False}
    optional = {"max_tokens": max_tokens, "top_p": top_p, "seed": seed, "stop": list(stop)[:16]}
    return body | {key: value for key, value in optional.items() if value not in (None, [])}


def endpoint(base_url: str, mode: StreamMode) -> str:
    """The URL of the completions route for ``mode`` under ``base_url`` (``…/v1``)."""
    return base_url.rstrip("/") + ("/completions" if mode == "raw" else "/chat/completions")


@contextmanager
def transport_errors(url: str, *, first_byte: list[bool] | None = None) -> Iterator[None]:
    """Map httpx's errors to :class:`CloudUnavailable`; ``first_byte[0]`` tells a stall apart."""
    try:
        yield
    except httpx.ConnectTimeout as exc:
        raise CloudUnavailable(f"cannot reach {url}: connection timed out") from exc
    except httpx.ConnectError as exc:
        raise CloudUnavailable(f"cannot reach {url}: {exc or 'connection failed'}") from exc
    except httpx.ReadTimeout as exc:
        if first_byte and first_byte[0]:
            raise CloudUnavailable(f"the stream from {url} stalled") from exc
        raise CloudUnavailable(f"{url} did not answer in time") from exc
    except httpx.TimeoutException as exc:
        raise CloudUnavailable(f"{url} timed out ({type(exc).__name__})") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise CloudUnavailable(f"the connection to {url} was cut: {exc or 'closed'}") from exc
    except httpx.HTTPError as exc:
        raise CloudUnavailable(f"{url} failed: {exc}") from exc


def error_for_response(response: httpx.Response, body: bytes) -> CloudError:
    """The error for an HTTP error answer, with the server's reason and ``Retry-After``."""
    return error_for_status(
        response.status_code,
        body,
        str(response.request.url),
        retry_after=response.headers.get("retry-after"),
    )


def stream_completion(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    mode: StreamMode,
    *,
    total_timeout_s: float,
    retries: int = 0,
) -> Iterator[str | CompletionStream]:
    """Yield the text pieces of one streamed completion, then its tally.

    Outages before the first byte (unreachable, 429, 5xx) are retried up to
    ``retries`` times with exponential backoff (or the server's
    ``Retry-After``); nothing is retried once the stream has begun, nor when the
    wait would reach past the deadline (the outage is reported at once). The
    whole call, retries included, ends after ``total_timeout_s``; the error then
    says what was happening when time ran out.
    """
    deadline = time.monotonic() + total_timeout_s
    attempt = 0
    while True:
        first_byte = [False]
        try:
            with transport_errors(url, first_byte=first_byte):
                yield from _stream_once(client, url, body, mode, first_byte, deadline)
                return
        except CloudUnavailable as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CloudUnavailable(
                    f"the cloud call took longer than {total_timeout_s:g} s: {exc.message}"
                ) from exc
            wait = exc.retry_after_s or 0.25 * 2 ** (attempt + 1)
            if first_byte[0] or attempt >= retries or min(wait, _MAX_BACKOFF_S) >= left:
                raise  # a retry could not start before the deadline: say why, now
            attempt += 1
            time.sleep(min(wait, _MAX_BACKOFF_S))


def _stream_once(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    mode: StreamMode,
    first_byte: list[bool],
    deadline: float,
) -> Iterator[str | CompletionStream]:
    with (
        client.stream(
            "POST", url, json=body, timeout=_within(client.timeout, deadline)
        ) as response,
        _Watchdog(deadline, response) as watchdog,
    ):
        if response.status_code >= 400:
            raise error_for_response(response, response.read())
        tally = CompletionStream(mode)
        try:
            for chunk in response.iter_bytes():
                first_byte[0] = True
                yield from tally.texts(chunk)  # the text before a broken event is kept
                if tally.done:
                    break
                if time.monotonic() > deadline:
                    raise CloudUnavailable(f"the stream from {url} arrived too slowly")
        except httpx.TransportError as exc:
            if watchdog.fired:
                raise CloudUnavailable(f"the stream from {url} arrived too slowly") from exc
            raise
        if not tally.complete:
            raise CloudUnavailable(f"the stream from {url} ended before it was complete")
        yield tally


class _Watchdog:
    """Shuts the response's socket down at ``deadline``: a read waiting on a stalled stream
    ends then, not a whole read timeout later. ``fired`` says whether it did."""

    def __init__(self, deadline: float, response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        self._socket = stream.get_extra_info("socket") if stream is not None else None
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._cut)
        self._timer.daemon = True
        self.fired = False

    def _cut(self) -> None:
        self.fired = True
        with suppress(OSError):  # already closed
            self._socket.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        if self._socket is not None:
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _within(timeout: httpx.Timeout, deadline: float) -> httpx.Timeout:
    """``timeout`` with every phase cut to the time left before ``deadline``."""
    left = max(0.001, deadline - time.monotonic())

    def cut(value: float | None) -> float:
        return left if value is None else min(value, left)

    return httpx.Timeout(
        connect=cut(timeout.connect), read=cut(timeout.read),
        write=cut(timeout.write), pool=cut(timeout.pool),
    )  # fmt: skip
