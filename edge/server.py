"""``relay serve``: the relay behind a local OpenAI-compatible chat endpoint.

Existing assistants and the openai SDK use the relay unchanged through
``POST /v1/chat/completions`` (streamed or not) and ``GET /v1/models``. Each
streamed chunk says which model wrote its text in the extension field
``choices[].delta.relay_source`` (``slm`` or ``llm``). One SLM serves one
answer at a time; other requests wait their turn on its worker thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

from edge.llama import iterate_in_thread
from edge.openai_compat.server import add_error_handlers, event_stream
from edge.runtime import Relay
from protocol.events import DoneEvent, RelayEvent, TextEvent
from protocol.wire import (
    SSE_DONE,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatMessage,
    ModelCard,
    ModelList,
    Usage,
    encode_sse,
    new_id,
)

__all__ = ["SERVED_MODEL", "create_edge_app"]

SERVED_MODEL = "relayllm"


def create_edge_app(relay: Relay) -> FastAPI:
    """An app answering chat completions with ``relay``."""
    app = FastAPI(title="relayllm edge")
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay")
    add_error_handlers(app)

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=SERVED_MODEL)])

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatCompletionRequest) -> JSONResponse | StreamingResponse:
        messages = [m.model_dump() for m in body.messages]
        events = iterate_in_thread(worker, lambda: relay.answer(relay.prompt(messages)))
        rid = new_id("chatcmpl")
        if body.stream:
            return event_stream(_chunks(rid, events))
        text, done = "", None
        async for event in events:
            if isinstance(event, TextEvent):
                text += event.text
            elif isinstance(event, DoneEvent):
                done = event
        assert done is not None
        choice = ChatChoice(
            message=ChatMessage(role="assistant", content=text), finish_reason=done.finish_reason
        )
        usage = Usage.of(done.prompt_tokens, done.slm_tokens + done.llm_tokens)
        reply = ChatCompletion(id=rid, model=SERVED_MODEL, choices=[choice], usage=usage)
        return JSONResponse(reply.model_dump(exclude_none=True))

    return app


async def _chunks(rid: str, events: AsyncIterator[RelayEvent]) -> AsyncIterator[bytes]:
    def chunk(delta: ChatDelta, finish: str | None = None) -> bytes:
        choice = ChatChunkChoice(delta=delta, finish_reason=finish)  # type: ignore[arg-type]
        return encode_sse(ChatCompletionChunk(id=rid, model=SERVED_MODEL, choices=[choice]))

    yield chunk(ChatDelta(role="assistant", content=""))
    async for event in events:
        if isinstance(event, TextEvent) and event.text:
            source = "llm" if event.source == "llm" else "slm"
            yield chunk(ChatDelta(content=event.text, relay_source=source))
        elif isinstance(event, DoneEvent):
            yield chunk(ChatDelta(), event.finish_reason)
    yield SSE_DONE
