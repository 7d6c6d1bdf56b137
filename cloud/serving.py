"""Serving logic: OpenAI requests in, engine deltas out as JSON or SSE.

Routes stay thin; everything between a validated request and the response
bytes lives here, with the engine passed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from cloud.engine import Delta, Engine, Generation
from cloud.quota import Meter, chat_bound, text_bound, unmetered
from edge.openai_compat.logs import current_request_id
from edge.openai_compat.server import event_stream
from protocol.errors import ModelNotFound, Overloaded, RelayError
from protocol.sampling import SamplingParams
from protocol.wire import (
    SSE_DONE,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatMessage,
    Completion,
    CompletionChoice,
    CompletionChunk,
    CompletionRequest,
    ErrorBody,
    Usage,
    encode_sse,
    new_id,
)

__all__ = ["Admission", "OutputLimits", "serve_chat", "serve_completion"]

log = logging.getLogger(__name__)

Response = JSONResponse | StreamingResponse


@dataclass(frozen=True)
class OutputLimits:
    """The server's bounds on one answer: ``max_tokens`` (``--max-output-tokens``: asking
    for more is a 400; asking for nothing gets this many) and ``timeout_s``
    (``--request-timeout``: seconds from arrival, queueing included, after which the
    answer ends with ``finish_reason = "length"``)."""

    max_tokens: int = 4096
    timeout_s: float = 300.0

    def generation(self, request: CompletionRequest | ChatCompletionRequest) -> Generation:
        """What the engine should generate for ``request``, within these limits."""
        asked = request.token_limit_within(self.max_tokens)
        sampling = SamplingParams(
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            seed=request.seed,
        )
        deadline = time.monotonic() + self.timeout_s
        return Generation(sampling, asked or self.max_tokens, request.stop_sequences, deadline)


class Admission:
    """How many requests may be answered or wait at once; beyond that, 429 with Retry-After.

    Requests are then served first come, first served by the engine's own queue.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def admit(self, deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
        """``deltas``, counted until they end (or are closed); refused when full."""
        if self.in_flight >= self.limit:
            raise Overloaded(
                f"{self.in_flight} requests are being answered or waiting (the limit); "
                "try again shortly",
                retry_after_s=2.0,
            )
        self.in_flight += 1
        return self._counted(deltas)

    async def _counted(self, deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
        try:
            async for delta in deltas:
                yield delta
        finally:
            self.in_flight -= 1
            await deltas.aclose()  # type: ignore[attr-defined]


def _check_model(engine: Engine, request: CompletionRequest | ChatCompletionRequest) -> None:
    if request.model not in (None, engine.model_id):
        raise ModelNotFound(
            f"model {request.model!r} is not served here; available: {engine.model_id!r}",
            param="model",
        )


async def _collect(deltas: AsyncIterator[Delta]) -> tuple[str, Delta]:
    parts: list[str] = []
    try:
        async for delta in deltas:
            parts.append(delta.text)
            if delta.finish_reason is not None:
                return "".join(parts), delta
    finally:
        await deltas.aclose()
    raise RuntimeError("the engine ended without a finish reason")


async def _sse(
    deltas: AsyncIterator[Delta],
    chunk_of: Callable[[Delta], BaseModel],
    usage_chunk: Callable[[Usage], BaseModel] | None,
) -> AsyncIterator[bytes]:
    try:
        async for delta in deltas:
            if delta.text or delta.finish_reason:
                yield encode_sse(chunk_of(delta))
            if delta.finish_reason is not None and usage_chunk and delta.usage:
                yield encode_sse(usage_chunk(delta.usage))
    except RelayError as exc:
        log.warning("stream failed: %s", exc.message)
        yield encode_sse(ErrorBody.of(exc, current_request_id()))
    finally:
        await deltas.aclose()
    yield SSE_DONE


async def serve_completion(
    engine: Engine,
    request: CompletionRequest,
    admission: Admission,
    limits: OutputLimits = OutputLimits(),
    meter: Meter = unmetered,
) -> Response:
    """``/v1/completions``: continue the raw prompt (within the key's quota: ``meter``)."""
    _check_model(engine, request)
    prompt = request.prompt_text
    generation = limits.generation(request)
    deltas = admission.admit(
        meter(text_bound(prompt), generation, lambda g: engine.complete(prompt, g))
    )
    await anext(deltas)  # raises request errors before the response starts
    rid, model = new_id("cmpl"), engine.model_id
    if not request.stream:
        text, last = await _collect(deltas)
        choice = CompletionChoice(text=text, finish_reason=last.finish_reason)
        done = Completion(id=rid, model=model, choices=[choice], usage=last.usage)
        return JSONResponse(done.model_dump(exclude_none=True))

    def chunk(delta: Delta) -> CompletionChunk:
        choice = CompletionChoice(text=delta.text, finish_reason=delta.finish_reason)
        return CompletionChunk(id=rid, model=model, choices=[choice])

    def usage(u: Usage) -> CompletionChunk:
        return CompletionChunk(id=rid, model=model, choices=[], usage=u)

    return event_stream(_sse(deltas, chunk, usage if request.include_usage else None))


async def serve_chat(
    engine: Engine,
    request: ChatCompletionRequest,
    admission: Admission,
    limits: OutputLimits = OutputLimits(),
    meter: Meter = unmetered,
) -> Response:
    """``/v1/chat/completions``: answer, or continue a final assistant message."""
    _check_model(engine, request)
    messages, continue_final = request.messages, request.continues_final_message
    generation = limits.generation(request)
    deltas = admission.admit(
        meter(chat_bound(messages), generation,
              lambda g: engine.chat(messages, g, continue_final=continue_final))
    )  # fmt: skip
    await anext(deltas)
    rid, model = new_id("chatcmpl"), engine.model_id
    if not request.stream:
        text, last = await _collect(deltas)
        message = ChatMessage(role="assistant", content=text)
        choice = ChatChoice(message=message, finish_reason=last.finish_reason)
        done = ChatCompletion(id=rid, model=model, choices=[choice], usage=last.usage)
        return JSONResponse(done.model_dump(exclude_none=True))

    first = [True]

    def chunk(delta: Delta) -> ChatCompletionChunk:
        role = "assistant" if first[0] else None
        first[0] = False
        content = delta.text if delta.text or delta.finish_reason is None else None
        choice = ChatChunkChoice(
            delta=ChatDelta(role=role, content=content), finish_reason=delta.finish_reason
        )
        return ChatCompletionChunk(id=rid, model=model, choices=[choice])

    def usage(u: Usage) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=rid, model=model, choices=[], usage=u)

    return event_stream(_sse(deltas, chunk, usage if request.include_usage else None))
