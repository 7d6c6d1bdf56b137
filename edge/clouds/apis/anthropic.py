"""``anthropic``: Anthropic's Messages API, ``POST /v1/messages``, natively.

``x-api-key`` and ``anthropic-version`` headers; the system text at the top
level; ``max_tokens`` (required) is N; ``stop_sequences``; no seed (the API has
none). The partial answer is a final assistant message, which Claude continues
(a prefill). A prefill must not end in whitespace, and partial answers very
often do, so it is sent stripped and the seam drops the reply's copy of that
whitespace. Models that refuse a prefill (the 4.6 generation) say so in a
400; the cloud is then taught ``no-prefill`` and asked as the ``chat`` family
asks, with the instruction to continue.

Caching: a ``cache_control`` breakpoint marks the end of what is sent (system,
conversation, answer so far). The answer is sent as one text block per call
that grew it (the blocks the previous call sent, then the new text), so the
cache entry each call wrote ends on a block boundary of the next, within the
API's lookback, and is read back (``cache_read_input_tokens``). Turns with no
text are left out (the API refuses empty content).

The reply streams as ``message_start`` (input usage), ``content_block_delta``
(``text_delta`` pieces; thinking is never spliced), ``message_delta`` (stop
reason, cumulative output usage) and ``message_stop``; an ``error`` event
mid-stream is an outage.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from edge.clouds.apis.base import CONTINUE_INSTRUCTION, ApiCall, CloudApi, Conversation, Target
from edge.clouds.apis.quirks import Quirks
from edge.clouds.seam import Seam
from edge.core.cloud import CloudRequest
from protocol.errors import CloudUnavailable, UpstreamError
from protocol.sse import SSEDecoder
from protocol.wire import FinishReason

__all__ = ["ANTHROPIC_VERSION", "Anthropic", "MessagesStream"]

ANTHROPIC_VERSION = "2023-06-01"
NO_PREFILL = "no-prefill"
_ANSWERS_KEPT = 256


class Anthropic:
    name: CloudApi = "anthropic"
    needs: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._sent: OrderedDict[str, list[str]] = OrderedDict()  # answer -> its blocks sent
        self._lock = threading.Lock()

    def models_url(self, base_url: str) -> str:
        return _v1(base_url) + "/models"

    def headers(self, target: Target) -> dict[str, str]:
        keyed = {"x-api-key": target.api_key} if target.api_key else {}
        return {**keyed, "anthropic-version": ANTHROPIC_VERSION}

    def adapt(self, error: UpstreamError, target: Target) -> Quirks | None:
        refused = "prefill" in error.reason.lower() and NO_PREFILL not in target.quirks.flags
        return target.quirks.with_flag(NO_PREFILL) if refused else None

    def read_probe(self, reply: str, quirks: Quirks) -> tuple[str, Quirks]:
        return reply, quirks

    def call(self, request: CloudRequest, target: Target) -> ApiCall:
        talk = Conversation.of(request.messages)
        no_prefill = NO_PREFILL in target.quirks.flags
        answer = talk.partial if no_prefill else talk.partial.rstrip()
        messages = [{"role": m.role, "content": m.content} for m in talk.turns if m.content.strip()]
        if answer.strip():
            messages.append({"role": "assistant", "content": self._blocks(request, answer)})
        _mark_cache(messages)  # the answer so far (or the conversation) is read back next call
        if no_prefill and answer.strip():
            messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})
        messages = messages or [{"role": "user", "content": CONTINUE_INSTRUCTION}]
        if no_prefill:
            seam = lambda: Seam.after_answer(talk.partial)  # noqa: E731
        else:
            seam = lambda: Seam.after_stripped(talk.partial[len(answer) :])  # noqa: E731
        body: dict[str, Any] = {
            "model": target.model, "max_tokens": request.max_tokens, "messages": messages,
            "temperature": min(1.0, target.temperature_for(request)), "stream": True,
        }  # fmt: skip
        if talk.system:
            body["system"] = [{"type": "text", "text": talk.system}]
        if stops := [s for s in target.stops_for(request, 16) if s.strip()]:
            body["stop_sequences"] = stops
        return ApiCall(
            url=_v1(target.base_url) + "/messages",
            body=target.quirks.apply(body),
            headers=self.headers(target),
            new_tally=MessagesStream,
            seam=seam,
        )

    def _blocks(self, request: CloudRequest, answer: str) -> list[dict[str, Any]]:
        """The answer as text blocks: those the answer's previous call sent, then the rest
        (one block again when the answer does not extend them)."""
        with self._lock:
            blocks = self._sent.pop(request.answer_id, [])
            if not answer.startswith(sent := "".join(blocks)):
                blocks, sent = [], ""
            if answer[len(sent) :]:
                blocks = [*blocks, answer[len(sent) :]]
            self._sent[request.answer_id] = blocks
            while len(self._sent) > _ANSWERS_KEPT:
                self._sent.popitem(last=False)
        return [{"type": "text", "text": block} for block in blocks]


def _v1(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


def _mark_cache(messages: list[dict[str, Any]]) -> None:
    """A cache breakpoint on the last block of the last message."""
    if not messages:
        return
    last = messages[-1]
    if isinstance(last["content"], str):
        last["content"] = [{"type": "text", "text": last["content"]}]
    last["content"][-1]["cache_control"] = {"type": "ephemeral"}


class MessagesStream:
    """The tally of one streamed Messages API reply (see the module docstring)."""

    def __init__(self) -> None:
        self.done = False
        self._decoder = SSEDecoder()
        self._stop: str | None = None
        self._usage: dict[str, int] = {}
        self._pieces = 0

    def texts(self, chunk: bytes) -> Iterator[str]:
        for payload in self._decoder.feed(chunk):
            try:
                event = json.loads(payload)
            except ValueError as exc:
                raise CloudUnavailable(f"the cloud sent an invalid stream event: {exc}") from exc
            if not isinstance(event, dict):
                raise CloudUnavailable("the cloud sent a stream event that is not a JSON object")
            kind = event.get("type")
            if kind == "message_start":
                self._count((event.get("message") or {}).get("usage"))
            elif kind == "content_block_delta":
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                    self._pieces += 1
                    yield delta["text"]
            elif kind == "message_delta":
                self._stop = (event.get("delta") or {}).get("stop_reason") or self._stop
                self._count(event.get("usage"))
            elif kind == "message_stop":
                self.done = True
            elif kind == "error":
                error = event.get("error") or {}
                reason = error.get("message") or error.get("type") or "error"
                raise CloudUnavailable(f"the cloud failed mid-stream: {reason}")

    def _count(self, usage: object) -> None:
        """Usage counts are cumulative: the latest of each is the count."""
        if isinstance(usage, dict):
            for key, value in usage.items():
                if isinstance(value, int) and value >= 0:
                    self._usage[key] = value

    @property
    def complete(self) -> bool:
        return self.done or self._stop is not None

    @property
    def finish_reason(self) -> FinishReason:
        return "stop" if self._stop in ("end_turn", "stop_sequence") else "length"

    @property
    def note(self) -> str:
        if self._stop is None:
            return "the cloud sent no stop_reason; read as 'length'"
        if self._stop not in ("end_turn", "stop_sequence", "max_tokens"):
            return f"the cloud's stop_reason {self._stop!r} read as 'length'"
        return ""

    @property
    def prompt_tokens(self) -> int:
        """Uncached input, read from the cache and written to it: the whole prompt."""
        return self._usage.get("input_tokens", 0) + self.cached_tokens + self.cache_write_tokens

    @property
    def completion_tokens(self) -> int:
        return self._usage.get("output_tokens", self._pieces)

    @property
    def cached_tokens(self) -> int:
        return self._usage.get("cache_read_input_tokens", 0)

    @property
    def cache_write_tokens(self) -> int:
        return self._usage.get("cache_creation_input_tokens", 0)
