"""``relay serve``'s chat replies: the relay's events as an OpenAI chat completion or its chunks.

Each streamed chunk says which model wrote its text (``delta.relay_source``); calls are
``delta.relay_call``; usage carries ``relay`` details (SLM and cloud tokens, calls, cost).
The encoding both servers share is :mod:`edge.openai_compat.replies`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from edge.app.service import SERVED_MODEL, EdgeService
from edge.openai_compat.replies import ChatChunks, chat_reply, stream_reply
from protocol.events import (
    CallFinished,
    CallSkipped,
    CallStarted,
    CloudSkipped,
    DoneEvent,
    RelayEvent,
    TextEvent,
)
from protocol.wire import ChatCompletionRequest, ChatDelta, RelayCall, RelayDetails, Usage, new_id

__all__ = ["reply"]


async def reply(
    service: EdgeService, body: ChatCompletionRequest
) -> JSONResponse | StreamingResponse:
    """The answer to ``body``: streamed, or whole once the model is done."""
    events = await service.answer(body)
    rid = new_id("chatcmpl")
    if body.stream:
        return stream_reply(_chunks(ChatChunks(rid, SERVED_MODEL), events, body.include_usage))
    text, done = "", None
    async for event in events:
        if isinstance(event, TextEvent):
            text += event.text
        elif isinstance(event, DoneEvent):
            done = event
    assert done is not None
    return chat_reply(rid, SERVED_MODEL, text, done.finish_reason, _usage(done))


def _usage(done: DoneEvent) -> Usage:
    usage = Usage.of(done.prompt_tokens, done.slm_tokens + done.llm_tokens)
    details = RelayDetails(slm_tokens=done.slm_tokens, llm_tokens=done.llm_tokens,
                           calls=done.calls, cost_usd=done.cost_usd)  # fmt: skip
    return usage.model_copy(update={"relay": details})


async def _chunks(
    chunks: ChatChunks, events: AsyncIterator[RelayEvent], include_usage: bool
) -> AsyncIterator[BaseModel]:
    try:
        yield chunks.delta(ChatDelta(role="assistant", content=""))
        async for event in events:
            if isinstance(event, TextEvent) and event.text:
                yield chunks.delta(ChatDelta(content=event.text, relay_source=event.source))
            elif (call := _call_of(event)) is not None:
                yield chunks.delta(ChatDelta(relay_call=call))
            elif isinstance(event, DoneEvent):
                yield chunks.delta(ChatDelta(), event.finish_reason)
                if include_usage:
                    yield chunks.usage(_usage(event))
    finally:
        await events.aclose()  # type: ignore[attr-defined]


def _call_of(event: RelayEvent) -> RelayCall | None:
    if isinstance(event, CallStarted):
        return RelayCall(call_id=event.call_id, requested=event.requested, granted=event.granted)
    if isinstance(event, CloudSkipped):
        return RelayCall(call_id=event.call_id, outcome="cloud_skipped", cloud=event.cloud,
                         reason=event.reason)  # fmt: skip
    if isinstance(event, CallFinished):
        return RelayCall(call_id=event.call_id, outcome=event.outcome, tokens=event.tokens,
                         reason=event.note, cloud=event.cloud, requested=event.requested,
                         granted=event.granted)  # fmt: skip
    if isinstance(event, CallSkipped):
        return RelayCall(requested=event.requested, outcome="skipped", reason=event.reason)
    return None
