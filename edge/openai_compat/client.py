"""Requests to an OpenAI-compatible server, over httpx: bodies, URLs and errors.

:func:`request_body` builds a streamed ``/completions`` or ``/chat/completions``
request, :func:`transport_errors` maps httpx's errors once,
:func:`error_for_response` reads an error answer, and :func:`listed_models` and
:func:`first_model` read a ``/models`` answer. Two transports use them: the
edge's cloud client (:mod:`edge.clouds.transport`, sync, with retries before
the first byte) and the async upstream engine of ``relay-cloud``.

Every failure is a :mod:`protocol.errors` error that names the server:
unreachable, no answer within the first-token timeout, a stall mid-stream, a
cut stream, a 429/5xx (all :class:`CloudUnavailable`), or a refused request
(:class:`UpstreamError` with the server's own reason).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from protocol.errors import CloudError, CloudUnavailable
from protocol.sse import StreamMode, error_for_status
from protocol.wire import ChatMessage

__all__ = [
    "endpoint",
    "error_for_response",
    "first_model",
    "listed_models",
    "request_body",
    "transport_errors",
]


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


def listed_models(response: httpx.Response, url: str, *, hint: str) -> list[Any]:
    """The entries of the model list ``url`` answered with (``{"data": [{"id": ...}]}``).

    An error answer raises its error; an answer of another shape says that ``url``
    lists no models, and ``hint`` says what to do instead.
    """
    if response.status_code >= 400:
        raise error_for_response(response, response.content)
    try:
        return list(response.json()["data"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CloudUnavailable(f"{url} lists no models; {hint}") from exc


def first_model(models: Sequence[Any], where: str, *, hint: str) -> str:
    """The id of the first of ``models`` (listed by ``where``); ``hint`` says what to do when
    there is none."""
    try:
        return str(models[0]["id"])
    except (KeyError, IndexError, TypeError) as exc:
        raise CloudUnavailable(f"{where} lists no models; {hint}") from exc
