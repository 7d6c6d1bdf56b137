"""Serving logic: OpenAI requests in, engine deltas out as JSON or SSE.

Routes stay thin; everything between a validated request and the response
bytes lives here, with the engine passed in. Admission, output limits and the
chat replies are the serving core both servers share
(:mod:`edge.openai_compat.serving`, :mod:`edge.openai_compat.replies`); the
engine matches stop sequences and watches the deadline itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from cloud.engine import Delta, Engine, Generation
from cloud.quota import Meter, chat_bound, text_bound, unmetered
from edge.openai_compat.replies import ChatChunks, chat_reply, json_reply, stream_reply
from edge.openai_compat.serving import Admission, OutputLimits
from protocol.errors import ModelNotFound
from protocol.sampling import SamplingParams
from protocol.wire import (
    ChatCompletionRequest,
    ChatDelta,
    Completion,
    CompletionChoice,
    CompletionChunk,
    CompletionRequest,
    new_id,
)

__all__ = ["serve_chat", "serve_completion"]

Response = JSONResponse | StreamingResponse
Request = CompletionRequest | ChatCompletionRequest


def generation(limits: OutputLimits, request: Request) -> Generation:
    """What the engine should generate for ``request``, within ``limits`` (a request that
    names no limit gets ``limits.max_tokens``)."""
    asked = limits.tokens_asked(request)
    sampling = SamplingParams(
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        seed=request.seed,
    )
    return Generation(sampling, asked or limits.max_tokens, request.stop_sequences,
                      limits.deadline())  # fmt: skip


def _check_model(engine: Engine, request: Request) -> None:
    if request.model not in (None, engine.model_id):
        raise ModelNotFound(
            f"model {request.model!r} is not served here; available: {engine.model_id!r}",
            param="model",
        )


async def _admitted(
    engine: Engine,
    request: Request,
    admission: Admission,
    bound: int,
    start: Callable[[Generation], AsyncIterator[Delta]],
    limits: OutputLimits,
    meter: Meter,
) -> AsyncIterator[Delta]:
    """The engine's deltas for ``request``, admitted and metered; request errors (a prompt
    too long, a key over its limits) are raised before the response starts."""
    deltas = admission.admit(meter(bound, generation(limits, request), start))
    await anext(deltas)  # the engine's first delta: the prompt is accepted
    return deltas


async def _collect(deltas: AsyncIterator[Delta]) -> tuple[str, Delta]:
    parts: list[str] = []
    try:
        async for delta in deltas:
            parts.append(delta.text)
            if delta.finish_reason is not None:
                return "".join(parts), delta
    finally:
        await deltas.aclose()  # type: ignore[attr-defined]
    raise RuntimeError("the engine ended without a finish reason")


async def serve_completion(
    engine: Engine,
    request: CompletionRequest,
    admission: Admission,
    limits: OutputLimits,
    meter: Meter = unmetered,
) -> Response:
    """``/v1/completions``: continue the raw prompt (within the key's quota: ``meter``)."""
    _check_model(engine, request)
    prompt = request.prompt_text
    deltas = await _admitted(engine, request, admission, text_bound(prompt),
                             lambda g: engine.complete(prompt, g), limits, meter)  # fmt: skip
    rid, model = new_id("cmpl"), engine.model_id
    if not request.stream:
        text, last = await _collect(deltas)
        choice = CompletionChoice(text=text, finish_reason=last.finish_reason)
        return json_reply(Completion(id=rid, model=model, choices=[choice], usage=last.usage))

    async def chunks() -> AsyncIterator[BaseModel]:
        try:
            async for delta in deltas:
                if delta.text or delta.finish_reason:
                    choice = CompletionChoice(text=delta.text, finish_reason=delta.finish_reason)
                    yield CompletionChunk(id=rid, model=model, choices=[choice])
                if delta.finish_reason is not None and request.include_usage and delta.usage:
                    yield CompletionChunk(id=rid, model=model, choices=[], usage=delta.usage)
        finally:
            await deltas.aclose()  # type: ignore[attr-defined]

    return stream_reply(chunks())


async def serve_chat(
    engine: Engine,
    request: ChatCompletionRequest,
    admission: Admission,
    limits: OutputLimits,
    meter: Meter = unmetered,
) -> Response:
    """``/v1/chat/completions``: answer, or continue a final assistant message."""
    _check_model(engine, request)
    messages, continue_final = request.messages, request.continues_final_message
    deltas = await _admitted(
        engine, request, admission, chat_bound(messages),
        lambda g: engine.chat(messages, g, continue_final=continue_final), limits, meter,
    )  # fmt: skip
    rid, model = new_id("chatcmpl"), engine.model_id
    if not request.stream:
        text, last = await _collect(deltas)
        return chat_reply(rid, model, text, last.finish_reason, last.usage)
    return stream_reply(_chat_chunks(ChatChunks(rid, model), deltas, request.include_usage))


async def _chat_chunks(
    chunks: ChatChunks, deltas: AsyncIterator[Delta], include_usage: bool
) -> AsyncIterator[BaseModel]:
    """The engine's deltas as chat chunks: the role on the first, the finish on the last."""
    first = True
    try:
        async for delta in deltas:
            if delta.text or delta.finish_reason:
                role = "assistant" if first else None
                content = delta.text if delta.text or delta.finish_reason is None else None
                yield chunks.delta(ChatDelta(role=role, content=content), delta.finish_reason)
                first = False
            if delta.finish_reason is not None and include_usage and delta.usage:
                yield chunks.usage(delta.usage)
    finally:
        await deltas.aclose()  # type: ignore[attr-defined]
