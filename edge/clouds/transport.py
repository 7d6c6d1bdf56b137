"""Streaming one cloud reply over HTTP: deadlines, retries before the first byte, a watchdog.

Every API family sends one POST whose answer is a stream of server-sent
events; a :class:`Tally` of that family reads the bytes into text pieces and,
at the end, the finish reason and usage. :func:`stream_reply` is the one place
that sends such a request: outages before the first byte (unreachable, 429,
5xx) are retried with backoff or the server's ``Retry-After``, nothing is
retried once the stream has begun, and the whole call ends by its deadline
(a watchdog shuts the socket of a stalled stream down then).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from typing import Protocol

import httpx

from edge.openai_compat import error_for_response, transport_errors
from protocol.errors import CloudUnavailable
from protocol.wire import FinishReason

__all__ = ["Tally", "stream_reply"]

_MAX_BACKOFF_S = 8.0


class Tally(Protocol):
    """Reads one family's streamed reply: text as it arrives, then how it ended and its usage.

    Token counts are the provider's: ``prompt_tokens`` is the whole prompt
    (cached parts included), ``completion_tokens`` includes hidden reasoning.
    """

    done: bool
    """The server sent its end-of-stream marker: stop reading."""

    def texts(self, chunk: bytes) -> Iterator[str]:
        """Add raw bytes; yield the reply text they complete (text before a broken event first)."""
        ...

    @property
    def complete(self) -> bool:
        """Whether the server marked the end (a stream without it was cut)."""
        ...

    @property
    def finish_reason(self) -> FinishReason: ...

    @property
    def note(self) -> str:
        """Why the finish reason was read as it was, when the server left it unclear."""
        ...

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...

    @property
    def cached_tokens(self) -> int: ...

    @property
    def cache_write_tokens(self) -> int: ...


def stream_reply(
    client: httpx.Client,
    url: str,
    payload: bytes,
    new_tally: Callable[[], Tally],
    *,
    headers: Mapping[str, str] | None = None,
    total_timeout_s: float,
    retries: int = 0,
) -> Iterator[str | Tally]:
    """Yield the text pieces of one streamed reply to ``payload`` (a JSON body), then its tally.

    Outages before the first byte are retried up to ``retries`` times with
    exponential backoff (or the server's ``Retry-After``); nothing is retried once
    the stream has begun, nor when the wait would reach past the deadline (the
    outage is reported at once). The whole call, retries included, ends after
    ``total_timeout_s``; the error then says what was happening when time ran out.
    """
    deadline = time.monotonic() + total_timeout_s
    attempt = 0
    while True:
        first_byte = [False]
        try:
            with transport_errors(url, first_byte=first_byte):
                yield from _stream_once(client, url, payload, headers, new_tally, first_byte,
                                        deadline)  # fmt: skip
                return
        except CloudUnavailable as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CloudUnavailable(
                    f"the cloud call took longer than {total_timeout_s:g} s: {exc.message}",
                    retry_after_s=exc.retry_after_s,
                ) from exc
            wait = exc.retry_after_s or 0.25 * 2 ** (attempt + 1)
            if first_byte[0] or attempt >= retries or min(wait, _MAX_BACKOFF_S) >= left:
                raise  # a retry could not start before the deadline: say why, now
            attempt += 1
            time.sleep(min(wait, _MAX_BACKOFF_S))


def _stream_once(
    client: httpx.Client,
    url: str,
    payload: bytes,
    headers: Mapping[str, str] | None,
    new_tally: Callable[[], Tally],
    first_byte: list[bool],
    deadline: float,
) -> Iterator[str | Tally]:
    timeout = _within(client.timeout, deadline)
    headers = {"Content-Type": "application/json", **(headers or {})}
    with (
        client.stream("POST", url, content=payload, headers=headers, timeout=timeout) as response,
        _Watchdog(deadline, response) as watchdog,
    ):
        if response.status_code >= 400:
            raise error_for_response(response, response.read())
        tally = new_tally()
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
