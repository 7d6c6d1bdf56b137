"""Reading OpenAI-style streams: server-sent events in, text pieces and a tally out.

This is the one place that understands a streamed completion, whatever server
sent it and whichever HTTP client read it: feed raw bytes to a
:class:`CompletionStream` as they arrive, take the text pieces it returns, and
read the finish reason and usage from it at the end. A chunk that is not valid
JSON, an error event in the stream, or a finish reason we do not know are
reported, never guessed at:

* invalid JSON or an ``{"error": ...}`` event raises :class:`CloudUnavailable`
  (the stream is broken; what arrived before it stays valid);
* a missing finish reason, or one other than ``stop``/``length``, is read as
  ``length`` (hand back to the small model) and :attr:`CompletionStream.note`
  says so;
* a stream that ends with neither ``[DONE]`` nor a finish reason is not
  :attr:`CompletionStream.complete`: its reader treats it as cut.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

from protocol.errors import CloudError, CloudUnavailable, UpstreamError
from protocol.wire import FinishReason, Usage

__all__ = ["CompletionStream", "SSEDecoder", "StreamMode", "error_for_status"]

StreamMode = Literal["raw", "chat"]


class SSEDecoder:
    """Splits a byte stream into the ``data`` payloads of its events."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add bytes; return the payloads of the events they complete."""
        self._buffer += chunk
        events: list[bytes] = []
        while (end := self._buffer.find(b"\n")) != -1:
            line = self._buffer[:end].rstrip(b"\r")
            self._buffer = self._buffer[end + 1 :]
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
        return events


class CompletionStream:
    """The tally of one streamed completion (``raw``) or chat completion (``chat``)."""

    def __init__(self, mode: StreamMode) -> None:
        self.mode = mode
        self.done = False
        self.pieces = 0
        self.usage: Usage | None = None
        self.cache_write_tokens = 0
        self._finish: str | None = None
        self._decoder = SSEDecoder()

    def feed(self, chunk: bytes) -> list[str]:
        """Add raw bytes; return the text pieces they complete."""
        return list(self.texts(chunk))

    def texts(self, chunk: bytes) -> Iterator[str]:
        """Add raw bytes; yield the text pieces they complete, event by event, so that the
        pieces before a broken event are yielded before its error is raised."""
        for payload in self._decoder.feed(chunk):
            if payload.strip() == b"[DONE]":
                self.done = True
                continue
            for text in self._read(payload):
                self.pieces += 1
                yield text

    @property
    def complete(self) -> bool:
        """Whether the server marked the end (``[DONE]`` or a finish reason): a stream that
        stops without either was cut, however cleanly its connection closed."""
        return self.done or self._finish is not None

    @property
    def finish_reason(self) -> FinishReason:
        """``stop`` only when the server said so; anything else hands back (``length``)."""
        return "stop" if self._finish in ("stop", "eos") else "length"

    @property
    def note(self) -> str:
        """Why the finish reason was read as it was, when the server left it unclear."""
        if self._finish is None:
            return "the cloud sent no finish_reason; read as 'length'"
        if self._finish not in ("stop", "eos", "length"):
            return f"the cloud's finish_reason {self._finish!r} read as 'length'"
        return ""

    @property
    def completion_tokens(self) -> int:
        """Tokens the server reports producing (pieces received when it reports none); a
        reasoning model's hidden reasoning is part of them."""
        return self.usage.completion_tokens if self.usage else self.pieces

    @property
    def prompt_tokens(self) -> int:
        return self.usage.prompt_tokens if self.usage else 0

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens the server read from its cache."""
        return self.usage.cached_tokens if self.usage else 0

    def _read(self, payload: bytes) -> list[str]:
        try:
            chunk = json.loads(payload)
        except ValueError as exc:
            raise CloudUnavailable(f"the cloud sent an invalid stream chunk: {exc}") from exc
        if not isinstance(chunk, dict):
            raise CloudUnavailable("the cloud sent a stream chunk that is not a JSON object")
        if "error" in chunk:
            raise CloudUnavailable(f"the cloud failed mid-stream: {_message(chunk) or 'error'}")
        if isinstance(chunk.get("usage"), dict):
            self.usage = _usage(chunk["usage"])
            self.cache_write_tokens = _count(chunk["usage"].get("prompt_tokens_details"),
                                             "cache_write_tokens")  # fmt: skip
        texts = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            holder = choice if self.mode == "raw" else choice.get("delta") or {}
            text = holder.get("text" if self.mode == "raw" else "content")
            if isinstance(text, str) and text:
                texts.append(text)
            if isinstance(choice.get("finish_reason"), str):
                self._finish = choice["finish_reason"]
        return texts


def _count(holder: Any, key: str) -> int:
    value = holder.get(key) if isinstance(holder, dict) else None
    return value if isinstance(value, int) and value >= 0 else 0


def _usage(data: dict[str, Any]) -> Usage:
    """OpenAI's usage; DeepSeek reports its cache hits as ``prompt_cache_hit_tokens``."""
    cached = _count(data.get("prompt_tokens_details"), "cached_tokens")
    return Usage.of(
        _count(data, "prompt_tokens"),
        _count(data, "completion_tokens"),
        cached or _count(data, "prompt_cache_hit_tokens"),
    )


def _message(body: Any) -> str:
    """The human-readable message of an error body, if it has one.

    Read: OpenAI's ``{"error": {"message"}}`` (Anthropic and DeepSeek use it too),
    Gemini's list of such objects, Mistral's ``{"message": {"detail": [...]}}``
    and FastAPI's ``{"detail": [{"loc", "msg"}]}``.
    """
    if isinstance(body, list) and body:
        return _message(body[0])
    if not isinstance(body, dict):
        return body if isinstance(body, str) else ""
    for key in ("error", "message", "detail"):
        if key in body:
            found = body[key]
            if isinstance(found, dict):
                return _message(found)
            if isinstance(found, list) and found and isinstance(found[0], dict):
                item = found[0]
                where = ".".join(str(p) for p in item.get("loc", ())[1:])
                return f"{where}: {item.get('msg', '')}".strip(": ") if where else str(item)
            if isinstance(found, str):
                return found
    return ""


def _param(body: Any) -> str | None:
    """The request field an error body names, when it names one."""
    if isinstance(body, list) and body:
        return _param(body[0])
    if not isinstance(body, dict):
        return None
    error = body.get("error", body.get("message", body))
    if isinstance(error, dict):
        if isinstance(error.get("param"), str) and error["param"]:
            return error["param"]
        detail = error.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            loc = [str(p) for p in detail[0].get("loc", ()) if p != "body"]
            return ".".join(loc) or None
    return None


def error_for_status(
    status: int, body: bytes, where: str, *, retry_after: str | None = None
) -> CloudError:
    """The error for an HTTP error answer from ``where``, with the server's own reason.

    429 and 5xx are outages (:class:`CloudUnavailable`: retried, counted by the
    circuit breaker); any other status means the request itself was refused
    (:class:`UpstreamError` carrying that status).
    """
    param = None
    try:
        data = json.loads(body)
        reason, param = _message(data), _param(data)
    except ValueError:
        reason = body.decode("utf-8", "replace").strip()[:200]
    text = f"{where} answered {status}" + (f": {reason}" if reason else "")
    if status == 429 or status >= 500:
        seconds = float(retry_after) if retry_after and _is_number(retry_after) else None
        return CloudUnavailable(text, retry_after_s=seconds)
    return UpstreamError(text, status_code=status, reason=reason, param=param)


def _is_number(text: str) -> bool:
    try:
        return float(text) >= 0
    except ValueError:
        return False
