"""``relay serve``: the relay behind a local OpenAI-compatible chat endpoint.

Existing assistants and the openai SDK use the relay unchanged through
``POST /v1/chat/completions`` (streamed or not) and ``GET /v1/models``. Each
streamed chunk says which model wrote its text in the extension field
``choices[].delta.relay_source`` (``slm`` or ``llm``). One SLM serves one
answer at a time; other requests wait their turn on its worker thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from edge.relay import RelayLoop
from protocol.errors import InvalidRequest, RelayError
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
    ErrorBody,
    ErrorDetail,
    ModelCard,
    ModelList,
    Usage,
    encode_sse,
    new_id,
)

__all__ = ["SERVED_MODEL", "create_edge_app"]

SERVED_MODEL = "relayllm"
_END = object()


def create_edge_app(relay: RelayLoop) -> FastAPI:
    """An app answering chat completions with ``relay``."""
    app = FastAPI(title="relayllm edge")
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay")

    @app.exception_handler(RelayError)
    async def relay_error(_: Request, exc: RelayError) -> JSONResponse:
        body = ErrorBody(error=ErrorDetail(message=exc.message, type=exc.error_type))
        return JSONResponse(body.model_dump(exclude_none=True), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = "; ".join(str(e.get("msg")) for e in exc.errors())
        return await relay_error(request, InvalidRequest(f"invalid request: {reasons}"))

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=SERVED_MODEL)])

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatCompletionRequest) -> JSONResponse | StreamingResponse:
        messages = [m.model_dump() for m in body.messages]
        events = _in_worker(worker, lambda: relay.run(messages))
        rid = new_id("chatcmpl")
        if body.stream:
            return StreamingResponse(_chunks(rid, events), media_type="text/event-stream")
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


async def _in_worker(
    worker: ThreadPoolExecutor, start: Callable[[], Iterator[RelayEvent]]
) -> AsyncIterator[RelayEvent]:
    """Run the synchronous event generator on ``worker``, yielding its events here."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def produce() -> None:
        try:
            for event in start():
                loop.call_soon_threadsafe(queue.put_nowait, event)
                if stop.is_set():
                    break
        except Exception as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        loop.call_soon_threadsafe(queue.put_nowait, _END)

    job = loop.run_in_executor(worker, produce)
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        await job
